"""A remotely managed Cloudflare Tunnel with its ingress rules, one proxied CNAME per public hostname, and
Cloudflare Access in front of the hostnames that need it.

Cloudflare provider v5 resources: cloudflare_zero_trust_tunnel_cloudflared (config_src "cloudflare"),
cloudflare_zero_trust_tunnel_cloudflared_config (the only config of the tunnel), cloudflare_dns_record,
cloudflare_zero_trust_access_policy and cloudflare_zero_trust_access_application (per protected hostname and per
machine path), cloudflare_notification_policy (tunnel health), cloudflare_zone_setting (CloudflareZoneSettings),
and the data source cloudflare_zero_trust_tunnel_cloudflared_token for the connector token. The tunnel secret is
generated in Terraform (random_bytes), so no secret is ever written in code or in the synthesized output.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from constructs import Construct

from constructs_lib.addons import ensure_random_provider
from constructs_lib.engine import (
    Bytes,
    DataCloudflareZeroTrustTunnelCloudflaredToken,
    DnsRecord,
    NotificationPolicy,
    NotificationPolicyFilters,
    NotificationPolicyMechanisms,
    NotificationPolicyMechanismsEmail,
    TerraformProvider,
    TerraformResourceLifecycle,
    ZeroTrustAccessApplication,
    ZeroTrustAccessApplicationDestinations,
    ZeroTrustAccessApplicationPolicies,
    ZeroTrustAccessPolicy,
    ZeroTrustAccessPolicyInclude,
    ZeroTrustAccessPolicyIncludeEmail,
    ZeroTrustAccessPolicyIncludeEmailDomain,
    ZeroTrustAccessPolicyIncludeEveryone,
    ZeroTrustAccessPolicyIncludeGroup,
    ZeroTrustAccessPolicyIncludeLoginMethod,
    ZeroTrustAccessPolicyIncludeServiceToken,
    ZeroTrustTunnelCloudflared,
    ZeroTrustTunnelCloudflaredConfigA,
    ZeroTrustTunnelCloudflaredConfigConfig,
    ZeroTrustTunnelCloudflaredConfigConfigIngress,
    ZeroTrustTunnelCloudflaredConfigConfigIngressOriginRequest,
    ZeroTrustTunnelCloudflaredConfigConfigIngressOriginRequestAccess,
    ZoneSetting,
)

# cloudflared answers every request that no rule matched; the last ingress rule must match everything.
CATCH_ALL_404 = "http_status:404"
# A tunnel secret is base64 of at least 32 random bytes.
MIN_SECRET_BYTES = 32
# An Access path: "/" and then path segments, no query, no wildcard.
MACHINE_PATH = re.compile(r"^(/[A-Za-z0-9._~-]+)+/?$")
TUNNEL_HEALTH_ALERT = "tunnel_health_event"


@dataclass(frozen=True)
class MachinePath:
    """A path under a protected hostname that machines call (webhooks, SDKs), with its own Access rule.

    Props:
        path: the path prefix, such as /integrations/ (Access covers it and everything below it).
        service_tokens: Access service token ids allowed on the path (policy decision non_identity; cloudflared
            still checks the Access token). Empty: the path bypasses Access entirely (decision bypass), and its
            tunnel rule does not require an Access token; the application behind it must authenticate callers.
    """

    path: str
    service_tokens: Sequence[str] = ()

    def __post_init__(self) -> None:
        if not MACHINE_PATH.fullmatch(self.path):
            raise ValueError(f"machine path {self.path!r} must be an absolute path such as /api/v1/flags")

    @property
    def prefix(self) -> str:
        return self.path.rstrip("/")

    @property
    def regex(self) -> str:
        """cloudflared's path rule (a regular expression) for the path and everything below it."""
        return "^" + re.escape(self.prefix) + "(/|$)"

    @property
    def bypass(self) -> bool:
        return not self.service_tokens


