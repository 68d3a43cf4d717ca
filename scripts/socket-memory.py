#!/usr/bin/env python3
"""Kernel memory per idle TCP connection on loopback, and what tcp_rmem/tcp_wmem change.

What it measures. N TCP connections on 127.0.0.1 with both ends opened by
this script: the client ends in this process, the server ends in a child
process it starts (`--serve`; one process may hold 20,000 open files on the
bench machine and each end needs N, so N is at most 18,000). No Herald
process takes part. Every socket is registered in an epoll set, as tokio
registers Herald's and the load generator's. For each setting of the TCP
buffer sysctls, three states:

  (a) idle      right after the handshakes, every connection accepted;
  (b) exchanged each side sent one --msg-byte message (100) and the other
                read it: receive queues empty again, sends acknowledged;
  (c) queued    each side sent one --queued-byte message (4096) that the
                other does not read: what a burst leaves in receive buffers;

and, with --stall-pairs P (default 32), (d) stalled: on P other connections
(opened and closed before (a)) the server end writes until the kernel
refuses more while the client end reads nothing: a slow consumer, what the
buffers let one connection pin. It depends on the sender's tcp_wmem maximum
and on the reader's receive buffer; here both ends share the namespace, so
the low and lower variants shrink the reader's too, which on a real node is
the client's own setting.

Each state is the difference from a snapshot taken just before the
connections were opened, in: /proc/meminfo (Slab, SUnreclaim, and
MemAvailable as a noisy cross-check), /proc/net/sockstat (TCP inuse, alloc
and mem, mem in pages), the /proc/slabinfo caches that moved (objects in use
times object size), and this script's own memory cgroup where one is
readable (v1 memory.kmem.usage_in_bytes, or v2 memory.stat kernel/sock):
what the kernel charged to these two processes, which others' sockets do
not move. Reported per connection (both ends, as on one host) and per
socket (half: the server's end, what a node holds for a remote client).
"TCP buffers" is sockstat's mem, the socket buffer memory the kernel
accounts (skb truesize plus reserve), most of it page fragments that Slab
does not count; its skb heads are in Slab as well.

Why. docs/operations.md, "Capacity per node": the kernel's share of a
connection next to the gateway's RSS and Redis's, and whether lowering the
buffer sysctls lowers it.

Noise. /proc/meminfo, sockstat and slabinfo are machine-wide (sockstat per
network namespace): other processes opening or closing sockets during a
measurement move them too. Each measurement takes a second or two, each
state is measured --repeats times (3), the variants interleaved, and the
report gives the median and the range; "inuse - 2N" is the number of other
processes' TCP sockets that came or went during the window. A process that
lists /proc/PID/fd (a monitor; one did, within a second, on the bench
machine) adds a proc inode and a dentry per open file: the report says so
when proc_inode_cache moved; that is not socket memory.

How to run (root: the sysctls and /proc/slabinfo need it):

  python3 scripts/socket-memory.py               # N=10,000, 3 repeats, every variant
  python3 scripts/socket-memory.py -n 5000 --repeats 5 --json /tmp/sockmem.json
  python3 scripts/socket-memory.py --no-sysctl   # the current settings only: changes nothing
  python3 scripts/socket-memory.py --mss 1448    # Ethernet-sized segments, not loopback's 64 KiB

Variants: current (the values read at start), low ("4096 16384 MAX" for
both), lower ("4096 4096 MAX"), capped (tcp_rmem as it is, tcp_wmem
"4096 16384 262144": the send side's maximum, what (d) depends on), MAX being
the current maximum of each. No minimum below 4096: Linux 6.18
refuses any tcp_rmem value below 4096 (EINVAL; tcp_wmem takes them), and
4096 is already the usual minimum.

What it changes: net.ipv4.tcp_rmem and net.ipv4.tcp_wmem, nothing else. They
are per network namespace, so every TCP socket created in this namespace
while a lowered variant is set gets it, other processes' too (sockets
that already exist keep theirs); a run takes about a minute. The values read
at start are printed first and written back when the script ends, on error
and on SIGINT/SIGTERM/SIGHUP (try/finally); only SIGKILL can leave a lowered
value behind, hence the printed originals. net.core.rmem_default and
wmem_default are printed, not changed: TCP sockets take tcp_rmem[1] and
tcp_wmem[1] instead (the SO_RCVBUF/SO_SNDBUF each variant shows).
Processes: only the child it starts, stopped by its PID.
"""

