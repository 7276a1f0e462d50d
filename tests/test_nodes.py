"""The nodes stack: k3s on the configured machines, and the cluster access the later stacks read."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, Synth

FIXTURES = ROOT / "tests" / "fixtures"
VERSION = "v1.29.1+k3s2"
API = "https://10.20.0.10:6443"


# --- helpers -----------------------------------------------------------------------------------------------


def _provisioners(resource: dict) -> list[tuple[str, dict]]:
    return [next(iter(p.items())) for p in resource.get("provisioner", [])]


def _uploaded(resource: dict, destination_suffix: str) -> str:
    found = [b["content"] for kind, b in _provisioners(resource) if kind == "file" and b["destination"].endswith(destination_suffix)]
    assert len(found) == 1, destination_suffix
    return found[0]


def hosts(stack: dict) -> dict[str, dict]:
    """Install resources (one per machine) by node name."""
    out = {}
    for res in stack["resource"]["null_resource"].values():
        if "role" in res.get("triggers", {}):
            out[res["triggers"]["name"]] = res
    return out


def drains(stack: dict) -> dict[str, dict]:
    return {r["triggers"]["node"]: r for r in stack["resource"]["null_resource"].values() if "node" in r.get("triggers", {})}


def node_config(resource: dict) -> dict:
    return yaml.safe_load(_uploaded(resource, "/config.yaml"))


def install_script(resource: dict) -> str:
    return _uploaded(resource, "/install.sh")


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


def test_every_configured_node_is_provisioned(nodes, settings):
    machines = hosts(nodes)
    assert sorted(machines) == sorted(node.name for node in settings.config.cluster.nodes)
    for node in settings.config.cluster.nodes:
        res = machines[node.name]
        assert res["triggers"] == {"name": node.name, "address": node.address, "role": node.role}
        assert res["connection"]["host"] == node.address
        assert node_config(res)["node-ip"] == node.address
        assert node_config(res)["node-name"] == node.name


def test_exactly_one_server_bootstraps_and_the_rest_join_through_the_api_endpoint(nodes):
    machines = hosts(nodes)
    configs = {name: node_config(res) for name, res in machines.items()}
    assert [name for name, c in configs.items() if c.get("cluster-init")] == ["helix-server-1"]
    assert "server" not in configs["helix-server-1"]
    for name, cfg in configs.items():
        if name != "helix-server-1":
            assert cfg["server"] == API, name
            assert "cluster-init" not in cfg, name
    for name, cfg in configs.items():
        if machines[name]["triggers"]["role"] == "server":
            assert "10.20.0.10" in cfg["tls-san"], name


def test_servers_join_one_at_a_time_and_agents_after_every_server(nodes):
    machines = hosts(nodes)
    addr = {name: address_of(nodes, res) for name, res in machines.items()}
    assert "depends_on" not in machines["helix-server-1"]
    assert machines["helix-server-2"]["depends_on"] == [addr["helix-server-1"]]
    assert machines["helix-server-3"]["depends_on"] == [addr["helix-server-2"]]
    servers = {addr[f"helix-server-{i}"] for i in (1, 2, 3)}
    for i in range(1, 5):
        assert set(machines[f"helix-agent-{i}"]["depends_on"]) == servers


def test_every_node_installs_the_pinned_version_with_the_official_installer(nodes):
    for name, res in hosts(nodes).items():
        script = install_script(res)
        role = res["triggers"]["role"]
        assert re.search(
            rf"curl -sfL https://get\.k3s\.io \| INSTALL_K3S_VERSION={re.escape(VERSION)} "
            rf"INSTALL_K3S_SKIP_START=true INSTALL_K3S_EXEC={role} sh -",
            script,
        ), name
        service = "k3s" if role == "server" else "k3s-agent"
        assert f"systemctl start {service}" in script
        if role == "server":
            assert "k3s kubectl get --raw /readyz" in script
        # The installer runs last, after the staged files were uploaded.
        kinds = [(k, b.get("destination", "")) for k, b in _provisioners(res)]
        assert kinds[-1][0] == "remote-exec" and kinds[-2] == ("file", "/tmp/k3s-provision/install.sh")
        assert "install.sh" in res["provisioner"][-1]["remote-exec"]["inline"][0]


def test_version_changes_never_reinstall_a_node(nodes):
    """The version is in the install script only: provisioners run at creation, triggers decide replacement."""
    for name, res in hosts(nodes).items():
        assert VERSION not in json.dumps(res["triggers"]), name
        assert "config" not in json.dumps(res["triggers"]), name
        assert "replace_triggered_by" not in res.get("lifecycle", {}), name


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


def test_join_token_is_generated_in_terraform(nodes):
    (token_key,) = nodes["resource"]["random_password"]
    token = nodes["resource"]["random_password"][token_key]
    assert token["length"] >= 32 and token["special"] is False
    for name, res in hosts(nodes).items():
        assert node_config(res)["token"] == f"${{random_password.{token_key}.result}}", name


def test_no_secret_literal_in_the_synth_output(synth, settings):
    text = "\n".join(p.read_text() for p in synth.outdir.rglob("*.json"))
    assert "PRIVATE KEY" not in text
    assert "BEGIN CERTIFICATE" not in text
    # Every k3s config.yaml (a JSON string that starts with its token line) references the generated token.
    nodes_json = (synth.stack_dir("nodes") / "cdk.tf.json").read_text()
    tokens = re.findall(r'"content": "token: ([^\\"]+)', nodes_json)
    assert len(tokens) == len(settings.config.cluster.nodes)
    assert all(t.startswith("${random_password.") for t in tokens), tokens


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


def test_admin_certificate_is_signed_by_the_client_ca_as_system_masters(nodes):
    certs = nodes["resource"]["tls_self_signed_cert"]
    by_cn = {c["subject"][0]["common_name"]: k for k, c in certs.items()}
    assert set(by_cn) == {"k3s-server-ca", "k3s-client-ca", "k3s-request-header-ca", "k3s-etcd-peer-ca", "k3s-etcd-server-ca"}
    (admin,) = nodes["resource"]["tls_locally_signed_cert"].values()
    assert admin["ca_cert_pem"] == f"${{tls_self_signed_cert.{by_cn['k3s-client-ca']}.cert_pem}}"
    assert "client_auth" in admin["allowed_uses"]
    (csr,) = nodes["resource"]["tls_cert_request"].values()
    assert csr["subject"][0]["organization"] == "system:masters"
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


def test_removing_a_node_drains_it_first_without_secrets_in_state(nodes):
    machines = hosts(nodes)
    drain = drains(nodes)
    assert set(drain) == set(machines)
    for name, res in drain.items():
        assert res["depends_on"] == [address_of(nodes, machines[name])]
        assert res["lifecycle"]["ignore_changes"] == ["triggers"]
        assert res["lifecycle"]["replace_triggered_by"] == [address_of(nodes, machines[name])]
        # What destroy-time provisioners may read is in triggers; no private key there, nor in the connections.
        assert "private_key" not in json.dumps(res)
        assert set(res["triggers"]) == {"node", "address", "via", "timeout", "user", "port"}
        steps = _provisioners(res)
        assert [k for k, _ in steps] == ["remote-exec", "remote-exec"]
        assert all(b["when"] == "destroy" for _, b in steps)
        drain_step, uninstall_step = (b for _, b in steps)
        assert "kubectl drain ${self.triggers.node} --ignore-daemonsets --delete-emptydir-data" in drain_step["inline"][0]
        assert "kubectl delete node ${self.triggers.node}" in drain_step["inline"][1]
        assert drain_step["connection"]["host"] == "${self.triggers.via}"
        assert uninstall_step["connection"]["host"] == "${self.triggers.address}"
        for step in (drain_step, uninstall_step):
            assert step["connection"]["agent"] is True
            refs = re.findall(r"\$\{([^}]*)\}", json.dumps(step))
            assert refs and all(r.startswith("self.") for r in refs), refs
    # Agents drain through the first server; servers through their own kubectl.
    assert drain["helix-agent-3"]["triggers"]["via"] == "10.20.0.11"
    assert drain["helix-server-2"]["triggers"]["via"] == "10.20.0.12"


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
        "cloud-node-pool-not-implemented",
        "unpinned-k3s-version",
        "etcd-snapshot-schedule-not-cron",
    ],
)
def test_cluster_config_errors(fixture):
    from stacks.config_files import ConfigError
    from stacks.load import load_settings

    path = FIXTURES / "invalid" / f"{fixture}.yaml"
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    messages = [str(p) for p in err.value.problems]
    assert len(messages) == 1, messages
    assert _expectation(path) in messages[0]


def test_cluster_config_fixtures_that_are_valid_load():
    from stacks.load import load_settings

    for name in ("single-server", "etcd-s3-snapshots", "existing-cluster"):
        load_settings(FIXTURES / "valid" / f"{name}.yaml")


# --- the construct on its own: other shapes, without a full app ---------------------------------------------


@pytest.fixture(scope="module")
def variants():
    """Small stacks built from fixture configs, synthesized with Testing.synth (no cross-stack refs needed)."""
    from cdktf import App, Testing

    from constructs_lib.backend import LocalStateBackend
    from stacks.load import load_settings
    from stacks.nodes import NodesStack

    out = {}
    for name in ("single-server", "etcd-s3-snapshots"):
        cfg = load_settings(FIXTURES / "valid" / f"{name}.yaml").config
        out[name] = json.loads(Testing.synth(NodesStack(App(), "nodes", config=cfg, backend=LocalStateBackend())))
    cfg = load_settings(FIXTURES / "valid" / "etcd-s3-snapshots.yaml").config
    bumped = cfg.model_copy(update={"cluster": cfg.cluster.model_copy(update={"k3s_version": "v1.30.2+k3s1"})})
    out["bumped"] = json.loads(Testing.synth(NodesStack(App(), "nodes", config=bumped, backend=LocalStateBackend())))
    return out


def test_bumping_the_version_changes_no_trigger(variants):
    before, after = variants["etcd-s3-snapshots"], variants["bumped"]
    b, a = hosts(before), hosts(after)
    assert set(a) == set(b)
    for name in b:
        assert a[name]["triggers"] == b[name]["triggers"]
        assert "INSTALL_K3S_VERSION=v1.30.2+k3s1" in install_script(a[name])
        assert "INSTALL_K3S_VERSION=v1.29.1+k3s2" in install_script(b[name])


def test_etcd_s3_credentials_are_sensitive_variables(variants):
    stack = variants["etcd-s3-snapshots"]
    for var in ("etcd_s3_access_key", "etcd_s3_secret_key"):
        assert stack["variable"][var]["sensitive"] is True and "default" not in stack["variable"][var]
    for res in hosts(stack).values():
        cfg = node_config(res)
        if res["triggers"]["role"] == "agent":
            assert not any(k.startswith("etcd-") for k in cfg)
            continue
        assert cfg["etcd-s3"] is True
        assert cfg["etcd-s3-endpoint"] == "minio.example.com" and cfg["etcd-s3-bucket"] == "etcd-snapshots"
        assert cfg["etcd-s3-folder"] == "helix" and cfg["etcd-s3-region"] == "eu-west-1"
        assert cfg["etcd-s3-access-key"] == "${var.etcd_s3_access_key}"
        assert cfg["etcd-s3-secret-key"] == "${var.etcd_s3_secret_key}"
        assert cfg["etcd-snapshot-schedule-cron"] == "0 */4 * * *" and cfg["etcd-snapshot-retention"] == 30
        assert "k8s.example.com" in cfg["tls-san"] and "10.20.0.11" in cfg["tls-san"]
        assert cfg["node-taint"] == ["node-role.kubernetes.io/control-plane:NoSchedule"]
    # Without a VIP, the first server is the API endpoint the others join through.
    assert node_config(hosts(stack)["agent-1"])["server"] == "https://10.20.0.11:6443"


def test_single_server_without_embedded_etcd(variants):
    stack = variants["single-server"]
    machines = hosts(stack)
    assert list(machines) == ["solo"]
    server = node_config(machines["solo"])
    assert "cluster-init" not in server and "server" not in server
    assert not any(k.startswith("etcd-") for k in server)
    # No platform components in this config: k3s keeps flannel and its packaged components except traefik.
    assert server["flannel-backend"] == "vxlan" and server["disable"] == ["traefik"]
    assert server["node-taint"] == ["dedicated=control:NoSchedule"]
    # The only server still bootstraps with the Terraform-generated CAs.
    assert any(b.get("destination", "").endswith("/tls/server-ca.crt") for _, b in _provisioners(machines["solo"]))


def test_construct_rejects_inconsistent_nodes():
    from constructs_lib.k3s import K3sNode, K3sClusterProps, _validate, SshAccess

    ssh = SshAccess(user="u", port=22, private_key="")
    server = K3sNode(name="a", address="10.0.0.1", role="server")
    with pytest.raises(ValueError, match="at least one server"):
        _validate(K3sClusterProps(version=VERSION, nodes=[K3sNode("b", "10.0.0.2", "agent")], api_host="x", ssh=ssh))
    with pytest.raises(ValueError, match="duplicate node names"):
        _validate(K3sClusterProps(version=VERSION, nodes=[server, K3sNode("a", "10.0.0.2", "agent")], api_host="x", ssh=ssh))
    with pytest.raises(ValueError, match="duplicate node addresses"):
        _validate(K3sClusterProps(version=VERSION, nodes=[server, K3sNode("b", "10.0.0.1", "agent")], api_host="x", ssh=ssh))


# --- existing-cluster mode ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def existing(tmp_path_factory) -> Synth:
    from stacks.app import synthesize
    from stacks.load import load_settings

    outdir = tmp_path_factory.mktemp("existing") / "cdktf.out"
    synthesize(load_settings(FIXTURES / "valid" / "existing-cluster.yaml"), outdir)
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
