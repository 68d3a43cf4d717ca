#!/usr/bin/env bash
# The browser side: the SDK's unit tests (vitest) and the end-to-end tests of
# the SDK and the demo inbox in headless Chromium against real herald nodes
# (clients/e2e). Installs Debian's chromium where it is missing, as
# ensure-redis.sh does for redis-server; when that cannot be done the tests
# are skipped with the reason printed, never silently.
#
# Environment: CHROMIUM (default /usr/bin/chromium), CARGO (default cargo),
# BROWSER_TEST_TIMEOUT (seconds for the end-to-end run, default 600).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
CARGO=${CARGO:-cargo}
LIMIT=${BROWSER_TEST_TIMEOUT:-600}

skip() {
  echo "SKIP browser tests: $*"
  exit 0
}

# --- what the tests need -----------------------------------------------------
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  skip "node and npm are not installed (Node >= 20 needed)"
fi
if [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
  skip "Node $(node -v) is too old (>= 20 needed)"
fi
if [ ! -x "$CHROMIUM" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "chromium not found: installing Debian's chromium and chromium-driver packages" >&2
    if ! { timeout 300 apt-get update -qq &&
      DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null; }; then
      skip "chromium is missing and apt-get could not install it"
    fi
    [ -x "$CHROMIUM" ] || skip "apt-get installed chromium but $CHROMIUM is not there"
  else
    skip "$CHROMIUM is missing and cannot be installed here (needs root and apt-get)"
  fi
fi
if ! ./scripts/ensure-redis.sh; then
  skip "redis-server is missing and could not be installed"
fi

npm_ci() {
  local dir=$1
  if ! (cd "$dir" && timeout 300 npm ci --no-audit --no-fund --loglevel=error); then
    if ! timeout 20 npm ping >/dev/null 2>&1 && [ ! -d "$dir/node_modules" ]; then
      skip "npm ci in $dir failed and the npm registry is unreachable"
    fi
    echo "error: npm ci failed in $dir" >&2
    exit 1
  fi
}

# --- processes started here are ended on the way out -------------------------
E2E_PID=
cleanup() {
  if [ -n "$E2E_PID" ] && kill -0 "$E2E_PID" 2>/dev/null; then
    # The test runner leads its own process group: herald, redis-server, chromium.
    kill -TERM -- "-$E2E_PID" 2>/dev/null || true
    sleep 2
    kill -KILL -- "-$E2E_PID" 2>/dev/null || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the SDK -----------------------------------------------------------------
echo "== clients/js: install, build, unit tests"
npm_ci clients/js
(cd clients/js && timeout 120 npm run --silent build -- --size && timeout 300 npx tsc --noEmit && timeout 300 npx vitest run)

# --- the gateway ---------------------------------------------------------------
echo "== herald gateway (debug build)"
timeout 1800 "$CARGO" build -p herald-gateway

# --- end to end ------------------------------------------------------------------
echo "== clients/e2e: Chromium, and socket.io-client 4 on /socket.io/, against real herald nodes (artefacts in clients/e2e/artifacts)"
npm_ci clients/e2e
cd clients/e2e
rm -rf artifacts
export HERALD_BIN="$ROOT/target/debug/herald" CHROMIUM
setsid timeout -k 15 "$LIMIT" node --test --test-concurrency=1 --test-timeout=180000 browser.test.mjs socketio.test.mjs &
E2E_PID=$!
set +e
wait "$E2E_PID"
rc=$?
set -e
E2E_PID=
if [ "$rc" = 124 ]; then
  echo "error: the browser tests ran past ${LIMIT}s" >&2
fi
# A failure's cause is often in a node's log, which CI does not keep.
if [ "$rc" != 0 ]; then
  for log in artifacts/*.log; do
    [ -f "$log" ] || continue
    echo "== tail of clients/e2e/$log" >&2
    tail -n 40 "$log" >&2
  done
fi
exit "$rc"
