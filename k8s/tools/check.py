#!/usr/bin/env python3
"""Checks of Herald's Kubernetes manifests, run by scripts/check-k8s.sh.

  check.py prometheusrule ALERTS OUT [--update]
      OUT must be the PrometheusRule made from the Prometheus rule file
      ALERTS (same groups); --update writes it.
  check.py validate --k8s-version V [--k8s-version V ...]
                    [--external-secret NAME ...] [--adapter-config FILE]
                    FILE...
      Every object of every FILE (rendered `kubectl kustomize` output, or a
      plain manifest) against the Kubernetes schemas bundled with
      kubernetes-validate (strict: unknown fields fail), for each version;
      ServiceMonitor and PrometheusRule against prometheus-operator's CRD
      schemas (the cloudcoil models generated from them; unknown fields
      fail too); then the cross-object checks of `herald_checks`.

Exit status 1 on any failure. Output: one line per object and check.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path
from typing import Any, Iterable

import yaml

RULE_HEADER = """\
# GENERATED from deploy/prometheus/alerts.yml by `scripts/check-k8s.sh --update`.
# Do not edit: change alerts.yml and regenerate; `make test` fails while the
# two differ. The groups are the rule file's, unchanged. Your Prometheus may
# select PrometheusRules by a label (kube-prometheus-stack: release=<name>):
# add it in your overlay.
"""


# ---------------------------------------------------------------- YAML out


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump(doc: Any) -> str:
    return yaml.dump(doc, Dumper=_Dumper, sort_keys=False, width=1000, allow_unicode=True)


# --------------------------------------------------------- PrometheusRule


def prometheus_rule(alerts_path: Path) -> dict:
    rules = yaml.safe_load(alerts_path.read_text())
    if not isinstance(rules, dict) or not isinstance(rules.get("groups"), list) or not rules["groups"]:
        raise SystemExit(f"error: {alerts_path} has no `groups:` list")
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "herald"},
        "spec": {"groups": rules["groups"]},
    }


def cmd_prometheusrule(args: argparse.Namespace) -> int:
    alerts, out = Path(args.alerts), Path(args.out)
    want = prometheus_rule(alerts)
    text = RULE_HEADER + dump(want)
    if args.update:
        if out.exists() and out.read_text() == text:
            print(f"ok: {out} already matches {alerts}")
        else:
            out.write_text(text)
            print(f"wrote {out} from {alerts}")
        return 0
    if not out.exists():
        print(f"error: {out} is missing; run scripts/check-k8s.sh --update", file=sys.stderr)
        return 1
    have = yaml.safe_load(out.read_text())
    if have != want:
        diff = difflib.unified_diff(
            dump(have).splitlines(), dump(want).splitlines(),
            f"{out} (committed)", f"from {alerts}", lineterm="")
        print("\n".join(diff), file=sys.stderr)
        print(f"error: {out} differs from {alerts}; run scripts/check-k8s.sh --update",
              file=sys.stderr)
        return 1
    groups = want["spec"]["groups"]
    n = sum(len(g.get("rules", [])) for g in groups)
    print(f"ok: {out} carries the {len(groups)} group(s), {n} rule(s) of {alerts}")
    return 0


# ---------------------------------------------------- schema validation


def load_docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def name_of(doc: dict) -> str:
    meta = doc.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{doc.get('kind')}/{(ns + '/') if ns else ''}{meta.get('name')}"


def unknown_fields(given: Any, kept: Any, path: str = "") -> Iterable[str]:
    """Paths present in `given` (the manifest) but dropped by the model.

    pydantic ignores unknown fields; the API server (strict field
    validation) and kubernetes-validate --strict reject them. Comparing the
    input with the model's dump of what it kept finds them."""
    if isinstance(given, dict) and isinstance(kept, dict):
        for k, v in given.items():
            p = f"{path}.{k}" if path else str(k)
            if k not in kept:
                yield p
            else:
                yield from unknown_fields(v, kept[k], p)
    elif isinstance(given, list) and isinstance(kept, list):
        for i, (g, k) in enumerate(zip(given, kept)):
            yield from unknown_fields(g, k, f"{path}[{i}]")


