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
#      it declares.
# `tests/openapi.rs` checks that docs/openapi.json is what the code
# generates. OPENAPI_EXAMPLES (default 10) bounds the examples per operation
# and phase; OPENAPI_SEED fixes schemathesis's seed. Reports (JUnit, NDJSON)
# and node logs land in target/openapi-test/.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-lib.sh

EXAMPLES=${OPENAPI_EXAMPLES:-10}
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
# serves, against that node.
run_schemathesis() {
  echo "schemathesis: $1 (127.0.0.1:$2), $EXAMPLES examples per operation and phase"
  local seed=()
  if [ -n "${OPENAPI_SEED:-}" ]; then seed=(--seed "$OPENAPI_SEED"); fi
  "$VENV/bin/schemathesis" --config-file scripts/openapi/schemathesis.toml run \
    "http://127.0.0.1:$2/openapi.json" \
    --url "http://127.0.0.1:$2" \
    --checks all \
    --exclude-checks positive_data_acceptance \
    --phases examples,coverage,fuzzing \
    --max-examples "$EXAMPLES" \
    --workers 2 \
    --suppress-health-check all \
    --request-timeout 10 \
    --report junit,ndjson --report-dir "$OUT/$1" \
    "${seed[@]}"
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
