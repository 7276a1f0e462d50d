"""Render each release with `helm template`, exactly as it is installed: its values files in order, its set,
set_list and set_sensitive entries (placeholders for what only Terraform knows), its name and namespace, the
cluster's Kubernetes version, and the API versions of the CRDs installed before it. Releases render in parallel."""

from __future__ import annotations

import os
import subprocess
import tarfile
import tempfile
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tools.verify import schema_refs
from tools.verify.charts import ChartInfo, ChartMissing, ChartStore, load_chart
from tools.verify.plan import Release

Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass
class Obj:
    release: Release
    source: str                 # the chart file it came from (`# Source:` line)
    doc: dict

    @property
    def kind(self) -> str:
        return str(self.doc.get("kind", ""))

    @property
    def api_version(self) -> str:
        return str(self.doc.get("apiVersion", ""))

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0] if "/" in self.api_version else ""

    @property
    def name(self) -> str:
        return str((self.doc.get("metadata") or {}).get("name", ""))

    @property
    def explicit_namespace(self) -> str | None:
        ns = (self.doc.get("metadata") or {}).get("namespace")
        return str(ns) if ns else None

    @property
    def hook(self) -> str:
        return str(((self.doc.get("metadata") or {}).get("annotations") or {}).get("helm.sh/hook", ""))

    @property
    def from_crds_dir(self) -> bool:
        return "/crds/" in f"/{self.source}"

    def label(self) -> str:
        return f"{self.kind}/{self.name}"


@dataclass
class Rendered:
    release: Release
    chart_path: Path | None = None
    chart: ChartInfo | None = None
    objects: list[Obj] = field(default_factory=list)
    error: str | None = None          # helm's message, or why the chart could not be obtained
    missing_chart: bool = False
    api_versions: list[str] = field(default_factory=list)
    # values.schema.json references that cannot be read without the network (tools/verify/schema_refs.py)
    unresolved_refs: list[str] = field(default_factory=list)


def helm_args(release: Release, chart_path: Path, kube_version: str | None, api_versions: list[str],
              values_dir: Path) -> list[str]:
    args = ["template", release.name, str(chart_path), "--namespace", release.namespace]
    if release.include_crds:
        args.append("--include-crds")
    if kube_version:
        args += ["--kube-version", kube_version]
    for api in api_versions:
        args += ["--api-versions", api]
    for i, text in enumerate(release.values):
        path = values_dir / f"values-{i}.yaml"
        path.write_text(text)
        args += ["--values", str(path)]
    for name, value, kind in release.sets:
        flag = {"string": "--set-string", "literal": "--set-literal"}.get(kind, "--set")
        args += [flag, f"{name}={value}"]
    for name, values in release.set_lists:
        escaped = [v.replace("\\", "\\\\").replace(",", "\\,") for v in values]
        args += ["--set", f"{name}={{{','.join(escaped)}}}"]
    return args


def parse_manifests(release: Release, text: str) -> list[Obj]:
    objects: list[Obj] = []
    source = ""
    for chunk in text.split("\n---"):
        # Helm names the file once, before its first document: later documents of that file carry no line.
        for line in chunk.splitlines():
            if line.startswith("# Source: "):
                source = line[len("# Source: "):].strip()
                break
        try:
            doc = yaml.load(chunk, Loader=Loader)
        except yaml.YAMLError:
            continue        # helm itself fails on unparsable output; nothing to add here
        if not isinstance(doc, dict) or not doc.get("kind"):
            continue
        if doc.get("kind") == "List" or str(doc.get("kind", "")).endswith("List") and isinstance(doc.get("items"), list):
            objects += [Obj(release, source, item) for item in doc["items"] if isinstance(item, dict)]
            continue
        obj = Obj(release, source, doc)
        if {"test", "test-success"} & {h.strip() for h in obj.hook.split(",")}:
            continue        # `helm test` pods are not installed by a deploy (Helm 3 still reads Helm 2's test-success)
        objects.append(obj)
    return objects


