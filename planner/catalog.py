"""The data files beside the cluster file: the chart catalog (config/catalog/*.yaml), the layer order
(config/layers.yaml) and the sensitive variables (config/variables.yaml), their schemas and their loaders.

planner/resolve.py resolves them against the cluster file into the PlatformPlan. Plain Python: no jsii.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, model_validator

from planner.components import (
    CONCERNS,
    Provider,
    incident_manager,
    internal_certificate,
    metrics_scraper,
    node_autoscaler,
    object_store,
    service_mesh,
)
from planner.files import MAX_FILE_BYTES, Problem, display_path, parse_model, read_bounded, read_yaml_mapping
from planner.generators import GENERATORS
from planner.merge import deep_merge  # noqa: F401 - re-exported for code that imports it from here
from planner.schema import DnsLabel, ExactVersion, HelixConfig, Strict

PLACEHOLDER = re.compile(r"\(\(([a-z0-9_]+)\)\)")
NEAR_PLACEHOLDER = re.compile(r"\(\(\s*[A-Za-z_][A-Za-z0-9_.-]*\s*\)\)")


# The one strict base of every data file's schema is planner.schema.Strict; this name stays for older imports.
_Strict = Strict


class MeshService(_Strict):
    """The Service behind a component's public Ingress (its chart's Service name and port). While the component
    runs in a namespace with a sidecar, its public hostnames enter the mesh: cloudflared sends them to the Istio
    ingress gateway, which routes them to this Service (planner/components/mesh_ingress.py, docs/mesh.md)."""

    name: DnsLabel
    port: int = Field(ge=1, le=65535)


class GeneratedSecret(_Strict):
    """A Kubernetes secret whose values Terraform generates (random_password); never a literal."""

    name: DnsLabel
    random_keys: list[str] = Field(min_length=1)
    fixed: dict[str, str] = {}


class ValueSource(_Strict):
    """A sensitive value: a variable of config/variables.yaml, an output of the Cloudflare edge stack, or (in
    `sensitive_values` only) a random key of one of the component's own `generated_secrets`, as
    `<secret>/<key>`, for a chart that reads a password from its values and not from a Secret."""

    variable: str | None = None
    # tunnel_token: the connector token (sensitive); tunnel_cname: <tunnel id>.cfargotunnel.com.
    edge: Literal["tunnel_token", "tunnel_cname"] | None = None
    generated: str | None = Field(default=None, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?/[-._a-zA-Z0-9]+$")
    # The object store's keys, wherever object_storage puts them (the in-cluster store's generated keys, or the
    # external store's variables), alone or as an AWS shared credentials file (`[default]` profile).
    object_store: Literal["access_key_id", "secret_access_key", "aws_credentials_file"] | None = None
    # For an edge value: left out (instead of an error) when cloudflare.enabled is false.
    optional: bool = False

    @model_validator(mode="after")
    def _exactly_one(self) -> ValueSource:
        if sum(v is not None for v in (self.variable, self.edge, self.generated, self.object_store)) != 1:
            raise ValueError(
                "give exactly one of `variable` (a name in config/variables.yaml), `edge`, `generated` or `object_store`"
            )
        if self.optional and self.edge is None:
            raise ValueError("only an `edge` value can be optional")
        return self


class SecretExtra(_Strict):
    """A Kubernetes Secret in the component's namespace, created before its release and its manifests."""

    name: DnsLabel
    data: dict[str, ValueSource] = Field(min_length=1)

    @model_validator(mode="after")
    def _no_generated(self) -> SecretExtra:
        if any(v.generated is not None for v in self.data.values()):
            raise ValueError("a secret's data is a `variable` or `edge`; random values belong in `generated_secrets`")
        return self

    # The address this secret had before it belonged to its component (a `moved` block follows it).
    moved_from: str | None = None


def _generator_name(name: str) -> str:
    """Generators build objects from the cluster file or the component's values: the names are the keys of the
    one registry, planner.generators.GENERATORS, checked when the catalog loads."""
    if name not in GENERATORS:
        raise ValueError(f"{name!r} is not a generator (known: {', '.join(sorted(GENERATORS))})")
    return name


GeneratorName = Annotated[str, AfterValidator(_generator_name)]


