"""The nodes stack: k3s on the configured machines, and the cluster access the later stacks read."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from planner.schema import Node
from tests.conftest import ROOT, Synth
from tests.helpers import (
    _provisioners,
    _uploaded,
    drains,
    hosts,
    install_script,
    load_config,
    nodes_stack_of,
    removed_blocks,
    script_var,
)

FIXTURES = ROOT / "tests" / "fixtures"
VERSION = "v1.35.5+k3s1"
# The bootstrap server's install.sh: true only in the apply that created the cluster-init record.
MAY_INIT = re.compile(r"^\$\{terraform_data\.k3s_cluster-init_[0-9A-F]{8}\.output == plantimestamp\(\)\}$")
API = "https://10.20.0.10:6443"


# --- helpers -----------------------------------------------------------------------------------------------


def rolls(stack: dict) -> dict[str, dict]:
    """Config roll resources by node name."""
    return {r["triggers"]["node"]: r for r in stack["resource"]["null_resource"].values() if "fingerprint" in r.get("triggers", {})}


def config_text(resource: dict) -> tuple[str, str]:
    """config.yaml as uploaded: (the literal YAML, the Terraform yamlencode(...) expression after it or '')."""
    content = _uploaded(resource, "/config.yaml")
    literal, sep, rest = content.partition("${yamlencode(")
    return literal.replace("$${", "${"), (sep + rest) if sep else ""


def node_config(resource: dict) -> dict:
    return yaml.safe_load(config_text(resource)[0])


def address_of(stack: dict, res: dict) -> str:
    for key, candidate in stack["resource"]["null_resource"].items():
        if candidate is res:
            return f"null_resource.{key}"
    raise KeyError


@pytest.fixture(scope="module")
def nodes(synth: Synth) -> dict:
    return synth.stack("nodes")


# --- the default config: 3 servers, 4 agents -----------------------------------------------------------------


def test_default_config_provisions_three_servers_and_four_agents(description_synth):
    machines = hosts(description_synth.stack("nodes"))
    assert len(machines) == 7
    roles = sorted(r["triggers"]["role"] for r in machines.values())
    assert roles == ["agent"] * 4 + ["server"] * 3


def test_every_configured_node_is_provisioned(nodes, plan):
    machines = hosts(nodes)
    assert sorted(machines) == sorted(node.name for node in plan.config.cluster.nodes)
    for node in plan.config.cluster.nodes:
        res = machines[node.name]
        assert res["triggers"] == {"name": node.name, "address": node.address, "role": node.role}
        assert res["connection"]["host"] == node.address
        assert node_config(res)["node-ip"] == node.address
        assert node_config(res)["node-name"] == node.name


def test_the_bootstrap_server_is_explicit_and_initializes_only_when_nothing_answers(nodes, plan):
    assert plan.config.cluster.bootstrap_node == "helix-server-1"
    machines = hosts(nodes)
    scripts = {name: install_script(res) for name, res in machines.items()}
    # No static cluster-init anywhere: install.sh decides on the machine (tests/test_node_scripts.py runs it).
    for name, res in machines.items():
        cfg = node_config(res)
        assert "cluster-init" not in cfg, name
        if res["triggers"]["role"] == "server":
            assert "server" not in cfg, name
            assert "10.20.0.10" in cfg["tls-san"], name
            assert script_var(scripts[name], "endpoint") == API
            # The bootstrap server may initialize only in the apply that records the initialization in state.
            may = script_var(scripts[name], "may_initialize")
            assert MAY_INIT.match(may) if name == "helix-server-1" else may == "false", (name, may)
            peers = script_var(scripts[name], "peers").split()
            assert f"https://{res['triggers']['address']}:6443" not in peers
            assert len(peers) == 2
        else:
            assert cfg["server"] == API, name
            assert "may_initialize" not in scripts[name]
            # An agent falls back to the servers while the endpoint does not answer.
            assert len(script_var(scripts[name], "peers").split()) == 3
    # The bootstrap role is not list position: naming another server moves only who may initialize.
    cfg = plan.config
    reordered = cfg.model_copy(update={"cluster": cfg.cluster.model_copy(update={"bootstrap_node": "helix-server-3"})})
    other = hosts(nodes_stack_of(reordered))
    assert MAY_INIT.match(script_var(install_script(other["helix-server-3"]), "may_initialize"))
    assert script_var(install_script(other["helix-server-1"]), "may_initialize") == "false"
    assert {n: r["triggers"] for n, r in other.items()} == {n: r["triggers"] for n, r in machines.items()}


def test_servers_join_one_at_a_time_and_agents_after_every_server(nodes):
    machines = hosts(nodes)
    addr = {name: address_of(nodes, res) for name, res in machines.items()}
    (guard,) = [k for k in nodes["resource"]["terraform_data"] if "cluster-flags" in k]
    (check,) = [k for k in nodes["resource"]["null_resource"] if "endpoint-check" in k]
    assert machines["helix-server-1"]["depends_on"] == [f"terraform_data.{guard}"]
    # The endpoint serves the cluster (checked on server 1) before anything else joins through it.
    assert nodes["resource"]["null_resource"][check]["depends_on"] == [addr["helix-server-1"]]
    assert machines["helix-server-2"]["depends_on"] == [addr["helix-server-1"], f"null_resource.{check}"]
    assert machines["helix-server-3"]["depends_on"] == [addr["helix-server-2"]]
    servers = {addr[f"helix-server-{i}"] for i in (1, 2, 3)} | {f"null_resource.{check}"}
    for i in range(1, 5):
        assert set(machines[f"helix-agent-{i}"]["depends_on"]) == servers


def test_every_node_installs_with_the_release_tag_installer_checked_by_sha256(nodes):
    (record,) = [k for k in nodes["resource"]["terraform_data"] if "join-version" in k]
    for name, res in hosts(nodes).items():
        script = install_script(res)
        role = res["triggers"]["role"]
        assert script_var(script, "installer_url") == "https://raw.githubusercontent.com/k3s-io/k3s/v1.29.1%2Bk3s2/install.sh"
        assert script_var(script, "installer_sha256") == "431c6fe653336279073e5b913557aa22d7ef1794b30b4f02002b4482910464d7"
        # The recorded join version, not k3s_version itself: a node never comes up newer than the servers.
        assert script_var(script, "version") == f"${{terraform_data.{record}.output}}"
        assert 'INSTALL_K3S_VERSION="$version" INSTALL_K3S_SKIP_START=true INSTALL_K3S_EXEC="$role"' in script
        assert f"role={role}" in script
        # No pipe into sh, and a start that never blocks.
        assert not re.search(r"\|\s*(sudo\s+)?(ba)?sh\b", script)
        assert re.search(r'^timeout 30 systemctl start --no-block "\$service"$', script, re.M)
        assert not re.search(r"systemctl start (?!--no-block)", script)
        # The installer runs last, after the staged files were uploaded.
        kinds = [(k, b.get("destination", "")) for k, b in _provisioners(res)]
        assert kinds[-1][0] == "remote-exec" and kinds[-2] == ("file", "/tmp/k3s-provision/install.sh")
        assert res["provisioner"][-1]["remote-exec"]["inline"] == ["sh /tmp/k3s-provision/install.sh"]


def test_new_nodes_install_the_recorded_version_and_a_check_shows_a_pending_record(nodes):
    (key,) = [k for k in nodes["resource"]["terraform_data"] if "join-version" in k]
    record = nodes["resource"]["terraform_data"][key]
    assert record["input"] == VERSION and record["lifecycle"]["ignore_changes"] == ["input"]
    (check,) = nodes["check"].values()
    (assertion,) = check["assert"]
    assert assertion["condition"] == f'${{terraform_data.{key}.output == "{VERSION}"}}'
    assert f"terraform apply -replace=terraform_data.{key}" in assertion["error_message"]


def test_version_changes_never_reinstall_a_node(nodes):
    """The version is in the install script only: provisioners run at creation, triggers decide replacement."""
    for name, res in hosts(nodes).items():
        assert VERSION not in json.dumps(res["triggers"]), name
        assert "config" not in json.dumps(res["triggers"]), name
        assert "replace_triggered_by" not in res.get("lifecycle", {}), name
    for name, res in rolls(nodes).items():
        assert VERSION not in json.dumps(res["triggers"]), name


def test_cilium_replaces_flannel_network_policy_and_kube_proxy(nodes):
    machines = hosts(nodes)
    server_configs = [node_config(r) for r in machines.values() if r["triggers"]["role"] == "server"]
    assert len(server_configs) == 3
    for cfg in server_configs:
        assert cfg["flannel-backend"] == "none"
        assert cfg["disable-network-policy"] is True
        assert cfg["disable-kube-proxy"] is True
        assert {"traefik", "metrics-server", "coredns", "servicelb", "local-storage"} <= set(cfg["disable"])
        assert cfg["cluster-cidr"] == "10.42.0.0/16" and cfg["service-cidr"] == "10.43.0.0/16"
        assert cfg["cluster-dns"] == "10.43.0.10" and cfg["cluster-domain"] == "cluster.local"
    # Flags that must match on every server (docs.k3s.io) do.
    shared = lambda c: {k: v for k, v in c.items() if k not in {"node-name", "node-ip", "cluster-init", "server"}}
    assert shared(server_configs[0]) == shared(server_configs[1]) == shared(server_configs[2])
    for res in machines.values():
        if res["triggers"]["role"] == "agent":
            cfg = node_config(res)
            assert not {"disable", "flannel-backend", "cluster-init", "tls-san"} & set(cfg)
            assert cfg["node-label"] == ["node.kubernetes.io/pool=general"]


def test_etcd_snapshots_on_a_schedule_with_retention(nodes):
    for res in hosts(nodes).values():
        if res["triggers"]["role"] == "server":
            cfg = node_config(res)
            assert cfg["etcd-snapshot-schedule-cron"] == "0 */6 * * *"
            assert cfg["etcd-snapshot-retention"] == 20
            assert "etcd-s3" not in cfg


# --- credentials and secrets -----------------------------------------------------------------------------------


def test_tokens_are_ca_pinned_and_agents_never_see_the_server_token(nodes):
    passwords = nodes["resource"]["random_password"]
    assert set(passwords) == {"k3s_token_35278460", "k3s_agent-token_5B3E0A39"}
    for pw in passwords.values():
        assert pw["length"] >= 32 and pw["special"] is False
    certs = nodes["resource"]["tls_self_signed_cert"]
    (server_ca,) = [k for k, c in certs.items() if c["subject"][0]["common_name"] == "k3s-server-ca"]
    pin = f"K10${{sha256(tls_self_signed_cert.{server_ca}.cert_pem)}}"
    server_token = f"{pin}::server:${{random_password.k3s_token_35278460.result}}"
    agent_token = f"{pin}::node:${{random_password.k3s_agent-token_5B3E0A39.result}}"
    for name, res in hosts(nodes).items():
        role = res["triggers"]["role"]
        uploads = {b["destination"].rsplit("/", 1)[1]: b["content"] for k, b in _provisioners(res) if k == "file"}
        assert uploads["token"] == (server_token if role == "server" else agent_token), name
        assert node_config(res)["token-file"] == "/etc/rancher/k3s/token"
        assert uploads["server-ca.crt"] == f"${{tls_self_signed_cert.{server_ca}.cert_pem}}"
        text = json.dumps(res)
        if role == "server":
            assert uploads["agent-token"] == "${random_password.k3s_agent-token_5B3E0A39.result}"
            assert node_config(res)["agent-token-file"] == "/etc/rancher/k3s/agent-token"
        else:
            assert "k3s_token_35278460" not in text, f"{name} must not see the server token"
            assert "agent-token" not in node_config(res)
    for name, res in rolls(nodes).items():
        if res["connection"]["host"] in {h["triggers"]["address"] for h in hosts(nodes).values() if h["triggers"]["role"] == "agent"}:
            assert "k3s_token_35278460" not in json.dumps(res), name


def test_no_secret_in_the_synth_output_a_trigger_or_a_command_line(synth, nodes):
    text = "\n".join(p.read_text() for p in synth.outdir.rglob("*.json"))
    assert "PRIVATE KEY" not in text
    assert "BEGIN CERTIFICATE" not in text
    for res in nodes["resource"]["null_resource"].values():
        # A secret in a trigger only as its sha256 (what the rolls and the token rotation track), never the value.
        hashed = [v for v in res.get("triggers", {}).values() if re.fullmatch(r"\$\{sha256\([^{}]*\)\}", v)]
        triggers = json.dumps({k: v for k, v in res.get("triggers", {}).items() if v not in hashed})
        assert "random_password" not in triggers and "private_key" not in triggers and "var.ssh_private_key" not in triggers
        assert all("private_key" not in v for v in hashed)
        for kind, body in _provisioners(res):
            if kind == "remote-exec":
                # Commands run on the machines: no token, key or Terraform secret is interpolated into them.
                refs = re.findall(r"(?<!\$)\$\{([^}]*)\}", json.dumps(body.get("inline", [])))
                assert not refs, refs
    for data in nodes["resource"]["terraform_data"].values():
        assert "random_password" not in json.dumps(data) and "tls_private_key" not in json.dumps(data)


def test_pki_and_tokens_are_protected_from_destroy(nodes):
    protected = {
        f"{rtype}.{key}"
        for rtype in ("tls_private_key", "tls_self_signed_cert", "random_password")
        for key, res in nodes["resource"][rtype].items()
        if res.get("lifecycle", {}).get("prevent_destroy") is True
    }
    everything = {f"{t}.{k}" for t in ("tls_private_key", "tls_self_signed_cert", "random_password") for k in nodes["resource"][t]}
    assert protected == everything and len(everything) == 7 + 5 + 2
    # The admin certificate is re-issued before it expires, so it is the one PKI resource that may be replaced.
    (admin,) = nodes["resource"]["tls_locally_signed_cert"].values()
    assert "prevent_destroy" not in admin.get("lifecycle", {})


def test_host_keys_are_checked_when_given(variants):
    stack = variants["departed-nodes"]
    machines = hosts(stack)
    assert machines["server-1"]["connection"]["host_key"].startswith("ssh-ed25519 AAAAC3")
    assert "host_key" not in machines["server-2"]["connection"]
    assert drains(stack)["server-1"]["triggers"]["host_key"].startswith("ssh-ed25519 AAAAC3")
    # Removal steps that run through server-1 verify it too.
    for block in removed_blocks(stack)["agent-2"]["drain"]["provisioner"]:
        conn = block["remote-exec"]["connection"]
        expected = {"10.20.0.11": "ExampleHostKeyOfServerOne", "10.20.0.22": "ExampleHostKeyOfAgentTwo"}[conn["host"]]
        assert expected in conn["host_key"]


def test_ssh_credentials_are_sensitive_variables_without_literal_values(nodes):
    variables = nodes["variable"]
    for name in ("ssh_user", "ssh_port", "ssh_private_key"):
        assert variables[name]["sensitive"] is True, name
    assert "default" not in variables["ssh_user"]
    assert variables["ssh_private_key"]["default"] == ""
    for name, res in hosts(nodes).items():
        conn = res["connection"]
        assert conn["user"] == "${var.ssh_user}" and conn["port"] == "${var.ssh_port}"
        assert conn["private_key"] == "${(length(trimspace(var.ssh_private_key)) < 1) ? null : var.ssh_private_key}"
        assert conn["agent"] == "${(length(trimspace(var.ssh_private_key)) < 1)}"


def test_pki_is_uploaded_to_the_bootstrap_server_before_k3s_first_starts(nodes):
    machines = hosts(nodes)
    first = machines["helix-server-1"]
    uploads = [b["destination"] for k, b in _provisioners(first) if k == "file"]
    expected = {
        f"/tmp/k3s-provision/tls/{name}"
        for ca in ("server-ca", "client-ca", "request-header-ca", "etcd/peer-ca", "etcd/server-ca")
        for name in (f"{ca}.crt", f"{ca}.key")
    } | {"/tmp/k3s-provision/tls/service.key"}
    assert expected <= set(uploads)
    assert uploads.index("/tmp/k3s-provision/install.sh") > max(uploads.index(u) for u in expected)
    assert "/var/lib/rancher/k3s/server/tls" in install_script(first)
    for name, res in machines.items():
        if name != "helix-server-1":
            assert not any("/tls/" in b.get("destination", "") for _, b in _provisioners(res)), name


def test_admin_certificate_is_signed_by_the_client_ca_in_the_bound_admin_group(nodes):
    certs = nodes["resource"]["tls_self_signed_cert"]
    by_cn = {c["subject"][0]["common_name"]: k for k, c in certs.items()}
    assert set(by_cn) == {"k3s-server-ca", "k3s-client-ca", "k3s-request-header-ca", "k3s-etcd-peer-ca", "k3s-etcd-server-ca"}
    (admin,) = nodes["resource"]["tls_locally_signed_cert"].values()
    assert admin["ca_cert_pem"] == f"${{tls_self_signed_cert.{by_cn['k3s-client-ca']}.cert_pem}}"
    assert "client_auth" in admin["allowed_uses"]
    (csr,) = nodes["resource"]["tls_cert_request"].values()
    # Not system:masters (no RBAC change revokes it): a group the servers bind to cluster-admin.
    assert csr["subject"][0]["organization"] == "helix-admins-0"
    # The API server presents a certificate of the server CA: that is what clients must trust.
    assert nodes["output"]["cluster_ca_certificate"]["value"] == f"${{tls_self_signed_cert.{by_cn['k3s-server-ca']}.cert_pem}}"


def test_credential_outputs_are_sensitive(nodes):
    outputs = nodes["output"]
    for name in ("api_url", "cluster_ca_certificate", "client_certificate", "client_key", "kubeconfig"):
        assert outputs[name]["sensitive"] is True, name
    for name, out in outputs.items():
        if "private_key" in out["value"] or "cert_pem" in out["value"]:
            assert out.get("sensitive") is True, name


@pytest.mark.parametrize("stack", ["cni", "foundation", "production"])
def test_later_stacks_read_the_cluster_from_the_nodes_stack_outputs(synth, nodes, stack):
    data = synth.stack(stack)["data"]["terraform_remote_state"]
    remote = [k for k in data if "nodes" in k]
    assert len(remote) == 1
    # The nodes stack's own state, in whichever backend the config selects.
    (kind, settings), = nodes["terraform"]["backend"].items()
    state = data[remote[0]]
    assert state["backend"] == kind and state["config"].items() <= settings.items()
    assert (state["config"].get("path") or state["config"].get("key")).endswith("nodes.tfstate")
    prefix = f"${{data.terraform_remote_state.{remote[0]}.outputs."
    provider = synth.stack(stack)["provider"]
    expected = {
        "host": "${local.",
        "cluster_ca_certificate": "${tls_self_signed_cert.",
        "client_certificate": "${tls_locally_signed_cert.",
        "client_key": "${tls_private_key.",
    }
    for block in (provider["kubernetes"][0], provider["helm"][0]["kubernetes"]):
        for attr, source in expected.items():
            ref = block[attr]
            assert ref.startswith(prefix) and ref.endswith("}"), (stack, attr)
            output = nodes["output"][ref[len(prefix) : -1]]
            assert output["sensitive"] is True
            assert output["value"].startswith(source), (attr, output["value"])
    assert "nodes" in synth.manifest["stacks"][stack]["dependencies"]


# --- node removal -------------------------------------------------------------------------------------------


def test_a_replaced_machine_is_drained_through_a_surviving_server_without_secrets_in_state(nodes):
    machines = hosts(nodes)
    drain = drains(nodes)
    assert set(drain) == set(machines)
    addr = {name: address_of(nodes, res) for name, res in drain.items()}
    for name, res in drain.items():
        assert res["depends_on"][0] == address_of(nodes, machines[name])
        assert res["lifecycle"]["ignore_changes"] == ["triggers"]
        assert res["lifecycle"]["replace_triggered_by"] == [address_of(nodes, machines[name])]
        # What destroy-time provisioners may read is in triggers; no private key there, nor in the connections.
        assert "private_key" not in json.dumps(res)
        assert set(res["triggers"]) == {"node", "address", "role", "host_key", "timeout", "user", "port"}
        steps = _provisioners(res)
        assert [k for k, _ in steps] == ["remote-exec"] * 3
        assert all(b["when"] == "destroy" for _, b in steps)
        hosts_of = [b["connection"]["host"] for _, b in steps]
        scripts = ["\n".join(b["inline"]) for _, b in steps]
        via = "10.20.0.12" if name == "helix-server-1" else "10.20.0.11"
        # Drain through a surviving server, stop + clean up + uninstall on the old machine, delete the Node.
        assert hosts_of == [via, "${self.triggers.address}", via], name
        assert "k3s kubectl drain" in scripts[0] and f"node={name}" in scripts[0]
        assert "k3s-killall.sh" in scripts[1] and "cilium_host" in scripts[1] and "uninstall.sh" in scripts[1]
        assert "k3s kubectl delete node" in scripts[2]
        for _, step in steps:
            assert step["connection"]["agent"] is True
            refs = re.findall(r"(?<!\$)\$\{([^}]*)\}", json.dumps(step))
            assert refs and all(r.startswith("self.") or r.startswith("lookup(self.") for r in refs), refs
    # Destroyed in reverse order of these dependencies: agents first, then servers one at a time.
    assert drain["helix-server-2"]["depends_on"][1:] == [addr["helix-server-1"]]
    assert drain["helix-server-3"]["depends_on"][1:] == [addr["helix-server-2"]]
    for i in range(1, 5):
        assert set(drain[f"helix-agent-{i}"]["depends_on"][1:]) == {addr[f"helix-server-{j}"] for j in (1, 2, 3)}


def test_departed_nodes_get_removed_blocks_that_drain_them(variants):
    stack = variants["departed-nodes"]
    blocks = removed_blocks(stack)
    assert set(blocks) == {"agent-2", "agent-3", "server-4", "server-5"}
    for name, kinds in blocks.items():
        assert set(kinds) == {"drain", "config", "install"}
        for kind, block in kinds.items():
            assert block["lifecycle"] == {"destroy": True}
            assert ("provisioner" in block) == (kind == "drain")
        steps = [p["remote-exec"] for p in kinds["drain"]["provisioner"]]
        assert all(s["when"] == "destroy" for s in steps)
        assert all(s["connection"]["user"] == "${self.triggers.user}" for s in steps)
    hosts_of = lambda n: [p["remote-exec"]["connection"]["host"] for p in blocks[n]["drain"]["provisioner"]]
    assert hosts_of("agent-2") == ["10.20.0.11", "10.20.0.22", "10.20.0.11"]
    assert hosts_of("server-4") == ["10.20.0.11", "10.20.0.14", "10.20.0.11"]
    assert hosts_of("agent-3") == ["10.20.0.11", "10.20.0.11"]  # unreachable: nothing runs on the machine


def test_removed_blocks_name_the_addresses_the_nodes_had(variants):
    """A node listed in nodes, then moved to departed_nodes: the removed blocks point at its real addresses."""
    stack = variants["departed-nodes"]
    cfg = load_config(FIXTURES / "valid" / "departed-nodes.yaml")
    departed = cfg.cluster.departed_nodes
    back = cfg.model_copy(
        update={
            "cluster": cfg.cluster.model_copy(
                update={
                    "departed_nodes": [],
                    "nodes": [*cfg.cluster.nodes, *[Node(name=d.name, address=d.address, role=d.role) for d in departed]],
                }
            )
        }
    )
    before = nodes_stack_of(back)["resource"]["null_resource"]
    for name, kinds in removed_blocks(stack).items():
        for block in kinds.values():
            assert block["from"].removeprefix("null_resource.") in before, block["from"]


# --- config errors ------------------------------------------------------------------------------------------


def _expectation(path: Path) -> str:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect: "), path
    return first[len("# expect: ") :]


@pytest.mark.parametrize(
    "fixture",
    [
        "even-number-of-servers",
        "ha-fewer-than-three-servers",
        "single-server-mode-with-three-servers",
        "duplicate-node-names",
        "duplicate-node-addresses",
        "node-outside-node-cidr",
        "no-server",
        "api-host-is-another-node",
        "etcd-s3-without-embedded-etcd",
        "existing-mode-with-nodes",
        "existing-mode-without-kubeconfig",
        "existing-settings-in-provision-mode",
        "cloud-node-pool-min-above-max",
        "cloud-node-pool-vpc-overlaps-pods",
        "unpinned-k3s-version",
        "etcd-snapshot-schedule-not-cron",
        "k3s-version-not-a-release",
        "api-host-bad-address",
        "node-label-kubelet-refuses",
        "node-taint-bad-value",
        "bootstrap-node-is-an-agent",
        "node-host-key-malformed",
        "departed-node-address-reused",
    ],
)
def test_cluster_config_errors(fixture):
    from planner.files import ConfigError
    from planner.load import load_plan

    path = FIXTURES / "invalid" / f"{fixture}.yaml"
    with pytest.raises(ConfigError) as err:
        load_plan(path)
    messages = [str(p) for p in err.value.problems]
    assert len(messages) == 1, messages
    assert _expectation(path) in messages[0]


def test_cluster_config_fixtures_that_are_valid_load():
    from planner.load import load_plan

    for name in ("single-server", "etcd-s3-snapshots", "existing-cluster", "departed-nodes"):
        load_plan(FIXTURES / "valid" / f"{name}.yaml")


@pytest.mark.parametrize(
    "value, ok",
    [
        ("10.20.0.10", True),
        ("k8s.example.com", True),
        ("10.0.0.999", False),
        ("10.0.0", False),
        ("host.123", False),
        ("Upper.example.com", False),
    ],
)
def test_api_host_is_an_address_or_a_hostname(value, ok):
    from planner.schema import _host

    if ok:
        assert _host(value) == value
    else:
        with pytest.raises(ValueError):
            _host(value)


@pytest.mark.parametrize(
    "key, ok",
    [
        ("node.kubernetes.io/pool", True),
        ("kubelet.kubernetes.io/x", True),
        ("topology.kubernetes.io/zone", True),
        ("example.com/role", True),
        ("gpu", True),
        ("node-role.kubernetes.io/worker", False),
        ("kubernetes.io/role", False),
        ("foo.k8s.io/bar", False),
        ("a" * 64, False),
    ],
)
def test_node_label_keys_follow_kubelets_rules(key, ok):
    from planner.schema import _node_label_key

    if ok:
        assert _node_label_key(key) == key
    else:
        with pytest.raises(ValueError):
            _node_label_key(key)


@pytest.mark.parametrize("version, ok", [("v1.29.1+k3s2", True), ("v1.30.10+k3s11", True), ("1.29.1", False), ("v1.29.1", False), ("v1.29.1-rc1+k3s1", False), ("latest", False)])
def test_k3s_version_is_a_release_tag(version, ok):
    from planner.schema import _k3s_release

    if ok:
        assert _k3s_release(version) == version
    else:
        with pytest.raises(ValueError):
            _k3s_release(version)


# --- the construct on its own: other shapes, without a full app ---------------------------------------------


@pytest.fixture(scope="module")
def variants():
    """Small stacks built from fixture configs, synthesized with Testing.synth (no cross-stack refs needed)."""
    out = {}
    for name in ("single-server", "etcd-s3-snapshots", "departed-nodes"):
        out[name] = nodes_stack_of(FIXTURES / "valid" / f"{name}.yaml")
    cfg = load_config(FIXTURES / "valid" / "etcd-s3-snapshots.yaml")
    bumped = cfg.model_copy(update={"cluster": cfg.cluster.model_copy(update={"k3s_version": "v1.36.1+k3s1"})})
    out["bumped"] = nodes_stack_of(bumped)
    for role in ("server", "agent", "admin"):
        rotation = cfg.cluster.rotation.model_copy(update={"admin" if role == "admin" else f"{role}_token": 1})
        rotated = cfg.model_copy(update={"cluster": cfg.cluster.model_copy(update={"rotation": rotation})})
        out[f"{role}-rotated"] = nodes_stack_of(rotated)
    return out


def test_bumping_the_version_changes_no_trigger_and_new_nodes_keep_the_recorded_version(variants):
    before, after = variants["etcd-s3-snapshots"], variants["bumped"]
    b, a = hosts(before), hosts(after)
    assert set(a) == set(b)
    for name in b:
        assert a[name]["triggers"] == b[name]["triggers"]
        assert install_script(a[name]) == install_script(b[name])
    assert rolls(after) == rolls(before)
    (record,) = [r for k, r in after["resource"]["terraform_data"].items() if "join-version" in k]
    # The configured version changes; ignore_changes keeps what Terraform recorded, which new nodes install.
    assert record["input"] == "v1.36.1+k3s1" and record["lifecycle"]["ignore_changes"] == ["input"]
    (check,) = after["check"].values()
    assert '== "v1.36.1+k3s1"' in check["assert"][0]["condition"]


def test_etcd_s3_credentials_are_sensitive_variables_rendered_with_yamlencode(variants):
    stack = variants["etcd-s3-snapshots"]
    for var in ("etcd_s3_access_key", "etcd_s3_secret_key"):
        assert stack["variable"][var]["sensitive"] is True and "default" not in stack["variable"][var]
    for res in hosts(stack).values():
        cfg = node_config(res)
        literal, encoded = config_text(res)
        if res["triggers"]["role"] == "agent":
            assert not any(k.startswith("etcd-") for k in cfg) and encoded == ""
            continue
        assert cfg["etcd-s3"] is True
        assert cfg["etcd-s3-endpoint"] == "minio.example.com" and cfg["etcd-s3-bucket"] == "etcd-snapshots"
        assert cfg["etcd-s3-folder"] == "helix" and cfg["etcd-s3-region"] == "eu-west-1"
        # Interpolated values go through Terraform's yamlencode: a key with ': ' or '#' can't corrupt the file.
        assert "var.etcd_s3" not in literal
        assert encoded == (
            '${yamlencode({"etcd-s3-access-key" = var.etcd_s3_access_key, '
            '"etcd-s3-secret-key" = var.etcd_s3_secret_key})}'
        )
        assert cfg["etcd-snapshot-schedule-cron"] == "0 */4 * * *" and cfg["etcd-snapshot-retention"] == 30
        assert "k8s.example.com" in cfg["tls-san"] and "10.20.0.11" in cfg["tls-san"]
        assert cfg["node-taint"] == ["node-role.kubernetes.io/control-plane:NoSchedule"]
    # Without a VIP, the first server is the API endpoint the others join through.
    assert node_config(hosts(stack)["agent-1"])["server"] == "https://10.20.0.11:6443"
    # Rotated keys and tokens reach every node: the config roll tracks a hash of them, the values never.
    server_secret = next(k for k in stack["resource"]["random_password"] if k.startswith("k3s_token_"))
    agent_secret = next(k for k in stack["resource"]["random_password"] if k.startswith("k3s_agent-token_"))
    for name, roll in rolls(stack).items():
        role = hosts(stack)[name]["triggers"]["role"]
        if role == "server":
            hashed = f"random_password.{server_secret}.result, random_password.{agent_secret}.result, "
            hashed += "var.etcd_s3_access_key, var.etcd_s3_secret_key"
        else:
            hashed = f"random_password.{agent_secret}.result"
        assert roll["triggers"]["secrets"] == f'${{sha256(join("\\n", [{hashed}]))}}', (name, roll["triggers"])


def test_single_server_without_embedded_etcd(variants):
    stack = variants["single-server"]
    machines = hosts(stack)
    assert list(machines) == ["solo"]
    server = node_config(machines["solo"])
    assert "cluster-init" not in server and "server" not in server
    assert not any(k.startswith("etcd-") for k in server)
    # No join decision without etcd: SQLite on the one server.
    assert "may_initialize" not in install_script(machines["solo"])
    # No platform components in this config, so nothing replaces k3s's own: flannel and every packaged component
    # (traefik included) stay.
    assert server["flannel-backend"] == "vxlan" and "disable" not in server
    assert server["node-taint"] == ["dedicated=control:NoSchedule"]
    # The only server still bootstraps with the Terraform-generated CAs.
    assert any(b.get("destination", "").endswith("/tls/server-ca.crt") for _, b in _provisioners(machines["solo"]))


def test_construct_rejects_inconsistent_nodes():
    from constructs_lib.k3s import K3sClusterProps, K3sNode, SshAccess, _validate

    ssh = SshAccess(user="u", port=22, private_key="")
    server = K3sNode(name="a", address="10.0.0.1", role="server")
    with pytest.raises(ValueError, match="at least one server"):
        _validate(K3sClusterProps(version=VERSION, nodes=[K3sNode("b", "10.0.0.2", "agent")], api_host="x", ssh=ssh))
    with pytest.raises(ValueError, match="duplicate node names"):
        _validate(K3sClusterProps(version=VERSION, nodes=[server, K3sNode("a", "10.0.0.2", "agent")], api_host="x", ssh=ssh))
    with pytest.raises(ValueError, match="duplicate node addresses"):
        _validate(K3sClusterProps(version=VERSION, nodes=[server, K3sNode("b", "10.0.0.1", "agent")], api_host="x", ssh=ssh))
    with pytest.raises(ValueError, match="bootstrap_node 'b' is not one of the servers"):
        _validate(K3sClusterProps(version=VERSION, nodes=[server, K3sNode("b", "10.0.0.2", "agent")], api_host="x", ssh=ssh, bootstrap_node="b"))
    with pytest.raises(ValueError, match="not a k3s release"):
        _validate(K3sClusterProps(version="1.29.1", nodes=[server], api_host="x", ssh=ssh))
    with pytest.raises(ValueError, match="pass installer_sha256"):
        _validate(K3sClusterProps(version="v1.31.0+k3s1", nodes=[server], api_host="x", ssh=ssh))


# --- existing-cluster mode ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def existing(tmp_path_factory) -> Synth:
    from planner.load import load_plan
    from stacks.app import synthesize

    outdir = tmp_path_factory.mktemp("existing") / "cdktf.out"
    synthesize(load_plan(FIXTURES / "valid" / "existing-cluster.yaml"), outdir)
    return Synth(outdir)


def test_existing_cluster_mode_targets_a_kubeconfig_without_a_nodes_stack(existing):
    assert "nodes" not in existing.stack_names
    platform = [s for s in existing.stack_names if existing.resources(s, "helm_release")]
    assert {"cni", "foundation"} <= set(platform)
    for name in existing.stack_names:
        stack = existing.stack(name)
        assert "nodes" not in existing.manifest["stacks"][name]["dependencies"]
        assert not any("nodes" in k for k in stack.get("data", {}).get("terraform_remote_state", {}))
        assert "null_resource" not in stack.get("resource", {})
        if "provider" in stack and "kubernetes" in stack["provider"]:
            for block in (stack["provider"]["kubernetes"][0], stack["provider"]["helm"][0]["kubernetes"]):
                assert block == {"config_path": "~/.kube/config", "config_context": "helix-prod"}, name


# --- day-2 operations: what Terraform plans, from the synthesized JSON -----------------------------------------


def plan_actions(before: dict, after: dict) -> dict[str, str]:
    """What Terraform plans going from `before` to `after` (both synthesized stacks, `before` applied), by its rules
    for these resources: a null_resource is replaced when its triggers change (unless ignore_changes covers them)
    and when a resource in its replace_triggered_by is replaced; terraform_data likewise for `input`; other
    resources are updated in place when an argument changes. A resource missing from the config is destroyed:
    with the steps of its `removed` block, or silently without one. Returns address -> action, no-ops left out."""
    def resources(stack):
        return {f"{t}.{k}": r for t, blocks in stack.get("resource", {}).items() for k, r in blocks.items()}

    old, new = resources(before), resources(after)
    removed = {b["from"]: b for b in after.get("removed", [])}
    actions: dict[str, str] = {}
    for address, res in new.items():
        if address not in old:
            actions[address] = "create"
            continue
        rtype = address.split(".")[0]
        ignored = set(res.get("lifecycle", {}).get("ignore_changes", []))
        strip = lambda r: {k: v for k, v in r.items() if k not in ("//", "provisioner", "connection", "depends_on", "lifecycle")}
        if rtype == "null_resource":
            if "triggers" not in ignored and res.get("triggers") != old[address].get("triggers"):
                actions[address] = "replace"
        elif rtype == "terraform_data":
            if "input" not in ignored and res.get("input") != old[address].get("input"):
                actions[address] = "replace"
        elif strip(res) != strip(old[address]):
            actions[address] = "update"
    for address, res in new.items():
        for trigger in res.get("lifecycle", {}).get("replace_triggered_by", []):
            if actions.get(trigger) == "replace":
                actions[address] = "replace"
    for address in old:
        if address not in new:
            block = removed.get(address)
            if block is None:
                actions[address] = "destroy without any removal step"
            else:
                actions[address] = f"destroy, {len(block.get('provisioner', []))} removal steps"
    return actions


def with_cluster(cfg, **update):
    from planner.schema import HelixConfig

    data = cfg.model_dump()
    data["cluster"].update(update)
    return HelixConfig.model_validate(data)


def node_objects_of(cfg) -> dict:
    from constructs_lib.backend import LocalStateBackend
    from constructs_lib.cluster_access import ClusterAccess
    from constructs_lib.engine import App, Testing
    from planner.nodes import resolve_nodes
    from stacks.nodes import NodeObjectsStack

    access = ClusterAccess(kubeconfig_path="~/.kube/config", kubeconfig_context="test")
    nodes = resolve_nodes(cfg)
    return json.loads(Testing.synth(NodeObjectsStack(App(), "node-objects", nodes=nodes, backend=LocalStateBackend(), access=access)))


@pytest.fixture(scope="module")
def default_cfg(plan):
    return plan.config


@pytest.fixture(scope="module")
def default_nodes(default_cfg):
    return nodes_stack_of(default_cfg)


def short(actions: dict[str, str]) -> dict[str, str]:
    """null_resource.k3s_helix-server-1-drain_D6BB0F1C -> helix-server-1-drain."""
    return {re.sub(r"^[a-z_]+\.(k3s_)?(.+?)(_[0-9A-F]{8})?$", r"\2", a): v for a, v in actions.items()}


def test_replacing_server_1_reinstalls_it_to_join_and_drains_the_old_machine_first(default_cfg, default_nodes):
    nodes = [n.model_dump() for n in default_cfg.cluster.nodes]
    nodes[0]["address"] = "10.20.0.31"
    after = nodes_stack_of(with_cluster(default_cfg, nodes=nodes))
    assert short(plan_actions(default_nodes, after)) == {
        "helix-server-1": "replace",
        "helix-server-1-drain": "replace",
        "helix-server-1-config": "replace",
    }
    drain = drains(after)["helix-server-1"]
    # The old machine: drained through server-2, stopped and uninstalled at its old address, then deleted.
    assert [p["remote-exec"]["connection"]["host"] for p in drain["provisioner"]] == [
        "10.20.0.12", "${self.triggers.address}", "10.20.0.12"
    ]
    # The new machine may initialize only when nothing answers: the endpoint and servers 2 and 3 do, so it joins
    # (tests/test_node_scripts.py::test_a_replaced_bootstrap_server_joins_the_running_cluster runs this script).
    script = install_script(hosts(after)["helix-server-1"])
    assert script_var(script, "endpoint") == API
    assert script_var(script, "peers") == "https://10.20.0.12:6443 https://10.20.0.13:6443"


def test_removing_an_agent_drains_and_uninstalls_it_and_changes_nothing_else(default_cfg, default_nodes):
    agent = next(n for n in default_cfg.cluster.nodes if n.name == "helix-agent-4")
    after = nodes_stack_of(
        with_cluster(
            default_cfg,
            nodes=[n.model_dump() for n in default_cfg.cluster.nodes if n is not agent],
            departed_nodes=[{"name": agent.name, "address": agent.address, "role": "agent"}],
        )
    )
    assert short(plan_actions(default_nodes, after)) == {
        "helix-agent-4-drain": "destroy, 3 removal steps",
        "helix-agent-4-config": "destroy, 0 removal steps",
        "helix-agent-4": "destroy, 0 removal steps",
    }
    # Without listing it in departed_nodes, Terraform would destroy the resources and run nothing on the cluster.
    silently = nodes_stack_of(with_cluster(default_cfg, nodes=[n.model_dump() for n in default_cfg.cluster.nodes if n is not agent]))
    assert set(short(plan_actions(default_nodes, silently)).values()) == {"destroy without any removal step"}


def test_removing_servers_drains_them_one_at_a_time_after_the_agents(default_cfg):
    extra = [{"name": f"helix-server-{i}", "address": f"10.20.0.1{i}", "role": "server"} for i in (4, 5)]
    base = [n.model_dump() for n in default_cfg.cluster.nodes]
    before = nodes_stack_of(with_cluster(default_cfg, nodes=[*base[:3], *extra, *base[3:]]))
    after = nodes_stack_of(with_cluster(default_cfg, departed_nodes=extra))
    actions = short(plan_actions(before, after))
    assert actions == {
        f"helix-server-{i}{suffix}": f"destroy, {3 if suffix == '-drain' else 0} removal steps"
        for i in (4, 5)
        for suffix in ("", "-config", "-drain")
    }
    # The order comes from the dependencies the drains recorded in the state (`before`): server-5's drain
    # depends on server-4's, so server-5 goes first, and every agent's drain depends on all server drains.
    d = drains(before)
    addr = {n: address_of(before, r) for n, r in d.items()}
    assert d["helix-server-5"]["depends_on"][1:] == [addr["helix-server-4"]]
    assert addr["helix-server-5"] in d["helix-agent-1"]["depends_on"]
    # Through a surviving server: the bootstrap server.
    for i in (4, 5):
        steps = removed_blocks(after)[f"helix-server-{i}"]["drain"]["provisioner"]
        assert [s["remote-exec"]["connection"]["host"] for s in steps] == ["10.20.0.11", f"10.20.0.1{i}", "10.20.0.11"]


def test_changing_a_label_is_an_in_place_update_of_the_node_object_and_nothing_else(default_cfg, default_nodes):
    nodes = [n.model_dump() for n in default_cfg.cluster.nodes]
    nodes[3]["labels"] = {"node.kubernetes.io/pool": "gpu"}
    changed = with_cluster(default_cfg, nodes=nodes)
    assert plan_actions(default_nodes, nodes_stack_of(changed)) == {}, "no k3s restart, no reinstall"
    before, after = node_objects_of(default_cfg), node_objects_of(changed)
    assert plan_actions(before, after) == {"kubernetes_labels.labels-helix-agent-1": "update"}
    labels = after["resource"]["kubernetes_labels"]["labels-helix-agent-1"]
    assert labels["labels"] == {"node.kubernetes.io/pool": "gpu"}
    assert (labels["kind"], labels["metadata"]["name"], labels["force"]) == ("Node", "helix-agent-1", True)


def test_taints_are_node_objects_too(variants):
    cfg = load_config(FIXTURES / "valid" / "etcd-s3-snapshots.yaml")
    stack = node_objects_of(cfg)
    taints = stack["resource"]["kubernetes_node_taint"]
    assert set(taints) == {"taints-server-1", "taints-server-2", "taints-server-3"}
    assert taints["taints-server-1"]["taint"] == [
        {"key": "node-role.kubernetes.io/control-plane", "value": "", "effect": "NoSchedule"}
    ]
    # A departed node's objects are forgotten, not patched (its Node is deleted by the nodes stack).
    departed = node_objects_of(load_config(FIXTURES / "valid" / "departed-nodes.yaml"))
    assert {"from": "kubernetes_labels.labels-agent-2", "lifecycle": {"destroy": False}} in departed["removed"]


def test_changing_tls_san_rolls_the_servers_one_at_a_time(default_cfg, default_nodes):
    after = nodes_stack_of(with_cluster(default_cfg, tls_san=["k8s.helixaibot.com"]))
    assert short(plan_actions(default_nodes, after)) == {f"helix-server-{i}-config": "replace" for i in (1, 2, 3)}
    r = rolls(after)
    addr = {n: address_of(after, x) for n, x in r.items()}
    assert r["helix-server-2"]["depends_on"][1:] == [addr["helix-server-1"]]
    assert r["helix-server-3"]["depends_on"][1:] == [addr["helix-server-2"]]
    assert "k8s.helixaibot.com" in node_config(r["helix-server-1"])["tls-san"]


@pytest.mark.parametrize(
    "update",
    [{"cluster_cidr": "10.52.0.0/16"}, {"api_port": 6444}],
    ids=["cluster-wide flag", "api endpoint"],
)
def test_cluster_wide_changes_touch_the_guard_or_roll(default_cfg, default_nodes, update):
    after = nodes_stack_of(with_cluster(default_cfg, **update))
    actions = short(plan_actions(default_nodes, after))
    if "cluster_cidr" in update:
        # The guard's input is ignored, so nothing is planned, and its postcondition refuses the plan
        # (tests/test_node_lifecycle.py proves that with Terraform).
        assert actions == {}
        (local,) = [v for k, v in after["locals"].items() if "cluster-flags" in k]
        assert '"cluster-cidr":"10.52.0.0/16"' in local
    else:
        # A new endpoint: agents' server URL and the servers' certificates roll; nothing is reinstalled.
        assert set(actions.values()) == {"replace"} and all(a.endswith("-config") for a in actions)


def test_turning_off_a_component_keeps_the_disable_list_and_removing_it_is_refused_like_any_cluster_wide_flag(
    default_cfg, default_nodes
):
    """What k3s leaves to the platform follows placement, not `enabled`: turning metrics-server off changes nothing
    on the nodes. Taking it out of its namespace gives k3s's own back, a cluster-wide flag the guard refuses."""
    from planner.schema import HelixConfig

    def flags(stack: dict) -> str:
        (value,) = [v for k, v in stack["locals"].items() if "cluster-flags" in k]
        return value

    data = default_cfg.model_dump()
    data["components"]["metrics-server"] = {"enabled": False}
    toggled = nodes_stack_of(HelixConfig.model_validate(data))
    assert flags(toggled) == flags(default_nodes) and '"metrics-server"' in flags(default_nodes)
    assert plan_actions(default_nodes, toggled) == {}
    assert toggled == default_nodes

    data = default_cfg.model_dump()
    data["namespaces"]["kube-system"]["components"].remove("metrics-server")
    unplaced = nodes_stack_of(HelixConfig.model_validate(data))
    assert '"metrics-server"' not in flags(unplaced)
    assert plan_actions(default_nodes, unplaced) == {}  # nothing replaced: the plan-time guard refuses it


