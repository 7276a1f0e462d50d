#!/usr/bin/env python
"""A Cloudflare Tunnel in front of a cluster you already have: the tunnel, its ingress rules and DNS records
in Cloudflare, and the cloudflared connector running in the cluster. Uses only constructs_lib (plus the
Cloudflare provider it is configured with).

    python examples/tunnel_for_existing_cluster.py [OUTDIR]

OUTDIR defaults to $CDKTF_OUTDIR, then ./cdktf.out. One stack, `tunnel`, state in ./state/tunnel.tfstate.
Set TF_VAR_cloudflare_api_token (Tunnel edit + DNS edit), TF_VAR_cloudflare_account_id and
TF_VAR_cloudflare_zone_id before `cdktf deploy tunnel`. The tunnel secret and the connector token are
generated and read in Terraform: no secret is written here or in the synthesized output.
"""

from __future__ import annotations

import os
import sys

import constructs_lib

# Opt in before any provider class is imported: the Cloudflare package alone has 559 resource modules.
constructs_lib.enable_lazy_providers()

from constructs_lib import (  # noqa: E402
    AddOnLayer,
    CloudflareTunnel,
    CloudflareTunnelProps,
    ClusterAccess,
    ClusterProviders,
    HelmAddOn,
    LocalStateBackend,
    NamespaceSpec,
    TunnelRoute,
)
from constructs_lib.engine import (  # noqa: E402
    App,
    CloudflareProvider,  # noqa: E402
    TerraformStack,
    TerraformVariable,
)

STACK = "tunnel"
# Services of the existing cluster that the tunnel publishes (example.com: replace with your zone).
ROUTES = [
    TunnelRoute(hostname="app.example.com", service="http://web.default.svc.cluster.local:80"),
    TunnelRoute(hostname="api.example.com", service="http://api.default.svc.cluster.local:8080"),
]


def outdir_from(argv: list[str]) -> str:
    return argv[1] if len(argv) > 1 else os.environ.get("CDKTF_OUTDIR", "cdktf.out")


def build(outdir: str) -> App:
    app = App(outdir=outdir, stack_traces=False)  # stack traces would record absolute paths
    stack = TerraformStack(app, STACK)
    LocalStateBackend(directory="state").apply(stack, STACK)

    def variable(name: str, description: str, sensitive: bool = False) -> str:
        return TerraformVariable(stack, name, type="string", sensitive=sensitive, description=description).string_value

    CloudflareProvider(
        stack,
        "cloudflare",
        api_token=variable("cloudflare_api_token", "API token with Tunnel edit and DNS edit", sensitive=True),
    )
    tunnel = CloudflareTunnel(
        stack,
        "edge",
        props=CloudflareTunnelProps(
            account_id=variable("cloudflare_account_id", "Cloudflare account that owns the tunnel"),
            zone_id=variable("cloudflare_zone_id", "DNS zone of the public hostnames"),
            name="apps",
            routes=ROUTES,
            record_comment="managed by cdktf (tunnel example)",
        ),
    )

    providers = ClusterProviders(
        stack,
        "cluster",
        # "~" is expanded by the providers when Terraform runs, so the output stays machine-independent.
        access=ClusterAccess(kubeconfig_path="~/.kube/config"),
    )
    AddOnLayer(
        stack,
        "connector",
        providers=providers,
        namespaces=[NamespaceSpec("cloudflared", labels={"pod-security.kubernetes.io/enforce": "restricted"})],
        add_ons=[
            HelmAddOn(
                name="cloudflared",
                namespace="cloudflared",
                repository="https://cloudflare.github.io/helm-charts",
                chart="cloudflare-tunnel-remote",
                version="0.1.2",
                values={"replicaCount": 2, "image": {"repository": "cloudflare/cloudflared", "tag": "2026.7.1"}},
                # The connector token is read by Terraform and passed as a sensitive Helm value.
                sensitive_values={"cloudflare.tunnel_token": tunnel.token},
            )
        ],
    )
    return app


if __name__ == "__main__":
    build(outdir_from(sys.argv)).synth()
