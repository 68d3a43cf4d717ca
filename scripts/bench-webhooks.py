#!/usr/bin/env python3
"""bench-webhooks' two parts (scripts/bench-webhooks.sh runs both).

receiver PORT SECRET   a Standard Webhooks receiver on 127.0.0.1:PORT: every
                       POST /hook is verified with the official library
                       (standardwebhooks); GET /stats answers what it saw.
drive ...              sends MESSAGES inbox copies with a fallback through the
                       gateways, marks every other receiver's copy read, waits
                       for the webhooks and prints the report (JSON too).
dead ...               sends at a steady rate for a long time while the
                       receiver is dead, and prints a line a sample: send
                       latency, the backlog, tries by result, the nodes' RSS
                       and Redis's memory (scripts/bench-webhooks-dead.sh).
"""

import argparse
import concurrent.futures as cf
import http.client
import json
import re
import sys
import threading
import time
import urllib.parse
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def receiver(port: int, secret: str) -> None:
    from standardwebhooks.webhooks import Webhook

    hook = Webhook(secret)
    lock = threading.Lock()
    stats = {"requests": 0, "verified": 0, "failed": 0, "duplicates": 0,
             "first_at": None, "last_at": None, "users": set(), "ids": set(), "late": []}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet
            pass

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("content-length", 0))).decode()
            now = time.time()
            try:
                event = hook.verify(body, dict(self.headers))
                ok = event.get("type") == "message.unread"
            except Exception:  # the library's verification error
                ok, event = False, None
            with lock:
                stats["requests"] += 1
                stats["first_at"] = stats["first_at"] or now
                stats["last_at"] = now
                wid = self.headers.get("webhook-id")
                if not ok:
                    stats["failed"] += 1
                elif wid in stats["ids"]:
                    stats["duplicates"] += 1
                else:
                    stats["ids"].add(wid)
                    stats["users"].add(event["data"]["user"])
                    stats["verified"] += 1
                    # How long after its own due time (stored + unread_for_secs)
                    # this event arrived; the message's ts is whole seconds.
                    stored = datetime.fromisoformat(event["data"]["message"]["ts"]).timestamp()
                    stats["late"].append(now - stored - event["data"]["unread_for_secs"])
            self.send_response(204 if ok else 400)
            self.send_header("content-length", "0")
            self.end_headers()

        def do_GET(self):
            with lock:
                out = {k: v for k, v in stats.items() if k not in ("ids", "users", "late")}
                late = sorted(stats["late"])
                out["late_p50_secs"] = round(late[len(late) // 2], 2) if late else None
                out["late_p99_secs"] = round(late[int(len(late) * 0.99)], 2) if late else None
                out["late_max_secs"] = round(late[-1], 2) if late else None
                out["unique_users"] = len(stats["users"])
                out["odd_users"] = sum(1 for u in stats["users"] if int(u.rsplit("-", 1)[1]) % 2)
            data = json.dumps(out).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.serve_forever()


class Api:
    """One keep-alive connection per thread and gateway."""

    def __init__(self, gateways, key):
        self.gateways = [urllib.parse.urlsplit(g) for g in gateways]
        self.key = key
        self.local = threading.local()

    def call(self, i, method, path, body=None):
        conns = getattr(self.local, "conns", None)
        if conns is None:
            conns = self.local.conns = {}
        g = self.gateways[i % len(self.gateways)]
        conn = conns.get(g.netloc)
        if conn is None:
            conn = conns[g.netloc] = http.client.HTTPConnection(g.hostname, g.port, timeout=30)
        data = json.dumps(body).encode() if body is not None else None
        headers = {"authorization": f"Bearer {self.key}", "content-type": "application/json"}
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        text = resp.read()
        if resp.status >= 300:
            raise RuntimeError(f"{method} {path}: {resp.status} {text[:200]!r}")
        return json.loads(text) if text else None


def metric_sum(gateways, name, label):
    total = 0.0
    for g in gateways:
        text = urllib.request.urlopen(f"{g}/metrics", timeout=10).read().decode()
        for m in re.finditer(rf'^{name}\{{[^}}]*{label}[^}}]*\}} (\S+)$', text, re.M):
            total += float(m.group(1))
    return int(total)


def drive(args) -> int:
    api = Api(args.gateway, args.api_key)
    users = [f"whb-{args.run}-{i}" for i in range(args.messages)]
    per = 1000

    # Batch by batch: a batch is sent, then its even receivers mark theirs
    # read over the whole pool, before the next batch goes. A mark follows
    # its own message by about the time 500 marks take, whatever the run's
    # size, so a 10 s fallback fits however long the whole run takes
    # (marking every copy after every send did not: 50,000 marks from Python
    # take longer than 10 s).
    done = []
    t0 = time.time()
    with cf.ThreadPoolExecutor(args.concurrency) as ex:
        for i, s in enumerate(range(0, len(users), per)):
            sent = time.time()
            api.call(i, "POST", "/v1/messages",
                     {"to": {"users": users[s:s + per]}, "category": "remind",
                      "body": f"bench {s}", "fallback_after_secs": args.fallback_secs})
            marks = [ex.submit(api.call, j // 2, "POST", f"/v1/users/{users[j]}/mark",
                               {"state": "read", "all": True})
                     for j in range(s, min(s + per, len(users)), 2)]
            for f in marks:
                f.result()
            done.append((sent, time.time(), len(marks)))
    finished = time.time()
    marks = sum(m for _, _, m in done)
    lag = max(m - s for s, m, _ in done)
    first_sent, last_sent = min(s for s, _, _ in done), max(s for s, _, _ in done)
    print(f"sent {args.messages} inbox copies and marked {marks} read in {finished - t0:.1f} s "
          f"(a batch's last mark at most {lag:.1f} s after its send)", flush=True)
    if lag >= args.fallback_secs:
        print(f"error: a batch's marks ended {lag:.1f} s after its send, past the "
              f"{args.fallback_secs} s fallback (marks too slow here); raise FALLBACK_SECS",
              file=sys.stderr)
        return 1
    first_due, last_due = first_sent + args.fallback_secs, last_sent + args.fallback_secs
    want = args.messages - marks
    deadline = last_due + args.wait_secs
    stats = {}
    while time.time() < deadline:
        stats = json.loads(urllib.request.urlopen(f"{args.receiver}/stats", timeout=10).read())
        if stats["verified"] >= want:
            break
        time.sleep(0.5)
    time.sleep(2)  # late extras (duplicates) would show here
    stats = json.loads(urllib.request.urlopen(f"{args.receiver}/stats", timeout=10).read())
    created = metric_sum(args.gateway, "herald_webhook_events_total", 'outcome="created"')
    delivered = metric_sum(args.gateway, "herald_webhook_events_total", 'outcome="delivered"')
    dropped = metric_sum(args.gateway, "herald_webhook_events_total", 'outcome="dropped"')
    tries = {r: metric_sum(args.gateway, "herald_webhook_attempts_total", f'result="{r}"')
             for r in ("2xx", "3xx", "4xx", "5xx", "timeout", "error")}
    report = {
        "messages": args.messages, "read_before_due": marks, "fallback_secs": args.fallback_secs,
        "want": want, "created": created, "delivered": delivered, "dropped": dropped,
        "received": stats["requests"], "verified": stats["verified"], "failed": stats["failed"],
        "duplicates": stats["duplicates"], "tries_by_result": tries,
        "unique_users": stats["unique_users"],
        "read_users_notified": stats["unique_users"] - stats["odd_users"],
        "send_and_mark_secs": round(finished - t0, 2), "max_mark_lag_secs": round(lag, 2),
        "last_delivery_after_last_due_secs":
            round(stats["last_at"] - last_due, 2) if stats["last_at"] else None,
        "each_after_its_due_secs": {q: stats[f"late_{q}_secs"] for q in ("p50", "p99", "max")},
        "first_delivery_after_first_due_secs":
            round(stats["first_at"] - first_due, 2) if stats["first_at"] else None,
    }
    # A repeated request is a retry of an event the receiver had seen (it
    # answered after the try's timeout, or the connection broke): allowed,
    # and reported; the receiver dedupes on webhook-id.
    ok = (created == want and stats["verified"] == want and stats["failed"] == 0
          and report["read_users_notified"] == 0)
    report["ok"] = ok
    print(json.dumps(report, indent=1))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=1)
    return 0 if ok else 1


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def redis_used_mib(port: int) -> float:
    import subprocess
    out = subprocess.run(["redis-cli", "-p", str(port), "info", "memory"],
                         capture_output=True, text=True, timeout=10).stdout
    m = re.search(r"^used_memory:(\d+)", out, re.M)
    return int(m.group(1)) / 1048576 if m else 0.0


def gauge(gateway, name, label):
    text = urllib.request.urlopen(f"{gateway}/metrics", timeout=10).read().decode()
    m = re.search(rf'^{name}\{{[^}}]*{label}[^}}]*\}} (\S+)$', text, re.M)
    return int(float(m.group(1))) if m else 0


def dead(args) -> int:
    """Sends with a fallback at a steady rate while nothing answers at the
    webhook URL: every send raises events that can only retry. Samples what
    the issue asks to stay bounded and visible."""
    api = Api(args.gateway, args.api_key)
    period = 1.0 / args.rate
    lat, failed, sent, lock = [], [0], [0], threading.Lock()
    samples, last_tries, last_postponed = [], {}, [0.0]

    def one(i):
        to = [f"whd-{args.run}-{i}-{k}" for k in range(args.receivers)]
        start = time.time()
        try:
            api.call(i, "POST", "/v1/messages", {"to": {"users": to}, "category": "remind",
                                                 "body": f"dead {i}",
                                                 "fallback_after_secs": args.fallback_secs})
            ok = True
        except Exception:
            ok = False
        with lock:
            lat.append(time.time() - start)
            sent[0] += 1
            failed[0] += 0 if ok else 1

    def sample(elapsed):
        with lock:
            window, n, bad = sorted(lat), sent[0], failed[0]
            lat.clear()
            sent[0] = failed[0] = 0
        pct = (lambda q: round(window[min(len(window) - 1, int(q * len(window)))] * 1000, 1)
               if window else None)
        tries = {r: metric_sum(args.gateway, "herald_webhook_attempts_total", f'result="{r}"')
                 for r in ("2xx", "3xx", "4xx", "5xx", "timeout", "error")}
        postponed = metric_sum(args.gateway, "herald_webhook_events_total", 'outcome="postponed"')
        row = {
            "at_s": round(elapsed), "sends": n, "failed": bad,
            "send_ms_p50": pct(0.5), "send_ms_p99": pct(0.99), "send_ms_max": pct(1.0),
            "armed": gauge(args.gateway[0], "herald_webhook_backlog", 'state="armed"'),
            "pending": gauge(args.gateway[0], "herald_webhook_backlog", 'state="pending"'),
            "dead": gauge(args.gateway[0], "herald_webhook_backlog", 'state="dead"'),
            "in_flight": sum(gauge(g, "herald_webhook_in_flight", "") for g in args.gateway),
            "tries_per_s": round((sum(tries.values()) - sum(last_tries.values()))
                                 / args.sample_secs, 2),
            "postponed_per_s": round((postponed - last_postponed[0]) / args.sample_secs, 1),
            "breakers_open": sum(gauge(g, "herald_webhook_breaker_open", "") for g in args.gateway),
            "dead_backlog_full": metric_sum(args.gateway, "herald_webhook_dead_total",
                                            'reason="backlog_full"'),
            "node_rss_mib": [round(rss_mib(p), 1) for p in args.node_pid],
            "redis_mib": round(redis_used_mib(args.redis_port), 1),
            "load": open("/proc/loadavg").read().split()[0],
        }
        last_tries.clear()
        last_tries.update(tries)
        last_postponed[0] = postponed
        samples.append(row)
        print(json.dumps(row), flush=True)

    t0 = time.time()
    next_sample = t0 + args.sample_secs
    with cf.ThreadPoolExecutor(args.concurrency) as ex:
        i = 0
        while time.time() - t0 < args.duration_secs:
            due = t0 + i * period
            now = time.time()
            if due > now:
                time.sleep(due - now)
            ex.submit(one, i)
            i += 1
            if time.time() >= next_sample:
                sample(time.time() - t0)
                next_sample += args.sample_secs
    if not samples or time.time() - t0 - samples[-1]["at_s"] > 1:
        sample(time.time() - t0)
    first, last = samples[0], samples[-1]
    report = {"rate": args.rate, "receivers": args.receivers, "duration_secs": args.duration_secs,
              "sends": sum(r["sends"] for r in samples),
              "failed": sum(r["failed"] for r in samples), "first": first, "last": last,
              "max_send_ms_p99": max((r["send_ms_p99"] or 0) for r in samples),
              "max_node_rss_mib": max(max(r["node_rss_mib"]) for r in samples)}
    print(json.dumps(report, indent=1))
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"report": report, "samples": samples}, f, indent=1)
    return 0 if report["failed"] == 0 else 1


