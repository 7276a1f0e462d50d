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

from dataclasses import dataclass
from pathlib import Path

from planner.catalog import (
    ComponentSpec,
    LayersFile,
    ValueSource,
    VariablesFile,
    deep_merge,
    kubernetes_minor,
    missing_section,
    placeholder_values,
    render_placeholders,
)
from planner.files import Problem
from planner.generators import GENERATORS
from planner.manifests import RawChartFile, load_manifest_file
from planner.model import (
    ChartSource,
    Component,
    K3sPlan,
    LayerPlan,
    ManifestPlan,
    NamespacePlan,
    PlatformPlan,
    SecretPlan,
    ValueRef,
    VariablePlan,
)
from planner.schema import HelixConfig
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


# The in-cluster object store: the component that generates its keys, and the Secret they are in.
IN_CLUSTER_KEYS = ("seaweedfs", "object-store")
AWS_CREDENTIALS_FILE = "[default]\naws_access_key_id = {access_key_id}\naws_secret_access_key = {secret_access_key}\n"


def _object_store_ref(cfg: HelixConfig, what: str) -> ValueRef:
    def key(name: str) -> ValueRef:
        if cfg.object_storage.mode == "external":
            return ValueRef("variable", f"object_storage_{name}")
        component, secret = IN_CLUSTER_KEYS
        return ValueRef("generated_in", f"{secret}/{name}", component=component)

    if what == "aws_credentials_file":
        fields = tuple((name, key(name)) for name in ("access_key_id", "secret_access_key"))
        return ValueRef("format", AWS_CREDENTIALS_FILE, fields=fields)
    return key(what)


def _ref(source: ValueSource, cfg: HelixConfig | None = None) -> ValueRef:
    if source.object_store is not None:
        assert cfg is not None
        return _object_store_ref(cfg, source.object_store)
    if source.variable is not None:
        return ValueRef("variable", source.variable)
    if source.generated is not None:
        return ValueRef("generated", source.generated)
    return ValueRef("edge", str(source.edge))


