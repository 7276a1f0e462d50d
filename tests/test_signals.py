"""Signals reach people (issue 26): the alert path ends at a person with no manual step, OnCall talks to Grafana
in-cluster, and nobody is told "all is well" when no one can be paged. Planner decisions, on the plan (no jsii).

One test (at least) per numbered defect of the issue; each fails on the code before it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

from planner.load import load_plan
from planner.model import PlatformPlan
from tests.conftest import DESCRIPTION_CONFIG
from tests.service_refs import owner, releases_of

CHANNEL_KEYS = ("email_configs", "slack_configs", "pagerduty_configs", "webhook_configs")
ALL_CHANNELS = {
    "email": {"to": ["ops@example.org", "lead@example.org"], "sender": "am@example.org",
              "smarthost": "smtp.example.org:587", "username": "am"},
    "slack": {"channel": "#alerts"},
    "pagerduty": True,
    "webhook": True,
    "heartbeat": True,
}


def plan_with(
    tmp_path: Path, alerting: dict | None = None, disable: tuple[str, ...] = (), mesh: dict | None = None,
    drop_hostnames: tuple[str, ...] = (),
) -> PlatformPlan:
    cfg = yaml.safe_load(DESCRIPTION_CONFIG.read_text())
    if alerting is not None:
        cfg["alerting"] = alerting
    if mesh is not None:
        cfg["mesh"] = mesh
    hostnames = cfg.get("cloudflare", {}).get("hostnames", [])
    hostnames[:] = [h for h in hostnames if not (h if isinstance(h, str) else h["name"]).startswith(drop_hostnames)]
    for cid in disable:
        cfg.setdefault("components", {})[cid] = {"enabled": False}
        # Its public hostname goes with it (a hostname needs a backend).
        hostnames = cfg.get("cloudflare", {}).get("hostnames", [])
        hostnames[:] = [h for h in hostnames if not (h if isinstance(h, str) else h["name"]).startswith(f"{cid}.")]
    path = tmp_path / "helix.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return load_plan(path)


def provider(plan: PlatformPlan, concern: str):
    (comp,) = [c for c in plan.components.values() if concern in c.provides]
    return comp


def alertmanager(plan: PlatformPlan) -> dict:
    return provider(plan, "alerting").values["alertmanager"]


def walk(route: dict):
    yield route
    for child in route.get("routes", []):
        yield from walk(child)


def secret_files(plan: PlatformPlan, am: dict) -> dict[str, object]:
    """/etc/alertmanager/secrets/<secret>/<key> -> the ValueRef the planned Secret fills it with."""
    router = provider(plan, "alerting")
    out = {}
    for s in plan.secrets:
        if s.namespace == router.namespace and s.name in am["alertmanagerSpec"].get("secrets", []):
            for key, ref in s.data.items():
                out[f"/etc/alertmanager/secrets/{s.name}/{key}"] = ref
    return out


def targets(receiver: dict) -> list[dict]:
    return [c for key in CHANNEL_KEYS for c in receiver.get(key, [])]


# --- defect 2: nobody is paged -----------------------------------------------------------------------------


def test_every_alert_route_ends_at_a_person_when_a_channel_is_set(tmp_path):
    plan = plan_with(tmp_path, ALL_CHANNELS)
    am = alertmanager(plan)
    receivers = {r["name"]: r for r in am["config"]["receivers"]}
    files = secret_files(plan, am)
    routes = list(walk(am["config"]["route"]))
    assert len(routes) > 1
    for route in routes:
        receiver = receivers[route["receiver"]]
        assert targets(receiver), f"route {route} ends in {route['receiver']!r}, which reaches nobody"
    # The Watchdog pings the dead man's switch, read from a Secret filled from a sensitive variable.
    (watchdog,) = [r for r in routes if r.get("matchers") == ['alertname = "Watchdog"']]
    (ping,) = targets(receivers[watchdog["receiver"]])
    assert files[ping["url_file"]].source == "variable" and files[ping["url_file"]].name == "alerting_heartbeat_url"
    # Every other alert reaches every configured channel; each secret is a file from a sensitive variable.
    people = receivers[am["config"]["route"]["receiver"]]
    assert all(people.get(key) for key in CHANNEL_KEYS)
    assert people["email_configs"][0]["to"] == "ops@example.org, lead@example.org"
    assert people["email_configs"][0]["smarthost"] == "smtp.example.org:587"
    secret_paths = [v for c in targets(people) for k, v in c.items() if k.endswith("_file")]
    assert len(secret_paths) == 4
    assert {files[p].name for p in secret_paths} == {
        "alerting_smtp_password", "alerting_slack_webhook_url", "alerting_pagerduty_routing_key", "alerting_webhook_url"
    }
    assert all(files[p].source == "variable" for p in secret_paths)
    assert not plan.alert_warnings
    # No secret value is written in the values: only paths.
    text = json.dumps(am)
    assert "hooks.slack.com" not in text and "routing_key\"" not in text


def test_oncall_is_an_addition_and_the_channels_still_get_every_alert(tmp_path):
    plan = plan_with(tmp_path, {"slack": {"channel": "#alerts"}})
    route = alertmanager(plan)["config"]["route"]
    receivers = {r["name"]: r for r in alertmanager(plan)["config"]["receivers"]}
    children = [r for r in route["routes"] if "matchers" not in r]
    # OnCall first, continuing, then the people: a failing OnCall never swallows an alert.
    assert [c["receiver"] for c in children] == ["oncall", "people"]
    assert children[0]["continue"] is True
    assert receivers["people"]["slack_configs"]
    # Without OnCall, no receiver or mount refers to it.
    alone = plan_with(tmp_path, {"slack": {"channel": "#alerts"}}, disable=("oncall",))
    assert "oncall" not in json.dumps(alertmanager(alone))
    assert [r["receiver"] for r in alertmanager(alone)["config"]["route"]["routes"]] == ["null", "people"]


def test_oncall_mails_through_the_configured_relay(tmp_path):
    plan = plan_with(tmp_path, ALL_CHANNELS)
    pager = provider(plan, "incident-manager")
    smtp = pager.values["oncall"]["smtp"]
    assert smtp["enabled"] is True and smtp["host"] == "smtp.example.org" and smtp["port"] == "587"
    assert smtp["fromEmail"] == "am@example.org" and smtp["username"] == "am"
    (secret,) = [s for s in plan.secrets if s.component == pager.id and s.name == f"{pager.release_name}-smtp"]
    assert secret.data["smtp-password"].name == "alerting_smtp_password"
    # Before: smtp.enabled with no host (the chart's default), mail that goes nowhere.
    bare = provider(plan_with(tmp_path), "incident-manager").values["oncall"]["smtp"]
    assert bare["enabled"] is False


def test_no_person_reachable_is_said_on_every_synth(tmp_path):
    from planner.validate import repeat_on_reuse

    plan = plan_with(tmp_path)
    assert any("no channel is configured" in w for w in plan.alert_warnings)
    # The no-op synth (stacks/synth_cache.py) replays what repeat_on_reuse records.
    assert set(plan.alert_warnings) <= set(repeat_on_reuse(plan)["warnings"])
    assert all(w.startswith("warning: ") for w in plan.alert_warnings)
    assert not plan_with(tmp_path, {"webhook": True}).alert_warnings


def test_the_watchdog_goes_nowhere_only_without_a_heartbeat(tmp_path):
    routes = alertmanager(plan_with(tmp_path, {"webhook": True}))["config"]["route"]["routes"]
    assert routes[0] == {"receiver": "null", "matchers": ['alertname = "Watchdog"']}
    beat = alertmanager(plan_with(tmp_path, {"webhook": True, "heartbeat": True}))["config"]["route"]["routes"][0]
    assert beat["receiver"] == "heartbeat" and beat["repeat_interval"] == "1m"


def test_the_synth_and_the_doctor_say_when_nobody_is_paged(tmp_path, monkeypatch, capsys):
    """The preflight of the alert path: the synth's stderr (and `task doctor`) carry the warning."""
    from tests.conftest import ROOT
    from tests.helpers import main_in_process
    from tools.doctor import doctor

    (tmp_path / "work").mkdir()
    run = main_in_process(str(DESCRIPTION_CONFIG.relative_to(ROOT)), tmp_path / "work", monkeypatch, capsys)
    assert run.returncode == 0, run.stderr
    assert "warning: alerting: no channel is configured" in run.stderr
    said: list[str] = []
    doctor(DESCRIPTION_CONFIG, tmp_path / "work" / "cdktf.out", [], ssh=False, environ={}, out=said.append)
    assert any(line.startswith("warning: alerting: no channel") for line in said)