class ManifestExtra(_Strict):
    """Plain Kubernetes objects installed as one release of the raw chart (config/manifests/raw-chart.yaml)."""

    release: DnsLabel
    file: str | None = None  # under config/manifests/
    generator: GeneratorName | None = None
    # Earlier manifest releases of the same component that must be installed first. The component's own
    # release always comes first.
    after: list[DnsLabel] = []
    # Install before the component's own release instead of after it: objects the release's pods use as soon
    # as they start (the database cluster they connect to, whose operator and CRDs an earlier layer or a
    # `needs` installs). The component's generated secrets are created first.
    before_release: bool = False
    # Refuse destroy of this release even when the component's namespace is not protected (a database).
    protect: bool = False
    # Another layer than the component's, one that depends on it (only when the objects need the component
    # to have run for a whole stack, as Cilium's runtime-registered CRDs do).
    layer: str | None = None
    timeout: int = Field(default=300, ge=30, le=3600)
    description: str = ""
    seed_name: str | None = None
    moved_from: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> ManifestExtra:
        if (self.file is None) == (self.generator is None):
            raise ValueError("give exactly one of `file` (under config/manifests/) or `generator`")
        if self.before_release and (self.layer is not None or self.after):
            raise ValueError("a `before_release` manifest is installed in the component's layer, after nothing else")
        return self


class KubernetesRange(_Strict):
    """The Kubernetes minor versions one chart version supports, and where that statement comes from.

    min and max are inclusive minor versions ("1.32"); a missing bound is one the chart and its project do not
    state. source names the statement: the chart's Chart.yaml kubeVersion, the project's support table, a
    pre-install check, ...
    """

    min: str | None = Field(default=None, pattern=r"^1\.\d+$")
    max: str | None = Field(default=None, pattern=r"^1\.\d+$")
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


def _concern(name: str) -> str:
    if name not in CONCERNS:
        raise ValueError(f"{name!r} is not a concern of planner/components/ (known: {', '.join(CONCERNS)})")
    return name


Concern = Annotated[str, AfterValidator(_concern)]


# k3s's packaged components and built-in networking that a platform component replaces.
K3sPackaged = Literal[
    "traefik", "servicelb", "metrics-server", "coredns", "local-storage", "flannel", "kube-proxy", "network-policy"
]


HELM_NEEDS_CHART = "a helm component needs `repository` and `chart`"


def missing_chart_fields(raw: Any, shown: str, cid: str) -> list[Problem]:
    """A helm entry's missing `repository` and `chart`, one problem each. pydantic runs the model's own check only
    once every field validates, so without this a new entry would report them a round after its other fields."""
    if not isinstance(raw, Mapping) or raw.get("kind", "helm") != "helm":
        return []
    return [Problem(shown, f"{cid}.{key}", f"required field is missing ({HELM_NEEDS_CHART})")
            for key in ("repository", "chart") if raw.get(key) is None]


class PodSecurityNeed(_Strict):
    """The Pod Security Standards level below which the component's pods are refused at admission, and why (the
    pod-spec fields of its chart at the pinned version that need it)."""

    level: Literal["baseline", "privileged"]
    because: str = Field(min_length=10)


class PodAutoscalingSpec(_Strict):
    """How a component's replicas follow its CPU with a HorizontalPodAutoscaler (planner/pod_autoscaling.py):
    `chart` sets the chart's own autoscaling values at the dotted paths below (read at the pinned version);
    `raw` (a component of the raw chart) adds an autoscaling/v2 HPA to `resources` for its Deployment."""

    style: Literal["chart", "raw"]
    min: int = Field(ge=2, le=100)
    """The default floor (2 at least: with a budget of minAvailable 1, a drain may then take one)."""
    max: int = Field(ge=2, le=100)
    cpu_percent: int = Field(ge=10, le=100)
    ceiling: int = Field(default=100, ge=2, le=100)
    """The most replicas the component may run (cloudflared: Cloudflare's connector limit per tunnel)."""
    # style chart: value paths of the switch, the bounds, the CPU target and the fixed replica count used while
    # off; `set_when_on` other paths set while on (a memory target turned off).
    enabled_path: str | None = None
    min_path: str | None = None
    max_path: str | None = None
    cpu_path: str | None = None
    replicas_path: str | None = None
    set_when_on: dict[str, Any] = {}
    # style raw: the Deployment in `resources` that the HPA scales.
    deployment: DnsLabel | None = None

    @model_validator(mode="after")
    def _complete(self) -> PodAutoscalingSpec:
        if self.min > self.max or self.max > self.ceiling:
            raise ValueError("min <= max <= ceiling is required")
        paths = (self.enabled_path, self.min_path, self.max_path, self.cpu_path, self.replicas_path)
        if self.style == "chart" and (None in paths or self.deployment is not None):
            raise ValueError("style chart needs enabled_path, min_path, max_path, cpu_path and replicas_path, no deployment")
        if self.style == "raw" and (self.deployment is None or any(p is not None for p in paths) or self.set_when_on):
            raise ValueError("style raw needs `deployment` and no value paths")
        return self


