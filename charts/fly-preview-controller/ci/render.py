#!/usr/bin/env python3
"""Render, lint and validate the fly-preview-controller chart without a helm binary.

Uses helm-python-sdk (the Helm v4 Go SDK behind a C ABI) as a stand-in for `helm lint` and
`helm template`, and kubernetes-validate for offline schema validation of every manifest.
Run it with the project venv created by .ci/install-tools.sh:

    .venv/bin/python charts/fly-preview-controller/ci/render.py lint     [-f values.yaml]
    .venv/bin/python charts/fly-preview-controller/ci/render.py render   [-f values.yaml] [--out DIR]
    .venv/bin/python charts/fly-preview-controller/ci/render.py validate [-f values.yaml]
    .venv/bin/python charts/fly-preview-controller/ci/render.py reject   -f bad.yaml --match TEXT
                                                                   (or --set-json '{"replicaCount": 2}')

Every command exits non-zero on a finding, so .ci/check-deploy.sh can chain them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import yaml

CHART = Path(__file__).resolve().parent.parent
KUBE_VERSION = "1.30.0"
# CRDs of prometheus-operator: kubernetes-validate has no schema for them, so they get a
# structural check instead.
CRD_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor"), ("monitoring.coreos.com/v1", "PrometheusRule")}


def load_values(files: list[str], set_json: list[str]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for f in files:
        with open(f, encoding="utf-8") as fh:
            data = yaml.safe_load(fh) or {}
        merged = deep_merge(merged, data)
    for s in set_json:
        merged = deep_merge(merged, json.loads(s))
    return merged


def deep_merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def render(values: dict[str, Any], name: str, namespace: str) -> dict[str, str]:
    import helm_python as helm

    with helm.Chart.load(CHART) as chart:
        # render() checks the values against values.schema.json first, like `helm template`.
        return chart.render(values, name=name, namespace=namespace, is_install=True)


def manifests(rendered: dict[str, str]) -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in sorted(rendered):
        if path.endswith("NOTES.txt") or not path.endswith((".yaml", ".yml")):
            continue
        for doc in yaml.safe_load_all(rendered[path]):
            if doc:
                docs.append((path, doc))
    return docs


def values_label(args: argparse.Namespace) -> str:
    return ", ".join(args.values + [f"--set-json {s}" for s in args.set_json]) or "default values"


def cmd_lint(args: argparse.Namespace) -> int:
    import helm_python as helm

    values = load_values(args.values, args.set_json)
    report = helm.lint(CHART, values or None, strict=True, namespace=args.namespace,
                       kube_version="v" + KUBE_VERSION)
    findings = [f"{m.get('severity')}: {m.get('path')}: {m.get('error')}" for m in report.get("messages", [])]
    findings += [str(e) for e in report.get("errors", [])]
    for f in findings:
        print(f"lint: {f}")
    label = values_label(args)
    if findings:
        print(f"lint: FAILED ({len(findings)} finding(s)) for {label}")
        return 1
    print(f"lint: OK, 0 findings ({report.get('total_charts_linted')} chart) for {label}")
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    rendered = render(load_values(args.values, args.set_json), args.name, args.namespace)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        for path, text in rendered.items():
            if text.strip():
                target = out / path
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text, encoding="utf-8")
        print(f"render: wrote {sum(1 for t in rendered.values() if t.strip())} file(s) to {out}")
    else:
        for path in sorted(rendered):
            if rendered[path].strip() and not path.endswith("NOTES.txt"):
                sys.stdout.write(f"---\n# Source: {path}\n{rendered[path].strip()}\n")
    return 0


def check_crd(path: str, doc: dict[str, Any]) -> list[str]:
    errs = []
    for key in ("apiVersion", "kind", "metadata", "spec"):
        if key not in doc:
            errs.append(f"{path}: {doc.get('kind')} has no {key}")
    meta = doc.get("metadata") or {}
    if not meta.get("name"):
        errs.append(f"{path}: {doc.get('kind')} has no metadata.name")
    spec = doc.get("spec") or {}
    if doc.get("kind") == "PrometheusRule":
        groups = spec.get("groups") or []
        rules = [r for g in groups for r in (g.get("rules") or [])]
        if not groups or not rules:
            errs.append(f"{path}: PrometheusRule has no groups/rules")
        for r in rules:
            if not r.get("expr") or not (r.get("alert") or r.get("record")):
                errs.append(f"{path}: PrometheusRule rule without alert/record or expr: {r}")
            if r.get("alert") and "severity" not in (r.get("labels") or {}):
                errs.append(f"{path}: alert {r['alert']} has no severity label")
        plain = yaml.safe_load((CHART / "files" / "alerts.yaml").read_text(encoding="utf-8"))
        if groups != plain.get("groups"):
            errs.append(f"{path}: PrometheusRule groups differ from files/alerts.yaml")
    if doc.get("kind") == "ServiceMonitor":
        eps = spec.get("endpoints") or []
        if not eps or not spec.get("selector"):
            errs.append(f"{path}: ServiceMonitor needs endpoints and selector")
        for ep in eps:
            if ep.get("port") != "http" or ep.get("path") != "/metrics":
                errs.append(f"{path}: ServiceMonitor endpoint should scrape port http path /metrics: {ep}")
    return errs


def check_policy(docs: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """What the chart promises: single replica, Recreate, probes, hardening, secrets by reference."""
    errs: list[str] = []
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for _, d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    deps = by_kind.get("Deployment", [])
    if len(deps) != 1:
        return [f"expected exactly one Deployment, got {len(deps)}"]
    dep = deps[0]
    spec = dep["spec"]
    pod = spec["template"]["spec"]
    if spec.get("replicas", 1) > 1:
        errs.append("Deployment must not run more than one replica")
    if (spec.get("strategy") or {}).get("type") != "Recreate":
        errs.append("Deployment strategy must be Recreate")
    ann = spec["template"]["metadata"].get("annotations") or {}
    if "checksum/config" not in ann:
        errs.append("pod template lacks checksum/config annotation")
    if "Secret" in by_kind and "checksum/secret" not in ann:
        errs.append("pod template lacks checksum/secret annotation for the chart-rendered Secret")
    psc = pod.get("securityContext") or {}
    if not psc.get("runAsNonRoot") or (psc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
        errs.append("pod securityContext must set runAsNonRoot and seccompProfile RuntimeDefault")
    (c,) = pod["containers"]
    sc = c.get("securityContext") or {}
    if not sc.get("readOnlyRootFilesystem") or sc.get("allowPrivilegeEscalation") is not False:
        errs.append("container must have readOnlyRootFilesystem and allowPrivilegeEscalation=false")
    if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
        errs.append("container must drop ALL capabilities")
    if (c.get("livenessProbe") or {}).get("httpGet", {}).get("path") != "/healthz":
        errs.append("livenessProbe must GET /healthz")
    if (c.get("readinessProbe") or {}).get("httpGet", {}).get("path") != "/readyz":
        errs.append("readinessProbe must GET /readyz")
    if not (c.get("resources") or {}).get("requests"):
        errs.append("container needs resource requests")
    if c.get("args", [None])[0] != "run":
        errs.append("container args must start with `run`")
    env = {e["name"]: e for e in c.get("env") or []}
    for key in ("DATABASE_URL", "FLY_API_TOKEN"):
        ref = ((env.get(key) or {}).get("valueFrom") or {}).get("secretKeyRef")
        if not ref or not ref.get("name") or not ref.get("key"):
            errs.append(f"{key} must come from a secretKeyRef")
    cm_names = {ref["configMapRef"]["name"] for ref in c.get("envFrom") or [] if "configMapRef" in ref}
    config = [cm for cm in by_kind.get("ConfigMap", []) if cm["metadata"]["name"] in cm_names]
    if len(config) != 1:
        errs.append("container must load exactly one config ConfigMap with envFrom")
    for cm in by_kind.get("ConfigMap", []):
        for k in (cm.get("data") or {}):
            if k in ("DATABASE_URL", "FLY_API_TOKEN", "FLY_IO_API_TOKEN"):
                errs.append(f"ConfigMap {cm['metadata']['name']} must not carry {k}")
    if config:
        data = config[0].get("data") or {}
        for k in ("FLY_ORG", "APP_PREFIX", "FLY_API_URL", "LISTEN_ADDR", "RUNNER_IMAGE", "LOG_FORMAT", "CONCURRENCY"):
            if k not in data:
                errs.append(f"config ConfigMap lacks {k}")
        port = next((p["containerPort"] for p in c.get("ports") or [] if p.get("name") == "http"), None)
        if port is None or not str(data.get("LISTEN_ADDR", "")).endswith(f":{port}"):
            errs.append(f"LISTEN_ADDR {data.get('LISTEN_ADDR')} does not match the http containerPort {port}")
    for svc in by_kind.get("Service", []):
        if not any(p.get("name") == "http" for p in svc["spec"].get("ports") or []):
            errs.append("Service must expose a port named http")
    for cm in by_kind.get("ConfigMap", []):
        labels = cm["metadata"].get("labels") or {}
        if cm["metadata"]["name"].endswith("-dashboard"):
            if not any(k == "grafana_dashboard" for k in labels):
                errs.append("dashboard ConfigMap lacks the grafana_dashboard label")
            shipped = json.loads((CHART / "files" / "fly-preview-controller.json").read_text(encoding="utf-8"))
            data = cm.get("data") or {}
            if [json.loads(v) for v in data.values()] != [shipped]:
                errs.append("dashboard ConfigMap does not carry files/fly-preview-controller.json")
    return errs


def cmd_validate(args: argparse.Namespace) -> int:
    import kubernetes_validate

    values = load_values(args.values, args.set_json)
    docs = manifests(render(values, args.name, args.namespace))
    errors: list[str] = []
    kinds = []
    for path, doc in docs:
        kind = doc.get("kind")
        kinds.append(kind)
        if (doc.get("apiVersion"), kind) in CRD_KINDS:
            errors += check_crd(path, doc)
            continue
        try:
            kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            where = ".".join(str(p) for p in e.path)
            errors.append(f"{path}: {kind}/{doc.get('metadata', {}).get('name')}: {where}: {e.message}")
        except kubernetes_validate.SchemaNotFoundError as e:
            errors.append(f"{path}: {e.message}")
        ns = (doc.get("metadata") or {}).get("namespace")
        if not ns:
            errors.append(f"{path}: {kind} has no metadata.namespace")
    errors += check_policy(docs)
    label = values_label(args)
    for e in errors:
        print(f"validate: {e}")
    if errors:
        print(f"validate: FAILED ({len(errors)} error(s)) for {label}")
        return 1
    print(f"validate: OK, {len(docs)} manifest(s) [{', '.join(sorted(kinds))}] for {label} (k8s {KUBE_VERSION})")
    return 0


def cmd_reject(args: argparse.Namespace) -> int:
    """Expect rendering to fail (values schema or a template `fail`) with a message containing --match."""
    values = load_values(args.values, args.set_json)
    try:
        render(values, args.name, args.namespace)
    except Exception as e:  # noqa: BLE001 - any helm error is the expected outcome
        msg = str(e)
        if args.match and args.match not in msg:
            print(f"reject: FAILED, rendering failed but without {args.match!r}: {msg}")
            return 1
        print(f"reject: OK, {json.dumps(values)} rejected ({' '.join(msg.split())[:200]})")
        return 0
    print(f"reject: FAILED, {json.dumps(values)} rendered but should have been rejected")
    return 1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=["lint", "render", "validate", "reject"])
    p.add_argument("-f", "--values", action="append", default=[], help="values file (repeatable)")
    p.add_argument("--set-json", action="append", default=[], help="JSON object merged over the values")
    p.add_argument("--name", default="fly-preview-controller", help="release name")
    p.add_argument("--namespace", default="fly-preview", help="release namespace")
    p.add_argument("--out", help="render: write one file per template into this directory")
    p.add_argument("--match", help="reject: text the error message must contain")
    args = p.parse_args()
    os.environ.setdefault("HELM_CACHE_HOME", "/tmp/helm-python-cache")
    return {"lint": cmd_lint, "render": cmd_render, "validate": cmd_validate, "reject": cmd_reject}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
