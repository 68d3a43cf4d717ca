#!/usr/bin/env bash
# bench-compare: Herald side by side with the original design it replaces
# (a Node.js + socket.io 4 server with @socket.io/redis-adapter, rebuilt in
# bench/socketio/server.js), the same scenarios on this machine in one run:
#
#   1. idle memory per connection: server RSS delta / N idle authenticated connections
#   2. connect rate: N / (start signal to the last connection's login answer)
#   3. broadcast fan-out: server CPU per delivered message and time until all
#      N connections had it (ROUNDS broadcasts, one a second)
#   4. unicast across two nodes through Redis at each of RATES msg/s, each way
#      in VIAS: CPU of both nodes + Redis per message, p50/p99 latency,
#      sustained or not. http: a backend's POST (Herald POST /v1/messages, a
#      `system` notification to one user; the peer's POST /send); ws: a
#      user's frame (Herald `send`, a private message; the peer's `todo`
#      event with an ack, as the original design sends). Every message is
#      stored before it is pushed on both sides (the peer: RPUSH to the
#      user's list).
#
#   make bench-compare                     # = scripts/bench-compare.sh
#   N=5000 RATES="5000" scripts/bench-compare.sh
#
# Herald is measured by herald-loadtest (`conn`, `unicast`), the peer by
# bench/socketio/loadgen.js: the same measurements, from a lean client that
# speaks WebSocket, engine.io and socket.io by hand over TCP. Both count only
# the servers' own RSS and CPU (/proc), never the load generator's (whose
# whole CPU is printed apart). Each side gets its own fresh redis-server
# (free port, no persistence; never the shared 6379) per scenario. The sides
# alternate within each scenario: Herald conn, socket.io conn, Herald
# unicast, socket.io unicast (FIRST=socketio swaps each pair).
#
# Environment: N (10000, at most 19000: one server process holds them and a
# process may hold 20,000 files), PER_WORKER (5000 connections per
# load-generator process), CONCURRENCY (256 connects in flight per worker),
# ROUNDS (5), SETTLE (5 s), RATES ("5000 10000"), VIAS ("http ws"),
# DURATION (10 s per unicast trial, after a 3 s warm-up), RECEIVERS (1000),
# SENDERS (16 ws sender connections), HTTP_CONCURRENCY (64 requests in
# flight), MAX_P99_MS (100), HERALD_BACKEND (redis: the Herald node of
# scenarios 1-3 on its own redis-server, as the peer is on its adapter's;
# or memory), SCENARIOS ("conn unicast": 1-3 and 4; either alone), FIRST
# (herald, or socketio: which side runs first in each scenario), NO_BUILD=1
# to skip cargo, BIN_DIR (target/release: where herald and herald-loadtest
# are; set to a build of another checkout, nothing is built), NO_NPM=1 to skip npm (needs
# target/bench-compare from an earlier run).
# The npm packages (pinned in bench/socketio/package.json) are installed into
# target/bench-compare/node_modules. Takes about 5 minutes with the defaults.
# Output: the table on stdout; raw output (each side's JSON report and log,
# the load generators' CPU, compare.json) under bench-out/compare-<timestamp>/.
set -euo pipefail

cd "$(dirname "$0")/.."
N=${N:-10000}
PER_WORKER=${PER_WORKER:-5000}
CONCURRENCY=${CONCURRENCY:-256}
ROUNDS=${ROUNDS:-5}
SETTLE=${SETTLE:-5}
RATES=${RATES:-"5000 10000"}
VIAS=${VIAS:-"http ws"}
HTTP_CONCURRENCY=${HTTP_CONCURRENCY:-64}
DURATION=${DURATION:-10}
RECEIVERS=${RECEIVERS:-1000}
SENDERS=${SENDERS:-16}
MAX_P99_MS=${MAX_P99_MS:-100}
HERALD_BACKEND=${HERALD_BACKEND:-redis}
SCENARIOS=${SCENARIOS:-"conn unicast"}
FIRST=${FIRST:-herald}
for scenario in $SCENARIOS; do
  case "$scenario" in conn | unicast) ;; *) echo "SCENARIOS: conn and/or unicast" >&2; exit 2 ;; esac
