"""The shell scripts the nodes stack runs on the machines, taken from the synthesized JSON and run for real.

shellcheck checks every rendered script (Debian's `shellcheck`; .ci/run installs it). Each script then runs in a
sandbox: its `root=''` line points into a temporary directory, and stub `curl`, `systemctl`, `k3s`, `journalctl`,
`ip` and `sleep` on PATH record what they are asked and answer as a scenario says. The runs prove the bounded
waits (a fixed number of attempts, then exit 1 with the journal), the failure exits, idempotent re-runs and the
order of the removal steps.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import departed_stack, drains, hosts, removed_blocks

CA_PEM = "-----BEGIN CERTIFICATE-----\nTHIS-CLUSTER-CA\n-----END CERTIFICATE-----\n"
JOIN_VERSION = "v1.29.1+k3s2"
ENDPOINT = "https://10.20.0.10:6443"
SERVER2 = "https://10.20.0.12:6443"

# One stub for every command: it logs its name and arguments, then answers from the scenario's environment.
STUB = r"""#!/bin/sh
name=$(basename "$0")
printf '%s %s\n' "$name" "$*" >> "$SANDBOX/calls.log"
case "$name" in
  sleep) exit 0 ;;
  journalctl) echo "JOURNAL: k3s[1234]: level=fatal msg=\"scenario failure\""; exit 0 ;;
  ip) exit 1 ;;
  curl)
    out=; url=
    while [ $# -gt 0 ]; do
      case "$1" in -o) out=$2; shift ;; --connect-timeout|--max-time|--retry) shift ;; -*) ;; *) url=$1 ;; esac
      shift
    done
    case "$url" in
      */cacerts)
        base=${url%/cacerts}
        for ok in $CACERTS_OK; do [ "$ok" = "$base" ] && { cp "$SANDBOX/ca.pem" "$out"; exit 0; }; done
        for bad in $CACERTS_FOREIGN; do [ "$bad" = "$base" ] && { echo "another CA" > "$out"; exit 0; }; done
        exit 7 ;;
      */install.sh)
        [ "${INSTALLER:-ok}" = fail ] && exit 22
        cp "$SANDBOX/fake-installer.sh" "$out"; exit 0 ;;
    esac
    exit 2 ;;
  systemctl)
    case "$1" in
      is-active) [ "${AGENT_ACTIVE:-1}" = 1 ] && exit 0; exit 3 ;;
      show) cat "$SANDBOX/invocation" 2>/dev/null; exit 0 ;;
      cat) [ "${UNIT_EXISTS:-1}" = 1 ] && exit 0; exit 1 ;;
      start|restart) echo "run-$(date +%s%N)" > "$SANDBOX/invocation"; exit 0 ;;
    esac
    exit 0 ;;
  k3s)
    shift  # kubectl
    case "$1 $2" in
      "get --raw")
        n=$(( $(cat "$SANDBOX/ready.count" 2>/dev/null || echo 0) + 1 )); echo "$n" > "$SANDBOX/ready.count"
        [ "${READY_AFTER:-1}" != never ] && [ "$n" -ge "${READY_AFTER:-1}" ] && exit 0
        exit 1 ;;
      "get node")
        [ -e "$SANDBOX/node-gone" ] && { echo "Error from server (NotFound): nodes \"$3\" not found" >&2; exit 1; }
        echo "node/$3"; exit 0 ;;
      drain*) exit "${DRAIN_RC:-0}" ;;
      "delete node") touch "$SANDBOX/node-gone"; exit 0 ;;
    esac
    exit 0 ;;
esac
exit 0
"""

FAKE_INSTALLER = r"""#!/bin/sh
printf 'installer INSTALL_K3S_VERSION=%s INSTALL_K3S_SKIP_START=%s INSTALL_K3S_EXEC=%s\n' \
  "$INSTALL_K3S_VERSION" "$INSTALL_K3S_SKIP_START" "$INSTALL_K3S_EXEC" >> "$SANDBOX/calls.log"