def render_one(store: ChartStore, release: Release, kube_version: str | None, api_versions: list[str],
               chart_path: Path | None = None) -> Rendered:
    result = Rendered(release, api_versions=list(api_versions))
    try:
        result.chart_path = chart_path or store.obtain(release)
    except ChartMissing as exc:
        result.error, result.missing_chart = str(exc), True
        return result
    with tempfile.TemporaryDirectory(prefix="helix-verify-") as tmp:
        # Remote Kubernetes $refs of its schemas pointed at local definitions: no network while helm validates.
        path, result.unresolved_refs = schema_refs.prepare(result.chart_path, Path(tmp))
        if result.unresolved_refs:
            result.error = f"{len(result.unresolved_refs)} values.schema.json reference(s) not readable offline"
            return result
        args = helm_args(release, path, kube_version, api_versions, Path(tmp))
        env = store._helm_env()
        try:
            proc = subprocess.run([store.helm, *args], capture_output=True, text=True, env=env, timeout=300)
        except subprocess.TimeoutExpired:
            result.error = "helm template timed out after 300 s"
            return result
    if proc.returncode != 0:
        lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip() and not ln.startswith("WARNING")]
        result.error = " ".join(lines)[:2000] or f"helm template exited {proc.returncode}"
        return result
    result.objects = parse_manifests(release, proc.stdout)
    return result


def crd_api_versions(objects: list[Obj]) -> set[str]:
    """`group/version` and `group/version/Kind` of every served version of the CRDs among objects."""
    out: set[str] = set()
    for obj in objects:
        if obj.kind != "CustomResourceDefinition":
            continue
        spec = obj.doc.get("spec") or {}
        group, kind = spec.get("group"), (spec.get("names") or {}).get("kind")
        for v in spec.get("versions") or []:
            if isinstance(v, dict) and v.get("served", True) and group:
                out.add(f"{group}/{v.get('name')}")
                if kind:
                    out.add(f"{group}/{v.get('name')}/{kind}")
    return out


def own_crd_api_versions(chart: ChartInfo | None) -> set[str]:
    """The API versions of the CRDs in a chart's crds/ folders (its subcharts' included): Helm installs them
    before it renders the templates."""
    if chart is None:
        return set()
    docs: list[Obj] = []
    for text in chart.crd_files.values():
        try:
            docs += [Obj(None, "crds/", d) for d in yaml.load_all(text, Loader=Loader) if isinstance(d, dict)]  # type: ignore[arg-type]
        except yaml.YAMLError:
            continue
    out = crd_api_versions(docs)
    for _, _, sub in chart.subcharts:
        out |= own_crd_api_versions(sub)
    return out


def render_platform(store: ChartStore, releases: list[Release], kube_version: str | None,
                    predecessors: dict[str, set[str]], jobs: int | None = None) -> dict[str, Rendered]:
    """Render every release once, in dependency order: a release starts when the releases installed before it
    have rendered, with --api-versions of the CRDs they (and its own crds/ folders) provide. Independent releases
    render in parallel."""
    workers = jobs or max(2, os.cpu_count() or 2)
    ids = {r.id for r in releases}
    waits = {r.id: predecessors.get(r.id, set()) & ids for r in releases}
    done: dict[str, Rendered] = {}

    def job(release: Release) -> Rendered:
        try:
            path = store.obtain(release)
        except ChartMissing as exc:
            return Rendered(release, error=str(exc), missing_chart=True)
        try:
            chart = load_chart(path)
        except (OSError, ValueError, tarfile.TarError) as exc:
            return Rendered(release, chart_path=path, error=f"cannot read the chart archive {path.name}: {exc}")
        available = own_crd_api_versions(chart)
        for rid in waits[release.id]:
            available |= crd_api_versions(done[rid].objects)
        result = render_one(store, release, kube_version, sorted(available), path)
        result.chart = chart
        return result

    pending = list(releases)
    running: dict = {}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        while pending or running:
            for release in [r for r in pending if waits[r.id] <= done.keys()]:
                pending.remove(release)
                running[pool.submit(job, release)] = release
            if not running:      # a dependency cycle cannot happen in cdktf stacks; render the rest as they are
                waits.update({r.id: set() for r in pending})
                continue
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in finished:
                release = running.pop(fut)
                done[release.id] = fut.result()
    return {r.id: done[r.id] for r in releases}