done
case "$FIRST" in herald | socketio) ;; *) echo "FIRST must be herald or socketio" >&2; exit 2 ;; esac
for via in $VIAS; do
  case "$via" in http | ws) ;; *) echo "VIAS: http and/or ws" >&2; exit 2 ;; esac
done
case "$HERALD_BACKEND" in memory | redis) ;; *) echo "HERALD_BACKEND must be memory or redis" >&2; exit 2 ;; esac
if ((N < 1 || N > 19000)); then echo "N must be 1..19000 (one server process, 20,000 open files)" >&2; exit 2; fi
if ((PER_WORKER < 1 || PER_WORKER > 19000)); then echo "PER_WORKER must be 1..19000" >&2; exit 2; fi
for tool in node npm redis-server redis-cli curl python3; do
  command -v "$tool" >/dev/null || { echo "$tool is needed" >&2; exit 1; }
done

# The peer's packages, pinned, in a scratch folder (never committed).
NODE_DIR=target/bench-compare
if [[ -z "${NO_NPM:-}" ]] && ! cmp -s bench/socketio/package.json "$NODE_DIR/.installed-package.json"; then
  mkdir -p "$NODE_DIR"
  cp bench/socketio/package.json "$NODE_DIR/package.json"
  (cd "$NODE_DIR" && npm install --no-audit --no-fund --omit=dev --loglevel=error)
  cp bench/socketio/package.json "$NODE_DIR/.installed-package.json"
fi
[[ -d "$NODE_DIR/node_modules/socket.io" ]] || { echo "no $NODE_DIR/node_modules: run without NO_NPM" >&2; exit 1; }
NODE_PATH="$(pwd)/$NODE_DIR/node_modules"
export NODE_PATH

# Built here unless NO_BUILD is set or BIN_DIR points at binaries built elsewhere.
if [[ -z "${NO_BUILD:-}" && -z "${BIN_DIR:-}" ]]; then
  cargo build --release -p herald-gateway -p herald-loadtest
fi
BIN_DIR=${BIN_DIR:-target/release}
HERALD=$BIN_DIR/herald
LOADTEST=$BIN_DIR/herald-loadtest
for bin in "$HERALD" "$LOADTEST"; do [[ -x "$bin" ]] || { echo "$bin is missing (build, or set BIN_DIR)" >&2; exit 1; }; done

OUT="bench-out/compare-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$OUT"

source scripts/bench-lib.sh

HERALD__AUTH__JWT_SECRET="$(random_hex)"
HERALD__API__KEY="$(random_hex)"
export HERALD__AUTH__JWT_SECRET HERALD__API__KEY
export JWT_SECRET="$HERALD__AUTH__JWT_SECRET" API_KEY="$HERALD__API__KEY"

# stop_pid PID: stop one process this script started, and forget it (so the
# exit trap never signals a PID that may have been reused since).
stop_pid() {
  local keep=() p
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  for p in "${PIDS[@]}"; do [[ "$p" == "$1" ]] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}

# start_herald_conn LOG: one `herald serve` for scenarios 1-3 ($HERALD_BACKEND,
# heartbeat every 10 min as in bench-conn). Sets GW_PID and GW_PORT.
start_herald_conn() {
  GW_PORT=$(free_port)
  # shellcheck disable=SC2031 # the exports are for the gateway's subshell only
  (
    export HERALD__SERVER__LISTEN="127.0.0.1:$GW_PORT"
    export HERALD__BACKEND="$HERALD_BACKEND"
    if [[ "$HERALD_BACKEND" == redis ]]; then export HERALD__REDIS__URL="$REDIS_URL"; fi
    export HERALD__NODE__ID=bench-compare
    export HERALD__WS__HEARTBEAT_MS=600000
    export RUST_LOG=${GATEWAY_LOG:-warn}
    exec "$HERALD" serve
  ) 2>"$1" &
  GW_PID=$!
  PIDS+=("$GW_PID")
  wait_http "http://127.0.0.1:$GW_PORT/healthz" "$GW_PID" "$1"
  echo "herald: pid $GW_PID on 127.0.0.1:$GW_PORT ($HERALD_BACKEND backend)"
}