@pytest.mark.parametrize(
    "alerting, fragment",
    [
        ({"email": {"to": [], "sender": "a@example.org", "smarthost": "smtp.example.org:25"}}, "alerting.email.to"),
        ({"email": {"to": ["a@example.org"], "sender": "a@example.org", "smarthost": "smtp.example.org"}},
         "alerting.email.smarthost"),
        ({"slack": {"channel": "#no spaces"}}, "alerting.slack.channel"),
        ({"pager": True}, "alerting.pager"),
    ],
)
def test_bad_alerting_is_refused(tmp_path, alerting, fragment):
    from planner.files import ConfigError

    with pytest.raises(ConfigError) as exc:
        plan_with(tmp_path, alerting)
    assert any(fragment in f"{p.path}" for p in exc.value.problems), exc.value.problems


# --- defects 1 and 2: OnCall set up with no manual step, in-cluster ---------------------------------------


def _setup_job(plan: PlatformPlan):
    """OnCall's manifest release whose Job installs the plugin."""
    pager = provider(plan, "incident-manager")
    (release,) = [m for m in plan.manifests if m.component == pager.id and "plugin/install" in json.dumps(m.resources)]
    return pager, release


def test_oncall_plugin_talks_to_grafana_in_cluster(tmp_path):
    plan = plan_with(tmp_path)
    grafana = plan.components["grafana"]
    (cm,) = [o for o in grafana.values.get("extraObjects", []) if o["kind"] == "ConfigMap"]
    (app,) = yaml.safe_load(next(iter(cm["data"].values())))["apps"]
    releases = releases_of(plan)
    urls = {k: urlparse(app["jsonData"][k]) for k in ("grafanaUrl", "onCallApiUrl")}
    for key, url in urls.items():
        assert url.scheme == "http" and url.hostname.endswith(".svc"), (key, url)
    # Without grafanaUrl the plugin falls back to root_url, the public name behind Cloudflare Access.
    assert owner(*urls["grafanaUrl"].hostname.split(".")[:2], releases) == grafana.id
    assert owner(*urls["onCallApiUrl"].hostname.split(".")[:2], releases) == provider(plan, "incident-manager").id