mkdir -p "$SANDBOX/root/usr/local/bin"
printf '#!/bin/sh\necho uninstalled >> "$SANDBOX/calls.log"\nrm -f "$0"\n' > "$SANDBOX/root/usr/local/bin/k3s-uninstall.sh"
cp "$SANDBOX/root/usr/local/bin/k3s-uninstall.sh" "$SANDBOX/root/usr/local/bin/k3s-agent-uninstall.sh"
chmod +x "$SANDBOX/root/usr/local/bin/"*.sh
"""


def unescape(text: str) -> str:
    """A Terraform string's content as the machine receives it (the join version interpolated)."""
    text = re.sub(r"(?<!\$)\$\{terraform_data\.[^}]+\.output\}", JOIN_VERSION, text)
    return text.replace("$${", "${").replace("%%{", "%{")


def uploaded_script(resource: dict, name: str) -> str:
    for p in resource["provisioner"]:
        kind, body = next(iter(p.items()))
        if kind == "file" and body["destination"] == f"/tmp/k3s-provision/{name}":
            return unescape(body["content"])
    raise KeyError(name)


def destroy_scripts(provisioners: list[dict]) -> list[tuple[str, str]]:
    """(connection host, script) of each destroy-time remote-exec, in order."""
    out = []
    for p in provisioners:
        kind, body = next(iter(p.items()))
        assert kind == "remote-exec" and body["when"] == "destroy"
        out.append((body["connection"]["host"], unescape("\n".join(body["inline"])) + "\n"))
    return out


def every_rendered_script(stack: dict) -> dict[str, str]:
    scripts = {}
    for key, res in stack["resource"]["null_resource"].items():
        for p in res.get("provisioner", []):
            kind, body = next(iter(p.items()))
            if kind == "file" and body["destination"].endswith(".sh"):
                scripts[f"{key}/{body['destination'].rsplit('/', 1)[1]}"] = unescape(body["content"])
        if "provisioner" in res and drains({"resource": {"null_resource": {key: res}}}):
            for i, (_, text) in enumerate(destroy_scripts(res["provisioner"])):
                scripts[f"{key}/destroy-{i}.sh"] = text
    for block in stack.get("removed", []):
        for i, (_, text) in enumerate(destroy_scripts(block.get("provisioner", []))):
            scripts[f"removed {block['from']}/{i}.sh"] = text
    return scripts


# --- shellcheck ----------------------------------------------------------------------------------------------


def test_shellcheck_is_clean_on_every_rendered_script(nodes, departed, tmp_path):
    if shutil.which("shellcheck") is None:
        # CI (.ci/run installs it) must run this check; a workstation without it skips with the reason.
        assert not os.environ.get("CI"), "shellcheck is missing in CI: .ci/run installs it with apt-get"
        pytest.skip("shellcheck is not installed (apt-get install shellcheck; .ci/run installs it for CI)")
    scripts = {**every_rendered_script(nodes), **{f"departed {k}": v for k, v in every_rendered_script(departed).items()}}
    # install.sh and reconfigure.sh of every node, the drain resources' three steps, the removed blocks' steps.
    assert len(scripts) >= 7 * 2 + 7 * 3 + 4, sorted(scripts)
    paths = []
    for i, (name, text) in enumerate(sorted(scripts.items())):
        path = tmp_path / f"{i:03d}.sh"
        path.write_text(text)
        paths.append((name, path))
    result = subprocess.run(
        ["shellcheck", "--shell=sh", "--severity=style", *[str(p) for _, p in paths]], capture_output=True, text=True
    )
    names = {str(p): n for n, p in paths}
    report = re.sub(r"In (\S+) line", lambda m: f"In {names.get(m.group(1), m.group(1))} line", result.stdout)
    assert result.returncode == 0, report


# --- the sandbox ---------------------------------------------------------------------------------------------


@dataclass
class Run:
    returncode: int
    stderr: str
    calls: list[str]
    sandbox: Path

    def called(self, prefix: str) -> list[str]:
        return [c for c in self.calls if c.startswith(prefix)]


