"""Platform add-ons: every component of the cluster description, pinned, in its namespace, in dependency order.

The expected components are written from the cluster description (the seed), not read from the catalog, so a
component dropped from the catalog or the cluster file fails here.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml

from planner.catalog import PLACEHOLDER
from planner.files import parse_model
from planner.schema import EXACT_VERSION, HelixConfig, cross_field_problems
from tests.conftest import DESCRIPTION_CONFIG
from tests.helpers import by_name as _by_name
from tests.helpers import ordered_after as _ordered_after
from tests.helpers import releases as _releases
from tests.helpers import stack_deps as _stack_deps
from tests.helpers import values as _values

ROOT = Path(__file__).resolve().parent.parent

# (namespace, Helm release name) -> acceptable charts, from the seed's namespace sections.
SEED = {
    ("cert-manager", "cert-manager"): {"cert-manager"},
    ("data-plane", "openebs"): {"openebs"},
    ("data-plane", "redis-operator"): {"redis-operator"},
    ("data-plane", "mysql-operator"): {"mysql-operator"},
    ("flux-system", "flux2"): {"flux2", "flux-operator"},
    ("flux-system", "flagger"): {"flagger"},
    # Pilot, Citadel, Galley and the sidecar injector are istiod; Mixer's telemetry is the Telemetry API.
    ("istio-system", "istio-base"): {"base"},
    ("istio-system", "istiod"): {"istiod"},
    ("istio-system", "istio-ingressgateway"): {"gateway"},
    ("istio-system", "istio-egressgateway"): {"gateway"},
    ("istio-system", "istio-telemetry"): {"raw"},
    ("kube-system", "cilium"): {"cilium"},
    # The cluster DNS under the name and namespace every chart assumes (Service kube-system/kube-dns).
    ("kube-system", "coredns"): {"coredns"},
    ("kube-system", "metrics-server"): {"metrics-server"},
    ("kube-system", "reloader"): {"reloader"},
    ("kube-system", "falco"): {"falco"},
    ("kube-system", "trivy-operator"): {"trivy-operator"},
    ("kube-system", "chaos-mesh"): {"chaos-mesh"},
    # Prometheus and Alertmanager come together in kube-prometheus-stack.
    ("monitoring", "kube-prometheus-stack"): {"kube-prometheus-stack"},
    ("monitoring", "grafana"): {"grafana"},
    ("monitoring", "mimir"): {"mimir-distributed"},
    ("monitoring", "loki"): {"loki"},
    ("monitoring", "oncall"): {"oncall"},
    ("monitoring", "tempo"): {"tempo", "tempo-distributed"},
    ("monitoring", "pyroscope"): {"pyroscope"},
    # Grafana Agent is end-of-life: Alloy.
    ("monitoring", "alloy"): {"alloy"},
    ("network", "cloudflared"): {"raw"},  # our own manifests through the pinned raw chart (docs/edge.md)
    ("network", "ingress-internal"): {"nginx-ingress"},
    ("network", "ingress-external"): {"nginx-ingress"},
    ("network", "external-dns"): {"external-dns"},
    # The seed's Kafka operator of staging and of production: one operator in its own namespace watching both
    # (two releases of the chart share cluster-scoped objects; deleting one environment would break the other).
    ("strimzi", "strimzi"): {"strimzi-kafka-operator"},
    ("production", "flagsmith"): {"flagsmith"},
    # No upstream chart: release manifests through the raw chart.
    ("system-upgrade", "system-upgrade-crds"): {"raw"},
    ("system-upgrade", "system-upgrade-controller"): {"raw"},
    ("system-upgrade", "k3s-upgrade-plans"): {"raw"},
}

# Anything shaped like a placeholder, whatever its name: a name the renderer does not match is never replaced.
ANY_PLACEHOLDER = re.compile(r"\(\([A-Za-z0-9_.-]+\)\)")
TEMPLATE_DOLLAR = re.compile(r"(?<!\$)\$\{")
TEMPLATE_PERCENT = re.compile(r"(?<!%)%\{")


# --- helpers over the synthesized app ----------------------------------------------------------------------


def _monitor_enabled(value) -> bool:
    """True when the values turn on a ServiceMonitor or PodMonitor (serviceMonitor.enabled, podMonitor.create...)."""
    if isinstance(value, dict):
        for k, v in value.items():
            if "monitor" in k.lower() and isinstance(v, dict) and (v.get("enabled") is True or v.get("create") is True):
                return True
            if _monitor_enabled(v):
                return True
    if isinstance(value, list):
        return any(_monitor_enabled(v) for v in value)
    return False


# --- components, versions, namespaces -----------------------------------------------------------------------


def test_every_seed_component_is_a_pinned_release_in_its_namespace(description_synth):
    releases = _releases(description_synth)
    missing = sorted(k for k in SEED if k not in releases)
    assert not missing, f"not installed: {missing}"
    for key, charts in SEED.items():
        _, _, res = releases[key]
        assert res["chart"] in charts, (key, res["chart"])
        assert EXACT_VERSION.match(res["version"]), (key, res["version"])
        assert res["repository"].startswith(("https://", "oci://")), (key, res["repository"])
        assert res["create_namespace"] is False and res["wait"] is True, key


def test_every_release_is_pinned_and_from_https_or_oci(synth):
    for (ns, name), (_, _, res) in _releases(synth).items():
        assert EXACT_VERSION.match(res["version"]) and res["version"] != "latest", (ns, name)
        assert re.match(r"^(https|oci)://[^\s]+$", res["repository"]), (ns, name)


def test_release_versions_are_the_catalog_versions(synth, plan):
    releases = _releases(synth)
    assert len(plan.components) >= 30
    for comp in plan.components.values():
        if not comp.has_release:
            continue
        _, _, res = releases[(comp.namespace, comp.release_name)]
        assert (res["chart"], res["version"], res["repository"]) == (comp.chart, comp.version, comp.repository)


def test_prometheus_and_alertmanager_are_on_in_kube_prometheus_stack(synth):
    values = _values(_by_name(synth, "kube-prometheus-stack")[2])
    assert values.get("prometheus", {}).get("enabled", True) is True
    assert values.get("alertmanager", {}).get("enabled", True) is True


def test_two_nginx_controllers_with_their_own_classes(synth):
    classes = {
        _values(_by_name(synth, name)[2])["controller"]["ingressClass"]["name"] for name in ("ingress-internal", "ingress-external")
    }
    assert classes == {"nginx-internal", "nginx-external"}


# --- ordering ------------------------------------------------------------------------------------------------


def test_cilium_is_installed_first_and_everything_waits_for_it(synth):
    assert _by_name(synth, "cilium")[0] == "cni"
    deps = _stack_deps(synth)
    with_charts = {stack for stack, _, _ in _releases(synth).values()}
    assert with_charts - {"cni"}, "only the cni stack installs charts?"
    for stack in with_charts - {"cni"}:
        assert "cni" in deps[stack], stack


def test_prometheus_operator_crds_come_before_every_monitor(synth):
    users = []
    for (ns, name), (_, _, res) in _releases(synth).items():
        if name != "prometheus-operator-crds" and (_monitor_enabled(_values(res)) or name == "kube-prometheus-stack"):
            users.append(name)
    # cilium, cert-manager, coredns, the ingress controllers, grafana, loki, flux2, strimzi... all turn one on.
    assert len(users) >= 15, users
    late = [name for name in users if not _ordered_after(synth, name, "prometheus-operator-crds")]
    assert not late, f"ServiceMonitor/PodMonitor before the Prometheus Operator CRDs: {late}"


def test_cert_manager_comes_before_every_certificate_user(synth):
    users = [
        name
        for (ns, name), (_, _, res) in _releases(synth).items()
        if name != "cert-manager" and "cert-manager.io/" in "".join(res.get("values") or [])
    ]
    assert users, "no release asks cert-manager for a certificate?"
    late = [name for name in users if not _ordered_after(synth, name, "cert-manager")]
    assert not late, late


def test_istio_base_then_istiod_then_gateways_and_telemetry(synth):
    stack = _by_name(synth, "istiod")[0]
    for name in ("istio-base", "istio-ingressgateway", "istio-egressgateway", "istio-telemetry"):
        assert _by_name(synth, name)[0] == stack, name
    assert _ordered_after(synth, "istiod", "istio-base")
    for gateway in ("istio-ingressgateway", "istio-egressgateway"):
        assert _ordered_after(synth, gateway, "istiod")
    assert _ordered_after(synth, "istio-telemetry", "istio-base")
    assert _ordered_after(synth, "istio-telemetry", "istiod")


def test_plan_crd_before_controller_before_plans(synth):
    assert _by_name(synth, "k3s-upgrade-plans")[0] == "foundation"
    assert _ordered_after(synth, "system-upgrade-controller", "system-upgrade-crds")
    assert _ordered_after(synth, "k3s-upgrade-plans", "system-upgrade-crds")
    assert _ordered_after(synth, "k3s-upgrade-plans", "system-upgrade-controller")
    namespaces = synth.resources("foundation", "kubernetes_namespace_v1")
    ns_logical = next(k for k, v in namespaces.items() if v["metadata"]["name"] == "system-upgrade")
    for name in ("system-upgrade-crds", "system-upgrade-controller", "k3s-upgrade-plans"):
        assert f"kubernetes_namespace_v1.{ns_logical}" in _by_name(synth, name)[2]["depends_on"], name


def test_load_balancer_pool_exists_before_load_balancer_services(synth):
    pool_stack = _by_name(synth, "cilium-lb-ipam")[0]
    assert "cni" in _stack_deps(synth)[pool_stack]
    for name in ("ingress-internal", "istio-ingressgateway"):
        assert pool_stack in _stack_deps(synth)[_by_name(synth, name)[0]], name


# --- data that must survive -----------------------------------------------------------------------------------


def test_releases_holding_data_refuse_destroy(synth, plan):
    protected = {ns for ns, spec in plan.config.namespaces.items() if spec.protect}
    assert protected == {"data-plane", "production"}
    # Database releases protect themselves wherever they are (catalog `protect: true` on the manifest extra).
    databases = {m.release for m in plan.manifests if m.protect and m.namespace not in protected}
    assert "oncall-databases" in databases
    seen = set()
    for (ns, name), (_, _, res) in _releases(synth).items():
        refuses = res.get("lifecycle", {}).get("prevent_destroy", False)
        assert refuses == (ns in protected or name in databases), (ns, name)
        if refuses:
            seen.add(name)
    assert {
        "openebs", "redis-operator", "mysql-operator", "cloudnative-pg", "flagsmith", "flagsmith-db", "oncall-databases",
    } <= seen


# --- values ---------------------------------------------------------------------------------------------------


def test_values_are_yaml_without_placeholders_or_live_templates(synth):
    checked = 0
    for (ns, name), (_, _, res) in _releases(synth).items():
        for text in res.get("values") or []:
            assert not TEMPLATE_DOLLAR.search(text), f"{ns}/{name}: unescaped ${{ reaches Terraform"
            assert not TEMPLATE_PERCENT.search(text), f"{ns}/{name}: unescaped %{{ reaches Terraform"
            doc = yaml.safe_load(text.replace("$${", "${").replace("%%{", "%{"))
            assert isinstance(doc, dict) and doc, (ns, name)
            leftover = PLACEHOLDER.search(text) or ANY_PLACEHOLDER.search(text)
            assert not leftover, f"{ns}/{name}: unresolved placeholder {leftover.group(0)}"
            checked += 1
    assert checked >= 35


def test_multi_line_values_are_literal_blocks_a_plan_shows_line_by_line(synth):
    """Alloy's configuration file is a multi-line string: it must read as a `|` block, not one folded line."""
    (_, _, alloy), = [v for (ns, name), v in _releases(synth).items() if name == "alloy"]
    (text,) = alloy["values"]
    assert "    content: |\n      logging {\n" in text
    content = yaml.safe_load(text.replace("$${", "${").replace("%%{", "%{"))["alloy"]["configMap"]["content"]
    assert content.startswith("logging {\n") and 'otelcol.exporter.otlp "tempo"' in content
    from constructs_lib.addons import render_values

    # Strings without a newline stay plain scalars; text with trailing spaces falls back to a quoted scalar.
    assert render_values({"a": "b", "c": "x\ny"}) == "a: b\nc: |-\n  x\n  y\n"
    assert yaml.safe_load(render_values({"t": "x  \ny"})) == {"t": "x  \ny"}


