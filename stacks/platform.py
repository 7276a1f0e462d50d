"""A platform layer: one stack that renders one LayerPlan: its namespaces, its components' releases, and the
extras each component declares (secrets before its release, manifest releases after it)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING

from constructs import Construct

from constructs_lib.addons import (
    AddOnLayer,
    GeneratedSecretSpec,
    HelmAddOn,
    ManifestRelease,
    NamespaceSpec,
    RawChart,
    SecretSpec,
)
from constructs_lib.backend import StateBackend
from constructs_lib.cluster_access import ClusterAccess, ClusterProviders
from constructs_lib.engine import TerraformResource, TerraformVariable, TerraformVariableValidationConfig
from planner.model import LayerPlan, PlatformPlan, ValueRef, VariablePlan
from stacks.base import HelixStack

if TYPE_CHECKING:
    from stacks.edge import EdgeStack

# The construct that holds every namespace and release of a layer: part of every Terraform address in it.
ADDONS_ID = "platform"


def _variable(stack: HelixStack, spec: VariablePlan) -> TerraformVariable:
    validation = None
    if spec.pattern and spec.default is None:
        validation = [
            TerraformVariableValidationConfig(
                condition=f"${{can(regex({json.dumps(spec.pattern)}, var.{spec.name}))}}",
                error_message=f"{spec.name} must match the pattern {spec.pattern}.",
            )
        ]
    return TerraformVariable(
        stack,
        spec.name,
        type="string",
        sensitive=True,
        nullable=False,
        default=spec.default,
        description=" ".join(spec.description.split()),
        validation=validation,
    )


class PlatformLayerStack(HelixStack):
    """Installs one layer of the platform plan on the cluster reached through `access`."""

    def __init__(
        self,
        scope: Construct,
        name: str,
        *,
        plan: PlatformPlan,
        layer: LayerPlan,
        access: ClusterAccess,
        backend: StateBackend,
        raw_chart: RawChart,
        edge: EdgeStack | None = None,
        earlier: Mapping[str, PlatformLayerStack] | None = None,
    ) -> None:
        super().__init__(scope, name, backend=backend)
        if layer.uses_edge and edge is None:
            raise ValueError(f"{self.node.path}: layer {layer.name!r} reads the Cloudflare edge, which is not built")
        variables = {spec.name: _variable(self, spec) for spec in layer.variables}

        def value(ref: ValueRef) -> str:
            assert ref.source != "generated"  # the AddOnLayer sets those from its own random passwords
            if ref.source == "format":
                return ref.name.format(**{name: value(part) for name, part in ref.fields})
            if ref.source == "generated_in":
                # Another component's generated key: from this stack's AddOnLayer (built by then: only secrets use
                # these), or from an earlier stack, which cdktf turns into a sensitive cross-stack output.
                secret, _, key = ref.name.partition("/")
                where = plan.components[ref.component].layer
                addons = self.addons if where == layer.name else (earlier or {})[where].addons
                return addons.generated_value(ref.component, secret, key)
            if ref.source == "variable":
                return variables[ref.name].string_value
            assert edge is not None
            return edge.output(ref.name)  # a cross-stack reference: cdktf adds a sensitive output to edge

        providers = ClusterProviders(self, "cluster", access=access)
        self.addons = AddOnLayer(
            self,
            ADDONS_ID,
            providers=providers,
            namespaces=[NamespaceSpec(ns.name, ns.labels, ns.protect) for ns in layer.namespaces],
            add_ons=[
                HelmAddOn(
                    name=c.id,
                    namespace=c.namespace,
                    repository=c.repository,
                    chart=c.chart,
                    version=c.version,
                    values=c.values,
                    release_name=c.release_name,
                    needs=list(c.release_needs),
                    timeout=c.timeout,
                    sensitive_values={
                        path: value(ref) for path, ref in c.sensitive_values.items() if ref.source != "generated"
                    },
                    generated_values={
                        path: tuple(ref.name.split("/", 1))  # type: ignore[misc]
                        for path, ref in c.sensitive_values.items()
                        if ref.source == "generated"
                    },
                    set_values={path: value(ref) for path, ref in c.values_from.items()},
                    generated_secrets=[GeneratedSecretSpec(s.name, s.random_keys, s.fixed) for s in c.generated_secrets],
                    protect=c.protect,
                )
                for c in layer.components
                if c.has_release
            ],
            installed_before=layer.installed_before,
        )
        for m in layer.manifests:
            release = self.addons.add_manifests(
                ManifestRelease(
                    name=m.release,
                    namespace=m.namespace,
                    resources=m.resources,
                    chart=raw_chart,
                    protect=m.protect,
                    timeout=m.timeout,
                ),
                after=m.after,
                before=m.before,
            )
            _moved(release, m.moved_from)
        for s in layer.secrets:
            secret = self.addons.add_secret(
                SecretSpec(
                    id=s.construct_id,
                    name=s.name,
                    namespace=s.namespace,
                    data={key: value(ref) for key, ref in s.data.items()},
                    labels={"app.kubernetes.io/managed-by": "terraform", "app.kubernetes.io/part-of": s.component},
                ),
                before=s.before,
            )
            _moved(secret, s.moved_from)


def _moved(resource: TerraformResource, moved_from: str | None) -> None:
    """A `moved` block from the address the resource had before, so Terraform keeps its state."""
    if moved_from:
        resource.move_from_id(moved_from)
