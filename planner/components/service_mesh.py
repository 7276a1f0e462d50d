"""The Istio mesh's policies (concern `service-mesh`: the catalog's istiod), from the cluster file's `mesh`.

mTLS STRICT is refused for a public hostname that does not enter the mesh: the tunnel's origin (concern
`tunnel-origin`, NGINX) runs outside it and sends plain text, which a STRICT sidecar refuses. A hostname served
from the mesh goes to the Istio ingress gateway instead (concern `mesh-ingress`), whose Envoy speaks mTLS to the
sidecars, and does not count (docs/mesh.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from planner.files import Problem
from planner.schema import HelixConfig

if TYPE_CHECKING:
    from planner.model import Component, EdgePlan

CONCERN = "service-mesh"
INJECTION_LABEL = "istio-injection"


def injected(cfg: HelixConfig) -> list[str]:
    """The namespaces whose pods get a sidecar, in the cluster file's order."""
    return [name for name, ns in cfg.namespaces.items() if ns.labels.get(INJECTION_LABEL) == "enabled"]


def placeholders(cfg: HelixConfig) -> dict[str, str]:
    return {"mesh_outbound_policy": "REGISTRY_ONLY" if cfg.mesh.egress == "registry-only" else "ALLOW_ANY"}


def strict_problems(
    cfg: HelixConfig, cfg_file: str, edge: EdgePlan, components: Mapping[str, Component], origin_namespace: str | None
) -> list[Problem]:
    """STRICT mTLS would cut every public hostname served from an injected namespace through an origin outside
    the mesh; and a PERMISSIVE exception must name an injected namespace."""
    if cfg.mesh.mtls != "strict":
        return []
    meshed = set(injected(cfg))
    out = [
        Problem(cfg_file, f"mesh.permissive[{i}].namespace", f"{w.namespace!r} is not a namespace with istio-injection: enabled")
        for i, w in enumerate(cfg.mesh.permissive)
        if w.namespace not in meshed
    ]
    if origin_namespace in meshed:
        return out
    for route in edge.routes:
        if route.mesh_service is not None:
            continue  # through the ingress gateway, a proxy of the mesh
        backend = components.get(route.backend) if route.backend else None
        if backend is not None and backend.namespace in meshed:
            out.append(
                Problem(
                    cfg_file,
                    "mesh.mtls",
                    f"strict would refuse the plain-text requests for {route.hostname}: the tunnel's origin runs in "
                    f"{origin_namespace!r}, outside the mesh, and {backend.id} in {backend.namespace!r} has a "
                    "sidecar; give its catalog entry a mesh_service (served through the Istio ingress gateway) or keep "
                    "permissive (docs/mesh.md)",
                )
            )
    return out
