"""Resolve the cluster file against the layers, the catalog, the variables and the manifests into one plan.

Rules that keep day-2 edits small:
- Which layer creates a namespace comes from data only: the namespace's `layer`, or else the earliest layer of
  the components placed in it, enabled or not. Turning a component off never moves a namespace.
- A layer gets a stack when anything is placed in it, enabled or not, so turning every component of a layer
  off destroys them in that stack instead of orphaning a stack nobody plans any more.
- What k3s leaves to the platform (its packaged components, flannel, kube-proxy) follows placement, not
  `enabled`, so every server's k3s configuration stays the same when a component is turned off.
- Extras (secrets, manifests) belong to their component and follow it to whichever layer it is in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from planner import pod_autoscaling
from planner.catalog import (
    ComponentSpec,
    LayersFile,
    ManifestExtra,
    ValueSource,
    VariablesFile,
    kubernetes_minor,
    missing_section,
    placeholder_values,
    render_placeholders,
)
from planner.components import (
    Provider,
    alerting,
    find_providers,
    incident_manager,
    node_autoscaler,
    object_store,
    service_mesh,
    tunnel_origin,
)
from planner.edge import resolve_edge
from planner.files import Problem, display_path
from planner.generators import GENERATORS
from planner.manifests import RawChartFile, load_manifest_file
from planner.merge import deep_merge
from planner.model import (
    ChartSource,
    Component,
    K3sPlan,
    LayerPlan,
    ManifestPlan,
    NamespacePlan,
    NodePoolsPlan,
    PlatformPlan,
    SecretPlan,
    ValueRef,
    VariablePlan,
)
from planner.node_pools import INSTANCE_TYPES_FILE, plan_node_pools
from planner.nodes import resolve_nodes
from planner.schema import HelixConfig
from planner.validate import BUILTIN_NAMESPACES
from planner.wiring import unknown_targets, wired_values

# k3s's packaged components (in the order the k3s config has always listed them: reordering rewrites it);
# a component's `replaces_k3s` turns one off.
K3S_PACKAGED = ("traefik", "servicelb", "metrics-server", "coredns", "local-storage")


@dataclass(frozen=True)
class Inputs:
    """Everything read from disk, with the names to show for each file."""

    config: HelixConfig
    config_file: str
    layers: LayersFile
    layers_file: str
    catalog: dict[str, tuple[ComponentSpec, str]]
    variables: VariablesFile
    variables_file: str
    raw_chart: RawChartFile
    manifests_dir: Path
    root: Path


def _ref(source: ValueSource, cfg: HelixConfig, providers: Mapping[str, Provider]) -> ValueRef:
    if source.object_store is not None:
        return object_store.key_ref(cfg, source.object_store, providers.get(object_store.CONCERN))
    if source.variable is not None:
        return ValueRef("variable", source.variable)
    if source.generated is not None:
        return ValueRef("generated", source.generated)
    return ValueRef("edge", str(source.edge))


def resolve_platform(inputs: Inputs) -> tuple[PlatformPlan | None, list[Problem]]:
    """The plan, or None with every problem found (all of them, not the first).

    A pipeline of named steps, each taking data and returning data plus its problems, in this order (the order
    the problems are reported in): placement, enablement, needs, namespaces, extras, stacks."""
    cfg = inputs.config
    graph = layer_graph(inputs.layers)
    problems: list[Problem] = []
    placed, errs = place(inputs, graph)
    problems += errs
    components, errs = enable(inputs, placed)
    problems += errs
    components, alert_warnings = alert_channels(inputs, components)
    components, errs = check_needs(inputs, graph, components)
    problems += errs
    namespaces, errs = own_namespaces(inputs, graph, placed, components)
    problems += errs
    extras, errs = plan_extras(inputs, graph, components, namespaces)
    problems += errs
    problems += _uniqueness_problems(components, extras.manifests, extras.secrets, inputs.catalog, graph.names)
    layers = plan_stacks(inputs, graph, placed, components, namespaces, extras)
    k3s = k3s_plan(inputs.catalog, placed)
    edge = resolve_edge(cfg, components)
    origin = find_providers(cfg, inputs.catalog).get(tunnel_origin.CONCERN)
    problems += service_mesh.strict_problems(cfg, inputs.config_file, edge, components, origin.namespace if origin else None)
    pools, errs = node_pools_step(inputs, components)
    problems += errs
    if problems:
        return None, problems
    raw = ChartSource(inputs.raw_chart.repository, inputs.raw_chart.chart, inputs.raw_chart.version)
    return (
        PlatformPlan(
            config=cfg,
            config_file=inputs.config_file,
            layers=layers,
            k3s=k3s,
            raw_chart=raw,
            nodes=resolve_nodes(cfg),
            edge=edge,
            state=cfg.state,
            alert_warnings=tuple(alert_warnings),
            node_pools=pools,
        ),
        problems,
    )


def node_pools_step(
    inputs: Inputs, components: dict[str, Component]
) -> tuple[NodePoolsPlan | None, list[Problem]]:
    """The cloud node pools (planner/node_pools.py), their autoscaler's Secret in the autoscaler's namespace. Pools
    need the autoscaler installed, and their stacks' names free among the layers'."""
    cfg = inputs.config
    provider = find_providers(cfg, inputs.catalog).get(node_autoscaler.CONCERN)
    path = inputs.manifests_dir.parent / INSTANCE_TYPES_FILE
    shown = display_path(path, inputs.root)
    pools, problems = plan_node_pools(cfg, inputs.config_file, path, shown, node_autoscaler.namespace(provider))
    if pools is None:
        return None, problems
    if provider is None or provider.component not in components:
        named = f"`{provider.component}`" if provider else "a component that provides node-autoscaler"
        problems.append(Problem(inputs.config_file, "cluster.cloud_node_pools",
                                f"cloud node pools need the cluster-autoscaler: place {named} in a namespace "
                                f"({node_autoscaler.DEFAULT_NAMESPACE}) and leave it enabled"))
    layers = set(inputs.layers.layers)
    for i, pool in enumerate(pools.pools):
        if pool.stack in layers:
            problems.append(Problem(inputs.config_file, f"cluster.cloud_node_pools[{i}].name",
                                    f"its stack {pool.stack} has the name of a layer ({inputs.layers_file})"))
    if pools.access_stack in layers:
        problems.append(Problem(inputs.layers_file, f"layers.{pools.access_stack}",
                                "is the name of the cloud node pools' access stack: rename the layer"))
    return pools, problems


# --- the layer graph -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LayerGraph:
    """The layers in order, with each one's transitive dependencies."""

    names: list[str]
    index: dict[str, int]
    ancestors: dict[str, set[str]]

    def comes_after(self, later: str, earlier: str) -> bool:
        """Whether `later` is `earlier` or depends on it, directly or not."""
        return later == earlier or earlier in self.ancestors.get(later, set())


