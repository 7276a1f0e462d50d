"""Day one (issue 14): a first `cdktf deploy '*'` brings the platform up as one system.

Each test here holds one defect found by reading the upstream charts, sources and release indexes at the pinned
versions; each failed on the code before the fix. Facts taken from upstream are written into the tests as data
(names, rules, versions), never as upstream text.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from planner.catalog import load_catalog, load_layers
from planner.files import parse_model
from planner.schema import HelixConfig
from tests.conftest import DESCRIPTION_CONFIG
from tests.helpers import by_name as _by_name
from tests.helpers import releases as _releases
from tests.helpers import stack_deps as _stack_deps
from tests.helpers import values as _values

ROOT = Path(__file__).resolve().parent.parent


def _objects(synth, release: str) -> list[dict]:
    """The objects a release of the raw chart installs."""
    return _values(_by_name(synth, release)[2])["resources"]


def _one(objects: list[dict], kind: str, name: str) -> dict:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, (kind, name, [(o["kind"], o["metadata"]["name"]) for o in objects])
    return found[0]


def _grants(rules: list[dict], group: str, resource: str, verbs: set[str]) -> bool:
    """Some rule without resourceNames grants every verb in `verbs` on group/resource."""
    have: set[str] = set()
    for rule in rules:
        if group in rule.get("apiGroups", []) and resource in rule.get("resources", []) and not rule.get("resourceNames"):
            have |= set(rule.get("verbs", []))
    return "*" in have or verbs <= have


# --- 1. foundation: the upgrade controller as upstream's v0.20.1 release runs it -------------------------------


def test_upgrade_controller_may_register_its_crd(synth):
    """The v0.20.1 binary creates or updates plans.upgrade.cattle.io at start-up and exits when that is forbidden."""
    role = _one(_objects(synth, "system-upgrade-controller"), "ClusterRole", "system-upgrade-controller")
    assert _grants(role["rules"], "apiextensions.k8s.io", "customresourcedefinitions",
                   {"get", "list", "watch", "create", "update", "patch"})


def test_upgrade_controller_rbac_covers_what_upstream_grants(synth):
    """Upstream's manifests/clusterrole.yaml at v0.20.1, as (group, resource, verbs) facts."""
    objects = _objects(synth, "system-upgrade-controller")
    cluster = _one(objects, "ClusterRole", "system-upgrade-controller")["rules"]
    for group, resource, verbs in [
        ("batch", "jobs", {"get", "list", "watch"}),
        ("", "namespaces", {"get", "list", "watch"}),
        ("", "nodes", {"get", "list", "watch", "update"}),
        ("", "events", {"get", "create", "patch", "update"}),
        ("coordination.k8s.io", "leases", {"create"}),
        ("upgrade.cattle.io", "plans", {"get", "list", "watch", "create", "patch", "update", "delete"}),
        ("upgrade.cattle.io", "plans/status", {"get", "list", "watch", "create", "patch", "update", "delete"}),
    ]:
        assert _grants(cluster, group, resource, verbs), (group, resource)
    lease = [r for r in cluster if "leases" in r.get("resources", []) and r.get("resourceNames")]
    assert lease and {"get", "update"} <= set(lease[0]["verbs"]) and lease[0]["resourceNames"] == ["system-upgrade-controller"]
    role = _one(objects, "Role", "system-upgrade-controller")["rules"]
    assert _grants(role, "batch", "jobs", {"create", "delete", "deletecollection", "patch", "update", "get", "list", "watch"})
    assert _grants(role, "", "secrets", {"get", "list", "watch"})
    drainer = _one(objects, "ClusterRole", "system-upgrade-controller-drainer")["rules"]
    assert _grants(drainer, "", "pods/eviction", {"create"}) and _grants(drainer, "", "nodes", {"get", "patch"})
    # Every role is bound to the controller's service account in its namespace.
    bound = {(b["kind"], b["roleRef"]["name"]) for b in objects if b["kind"] in ("ClusterRoleBinding", "RoleBinding")
             if {"kind": "ServiceAccount", "name": "system-upgrade", "namespace": "system-upgrade"} in b["subjects"]}
    assert bound == {("ClusterRoleBinding", "system-upgrade-controller"),
                     ("ClusterRoleBinding", "system-upgrade-controller-drainer"), ("RoleBinding", "system-upgrade-controller")}


