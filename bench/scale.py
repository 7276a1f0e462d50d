"""Generate a cluster file and catalog N times the size of the seed's, to see how synth cost grows.

    python bench/scale.py OUTDIR [--factor 10]

Writes OUTDIR/helix.yaml and OUTDIR/catalog/ (the project's catalog files, plus one file of copies per
extra replica). Use them with HELIX_CONFIG=OUTDIR/helix.yaml HELIX_CATALOG_DIR=OUTDIR/catalog.
  - nodes: the seed's servers (an odd etcd quorum stays as it is) and agents up to factor x the node count,
    with addresses from cluster.node_cidr;
  - releases: every namespace of the seed gets factor-1 copies `<ns>-x<k>`, whose components are catalog
    copies `<id>-x<k>` (same chart and values, release name `<name>-x<k>`, needs mapped to the same copy,
    manifest releases `<release>-x<k>`),
    so every layer holds factor x its releases and namespaces;
  - component overrides are copied with their components.
"""

from __future__ import annotations

import argparse
import copy
import ipaddress
import shutil
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent

# libyaml when PyYAML has it: the scaled files are large, and the data is the same either way.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def _suffix(name: str, k: int) -> str:
    return f"{name}-x{k}"


def scale_config(cfg: dict[str, Any], catalog: dict[str, dict[str, Any]], factor: int):
    """Return (config, {k: catalog copies}) for a config `factor` times the size of cfg."""
    cfg = copy.deepcopy(cfg)
    cluster = cfg.setdefault("cluster", {})
    nodes = cluster.get("nodes", [])
    if nodes:
        target = len(nodes) * factor
        servers = [n for n in nodes if n.get("role") == "server"]
        agents = [n for n in nodes if n.get("role") != "server"]
        template = agents[0] if agents else {"role": "agent"}
        used = {n["address"] for n in nodes}
        if cluster.get("api_host"):
            used.add(cluster["api_host"])
        net = ipaddress.IPv4Network(cluster.get("node_cidr", "10.20.0.0/24"))
        start = ipaddress.IPv4Address(template["address"]) if "address" in template else net.network_address + 1
        free = (str(h) for h in net.hosts() if h >= start and str(h) not in used)
        prefix = template["name"].rsplit("-", 1)[0] if "name" in template else "agent"
        names = {n["name"] for n in nodes}
        i = len(agents)
        while len(servers) + len(agents) < target:
            i += 1
            name = f"{prefix}-{i}"
            if name in names:
                continue
            node = copy.deepcopy(template)
            node.update(name=name, address=next(free), role="agent")
            agents.append(node)
        cluster["nodes"] = servers + agents

    namespaces = cfg.get("namespaces", {})
    overrides = cfg.get("components", {}) or {}
    placed = {c for ns in namespaces.values() for c in ns.get("components", [])}
    copies: dict[int, dict[str, Any]] = {}
    new_namespaces = dict(namespaces)
    new_overrides = dict(overrides)
    for k in range(2, factor + 1):
        copies[k] = {}
        for ns_name, ns in namespaces.items():
            ns_copy = copy.deepcopy(ns)
            ns_copy["components"] = [_suffix(c, k) for c in ns.get("components", [])]
            new_namespaces[_suffix(ns_name, k)] = ns_copy
        for cid in sorted(placed):
            if cid not in catalog:
                continue
            spec = copy.deepcopy(catalog[cid])
            spec["release_name"] = _suffix(spec.get("release_name") or cid, k)
            spec["needs"] = [_suffix(d, k) if d in placed else d for d in spec.get("needs", [])]
            # Manifest releases are named like releases; secrets live in the copied namespace, so keep their names.
            for extra in spec.get("manifests", []):
                extra["release"] = _suffix(extra["release"], k)
                extra["after"] = [_suffix(d, k) for d in extra.get("after", [])]
                extra.pop("moved_from", None)
            for extra in spec.get("secrets", []):
                extra.pop("moved_from", None)
            copies[k][_suffix(cid, k)] = spec
            if cid in overrides:
                new_overrides[_suffix(cid, k)] = copy.deepcopy(overrides[cid])
    cfg["namespaces"] = new_namespaces
    cfg["components"] = new_overrides
    return cfg, copies


def generate(outdir: Path, factor: int = 10, config: Path | None = None, catalog_dir: Path | None = None):
    """Write the scaled cluster file and catalog; return (config path, catalog dir)."""
    config = config or ROOT / "config" / "helix.yaml"
    catalog_dir = catalog_dir or ROOT / "config" / "catalog"
    cfg = yaml.load(config.read_text(), Loader=_Loader)  # noqa: S506 - a safe loader
    catalog: dict[str, dict[str, Any]] = {}
    for path in sorted(catalog_dir.glob("*.yaml")):
        catalog.update(yaml.load(path.read_text(), Loader=_Loader) or {})  # noqa: S506
    scaled, copies = scale_config(cfg, catalog, factor)

    out_catalog = outdir / "catalog"
    shutil.rmtree(out_catalog, ignore_errors=True)
    out_catalog.mkdir(parents=True)
    for path in sorted(catalog_dir.glob("*.yaml")):
        shutil.copyfile(path, out_catalog / path.name)
    for k, entries in copies.items():
        # One file per replica keeps each under the loader's size limit.
        (out_catalog / f"zz-bench-x{k:02d}.yaml").write_text(yaml.dump(entries, Dumper=_Dumper, sort_keys=False, width=1000))
    out_config = outdir / "helix.yaml"
    out_config.write_text(yaml.dump(scaled, Dumper=_Dumper, sort_keys=False, width=1000))
    return out_config, out_catalog


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--factor", type=int, default=10)
    args = parser.parse_args(argv)
    cfg, cat = generate(args.outdir, args.factor)
    print(f"HELIX_CONFIG={cfg} HELIX_CATALOG_DIR={cat}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
