#!/usr/bin/env bash
# bench-socketio: Herald's Socket.IO endpoint (`socketio.enabled`) side by
# side with the socket.io 4 server it replaces (bench/socketio/server.js),
# measured by the same client: bench/socketio/loadgen.js `conn` (its lean
# socket.io client over WebSocket: CONNECT with the token in `auth`, then,
# on Herald, `user_login` (the peer pushes at connect); done at `push_message`). Per side, on its own fresh
# redis-server: N connections, then SETTLE seconds idle, then the server's
# RSS again.
#
#   1. idle memory per connection: server RSS delta / N
#   2. connect rate: N / (start signal to the last `push_message`)
#
#   3. unicast via `todo` (UNICAST=1): two nodes per side on one Redis,
#      RECEIVERS connections on node B, SENDERS on node A emitting `todo`
#      with an ack at RATE/s for DURATION s (after a 3 s warm-up);
#      `todo_message` latency p50/p99 and CPU of both nodes + Redis per
#      message (loadgen.js unicast --via ws; --login 1 on Herald: the old
#      client's `receiver_id` shape, each `todo_message` acked).
#
# The sides alternate TRIALS times (Herald first, then the peer, …), in one
# sitting; the table has every trial.
#
#   N=5000 TRIALS=2 scripts/bench-socketio.sh
#
# Environment: N (5000), PER_WORKER (1250: four load-generator processes for
# 5,000; one Node process bound the connect rate, which then spread 3-8x
# between trials), CONCURRENCY (256 per worker), SETTLE (5 s),
# UNICAST (1; 0 skips it), RATE (5000), DURATION (10 s), RECEIVERS (1000),
# SENDERS (16),
# TRIALS (2), HERALD (target/release/herald), NO_BUILD=1 (use it as it is), NO_NPM=1
# (target/bench-compare from an earlier run). Engine.IO's ping interval is
# 10 minutes on both sides (an idle connection is measured, not its pings).
# Output: the table on stdout; raw output under bench-out/socketio-<timestamp>/.
set -euo pipefail

cd "$(dirname "$0")/.."
N=${N:-5000}
PER_WORKER=${PER_WORKER:-1250}
CONCURRENCY=${CONCURRENCY:-256}
SETTLE=${SETTLE:-5}
TRIALS=${TRIALS:-2}
UNICAST=${UNICAST:-1}
RATE=${RATE:-5000}
DURATION=${DURATION:-10}
RECEIVERS=${RECEIVERS:-1000}
SENDERS=${SENDERS:-16}
for tool in node npm redis-server redis-cli curl python3; do
  command -v "$tool" >/dev/null || { echo "$tool is needed" >&2; exit 1; }
done

NODE_DIR=target/bench-compare
if [[ -z "${NO_NPM:-}" ]] && ! cmp -s bench/socketio/package.json "$NODE_DIR/.installed-package.json"; then
  mkdir -p "$NODE_DIR"
  cp bench/socketio/package.json "$NODE_DIR/package.json"
  (cd "$NODE_DIR" && npm install --no-audit --no-fund --omit=dev --loglevel=error)
  cp bench/socketio/package.json "$NODE_DIR/.installed-package.json"
fi
NODE_PATH="$(pwd)/$NODE_DIR/node_modules"
export NODE_PATH

if [[ -z "${NO_BUILD:-}" ]]; then
  cargo build --release -p herald-gateway --bin herald
fi
HERALD=${HERALD:-target/release/herald}
OUT="bench-out/socketio-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$OUT"

source scripts/bench-lib.sh

HERALD__AUTH__JWT_SECRET="$(random_hex)"
HERALD__API__KEY="$(random_hex)"
export HERALD__AUTH__JWT_SECRET HERALD__API__KEY
export JWT_SECRET="$HERALD__AUTH__JWT_SECRET" API_KEY="$HERALD__API__KEY"
bench_header "# bench-socketio $(date -u +%FT%TZ) N=$N settle=${SETTLE}s trials=$TRIALS"

stop_pid() {
  local keep=() p
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  for p in "${PIDS[@]}"; do [[ "$p" == "$1" ]] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}

# side NAME TRIAL: one server on its own Redis, loadgen.js conn against it.
side() {
  local name=$1 trial=$2 pid port
  start_redis "$OUT/$name-$trial-redis.log"
  local redis_pid=$REDIS_PID
  port=$(free_port)
  if [[ $name == herald ]]; then
    (
      export HERALD__SERVER__LISTEN="127.0.0.1:$port" HERALD__BACKEND=redis HERALD__REDIS__URL="$REDIS_URL"
      export HERALD__NODE__ID=bench-socketio HERALD__WS__HEARTBEAT_MS=600000 HERALD__SOCKETIO__ENABLED=true
      export RUST_LOG=${GATEWAY_LOG:-warn}
      exec "$HERALD" serve
    ) 2>"$OUT/$name-$trial.log" &
  else
    (
      export PORT="$port" HOST=127.0.0.1 REDIS_URL="$REDIS_URL" NODE_ID=sio-bench PING_INTERVAL_MS=600000
      exec node bench/socketio/server.js
    ) 2>"$OUT/$name-$trial.log" &
  fi
  pid=$!
  PIDS+=("$pid")
  wait_http "http://127.0.0.1:$port/healthz" "$pid" "$OUT/$name-$trial.log"
  local login=()
  if [[ $name == herald ]]; then login=(--login 1); fi
  node bench/socketio/loadgen.js conn "${login[@]}" --url "http://127.0.0.1:$port" --pid "$pid" -n "$N" \
    --per-worker "$PER_WORKER" --concurrency "$CONCURRENCY" --settle "$SETTLE" --rounds 0 \
    --source-ip-base 127.0.0.2 --timeout 300 --out "$OUT/$name-$trial.json" | tee "$OUT/$name-$trial.txt"
  stop_pid "$pid"
  stop_pid "$redis_pid"
}