class Sandbox:
    def __init__(self, path: Path):
        self.path = path
        self.root = path / "root"
        bin_dir = path / "bin"
        bin_dir.mkdir(parents=True)
        stub = bin_dir / "stub"
        stub.write_text(STUB)
        stub.chmod(0o755)
        for name in ("curl", "systemctl", "k3s", "journalctl", "ip", "sleep"):
            (bin_dir / name).symlink_to("stub")
        (path / "ca.pem").write_text(CA_PEM)
        (path / "fake-installer.sh").write_text(FAKE_INSTALLER)
        self.env = {
            "PATH": f"{bin_dir}:/usr/bin:/bin",
            "SANDBOX": str(path),
            "CACERTS_OK": "",
            "CACERTS_FOREIGN": "",
        }

    def stage(self, resource: dict, *, pki: bool = False) -> None:
        """What the install resource's file provisioners upload (stand-in contents for the secrets)."""
        staging = self.root / "tmp" / "k3s-provision"
        (staging / "tls" / "etcd").mkdir(parents=True, exist_ok=True)
        for p in resource["provisioner"]:
            kind, body = next(iter(p.items()))
            if kind != "file":
                continue
            dest = staging / body["destination"].removeprefix("/tmp/k3s-provision/")
            content = body["content"]
            if dest.name == "server-ca.crt":
                content = CA_PEM
            elif "${" in content.replace("$${", ""):
                content = f"stand-in for {dest.name}\n"
            dest.write_text(unescape(content))

    def run(self, script: str, *, trust_installer: bool = True, **scenario: str) -> Run:
        text = script.replace("\nroot=''\n", f"\nroot='{self.root}'\n", 1)
        if trust_installer:
            fake = hashlib.sha256(FAKE_INSTALLER.encode()).hexdigest()
            text = re.sub(r"\ninstaller_sha256=[0-9a-f]{64}\n", f"\ninstaller_sha256={fake}\n", text)
        path = self.path / "script.sh"
        path.write_text(text)
        log = self.path / "calls.log"
        log.write_text("")
        result = subprocess.run(
            ["sh", str(path)], env={**self.env, **scenario}, capture_output=True, text=True, timeout=60
        )
        return Run(result.returncode, result.stderr, log.read_text().splitlines(), self.path)


@pytest.fixture(scope="module")
def nodes(synth) -> dict:
    return synth.stack("nodes")


@pytest.fixture(scope="module")
def departed() -> dict:
    return departed_stack()


@pytest.fixture(scope="module")
def machines(nodes) -> dict[str, dict]:
    return hosts(nodes)


@pytest.fixture
def box(tmp_path) -> Sandbox:
    return Sandbox(tmp_path)


def dropin(box: Sandbox) -> str:
    path = box.root / "etc/rancher/k3s/config.yaml.d/10-join.yaml"
    return path.read_text() if path.exists() else ""


def test_a_server_joins_through_the_endpoint_once_it_serves_the_cluster_ca(box, machines):
    server = machines["helix-server-2"]
    box.stage(server)
    run = box.run(uploaded_script(server, "install.sh"), CACERTS_OK=ENDPOINT)
    assert run.returncode == 0, run.stderr
    assert dropin(box) == f'server: "{ENDPOINT}"\n'
    assert not (box.root / "var/lib/rancher/k3s/server/tls/server-ca.key").exists()
    assert run.called("installer") == [
        f"installer INSTALL_K3S_VERSION={JOIN_VERSION} INSTALL_K3S_SKIP_START=true INSTALL_K3S_EXEC=server"
    ]
    assert "systemctl start --no-block k3s" in run.calls
    for f in ("config.yaml", "token", "agent-token"):
        path = box.root / "etc/rancher/k3s" / f
        assert path.exists() and oct(path.stat().st_mode & 0o777) == "0o600", f
    assert not (box.root / "tmp/k3s-provision").exists(), "the staging directory (tokens, CA keys) is removed"


def test_the_bootstrap_server_initializes_only_when_nothing_answers_anywhere(box, machines):
    first = machines["helix-server-1"]
    box.stage(first)
    run = box.run(uploaded_script(first, "install.sh"))
    assert run.returncode == 0, run.stderr
    assert dropin(box) == "cluster-init: true\n"
    # Three rounds over the endpoint and both other servers, then it initializes with Terraform's CAs.
    probes = [c for c in run.called("curl") if "/cacerts" in c]
    assert len(probes) == 3 * 3
    assert {c.split()[-1] for c in probes} == {f"{u}/cacerts" for u in (ENDPOINT, SERVER2, "https://10.20.0.13:6443")}
    assert (box.root / "var/lib/rancher/k3s/server/tls/server-ca.key").exists()
    assert (box.root / "var/lib/rancher/k3s/server/tls/etcd/peer-ca.crt").exists()


