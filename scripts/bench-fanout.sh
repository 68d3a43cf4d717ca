#!/usr/bin/env bash
# bench-fanout: one publish to a topic with many subscribers
# (POST /v1/topics/{topic}/messages), on two gateway nodes joined by Redis,
# measured by `herald-loadtest fanout`. The target: a publish to
# 100,000 subscribers completes in <= 10 s with the Redis backend.
#
#   scripts/bench-fanout.sh
#   SUBSCRIBERS=20000 RECEIVERS=2000 ROUNDS=3 scripts/bench-fanout.sh
#
# SUBSCRIBERS users are subscribed to a fresh topic through the server API
# (PUT /v1/users/{id}/topics/{topic}, spread over both nodes); RECEIVERS of
# them, spread evenly over the topic's (user-id) order, connect over
# WebSocket (JSON codec, half on each node, in load-generator worker
# processes of at most PER_WORKER connections); then ROUNDS publishes go to
# node A, one after the other. Per publish:
# the time to the 202, to the first GET /v1/jobs/{id} (polled every
# POLL_MS) that says done, and to the last connected receiver's delivery;
# every connected receiver must get it exactly once and the job's total
# must equal SUBSCRIBERS. The CPU of gateway A, gateway B and
# redis-server (utime + stime from /proc, read by the load generator right
# before the publish and after its last delivery) is reported per message.
#
# Environment: SUBSCRIBERS (100000), RECEIVERS (10000), ROUNDS (3),
# PER_WORKER (15000), SUBSCRIBE_CONCURRENCY (64), POLL_MS (20),
# TARGET_SECS (10), GATEWAY_LOG (warn), NO_BUILD=1 to skip cargo. The
# gateways' fan-out settings pass through: HERALD__FANOUT__CHUNK,
# HERALD__FANOUT__RATE_PER_SEC, HERALD__FANOUT__WORKER (any HERALD__*).
# Processes: a private redis-server and two `herald serve` on free loopback
# ports with a random JWT secret and API key, stopped by PID on exit.
# Raw output: bench-out/fanout-<timestamp>/ (report.txt, fanout.json, logs).
set -euo pipefail

cd "$(dirname "$0")/.."
SUBSCRIBERS=${SUBSCRIBERS:-100000}
RECEIVERS=${RECEIVERS:-10000}
ROUNDS=${ROUNDS:-3}
PER_WORKER=${PER_WORKER:-15000}
SUBSCRIBE_CONCURRENCY=${SUBSCRIBE_CONCURRENCY:-64}
POLL_MS=${POLL_MS:-20}
TARGET_SECS=${TARGET_SECS:-10}

source scripts/bench-lib.sh
bench_two_nodes fanout

bench_header "# bench-fanout $(date -u +%FT%TZ) subscribers=$SUBSCRIBERS receivers=$RECEIVERS rounds=$ROUNDS target<=${TARGET_SECS}s fanout: chunk=${HERALD__FANOUT__CHUNK:-default} rate_per_sec=${HERALD__FANOUT__RATE_PER_SEC:-default} worker=${HERALD__FANOUT__WORKER:-default}"

"$LOADTEST" fanout --gateway "http://127.0.0.1:$A_PORT" --gateway "http://127.0.0.1:$B_PORT" \
  --subscribers "$SUBSCRIBERS" --receivers "$RECEIVERS" --rounds "$ROUNDS" \
  --per-worker "$PER_WORKER" --subscribe-concurrency "$SUBSCRIBE_CONCURRENCY" \
  --poll-ms "$POLL_MS" --target-secs "$TARGET_SECS" \
  --cpu-pid "gateway-a=$A_PID" --cpu-pid "gateway-b=$B_PID" --cpu-pid "redis=$REDIS_PID" \
  --out "$OUT/fanout.json" | tee -a "$OUT/report.txt"
echo "raw output in $OUT"