def test_upgrade_controller_deployment_matches_upstream(synth):
    deploy = _one(_objects(synth, "system-upgrade-controller"), "Deployment", "system-upgrade-controller")
    spec = deploy["spec"]
    assert spec["strategy"]["type"] == "Recreate"
    pod = spec["template"]["spec"]
    labels = spec["template"]["metadata"]["labels"]
    assert labels["upgrade.cattle.io/controller"] == "system-upgrade-controller"
    assert labels["app.kubernetes.io/name"] == "system-upgrade-controller"
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"} in terms[0]["matchExpressions"]
    anti = pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
    assert anti["topologyKey"] == "kubernetes.io/hostname"
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 65534 and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"] and sc["seccompProfile"]["type"] == "RuntimeDefault"
    env = {e["name"] for e in container["env"]}
    assert {"SYSTEM_UPGRADE_CONTROLLER_NAME", "SYSTEM_UPGRADE_CONTROLLER_NAMESPACE", "SYSTEM_UPGRADE_CONTROLLER_NODE_NAME"} <= env


def test_plan_crd_declares_upstreams_fields(synth):
    (crd,) = _objects(synth, "system-upgrade-crds")
    version = crd["spec"]["versions"][0]
    assert [c["name"] for c in version["additionalPrinterColumns"]] == [
        "Image", "Channel", "Version", "Complete", "Message", "Applying"]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["required"] == ["upgrade"]
    assert {"channel", "version", "concurrency", "cordon", "drain", "exclusive", "imagePullSecrets",
            "jobActiveDeadlineSecs", "nodeSelector", "postCompleteDelay", "postCompleteLabels", "prepare",
            "priorityClassName", "secrets", "serviceAccountName", "tolerations", "upgrade", "window"} == set(spec["properties"])
    for step in ("prepare", "upgrade"):
        assert spec["properties"][step]["required"] == ["image"]
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    assert {"applying", "conditions", "latestHash", "latestVersion"} == set(status)


# --- 2. observability: the cluster DNS under the name every resolver uses -------------------------------------


def test_cluster_dns_is_kube_system_kube_dns(synth, plan):
    _, _, res = _by_name(synth, "coredns")
    values = _values(res)
    assert res["namespace"] == "kube-system"
    assert values["service"]["name"] == "kube-dns"
    assert values["service"]["clusterIP"] == plan.config.cluster.cluster_dns
    assert values["k8sAppLabelOverride"] == "kube-dns"  # kube-prometheus-stack's coreDns Service selects this


@pytest.mark.parametrize("release", ["loki", "mimir"])
def test_gateway_resolvers_name_the_cluster_dns(synth, plan, release):
    """The Loki and Mimir gateways' nginx resolves through global.dnsService.global.dnsNamespace (chart defaults
    kube-dns and kube-system): whatever they are set to must be the Service the coredns release creates."""
    values = _values(_by_name(synth, release)[2])
    glob = values.get("global", {})
    dns = _values(_by_name(synth, "coredns")[2])
    coredns_ns = _by_name(synth, "coredns")[2]["namespace"]
    assert (glob.get("dnsService", "kube-dns"), glob.get("dnsNamespace", "kube-system")) == (dns["service"]["name"], coredns_ns)
    assert glob.get("clusterDomain", "cluster.local") == plan.config.cluster.cluster_domain


def test_corefile_has_k3s_node_hosts_and_imports(synth, plan):
    values = _values(_by_name(synth, "coredns")[2])
    plugins = values["servers"][0]["plugins"]
    hosts = next(p for p in plugins if p["name"] == "hosts")
    lines = hosts["configBlock"].splitlines()
    for node in plan.config.cluster.nodes:
        assert f"{node.address} {node.name}" in lines, node.name
    assert "fallthrough" in lines
    assert {"name": "import", "parameters": "/etc/coredns/custom/*.override"} in plugins
    assert values["extraConfig"]["import"]["parameters"] == "/etc/coredns/custom/*.server"
    mounts = {m["name"]: m["mountPath"] for m in values["extraVolumeMounts"]}
    volumes = {v["name"]: v["configMap"] for v in values["extraVolumes"]}
    assert mounts["custom-config-volume"] == "/etc/coredns/custom"
    assert volumes["custom-config-volume"] == {"name": "coredns-custom", "optional": True}