import argparse
import fcntl
import json
import os
import resource
import select
import signal
import socket
import statistics
import struct
import subprocess
import sys
import termios
import time

CHANGED = ("net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem")
SHOWN = (
    "net.core.rmem_default",
    "net.core.wmem_default",
    "net.core.rmem_max",
    "net.core.wmem_max",
    "net.ipv4.tcp_mem",
    "net.ipv4.tcp_moderate_rcvbuf",
    "net.core.mem_pcpu_rsv",
)
N_MAX = 18_000
PAGE = os.sysconf("SC_PAGE_SIZE")
EPOLL_FLAGS = select.EPOLLIN | select.EPOLLOUT | select.EPOLLRDHUP | select.EPOLLET
CMD_TIMEOUT = 120  # seconds the child may take for one command
LINGER0 = struct.pack("ii", 1, 0)  # close with RST: no TIME_WAIT left behind


# ---------------------------------------------------------------- helpers


def sysctl_path(name):
    return "/proc/sys/" + name.replace(".", "/")


def read_sysctl(name):
    try:
        with open(sysctl_path(name)) as f:
            return " ".join(f.read().split())
    except OSError:
        return None


def write_sysctl(name, value):
    try:
        with open(sysctl_path(name), "w") as f:
            f.write(value)
    except OSError as e:
        raise RuntimeError(f"cannot set {name} to \"{value}\": {e.strerror}") from None


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def queues(sock):
    """(bytes unread in the receive queue, bytes not yet acknowledged in the send queue)."""
    buf = bytearray(4)
    fcntl.ioctl(sock.fileno(), termios.FIONREAD, buf)
    inq = int.from_bytes(buf, sys.byteorder)
    fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, buf)
    return inq, int.from_bytes(buf, sys.byteorder)


def queue_totals(socks):
    inq = outq = busy_in = busy_out = 0
    for s in socks:
        i, o = queues(s)
        inq += i
        outq += o
        busy_in += i > 0
        busy_out += o > 0
    return inq, outq, busy_in, busy_out


def bufsizes(sock):
    return (
        sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF),
        sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF),
    )


def recv_exact(sock, n):
    got = 0
    while got < n:
        chunk = sock.recv(n - got)
        if not chunk:
            raise RuntimeError("peer closed")
        got += len(chunk)


def send_nonblocking(socks, payload):
    """Sends payload once on each socket without blocking; returns bytes sent."""
    sent = 0
    for s in socks:
        s.setblocking(False)
        try:
            sent += s.send(payload)
        except BlockingIOError:
            pass
        s.setblocking(True)
    return sent


def fill(socks, chunk=65536):
    """Writes on each socket until the kernel takes no more; returns bytes written."""
    payload = b"f" * chunk
    total = 0
    for s in socks:
        s.setblocking(False)
        while True:
            try:
                n = s.send(payload)
            except BlockingIOError:
                break
            total += n
            if n == 0:
                break
        s.setblocking(True)
    return total


def close_all(socks, ep):
    for s in socks:
        try:
            ep.unregister(s.fileno())
        except (OSError, ValueError):
            pass
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER0)
        s.close()
    socks.clear()


# ---------------------------------------------------------------- the server end (child)