def test_every_placeholder_name_is_rendered():
    from planner.catalog import placeholder_values, render_placeholders
    from planner.load import load_plan

    cfg = load_plan(DESCRIPTION_CONFIG).config
    known = placeholder_values(cfg)
    problems: list = []
    rendered = render_placeholders({k: f"(({k}))" for k in known}, known, "v", problems)
    assert not problems and rendered == known


def test_grafana_template_strings_reach_the_chart_literally(synth):
    text = "".join(_by_name(synth, "grafana")[2]["values"])
    assert "$${__value.raw}" in text or "$$${__value.raw}" in text


# --- the k3s upgrade Plans -------------------------------------------------------------------------------------


def test_k3s_upgrade_plans(synth, plan):
    plans = {r["metadata"]["name"]: r for r in _values(_by_name(synth, "k3s-upgrade-plans")[2])["resources"]}
    crd = _values(_by_name(synth, "system-upgrade-crds")[2])["resources"][0]
    assert crd["kind"] == "CustomResourceDefinition" and crd["spec"]["group"] == "upgrade.cattle.io"
    assert [v["name"] for v in crd["spec"]["versions"]] == ["v1"]
    server, agent = plans["k3s-server"], plans["k3s-agent"]
    for upgrade in (server, agent):
        assert upgrade["apiVersion"] == "upgrade.cattle.io/v1" and upgrade["kind"] == "Plan"
        assert upgrade["metadata"]["namespace"] == "system-upgrade"
        assert upgrade["spec"]["version"] == plan.config.cluster.k3s_version
        assert upgrade["spec"]["upgrade"]["image"] == "rancher/k3s-upgrade"
        assert upgrade["spec"]["concurrency"] == 1
        assert upgrade["spec"]["serviceAccountName"] == "system-upgrade"
    assert server["spec"]["cordon"] is True
    opt_out = {"key": "k3s-upgrade", "operator": "NotIn", "values": ["false"]}
    assert server["spec"]["nodeSelector"]["matchExpressions"] == [
        {"key": "node-role.kubernetes.io/control-plane", "operator": "In", "values": ["true"]},
        opt_out,
    ]
    assert agent["spec"]["nodeSelector"]["matchExpressions"] == [
        {"key": "node-role.kubernetes.io/control-plane", "operator": "DoesNotExist"},
        opt_out,
    ]
    # Every taint the config may set on a node (any key, any effect) is tolerated by both Plans' jobs.
    for upgrade in (server, agent):
        assert upgrade["spec"]["tolerations"] == [{"operator": "Exists"}]
    # Agents wait for the servers, then are drained one at a time.
    assert agent["spec"]["prepare"] == {"image": "rancher/k3s-upgrade", "args": ["prepare", "k3s-server"]}
    assert agent["spec"]["drain"]["force"] is True and agent["spec"]["drain"]["skipWaitForDeleteTimeout"] > 0


