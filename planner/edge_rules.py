"""Rules of the Cloudflare edge that need the resolved platform plan (plain Python: checked before jsii loads).

Every tunnel hostname needs a backend: an explicit `origin`, or an Ingress of the external controller's class
declared in the values of an installed component (the chart renders it from those values).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from planner.components import tunnel_origin
from planner.files import Problem
from planner.model import Component, PlatformPlan
from planner.schema import HelixConfig


def external_ingress_class(plan: PlatformPlan) -> str | None:
    """The Ingress class of the installed external controller, or None when it is not installed."""
    return ingress_class_of(plan.components)


def ingress_class_of(components: Mapping[str, Component]) -> str | None:
    """The Ingress class of the installed tunnel origin among `components`, or None."""
    component = tunnel_origin.provider_of(components)
    return tunnel_origin.ingress_class(component) if component is not None else None


def _hosts_of(spec: dict[str, Any], root: dict[str, Any]) -> list[str]:
    hosts = []
    for item in spec.get("hosts") or []:
        host = item if isinstance(item, str) else (item or {}).get("host")
        if isinstance(host, str):
            hosts.append(host)
    if not hosts and isinstance(root.get("base_url"), str):
        # Charts such as OnCall take the Ingress host from a top-level base_url.
        hosts.append(root["base_url"])
    return hosts


def ingress_hosts(plan: PlatformPlan, ingress_class: str) -> dict[str, str]:
    """Host -> the installed component whose values declare an enabled Ingress of `ingress_class` for it."""
    return hosts_served(plan.components, ingress_class)


def hosts_served(components: Mapping[str, Component], ingress_class: str) -> dict[str, str]:
    """Host -> the component among `components` whose values declare an enabled Ingress of `ingress_class`."""
    found: dict[str, str] = {}

    def walk(value: Any, root: dict[str, Any], cid: str) -> None:
        if isinstance(value, dict):
            if ingress_class in (value.get("ingressClassName"), value.get("className")) and value.get("enabled", True):
                for host in _hosts_of(value, root):
                    found.setdefault(host, cid)
            for child in value.values():
                walk(child, root, cid)
        elif isinstance(value, list):
            for child in value:
                walk(child, root, cid)

    for cid, component in sorted(components.items()):
        walk(component.values, component.values, cid)
    return found


def backend_problems(cfg: HelixConfig, plan: PlatformPlan, cfg_file: str) -> list[Problem]:
    """A tunnel hostname without an explicit origin needs an Ingress of the external class."""
    cf = cfg.cloudflare
    if not cf.enabled:
        return []
    ingress_class = external_ingress_class(plan)
    served = ingress_hosts(plan, ingress_class) if ingress_class else {}
    out = []
    for i, entry in enumerate(cf.hostnames):
        if entry.origin is not None or entry.name in served:
            continue
        if ingress_class is None:
            why = f"no installed component provides the {tunnel_origin.CONCERN} (catalog `provides`)"
        else:
            why = f"no installed component declares an Ingress of class {ingress_class!r} for it"
        out.append(
            Problem(
                cfg_file,
                f"cloudflare.hostnames[{i}]",
                f"{entry.name!r} has no backend: {why}; add one, set an explicit origin, or remove the hostname",
            )
        )
    return out