def test_the_alertmanager_integration_is_made_by_a_job_and_reached_in_cluster(tmp_path):
    plan = plan_with(tmp_path, {"email": ALL_CHANNELS["email"]})
    pager, release = _setup_job(plan)
    assert pager.id in release.after  # after OnCall (and so after Grafana, which OnCall needs)
    (job,) = [r for r in release.resources if r["kind"] == "Job"]
    (container,) = job["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    engine = urlparse(env["ONCALL_ENGINE_URL"])
    assert engine.hostname.endswith(".svc") and owner(*engine.hostname.split(".")[:2], releases_of(plan)) == pager.id
    (script_cm,) = [r for r in release.resources if r["kind"] == "ConfigMap"]
    assert script_cm["data"]["people"] == "ops@example.org,lead@example.org"
    assert "PEOPLE" not in env  # a Job's pod template is immutable: what the config changes lives in the ConfigMap
    script = script_cm["data"]["setup.py"]
    for step in ("plugin/install", "alert_receive_channels/", "escalation_chains/", "escalation_policies/",
                 "channel_filters/"):
        assert step in script, step
    assert plan.config.domain not in json.dumps(release.resources)
    # The Secret the Job writes is what Alertmanager's OnCall receiver reads (mounted optional: Alertmanager starts
    # and pages through its own channels before it exists).
    am = alertmanager(plan)
    (hook,) = {r["name"]: r for r in am["config"]["receivers"]}["oncall"]["webhook_configs"]
    (volume,) = [v for v in am["alertmanagerSpec"]["volumes"] if v["secret"]["secretName"] == env["SECRET_NAME"]]
    assert volume["secret"]["optional"] is True
    (mount,) = [m for m in am["alertmanagerSpec"]["volumeMounts"] if m["name"] == volume["name"]]
    assert hook["url_file"] == f"{mount['mountPath']}/url"
    # And the Job may write that Secret, and read no other.
    (role,) = [r for r in release.resources if r["kind"] == "Role"]
    readable = [rule for rule in role["rules"] if "get" in rule["verbs"]]
    assert readable and all(rule.get("resourceNames") == [env["SECRET_NAME"]] for rule in readable)


# --- defect 3: Application Observability ------------------------------------------------------------------

ALLOY_BLOCK = re.compile(r'^\s*([a-z][a-z_.]*[a-z_]) "([A-Za-z0-9_]+)" \{', re.M)
ALLOY_REF = re.compile(r"\b((?:otelcol|prometheus|loki|pyroscope|discovery|local)(?:\.[a-z_]+)+)\.(input|receiver|output|targets|rules)\b")


def alloy_graph(content: str) -> tuple[dict[tuple[str, str], str], set[tuple[str, str]]]:
    """The Alloy configuration's components ((name, label) -> body) and the components it references."""
    blocks = {}
    starts = list(ALLOY_BLOCK.finditer(content))
    for i, m in enumerate(starts):
        blocks[(m.group(1), m.group(2))] = content[m.end(): starts[i + 1].start() if i + 1 < len(starts) else len(content)]
    refs = set()
    for m in ALLOY_REF.finditer(content):
        name, _, label = m.group(1).rpartition(".")
        if name.count(".") >= 1:
            refs.add((name, label))
    return blocks, refs


def alloy_content(plan: PlatformPlan) -> str:
    (comp,) = [c for c in plan.components.values() if c.chart == "alloy" and "otelcol.receiver.otlp" in
               json.dumps(c.values)]
    return comp.values["alloy"]["configMap"]["content"]


def output_targets(body: str, signal: str) -> list[str]:
    m = re.search(rf"\b{signal}\s*=\s*\[([^\]]*)\]", body)
    return [t.strip() for t in m.group(1).split(",") if t.strip()] if m else []


@pytest.mark.parametrize("disable", [(), ("mimir",)])
def test_otlp_traces_metrics_and_logs_each_reach_their_store(tmp_path, disable):
    plan = plan_with(tmp_path, disable=disable)
    content = alloy_content(plan)
    blocks, refs = alloy_graph(content)
    # Every component the configuration references is defined (Alloy refuses to start otherwise).
    assert refs - set(blocks) == set(), sorted(refs - set(blocks))
    receiver = blocks[("otelcol.receiver.otlp", "default")]
    assert "0.0.0.0:4317" in receiver and "0.0.0.0:4318" in receiver

    def ends(component: tuple[str, str], signal: str) -> set[tuple[str, str]]:
        """The components a signal reaches from `component`, following outputs and forward_to to the end."""
        body = blocks[component]
        nxt = output_targets(body, signal) or output_targets(body, "forward_to")
        if not nxt:
            return {component}
        out = set()
        for target in nxt:
            name, _, label = target.rsplit(".", 1)[0].rpartition(".")
            out |= ends((name, label), signal)
        return out

    start = ("otelcol.receiver.otlp", "default")
    (traces,) = ends(start, "traces")
    assert traces[0] == "otelcol.exporter.otlp" and "tempo.monitoring.svc:4317" in blocks[traces]
    (logs,) = ends(start, "logs")
    assert logs == ("loki.write", "default") and "loki-gateway.monitoring.svc/loki/api/v1/push" in blocks[logs]
    (metrics,) = ends(start, "metrics")
    assert metrics[0] == "prometheus.remote_write"
    if disable:
        assert "endpoint" not in blocks[metrics] and "mimir-distributor" not in content
    else:
        assert "http://mimir-distributor.monitoring.svc:8080/api/v1/push" in blocks[metrics]
    # The OTLP ports are on the alloy Service for applications.
    ports = {p["name"]: p["port"] for p in plan.components["alloy"].values["alloy"]["extraPorts"]}
    assert ports == {"otlp-grpc": 4317, "otlp-http": 4318}


def test_span_metrics_service_graphs_and_the_links_between_signals(tmp_path):
    plan = plan_with(tmp_path)
    tempo = plan.components["tempo"].values["tempo"]
    assert set(tempo["overrides"]["defaults"]["metrics_generator"]["processors"]) == {"service-graphs", "span-metrics"}
    assert tempo["metricsGenerator"]["enabled"] is True
    datasources = {d["uid"]: d for d in plan.components["grafana"].values["datasources"]["datasources.yaml"]["datasources"]}
    links = datasources["tempo"]["jsonData"]
    for key in ("tracesToLogsV2", "tracesToMetrics", "tracesToProfiles", "serviceMap"):
        assert links[key]["datasourceUid"] in datasources, key
    assert datasources[links["tracesToProfiles"]["datasourceUid"]]["type"] == "grafana-pyroscope-datasource"
    for uid in ("prometheus", "mimir"):
        (dest,) = datasources[uid]["jsonData"]["exemplarTraceIdDestinations"]
        assert dest["datasourceUid"] == "tempo"
    # Grafana expands $VAR in provisioning files: Grafana's own $__tags is escaped.
    assert all("$$__tags" in q["query"] for q in links["tracesToMetrics"]["queries"])
    assert plan.components["mimir"].values["mimir"]["structuredConfig"]["limits"]["max_global_exemplars_per_user"] > 0


ALLOY_RULE = re.compile(r"\brule\s*\{(.*?)\}", re.S)
ALLOY_ARG = re.compile(r'^\s*(\w+)\s*=\s*(\[[^\]]*\]|"(?:[^"\\]|\\.)*")', re.M)


def relabel(rules_body: str, target: dict[str, str]) -> dict[str, str] | None:
    """Prometheus relabelling (the replace and drop actions) of one target by an Alloy block's rule blocks."""
    labels = dict(target)
    for rule in ALLOY_RULE.findall(rules_body):
        args = {k: json.loads(v) for k, v in ALLOY_ARG.findall(rule)}
        action = args.get("action", "replace")
        assert action in ("replace", "drop"), action
        value = args.get("separator", ";").join(labels.get(name, "") for name in args.get("source_labels", []))
        m = re.fullmatch(args.get("regex", "(.*)"), value)
        if action == "drop":
            if m:
                return None
            continue
        if m:
            labels[args["target_label"]] = m.expand(args.get("replacement", "$1").replace("$", "\\"))
    return labels


@pytest.mark.parametrize("pod, service", [
    # What OTLP instrumentation names the service, in the same order: the annotation, the recommended label,
    # the app label, the container.
    ({"__meta_kubernetes_pod_annotation_resource_opentelemetry_io_service_name": "cart",
      "__meta_kubernetes_pod_label_app_kubernetes_io_name": "shop"}, "cart"),
    ({"__meta_kubernetes_pod_label_app_kubernetes_io_name": "checkout", "__meta_kubernetes_pod_label_app": "co"},
     "checkout"),
    ({"__meta_kubernetes_pod_label_app": "payments"}, "payments"),
    ({}, "server"),
])
def test_a_span_finds_the_profiles_of_its_service(tmp_path, pod, service):
    plan = plan_with(tmp_path)
    blocks, _ = alloy_graph(alloy_content(plan))
    (ebpf,) = [body for (name, _), body in blocks.items() if name == "pyroscope.ebpf"]
    source = re.search(r"\btargets\s*=\s*discovery\.relabel\.(\w+)\.output", ebpf).group(1)
    target = {"__meta_kubernetes_namespace": "production", "__meta_kubernetes_pod_name": "web-7f9c",
              "__meta_kubernetes_pod_container_name": "server", "__meta_kubernetes_pod_phase": "Running", **pod}
    profile = relabel(blocks[("discovery.relabel", source)], target)
    # Grafana's Tempo datasource looks a span's service.name up under this profile label.
    datasources = {d["uid"]: d for d in plan.components["grafana"].values["datasources"]["datasources.yaml"]["datasources"]}
    tags = {t["key"]: t.get("value") or t["key"] for t in datasources["tempo"]["jsonData"]["tracesToProfiles"]["tags"]}
    assert profile[tags["service.name"]] == service
    assert profile["namespace"] == "production"
    # A finished pod is not profiled.
    assert relabel(blocks[("discovery.relabel", source)],
                   {**target, "__meta_kubernetes_pod_phase": "Succeeded"}) is None


def test_the_application_observability_folder_holds_the_red_view(tmp_path):
    plan = plan_with(tmp_path)
    sidecar = plan.components["grafana"].values["sidecar"]["dashboards"]
    found = [r for m in plan.manifests for r in m.resources
             if r["kind"] == "ConfigMap" and r["metadata"].get("labels", {}).get(sidecar["label"])
             and "Application" in r["metadata"].get("annotations", {}).get(sidecar["folderAnnotation"], "")]
    assert found and sidecar["provider"]["foldersFromFilesStructure"] is True
    (dashboard,) = [json.loads(v) for v in found[0]["data"].values()]
    queries = " ".join(t.get("expr", "") for p in dashboard["panels"] for t in p.get("targets", []))
    for metric in ("traces_spanmetrics_calls_total", "traces_spanmetrics_latency_bucket", "STATUS_CODE_ERROR"):
        assert metric in queries, metric
    assert "nodeGraph" in {p["type"] for p in dashboard["panels"]}
    uids = {d["uid"] for d in plan.components["grafana"].values["datasources"]["datasources.yaml"]["datasources"]}
    assert {p["datasource"]["uid"] for p in dashboard["panels"]} <= uids


# --- defect 5: state kept ---------------------------------------------------------------------------------


def test_state_outlives_restarts_and_uninstalls(tmp_path):
    plan = plan_with(tmp_path)
    # Pyroscope's v2 storage deletes by limits.retention_period (31 days unless set): profiles_days applies.
    pyro = plan.components["pyroscope"].values["pyroscope"]["structuredConfig"]["limits"]
    days = plan.config.object_storage.retention.profiles_days
    assert pyro["retention_period"] == pyro["compactor_blocks_retention_period"] == f"{days * 24}h"
    # Alloy's positions (and WAL) on a node volume, not in the container's filesystem.
    alloy = plan.components["alloy"].values
    storage = alloy["alloy"]["storagePath"]
    mounts = {m["mountPath"]: m["name"] for m in alloy["alloy"]["mounts"]["extra"]}
    (mount,) = [path for path in mounts if storage.startswith(path.rstrip("/") + "/")]
    (volume,) = [v for v in alloy["controller"]["volumes"]["extra"] if v["name"] == mounts[mount]]
    assert "hostPath" in volume and not storage.startswith("/tmp")
    # Grafana's PVC (users, the OnCall token, dashboards made in the UI) is kept on uninstall.
    grafana = plan.components["grafana"].values["persistence"]
    assert grafana["annotations"]["helm.sh/resource-policy"] == "keep"


# --- defect 5: no blind spot ------------------------------------------------------------------------------

# How each component's metrics reach Prometheus: ("values", path) a chart value that turns its monitor on;
# ("podmonitor", name) a PodMonitor of the metrics scraper (its prometheus.additionalPodMonitors); ("manifest",
# kind) a monitor among its own objects (or a database whose operator makes one); ("scraper", path) a monitor the metrics scraper's chart ships, on unless
# that value says false; or ("none", why) for what serves no metrics. A component missing here fails the test:
# whoever adds one decides how it is scraped.
SCRAPED: dict[str, list[tuple[str, str]]] = {
    "alloy": [("values", "serviceMonitor.enabled")],
    "alloy-events": [("values", "serviceMonitor.enabled")],
    "cert-manager": [("values", "prometheus.servicemonitor.enabled")],
    "chaos-mesh": [("podmonitor", "chaos-mesh")],
    "cilium": [("values", "prometheus.serviceMonitor.enabled"), ("values", "operator.prometheus.serviceMonitor.enabled")],
    "cloudflared": [("manifest", "PodMonitor")],
    "cloudnative-pg": [("values", "monitoring.podMonitorEnabled")],
    "coredns": [("scraper", "coreDns.enabled")],
    "external-dns": [("values", "serviceMonitor.enabled")],
    "falco": [("values", "serviceMonitor.create"), ("values", "falcosidekick.serviceMonitor.enabled")],
    "flagger": [("values", "serviceMonitor.enabled")],
    "flagsmith": [("values", "serviceMonitor.enabled"), ("manifest", "PodMonitor")],
    "flux2": [("values", "prometheus.podMonitor.create")],
    "grafana": [("values", "serviceMonitor.enabled")],
    "ingress-external": [("values", "prometheus.serviceMonitor.create")],
    "ingress-internal": [("values", "prometheus.serviceMonitor.create")],
    "internal-wildcard-certificate": [("none", "a Certificate: cert-manager's metrics cover it")],
    "istio-base": [("none", "CRDs and cluster roles only")],
    "istio-cni": [("podmonitor", "istio-cni")],
    "istio-egressgateway": [("podmonitor", "istio-gateways")],
    "istio-ingressgateway": [("podmonitor", "istio-gateways")],
    "istiod": [("podmonitor", "istiod")],
    "kube-prometheus-stack": [("scraper", "prometheus.serviceMonitor.selfMonitor"),
                              ("scraper", "alertmanager.serviceMonitor.selfMonitor")],
    "loki": [("values", "monitoring.serviceMonitor.enabled")],
    "metrics-server": [("values", "serviceMonitor.enabled")],
    "mimir": [("values", "metaMonitoring.serviceMonitor.enabled")],
    "mysql-operator": [("none", "the operator serves no metrics; each InnoDBCluster has its exporter sidecar")],
    "oncall": [("podmonitor", "oncall-engine"), ("values", "oncall.exporter.enabled"), ("manifest", "InnoDBCluster")],
    "openebs": [("none", "the hostpath provisioner serves no metrics endpoint")],
    "prometheus-operator-crds": [("none", "CRDs only")],
    "pyroscope": [("values", "serviceMonitor.enabled")],
    "redis-operator": [("podmonitor", "redis-operator"), ("podmonitor", "redis-exporters")],
    "reloader": [("values", "reloader.podMonitor.enabled")],
    "seaweedfs": [("values", "global.seaweedfs.monitoring.enabled")],
    "strimzi": [("podmonitor", "strimzi-cluster-operator")],
    "system-upgrade-controller": [("none", "the upgrade controller serves no metrics endpoint")],
    "tempo": [("values", "serviceMonitor.enabled")],
    "trivy-operator": [("values", "serviceMonitor.enabled")],
}


def _at(values: dict, path: str):
    for key in path.split("."):
        if not isinstance(values, dict) or key not in values:
            return None
        values = values[key]
    return values


def test_every_component_that_serves_metrics_is_scraped(tmp_path):
    plan = plan_with(tmp_path)
    scraper = provider(plan, "metrics-scraper")
    monitors = {m["name"] for m in scraper.values["prometheus"]["additionalPodMonitors"]}
    unclassified = sorted(set(plan.components) - set(SCRAPED))
    assert not unclassified, f"say how these are scraped (or why they serve no metrics): {unclassified}"
    blind = []
    for cid, ways in SCRAPED.items():
        comp = plan.components.get(cid)
        if comp is None:
            continue
        # Its own objects: its manifest releases' and, for a component on the raw chart, its values' resources.
        kinds = [r for m in plan.manifests if m.component == cid for r in m.resources]
        kinds += [r for r in comp.values.get("resources", []) if isinstance(r, dict) and "kind" in r]
        for way, what in ways:
            if way == "values":
                ok = _at(comp.values, what) is True
            elif way == "podmonitor":
                ok = what in monitors
            elif way == "manifest":
                # A monitor object, or a database whose operator makes one (InnoDBCluster metrics.monitor).
                ok = any(r["kind"] == what and (what.endswith("Monitor") or _at(r, "spec.metrics.monitor") is True)
                         for r in kinds)
            elif way == "scraper":
                ok = _at(scraper.values, what) is not False
            else:
                ok = bool(what)
            if not ok:
                blind.append((cid, way, what))
    assert blind == []


def test_the_gateways_are_scraped_although_istio_envoy_misses_them(tmp_path):
    """The gateway injection template adds no security.istio.io/tlsMode label, istio-envoy's selector."""
    plan = plan_with(tmp_path)
    monitors = {m["name"]: m for m in provider(plan, "metrics-scraper").values["prometheus"]["additionalPodMonitors"]}
    (expr,) = monitors["istio-gateways"]["selector"]["matchExpressions"]
    gateways = [c for c in plan.components.values() if c.chart == "gateway"]
    assert gateways and sorted(expr["values"]) == sorted(c.release_name.removeprefix("istio-") for c in gateways)
    assert monitors["istio-gateways"]["podMetricsEndpoints"][0]["port"] == "http-envoy-prom"


def test_monitors_of_an_optional_component_go_with_it(tmp_path):
    plan = plan_with(tmp_path, disable=("chaos-mesh",))
    names = {m["name"] for m in provider(plan, "metrics-scraper").values["prometheus"]["additionalPodMonitors"]}
    assert "chaos-mesh" not in names and "istio-gateways" in names


def test_the_observability_page_names_services_that_exist(tmp_path):
    """docs/observability.md names each hop's Service and port: every one is a Service of a component."""
    from tests.conftest import ROOT

    plan = plan_with(tmp_path)
    text = (ROOT / "docs" / "observability.md").read_text()
    named = set(re.findall(r"(?<![\w./-])([a-z][a-z0-9-]*[a-z0-9]):(\d{2,5})\b", text))
    releases = releases_of(plan)
    monitoring = provider(plan, "metrics-scraper").namespace
    unknown = sorted(f"{svc}:{port}" for svc, port in named if owner(svc, monitoring, releases) is None)
    assert len(named) >= 10 and unknown == []
    for path in ("Metrics", "Logs", "Traces and profiles", "The alert path"):
        assert f"## {path}" in text


def _placed_in(cfg: dict, cid: str) -> str:
    (ns,) = [n for n, spec in cfg["namespaces"].items() if cid in (spec or {}).get("components", [])]
    return ns


@pytest.mark.parametrize("cid", ["alloy", "kube-prometheus-stack"])
@pytest.mark.parametrize("level", ["baseline", "restricted"])
def test_a_namespace_of_the_node_agents_cannot_enforce_less_than_privileged(tmp_path, cid, level):
    """Alloy (hostPath logs, eBPF) and node-exporter (host network, PID and filesystem) are refused below privileged:
    their namespace's level is the lowest their pods allow, and lowering it is refused instead of hanging the deploy."""
    from planner.files import ConfigError

    cfg = yaml.safe_load(DESCRIPTION_CONFIG.read_text())
    ns = _placed_in(cfg, cid)
    cfg["namespaces"][ns].setdefault("labels", {})["pod-security.kubernetes.io/enforce"] = level
    path = tmp_path / "helix.yaml"
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError) as exc:
        load_plan(path)
    mine = [p for p in exc.value.problems if p.path == f"namespaces.{ns}.labels" and f"{cid}'s pods" in p.message]
    assert len(mine) == 1 and f"is {level}, but {cid}'s pods need privileged: " in mine[0].message, exc.value.problems
    assert "Traceback" not in str(mine[0])