def serve():
    """The child: listens, then answers one command a line on stdin with one line on stdout."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops it
    global MSS
    raise_nofile()
    MSS = int(os.environ.get("SOCKET_MEMORY_MSS", "0"))
    lst = tcp_socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(4096)
    ep = select.epoll()
    conns = []

    def say(line):
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    say(f"port {lst.getsockname()[1]}")
    for line in sys.stdin:
        cmd, *arg = line.split()
        if cmd == "accept":
            n = int(arg[0])
            while len(conns) < n:
                c, _ = lst.accept()
                ep.register(c.fileno(), EPOLL_FLAGS)
                conns.append(c)
            say("ok %d %d" % bufsizes(conns[-1]))
        elif cmd == "echo":  # read one message on each, answer one
            size = int(arg[0])
            payload = b"s" * size
            for c in conns:
                recv_exact(c, size)
                c.sendall(payload)
            say("ok")
        elif cmd == "send":  # one message on each, not waiting
            say(f"ok {send_nonblocking(conns, b'q' * int(arg[0]))}")
        elif cmd == "fill":
            say(f"ok {fill(conns)}")
        elif cmd == "queues":
            say("ok %d %d %d %d" % queue_totals(conns))
        elif cmd == "close":
            close_all(conns, ep)
            say("ok")
        elif cmd == "quit":
            break
        else:
            say(f"error unknown command {cmd}")
    close_all(conns, ep)
    lst.close()


class Child:
    def __init__(self):
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--serve"],
            env={**os.environ, "SOCKET_MEMORY_MSS": str(MSS)},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.port = int(self._read().split()[1])

    def _read(self):
        ready, _, _ = select.select([self.proc.stdout], [], [], CMD_TIMEOUT)
        if not ready:
            raise RuntimeError(f"server child {self.proc.pid}: no answer in {CMD_TIMEOUT} s")
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"server child {self.proc.pid} exited ({self.proc.poll()})")
        return line.strip()

    def send(self, cmd):
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()

    def wait_ok(self):
        line = self._read()
        if not line.startswith("ok"):
            raise RuntimeError(f"server child: {line}")
        return [int(x) for x in line.split()[1:]]

    def call(self, cmd):
        self.send(cmd)
        return self.wait_ok()

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.send("quit")
                self.proc.wait(timeout=10)
            except (OSError, ValueError, subprocess.TimeoutExpired):
                self.proc.kill()  # our own child, by its PID
                self.proc.wait()


# ---------------------------------------------------------------- snapshots


def cgroup_reader():
    """A function reading this process's memory cgroup's kernel memory in bytes, or None."""
    try:
        with open("/proc/self/cgroup") as f:
            lines = [line.rstrip("\n").split(":", 2) for line in f]
    except OSError:
        return None, None
    for _, controllers, path in lines:
        if "memory" in controllers.split(",") and path != "/":
            p = f"/sys/fs/cgroup/memory{path}/memory.kmem.usage_in_bytes"
            if os.access(p, os.R_OK):
                return (lambda: int(open(p).read())), f"v1 {p}"
    for _, controllers, path in lines:
        if controllers == "" and path != "/":
            for root in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
                p = f"{root}{path}/memory.stat"
                if os.access(p, os.R_OK):

                    def v2(p=p):
                        stat = dict(line.split() for line in open(p))
                        return int(stat.get("kernel", 0)) + int(stat.get("sock", 0))

                    try:
                        v2()
                        return v2, f"v2 {p} (kernel + sock)"
                    except (OSError, ValueError):
                        pass
    return None, None


CGROUP, CGROUP_WHERE = None, None
SLABINFO_OK = os.access("/proc/slabinfo", os.R_OK)


def slab_aliases():
    """SLUB merges caches of one size and flags; /proc/slabinfo shows one name for them all.

    Returns {shown name: [the other caches merged with it]} from /sys/kernel/slab's links."""
    by_target, merged = {}, {}
    try:
        for name in os.listdir("/sys/kernel/slab"):
            path = f"/sys/kernel/slab/{name}"
            if os.path.islink(path):
                by_target.setdefault(os.readlink(path), []).append(name)
    except OSError:
        return {}
    for names in by_target.values():
        for name in names:
            merged[name] = sorted(n for n in names if n != name)
    return merged


