"""HorizontalPodAutoscalers for the stateless front doors (docs/autoscaling.md, "Pods"; planner/pod_autoscaling.py).

The value paths asserted here are the charts' own, read at the pinned versions: nginx-ingress 2.7.x
`controller.autoscaling.{enabled,minReplicas,maxReplicas,targetCPUUtilizationPercentage,
targetMemoryUtilizationPercentage}` (templates/controller-hpa.yaml), Istio's gateway chart 1.30
`autoscaling.{enabled,minReplicas,maxReplicas,targetCPUUtilizationPercentage}` (templates/hpa.yaml; its PDB
renders only with minReplicas > 1). A wrong key name would render no HPA at all, so these tests pin each path.
Refusals of a bad `autoscaling` are tests/fixtures/invalid/pod-autoscaling-*.yaml.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from planner.files import ConfigError
from planner.load import load_plan
from tests.conftest import DESCRIPTION_CONFIG
from tests.helpers import by_name, values

NGINX = ("ingress-external", "ingress-internal")
FRONT_DOORS = (*NGINX, "istio-ingressgateway", "cloudflared")


def _edited(tmp_path: Path, components: dict) -> Path:
    doc = yaml.safe_load(DESCRIPTION_CONFIG.read_text())
    doc["components"] = {**(doc.get("components") or {}), **components}
    path = tmp_path / "helix.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _kinds(resources: list[dict], kind: str) -> list[dict]:
    return [r for r in resources if r.get("kind") == kind]


def _cloudflared(values_: dict) -> tuple[dict, list[dict], dict]:
    """(Deployment, HPAs, PDB) of cloudflared's raw-chart resources."""
    res = values_["resources"]
    (deployment,) = [r for r in _kinds(res, "Deployment") if r["metadata"]["name"] == "cloudflared"]
    (pdb,) = _kinds(res, "PodDisruptionBudget")
    return deployment, _kinds(res, "HorizontalPodAutoscaler"), pdb


@pytest.fixture(scope="module")
def default_plan():
    return load_plan(DESCRIPTION_CONFIG)


def test_every_front_door_is_in_the_fixture(default_plan):
    assert set(FRONT_DOORS) <= set(default_plan.components), "the fixture must place the front doors"


@pytest.mark.parametrize("cid", NGINX)
def test_nginx_autoscales_on_cpu_with_its_budget(default_plan, cid):
    controller = default_plan.components[cid].values["controller"]
    auto = controller["autoscaling"]
    assert auto["enabled"] is True
    assert 2 <= auto["minReplicas"] <= auto["maxReplicas"]
    assert 10 <= auto["targetCPUUtilizationPercentage"] <= 100
    # The chart's memory target defaults to 50; 0 renders no memory metric (`if` on the value).
    assert auto["targetMemoryUtilizationPercentage"] == 0
    assert controller["podDisruptionBudget"] == {"enabled": True, "minAvailable": 1}


def test_istio_gateway_autoscales_and_its_budget_renders(default_plan):
    v = default_plan.components["istio-ingressgateway"].values
    assert v["autoscaling"]["enabled"] is True
    # The chart renders its PodDisruptionBudget only with minReplicas > 1.
    assert 2 <= v["autoscaling"]["minReplicas"] <= v["autoscaling"]["maxReplicas"]
    assert 10 <= v["autoscaling"]["targetCPUUtilizationPercentage"] <= 100
    assert v["podDisruptionBudget"] == {"minAvailable": 1}


def test_cloudflared_hpa_targets_its_deployment(default_plan):
    deployment, hpas, pdb = _cloudflared(default_plan.components["cloudflared"].values)
    (hpa,) = hpas
    spec = hpa["spec"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment["metadata"]["name"]}
    assert 2 <= spec["minReplicas"] <= spec["maxReplicas"] <= 25
    (metric,) = spec["metrics"]
    assert metric["resource"]["name"] == "cpu" and metric["resource"]["target"]["type"] == "Utilization"
    # The HPA owns the count; a CPU target needs a CPU request to divide by.
    assert "replicas" not in deployment["spec"]
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert all(c["resources"]["requests"]["cpu"] for c in containers)
    # The budget keeps one pod and selects the Deployment's pods.
    assert pdb["spec"]["minAvailable"] == 1
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


def test_synthesized_releases_carry_the_chart_keys(description_synth):
    """The values as the helm_release passes them (what the chart actually reads)."""
    for cid in NGINX:
        _, _, res = by_name(description_synth, cid)
        assert values(res)["controller"]["autoscaling"]["enabled"] is True, cid
    _, _, res = by_name(description_synth, "istio-ingressgateway")
    assert values(res)["autoscaling"]["enabled"] is True
    _, _, res = by_name(description_synth, "cloudflared")
    assert [r["spec"]["scaleTargetRef"]["name"] for r in _kinds(values(res)["resources"], "HorizontalPodAutoscaler")] == ["cloudflared"]