class CrdValidator:
    """prometheus-operator CRDs, from the models generated from their
    published openAPIV3Schema (types, required fields, enums, patterns)."""

    def __init__(self) -> None:
        from cloudcoil.models.prometheus_operator import v1  # heavy import: once
        from importlib.metadata import version

        self.models = {
            ("monitoring.coreos.com/v1", "ServiceMonitor"): v1.ServiceMonitor,
            ("monitoring.coreos.com/v1", "PrometheusRule"): v1.PrometheusRule,
        }
        self.source = ("prometheus-operator "
                       + version("cloudcoil-models-prometheus-operator").rsplit(".", 1)[0]
                       + " CRD schema")

    def validate(self, doc: dict) -> list[str]:
        import pydantic

        model = self.models.get((doc.get("apiVersion"), doc.get("kind")))
        if model is None:
            return [f"no schema for {doc.get('apiVersion')} {doc.get('kind')}"]
        try:
            obj = model.model_validate(doc)
        except pydantic.ValidationError as e:
            return [f"{'.'.join(str(x) for x in err['loc'])}: {err['msg']}" for err in e.errors()]
        kept = obj.model_dump(by_alias=True, exclude_unset=True, mode="json")
        return [f"{p}: unknown field" for p in unknown_fields(doc, kept)]


def cmd_validate(args: argparse.Namespace) -> int:
    from kubernetes_validate import utils as kv

    crd = CrdValidator()
    failures = 0
    objects = 0
    everything: dict[str, list[dict]] = {}
    for f in args.files:
        docs = load_docs(Path(f))
        everything[f] = docs
        for doc in docs:
            objects += 1
            label = f"{f}: {name_of(doc)}"
            if (doc.get("apiVersion"), doc.get("kind")) in crd.models:
                errs = crd.validate(doc)
                if errs:
                    failures += 1
                    for e in errs:
                        print(f"FAIL {label} ({crd.source}): {e}")
                else:
                    print(f"ok   {label} ({crd.source}, strict)")
                continue
            passed = []
            for v in args.k8s_version:
                try:
                    passed.append(kv.validate(doc, v, strict=True))
                except kv.ValidationError as e:
                    failures += 1
                    path = ".".join(str(p) for p in e.path)
                    print(f"FAIL {label} (Kubernetes {e.version}, strict): {path}: {e.message}")
                except kv.SchemaNotFoundError as e:
                    failures += 1
                    print(f"FAIL {label}: {e.message}")
            if len(passed) == len(args.k8s_version):
                print(f"ok   {label} (Kubernetes {', '.join(passed)}, strict)")
    for f, docs in everything.items():
        for problem in herald_checks(docs, set(args.external_secret), args.adapter_config, f):
            failures += 1
            print(f"FAIL {f}: {problem}")
    print(f"validated {objects} objects in {len(args.files)} file(s): "
          f"{'no failures' if not failures else f'{failures} failure(s)'}")
    return 1 if failures else 0


# ------------------------------------------------- cross-object checks