@pytest.mark.parametrize("labels", [{"pod-security.kubernetes.io/enforce": "privileged"}, {}])
def test_a_privileged_or_unlabelled_namespace_takes_the_node_agents(tmp_path, labels):
    cfg = yaml.safe_load(DESCRIPTION_CONFIG.read_text())
    for cid in ("alloy", "kube-prometheus-stack"):
        cfg["namespaces"][_placed_in(cfg, cid)]["labels"] = dict(labels)
    path = tmp_path / "helix.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert load_plan(path).components["alloy"]


def _policies(plan: PlatformPlan) -> dict[str, tuple[str, dict]]:
    return {r["metadata"]["name"]: (m.component, r) for m in plan.manifests for r in m.resources
            if r["kind"] == "NetworkPolicy"}


@pytest.mark.parametrize("name, selects", [
    ("loki", {"app.kubernetes.io/instance": "loki"}),
    ("mimir", {"app.kubernetes.io/instance": "mimir"}),
    ("tempo", {"app.kubernetes.io/instance": "tempo"}),
    ("alertmanager", {"app.kubernetes.io/name": "alertmanager"}),
    ("flagsmith-db", {"cnpg.io/cluster": "flagsmith-db"}),
    ("oncall-mysql", {"mysql.oracle.com/cluster": "oncall-mysql"}),
    ("oncall-redis", {"app": "oncall-redis"}),
])
def test_only_the_intended_clients_reach_the_stores_and_databases(tmp_path, name, selects):
    """Before: no NetworkPolicy, so any pod could post forged alerts, read every log or reach the databases."""
    plan = plan_with(tmp_path)
    policies = _policies(plan)
    assert name in policies, sorted(policies)
    cid, policy = policies[name]
    assert policy["spec"]["podSelector"] == {"matchLabels": selects}
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    scraper_ns = provider(plan, "metrics-scraper").namespace
    for rule in policy["spec"]["ingress"]:
        assert rule.get("from"), f"{name}: a rule without `from` admits every pod"
        for peer in rule["from"]:
            ns = peer.get("namespaceSelector")
            if ns is None:
                assert peer.get("podSelector") is not None  # its own namespace
            elif ns == {}:
                # Any namespace, but only pods of one kind (an operator, falcosidekick).
                assert peer.get("podSelector", {}).get("matchLabels"), f"{name}: every pod of every namespace"
            else:
                assert ns == {"matchLabels": {"kubernetes.io/metadata.name": scraper_ns}}


