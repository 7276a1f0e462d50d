"""Where Prometheus runs (concern `metrics-scraper`; the catalog's `kube-prometheus-stack`), for the network
policies that admit its scrapes."""

from __future__ import annotations

from planner.components import Provider

CONCERN = "metrics-scraper"
DEFAULT_NAMESPACE = "monitoring"


def placeholders(provider: Provider | None) -> dict[str, str]:
    return {"prometheus_namespace": (provider.namespace if provider else None) or DEFAULT_NAMESPACE}
