#!/usr/bin/env bash
# The Python server SDK (clients/python, herald-server) against live herald
# nodes: builds the gateway, installs the package and its pinned test
# dependencies into a virtual environment under target/, and runs pytest,
# whose fixtures start the nodes (memory backend; one on a private
# redis-server on a free port) and stop them (clients/python/tests/conftest.py).
#
# Environment: PYTHON (default python3, >= 3.11), CARGO (default cargo),
# HERALD_BIN (a prebuilt herald binary: skips the build),
# SDK_PYTHON_TEST_TIMEOUT (seconds for the pytest run, default 600).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PYTHON=${PYTHON:-python3}
CARGO=${CARGO:-cargo}
LIMIT=${SDK_PYTHON_TEST_TIMEOUT:-600}
VENV=$ROOT/target/sdk-python-venv
export HERALD_SDK_ARTIFACTS=$ROOT/target/sdk-python-artifacts

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "error: the Python SDK needs Python >= 3.11 ($PYTHON: $("$PYTHON" --version 2>&1 || echo missing))" >&2
  exit 1
fi
./scripts/ensure-redis.sh

# --- processes started here are ended on the way out -------------------------
PYTEST_PID=
cleanup() {
  if [ -n "$PYTEST_PID" ] && kill -0 "$PYTEST_PID" 2>/dev/null; then
    # pytest leads its own process group: its herald and redis-server children.
    kill -TERM -- "-$PYTEST_PID" 2>/dev/null || true
    sleep 2
    kill -KILL -- "-$PYTEST_PID" 2>/dev/null || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the gateway ---------------------------------------------------------------
if [ -z "${HERALD_BIN:-}" ]; then
  echo "== herald gateway (debug build)"
  timeout 1800 "$CARGO" build -p herald-gateway
  HERALD_BIN=$ROOT/target/debug/herald
fi
export HERALD_BIN

# --- the package and its test dependencies (pinned in pyproject.toml) ----------
echo "== clients/python: install into target/sdk-python-venv"
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
timeout 600 "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
  -e "clients/python[test]"

# --- the tests -------------------------------------------------------------------
echo "== clients/python: pytest against live nodes (logs in target/sdk-python-artifacts)"
rm -rf "$HERALD_SDK_ARTIFACTS"
mkdir -p "$HERALD_SDK_ARTIFACTS"
cd clients/python
setsid timeout -k 15 "$LIMIT" "$VENV/bin/python" -m pytest &
PYTEST_PID=$!
set +e
wait "$PYTEST_PID"
rc=$?
set -e
PYTEST_PID=
if [ "$rc" = 124 ]; then
  echo "error: the Python SDK tests ran past ${LIMIT}s" >&2
fi
# A failure's cause is often in a node's log, which CI does not keep.
if [ "$rc" != 0 ]; then
  for log in "$HERALD_SDK_ARTIFACTS"/*.log; do
    [ -f "$log" ] || continue
    echo "== tail of $log" >&2
    tail -n 40 "$log" >&2
  done
fi
exit "$rc"