# --- defect 4: the mesh and public traffic ----------------------------------------------------------------


def _peer_authentications(plan: PlatformPlan) -> list[dict]:
    return [r for m in plan.manifests for r in m.resources if r["kind"] == "PeerAuthentication"]


def _mesh_objects(plan: PlatformPlan, kind: str) -> list[dict]:
    return [r for m in plan.manifests if m.release == "istio-public-gateway" for r in m.resources if r["kind"] == kind]


def _injected(plan: PlatformPlan) -> set[str]:
    return {ns for ns, spec in plan.config.namespaces.items() if spec.labels.get("istio-injection") == "enabled"}


def test_a_public_hostname_of_a_meshed_app_crosses_a_sidecar(tmp_path):
    """Defect 4: cloudflared sent every public name to NGINX (not injected), which sent plain text to the pods,
    past mTLS and past Flagger's VirtualService weights. A name served from an injected namespace now goes to the
    Istio ingress gateway (an Envoy of the mesh), bound by the Gateway to a VirtualService to the app's Service."""
    plan = plan_with(tmp_path)
    gateway = provider(plan, "mesh-ingress")
    meshed = [r for r in plan.edge.routes if r.backend and plan.components[r.backend].namespace in _injected(plan)]
    assert meshed, "the fixture serves a public name from an injected namespace"
    (gw,) = _mesh_objects(plan, "Gateway")
    pod_labels = {"istio": gateway.release_name.removeprefix("istio-")}  # the gateway chart's selector label
    assert gw["spec"]["selector"] == pod_labels and gw["metadata"]["namespace"] == gateway.namespace
    services = {h: vs for vs in _mesh_objects(plan, "VirtualService") for h in vs["spec"]["hosts"]}
    for route in meshed:
        host = urlparse(route.service).hostname
        assert host == f"{gateway.release_name}.{gateway.namespace}.svc.{plan.config.cluster.cluster_domain}"
        assert urlparse(route.service).port == 80
        assert route.hostname in gw["spec"]["servers"][0]["hosts"]
        vs = services[route.hostname]
        assert vs["spec"]["gateways"] == [gw["metadata"]["name"]]
        ((dest,),) = [[d["destination"] for d in h["route"]] for h in vs["spec"]["http"]]
        backend = plan.components[route.backend]
        assert dest["host"].split(".")[1] == backend.namespace
        assert dest["host"].split(".")[0] == backend.mesh_service[0] and dest["port"]["number"] == backend.mesh_service[1]
        assert route.mesh_service == f"{dest['host']}:{dest['port']['number']}"
    # Names of components outside the mesh (Grafana, OnCall) stay on NGINX and off the Gateway.
    others = [r for r in plan.edge.routes if r not in meshed]
    assert others and all(r.mesh_service is None and r.hostname not in services for r in others)
    assert all(urlparse(r.service).hostname != urlparse(meshed[0].service).hostname for r in others if r.backend)
    # cloudflared is a trusted hop: the client's X-Forwarded-For and X-Forwarded-Proto (https) survive the gateway.
    topology = json.loads(gateway.values["podAnnotations"]["proxy.istio.io/config"])["gatewayTopology"]
    assert topology == {"numTrustedProxies": 1}
    # Flagger's canaries shape these requests only if it writes Istio VirtualServices.
    assert plan.components["flagger"].values["meshProvider"] == "istio"