def layer_graph(layers: LayersFile) -> LayerGraph:
    # Transitive layer dependencies, so a component may need anything in a layer its layer depends on.
    ancestors: dict[str, set[str]] = {}
    for name, layer_spec in layers.layers.items():
        ancestors[name] = set(layer_spec.needs).union(*(ancestors[d] for d in layer_spec.needs if d in ancestors))
    names = list(layers.layers)
    return LayerGraph(names=names, index={name: i for i, name in enumerate(names)}, ancestors=ancestors)


# --- step: placement -------------------------------------------------------------------------------------


def place(inputs: Inputs, graph: LayerGraph) -> tuple[dict[str, str], list[Problem]]:
    """Every component placed in a namespace, enabled or not: component -> namespace."""
    cfg, cfg_file, catalog = inputs.config, inputs.config_file, inputs.catalog
    problems: list[Problem] = []
    for cid in cfg.components:
        if cid not in catalog:
            problems.append(Problem(cfg_file, f"components.{cid}", "not a component in the catalog"))
    placed: dict[str, str] = {}
    for ns_name, ns in cfg.namespaces.items():
        for i, cid in enumerate(ns.components):
            where = f"namespaces.{ns_name}.components[{i}]"
            if cid not in catalog:
                problems.append(Problem(cfg_file, where, f"{cid!r} is not a component in the catalog"))
            elif cid in placed:
                problems.append(Problem(cfg_file, where, f"{cid!r} is already placed in namespace {placed[cid]!r}"))
            else:
                placed[cid] = ns_name
    for cid in placed:
        spec, spec_file = catalog[cid]
        if spec.layer not in graph.index:
            problems.append(Problem(spec_file, f"{cid}.layer", f"{spec.layer!r} is not a layer in {inputs.layers_file}"))
        for i, extra in enumerate(spec.manifests):
            if extra.layer is not None and extra.layer not in graph.index:
                problems.append(
                    Problem(spec_file, f"{cid}.manifests[{i}].layer", f"{extra.layer!r} is not a layer in {inputs.layers_file}")
                )
    return {cid: ns for cid, ns in placed.items() if catalog[cid][0].layer in graph.index}, problems


