#!/usr/bin/env bash
# bench-soak: a steady mix for a long time on two gateway nodes joined by
# Redis, measured by `herald-loadtest soak`: does the gateways' memory
# creep up, do latencies drift, the longer they run?
#
#   scripts/bench-soak.sh                       # 10 minutes, a row per minute
#   DURATION=3600 CLIENTS=5000 scripts/bench-soak.sh
#
# CLIENTS resuming clients (acknowledge, reconnect with jittered backoff,
# `sync`, dedup by seq), half on each node; then for DURATION seconds:
# UNICAST_RATE private messages per second through the API (to random
# clients, each 202's id and seq recorded), a broadcast every
# BROADCAST_EVERY seconds, MARK_RATE `mark`s per second from random online
# clients, CHURN_RATE clients per second closing and reconnecting. Every
# WINDOW seconds a row: both gateways' RSS and CPU, Redis ops/s, p50/p99 of
# delivery (from the scheduled send time), of `mark` replies and of the
# churned reconnects. At the end: the drift (last window against the
# first, the RSS slope) and whether every accepted message arrived exactly
# once.
#
# Environment: DURATION (600 s), WINDOW (60 s), CLIENTS (2000),
# UNICAST_RATE (200), BROADCAST_EVERY (10 s), MARK_RATE (20), CHURN_RATE
# (5), GATEWAY_LOG (warn), NO_BUILD=1 to skip cargo.
# Processes: a private redis-server and two `herald serve` on free loopback
# ports with a random JWT secret and API key, stopped by PID on exit.
# Raw output: bench-out/soak-<timestamp>/ (report.txt, soak.json, logs).
set -euo pipefail

cd "$(dirname "$0")/.."
DURATION=${DURATION:-600}
WINDOW=${WINDOW:-60}
CLIENTS=${CLIENTS:-2000}
UNICAST_RATE=${UNICAST_RATE:-200}
BROADCAST_EVERY=${BROADCAST_EVERY:-10}
MARK_RATE=${MARK_RATE:-20}
CHURN_RATE=${CHURN_RATE:-5}

source scripts/bench-lib.sh
bench_two_nodes soak

bench_header "# bench-soak $(date -u +%FT%TZ) duration=${DURATION}s window=${WINDOW}s clients=$CLIENTS unicast=$UNICAST_RATE/s broadcast every ${BROADCAST_EVERY}s marks=$MARK_RATE/s churn=$CHURN_RATE/s"

"$LOADTEST" soak --gateway "http://127.0.0.1:$A_PORT" --gateway "http://127.0.0.1:$B_PORT" \
  --gateway-pid "$A_PID" --gateway-pid "$B_PID" --redis "127.0.0.1:$REDIS_PORT" \
  --clients "$CLIENTS" --duration "$DURATION" --window "$WINDOW" \
  --unicast-rate "$UNICAST_RATE" --broadcast-every "$BROADCAST_EVERY" \
  --mark-rate "$MARK_RATE" --churn-rate "$CHURN_RATE" \
  --out "$OUT/soak.json" | tee -a "$OUT/report.txt"
echo "raw output in $OUT"