def test_bounds_and_target_from_the_cluster_file(tmp_path):
    plan = load_plan(_edited(tmp_path, {
        "ingress-external": {"autoscaling": {"min": 3, "max": 9, "cpu_percent": 60}},
        "istio-ingressgateway": {"autoscaling": {"max": 7}},
        "cloudflared": {"autoscaling": {"min": 3, "max": 6, "cpu_percent": 50}},
    }))
    auto = plan.components["ingress-external"].values["controller"]["autoscaling"]
    assert (auto["minReplicas"], auto["maxReplicas"], auto["targetCPUUtilizationPercentage"]) == (3, 9, 60)
    istio = plan.components["istio-ingressgateway"].values["autoscaling"]
    assert istio["maxReplicas"] == 7 and istio["minReplicas"] == 2
    _, (hpa,), _ = _cloudflared(plan.components["cloudflared"].values)
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 6)
    assert hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 50
    # Untouched components keep the catalog's defaults.
    assert plan.components["ingress-internal"].values["controller"]["autoscaling"]["maxReplicas"] == 6


def test_a_min_above_the_default_max_raises_max(tmp_path):
    plan = load_plan(_edited(tmp_path, {"ingress-external": {"autoscaling": {"min": 8}}}))
    auto = plan.components["ingress-external"].values["controller"]["autoscaling"]
    assert auto["minReplicas"] == auto["maxReplicas"] == 8


def test_disabled_per_component_means_fixed_replicas(tmp_path):
    plan = load_plan(_edited(tmp_path, {
        "ingress-external": {"autoscaling": {"enabled": False}},
        "istio-ingressgateway": {"autoscaling": {"enabled": False, "min": 3}},
        "cloudflared": {"autoscaling": {"enabled": False}},
    }))
    controller = plan.components["ingress-external"].values["controller"]
    assert controller["autoscaling"] == {"enabled": False} and controller["replicaCount"] == 2
    assert controller["podDisruptionBudget"]["minAvailable"] == 1
    istio = plan.components["istio-ingressgateway"].values
    # Off, the chart's PDB needs replicaCount > 1.
    assert istio["autoscaling"] == {"enabled": False} and istio["replicaCount"] == 3
    deployment, hpas, pdb = _cloudflared(plan.components["cloudflared"].values)
    assert hpas == [] and deployment["spec"]["replicas"] == 2 and pdb["spec"]["minAvailable"] == 1
    # The other front doors still autoscale.
    assert plan.components["ingress-internal"].values["controller"]["autoscaling"]["enabled"] is True


def test_a_component_off_takes_its_hpa_with_it(tmp_path):
    plan = load_plan(_edited(tmp_path, {"cloudflared": {"enabled": False}, "ingress-internal": {"enabled": False}}))
    assert "cloudflared" not in plan.components and "ingress-internal" not in plan.components
    def hpas(node):
        if isinstance(node, dict):
            if node.get("kind") == "HorizontalPodAutoscaler":
                yield node
            for child in node.values():
                yield from hpas(child)
        elif isinstance(node, list):
            for child in node:
                yield from hpas(child)

    everywhere = [*(comp.values for comp in plan.components.values()), *(m.resources for m in plan.manifests)]
    assert [h["metadata"]["name"] for h in hpas(everywhere)] == []


def test_explicit_values_still_win(tmp_path):
    plan = load_plan(_edited(tmp_path, {
        "ingress-external": {"autoscaling": {"max": 4}, "values": {"controller": {"autoscaling": {"maxReplicas": 5}}}},
    }))
    assert plan.components["ingress-external"].values["controller"]["autoscaling"]["maxReplicas"] == 5


def test_grafana_does_not_autoscale(default_plan):
    """One PVC (ReadWriteOnce on a node-local class) holding Grafana's SQLite database: a second replica
    could neither mount it on another node nor share the database."""
    v = default_plan.components["grafana"].values
    assert v["persistence"]["accessModes"] == ["ReadWriteOnce"]
    assert not v.get("autoscaling", {}).get("enabled") and v["replicas"] == 1


@pytest.mark.parametrize("override,fragment", [
    ({"grafana": {"autoscaling": {"max": 3}}}, "components.grafana.autoscaling: grafana has no pod autoscaling"),
    ({"ingress-external": {"autoscaling": {"min": 6, "max": 4}}}, "min (6) is above max (4)"),
    ({"ingress-external": {"autoscaling": {"min": 1}}}, "components.ingress-external.autoscaling.min"),
    ({"cloudflared": {"autoscaling": {"max": 26}}}, "components.cloudflared.autoscaling.max: cloudflared runs at most 25"),
    ({"ingress-external": {"autoscaling": {"cpu": 50}}}, "components.ingress-external.autoscaling.cpu"),
])
def test_refusals(tmp_path, override, fragment):
    with pytest.raises(ConfigError) as err:
        load_plan(_edited(tmp_path, override))
    assert fragment in "\n".join(str(p) for p in err.value.problems)