def _matches(selector: dict, labels: dict) -> bool:
    if not selector:
        return True
    ml = selector.get("matchLabels") or {}
    if any(labels.get(k) != v for k, v in ml.items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        k, op, vals = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(k) not in vals:
            return False
        if op == "NotIn" and labels.get(k) in vals:
            return False
        if op == "Exists" and k not in labels:
            return False
        if op == "DoesNotExist" and k in labels:
            return False
    return True


def _duration_secs(value: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    for u in ("ms", "s", "m", "h"):
        if value.endswith(u):
            return float(value[: -len(u)]) * units[u]
    return float(value)


def herald_checks(docs: list[dict], external_secrets: set[str], adapter_config: str | None,
                  label: str) -> list[str]:
    """What a schema cannot see: references between objects, and the rules
    this deployment relies on (drain inside the grace period, hardening)."""
    out: list[str] = []
    by_kind: dict[str, dict[str, dict]] = {}
    for d in docs:
        by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
    workloads = {**by_kind.get("Deployment", {}), **by_kind.get("StatefulSet", {}),
                 **by_kind.get("Job", {})}
    configmaps = by_kind.get("ConfigMap", {})
    secrets = set(by_kind.get("Secret", {})) | external_secrets
    services = by_kind.get("Service", {})

    def pod_labels(w: dict) -> dict:
        return w["spec"]["template"]["metadata"].get("labels") or {}

    for wname, w in workloads.items():
        where = f"{w['kind']}/{wname}"
        spec = w["spec"]["template"]["spec"]
        # A Job's selector is generated by the API server.
        if "selector" in w["spec"] and not _matches(w["spec"]["selector"], pod_labels(w)):
            out.append(f"{where}: selector does not match its pod template's labels")
        psc = spec.get("securityContext") or {}
        if not psc.get("runAsNonRoot"):
            out.append(f"{where}: pod securityContext.runAsNonRoot is not true")
        if (psc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
            out.append(f"{where}: pod seccompProfile is not RuntimeDefault")
        keys = [t["topologyKey"] for t in spec.get("topologySpreadConstraints") or []]
        for k in sorted({k for k in keys if keys.count(k) > 1}):
            out.append(f"{where}: two topologySpreadConstraints on {k} (an overlay added one "
                       "instead of changing the base's)")
        vols = {v["name"]: v for v in spec.get("volumes") or []}
        for v in vols.values():
            if "configMap" in v and v["configMap"]["name"] not in configmaps:
                out.append(f"{where}: volume {v['name']} names missing ConfigMap {v['configMap']['name']}")
            if "secret" in v and v["secret"]["secretName"] not in secrets:
                out.append(f"{where}: volume {v['name']} names missing Secret {v['secret']['secretName']}")
        for c in spec.get("containers", []):
            cwhere = f"{where} container {c['name']}"
            csc = c.get("securityContext") or {}
            if csc.get("readOnlyRootFilesystem") is not True:
                out.append(f"{cwhere}: readOnlyRootFilesystem is not true")
            if csc.get("allowPrivilegeEscalation") is not False:
                out.append(f"{cwhere}: allowPrivilegeEscalation is not false")
            if "ALL" not in ((csc.get("capabilities") or {}).get("drop") or []):
                out.append(f"{cwhere}: capabilities do not drop ALL")
            if not (c.get("resources") or {}).get("requests"):
                out.append(f"{cwhere}: no resource requests")
            if not ((c.get("resources") or {}).get("limits") or {}).get("memory"):
                out.append(f"{cwhere}: no memory limit")
            ports = {p.get("name") for p in c.get("ports") or []}
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                port = ((c.get(probe) or {}).get("httpGet") or {}).get("port")
                if isinstance(port, str) and port not in ports:
                    out.append(f"{cwhere}: {probe} names port {port}, which the container lacks")
            for vm in c.get("volumeMounts") or []:
                if vm["name"] not in vols and vm["name"] not in {
                        t["metadata"]["name"] for t in w["spec"].get("volumeClaimTemplates") or []}:
                    out.append(f"{cwhere}: volumeMount {vm['name']} has no volume")
            env: dict[str, str] = {}
            for ef in c.get("envFrom") or []:
                if "configMapRef" in ef:
                    n = ef["configMapRef"]["name"]
                    if n not in configmaps:
                        out.append(f"{cwhere}: envFrom names missing ConfigMap {n}")
                    else:
                        env.update(configmaps[n].get("data") or {})
                if "secretRef" in ef and ef["secretRef"]["name"] not in secrets:
                    out.append(f"{cwhere}: envFrom names missing Secret {ef['secretRef']['name']}"
                               " (neither rendered nor declared external)")
            for e in c.get("env") or []:
                if "value" in e:
                    env[e["name"]] = e["value"]
                ref = (e.get("valueFrom") or {}).get("secretKeyRef")
                if ref and ref["name"] not in secrets:
                    out.append(f"{cwhere}: env {e['name']} names missing Secret {ref['name']}"
                               " (neither rendered nor declared external)")
            if "HERALD__DRAIN__WINDOW_SECS" in env or any(k.startswith("HERALD__") for k in env):
                # Herald: SIGTERM -> preStop, drain window, 5 s for stragglers,
                # 5 s for presence; the kubelet kills at the grace period.
                window = int(env.get("HERALD__DRAIN__WINDOW_SECS", "20"))
                pre = (((c.get("lifecycle") or {}).get("preStop") or {}).get("sleep") or {}).get("seconds", 0)
                grace = spec.get("terminationGracePeriodSeconds", 30)
                if grace <= pre + window + 10:
                    out.append(f"{cwhere}: terminationGracePeriodSeconds {grace} does not exceed "
                               f"preStop {pre} s + drain window {window} s + 10 s")
                else:
                    print(f"ok   {label}: {cwhere}: grace period {grace} s > preStop {pre} s + drain "
                          f"window {window} s + 10 s")

    for sname, s in services.items():
        sel = s["spec"].get("selector") or {}
        if sel and not any(_matches({"matchLabels": sel}, pod_labels(w)) for w in workloads.values()):
            out.append(f"Service/{sname}: selector {sel} matches no pod template")
        for p in s["spec"].get("ports", []):
            tp = p.get("targetPort")
            if isinstance(tp, str) and not any(
                    _matches({"matchLabels": sel}, pod_labels(w)) and any(
                        cp.get("name") == tp for c in w["spec"]["template"]["spec"]["containers"]
                        for cp in c.get("ports") or [])
                    for w in workloads.values()):
                out.append(f"Service/{sname}: targetPort {tp} is no named port of its pods")
    for kind in ("PodDisruptionBudget", "NetworkPolicy"):
        for n, o in by_kind.get(kind, {}).items():
            sel = o["spec"].get("selector") if kind == "PodDisruptionBudget" else o["spec"].get("podSelector")
            if not any(_matches(sel or {}, pod_labels(w)) for w in workloads.values()):
                out.append(f"{kind}/{n}: selector matches no pod template")
    hpa_metrics: set[str] = set()
    for n, h in by_kind.get("HorizontalPodAutoscaler", {}).items():
        ref = h["spec"]["scaleTargetRef"]
        if ref["name"] not in by_kind.get(ref["kind"], {}):
            out.append(f"HorizontalPodAutoscaler/{n}: target {ref['kind']}/{ref['name']} not rendered")
        for m in h["spec"].get("metrics", []):
            if m["type"] == "Pods":
                hpa_metrics.add(m["pods"]["metric"]["name"])
    if hpa_metrics:
        before = len(out)
        if not adapter_config:
            out.append(f"HPA uses custom metrics {sorted(hpa_metrics)} but no adapter config was given")
        else:
            rules = yaml.safe_load(Path(adapter_config).read_text()).get("rules") or []
            exposed = {(r.get("name") or {}).get("as") for r in rules}
            for m in sorted(hpa_metrics - exposed):
                out.append(f"HPA metric {m} is exposed by no rule of {adapter_config}")
            for r in rules:
                over = (r.get("resources") or {}).get("overrides") or {}
                if {"namespace", "pod"} - {v.get("resource") for v in over.values()}:
                    out.append(f"{adapter_config}: rule {r.get('seriesQuery')} does not map both "
                               "namespace and pod (a pods metric needs them)")
                for key in ("<<.Series>>", "<<.LabelMatchers>>", "<<.GroupBy>>"):
                    if key not in r.get("metricsQuery", ""):
                        out.append(f"{adapter_config}: metricsQuery lacks {key}")
            if len(out) == before:
                print(f"ok   {label}: HPA metrics {sorted(hpa_metrics)} are served by {adapter_config}")
    for n, sm in by_kind.get("ServiceMonitor", {}).items():
        sel = sm["spec"]["selector"]
        targets = [s for s in services.values() if _matches(sel, s["metadata"].get("labels") or {})]
        if not targets:
            out.append(f"ServiceMonitor/{n}: selects no rendered Service")
        for ep in sm["spec"].get("endpoints", []):
            if ep.get("port") and not any(p.get("name") == ep["port"]
                                          for s in targets for p in s["spec"]["ports"]):
                out.append(f"ServiceMonitor/{n}: endpoint port {ep['port']} is on no selected Service")
            if "interval" in ep and "scrapeTimeout" in ep and \
                    _duration_secs(ep["scrapeTimeout"]) > _duration_secs(ep["interval"]):
                out.append(f"ServiceMonitor/{n}: scrapeTimeout above interval")
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("prometheusrule")
    r.add_argument("alerts")
    r.add_argument("out")
    r.add_argument("--update", action="store_true")
    r.set_defaults(func=cmd_prometheusrule)
    v = sub.add_parser("validate")
    v.add_argument("--k8s-version", action="append", required=True)
    v.add_argument("--external-secret", action="append", default=[])
    v.add_argument("--adapter-config")
    v.add_argument("files", nargs="+")
    v.set_defaults(func=cmd_validate)
    args = p.parse_args()
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
