"""The Cloudflare edge: the tunnel, its ingress rules and CNAMEs, the token crossing into the network layer,
the API token secrets for external-dns and cert-manager, the ClusterIssuers, and the config rules."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
REF = re.compile(r"^\$\{[^${}]+\}$")  # one whole Terraform reference, nothing literal around it
ORIGIN = "http://ingress-external-nginx-ingress-controller.network.svc.cluster.local:80"


def only(mapping: dict) -> tuple[str, dict]:
    assert len(mapping) == 1, list(mapping)
    return next(iter(mapping.items()))


def by_name(resources: dict, name: str) -> tuple[str, dict]:
    found = [(k, r) for k, r in resources.items() if r.get("name") == name or r.get("metadata", {}).get("name") == name]
    assert len(found) == 1, (name, [k for k, _ in found])
    return found[0]


# --- the construct on its own -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def construct_json():
    """Two tunnels in one small stack: one protected with two routes on one hostname, one unprotected."""
    from cdktf import Testing, TerraformStack
    from cdktf_cdktf_provider_cloudflare.provider import CloudflareProvider

    from constructs_lib.cloudflare_tunnel import CloudflareTunnel, CloudflareTunnelProps, TunnelRoute

    app = Testing.app()
    stack = TerraformStack(app, "t")
    CloudflareProvider(stack, "cf", api_token="placeholder-not-a-secret")
    CloudflareTunnel(
        stack,
        "main",
        props=CloudflareTunnelProps(
            account_id="a" * 32,
            zone_id="b" * 32,
            name="main",
            routes=[
                TunnelRoute("app.example.com", "http://api.default.svc:8080", path="^/api/"),
                TunnelRoute("app.example.com", "http://web.default.svc:80"),
                TunnelRoute("docs.example.com", "http://docs.default.svc:80"),
            ],
            secret_bytes=48,
        ),
    )
    CloudflareTunnel(
        stack,
        "scratch",
        props=CloudflareTunnelProps(
            account_id="a" * 32,
            zone_id="b" * 32,
            name="scratch",
            routes=[TunnelRoute("scratch.example.com", "http://s.default.svc:80")],
            catch_all_service="http_status:503",
            protect=False,
        ),
    )
    return json.loads(Testing.synth(stack))


def _of_tunnel(resources: dict, tunnel: str) -> dict:
    return {k: v for k, v in resources.items() if k.startswith(f"{tunnel}_")}


def test_construct_routes_in_order_then_catch_all(construct_json):
    configs = construct_json["resource"]["cloudflare_zero_trust_tunnel_cloudflared_config"]
    assert len(configs) == 2  # exactly one config per tunnel
    _, main = only(_of_tunnel(configs, "main"))
    ingress = main["config"]["ingress"]
    assert ingress[:3] == [
        {"hostname": "app.example.com", "path": "^/api/", "service": "http://api.default.svc:8080"},
        {"hostname": "app.example.com", "service": "http://web.default.svc:80"},
        {"hostname": "docs.example.com", "service": "http://docs.default.svc:80"},
    ]
    assert ingress[-1] == {"service": "http_status:404"} and len(ingress) == 4
    _, scratch = only(_of_tunnel(configs, "scratch"))
    assert scratch["config"]["ingress"][-1] == {"service": "http_status:503"}


def test_construct_one_cname_per_distinct_hostname(construct_json):
    records = construct_json["resource"]["cloudflare_dns_record"]
    main = _of_tunnel(records, "main")
    assert sorted(r["name"] for r in main.values()) == ["app.example.com", "docs.example.com"]
    tunnel_key, _ = only(_of_tunnel(construct_json["resource"]["cloudflare_zero_trust_tunnel_cloudflared"], "main"))
    for record in main.values():
        assert record["content"] == f"${{cloudflare_zero_trust_tunnel_cloudflared.{tunnel_key}.id}}.cfargotunnel.com"
        assert (record["type"], record["proxied"], record["ttl"], record["zone_id"]) == ("CNAME", True, 1, "b" * 32)


def test_construct_secret_is_generated_and_protection_is_a_prop(construct_json):
    res = construct_json["resource"]
    secret_key, secret = only(_of_tunnel(res["random_bytes"], "main"))
    assert secret["length"] == 48
    _, tunnel = only(_of_tunnel(res["cloudflare_zero_trust_tunnel_cloudflared"], "main"))
    assert tunnel["config_src"] == "cloudflare"
    assert tunnel["tunnel_secret"] == f"${{random_bytes.{secret_key}.base64}}"
    for rtype in ("random_bytes", "cloudflare_zero_trust_tunnel_cloudflared", "cloudflare_zero_trust_tunnel_cloudflared_config", "cloudflare_dns_record"):
        for key, r in res[rtype].items():
            expected = key.startswith("main_")
            assert r.get("lifecycle", {}).get("prevent_destroy", False) is expected, (rtype, key)


def test_construct_rejects_bad_props():
    from constructs_lib.cloudflare_tunnel import CloudflareTunnelProps, TunnelRoute

    route = TunnelRoute("a.example.com", "http://a:80")
    with pytest.raises(ValueError, match="at least one route"):
        CloudflareTunnelProps(account_id="a", zone_id="b", name="n", routes=[])
    with pytest.raises(ValueError, match="at least 32 bytes"):
        CloudflareTunnelProps(account_id="a", zone_id="b", name="n", routes=[route], secret_bytes=16)
    with pytest.raises(ValueError, match="listed twice"):
        CloudflareTunnelProps(account_id="a", zone_id="b", name="n", routes=[route, route])


# --- the origin: the external ingress controller's Service -----------------------------------------------


def test_origin_follows_nginx_ingress_chart_naming(plan):
    from dataclasses import replace

    from stacks.edge import ingress_origin

    comp = plan.components["ingress-external"]
    assert (comp.chart, comp.release_name, comp.namespace) == ("nginx-ingress", "ingress-external", "network")
    assert comp.values["controller"]["service"]["type"] == "ClusterIP"
    assert ingress_origin(comp, "cluster.local") == ORIGIN
    # The chart's _helpers.tpl rules: release containing the chart name, overrides, custom port.
    assert ingress_origin(replace(comp, release_name="nginx-ingress-public", values={}), "c.l") == (
        "http://nginx-ingress-public-controller.network.svc.c.l:80"
    )
    assert ingress_origin(replace(comp, values={"fullnameOverride": "edge"}), "c.l").startswith("http://edge-controller.")
    assert ingress_origin(
        replace(comp, values={"serviceNameOverride": "pub", "controller": {"service": {"httpPort": {"port": 8080}}}}), "c.l"
    ) == "http://pub.network.svc.c.l:8080"


# --- the edge stack -----------------------------------------------------------------------------------


def test_edge_tunnel_is_remotely_managed_with_generated_secret(synth):
    res = synth.stack("edge")["resource"]
    secret_key, secret = only(res["random_bytes"])
    assert secret["length"] >= 32
    _, tunnel = only(res["cloudflare_zero_trust_tunnel_cloudflared"])
    assert tunnel["config_src"] == "cloudflare"
    assert tunnel["name"] == "helix"
    assert tunnel["tunnel_secret"] == f"${{random_bytes.{secret_key}.base64}}"


def test_edge_ingress_rules_route_every_hostname_to_external_ingress(synth, plan):
    res = synth.stack("edge")["resource"]
    tunnel_key, _ = only(res["cloudflare_zero_trust_tunnel_cloudflared"])
    _, config = only(res["cloudflare_zero_trust_tunnel_cloudflared_config"])  # only one config per tunnel
    assert config["tunnel_id"] == f"${{cloudflare_zero_trust_tunnel_cloudflared.{tunnel_key}.id}}"
    ingress = config["config"]["ingress"]
    hostnames = plan.config.cloudflare.hostnames
    assert [r.get("hostname") for r in ingress[:-1]] == hostnames
    assert all(r["service"] == ORIGIN for r in ingress[:-1])
    assert ingress[-1] == {"service": "http_status:404"}


def test_edge_one_proxied_cname_per_hostname(synth, plan):
    res = synth.stack("edge")["resource"]
    tunnel_key, _ = only(res["cloudflare_zero_trust_tunnel_cloudflared"])
    records = res["cloudflare_dns_record"]
    assert sorted(r["name"] for r in records.values()) == sorted(plan.config.cloudflare.hostnames)
    for record in records.values():
        assert record["type"] == "CNAME" and record["proxied"] is True and record["ttl"] == 1
        assert record["content"] == f"${{cloudflare_zero_trust_tunnel_cloudflared.{tunnel_key}.id}}.cfargotunnel.com"
        assert record["zone_id"] == plan.config.cloudflare.zone_id


def test_edge_tunnel_config_and_records_refuse_destroy(synth):
    res = synth.stack("edge")["resource"]
    for rtype in ("cloudflare_zero_trust_tunnel_cloudflared", "cloudflare_zero_trust_tunnel_cloudflared_config", "cloudflare_dns_record"):
        assert res[rtype]
        for key, r in res[rtype].items():
            assert r["lifecycle"]["prevent_destroy"] is True, (rtype, key)


def test_edge_token_is_read_by_data_source_and_output_sensitive(synth):
    edge = synth.stack("edge")
    tunnel_key, _ = only(edge["resource"]["cloudflare_zero_trust_tunnel_cloudflared"])
    token_key, token = only(edge["data"]["cloudflare_zero_trust_tunnel_cloudflared_token"])
    assert token["tunnel_id"] == f"${{cloudflare_zero_trust_tunnel_cloudflared.{tunnel_key}.id}}"
    token_ref = f"${{data.cloudflare_zero_trust_tunnel_cloudflared_token.{token_key}.token}}"
    assert edge["output"]["tunnel_token"] == {
        "description": edge["output"]["tunnel_token"]["description"],
        "sensitive": True,
        "value": token_ref,
    }
    # Every output carrying the token (ours and the one cdktf generates for the cross-stack reference).
    carrying = {name: o for name, o in edge["output"].items() if "cloudflared_token" in json.dumps(o["value"])}
    assert len(carrying) == 2 and all(o.get("sensitive") is True for o in carrying.values()), carrying


def test_edge_api_token_is_a_sensitive_variable(synth):
    edge = synth.stack("edge")
    var = edge["variable"]["cloudflare_api_token"]
    assert var["sensitive"] is True and "default" not in var
    assert edge["provider"]["cloudflare"][0]["api_token"] == "${var.cloudflare_api_token}"


# --- the network layer ------------------------------------------------------------------------------


def _cross_stack_token_output(synth) -> str:
    edge = synth.stack("edge")
    names = [n for n in edge["output"] if n.startswith("cross-stack-output-") and "cloudflared_token" in n]
    assert len(names) == 1, names
    assert edge["output"][names[0]]["sensitive"] is True
    return names[0]


def test_cloudflared_gets_token_only_as_sensitive_remote_state_reference(synth):
    output = _cross_stack_token_output(synth)
    network = synth.stack("network")
    stack, release = synth.releases()["cloudflared"]
    assert stack == "network"
    remote_key = next(k for k in network["data"]["terraform_remote_state"] if k.endswith("-edge"))
    expected = f"${{data.terraform_remote_state.{remote_key}.outputs.{output}}}"
    assert release["set_sensitive"] == [{"name": "cloudflare.tunnel_token", "value": expected}]
    assert "tunnel_token" not in "".join(release.get("values", [])) and "set" not in release
    _, secret = by_name(synth.resources("network", "kubernetes_secret_v1"), "cloudflared-tunnel-token")
    assert secret["metadata"]["namespace"] == "network" and secret["data"] == {"token": expected}
    # The image is pinned (the chart would run :latest).
    values = yaml.safe_load(release["values"][0])
    assert re.match(r"^\d{4}\.\d+\.\d+$", values["image"]["tag"])


def test_external_dns_reads_the_api_token_secret(synth, plan):
    network = synth.stack("network")
    var = network["variable"]["cloudflare_api_token"]
    assert var["sensitive"] is True and "default" not in var
    secret_key, secret = by_name(synth.resources("network", "kubernetes_secret_v1"), "cloudflare-api-token")
    assert secret["metadata"]["namespace"] == "network"
    assert secret["data"] == {"api-token": "${var.cloudflare_api_token}"}
    stack, release = synth.releases()["external-dns"]
    assert stack == "network" and release["namespace"] == "network"
    assert f"kubernetes_secret_v1.{secret_key}" in release["depends_on"]
    values = yaml.safe_load(release["values"][0])
    env = {e["name"]: e for e in values["env"]}
    assert env["CF_API_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "cloudflare-api-token", "key": "api-token"}
    assert values["provider"]["name"] == "cloudflare"
    assert values["domainFilters"] == [plan.config.domain]
    assert values["registry"] == "txt" and values["txtOwnerId"] == plan.config.name


# --- the foundation layer: cert-manager -------------------------------------------------------------------


def test_cert_manager_secret_and_cluster_issuers(synth, plan):
    secret_key, secret = by_name(synth.resources("foundation", "kubernetes_secret_v1"), "cloudflare-api-token")
    assert secret["metadata"]["namespace"] == "cert-manager"
    assert secret["data"] == {"api-token": "${var.cloudflare_api_token}"}
    assert synth.stack("foundation")["variable"]["cloudflare_api_token"]["sensitive"] is True
    assert any(d.startswith("kubernetes_namespace_v1.") for d in secret["depends_on"])

    releases = synth.releases()
    cm_stack, cert_manager = releases["cert-manager"]
    stack, issuers = releases["cluster-issuers"]
    assert stack == cm_stack == "foundation"
    cm_key = next(k for k, r in synth.resources("foundation", "helm_release").items() if r["name"] == "cert-manager")
    assert f"helm_release.{cm_key}" in issuers["depends_on"]
    assert f"kubernetes_secret_v1.{secret_key}" in issuers["depends_on"]
    chart = plan.raw_chart
    assert (issuers["repository"], issuers["chart"], issuers["version"]) == (chart.repository, chart.chart, chart.version)
    assert issuers["namespace"] == "cert-manager"

    manifests = yaml.safe_load(issuers["values"][0])["resources"]
    servers = {
        "letsencrypt-staging": "https://acme-staging-v02.api.letsencrypt.org/directory",
        "letsencrypt-production": "https://acme-v02.api.letsencrypt.org/directory",
    }
    assert sorted(m["metadata"]["name"] for m in manifests) == sorted(servers)
    for m in manifests:
        assert (m["apiVersion"], m["kind"]) == ("cert-manager.io/v1", "ClusterIssuer")
        acme = m["spec"]["acme"]
        assert acme["server"] == servers[m["metadata"]["name"]]
        assert acme["email"] == plan.config.acme_email
        (solver,) = acme["solvers"]
        assert solver["selector"] == {"dnsZones": [plan.config.domain]}
        assert solver["dns01"]["cloudflare"]["apiTokenSecretRef"] == {"name": "cloudflare-api-token", "key": "api-token"}
    # No kubernetes_manifest: it would need cert-manager's CRDs at plan time.
    assert not synth.all_resources("kubernetes_manifest")


# --- no secret anywhere in the output -------------------------------------------------------------------


def test_no_secret_literal_in_output(synth):
    tokenish = re.compile(r"eyJ[A-Za-z0-9+/_-]{20,}")  # a tunnel token is base64 JSON
    for path in synth.outdir.rglob("*.json"):
        assert not tokenish.search(path.read_text()), path
    for name in synth.stack_names:
        stack = synth.stack(name)
        var = stack.get("variable", {}).get("cloudflare_api_token")
        if var is not None:
            assert var["sensitive"] is True and "default" not in var, name
        for key, release in synth.resources(name, "helm_release").items():
            for item in release.get("set_sensitive", []):
                assert REF.match(item["value"]), (name, key, item["name"])
        for key, secret in synth.resources(name, "kubernetes_secret_v1").items():
            if secret["metadata"]["name"] in ("cloudflare-api-token", "cloudflared-tunnel-token"):
                assert all(REF.match(v) for v in secret["data"].values()), (name, key)


# --- config rules -------------------------------------------------------------------------------------

RULE_FIXTURES = [
    "hostname-outside-zone",
    "duplicate-hostnames",
    "bad-cloudflare-id",
    "missing-zone-id",
    "missing-account-id",
    "tunnel-without-hostnames",
    "cloudflared-without-tunnel",
]


@pytest.mark.parametrize("name", RULE_FIXTURES)
def test_each_cloudflare_rule_has_one_clear_error(name):
    from planner.files import ConfigError
    from planner.load import load_plan

    path = FIXTURES / "invalid" / f"{name}.yaml"
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect: ")
    with pytest.raises(ConfigError) as err:
        load_plan(path)
    problems = [str(p) for p in err.value.problems]
    assert len(problems) == 1 and first.removeprefix("# expect: ") in problems[0], problems


@pytest.mark.parametrize("name", ["cloudflare-disabled", "cloudflare-tunnel-existing-cluster"])
def test_valid_cloudflare_fixtures_load(name):
    from planner.load import load_plan

    load_plan(FIXTURES / "valid" / f"{name}.yaml")


def test_without_tunnel_there_is_no_edge_stack_but_dns_secrets_remain(tmp_path):
    """Built (not synthesized): stack and construct composition only."""
    from stacks.app import build_app
    from planner.load import load_plan

    app = build_app(load_plan(FIXTURES / "valid" / "cloudflare-disabled.yaml"), str(tmp_path))
    stacks = {c.node.id: c for c in app.node.children}
    assert "edge" not in stacks and "network" in stacks
    addons = stacks["network"].addons
    assert ("network", "cloudflared-tunnel-token") not in addons.secrets
    assert ("network", "cloudflare-api-token") in addons.secrets


def test_without_external_ingress_the_hostnames_answer_503(tmp_path):
    """A cluster file with the tunnel but no ingress-external (nor cloudflared): the tunnel has no origin."""
    from stacks.app import build_app
    from planner.load import load_plan

    plan = load_plan(FIXTURES / "valid" / "provision-with-overrides.yaml")
    assert "ingress-external" not in plan.components and plan.config.cloudflare.enabled
    app = build_app(plan, str(tmp_path))
    edge = next(c for c in app.node.children if c.node.id == "edge")
    routes = edge.tunnel.props.routes
    assert [r.hostname for r in routes] == plan.config.cloudflare.hostnames
    assert {r.service for r in routes} == {"http_status:503"}


def _public_ingresses(values, found: list[dict]) -> list[dict]:
    """Every Ingress spec in a chart's values whose class is the tunnel's ingress class."""
    if isinstance(values, dict):
        if "nginx-external" in (values.get("ingressClassName"), values.get("className")) and values.get("enabled", True):
            found.append(values)
        for value in values.values():
            _public_ingresses(value, found)
    elif isinstance(values, list):
        for value in values:
            _public_ingresses(value, found)
    return found


def test_public_ingresses_are_routed_by_the_tunnel_and_have_no_tls(synth):
    import yaml

    _, config = only(synth.resources("edge", "cloudflare_zero_trust_tunnel_cloudflared_config"))
    routed = {rule.get("hostname") for rule in config["config"]["ingress"]}
    ingresses = []
    for _, release in synth.releases().values():
        for doc in release.get("values", []):
            values = yaml.safe_load(doc.replace("$${", "${"))
            # Some charts (OnCall) derive the Ingress host from a top-level base_url.
            ingresses += [(i, values.get("base_url")) for i in _public_ingresses(values, [])]
    assert len(ingresses) >= 3  # grafana, oncall, flagsmith
    for ingress, base_url in ingresses:
        hosts = [h if isinstance(h, str) else h.get("host") for h in ingress.get("hosts", [])] or [base_url]
        assert hosts and set(hosts) <= routed, (hosts, sorted(h for h in routed if h))
        # The tunnel sends plain HTTP to NGINX; a tls section would make NGINX redirect it to HTTPS forever.
        assert not ingress.get("tls"), hosts
