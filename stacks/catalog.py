"""The chart catalog (config/catalog/*.yaml) and the layer order (config/layers.yaml), as data.

Resolving them against the cluster file gives a PlatformPlan: for each layer, its namespaces and its
components with final versions and rendered values. Everything here is plain Python, so every problem is
found before any jsii assembly loads.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field

from stacks.config import DnsLabel, ExactVersion, HelixConfig
from stacks.config_files import Problem, display_path, parse_model, read_yaml_mapping

PLACEHOLDER = re.compile(r"\(\(([a-z0-9_]+)\)\)")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class GeneratedSecret(_Strict):
    """A Kubernetes secret whose values Terraform generates (random_password); never a literal."""

    name: DnsLabel
    random_keys: list[str] = Field(min_length=1)
    fixed: dict[str, str] = {}


class ValueSource(_Strict):
    """Where a secret value comes from: a sensitive Terraform variable declared in config/variables.yaml."""

    variable: str = Field(pattern=r"^[a-z][a-z0-9_]*$")


class SecretExtra(_Strict):
    """A Kubernetes Secret in the component's namespace, created before its release (the lead's extras format)."""

    name: DnsLabel
    data: dict[str, ValueSource] = Field(min_length=1)


class ManifestExtra(_Strict):
    """Plain Kubernetes objects (a file under config/manifests/) installed after the component's release."""

    release: DnsLabel
    file: str = Field(min_length=1)
    timeout: int = Field(default=300, ge=30, le=3600)


class KubernetesRange(_Strict):
    """The Kubernetes minor versions one chart version supports, and where that statement comes from.

    min and max are inclusive minor versions ("1.32"); a missing bound is one the chart and its project do not
    state. source names the statement: the chart's Chart.yaml kubeVersion, the project's support table, a
    pre-install check, ...
    """

    min: Optional[str] = Field(default=None, pattern=r"^1\.\d+$")
    max: Optional[str] = Field(default=None, pattern=r"^1\.\d+$")
    source: str = Field(min_length=10)

    def contains(self, minor: tuple[int, int]) -> bool:
        low = _minor(self.min) if self.min else None
        high = _minor(self.max) if self.max else None
        return (low is None or minor >= low) and (high is None or minor <= high)

    def describe(self) -> str:
        if self.min and self.max:
            return f"Kubernetes {self.min} to {self.max}"
        if self.min:
            return f"Kubernetes {self.min} or newer"
        if self.max:
            return f"Kubernetes {self.max} or older"
        return "any Kubernetes version"


def _minor(text: str) -> tuple[int, int]:
    major, minor = text.split(".")[:2]
    return int(major), int(minor)


def kubernetes_minor(k3s_version: str) -> tuple[int, int]:
    """The Kubernetes minor version of a k3s version: v1.35.5+k3s1 -> (1, 35)."""
    return _minor(k3s_version.lstrip("v"))


class ComponentSpec(_Strict):
    description: str
    seed_name: str
    upstream_note: Optional[str] = None
    layer: str
    repository: str = Field(pattern=r"^(https|oci)://[^\s]+$")
    chart: str = Field(min_length=1)
    version: ExactVersion
    release_name: Optional[DnsLabel] = None
    needs: list[str] = []
    timeout: int = Field(default=600, ge=30, le=3600)
    generated_secrets: list[GeneratedSecret] = []
    # The compatibility matrix: for each chart version this catalog knows (the pinned one at least), the
    # Kubernetes range it supports. A cluster file may pin another version only if it is listed here.
    kubernetes: dict[ExactVersion, KubernetesRange] = {}
    secrets: list[SecretExtra] = []
    manifests: list[ManifestExtra] = []
    values: dict[str, Any] = {}


class LayerSpec(_Strict):
    description: str
    needs: list[str] = []
    # The layer also depends on the Cloudflare edge stack (it consumes the tunnel token).
    edge: bool = False


class LayersFile(_Strict):
    layers: dict[DnsLabel, LayerSpec]


@dataclass(frozen=True)
class Component:
    """A component as it will be installed: catalog defaults merged with the cluster file."""

    id: str
    namespace: str
    layer: str
    release_name: str
    repository: str
    chart: str
    version: str
    needs: tuple[str, ...]
    timeout: int
    values: dict[str, Any]
    generated_secrets: tuple[GeneratedSecret, ...]
    secrets: tuple[SecretExtra, ...]
    manifests: tuple[ManifestExtra, ...]
    description: str
    seed_name: str
    upstream_note: Optional[str]


@dataclass(frozen=True)
class NamespacePlan:
    name: str
    labels: dict[str, str]
    protect: bool


