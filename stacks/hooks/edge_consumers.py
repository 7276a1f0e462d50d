"""The in-cluster pieces that use the Cloudflare edge.

network layer:
  - cloudflared reads the tunnel token from network/cloudflared-tunnel-token (key `token`), the one Secret that
    holds it, written from the edge stack's token (a sensitive cross-stack reference);
  - external-dns gets the zone-scoped DNS token in network/cloudflare-api-token (key `api-token`);
  - ingress-external reports the tunnel's CNAME target (<tunnel id>.cfargotunnel.com, a cross-stack reference) as
    its Ingresses' address (ConfigMap key external-status-address), which external-dns publishes.
foundation layer:
  - cert-manager gets the same DNS token in cert-manager/cloudflare-api-token, which the Let's Encrypt
    ClusterIssuers (release `cluster-issuers`, config/manifests/cert-manager/cluster-issuers.yaml) use for DNS-01.

The DNS token enters each stack as the sensitive variable `cloudflare_dns_token` (TF_VAR_cloudflare_dns_token):
DNS Edit and Zone Read on the one zone. The edge stack's own token (`cloudflare_edge_token`) never reaches the
cluster. The same secrets are declared as data (`secrets:` in config/catalog/{network,cert-manager}.yaml, the
variable in config/variables.yaml) for the data-driven extras that replace this module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from cdktf import TerraformStack, TerraformVariable
from cdktf_cdktf_provider_kubernetes.secret_v1 import SecretV1, SecretV1Metadata

from stacks.edge import DNS_TOKEN_DESCRIPTION

if TYPE_CHECKING:
    from stacks.catalog import Component
    from stacks.platform import LayerContext

API_TOKEN_VARIABLE = "cloudflare_dns_token"
# The secret the catalog's external-dns env and the ClusterIssuers' apiTokenSecretRef name.
API_TOKEN_SECRET = "cloudflare-api-token"
API_TOKEN_KEY = "api-token"
TUNNEL_TOKEN_SECRET = "cloudflared-tunnel-token"
TUNNEL_TOKEN_KEY = "token"
CLUSTER_ISSUERS = "cluster-issuers"
ISSUERS_MANIFEST = "cert-manager/cluster-issuers.yaml"
# The address the external controller writes into its Ingresses' status: the tunnel (set from the edge stack).
STATUS_ADDRESS_VALUE = "controller.config.entries.external-status-address"


def api_token_variable(stack: TerraformStack) -> str:
    """The stack's sensitive `cloudflare_dns_token` variable (created once per stack), as a string token."""
    var = stack.node.try_find_child(API_TOKEN_VARIABLE)
    if var is None:
        var = TerraformVariable(
            stack,
            API_TOKEN_VARIABLE,
            type="string",
            sensitive=True,
            description=DNS_TOKEN_DESCRIPTION,
        )
    return var.string_value


def _component(ctx: "LayerContext", cid: str) -> Optional["Component"]:
    return next((c for c in ctx.layer.components if c.id == cid), None)


class _SecretsForComponents:
    """Creates a secret before the listed components' releases, and after their namespace (set in `after`)."""

    def __init__(self) -> None:
        self._pending: list[tuple[SecretV1, str]] = []

    def _secret(self, ctx: "LayerContext", id: str, namespace: str, name: str, data: dict[str, str]) -> SecretV1:
        secret = SecretV1(
            ctx.stack,
            id,
            provider=ctx.providers.kubernetes,
            metadata=SecretV1Metadata(name=name, namespace=namespace),
            data=data,
        )
        self._pending.append((secret, namespace))
        return secret

    def after(self, ctx: "LayerContext") -> None:
        # The namespaces exist only once the layer's AddOnLayer is built.
        for secret, namespace in self._pending:
            deps = ctx.namespace_dependency(namespace)
            if deps:
                # depends_on takes bare addresses (type.name), not interpolations.
                secret.add_override("depends_on", [f"{d.terraform_resource_type}.{d.friendly_unique_id}" for d in deps])
        self._pending.clear()


class NetworkEdgeHook(_SecretsForComponents):
    """network layer: cloudflared's tunnel token Secret, external-dns's DNS token, and the external controller's
    status address."""

    def before(self, ctx: "LayerContext") -> None:
        cloudflared = _component(ctx, "cloudflared")
        if cloudflared is not None:
            if ctx.edge is None:
                raise ValueError("cloudflared is installed but the Cloudflare edge stack is not (validated config)")
            token = ctx.edge.tunnel_token  # a cross-stack reference: cdktf adds a sensitive output to edge
            secret = self._secret(
                ctx,
                "cloudflared-tunnel-token",
                cloudflared.namespace,
                TUNNEL_TOKEN_SECRET,
                {TUNNEL_TOKEN_KEY: token},
            )
            ctx.depends_on["cloudflared"].append(secret)
        external_dns = _component(ctx, "external-dns")
        if external_dns is not None:
            secret = self._secret(
                ctx,
                "external-dns-cloudflare-api-token",
                external_dns.namespace,
                API_TOKEN_SECRET,
                {API_TOKEN_KEY: api_token_variable(ctx.stack)},
            )
            ctx.depends_on["external-dns"].append(secret)
        if _component(ctx, "ingress-external") is not None and ctx.edge is not None:
            # Not a secret, but a sensitive set is the only Helm set the add-ons take.
            ctx.sensitive_values["ingress-external"][STATUS_ADDRESS_VALUE] = ctx.edge.cname_target


class CertManagerDnsHook(_SecretsForComponents):
    """foundation layer: cert-manager's Cloudflare API token, and the Let's Encrypt ClusterIssuers that use it.

    The ClusterIssuers (config/manifests/cert-manager/cluster-issuers.yaml) are a release of the pinned raw chart,
    not kubernetes_manifest: their CRDs come from the cert-manager release of this same stack, and
    kubernetes_manifest would need them at plan time. The release waits for cert-manager (whose startupapicheck
    hook proves the webhook answers) and for the secret.
    """

    def __init__(self) -> None:
        super().__init__()
        self._secret_for_issuers: Optional[SecretV1] = None

    def before(self, ctx: "LayerContext") -> None:
        cert_manager = _component(ctx, "cert-manager")
        if cert_manager is None:
            return
        self._secret_for_issuers = self._secret(
            ctx,
            "cert-manager-cloudflare-api-token",
            cert_manager.namespace,
            API_TOKEN_SECRET,
            {API_TOKEN_KEY: api_token_variable(ctx.stack)},
        )

    def after(self, ctx: "LayerContext") -> None:
        super().after(ctx)
        cert_manager = _component(ctx, "cert-manager")
        if cert_manager is None or self._secret_for_issuers is None:
            return
        from constructs_lib.addons import AddOnLayer
        from stacks.hooks.manifests import load_manifests, manifest_addon

        cfg = ctx.settings.config
        ctx.shared["cluster-issuers"] = AddOnLayer(
            ctx.stack,
            "cert-manager-issuers",
            providers=ctx.providers,
            add_ons=[
                manifest_addon(
                    CLUSTER_ISSUERS,
                    cert_manager.namespace,
                    load_manifests(ISSUERS_MANIFEST, cfg),
                    depends_on=[ctx.addons.releases["cert-manager"], self._secret_for_issuers],
                    timeout=120,
                )
            ],
        )
        self._secret_for_issuers = None
