"""The ingress controller behind the Cloudflare tunnel (concern `tunnel-origin`; the catalog's
`ingress-external`, F5 NGINX's nginx-ingress chart): its in-cluster URL, the tunnel's default origin, and its
Ingress class, which the components' Ingresses for the public hostnames use."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from planner.model import Component

CONCERN = "tunnel-origin"
# The nginx-ingress chart's default class name, when the values do not set controller.ingressClass.name.
CHART_DEFAULT_CLASS = "nginx"


def provider_of(components: Mapping[str, Component]) -> Component | None:
    """The installed component that provides the tunnel origin, or None."""
    return next((c for c in components.values() if CONCERN in c.provides), None)


def _trunc63(name: str) -> str:
    """Helm's `trunc 63 | trimSuffix "-"`."""
    return name[:63].removesuffix("-")


def ingress_origin(component: Component, cluster_domain: str) -> str:
    """The in-cluster URL of an nginx-ingress (nginx/kubernetes-ingress chart) controller Service.

    Follows the chart's _helpers.tpl: nginx-ingress.fullname is the release name when it contains the chart
    name, otherwise <release>-<chart> (fullnameOverride and nameOverride win); the controller Service is
    <fullname>-<controller.name> unless serviceNameOverride is set; the HTTP port is
    controller.service.httpPort.port (80).
    """
    values: Mapping[str, Any] = component.values
    controller = values.get("controller") or {}
    override = values.get("serviceNameOverride")
    if override:
        service = _trunc63(override)
    else:
        if values.get("fullnameOverride"):
            fullname = _trunc63(values["fullnameOverride"])
        else:
            name = values.get("nameOverride") or component.chart
            release = component.release_name
            fullname = _trunc63(release if name in release else f"{release}-{name}")
        service = _trunc63(f"{fullname}-{controller.get('name', 'controller')}")
    port = ((controller.get("service") or {}).get("httpPort") or {}).get("port", 80)
    return f"http://{service}.{component.namespace}.svc.{cluster_domain}:{port}"


def ingress_class(component: Component) -> str:
    """The Ingress class the controller serves (controller.ingressClass.name, or the chart's default)."""
    controller = component.values.get("controller") or {}
    return (controller.get("ingressClass") or {}).get("name") or CHART_DEFAULT_CLASS
