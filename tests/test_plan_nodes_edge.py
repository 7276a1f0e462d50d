"""The nodes and edge plans (planner/nodes.py, planner/edge.py): every decision the nodes and edge stacks render,
checked on the plan alone, without jsii. The values come from the fixtures the tests read."""

from __future__ import annotations

from pathlib import Path

import yaml

from planner.edge import NO_MATCH, NO_ORIGIN, TOKEN_PERMISSIONS, ingress_origin, resolve_edge
from planner.load import load_plan

ROOT = Path(__file__).resolve().parent.parent
VALID = ROOT / "tests" / "fixtures" / "valid"
DESCRIPTION = ROOT / "tests" / "fixtures" / "description" / "helix.yaml"


def fixture(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def test_single_server_bootstraps_itself_and_is_the_api_endpoint():
    data = fixture(VALID / "single-server.yaml")
    (solo,) = data["cluster"]["nodes"]
    nodes = load_plan(VALID / "single-server.yaml").nodes
    assert nodes.provisioned and nodes.existing is None
    assert nodes.bootstrap_node == solo["name"]
    assert nodes.api_host == solo["address"]  # no VIP: the bootstrap server's address
    assert not nodes.embedded_etcd and nodes.server_config == {}  # no etcd, so no etcd metrics flag
    (taint,) = solo["taints"]
    assert nodes.nodes[0].k3s_taints == [f"{taint['key']}={taint['value']}:{taint['effect']}"]


def test_taint_without_value_and_etcd_snapshots_to_s3():
    data = fixture(VALID / "etcd-s3-snapshots.yaml")
    nodes = load_plan(VALID / "etcd-s3-snapshots.yaml").nodes
    first = data["cluster"]["nodes"][0]
    (taint,) = first["taints"]
    assert nodes.nodes[0].k3s_taints == [f"{taint['key']}:{taint['effect']}"]
    assert nodes.embedded_etcd and nodes.server_config == {"etcd-expose-metrics": True}
    s3 = data["cluster"]["etcd_snapshots"]["s3"]
    assert nodes.etcd_snapshots.s3 is not None
    assert (nodes.etcd_snapshots.s3.endpoint, nodes.etcd_snapshots.s3.bucket) == (s3["endpoint"], s3["bucket"])
    assert [n.name for n in nodes.nodes] == [n["name"] for n in data["cluster"]["nodes"]]
    assert {n.name: dict(n.labels) for n in nodes.nodes} == {n["name"]: n.get("labels", {}) for n in data["cluster"]["nodes"]}


def test_named_bootstrap_server_vip_and_departed_nodes():
    data = fixture(VALID / "departed-nodes.yaml")
    nodes = load_plan(VALID / "departed-nodes.yaml").nodes
    assert nodes.bootstrap_node == data["cluster"]["bootstrap_node"]
    assert nodes.api_host == data["cluster"]["api_host"]
    assert [(d.name, d.role, d.unreachable) for d in nodes.departed] == [
        (d["name"], d["role"], d.get("unreachable", False)) for d in data["cluster"]["departed_nodes"]
    ]


def test_existing_cluster_has_no_machines_to_provision():
    data = fixture(VALID / "cloudflare-tunnel-existing-cluster.yaml")
    plan = load_plan(VALID / "cloudflare-tunnel-existing-cluster.yaml")
    assert not plan.nodes.provisioned and plan.nodes.nodes == ()
    assert plan.nodes.existing is not None and plan.nodes.existing.context == data["cluster"]["existing"]["context"]
    # Explicit origins, no alert, unmanaged zone settings, adopted objects.
    edge = plan.edge
    cf = data["cloudflare"]
    assert [(r.hostname, r.service, r.backend) for r in edge.routes] == [(h["name"], h["origin"], None) for h in cf["hostnames"]]
    assert edge.alert_emails == () and edge.zone_settings is None
    assert edge.adopt_tunnel_id == cf["adopt"]["tunnel_id"] and dict(edge.adopt_records) == cf["adopt"]["records"]
    admin = edge.routes[1].access
    assert admin is not None and admin.session_duration == "8h"
    assert [(p.path, p.service_tokens) for p in admin.machine_paths] == [
        (p["path"], tuple(p.get("service_tokens", []))) for p in cf["hostnames"][1]["access"]["machine_paths"]
    ]


def test_edge_routes_go_to_the_external_ingress_and_name_their_backend():
    data = fixture(DESCRIPTION)
    plan = load_plan(DESCRIPTION)
    edge = plan.edge
    assert edge.enabled
    assert edge.origin == ingress_origin(plan.components["ingress-external"], plan.nodes.cluster_domain)
    assert edge.catch_all == edge.origin  # NGINX answers 404 for hosts it does not serve
    assert [r.hostname for r in edge.routes] == [h["name"] for h in data["cloudflare"]["hostnames"]]
    for route in edge.routes:
        # NGINX, or for a name served from the mesh the Istio ingress gateway (docs/mesh.md).
        assert route.service == edge.origin or (route.mesh_service and "istio-ingressgateway" in route.service)
        # The component whose Ingress serves the name is installed and names the host in its values.
        assert route.backend in plan.components and route.hostname in str(plan.components[route.backend].values)
        assert route.access is not None
    # alert_emails unset: the ACME contact is alerted.
    assert "alert_emails" not in data["cloudflare"] and edge.alert_emails == (data["acme_email"],)
    assert edge.zone_settings is not None and edge.zone_settings["min_tls_version"] == data["cloudflare"]["zone_settings"]["min_tls_version"]
    assert edge.token_permissions == TOKEN_PERMISSIONS
    assert all(p in edge.token_description for p in TOKEN_PERMISSIONS[edge.token_variable])


def test_without_the_external_ingress_the_tunnel_answers_503_and_404():
    plan = load_plan(DESCRIPTION)
    others = {cid: c for cid, c in plan.components.items() if cid != "ingress-external"}
    edge = resolve_edge(plan.config, others)
    assert (edge.origin, edge.catch_all) == (NO_ORIGIN, NO_MATCH)
    assert all(r.service == NO_ORIGIN and r.backend is None for r in edge.routes)


def test_cloudflare_disabled_edge_is_empty():
    edge = load_plan(VALID / "cloudflare-disabled.yaml").edge
    assert not edge.enabled and edge.routes == () and edge.origin == NO_ORIGIN


def test_release_needs_leave_out_components_without_a_release(tmp_path):
    """A release waits by name only for needs that have a release (an external object store has none)."""
    data = fixture(DESCRIPTION)
    data["object_storage"] = {"mode": "external", "external": {"endpoint": "s3.example.com"}}
    path = tmp_path / "helix.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    plan = load_plan(path)
    for c in plan.components.values():
        assert set(c.release_needs) == {d for d in c.needs if plan.components[d].has_release}
    assert any(set(c.release_needs) < set(c.needs) for c in plan.components.values())
