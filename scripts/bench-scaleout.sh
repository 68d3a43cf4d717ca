#!/usr/bin/env bash
# bench-scaleout: nodes added under load get their share. N
# clients on FIRST Redis-backed nodes with rebalancing on
# (HERALD__REBALANCE__ENABLED=true); after BASELINE s of traffic, NEW more
# nodes start. The nodes above the mean ask their excess to move (the
# drain's `reconnect` frame); each client reconnects as through a
# Kubernetes Service, to a node picked at random among all of them (a
# moving node answers 503, a node not started yet refuses; either is
# another pick after a full-jitter backoff), and resumes with `sync`.
# Measured by `herald-loadtest scaleout`: every node's connections each
# second (its /metrics), the time from the new nodes' start until every
# node holds the mean within ±TOLERANCE for good, the moves (`reconnect`
# frames the clients got; the nodes' herald_rebalance_moved_total) against
# the ideal number (Σ max(0, count − mean) at the start), that every
# message sent throughout (a steady RATE through the first nodes' API)
# arrived exactly once, and its delivery latency. The targets: balanced
# within TARGET_SECS (120), moves ≤ 1.2 × the ideal, nothing lost.
#
#   scripts/bench-scaleout.sh
#   N=2000 PER_WORKER=1000 BASELINE=3 scripts/bench-scaleout.sh
#
# Size: the target is 60,000 clients on 2 nodes, i.e. 30,000 per node. One
# process may hold at most 20,000 open files on the bench machine (the hard
# limit), so a node cannot hold 30,000: the default is 2 × 17,000 = 34,000
# clients, then 2 more nodes. The full size needs a machine where a
# gateway may hold 30,000 connections (`ulimit -n` above 30,000 for the
# gateways): N=60000 PER_WORKER=15000 there. The clients run in
# load-generator worker processes of at most PER_WORKER (≤ 19,000),
# bound to 127.0.0.2, .3, …
#
# Environment: N (34000), FIRST (2), NEW (2), RATE (200 msg/s), PER_WORKER
# (12000), BASELINE (10 s), TARGET_SECS (120), TOLERANCE (0.15, the
# target's band and the nodes' rebalance.tolerance), MAX_MOVE_RATIO (1.2),
# QUIET (20 s in the band with no move before the watch ends),
# WATCH_TIMEOUT (300 s), TAIL (5 s), GRACE (20 s), BACKOFF_BASE_MS (1000),
# BACKOFF_CAP_MS (16000), CONCURRENCY (first connects in flight per worker,
# 256), CONNECT_TIMEOUT (30 s), TIMEOUT (900 s for the whole run),
# GATEWAY_LOG (warn), NO_BUILD=1 to skip cargo. The nodes' rebalancing
# runs on its defaults (rate_per_sec 100, interval_ms 5000, settle_ms
# 10000) unless HERALD__REBALANCE__* is set; the report's note says which.
# Processes: a private redis-server and FIRST + NEW `herald serve` on
# loopback ports picked at the start (the new ones' free until they
# start) with a random JWT secret and API key, all stopped by PID on exit.
# Raw output: bench-out/scaleout-<timestamp>/ (report.txt, scaleout.json,
# logs).
set -euo pipefail

cd "$(dirname "$0")/.."
N=${N:-34000}
FIRST=${FIRST:-2}
NEW=${NEW:-2}
RATE=${RATE:-200}
PER_WORKER=${PER_WORKER:-12000}
BASELINE=${BASELINE:-10}
TARGET_SECS=${TARGET_SECS:-120}
TOLERANCE=${TOLERANCE:-0.15}
MAX_MOVE_RATIO=${MAX_MOVE_RATIO:-1.2}
QUIET=${QUIET:-20}
WATCH_TIMEOUT=${WATCH_TIMEOUT:-300}
TAIL=${TAIL:-5}
GRACE=${GRACE:-20}
BACKOFF_BASE_MS=${BACKOFF_BASE_MS:-1000}
BACKOFF_CAP_MS=${BACKOFF_CAP_MS:-16000}
CONCURRENCY=${CONCURRENCY:-256}
CONNECT_TIMEOUT=${CONNECT_TIMEOUT:-30}
TIMEOUT=${TIMEOUT:-900}

source scripts/bench-lib.sh
bench_start scaleout

export HERALD__AUTH__JWT_SECRET="$(random_hex)"
export HERALD__API__KEY="$(random_hex)"
export HERALD__REBALANCE__ENABLED=true
export HERALD__REBALANCE__TOLERANCE=$TOLERANCE

start_redis "$OUT/redis.log"
NODE_ARGS=()
for ((i = 0; i < FIRST; i++)); do
  start_redis_gateway "first-$i" "$OUT/gateway-first-$i.log"
  NODE_ARGS+=(--first "http://127.0.0.1:$GW_PORT")
done
NEW_PORTS=()
for ((i = 0; i < NEW; i++)); do
  NEW_PORTS+=("$(free_port)")
  NODE_ARGS+=(--new "http://127.0.0.1:${NEW_PORTS[$i]}")
done

REBALANCE=$(env | grep '^HERALD__REBALANCE__' | sort | tr '\n' ' ')
NOTE="nodes' rebalancing: ${REBALANCE}(the rest at their defaults); $N clients on $FIRST node(s), then $NEW more: one process may hold at most 20,000 open files here, so not the target's 60,000 (30,000 per node)"
bench_header "# bench-scaleout $(date -u +%FT%TZ) N=$N first=$FIRST new=$NEW rate=$RATE/s target<=${TARGET_SECS}s band=±$TOLERANCE moves<=${MAX_MOVE_RATIO}x"

START_FILE="$OUT/start-new-nodes"
"$LOADTEST" scaleout "${NODE_ARGS[@]}" --start-file "$START_FILE" -n "$N" \
  --per-worker "$PER_WORKER" --rate "$RATE" --baseline "$BASELINE" --target-secs "$TARGET_SECS" \
  --tolerance "$TOLERANCE" --max-move-ratio "$MAX_MOVE_RATIO" --quiet "$QUIET" \
  --watch-timeout "$WATCH_TIMEOUT" --tail "$TAIL" --grace "$GRACE" \
  --backoff-base-ms "$BACKOFF_BASE_MS" --backoff-cap-ms "$BACKOFF_CAP_MS" \
  --concurrency "$CONCURRENCY" --connect-timeout "$CONNECT_TIMEOUT" \
  --timeout "$TIMEOUT" --note "$NOTE" --out "$OUT/scaleout.json" >"$OUT/scaleout.txt" &
LOADTEST_PID=$!
PIDS+=("$LOADTEST_PID")

# The new nodes start when the load generator asks (bounded by TIMEOUT).
for _ in $(seq $((TIMEOUT * 10))); do
  if [[ -e $START_FILE ]] || ! kill -0 "$LOADTEST_PID" 2>/dev/null; then break; fi
  sleep 0.1
done
if [[ -e $START_FILE ]]; then
  for ((i = 0; i < NEW; i++)); do
    start_redis_gateway "new-$i" "$OUT/gateway-new-$i.log" "${NEW_PORTS[$i]}"
  done
fi

STATUS=0
wait "$LOADTEST_PID" || STATUS=$?
# Reaped: not stopped again on exit (its PID may be another's by then).
KEEP=()
for p in "${PIDS[@]}"; do [[ $p == "$LOADTEST_PID" ]] || KEEP+=("$p"); done
PIDS=("${KEEP[@]}")
tee -a "$OUT/report.txt" <"$OUT/scaleout.txt"
echo "raw output in $OUT"
exit "$STATUS"
