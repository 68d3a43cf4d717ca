#!/usr/bin/env bash
# bench-starvation: a node starved of CPU while clients keep connecting
# sheds instead of spiralling. Node A is pinned to one core (taskset) that
# HOGS busy loops share with it for HOG_SECS; node B (on the other core)
# is the cluster's other node, the one that would reap A if A's presence
# heartbeat lapsed. N clients connect to A at CONCURRENCY in flight
# (`herald-loadtest conn`, on the other core), hold, then get ROUNDS
# broadcasts once the hog is over. Admission control is on (its defaults:
# event-loop lag 250 ms sheds). Every second the script samples, from Redis
# (not from the starved node): the online users (`SCARD` of presence's
# online set) and whether A's heartbeat key exists; and from A's /metrics
# when it answers within 1 s: its connections, admission refusals and
# presence lapses. The targets: A refuses upgrades while starved (503, its
# admission refusals > 0), its heartbeat never lapses (no lapse, the key
# always there, so B never reaps it), and after the hog presence is right:
# online users = A's connections = the clients connected; every connected
# client gets every broadcast (none lost).
#
#   scripts/bench-starvation.sh
#   N=4000 HOGS=8 HOG_SECS=20 scripts/bench-starvation.sh
#
# Environment: N (8000), HOGS (16 busy loops), HOG_SECS (40), CORE (0: A's
# and the hogs' core; the rest run on the next one), CONCURRENCY (256),
# ROUNDS (3), TIMEOUT (300 s for the load generator), GATEWAY_LOG (warn),
# NO_BUILD=1 to skip cargo. Needs 2 cores or more.
# Raw output: bench-out/starvation-<timestamp>/ (report.txt, samples.tsv,
# conn.json, logs).
set -euo pipefail

cd "$(dirname "$0")/.."
N=${N:-8000}
HOGS=${HOGS:-16}
HOG_SECS=${HOG_SECS:-40}
CORE=${CORE:-0}
CONCURRENCY=${CONCURRENCY:-256}
ROUNDS=${ROUNDS:-3}
TIMEOUT=${TIMEOUT:-300}
OTHER=$(( (CORE + 1) % $(nproc) ))
(($(nproc) >= 2)) || { echo "bench-starvation needs 2 cores or more" >&2; exit 1; }

source scripts/bench-lib.sh
# What this benchmark measures (bench-lib turns it off for the others).
export HERALD__ADMISSION__ENABLED=true
bench_start starvation
export HERALD__AUTH__JWT_SECRET="$(random_hex)"
export HERALD__API__KEY="$(random_hex)"

taskset -c "$OTHER" true || { echo "taskset cannot pin to core $OTHER" >&2; exit 1; }
start_redis "$OUT/redis.log"
taskset -cp "$OTHER" "$REDIS_PID" >/dev/null
start_redis_gateway b "$OUT/gateway-b.log"
taskset -cp "$OTHER" "$GW_PID" >/dev/null
A_PORT=$(free_port)
(
  export HERALD__SERVER__LISTEN="127.0.0.1:$A_PORT"
  export HERALD__BACKEND=redis
  export HERALD__REDIS__URL="$REDIS_URL"
  export HERALD__NODE__ID=bench-a
  # No heartbeat traffic from the clients during the hold.
  export HERALD__WS__HEARTBEAT_MS=600000
  export RUST_LOG=${GATEWAY_LOG:-warn}
  exec taskset -c "$CORE" "$HERALD" serve
) 2>"$OUT/gateway-a.log" &
A_PID=$!
PIDS+=("$A_PID")
wait_http "http://127.0.0.1:$A_PORT/healthz" "$A_PID" "$OUT/gateway-a.log"
A="http://127.0.0.1:$A_PORT"
echo "gateway a: pid $A_PID on 127.0.0.1:$A_PORT, pinned to core $CORE"

bench_header "# bench-starvation $(date -u +%FT%TZ) N=$N hogs=$HOGS on core $CORE for ${HOG_SECS}s concurrency=$CONCURRENCY"

# The hogs: busy loops on A's core, each ended by `timeout`.
for ((h = 0; h < HOGS; h++)); do
  timeout "$HOG_SECS" taskset -c "$CORE" sh -c 'while :; do :; done' &
  PIDS+=("$!")
done
HOG_START=$(date +%s)