@dataclass(frozen=True)
class AccessProtection:
    """Cloudflare Access in front of a hostname: who may pass, and the machine paths with their own rule.

    At least one of emails, email_domains, groups and identity_providers is required.

    Props:
        emails: email addresses allowed.
        email_domains: email domains allowed (example.com).
        groups: Access group ids allowed.
        identity_providers: identity provider ids: anyone who logs in through one of them is allowed, and the
            login page offers only these (with exactly one, users go straight to it).
        session_duration: how long an Access session lasts (Go duration, such as 24h).
        machine_paths: paths with their own policy (bypass, or service tokens), matched before the hostname.
    """

    emails: Sequence[str] = ()
    email_domains: Sequence[str] = ()
    groups: Sequence[str] = ()
    identity_providers: Sequence[str] = ()
    session_duration: str = "24h"
    machine_paths: Sequence[MachinePath] = ()

    def __post_init__(self) -> None:
        if not (self.emails or self.email_domains or self.groups or self.identity_providers):
            raise ValueError("AccessProtection needs emails, email_domains, groups or identity_providers")
        paths = [p.prefix for p in self.machine_paths]
        if len(paths) != len(set(paths)):
            raise ValueError("a machine path is listed twice")
        if not re.fullmatch(r"(\d+(ns|us|µs|ms|s|m|h))+", self.session_duration):
            raise ValueError(f"session_duration {self.session_duration!r} is not a duration such as 24h")


@dataclass(frozen=True)
class TunnelRoute:
    """One public hostname served through the tunnel.

    Props:
        hostname: the public DNS name (inside the zone); it gets a proxied CNAME to the tunnel.
        service: where cloudflared sends the requests, such as http://ingress.ns.svc.cluster.local:80.
        path: optional regular expression on the request path; rules are matched in order.
        access: Cloudflare Access in front of the hostname (set it on one route of the hostname; every rule of
            the hostname then requires the Access token at cloudflared).
    """

    hostname: str
    service: str
    path: str | None = None
    access: AccessProtection | None = None


@dataclass(frozen=True)
class TunnelAdoption:
    """Objects that already exist in Cloudflare and are taken under management with `import` blocks.

    Props:
        tunnel_id: id of an existing remotely managed tunnel (its configuration is imported with it). Its secret
            is replaced by the generated one on the first apply, so the connectors need the new token.
        records: hostname -> id of an existing DNS record of that name (it becomes the tunnel's CNAME).
    """

    tunnel_id: str | None = None
    records: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CloudflareTunnelProps:
    """What the tunnel serves, and where it lives.

    Props:
        account_id: Cloudflare account id that owns the tunnel (and the Access applications).
        zone_id: id of the DNS zone that holds the hostnames' CNAME records.
        name: tunnel name, as shown in the Zero Trust dashboard (renaming it updates the tunnel in place).
        routes: ingress rules in match order; each distinct hostname also gets one CNAME record.
        catch_all_service: the last rule, for requests no route matched (must not name a hostname).
        secret_bytes: length of the random tunnel secret in bytes (at least 32).
        secret_rotation: bump it (1, 2, ...) to generate a new tunnel secret; the token read in the same apply
            is the new one. 0 (the default) sets no keepers, so existing secrets stay as they are.
        access_team_name: the Zero Trust team name (<team>.cloudflareaccess.com); required when a route has
            access.
        protect: refuse destroy of the tunnel (losing it takes every hostname down until connectors get a new
            token). Records, rules and Access applications follow the routes and are never protected.
        record_comment: comment written on each DNS record (who manages it).
        alert_emails: addresses that a notification policy alerts on tunnel health changes (none: no policy).
        adopt: existing tunnel and records to import instead of create.
        provider: the Cloudflare provider to use (defaults to the stack's only one).
    """

    account_id: str
    zone_id: str
    name: str
    routes: Sequence[TunnelRoute]
    catch_all_service: str = CATCH_ALL_404
    secret_bytes: int = MIN_SECRET_BYTES
    secret_rotation: int = 0
    access_team_name: str | None = None
    protect: bool = True
    record_comment: str | None = None
    alert_emails: Sequence[str] = ()
    adopt: TunnelAdoption | None = None
    provider: TerraformProvider | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not self.routes:
            raise ValueError("CloudflareTunnel needs at least one route")
        if self.secret_bytes < MIN_SECRET_BYTES:
            raise ValueError(f"the tunnel secret needs at least {MIN_SECRET_BYTES} bytes, got {self.secret_bytes}")
        if self.secret_rotation < 0:
            raise ValueError("secret_rotation counts up from 0")
        seen: set[tuple[str, str | None]] = set()
        for route in self.routes:
            key = (route.hostname, route.path)
            if key in seen:
                raise ValueError(f"route {route.hostname}{' ' + route.path if route.path else ''} is listed twice")
            seen.add(key)
        for hostname in self.hostnames:
            if len([r for r in self.routes if r.hostname == hostname and r.access is not None]) > 1:
                raise ValueError(f"set access on one route of {hostname}, not several")
        if self.protected_hostnames and not self.access_team_name:
            raise ValueError("access_team_name is required when a route has access (cloudflared checks the token)")
        if not self.catch_all_service:
            raise ValueError("catch_all_service must be set: cloudflared needs a last rule that matches everything")
        if self.adopt is not None:
            unknown = sorted(set(self.adopt.records) - set(self.hostnames))
            if unknown:
                raise ValueError(f"adopted records {unknown} are not hostnames of the tunnel")

    @property
    def hostnames(self) -> list[str]:
        """Distinct hostnames, in first-route order."""
        return list(dict.fromkeys(r.hostname for r in self.routes))

    @property
    def protected_hostnames(self) -> dict[str, AccessProtection]:
        """Hostname -> its Access protection, in first-route order."""
        return {r.hostname: r.access for r in self.routes if r.access is not None}