def test_rotating_a_token_changes_its_secret_the_rotation_step_and_the_rolls_and_reinstalls_nothing(variants):
    """cluster.rotation: the secrets had no rotation path (k3s token rotate exists; issue 24)."""
    before = variants["etcd-s3-snapshots"]

    def secrets(stack: dict) -> dict[str, dict]:
        return stack["resource"]["random_password"]

    def step(stack: dict) -> dict:
        (found,) = [r for k, r in stack["resource"]["null_resource"].items() if k.startswith("k3s_token-rotate_")]
        return found

    for role in ("server", "agent"):
        after = variants[f"{role}-rotated"]
        # The secrets of the first apply stay (prevent_destroy); the rotated one is generated for the number.
        kept = {k: v for k, v in secrets(after).items() if "-rotated_" not in k}
        assert kept == secrets(before)
        (rotated,) = [v for k, v in secrets(after).items() if "-rotated_" in k]
        assert rotated["keepers"] == {"rotation": "1"} and "lifecycle" not in rotated
        # Nothing is reinstalled: the install resources' triggers are the machine's identity.
        assert {n: h["triggers"] for n, h in hosts(after).items()} == {n: h["triggers"] for n, h in hosts(before).items()}
        changed = {n for n, r in rolls(after).items() if r["triggers"] != rolls(before)[n]["triggers"]}
        roles = {n: h["triggers"]["role"] for n, h in hosts(after).items()}
        # A server token reaches the servers only (agents have their own); an agent token every node.
        assert changed == ({n for n, r in roles.items() if r == "server"} if role == "server" else set(roles))
        assert (step(after)["triggers"] != step(before)["triggers"]) == (role == "server")
        assert "random_password" in step(after)["triggers"]["token"] and "result)}" in step(after)["triggers"]["token"]

    after = variants["server-rotated"]
    tokens = {_uploaded(h, "/token") for n, h in hosts(after).items() if h["triggers"]["role"] == "server"}
    assert len(tokens) == 1 and "k3s_token-rotated_" in tokens.pop()
    # The rotation runs on the bootstrap server after every server is in, and before the first config roll.
    rotate = step(after)
    assert rotate["connection"]["host"] == hosts(after)["server-1"]["connection"]["host"]
    rotate_address = next(f"null_resource.{k}" for k, r in after["resource"]["null_resource"].items() if r is rotate)
    assert {f"null_resource.{k}" for k, r in after["resource"]["null_resource"].items() if r in hosts(after).values()
            and r["triggers"]["role"] == "server"} <= set(rotate["depends_on"])
    assert rotate_address in rolls(after)["server-1"]["depends_on"]


