#!/usr/bin/env bash
# bench-rolling: a rolling deploy under load. N clients on OLD Redis-backed
# nodes; steady RATE messages/s through the API of the nodes up. Each old
# node in turn is replaced as a Kubernetes rollout with maxSurge 1 and
# maxUnavailable 0 replaces a pod: its replacement starts (this script
# starts it when the load generator creates start-<i> in the output
# folder) and, once it answers /readyz, the old node gets SIGTERM and
# drains: each client gets a `reconnect` frame with a jittered delay,
# spread over drain.window_secs (20 s), and the node exits. The clients
# reconnect as through a Service, to a node picked at random among every
# old and new address (one gone, draining or not started yet refuses:
# another pick after a full-jitter backoff) and resume with `sync`. The
# next step starts once the old process is gone and every client it held
# is back. Rebalancing stays off (its default): a plain rolling deploy.
# Measured by `herald-loadtest rolling`: per step, the time from the
# SIGTERM until its clients resumed (50/99/100%) and how many moved; for
# the roll, that every accepted message arrived exactly once (the storm's
# ledger), the delivery latency of the messages sent during the roll,
# Redis ops/s (INFO stats every REDIS_SAMPLE_MS; peak per 100 ms and 1 s)
# and the roll's duration. The target: every client back within 30 s of
# its node's SIGTERM, nothing lost or doubled, at 100,000 clients on 4
# nodes and 1,000 msg/s.
#
#   scripts/bench-rolling.sh
#   N=2000 PER_WORKER=1000 scripts/bench-rolling.sh
#
# Size: a client lands on a node up at random, so each old node not
# rolled yet takes 1/OLD of every drain before its own: before its turn,
# the last of 4 holds (N/4)·1.25³ = 48.8% of all clients (the replacements
# end at 36%, 27%, 20%, 16%). One process may hold at most 20,000 open
# files on the bench machine (the hard limit), so the default is
# N=36,000 (at most ~17,600 on one node). The target's 100,000 needs
# nodes allowed ~50,000 connections each (`ulimit -n` of 52,000 or more
# for the gateways); there: N=100000 PER_WORKER=19000 (six workers). The
# clients run in load-generator worker processes of at most PER_WORKER
# (≤ 19,000), bound to 127.0.0.2, .3, …
#
# Environment: N (36000), OLD (4), RATE (1000 msg/s), PER_WORKER (12000),
# BASELINE (5 s of traffic before the first step), TARGET_SECS (30),
# STEP_TIMEOUT (180 s per step), TAIL (5 s), GRACE (20 s),
# BACKOFF_BASE_MS (1000), BACKOFF_CAP_MS (16000), CONCURRENCY (first
# connects in flight per worker, 256), CONNECT_TIMEOUT (30 s),
# REDIS_SAMPLE_MS (50), TIMEOUT (1200 s for the whole run), GATEWAY_LOG
# (warn), PICK (service: any address at random; list: as the SDK's node
# list, another node that has not refused since the last connection;
# ready: through a Service that routes only to the nodes whose /readyz
# passed, probed every READINESS_MS (5000) and out after 2 failures, as
# kube-proxy with k8s/base's readiness probe),
# NO_BUILD=1 to skip cargo. The nodes' drain runs on its defaults
# unless HERALD__DRAIN__* is set.
# Processes: a private redis-server, OLD `herald serve` and their OLD
# replacements on loopback ports picked at the start (the replacements'
# free until they start) with a random JWT secret and API key; the old
# nodes get SIGTERM from the load generator (by the PIDs this script
# gives it), everything else is stopped by PID on exit.
# Raw output: bench-out/rolling-<timestamp>/ (report.txt, rolling.json,
# logs).
set -euo pipefail

cd "$(dirname "$0")/.."
N=${N:-36000}
OLD=${OLD:-4}
RATE=${RATE:-1000}
PER_WORKER=${PER_WORKER:-12000}
BASELINE=${BASELINE:-5}
TARGET_SECS=${TARGET_SECS:-30}
STEP_TIMEOUT=${STEP_TIMEOUT:-180}
TAIL=${TAIL:-5}
GRACE=${GRACE:-20}
BACKOFF_BASE_MS=${BACKOFF_BASE_MS:-1000}
BACKOFF_CAP_MS=${BACKOFF_CAP_MS:-16000}
CONCURRENCY=${CONCURRENCY:-256}
CONNECT_TIMEOUT=${CONNECT_TIMEOUT:-30}
REDIS_SAMPLE_MS=${REDIS_SAMPLE_MS:-50}
TIMEOUT=${TIMEOUT:-1200}
PICK=${PICK:-service}