def test_coredns_is_scraped_once_by_kube_prometheus_stack(synth):
    kps = _values(_by_name(synth, "kube-prometheus-stack")[2])
    assert kps.get("coreDns", {}).get("enabled", True) is not False
    dns = _values(_by_name(synth, "coredns")[2])
    assert dns["prometheus"]["monitor"]["enabled"] is False


# --- 2b. published chart versions only -------------------------------------------------------------------------

# Versions that exist as source tags but were never published in their chart repository's index (read from the
# repositories' gh-pages index.yaml).
NEVER_PUBLISHED = {("oncall", "1.16.6"), ("oncall", "1.16.7"), ("oncall", "1.16.8"), ("oncall", "1.16.9")}


def test_no_pin_is_a_version_that_was_never_published(synth):
    pinned = {(r["chart"], r["version"]) for r in synth.all_resources("helm_release").values()}
    assert not pinned & NEVER_PUBLISHED
    assert _by_name(synth, "oncall")[2]["version"] == "1.16.5"  # the last OnCall chart in grafana's index


# --- 3./5. the compatibility matrix ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def inputs():
    layers, problems = load_layers(ROOT / "config/layers.yaml", ROOT)
    assert not problems
    catalog, problems = load_catalog(ROOT / "config/catalog", ROOT)
    assert not problems
    return layers, catalog


def _resolve(data: dict, inputs):
    from planner.load import resolve_config

    cfg, problems = parse_model(HelixConfig, data, "helix.yaml")
    assert cfg is not None and not problems, problems
    return resolve_config(cfg, "helix.yaml")


@pytest.fixture(scope="module")
def shipped() -> dict:
    return yaml.safe_load(DESCRIPTION_CONFIG.read_text())


def test_every_catalog_pin_records_its_kubernetes_range(inputs):
    _, catalog = inputs
    for cid, (spec, _) in catalog.items():
        assert spec.version in spec.kubernetes, cid
        for version, supported in spec.kubernetes.items():
            assert supported.source.strip(), (cid, version)


def test_shipped_k3s_is_inside_every_enabled_range(plan, inputs):
    from planner.catalog import kubernetes_minor

    _, catalog = inputs
    minor = kubernetes_minor(plan.config.cluster.k3s_version)
    assert minor >= (1, 35), "the shipped config runs a maintained Kubernetes minor"
    for cid, comp in plan.components.items():
        assert catalog[cid][0].kubernetes[comp.version].contains(minor), cid


@pytest.mark.parametrize(
    "component, version, k3s",
    [
        ("flux2", "2.18.3", "v1.29.1+k3s2"),       # `flux check --pre` of Flux 2.8 wants >= 1.33
        ("istiod", "1.30.4", "v1.29.1+k3s2"),      # Istio 1.30: 1.32 to 1.36
        ("istiod", "1.30.4", "v1.37.0+k3s1"),      # ... and not beyond 1.36
        ("strimzi", "1.2.0", "v1.29.1+k3s2"),      # Strimzi >= 0.51: 1.30 and newer
        ("cert-manager", "v1.21.1", "v1.30.9+k3s1"),  # selectableFields in the CRDs: 1.31 and newer
    ],
)
def test_a_k3s_version_outside_a_range_is_refused_naming_both(shipped, inputs, component, version, k3s):
    data = copy.deepcopy(shipped)
    data["cluster"]["k3s_version"] = k3s
    _, problems = _resolve(data, inputs)
    mine = [p for p in problems if p.path == "cluster.k3s_version" and f" {component} {version}:" in p.message]
    assert mine, [str(p) for p in problems]
    assert k3s in mine[0].message and mine[0].file == "helix.yaml"


def test_an_override_version_without_a_recorded_range_is_refused(shipped, inputs):
    data = copy.deepcopy(shipped)
    data["components"] = {"istiod": {"version": "1.28.0"}}
    _, problems = _resolve(data, inputs)
    assert any(p.path == "components.istiod.version" and "no Kubernetes range is recorded for istiod 1.28.0" in p.message
               for p in problems), [str(p) for p in problems]


