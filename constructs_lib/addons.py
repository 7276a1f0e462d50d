"""Helm add-ons as declarative specs, installed as one layer with the order derived from their needs.

An `AddOnLayer` creates namespaces and Helm releases in one stack. Beside the charts it installs the things a
chart needs around it, each ordered against the releases by name, never by hand-written overrides:

- `add_secret(spec, before=[...])`: a Kubernetes Secret from values the app supplies (sensitive variables,
  other stacks' outputs), created after its namespace and before the named releases;
- `add_manifests(spec, after=[...])`: plain Kubernetes objects (custom resources, vendored release manifests)
  installed as one release of a raw-manifest chart, after the named releases.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml
from constructs import Construct

from constructs_lib.cluster_access import ClusterProviders
from constructs_lib.engine import (
    ITerraformDependable,
    NamespaceV1,
    NamespaceV1Metadata,
    Password,
    RandomProvider,
    Release,
    ReleaseSet,
    ReleaseSetSensitive,
    SecretV1,
    SecretV1Metadata,
    TerraformResource,
    TerraformResourceLifecycle,
)
from constructs_lib.providers import ensure_provider


def _check_chart_source(what: str, repository: str, version: str) -> None:
    if not repository.startswith(("https://", "oci://")):
        raise ValueError(f"{what}: repository must be https:// or oci://, got {repository!r}")
    if not version or any(ch in version for ch in "^~<>=*| ,") or version == "latest":
        raise ValueError(f"{what}: version must be exact, got {version!r}")


@dataclass(frozen=True)
class NamespaceSpec:
    """A namespace the layer creates.

    Props:
        name: namespace name.
        labels: labels such as pod-security.kubernetes.io/enforce.
        protect: refuse destroy of the namespace and of every release in it (it holds data).
    """

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    protect: bool = False


@dataclass(frozen=True)
class GeneratedSecretSpec:
    """A Kubernetes secret with values generated in Terraform, for a chart's existingSecret options.

    Props:
        name: secret name, in the add-on's namespace.
        random_keys: keys that each get a random 32-character password.
        fixed: keys with literal, non-secret values (a user name, for example).
    """

    name: str
    random_keys: Sequence[str]
    fixed: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class HelmAddOn:
    """One Helm chart to install, as data.

    Props:
        name: add-on id; the construct id of its release, so keep it stable (renaming it destroys the release).
        namespace: target namespace (created by this layer or already present).
        repository: https:// or oci:// chart repository.
        chart: chart name.
        version: exact chart version.
        values: chart values; Terraform's `${` and `%{` are escaped, so they reach the chart literally.
        release_name: Helm release name (defaults to name).
        needs: add-ons installed first: same-layer ones become depends_on, others must be listed in the
            layer's installed_before (an earlier stack installs them).
        sensitive_values: Helm value paths set from sensitive values (variables or other stacks' outputs).
        set_values: Helm value paths set with a plain `set`, for values known only at apply time that are not
            secret (another stack's output, shown in plans).
        generated_secrets: secrets to create before the release, with random values.
        generated_values: Helm value paths set (sensitive) from a random key of one of generated_secrets:
            path -> (secret name, key), for a chart that reads a password from its values, not from a Secret.
        protect: refuse destroy of the release.
        depends_on: further resources to create first (a secret the chart reads, for example).
        wait: wait until every object of the release is ready before the apply goes on (default True), so
            that what comes after it finds it working.
        timeout: seconds Helm waits for readiness (default 600).
        cleanup_on_fail: delete what a failed install or upgrade created (default True), so a retry starts clean.
        max_history: release revisions Helm keeps for rollback (default 10; 0 keeps all).
    """

    name: str
    namespace: str
    repository: str
    chart: str
    version: str
    values: Mapping[str, Any] = field(default_factory=dict)
    release_name: str | None = None
    needs: Sequence[str] = ()
    sensitive_values: Mapping[str, str] = field(default_factory=dict)
    set_values: Mapping[str, str] = field(default_factory=dict)
    generated_secrets: Sequence[GeneratedSecretSpec] = ()
    generated_values: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    protect: bool = False
    depends_on: Sequence[ITerraformDependable] = ()
    wait: bool = True
    timeout: int = 600
    cleanup_on_fail: bool = True
    max_history: int = 10

    def __post_init__(self) -> None:
        _check_chart_source(f"add-on {self.name!r}", self.repository, self.version)
        keys = {(s.name, k) for s in self.generated_secrets for k in s.random_keys}
        for path, ref in self.generated_values.items():
            if tuple(ref) not in keys:
                raise ValueError(f"add-on {self.name!r}: generated_values[{path!r}] names no random key of its generated_secrets")


@dataclass(frozen=True)
class RawChart:
    """A chart that installs the objects of one values key as they are, without templating them.

    Props:
        repository: https:// or oci:// chart repository.
        chart: chart name.
        version: exact chart version.
        values_key: the values key holding the list of objects (default "resources", as in bedag's `raw` chart).
    """

    repository: str
    chart: str
    version: str
    values_key: str = "resources"

    def __post_init__(self) -> None:
        _check_chart_source(f"raw chart {self.chart!r}", self.repository, self.version)


@dataclass(frozen=True)
class ManifestRelease:
    """Plain Kubernetes objects installed as one release of a raw-manifest chart.

    Custom resources go through Helm rather than kubernetes_manifest: kubernetes_manifest needs its kind's CRD
    on the API server at plan time, which fails when the CRD comes from the same apply, and whenever the
    cluster does not exist yet. A release touches the cluster only at apply time.

    Props:
        name: Helm release name and construct id (keep it stable: renaming it destroys the release).
        namespace: namespace of the release (objects without one land here).
        resources: the objects, each a mapping with apiVersion, kind and metadata.
        chart: the raw chart that installs them.
        protect: refuse destroy of the release.
        wait, timeout, cleanup_on_fail, max_history: as for HelmAddOn (timeout default 300).
    """

    name: str
    namespace: str
    resources: Sequence[Mapping[str, Any]]
    chart: RawChart
    protect: bool = False
    wait: bool = True
    timeout: int = 300
    cleanup_on_fail: bool = True
    max_history: int = 10

    def __post_init__(self) -> None:
        for i, obj in enumerate(self.resources):
            if not {"apiVersion", "kind", "metadata"} <= set(obj):
                raise ValueError(f"manifest release {self.name!r}: resources[{i}] needs apiVersion, kind and metadata")


@dataclass(frozen=True)
class SecretSpec:
    """A Kubernetes Secret whose values the app supplies (sensitive variables, other stacks' outputs).

    Props:
        name: secret name.
        namespace: its namespace.
        data: key -> value (Terraform stores it base64-encoded; pass plain strings or tokens).
        labels: labels of the secret.
        id: construct id (default "<namespace>-<name>"); it becomes the Terraform address, so keep it stable.
    """

    name: str
    namespace: str
    data: Mapping[str, str]
    labels: Mapping[str, str] = field(default_factory=dict)
    id: str | None = None


def escape_terraform_templates(text: str) -> str:
    """Make `${...}` and `%{...}` literal for Terraform, which would otherwise interpolate them."""
    return text.replace("${", "$${").replace("%{", "%%{")


class _ValuesDumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """Safe YAML, in libyaml when PyYAML has it: the same text as the pure-Python emitter, several times faster."""


def _represent_str(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    # Multi-line strings (config files such as Alloy's) as literal blocks, so a plan shows them line by line.
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style="|" if "\n" in text else None)


_ValuesDumper.add_representer(str, _represent_str)


def render_values(values: Mapping[str, Any]) -> str:
    """Chart values as deterministic YAML (keys in the order given), safe to embed in Terraform JSON."""
    text = yaml.dump(dict(values), Dumper=_ValuesDumper, sort_keys=False, width=1000)
    return escape_terraform_templates(text)


def ensure_random_provider(scope: Construct) -> None:
    """One random provider per stack, however many constructs need it."""
    ensure_provider(scope, RandomProvider, "random")


def address(resource: TerraformResource) -> str:
    """A resource's bare Terraform address (type.name), the form depends_on and moved blocks take."""
    return f"{resource.terraform_resource_type}.{resource.friendly_unique_id}"


class AddOnLayer(Construct):
    """Namespaces and Helm releases that one stack installs, ordered by the add-ons' declared needs.

    Props:
        providers: the stack's ClusterProviders.
        namespaces: namespaces this layer creates.
        add_ons: the add-ons this layer installs.
        installed_before: add-on names that earlier stacks install (their needs are met by stack order).
    Attributes:
        namespaces: namespace name -> NamespaceV1.
        releases: add-on or manifest release name -> Release (escape hatch: add_override, lifecycle...).
        secrets: (owner, secret name) -> SecretV1; the owner is the add-on of a generated secret, or the
            namespace of a secret added with add_secret.
    Methods:
        add_secret, add_manifests: things a chart needs around it, ordered by release names.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        providers: ClusterProviders,
        namespaces: Sequence[NamespaceSpec] = (),
        add_ons: Sequence[HelmAddOn] = (),
        installed_before: Collection[str] = (),
    ) -> None:
        super().__init__(scope, id)
        self._providers = providers
        self._installed_before = frozenset(installed_before)
        self.namespaces: dict[str, NamespaceV1] = {}
        self.releases: dict[str, Release] = {}
        self.secrets: dict[tuple[str, str], SecretV1] = {}
        self._passwords: dict[tuple[str, str, str], Password] = {}

        self._protected = {ns.name for ns in namespaces if ns.protect}
        for ns in namespaces:
            self.namespaces[ns.name] = NamespaceV1(
                self,
                f"namespace-{ns.name}",
                provider=providers.kubernetes,
                metadata=NamespaceV1Metadata(name=ns.name, labels=dict(ns.labels) or None),
                lifecycle=TerraformResourceLifecycle(prevent_destroy=True) if ns.protect else None,
            )

        by_name = {a.name: a for a in add_ons}
        if len(by_name) != len(add_ons):
            raise ValueError(f"{self.node.path}: add-on names must be unique")
        for addon in add_ons:
            for dep in addon.needs:
                if dep not in by_name and dep not in self._installed_before:
                    raise ValueError(
                        f"{self.node.path}: add-on {addon.name!r} needs {dep!r}, which is neither in this layer "
                        "nor installed before"
                    )

        # Create releases in dependency order, so each depends_on refers to an existing release.
        for addon in _topological(add_ons, self.node.path):
            deps: list[ITerraformDependable] = list(self._namespace_dependency(addon.namespace))
            for secret in addon.generated_secrets:
                deps.append(self._generated_secret(addon, secret))
            deps.extend(self.releases[d] for d in addon.needs if d in self.releases)
            deps.extend(addon.depends_on)
            self._add_release(addon, deps)

    def add_manifests(
        self, spec: ManifestRelease, *, after: Sequence[str] = (), before: Sequence[str] = ()
    ) -> Release:
        """Install `spec.resources` as one release of the raw chart, after the releases named in `after` and
        before those named in `before`.

        `after` names add-ons or manifest releases of this layer, or add-ons in installed_before (an earlier
        stack, so nothing more to order). `before` names add-ons of this layer that wait for these objects
        (a database cluster their pods connect to); the secrets generated for those add-ons are created first,
        so the objects may read them.
        """
        if spec.name in self.releases:
            raise ValueError(f"{self.node.path}: a release named {spec.name!r} already exists in this layer")
        missing = [name for name in before if name not in self.releases or name in after]
        if missing:
            raise ValueError(
                f"{self.node.path}: manifest release {spec.name!r} must come before {', '.join(missing)}, which "
                "this layer does not install (or which it also comes after)"
            )
        deps: list[ITerraformDependable] = list(self._namespace_dependency(spec.namespace))
        deps.extend(secret for (owner, _), secret in self.secrets.items() if owner in before)
        for name in after:
            if name in self.releases:
                deps.append(self.releases[name])
            elif name not in self._installed_before:
                raise ValueError(
                    f"{self.node.path}: manifest release {spec.name!r} comes after {name!r}, which is neither a "
                    "release of this layer nor installed before"
                )
        as_addon = HelmAddOn(
            name=spec.name,
            namespace=spec.namespace,
            repository=spec.chart.repository,
            chart=spec.chart.chart,
            version=spec.chart.version,
            values={spec.chart.values_key: [dict(r) for r in spec.resources]},
            protect=spec.protect,
            wait=spec.wait,
            timeout=spec.timeout,
            cleanup_on_fail=spec.cleanup_on_fail,
            max_history=spec.max_history,
        )
        release = self._add_release(as_addon, deps)
        for name in before:
            waiting = self.releases[name]
            waiting.depends_on = [*(waiting.depends_on or []), address(release)]
        return release

    def _add_release(self, addon: HelmAddOn, deps: Sequence[ITerraformDependable]) -> Release:
        release = Release(
            self,
            addon.name,
            provider=self._providers.helm,
            name=addon.release_name or addon.name,
            namespace=addon.namespace,
            repository=addon.repository,
            chart=addon.chart,
            version=addon.version,
            values=[render_values(addon.values)] if addon.values else None,
            set=[ReleaseSet(name=k, value=v) for k, v in addon.set_values.items()] or None,
            set_sensitive=[ReleaseSetSensitive(name=k, value=v) for k, v in addon.sensitive_values.items()]
            + [
                ReleaseSetSensitive(name=k, value=self._passwords[(addon.name, secret, key)].result)
                for k, (secret, key) in addon.generated_values.items()
            ]
            or None,
            create_namespace=False,
            wait=addon.wait,
            timeout=addon.timeout,
            cleanup_on_fail=addon.cleanup_on_fail,
            max_history=addon.max_history,
            depends_on=list(deps) or None,
            lifecycle=self._lifecycle(addon.protect, addon.namespace),
        )
        self.releases[addon.name] = release
        return release

    def add_secret(self, spec: SecretSpec, *, before: Sequence[str] = ()) -> SecretV1:
        """Create a Secret after its namespace (when this layer creates it) and before the named releases."""
        key = (spec.namespace, spec.name)
        if key in self.secrets:
            raise ValueError(f"{self.node.path}: secret {spec.namespace}/{spec.name} is added twice")
        missing = [name for name in before if name not in self.releases]
        if missing:
            raise ValueError(
                f"{self.node.path}: secret {spec.namespace}/{spec.name} must come before {', '.join(missing)}, "
                "which this layer does not install (add the releases first)"
            )
        secret = SecretV1(
            self,
            spec.id or f"{spec.namespace}-{spec.name}",
            provider=self._providers.kubernetes,
            metadata=SecretV1Metadata(name=spec.name, namespace=spec.namespace, labels=dict(spec.labels) or None),
            data=dict(spec.data),
            depends_on=list(self._namespace_dependency(spec.namespace)) or None,
        )
        self.secrets[key] = secret
        for name in before:
            release = self.releases[name]
            release.depends_on = [*(release.depends_on or []), address(secret)]
        return secret

    def generated_value(self, addon: str, secret: str, key: str) -> str:
        """The random value of `key` in a secret generated for `addon` (a token; usable from other stacks, where
        cdktf passes it as a sensitive cross-stack output)."""
        try:
            return self._passwords[(addon, secret, key)].result
        except KeyError:
            raise ValueError(f"{self.node.path}: add-on {addon!r} generates no random key {key!r} in {secret!r}") from None

    def _namespace_dependency(self, namespace: str) -> list[ITerraformDependable]:
        return [self.namespaces[namespace]] if namespace in self.namespaces else []

    def _lifecycle(self, protect: bool, namespace: str) -> TerraformResourceLifecycle | None:
        if protect or namespace in self._protected:
            return TerraformResourceLifecycle(prevent_destroy=True)
        return None

    def _generated_secret(self, addon: HelmAddOn, spec: GeneratedSecretSpec) -> SecretV1:
        ensure_random_provider(self)
        data: dict[str, str] = dict(spec.fixed)
        for key in spec.random_keys:
            password = Password(self, f"{addon.name}-{spec.name}-{key}", length=32, special=False)
            self._passwords[(addon.name, spec.name, key)] = password
            data[key] = password.result
        secret = SecretV1(
            self,
            f"{addon.name}-{spec.name}",
            provider=self._providers.kubernetes,
            metadata=SecretV1Metadata(name=spec.name, namespace=addon.namespace),
            data=data,
            depends_on=list(self._namespace_dependency(addon.namespace)) or None,
        )
        self.secrets[(addon.name, spec.name)] = secret
        return secret


def _topological(add_ons: Sequence[HelmAddOn], where: str) -> list[HelmAddOn]:
    """Add-ons ordered so that each comes after its same-layer needs; a cycle is an error."""
    by_name = {a.name: a for a in add_ons}
    done: dict[str, bool] = {}
    out: list[HelmAddOn] = []

    def visit(name: str, trail: tuple[str, ...]) -> None:
        if done.get(name):
            return
        if name in trail:
            raise ValueError(f"{where}: add-on dependency cycle: " + " -> ".join(trail + (name,)))
        for dep in by_name[name].needs:
            if dep in by_name:
                visit(dep, trail + (name,))
        done[name] = True
        out.append(by_name[name])

    for addon in add_ons:
        visit(addon.name, ())
    return out
