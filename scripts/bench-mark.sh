#!/usr/bin/env bash
# bench-mark: the notification center's "mark + counts push" path across two
# gateway nodes joined by Redis, measured by `herald-loadtest mark`.
# The target: p99 <= 2 ms at 1,000 marks/s across nodes.
#
#   scripts/bench-mark.sh
#   RATES="1000 2000" USERS=500 DURATION=30 scripts/bench-mark.sh
#
# USERS users each hold one connection on node A (the marker) and one on
# node B (the watcher), JSON codec; each first gets MESSAGES messages
# (POST /v1/messages on A). Then, open loop at each rate of RATES for
# DURATION seconds (after WARMUP seconds not reported), a random idle user's
# marker sends {"type":"mark","state":"read"|"unread","all":true}; reported:
# the time from sending to the reply on A and to the `counts` frame on B
# that shows the change (unread_total 0 after read, > 0 after unread),
# p50/p99/p999/max, the achieved rate, errors and timeouts, and the CPU
# (utime + stime from /proc, read by the load generator before and after the
# measured trial) per mark of gateway A, gateway B, redis-server and the
# load generator itself.
#
# Environment: RATES ("1000"), USERS (200), MESSAGES (3), DURATION (10 s),
# WARMUP (2 s), MAX_P99_MS (2), GATEWAY_LOG (warn), NO_BUILD=1 to skip cargo.
# Processes: a private redis-server and two `herald serve` on free loopback
# ports with a random JWT secret and API key, stopped by PID on exit.
# Raw output: bench-out/mark-<timestamp>/ (report.txt, mark-<rate>.json, logs).
set -euo pipefail

cd "$(dirname "$0")/.."
RATES=${RATES:-"1000"}
USERS=${USERS:-200}
MESSAGES=${MESSAGES:-3}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
MAX_P99_MS=${MAX_P99_MS:-2}

source scripts/bench-lib.sh
bench_two_nodes mark

bench_header "# bench-mark $(date -u +%FT%TZ) users=$USERS messages=$MESSAGES duration=${DURATION}s warmup=${WARMUP}s rates=[$RATES] target p99<=${MAX_P99_MS}ms"

for rate in $RATES; do
  "$LOADTEST" mark --targets "ws://127.0.0.1:$A_PORT,ws://127.0.0.1:$B_PORT" \
    --users "$USERS" --messages "$MESSAGES" --rate "$rate" --duration "$DURATION" \
    --warmup "$WARMUP" --max-p99-ms "$MAX_P99_MS" \
    --cpu-pid "gateway-a=$A_PID" --cpu-pid "gateway-b=$B_PID" --cpu-pid "redis=$REDIS_PID" \
    --out "$OUT/mark-$rate.json" | tee -a "$OUT/report.txt"
done
echo "raw output in $OUT"