def resolve_platform(inputs: Inputs) -> tuple[PlatformPlan | None, list[Problem]]:
    """The plan, or None with every problem found (all of them, not the first)."""
    cfg, cfg_file, catalog = inputs.config, inputs.config_file, inputs.catalog
    problems: list[Problem] = []
    layer_specs = inputs.layers.layers
    layer_names = list(layer_specs)
    layer_index = {name: i for i, name in enumerate(layer_names)}
    # Transitive layer dependencies, so a component may need anything in a layer its layer depends on.
    ancestors: dict[str, set[str]] = {}
    for name, layer_spec in layer_specs.items():
        ancestors[name] = set(layer_spec.needs).union(*(ancestors[d] for d in layer_spec.needs if d in ancestors))

    def comes_after(later: str, earlier: str) -> bool:
        return later == earlier or earlier in ancestors.get(later, set())

    for cid in cfg.components:
        if cid not in catalog:
            problems.append(Problem(cfg_file, f"components.{cid}", "not a component in the catalog"))

    # --- placement: every component placed in a namespace, enabled or not ---
    placed: dict[str, str] = {}  # component -> namespace
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
        if spec.layer not in layer_index:
            problems.append(Problem(spec_file, f"{cid}.layer", f"{spec.layer!r} is not a layer in {inputs.layers_file}"))
        for i, extra in enumerate(spec.manifests):
            if extra.layer is not None and extra.layer not in layer_index:
                problems.append(
                    Problem(spec_file, f"{cid}.manifests[{i}].layer", f"{extra.layer!r} is not a layer in {inputs.layers_file}")
                )
    placed = {cid: ns for cid, ns in placed.items() if catalog[cid][0].layer in layer_index}

    def enabled(cid: str) -> bool:
        override = cfg.components.get(cid)
        mode = catalog[cid][0].object_storage
        return (override is None or override.enabled) and (mode is None or mode == cfg.object_storage.mode)

    # --- components as installed ---
    known = placeholder_values(cfg)
    components: dict[str, Component] = {}
    installed = {cid for cid in placed if enabled(cid)}
    for cid, ns_name in placed.items():
        if not enabled(cid):
            continue
        spec, spec_file = catalog[cid]
        override = cfg.components.get(cid)
        for target in unknown_targets(spec.values_when_enabled, catalog):
            problems.append(Problem(spec_file, f"{cid}.values_when_enabled.{target}", f"{target!r} is not a component in the catalog"))
        if spec.kind == "manifests" and override is not None and (override.version or override.values):
            problems.append(
                Problem(cfg_file, f"components.{cid}", "a manifests component has no chart: only `enabled` applies")
            )
        values = deep_merge(wired_values(spec.values, spec.values_when_enabled, installed), override.values if override else {})
        found: list[tuple[str, str]] = []
        values = render_placeholders(values, known, f"{cid}.values", found)
        problems.extend(Problem(spec_file if not override else cfg_file, p, m) for p, m in found)
        components[cid] = Component(
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
                path: _ref(src, cfg)
                for path, src in spec.sensitive_values.items()
                if cfg.cloudflare.enabled or not src.optional
            },
            values_from={
                path: _ref(src, cfg)
                for path, src in spec.values_from.items()
                if cfg.cloudflare.enabled or not src.optional
            },
            protect=cfg.namespace_protected(ns_name),
            description=spec.description,
            seed_name=spec.seed_name,
            upstream_note=spec.upstream_note,
        )

    # --- needs: installed, in the same layer or one this layer depends on, no cycles ---
    for cid, comp in components.items():
        spec_file = catalog[cid][1]
        for dep in comp.needs:
            if dep not in catalog:
                problems.append(Problem(spec_file, f"{cid}.needs", f"{dep!r} is not a component in the catalog"))
            elif dep not in components:
                problems.append(
                    Problem(cfg_file, f"components.{dep}", f"{cid!r} needs {dep!r}, which is disabled or in no namespace")
                )
            elif not comes_after(comp.layer, components[dep].layer):
                problems.append(
                    Problem(
                        spec_file,
                        f"{cid}.needs",
                        f"{dep!r} is in layer {components[dep].layer!r}, which layer {comp.layer!r} does not depend on",
                    )
                )
    problems.extend(_cycle_problems(components, {cid: catalog[cid][1] for cid in components}))
    problems.extend(_kubernetes_problems(cfg, cfg_file, components, catalog))

    # --- namespaces: the owner comes from data, never from which components are enabled ---
    namespace_owner: dict[str, str] = {}
    owned: dict[str, list[NamespacePlan]] = {name: [] for name in layer_names}
    for ns_name, ns in cfg.namespaces.items():
        if ns.layer is not None and ns.layer not in layer_index:
            problems.append(
                Problem(cfg_file, f"namespaces.{ns_name}.layer", f"{ns.layer!r} is not a layer in {inputs.layers_file}")
            )
            continue
        members = [cid for cid, where in placed.items() if where == ns_name]
        if ns.layer is not None:
            owner = ns.layer
        elif members:
            owner = min((catalog[cid][0].layer for cid in members), key=layer_index.__getitem__)
        else:
            continue
        namespace_owner[ns_name] = owner
        # kube-system exists in every cluster; it is labelled by nobody here rather than fought over.
        if ns_name != "kube-system":
            owned[owner].append(NamespacePlan(ns_name, dict(ns.labels), ns.protect))

    def check_owner(ns_name: str, layer: str, what: str, file: str, path: str) -> None:
        owner = namespace_owner.get(ns_name)
        if owner is None or ns_name == "kube-system" or comes_after(layer, owner):
            return
        if cfg.namespaces[ns_name].layer is not None:
            # The cluster file chose the owner: that choice is what to change.
            problems.append(
                Problem(
                    cfg_file,
                    f"namespaces.{ns_name}.layer",
                    f"layer {owner!r} would create the namespace after {what} installs into it in layer {layer!r} "
                    f"(which does not depend on {owner!r}): use {layer!r} or a layer it depends on",
                )
            )
        else:
            problems.append(
                Problem(
                    file,
                    path,
                    f"{what} installs into namespace {ns_name!r} in layer {layer!r}, but the namespace is created "
                    f"by layer {owner!r}, which {layer!r} does not depend on "
                    f"(set namespaces.{ns_name}.layer in {cfg_file} to {layer!r} or earlier)",
                )
            )

    for cid, comp in components.items():
        check_owner(comp.namespace, comp.layer, repr(cid), catalog[cid][1], f"{cid}.layer")

    # --- extras ---
    variables_used: dict[str, set[str]] = {name: set() for name in layer_names}
    reads_from: dict[str, set[str]] = {name: set() for name in layer_names}
    edge_layers: set[str] = set()

    edge_problems: set[str] = set()

    def check_ref(ref: ValueRef, cid: str, layer: str, file: str, path: str) -> None:
        if ref.source == "format":
            for _, part in ref.fields:
                check_ref(part, cid, layer, file, path)
            return
        if ref.source == "generated_in":
            owner = components.get(ref.component)
            secret, _, key = ref.name.partition("/")
            if owner is None or not any(g.name == secret and key in g.random_keys for g in owner.generated_secrets):
                problems.append(
                    Problem(
                        cfg_file,
                        f"components.{ref.component}",
                        f"{cid!r} needs {ref.component!r} (the object store's keys, {file}: {path}), which is "
                        "disabled or in no namespace",
                    )
                )
            elif not comes_after(layer, owner.layer):
                problems.append(
                    Problem(file, path, f"{ref.component!r} is in layer {owner.layer!r}, which layer {layer!r} does not depend on")
                )
            elif owner.layer != layer:
                reads_from[layer].add(owner.layer)  # a cross-stack reference: that stack's output
            return
        if ref.source == "generated":
            secret, _, key = ref.name.partition("/")
            keys = {g.name: set(g.random_keys) for g in components[cid].generated_secrets}
            if key not in keys.get(secret, set()):
                problems.append(
                    Problem(file, path, f"{ref.name!r} is not a random key of a generated secret of component {cid!r}")
                )
            return
        if ref.source == "variable":
            if ref.name not in inputs.variables.variables:
                problems.append(Problem(file, path, f"variable {ref.name!r} is not declared in {inputs.variables_file}"))
            variables_used[layer].add(ref.name)
            return
        edge_layers.add(layer)
        if not cfg.cloudflare.enabled and cid not in edge_problems:
            edge_problems.add(cid)
            problems.append(
                Problem(
                    cfg_file,
                    f"components.{cid}",
                    f"{cid} needs the tunnel (the Cloudflare edge's {ref.name}): set cloudflare.enabled: true, "
                    f"or disable component {cid!r}",
                )
            )

    manifests: dict[str, list[ManifestPlan]] = {name: [] for name in layer_names}
    secrets: dict[str, list[SecretPlan]] = {name: [] for name in layer_names}
    for cid, comp in components.items():
        spec, spec_file = catalog[cid]
        for path, ref in comp.sensitive_values.items():
            check_ref(ref, cid, comp.layer, spec_file, f"{cid}.sensitive_values.{path}")
        for path, ref in comp.values_from.items():
            check_ref(ref, cid, comp.layer, spec_file, f"{cid}.values_from.{path}")
        planned: dict[str, ManifestPlan] = {}
        skipped: set[str] = set()
        reported_sections: set[str] = set()
        for i, extra in enumerate(spec.manifests):
            where = f"{cid}.manifests[{i}]"
            if extra.release in planned or extra.release in skipped:
                problems.append(Problem(spec_file, f"{where}.release", f"{extra.release!r} is listed twice"))
                continue
            layer = extra.layer or comp.layer
            if not comes_after(layer, comp.layer):
                problems.append(
                    Problem(spec_file, f"{where}.layer", f"layer {layer!r} does not depend on {cid!r}'s layer {comp.layer!r}")
                )
                continue
            if extra.file is not None:
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
                                cfg_file,
                                f"components.{cid}",
                                f"config/manifests/{extra.file} needs (({missing[0]})): set `{missing[1]}` in the "
                                f"cluster file, or disable component {cid!r}",
                            )
                        )
                source = extra.file
            else:
                resources = GENERATORS[str(extra.generator)](cfg, comp)
                source = f"generated by {extra.generator}"
            if not resources:
                skipped.add(extra.release)  # a generator with nothing to install (e.g. no load_balancer_range)
                continue
            first = extra.before_release and comp.has_release
            after: list[str] = [cid] if comp.has_release and not first else []
            for j, dep in enumerate(extra.after):
                if dep in skipped:
                    continue
                if dep not in planned:
                    problems.append(
                        Problem(spec_file, f"{where}.after[{j}]", f"{dep!r} is not a manifest release listed before it")
                    )
                elif planned[dep].layer != layer:
                    problems.append(
                        Problem(spec_file, f"{where}.after[{j}]", f"{dep!r} is installed by another layer ({planned[dep].layer!r})")
                    )
                else:
                    after.append(dep)
            check_owner(comp.namespace, layer, f"manifest release {extra.release!r}", spec_file, where)
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
        for m in planned.values():
            manifests[m.layer].append(m)
        same_layer = tuple(m.release for m in planned.values() if m.layer == comp.layer)
        for i, extra_secret in enumerate(spec.secrets):
            data = {key: _ref(src, cfg) for key, src in extra_secret.data.items()}
            for key, ref in data.items():
                check_ref(ref, cid, comp.layer, spec_file, f"{cid}.secrets[{i}].data.{key}")
            secrets[comp.layer].append(
                SecretPlan(
                    component=cid,
                    name=extra_secret.name,
                    namespace=comp.namespace,
                    data=data,
                    before=((cid,) if comp.has_release else ()) + same_layer,
                    moved_from=extra_secret.moved_from,
                )
            )

    problems.extend(_uniqueness_problems(components, manifests, secrets, catalog, layer_names))

    # --- layers and their stacks ---
    has_stack = {name: bool(owned[name]) for name in layer_names}
    for cid in placed:
        spec = catalog[cid][0]
        has_stack[spec.layer] = True
        for extra in spec.manifests:
            if extra.layer in has_stack:
                has_stack[extra.layer] = True
    waits_for: dict[str, tuple[str, ...]] = {}
    installed_by: dict[str, frozenset[str]] = {}
    layers: list[LayerPlan] = []
    for name in layer_names:
        needs = layer_specs[name].needs
        stack_needs = sorted(
            {s for need in needs for s in ((need,) if has_stack[need] else waits_for[need])} | reads_from[name]
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
                uses_edge=name in edge_layers,
                installed_before=before,
                namespaces=owned[name],
                components=mine,
                manifests=manifests[name],
                secrets=secrets[name],
                variables=[
                    VariablePlan(
                        v,
                        inputs.variables.variables[v].description,
                        inputs.variables.variables[v].pattern,
                        inputs.variables.variables[v].default,
                    )
                    for v in sorted(variables_used[name])
                    if v in inputs.variables.variables
                ],
            )
        )

    replaced = {item for cid in placed for item in catalog[cid][0].replaces_k3s}
    k3s = K3sPlan(
        disable=tuple(name for name in K3S_PACKAGED if name in replaced),
        flannel_backend="none" if "flannel" in replaced else "vxlan",
        disable_network_policy="network-policy" in replaced,
        disable_kube_proxy="kube-proxy" in replaced,
    )
    if problems:
        return None, problems
    raw = ChartSource(inputs.raw_chart.repository, inputs.raw_chart.chart, inputs.raw_chart.version)
    return PlatformPlan(config=cfg, config_file=cfg_file, layers=layers, k3s=k3s, raw_chart=raw), problems


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
