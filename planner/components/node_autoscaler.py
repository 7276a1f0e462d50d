"""The cluster-autoscaler of the cloud node pools (concern `node-autoscaler`; the catalog's `cluster-autoscaler`).

It is installed only while a pool exists (turning the last pool off turns it off), and its layer's stack then
depends on the pool stacks and reads the Secret with its AWS key (planner/node_pools.py)."""

from __future__ import annotations

from planner.components import Provider
from planner.schema import HelixConfig

CONCERN = "node-autoscaler"
DEFAULT_NAMESPACE = "kube-system"


def wanted(cfg: HelixConfig) -> bool:
    """Whether the autoscaler has anything to scale."""
    return bool(cfg.cluster.cloud_node_pools)


def namespace(provider: Provider | None) -> str:
    return (provider.namespace if provider else None) or DEFAULT_NAMESPACE


def placeholders(cfg: HelixConfig) -> dict[str, str]:
    """The region of the pools (the autoscaler runs in one) and the Secret of its key; empty without a pool."""
    from planner.node_pools import AUTOSCALER_SECRET

    pools = cfg.cluster.cloud_node_pools
    return {"node_pools_region": pools[0].region if pools else "", "node_autoscaler_secret": AUTOSCALER_SECRET}
