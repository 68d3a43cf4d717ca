#!/usr/bin/env bash
# bench-unicast: end-to-end latency of private messages across two gateway
# nodes joined by Redis, measured by herald-loadtest at fixed offered rates
# (open loop), then a search for the highest sustained rate.
#
#   scripts/bench-unicast.sh
#
# The CPU of both gateways and Redis during each trial is reported per
# message. Messages enter on node A (server API POST /v1/messages, or WebSocket `send`
# frames) and are received by RECEIVERS connections on node B, so each one
# crosses Redis. "Sustained" = achieved send rate >= 95% of offered, no
# accepted message lost, p99 <= MAX_P99_MS.
#
# VIAS names the ways in: http (one POST /v1/messages per message), ws
# (`send` frames), batch (POST /v1/messages/batch with up to BATCH messages
# due at the same moment, as a backend flushing its queue would).
#
# Environment: RATES ("1000 10000"), VIAS ("http ws batch"), BATCH (100),
# DURATION (10 s),
# RECEIVERS (1000), FIND_MAX (1 = also search, starting at FIND_START=2000),
# MAX_P99_MS (100), CODEC (json or msgpack: the receivers' and the ws
# senders' subprotocol; json), NO_BUILD=1 to skip cargo, REDIS_MODE (standalone, or
# cluster: a 3-master Redis Cluster on this machine, every master's CPU
# reported), PROFILE=1 to `perf record` (cpu-clock, call graphs) every
# measured process for 5 s of each measured trial (it starts after the 3 s
# warm-up and its pause), HERALD (the gateway binary, default
# target/release/herald: to compare builds in one sitting), CALLGRIND=1
# (standalone only: Redis runs under `valgrind --tool=callgrind`, and each
# trial reports Redis's instructions per message twice: over the measured
# trial alone, counted from the pause after the warm-up, and over the whole
# run, the receivers' connects and the warm-up included; run it at a low
# rate, since Redis runs some 50x slower, and compare builds at the same
# rate), WORKERS (each
# gateway's server.worker_threads, default 1: two gateways, Redis and the
# load generator share this machine's cores, and a second runtime thread
# per gateway costs more in sleeps and wake-ups than it adds; 0 = one per
# core; empty = leave unset, for builds older than the setting).
# Raw output: bench-out/unicast-<timestamp>/ (report.txt, *.json, logs).
set -euo pipefail

cd "$(dirname "$0")/.."
RATES=${RATES:-"1000 10000"}
VIAS=${VIAS:-"http ws batch"}
BATCH=${BATCH:-100}
DURATION=${DURATION:-10}
RECEIVERS=${RECEIVERS:-1000}
FIND_MAX=${FIND_MAX:-1}
FIND_START=${FIND_START:-2000}
MAX_P99_MS=${MAX_P99_MS:-100}
CODEC=${CODEC:-json}

source scripts/bench-lib.sh
bench_start unicast

export HERALD__AUTH__JWT_SECRET="$(random_hex)"
export HERALD__API__KEY="$(random_hex)"
WORKERS=${WORKERS-1}
if [[ -n "$WORKERS" ]]; then
  export HERALD__SERVER__WORKER_THREADS="$WORKERS"
fi

REDIS_MODE=${REDIS_MODE:-standalone}
case "$REDIS_MODE" in
  standalone)
    if [[ "${CALLGRIND:-}" == 1 ]]; then
      REDIS_WRAP="valgrind --tool=callgrind --callgrind-out-file=$OUT/redis.callgrind.%p"
    fi
    start_redis "$OUT/redis.log"
    CPU_ARGS=(--cpu-pid "redis=$REDIS_PID")
    ;;
  cluster)
    start_redis_cluster "$OUT/redis-cluster"
    CPU_ARGS=()
    i=1
    for pid in "${REDIS_PIDS[@]}"; do CPU_ARGS+=(--cpu-pid "redis$i=$pid"); i=$((i + 1)); done
    ;;
  *) echo "REDIS_MODE must be standalone or cluster" >&2; exit 2 ;;
esac

URLS=()
for node in a b; do
  start_redis_gateway "$node" "$OUT/gateway-$node.log"
  URLS+=("http://127.0.0.1:$GW_PORT")
  CPU_ARGS+=(--cpu-pid "gateway-$node=$GW_PID")
done
FROM=${URLS[0]}
TO=${URLS[1]}

{
  echo "# bench-unicast $(date -u +%FT%TZ) redis=$REDIS_MODE receivers=$RECEIVERS duration=${DURATION}s rates=[$RATES] via=[$VIAS] codec=$CODEC gateway_workers=${WORKERS:-default}"
  echo "# machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(free -g | awk '/^Mem:/{print $2}') GiB RAM; $(redis-server --version | cut -d' ' -f1-3)"
  echo "# commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
} | tee "$OUT/report.txt"