def record_id(hostname: str) -> str:
    """The construct id of a hostname's CNAME: stable, and distinct for distinct hostnames."""
    return "cname-" + hostname.replace(".", "_")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")


def _include(protection: AccessProtection) -> list[ZeroTrustAccessPolicyInclude]:
    return (
        [ZeroTrustAccessPolicyInclude(email=ZeroTrustAccessPolicyIncludeEmail(email=e)) for e in protection.emails]
        + [
            ZeroTrustAccessPolicyInclude(email_domain=ZeroTrustAccessPolicyIncludeEmailDomain(domain=d))
            for d in protection.email_domains
        ]
        + [ZeroTrustAccessPolicyInclude(group=ZeroTrustAccessPolicyIncludeGroup(id=g)) for g in protection.groups]
        + [
            ZeroTrustAccessPolicyInclude(login_method=ZeroTrustAccessPolicyIncludeLoginMethod(id=i))
            for i in protection.identity_providers
        ]
    )


class AccessApplication(Construct):
    """One self-hosted Access application (a hostname, or a hostname and path) with its one reusable policy.

    Props:
        account_id: the account that owns the application and the policy.
        domain: the hostname, or hostname and path, that Access protects.
        decision: the policy's decision: allow, bypass, non_identity or deny.
        include: the policy's include rules (ZeroTrustAccessPolicyInclude).
        session_duration: how long an Access session lasts (Go duration; None: the account's default).
        identity_providers: the IdPs the login page offers (empty: all); with exactly one, users skip the chooser.
        provider: the Cloudflare provider to use (defaults to the stack's only one).
    Attributes:
        policy: the cloudflare_zero_trust_access_policy.
        application: the cloudflare_zero_trust_access_application.
        aud: the application's audience tag (a token), which cloudflared checks.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        account_id: str,
        domain: str,
        decision: str,
        include: Sequence[ZeroTrustAccessPolicyInclude],
        session_duration: str | None = None,
        identity_providers: Sequence[str] = (),
        provider: TerraformProvider | None = None,
    ) -> None:
        super().__init__(scope, id)
        self.policy = ZeroTrustAccessPolicy(
            self,
            "policy",
            account_id=account_id,
            name=f"{domain} ({decision})",
            decision=decision,
            include=list(include),
            session_duration=session_duration,
            provider=provider,
        )
        self.application = ZeroTrustAccessApplication(
            self,
            "application",
            account_id=account_id,
            name=domain,
            type="self_hosted",
            domain=domain,
            destinations=[ZeroTrustAccessApplicationDestinations(type="public", uri=domain)],
            policies=[ZeroTrustAccessApplicationPolicies(id=self.policy.id, precedence=1)],
            session_duration=session_duration,
            allowed_idps=list(identity_providers) or None,
            auto_redirect_to_identity=True if len(identity_providers) == 1 else None,
            app_launcher_visible=decision == "allow",
            provider=provider,
        )
        self.aud = self.application.aud


class CloudflareTunnel(Construct):
    """A remotely managed tunnel (config_src "cloudflare"), its ingress configuration, its CNAME records, and
    Cloudflare Access in front of the protected hostnames.

    Props:
        props: a CloudflareTunnelProps (account, zone, name, routes, rotation, protection; see there).
    Attributes:
        secret: the random_bytes resource behind the tunnel secret.
        tunnel: the cloudflare_zero_trust_tunnel_cloudflared resource.
        config: the tunnel's cloudflare_zero_trust_tunnel_cloudflared_config (one per tunnel).
        records: hostname -> cloudflare_dns_record (CNAME to <tunnel id>.cfargotunnel.com, proxied).
        access: hostname -> its AccessApplication; machine_access: (hostname, path) -> AccessApplication.
        alert: the cloudflare_notification_policy on tunnel health, or None.
        token_source: the cloudflare_zero_trust_tunnel_cloudflared_token data source (read after the tunnel
            and its secret are applied, so a rotated secret gives the new token in the same apply).
        tunnel_id: the tunnel's id (a token).
        cname_target: <tunnel id>.cfargotunnel.com (a token).
        token: the connector token for `cloudflared tunnel run --token` (a sensitive token: only pass it
            to sensitive outputs, sensitive Helm sets or Kubernetes secrets).
    """

    def __init__(self, scope: Construct, id: str, *, props: CloudflareTunnelProps) -> None:
        super().__init__(scope, id)
        self.props = props
        provider = props.provider
        adopt = props.adopt or TunnelAdoption()

        ensure_random_provider(self)
        # Keepers only once rotation starts: adding them to an existing secret would replace it.
        keepers = {"rotation": str(props.secret_rotation)} if props.secret_rotation else None
        self.secret = Bytes(self, "secret", length=props.secret_bytes, keepers=keepers)
        self.tunnel = ZeroTrustTunnelCloudflared(
            self,
            "tunnel",
            account_id=props.account_id,
            name=props.name,
            config_src="cloudflare",
            tunnel_secret=self.secret.base64,  # updated in place (PATCH) when the secret is replaced
            lifecycle=TerraformResourceLifecycle(prevent_destroy=True) if props.protect else None,
            provider=provider,
        )
        self.tunnel_id = self.tunnel.id
        self.cname_target = f"{self.tunnel.id}.cfargotunnel.com"

        self.access: dict[str, AccessApplication] = {}
        self.machine_access: dict[tuple[str, str], AccessApplication] = {}
        for hostname, protection in props.protected_hostnames.items():
            self.access[hostname] = AccessApplication(
                self,
                f"access-{_slug(hostname)}",
                account_id=props.account_id,
                domain=hostname,
                decision="allow",
                include=_include(protection),
                session_duration=protection.session_duration,
                identity_providers=protection.identity_providers,
                provider=provider,
            )
            for machine in protection.machine_paths:
                include = (
                    [ZeroTrustAccessPolicyInclude(everyone=ZeroTrustAccessPolicyIncludeEveryone())]
                    if machine.bypass
                    else [
                        ZeroTrustAccessPolicyInclude(service_token=ZeroTrustAccessPolicyIncludeServiceToken(token_id=t))
                        for t in machine.service_tokens
                    ]
                )
                self.machine_access[(hostname, machine.prefix)] = AccessApplication(
                    self,
                    f"access-{_slug(hostname)}-{_slug(machine.prefix)}",
                    account_id=props.account_id,
                    domain=hostname + machine.prefix,
                    decision="bypass" if machine.bypass else "non_identity",
                    include=include,
                    provider=provider,
                )

        self.config = ZeroTrustTunnelCloudflaredConfigA(
            self,
            "config",
            account_id=props.account_id,
            tunnel_id=self.tunnel.id,
            config=ZeroTrustTunnelCloudflaredConfigConfig(ingress=self._rules()),
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
                provider=provider,
            )

        if adopt.tunnel_id:
            self.tunnel.import_from(f"{props.account_id}/{adopt.tunnel_id}")
            self.config.import_from(f"{props.account_id}/{adopt.tunnel_id}")
        for hostname, existing in adopt.records.items():
            self.records[hostname].import_from(f"{props.zone_id}/{existing}")

        self.alert: NotificationPolicy | None = None
        if props.alert_emails:
            self.alert = NotificationPolicy(
                self,
                "health-alert",
                account_id=props.account_id,
                name=f"Tunnel {props.name}: health",
                description="Managed by Terraform: the tunnel's health changed (degraded, down or healthy again)",
                alert_type=TUNNEL_HEALTH_ALERT,
                enabled=True,
                filters=NotificationPolicyFilters(tunnel_id=[self.tunnel.id]),
                mechanisms=NotificationPolicyMechanisms(
                    email=[NotificationPolicyMechanismsEmail(id=e) for e in props.alert_emails]
                ),
                provider=provider,
            )

        self.token_source = DataCloudflareZeroTrustTunnelCloudflaredToken(
            self,
            "token",
            account_id=props.account_id,
            tunnel_id=self.tunnel.id,
            # Terraform defers reading a data source to apply time while anything it depends on has changes, so
            # the token is read after the tunnel has its new secret, never the stale one at plan time.
            depends_on=[self.tunnel, self.secret],
            provider=provider,
        )
        self.token = self.token_source.token

    def _access_origin(self, auds: Sequence[str]) -> ZeroTrustTunnelCloudflaredConfigConfigIngressOriginRequest:
        # Checked in __init__: routes with access need the team name.
        assert self.props.access_team_name is not None
        return ZeroTrustTunnelCloudflaredConfigConfigIngressOriginRequest(
            access=ZeroTrustTunnelCloudflaredConfigConfigIngressOriginRequestAccess(
                required=True, team_name=self.props.access_team_name, aud_tag=list(auds)
            )
        )

    def _rules(self) -> list[ZeroTrustTunnelCloudflaredConfigConfigIngress]:
        props = self.props
        protected = props.protected_hostnames
        rules: list[ZeroTrustTunnelCloudflaredConfigConfigIngress] = []
        done_machine_paths: set[str] = set()
        for route in props.routes:
            protection = protected.get(route.hostname)
            if protection is not None and route.hostname not in done_machine_paths:
                # Machine paths first: their rule sends to the hostname's first service.
                done_machine_paths.add(route.hostname)
                service = next(r.service for r in props.routes if r.hostname == route.hostname)
                for machine in protection.machine_paths:
                    app = self.machine_access[(route.hostname, machine.prefix)]
                    rules.append(
                        ZeroTrustTunnelCloudflaredConfigConfigIngress(
                            hostname=route.hostname,
                            path=machine.regex,
                            service=service,
                            # A bypassed path carries no Access token; a service-token path carries its app's.
                            origin_request=None if machine.bypass else self._access_origin([app.aud]),
                        )
                    )
            rules.append(
                ZeroTrustTunnelCloudflaredConfigConfigIngress(
                    hostname=route.hostname,
                    service=route.service,
                    path=route.path,
                    origin_request=self._access_origin([self.access[route.hostname].aud]) if protection else None,
                )
            )
        rules.append(ZeroTrustTunnelCloudflaredConfigConfigIngress(service=props.catch_all_service))
        return rules


class CloudflareZoneSettings(Construct):
    """Zone settings managed by Terraform, one cloudflare_zone_setting per setting id.

    Props:
        zone_id: the zone.
        settings: setting id -> value, as the API takes it: "on", "1.2", or an object (security_header).
        provider: the Cloudflare provider to use (defaults to the stack's only one).
    Attributes:
        settings: setting id -> the cloudflare_zone_setting resource.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        zone_id: str,
        settings: Mapping[str, Any],
        provider: TerraformProvider | None = None,
    ) -> None:
        super().__init__(scope, id)
        self.settings: dict[str, ZoneSetting] = {}
        for setting_id, value in settings.items():
            resource = ZoneSetting(self, setting_id, zone_id=zone_id, setting_id=setting_id, value={}, provider=provider)
            # `value` is dynamic in the provider (a string, a number or an object); the binding types it as a map.
            resource.add_override("value", value)
            self.settings[setting_id] = resource