@dataclass
class LayerPlan:
    name: str
    description: str
    needs: tuple[str, ...]
    edge: bool
    namespaces: list[NamespacePlan] = field(default_factory=list)
    components: list[Component] = field(default_factory=list)


@dataclass
class PlatformPlan:
    """Layers in dependency order, each with what it creates."""

    layers: list[LayerPlan]

    def layer(self, name: str) -> LayerPlan:
        return next(layer for layer in self.layers if layer.name == name)

    @property
    def components(self) -> dict[str, Component]:
        return {c.id: c for layer in self.layers for c in layer.components}


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Mappings merge key by key; any other value in override replaces the base's."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def placeholder_values(cfg: HelixConfig) -> dict[str, str]:
    c = cfg.cluster
    return {
        "cluster_name": cfg.name,
        "domain": cfg.domain,
        "api_host": cfg.api_host,
        "api_port": str(c.api_port),
        "cluster_cidr": c.cluster_cidr,
        "service_cidr": c.service_cidr,
        "cluster_dns": c.cluster_dns,
        "cluster_domain": c.cluster_domain,
        "k3s_version": c.k3s_version,
        "acme_email": cfg.acme_email,
        # CoreDNS `hosts` entries for the node names (what k3s writes into NodeHosts): "address name" lines.
        "node_hosts": "\n".join(f"{n.address} {n.name}" for n in c.nodes),
        # The repository Flux syncs (cluster file `gitops`); absent when the cluster file names none.
        **(
            {"gitops_url": cfg.gitops.url, "gitops_branch": cfg.gitops.branch, "gitops_path": cfg.gitops.path,
             "gitops_interval": cfg.gitops.interval}
            if cfg.gitops is not None
            else {}
        ),
    }


def render_placeholders(value: Any, known: dict[str, str], path: str, problems: list[tuple[str, str]]) -> Any:
    """Replace ((name)) in every string of a values tree; unknown names are reported, not guessed."""
    if isinstance(value, dict):
        return {k: render_placeholders(v, known, f"{path}.{k}", problems) for k, v in value.items()}
    if isinstance(value, list):
        return [render_placeholders(v, known, f"{path}[{i}]", problems) for i, v in enumerate(value)]
    if isinstance(value, str):

        def sub(match: re.Match) -> str:
            name = match.group(1)
            if name not in known:
                problems.append((path, f"unknown placeholder (({name})); known: {', '.join(sorted(known))}"))
                return match.group(0)
            return known[name]

        return PLACEHOLDER.sub(sub, value)
    return value


def load_layers(path: Path, root: Path) -> tuple[Optional[LayersFile], list[Problem]]:
    shown = display_path(path, root)
    data = read_yaml_mapping(path, shown)
    layers, problems = parse_model(LayersFile, data, shown)
    if layers is None:
        return None, problems
    names = list(layers.layers)
    for i, (name, spec) in enumerate(layers.layers.items()):
        for dep in spec.needs:
            if dep not in names[:i]:
                problems.append(Problem(shown, f"layers.{name}.needs", f"{dep!r} is not a layer listed before {name!r}"))
    return layers, problems


# Parsed catalogs by (folder, root, every file's name and bytes): a process that loads settings many times (the
# tests, the benchmark) parses an unchanged catalog once. Specs are frozen and resolve_platform copies values.
_PARSED_CATALOGS: dict[tuple, tuple[dict[str, tuple[ComponentSpec, str]], list[Problem]]] = {}


def load_catalog(folder: Path, root: Path) -> tuple[dict[str, tuple[ComponentSpec, str]], list[Problem]]:
    """Every component spec, with the file it came from."""
    files = sorted(folder.glob("*.yaml"))
    try:
        key = (str(folder), str(root), tuple((path.name, path.read_bytes()) for path in files))
    except OSError:  # parsed uncached, so that read_yaml_mapping reports why
        return _parse_catalog(folder, root, files)
    if key not in _PARSED_CATALOGS:
        _PARSED_CATALOGS[key] = _parse_catalog(folder, root, files)
    specs, problems = _PARSED_CATALOGS[key]
    return dict(specs), list(problems)


