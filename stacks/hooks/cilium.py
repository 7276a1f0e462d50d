"""Foundation layer: Cilium LB-IPAM, so LoadBalancer Services get addresses on the node LAN.

k3s's servicelb is disabled; Cilium assigns LoadBalancer IPs from a CiliumLoadBalancerIPPool (cilium.io/v2 in
Cilium 1.20) and answers ARP for them from one node at a time under a CiliumL2AnnouncementPolicy
(cilium.io/v2alpha1; the chart's l2announcements.enabled turns the feature on). The pool is
cluster.load_balancer_range from the cluster file. Both CRDs are registered by cilium-operator at runtime, not by
the chart, so they are installed one layer after the CNI, when the operator has been running for a whole stack.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stacks.config import HelixConfig, parse_address_range
from stacks.hooks.manifests import manifest_addon

if TYPE_CHECKING:
    from stacks.platform import LayerContext

RELEASE = "cilium-lb-ipam"
POOL_NAME = "node-lan"


def lb_ipam_resources(cfg: HelixConfig) -> list[dict[str, Any]]:
    """The pool and the announcement policy for cluster.load_balancer_range (empty when it is unset)."""
    value = cfg.cluster.load_balancer_range
    if not value:
        return []
    if "/" in value:
        block = {"cidr": value}
    else:
        first, last = parse_address_range(value)
        block = {"start": str(first), "stop": str(last)}
    policy_spec: dict[str, Any] = {"loadBalancerIPs": True, "externalIPs": False}
    if cfg.agents:
        # Announce from the agents: traffic for ingress lands there, not on the control plane. (With no agents,
        # any node may announce.)
        policy_spec["nodeSelector"] = {
            "matchExpressions": [{"key": "node-role.kubernetes.io/control-plane", "operator": "DoesNotExist"}]
        }
    return [
        {
            "apiVersion": "cilium.io/v2",
            "kind": "CiliumLoadBalancerIPPool",
            "metadata": {"name": POOL_NAME},
            "spec": {"blocks": [block]},
        },
        {
            "apiVersion": "cilium.io/v2alpha1",
            "kind": "CiliumL2AnnouncementPolicy",
            "metadata": {"name": POOL_NAME},
            "spec": policy_spec,
        },
    ]


class CiliumLbIpamHook:
    """Adds the LB-IPAM release when Cilium is installed and a load_balancer_range is configured."""

    def before(self, ctx: "LayerContext") -> None:
        return None

    def after(self, ctx: "LayerContext") -> None:
        from constructs_lib.addons import AddOnLayer

        cilium = ctx.settings.plan.components.get("cilium")
        resources = lb_ipam_resources(ctx.settings.config)
        if cilium is None or not resources:
            return
        # Same layer as Cilium: after its release. An earlier layer: the stack dependency already orders it.
        first = [ctx.addons.releases["cilium"]] if "cilium" in ctx.addons.releases else []
        ctx.shared["lb_ipam"] = AddOnLayer(
            ctx.stack,
            "lb-ipam",
            providers=ctx.providers,
            add_ons=[manifest_addon(RELEASE, cilium.namespace, resources, depends_on=first)],
        )