def test_the_public_names_in_the_mesh_are_closed_to_the_lan(tmp_path):
    """The ingress gateway's Service is also a LAN LoadBalancer: a request for a public name from outside the pod
    network (past Cloudflare Access) is denied, with or without a port in its Host."""
    plan = plan_with(tmp_path)
    (policy,) = _mesh_objects(plan, "AuthorizationPolicy")
    (gw,) = _mesh_objects(plan, "Gateway")
    assert policy["spec"]["action"] == "DENY"
    assert policy["spec"]["selector"]["matchLabels"] == gw["spec"]["selector"]
    (rule,) = policy["spec"]["rules"]
    assert rule["from"] == [{"source": {"notIpBlocks": [plan.config.cluster.cluster_cidr]}}]
    hosts = gw["spec"]["servers"][0]["hosts"]
    assert sorted(rule["to"][0]["operation"]["hosts"]) == sorted(hosts + [f"{h}:*" for h in hosts])


def test_a_name_sent_to_the_gateway_by_origin_joins_it_without_a_virtual_service(tmp_path):
    """An app under Flagger: its hostname's origin is the gateway; the Gateway admits it (and guards it from the
    LAN), and the Canary, not the planner, writes its VirtualService."""
    cfg = yaml.safe_load(DESCRIPTION_CONFIG.read_text())
    origin = next(r.service for r in plan_with(tmp_path).edge.routes if r.mesh_service)  # the gateway's URL
    cfg["cloudflare"]["hostnames"].append({"name": f"podinfo.{cfg['domain']}", "origin": origin})
    path = tmp_path / "canary.yaml"
    path.write_text(yaml.safe_dump(cfg))
    plan = load_plan(path)
    (gw,) = _mesh_objects(plan, "Gateway")
    assert f"podinfo.{cfg['domain']}" in gw["spec"]["servers"][0]["hosts"]
    (policy,) = _mesh_objects(plan, "AuthorizationPolicy")
    assert f"podinfo.{cfg['domain']}" in policy["spec"]["rules"][0]["to"][0]["operation"]["hosts"]
    assert all(f"podinfo.{cfg['domain']}" not in vs["spec"]["hosts"] for vs in _mesh_objects(plan, "VirtualService"))


