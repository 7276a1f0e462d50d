"""The edge plan: the Cloudflare tunnel, its routes, Access and alert, resolved from the cluster file and the
installed components. stacks/edge.py renders it and decides nothing."""

from __future__ import annotations

from collections.abc import Mapping

from planner.components import mesh_ingress
from planner.components.tunnel_origin import ingress_origin, provider_of
from planner.edge_rules import hosts_served, ingress_class_of
from planner.model import AccessPlan, Component, EdgePlan, EdgeRoute, MachinePathPlan
from planner.schema import AccessConfig, HelixConfig, ZoneSettingsConfig

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
# What names no rule matches answer when no ingress controller is installed to answer 404 itself.
NO_MATCH = "http_status:404"


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


def access_plan(access: AccessConfig) -> AccessPlan:
    return AccessPlan(
        emails=tuple(access.emails),
        email_domains=tuple(access.email_domains),
        groups=tuple(access.groups),
        identity_providers=tuple(access.identity_providers),
        session_duration=access.session_duration,
        machine_paths=tuple(MachinePathPlan(p.path, tuple(p.service_tokens)) for p in access.machine_paths),
    )


def resolve_edge(cfg: HelixConfig, components: Mapping[str, Component]) -> EdgePlan:
    """The edge for the validated cluster file and the installed components."""
    cf = cfg.cloudflare
    if not cf.enabled:
        return EdgePlan(
            enabled=False,
            origin=NO_ORIGIN,
            catch_all=NO_MATCH,
            token_variable=EDGE_TOKEN_VARIABLE,
            token_description=EDGE_TOKEN_DESCRIPTION,
            token_permissions=TOKEN_PERMISSIONS,
        )
    controller = provider_of(components)
    if controller is not None:
        origin = ingress_origin(controller, cfg.cluster.cluster_domain)
        # Names that only external-dns publishes (Ingresses of the external class) reach NGINX, which answers
        # 404 for hosts it does not serve.
        catch_all = origin
    else:
        # No origin installed (nor cloudflared, whose catalog entry needs it).
        origin, catch_all = NO_ORIGIN, NO_MATCH
    ingress_class = ingress_class_of(components)
    served = hosts_served(components, ingress_class) if ingress_class else {}
    gateway = mesh_ingress.provider_of(components)
    # The names served from the mesh go to the Istio ingress gateway instead (docs/mesh.md).
    meshed = {r.hostname: r for r in mesh_ingress.public_routes(cfg, components)}
    domain = cfg.cluster.cluster_domain
    return EdgePlan(
        enabled=True,
        origin=origin,
        catch_all=catch_all,
        account_id=cf.account_id,
        zone_id=cf.zone_id,
        tunnel_name=cf.tunnel_name,
        secret_rotation=cf.tunnel_secret_rotation,
        access_team_name=cf.access_team_name,
        record_comment=f"{cfg.name}: to the Cloudflare tunnel (managed by Terraform, edge stack)",
        routes=tuple(
            EdgeRoute(
                hostname=h.name,
                service=h.origin or (mesh_ingress.gateway_origin(gateway, domain) if gateway and h.name in meshed else origin),
                backend=None if h.origin else served.get(h.name),
                access=access_plan(h.access) if h.access else None,
                mesh_service=f"{meshed[h.name].destination(domain)}:{meshed[h.name].port}" if h.name in meshed else None,
            )
            for h in cf.hostnames
        ),
        # Unset: the ACME contact; [] turns the alert off.
        alert_emails=tuple(cf.alert_emails if cf.alert_emails is not None else [cfg.acme_email]),
        adopt_tunnel_id=cf.adopt.tunnel_id,
        adopt_records=dict(cf.adopt.records),
        zone_settings=zone_settings_values(cf.zone_settings) if cf.zone_settings.manage else None,
        token_variable=EDGE_TOKEN_VARIABLE,
        token_description=EDGE_TOKEN_DESCRIPTION,
        token_permissions=TOKEN_PERMISSIONS,
    )
