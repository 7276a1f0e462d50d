"""Turning a component off removes every reference to it, or is refused naming what depends on it.

Wiring to an optional neighbour lives in the catalog's `values_when_enabled` fragments (planner/wiring.py). Each
component of the description's config is turned off alone; the resulting plan either is refused with the
dependents named (as for loki) or renders nothing that points at the component: no Service name of it in any
values (datasources, scrape and remote-write targets, Alloy's pipelines) or manifest, and no `needs` on it.
"""

from __future__ import annotations

import copy

import pytest
import yaml

from planner.files import ConfigError
from planner.load import load_plan
from planner.wiring import extend, wired_values
from tests.conftest import DESCRIPTION_CONFIG
from tests.service_refs import pointing_at, unresolved

DESCRIPTION = yaml.safe_load(DESCRIPTION_CONFIG.read_text())
PLACED = sorted(c for ns in DESCRIPTION["namespaces"].values() for c in (ns or {}).get("components", []))


def _without(tmp_path, cid: str):
    data = copy.deepcopy(DESCRIPTION)
    data["components"] = dict(data.get("components") or {})
    data["components"][cid] = {**(data["components"].get(cid) or {}), "enabled": False}
    path = tmp_path / "helix.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_plan(path)


def test_the_description_renders_no_reference_to_a_missing_component(description_plan):
    assert unresolved(description_plan) == []


@pytest.mark.parametrize("cid", PLACED)
def test_turning_a_component_off_leaves_no_reference_to_it(cid, tmp_path, description_plan):
    try:
        plan = _without(tmp_path, cid)
    except ConfigError as err:
        # Refused: every problem names the component and why (a dependent that needs it, a hostname it served).
        assert err.problems and all(cid in p.message or cid in p.path for p in err.problems), [str(p) for p in err.problems]
        return
    assert cid not in plan.components
    assert pointing_at(plan, cid, description_plan) == []
    assert unresolved(plan) == []


@pytest.mark.parametrize("cid, gone", [
    ("pyroscope", ["pyroscope.monitoring.svc:4040", "pyroscope.ebpf", "grafana-pyroscope-datasource"]),
    ("mimir", ["mimir-distributor", "mimir-query-frontend"]),
    ("kube-prometheus-stack", ["kube-prometheus-stack-alertmanager", "kube-prometheus-stack-prometheus"]),
])
def test_known_wiring_goes_with_its_target(cid, gone, tmp_path):
    """The cases the issue found: with pyroscope off, Alloy wrote to it and Grafana kept its datasource."""
    import json

    plan = _without(tmp_path, cid)
    rendered = json.dumps({c: comp.values for c, comp in plan.components.items()})
    for text in gone:
        assert text not in rendered, text
    if cid == "pyroscope":
        alloy = plan.components["alloy"].values
        assert "hostPID" not in alloy.get("controller", {}), "host access for eBPF profiling goes with pyroscope"
        assert 'loki.source.journal "node"' in alloy["alloy"]["configMap"]["content"]


def test_the_description_keeps_every_wiring(description_plan):
    values = {c: comp.values for c, comp in description_plan.components.items()}
    uids = {d["uid"] for d in values["grafana"]["datasources"]["datasources.yaml"]["datasources"]}
    assert {"prometheus", "mimir", "loki", "tempo", "pyroscope", "alertmanager"} <= uids
    assert 'pyroscope.write "default"' in values["alloy"]["alloy"]["configMap"]["content"]
    assert values["kube-prometheus-stack"]["prometheus"]["prometheusSpec"]["remoteWrite"]
    assert values["tempo"]["tempo"]["metricsGenerator"]["enabled"] is True


def test_extend_adds_without_replacing():
    base = {"a": {"list": [1], "text": "one\n", "flag": False}, "keep": 1}
    out = extend(base, {"a": {"list": [2], "text": "two\n", "flag": True, "new": {"x": 1}}})
    assert out == {"a": {"list": [1, 2], "text": "one\n\ntwo\n", "flag": True, "new": {"x": 1}}, "keep": 1}
    assert base == {"a": {"list": [1], "text": "one\n", "flag": False}, "keep": 1}, "the base is not changed"
    assert wired_values(base, {"other": {"keep": 2}}, enabled=["x"]) == base
    assert wired_values(base, {"other": {"keep": 2}}, enabled=["other"])["keep"] == 2


def test_a_fragment_for_an_unknown_component_is_refused(tmp_path):
    from tests.helpers import break_data, copy_data

    data = copy_data(tmp_path)
    break_data(data, {"edit": "catalog/flux-system.yaml", "replace": ["    kube-prometheus-stack:\n      metricsServer",
                                                                        "    kube-prometheus-stak:\n      metricsServer"]})
    with pytest.raises(ConfigError) as err:
        load_plan(DESCRIPTION_CONFIG, data)
    assert any(p.path == "flagger.values_when_enabled.kube-prometheus-stak" for p in err.value.problems), err.value.problems


def test_a_fallback_applies_only_while_its_target_is_off():
    """values_when_disabled: Alloy's OTLP metrics sink without Mimir, replaced by the real one with it."""
    base = {"content": "a"}
    assert wired_values(base, {}, {"mimir"}, {"mimir": {"content": "fallback"}}) == base
    assert wired_values(base, {}, set(), {"mimir": {"content": "fallback"}}) == {"content": "a\n\nfallback"}


def test_an_unknown_fallback_target_is_refused(tmp_path):
    from tests.helpers import break_data, copy_data

    data = copy_data(tmp_path)
    break_data(data, {"edit": "catalog/monitoring.yaml", "replace": ["  values_when_disabled:\n    mimir:", "  values_when_disabled:\n    mimr:"]})
    with pytest.raises(ConfigError) as err:
        load_plan(DESCRIPTION_CONFIG, data)
    assert any(p.path == "alloy.values_when_disabled.mimr" for p in err.value.problems), err.value.problems