def test_the_seeds_literal_k3s_version_stays_possible():
    from planner.load import load_plan

    plan = load_plan(ROOT / "tests/fixtures/valid/k3s-1-29-with-charts-that-support-it.yaml")
    assert plan.config.cluster.k3s_version == "v1.29.1+k3s2"
    comps = plan.components
    assert comps["istiod"].version.startswith("1.27.") and comps["flux2"].version == "2.14.1"


# --- 4. staging, production: injected pods pass baseline ------------------------------------------------------


def test_injected_namespaces_get_istio_cni_and_native_sidecars(synth, plan):
    injected = {name for name, ns in plan.config.namespaces.items() if ns.labels.get("istio-injection") == "enabled"}
    assert injected, "no namespace has sidecar injection"
    for name in injected:
        assert plan.config.namespaces[name].labels.get("pod-security.kubernetes.io/enforce") in ("baseline", "restricted")
    istiod = _values(_by_name(synth, "istiod")[2])
    # With istio-cni the injector adds istio-validation (no capabilities) instead of istio-init (NET_ADMIN, NET_RAW).
    assert istiod["pilot"]["cni"]["enabled"] is True
    # Native sidecars: the proxy runs before init containers such as Flagsmith's migrate-db.
    assert istiod["pilot"]["env"]["ENABLE_NATIVE_SIDECARS"] == "true"
    stack, _, cni = _by_name(synth, "istio-cni")
    assert cni["chart"] == "cni" and cni["version"] == _by_name(synth, "istiod")[2]["version"]
    # In a namespace whose level admits its privileged DaemonSet (kube-system carries no pod-security label).
    assert cni["namespace"] == "kube-system" and not plan.config.namespaces["kube-system"].labels
    # Its sidecars are injected only once the CNI agent is there.
    assert _ordered_after(synth, "istiod", "istio-cni")


def _ordered_after(synth, user: str, provider: str) -> bool:
    from tests.helpers import ordered_after as ordered

    return ordered(synth, user, provider)


def test_istio_cni_uses_the_k3s_cni_folders_cilium_uses(synth):
    cni = _values(_by_name(synth, "istio-cni")[2])
    cilium = _values(_by_name(synth, "cilium")[2])["cni"]
    # The chart reads top-level cniBinDir/cniConfDir (its k3s platform profile sets keys the template never reads).
    assert cni["cniBinDir"] == cilium["binPath"] == "/var/lib/rancher/k3s/data/cni"
    assert cni["cniConfDir"] == cilium["confPath"] == "/var/lib/rancher/k3s/agent/etc/cni/net.d"
    assert cilium["exclusive"] is False  # Cilium keeps istio-cni's entry in the chained config
    assert cni.get("chained", True) is True


# --- strimzi: one operator for both environments --------------------------------------------------------------


def test_one_strimzi_operator_watches_both_environments(synth, plan):
    strimzi = [(ns, n, v) for (ns, n), v in _releases(synth).items() if v[2]["chart"] == "strimzi-kafka-operator"]
    assert len(strimzi) == 1, strimzi  # the chart's CRDs and cluster-scoped RBAC have fixed names: one owner
    namespace, name, (stack, _, res) = strimzi[0]
    values = _values(res)
    assert set(values["watchNamespaces"]) == {"staging", "production"}
    assert values["watchAnyNamespace"] is False and values["createGlobalResources"] is True
    # Deleting an environment must not take the operator with it.
    assert namespace not in {"staging", "production"}
    # The chart binds its Roles in every watched namespace: they exist before the release.
    created = {ns["metadata"]["name"]: s for (s, _), ns in synth.all_resources("kubernetes_namespace_v1").items()}
    for watched in values["watchNamespaces"]:
        assert created[watched] == stack or created[watched] in _stack_deps(synth)[stack], watched


# --- 6. loops: every signal reaches a consumer -----------------------------------------------------------------


def _secret(synth, stack: str, name: str) -> tuple[str, dict]:
    found = [(k, r) for k, r in synth.resources(stack, "kubernetes_secret_v1").items() if r["metadata"]["name"] == name]
    assert len(found) == 1, (stack, name)
    return found[0]