def test_upgrade_controller_image_is_the_pinned_release(synth):
    release = yaml.safe_load((ROOT / "config/catalog/system-upgrade.yaml").read_text())["system-upgrade-controller"]["version"]
    resources = _values(_by_name(synth, "system-upgrade-controller")[2])["resources"]
    kinds = {r["kind"] for r in resources}
    assert {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "ConfigMap", "Deployment"} <= kinds
    assert "Namespace" not in kinds  # the foundation layer creates it
    deployment = next(r for r in resources if r["kind"] == "Deployment")
    images = [c["image"] for c in deployment["spec"]["template"]["spec"]["containers"]]
    assert images == [f"rancher/system-upgrade-controller:{release}"]
    assert all(r["metadata"].get("namespace", "system-upgrade") == "system-upgrade" for r in resources)


# --- Cilium LB-IPAM and Istio telemetry -------------------------------------------------------------------------


def test_lb_ipam_pool_is_the_configured_range(synth, plan):
    import ipaddress

    stack, _, res = _by_name(synth, "cilium-lb-ipam")
    resources = {r["kind"]: r for r in _values(res)["resources"]}
    pool, policy = resources["CiliumLoadBalancerIPPool"], resources["CiliumL2AnnouncementPolicy"]
    assert pool["apiVersion"] == "cilium.io/v2" and policy["apiVersion"] == "cilium.io/v2alpha1"
    block = pool["spec"]["blocks"][0]
    assert f"{block['start']}-{block['stop']}" == plan.config.cluster.load_balancer_range
    node_net = ipaddress.IPv4Network(plan.config.cluster.node_cidr)
    assert ipaddress.IPv4Address(block["start"]) in node_net and ipaddress.IPv4Address(block["stop"]) in node_net
    assert policy["spec"]["loadBalancerIPs"] is True
    # The cilium chart turns L2 announcements on.
    assert _values(_by_name(synth, "cilium")[2])["l2announcements"]["enabled"] is True


