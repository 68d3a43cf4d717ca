#!/usr/bin/env bash
# bench-webhooks-dead: a webhook receiver that is dead for an hour, on two
# gateway nodes joined by Redis. Sends go on at RATE a second (each to
# RECEIVERS users, with "fallback_after_secs": FALLBACK_SECS, none read), so
# every send raises events that can only be retried. A line a SAMPLE_SECS:
# send latency (p50/p99/max), the backlog (herald_webhook_backlog by state),
# events in flight on both nodes, tries a second, the nodes' RSS and Redis's
# used memory. Targets (issue 22): the backlog bounded and visible, sends
# unaffected.
#
#   scripts/bench-webhooks-dead.sh                 # an hour, the receiver's port closed
#   DEAD=hang DURATION_SECS=600 scripts/bench-webhooks-dead.sh
#
# Environment: DEAD (refuse: nothing listens, every try is refused; hang: a
# socket that listens and never accepts, every try times out), RATE (10),
# RECEIVERS (5), FALLBACK_SECS (10), DURATION_SECS (3600), SAMPLE_SECS (60),
# GATEWAY_LOG (warn), NO_BUILD=1 to skip cargo, HERALD (the gateway binary);
# the backlog's bounds (docs/webhooks.md, *A dead receiver*), unset = the
# gateway's defaults: MAX_PENDING (webhooks.max_pending), MAX_DEAD
# (webhooks.max_dead), BREAKER_FAILURES (webhooks.breaker_failures, 0 = no
# breaker), BREAKER_PROBE_SECS (webhooks.breaker_probe_secs), e.g.
#   MAX_PENDING=20000 DURATION_SECS=900 scripts/bench-webhooks-dead.sh
# Processes: a private redis-server, the dead receiver (hang) and two
# `herald serve` on free loopback ports, stopped by PID on exit.
# Raw output: bench-out/webhooks-dead-<timestamp>/ (report.txt, dead.json, logs).
set -euo pipefail

cd "$(dirname "$0")/.."
DEAD=${DEAD:-refuse}
RATE=${RATE:-10}
RECEIVERS=${RECEIVERS:-5}
FALLBACK_SECS=${FALLBACK_SECS:-10}
DURATION_SECS=${DURATION_SECS:-3600}
SAMPLE_SECS=${SAMPLE_SECS:-60}

source scripts/bench-lib.sh
if [[ -z "${NO_BUILD:-}" ]]; then
  cargo build --release -p herald-gateway
fi

RECEIVER_PORT=$(free_port)
case "$DEAD" in
  refuse) ;;
  hang)
    python3 -c 'import socket,sys,time
s=socket.socket(); s.bind(("127.0.0.1",int(sys.argv[1]))); s.listen(1)
time.sleep(1e9)' "$RECEIVER_PORT" &
    PIDS+=("$!")
    ;;
  *) echo "DEAD must be refuse or hang" >&2; exit 1 ;;
esac
for knob in MAX_PENDING MAX_DEAD BREAKER_FAILURES BREAKER_PROBE_SECS; do
  if [[ -n "${!knob:-}" ]]; then export "HERALD__WEBHOOKS__$knob=${!knob}"; fi
done
export HERALD__WEBHOOKS__URL="http://127.0.0.1:$RECEIVER_PORT/hook"
export HERALD__WEBHOOKS__SECRET="whsec_$(head -c 32 /dev/urandom | base64)"
NO_BUILD=1 bench_two_nodes webhooks-dead

bench_header "# bench-webhooks-dead $(date -u +%FT%TZ) dead=$DEAD rate=$RATE/s receivers=$RECEIVERS fallback=${FALLBACK_SECS}s duration=${DURATION_SECS}s max_pending=${MAX_PENDING:-default} max_dead=${MAX_DEAD:-default} breaker_failures=${BREAKER_FAILURES:-default} breaker_probe_secs=${BREAKER_PROBE_SECS:-default} targets: backlog bounded and visible, sends unaffected"

python3 scripts/bench-webhooks.py dead --gateway "http://127.0.0.1:$A_PORT" --gateway "http://127.0.0.1:$B_PORT" \
  --api-key "$HERALD__API__KEY" --node-pid "$A_PID" --node-pid "$B_PID" --redis-port "$REDIS_PORT" \
  --rate "$RATE" --receivers "$RECEIVERS" --fallback-secs "$FALLBACK_SECS" \
  --duration-secs "$DURATION_SECS" --sample-secs "$SAMPLE_SECS" --out "$OUT/dead.json" | tee -a "$OUT/report.txt"
echo "raw output in $OUT"
