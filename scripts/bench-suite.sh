#!/usr/bin/env bash
# bench-suite (`make bench`): the fixed benchmark suite that fits this
# machine (2 cores) in at most 10 minutes, one after the other (never two
# at once: they would measure each other), then one summary.
#
#   make bench
#   NO_BUILD=1 scripts/bench-suite.sh
#
# 1. bench-conn.sh at N=15000 (memory backend, ROUNDS broadcast rounds):
#    gateway RSS per idle connection, connect rate, broadcast fan-out.
# 2. bench-unicast.sh at RATES ("1000 5000") via http and ws, no search
#    for the maximum (FIND_MAX=0): cross-node latency through Redis.
# 3. bench-storm.sh with 20,000 clients (two killed nodes of 10,000: one
#    process may hold at most 20,000 open files here): resume times,
#    exactly once, peak Redis ops/s.
# Each step keeps its own raw output under bench-out/; the suite writes
# bench-out/suite-<timestamp>/summary.txt (and each step's stdout).
#
# Environment: CONN_N (15000), ROUNDS (5), RATES ("1000 5000"), VIAS
# ("http ws"), STORM_N (20000), NO_BUILD=1 to skip cargo.
set -euo pipefail

cd "$(dirname "$0")/.."
CONN_N=${CONN_N:-15000}
ROUNDS=${ROUNDS:-5}
RATES=${RATES:-"1000 5000"}
VIAS=${VIAS:-"http ws"}
STORM_N=${STORM_N:-20000}

SUITE="bench-out/suite-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$SUITE"
started=$(date +%s)

if [[ -z "${NO_BUILD:-}" ]]; then
  cargo build --release -p herald-gateway -p herald-loadtest
fi
export NO_BUILD=1

# step NAME COMMAND...: runs one benchmark script, its stdout kept in
# $SUITE/NAME.txt; prints where its raw output went.
step() {
  local name=$1 t0
  shift
  t0=$(date +%s)
  echo "== suite: $name ($(date -u +%T))"
  # A failed step is reported in the summary; the others still run.
  if ! "$@" | tee "$SUITE/$name.txt"; then echo "== suite: $name FAILED"; fi
  echo "$name $(( $(date +%s) - t0 ))" >>"$SUITE/durations"
}

# raw_dir NAME: the raw output folder a step's script printed.
raw_dir() { sed -n 's/^raw output in //p' "$SUITE/$1.txt" | tail -1; }

step conn env N="$CONN_N" ROUNDS="$ROUNDS" scripts/bench-conn.sh
step unicast env RATES="$RATES" VIAS="$VIAS" FIND_MAX=0 scripts/bench-unicast.sh
step storm env N="$STORM_N" STORM_TIMEOUT=60 TIMEOUT=300 scripts/bench-storm.sh

total=$(( $(date +%s) - started ))
python3 - "$(raw_dir conn)" "$(raw_dir unicast)" "$(raw_dir storm)" "$SUITE/durations" "$total" \
  <<'PY' | tee "$SUITE/summary.txt"
import json, os, sys

conn_dir, unicast_dir, storm_dir, durations, total = sys.argv[1:6]

def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None

def ms(us):
    return "-" if us is None else f"{us / 1000:.1f} ms"

def secs(ms_value):
    return "never" if ms_value is None else f"{ms_value / 1000:.2f} s"

took = dict(line.split() for line in open(durations))
print(f"== herald bench suite: {total} s in all ({', '.join(f'{k} {v} s' for k, v in took.items())}) ==")

c = load(os.path.join(conn_dir, "report.json"))
if c:
    ar = c.get("all_received", {})
    print(f"conn      {c.get('connections_ok')}/{c.get('connections_requested')} connections, "
          f"{c.get('connects_per_sec', 0):.0f} connects/s, gateway RSS {c.get('rss_per_conn_kib', 0):.2f} KiB/conn, "
          f"load-gen {c.get('loadgen_rss_per_conn_kib', 0):.2f} KiB/conn; broadcast all received "
          f"p50 {ms(ar.get('p50_us'))} p99 {ms(ar.get('p99_us'))} "
          f"({c.get('deliveries_received')}/{c.get('deliveries_expected')} deliveries)")
else:
    print(f"conn      no report in {conn_dir}")

trials = []
for name in sorted(os.listdir(unicast_dir)) if os.path.isdir(unicast_dir) else []:
    if name.endswith(".json"):
        trials += load(os.path.join(unicast_dir, name)) or []
for t in sorted(trials, key=lambda t: (t["via"], t["offered_rate"])):
    lat = t["latency"]
    cpu = t.get("cpu_us_per_msg")
    print(f"unicast   via {t['via']:<4} {t['offered_rate']:>6.0f}/s offered, {t['achieved_rate']:>6.0f}/s achieved, "
          f"p50 {ms(lat['p50_us'])} p99 {ms(lat['p99_us'])} max {ms(lat['max_us'])}, lost {t['lost']}, dup {t['duplicates']}"
          + (f", {cpu:.0f} µs CPU/msg" if cpu is not None else "")
          + (" SUSTAINED" if t["sustained"] else " not sustained"))
if not trials:
    print(f"unicast   no report in {unicast_dir}")

s = load(os.path.join(storm_dir, "storm.json"))
if s:
    r, x, red = s["resume"], s["exactly_once"], s.get("redis") or {}
    back = r["resumed_after"]
    print(f"storm     {s['clients']} clients on {len(s['victims'])} killed node(s) → {len(s['survivors'])} survivor(s): "
          f"resumed 50% {secs(back['p50_ms'])}, 99% {secs(back['p99_ms'])}, 100% {secs(back['p100_ms'])}; "
          f"lost {x['lost']}, doubled {x['faults']['doubled']} of {x['accepted']} accepted; "
          f"Redis peak {red.get('peak_ops_100ms') or 0:.0f} ops/s (100 ms), {red.get('peak_ops_1s') or 0:.0f} (1 s), "
          f"baseline {red.get('baseline_ops') or 0:.0f}; target {'MET' if s['target_met'] else 'NOT MET'}")
else:
    print(f"storm     no report in {storm_dir}")
print(f"raw output: {conn_dir} {unicast_dir} {storm_dir}")
PY
echo "suite output in $SUITE"