def test_every_procedure_in_the_nodes_docs_names_tests_that_exist():
    """docs/nodes.md, "Procedures and the tests that run them": every row names a test, and every test it names
    exists (a renamed or deleted test turns the table red, not silently stale)."""
    text = (ROOT / "docs" / "nodes.md").read_text()
    section = text.split("### Procedures and the tests that run them", 1)[1].split("\n### ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| procedure")]
    assert len(rows) >= 15, rows
    defined = set()
    for path in (ROOT / "tests").glob("test_*.py"):
        defined |= set(re.findall(r"^def (test_\w+)", path.read_text(), flags=re.M))
    for row in rows:
        named = re.findall(r"`(test_\w+)`", row)
        assert named, f"a procedure without a test: {row}"
        assert set(named) <= defined, (set(named) - defined, row)


def test_the_admin_certificate_is_a_revocable_group_and_a_rotation_moves_it(variants):
    """Issue 24: the admin credential was O=system:masters forever (no RBAC change revokes it)."""
    before, after = variants["etcd-s3-snapshots"], variants["admin-rotated"]

    def group(stack: dict) -> str:
        (csr,) = stack["resource"]["tls_cert_request"].values()
        return csr["subject"][0]["organization"]

    def binding(resource: dict) -> str | None:
        for kind, body in _provisioners(resource):
            if kind == "file" and body["destination"].endswith("/terraform-admin.yaml"):
                return yaml.safe_load(body["content"])["subjects"][0]["name"]
        return None

    assert group(before) == "helix-admins-0" and group(after) == "helix-admins-1"
    for stack, expected in ((before, "helix-admins-0"), (after, "helix-admins-1")):
        for name, resource in [*hosts(stack).items(), *rolls(stack).items()]:
            role = hosts(stack)[name]["triggers"]["role"]
            assert binding(resource) == (expected if role == "server" else None), name
    # The key stays (prevent_destroy); the certificate is re-issued; the servers' rolls move the binding.
    assert after["resource"]["tls_private_key"] == before["resource"]["tls_private_key"]
    assert {n: h["triggers"] for n, h in hosts(after).items()} == {n: h["triggers"] for n, h in hosts(before).items()}
    changed = {n for n, r in rolls(after).items() if r["triggers"] != rolls(before)[n]["triggers"]}
    assert changed == {n for n, h in hosts(after).items() if h["triggers"]["role"] == "server"}
