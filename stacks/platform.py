"""A platform layer: one stack that creates its namespaces and installs its components with Helm."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional

from cdktf import ITerraformDependable
from constructs import Construct

from constructs_lib.addons import AddOnLayer, GeneratedSecretSpec, HelmAddOn, NamespaceSpec
from constructs_lib.backend import StateBackend
from constructs_lib.cluster_access import ClusterAccess, ClusterProviders
from stacks.base import HelixStack
from stacks.catalog import LayerPlan
from stacks.load import Settings

if TYPE_CHECKING:
    from stacks.edge import EdgeStack


@dataclass
class LayerContext:
    """What a layer hook sees. Hooks run `before` the releases exist and `after`."""

    stack: "PlatformLayerStack"
    settings: Settings
    layer: LayerPlan
    providers: ClusterProviders
    edge: Optional["EdgeStack"]
    # Filled by `before` hooks: Helm value paths set from sensitive values, and resources to create first.
    sensitive_values: dict[str, dict[str, str]] = field(default_factory=lambda: defaultdict(dict))
    depends_on: dict[str, list[ITerraformDependable]] = field(default_factory=lambda: defaultdict(list))
    # Set before `after` hooks run.
    addons: Optional[AddOnLayer] = None
    # Anything a hook wants to share with a later hook of the same layer.
    shared: dict[str, Any] = field(default_factory=dict)

    def namespace_dependency(self, namespace: str) -> list[ITerraformDependable]:
        """What a resource in `namespace` must wait for: the namespace, when this layer creates it."""
        return [self.addons.namespaces[namespace]] if self.addons and namespace in self.addons.namespaces else []


class PlatformLayerStack(HelixStack):
    """Installs one layer of the platform plan on the cluster reached through `access`."""

    def __init__(
        self,
        scope: Construct,
        name: str,
        *,
        settings: Settings,
        layer: LayerPlan,
        access: ClusterAccess,
        backend: StateBackend,
        installed_before: set[str],
        edge: Optional["EdgeStack"] = None,
    ) -> None:
        super().__init__(scope, name, backend=backend)
        from stacks.hooks import hooks_for

        providers = ClusterProviders(self, "cluster", access=access)
        ctx = LayerContext(stack=self, settings=settings, layer=layer, providers=providers, edge=edge)
        from stacks.interim_extras import InterimExtras  # TEMPORARY (issue 14): the lead's planner replaces it

        hooks = [*hooks_for(layer.name), InterimExtras()]
        for hook in hooks:
            hook.before(ctx)
        ctx.addons = AddOnLayer(
            self,
            "platform",
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
                    needs=c.needs,
                    timeout=c.timeout,
                    sensitive_values=ctx.sensitive_values.get(c.id, {}),
                    generated_secrets=[GeneratedSecretSpec(s.name, s.random_keys, s.fixed) for s in c.generated_secrets],
                    depends_on=ctx.depends_on.get(c.id, []),
                    protect=settings.config.namespace_protected(c.namespace),
                )
                for c in layer.components
            ],
            installed_before=installed_before,
        )
        for hook in hooks:
            hook.after(ctx)
