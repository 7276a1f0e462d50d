"""HorizontalPodAutoscalers for the stateless front doors (docs/autoscaling.md, "Pods").

A catalog entry with `pod_autoscaling` says how its chart scales: `chart` names the chart's own autoscaling value
paths (read at the pinned version), `raw` (a component of the raw chart) gets an autoscaling/v2
HorizontalPodAutoscaler added to its `resources` for the Deployment it names. The cluster file's
`components.<id>.autoscaling` overrides the bounds and the CPU target, or turns the HPA off (a fixed replica
count, the floor). On by default wherever the catalog has the entry. The component's PodDisruptionBudget
(minAvailable 1) is its catalog's, and the floor of 2 replicas is what lets a drain take one pod at a time.

The settings are applied before the cluster file's own `values`, so an explicit value there still wins.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from planner.catalog import ComponentSpec, PodAutoscalingSpec
from planner.schema import ComponentOverride


@dataclass(frozen=True)
class Scaling:
    """What one component runs with: an HPA between min and max at cpu_percent, or min fixed replicas."""

    enabled: bool
    min: int
    max: int
    cpu_percent: int


def settings(spec: PodAutoscalingSpec, override: ComponentOverride | None) -> Scaling:
    """The catalog's defaults with the cluster file's `autoscaling` over them."""
    own = override.autoscaling if override else None
    if own is None:
        return Scaling(True, spec.min, spec.max, spec.cpu_percent)
    low = own.min if own.min is not None else spec.min
    high = own.max if own.max is not None else max(spec.max, low)
    return Scaling(own.enabled, low, high, own.cpu_percent if own.cpu_percent is not None else spec.cpu_percent)


def problems(cid: str, spec: ComponentSpec, override: ComponentOverride | None, scalable: list[str]) -> list[tuple[str, str]]:
    """(field path, message) for a cluster file's `autoscaling` that cannot apply to this component."""
    if override is None or override.autoscaling is None:
        return []
    path = f"components.{cid}.autoscaling"
    if spec.pod_autoscaling is None:
        return [(path, f"{cid} has no pod autoscaling in the catalog (it has: {', '.join(scalable)})")]
    got = settings(spec.pod_autoscaling, override)
    out = []
    if got.min > got.max:
        out.append((path, f"min ({got.min}) is above max ({got.max})"))
    if got.max > spec.pod_autoscaling.ceiling:
        out.append((f"{path}.max", f"{cid} runs at most {spec.pod_autoscaling.ceiling} replicas"))
    return out


def _set(values: dict[str, Any], dotted: str, value: Any) -> None:
    node = values
    *parents, last = dotted.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value


def hpa(name: str, scaling: Scaling) -> dict[str, Any]:
    """An autoscaling/v2 HorizontalPodAutoscaler on the CPU of Deployment `name`."""
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": scaling.min,
            "maxReplicas": scaling.max,
            "metrics": [{"type": "Resource", "resource": {
                "name": "cpu", "target": {"type": "Utilization", "averageUtilization": scaling.cpu_percent}}}],
        },
    }


def apply(values: dict[str, Any], spec: PodAutoscalingSpec, scaling: Scaling) -> dict[str, Any]:
    """`values` with the component's autoscaling (or its fixed replicas) set."""
    out = copy.deepcopy(values)
    if spec.style == "chart":
        assert spec.enabled_path and spec.min_path and spec.max_path and spec.cpu_path and spec.replicas_path
        _set(out, spec.enabled_path, scaling.enabled)
        if scaling.enabled:
            _set(out, spec.min_path, scaling.min)
            _set(out, spec.max_path, scaling.max)
            _set(out, spec.cpu_path, scaling.cpu_percent)
            for path, value in spec.set_when_on.items():
                _set(out, path, copy.deepcopy(value))
        else:
            _set(out, spec.replicas_path, scaling.min)
        return out
    resources = out.get("resources", [])
    deployment = next((r for r in resources if r.get("kind") == "Deployment"
                       and r.get("metadata", {}).get("name") == spec.deployment), None)
    if deployment is None:
        raise ValueError(f"pod_autoscaling.deployment {spec.deployment!r} is no Deployment in `resources`")
    if scaling.enabled:
        # The HPA owns the count: a replicas field in the release would reset it on every upgrade.
        deployment.setdefault("spec", {}).pop("replicas", None)
        resources.append(hpa(str(spec.deployment), scaling))
    else:
        deployment.setdefault("spec", {})["replicas"] = scaling.min
    return out
