#!/usr/bin/env bash
# The Node server SDK (clients/node, @herald/server) against live nodes:
# builds the gateway (debug) unless HERALD_BIN names one, then
# `npm ci && npm test` in clients/node, whose vitest globalSetup
# (test/gateways.ts) starts a node on the memory backend and, on a private
# redis-server on a free port, a node on Redis, and stops them at the end.
# Skipped, saying so, only where node/npm is missing or too old.
#
# Environment: HERALD_BIN (a built gateway; default: build target/debug/herald),
# CARGO (default cargo), SDK_NODE_TEST_TIMEOUT (seconds for npm test, default 300).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CARGO=${CARGO:-cargo}
LIMIT=${SDK_NODE_TEST_TIMEOUT:-300}

skip() {
  echo "SKIP Node server SDK tests (clients/node): $*"
  exit 0
}

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  skip "node and npm are not installed (Node >= 20 needed)"
fi
if [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
  skip "Node $(node -v) is too old (>= 20 needed)"
fi
# The Redis case needs redis-server; without it that case is skipped by the
# tests themselves, saying so.
./scripts/ensure-redis.sh || echo "redis-server is missing: the SDK's Redis case will be skipped" >&2

if [ -z "${HERALD_BIN:-}" ]; then
  echo "== herald gateway (debug build)"
  timeout 1800 "$CARGO" build -p herald-gateway
  HERALD_BIN="$ROOT/target/debug/herald"
fi
[ -x "$HERALD_BIN" ] || { echo "error: no gateway binary at $HERALD_BIN" >&2; exit 1; }
export HERALD_BIN

echo "== clients/node: npm ci, npm test (build, type-check, vitest against live nodes)"
cd clients/node
if ! timeout 300 npm ci --no-audit --no-fund --loglevel=error; then
  if ! timeout 20 npm ping >/dev/null 2>&1 && [ ! -d node_modules ]; then
    skip "npm ci failed and the npm registry is unreachable"
  fi
  echo "error: npm ci failed in clients/node" >&2
  exit 1
fi
set +e
timeout -k 10 "$LIMIT" npm test
rc=$?
set -e
if [ "$rc" = 124 ]; then
  echo "error: the Node SDK tests ran past ${LIMIT}s" >&2
fi
# A failure's cause is often in a node's log, which CI does not keep.
if [ "$rc" != 0 ]; then
  for log in .test-logs/*.log; do
    [ -f "$log" ] || continue
    echo "== tail of clients/node/$log" >&2
    tail -n 40 "$log" >&2
  done
fi
exit "$rc"
