#!/usr/bin/env bash
# bench-redis-calls: Redis's instructions per `append_many` call, the
# function alone: Redis under `valgrind --tool=callgrind`, one gateway to
# load the library, then scripts/bench/redis_calls.py drives the calls
# straight at Redis (no gateway in the path, 200 calls a pipeline): a
# warm-up of WARMUP messages, the counters zeroed, COUNT messages, a dump.
# Instructions, not time: they compare across a loaded machine, and
# alternating two builds (HERALD=...) compares their Lua. The whole path
# (parsing, pub/sub to a subscribed gateway, pollers) is bench-unicast's
# CALLGRIND=1.
#
#   scripts/bench-redis-calls.sh
#
# Environment: SHAPES ("notification private private-split"; also
# `commands`: a notification's six commands in MULTI/EXEC, no function, the
# floor of a layout without a script), COUNT (2000),
# WARMUP (3000), HERALD (the gateway binary, default target/release/herald),
# NO_BUILD=1 to skip cargo. Needs valgrind and python3; the Python `redis`
# package goes into target/redis-calls-venv on first use.
# Raw output: bench-out/redis-calls-<timestamp>/ (report.txt, callgrind dumps).
set -euo pipefail

cd "$(dirname "$0")/.."
SHAPES=${SHAPES:-"notification private private-split"}
COUNT=${COUNT:-2000}
WARMUP=${WARMUP:-3000}
command -v valgrind >/dev/null || { echo "valgrind is needed" >&2; exit 1; }

VENV=target/redis-calls-venv
if [[ ! -x "$VENV/bin/python" ]]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q 'redis>=5,<9'
fi

source scripts/bench-lib.sh
bench_start redis-calls
export HERALD__AUTH__JWT_SECRET="$(random_hex)"
export HERALD__API__KEY="$(random_hex)"
REDIS_WRAP="valgrind --tool=callgrind --callgrind-out-file=$OUT/redis.callgrind.%p"
start_redis "$OUT/redis.log"
start_redis_gateway a "$OUT/gateway-a.log"
{
  echo "# bench-redis-calls $(date -u +%FT%TZ) count=$COUNT warmup=$WARMUP"
  echo "# $(redis-server --version | cut -d' ' -f1-3); gateway $HERALD; commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
} | tee "$OUT/report.txt"

first=0
for shape in $SHAPES; do
  "$VENV/bin/python" scripts/bench/redis_calls.py "$REDIS_PORT" "$shape" "$WARMUP" "$first"
  first=$((first + WARMUP))
  callgrind_control -z "$REDIS_PID" >/dev/null 2>&1
  before=$(ls "$OUT"/redis.callgrind.* 2>/dev/null | wc -l)
  "$VENV/bin/python" scripts/bench/redis_calls.py "$REDIS_PORT" "$shape" "$COUNT" "$first"
  first=$((first + COUNT))
  callgrind_control -d "$REDIS_PID" >/dev/null 2>&1
  for _ in $(seq 100); do
    (($(ls "$OUT"/redis.callgrind.* | wc -l) > before)) && break
    sleep 0.1
  done
  ir=$(callgrind_annotate "$(ls -t "$OUT"/redis.callgrind.* | head -1)" 2>/dev/null |
    awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
  echo "$shape: $ir instructions over $COUNT messages = $((ir / COUNT)) per message" | tee -a "$OUT/report.txt"
done
echo "raw output in $OUT"