def snapshot():
    snap = {"t": time.monotonic()}
    with open("/proc/meminfo") as f:
        for line in f:
            key, val = line.split(":", 1)
            if key in ("Slab", "SUnreclaim", "MemAvailable"):
                snap[key] = int(val.split()[0]) * 1024
    with open("/proc/net/sockstat") as f:
        for line in f:
            if line.startswith("TCP:"):
                parts = line.split()[1:]
                tcp = dict(zip(parts[::2], map(int, parts[1::2])))
                snap["tcp_inuse"] = tcp["inuse"]
                snap["tcp_alloc"] = tcp["alloc"]
                snap["tcp_mem"] = tcp["mem"] * PAGE
    if SLABINFO_OK:
        caches = {}
        with open("/proc/slabinfo") as f:
            for line in f:
                if line.startswith(("slabinfo", "#")):
                    continue
                p = line.split()
                caches[p[0]] = (int(p[1]), int(p[3]))  # active objects, object size
        snap["slab"] = caches
    if CGROUP:
        snap["cgroup_kmem"] = CGROUP()
    return snap


ALIASES = {}
SCALARS = ("Slab", "SUnreclaim", "MemAvailable", "tcp_mem", "cgroup_kmem", "tcp_inuse", "tcp_alloc")


def delta(before, after):
    d = {k: after[k] - before[k] for k in SCALARS if k in before and k in after}
    d["seconds"] = round(after["t"] - before["t"], 2)
    if "slab" in before:
        caches = {}
        for name, (active, size) in after["slab"].items():
            old = before["slab"].get(name, (0, size))[0]
            if active != old:
                caches[name] = {"objects": active - old, "bytes": (active - old) * size, "size": size}
        d["caches"] = caches
    return d


# ---------------------------------------------------------------- one measurement