def test_mesh_telemetry_resource(synth):
    resources = _values(_by_name(synth, "istio-telemetry")[2])["resources"]
    assert len(resources) == 1
    telemetry = resources[0]
    assert telemetry["apiVersion"] == "telemetry.istio.io/v1" and telemetry["kind"] == "Telemetry"
    assert telemetry["metadata"]["namespace"] == "istio-system" and "selector" not in telemetry["spec"]
    assert telemetry["spec"]["metrics"] == [{"providers": [{"name": "prometheus"}]}]
    assert telemetry["spec"]["accessLogging"] == [{"providers": [{"name": "envoy"}]}]


def test_mesh_traces_reach_the_otlp_receiver_of_alloy(synth):
    """Tracing is on mesh-wide, through an OTLP provider that points at Alloy's receiver, which forwards to Tempo."""
    telemetry = _values(_by_name(synth, "istio-telemetry")[2])["resources"][0]
    mesh = _values(_by_name(synth, "istiod")[2])["meshConfig"]
    providers = {p["name"]: p for p in mesh["extensionProviders"]}
    traced = [p["name"] for entry in telemetry["spec"]["tracing"] for p in entry["providers"]]
    assert traced and set(traced) <= set(providers)
    alloy = _values(_by_name(synth, "alloy")[2])
    receiver_ports = {p["port"] for p in alloy["alloy"]["extraPorts"]}
    for name in traced:
        otlp = providers[name]["opentelemetry"]
        assert otlp["service"] == "alloy.monitoring.svc.cluster.local" and otlp["port"] in receiver_ports