def _from_sensitive_variable(synth, stack: str, value: str) -> str:
    """The name of the sensitive variable a value interpolates (fails for anything else)."""
    assert value.startswith("${var.") and value.endswith("}"), value
    name = value[len("${var."):-1]
    assert synth.stack(stack)["variable"][name]["sensitive"] is True, name
    return name


def test_alertmanager_routes_every_alert_to_oncall(synth):
    """As rendered (the description has no alert channel): every alert but the Watchdog goes to OnCall, whose
    integration URL (it carries a token) is read from the Secret the oncall-setup Job writes, never from values;
    the channels' secrets come from sensitive variables."""
    stack, logical, kps = _by_name(synth, "kube-prometheus-stack")
    am = _values(kps)["alertmanager"]
    route, receivers = am["config"]["route"], {r["name"]: r for r in am["config"]["receivers"]}
    assert route["receiver"] != "null" and route["receiver"] in receivers
    (hook,) = receivers[route["receiver"]]["webhook_configs"]
    assert "url" not in hook
    mounts = {m["mountPath"]: m["name"] for m in am["alertmanagerSpec"]["volumeMounts"]}
    volumes = {v["name"]: v for v in am["alertmanagerSpec"]["volumes"]}
    folder = hook["url_file"].rsplit("/", 1)[0]
    assert volumes[mounts[folder]]["secret"] == {"secretName": "oncall-alertmanager-integration", "optional": True}
    (name,) = am["alertmanagerSpec"]["secrets"]
    address, secret = _secret(synth, stack, name)
    assert {_from_sensitive_variable(synth, stack, v) for v in secret["data"].values()} == {
        "alerting_smtp_password", "alerting_slack_webhook_url", "alerting_pagerduty_routing_key",
        "alerting_webhook_url", "alerting_heartbeat_url",
    }
    assert f"kubernetes_secret_v1.{address}" in kps["depends_on"]
    # Only the heartbeat stays on the 'null' receiver (no alerting.heartbeat in the description).
    assert [r["matchers"] for r in route["routes"] if r["receiver"] == "null"] == [['alertname = "Watchdog"']]


def test_oncall_is_connected_to_grafana(synth):
    """The OnCall app plugin (its UI, where the Alertmanager integration is created) is installed at the version of
    the oncall release and provisioned to that release's engine Service."""
    grafana = _values(_by_name(synth, "grafana")[2])
    _, _, oncall = _by_name(synth, "oncall")
    assert f"grafana-oncall-app@{oncall['version']}" in grafana["plugins"]
    (cm,) = [o for o in grafana["extraObjects"] if o["kind"] == "ConfigMap"]
    mount = next(m for m in grafana["extraConfigmapMounts"] if m["configMap"] == cm["metadata"]["name"])
    assert mount["mountPath"].startswith("/etc/grafana/provisioning/plugins/") and mount["subPath"] in cm["data"]
    (app,) = yaml.safe_load(cm["data"][mount["subPath"]])["apps"]
    assert app["type"] == "grafana-oncall-app" and app["disabled"] is False
    # The engine Service of the oncall chart is <fullname>-engine on 8080; fullname is the release name here.
    assert app["jsonData"]["onCallApiUrl"] == f"http://{oncall['name']}-engine.{oncall['namespace']}.svc:8080"
    assert _values(oncall)["externalGrafana"]["url"] == f"http://{_by_name(synth, 'grafana')[2]['name']}.monitoring.svc"


def test_falco_events_reach_alertmanager(synth):
    falco = _values(_by_name(synth, "falco")[2])
    sidekick = falco["falcosidekick"]
    assert sidekick["enabled"] is True
    _, _, kps = _by_name(synth, "kube-prometheus-stack")
    prefix = _values(kps)["fullnameOverride"]
    assert sidekick["config"]["alertmanager"]["hostport"] == f"http://{prefix}-alertmanager.{kps['namespace']}.svc:9093"
    assert sidekick["config"]["alertmanager"]["endpoint"] == "/api/v2/alerts"  # Alertmanager >= 0.27 has no v1 API


