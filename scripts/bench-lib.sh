# Shared by the bench-*.sh scripts (sourced, not run): free ports, secrets,
# processes stopped on exit, and a private redis-server.

# One load generator plays many users at thousands of requests per second
# each: the gateways' per-user request limit would measure itself.
export HERALD__LIMITS__REQUESTS_PER_SEC=${HERALD__LIMITS__REQUESTS_PER_SEC:-0}
export HERALD__LIMITS__MAX_CONNECTIONS_PER_USER=${HERALD__LIMITS__MAX_CONNECTIONS_PER_USER:-0}
# The benchmarks load nodes on purpose, sharing the machine with the load
# generator: admission control would shed what they measure.
export HERALD__ADMISSION__ENABLED=${HERALD__ADMISSION__ENABLED:-false}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

random_hex() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }

# Processes this script started; stopped newest first on exit (gateways
# before the Redis they hold connections to), by PID.
PIDS=()
cleanup() {
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    kill "${PIDS[$i]}" 2>/dev/null || true
    wait "${PIDS[$i]}" 2>/dev/null || true
  done
}
trap cleanup EXIT INT TERM

# start_redis LOGFILE: our own redis-server on a free port (never 6379), no
# persistence, run under the command words in REDIS_WRAP if set (e.g.
# valgrind). Sets REDIS_PORT, REDIS_PID and REDIS_URL.
start_redis() {
  command -v redis-server >/dev/null || { echo "redis-server is needed (scripts/ensure-redis.sh)" >&2; exit 1; }
  REDIS_PORT=$(free_port)
  # shellcheck disable=SC2086 # REDIS_WRAP is a command line
  ${REDIS_WRAP:-} redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
    --daemonize no >"$1" 2>&1 &
  REDIS_PID=$!
  PIDS+=("$REDIS_PID")
  for _ in $(seq 300); do
    if redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then break; fi
    sleep 0.1
  done
  redis-cli -p "$REDIS_PORT" ping >/dev/null
  REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
  echo "redis: pid $REDIS_PID on 127.0.0.1:$REDIS_PORT"
}

# start_redis_cluster DIR: a 3-master Redis Cluster (no replicas, no
# persistence) on free ports, logs and node files in DIR. Sets REDIS_PIDS
# (all three), REDIS_PID (the first) and REDIS_URL (fred's
# redis-cluster:// form).
start_redis_cluster() {
  command -v redis-server >/dev/null || { echo "redis-server is needed (scripts/ensure-redis.sh)" >&2; exit 1; }
  local dir=$1 ports=() port
  mkdir -p "$dir"
  REDIS_PIDS=()
  for i in 1 2 3; do
    # The cluster bus listens on port + 10000: keep both in range.
    port=$(free_port)
    while ((port > 55000)); do port=$(free_port); done
    ports+=("$port")
    (cd "$dir" && exec redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
      --cluster-enabled yes --cluster-config-file "nodes-$port.conf" --daemonize no) \
      >"$dir/redis-$port.log" 2>&1 &
    REDIS_PIDS+=("$!")
    PIDS+=("$!")
  done
  for port in "${ports[@]}"; do
    for _ in $(seq 50); do
      if redis-cli -p "$port" ping >/dev/null 2>&1; then break; fi
      sleep 0.1
    done
  done
  if ! redis-cli --cluster create "${ports[@]/#/127.0.0.1:}" --cluster-replicas 0 --cluster-yes >"$dir/create.log" 2>&1; then
    echo "redis-cli --cluster create failed:" >&2
    cat "$dir/create.log" >&2
    exit 1
  fi
  # Every master must see the whole cluster (gossip takes a moment).
  for port in "${ports[@]}"; do
    for _ in $(seq 100); do
      if redis-cli -p "$port" cluster info 2>/dev/null | grep -q 'cluster_state:ok' &&
        [ "$(redis-cli -p "$port" cluster nodes 2>/dev/null | grep -c master)" = 3 ]; then break; fi
      sleep 0.1
    done
    if ! redis-cli -p "$port" cluster info | grep -q 'cluster_state:ok'; then
      echo "Redis Cluster node $port did not reach cluster_state:ok" >&2
      exit 1
    fi
  done
  REDIS_PID=${REDIS_PIDS[0]}
  REDIS_URL="redis-cluster://127.0.0.1:${ports[0]}?node=127.0.0.1:${ports[1]}&node=127.0.0.1:${ports[2]}"
  echo "redis cluster: pids ${REDIS_PIDS[*]} on 127.0.0.1:${ports[*]}"
}

# wait_http URL PID LOG: until URL answers, or fail with LOG if PID exited.
wait_http() {
  for _ in $(seq 100); do
    if curl -fsS "$1" >/dev/null 2>&1; then return 0; fi
    if ! kill -0 "$2" 2>/dev/null; then echo "process $2 exited; log:" >&2; cat "$3" >&2; return 1; fi
    sleep 0.1
  done
  curl -fsS "$1" >/dev/null
}