# --- step: enablement ------------------------------------------------------------------------------------


def enable(inputs: Inputs, placed: dict[str, str]) -> tuple[dict[str, Component], list[Problem]]:
    """The enabled components as installed: catalog defaults merged with the cluster file, placeholders filled."""
    cfg, catalog = inputs.config, inputs.catalog

    providers = find_providers(cfg, catalog)
    autoscaler = providers.get(node_autoscaler.CONCERN)

    def enabled(cid: str) -> bool:
        override = cfg.components.get(cid)
        mode = catalog[cid][0].object_storage
        # The node autoscaler only while a cloud node pool exists: nothing to scale otherwise.
        needed = autoscaler is None or cid != autoscaler.component or node_autoscaler.wanted(cfg)
        return (override is None or override.enabled) and (mode is None or mode == cfg.object_storage.mode) and needed

    known = placeholder_values(cfg, providers)
    problems: list[Problem] = []
    scalable = sorted(cid for cid, (spec, _) in catalog.items() if spec.pod_autoscaling is not None)
    for cid, override in cfg.components.items():
        if cid in catalog:
            problems += [Problem(inputs.config_file, p, m)
                         for p, m in pod_autoscaling.problems(cid, catalog[cid][0], override, scalable)]
    components: dict[str, Component] = {}
    installed = {cid for cid in placed if enabled(cid)}
    for cid, ns_name in placed.items():
        if enabled(cid):
            components[cid], errs = _component(inputs, cid, ns_name, known, providers, installed)
            problems += errs
    return components, problems


def _component(
    inputs: Inputs,
    cid: str,
    ns_name: str,
    known: dict[str, Any],
    providers: Mapping[str, Provider],
    installed: set[str],
) -> tuple[Component, list[Problem]]:
    cfg, cfg_file, catalog = inputs.config, inputs.config_file, inputs.catalog
    problems: list[Problem] = []
    spec, spec_file = catalog[cid]
    override = cfg.components.get(cid)
    for key, fragments in (("values_when_enabled", spec.values_when_enabled), ("values_when_disabled", spec.values_when_disabled)):
        for target in unknown_targets(fragments, catalog):
            problems.append(Problem(spec_file, f"{cid}.{key}.{target}", f"{target!r} is not a component in the catalog"))
    if spec.kind == "manifests" and override is not None and (override.version or override.values):
        problems.append(Problem(cfg_file, f"components.{cid}", "a manifests component has no chart: only `enabled` applies"))
    # Wiring to an optional neighbour applies only while it is installed (planner/wiring.py).
    wired = wired_values(spec.values, spec.values_when_enabled, installed, spec.values_when_disabled)
    if spec.pod_autoscaling is not None:
        # Its HPA (or fixed replicas), under the cluster file's own values (planner/pod_autoscaling.py).
        try:
            wired = pod_autoscaling.apply(wired, spec.pod_autoscaling, pod_autoscaling.settings(spec.pod_autoscaling, override))
        except ValueError as exc:
            problems.append(Problem(spec_file, f"{cid}.pod_autoscaling", str(exc)))
    values = deep_merge(wired, override.values if override else {})
    found: list[tuple[str, str]] = []
    values = render_placeholders(values, known, f"{cid}.values", found)
    problems.extend(Problem(spec_file if not override else cfg_file, p, m) for p, m in found)
    component = Component(
        id=cid,
        kind=spec.kind,
        namespace=ns_name,
        layer=spec.layer,
        release_name=spec.release_name or cid,
        repository=spec.repository or "",  # a manifests component has none: its releases use the raw chart
        chart=spec.chart or "",
        version=(override.version if override and override.version else spec.version),
        # A need on a component that the object_storage mode turns off is no need (consumers name both stores).
        needs=tuple(d for d in spec.needs if d not in catalog or catalog[d][0].object_storage in (None, cfg.object_storage.mode)),
        timeout=spec.timeout,
        values=values,
        generated_secrets=tuple(spec.generated_secrets),
        sensitive_values={
            path: _ref(src, cfg, providers)
            for path, src in spec.sensitive_values.items()
            if cfg.cloudflare.enabled or not src.optional
        },
        values_from={
            path: _ref(src, cfg, providers) for path, src in spec.values_from.items() if cfg.cloudflare.enabled or not src.optional
        },
        protect=cfg.namespace_protected(ns_name),
        description=spec.description,
        seed_name=spec.seed_name,
        upstream_note=spec.upstream_note,
        provides=tuple(spec.provides),
        mesh_service=(spec.mesh_service.name, spec.mesh_service.port) if spec.mesh_service else None,
    )
    return component, problems