@pytest.mark.parametrize("answering", [ENDPOINT, SERVER2], ids=["vip-answers", "only-another-server-answers"])
def test_a_replaced_bootstrap_server_joins_the_running_cluster(box, machines, answering):
    """A new machine (or -replace) for helix-server-1: the cluster answers, so it joins; never cluster-init."""
    first = machines["helix-server-1"]
    box.stage(first)
    run = box.run(uploaded_script(first, "install.sh"), CACERTS_OK=answering)
    assert run.returncode == 0, run.stderr
    assert dropin(box) == f'server: "{answering}"\n'
    assert not (box.root / "var/lib/rancher/k3s/server/tls").exists(), "a joining server takes the CAs from the cluster"


def test_a_node_refuses_an_endpoint_that_serves_another_ca(box, machines):
    server = machines["helix-server-2"]
    box.stage(server)
    run = box.run(uploaded_script(server, "install.sh"), CACERTS_FOREIGN=ENDPOINT)
    assert run.returncode == 1
    assert "serves another CA" in run.stderr
    assert not run.called("installer") and not run.called("systemctl start")
    assert dropin(box) == ""


def test_a_joining_server_gives_up_after_a_bounded_wait_for_the_endpoint(box, machines):
    server = machines["helix-server-2"]
    box.stage(server)
    run = box.run(uploaded_script(server, "install.sh"))
    assert run.returncode == 1
    assert "nothing answers at https://10.20.0.10:6443/cacerts: gave up after 60 attempts" in run.stderr
    # 300 s at one attempt every 5 s: 60 rounds (over the endpoint and the other two servers), 59 pauses.
    assert len(run.called("sleep 5")) == 59
    assert len([c for c in run.called("curl") if "/cacerts" in c]) == 60 * 3
    assert not run.called("installer")


def test_an_agent_waits_for_the_endpoint_then_joins(box, machines):
    agent = machines["helix-agent-1"]
    box.stage(agent)
    run = box.run(uploaded_script(agent, "install.sh"), CACERTS_OK=ENDPOINT)
    assert run.returncode == 0, run.stderr
    assert run.called("installer") == [
        f"installer INSTALL_K3S_VERSION={JOIN_VERSION} INSTALL_K3S_SKIP_START=true INSTALL_K3S_EXEC=agent"
    ]
    assert "systemctl start --no-block k3s-agent" in run.calls
    assert "systemctl is-active --quiet k3s-agent" in run.calls
    assert not (box.root / "etc/rancher/k3s/agent-token").exists(), "an agent never holds the agent-token secret file"
    assert dropin(box) == ""
    again = Sandbox(box.path / "no-endpoint")
    again.stage(agent)
    run = again.run(uploaded_script(agent, "install.sh"))
    assert run.returncode == 1 and "gave up after 60 attempts" in run.stderr


def test_k3s_that_never_gets_ready_fails_after_a_bounded_wait_with_its_journal(box, machines):
    server = machines["helix-server-2"]
    box.stage(server)
    run = box.run(uploaded_script(server, "install.sh"), CACERTS_OK=ENDPOINT, READY_AFTER="never")
    assert run.returncode == 1
    assert "k3s on helix-server-2 is not ready after 300s" in run.stderr
    assert "JOURNAL: k3s[1234]" in run.stderr
    assert (box.path / "ready.count").read_text().strip() == "60"
    assert run.called("journalctl") == ["journalctl -u k3s --no-pager -n 60"]


def test_a_failed_installer_download_stops_the_install(box, machines):
    server = machines["helix-server-2"]
    box.stage(server)
    run = box.run(uploaded_script(server, "install.sh"), CACERTS_OK=ENDPOINT, INSTALLER="fail")
    assert run.returncode == 1
    assert "could not download the k3s installer from https://raw.githubusercontent.com/k3s-io/k3s/v1.29.1%2Bk3s2/install.sh" in run.stderr
    assert not run.called("installer") and not run.called("systemctl start")


def test_an_installer_that_does_not_match_the_pinned_sha256_never_runs(box, machines):
    server = machines["helix-server-2"]
    script = uploaded_script(server, "install.sh")
    assert "\ninstaller_sha256=431c6fe653336279073e5b913557aa22d7ef1794b30b4f02002b4482910464d7\n" in script
    box.stage(server)
    run = box.run(script, trust_installer=False, CACERTS_OK=ENDPOINT)
    assert run.returncode == 1
    assert "does not match sha256 431c6fe6" in run.stderr
    assert not run.called("installer") and not run.called("systemctl start")


