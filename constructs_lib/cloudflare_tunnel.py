"""A remotely managed Cloudflare Tunnel with its ingress rules and one proxied CNAME per public hostname.

Cloudflare provider v5 resources: cloudflare_zero_trust_tunnel_cloudflared (config_src "cloudflare"),
cloudflare_zero_trust_tunnel_cloudflared_config (the only config of the tunnel), cloudflare_dns_record, and the
data source cloudflare_zero_trust_tunnel_cloudflared_token for the connector token. The tunnel secret is
generated in Terraform (random_bytes), so no secret is ever written in code or in the synthesized output.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

from cdktf import TerraformProvider, TerraformResourceLifecycle
from cdktf_cdktf_provider_cloudflare.data_cloudflare_zero_trust_tunnel_cloudflared_token import (
    DataCloudflareZeroTrustTunnelCloudflaredToken,
)
from cdktf_cdktf_provider_cloudflare.dns_record import DnsRecord
from cdktf_cdktf_provider_cloudflare.zero_trust_tunnel_cloudflared import ZeroTrustTunnelCloudflared
from cdktf_cdktf_provider_cloudflare.zero_trust_tunnel_cloudflared_config import (
    ZeroTrustTunnelCloudflaredConfigA,
    ZeroTrustTunnelCloudflaredConfigConfig,
    ZeroTrustTunnelCloudflaredConfigConfigIngress,
)
from cdktf_cdktf_provider_random.bytes import Bytes
from constructs import Construct

from constructs_lib.addons import ensure_random_provider

# cloudflared answers every request that no rule matched; the last ingress rule must match everything.
CATCH_ALL_404 = "http_status:404"
# A tunnel secret is base64 of at least 32 random bytes.
MIN_SECRET_BYTES = 32


@dataclass(frozen=True)
class TunnelRoute:
    """One public hostname served through the tunnel.

    Props:
        hostname: the public DNS name (inside the zone); it gets a proxied CNAME to the tunnel.
        service: where cloudflared sends the requests, such as http://ingress.ns.svc.cluster.local:80.
        path: optional regular expression on the request path; rules are matched in order.
    """

    hostname: str
    service: str
    path: Optional[str] = None


@dataclass(frozen=True)
class CloudflareTunnelProps:
    """What the tunnel serves, and where it lives.

    Props:
        account_id: Cloudflare account id that owns the tunnel.
        zone_id: id of the DNS zone that holds the hostnames' CNAME records.
        name: tunnel name, as shown in the Zero Trust dashboard.
        routes: ingress rules in match order; each distinct hostname also gets one CNAME record.
        catch_all_service: the last rule, for requests no route matched (must not name a hostname).
        secret_bytes: length of the random tunnel secret in bytes (at least 32).
        protect: refuse destroy of the tunnel, its secret, its configuration and its DNS records
            (losing them takes the public hostnames down).
        record_comment: comment written on each DNS record (who manages it).
        provider: the Cloudflare provider to use (defaults to the stack's only one).
    """

    account_id: str
    zone_id: str
    name: str
    routes: Sequence[TunnelRoute]
    catch_all_service: str = CATCH_ALL_404
    secret_bytes: int = MIN_SECRET_BYTES
    protect: bool = True
    record_comment: Optional[str] = None
    provider: Optional[TerraformProvider] = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not self.routes:
            raise ValueError("CloudflareTunnel needs at least one route")
        if self.secret_bytes < MIN_SECRET_BYTES:
            raise ValueError(f"the tunnel secret needs at least {MIN_SECRET_BYTES} bytes, got {self.secret_bytes}")
        seen: set[tuple[str, Optional[str]]] = set()
        for route in self.routes:
            key = (route.hostname, route.path)
            if key in seen:
                raise ValueError(f"route {route.hostname}{' ' + route.path if route.path else ''} is listed twice")
            seen.add(key)
        if not self.catch_all_service:
            raise ValueError("catch_all_service must be set: cloudflared needs a last rule that matches everything")

    @property
    def hostnames(self) -> list[str]:
        """Distinct hostnames, in first-route order."""
        return list(dict.fromkeys(r.hostname for r in self.routes))


def record_id(hostname: str) -> str:
    """The construct id of a hostname's CNAME: stable, and distinct for distinct hostnames."""
    return "cname-" + hostname.replace(".", "_")


class CloudflareTunnel(Construct):
    """A remotely managed tunnel (config_src "cloudflare"), its ingress configuration and its CNAME records.

    Props:
        props: a CloudflareTunnelProps (account, zone, name, routes, protection; see there).
    Attributes:
        secret: the random_bytes resource behind the tunnel secret.
        tunnel: the cloudflare_zero_trust_tunnel_cloudflared resource.
        config: the tunnel's cloudflare_zero_trust_tunnel_cloudflared_config (one per tunnel).
        records: hostname -> cloudflare_dns_record (CNAME to <tunnel id>.cfargotunnel.com, proxied).
        token_source: the cloudflare_zero_trust_tunnel_cloudflared_token data source.
        tunnel_id: the tunnel's id (a token).
        cname_target: <tunnel id>.cfargotunnel.com (a token).
        token: the connector token for `cloudflared tunnel run --token` (a sensitive token: only pass it
            to sensitive outputs, sensitive Helm sets or Kubernetes secrets).
    """

    def __init__(self, scope: Construct, id: str, *, props: CloudflareTunnelProps) -> None:
        super().__init__(scope, id)
        self.props = props
        protect = TerraformResourceLifecycle(prevent_destroy=True) if props.protect else None
        provider = props.provider

        ensure_random_provider(self)
        self.secret = Bytes(self, "secret", length=props.secret_bytes, lifecycle=protect)
        self.tunnel = ZeroTrustTunnelCloudflared(
            self,
            "tunnel",
            account_id=props.account_id,
            name=props.name,
            config_src="cloudflare",
            tunnel_secret=self.secret.base64,
            lifecycle=protect,
            provider=provider,
        )
        self.tunnel_id = self.tunnel.id
        self.cname_target = f"{self.tunnel.id}.cfargotunnel.com"

        rules = [
            ZeroTrustTunnelCloudflaredConfigConfigIngress(hostname=r.hostname, service=r.service, path=r.path)
            for r in props.routes
        ]
        rules.append(ZeroTrustTunnelCloudflaredConfigConfigIngress(service=props.catch_all_service))
        self.config = ZeroTrustTunnelCloudflaredConfigA(
            self,
            "config",
            account_id=props.account_id,
            tunnel_id=self.tunnel.id,
            config=ZeroTrustTunnelCloudflaredConfigConfig(ingress=rules),
            lifecycle=protect,
            provider=provider,
        )

        self.records: dict[str, DnsRecord] = {}
        for hostname in props.hostnames:
            self.records[hostname] = DnsRecord(
                self,
                record_id(hostname),
                zone_id=props.zone_id,
                name=hostname,
                type="CNAME",
                content=self.cname_target,
                proxied=True,
                ttl=1,  # 1 = automatic, the only TTL a proxied record has
                comment=props.record_comment,
                lifecycle=protect,
                provider=provider,
            )

        self.token_source = DataCloudflareZeroTrustTunnelCloudflaredToken(
            self,
            "token",
            account_id=props.account_id,
            tunnel_id=self.tunnel.id,
            provider=provider,
        )
        self.token = self.token_source.token