def test_mesh_telemetry_traces_only_to_a_configured_provider(plan):
    import dataclasses

    from planner.generators import istio_mesh_telemetry

    istiod = plan.components["istiod"]

    def mesh_telemetry(values: dict, namespace: str) -> dict:
        (telemetry,) = istio_mesh_telemetry(plan.config, dataclasses.replace(istiod, values=values, namespace=namespace))
        return telemetry

    assert "tracing" not in mesh_telemetry({}, "istio-system")["spec"]
    values = {
        "meshConfig": {
            "extensionProviders": [
                {"name": "tempo", "opentelemetry": {"service": "tempo.monitoring.svc.cluster.local", "port": 4317}},
                {"name": "authz", "envoyExtAuthzHttp": {"service": "x", "port": 80}},
            ]
        }
    }
    assert mesh_telemetry(values, "istio-system")["spec"]["tracing"] == [{"providers": [{"name": "tempo"}]}]


# --- the cluster file changes components, in process ----------------------------------------------------------


@pytest.fixture(scope="module")
def base_config() -> dict:
    return yaml.safe_load(DESCRIPTION_CONFIG.read_text())


def _resolve(data: dict):
    from planner.load import resolve_config

    cfg, problems = parse_model(HelixConfig, data, "helix.yaml")
    assert cfg is not None and not problems, problems
    return resolve_config(cfg, "helix.yaml")


def test_config_turns_off_overrides_version_and_adds_values(base_config):
    base_plan, problems = _resolve(base_config)
    assert not problems
    data = copy.deepcopy(base_config)
    data["components"] = {
        "chaos-mesh": {"enabled": False},
        "falco": {"version": "9.0.0"},
        "loki": {"values": {"singleBinary": {"replicas": 2}, "extra": {"key": "((domain))"}}},
    }
    plan, problems = _resolve(data)
    assert not problems, problems
    comps = plan.components
    assert "chaos-mesh" in base_plan.components and "chaos-mesh" not in comps
    assert comps["falco"].version == "9.0.0" != base_plan.components["falco"].version
    loki, base_loki = comps["loki"].values, base_plan.components["loki"].values
    assert loki["singleBinary"]["replicas"] == 2
    # Deep merge: the catalog's other singleBinary settings stay, placeholders in added values are rendered.
    assert loki["singleBinary"]["persistence"] == base_loki["singleBinary"]["persistence"]
    assert loki["extra"] == {"key": base_config["domain"]}
    assert loki["deploymentMode"] == base_loki["deploymentMode"]


