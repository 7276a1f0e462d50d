"""A chart's values.schema.json without the network: remote Kubernetes `$ref`s pointed at local definitions.

Some charts (nginx-ingress, for one) validate their values against Kubernetes definitions they reference over
the network, `https://<host>/.../v1.33.1/_definitions.json#/definitions/io.k8s.api.core.v1.Affinity`. Helm
fetches those while it renders, so such a chart never renders air-gapped, and offline the verifier would only
have helm's "failing loading ..." to show. Here every such reference is pointed at the same definition in the
Kubernetes schemas kubernetes-validate bundles (a dev package of this project; the bundled version of the same
minor, else the nearest bundled minor), copied with the definitions it references into the schema itself. A
remote reference of another shape (or to a definition not bundled) is not guessed: it is reported, one plain
line each, and the chart is not rendered.

Only archives and folders with such a reference are rewritten, into a temporary folder; the chart as pulled
stays untouched.
"""

from __future__ import annotations

import json
import re
import shutil
import tarfile
from functools import cache
from pathlib import Path
from typing import Any

# .../v1.33.1/_definitions.json#/definitions/<name> (or #/$defs/<name>), any host, any -strict/-local suffix.
KUBERNETES_REF = re.compile(
    r"^https?://[^#\s]*/v(?P<major>1)\.(?P<minor>\d+)\.\d+[^/#]*/_definitions\.json#/(?:definitions|\$defs)/(?P<name>[^/]+)$")
SCHEMA_FILE = "values.schema.json"


def bundled_folder() -> Path | None:
    """kubernetes-validate's folder of Kubernetes schemas (v1.NN.0-local/_definitions.json), if it is installed."""
    try:
        import kubernetes_validate
    except ImportError:
        return None
    folder = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    return folder if folder.is_dir() else None


def bundled_minors(folder: Path) -> dict[int, Path]:
    out = {}
    for path in folder.glob("v1.*.0-local/_definitions.json"):
        match = re.fullmatch(r"v1\.(\d+)\.0-local", path.parent.name)
        if match:
            out[int(match.group(1))] = path
    return out


@cache
def _definitions(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    return data.get("$defs") or data.get("definitions") or {}


def _walk_refs(node: Any):
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            yield node
        for value in node.values():
            yield from _walk_refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk_refs(value)


def remote_refs(schema: Any) -> list[str]:
    """Every `$ref` of a schema that leaves the document (neither `#...` nor a relative file)."""
    return sorted({n["$ref"] for n in _walk_refs(schema) if re.match(r"^[a-z][a-z0-9+.-]*://", n["$ref"])})


def localize(schema: dict, folder: Path | None) -> list[str]:
    """Point every remote Kubernetes reference of `schema` (changed in place) at a definition copied into it.
    -> one line per reference left unresolved."""
    refs = remote_refs(schema)
    if not refs:
        return []
    minors = bundled_minors(folder) if folder else {}
    # Drafts before 2019-09 know `definitions`; later ones `$defs`. References point into the one the draft knows.
    key = "$defs" if re.search(r"/(2019-09|2020-12)/", str(schema.get("$schema", ""))) else "definitions"
    target = schema.setdefault(key, {})
    problems: list[str] = []
    wanted: dict[str, tuple[str, Path]] = {}
    for ref in refs:
        match = KUBERNETES_REF.match(ref)
        if not match:
            problems.append(f"{ref}: not a Kubernetes definition this verifier has offline")
            continue
        if not minors:
            problems.append(f"{ref}: no bundled Kubernetes definitions (kubernetes-validate, `bash scripts/setup.sh`)")
            continue
        minor = min(minors, key=lambda m: (abs(m - int(match.group("minor"))), -m))
        if match.group("name") not in _definitions(minors[minor]):
            problems.append(f"{ref}: {match.group('name')} is not in Kubernetes 1.{minor}'s definitions")
            continue
        wanted[ref] = (match.group("name"), minors[minor])
    for node in _walk_refs(schema):
        if node["$ref"] in wanted:
            name, path = wanted[node["$ref"]]
            _copy_definition(name, _definitions(path), target, key)
            node["$ref"] = f"#/{key}/{name}"
    if not target:
        del schema[key]
    return problems


def _copy_definition(name: str, source: dict[str, Any], target: dict[str, Any], key: str) -> None:
    """`name` and every definition it references, with their references pointed at `key`."""
    todo = [name]
    while todo:
        current = todo.pop()
        if current in target:
            continue
        definition = json.loads(json.dumps(source[current]))
        for node in _walk_refs(definition):
            match = re.fullmatch(r"#/(?:definitions|\$defs)/(.+)", node["$ref"])
            if match:
                node["$ref"] = f"#/{key}/{match.group(1)}"
                todo.append(match.group(1))
        target[current] = definition


def _schema_files(chart: Path) -> list[str]:
    """Paths (inside the chart) of its values.schema.json files, its unpacked subcharts' included."""
    if chart.is_dir():
        return sorted(str(p.relative_to(chart)) for p in chart.rglob(SCHEMA_FILE))
    with tarfile.open(chart) as tar:
        return sorted(m.name.split("/", 1)[1] for m in tar.getmembers()
                      if m.isfile() and m.name.endswith(SCHEMA_FILE) and "/" in m.name)


def _read(chart: Path, inner: str) -> str:
    if chart.is_dir():
        return (chart / inner).read_text()
    with tarfile.open(chart) as tar:
        for member in tar.getmembers():
            if member.isfile() and member.name.split("/", 1)[-1] == inner:
                handle = tar.extractfile(member)
                if handle is not None:
                    return handle.read().decode("utf-8")
    raise FileNotFoundError(inner)


def prepare(chart: Path, workdir: Path, folder: Path | None = None) -> tuple[Path, list[str]]:
    """The chart to render (the same path when none of its schemas leaves the chart, else a rewritten copy under
    `workdir`) and one line per remote reference left unresolved."""
    folder = folder if folder is not None else bundled_folder()
    rewritten: dict[str, dict] = {}
    problems: list[str] = []
    for inner in _schema_files(chart):
        try:
            schema = json.loads(_read(chart, inner))
        except ValueError:
            continue  # helm reports a schema that is not JSON itself
        if not isinstance(schema, dict) or not remote_refs(schema):
            continue
        problems += [f"{inner}: $ref {line}" for line in localize(schema, folder)]
        rewritten[inner] = schema
    if not rewritten or problems:
        return chart, problems
    copy = workdir / "chart"
    if chart.is_dir():
        shutil.copytree(chart, copy)
    else:
        with tarfile.open(chart) as tar:
            safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}  # Python 3.11.4 and later
            tar.extractall(workdir / "unpacked", **safe)  # type: ignore[arg-type]
        (top,) = list((workdir / "unpacked").iterdir())
        top.rename(copy)
    for inner, schema in rewritten.items():
        (copy / inner).write_text(json.dumps(schema))
    return copy, []