# --- step: alert channels --------------------------------------------------------------------------------


def alert_channels(inputs: Inputs, components: dict[str, Component]) -> tuple[dict[str, Component], list[str]]:
    """Where alerts reach a person (planner/components/alerting.py, incident_manager.py): Alertmanager's route and
    receivers from the cluster file's `alerting`, OnCall's mail relay; each under the component's own values (the
    cluster file's overrides win). With the warnings every synth prints while nobody can be paged."""
    cfg = inputs.config
    providers = find_providers(cfg, inputs.catalog)
    router, pager = providers.get(alerting.CONCERN), providers.get(incident_manager.CONCERN)
    oncall = pager is not None and pager.component in components
    out = dict(components)
    if oncall and pager is not None:
        comp = components[pager.component]
        out[comp.id] = replace(comp, values=deep_merge(incident_manager.oncall_values(cfg.alerting), comp.values))
    routed = router is not None and router.component in components
    if routed and router is not None:
        comp = components[router.component]
        config = alerting.alertmanager_config(cfg.alerting, oncall)
        out[comp.id] = replace(comp, values=deep_merge(config, comp.values))
    return out, alerting.warnings(cfg.alerting, routed, oncall)


# --- step: needs -----------------------------------------------------------------------------------------


def check_needs(
    inputs: Inputs, graph: LayerGraph, components: dict[str, Component]
) -> tuple[dict[str, Component], list[Problem]]:
    """Every need installed, in the same layer or one this layer depends on, no cycles, every version inside its
    Kubernetes range; the components with the needs their releases wait for by name."""
    cfg_file, catalog = inputs.config_file, inputs.catalog
    problems: list[Problem] = []
    for cid, comp in components.items():
        spec_file = catalog[cid][1]
        for dep in comp.needs:
            if dep not in catalog:
                problems.append(Problem(spec_file, f"{cid}.needs", f"{dep!r} is not a component in the catalog"))
            elif dep not in components:
                problems.append(
                    Problem(cfg_file, f"components.{dep}", f"{cid!r} needs {dep!r}, which is disabled or in no namespace")
                )
            elif not graph.comes_after(comp.layer, components[dep].layer):
                problems.append(
                    Problem(
                        spec_file,
                        f"{cid}.needs",
                        f"{dep!r} is in layer {components[dep].layer!r}, which layer {comp.layer!r} does not depend on",
                    )
                )
    problems.extend(_cycle_problems(components, {cid: catalog[cid][1] for cid in components}))
    problems.extend(_kubernetes_problems(inputs.config, cfg_file, components, catalog))
    # A manifests component orders nothing by name: its objects are Secrets or manifest releases of its own.
    with_release_needs = {
        cid: replace(c, release_needs=tuple(d for d in c.needs if d not in components or components[d].has_release))
        for cid, c in components.items()
    }
    return with_release_needs, problems


# --- step: namespaces ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Namespaces:
    """Which layer creates each namespace, and the namespaces each layer creates."""

    owner: dict[str, str]
    owned: dict[str, list[NamespacePlan]]


