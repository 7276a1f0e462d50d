"""Helpers of the `task verify` tests (tests/test_verify.py, tests/test_verify_offline.py): a synthesized output
made by hand from fixture charts, and verify run over it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml

from tools.verify.__main__ import verify

ROOT = Path(__file__).resolve().parent.parent
CHARTS = ROOT / "tests" / "fixtures" / "charts"
HELM = shutil.which("helm", path=str(ROOT / ".venv" / "bin")) or shutil.which("helm")
NO_ALLOW = Path("/nonexistent/verify-allow.yaml")



def release(name: str, chart: str, namespace: str = "apps", version: str = "1.0.0", values: dict | None = None,
            **extra) -> dict:
    body = {"name": name, "chart": chart, "version": version, "namespace": namespace,
            "repository": "https://charts.example.invalid", "values": [yaml.safe_dump(values)] if values else []}
    body.update(extra)
    return body


def make_out(tmp: Path, stacks: dict[str, dict], kube: str = "v1.29.1+k3s2") -> Path:
    """A cdktf.out as cdktf writes it: manifest.json and one cdk.tf.json per stack.
    stacks: name -> {"deps": [...], "releases": {key: body}, "namespaces": {name: labels}, "secrets": [(ns, name)]}"""
    out = tmp / "cdktf.out"
    manifest = {"stacks": {}}
    for name, spec in {"nodes": {"kube": kube}, **stacks}.items():
        resources: dict = {}
        if spec.get("releases"):
            resources["helm_release"] = spec["releases"]
        if spec.get("namespaces"):
            resources["kubernetes_namespace_v1"] = {
                f"ns-{ns}": {"metadata": {"name": ns, "labels": labels}} for ns, labels in spec["namespaces"].items()}
        if spec.get("secrets"):
            resources["kubernetes_secret_v1"] = {
                f"s-{n}": {"metadata": {"name": n, "namespace": ns}, "data": {"k": "${var.x}"}} for ns, n in spec["secrets"]}
        if spec.get("configmaps"):
            resources["kubernetes_config_map_v1"] = {
                f"c-{n}": {"metadata": [{"name": n, "namespace": ns}]} for ns, n in spec["configmaps"]}
        if spec.get("kube"):
            resources["null_resource"] = {"k3s": {"provisioner": [{"file": {
                "content": f"curl -sfL https://get.k3s.io | INSTALL_K3S_VERSION={spec['kube']} sh -"}}]}}
        path = out / "stacks" / name / "cdk.tf.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({"resource": resources}))
        manifest["stacks"][name] = {"name": name, "dependencies": spec.get("deps", ["nodes"] if name != "nodes" else []),
                                    "synthesizedStackPath": f"stacks/{name}/cdk.tf.json"}
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out


def base_stack() -> dict:
    return {"releases": {"crds": release("crds", "crds", "kube-system"),
                         "storage": release("storage", "storage", "kube-system")},
            "namespaces": {"apps": {"pod-security.kubernetes.io/enforce": "restricted"}}}


def run(tmp: Path, apps: dict, base: dict | None = None, allow: Path = NO_ALLOW, **kw):
    stacks = {"base": base or base_stack(), "apps": {"deps": ["nodes", "base"], **apps}}
    return verify(make_out(tmp, stacks), CHARTS, allow, jobs=2, helm=HELM, **kw)


def found(outcome, rule: str | None = None) -> list[tuple[str, str, str, str]]:
    return [(f.rule, f.release, f.object, f.message) for f in outcome.findings if rule is None or f.rule == rule]


