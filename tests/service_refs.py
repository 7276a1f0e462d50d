"""Which component a rendered Service DNS name points at, for any plan.

A release's values (and the objects of its manifest releases) name other components' Services as
`<service>.<namespace>.svc[...]` or `<service>.<namespace>:<port>`. A Service belongs to the component placed in
that namespace whose release name is the longest prefix of the Service name (`loki-gateway` is loki's,
`flagsmith-db-rw` flagsmith's: its CloudNativePG cluster is one of flagsmith's extras). Names no component of the
catalog owns (the API server's `kubernetes.default`, k3s's `kube-dns`, what an operator names by its own rule)
are listed in NOT_A_COMPONENT with the reason.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

# Service names that no component's release name prefixes, in the namespace they live in.
NOT_A_COMPONENT = {
    ("kubernetes", "default"): "the API server",
    ("kube-dns", "kube-system"): "CoreDNS's Service keeps k3s's name",
    ("alertmanager-operated", "monitoring"): "created by the Prometheus operator for an Alertmanager",
    ("prometheus-operated", "monitoring"): "created by the Prometheus operator for a Prometheus",
}


def service_references(text: str, namespaces: set[str]) -> Iterator[tuple[str, str]]:
    """(service, namespace) for every Service DNS name in `text` whose namespace is one of `namespaces`."""
    for match in re.finditer(r"(?<![\w.-])([a-z0-9]([a-z0-9-]*[a-z0-9])?)\.([a-z0-9-]+)(\.svc\b|:\d)", text):
        if match.group(3) in namespaces:
            yield match.group(1), match.group(3)


def owner(service: str, namespace: str, releases: dict[str, tuple[str, str]]) -> str | None:
    """The component (of `releases`: id -> (release name, namespace)) whose release owns the Service."""
    best = None
    for cid, (release, ns) in releases.items():
        if ns == namespace and (service == release or service.startswith(release + "-")):
            if best is None or len(release) > len(releases[best][0]):
                best = cid
    return best


def rendered_texts(plan) -> Iterator[tuple[str, str, str]]:
    """(component, where, text) for each enabled component's values and each manifest release's objects."""
    for cid, comp in plan.components.items():
        yield cid, "values", json.dumps(comp.values)
    for m in plan.manifests:
        yield m.component, f"manifests {m.release}", json.dumps(m.resources)


def releases_of(plan) -> dict[str, tuple[str, str]]:
    return {cid: (c.release_name, c.namespace) for cid, c in plan.components.items()}


def references(plan, owners_plan: Any | None = None) -> list[tuple[str, str, str, str, str | None]]:
    """(component, where, service, namespace, owning component) of every Service name `plan` renders; owners are
    looked up among the components of `owners_plan` (a plan with everything enabled) or of `plan` itself."""
    releases = releases_of(owners_plan or plan)
    namespaces = {ns for _, ns in releases.values()} | {ns for _, ns in NOT_A_COMPONENT}
    out = []
    for cid, where, text in rendered_texts(plan):
        for service, ns in sorted(set(service_references(text, namespaces))):
            out.append((cid, where, service, ns, owner(service, ns, releases)))
    return out


def unresolved(plan) -> list[str]:
    """Service names `plan` renders that no enabled component of the same plan (nor NOT_A_COMPONENT) provides."""
    return [f"{cid} ({where}) names {svc}.{ns}, which no enabled component provides"
            for cid, where, svc, ns, own in references(plan) if own is None and (svc, ns) not in NOT_A_COMPONENT]


def pointing_at(plan, disabled: str, owners_plan) -> list[str]:
    """What `plan` still renders that points at the component `disabled`: Service names (owned by it in
    `owners_plan`) and needs."""
    found = [f"{cid} ({where}) names {svc}.{ns}" for cid, where, svc, ns, own in references(plan, owners_plan)
             if own == disabled]
    found += [f"{cid} needs it" for cid, comp in plan.components.items() if disabled in comp.needs]
    return found
