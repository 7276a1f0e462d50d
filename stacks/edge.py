"""The edge stack: the Cloudflare tunnel in front of the external ingress controller, its DNS records, Cloudflare
Access in front of the admin hostnames, the zone settings and the tunnel health alert.

The tunnel token leaves this stack only as a sensitive value: the `tunnel_token` output here, and the
cross-stack output cdktf generates when the network layer reads `EdgeStack.tunnel_token`.

With `cloudflare.enabled: false` the stack is still synthesized, empty but for its provider: deploying it
destroys what its state still holds (docs/edge.md, "Turning Cloudflare off").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cdktf import TerraformLocal, TerraformOutput, TerraformVariable
from cdktf_cdktf_provider_cloudflare.provider import CloudflareProvider
from constructs import Construct

from constructs_lib.backend import StateBackend
from constructs_lib.cloudflare_tunnel import (
    AccessProtection,
    CloudflareTunnel,
    CloudflareTunnelProps,
    CloudflareZoneSettings,
    MachinePath,
    TunnelAdoption,
    TunnelRoute,
)
from planner.edge_rules import EXTERNAL_INGRESS
from planner.model import Component, PlatformPlan
from planner.schema import AccessConfig, ZoneSettingsConfig
from stacks.base import HelixStack

# The Terraform token of the edge stack, and the zone-scoped DNS token of external-dns and cert-manager. Each
# variable's permissions, as the Cloudflare dashboard names them (docs/edge.md and README's table list these).
EDGE_TOKEN_VARIABLE = "cloudflare_edge_token"
DNS_TOKEN_VARIABLE = "cloudflare_dns_token"
TOKEN_PERMISSIONS: dict[str, tuple[str, ...]] = {
    EDGE_TOKEN_VARIABLE: (
        "Account: Cloudflare Tunnel: Edit",
        "Account: Access: Apps and Policies: Edit",
        "Account: Notifications: Edit",
        "Zone: DNS: Edit",
        "Zone: Zone Settings: Edit",
        "Zone: Zone: Read",
    ),
    DNS_TOKEN_VARIABLE: ("Zone: DNS: Edit", "Zone: Zone: Read"),
}


def token_description(variable: str, purpose: str) -> str:
    return f"Cloudflare API token {purpose}; permissions: {'; '.join(TOKEN_PERMISSIONS[variable])}"


EDGE_TOKEN_DESCRIPTION = token_description(
    EDGE_TOKEN_VARIABLE, "for Terraform's edge stack only (never stored in the cluster), scoped to the account and the zone"
)
DNS_TOKEN_DESCRIPTION = token_description(
    DNS_TOKEN_VARIABLE, "for external-dns and cert-manager DNS-01, scoped to the one zone (stored in the cluster)"
)
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


def zone_settings_values(settings: ZoneSettingsConfig) -> dict[str, object]:
    """The cloudflare_zone_setting values for the config's zone settings."""
    hsts = settings.hsts
    return {
        "always_use_https": "on" if settings.always_use_https else "off",
        "min_tls_version": settings.min_tls_version,
        "security_header": {
            "strict_transport_security": {
                "enabled": hsts.enabled,
                "max_age": hsts.max_age,
                "include_subdomains": hsts.include_subdomains,
                "preload": hsts.preload,
                "nosniff": hsts.nosniff,
            }
        },
    }


def access_protection(access: AccessConfig) -> AccessProtection:
    return AccessProtection(
        emails=tuple(access.emails),
        email_domains=tuple(access.email_domains),
        groups=tuple(access.groups),
        identity_providers=tuple(access.identity_providers),
        session_duration=access.session_duration,
        machine_paths=tuple(MachinePath(p.path, tuple(p.service_tokens)) for p in access.machine_paths),
    )


class EdgeStack(HelixStack):
    """The Cloudflare tunnel, its ingress rules, its CNAMEs and Access, from the `cloudflare` section of the config.

    Attributes:
        tunnel: the CloudflareTunnel construct (None when cloudflare.enabled is false).
        origin: where hostnames without an explicit origin go: the external ingress controller's Service, or
            http_status:503 when the cluster file does not install it.
        tunnel_token: the connector token (sensitive; read it from another stack to make a cross-stack
            reference, which cdktf passes as a sensitive output).
        cname_target: <tunnel id>.cfargotunnel.com, the target of every public name (the address the external
            controller reports for its Ingresses, which external-dns publishes).
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
        self.tunnel: CloudflareTunnel | None = None
        self._outputs: dict[str, str] = {}
        token = TerraformVariable(
            self,
            EDGE_TOKEN_VARIABLE,
            type="string",
            sensitive=True,
            nullable=False,
            # Turned off, the stack only destroys what an earlier deploy created: with nothing in state (a project
            # that never enabled Cloudflare) it needs no token, so the variable is optional then.
            default=None if cf.enabled else "",
            description=EDGE_TOKEN_DESCRIPTION,
        )
        if not cf.enabled:
            self.origin = NO_ORIGIN
            CloudflareProvider(self, "cloudflare", api_token=token.string_value)
            return
        if cf.account_id is None or cf.zone_id is None or not cf.hostnames:
            raise ValueError("the edge stack needs cloudflare.account_id, zone_id and hostnames (validated config)")
        components = plan.components
        if EXTERNAL_INGRESS in components:
            self.origin = ingress_origin(components[EXTERNAL_INGRESS], config.cluster.cluster_domain)
            # Names that only external-dns publishes (Ingresses of the external class) reach NGINX, which answers
            # 404 for hosts it does not serve.
            catch_all = self.origin
        else:
            # No origin installed (nor cloudflared, whose catalog entry needs it).
            self.origin = NO_ORIGIN
            catch_all = "http_status:404"

        provider = CloudflareProvider(self, "cloudflare", api_token=token.string_value)
        alert_emails = cf.alert_emails if cf.alert_emails is not None else [config.acme_email]
        self.tunnel = CloudflareTunnel(
            self,
            "tunnel",
            props=CloudflareTunnelProps(
                account_id=cf.account_id,
                zone_id=cf.zone_id,
                name=cf.tunnel_name,
                routes=[
                    TunnelRoute(
                        hostname=h.name,
                        service=h.origin or self.origin,
                        access=access_protection(h.access) if h.access else None,
                    )
                    for h in cf.hostnames
                ],
                catch_all_service=catch_all,
                secret_rotation=cf.tunnel_secret_rotation,
                access_team_name=cf.access_team_name,
                record_comment=f"{config.name}: to the Cloudflare tunnel (managed by Terraform, edge stack)",
                alert_emails=tuple(alert_emails),
                adopt=TunnelAdoption(tunnel_id=cf.adopt.tunnel_id, records=dict(cf.adopt.records)),
                provider=provider,
            ),
        )
        if cf.zone_settings.manage:
            CloudflareZoneSettings(
                self, "zone", zone_id=cf.zone_id, settings=zone_settings_values(cf.zone_settings), provider=provider
            )
        self.tunnel_token: str = self.tunnel.token
        # A local, so that another stack reading it gets one whole reference (a cross-stack output of its own).
        self.cname_target: str = TerraformLocal(self, "tunnel_cname_target", self.tunnel.cname_target).as_string
        self._outputs = {"tunnel_token": self.tunnel.token, "tunnel_cname": self.cname_target}
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