def test_a_rerun_after_a_failure_keeps_the_join_decision(box, machines):
    first = machines["helix-server-1"]
    box.stage(first)
    failed = box.run(uploaded_script(first, "install.sh"), CACERTS_OK=SERVER2, READY_AFTER="never")
    assert failed.returncode == 1
    assert dropin(box) == f'server: "{SERVER2}"\n'
    # Retried when nothing answers any more: it must not initialize a second cluster now.
    box.stage(first)
    again = box.run(uploaded_script(first, "install.sh"))
    assert again.returncode == 0, again.stderr
    assert dropin(box) == f'server: "{SERVER2}"\n'
    assert "keeps its earlier decision" in again.stderr
    assert not (box.root / "var/lib/rancher/k3s/server/tls").exists()


# --- config rolls --------------------------------------------------------------------------------------------


def roll_script(nodes: dict, name: str) -> tuple[dict, str]:
    res = next(r for r in nodes["resource"]["null_resource"].values() if r.get("triggers", {}).get("node") == name and "fingerprint" in r["triggers"])
    return res, uploaded_script(res, "reconfigure.sh")


def test_a_config_roll_restarts_k3s_only_when_a_file_changed(box, nodes):
    res, script = roll_script(nodes, "helix-server-2")
    box.stage(res)
    etc = box.root / "etc/rancher/k3s"
    etc.mkdir(parents=True)
    for f in ("config.yaml", "token", "agent-token"):
        shutil.copy(box.root / "tmp/k3s-provision" / f, etc / f)
    unchanged = box.run(script)
    assert unchanged.returncode == 0, unchanged.stderr
    assert "settings unchanged" in unchanged.stderr and not unchanged.called("systemctl restart")

    (etc / "config.yaml").write_text("tls-san: [old]\n")
    box.stage(res)
    staged = (box.root / "tmp/k3s-provision/config.yaml").read_text()
    (box.path / "invocation").write_text("run-before\n")
    changed = box.run(script)
    assert changed.returncode == 0, changed.stderr
    assert changed.called("systemctl restart") == ["systemctl restart --no-block k3s"]
    assert (etc / "config.yaml").read_text() == staged
    assert "restarted with new config.yaml" in changed.stderr

    (etc / "config.yaml").write_text("tls-san: [older]\n")
    box.stage(res)
    broken = box.run(script, READY_AFTER="never")
    assert broken.returncode == 1
    assert "not ready after 300s" in broken.stderr and "JOURNAL:" in broken.stderr


# --- removal -------------------------------------------------------------------------------------------------


def run_steps(box: Sandbox, steps: list[tuple[str, str]], **scenario: str) -> list[Run]:
    out = []
    for _, script in steps:
        run = box.run(script, **scenario)
        out.append(run)
        if run.returncode != 0:
            break
    return out


def test_a_departed_agent_is_drained_then_stopped_cleaned_uninstalled_then_deleted(box, departed):
    blocks = removed_blocks(departed)
    steps = destroy_scripts(blocks["agent-2"]["drain"]["provisioner"])
    assert [host for host, _ in steps] == ["10.20.0.11", "10.20.0.22", "10.20.0.11"]
    box.root.mkdir(parents=True)
    subprocess.run(["sh", str(box.path / "fake-installer.sh")], env=box.env, check=True)
    runs = run_steps(box, steps)
    assert [r.returncode for r in runs] == [0, 0, 0], [r.stderr for r in runs]
    drain, stop, delete = (r.calls for r in runs)
    assert drain == [
        "k3s kubectl get node agent-2 -o name",
        "k3s kubectl drain agent-2 --ignore-daemonsets --delete-emptydir-data --force --timeout=300s",
    ]
    assert stop[0] == "systemctl cat k3s-agent" and stop[1] == "systemctl stop k3s-agent"
    assert [c for c in stop if c.startswith("ip link show")] == [
        f"ip link show {link}" for link in ("cilium_host", "cilium_net", "cilium_vxlan", "cilium_geneve")
    ]
    assert stop[-1] == "uninstalled"
    assert delete == ["k3s kubectl delete node agent-2 --ignore-not-found --timeout=60s"]

    # Every step again (an apply retried after a later failure): each one succeeds without doing it twice.
    again = run_steps(box, steps, UNIT_EXISTS="0")
    assert [r.returncode for r in again] == [0, 0, 0], [r.stderr for r in again]
    assert "agent-2 is not in the cluster: nothing to drain" in again[0].stderr
    assert not again[0].called("k3s kubectl drain")
    assert "k3s is not installed on agent-2 (any more)" in again[1].stderr