class ComponentSpec(_Strict):
    description: str
    seed_name: str
    upstream_note: str | None = None
    # helm: a release of `chart`; manifests: no chart of its own, only its `manifests` (an upstream project
    # that publishes release manifests and no chart). `version` is then the upstream release.
    kind: Literal["helm", "manifests"] = "helm"
    # Installed only while the cluster file's object_storage.mode is this (the in-cluster store, or the
    # external store's credentials); otherwise it counts as turned off.
    object_storage: Literal["in-cluster", "external"] | None = None
    layer: str
    repository: str | None = Field(default=None, pattern=r"^(https|oci)://[^\s]+$")
    chart: str | None = Field(default=None, min_length=1)
    version: ExactVersion
    release_name: DnsLabel | None = None
    # What a destroy or a replacement of the release takes with it (its volumes, its database), when anything:
    # the destroy guard (tools/guard.py) refuses that unless config/allow-destroy.yaml names the release.
    keeps: str | None = Field(default=None, min_length=10)
    # The lowest pod-security level its pods run under, when it is above restricted: a namespace that enforces a
    # lower one is refused (planner/load.py, pod_security_problems), since its pods would never be admitted.
    pod_security: PodSecurityNeed | None = None
    needs: list[str] = []
    timeout: int = Field(default=600, ge=30, le=3600)
    replaces_k3s: list[K3sPackaged] = []
    # Concerns whose code knows this component (planner/components/: object-store, tunnel-origin, ...).
    provides: list[Concern] = []
    generated_secrets: list[GeneratedSecret] = []
    mesh_service: MeshService | None = None
    # The compatibility matrix: for each chart version this catalog knows (the pinned one at least), the
    # Kubernetes range it supports. A cluster file may pin another version only if it is listed here.
    kubernetes: dict[ExactVersion, KubernetesRange] = {}
    # Helm value paths set with set_sensitive (never stored in the values).
    sensitive_values: dict[str, ValueSource] = {}
    # Helm value paths set with a plain `set` from a value another stack outputs (not a secret, so a plan shows it).
    values_from: dict[str, ValueSource] = {}
    secrets: list[SecretExtra] = []
    manifests: list[ManifestExtra] = []
    values: dict[str, Any] = {}
    # Wiring to another component, added to `values` only while that component is enabled (planner/wiring.py):
    # component id -> a values fragment (mappings merge, lists and strings are extended).
    values_when_enabled: dict[str, dict[str, Any]] = {}
    # Its counterpart, added only while that component is not installed: the fallback a pipeline needs when its
    # usual destination is off (Alloy's OTLP metrics without Mimir).
    values_when_disabled: dict[str, dict[str, Any]] = {}
    # A stateless front door whose replicas follow its CPU (docs/autoscaling.md, planner/pod_autoscaling.py).
    pod_autoscaling: PodAutoscalingSpec | None = None

    @model_validator(mode="after")
    def _chart_for_helm(self) -> ComponentSpec:
        if any(v.object_store is not None for v in self.sensitive_values.values()):
            raise ValueError("the object store's keys reach a chart through a Secret (`secrets`), not sensitive_values")
        if self.kind == "helm" and (self.repository is None or self.chart is None):
            raise ValueError(HELM_NEEDS_CHART)
        if self.kind == "manifests":
            if self.repository is not None or self.chart is not None or self.values or self.sensitive_values or self.values_from:
                raise ValueError(
                    "a manifests component has no chart: drop repository, chart, values, sensitive_values, values_from"
                )
            if not self.manifests and not self.secrets:
                raise ValueError("a manifests component needs at least one entry in `manifests` or `secrets`")
        return self


class LayerSpec(_Strict):
    description: str
    needs: list[str] = []


