"""The edge stack: the Cloudflare tunnel in front of the external ingress controller, its DNS records, Cloudflare
Access in front of the admin hostnames, the zone settings and the tunnel health alert.

The tunnel token leaves this stack only as a sensitive value: the `tunnel_token` output here, and the
cross-stack output cdktf generates when the network layer reads `EdgeStack.tunnel_token`.

With `cloudflare.enabled: false` the stack is still synthesized, empty but for its provider: deploying it
destroys what its state still holds (docs/edge.md, "Turning Cloudflare off").
"""

from __future__ import annotations

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
from constructs_lib.engine import CloudflareProvider, TerraformLocal, TerraformOutput, TerraformVariable
from planner.components.tunnel_origin import ingress_origin  # noqa: F401

# The token constants and the rules that resolve the edge live in the planner; re-exported for the docs' tests.
from planner.edge import (  # noqa: F401
    DNS_TOKEN_DESCRIPTION,
    DNS_TOKEN_VARIABLE,
    EDGE_TOKEN_DESCRIPTION,
    EDGE_TOKEN_VARIABLE,
    NO_ORIGIN,
    TOKEN_PERMISSIONS,
)
from planner.model import AccessPlan, PlatformPlan
from stacks.base import HelixStack


def access_protection(access: AccessPlan) -> AccessProtection:
    return AccessProtection(
        emails=access.emails,
        email_domains=access.email_domains,
        groups=access.groups,
        identity_providers=access.identity_providers,
        session_duration=access.session_duration,
        machine_paths=tuple(MachinePath(p.path, p.service_tokens) for p in access.machine_paths),
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
        edge = plan.edge
        self.tunnel: CloudflareTunnel | None = None
        self._outputs: dict[str, str] = {}
        self.origin = edge.origin
        token = TerraformVariable(
            self,
            edge.token_variable,
            type="string",
            sensitive=True,
            nullable=False,
            # Turned off, the stack only destroys what an earlier deploy created: with nothing in state (a project
            # that never enabled Cloudflare) it needs no token, so the variable is optional then.
            default=None if edge.enabled else "",
            description=edge.token_description,
        )
        if not edge.enabled:
            CloudflareProvider(self, "cloudflare", api_token=token.string_value)
            return
        if edge.account_id is None or edge.zone_id is None or not edge.routes:
            raise ValueError("the edge stack needs cloudflare.account_id, zone_id and hostnames (validated config)")

        provider = CloudflareProvider(self, "cloudflare", api_token=token.string_value)
        self.tunnel = CloudflareTunnel(
            self,
            "tunnel",
            props=CloudflareTunnelProps(
                account_id=edge.account_id,
                zone_id=edge.zone_id,
                name=edge.tunnel_name,
                routes=[
                    TunnelRoute(
                        hostname=r.hostname,
                        service=r.service,
                        access=access_protection(r.access) if r.access else None,
                    )
                    for r in edge.routes
                ],
                catch_all_service=edge.catch_all,
                secret_rotation=edge.secret_rotation,
                access_team_name=edge.access_team_name,
                record_comment=edge.record_comment,
                alert_emails=edge.alert_emails,
                adopt=TunnelAdoption(tunnel_id=edge.adopt_tunnel_id, records=dict(edge.adopt_records)),
                provider=provider,
            ),
        )
        if edge.zone_settings is not None:
            CloudflareZoneSettings(self, "zone", zone_id=edge.zone_id, settings=dict(edge.zone_settings), provider=provider)
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