# serve NAME LOG: one server of side NAME on $REDIS_URL; sets SRV_PID, SRV_PORT.
serve() {
  SRV_PORT=$(free_port)
  if [[ $1 == herald ]]; then
    (
      export HERALD__SERVER__LISTEN="127.0.0.1:$SRV_PORT" HERALD__BACKEND=redis HERALD__REDIS__URL="$REDIS_URL"
      export HERALD__NODE__ID="bench-$SRV_PORT" HERALD__SOCKETIO__ENABLED=true RUST_LOG=${GATEWAY_LOG:-warn}
      exec "$HERALD" serve
    ) 2>"$2" &
  else
    (
      export PORT="$SRV_PORT" HOST=127.0.0.1 REDIS_URL="$REDIS_URL" NODE_ID="sio-$SRV_PORT"
      exec node bench/socketio/server.js
    ) 2>"$2" &
  fi
  SRV_PID=$!
  PIDS+=("$SRV_PID")
  wait_http "http://127.0.0.1:$SRV_PORT/healthz" "$SRV_PID" "$2"
}

# unicast NAME TRIAL: nodes a and b of side NAME on one Redis, todo from a to b.
unicast() {
  local name=$1 trial=$2 urls=() cpu=() pids=() login=() node
  start_redis "$OUT/$name-unicast-$trial-redis.log"
  cpu=(--cpu-pid "$REDIS_PID")
  pids=("$REDIS_PID")
  for node in a b; do
    serve "$name" "$OUT/$name-unicast-$trial-$node.log"
    urls+=("http://127.0.0.1:$SRV_PORT")
    cpu+=(--cpu-pid "$SRV_PID")
    pids+=("$SRV_PID")
  done
  if [[ $name == herald ]]; then login=(--login 1); fi
  node bench/socketio/loadgen.js unicast "${login[@]}" --from "${urls[0]}" --to "${urls[1]}" --via ws \
    --senders "$SENDERS" --receivers "$RECEIVERS" --rate "$RATE" --duration "$DURATION" --max-p99-ms 100 \
    --source-ip-base 127.0.1.2 "${cpu[@]}" --out "$OUT/$name-unicast-$trial.json" | tee "$OUT/$name-unicast-$trial.txt"
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do stop_pid "${pids[$i]}"; done
}

for trial in $(seq "$TRIALS"); do
  side herald "$trial"
  side socketio "$trial"
  if ((UNICAST)); then
    unicast herald "$trial"
    unicast socketio "$trial"
  fi
done

python3 - "$OUT" "$TRIALS" <<'EOF' | tee -a "$OUT/report.txt"
import json, sys
out, trials = sys.argv[1], int(sys.argv[2])
print(f"{'side':10} {'trial':>5} {'ok':>6} {'KiB/conn':>9} {'connects/s':>11} {'p99 connect':>12}")
for t in range(1, trials + 1):
    for side in ("herald", "socketio"):
        try:
            r = json.load(open(f"{out}/{side}-{t}.json"))
        except OSError:
            print(f"{side:10} {t:>5} (no report)")
            continue
        p99 = r["connect_latency"].get("p99_us", 0) / 1000
        print(f"{side:10} {t:>5} {r['connections_ok']:>6} {r['rss_per_conn_kib']:>9.2f} {r['connects_per_sec']:>11.0f} {p99:>10.1f}ms")
print(f"{'unicast':10} {'trial':>5} {'achieved/s':>10} {'lost':>5} {'p50':>9} {'p99':>9} {'CPU µs/msg':>11} sustained")
for t in range(1, trials + 1):
    for side in ("herald", "socketio"):
        try:
            r = json.load(open(f"{out}/{side}-unicast-{t}.json"))[-1]
        except (OSError, IndexError, ValueError):
            continue
        lat = r["latency"]
        cpu = r["cpu_us_per_msg"] or 0
        print(f"{side:10} {t:>5} {r['achieved_rate']:>10.0f} {r['lost']:>5} {lat.get('p50_us', 0) / 1000:>7.2f}ms {lat.get('p99_us', 0) / 1000:>7.2f}ms {cpu:>11.1f} {r['sustained']}")
EOF
