#!/usr/bin/env python3
"""bench-webhooks' two parts (scripts/bench-webhooks.sh runs both).

receiver PORT SECRET   a Standard Webhooks receiver on 127.0.0.1:PORT: every
                       POST /hook is verified with the official library
                       (standardwebhooks); GET /stats answers what it saw.
drive ...              sends MESSAGES inbox copies with a fallback through the
                       gateways, marks every other receiver's copy read, waits
                       for the webhooks and prints the report (JSON too).
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
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def receiver(port: int, secret: str) -> None:
    from standardwebhooks.webhooks import Webhook

    hook = Webhook(secret)
    lock = threading.Lock()
    stats = {"requests": 0, "verified": 0, "failed": 0, "duplicates": 0,
             "first_at": None, "last_at": None, "users": set(), "ids": set()}

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
            self.send_response(204 if ok else 400)
            self.send_header("content-length", "0")
            self.end_headers()

        def do_GET(self):
            with lock:
                out = {k: v for k, v in stats.items() if k not in ("ids", "users")}
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
    t0 = time.time()
    with cf.ThreadPoolExecutor(args.concurrency) as ex:
        sends = [ex.submit(api.call, i, "POST", "/v1/messages",
                           {"to": {"users": users[s:s + per]}, "category": "remind",
                            "body": f"bench {s}", "fallback_after_secs": args.fallback_secs})
                 for i, s in enumerate(range(0, len(users), per))]
        for f in sends:
            f.result()
    sent_at = time.time()
    print(f"sent {args.messages} inbox copies in {sent_at - t0:.1f} s", flush=True)
    with cf.ThreadPoolExecutor(args.concurrency) as ex:
        marks = [ex.submit(api.call, i, "POST", f"/v1/users/{u}/mark", {"state": "read", "all": True})
                 for i, u in enumerate(users) if i % 2 == 0]
        for f in marks:
            f.result()
    marked_at = time.time()
    print(f"marked {len(marks)} read in {marked_at - sent_at:.1f} s", flush=True)
    first_due, last_due = t0 + args.fallback_secs, sent_at + args.fallback_secs
    if marked_at > first_due:
        print(f"error: the marks ended {marked_at - first_due:.1f} s after the first due time; "
              "raise FALLBACK_SECS", file=sys.stderr)
        return 1
    want = args.messages - len(marks)
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
        "messages": args.messages, "read_before_due": len(marks), "fallback_secs": args.fallback_secs,
        "want": want, "created": created, "delivered": delivered, "dropped": dropped,
        "received": stats["requests"], "verified": stats["verified"], "failed": stats["failed"],
        "duplicates": stats["duplicates"], "tries_by_result": tries,
        "unique_users": stats["unique_users"],
        "read_users_notified": stats["unique_users"] - stats["odd_users"],
        "send_secs": round(sent_at - t0, 2), "mark_secs": round(marked_at - sent_at, 2),
        "last_delivery_after_last_due_secs":
            round(stats["last_at"] - last_due, 2) if stats["last_at"] else None,
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
    args = p.parse_args()
    if args.mode == "receiver":
        receiver(args.port, args.secret)
        return 0
    return drive(args)


if __name__ == "__main__":
    import urllib.request  # noqa: F401  (used by drive)
    sys.exit(main())
