"""Wiring that exists only while its target is installed: a component's `values_when_enabled` fragments.

A component that talks to an optional neighbour (Alloy writing profiles to Pyroscope, Grafana's datasource for
it, Prometheus remote-writing to Mimir) keeps that wiring in a fragment keyed by the neighbour's id. The fragment
is added to the component's values only while the neighbour is enabled, so turning the neighbour off removes
every reference to it instead of leaving a client pointing at a Service that no longer exists.

Adding, not replacing: mappings merge key by key, a list gets the fragment's items appended (a datasource, a
remote-write target), a string gets the fragment's text appended (Alloy's configuration is one string); any
other value replaces the base's. Fragments apply in the order of their keys, before the cluster file's own
overrides and placeholders, so both apply to the wiring too. `values_when_disabled` fragments are their
counterpart: added only while the neighbour is off (the fallback of a pipeline whose destination is optional).
"""

from __future__ import annotations

import copy
from collections.abc import Collection
from typing import Any


def extend(base: Any, fragment: Any) -> Any:
    """`base` with `fragment` added (see the module's docstring)."""
    if isinstance(base, dict) and isinstance(fragment, dict):
        out = copy.deepcopy(base)
        for key, value in fragment.items():
            out[key] = extend(out[key], value) if key in out else copy.deepcopy(value)
        return out
    if isinstance(base, list) and isinstance(fragment, list):
        return copy.deepcopy(base) + copy.deepcopy(fragment)
    if isinstance(base, str) and isinstance(fragment, str):
        return base.rstrip("\n") + "\n\n" + fragment if base.strip() else fragment
    return copy.deepcopy(fragment)


def wired_values(
    values: dict[str, Any],
    when_enabled: dict[str, dict[str, Any]],
    enabled: Collection[str],
    when_disabled: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """`values` plus the fragment of every enabled component named in `when_enabled`, then the fragment of every
    component named in `when_disabled` that is not enabled (a fallback for when the usual destination is off)."""
    out = values
    for target in sorted(when_enabled):
        if target in enabled:
            out = extend(out, when_enabled[target])
    for target in sorted(when_disabled or {}):
        if target not in enabled:
            out = extend(out, (when_disabled or {})[target])
    return out


def unknown_targets(when_enabled: dict[str, Any], catalog: Collection[str]) -> list[str]:
    """The keys of `when_enabled` that are no component of the catalog (a typo would silently never apply)."""
    return sorted(t for t in when_enabled if t not in catalog)