def _parse_catalog(
    folder: Path, root: Path, files: list[Path]
) -> tuple[dict[str, tuple[ComponentSpec, str]], list[Problem]]:
    specs: dict[str, tuple[ComponentSpec, str]] = {}
    problems: list[Problem] = []
    if not files:
        problems.append(Problem(display_path(folder, root), "", "no catalog files (*.yaml) found"))
    for path in files:
        shown = display_path(path, root)
        data = read_yaml_mapping(path, shown)  # raises ConfigError for a file that is not a YAML mapping
        for cid, raw in data.items():
            if not isinstance(cid, str) or not re.match(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", cid):
                problems.append(Problem(shown, str(cid), "a component id is lowercase letters, digits and '-'"))
                continue
            spec, errs = parse_model(ComponentSpec, raw, shown, prefix=(cid,))
            problems.extend(errs)
            if spec is None:
                continue
            if cid in specs:
                problems.append(Problem(shown, cid, f"component already defined in {specs[cid][1]}"))
                continue
            specs[cid] = (spec, shown)
    return specs, problems


def resolve_platform(
    cfg: HelixConfig,
    cfg_file: str,
    layers_file: LayersFile,
    layers_shown: str,
    catalog: dict[str, tuple[ComponentSpec, str]],
) -> tuple[PlatformPlan, list[Problem]]:
    """Place each enabled component in its namespace and layer, and check that the order can work."""
    problems: list[Problem] = []
    layer_names = list(layers_file.layers)
    layer_index = {name: i for i, name in enumerate(layer_names)}
    # Transitive layer dependencies, so a component may need anything in a layer its layer depends on.
    ancestors: dict[str, set[str]] = {}
    for name, spec in layers_file.layers.items():
        ancestors[name] = set(spec.needs).union(*(ancestors[d] for d in spec.needs if d in ancestors))

    for cid in cfg.components:
        if cid not in catalog:
            problems.append(Problem(cfg_file, f"components.{cid}", "not a component in the catalog"))

    known = placeholder_values(cfg)
    placed: dict[str, Component] = {}
    namespace_of: dict[str, str] = {}
    for ns_name, ns in cfg.namespaces.items():
        for i, cid in enumerate(ns.components):
            where = f"namespaces.{ns_name}.components[{i}]"
            if cid not in catalog:
                problems.append(Problem(cfg_file, where, f"{cid!r} is not a component in the catalog"))
                continue
            if cid in namespace_of:
                problems.append(Problem(cfg_file, where, f"{cid!r} is already placed in namespace {namespace_of[cid]!r}"))
                continue
            namespace_of[cid] = ns_name
            spec, spec_file = catalog[cid]
            override = cfg.components.get(cid)
            if override is not None and not override.enabled:
                continue
            if spec.layer not in layer_index:
                problems.append(Problem(spec_file, f"{cid}.layer", f"{spec.layer!r} is not a layer in {layers_shown}"))
                continue
            values = deep_merge(spec.values, override.values if override else {})
            found: list[tuple[str, str]] = []
            values = render_placeholders(values, known, f"{cid}.values", found)
            problems.extend(Problem(spec_file if not override else cfg_file, p, m) for p, m in found)
            placed[cid] = Component(
                id=cid,
                namespace=ns_name,
                layer=spec.layer,
                release_name=spec.release_name or cid,
                repository=spec.repository,
                chart=spec.chart,
                version=(override.version if override and override.version else spec.version),
                needs=tuple(spec.needs),
                timeout=spec.timeout,
                values=values,
                generated_secrets=tuple(spec.generated_secrets),
                secrets=tuple(spec.secrets),
                manifests=tuple(spec.manifests),
                description=spec.description,
                seed_name=spec.seed_name,
                upstream_note=spec.upstream_note,
            )

    # Dependencies: each need must be installed, in the same layer or one this layer depends on.
    for cid, comp in placed.items():
        spec_file = catalog[cid][1]
        for dep in comp.needs:
            if dep not in catalog:
                problems.append(Problem(spec_file, f"{cid}.needs", f"{dep!r} is not a component in the catalog"))
            elif dep not in placed:
                problems.append(
                    Problem(cfg_file, f"components.{dep}", f"{cid!r} needs {dep!r}, which is disabled or in no namespace")
                )
            elif placed[dep].layer != comp.layer and placed[dep].layer not in ancestors[comp.layer]:
                problems.append(
                    Problem(
                        spec_file,
                        f"{cid}.needs",
                        f"{dep!r} is in layer {placed[dep].layer!r}, which layer {comp.layer!r} does not depend on",
                    )
                )
    problems.extend(_cycle_problems(placed, {cid: catalog[cid][1] for cid in placed}))
    problems.extend(_kubernetes_problems(cfg, cfg_file, placed, catalog))
    problems.extend(_manifest_extra_problems(cfg, cfg_file, placed, catalog, known))

    # Each namespace is created by the earliest layer that installs into it; every other layer that
    # installs into it must depend on that one.
    plans = {
        name: LayerPlan(name=name, description=spec.description, needs=tuple(spec.needs), edge=spec.edge)
        for name, spec in layers_file.layers.items()
    }
    for ns_name, ns in cfg.namespaces.items():
        members = [placed[c] for c in ns.components if c in placed]
        if ns.layer is not None and ns.layer not in layer_index:
            problems.append(Problem(cfg_file, f"namespaces.{ns_name}.layer", f"{ns.layer!r} is not a layer in {layers_shown}"))
            continue
        if ns.layer is not None:
            owner = ns.layer
        elif members:
            owner = min((m.layer for m in members), key=layer_index.__getitem__)
        else:
            continue
        for m in members:
            if m.layer != owner and owner not in ancestors[m.layer]:
                problems.append(
                    Problem(
                        cfg_file,
                        f"namespaces.{ns_name}",
                        f"created by layer {owner!r}, but {m.id!r} in layer {m.layer!r} does not depend on it",
                    )
                )
        # kube-system exists in every cluster; it is labelled by nobody here rather than fought over.
        if ns_name != "kube-system":
            plans[owner].namespaces.append(NamespacePlan(ns_name, dict(ns.labels), ns.protect))
    for comp in placed.values():
        plans[comp.layer].components.append(comp)
    for plan in plans.values():
        plan.components.sort(key=lambda c: c.id)
    return PlatformPlan(layers=[plans[name] for name in layer_names]), problems


def _kubernetes_problems(
    cfg: HelixConfig, cfg_file: str, placed: dict[str, Component], catalog: dict[str, tuple[ComponentSpec, str]]
) -> list[Problem]:
    """Every enabled component's version must have a recorded Kubernetes range that holds the cluster's version."""
    out: list[Problem] = []
    k3s = cfg.cluster.k3s_version
    minor = kubernetes_minor(k3s)
    for cid in sorted(placed):
        comp = placed[cid]
        spec, spec_file = catalog[cid]
        supported = spec.kubernetes.get(comp.version)
        if supported is None:
            overridden = comp.version != spec.version
            out.append(
                Problem(
                    cfg_file if overridden else spec_file,
                    f"components.{cid}.version" if overridden else f"{cid}.kubernetes",
                    f"no Kubernetes range is recorded for {cid} {comp.version}: add it under {cid}.kubernetes in "
                    f"{spec_file} (from its Chart.yaml kubeVersion or the project's support statement)",
                )
            )
        elif not supported.contains(minor):
            out.append(
                Problem(
                    cfg_file,
                    "cluster.k3s_version",
                    f"k3s {k3s} (Kubernetes {minor[0]}.{minor[1]}) is outside the range of {cid} {comp.version}: "
                    f"{supported.describe()} ({supported.source})",
                )
            )
    return out


MANIFESTS_DIR = Path(__file__).resolve().parent.parent / "config" / "manifests"


def _manifest_extra_problems(
    cfg: HelixConfig,
    cfg_file: str,
    placed: dict[str, Component],
    catalog: dict[str, tuple[ComponentSpec, str]],
    known: dict[str, str],
) -> list[Problem]:
    """Each manifest extra's file exists and uses only placeholders the cluster file provides."""
    out: list[Problem] = []
    for cid in sorted(placed):
        spec_file = catalog[cid][1]
        for i, extra in enumerate(placed[cid].manifests):
            path = MANIFESTS_DIR / extra.file
            if not path.is_file():
                out.append(Problem(spec_file, f"{cid}.manifests[{i}].file", f"no file config/manifests/{extra.file}"))
                continue
            for name in sorted(set(PLACEHOLDER.findall(path.read_text())) - set(known)):
                hint = " (set `gitops` in the cluster file)" if name.startswith("gitops_") else ""
                out.append(
                    Problem(cfg_file, f"components.{cid}", f"config/manifests/{extra.file} needs (({name})){hint}")
                )
    return out


def _cycle_problems(placed: dict[str, Component], files: dict[str, str]) -> list[Problem]:
    state: dict[str, int] = {}
    out: list[Problem] = []

    def visit(cid: str, trail: list[str]) -> None:
        state[cid] = 1
        for dep in placed[cid].needs:
            if dep not in placed:
                continue
            if state.get(dep) == 1:
                cycle = trail[trail.index(dep) :] + [dep] if dep in trail else [cid, dep]
                out.append(Problem(files[cid], f"{cid}.needs", "dependency cycle: " + " -> ".join(cycle)))
            elif dep not in state:
                visit(dep, trail + [dep])
        state[cid] = 2

    for cid in sorted(placed):
        if cid not in state:
            visit(cid, [cid])
    return out