def own_namespaces(
    inputs: Inputs, graph: LayerGraph, placed: dict[str, str], components: dict[str, Component]
) -> tuple[Namespaces, list[Problem]]:
    """The owner comes from data (the namespace's `layer`, or its placed components' earliest layer), never from
    which components are enabled; every component installs into a namespace created by then."""
    cfg, cfg_file, catalog = inputs.config, inputs.config_file, inputs.catalog
    problems: list[Problem] = []
    namespace_owner: dict[str, str] = {}
    owned: dict[str, list[NamespacePlan]] = {name: [] for name in graph.names}
    for ns_name, ns in cfg.namespaces.items():
        if ns.layer is not None and ns.layer not in graph.index:
            problems.append(
                Problem(cfg_file, f"namespaces.{ns_name}.layer", f"{ns.layer!r} is not a layer in {inputs.layers_file}")
            )
            continue
        members = [cid for cid, where in placed.items() if where == ns_name]
        if ns.layer is not None:
            owner = ns.layer
        elif members:
            owner = min((catalog[cid][0].layer for cid in members), key=graph.index.__getitem__)
        else:
            continue
        namespace_owner[ns_name] = owner
        # Built-in namespaces (kube-system, default, ...) exist in every cluster: never created or owned here.
        if ns_name not in BUILTIN_NAMESPACES:
            owned[owner].append(NamespacePlan(ns_name, dict(ns.labels), ns.protect))
    namespaces = Namespaces(owner=namespace_owner, owned=owned)
    for cid, comp in components.items():
        file = catalog[cid][1]
        problems += _owner_problems(inputs, graph, namespaces, comp.namespace, comp.layer, repr(cid), file, f"{cid}.layer")
    return namespaces, problems


def _owner_problems(
    inputs: Inputs, graph: LayerGraph, namespaces: Namespaces, ns_name: str, layer: str, what: str, file: str, path: str
) -> list[Problem]:
    """`what` installs into `ns_name` from `layer`: the namespace's owner must come before."""
    cfg_file = inputs.config_file
    owner = namespaces.owner.get(ns_name)
    if owner is None or ns_name in BUILTIN_NAMESPACES or graph.comes_after(layer, owner):
        return []
    if inputs.config.namespaces[ns_name].layer is not None:
        # The cluster file chose the owner: that choice is what to change.
        return [
            Problem(
                cfg_file,
                f"namespaces.{ns_name}.layer",
                f"layer {owner!r} would create the namespace after {what} installs into it in layer {layer!r} "
                f"(which does not depend on {owner!r}): use {layer!r} or a layer it depends on",
            )
        ]
    return [
        Problem(
            file,
            path,
            f"{what} installs into namespace {ns_name!r} in layer {layer!r}, but the namespace is created "
            f"by layer {owner!r}, which {layer!r} does not depend on "
            f"(set namespaces.{ns_name}.layer in {cfg_file} to {layer!r} or earlier)",
        )
    ]


# --- step: extras ----------------------------------------------------------------------------------------


@dataclass
class Extras:
    """Per layer: its manifest releases, secrets and the variables they read; which layers read another layer's
    outputs, and which read the edge's."""

    manifests: dict[str, list[ManifestPlan]]
    secrets: dict[str, list[SecretPlan]]
    variables_used: dict[str, set[str]]
    reads_from: dict[str, set[str]]
    edge_layers: set[str] = field(default_factory=set)
    # Components already reported for reading the edge while Cloudflare is off (one problem each).
    edge_reported: set[str] = field(default_factory=set)


