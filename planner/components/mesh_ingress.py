"""The Istio ingress gateway as the tunnel's origin for the public hostnames served from the mesh (concern
`mesh-ingress`: the catalog's istio-ingressgateway, Istio's `gateway` chart).

A public hostname is served from the mesh when the component whose Ingress declares it (the hostname's binding,
planner/edge_rules.py) names its `mesh_service` in the catalog and runs in a namespace with a sidecar: cloudflared
then sends it to the gateway, whose Envoy routes it (Gateway `public`, one VirtualService per hostname) to that
Service with mTLS, through any VirtualService weights Flagger writes. docs/mesh.md says why this route and not an
injected NGINX.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from planner.components.service_mesh import injected
from planner.edge_rules import hosts_served, ingress_class_of
from planner.model import Component
from planner.schema import HelixConfig

CONCERN = "mesh-ingress"
# The Gateway the public hostnames bind to (namespace: the gateway's), and the chart's HTTP port: the Service's
# port `http2` 80 with targetPort 80 (istio/istio manifests/charts/gateway values.yaml, 1.30 line).
GATEWAY = "public"
HTTP_PORT = 80


@dataclass(frozen=True)
class MeshRoute:
    """A public hostname entering the mesh: the component serving it and its Service inside the mesh."""

    hostname: str
    component: str
    namespace: str
    service: str
    port: int

    def destination(self, cluster_domain: str) -> str:
        return f"{self.service}.{self.namespace}.svc.{cluster_domain}"


def provider_of(components: Mapping[str, Component]) -> Component | None:
    """The installed component that provides the mesh's ingress gateway, or None."""
    return next((c for c in components.values() if CONCERN in c.provides), None)


def gateway_name(component: Component) -> str:
    """The chart's gateway.name: values.name, else the release name (Service, ServiceAccount, `app` label)."""
    return str(component.values.get("name") or component.release_name)


def gateway_selector(component: Component) -> dict[str, str]:
    """The chart's selector label `istio`: labels.istio, else gateway.name without its `istio-` prefix."""
    labels: Mapping[str, Any] = component.values.get("labels") or {}
    return {"istio": str(labels.get("istio") or gateway_name(component).removeprefix("istio-"))}


def gateway_origin(component: Component, cluster_domain: str) -> str:
    """The in-cluster URL cloudflared sends the mesh's public hostnames to."""
    return f"http://{gateway_name(component)}.{component.namespace}.svc.{cluster_domain}:{HTTP_PORT}"


def public_routes(cfg: HelixConfig, components: Mapping[str, Component]) -> list[MeshRoute]:
    """The tunnel's hostnames (without an explicit origin) that enter the mesh, in the cluster file's order:
    those whose serving component names a `mesh_service` and has a sidecar, while the gateway is installed."""
    if not cfg.cloudflare.enabled or provider_of(components) is None:
        return []
    ingress_class = ingress_class_of(components)
    served = hosts_served(components, ingress_class) if ingress_class else {}
    meshed = set(injected(cfg))
    out = []
    for entry in cfg.cloudflare.hostnames:
        component = components.get(served.get(entry.name, "")) if entry.origin is None else None
        if component is None or component.mesh_service is None or component.namespace not in meshed:
            continue
        service, port = component.mesh_service
        out.append(MeshRoute(entry.name, component.id, component.namespace, service, port))
    return out


def explicit_hosts(cfg: HelixConfig, component: Component) -> list[str]:
    """The tunnel's hostnames whose explicit `origin` is this gateway (an app whose Canary, not the planner,
    writes the VirtualService: docs/mesh.md)."""
    ns, domain = component.namespace, cfg.cluster.cluster_domain
    name = gateway_name(component)
    names = {f"{name}.{ns}", f"{name}.{ns}.svc", f"{name}.{ns}.svc.{domain}"}
    return [h.name for h in cfg.cloudflare.hostnames if h.origin and urlparse(h.origin).hostname in names]


def public_gateway(cfg: HelixConfig, component: Component, components: Mapping[str, Component]) -> list[dict[str, Any]]:
    """The Gateway `public` on the ingress gateway's HTTP port (Cloudflare terminates TLS, the tunnel is
    encrypted), one VirtualService per hostname to its Service, and a DENY AuthorizationPolicy: the gateway's
    Service is also a LAN LoadBalancer, and these names are reached only from the pod network (cloudflared),
    never past Cloudflare Access from the LAN. Nothing when no hostname enters the mesh."""
    routes = public_routes(cfg, components)
    hosts = [r.hostname for r in routes] + (explicit_hosts(cfg, component) if cfg.cloudflare.enabled else [])
    if not hosts:
        return []
    ns, domain = component.namespace, cfg.cluster.cluster_domain
    meta = lambda name: {"name": name, "namespace": ns}  # noqa: E731
    gateway = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "Gateway",
        "metadata": meta(GATEWAY),
        "spec": {
            "selector": gateway_selector(component),
            "servers": [{"port": {"number": HTTP_PORT, "name": "http", "protocol": "HTTP"}, "hosts": hosts}],
        },
    }
    services = [
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": meta(f"{GATEWAY}-{r.hostname.replace('.', '-')}"[:63].rstrip("-")),
            "spec": {
                "hosts": [r.hostname],
                "gateways": [GATEWAY],
                "http": [{"route": [{"destination": {"host": r.destination(domain), "port": {"number": r.port}}}]}],
            },
        }
        for r in routes
    ]
    lan_guard = {
        "apiVersion": "security.istio.io/v1",
        "kind": "AuthorizationPolicy",
        "metadata": meta(f"{GATEWAY}-from-tunnel-only"),
        "spec": {
            "selector": {"matchLabels": gateway_selector(component)},
            "action": "DENY",
            # Exact host matches only match the exact string: name and name:* (Istio's authorization docs).
            "rules": [{"from": [{"source": {"notIpBlocks": [cfg.cluster.cluster_cidr]}}],
                       "to": [{"operation": {"hosts": [h for host in hosts for h in (host, f"{host}:*")]}}]}],
        },
    }
    return [gateway, *services, lan_guard]