def main() -> int:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="mode", required=True)
    r = sub.add_parser("receiver")
    r.add_argument("port", type=int)
    r.add_argument("secret")
    d = sub.add_parser("drive")
    d.add_argument("--gateway", action="append", required=True)
    d.add_argument("--receiver", required=True)
    d.add_argument("--api-key", required=True)
    d.add_argument("--messages", type=int, default=100_000)
    d.add_argument("--fallback-secs", type=int, default=60)
    d.add_argument("--wait-secs", type=int, default=120)
    d.add_argument("--concurrency", type=int, default=32)
    d.add_argument("--run", default=str(int(time.time())))
    d.add_argument("--out")
    x = sub.add_parser("dead")
    x.add_argument("--gateway", action="append", required=True)
    x.add_argument("--api-key", required=True)
    x.add_argument("--node-pid", type=int, action="append", required=True)
    x.add_argument("--redis-port", type=int, required=True)
    x.add_argument("--rate", type=float, default=10)
    x.add_argument("--receivers", type=int, default=5)
    x.add_argument("--fallback-secs", type=int, default=10)
    x.add_argument("--duration-secs", type=int, default=3600)
    x.add_argument("--sample-secs", type=int, default=60)
    x.add_argument("--concurrency", type=int, default=16)
    x.add_argument("--run", default=str(int(time.time())))
    x.add_argument("--out")
    args = p.parse_args()
    if args.mode == "dead":
        return dead(args)
    if args.mode == "receiver":
        receiver(args.port, args.secret)
        return 0
    return drive(args)


if __name__ == "__main__":
    import urllib.request  # noqa: F401  (used by drive)
    sys.exit(main())
