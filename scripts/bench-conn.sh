#!/usr/bin/env bash
# bench-conn: idle-connection density, connect rate and broadcast fan-out of
# the gateway, measured by herald-loadtest.
#
#   N=15000 ROUNDS=10 scripts/bench-conn.sh
#
# One process may hold at most 20,000 open files on the bench machine, so
# beyond PER_GATEWAY connections the script starts more gateway nodes (each an
# independent memory-backend node; broadcasts are posted to every node) and
# herald-loadtest spreads its connections over worker processes of at most
# PER_WORKER connections, each bound to its own source address 127.0.0.{2,3,..}.
#
# Environment: N (15000), ROUNDS (10), PER_GATEWAY (15000), PER_WORKER (15000),
# READ_BUFFER (gateway HERALD__WS__READ_BUFFER_SIZE; unset = gateway default),
# CODEC (json|msgpack), SETTLE (5 s), TIMEOUT (300 s), CONCURRENCY (connect
# attempts in flight per worker, 256), NO_BUILD=1 to skip cargo,
# CLIENT_MODE (auto | lean | tungstenite: how the load generator holds its
# connections; auto = lean with JSON).
# CHECK_ONLY=1: the check of netfilter's conntrack table against N, then
# stop; CONNTRACK_IGNORE=1: start although the table is too small.
# BACKEND (memory | redis): with redis the script starts its own
# redis-server on a free port and the gateways form one cluster on it (each
# connect then costs presence and subscription round trips: the cost of a
# reconnect storm), and broadcasts are posted to the first gateway only.
# Raw output: bench-out/conn-<timestamp>/ (report.txt, report.json, gateway logs).
set -euo pipefail

cd "$(dirname "$0")/.."
N=${N:-15000}
ROUNDS=${ROUNDS:-10}
PER_GATEWAY=${PER_GATEWAY:-15000}
PER_WORKER=${PER_WORKER:-15000}
CODEC=${CODEC:-json}
SETTLE=${SETTLE:-5}
TIMEOUT=${TIMEOUT:-300}
CONCURRENCY=${CONCURRENCY:-256}
BACKEND=${BACKEND:-memory}
CLIENT_MODE=${CLIENT_MODE:-auto}
case "$BACKEND" in memory | redis) ;; *) echo "BACKEND must be memory or redis" >&2; exit 2 ;; esac

source scripts/bench-lib.sh
# Each connection holds a conntrack entry, and so does each gateway's Redis
# connection (redis backend).
GATEWAYS=$(( (N + PER_GATEWAY - 1) / PER_GATEWAY ))
conntrack_needed=$N
if [[ "$BACKEND" == redis ]]; then conntrack_needed=$((N + GATEWAYS * REDIS_CONNS_PER_GATEWAY)); fi
check_conntrack "$conntrack_needed" "$N connections on $GATEWAYS gateways" || exit 1
if [[ -n "${CHECK_ONLY:-}" ]]; then exit 0; fi
bench_start conn

export HERALD__AUTH__JWT_SECRET="$(random_hex)"
export HERALD__API__KEY="$(random_hex)"

REDIS_URL=""
if [[ "$BACKEND" == redis ]]; then
  start_redis "$OUT/redis.log"
fi

GW_ARGS=()
for ((g = 0; g < GATEWAYS; g++)); do
  port=$(free_port)
  (
    export HERALD__SERVER__LISTEN="127.0.0.1:$port"
    export HERALD__BACKEND="$BACKEND"
    if [[ -n "$REDIS_URL" ]]; then export HERALD__REDIS__URL="$REDIS_URL"; fi
    export HERALD__NODE__ID="bench-conn-$g"
    # Server pings every 10 minutes: no heartbeat traffic during the run.
    export HERALD__WS__HEARTBEAT_MS=600000
    if [[ -n "${READ_BUFFER:-}" ]]; then export HERALD__WS__READ_BUFFER_SIZE="$READ_BUFFER"; fi
    export RUST_LOG=${GATEWAY_LOG:-warn}
    exec "$HERALD" serve
  ) 2>"$OUT/gateway-$g.log" &
  PIDS+=("$!")
  GW_ARGS+=(--gateway "http://127.0.0.1:$port" --gateway-pid "$!")
  for _ in $(seq 100); do
    if curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; then break; fi
    if ! kill -0 "$!" 2>/dev/null; then
      echo "gateway $g exited; log:" >&2; cat "$OUT/gateway-$g.log" >&2; exit 1
    fi
    sleep 0.1
  done
  curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null
  echo "gateway $g: pid $! on 127.0.0.1:$port"
done

POST_TO=first
# Independent memory nodes each need the broadcast; one Redis cluster does not.
if (( GATEWAYS > 1 )) && [[ "$BACKEND" == memory ]]; then POST_TO=all; fi

{
  echo "# bench-conn $(date -u +%FT%TZ) N=$N rounds=$ROUNDS gateways=$GATEWAYS codec=$CODEC backend=$BACKEND concurrency=$CONCURRENCY client_mode=$CLIENT_MODE"
  echo "# machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(free -g | awk '/^Mem:/{print $2}') GiB RAM"
  echo "# commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
} | tee "$OUT/report.txt"

"$LOADTEST" conn "${GW_ARGS[@]}" -n "$N" --rounds "$ROUNDS" --per-worker "$PER_WORKER" \
  --post-to "$POST_TO" --codec "$CODEC" --settle "$SETTLE" --timeout "$TIMEOUT" \
  --concurrency "$CONCURRENCY" --client-mode "$CLIENT_MODE" \
  --out "$OUT/report.json" | tee -a "$OUT/report.txt"

echo "raw output in $OUT"