def test_no_gateway_objects_when_no_public_name_enters_the_mesh(tmp_path):
    plan = plan_with(tmp_path, drop_hostnames=("flagsmith.",))
    assert not [m for m in plan.manifests if m.release == "istio-public-gateway"]


def test_strict_mtls_is_refused_while_a_public_hostname_stays_outside_the_mesh(tmp_path):
    """Without the ingress gateway, NGINX (not injected) sends plain text to a meshed backend: STRICT would cut
    that public hostname, so it is refused."""
    from planner.files import ConfigError

    with pytest.raises(ConfigError) as exc:
        plan_with(tmp_path, mesh={"mtls": "strict"}, disable=("istio-ingressgateway",))
    problems = [p for p in exc.value.problems if p.path == "mesh.mtls"]
    assert problems and all("docs/mesh.md" in p.message for p in problems)
    assert any("flagsmith" in p.message for p in problems)
    # Permissive (Istio's default) renders no PeerAuthentication at all: nothing changes for today's traffic.
    assert _peer_authentications(plan_with(tmp_path)) == []


def test_strict_mtls_holds_once_public_traffic_enters_the_mesh(tmp_path):
    """Defect 4: with the ingress gateway in front of the meshed apps, STRICT is accepted (the old code refused
    it for every public name of an injected namespace) and renders a STRICT policy per injected namespace."""
    plan = plan_with(tmp_path, mesh={"mtls": "strict"})
    defaults = [p for p in _peer_authentications(plan) if "selector" not in p["spec"]]
    assert {p["metadata"]["namespace"] for p in defaults} == _injected(plan)
    assert all(p["spec"]["mtls"]["mode"] == "STRICT" for p in defaults)