def test_config_problems_are_reported(base_config):
    data = copy.deepcopy(base_config)
    data["components"] = {"no-such-chart": {"enabled": False}, "prometheus-operator-crds": {"enabled": False}}
    _, problems = _resolve(data)
    text = "\n".join(str(p) for p in problems)
    assert "no-such-chart" in text and "not a component in the catalog" in text
    assert "needs 'prometheus-operator-crds'" in text


def test_config_rejects_a_range_version(base_config):
    data = copy.deepcopy(base_config)
    data["components"] = {"falco": {"version": "^9.1.0"}}
    cfg, problems = parse_model(HelixConfig, data, "helix.yaml")
    assert cfg is None and any("exact version" in str(p) for p in problems)


@pytest.mark.parametrize(
    "value, message",
    [
        ("10.30.0.200-10.30.0.250", "not inside node_cidr"),
        ("10.20.0.5-10.20.0.30", "used by cluster.nodes[0]"),
        ("10.20.0.0/28", "network or broadcast"),
        ("10.20.0.8-10.20.0.10", "used by cluster.api_host"),
    ],
)
def test_load_balancer_range_cross_field_rules(base_config, value, message):
    data = copy.deepcopy(base_config)
    data["cluster"]["load_balancer_range"] = value
    cfg, problems = parse_model(HelixConfig, data, "helix.yaml")
    assert cfg is not None, problems
    found = [m for path, m in cross_field_problems(cfg) if path == "cluster.load_balancer_range"]
    assert any(message in m for m in found), found


@pytest.mark.parametrize("value", ["10.20.0.250-10.20.0.200", "10.20.0.200", "10.20.0.1/33", "a-b"])
def test_load_balancer_range_syntax(base_config, value):
    data = copy.deepcopy(base_config)
    data["cluster"]["load_balancer_range"] = value
    cfg, problems = parse_model(HelixConfig, data, "helix.yaml")
    assert cfg is None and any("load_balancer_range" in str(p) for p in problems), problems


def test_default_load_balancer_range_is_valid(plan):
    assert plan.config.cluster.load_balancer_range
    assert not [p for p in cross_field_problems(plan.config) if p[0] == "cluster.load_balancer_range"]


# --- docs -----------------------------------------------------------------------------------------------------


def test_components_doc_matches_the_catalog(plan):
    """The generated table lists every release as installed (docs/components.md itself: test_shipped_config)."""
    from tools.docs import render

    text = render(plan)
    # One row per release the stacks create: every chart release and every manifest release of the plan.
    for comp in plan.components.values():
        if comp.has_release:
            assert f"| `{comp.id}` | {comp.namespace} | {comp.layer} | {comp.chart} | {comp.version} |" in text, comp.id
    raw = plan.raw_chart
    for m in plan.manifests:
        assert f"| `{m.release}` | {m.namespace} | {m.layer} | {raw.chart} (manifests) | {raw.version} |" in text, m.release
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert len(rows) == sum(c.has_release for c in plan.components.values()) + len(plan.manifests)
    for phrase in ("Pilot", "Citadel", "Galley", "sidecar injector", "Mixer", "Telemetry API", "Grafana Agent", "Alloy",
                   "ingress-nginx", "OnCall", "system-upgrade-controller"):
        assert phrase in text, phrase
    # The doc names every component still on the frozen bitnamilegacy images, and none is left.
    assert ("bitnamilegacy" in text) == any("bitnamilegacy/" in repr(c.values) for c in plan.components.values())
    assert "bitnamilegacy" not in text


def test_catalog_is_parsed_again_when_a_file_changes(tmp_path):
    """load_catalog keeps parsed catalogs by content: an edited file is read anew, and callers get their own dicts."""
    import shutil

    from planner.catalog import load_catalog

    folder = tmp_path / "catalog"
    shutil.copytree(ROOT / "config" / "catalog", folder)
    first, problems = load_catalog(folder, tmp_path)
    assert not problems and "cert-manager" in first
    first.pop("cert-manager")
    again, _ = load_catalog(folder, tmp_path)
    assert "cert-manager" in again, "a caller's change leaked into the next load"

    (path,) = [p for p in folder.glob("*.yaml") if "\ncert-manager:" in "\n" + p.read_text()]
    old = again["cert-manager"][0].version
    path.write_text(path.read_text().replace(f"version: {old}", "version: v9.9.9", 1))
    edited, _ = load_catalog(folder, tmp_path)
    assert edited["cert-manager"][0].version == "v9.9.9"
