#!/usr/bin/env bash
# `make cluster`: one local redis-server and three Herald nodes on 127.0.0.1,
# for a person to try cross-node delivery. Ctrl-C stops everything it started.
#
#   REDIS_PORT  (default 7379)   NODES (default 3)   BASE_PORT (default 8081)
set -euo pipefail
cd "$(dirname "$0")/.."

REDIS_PORT=${REDIS_PORT:-7379}
NODES=${NODES:-3}
BASE_PORT=${BASE_PORT:-8081}
SECRET=${SECRET:-dev-secret-change-me}
API_KEY=${API_KEY:-dev-api-key}
RUN_DIR=$(mktemp -d /tmp/herald-cluster.XXXXXX)
PIDS=()

stop() {
  trap - INT TERM EXIT
  echo
  echo "stopping: ${PIDS[*]:-nothing}"
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$RUN_DIR"
}
trap 'stop; exit 0' INT TERM
trap stop EXIT

wait_for() { # what, command...
  local what=$1; shift
  for _ in $(seq 1 100); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "error: $what did not come up (logs in $RUN_DIR)" >&2; exit 1
}

./scripts/ensure-redis.sh
cargo build --release -q -p herald-gateway

if redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
  echo "error: something already listens on port $REDIS_PORT; set REDIS_PORT" >&2; exit 1
fi
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
  --dir "$RUN_DIR" >"$RUN_DIR/redis.log" 2>&1 &
PIDS+=($!)
wait_for "redis-server" redis-cli -p "$REDIS_PORT" ping

for i in $(seq 1 "$NODES"); do
  port=$((BASE_PORT + i - 1))
  HERALD__BACKEND=redis HERALD__REDIS__URL="redis://127.0.0.1:$REDIS_PORT" \
  HERALD__NODE__ID="node-$i" HERALD__SERVER__LISTEN="127.0.0.1:$port" \
  HERALD__AUTH__JWT_SECRET="$SECRET" HERALD__API__KEY="$API_KEY" \
    target/release/herald serve >"$RUN_DIR/node-$i.log" 2>&1 &
  PIDS+=($!)
  wait_for "node-$i" curl -sf "http://127.0.0.1:$port/healthz"
done

cat <<TXT
Herald cluster up: redis on 127.0.0.1:$REDIS_PORT, nodes on ports $BASE_PORT..$((BASE_PORT + NODES - 1)).
  token:     HERALD__AUTH__JWT_SECRET=$SECRET target/release/herald token --user alice
  connect:   ws://127.0.0.1:$BASE_PORT/ws?token=<token>   (any node)
  send:      curl -H 'Authorization: Bearer $API_KEY' -H 'content-type: application/json' \\
               -d '{"to":{"users":["alice"]},"category":"system","body":"hi"}' http://127.0.0.1:$((BASE_PORT + 1))/v1/messages
  presence:  curl -H 'Authorization: Bearer $API_KEY' http://127.0.0.1:$BASE_PORT/v1/users/alice/presence
  logs:      $RUN_DIR
Ctrl-C stops everything.
TXT
wait -n "${PIDS[@]}" || true
echo "a process exited; see $RUN_DIR" >&2