def plan_extras(
    inputs: Inputs, graph: LayerGraph, components: dict[str, Component], namespaces: Namespaces
) -> tuple[Extras, list[Problem]]:
    """Each component's sensitive values, manifest releases and secrets, checked and placed in their layers."""
    extras = Extras(
        manifests={name: [] for name in graph.names},
        secrets={name: [] for name in graph.names},
        variables_used={name: set() for name in graph.names},
        reads_from={name: set() for name in graph.names},
    )
    providers = find_providers(inputs.config, inputs.catalog)
    known = placeholder_values(inputs.config, providers)
    refs = _Refs(inputs, graph, components, extras)
    problems: list[Problem] = []
    for cid, comp in components.items():
        spec, spec_file = inputs.catalog[cid]
        for path, ref in comp.sensitive_values.items():
            problems += refs.check(ref, cid, comp.layer, spec_file, f"{cid}.sensitive_values.{path}")
        for path, ref in comp.values_from.items():
            problems += refs.check(ref, cid, comp.layer, spec_file, f"{cid}.values_from.{path}")
        planned, errs = _component_manifests(inputs, graph, namespaces, comp, known, components)
        problems += errs
        for m in planned:
            extras.manifests[m.layer].append(m)
        same_layer = tuple(m.release for m in planned if m.layer == comp.layer)
        for i, extra_secret in enumerate(spec.secrets):
            data = {key: _ref(src, inputs.config, providers) for key, src in extra_secret.data.items()}
            for key, ref in data.items():
                problems += refs.check(ref, cid, comp.layer, spec_file, f"{cid}.secrets[{i}].data.{key}")
            extras.secrets[comp.layer].append(
                SecretPlan(
                    component=cid,
                    name=extra_secret.name,
                    namespace=comp.namespace,
                    data=data,
                    before=((cid,) if comp.has_release else ()) + same_layer,
                    moved_from=extra_secret.moved_from,
                )
            )
    return extras, problems


@dataclass(frozen=True)
class _Refs:
    """Checks the sensitive values of the installed components, recording in `extras` what each layer reads."""

    inputs: Inputs
    graph: LayerGraph
    components: dict[str, Component]
    extras: Extras

    def check(self, ref: ValueRef, cid: str, layer: str, file: str, path: str) -> list[Problem]:
        return _ref_problems(self, ref, cid, layer, file, path)


def _ref_problems(refs: _Refs, ref: ValueRef, cid: str, layer: str, file: str, path: str) -> list[Problem]:
    """Check one sensitive value of component `cid` in `layer`, and record what the layer reads to get it."""
    inputs, graph, components, extras = refs.inputs, refs.graph, refs.components, refs.extras
    cfg, cfg_file = inputs.config, inputs.config_file
    if ref.source == "format":
        return [p for _, part in ref.fields for p in refs.check(part, cid, layer, file, path)]
    if ref.source == "generated_in":
        owner = components.get(ref.component)
        secret, _, key = ref.name.partition("/")
        if owner is None or not any(g.name == secret and key in g.random_keys for g in owner.generated_secrets):
            return [
                Problem(
                    cfg_file,
                    f"components.{ref.component}",
                    f"{cid!r} needs {ref.component!r} (the object store's keys, {file}: {path}), which is "
                    "disabled or in no namespace",
                )
            ]
        if not graph.comes_after(layer, owner.layer):
            return [Problem(file, path, f"{ref.component!r} is in layer {owner.layer!r}, which layer {layer!r} does not depend on")]
        if owner.layer != layer:
            extras.reads_from[layer].add(owner.layer)  # a cross-stack reference: that stack's output
        return []
    if ref.source == "generated":
        secret, _, key = ref.name.partition("/")
        keys = {g.name: set(g.random_keys) for g in components[cid].generated_secrets}
        if key not in keys.get(secret, set()):
            return [Problem(file, path, f"{ref.name!r} is not a random key of a generated secret of component {cid!r}")]
        return []
    if ref.source == "variable":
        extras.variables_used[layer].add(ref.name)
        if ref.name not in inputs.variables.variables:
            return [Problem(file, path, f"variable {ref.name!r} is not declared in {inputs.variables_file}")]
        return []
    extras.edge_layers.add(layer)
    if cfg.cloudflare.enabled or cid in extras.edge_reported:
        return []
    extras.edge_reported.add(cid)
    return [
        Problem(
            cfg_file,
            f"components.{cid}",
            f"{cid} needs the tunnel (the Cloudflare edge's {ref.name}): set cloudflare.enabled: true, "
            f"or disable component {cid!r}",
        )
    ]