# redis_stats reset | FILE: clears Redis's per-command counters, or saves
# them (INFO commandstats) and both gateways' script calls so far after a
# run (warm-up included): what each message cost Redis in commands and µs.
# Commandstats on standalone only.
redis_stats() {
  if [[ "$1" == reset ]]; then
    [[ "$REDIS_MODE" == standalone ]] && redis-cli -p "$REDIS_PORT" config resetstat >/dev/null
    [[ "${CALLGRIND:-}" == 1 ]] && callgrind_control -z "$REDIS_PID" >/dev/null
    return 0
  fi
  [[ "${CALLGRIND:-}" == 1 ]] && redis_instructions "$1"
  {
    [[ "$REDIS_MODE" == standalone ]] && redis-cli -p "$REDIS_PORT" info commandstats
    for url in "${URLS[@]}"; do
      echo "# script calls of $url (since start)"
      curl -fsS "$url/metrics" | grep '^herald_redis_command_duration_seconds_count' || true
    done
  } >"$1"
}

# callgrind_dump: dumps Redis's instruction count since the last dump (or
# zeroing) and prints it; callgrind zeroes its counters at each dump.
callgrind_dump() {
  local before after
  before=$(ls "$OUT"/redis.callgrind.* 2>/dev/null | wc -l)
  callgrind_control -d "$REDIS_PID" >/dev/null
  for _ in $(seq 100); do
    after=$(ls "$OUT"/redis.callgrind.* 2>/dev/null | wc -l)
    ((after > before)) && break
    sleep 0.1
  done
  callgrind_annotate "$(ls -t "$OUT"/redis.callgrind.* | head -1)" 2>/dev/null |
    awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}'
}

publishes() {
  redis-cli -p "$REDIS_PORT" info commandstats |
    sed -n 's/^cmdstat_publish:calls=\([0-9]*\),.*/\1/p'
}

# after_warmup LOG: with CALLGRIND=1, waits (up to 10 min) for the load
# generator's log LOG to say its warm-up trial is done, then, in the 2 s
# pause before the measured trial, dumps what Redis ran so far (the
# receivers' connects and the warm-up: WARM_IR over WARM_MESSAGES).
after_warmup() {
  for _ in $(seq 1200); do
    grep -q "warm-up trial done" "$1" 2>/dev/null && break
    sleep 0.5
  done
  WARM_IR=$(callgrind_dump)
  WARM_MESSAGES=$(publishes)
}

# redis_instructions NAME: with CALLGRIND=1, dumps Redis's instructions
# since after_warmup and prints them per message (each message is one
# PUBLISH) into the report: the measured trial alone, and the whole run
# with the receivers' connects and the warm-up (the figure before
# 2026-12-07, which rows of different RECEIVERS or DURATION do not compare).
redis_instructions() {
  local ir messages trial
  ir=$(callgrind_dump)
  messages=$(publishes)
  trial=$((messages - WARM_MESSAGES))
  echo "  Redis instructions: measured trial $ir over $trial messages = $((ir / trial)) per message; whole run $((WARM_IR + ir)) over $messages = $(((WARM_IR + ir) / messages)) per message ($(basename "$1" .commandstats))" |
    tee -a "$OUT/report.txt"
}

# profile PREFIX: with PROFILE=1, records each --cpu-pid process into
# PREFIX.<label>.perf during the measured trial (read them with `perf
# report -i FILE --no-children`; a gateway built with RUSTFLAGS="-C
# force-frame-pointers=yes" gives whole call graphs; so does
# PROFILE_CALL_GRAPH=dwarf,16384 on the release build, which keeps its debug
# info, at PROFILE_HZ=499 to keep the files small).
PROFILE_CALL_GRAPH=${PROFILE_CALL_GRAPH:-fp}
PROFILE_HZ=${PROFILE_HZ:-999}
profile() {
  [[ "${PROFILE:-}" == 1 ]] || return 0
  command -v perf >/dev/null || { echo "PROFILE=1 needs perf" >&2; return 0; }
  local i label pid
  for ((i = 1; i < ${#CPU_ARGS[@]}; i += 2)); do
    label=${CPU_ARGS[$i]%%=*}
    pid=${CPU_ARGS[$i]#*=}
    (sleep 6 && exec timeout 5 perf record -q -e cpu-clock -F "$PROFILE_HZ" --call-graph "$PROFILE_CALL_GRAPH" \
      -p "$pid" -o "$1.$label.perf" >/dev/null 2>&1) &
  done
}

common=(--from "$FROM" --to "$TO" --receivers "$RECEIVERS" --duration "$DURATION" --max-p99-ms "$MAX_P99_MS" --codec "$CODEC" "${CPU_ARGS[@]}")
for via in $VIAS; do
  case "$via" in
    http | ws) how=(--via "$via") ;;
    batch) how=(--via http --batch "$BATCH") ;;
    *) echo "unknown via: $via (http, ws or batch)" >&2; exit 2 ;;
  esac
  for rate in $RATES; do
    redis_stats reset
    profile "$OUT/$via-$rate"
    "$LOADTEST" unicast "${common[@]}" "${how[@]}" --rate "$rate" \
      --out "$OUT/$via-$rate.json" 2> >(tee "$OUT/$via-$rate.log" >&2) | tee -a "$OUT/report.txt" &
    trial=$!
    [[ "${CALLGRIND:-}" == 1 ]] && after_warmup "$OUT/$via-$rate.log"
    wait "$trial"
    redis_stats "$OUT/$via-$rate.commandstats"
  done
  if [[ "$FIND_MAX" == 1 ]]; then
    "$LOADTEST" unicast "${common[@]}" "${how[@]}" --rate "$FIND_START" --find-max \
      --out "$OUT/$via-find-max.json" | tee -a "$OUT/report.txt"
  fi
done
echo "raw output in $OUT"
