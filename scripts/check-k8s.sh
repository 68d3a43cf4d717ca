#!/usr/bin/env bash
# Checks the Kubernetes manifests under k8s/, offline (part of `make test`):
#
#  1. k8s/components/monitoring/prometheusrule.yaml carries exactly the groups
#     of deploy/prometheus/alerts.yml (`--update` regenerates it);
#  2. every overlay (k8s/overlays/*), prod with components/high-backlog,
#     k8s/prometheus-adapter and the load test (k8s/loadtest/*) render with
#     `kubectl kustomize` (or a standalone `kustomize`) into target/k8s-render/;
#  3. every rendered object, and k8s/base/secret.example.yaml, validates
#     strictly (unknown fields fail) against the Kubernetes schemas bundled
#     with the PyPI package kubernetes-validate, for the oldest Kubernetes
#     these manifests support (1.30: preStop `sleep`) and the newest bundled;
#     ServiceMonitor and PrometheusRule against prometheus-operator's CRD
#     schemas (PyPI cloudcoil-models-prometheus-operator); then references
#     between objects and Herald's own rules (k8s/tools/check.py).
#
# Python tools live in a venv under target/tools-venv (k8s/tools/requirements.txt),
# installed from PyPI on first use and reused while that file is unchanged.
# Without kubectl or kustomize, steps 2-3 are skipped with the reason printed;
# every other problem fails the script. Idempotent: writes only under target/
# (and, with --update, the PrometheusRule).
set -euo pipefail
cd "$(dirname "$0")/.."

update=0
case "${1:-}" in
  --update) update=1 ;;
  "") ;;
  *) echo "usage: $0 [--update]" >&2; exit 2 ;;
esac

MIN_K8S=1.30.0
VENV=target/tools-venv
REQ=k8s/tools/requirements.txt
OUT=target/k8s-render
ALERTS=deploy/prometheus/alerts.yml
RULE=k8s/components/monitoring/prometheusrule.yaml
ADAPTER=k8s/prometheus-adapter/config.yaml
skipped=()

# --- Python tools -------------------------------------------------------------
stamp="$VENV/.requirements.sha256"
want=$(sha256sum "$REQ" | cut -d' ' -f1)
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "== installing $REQ into $VENV"
  command -v python3 >/dev/null || { echo "error: python3 is needed" >&2; exit 1; }
  if [ ! -x "$VENV/bin/python" ] && ! python3 -m venv "$VENV"; then
    echo "error: python3 -m venv failed (Debian: apt-get install python3-venv)" >&2
    exit 1
  fi
  if ! "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQ"; then
    echo "error: pip install -r $REQ failed (PyPI unreachable?)" >&2
    exit 1
  fi
  echo "$want" >"$stamp"
fi
PY="$VENV/bin/python"
echo "tools: $("$PY" -m pip list --disable-pip-version-check 2>/dev/null \
  | awk '$1 ~ /^(kubernetes-validate|cloudcoil.models.prometheus.operator|pydantic|jsonschema)$/ {printf "%s %s; ", $1, $2}')"

# --- 1. PrometheusRule == alerts.yml -------------------------------------------
echo "== $RULE against $ALERTS"
if [ ! -f "$ALERTS" ]; then
  echo "error: $ALERTS is missing; the PrometheusRule is generated from it" >&2
  exit 1
fi
if [ "$update" = 1 ]; then
  "$PY" k8s/tools/check.py prometheusrule "$ALERTS" "$RULE" --update
else
  "$PY" k8s/tools/check.py prometheusrule "$ALERTS" "$RULE"
fi

# --- 2. render ------------------------------------------------------------------
if command -v kubectl >/dev/null && kubectl kustomize --help >/dev/null 2>&1; then
  render=(kubectl kustomize)
  echo "kustomize: kubectl $(kubectl version --client -o json 2>/dev/null \
    | "$PY" -c 'import json,sys; d=json.load(sys.stdin); print(d["clientVersion"]["gitVersion"], "with kustomize", d.get("kustomizeVersion", "?"))')"
elif command -v kustomize >/dev/null; then
  render=(kustomize build)
  echo "kustomize: standalone $(kustomize version 2>/dev/null)"
else
  render=()
fi
if [ ${#render[@]} -eq 0 ]; then
  # Debian's kubernetes-client (kubectl 1.20, kustomize 2) is too old for
  # these kustomizations and conflicts with the kubectl package; there is no
  # kustomize package in Debian 12. Install kubectl (>= 1.27) or kustomize 5.
  skipped+=("rendering and schema validation of k8s/overlays/*, k8s/prometheus-adapter, k8s/loadtest/* and k8s/base/secret.example.yaml: neither kubectl nor kustomize is installed")
else
  rm -rf "$OUT" && mkdir -p "$OUT"
  targets=()
  for dir in k8s/overlays/*/; do
    name=$(basename "$dir")
    echo "== ${render[*]} $dir"
    "${render[@]}" "$dir" >"$OUT/$name.yaml"
    targets+=("$OUT/$name.yaml")
  done
  # The optional component, on top of prod, from a scratch kustomization.
  scratch="$OUT/prod+high-backlog"
  mkdir -p "$scratch"
  cat >"$scratch/kustomization.yaml" <<'EOF'
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../../../k8s/overlays/prod
components:
  - ../../../k8s/components/high-backlog
EOF
  echo "== ${render[*]} k8s/overlays/prod + k8s/components/high-backlog"
  "${render[@]}" "$scratch" >"$OUT/prod+high-backlog.yaml"
  targets+=("$OUT/prod+high-backlog.yaml")
  for dir in k8s/loadtest/*/; do
    name=loadtest-$(basename "$dir")
    echo "== ${render[*]} $dir"
    "${render[@]}" "$dir" >"$OUT/$name.yaml"
    targets+=("$OUT/$name.yaml")
  done
  echo "== ${render[*]} k8s/prometheus-adapter"
  "${render[@]}" k8s/prometheus-adapter >"$OUT/prometheus-adapter.yaml"
  targets+=("$OUT/prometheus-adapter.yaml")
  # The ConfigMap must carry the rules file as is.
  "$PY" - "$OUT/prometheus-adapter.yaml" "$ADAPTER" <<'PY'
import sys, yaml
cm = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] == "ConfigMap"]
assert len(cm) == 1 and cm[0]["data"]["config.yaml"] == open(sys.argv[2]).read(), \
    f"{sys.argv[1]}: ConfigMap adapter-config does not carry {sys.argv[2]}"
print(f"ok   ConfigMap {cm[0]['metadata']['namespace']}/{cm[0]['metadata']['name']} carries {sys.argv[2]}")
PY

  # --- 3. validate --------------------------------------------------------------
  latest=$("$PY" -c 'from kubernetes_validate.utils import latest_version; print(latest_version())')
  echo "== schemas: Kubernetes $MIN_K8S and $latest (kubernetes-validate, strict)"
  "$PY" k8s/tools/check.py validate \
    --k8s-version "$MIN_K8S" --k8s-version "$latest" \
    --external-secret herald --adapter-config "$ADAPTER" \
    "${targets[@]}" k8s/base/secret.example.yaml
fi

for s in "${skipped[@]}"; do
  echo "SKIPPED: $s"
done
if [ ${#skipped[@]} -gt 0 ]; then
  echo "k8s checks passed, with ${#skipped[@]} step(s) skipped (see above)"
else
  echo "k8s checks passed"
fi