def test_a_drain_that_fails_stops_the_removal_with_the_node_still_in_the_cluster(box, departed):
    steps = destroy_scripts(removed_blocks(departed)["agent-2"]["drain"]["provisioner"])
    runs = run_steps(box, steps, DRAIN_RC="1")
    assert len(runs) == 1 and runs[0].returncode == 1
    assert "draining agent-2 failed" in runs[0].stderr
    assert not (box.path / "node-gone").exists()


def test_an_unreachable_departed_node_is_drained_and_deleted_without_touching_the_machine(departed):
    steps = destroy_scripts(removed_blocks(departed)["agent-3"]["drain"]["provisioner"])
    assert [host for host, _ in steps] == ["10.20.0.11", "10.20.0.11"]
    assert "node=agent-3" in steps[0][1] and "k3s kubectl drain" in steps[0][1]
    assert "node=agent-3" in steps[1][1] and "k3s kubectl delete node" in steps[1][1]


def test_a_departed_server_is_stopped_and_uninstalled_as_a_server(box, departed):
    steps = destroy_scripts(removed_blocks(departed)["server-4"]["drain"]["provisioner"])
    assert [host for host, _ in steps] == ["10.20.0.11", "10.20.0.14", "10.20.0.11"]
    box.root.mkdir(parents=True)
    subprocess.run(["sh", str(box.path / "fake-installer.sh")], env=box.env, check=True)
    os.remove(box.root / "usr/local/bin/k3s-agent-uninstall.sh")
    runs = run_steps(box, steps)
    assert [r.returncode for r in runs] == [0, 0, 0], [r.stderr for r in runs]
    assert runs[1].calls[:2] == ["systemctl cat k3s", "systemctl stop k3s"]
    assert runs[1].calls[-1] == "uninstalled"
    assert runs[2].calls == ["k3s kubectl delete node server-4 --ignore-not-found --timeout=60s"]


def test_an_agent_config_roll_waits_for_the_restarted_agent(box, nodes):
    res, script = roll_script(nodes, "helix-agent-2")
    box.stage(res)
    etc = box.root / "etc/rancher/k3s"
    etc.mkdir(parents=True)
    (etc / "config.yaml").write_text("server: https://old:6443\n")
    (box.path / "invocation").write_text("run-before\n")
    run = box.run(script)
    assert run.returncode == 0, run.stderr
    assert run.called("systemctl restart") == ["systemctl restart --no-block k3s-agent"]
    assert "systemctl is-active --quiet k3s-agent" in run.calls
    assert not (etc / "agent-token").exists()


# Commands that talk to a daemon, the network or the cluster, and so could wait forever.
BLOCKING = ("systemctl", "k3s", "journalctl", "ip", '"$tool-save"', '"$tool-restore"', "sh", "curl")


def test_no_command_in_any_script_can_block_without_a_bound(nodes, departed):
    scripts = {**every_rendered_script(nodes), **every_rendered_script(departed)}
    unbounded = []
    for name, text in scripts.items():
        for line in text.splitlines():
            code = line.split(" #")[0].strip()
            if code.startswith("#"):
                continue
            # Quoted text is data (messages), except command words inside $(...).
            code = re.sub(r"'[^']*'", "''", code)
            code = re.sub(r'"(?:[^"\\$]|\\.|\$(?!\())*"', '""', code)
            for m in re.finditer(r'(?:^|[;|&(!]|\bthen|\bdo|\bif|\buntil|\{)\s*(systemctl|k3s|journalctl|ip|"\$tool-save"|"\$tool-restore"|curl|sh)\b', code):
                word = m.group(1)
                before = code[: m.start(1)]
                if word == "curl":
                    if "--max-time" not in code:
                        unbounded.append((name, line))
                elif word == "sh" and ("exec sudo -n sh" in code or re.search(r"timeout \d+ sh", code)):
                    continue
                elif not re.search(r"timeout \d+\s*$", before):
                    unbounded.append((name, line))
    assert not unbounded, unbounded
    # And the waits are counted loops with a pause, never `while true` without an exit.
    for name, text in scripts.items():
        assert "while true" not in text and "while :" not in text, name