def test_flux_syncs_the_configured_repository_with_sops(synth, plan):
    gitops = plan.config.gitops
    assert gitops is not None
    stack, logical, sync = _by_name(synth, "flux-sync")
    assert sync["namespace"] == "flux-system"
    flux_stack, flux_logical, _ = _by_name(synth, "flux2")
    assert stack == flux_stack and f"helm_release.{flux_logical}" in sync["depends_on"]  # after Flux's CRDs
    objects = _values(sync)["resources"]
    repo = _one(objects, "GitRepository", "platform")
    assert repo["apiVersion"] == "source.toolkit.fluxcd.io/v1"
    assert repo["spec"]["url"] == gitops.url and repo["spec"]["ref"] == {"branch": gitops.branch}
    kustomization = _one(objects, "Kustomization", "platform")
    assert kustomization["apiVersion"] == "kustomize.toolkit.fluxcd.io/v1"
    assert kustomization["spec"]["sourceRef"] == {"kind": "GitRepository", "name": "platform"}
    assert kustomization["spec"]["path"] == gitops.path
    assert kustomization["spec"]["decryption"]["provider"] == "sops"
    # Both Secrets they name exist, from sensitive variables, before Flux.
    age_name = kustomization["spec"]["decryption"]["secretRef"]["name"]
    _, age = _secret(synth, stack, age_name)
    assert _from_sensitive_variable(synth, stack, age["data"]["age.agekey"]) == "sops_age_key"
    address, key = _secret(synth, stack, repo["spec"]["secretRef"]["name"])
    assert {_from_sensitive_variable(synth, stack, key["data"][k]) for k in ("identity", "known_hosts")} == {
        "flux_git_identity", "flux_git_known_hosts"}
    assert f"kubernetes_secret_v1.{address}" in _by_name(synth, "flux2")[2]["depends_on"]


def test_a_config_without_gitops_cannot_install_the_flux_sync(shipped, inputs):
    data = copy.deepcopy(shipped)
    data.pop("gitops")
    _, problems = _resolve(data, inputs)
    assert any(p.path == "components.flux2" and "((gitops_url))" in p.message and "gitops" in p.message
               for p in problems), [str(p) for p in problems]


def test_alloy_sends_profiles_and_the_node_journal(synth):
    _, _, alloy = _by_name(synth, "alloy")
    values = _values(alloy)
    config = values["alloy"]["configMap"]["content"]
    _, _, pyroscope = _by_name(synth, "pyroscope")
    assert 'pyroscope.ebpf "' in config and "forward_to = [pyroscope.write.default.receiver]" in config
    assert f'url = "http://pyroscope.{pyroscope["namespace"]}.svc:4040"' in config
    assert values["controller"]["hostPID"] is True and values["alloy"]["securityContext"]["privileged"] is True
    assert 'loki.source.journal "' in config
    mounts = {m["mountPath"] for m in values["alloy"]["mounts"]["extra"]}
    assert {"/run/log/journal", "/etc/machine-id"} <= mounts and values["alloy"]["mounts"]["varlog"] is True
    # Events are cluster-wide: not from every node of the DaemonSet, but from one pod of their own.
    assert "loki.source.kubernetes_events" not in config
    events = [_values(r) for r in synth.all_resources("helm_release").values()
              if r["chart"] == "alloy" and "loki.source.kubernetes_events" in _values(r)["alloy"]["configMap"]["content"]]
    assert len(events) == 1
    assert events[0]["controller"] == {"type": "deployment", "replicas": 1}
    assert "loki-gateway.monitoring.svc/loki/api/v1/push" in events[0]["alloy"]["configMap"]["content"]


def test_etcd_metrics_are_exposed_and_scraped(synth):
    import json

    assert "etcd-expose-metrics" in json.dumps(synth.stack("nodes")), "the k3s servers do not expose etcd's metrics"
    spec = _values(_by_name(synth, "kube-prometheus-stack")[2])["prometheus"]["prometheusSpec"]
    (job,) = [j for j in spec["additionalScrapeConfigs"] if j["job_name"] == "etcd"]
    assert job["kubernetes_sd_configs"] == [{"role": "node"}]
    keep = [r for r in job["relabel_configs"] if r.get("action") == "keep"]
    assert keep and keep[0]["source_labels"] == ["__meta_kubernetes_node_label_node_role_kubernetes_io_etcd"]
    assert any(r.get("replacement") == "$1:2381" and r["target_label"] == "__address__" for r in job["relabel_configs"])
    assert _values(_by_name(synth, "kube-prometheus-stack")[2])["defaultRules"]["rules"]["etcd"] is True


