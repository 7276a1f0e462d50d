"""Manifests built from the cluster file or a component's values, named in the catalog by `generator:`.

Each generator takes the cluster file, its component and every installed component (the public gateway reads
which apps serve the public names), and returns the objects of one raw-chart release, or an empty list when
there is nothing to install (the release is then left out of the plan).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from planner.model import Component
from planner.node_pools import POOL_LABEL_KEY
from planner.schema import HelixConfig, parse_address_range

LB_IPAM_POOL = "node-lan"
MESH_TELEMETRY = "mesh-default"
# meshConfig.extensionProviders entries that carry traces (the key names the provider type).
# Every installed component by id: what a generator may read besides its own component (the public gateway).
Components = Mapping[str, Component]
NO_COMPONENTS: Components = MappingProxyType({})
TRACING_PROVIDER_TYPES = ("opentelemetry", "zipkin", "datadog", "skywalking", "stackdriver", "lightstep")


def cilium_lb_ipam(cfg: HelixConfig, component: Component, components: Components = NO_COMPONENTS) -> list[dict[str, Any]]:
    """Cilium LB-IPAM for cluster.load_balancer_range: a CiliumLoadBalancerIPPool and the
    CiliumL2AnnouncementPolicy that answers ARP for its addresses from one node at a time (k3s's servicelb is
    disabled). Nothing when the range is unset."""
    value = cfg.cluster.load_balancer_range
    if not value:
        return []
    if "/" in value:
        block = {"cidr": value}
    else:
        first, last = parse_address_range(value)
        block = {"start": str(first), "stop": str(last)}
    policy_spec: dict[str, Any] = {"loadBalancerIPs": True, "externalIPs": False}
    expressions = []
    if cfg.agents:
        # Announce from the agents: traffic for ingress lands there, not on the control plane. (With no agents,
        # any node may announce.)
        expressions.append({"key": "node-role.kubernetes.io/control-plane", "operator": "DoesNotExist"})
    if cfg.cluster.cloud_node_pools:
        # Never from a cloud pool's node: it is not on the node LAN, so its ARP answers would reach nobody.
        expressions.append({"key": POOL_LABEL_KEY, "operator": "DoesNotExist"})
    if expressions:
        policy_spec["nodeSelector"] = {"matchExpressions": expressions}
    return [
        {
            "apiVersion": "cilium.io/v2",
            "kind": "CiliumLoadBalancerIPPool",
            "metadata": {"name": LB_IPAM_POOL},
            "spec": {"blocks": [block]},
        },
        {
            "apiVersion": "cilium.io/v2alpha1",
            "kind": "CiliumL2AnnouncementPolicy",
            "metadata": {"name": LB_IPAM_POOL},
            "spec": policy_spec,
        },
    ]


def tracing_providers(istiod_values: Mapping[str, Any]) -> list[str]:
    """Names of the tracing providers declared in istiod's meshConfig, in their order."""
    mesh = istiod_values.get("meshConfig") or {}
    out = []
    for provider in mesh.get("extensionProviders") or []:
        if isinstance(provider, dict) and provider.get("name") and any(t in provider for t in TRACING_PROVIDER_TYPES):
            out.append(str(provider["name"]))
    return out


def istio_mesh_telemetry(cfg: HelixConfig, component: Component, components: Components = NO_COMPONENTS) -> list[dict[str, Any]]:
    """Istio's Telemetry API, the replacement for Mixer's telemetry role: one mesh-wide Telemetry in the root
    namespace with no selector, so it applies to every proxy. Prometheus metrics (the built-in `prometheus`
    provider), Envoy access logs to the proxies' stdout (`envoy`), and tracing to every tracing provider that
    istiod's meshConfig.extensionProviders declares."""
    values = component.values
    spec: dict[str, Any] = {
        "metrics": [{"providers": [{"name": "prometheus"}]}],
        "accessLogging": [{"providers": [{"name": "envoy"}]}],
    }
    tracing = tracing_providers(values)
    if tracing:
        spec["tracing"] = [{"providers": [{"name": name} for name in tracing]}]
    root = str((values.get("meshConfig") or {}).get("rootNamespace") or component.namespace)
    return [
        {
            "apiVersion": "telemetry.istio.io/v1",
            "kind": "Telemetry",
            "metadata": {"name": MESH_TELEMETRY, "namespace": root},
            "spec": spec,
        }
    ]


def istio_mesh_policies(cfg: HelixConfig, component: Component, components: Components = NO_COMPONENTS) -> list[dict[str, Any]]:
    """Under `mesh.mtls: strict`: a namespace-wide PeerAuthentication STRICT in every injected namespace, and one
    per `mesh.permissive` workload leaving its ports PERMISSIVE for clients outside the mesh (port-level mTLS needs
    a workload selector). Nothing under permissive, Istio's default."""
    from planner.components.service_mesh import injected

    if cfg.mesh.mtls != "strict":
        return []
    out: list[dict[str, Any]] = [
        {
            "apiVersion": "security.istio.io/v1",
            "kind": "PeerAuthentication",
            "metadata": {"name": "default", "namespace": ns},
            "spec": {"mtls": {"mode": "STRICT"}},
        }
        for ns in injected(cfg)
    ]
    for i, workload in enumerate(cfg.mesh.permissive):
        out.append(
            {
                "apiVersion": "security.istio.io/v1",
                "kind": "PeerAuthentication",
                "metadata": {"name": f"permissive-{i}", "namespace": workload.namespace,
                             "annotations": {"helix/why": workload.why}},
                "spec": {
                    "selector": {"matchLabels": dict(workload.match_labels)},
                    "mtls": {"mode": "STRICT"},
                    "portLevelMtls": {str(port): {"mode": "PERMISSIVE"} for port in workload.ports},
                },
            }
        )
    return out


def istio_public_gateway(cfg: HelixConfig, component: Component, components: Components = NO_COMPONENTS) -> list[dict[str, Any]]:
    """The public hostnames served from the mesh, on the ingress gateway: Gateway, VirtualServices and the guard
    that keeps them from the LAN (planner/components/mesh_ingress.py); nothing when no hostname enters the mesh."""
    from planner.components.mesh_ingress import public_gateway

    return public_gateway(cfg, component, components)


GENERATORS: dict[str, Callable[[HelixConfig, Component, Components], list[dict[str, Any]]]] = {
    "cilium-lb-ipam": cilium_lb_ipam,
    "istio-mesh-telemetry": istio_mesh_telemetry,
    "istio-mesh-policies": istio_mesh_policies,
    "istio-public-gateway": istio_public_gateway,
}