class LayersFile(_Strict):
    layers: dict[DnsLabel, LayerSpec]


class VariableSpec(_Strict):
    description: str = Field(min_length=1)
    # A value for a variable that may stay unset (the stack then uses it; the pattern is not checked on it).
    default: str | None = None
    # A regular expression the value must contain (Terraform's regex), checked at plan time.
    pattern: str | None = None


class VariablesFile(_Strict):
    variables: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")], VariableSpec] = {}


def placeholder_values(cfg: HelixConfig, providers: Mapping[str, Provider] | None = None) -> dict[str, Any]:
    """Every ((placeholder)) the catalog and the manifest files may use, from the cluster file and the providers
    of the concerns (planner/components.find_providers; None: every concern at its defaults)."""
    c = cfg.cluster
    found = providers or {}
    return {
        **object_store.placeholders(cfg, found.get(object_store.CONCERN)),
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
        "internal_domain": cfg.cloudflare.internal_domain_of(cfg.domain),
        **internal_certificate.placeholders(found.get(internal_certificate.CONCERN)),
        **metrics_scraper.placeholders(found.get(metrics_scraper.CONCERN)),
        **incident_manager.placeholders(cfg),
        **service_mesh.placeholders(cfg),
        **node_autoscaler.placeholders(cfg),
    }


# Placeholders that exist only when an optional section of the cluster file is set: name -> that section.
OPTIONAL_PLACEHOLDERS = {f"gitops_{key}": "gitops" for key in ("url", "branch", "path", "interval")}


def missing_section(message: str) -> tuple[str, str] | None:
    """(placeholder, cluster file section) when a render problem is an optional section left unset."""
    match = re.match(r"^unknown placeholder \(\(([a-z0-9_]+)\)\)", message)
    if match and match.group(1) in OPTIONAL_PLACEHOLDERS:
        return match.group(1), OPTIONAL_PLACEHOLDERS[match.group(1)]
    return None


def render_placeholders(value: Any, known: dict[str, Any], path: str, problems: list[tuple[str, str]]) -> Any:
    """Replace ((name)) in every string of a values tree; unknown names are reported, not guessed. A string that
    is one placeholder and nothing else takes the value's own type (a boolean stays a boolean)."""
    if isinstance(value, dict):
        return {k: render_placeholders(v, known, f"{path}.{k}", problems) for k, v in value.items()}
    if isinstance(value, list):
        return [render_placeholders(v, known, f"{path}[{i}]", problems) for i, v in enumerate(value)]
    if isinstance(value, str):
        whole = PLACEHOLDER.fullmatch(value)
        if whole and whole.group(1) in known and not isinstance(known[whole.group(1)], str):
            return known[whole.group(1)]

        def sub(match: re.Match) -> str:
            name = match.group(1)
            if name not in known:
                problems.append((path, f"unknown placeholder (({name})); known: {', '.join(sorted(known))}"))
                return match.group(0)
            found = known[name]
            return str(found).lower() if isinstance(found, bool) else str(found)

        rendered = PLACEHOLDER.sub(sub, value)
        # ((K3s_Version)), (( name )), ((name-x)): meant as a placeholder, but not one; it would stay literal text.
        for near in NEAR_PLACEHOLDER.findall(rendered):
            if PLACEHOLDER.fullmatch(near):
                continue  # an unknown name, reported above
            problems.append((path, f"{near} is not a placeholder (lowercase letters, digits and '_' between (( and ))); "
                             f"known: {', '.join(sorted(known))}"))
        return rendered
    return value


def load_layers(path: Path, root: Path) -> tuple[LayersFile | None, list[Problem]]:
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
        key = (str(folder), str(root), tuple((path.name, read_bounded(path, MAX_FILE_BYTES)) for path in files))
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
            if not isinstance(cid, str) or not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", cid):
                problems.append(Problem(shown, str(cid), "a component id is lowercase letters, digits and '-'"))
                continue
            spec, errs = parse_model(ComponentSpec, raw, shown, prefix=(cid,))
            chart = missing_chart_fields(raw, shown, cid)
            problems.extend([e for e in errs if not (chart and e.message == HELM_NEEDS_CHART)] + chart)
            if spec is None:
                continue
            if cid in specs:
                problems.append(Problem(shown, cid, f"component already defined in {specs[cid][1]}"))
                continue
            specs[cid] = (spec, shown)
    return specs, problems