# start_redis_gateway NAME LOGFILE [PORT]: one `herald serve` ($HERALD) on
# PORT (a free port if none) on the redis backend at $REDIS_URL (start_redis
# first), node id bench-NAME, log level $GATEWAY_LOG (warn). Waits for
# /healthz. Sets GW_PID and GW_PORT.
start_redis_gateway() {
  GW_PORT=${3:-$(free_port)}
  (
    export HERALD__SERVER__LISTEN="127.0.0.1:$GW_PORT"
    export HERALD__BACKEND=redis
    export HERALD__REDIS__URL="$REDIS_URL"
    export HERALD__NODE__ID="bench-$1"
    export RUST_LOG=${GATEWAY_LOG:-warn}
    exec "$HERALD" serve
  ) 2>"$2" &
  GW_PID=$!
  PIDS+=("$GW_PID")
  wait_http "http://127.0.0.1:$GW_PORT/healthz" "$GW_PID" "$2"
  echo "gateway $1: pid $GW_PID on 127.0.0.1:$GW_PORT"
}

# bench_start NAME: builds the gateway and the load generator unless
# NO_BUILD is set; sets HERALD (unless given: another build to compare) and
# LOADTEST, and OUT (bench-out/NAME-<timestamp>, created).
bench_start() {
  if [[ -z "${NO_BUILD:-}" ]]; then
    cargo build --release -p herald-gateway -p herald-loadtest
  fi
  HERALD=${HERALD:-target/release/herald}
  LOADTEST=target/release/herald-loadtest
  OUT="bench-out/$1-$(date +%Y%m%d-%H%M%S)"
  mkdir -p "$OUT"
}

# bench_two_nodes NAME: the start of a two-node benchmark on one private
# Redis: bench_start, a random JWT secret and API key for the gateways,
# then redis-server and gateways a and b (A_PORT, A_PID, B_PORT, B_PID).
bench_two_nodes() {
  bench_start "$1"
  export HERALD__AUTH__JWT_SECRET="$(random_hex)"
  export HERALD__API__KEY="$(random_hex)"
  start_redis "$OUT/redis.log"
  start_redis_gateway a "$OUT/gateway-a.log"
  A_PORT=$GW_PORT A_PID=$GW_PID
  start_redis_gateway b "$OUT/gateway-b.log"
  B_PORT=$GW_PORT B_PID=$GW_PID
}

# bench_header LINE: starts $OUT/report.txt (and prints it) with LINE, the
# machine, Redis's version, the load average and the commit.
bench_header() {
  {
    echo "$1"
    echo "# machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: *//p' /proc/cpuinfo | head -1), $(free -g | awk '/^Mem:/{print $2}') GiB RAM; $(redis-server --version | cut -d' ' -f1-3); load average $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "# commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (+ uncommitted changes)')"
  } | tee "$OUT/report.txt"
}

# check_conntrack NEEDED WHAT: when netfilter's conntrack is loaded, every
# TCP connection on loopback holds one entry (client->gateway, and each
# gateway's Redis connections) and a full table drops new connections'
# SYNs ("nf_conntrack: table full, dropping packet" in the kernel log): the
# walk stalls. Says whether NEEDED more entries fit next to the ones in use
# (nf_conntrack_count); if not, names the sysctl and a value, and fails
# unless CONNTRACK_IGNORE=1. No conntrack (the file absent): nothing to do.
# Conservative where the module is loaded but nothing in this network
# namespace hooks it (no NAT or state rule: current kernels then track
# nothing, and nf_conntrack_count stays 0 under load); a rule added later
# (a container runtime's NAT, a firewall) starts tracking.
check_conntrack() {
  local needed=$1 what=$2 dir=/proc/sys/net/netfilter
  if [[ ! -r $dir/nf_conntrack_max ]]; then
    echo "conntrack: not loaded here ($dir/nf_conntrack_max absent): no table to fill"
    return 0
  fi
  local max count=0
  max=$(<"$dir/nf_conntrack_max")
  if [[ -r $dir/nf_conntrack_count ]]; then count=$(<"$dir/nf_conntrack_count"); fi
  if ((count + needed <= max)); then
    echo "conntrack: $what needs $needed entries; $count of nf_conntrack_max=$max in use: fits"
    return 0
  fi
  # 10% headroom, rounded up to a multiple of 65,536.
  local want=$(((count + needed * 11 / 10 + 65535) / 65536 * 65536))
  echo "conntrack: $what needs $needed entries, but $count of nf_conntrack_max=$max are in use:" \
    "connects would stall at about $((max - count)) (\"nf_conntrack: table full, dropping packet\")." \
    "Raise it first: sysctl -w net.netfilter.nf_conntrack_max=$want" \
    "(about 256 bytes of kernel memory per entry in use), or set CONNTRACK_IGNORE=1 to go on anyway." >&2
  if [[ -n ${CONNTRACK_IGNORE:-} ]]; then
    echo "conntrack: CONNTRACK_IGNORE set: going on" >&2
    return 0
  fi
  return 1
}

# Redis connections one gateway holds, with 2 spare for reconnects: a node
# on the defaults held 6 (`redis-cli client list` against a fresh node:
# the command pool, redis.pool_size = 4, the pub/sub subscriber and the
# presence heartbeat's own connection).
REDIS_CONNS_PER_GATEWAY=8
