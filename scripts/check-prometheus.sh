#!/usr/bin/env bash
# Checks the monitoring files in deploy/ with Prometheus's own tools:
#   promtool check config  deploy/prometheus/prometheus.yml (and the rules it names)
#   promtool check rules   deploy/prometheus/alerts.yml
#   promtool test rules    deploy/prometheus/alerts.test.yml (a unit test per alert)
# and that deploy/grafana/herald.json parses and every panel has a query.
# The gateway test tests/prometheus.rs also needs the `prometheus` binary:
# install Debian's `prometheus` package when promtool is missing, as
# ensure-redis.sh does for redis-server. Never skips: fails when it cannot.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "promtool/prometheus not found: installing Debian's prometheus package (apt-get update; apt-get install prometheus)" >&2
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get update -qq; then
      echo "error: apt-get update failed; install the prometheus package (>= 2.42) by hand" >&2
      exit 1
    fi
    if ! apt-get install -y -qq --no-install-recommends prometheus >/dev/null; then
      echo "error: apt-get install prometheus failed; install the prometheus package (>= 2.42) by hand" >&2
      exit 1
    fi
    # The package may try to start a service on :9090; the tests never use it.
  else
    echo "error: promtool and prometheus are needed (checks of deploy/prometheus and tests/prometheus.rs);" >&2
    echo "       install the Debian package prometheus (>= 2.42), or run this script as root to install it" >&2
    exit 1
  fi
fi
for bin in promtool prometheus; do
  command -v "$bin" >/dev/null || { echo "error: $bin still not in PATH after installing prometheus" >&2; exit 1; }
done
echo "promtool: $(promtool --version 2>&1 | head -n1)"

echo "== promtool check config deploy/prometheus/prometheus.yml"
promtool check config deploy/prometheus/prometheus.yml
echo "== promtool check rules deploy/prometheus/alerts.yml"
promtool check rules deploy/prometheus/alerts.yml
echo "== promtool test rules deploy/prometheus/alerts.test.yml"
promtool test rules deploy/prometheus/alerts.test.yml

# Every alert in alerts.yml has a unit test and a runbook entry.
alerts=$(sed -n 's/^[[:space:]]*- alert:[[:space:]]*\([A-Za-z0-9_]*\).*/\1/p' deploy/prometheus/alerts.yml)
[ -n "$alerts" ] || { echo "error: no alerts found in deploy/prometheus/alerts.yml" >&2; exit 1; }
for a in $alerts; do
  grep -q "alertname:[[:space:]]*$a\$" deploy/prometheus/alerts.test.yml \
    || { echo "error: alert $a has no unit test in deploy/prometheus/alerts.test.yml" >&2; exit 1; }
  grep -q "^### $a\$" docs/operations.md \
    || { echo "error: alert $a has no runbook entry (### $a) in docs/operations.md" >&2; exit 1; }
done
echo "alerts with unit tests and runbook entries: $(echo $alerts)"

echo "== deploy/grafana/herald.json"
if ! command -v python3 >/dev/null; then
  command -v jq >/dev/null || { echo "error: python3 or jq is needed to check deploy/grafana/herald.json" >&2; exit 1; }
  bad=$(jq -r '[.panels[] | recurse(.panels[]?) | select(.type != "row")
                | select(((.targets // []) | length) == 0 or any(.targets[]; ((.expr // "") | test("^\\s*$"))))
                | .title] | .[]' deploy/grafana/herald.json) \
    || { echo "error: deploy/grafana/herald.json does not parse" >&2; exit 1; }
  [ -z "$bad" ] || { echo "error: panels without a query (targets[].expr): $bad" >&2; exit 1; }
  echo "deploy/grafana/herald.json: parses, each panel with a query (jq)"
  echo "prometheus checks passed"
  exit 0
fi
python3 - deploy/grafana/herald.json <<'PY'
import json, sys
path = sys.argv[1]
with open(path) as f:
    dash = json.load(f)
def panels(items):
    for p in items:
        yield p
        yield from panels(p.get("panels", []))
bad, n, queries = [], 0, 0
for p in panels(dash.get("panels", [])):
    if p.get("type") == "row":
        continue
    n += 1
    exprs = [t.get("expr", "").strip() for t in p.get("targets", [])]
    if not exprs or not all(exprs):
        bad.append(p.get("title", "<untitled panel>"))
    queries += len(exprs)
if n == 0:
    sys.exit(f"error: {path} has no panels")
if bad:
    sys.exit(f"error: panels without a query (targets[].expr) in {path}: {bad}")
print(f"{path}: {n} panels, {queries} queries, each panel with a query")
PY
echo "prometheus checks passed"
