"""The edge stack: the Cloudflare tunnel in front of the external ingress controller, and its DNS records.

The tunnel token leaves this stack only as a sensitive value: the `tunnel_token` output here, and the
cross-stack output cdktf generates when the network layer reads `EdgeStack.tunnel_token`.
"""

from __future__ import annotations

from typing import Any, Mapping

from cdktf import TerraformOutput, TerraformVariable
from cdktf_cdktf_provider_cloudflare.provider import CloudflareProvider
from constructs import Construct

from constructs_lib.backend import StateBackend
from constructs_lib.cloudflare_tunnel import CloudflareTunnel, CloudflareTunnelProps, TunnelRoute
from stacks.base import HelixStack
from planner.model import Component, PlatformPlan

# The component every public hostname is routed to (config/catalog/network.yaml).
EXTERNAL_INGRESS = "ingress-external"
# What the hostnames answer while that component is not installed.
NO_ORIGIN = "http_status:503"


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


class EdgeStack(HelixStack):
    """The Cloudflare tunnel, its ingress rules and its CNAMEs, from the `cloudflare` section of the config.

    Attributes:
        tunnel: the CloudflareTunnel construct.
        origin: where every public hostname is sent: the external ingress controller's Service, or
            http_status:503 when the cluster file does not install it.
        tunnel_token: the connector token (sensitive; read it from another stack to make a cross-stack
            reference, which cdktf passes as a sensitive output).
    """

    def __init__(
        self,
        scope: Construct,
        name: str,
        *,
        plan: PlatformPlan,
        backend: StateBackend,
    ) -> None:
        super().__init__(scope, name, backend=backend)
        config = plan.config
        cf = config.cloudflare
        if cf.account_id is None or cf.zone_id is None or not cf.hostnames:
            raise ValueError("the edge stack needs cloudflare.account_id, zone_id and hostnames (validated config)")
        components = plan.components
        if EXTERNAL_INGRESS in components:
            self.origin = ingress_origin(components[EXTERNAL_INGRESS], config.cluster.cluster_domain)
        else:
            # No origin installed (nor cloudflared, whose catalog entry needs it): the hostnames answer 503.
            self.origin = NO_ORIGIN

        token = TerraformVariable(
            self,
            "cloudflare_api_token",
            type="string",
            sensitive=True,
            description="Cloudflare API token with Account Cloudflare Tunnel edit and Zone DNS edit on the zone",
        )
        provider = CloudflareProvider(self, "cloudflare", api_token=token.string_value)
        self.tunnel = CloudflareTunnel(
            self,
            "tunnel",
            props=CloudflareTunnelProps(
                account_id=cf.account_id,
                zone_id=cf.zone_id,
                name=cf.tunnel_name,
                routes=[TunnelRoute(hostname=h, service=self.origin) for h in cf.hostnames],
                record_comment=f"{config.name}: Cloudflare tunnel {cf.tunnel_name} (managed by Terraform, edge stack)",
                provider=provider,
            ),
        )
        self.tunnel_token: str = self.tunnel.token
        self._outputs = {"tunnel_token": self.tunnel.token}
        TerraformOutput(self, "tunnel_id", value=self.tunnel.tunnel_id, description="Id of the Cloudflare tunnel")
        TerraformOutput(
            self,
            "tunnel_token",
            value=self.tunnel.token,
            sensitive=True,
            description="Connector token for cloudflared (remotely managed tunnel)",
        )

    def output(self, name: str) -> str:
        """An edge value another stack reads (a catalog `{edge: name}`), as a cross-stack reference."""
        if name not in self._outputs:
            raise ValueError(f"{self.node.path}: no edge output {name!r} (known: {', '.join(sorted(self._outputs))})")
        return self._outputs[name]