def _component_manifests(
    inputs: Inputs, graph: LayerGraph, namespaces: Namespaces, comp: Component, known: dict[str, Any],
    components: Mapping[str, Component],
) -> tuple[list[ManifestPlan], list[Problem]]:
    """The manifest releases of one component, in catalog order (a generator with nothing to install gives none)."""
    cid = comp.id
    spec, spec_file = inputs.catalog[cid]
    problems: list[Problem] = []
    planned: dict[str, ManifestPlan] = {}
    skipped: set[str] = set()
    reported_sections: set[str] = set()
    for i, extra in enumerate(spec.manifests):
        where = f"{cid}.manifests[{i}]"
        if extra.release in planned or extra.release in skipped:
            problems.append(Problem(spec_file, f"{where}.release", f"{extra.release!r} is listed twice"))
            continue
        layer = extra.layer or comp.layer
        if not graph.comes_after(layer, comp.layer):
            problems.append(
                Problem(spec_file, f"{where}.layer", f"layer {layer!r} does not depend on {cid!r}'s layer {comp.layer!r}")
            )
            continue
        resources, source, errs = _manifest_resources(inputs, comp, extra, known, reported_sections, components)
        problems += errs
        if not resources:
            skipped.add(extra.release)  # a generator with nothing to install (e.g. no load_balancer_range)
            continue
        first = extra.before_release and comp.has_release
        after: list[str] = [cid] if comp.has_release and not first else []
        for j, dep in enumerate(extra.after):
            if dep in skipped:
                continue
            if dep not in planned:
                problems.append(Problem(spec_file, f"{where}.after[{j}]", f"{dep!r} is not a manifest release listed before it"))
            elif planned[dep].layer != layer:
                problems.append(
                    Problem(spec_file, f"{where}.after[{j}]", f"{dep!r} is installed by another layer ({planned[dep].layer!r})")
                )
            else:
                after.append(dep)
        what = f"manifest release {extra.release!r}"
        problems += _owner_problems(inputs, graph, namespaces, comp.namespace, layer, what, spec_file, where)
        planned[extra.release] = ManifestPlan(
            component=cid,
            release=extra.release,
            namespace=comp.namespace,
            layer=layer,
            resources=tuple(resources),
            after=tuple(after),
            timeout=extra.timeout,
            protect=comp.protect or extra.protect,
            source=source,
            description=extra.description,
            seed_name=extra.seed_name,
            moved_from=extra.moved_from,
            before=(cid,) if first else (),
        )
    return list(planned.values()), problems


def _manifest_resources(
    inputs: Inputs, comp: Component, extra: ManifestExtra, known: dict[str, Any], reported_sections: set[str],
    components: Mapping[str, Component],
) -> tuple[list[Any], str, list[Problem]]:
    """A manifest release's objects, from its file or its generator, and where they come from."""
    if extra.file is None:
        objects = GENERATORS[str(extra.generator)](inputs.config, comp, components)
        return list(objects), f"generated by {extra.generator}", []
    problems: list[Problem] = []
    resources, errs = load_manifest_file(inputs.manifests_dir, extra.file, inputs.root, known)
    for err in errs:
        missing = missing_section(err.message)
        if missing is None:
            problems.append(err)
        elif missing[1] not in reported_sections:
            # Not the file's fault: the cluster file lacks the section the file reads.
            reported_sections.add(missing[1])
            problems.append(
                Problem(
                    inputs.config_file,
                    f"components.{comp.id}",
                    f"config/manifests/{extra.file} needs (({missing[0]})): set `{missing[1]}` in the "
                    f"cluster file, or disable component {comp.id!r}",
                )
            )
    return list(resources), extra.file, problems


# --- step: stacks ----------------------------------------------------------------------------------------


