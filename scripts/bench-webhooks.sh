#!/usr/bin/env bash
# bench-webhooks: the unread fallback webhooks in bulk, on two gateway nodes
# joined by Redis. MESSAGES inbox copies (one message to 1,000 receivers per
# POST /v1/messages, over both nodes) with "fallback_after_secs"; every
# other receiver marks theirs read before the due time (one
# POST /v1/users/{id}/mark each, right after its batch was sent). The receiver (scripts/bench-webhooks.py,
# Python's threading HTTP server) verifies every request with the official
# standardwebhooks library. Checked: exactly MESSAGES/2 events created
# (herald_webhook_events_total) and each verified, none for a reader, no
# forged request; reported: repeated requests (retries of a try the
# receiver answered too late; it dedupes on webhook-id), the tries by
# result, and how long after the last copy's due time the last webhook
# arrived (target: within 30 s).
#
#   scripts/bench-webhooks.sh
#   MESSAGES=20000 FALLBACK_SECS=30 scripts/bench-webhooks.sh
#
# Environment: MESSAGES (100000), FALLBACK_SECS (10, the target's; a batch's
# marks must end before its own due time, the run fails otherwise),
# WAIT_SECS (120), CONCURRENCY (32), GATEWAY_LOG (warn), NO_BUILD=1
# to skip cargo. The gateways' settings pass through (any HERALD__*, e.g.
# HERALD__WEBHOOKS__MAX_IN_FLIGHT).
# Processes: a private redis-server, the receiver and two `herald serve` on
# free loopback ports, stopped by PID on exit.
# Raw output: bench-out/webhooks-<timestamp>/ (report.txt, webhooks.json, logs).
set -euo pipefail

cd "$(dirname "$0")/.."
MESSAGES=${MESSAGES:-100000}
FALLBACK_SECS=${FALLBACK_SECS:-10}
WAIT_SECS=${WAIT_SECS:-120}
CONCURRENCY=${CONCURRENCY:-32}

python3 -c 'import standardwebhooks' 2>/dev/null || {
  echo "the standardwebhooks package is needed: pip install -r crates/herald-gateway/tests/fixtures/webhooks/requirements.txt" >&2
  exit 1
}
source scripts/bench-lib.sh
if [[ -z "${NO_BUILD:-}" ]]; then
  cargo build --release -p herald-gateway
fi

SECRET="whsec_$(head -c 32 /dev/urandom | base64)"
RECEIVER_PORT=$(free_port)
python3 scripts/bench-webhooks.py receiver "$RECEIVER_PORT" "$SECRET" &
RECEIVER_PID=$!
PIDS+=("$RECEIVER_PID")
export HERALD__WEBHOOKS__URL="http://127.0.0.1:$RECEIVER_PORT/hook"
export HERALD__WEBHOOKS__SECRET="$SECRET"
NO_BUILD=1 bench_two_nodes webhooks
wait_http "http://127.0.0.1:$RECEIVER_PORT/stats" "$RECEIVER_PID" /dev/null

bench_header "# bench-webhooks $(date -u +%FT%TZ) messages=$MESSAGES fallback=${FALLBACK_SECS}s targets: created=delivered=messages/2, each verified once, last within 30 s of its due time; max_in_flight=${HERALD__WEBHOOKS__MAX_IN_FLIGHT:-default}"

python3 scripts/bench-webhooks.py drive --gateway "http://127.0.0.1:$A_PORT" --gateway "http://127.0.0.1:$B_PORT" \
  --receiver "http://127.0.0.1:$RECEIVER_PORT" --api-key "$HERALD__API__KEY" \
  --messages "$MESSAGES" --fallback-secs "$FALLBACK_SECS" --wait-secs "$WAIT_SECS" \
  --concurrency "$CONCURRENCY" --out "$OUT/webhooks.json" | tee -a "$OUT/report.txt"
echo "raw output in $OUT"
