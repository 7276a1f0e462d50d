"""Helm add-ons as declarative specs, installed as one layer with the order derived from their needs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Collection, Mapping, Optional, Sequence

import yaml
from cdktf import ITerraformDependable, TerraformResourceLifecycle
from cdktf_cdktf_provider_helm.release import Release, ReleaseSetSensitive
from cdktf_cdktf_provider_kubernetes.namespace_v1 import NamespaceV1, NamespaceV1Metadata
from cdktf_cdktf_provider_kubernetes.secret_v1 import SecretV1, SecretV1Metadata
from cdktf_cdktf_provider_random.password import Password
from cdktf_cdktf_provider_random.provider import RandomProvider
from constructs import Construct

from constructs_lib.cluster_access import ClusterProviders
from constructs_lib.providers import ensure_provider


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
        timeout: seconds to wait for the release to become ready.
        sensitive_values: Helm value paths set from sensitive values (variables or other stacks' outputs).
        generated_secrets: secrets to create before the release, with random values.
        protect: refuse destroy of the release.
        depends_on: further resources to create first (a secret the chart reads, for example).
    """

    name: str
    namespace: str
    repository: str
    chart: str
    version: str
    values: Mapping[str, Any] = field(default_factory=dict)
    release_name: Optional[str] = None
    needs: Sequence[str] = ()
    timeout: int = 600
    sensitive_values: Mapping[str, str] = field(default_factory=dict)
    generated_secrets: Sequence[GeneratedSecretSpec] = ()
    protect: bool = False
    depends_on: Sequence[ITerraformDependable] = ()

    def __post_init__(self) -> None:
        if not self.repository.startswith(("https://", "oci://")):
            raise ValueError(f"add-on {self.name!r}: repository must be https:// or oci://, got {self.repository!r}")
        if not self.version or any(ch in self.version for ch in "^~<>=*| ,") or self.version == "latest":
            raise ValueError(f"add-on {self.name!r}: version must be exact, got {self.version!r}")


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


class AddOnLayer(Construct):
    """Namespaces and Helm releases that one stack installs, ordered by the add-ons' declared needs.

    Props:
        providers: the stack's ClusterProviders.
        namespaces: namespaces this layer creates.
        add_ons: the add-ons this layer installs.
        installed_before: add-on names that earlier stacks install (their needs are met by stack order).
    Attributes:
        namespaces: namespace name -> NamespaceV1.
        releases: add-on name -> Release (escape hatch: add_override, lifecycle...).
        secrets: (add-on name, secret name) -> SecretV1.
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
        self.namespaces: dict[str, NamespaceV1] = {}
        self.releases: dict[str, Release] = {}
        self.secrets: dict[tuple[str, str], SecretV1] = {}

        protected = {ns.name for ns in namespaces if ns.protect}
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
                if dep not in by_name and dep not in installed_before:
                    raise ValueError(f"add-on {addon.name!r} needs {dep!r}, which is neither in this layer nor installed before")

        # Create releases in dependency order, so each depends_on refers to an existing release.
        for addon in _topological(add_ons):
            deps: list[ITerraformDependable] = []
            if addon.namespace in self.namespaces:
                deps.append(self.namespaces[addon.namespace])
            for secret in addon.generated_secrets:
                deps.append(self._generated_secret(addon, secret, providers))
            deps.extend(self.releases[d] for d in addon.needs if d in self.releases)
            deps.extend(addon.depends_on)
            protect = addon.protect or addon.namespace in protected
            self.releases[addon.name] = Release(
                self,
                addon.name,
                provider=providers.helm,
                name=addon.release_name or addon.name,
                namespace=addon.namespace,
                repository=addon.repository,
                chart=addon.chart,
                version=addon.version,
                values=[render_values(addon.values)] if addon.values else None,
                set_sensitive=[ReleaseSetSensitive(name=k, value=v) for k, v in addon.sensitive_values.items()] or None,
                create_namespace=False,
                wait=True,
                timeout=addon.timeout,
                cleanup_on_fail=True,
                max_history=10,
                depends_on=deps or None,
                lifecycle=TerraformResourceLifecycle(prevent_destroy=True) if protect else None,
            )

    def _generated_secret(self, addon: HelmAddOn, spec: GeneratedSecretSpec, providers: ClusterProviders) -> SecretV1:
        ensure_random_provider(self)
        data: dict[str, str] = dict(spec.fixed)
        for key in spec.random_keys:
            password = Password(self, f"{addon.name}-{spec.name}-{key}", length=32, special=False)
            data[key] = password.result
        secret = SecretV1(
            self,
            f"{addon.name}-{spec.name}",
            provider=providers.kubernetes,
            metadata=SecretV1Metadata(name=spec.name, namespace=addon.namespace),
            data=data,
            depends_on=[self.namespaces[addon.namespace]] if addon.namespace in self.namespaces else None,
        )
        self.secrets[(addon.name, spec.name)] = secret
        return secret


def _topological(add_ons: Sequence[HelmAddOn]) -> list[HelmAddOn]:
    """Add-ons ordered so that each comes after its same-layer needs; a cycle is an error."""
    by_name = {a.name: a for a in add_ons}
    done: dict[str, bool] = {}
    out: list[HelmAddOn] = []

    def visit(name: str, trail: tuple[str, ...]) -> None:
        if done.get(name):
            return
        if name in trail:
            raise ValueError("add-on dependency cycle: " + " -> ".join(trail + (name,)))
        for dep in by_name[name].needs:
            if dep in by_name:
                visit(dep, trail + (name,))
        done[name] = True
        out.append(by_name[name])

    for addon in add_ons:
        visit(addon.name, ())
    return out
