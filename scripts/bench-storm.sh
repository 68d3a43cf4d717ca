#!/usr/bin/env bash
# bench-storm: a reconnect storm. N clients on the victim node(s) of a
# Redis-backed cluster; the victims are killed with SIGKILL at once; the
# clients reconnect to the survivors with exponential backoff and full
# jitter and `sync` from the highest seq they have. Measured by
# `herald-loadtest storm`: the time from the kill until 50/99/100% of the
# clients are welcomed and resumed, that every message sent throughout
# (a steady RATE through the survivors' API, each 202's id and seq
# recorded) arrived exactly once, peak Redis ops/s (INFO stats every
# REDIS_SAMPLE_MS), the survivors' and Redis's CPU during the storm, and
# afterwards the survivors' presence against the clients' own count
# (`GET /v1/presence`, and one connection listed per user for a sample of
# 500: a dead node's entries must be reaped, none lost). The target: 20,000
# clients, 100% resumed within 30 s, nothing lost or doubled, presence
# right; at scale, 50,000 on 10 nodes of 5,000 with 5 killed.
#
#   scripts/bench-storm.sh
#   N=5000 VICTIMS=1 SURVIVORS=2 RATE=500 scripts/bench-storm.sh
#   N=50000 VICTIMS=5 SURVIVORS=5 scripts/bench-storm.sh
#
# One process may hold at most 20,000 open files on the bench machine, so
# one gateway cannot hold 20,000 clients: by default the storm is two
# victims of 10,000 clients each, killed together, onto two survivors
# (the report's note says so). The clients run in load-generator worker
# processes of at most PER_WORKER clients, bound to 127.0.0.2, .3, …
#
# Environment: N (20000), VICTIMS (2), SURVIVORS (2), RATE (200 msg/s),
# PER_WORKER (10000), BASELINE (5 s of traffic before the kill), TAIL
# (5 s after the last resume), GRACE (20 s), TARGET_SECS (30),
# STORM_TIMEOUT (90 s), BACKOFF_BASE_MS (1000), BACKOFF_CAP_MS (16000),
# CONCURRENCY (first connects in flight per worker, 256), CONNECT_TIMEOUT
# (30 s per attempt: the browser SDK sets none; a client that gives up
# sooner leaves the survivor to finish a handshake for nobody, and
# retries add to the storm), REDIS_SAMPLE_MS (50), TIMEOUT (600 s for the whole
# run), GATEWAY_LOG (warn),
# NO_BUILD=1 to skip cargo.
# Processes: a private redis-server and VICTIMS + SURVIVORS `herald serve`
# on free loopback ports with a random JWT secret and API key; the
# survivors and Redis are stopped by PID on exit, the victims are the ones
# the load generator kills (by the PIDs this script gives it).
# Raw output: bench-out/storm-<timestamp>/ (report.txt, storm.json, logs).
set -euo pipefail

cd "$(dirname "$0")/.."
N=${N:-20000}
VICTIMS=${VICTIMS:-2}
SURVIVORS=${SURVIVORS:-2}
RATE=${RATE:-200}
PER_WORKER=${PER_WORKER:-10000}
BASELINE=${BASELINE:-5}
TAIL=${TAIL:-5}
GRACE=${GRACE:-20}
TARGET_SECS=${TARGET_SECS:-30}
STORM_TIMEOUT=${STORM_TIMEOUT:-90}
BACKOFF_BASE_MS=${BACKOFF_BASE_MS:-1000}
BACKOFF_CAP_MS=${BACKOFF_CAP_MS:-16000}
CONCURRENCY=${CONCURRENCY:-256}
CONNECT_TIMEOUT=${CONNECT_TIMEOUT:-30}
REDIS_SAMPLE_MS=${REDIS_SAMPLE_MS:-50}
TIMEOUT=${TIMEOUT:-600}

source scripts/bench-lib.sh
bench_start storm

export HERALD__AUTH__JWT_SECRET="$(random_hex)"
export HERALD__API__KEY="$(random_hex)"

start_redis "$OUT/redis.log"
NODE_ARGS=()
VICTIM_PIDS=()
CPU_ARGS=(--cpu-pid "redis=$REDIS_PID")
for ((v = 0; v < VICTIMS; v++)); do
  start_redis_gateway "victim-$v" "$OUT/gateway-victim-$v.log"
  NODE_ARGS+=(--victim "http://127.0.0.1:$GW_PORT" --victim-pid "$GW_PID")
  VICTIM_PIDS+=("$GW_PID")
  # Its death is the point: no "Killed" job notice from bash.
  disown "$GW_PID"
done
for ((s = 0; s < SURVIVORS; s++)); do
  start_redis_gateway "survivor-$s" "$OUT/gateway-survivor-$s.log"
  NODE_ARGS+=(--survivor "http://127.0.0.1:$GW_PORT")
  CPU_ARGS+=(--cpu-pid "survivor-$s=$GW_PID")
done

PER_VICTIM=$(( (N + VICTIMS - 1) / VICTIMS ))
NOTE="one process may hold at most 20,000 open files here, so one gateway cannot hold $N clients: $VICTIMS node(s) of up to $PER_VICTIM clients each were killed together (kill -9), onto $SURVIVORS survivor(s)"
if (( VICTIMS == 1 )); then NOTE="one node of $N clients killed (kill -9), onto $SURVIVORS survivor(s)"; fi

{
  echo "# bench-storm $(date -u +%FT%TZ) N=$N victims=$VICTIMS survivors=$SURVIVORS rate=$RATE/s backoff=${BACKOFF_BASE_MS}ms..${BACKOFF_CAP_MS}ms (full jitter) target<=${TARGET_SECS}s"
  echo "# machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: *//p' /proc/cpuinfo | head -1), $(free -g | awk '/^Mem:/{print $2}') GiB RAM; $(redis-server --version | cut -d' ' -f1-3); load average $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "# commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (+ uncommitted changes)')"
} | tee "$OUT/report.txt"

"$LOADTEST" storm "${NODE_ARGS[@]}" -n "$N" --per-worker "$PER_WORKER" --rate "$RATE" \
  --baseline "$BASELINE" --tail "$TAIL" --grace "$GRACE" --target-secs "$TARGET_SECS" \
  --storm-timeout "$STORM_TIMEOUT" --backoff-base-ms "$BACKOFF_BASE_MS" --backoff-cap-ms "$BACKOFF_CAP_MS" \
  --concurrency "$CONCURRENCY" --connect-timeout "$CONNECT_TIMEOUT" \
  --redis "127.0.0.1:$REDIS_PORT" --redis-sample-ms "$REDIS_SAMPLE_MS" "${CPU_ARGS[@]}" \
  --timeout "$TIMEOUT" --note "$NOTE" --out "$OUT/storm.json" | tee -a "$OUT/report.txt"

# The killed victims are not stopped again on exit: their PIDs may be
# another process's by then. (One that is still a herald, the run having
# failed before the kill, is.)
KEEP=()
for p in "${PIDS[@]}"; do
  case " ${VICTIM_PIDS[*]} " in
    *" $p "*) [[ "$(cat "/proc/$p/comm" 2>/dev/null)" == herald ]] && KEEP+=("$p") ;;
    *) KEEP+=("$p") ;;
  esac
done
PIDS=("${KEEP[@]}")
echo "raw output in $OUT"
