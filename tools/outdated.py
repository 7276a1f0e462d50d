"""`task outdated`: each pin, the newest version its chart repository's index knows, and whether the catalog's
compatibility matrix allows that version on the cluster's Kubernetes.

    python -m tools.outdated               # indexes from HELIX_CHARTS=<folder>, else the network, else the cache
    python -m tools.outdated --offline     # never the network: HELIX_CHARTS or the cache only

Charts (the catalog's and the raw chart) are looked up in their https repository's index.yaml: from the
HELIX_CHARTS folder (`index/<repository key>.yaml` or `index.yaml`, as `task charts` writes them), else fetched
(and kept in the cache, $HELIX_CHARTS_CACHE or ~/.cache/helix-verify, under outdated/), else from that cache.
For a newer version the line says whether the matrix allows it: recorded and holding the cluster's Kubernetes
minor (cluster.k3s_version of $HELIX_CONFIG or config/helix.yaml), recorded and outside it, or not recorded yet
(with the kubeVersion the index states, which is what to record). What could not be checked is said, pin by pin
and in the summary: OCI charts (no index), unreachable indexes, and pins that are not charts (Renovate watches
them: tools/pins.py). Exit 0 with a report; 2 when an input is unusable.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tools.pins import ROOT, Pin, find_pins
from tools.verify.charts import default_cache, repository_key

STABLE = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)$")


def version_key(version: str) -> tuple[int, ...] | None:
    """(major, minor, patch) of a stable version (an optional leading v); None for pre-releases and others."""
    m = STABLE.match(version.strip())
    return tuple(int(x) for x in m.groups()) if m else None


@dataclass
class Index:
    entries: dict[str, dict[str, str]]  # chart -> version -> kubeVersion ("" when unstated)
    source: str


class Indexes:
    """Repository indexes, read once each: HELIX_CHARTS folder, else network (kept in the cache), else the cache."""

    def __init__(self, folder: Path | None, cache: Path, offline: bool) -> None:
        self.folder, self.cache, self.offline = folder, cache / "outdated", offline
        self._read: dict[str, Index | str] = {}

    def get(self, repository: str) -> Index | str:
        """The index, or why it could not be read."""
        if repository not in self._read:
            self._read[repository] = self._load(repository)
        return self._read[repository]

    def _load(self, repository: str) -> Index | str:
        if repository.startswith("oci://"):
            return "an OCI registry has no index (Renovate checks its tags)"
        key = repository_key(repository)
        if self.folder is not None:
            for path in (self.folder / "index" / f"{key}.yaml", self.folder / "index.yaml"):
                if path.is_file():
                    return _parse(path.read_bytes(), f"HELIX_CHARTS/{path.relative_to(self.folder).as_posix()}")
            return f"no index for {repository} in HELIX_CHARTS ({self.folder})"
        cached = self.cache / f"{key}.yaml"
        reason = "offline"
        if not self.offline:
            url = repository.rstrip("/") + "/index.yaml"
            try:
                with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 (https chart repositories)
                    data = response.read()
            except OSError as exc:
                reason = f"cannot read {url} ({type(exc).__name__})"
            else:
                try:
                    cached.parent.mkdir(parents=True, exist_ok=True)
                    cached.write_bytes(data)
                except OSError:
                    pass
                return _parse(data, url)
        if cached.is_file():
            return _parse(cached.read_bytes(), f"cache {cached} ({reason})")
        return f"{reason}, and no cached index for {repository}"


def _parse(data: bytes, source: str) -> Index | str:
    try:
        doc = yaml.load(data, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError:
        return f"{source} is not a repository index"
    if not isinstance(doc, dict) or not isinstance(doc.get("entries"), dict):
        return f"{source} is not a repository index"
    entries = {
        str(chart): {str(e.get("version")): str(e.get("kubeVersion") or "") for e in versions or [] if isinstance(e, dict)}
        for chart, versions in doc["entries"].items()
    }
    return Index(entries, source)


def _catalog_specs(root: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """(catalog file, component id) -> its spec, every scalar a string (versions like 1.10 stay text)."""
    specs = {}
    for path in sorted((root / "config" / "catalog").glob("*.yaml")):
        data = yaml.load(path.read_text(), Loader=yaml.BaseLoader) or {}
        for cid, spec in data.items():
            if isinstance(spec, dict):
                specs[(path.relative_to(root).as_posix(), str(cid))] = spec
    return specs


def _minor(text: str) -> tuple[int, int]:
    major, minor = text.lstrip("v").split(".")[:2]
    return int(major), int(minor)


def cluster_minor(config: Path) -> tuple[tuple[int, int] | None, str]:
    try:
        data = yaml.safe_load(config.read_text()) or {}
        k3s = str(data["cluster"]["k3s_version"])
        return _minor(k3s), k3s
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError, IndexError):
        return None, f"no cluster.k3s_version in {config}"


def matrix_verdict(spec: dict[str, Any] | None, version: str, minor: tuple[int, int] | None, kube: str) -> str:
    """What the compatibility matrix says of `version`."""
    if spec is None:
        return "no compatibility matrix (not a catalog component)"
    ranges = spec.get("kubernetes") or {}
    known = ranges.get(version)
    stated = f"; its index states kubeVersion {kube!r}" if kube else "; its index states no kubeVersion"
    if not isinstance(known, dict):
        return f"not in the matrix yet: record its Kubernetes range under kubernetes.{version}{stated}"
    low, high = known.get("min"), known.get("max")
    described = f"Kubernetes {low or 'any'} to {high or 'any'}"
    if minor is None:
        return f"in the matrix ({described}); the cluster's Kubernetes is unknown"
    inside = (low is None or minor >= _minor(low)) and (high is None or minor <= _minor(high))
    where = f"{minor[0]}.{minor[1]}"
    return f"allowed: {described} holds {where}" if inside else f"NOT allowed: {described} excludes {where}"


@dataclass
class Row:
    pin: Pin
    newest: str  # "" when unknown
    verdict: str
    unchecked: str = ""  # why it could not be checked


def report(root: Path, config: Path, indexes: Indexes) -> tuple[list[Row], str]:
    minor, k3s = cluster_minor(config)
    specs = _catalog_specs(root)
    rows = []
    for pin in find_pins(root):
        if pin.kind != "chart":
            rows.append(Row(pin, "", "", f"not a chart ({pin.kind}): Renovate checks it"))
            continue
        index = indexes.get(pin.repository)
        if isinstance(index, str):
            rows.append(Row(pin, "", "", index))
            continue
        versions = index.entries.get(pin.chart)
        if not versions:
            rows.append(Row(pin, "", "", f"{index.source} does not list chart {pin.chart}"))
            continue
        stable = [v for v in versions if version_key(v) is not None]
        newest = max(stable, key=lambda v: version_key(v) or ()) if stable else ""
        current = version_key(pin.version)
        spec = specs.get((pin.file, pin.name))
        if not newest:
            rows.append(Row(pin, "", "", f"{index.source} lists no stable version of {pin.chart}"))
        elif current is not None and (version_key(newest) or ()) <= current:
            rows.append(Row(pin, newest, "up to date"))
        else:
            rows.append(Row(pin, newest, matrix_verdict(spec, newest, minor, versions.get(newest, ""))))
    return rows, k3s


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="task outdated", description=__doc__.split("\n\n")[0])
    parser.add_argument("--offline", action="store_true", help="never fetch an index: HELIX_CHARTS or the cache only")
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    folder = os.environ.get("HELIX_CHARTS")
    if folder and not Path(folder).is_dir():
        print(f"error: HELIX_CHARTS={folder}: not a folder", file=sys.stderr)
        return 2
    config = Path(os.environ.get("HELIX_CONFIG") or args.root / "config" / "helix.yaml")
    indexes = Indexes(Path(folder) if folder else None, default_cache(), args.offline)
    rows, k3s = report(args.root, config, indexes)
    print(f"cluster: {k3s}")
    for row in rows:
        if row.pin.kind != "chart":
            continue
        what = f"{row.pin.name} ({row.pin.chart})"
        if row.unchecked:
            print(f"{row.pin.where():40} {what:45} {row.pin.version:10} ?          not checked: {row.unchecked}")
        else:
            print(f"{row.pin.where():40} {what:45} {row.pin.version:10} {row.newest:10} {row.verdict}")
    charts = [r for r in rows if r.pin.kind == "chart"]
    newer = [r for r in charts if r.newest and r.verdict != "up to date"]
    unchecked = [r for r in charts if r.unchecked]
    others = [r for r in rows if r.pin.kind != "chart"]
    print(f"{len(charts)} chart pins: {len(newer)} with a newer version, {len(charts) - len(newer) - len(unchecked)} "
          f"up to date, {len(unchecked)} not checked")
    reasons: dict[str, int] = {}
    for row in unchecked:
        reasons[row.unchecked] = reasons.get(row.unchecked, 0) + 1
    for reason, count in sorted(reasons.items()):
        print(f"  not checked ({count}): {reason}")
    kinds = sorted({r.pin.kind for r in others})
    print(f"{len(others)} other pins ({', '.join(kinds)}) not checked here: Renovate watches them "
          "(`python -m tools.pins` lists them)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
