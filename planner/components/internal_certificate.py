"""The wildcard certificate of the LAN-only names (concern `internal-certificate`; the catalog's
`internal-wildcard-certificate`): the <namespace>/<secret> the internal ingress controller serves."""

from __future__ import annotations

from typing import Any

from planner.components import Provider

CONCERN = "internal-certificate"
DEFAULT_NAMESPACE = "network"
DEFAULT_SECRET = "internal-wildcard-tls"


def secret_name(provider: Provider | None) -> str:
    """spec.secretName of the Certificate among the provider's raw-chart resources."""
    resources: list[Any] = list(provider.values.get("resources") or []) if provider else []
    for resource in resources:
        if isinstance(resource, dict) and resource.get("kind") == "Certificate":
            name = (resource.get("spec") or {}).get("secretName")
            if isinstance(name, str):
                return name
    return DEFAULT_SECRET


def placeholders(provider: Provider | None) -> dict[str, str]:
    namespace = (provider.namespace if provider else None) or DEFAULT_NAMESPACE
    return {"internal_certificate_secret": f"{namespace}/{secret_name(provider)}"}