def test_strict_mtls_with_its_permissive_exceptions(tmp_path):
    permissive = [{"namespace": "production", "match_labels": {"app.kubernetes.io/name": "flagsmith"},
                   "ports": [8000], "why": "Prometheus scrapes the API's /metrics"}]
    plan = plan_with(tmp_path, mesh={"mtls": "strict", "permissive": permissive}, drop_hostnames=("flagsmith.",))
    policies = _peer_authentications(plan)
    injected = sorted(ns for ns, spec in plan.config.namespaces.items() if spec.labels.get("istio-injection") == "enabled")
    defaults = [p for p in policies if "selector" not in p["spec"]]
    assert sorted(p["metadata"]["namespace"] for p in defaults) == injected and len(injected) >= 2
    assert all(p["spec"]["mtls"]["mode"] == "STRICT" for p in policies)
    (exception,) = [p for p in policies if "selector" in p["spec"]]
    assert exception["spec"]["portLevelMtls"] == {"8000": {"mode": "PERMISSIVE"}}
    assert exception["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": "flagsmith"}
    # After istiod (its validating webhook) and so after the CRDs.
    (release,) = [m for m in plan.manifests if any(r["kind"] == "PeerAuthentication" for r in m.resources)]
    assert release.after == (provider(plan, "service-mesh").id,)


def test_a_permissive_exception_names_a_meshed_namespace(tmp_path):
    from planner.files import ConfigError

    bad = [{"namespace": "monitoring", "match_labels": {"app": "x"}, "ports": [9090], "why": "scrapes"}]
    with pytest.raises(ConfigError) as exc:
        plan_with(tmp_path, mesh={"mtls": "strict", "permissive": bad}, drop_hostnames=("flagsmith.",))
    assert [p.path for p in exc.value.problems] == ["mesh.permissive[0].namespace"]


@pytest.mark.parametrize("egress, mode", [(None, "ALLOW_ANY"), ("registry-only", "REGISTRY_ONLY")])
def test_the_egress_policy_is_an_option(tmp_path, egress, mode):
    plan = plan_with(tmp_path, mesh={"egress": egress} if egress else None)
    assert provider(plan, "service-mesh").values["meshConfig"]["outboundTrafficPolicy"] == {"mode": mode}


@pytest.mark.parametrize("cid, path", [
    ("loki", "monitoring.dashboards.enabled"),
    ("cloudnative-pg", "monitoring.grafanaDashboard.create"),
    ("seaweedfs", "global.seaweedfs.monitoring.enabled"),  # the chart's dashboard ConfigMap comes with its monitors
])
def test_the_charts_own_dashboards_are_on(tmp_path, cid, path):
    plan = plan_with(tmp_path)
    assert _at(plan.components[cid].values, path) is True
    assert plan.components["grafana"].values["sidecar"]["dashboards"]["searchNamespace"] == "ALL"
