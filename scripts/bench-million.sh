#!/usr/bin/env bash
# bench-million: walks up toward 1,000,000 held connections on ONE Redis,
# in steps, and stops by itself at a memory or time bound.
#
#   scripts/bench-million.sh                       # the full walk (a quiet machine!)
#   STEPS="20000 40000 60000" MEM_FLOOR_MIB=8192 scripts/bench-million.sh   # a small one
#
# What it does: starts its own redis-server on a free port (never 6379),
# then `herald-loadtest conn --steps …`, which holds the connections across
# steps (each step opens the difference to its target), starts gateway
# processes as the steps need them (at most PER_GATEWAY connections each,
# all on that one Redis, through --gateway-cmd) and load-generator worker
# processes (at most PER_WORKER each, on source addresses 127.0.0.2, .3, …).
# After each step: SETTLE seconds idle, then per held connection the
# gateways' RSS, kernel slab (Slab and SUnreclaim growth in /proc/meminfo),
# Redis used_memory and the load generator's RSS, then one broadcast to
# everyone timed until the last connection has it.
#
# Stops by itself: MemAvailable below MEM_FLOOR_MIB before a step, while
# connecting (the workers are halted), or projected below it for the next
# step or its broadcast; when a step's connects stall (no new TCP socket
# on the machine for STALL_SECS, 60: the report says what the machine
# looked like, load and conntrack table included); or at TIMEOUT seconds. A watchdog here is the last
# resort: below EMERGENCY_MIB it stops the walk (SIGTERM; the gateways get
# SIGTERM when their parent dies).
#
# One process may hold at most 20,000 open files here: PER_GATEWAY and
# PER_WORKER stay at or below 19,000. net.ipv4.ip_local_port_range is
# widened only if it holds fewer ports than one worker needs toward one
# gateway, and restored on exit.
#
# Environment: STEPS ("100000 200000 400000 600000 800000 1000000"),
# PER_GATEWAY (19000), PER_WORKER (19000), MEM_FLOOR_MIB (2560),
# EMERGENCY_MIB (MEM_FLOOR_MIB / 2), TIMEOUT (3600 s for the whole walk),
# SETTLE (10 s), ROUND_TIMEOUT (120 s per broadcast), CONCURRENCY (connect
# attempts in flight per worker, 256), GATEWAY_LOG (warn), NO_BUILD=1 to
# skip cargo, CHECK_ONLY=1 to run the checks before the walk and stop,
# CONNTRACK_IGNORE=1 to start although netfilter's conntrack table
# (net.netfilter.nf_conntrack_max) is too small for the last step.
# Raw output: bench-out/million-<timestamp>/ (report.txt with the table,
# report.json rewritten after every step, memory.tsv sampled every 2 s,
# loadtest.log, gateway-N.log, redis.log).
set -euo pipefail

cd "$(dirname "$0")/.."
STEPS=${STEPS:-"100000 200000 400000 600000 800000 1000000"}
PER_GATEWAY=${PER_GATEWAY:-19000}
PER_WORKER=${PER_WORKER:-19000}
MEM_FLOOR_MIB=${MEM_FLOOR_MIB:-2560}
EMERGENCY_MIB=${EMERGENCY_MIB:-$((MEM_FLOOR_MIB / 2))}
TIMEOUT=${TIMEOUT:-3600}
SETTLE=${SETTLE:-10}
ROUND_TIMEOUT=${ROUND_TIMEOUT:-120}
CONCURRENCY=${CONCURRENCY:-256}

if ((PER_GATEWAY > 19000 || PER_WORKER > 19000)); then
  echo "PER_GATEWAY and PER_WORKER must stay at or below 19000 (20,000 open files per process)" >&2
  exit 2
fi
steps_csv=$(echo "$STEPS" | tr -s ' ,' '\n' | sed '/^$/d' | paste -sd, -)
[[ "$steps_csv" =~ ^[0-9]+(,[0-9]+)*$ ]] || { echo "STEPS must be numbers: $STEPS" >&2; exit 2; }

mem_available_mib() { awk '/^MemAvailable:/ {print int($2 / 1024)}' /proc/meminfo; }
if (($(mem_available_mib) < MEM_FLOOR_MIB)); then
  echo "MemAvailable $(mem_available_mib) MiB is already below MEM_FLOOR_MIB=$MEM_FLOOR_MIB" >&2
  exit 1
fi

source scripts/bench-lib.sh

# The conntrack table must hold every connection of the last step, the
# gateways' Redis connections and the load generator's one.
target=$(echo "$steps_csv" | tr , '\n' | sort -n | tail -1)
gateways=$(((target + PER_GATEWAY - 1) / PER_GATEWAY))
check_conntrack $((target + gateways * REDIS_CONNS_PER_GATEWAY + 1)) \
  "a walk to $target connections on $gateways gateways" || exit 1
if [[ -n "${CHECK_ONLY:-}" ]]; then exit 0; fi

if [[ -z "${NO_BUILD:-}" ]]; then
  cargo build --release -p herald-gateway -p herald-loadtest
fi
OUT="bench-out/million-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$OUT/bin"
OUT_ABS=$PWD/$OUT
# Private copies (removed on exit): a build finishing during the walk must
# not give its later gateways another binary.
cp target/release/herald target/release/herald-loadtest "$OUT/bin/"
HERALD=$OUT_ABS/bin/herald
LOADTEST=$OUT_ABS/bin/herald-loadtest

