"""Drives `append_many` calls straight at a Redis, for bench-redis-calls.sh.

The calls are shaped as crates/herald-redis/src/batch.rs shapes them for a
notification to a user (`notification`) and for a private message with its
sender's touch (`private`, in one call as off a Cluster, or `private-split`
in two); keep the two in step when the arguments change. `commands`: no
function, a notification's six commands (INCR, ZADD NX, RPUSH, HINCRBY,
PUBLISH, PTTL) sent as they are in MULTI/EXEC: the floor of a layout that
needs no script, for comparison (its payload carries no seq). 1,000 receivers
and senders, each message its own random 16-byte id, pipelined 200 calls at
a time (so Redis's reads and writes per call are fewer than with a gateway:
this counts the function calls, bench-unicast counts the whole path).

    redis_calls.py PORT SHAPE COUNT FIRST
"""

import os
import sys
import time

import redis

USERS = 1000
HEAD = b"\x88\xa3seq"  # a map of 8 fields, then the key of the first, seq


def function_name(r: redis.Redis) -> str:
    for lib in r.function_list():
        fields = lib if isinstance(lib, dict) else dict(zip(lib[::2], lib[1::2]))
        name = fields[b"library_name"].decode()
        if name.startswith("herald_"):
            return name + "_append_many"
    sys.exit("no herald library on the server (a gateway loads it at connect)")


def tail(category: bytes, rest: bytes, mid: bytes) -> bytes:
    return b"\xa6stream\xa5inbox\xa2id\xc4\x10" + mid + b"\xa8category" + category + rest


def fixstr(s: str) -> bytes:
    return bytes([0xA0 + len(s)]) + s.encode()


def calls(shape: str, i: int, now_us: str):
    user, sender = "r%d" % (i % USERS), "s%d" % ((i * 7) % USERS)
    mid = os.urandom(16)
    header = ["10000", "2592000000", "0", now_us]
    prefix = "herald:{u:%s}:" % user
    if shape == "notification":
        body = tail(b"\xa6system", b"\xa5title\xa5hello\xa4body\xa5world\xa4data\x80\xa2ts\xbe2026-12-07T07:33:23.197179734Z", mid)
        args = ["ic", HEAD, body, "system", mid, "0", "1"]
        return [([prefix], header + args)]
    body = tail(b"\xa7mailbox", b"\xa4from" + fixstr(sender) + b"\xa4body\xa5hello\xa2ts\xbe2026-12-07T07:34:26.875941256Z", mid)
    args = ["ipc", b"\x87\xa3seq", body, "mailbox", mid, "0", sender, "1"]
    touch_prefix = "herald:{u:%s}:" % sender
    touch = ["t", user, now_us]
    if shape == "private":
        return [([prefix, touch_prefix], header + args + touch)]
    return [([prefix], header + args), ([touch_prefix], header + touch)]


def commands(pipe, i: int) -> None:
    """A notification's commands without the function, in one transaction."""
    prefix = "herald:{u:r%d}:" % (i % USERS)
    mid = os.urandom(16)
    rest = b"\xa5title\xa5hello\xa4body\xa5world\xa4data\x80\xa2ts\xbe2026-12-07T07:33:23.197179734Z"
    payload = HEAD + b"\x01" + tail(b"\xa6system", rest, mid)
    pipe.execute_command("MULTI")
    pipe.execute_command("INCR", prefix + "seq")
    pipe.execute_command("ZADD", prefix + "ids", "NX", str(i), mid)
    pipe.execute_command("RPUSH", prefix + "inbox", payload)
    pipe.execute_command("HINCRBY", prefix + "counts", "c:system", "4294967297")
    pipe.execute_command("PUBLISH", prefix + "ch", payload)
    pipe.execute_command("PTTL", prefix + "inbox")
    pipe.execute_command("EXEC")


def main() -> None:
    port, shape, count, first = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    r = redis.Redis(port=port)
    name = function_name(r)
    pipe = r.pipeline(transaction=False)
    for i in range(first, first + count):
        now_us = str(time.time_ns() // 1000)
        if shape == "commands":
            commands(pipe, i)
            continue
        for keys, args in calls(shape, i, now_us):
            pipe.execute_command("FCALL", name, len(keys), *keys, *args)
        if len(pipe) >= 200:
            check(pipe.execute())
    check(pipe.execute())


def check(replies) -> None:
    for reply in replies:
        if isinstance(reply, Exception) or reply == [-1]:
            sys.exit("append_many failed: %r" % (reply,))


if __name__ == "__main__":
    main()