# start_sio NAME LOG [PING_INTERVAL_MS]: one socket.io node on $REDIS_URL.
# Sets SIO_PID and SIO_PORT.
start_sio() {
  SIO_PORT=$(free_port)
  (
    export PORT="$SIO_PORT" HOST=127.0.0.1 REDIS_URL="$REDIS_URL" NODE_ID="sio-$1"
    if [[ -n "${3:-}" ]]; then export PING_INTERVAL_MS="$3"; fi
    exec node bench/socketio/server.js
  ) 2>"$2" &
  SIO_PID=$!
  PIDS+=("$SIO_PID")
  wait_http "http://127.0.0.1:$SIO_PORT/healthz" "$SIO_PID" "$2"
  echo "socket.io $1: pid $SIO_PID on 127.0.0.1:$SIO_PORT"
}

# timed NAME CMD…: runs CMD, its output shown and kept in $OUT/NAME.txt, the
# CPU of its whole process tree (user, system, wall seconds) in $OUT/NAME.time.
# A failure is reported and the run goes on.
# With SPLIT set (LABEL=PID …), also how the CPU of those processes over the
# whole run of CMD (connects and warm-up included) divides among them, in
# $OUT/NAME.split ("LABEL TICKS" lines).
SPLIT=()
timed() {
  local name=$1 rc=0 before=() i
  shift
  local TIMEFORMAT='%U %S %R'
  for i in "${!SPLIT[@]}"; do before+=("$(cpu_ticks "${SPLIT[$i]#*=}")"); done
  { time "$@" >"$OUT/$name.txt" 2>&1 || rc=$?; } 2>"$OUT/$name.time"
  for i in "${!SPLIT[@]}"; do
    echo "${SPLIT[$i]%%=*} $(($(cpu_ticks "${SPLIT[$i]#*=}") - before[i]))"
  done >"$OUT/$name.split"
  cat "$OUT/$name.txt"
  if ((rc != 0)); then echo "!! $name failed (exit $rc), see $OUT/$name.txt"; fi
}

# cpu_ticks PID: utime + stime of PID, in clock ticks (0 once it is gone).
cpu_ticks() {
  { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null || echo; } | awk '{print $12 + $13}'
}

{
  echo "# bench-compare $(date -u +%FT%TZ) N=$N per_worker=$PER_WORKER concurrency=$CONCURRENCY rounds=$ROUNDS rates=[$RATES] via=[$VIAS] duration=${DURATION}s receivers=$RECEIVERS senders=$SENDERS herald_backend=$HERALD_BACKEND"
  echo "# machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(free -g | awk '/^Mem:/{print $2}') GiB RAM; $(redis-server --version | cut -d' ' -f1-3); node $(node --version); load average $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "# commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- crates loadtest 2>/dev/null || echo ' (crates/ or loadtest/ modified in the working tree)'); binaries: $BIN_DIR"
} | tee "$OUT/report.txt"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

herald_conn() {
  REDIS_URL=""
  local redis_pid=""
  if [[ "$HERALD_BACKEND" == redis ]]; then
    start_redis "$OUT/herald-conn-redis.log"
    redis_pid=$REDIS_PID
  fi
  start_herald_conn "$OUT/herald-conn-gateway.log"
  timed herald-conn env RUST_LOG="${LOADTEST_LOG:-warn}" "$LOADTEST" conn --gateway "http://127.0.0.1:$GW_PORT" --gateway-pid "$GW_PID" \
    -n "$N" --per-worker "$PER_WORKER" --rounds "$ROUNDS" --settle "$SETTLE" --concurrency "$CONCURRENCY" \
    --source-ip-base 127.0.0.2 --timeout 300 --out "$OUT/herald-conn.json"
  stop_pid "$GW_PID"
  if [[ -n "$redis_pid" ]]; then stop_pid "$redis_pid"; fi
}

socketio_conn() {
  start_redis "$OUT/socketio-conn-redis.log"
  start_sio conn "$OUT/socketio-conn-server.log" 600000
  timed socketio-conn node bench/socketio/loadgen.js conn --url "http://127.0.0.1:$SIO_PORT" --pid "$SIO_PID" \
    -n "$N" --per-worker "$PER_WORKER" --rounds "$ROUNDS" --settle "$SETTLE" --concurrency "$CONCURRENCY" \
    --source-ip-base 127.0.1.2 --timeout 300 --out "$OUT/socketio-conn.json"
  stop_pid "$SIO_PID"
  stop_pid "$REDIS_PID"
}

# Two nodes A and B on one fresh redis-server; CPU of A + B + Redis per message.
herald_unicast() {
  local cpu=() urls=() node via rate i
  start_redis "$OUT/herald-unicast-redis.log"
  cpu=(--cpu-pid "$REDIS_PID")
  SPLIT=("redis=$REDIS_PID")
  for node in a b; do
    start_redis_gateway "$node" "$OUT/herald-unicast-gateway-$node.log"
    urls+=("http://127.0.0.1:$GW_PORT")
    cpu+=(--cpu-pid "$GW_PID")
    SPLIT+=("$node=$GW_PID")
  done
  for via in $VIAS; do
    for rate in $RATES; do
      timed "herald-unicast-$via-$rate" env RUST_LOG="${LOADTEST_LOG:-warn}" "$LOADTEST" unicast \
        --from "${urls[0]}" --to "${urls[1]}" --via "$via" --senders "$SENDERS" --http-concurrency "$HTTP_CONCURRENCY" \
        --receivers "$RECEIVERS" --rate "$rate" --duration "$DURATION" \
        --max-p99-ms "$MAX_P99_MS" "${cpu[@]}" --out "$OUT/herald-unicast-$via-$rate.json"
    done
  done
  SPLIT=()
  for ((i = ${#cpu[@]} - 1; i >= 1; i -= 2)); do stop_pid "${cpu[$i]}"; done
}

socketio_unicast() {
  local cpu=() urls=() node via rate i
  start_redis "$OUT/socketio-unicast-redis.log"
  cpu=(--cpu-pid "$REDIS_PID")
  SPLIT=("redis=$REDIS_PID")
  for node in a b; do
    start_sio "$node" "$OUT/socketio-unicast-server-$node.log"
    urls+=("http://127.0.0.1:$SIO_PORT")
    cpu+=(--cpu-pid "$SIO_PID")
    SPLIT+=("$node=$SIO_PID")
  done
  for via in $VIAS; do
    for rate in $RATES; do
      timed "socketio-unicast-$via-$rate" node bench/socketio/loadgen.js unicast \
        --from "${urls[0]}" --to "${urls[1]}" --via "$via" --senders "$SENDERS" --http-concurrency "$HTTP_CONCURRENCY" \
        --receivers "$RECEIVERS" --rate "$rate" --duration "$DURATION" \
        --max-p99-ms "$MAX_P99_MS" --source-ip-base 127.0.1.2 "${cpu[@]}" --out "$OUT/socketio-unicast-$via-$rate.json"
    done
  done
  SPLIT=()
  for ((i = ${#cpu[@]} - 1; i >= 1; i -= 2)); do stop_pid "${cpu[$i]}"; done
}

SIDES=(herald socketio)
if [[ "$FIRST" == socketio ]]; then SIDES=(socketio herald); fi
for scenario in $SCENARIOS; do
  case "$scenario" in
    conn) echo "== 1-3: idle connections, connect rate, broadcast (N=$N) ==" ;;
    unicast) echo "== 4: unicast across two nodes through Redis, rates [$RATES] msg/s via [$VIAS] ==" ;;
  esac
  for side in "${SIDES[@]}"; do "${side}_$scenario"; done
done

COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown) LOAD_START="$LOAD_START" \
  N="$N" PER_WORKER="$PER_WORKER" CONCURRENCY="$CONCURRENCY" ROUNDS="$ROUNDS" RATES="$RATES" VIAS="$VIAS" \
  DURATION="$DURATION" RECEIVERS="$RECEIVERS" SENDERS="$SENDERS" HERALD_BACKEND="$HERALD_BACKEND" \
  REDIS_VERSION="$(redis-server --version | cut -d' ' -f3)" \
  node bench/socketio/report.js "$OUT" | tee -a "$OUT/report.txt"
echo "raw output in $OUT"