def test_chaos_mesh_only_in_namespaces_that_opt_in(description_synth):
    synth = description_synth  # config-specific: the description's config
    values = _values(_by_name(synth, "chaos-mesh")[2])
    assert values["controllerManager"]["enableFilterNamespace"] is True


def _pod_monitors(synth) -> dict[str, dict]:
    prom = _values(_by_name(synth, "kube-prometheus-stack")[2])["prometheus"]
    return {m["name"]: m for m in prom["additionalPodMonitors"]}


def test_strimzi_operator_is_scraped(synth):
    _, _, strimzi = _by_name(synth, "strimzi")
    assert "podMonitor" not in _values(strimzi)  # not a key of the chart: Helm ignores it
    monitors = [m for m in _pod_monitors(synth).values()
                if m["selector"].get("matchLabels") == {"strimzi.io/kind": "cluster-operator"}]
    assert len(monitors) == 1
    assert monitors[0]["namespaceSelector"] == {"matchNames": [strimzi["namespace"]]}
    assert monitors[0]["podMetricsEndpoints"][0]["port"] == "http"


def test_flagger_has_istio_requests_total(synth):
    """Flagger's Istio checks query istio_requests_total from the Prometheus it names: every Envoy must be scraped."""
    flagger = _values(_by_name(synth, "flagger")[2])
    _, _, kps = _by_name(synth, "kube-prometheus-stack")
    assert flagger["metricsServer"].startswith(f"http://{_values(kps)['fullnameOverride']}-prometheus.{kps['namespace']}")
    monitors = _pod_monitors(synth)
    envoys = [m for m in monitors.values() if m["podMetricsEndpoints"][0].get("port") == "http-envoy-prom"]
    tls_mode = {"key": "security.istio.io/tlsMode", "operator": "Exists"}
    envoy = [m for m in envoys if tls_mode in m["selector"].get("matchExpressions", [])]
    assert len(envoy) == 1 and envoy[0]["namespaceSelector"] == {"any": True}
    assert envoy[0]["podMetricsEndpoints"][0]["path"] == "/stats/prometheus"
    # The gateways carry no tlsMode label (the gateway injection template): a monitor of their own.
    assert len(envoys) == 2
    istiod = [m for m in monitors.values() if m["selector"].get("matchLabels") == {"app": "istiod"}]
    assert len(istiod) == 1 and istiod[0]["podMetricsEndpoints"][0]["port"] == "http-monitoring"


# --- 7. layer coupling: a layer waits only for what its releases need -------------------------------------------


def test_layers_wait_only_for_real_needs(synth):
    deps = _stack_deps(synth)
    # Runtime-only addresses (alerts, metrics queries) are no install-time need.
    assert "observability" not in deps["security"] and "observability" not in deps["delivery"]
    # The environments need storage and the mesh that injects their pods, not the GitOps tooling or each other.
    assert {"data", "mesh"} <= deps["production"]
    assert "delivery" not in deps["production"]
    assert "staging" not in deps["production"]
    # Every stack with releases still reaches the CRDs and the cluster DNS.
    for stack in synth.stack_names:
        if synth.resources(stack, "helm_release") and stack not in ("cni", "foundation"):
            assert {"cni", "foundation"} <= deps[stack], stack



# --- 8. issue 26 against the charts: OnCall mails the way Alertmanager does -------------------------------------
# Facts of grafana/oncall at v1.16.5 (helm/oncall/templates/_env.tpl, engine/common/utils.py), as data: the chart
# passes smtp.tls and smtp.ssl through Helm's `default` (tls defaulting to true, ssl to false), then toString and
# title, into EMAIL_USE_TLS and EMAIL_USE_SSL, which the engine reads as true only for "true" or "1" (lowercased);
# it fails when both are true. Alertmanager (v0.34, notify/email) speaks implicit TLS to a relay on port 465.
ONCALL_SMTP_DEFAULTS = {"tls": True, "ssl": False}
HELM_EMPTY = (None, False, "", 0)


def _oncall_engine_reads(smtp: dict, key: str) -> bool:
    value = smtp.get(key)
    seen = ONCALL_SMTP_DEFAULTS[key] if value in HELM_EMPTY else value
    return str(seen).title().lower() in ("true", "1")


