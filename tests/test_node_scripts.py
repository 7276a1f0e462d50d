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
import yaml

from tests.helpers import departed_stack, drains, hosts, removed_blocks

# The slow lane (`task test-all`, CI): the machines' scripts run under bash with stub commands, and ShellCheck.
pytestmark = pytest.mark.slow


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
        # Without -o, curl writes to stdout.
        for ok in $CACERTS_OK; do [ "$ok" = "$base" ] && { cp "$SANDBOX/ca.pem" "${out:-/dev/stdout}"; exit 0; }; done
        for bad in $CACERTS_FOREIGN; do [ "$bad" = "$base" ] && { echo "another CA" > "${out:-/dev/stdout}"; exit 0; }; done
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
      start|restart)
        echo "run-$(date +%s%N)" > "$SANDBOX/invocation"
        # After a token rotation, a server started with another token can't decrypt the bootstrap data.
        rm -f "$SANDBOX/bad-token"
        if [ "$3" = k3s ] && [ -s "$SANDBOX/cluster-secret" ]; then
          installed=$(cat "$SANDBOX/root/etc/rancher/k3s/token")
          [ "${installed##*::server:}" = "$(cat "$SANDBOX/cluster-secret")" ] || touch "$SANDBOX/bad-token"
        fi
        exit 0 ;;
    esac
    exit 0 ;;
  k3s)
    sub=$1; shift
    if [ "$sub $1" = "token rotate" ]; then
      # k3s token rotate (pkg/cli/token/token.go, pkg/server/handlers/token.go): it authenticates as `server` with
      # --token/K3S_TOKEN, else <data-dir>/server/token (only a server has one), against the server at
      # 127.0.0.1:6443; the PUT needs the cluster's current server password; --new-token becomes the password as
      # given; k3s writes the new <data-dir>/server/token.
      shift
      token=${K3S_TOKEN:-}; new=
      while [ $# -gt 0 ]; do
        case "$1" in
          --token) token=$2; shift ;; --token=*) token=${1#*=} ;;
          --new-token) new=$2; shift ;; --new-token=*) new=${1#*=} ;;
        esac
        shift
      done
      data="$SANDBOX/root/var/lib/rancher/k3s/server"
      if [ -z "$token" ]; then
        [ -s "$data/token" ] || { echo "open /var/lib/rancher/k3s/server/token: no such file or directory" >&2; exit 1; }
        token=$(cat "$data/token")
      fi
      [ -d "$data" ] || { echo "Put \"https://127.0.0.1:6443/v1-k3s/token\": connect: connection refused" >&2; exit 1; }
      case "$token" in *::server:*) pass=${token##*::server:} ;; *::*) pass= ;; *) pass=$token ;; esac
      if [ -z "$pass" ] || [ "$pass" != "$(cat "$SANDBOX/cluster-secret" 2>/dev/null)" ]; then
        echo "https://127.0.0.1:6443/v1-k3s/token: 401 Unauthorized" >&2; exit 1
      fi
      printf '%s\n' "${new:-generated-by-k3s}" > "$SANDBOX/cluster-secret"
      printf 'K10stub::server:%s\n' "${new:-generated-by-k3s}" > "$data/token"
      echo "Token rotated, restart k3s nodes with new token"
      exit 0
    fi
    if [ "$sub" = server ]; then
      # k3s's own rules for a reset (pkg/cli/server/server.go): --cluster-reset-restore-path needs --cluster-reset;
      # a server URL in the config (config.yaml, config.yaml.d/*.yaml) or K3S_URL refuses the reset; a restore
      # needs the token (--token/K3S_TOKEN/token:, not token-file) or <data-dir>/server/token.
      reset=; restore=; token=${K3S_TOKEN:-}
      for a in "$@"; do
        case "$a" in
          --cluster-reset) reset=1 ;;
          --cluster-reset-restore-path=*) restore=${a#*=} ;;
          --server|--server=*) url=1 ;;
          --token=*) token=${a#*=} ;;
        esac
      done
      if [ -n "$restore" ] && [ -z "$reset" ]; then
        echo "invalid flag use; --cluster-reset required with --cluster-reset-restore-path" >&2; exit 1
      fi
      conf="$SANDBOX/root/etc/rancher/k3s"
      if [ -n "$reset" ]; then
        if [ -n "${url:-}" ] || [ -n "${K3S_URL:-}" ] || grep -Eqs '^"?server"?:' "$conf/config.yaml" "$conf"/config.yaml.d/*.yaml; then
          echo "cannot perform cluster-reset while server URL is set - remove server from configuration before resetting" >&2
          exit 1
        fi
        if [ -n "$restore" ] && [ -z "$token" ] && ! grep -Eqs '^"?token"?:' "$conf/config.yaml" \
            && [ ! -e "$SANDBOX/root/var/lib/rancher/k3s/server/token" ]; then
          echo "/var/lib/rancher/k3s/server/token does not exist, please pass --token to complete the restoration" >&2
          exit 1
        fi
        printf 'restored %s with token %s\n' "$restore" "$token" >> "$SANDBOX/resets"
        exit 0
      fi
      exit 0
    fi
    case "$1 $2" in
      "get --raw")
        [ -e "$SANDBOX/bad-token" ] && exit 1
        n=$(( $(cat "$SANDBOX/ready.count" 2>/dev/null || echo 0) + 1 )); echo "$n" > "$SANDBOX/ready.count"
        [ "${READY_AFTER:-1}" != never ] && [ "$n" -ge "${READY_AFTER:-1}" ] && exit 0
        exit 1 ;;
      "get node")
        [ -e "$SANDBOX/node-gone" ] && { echo "Error from server (NotFound): nodes \"$3\" not found" >&2; exit 1; }
        case "$5" in jsonpath=*) cat "$SANDBOX/etcd-removed" 2>/dev/null; exit 0 ;; esac
        echo "node/$3"; exit 0 ;;
      "get clusterrolebinding")
        # k3s's deploy controller applied the manifests directory: the binding's group, from the file.
        [ "${BINDING:-applied}" = never ] && exit 0
        sed -n '/kind: Group/{n;s/.*name: //p;}' "$SANDBOX/root/var/lib/rancher/k3s/server/manifests/$3.yaml" 2>/dev/null
        exit 0 ;;
      "annotate node")
        # k3s's etcd member controller removes the member and records removed-node-name.
        [ "${ETCD_REMOVE:-ok}" = ok ] && echo "$3" > "$SANDBOX/etcd-removed"
        exit 0 ;;
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
if [ "$INSTALL_K3S_EXEC" = server ]; then mkdir -p "$SANDBOX/root/var/lib/rancher/k3s/server"; fi
"""


def unescape(text: str, *, initializing: bool = True) -> str:
    """A Terraform string's content as the machine receives it (the join version interpolated; the cluster-init
    record's test true in the apply that creates it, false in any later one)."""
    text = re.sub(r"(?<!\$)\$\{terraform_data\.[^}]+\.output == plantimestamp\(\)\}", "true" if initializing else "false", text)
    text = re.sub(r"(?<!\$)\$\{terraform_data\.[^}]+\.output\}", JOIN_VERSION, text)
    return text.replace("$${", "${").replace("%%{", "%{")


def uploaded_script(resource: dict, name: str, *, initializing: bool = True) -> str:
    for p in resource["provisioner"]:
        kind, body = next(iter(p.items()))
        if kind == "file" and body["destination"] == f"/tmp/k3s-provision/{name}":
            return unescape(body["content"], initializing=initializing)
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
    # Its etcd member is removed through the surviving server (k3s's annotation), then the Node is deleted.
    assert runs[2].calls == [
        "k3s kubectl get node server-4 -o name",
        "k3s kubectl annotate node server-4 --overwrite etcd.k3s.cattle.io/remove=true",
        "k3s kubectl get node server-4 -o jsonpath={.metadata.annotations.etcd\\.k3s\\.cattle\\.io/removed-node-name}",
        "k3s kubectl delete node server-4 --ignore-not-found --timeout=60s",
    ]


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


# --- issue 24: the API endpoint, dead machines, initialization from state, restore ---------------------------

VIP_FIXTURE = "kube-vip-endpoint.yaml"


@pytest.fixture(scope="module")
def kube_vip_nodes() -> dict:
    from tests.helpers import FIXTURES, nodes_stack_of

    return nodes_stack_of(FIXTURES / "valid" / VIP_FIXTURE)


def test_kube_vip_is_installed_as_a_static_pod_before_k3s_starts_on_every_server(box, kube_vip_nodes):
    """Defect 1: the VIP the config names is created by the nodes stack (the shipped config's mode)."""
    machines = hosts(kube_vip_nodes)
    server = machines["server-2"]
    box.stage(server)
    run = box.run(uploaded_script(server, "install.sh"), CACERTS_OK="https://10.20.0.11:6443")
    assert run.returncode == 0, run.stderr
    manifest = box.root / "var/lib/rancher/k3s/agent/pod-manifests/kube-vip.yaml"
    assert manifest.exists() and oct(manifest.stat().st_mode & 0o777) == "0o600"
    pod = yaml.safe_load(manifest.read_text())
    (container,) = pod["spec"]["containers"]
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}
    assert pod["spec"]["hostNetwork"] is True
    # The lease holder is the node's name, not a hostname that cloned machines may share.
    assert env["vip_nodename"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
    assert container["image"] == "ghcr.io/kube-vip/kube-vip:v1.2.3"
    assert env["address"] == "10.20.0.10" and env["port"] == "6443" and env["vip_interface"] == "eth0"
    assert env["vip_arp"] == env["cp_enable"] == env["vip_leaderelection"] == "true"
    assert env["svc_enable"] == "false"
    # It elects a leader through this server's own API (k3s's admin kubeconfig at 127.0.0.1), never the VIP.
    assert env["k8s_config_file"] == "/etc/rancher/k3s/k3s.yaml"
    # Before k3s starts: the second server, the agents and Cilium find the VIP up.
    installed = run.calls.index("systemctl start --no-block k3s")
    assert installed > 0
    for name, res in machines.items():
        staged = [b["destination"] for k, b in (next(iter(p.items())) for p in res["provisioner"]) if k == "file"]
        assert ("/tmp/k3s-provision/kube-vip.yaml" in staged) == (res["triggers"]["role"] == "server"), name


def test_the_endpoint_check_waits_for_the_vip_and_explains_a_missing_one(box, kube_vip_nodes):
    (check,) = [r for k, r in kube_vip_nodes["resource"]["null_resource"].items() if "endpoint-check" in k]
    (script,) = [unescape(b["content"]) for k, b in (next(iter(p.items())) for p in check["provisioner"]) if k == "file"]
    # One line, so its exit status is the script's (a later inline line would hide a failure).
    assert check["provisioner"][-1]["remote-exec"]["inline"] == ["sh /tmp/k3s-endpoint-check.sh"]
    assert check["connection"]["host"] == "10.20.0.11"
    tls = box.root / "var/lib/rancher/k3s/server/tls"
    tls.mkdir(parents=True)
    (tls / "server-ca.crt").write_text(CA_PEM)
    up = box.run(script, CACERTS_OK=ENDPOINT)
    assert up.returncode == 0, up.stderr
    down = box.run(script)
    assert down.returncode == 1
    assert "does not serve this cluster's CA after 300s: check that kube-vip's static pod holds the VIP" in down.stderr
    assert len(down.called("sleep 5")) == 59


def test_an_agent_falls_back_to_a_server_while_the_endpoint_is_not_up(box, machines):
    agent = machines["helix-agent-1"]
    box.stage(agent)
    run = box.run(uploaded_script(agent, "install.sh"), CACERTS_OK=SERVER2)
    assert run.returncode == 0, run.stderr
    assert dropin(box) == f'server: "{SERVER2}"\n'
    assert "joins through the server" in run.stderr
    # Once the endpoint answers, a re-run goes back to config.yaml's server: (the endpoint).
    box.stage(agent)
    again = box.run(uploaded_script(agent, "install.sh"), CACERTS_OK=f"{ENDPOINT} {SERVER2}")
    assert again.returncode == 0, again.stderr
    assert dropin(box) == ""


def test_a_bootstrap_server_installed_after_the_first_apply_never_initializes(box, machines):
    """Defect 5: a new helix-server-1 that sees no answer (firewall, VIP down) fails instead of cluster-init."""
    first = machines["helix-server-1"]
    box.stage(first)
    run = box.run(uploaded_script(first, "install.sh", initializing=False))
    assert run.returncode == 1
    assert "gave up after 60 attempts" in run.stderr
    assert dropin(box) == ""
    assert not run.called("installer") and not (box.root / "var/lib/rancher/k3s/server/tls").exists()


def test_the_initialization_record_is_a_plan_timestamp_kept_in_state(nodes):
    (key,) = [k for k in nodes["resource"]["terraform_data"] if "cluster-init" in k]
    record = nodes["resource"]["terraform_data"][key]
    assert record["input"] == "${plantimestamp()}" and record["lifecycle"]["ignore_changes"] == ["input"]


def dead_steps(stack: dict, name: str) -> list[tuple[str, str]]:
    return destroy_scripts(drains(stack)[name]["provisioner"])


def test_a_dead_agent_is_drained_without_eviction_and_without_waiting_for_its_pods(box, departed):
    """Defect 2: the drain of an unreachable node ends (kubectl drain flags, present since Kubernetes 1.18)."""
    steps = destroy_scripts(removed_blocks(departed)["agent-3"]["drain"]["provisioner"])
    run = box.run(steps[0][1])
    assert run.returncode == 0, run.stderr
    assert run.called("k3s kubectl drain") == [
        "k3s kubectl drain agent-3 --ignore-daemonsets --delete-emptydir-data --force --disable-eviction"
        " --skip-wait-for-delete-timeout=10 --timeout=300s"
    ]
    live = destroy_scripts(removed_blocks(departed)["agent-2"]["drain"]["provisioner"])
    assert "--disable-eviction" not in live[0][1]


def test_replacing_a_dead_machine_never_connects_to_it(box, kube_vip_nodes):
    """Defect 3: `unreachable` on a node: its replacement drains and deletes it through a surviving server."""
    agent = dead_steps(kube_vip_nodes, "agent-2")
    assert [host for host, _ in agent] == ["10.20.0.11", "10.20.0.11"]
    assert "--disable-eviction --skip-wait-for-delete-timeout=10" in agent[0][1]
    server = dead_steps(kube_vip_nodes, "server-3")
    assert [host for host, _ in server] == ["10.20.0.11", "10.20.0.11"]
    runs = run_steps(box, server)
    assert [r.returncode for r in runs] == [0, 0], [r.stderr for r in runs]
    assert runs[1].called("k3s kubectl annotate") == ["k3s kubectl annotate node server-3 --overwrite etcd.k3s.cattle.io/remove=true"]
    assert runs[1].calls[-1] == "k3s kubectl delete node server-3 --ignore-not-found --timeout=60s"
    # The dead server is never the one the others' removals run through.
    for name in ("server-1", "agent-1"):
        assert all(host != "10.20.0.13" for host, _ in dead_steps(kube_vip_nodes, name)), name


def test_a_server_whose_etcd_member_is_not_removed_stays_in_the_cluster(box, departed):
    steps = destroy_scripts(removed_blocks(departed)["server-4"]["drain"]["provisioner"])
    run = box.run(steps[-1][1], ETCD_REMOVE="never")
    assert run.returncode == 1
    assert "did not remove the etcd member of server-4 within 120s" in run.stderr
    assert not run.called("k3s kubectl delete")


# --- token rotation (docs/nodes.md, Rotation): the rotation step, then the config rolls, against k3s's rules ------


def rotation_step(stack: dict) -> dict:
    (step,) = [r for k, r in stack["resource"]["null_resource"].items() if k.startswith("k3s_token-rotate_")]
    return step


def server_with_token(tmp: Path, machine: dict, token: str, cluster_secret: str) -> Sandbox:
    """An installed server whose token file holds `token`, in a cluster whose server password is `cluster_secret`."""
    box = installed(tmp, machine, CACERTS_OK=ENDPOINT)
    (box.root / "etc/rancher/k3s/token").write_text(token + "\n")
    (box.path / "cluster-secret").write_text(cluster_secret + "\n")
    return box


def stage_token(box: Sandbox, token: str) -> None:
    staging = box.root / "tmp/k3s-provision"
    staging.mkdir(parents=True, exist_ok=True)
    (staging / "token").write_text(token + "\n")


def test_the_stub_enforces_k3s_rules_for_a_token_rotation(tmp_path, machines):
    """Only on a server (the token comes from --token/K3S_TOKEN or <data-dir>/server/token, and the PUT goes to
    127.0.0.1:6443), and only with the cluster's current server password."""
    server = server_with_token(tmp_path / "server", machines["helix-server-2"], "K10abc::server:old", "old")
    script = "#!/bin/sh\nroot=''\nk3s token rotate --new-token new\n"
    assert "no such file" in server.run(script).stderr, "no --token and no <data-dir>/server/token"
    assert "401 Unauthorized" in server.run(script, K3S_TOKEN="K10abc::server:wrong").stderr
    assert "401 Unauthorized" in server.run(script, K3S_TOKEN="K10abc::node:old").stderr, "the agent's user"
    assert (server.path / "cluster-secret").read_text() == "old\n"
    assert server.run(script, K3S_TOKEN="K10abc::server:old").returncode == 0
    assert (server.path / "cluster-secret").read_text() == "new\n"
    agent = installed(tmp_path / "agent", machines["helix-agent-1"], CACERTS_OK=ENDPOINT)
    (agent.path / "cluster-secret").write_text("old\n")
    refused = agent.run(script, K3S_TOKEN="K10abc::server:old")
    assert refused.returncode == 1 and "connection refused" in refused.stderr


def test_a_rotated_server_token_is_rotated_in_the_cluster_then_rolled_onto_every_server(tmp_path, nodes, machines):
    step = rotation_step(nodes)
    assert step["connection"]["host"] == hosts(nodes)["helix-server-1"]["connection"]["host"]
    script = uploaded_script(step, "rotate-token.sh")
    one = server_with_token(tmp_path / "one", machines["helix-server-1"], "K10abc::server:old", "old")

    stage_token(one, "K10abc::server:new")
    run = one.run(script)
    assert run.returncode == 0, run.stderr
    assert run.called("k3s token rotate") == ["k3s token rotate --new-token new"], "the bare secret, as k3s stores it"
    assert (one.path / "cluster-secret").read_text() == "new\n"
    # A re-run (the apply failed after the rotation) finds the new token accepted.
    stage_token(one, "K10abc::server:new")
    again = one.run(script)
    assert again.returncode == 0 and "already accepts the new server token" in again.stderr
    # Nothing to rotate: no call to k3s (the first apply, or an apply with the same token).
    (one.root / "etc/rancher/k3s/token").write_text("K10abc::server:new\n")
    stage_token(one, "K10abc::server:new")
    current = one.run(script)
    assert current.returncode == 0 and not current.called("k3s")
    # Neither the installed token nor the new one is the cluster's: stop, before any server restarts.
    (one.path / "cluster-secret").write_text("someone-else\n")
    stage_token(one, "K10abc::server:newer")
    refused = one.run(script)
    assert refused.returncode == 1 and "neither the installed token nor the new one is accepted" in refused.stderr

    # Then each server's config roll installs the new token file and restarts k3s, which needs it.
    two = server_with_token(tmp_path / "two", machines["helix-server-2"], "K10abc::server:old", "new")
    roll = nodes["resource"]["null_resource"]
    (resource,) = [r for r in roll.values() if r.get("triggers", {}).get("node") == "helix-server-2" and "fingerprint" in r["triggers"]]
    two.stage(resource)
    for name in ("config.yaml", "agent-token"):
        (two.root / "tmp/k3s-provision" / name).write_text((two.root / "etc/rancher/k3s" / name).read_text())
    stage_token(two, "K10abc::server:old")
    (two.path / "invocation").write_text("run-before\n")
    two.run("#!/bin/sh\nsystemctl restart --no-block k3s\n")
    assert (two.path / "bad-token").exists(), "the stub: the old token no longer starts a server"
    stage_token(two, "K10abc::server:new")
    rolled = two.run(uploaded_script(resource, "reconfigure.sh"), READY_AFTER="1")
    assert rolled.returncode == 0, rolled.stderr
    assert "restarted with new token" in rolled.stderr
    assert (two.root / "etc/rancher/k3s/token").read_text() == "K10abc::server:new\n"


# --- the admin credential: a group bound to cluster-admin, not system:masters -------------------------------------


def test_a_server_binds_the_admin_group_before_k3s_starts_and_waits_until_it_is_served(box, machines):
    """Issue 24: the admin credential was system:masters, which no RBAC change revokes."""
    server = machines["helix-server-2"]
    box.stage(server)
    run = box.run(uploaded_script(server, "install.sh"), CACERTS_OK=ENDPOINT)
    assert run.returncode == 0, run.stderr
    binding = yaml.safe_load((box.root / "var/lib/rancher/k3s/server/manifests/terraform-admin.yaml").read_text())
    assert binding["kind"] == "ClusterRoleBinding" and binding["roleRef"]["name"] == "cluster-admin"
    assert binding["subjects"] == [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "helix-admins-0"}]
    started = run.calls.index("systemctl start --no-block k3s")
    waited = [i for i, c in enumerate(run.calls) if c.startswith("k3s kubectl get clusterrolebinding terraform-admin")]
    assert waited and waited[0] > started
    agent = machines["helix-agent-1"]
    assert not any(
        next(iter(p.values())).get("destination", "").endswith("terraform-admin.yaml") for p in agent["provisioner"]
    )


def test_a_binding_k3s_never_serves_fails_the_install_after_a_bounded_wait(box, machines):
    server = machines["helix-server-2"]
    box.stage(server)
    run = box.run(uploaded_script(server, "install.sh"), CACERTS_OK=ENDPOINT, BINDING="never")
    assert run.returncode == 1
    assert "k3s did not bind helix-admins-0 to cluster-admin within 120s" in run.stderr
    assert len(run.called("k3s kubectl get clusterrolebinding")) == 24


def test_a_rotated_admin_group_moves_the_binding_without_restarting_k3s(box, nodes):
    resource, script = roll_script(nodes, "helix-server-1")
    box.stage(resource)
    staging = box.root / "tmp/k3s-provision"
    config_dir = box.root / "etc/rancher/k3s"
    config_dir.mkdir(parents=True)
    for name in ("config.yaml", "token", "agent-token"):
        (config_dir / name).write_text((staging / name).read_text())
    manifests = box.root / "var/lib/rancher/k3s/server/manifests"
    manifests.mkdir(parents=True)
    (manifests / "terraform-admin.yaml").write_text((staging / "terraform-admin.yaml").read_text().replace("helix-admins-0", "helix-admins-7"))
    run = box.run(script)
    assert run.returncode == 0, run.stderr
    assert "name: helix-admins-0" in (manifests / "terraform-admin.yaml").read_text()
    assert not run.called("systemctl restart"), "k3s applies a changed manifest without a restart"
    assert run.called("k3s kubectl get clusterrolebinding terraform-admin")


# --- restore (docs/nodes.md, Restore): the scripts tools.restore renders, against a k3s stub with k3s's rules ---


def runbook(*, total_loss: bool = False, from_s3: bool = True, snapshot: str = "etcd-snapshot-server-1-1733400000", **more):
    from constructs_lib.k3s_scripts import restore_runbook

    return restore_runbook(
        **more,
        servers=[("helix-server-1", "10.20.0.11"), ("helix-server-2", "10.20.0.12"), ("helix-server-3", "10.20.0.13")],
        agents=[("helix-agent-1", "10.20.0.21")],
        reset_on="helix-server-1",
        snapshot=snapshot,
        from_s3=from_s3,
        api_port=6443,
        total_loss=total_loss,
    )


def installed(tmp: Path, machine: dict, **scenario: str) -> Sandbox:
    """A machine as install.sh leaves it (the stub installer)."""
    box = Sandbox(tmp)
    box.stage(machine)
    run = box.run(uploaded_script(machine, "install.sh"), **scenario)
    assert run.returncode == 0, run.stderr
    return box


def test_the_stub_enforces_k3s_rules_for_a_reset(tmp_path, machines):
    """Defect 4: the documented restore (k3s server --cluster-reset on a server that joined) is refused."""
    box = installed(tmp_path, machines["helix-server-1"], CACERTS_OK=SERVER2)
    assert dropin(box) == f'server: "{SERVER2}"\n'
    documented = "#!/bin/sh\nroot=''\nk3s server --cluster-reset --etcd-s3=false --cluster-reset-restore-path=/snap\n"
    refused = box.run(documented)
    assert refused.returncode == 1 and "cannot perform cluster-reset while server URL is set" in refused.stderr
    (box.root / "etc/rancher/k3s/config.yaml.d/10-join.yaml").unlink()
    no_token = box.run(documented)
    assert no_token.returncode == 1 and "please pass --token" in no_token.stderr
    assert not (box.path / "resets").exists()


@pytest.mark.parametrize("from_s3", [True, False], ids=["s3-snapshot", "local-snapshot"])
def test_a_lost_quorum_is_restored_on_one_server_and_the_others_rejoin_through_it(tmp_path, machines, from_s3):
    snapshot = "etcd-snapshot-server-1-1733400000" if from_s3 else "/var/lib/rancher/k3s/server/db/snapshots/snap-1"
    steps = runbook(from_s3=from_s3, snapshot=snapshot)
    assert [(s.node, s.action) for s in steps] == [
        ("helix-server-2", "stop"),
        ("helix-server-3", "stop"),
        ("helix-server-1", "reset"),
        ("helix-server-2", "rejoin"),
        ("helix-server-3", "rejoin"),
    ]
    # helix-server-1 was replaced once: it joined through server 2, so `server:` is set on it.
    one = installed(tmp_path / "one", machines["helix-server-1"], CACERTS_OK=SERVER2)
    if not from_s3:
        (one.root / snapshot.lstrip("/")).parent.mkdir(parents=True)
        (one.root / snapshot.lstrip("/")).write_text("snapshot")
    reset = one.run(steps[2].script)
    assert reset.returncode == 0, reset.stderr
    token = (one.root / "etc/rancher/k3s/token").read_text().strip()
    assert (one.path / "resets").read_text() == f"restored {snapshot} with token {token}\n"
    (call,) = reset.called("k3s server")
    assert ("--etcd-s3=false" in call) == (not from_s3)
    assert reset.calls.index("systemctl stop k3s") < reset.calls.index(call) < reset.calls.index("systemctl start --no-block k3s")
    assert dropin(one) == "cluster-init: true\n"
    assert (one.root / "etc/rancher/k3s/config.yaml.d/10-join.yaml.before-restore").read_text() == f'server: "{SERVER2}"\n'

    two = installed(tmp_path / "two", machines["helix-server-2"], CACERTS_OK="https://10.20.0.13:6443")
    (two.root / "var/lib/rancher/k3s/server/db/etcd").mkdir(parents=True)
    rejoin = two.run(steps[3].script)
    assert rejoin.returncode == 0, rejoin.stderr
    # Through the restored server's address, not the peer it first joined through; the old data kept aside.
    assert dropin(two) == 'server: "https://10.20.0.11:6443"\n'
    assert (two.root / "var/lib/rancher/k3s/server/db.before-restore/etcd").is_dir()
    assert not (two.root / "var/lib/rancher/k3s/server/db").exists()
    assert rejoin.calls[0] == "systemctl stop k3s" and "systemctl start --no-block k3s" in rejoin.calls
    again = two.run(steps[3].script)
    assert again.returncode == 0, again.stderr


def test_a_total_loss_is_restored_into_the_reinstalled_machines(tmp_path, machines):
    steps = runbook(total_loss=True)
    assert [(s.node, s.action) for s in steps][-1] == ("helix-agent-1", "restart-agent")
    # After the reinstall from Terraform, helix-server-1 initialized a throwaway cluster (cluster-init).
    one = installed(tmp_path / "one", machines["helix-server-1"])
    assert dropin(one) == "cluster-init: true\n"
    assert not (one.root / "var/lib/rancher/k3s/server/token").exists(), "a new machine: only the token file"
    reset = one.run(steps[2].script)
    assert reset.returncode == 0, reset.stderr
    assert (one.path / "resets").exists()
    # Every machine is new: the restored node passwords would refuse them.
    deleted = [c for c in reset.calls if "delete secret" in c]
    assert deleted == [
        f"k3s kubectl -n kube-system delete secret {n}.node-password.k3s --ignore-not-found"
        for n in ("helix-server-1", "helix-server-2", "helix-server-3", "helix-agent-1")
    ]
    agent = Sandbox(tmp_path / "agent")
    (agent.path / "invocation").write_text("run-before\n")
    restarted = agent.run(steps[-1].script)
    assert restarted.returncode == 0, restarted.stderr
    assert restarted.called("systemctl restart") == ["systemctl restart --no-block k3s-agent"]


def test_a_snapshot_from_before_a_token_rotation_is_restored_with_the_old_token(tmp_path, machines):
    """k3s: snapshots taken before a rotation need the old server token (docs.k3s.io, k3s token rotate)."""
    steps = runbook(token_file="/root/k3s-token-before-rotation")
    one = installed(tmp_path, machines["helix-server-1"])
    (one.root / "root").mkdir()
    (one.root / "root/k3s-token-before-rotation").write_text("K10abc::server:before\n")
    reset = one.run(steps[2].script)
    assert reset.returncode == 0, reset.stderr
    assert (one.path / "resets").read_text() == "restored etcd-snapshot-server-1-1733400000 with token K10abc::server:before\n"
    (one.root / "root/k3s-token-before-rotation").unlink()
    missing = one.run(steps[2].script)
    assert missing.returncode == 1 and "no server token at" in missing.stderr


def test_restore_tool_writes_the_runbook_from_the_config(tmp_path):
    from tests.helpers import FIXTURES
    from tools.restore import main

    out = tmp_path / "restore"
    assert main(["--config", str(FIXTURES / "valid" / "etcd-s3-snapshots.yaml"), "--snapshot", "snap", "--out", str(out)]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names[-1].endswith("-rejoin.sh") and any(n.endswith("-reset.sh") for n in names)
    assert main(["--config", str(FIXTURES / "valid" / "kube-vip-endpoint.yaml"), "--snapshot", "snap", "--out", str(out)]) == 2
    # A broken config: exit 2 with its problems, no traceback.
    assert main(["--config", str(FIXTURES / "invalid" / "kube-vip-without-a-vip.yaml"), "--snapshot", "s", "--out", str(out)]) == 2


def test_shellcheck_is_clean_on_the_restore_scripts(tmp_path):
    if shutil.which("shellcheck") is None:
        assert not os.environ.get("CI"), "shellcheck is missing in CI: .ci/run installs it with apt-get"
        pytest.skip("shellcheck is not installed (apt-get install shellcheck; .ci/run installs it for CI)")
    paths = []
    for i, step in enumerate([*runbook(total_loss=True), *runbook(from_s3=False, snapshot="/snap")]):
        path = tmp_path / f"{i:02d}-{step.node}-{step.action}.sh"
        path.write_text(step.script)
        paths.append(str(path))
    result = subprocess.run(["shellcheck", "--shell=sh", "--severity=style", *paths], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_no_destroy_time_remote_exec_has_an_empty_line(nodes, departed):
    """Terraform refuses an empty string in remote-exec's inline ("invalid empty string in 'scripts'"): a blank
    line in a removal step failed every removal and replacement (found by tests/test_node_ssh.py)."""
    blocks = [*drains(nodes).values(), *drains(departed).values(), *departed.get("removed", [])]
    steps = [p["remote-exec"] for b in blocks for p in b.get("provisioner", [])]
    assert len(steps) > 20
    assert all(line != "" for step in steps for line in step["inline"])