def plan_stacks(
    inputs: Inputs,
    graph: LayerGraph,
    placed: dict[str, str],
    components: dict[str, Component],
    namespaces: Namespaces,
    extras: Extras,
) -> list[LayerPlan]:
    """One LayerPlan per layer that has anything placed in it (enabled or not), with its stack dependencies: a
    layer without a stack passes its own on."""
    catalog, layer_specs, variables = inputs.catalog, inputs.layers.layers, inputs.variables.variables
    has_stack = {name: bool(namespaces.owned[name]) for name in graph.names}
    for cid in placed:
        spec = catalog[cid][0]
        has_stack[spec.layer] = True
        for extra in spec.manifests:
            if extra.layer in has_stack:
                has_stack[extra.layer] = True
    waits_for: dict[str, tuple[str, ...]] = {}
    installed_by: dict[str, frozenset[str]] = {}
    layers: list[LayerPlan] = []
    for name in graph.names:
        needs = layer_specs[name].needs
        stack_needs = sorted(
            {s for need in needs for s in ((need,) if has_stack[need] else waits_for[need])} | extras.reads_from[name]
        )
        before = frozenset().union(*(installed_by[need] for need in needs))
        mine = sorted((c for c in components.values() if c.layer == name), key=lambda c: c.id)
        installed_by[name] = before | {c.id for c in mine}
        if not has_stack[name]:
            waits_for[name] = tuple(stack_needs)
            continue
        layers.append(
            LayerPlan(
                name=name,
                description=layer_specs[name].description,
                stack_needs=tuple(stack_needs),
                uses_edge=name in extras.edge_layers,
                uses_node_pools=any(node_autoscaler.CONCERN in c.provides for c in mine),
                installed_before=before,
                namespaces=namespaces.owned[name],
                components=mine,
                manifests=extras.manifests[name],
                secrets=extras.secrets[name],
                variables=[
                    VariablePlan(v, variables[v].description, variables[v].pattern, variables[v].default)
                    for v in sorted(extras.variables_used[name])
                    if v in variables
                ],
            )
        )
    return layers


def k3s_plan(catalog: dict[str, tuple[ComponentSpec, str]], placed: dict[str, str]) -> K3sPlan:
    """What k3s leaves to the platform: follows placement, not `enabled` (a toggle never rewrites k3s' config)."""
    replaced = {item for cid in placed for item in catalog[cid][0].replaces_k3s}
    return K3sPlan(
        disable=tuple(name for name in K3S_PACKAGED if name in replaced),
        flannel_backend="none" if "flannel" in replaced else "vxlan",
        disable_network_policy="network-policy" in replaced,
        disable_kube_proxy="kube-proxy" in replaced,
    )


def _uniqueness_problems(
    components: dict[str, Component],
    manifests: dict[str, list[ManifestPlan]],
    secrets: dict[str, list[SecretPlan]],
    catalog: dict[str, tuple[ComponentSpec, str]],
    layer_names: list[str],
) -> list[Problem]:
    """Helm release names are unique per namespace, secret names too, and a layer's releases by construct id."""
    out: list[Problem] = []
    releases: dict[tuple[str, str], str] = {}
    for comp in components.values():
        if comp.has_release:
            releases[(comp.namespace, comp.release_name)] = comp.id
    for layer in layer_names:
        ids = {c.id for c in components.values() if c.layer == layer and c.has_release}
        for m in manifests[layer]:
            key = (m.namespace, m.release)
            file = catalog[m.component][1]
            if key in releases or m.release in ids:
                other = releases.get(key) or m.release
                out.append(
                    Problem(file, f"{m.component}.manifests", f"release {m.release!r} is already the release of {other!r}")
                )
            releases[key] = m.component
            ids.add(m.release)
    names: dict[tuple[str, str], str] = {}
    for comp in components.values():
        for generated in comp.generated_secrets:
            names[(comp.namespace, generated.name)] = comp.id
    for layer in layer_names:
        for s in secrets[layer]:
            key = (s.namespace, s.name)
            if key in names:
                out.append(
                    Problem(
                        catalog[s.component][1],
                        f"{s.component}.secrets",
                        f"secret {s.namespace}/{s.name} is also created for {names[key]!r}",
                    )
                )
            names[key] = s.component
    return out


def _kubernetes_problems(
    cfg: HelixConfig, cfg_file: str, components: dict[str, Component], catalog: dict[str, tuple[ComponentSpec, str]]
) -> list[Problem]:
    """Every enabled component's version must have a recorded Kubernetes range that holds the cluster's version."""
    out: list[Problem] = []
    k3s = cfg.cluster.k3s_version
    minor = kubernetes_minor(k3s)
    for cid in sorted(components):
        comp = components[cid]
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
