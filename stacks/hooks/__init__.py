"""Per-layer additions that are not Helm charts from the catalog: secrets, issuers, upgrade plans.

A hook is an object with `before(ctx)` (runs before the layer's releases are created; it may add
sensitive values and dependencies for them) and `after(ctx)` (runs once the releases exist).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from stacks.platform import LayerContext


class LayerHook(Protocol):
    def before(self, ctx: "LayerContext") -> None: ...

    def after(self, ctx: "LayerContext") -> None: ...


def hooks_for(layer: str) -> list[LayerHook]:
    """The hooks of one layer, in the order they run. Imported lazily: they load provider classes."""
    from stacks.hooks.cilium import CiliumLbIpamHook
    from stacks.hooks.edge_consumers import CertManagerDnsHook, NetworkEdgeHook
    from stacks.hooks.mesh import MeshTelemetryHook
    from stacks.hooks.sops import SopsAgeKeyHook
    from stacks.hooks.upgrades import SystemUpgradeHook

    registry: dict[str, list[LayerHook]] = {
        "foundation": [CiliumLbIpamHook(), SystemUpgradeHook(), CertManagerDnsHook()],
        "network": [NetworkEdgeHook()],
        "mesh": [MeshTelemetryHook()],
        "delivery": [SopsAgeKeyHook()],
    }
    return registry.get(layer, [])