# The sampler: one line a second, bounded. `metric NAME` sums a series of
# A's /metrics over its labels (every series carries `node`); "-" when absent.
metric() { awk -v m="$1" 'index($1, m "{") == 1 || $1 == m {s += $2; n++} END {print n ? s : "-"}'; }
(
  echo -e "t_s\tonline_users\ta_alive\ta_connections\ta_refusals\ta_lapses\thog"
  for ((i = 0; i < TIMEOUT + HOG_SECS + 60; i++)); do
    t=$(($(date +%s) - HOG_START))
    online=$(redis-cli -p "$REDIS_PORT" scard 'herald:{online}' 2>/dev/null || echo -)
    alive=$(redis-cli -p "$REDIS_PORT" exists 'herald:{n:bench-a}:alive' 2>/dev/null || echo -)
    m=$(curl -fsS --max-time 1 "$A/metrics" 2>/dev/null || true)
    conns=$(echo "$m" | metric herald_connections)
    refusals=$(echo "$m" | metric herald_admission_refusals_total)
    lapses=$(echo "$m" | metric herald_presence_lapses_total)
    hog=$((t < HOG_SECS ? 1 : 0))
    echo -e "$t\t$online\t$alive\t$conns\t$refusals\t$lapses\t$hog"
    sleep 1
  done
) >"$OUT/samples.tsv" &
SAMPLER=$!
PIDS+=("$SAMPLER")

# The clients connect while the hog runs, hold until it is over (the
# settle), then get the broadcasts.
SETTLE=$((HOG_SECS + 15))
taskset -c "$OTHER" "$LOADTEST" conn --gateway "$A" -n "$N" --rounds "$ROUNDS" \
  --settle "$SETTLE" --concurrency "$CONCURRENCY" --timeout "$TIMEOUT" \
  --out "$OUT/conn.json" >"$OUT/conn.txt" 2>&1 || echo "herald-loadtest conn failed (see $OUT/conn.txt)"
sleep 2
kill "$SAMPLER" 2>/dev/null || true

python3 - "$OUT" "$N" <<'EOF' | tee -a "$OUT/report.txt"
import csv, json, sys
out, n = sys.argv[1], int(sys.argv[2])
rows = list(csv.DictReader(open(f"{out}/samples.tsv"), delimiter="\t"))
def num(v):
    return None if v in ("-", "", None) else float(v)
try:
    conn = json.load(open(f"{out}/conn.json"))
except (OSError, ValueError):
    conn = None
hog = [r for r in rows if r["hog"] == "1"]
after = [r for r in rows if r["hog"] == "0"]
refusals = max([num(r["a_refusals"]) or 0 for r in rows] or [0])
lapses = max([num(r["a_lapses"]) or 0 for r in rows] or [0])
unanswered = sum(1 for r in hog if num(r["a_connections"]) is None)
alive_missing = sum(1 for r in rows if r["a_alive"] != "1")
ok = conn["connections_ok"] if conn else None
# Presence after the hog, read while the clients still held their
# connections (the load generator closes them when it ends).
held = [r for r in after if ok and num(r["a_connections"]) == ok]
last = held[-1] if held else None
gap = max([abs(num(r["online_users"]) - num(r["a_connections"])) for r in hog
           if num(r["online_users"]) is not None and num(r["a_connections"]) is not None] or [0])
print(f"samples            {len(rows)} ({len(hog)} during the hog; A's /metrics unanswered within 1 s in {unanswered} of those)")
print(f"admission          {refusals:.0f} upgrades refused by A")
print(f"presence kept      lapses {lapses:.0f}; A's heartbeat key missing in {alive_missing} samples; during the hog online users and A's connections differed by {gap:.0f} at most")
if conn:
    print(f"clients            {conn['connections_ok']} of {n} connected, {conn['connections_failed']} failed, {conn['connect_retries']} retries, in {conn['connect_secs']:.1f} s")
    print(f"broadcasts         {conn['deliveries_received']} of {conn['deliveries_expected']} received, {conn['dropped_connections']} connections dropped")
if last:
    print(f"after the hog      online users {last['online_users']}, A's connections {last['a_connections']} (t = {last['t_s']} s)")
else:
    print("after the hog      no sample with A holding every connected client")
right = last is not None and num(last["online_users"]) == ok
met = (refusals > 0 and lapses == 0 and alive_missing == 0 and right
       and conn["deliveries_received"] == conn["deliveries_expected"] and conn["dropped_connections"] == 0)
print(f"target             refuses while starved, presence kept and right after, no client lost: {'MET' if met else 'NOT MET'}")
EOF
echo "raw output in $OUT"
