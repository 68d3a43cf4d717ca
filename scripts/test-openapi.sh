#!/usr/bin/env bash
# The server API's OpenAPI document checked by tools nobody here wrote
# (`make test`; issue 26):
#   1. openapi-spec-validator accepts docs/openapi.json (OpenAPI 3.1);
#   2. schemathesis sends every operation generated requests — valid ones,
#      invalid ones, and ones without credentials — at live nodes: one on
#      the memory backend, then two on a private Redis (each in turn), and
#      checks that no answer is a 5xx, every answer conforms to the
#      document (status, content type, headers, body schema), invalid
#      requests are refused, and no route answers without the credentials
#      it declares;
#   3. schemathesis's stateful phase follows the document's links on the
#      same nodes (a send, then its receiver's history, counts, mark and
#      export; a publish, then its job; ...), with the same checks.
# `tests/openapi.rs` checks that docs/openapi.json is what the code
# generates. OPENAPI_EXAMPLES (default 10) bounds the examples per operation
# and phase, OPENAPI_SCENARIOS (default 50) the stateful phase's sequences;
# OPENAPI_SEED fixes schemathesis's seed. Reports (JUnit, NDJSON) and node
# logs land in target/openapi-test/.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-lib.sh

EXAMPLES=${OPENAPI_EXAMPLES:-10}
# The stateful phase: sequences (scenarios) of linked calls.
SCENARIOS=${OPENAPI_SCENARIOS:-50}
OUT=target/openapi-test
VENV=target/openapi-venv
REQ=scripts/openapi/requirements.txt
rm -rf "$OUT" && mkdir -p "$OUT"

# Python tools in a venv of their own, reinstalled when the pins change.
if [ ! -x "$VENV/bin/schemathesis" ] || ! cmp -s "$REQ" "$VENV/requirements.txt"; then
  if [ ! -x "$VENV/bin/python" ] && ! python3 -m venv "$VENV"; then
    echo "error: python3 -m venv failed (Debian: apt-get install python3-venv)" >&2
    exit 1
  fi
  if ! "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQ"; then
    echo "error: pip install -r $REQ failed (PyPI unreachable?)" >&2
    exit 1
  fi
  cp "$REQ" "$VENV/requirements.txt"
fi

"$VENV/bin/openapi-spec-validator" docs/openapi.json

cargo build --quiet -p herald-gateway --bin herald
HERALD=target/debug/herald

export HERALD__AUTH__JWT_SECRET="$(random_hex)"
export HERALD_TEST_API_KEY="$(random_hex)"
export HERALD__API__KEY="$HERALD_TEST_API_KEY"
export HERALD_TEST_USER_TOKEN="$("$HERALD" token --user schemathesis-user)"
# Fuzzing is thousands of requests from one user: the per-user limit (and
# its documented 429) would answer most of them.
export HERALD__LIMITS__REQUESTS_PER_SEC=0

# run_schemathesis NAME PORT: every operation of the document the node
# serves, against that node: generated requests (examples, coverage,
# fuzzing), then the document's links in sequences (stateful: a send its
# receiver's history, counts, mark and export follow; see
# scripts/openapi/stateful.toml). Nothing may fail in either.
run_schemathesis() {
  echo "schemathesis: $1 (127.0.0.1:$2), $EXAMPLES examples per operation and phase"
  schemathesis_phases "$1" "$2" schemathesis.toml examples,coverage,fuzzing "$EXAMPLES" \
    positive_data_acceptance
  echo "schemathesis: $1 (127.0.0.1:$2), the links in $SCENARIOS sequences"
  # `use_after_free` wants a 404 from any read about a resource after its
  # DELETE. A Herald user is not a resource the API creates: every user id
  # reads as an inbox, empty for one never seen, and `erase_user` deletes
  # the user's data, not the id, so a read after the erasure answers 200
  # with nothing in it, as the document's own link from `erase_user` says
  # and the behavioural suite asserts
  # (user_data_export_lists_everything_and_erase_empties_it). It fired only
  # on seeds whose sequence read a user's history after erasing that user.
  schemathesis_phases "$1-stateful" "$2" stateful.toml stateful "$SCENARIOS" \
    positive_data_acceptance,use_after_free
  links_covered "$OUT/$1-stateful"
}

# schemathesis_phases NAME PORT CONFIG PHASES MAX_EXAMPLES EXCLUDED_CHECKS
# (`--checks all` on the command line overrides a config file's checks, so
# the exclusions are given here).
schemathesis_phases() {
  local seed=()
  if [ -n "${OPENAPI_SEED:-}" ]; then seed=(--seed "$OPENAPI_SEED"); fi
  "$VENV/bin/schemathesis" --config-file "scripts/openapi/$3" run \
    "http://127.0.0.1:$2/openapi.json" \
    --url "http://127.0.0.1:$2" \
    --checks all \
    --exclude-checks "$6" \
    --phases "$4" \
    --max-examples "$5" \
    --workers 2 \
    --suppress-health-check all \
    --request-timeout 10 \
    --report junit,ndjson --report-dir "$OUT/$1" \
    "${seed[@]}"
}

# links_covered DIR: the stateful run must have walked a chain the links
# exist for: a send stored (202), then a linked call about its receiver
# answered with success (history, inbox, counts, a mark, the export); else
# the phase ran nothing of substance.
links_covered() {
  local report
  report=$(ls "$1"/*.ndjson)
  if ! python3 - "$report" <<'PY'
import json, sys
def calls(node):
    if isinstance(node, dict):
        request, response = node.get("request"), node.get("response")
        if isinstance(request, dict) and isinstance(response, dict):
            yield request, response
        for value in node.values():
            yield from calls(value)
    elif isinstance(node, list):
        for value in node:
            yield from calls(value)
sent = followed = 0
for line in open(sys.argv[1]):
    for request, response in calls(json.loads(line)):
        path = "/" + request.get("uri", "").split("?")[0].split("/", 3)[-1]
        ok = 200 <= response.get("status_code", 0) < 300
        sent += ok and request.get("method") == "POST" and path == "/v1/messages"
        followed += ok and path.startswith("/v1/users/stateful-user/")
print(f"stateful: {sent} sends stored, {followed} linked calls about the receiver answered")
sys.exit(0 if sent and followed else 1)
PY
  then
    echo "error: the stateful run stored no message or followed no link from one (report: $report)" >&2
    exit 1
  fi
}

# The memory backend (the default).
MEM_PORT=$(free_port)
HERALD__SERVER__LISTEN="127.0.0.1:$MEM_PORT" RUST_LOG=warn "$HERALD" serve 2>"$OUT/memory.log" &
MEM_PID=$!
PIDS+=("$MEM_PID")
wait_http "http://127.0.0.1:$MEM_PORT/healthz" "$MEM_PID" "$OUT/memory.log"
run_schemathesis memory "$MEM_PORT"
kill "$MEM_PID" && wait "$MEM_PID" 2>/dev/null || true

# Two nodes on one private Redis: each in turn, the other live beside it
# (an erasure, a publish job, a scheduled send reach both).
start_redis "$OUT/redis.log"
start_redis_gateway a "$OUT/gateway-a.log"
A_PORT=$GW_PORT
start_redis_gateway b "$OUT/gateway-b.log"
B_PORT=$GW_PORT
run_schemathesis redis-a "$A_PORT"
run_schemathesis redis-b "$B_PORT"
echo "openapi: docs/openapi.json valid; schemathesis found nothing on the memory backend and on two nodes on Redis"