case $PICK in
  service) PICK_ARGS=() ;;
  list) PICK_ARGS=(--sdk-list) ;;
  ready) PICK_ARGS=(--service-readiness-ms "${READINESS_MS:-5000}") ;;
  *) echo "PICK is service, list or ready" >&2; exit 2 ;;
esac

source scripts/bench-lib.sh
bench_start rolling

export HERALD__AUTH__JWT_SECRET="$(random_hex)"
export HERALD__API__KEY="$(random_hex)"

start_redis "$OUT/redis.log"
NODE_ARGS=()
OLD_PIDS=()
for ((i = 0; i < OLD; i++)); do
  start_redis_gateway "old-$i" "$OUT/gateway-old-$i.log"
  NODE_ARGS+=(--old "http://127.0.0.1:$GW_PORT" --old-pid "$GW_PID")
  OLD_PIDS+=("$GW_PID")
done
NEW_PORTS=()
for ((i = 0; i < OLD; i++)); do
  NEW_PORTS+=("$(free_port)")
  NODE_ARGS+=(--new "http://127.0.0.1:${NEW_PORTS[$i]}")
done

DRAIN=$(env | grep '^HERALD__DRAIN__' | sort | tr '\n' ' ' || true)
NOTE="$N clients on $OLD node(s), each replaced in turn (maxSurge 1); drain: ${DRAIN:-defaults }(window 20 s unless set); the target's 100,000 needs nodes that may hold ~50,000 connections (one process may hold 20,000 files here)"
bench_header "# bench-rolling $(date -u +%FT%TZ) N=$N old=$OLD rate=$RATE/s backoff=${BACKOFF_BASE_MS}ms..${BACKOFF_CAP_MS}ms target<=${TARGET_SECS}s pick=$PICK"

"$LOADTEST" rolling "${NODE_ARGS[@]}" --start-dir "$OUT" -n "$N" \
  --per-worker "$PER_WORKER" --rate "$RATE" --baseline "$BASELINE" --target-secs "$TARGET_SECS" \
  --step-timeout "$STEP_TIMEOUT" --tail "$TAIL" --grace "$GRACE" \
  --backoff-base-ms "$BACKOFF_BASE_MS" --backoff-cap-ms "$BACKOFF_CAP_MS" \
  --concurrency "$CONCURRENCY" --connect-timeout "$CONNECT_TIMEOUT" \
  --redis "127.0.0.1:$REDIS_PORT" --redis-sample-ms "$REDIS_SAMPLE_MS" "${PICK_ARGS[@]}" \
  --timeout "$TIMEOUT" --note "$NOTE" --out "$OUT/rolling.json" >"$OUT/rolling.txt" &
LOADTEST_PID=$!
PIDS+=("$LOADTEST_PID")

# Each replacement starts when the load generator asks (all within TIMEOUT).
DEADLINE=$((SECONDS + TIMEOUT))
for ((i = 0; i < OLD; i++)); do
  while [[ ! -e $OUT/start-$i ]] && ((SECONDS < DEADLINE)) && kill -0 "$LOADTEST_PID" 2>/dev/null; do
    sleep 0.1
  done
  [[ -e $OUT/start-$i ]] || break
  start_redis_gateway "new-$i" "$OUT/gateway-new-$i.log" "${NEW_PORTS[$i]}"
done

STATUS=0
wait "$LOADTEST_PID" || STATUS=$?
# Reaped: not stopped again on exit (its PID may be another's by then);
# nor the old nodes that exited after their SIGTERM (one still a herald,
# the run having failed before its turn, is).
KEEP=()
for p in "${PIDS[@]}"; do
  [[ $p == "$LOADTEST_PID" ]] && continue
  case " ${OLD_PIDS[*]} " in
    *" $p "*) [[ "$(cat "/proc/$p/comm" 2>/dev/null)" == herald ]] && KEEP+=("$p") ;;
    *) KEEP+=("$p") ;;
  esac
done
PIDS=("${KEEP[@]}")
tee -a "$OUT/report.txt" <"$OUT/rolling.txt"
echo "raw output in $OUT"
exit "$STATUS"
