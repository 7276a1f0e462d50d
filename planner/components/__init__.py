"""Component-specific knowledge, one module per concern, found from the catalog.

A catalog entry says which concerns it provides (`provides: [object-store]`); the generic planner asks for the
provider of a concern and calls that concern's module, and never names a component id. A component with code of
its own thus touches two places: its catalog entry and its concern's module here (docs/architecture.md).

    object-store          object_store.py          the in-cluster S3 store: its endpoint and its generated keys
    tunnel-origin         tunnel_origin.py         the ingress controller behind the Cloudflare tunnel
    metrics-scraper       metrics_scraper.py       where Prometheus runs (network policies admit its scrapes)
    internal-certificate  internal_certificate.py  the wildcard certificate of the LAN-only names
    alerting              alerting.py              Alertmanager: its route and receivers from the cluster file's alerting
    incident-manager      incident_manager.py      Grafana OnCall: its mail, the people its escalation chain notifies
    service-mesh          service_mesh.py          Istio: mTLS mode (refused STRICT while public traffic is outside), egress
    mesh-ingress          mesh_ingress.py          the Istio ingress gateway: the tunnel's origin for hostnames in the mesh
    node-autoscaler       node_autoscaler.py       the cluster-autoscaler of the cloud node pools

Generators (objects computed from the config, `generator:` in the catalog) have their own registry,
planner/generators.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from planner.catalog import ComponentSpec
    from planner.schema import HelixConfig

# Every concern a catalog entry may provide (checked when the catalog loads).
CONCERNS = ("object-store", "tunnel-origin", "metrics-scraper", "internal-certificate", "alerting", "incident-manager",
            "service-mesh", "mesh-ingress", "node-autoscaler")


@dataclass(frozen=True)
class Provider:
    """The catalog entry that provides a concern, and where the cluster file places it (None: nowhere)."""

    component: str
    spec: ComponentSpec
    namespace: str | None

    @property
    def release_name(self) -> str:
        return self.spec.release_name or self.component

    @property
    def values(self) -> Mapping[str, Any]:
        return self.spec.values


def find_providers(cfg: HelixConfig, catalog: Mapping[str, tuple[ComponentSpec, str]]) -> dict[str, Provider]:
    """Concern -> its provider: the first placed catalog entry that provides it, else the first such entry (so
    that a problem can name the component to place)."""
    placed = {cid: ns for ns, spec in cfg.namespaces.items() for cid in spec.components}
    out: dict[str, Provider] = {}
    for concern in CONCERNS:
        offering = [cid for cid, (spec, _) in catalog.items() if concern in spec.provides]
        chosen = next((cid for cid in offering if cid in placed), offering[0] if offering else None)
        if chosen is not None:
            out[concern] = Provider(chosen, catalog[chosen][0], placed.get(chosen))
    return out
