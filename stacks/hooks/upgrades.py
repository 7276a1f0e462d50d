"""Foundation layer: k3s upgrades through system-upgrade-controller, installed from its release manifests.

Three releases of the raw chart in namespace system-upgrade (created by this layer), in this order:
  system-upgrade-crds         the Plan CRD (upgrade.cattle.io/v1)
  system-upgrade-controller   service account, RBAC, defaults and the Deployment
  k3s-upgrade-plans           the server Plan and the agent Plan, pinned to cluster.k3s_version
Upstream publishes no chart for the controller; see config/manifests/README.md for what the files are.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from stacks.hooks.manifests import load_manifests, manifest_addon, read_data

if TYPE_CHECKING:
    from stacks.platform import LayerContext

NAMESPACE = "system-upgrade"
CRDS = "system-upgrade-crds"
CONTROLLER = "system-upgrade-controller"
PLANS = "k3s-upgrade-plans"


def controller_version() -> str:
    return str(read_data("system-upgrade-controller/release.yaml")["version"])


class SystemUpgradeHook:
    """Installs the Plan CRD, the controller, then the Plans. Skipped when the cluster file has no
    system-upgrade namespace (a cluster whose upgrades are managed elsewhere)."""

    def before(self, ctx: "LayerContext") -> None:
        return None

    def after(self, ctx: "LayerContext") -> None:
        from constructs_lib.addons import AddOnLayer

        cfg = ctx.settings.config
        if NAMESPACE not in cfg.namespaces:
            return
        version = controller_version()
        first = ctx.namespace_dependency(NAMESPACE)
        protect = cfg.namespace_protected(NAMESPACE)
        ctx.shared["upgrades"] = AddOnLayer(
            ctx.stack,
            "upgrades",
            providers=ctx.providers,
            add_ons=[
                manifest_addon(
                    CRDS, NAMESPACE, load_manifests(f"system-upgrade-controller/{version}/crd.yaml", cfg),
                    depends_on=first, protect=protect,
                ),
                manifest_addon(
                    CONTROLLER, NAMESPACE, load_manifests(f"system-upgrade-controller/{version}/controller.yaml", cfg),
                    needs=[CRDS], depends_on=first, protect=protect,
                ),
                manifest_addon(
                    PLANS, NAMESPACE, load_manifests("k3s-upgrade/plans.yaml", cfg),
                    needs=[CRDS, CONTROLLER], depends_on=first, protect=protect,
                ),
            ],
        )
