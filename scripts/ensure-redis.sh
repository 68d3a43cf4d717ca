#!/usr/bin/env bash
# The tests start their own redis-server processes on free ports; they need the
# binaries. Install Debian's redis-server when missing, or say why we cannot.
set -euo pipefail
if command -v redis-server >/dev/null && command -v redis-cli >/dev/null; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "redis-server not found: installing Debian's redis-server package" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  # The package may start a service on 6379; the tests never use it.
  exit 0
fi
echo "error: redis-server and redis-cli are needed by the tests; install the redis-server package (Redis >= 7)" >&2
exit 1