def _oncall_smtp(tmp_path: Path, smarthost: str, require_tls: bool) -> dict:
    from planner.load import load_plan

    cfg = yaml.safe_load(DESCRIPTION_CONFIG.read_text())
    cfg["alerting"] = {"email": {"to": ["ops@example.org"], "sender": "am@example.org", "smarthost": smarthost,
                                 "require_tls": require_tls}}
    path = tmp_path / "helix.yaml"
    path.write_text(yaml.safe_dump(cfg))
    plan = load_plan(path)
    (oncall,) = [c for c in plan.components.values() if "incident-manager" in c.provides]
    return oncall.values["oncall"]["smtp"]


@pytest.mark.parametrize(("smarthost", "require_tls", "starttls", "implicit"), [
    ("relay.example.org:25", False, False, False),   # before: the chart's default turned a false tls into STARTTLS
    ("relay.example.org:587", True, True, False),
    ("relay.example.org:465", True, False, True),    # before: STARTTLS on the SMTPS port, which Alertmanager never does
])
def test_oncall_mail_uses_tls_as_the_relay_does(tmp_path, smarthost, require_tls, starttls, implicit):
    smtp = _oncall_smtp(tmp_path, smarthost, require_tls)
    assert _oncall_engine_reads(smtp, "tls") is starttls
    assert _oncall_engine_reads(smtp, "ssl") is implicit
    assert not (_oncall_engine_reads(smtp, "tls") and _oncall_engine_reads(smtp, "ssl"))


# --- 9. issue 26 against the sources: an exemplar links to its trace whichever path wrote it -------------------
# Facts, as data: Tempo's metrics generator (v2.10.8, the tempo chart 2.2.4's appVersion) labels the trace id of a
# span-metrics exemplar `traceID` unless overrides.defaults.metrics_generator.trace_id_label_name says otherwise
# (modules/generator/registry); Alloy's otelcol.exporter.prometheus (v1.18.1) labels it `trace_id`. Grafana links
# an exemplar to a trace only through a destination named after that label.
TEMPO_TRACE_ID_LABEL_DEFAULT = "traceID"
ALLOY_OTLP_TRACE_ID_LABEL = "trace_id"


def test_every_exemplar_label_links_to_tempo(plan):
    components = plan.components
    if not {"tempo", "mimir", "grafana", "alloy"} <= set(components):
        pytest.skip("the traces and metrics paths are not all installed")
    generator = components["tempo"].values["tempo"]["overrides"]["defaults"]["metrics_generator"]
    written = {generator.get("trace_id_label_name", TEMPO_TRACE_ID_LABEL_DEFAULT), ALLOY_OTLP_TRACE_ID_LABEL}
    sources = components["grafana"].values["datasources"]["datasources.yaml"]["datasources"]
    (mimir,) = [s for s in sources if s.get("uid") == "mimir"]
    linked = {d["name"] for d in mimir["jsonData"]["exemplarTraceIdDestinations"] if d["datasourceUid"] == "tempo"}
    assert written <= linked, written - linked


# --- 10. issue 26 against the index: the oncall-setup Job runs the engine's own image ----------------------------
# Facts of grafana/helm-charts' index, as data: the appVersion each published oncall chart runs (its engine image's
# tag; the source tag's Chart.yaml says otherwise, as the release workflow sets both at publish time).
ONCALL_PUBLISHED_APP_VERSION = {"1.16.5": "v1.16.5"}


def test_oncall_setup_runs_the_engines_image(inputs):
    _, catalog = inputs
    spec, _ = catalog["oncall"]
    assert spec.version in ONCALL_PUBLISHED_APP_VERSION, f"record the appVersion of oncall {spec.version}"
    engine = f"grafana/oncall:{ONCALL_PUBLISHED_APP_VERSION[spec.version]}"
    assert "tag" not in (spec.values.get("image") or {})   # the engine runs the chart's appVersion
    docs = [d for d in yaml.safe_load_all((ROOT / "config/manifests/oncall/setup.yaml").read_text()) if d]
    (job,) = [d for d in docs if d["kind"] == "Job" and d["metadata"]["name"] == "oncall-setup"]
    assert [c["image"] for c in job["spec"]["template"]["spec"]["containers"]] == [engine]