# The ephemeral port range, widened only if one worker's connections to
# one gateway would not fit in it (IP_BIND_ADDRESS_NO_PORT: ports are
# unique per source address and destination), restored on exit.
PORT_RANGE_FILE=/proc/sys/net/ipv4/ip_local_port_range
PORT_RANGE_SAVED=""
read -r port_lo port_hi <"$PORT_RANGE_FILE"
per_pair=$((PER_WORKER < PER_GATEWAY ? PER_WORKER : PER_GATEWAY))
if ((port_hi - port_lo + 1 < per_pair + 1000)); then
  PORT_RANGE_SAVED="$port_lo $port_hi"
  echo "widening $PORT_RANGE_FILE from $PORT_RANGE_SAVED to 10000 65000 (restored on exit)"
  echo "10000 65000" >"$PORT_RANGE_FILE"
fi

# shellcheck disable=SC2317 # run by the trap
million_cleanup() {
  cleanup
  rm -rf "${OUT:?}/bin"
  if [[ -n "$PORT_RANGE_SAVED" ]]; then
    echo "$PORT_RANGE_SAVED" >"$PORT_RANGE_FILE" && echo "restored $PORT_RANGE_FILE to $PORT_RANGE_SAVED"
    PORT_RANGE_SAVED=""
  fi
}
trap million_cleanup EXIT INT TERM

HERALD__AUTH__JWT_SECRET=$(random_hex)
HERALD__API__KEY=$(random_hex)
export HERALD__AUTH__JWT_SECRET HERALD__API__KEY

start_redis "$OUT/redis.log"

# One gateway: the walk runs this with HERALD_LT_GATEWAY_PORT and
# HERALD_LT_GATEWAY_INDEX set, and needs it to exec the gateway (its PID is
# the one measured). Server pings every 10 minutes: no heartbeat traffic.
printf -v GATEWAY_CMD '%s' \
  "HERALD__SERVER__LISTEN=127.0.0.1:\$HERALD_LT_GATEWAY_PORT" \
  " HERALD__NODE__ID=bench-million-\$HERALD_LT_GATEWAY_INDEX" \
  " HERALD__BACKEND=redis HERALD__REDIS__URL=$REDIS_URL" \
  " HERALD__WS__HEARTBEAT_MS=600000 RUST_LOG=${GATEWAY_LOG:-warn}" \
  " exec $(printf '%q' "$HERALD") serve" \
  " 2>>$(printf '%q' "$OUT_ABS")/gateway-\$HERALD_LT_GATEWAY_INDEX.log"

{
  echo "# bench-million $(date -u +%FT%TZ) steps=$steps_csv per_gateway=$PER_GATEWAY per_worker=$PER_WORKER floor=${MEM_FLOOR_MIB}MiB emergency=${EMERGENCY_MIB}MiB timeout=${TIMEOUT}s settle=${SETTLE}s concurrency=$CONCURRENCY backend=redis"
  echo "# machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(free -g | awk '/^Mem:/{print $2}') GiB RAM, MemAvailable $(mem_available_mib) MiB, load $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "# commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown); redis $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p')"
} | tee "$OUT/report.txt"

"$LOADTEST" conn --gateway-cmd "$GATEWAY_CMD" --steps "$steps_csv" \
  --per-gateway "$PER_GATEWAY" --per-worker "$PER_WORKER" \
  --mem-floor-mib "$MEM_FLOOR_MIB" --stall-secs "${STALL_SECS:-60}" --redis-url "$REDIS_URL" \
  --settle "$SETTLE" --round-timeout "$ROUND_TIMEOUT" --timeout "$TIMEOUT" \
  --concurrency "$CONCURRENCY" --post-to first \
  --out "$OUT/report.json" \
  > >(tee -a "$OUT/report.txt") 2> >(tee -a "$OUT/loadtest.log" >&2) &
LT_PID=$!
PIDS+=("$LT_PID")

# Memory every 2 s into memory.tsv, and the last-resort stop. Bounded by
# the walk's own time bound plus the time to wind down.
(
  echo -e "unix_s\tmem_available_mib\tslab_mib\tsunreclaim_mib" >"$OUT/memory.tsv"
  end=$((SECONDS + TIMEOUT + 900))
  while ((SECONDS < end)) && kill -0 "$LT_PID" 2>/dev/null; do
    read -r avail slab unrecl < <(awk '/^MemAvailable:/{a=$2} /^Slab:/{s=$2} /^SUnreclaim:/{u=$2}
      END {print int(a/1024), int(s/1024), int(u/1024)}' /proc/meminfo)
    echo -e "$(date +%s)\t$avail\t$slab\t$unrecl" >>"$OUT/memory.tsv"
    if ((avail < EMERGENCY_MIB)); then
      echo "watchdog: MemAvailable $avail MiB < EMERGENCY_MIB=$EMERGENCY_MIB: stopping the walk (pid $LT_PID)" \
        | tee -a "$OUT/report.txt" >&2
      kill "$LT_PID" 2>/dev/null || true
      break
    fi
    sleep 2
  done
) &
WATCHDOG_PID=$!
PIDS+=("$WATCHDOG_PID")

rc=0
wait "$LT_PID" || rc=$?
kill "$WATCHDOG_PID" 2>/dev/null || true
wait "$WATCHDOG_PID" 2>/dev/null || true
sleep 0.2 # let tee finish
echo "raw output in $OUT"
exit "$rc"
