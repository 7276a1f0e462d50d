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

from stacks.catalog import load_catalog, load_layers, resolve_platform
from stacks.config import HelixConfig
from stacks.config_files import parse_model
from tests.test_addons import _by_name, _releases, _stack_deps, _values

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


def test_cluster_dns_is_kube_system_kube_dns(synth, settings):
    _, _, res = _by_name(synth, "coredns")
    values = _values(res)
    assert res["namespace"] == "kube-system"
    assert values["service"]["name"] == "kube-dns"
    assert values["service"]["clusterIP"] == settings.config.cluster.cluster_dns
    assert values["k8sAppLabelOverride"] == "kube-dns"  # kube-prometheus-stack's coreDns Service selects this


@pytest.mark.parametrize("release", ["loki", "mimir"])
def test_gateway_resolvers_name_the_cluster_dns(synth, release):
    """The Loki and Mimir gateways' nginx resolves through global.dnsService.global.dnsNamespace (chart defaults
    kube-dns and kube-system): whatever they are set to must be the Service the coredns release creates."""
    values = _values(_by_name(synth, release)[2])
    glob = values.get("global", {})
    dns = _values(_by_name(synth, "coredns")[2])
    coredns_ns = _by_name(synth, "coredns")[2]["namespace"]
    assert (glob.get("dnsService", "kube-dns"), glob.get("dnsNamespace", "kube-system")) == (dns["service"]["name"], coredns_ns)


def test_corefile_has_k3s_node_hosts_and_imports(synth, settings):
    values = _values(_by_name(synth, "coredns")[2])
    plugins = values["servers"][0]["plugins"]
    hosts = next(p for p in plugins if p["name"] == "hosts")
    lines = hosts["configBlock"].splitlines()
    for node in settings.config.cluster.nodes:
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
    cfg, problems = parse_model(HelixConfig, data, "helix.yaml")
    assert cfg is not None and not problems, problems
    layers, catalog = inputs
    return resolve_platform(cfg, "helix.yaml", layers, "config/layers.yaml", catalog)


@pytest.fixture(scope="module")
def shipped() -> dict:
    return yaml.safe_load((ROOT / "config/helix.yaml").read_text())


def test_every_catalog_pin_records_its_kubernetes_range(inputs):
    _, catalog = inputs
    for cid, (spec, _) in catalog.items():
        assert spec.version in spec.kubernetes, cid
        for version, supported in spec.kubernetes.items():
            assert supported.source.strip(), (cid, version)


def test_shipped_k3s_is_inside_every_enabled_range(settings, inputs):
    from stacks.catalog import kubernetes_minor

    _, catalog = inputs
    minor = kubernetes_minor(settings.config.cluster.k3s_version)
    assert minor >= (1, 35), "the shipped config runs a maintained Kubernetes minor"
    for cid, comp in settings.plan.components.items():
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
    from stacks.load import load_settings

    settings = load_settings(ROOT / "tests/fixtures/valid/k3s-1-29-with-charts-that-support-it.yaml")
    assert settings.config.cluster.k3s_version == "v1.29.1+k3s2"
    comps = settings.plan.components
    assert comps["istiod"].version.startswith("1.27.") and comps["flux2"].version == "2.14.1"


# --- 4. staging, production: injected pods pass baseline ------------------------------------------------------


def test_injected_namespaces_get_istio_cni_and_native_sidecars(synth, settings):
    injected = {name for name, ns in settings.config.namespaces.items() if ns.labels.get("istio-injection") == "enabled"}
    assert injected, "no namespace has sidecar injection"
    for name in injected:
        assert settings.config.namespaces[name].labels.get("pod-security.kubernetes.io/enforce") in ("baseline", "restricted")
    istiod = _values(_by_name(synth, "istiod")[2])
    # With istio-cni the injector adds istio-validation (no capabilities) instead of istio-init (NET_ADMIN, NET_RAW).
    assert istiod["pilot"]["cni"]["enabled"] is True
    # Native sidecars: the proxy runs before init containers such as Flagsmith's migrate-db.
    assert istiod["pilot"]["env"]["ENABLE_NATIVE_SIDECARS"] == "true"
    stack, _, cni = _by_name(synth, "istio-cni")
    assert cni["chart"] == "cni" and cni["version"] == _by_name(synth, "istiod")[2]["version"]
    # In a namespace whose level admits its privileged DaemonSet (kube-system carries no pod-security label).
    assert cni["namespace"] == "kube-system" and not settings.config.namespaces["kube-system"].labels
    # Its sidecars are injected only once the CNI agent is there.
    assert _ordered_after(synth, "istiod", "istio-cni")


def _ordered_after(synth, user: str, provider: str) -> bool:
    from tests.test_addons import _ordered_after as ordered

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


def test_one_strimzi_operator_watches_both_environments(synth, settings):
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