def settle(baseline_alloc, timeout=10.0):
    """Waits until the sockets of the last measurement are freed (TCP alloc back near where it was)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if snapshot()["tcp_alloc"] <= baseline_alloc + 200:
            break
        time.sleep(0.2)
    time.sleep(0.5)


MSS = 0  # --mss: 0 keeps loopback's (65,483 bytes at MTU 65,536)


def tcp_socket():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if MSS:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, MSS)
    return s


def connect(n, port, ep):
    socks = []
    for _ in range(n):
        s = tcp_socket()
        s.connect(("127.0.0.1", port))
        ep.register(s.fileno(), EPOLL_FLAGS)
        socks.append(s)
    return socks


def wait_queues(child, clients, want_in, timeout=2.0):
    """Until both ends' receive queues hold want_in bytes each and the send queues are empty,
    or the queues stop changing (a window too small for the message): the shorter the wait,
    the less other processes move the counters."""
    end = time.monotonic() + timeout
    last, same = None, 0
    while True:
        c = queue_totals(clients)
        s = child.call("queues")
        now = (c[0], c[1], s[0], s[1])
        if now == (want_in * len(clients), 0, want_in * len(clients), 0):
            return True, c, s
        same = same + 1 if now == last else 0
        if same >= 3 or time.monotonic() > end:
            return False, c, s
        last = now
        time.sleep(0.05)


def measure(args, ep, log):
    """One repetition of one variant: (d) if asked, then (a), (b), (c). Returns {state: delta}."""
    out = {}
    child = Child()
    clients = []
    try:
        if args.stall_pairs:
            before = snapshot()
            child.send(f"accept {args.stall_pairs}")
            clients = connect(args.stall_pairs, child.port, ep)
            child.wait_ok()
            written = child.call("fill")[0]
            time.sleep(0.3)  # window updates, then write again until refused
            written += child.call("fill")[0]
            time.sleep(0.1)
            after = snapshot()
            c = queue_totals(clients)
            s = child.call("queues")
            d = delta(before, after)
            d.update(pairs=args.stall_pairs, written=written, client_inq=c[0], server_outq=s[1])
            out["d"] = d
            close_all(clients, ep)
            child.call("close")
            settle(before["tcp_alloc"])

        n = args.n
        before = snapshot()
        child.send(f"accept {n}")
        clients = connect(n, child.port, ep)
        server_bufs = child.wait_ok()
        out["a"] = delta(before, snapshot())
        out["a"]["bufs"] = {"server": server_bufs, "client": list(bufsizes(clients[-1]))}

        msg = b"c" * args.msg
        for s in clients:
            s.sendall(msg)
        child.call(f"echo {args.msg}")
        for s in clients:
            recv_exact(s, args.msg)
        ok, c, s = wait_queues(child, clients, 0)
        out["b"] = delta(before, snapshot())
        if not ok:
            log(f"    (b) queues not empty: client in/out {c[:2]}, server in/out {s[:2]}")

        sent_c = send_nonblocking(clients, b"q" * args.queued)
        sent_s = child.call(f"send {args.queued}")[0]
        ok, c, s = wait_queues(child, clients, args.queued)
        out["c"] = delta(before, snapshot())
        out["c"].update(
            sent=sent_c + sent_s,
            inq=c[0] + s[0],
            outq=c[1] + s[1],
            fully_received=(c[0] + s[0]) == 2 * n * args.queued,
        )
        for st in ("a", "b", "c"):
            out[st]["noise_sockets"] = out[st]["tcp_inuse"] - 2 * n

        close_all(clients, ep)
        child.call("close")
        settle(before["tcp_alloc"])
    finally:
        close_all(clients, ep)
        child.stop()
    return out


# ---------------------------------------------------------------- report


def kib(x):
    return x / 1024


def spread(values, fmt="{:.2f}"):
    values = sorted(values)
    med = statistics.median(values)
    if len(values) == 1:
        return fmt.format(med)
    return (fmt + " [" + fmt + "–" + fmt + "]").format(med, values[0], values[-1])


STATES = {
    "a": "(a) idle",
    "b": "(b) exchanged",
    "c": "(c) queued",
}


def report(args, variants, results, log):
    global ALIASES
    ALIASES = slab_aliases()
    n = args.n
    log("")
    log(f"Per connection = both ends (2 sockets), KiB; per socket = half. N = {n:,};"
        f" median [min–max] of {args.repeats}.")
    rsv = read_sysctl("net.core.mem_pcpu_rsv")
    if rsv:
        slack = int(rsv) * PAGE * (os.cpu_count() or 1)
        log(f"TCP buffers (sockstat mem) are added up per CPU in batches of net.core.mem_pcpu_rsv = {rsv}"
            f" pages: any difference is ± {slack / 2**20:.0f} MiB"
            f" (± {slack / 1024 / n:.2f} KiB per connection here).")
    cols = [("Slab", "Slab"), ("SUnreclaim", "SUnreclaim"), ("tcp_mem", "TCP buffers"),
            ("cgroup_kmem", "cgroup kmem"), ("MemAvailable", "MemAvailable drop")]
    for vname, rmem, wmem in variants:
        runs = results[vname]
        log("")
        log(f"== {vname}: tcp_rmem \"{rmem}\"  tcp_wmem \"{wmem}\"")
        b = runs[0]["a"]["bufs"]
        log(f"   SO_RCVBUF/SO_SNDBUF after accept: server {b['server'][0]}/{b['server'][1]},"
            f" client {b['client'][0]}/{b['client'][1]}")
        for st, title in STATES.items():
            parts = []
            for key, label in cols:
                if key not in runs[0][st]:
                    continue
                sign = -1 if key == "MemAvailable" else 1
                vals = [sign * kib(r[st][key]) / n for r in runs]
                parts.append(f"{label} {spread(vals)}")
            log(f"   {title:14s} per connection: " + "; ".join(parts))
            if "caches" in runs[0][st]:
                objs = [sum(c["bytes"] for c in r[st]["caches"].values()) / n / 1024 for r in runs]
                both = [o + kib(r[st]["tcp_mem"]) / n for o, r in zip(objs, runs)]
                log(f"   {'':14s} slab objects (all caches): per connection {spread(objs)},"
                    f" per socket {spread([o / 2 for o in objs])}")
                log(f"   {'':14s} slab objects + TCP buffers (skb heads in both): per connection"
                    f" {spread(both)}, per socket {spread([b / 2 for b in both])}")
            noise = [r[st]["noise_sockets"] for r in runs]
            secs = [r[st]["seconds"] for r in runs]
            log(f"   {'':14s} other sockets came/went (inuse - 2N): {noise}; window {secs} s")
            if st == "c":
                log(f"   {'':14s} queued at the end: {[r['c']['inq'] for r in runs]} bytes unread"
                    f" (want {2 * n * args.queued:,}), {[r['c']['outq'] for r in runs]} not acknowledged")
            if "caches" in runs[0][st]:
                names = set()
                for r in runs:
                    names |= set(r[st]["caches"])
                rows = []
                for name in names:
                    per = [r[st]["caches"].get(name, {"bytes": 0})["bytes"] / n for r in runs]
                    objs = [r[st]["caches"].get(name, {"objects": 0})["objects"] / n for r in runs]
                    if abs(statistics.median(per)) >= 16:
                        size = next(r[st]["caches"][name]["size"] for r in runs if name in r[st]["caches"])
                        rows.append((statistics.median(per), name, size, objs, per))
                rows.sort(reverse=True)
                procfs = statistics.median(
                    r[st]["caches"].get("proc_inode_cache", {"objects": 0})["objects"] / n for r in runs)
                if procfs >= 0.1:
                    log(f"   {'':14s} note: proc_inode_cache grew by {procfs:.2f} per connection: a process"
                        " listed /proc/PID/fd of these two during the window (a monitor; one proc inode"
                        " and dentry per open file, reclaimable): not socket memory")
                log(f"   {'':14s} slab caches that moved by 16 B or more per connection"
                    " (object size; objects, bytes per connection):")
                for _, name, size, objs, per in rows:
                    also = ALIASES.get(name, [])
                    more = ", …" if len(also) > 4 else ""
                    also = f"  (merged: {', '.join(also[:4])}{more})" if also else ""
                    log(f"   {'':16s}{name:24s} {size:5d} B  {spread(objs, '{:.2f}'):24s}"
                        f" {spread(per, '{:.0f}')} B{also}")
        if "d" in runs[0]:
            p = runs[0]["d"]["pairs"]
            tcp = [kib(r["d"]["tcp_mem"]) / p for r in runs]
            slab = [kib(r["d"]["Slab"]) / p for r in runs]
            wr = [kib(r["d"]["written"]) / p for r in runs]
            so = [kib(r["d"]["server_outq"]) / p for r in runs]
            ci = [kib(r["d"]["client_inq"]) / p for r in runs]
            log(f"   (d) stalled, {p} pairs, per pair: written {spread(wr, '{:.0f}')} KiB ="
                f" server send queue {spread(so, '{:.0f}')} + client receive queue {spread(ci, '{:.0f}')};"
                f" TCP buffers {spread(tcp, '{:.0f}')} KiB; Slab {spread(slab, '{:.0f}')} KiB")


# ---------------------------------------------------------------- main


def main():
    global CGROUP, CGROUP_WHERE, MSS
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=10_000, help=f"connections (1..{N_MAX}; default 10,000)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--variants", default="current,low,lower,capped",
                    help="comma list of current, low, lower, capped")
    ap.add_argument("--msg", type=int, default=100, help="bytes exchanged in (b)")
    ap.add_argument("--queued", type=int, default=4096, help="bytes left unread in (c)")
    ap.add_argument("--stall-pairs", type=int, default=32, help="connections for (d); 0 skips it")
    ap.add_argument("--mss", type=int, default=0,
                    help="TCP_MAXSEG on both ends, e.g. 1448 for an Ethernet path (default: loopback's)")
    ap.add_argument("--no-sysctl", action="store_true", help="measure the current settings only")
    ap.add_argument("--json", help="write every raw difference here")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve()
        return 0
    if not 1 <= args.n <= N_MAX:
        ap.error(f"-n must be 1..{N_MAX} (each process holds one end of every connection)")
    if not 0 <= args.stall_pairs <= 256:
        ap.error("--stall-pairs must be 0..256 (each may pin megabytes on loopback)")
    if not 1 <= args.repeats <= 20 or not 1 <= args.msg <= 65536 or not 1 <= args.queued <= 65536:
        ap.error("--repeats 1..20, --msg and --queued 1..65536")

    if args.mss and not 536 <= args.mss <= 65483:
        ap.error("--mss must be 536..65483")
    MSS = args.mss
    limit = raise_nofile()
    if limit < max(args.n, args.stall_pairs) + 64:
        sys.exit(f"open-files limit {limit} is below N + 64; lower -n")
    CGROUP, CGROUP_WHERE = cgroup_reader()

    def log(line):
        print(line, flush=True)

    originals = {name: read_sysctl(name) for name in CHANGED}
    if None in originals.values():
        sys.exit("cannot read net.ipv4.tcp_rmem / tcp_wmem")
    rmax = originals["net.ipv4.tcp_rmem"].split()[2]
    wmax = originals["net.ipv4.tcp_wmem"].split()[2]
    presets = {
        "current": (originals["net.ipv4.tcp_rmem"], originals["net.ipv4.tcp_wmem"]),
        "low": (f"4096 16384 {rmax}", f"4096 16384 {wmax}"),
        "lower": (f"4096 4096 {rmax}", f"4096 4096 {wmax}"),
        "capped": (originals["net.ipv4.tcp_rmem"], "4096 16384 262144"),
    }
    names = ["current"] if args.no_sysctl else [v.strip() for v in args.variants.split(",") if v.strip()]
    for v in names:
        if v not in presets:
            ap.error(f"unknown variant {v}")
    variants = [(v, *presets[v]) for v in names]
    if any(v != "current" for v in names) and os.geteuid() != 0:
        sys.exit("changing the sysctls needs root (or --no-sysctl)")

    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    log(f"# socket-memory {time.strftime('%Y-%m-%dT%H:%M:%S%z')} N={args.n} repeats={args.repeats}"
        f" msg={args.msg} queued={args.queued} stall_pairs={args.stall_pairs} mss={args.mss or 'loopback'}")
    log(f"# kernel {os.uname().release}, {os.cpu_count()} cpus, page {PAGE} B, load average {load}")
    log(f"# originals (restored at exit): " + "; ".join(f"{k} = \"{v}\"" for k, v in originals.items()))
    log("#   to restore by hand: " + " ".join(f"sysctl -w {k}=\"{v}\"" for k, v in originals.items()))
    log("# not changed: " + "; ".join(f"{k} = {read_sysctl(k)}" for k in SHOWN if read_sysctl(k) is not None))
    log(f"# memory cgroup: {CGROUP_WHERE or 'none readable (root cgroup or no memory controller)'};"
        f" /proc/slabinfo {'read' if SLABINFO_OK else 'not readable: no per-cache figures'}")

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)

    # SIGINT too: a shell starts background jobs with it ignored.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)

    results = {v[0]: [] for v in variants}
    ep = select.epoll()
    try:
        for rep in range(1, args.repeats + 1):
            for vname, rmem, wmem in variants:
                for name, value in zip(CHANGED, (rmem, wmem)):
                    if read_sysctl(name) != value:
                        write_sysctl(name, value)
                log(f"repeat {rep}/{args.repeats}, {vname}: tcp_rmem \"{read_sysctl(CHANGED[0])}\","
                    f" tcp_wmem \"{read_sysctl(CHANGED[1])}\"")
                results[vname].append(measure(args, ep, log))
    finally:
        for name, value in originals.items():
            try:
                if read_sysctl(name) != value:
                    write_sysctl(name, value)
            except RuntimeError as e:
                log(f"# RESTORE FAILED: {e}")
            log(f"# restored: {name} = \"{read_sysctl(name)}\" (original \"{value}\")")
    report(args, variants, results, log)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"n": args.n, "args": vars(args), "originals": originals,
                       "variants": variants, "results": results}, f, indent=1)
        log(f"raw differences in {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
