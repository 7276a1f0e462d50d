"""The shell scripts K3sCluster runs on the machines, rendered from plain values (POSIX sh, shellcheck-clean).

Every wait is bounded, every failure exits non-zero with what went wrong on stderr (and the unit's journal when
k3s doesn't come up), and every script can run again after a partial run. No script holds a secret: tokens are
files uploaded next to them, read by k3s itself.

`root` prefixes every absolute path the scripts write or run (empty on a real machine); the test suite sets it to
run the scripts in a sandbox with stub commands.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass

STAGING_DIR = "/tmp/k3s-provision"
CONFIG_DIR = "/etc/rancher/k3s"
TLS_DIR = "/var/lib/rancher/k3s/server/tls"
BIN_DIR = "/usr/local/bin"
# Written once by install.sh on a server: either `server: <url>` (it joined) or `cluster-init: true` (it
# initialized the cluster). k3s merges config.yaml.d/*.yaml over config.yaml; a later config roll keeps it.
JOIN_DROPIN = "config.yaml.d/10-join.yaml"
POD_MANIFESTS_DIR = "/var/lib/rancher/k3s/agent/pod-manifests"
# Kept by the removal of a server: k3s-uninstall.sh deletes /var/lib/rancher/k3s, snapshots included.
SNAPSHOT_KEEP_DIR = "/var/backups/k3s-etcd-snapshots"
SNAPSHOT_DIR = "/var/lib/rancher/k3s/server/db/snapshots"
# k3s's deploy controller applies every file here on each server (at start, and within 15 s of a change), and
# prunes the objects a changed file no longer holds (pkg/deploy/controller.go).
SERVER_MANIFESTS_DIR = "/var/lib/rancher/k3s/server/manifests"
# The ClusterRoleBinding of the admin group to cluster-admin (its name, and its file's basename there).
ADMIN_BINDING = "terraform-admin"


def q(value: str) -> str:
    return shlex.quote(value)


PRELUDE = """\
set -eu
log() { printf '%s\\n' "$*" >&2; }
fail() { log "error: $*"; exit 1; }
if [ "$(id -u)" -ne 0 ]; then exec sudo -n sh "$0" "$@"; fi
"""

# A bounded wait for the unit: polls `ready` every `interval` seconds; on timeout prints the unit's journal.
WAIT_READY = """\
wait_ready() {{
  tries=$(( {timeout} / {interval} ))
  i=0
  until ready; do
    i=$((i + 1))
    if [ "$i" -ge "$tries" ]; then
      log "error: $service on $node is not ready after {timeout}s; the last lines of its journal:"
      timeout 30 journalctl -u "$service" --no-pager -n 60 >&2 || true
      exit 1
    fi
    sleep {interval}
  done
}}
"""


def admin_binding_install() -> list[str]:
    """Install the staged admin binding into k3s's manifests directory when it differs (no restart: k3s's deploy
    controller applies a changed file within 15 s)."""
    return [
        f'binding="$root"{SERVER_MANIFESTS_DIR}/{ADMIN_BINDING}.yaml',
        f'if ! cmp -s "$staging/{ADMIN_BINDING}.yaml" "$binding"; then',
        f'  install -d -m 0700 "$root"{SERVER_MANIFESTS_DIR}',
        f'  install -m 0600 "$staging/{ADMIN_BINDING}.yaml" "$binding"',
        "fi",
    ]


def admin_binding_wait(group: str, *, timeout: int = 120, interval: int = 5) -> list[str]:
    """Wait, bounded, until the API serves the binding with `group`: the admin certificate of that group works
    before anything uses it."""
    jsonpath = "{.subjects[0].name}"
    return [
        f"# The admin certificate's group ({group}) is bound to cluster-admin before anything uses it.",
        "i=0",
        f"until [ \"$(timeout 10 k3s kubectl get clusterrolebinding {ADMIN_BINDING} -o jsonpath='{jsonpath}' 2>/dev/null)\" = {q(group)} ]; do",
        "  i=$((i + 1))",
        f'  if [ "$i" -ge {max(1, timeout // interval)} ]; then',
        f'    fail "k3s did not bind {group} to cluster-admin within {timeout}s ({SERVER_MANIFESTS_DIR}/{ADMIN_BINDING}.yaml; kubectl -n kube-system get addon {ADMIN_BINDING})"',
        "  fi",
        f"  sleep {interval}",
        "done",
    ]


@dataclass(frozen=True)
class InstallScript:
    """Values of one node's install.sh."""

    node: str
    role: str  # server | agent
    version: str  # the k3s version to install (may be a Terraform reference)
    installer_url: str
    installer_sha256: str
    endpoint: str  # https://<api_host>:<port>
    peers: Sequence[str] = ()  # other servers' https://<address>:<port>, probed by a server before it decides
    embedded_etcd: bool = True
    # The bootstrap server on the apply that records the cluster's initialization: it initializes when nothing
    # answers anywhere. A Terraform expression (true only in that apply), or a literal.
    may_initialize: bool | str = False
    # kube-vip's static pod is staged (servers with a kube-vip endpoint): installed before k3s starts.
    kube_vip: bool = False
    # The admin certificate's group, bound by a staged manifest (servers; None: system:masters, nothing to bind).
    admin_group: str | None = None
    init_probe_rounds: int = 3
    join_timeout: int = 300
    ready_timeout: int = 300
    installer_timeout: int = 900
    interval: int = 5
    root: str = ""


def install_script(p: InstallScript) -> str:
    service = "k3s" if p.role == "server" else "k3s-agent"
    decides = p.role == "server" and p.embedded_etcd
    head = [
        "#!/bin/sh",
        f"# k3s on {p.node} ({p.role}): install the staged files, join (or, first of all, initialize), start, wait.",
        PRELUDE,
        f"root={q(p.root)}",
        f"staging=\"$root\"{STAGING_DIR}",
        f"node={q(p.node)}",
        f"role={p.role}",
        f"service={service}",
        f"version={q(p.version)}",
        f"installer_url={q(p.installer_url)}",
        f"installer_sha256={p.installer_sha256}",
        f"endpoint={q(p.endpoint)}",
        f"config_dir=\"$root\"{CONFIG_DIR}",
    ]
    may_initialize = p.may_initialize if isinstance(p.may_initialize, str) else ("true" if p.may_initialize else "false")
    if decides:
        head += [f"peers={q(' '.join(p.peers))}", f"may_initialize={q(may_initialize)}"]
    elif p.role == "agent":
        # The servers an agent falls back to while the endpoint does not answer yet.
        head += [f"peers={q(' '.join(p.peers))}"]
    if p.role == "server":
        head += [f"tls_dir=\"$root\"{TLS_DIR}"]
    head += [
        'trap \'rm -rf "$staging"\' EXIT',
        "",
        WAIT_READY.format(timeout=p.ready_timeout, interval=p.interval),
    ]
    if p.role == "server":
        head.append("ready() { timeout 10 k3s kubectl get --raw /readyz >/dev/null 2>&1; }")
    else:
        head.append('ready() { timeout 10 systemctl is-active --quiet "$service"; }')
    body = [
        "",
        "# The cluster's server CA: what /cacerts must serve at the endpoint before this node trusts it with a token.",
        'ca_sha256=$(sha256sum "$staging/server-ca.crt" | cut -d " " -f 1)',
        "",
        "# 0: the URL serves this cluster's CA. 1: nothing answers. Another CA is fatal: never join a stranger.",
        "probe() {",
        '  rm -f "$staging/cacerts"',
        '  if ! curl -fsSk --connect-timeout 5 --max-time 10 -o "$staging/cacerts" "$1/cacerts"; then',
        "    return 1",
        "  fi",
        '  served=$(sha256sum "$staging/cacerts" | cut -d " " -f 1)',
        '  if [ "$served" != "$ca_sha256" ]; then',
        '    fail "$1/cacerts serves another CA (sha256 $served, this cluster\'s is $ca_sha256): refusing to join it"',
        "  fi",
        "}",
        "",
        'install -d -m 0755 "$config_dir" "$config_dir/config.yaml.d"',
        'install -m 0600 "$staging/config.yaml" "$config_dir/config.yaml"',
        'install -m 0600 "$staging/token" "$config_dir/token"',
    ]
    if p.role == "server":
        body.append('install -m 0600 "$staging/agent-token" "$config_dir/agent-token"')
    if decides:
        body += [
            "",
            "# Join through the endpoint (or any other server) when one answers; initialize only when this is the",
            "# bootstrap server and nothing answers anywhere. The decision is kept: a re-run never changes it.",
            f'dropin="$config_dir/{JOIN_DROPIN}"',
            'if [ -s "$dropin" ]; then',
            '  log "$node keeps its earlier decision: $(cat "$dropin")"',
            "else",
            "  join_url=",
            "  rounds=0",
            '  if [ "$may_initialize" = true ]; then max_rounds=' + str(p.init_probe_rounds) + "; else max_rounds="
            + str(max(1, p.join_timeout // p.interval)) + "; fi",
            '  while [ -z "$join_url" ]; do',
            "    # shellcheck disable=SC2086 # peers is a space-separated list of URLs",
            "    for url in $endpoint $peers; do",
            '      if probe "$url"; then join_url=$url; break; fi',
            "    done",
            '    [ -n "$join_url" ] && break',
            "    rounds=$((rounds + 1))",
            '    if [ "$rounds" -ge "$max_rounds" ]; then',
            '      if [ "$may_initialize" = true ]; then break; fi',
            f'      fail "nothing answers at $endpoint/cacerts: gave up after $rounds attempts (at least {p.join_timeout}s; is the VIP up? the servers?)"',
            "    fi",
            f"    sleep {p.interval}",
            "  done",
            '  if [ -n "$join_url" ]; then',
            '    log "$node joins the running cluster through $join_url"',
            '    printf \'server: "%s"\\n\' "$join_url" > "$dropin.new"',
            "  else",
            '    log "nothing answers at $endpoint or any other server: $node initializes the cluster"',
            "    printf 'cluster-init: true\\n' > \"$dropin.new\"",
            "  fi",
            '  chmod 0600 "$dropin.new"',
            "fi",
        ]
    elif p.role == "agent":
        body += [
            "",
            "# Wait (bounded) until the endpoint, or else one of the servers, serves this cluster's CA. The endpoint",
            "# is config.yaml's server:; a server that answers while the endpoint does not is this agent's way in",
            "# (config.yaml.d/10-join.yaml), and k3s's agent load balancer learns every server from there.",
            f'dropin="$config_dir/{JOIN_DROPIN}"',
            "join_url=",
            "rounds=0",
            'while [ -z "$join_url" ]; do',
            "  # shellcheck disable=SC2086 # peers is a space-separated list of URLs",
            "  for url in $endpoint $peers; do",
            '    if probe "$url"; then join_url=$url; break; fi',
            "  done",
            '  [ -n "$join_url" ] && break',
            "  rounds=$((rounds + 1))",
            f'  if [ "$rounds" -ge {max(1, p.join_timeout // p.interval)} ]; then',
            f'    fail "nothing answers at $endpoint/cacerts or any server: gave up after $rounds attempts (at least {p.join_timeout}s; is the VIP up? the servers?)"',
            "  fi",
            f"  sleep {p.interval}",
            "done",
            'if [ "$join_url" = "$endpoint" ]; then',
            '  rm -f "$dropin"',
            "else",
            '  log "warning: $endpoint does not answer yet; $node joins through the server $join_url"',
            '  printf \'server: "%s"\\n\' "$join_url" > "$dropin"',
            '  chmod 0600 "$dropin"',
            "fi",
        ]
    if p.role == "server":
        # The CAs from Terraform, only for a server that initializes (a joining one gets them from the datastore).
        initializes = '[ -s "$dropin.new" ] && grep -q "^cluster-init" "$dropin.new"' if decides else "true"
        body += [
            "",
            f"if {initializes}; then",
            '  install -d -m 0700 "$tls_dir" "$tls_dir/etcd"',
            '  for f in $(cd "$staging/tls" && find . -type f | sed "s|^\\./||" | sort); do',
            '    if [ -e "$tls_dir/$f" ] && ! cmp -s "$staging/tls/$f" "$tls_dir/$f"; then',
            '      fail "$tls_dir/$f exists with other content: this machine already holds a cluster"',
            "    fi",
            '    install -m 0600 "$staging/tls/$f" "$tls_dir/$f"',
            "  done",
            "fi",
        ]
    if decides:
        body += ['if [ -e "$dropin.new" ]; then mv "$dropin.new" "$dropin"; fi']
    if p.kube_vip:
        body += [
            "",
            "# kube-vip's static pod, before k3s starts: kubelet runs it with host networking, no CNI needed, and the",
            "# leader among the servers holds the VIP.",
            f'install -d -m 0755 "$root"{POD_MANIFESTS_DIR}',
            f'install -m 0600 "$staging/kube-vip.yaml" "$root"{POD_MANIFESTS_DIR}/kube-vip.yaml',
        ]
    if p.admin_group:
        body += ["", "# The admin group's binding to cluster-admin, applied by k3s when it starts.", *admin_binding_install()]
    body += [
        "",
        "# The official installer from the release tag, checked against its sha256; a failed download stops here.",
        'if ! curl -fsSL --connect-timeout 10 --max-time 120 --retry 3 -o "$staging/k3s-install.sh" "$installer_url"; then',
        '  fail "could not download the k3s installer from $installer_url"',
        "fi",
        'if ! printf \'%s  %s\\n\' "$installer_sha256" "$staging/k3s-install.sh" | sha256sum -c - >/dev/null 2>&1; then',
        '  fail "the installer from $installer_url does not match sha256 $installer_sha256"',
        "fi",
        'if ! INSTALL_K3S_VERSION="$version" INSTALL_K3S_SKIP_START=true INSTALL_K3S_EXEC="$role" \\',
        f'    timeout {p.installer_timeout} sh "$staging/k3s-install.sh"; then',
        '  fail "the k3s installer failed (k3s $version)"',
        "fi",
        "",
        "# Type=notify: a blocking start would wait forever for a node that never gets ready.",
        'timeout 30 systemctl start --no-block "$service"',
        "wait_ready",
        *(admin_binding_wait(p.admin_group, interval=p.interval) if p.admin_group else []),
        'log "k3s $version $role $node is ready"',
        "",
    ]
    return "\n".join(head + body)


@dataclass(frozen=True)
class ReconfigureScript:
    node: str
    role: str
    ready_timeout: int = 300
    interval: int = 5
    root: str = ""
    kube_vip: bool = False  # a kube-vip static pod is staged: kubelet picks up a changed one without a restart
    admin_group: str | None = None  # the admin binding is staged: k3s applies a changed one without a restart


def reconfigure_script(p: ReconfigureScript) -> str:
    """Install changed files (config.yaml, the token files) and restart k3s on this node, waiting (bounded) until
    it is back. Nothing changed: nothing restarts."""
    service = "k3s" if p.role == "server" else "k3s-agent"
    files = "config.yaml token agent-token" if p.role == "server" else "config.yaml token"
    if p.role == "server":
        check = "timeout 10 k3s kubectl get --raw /readyz >/dev/null 2>&1"
    else:
        check = 'timeout 10 systemctl is-active --quiet "$service"'
    lines = [
        "#!/bin/sh",
        f"# Roll changed settings onto {p.node} ({p.role}): restart k3s only when a file differs.",
        PRELUDE,
        f"root={q(p.root)}",
        f"staging=\"$root\"{STAGING_DIR}",
        f"node={q(p.node)}",
        f"service={service}",
        f"config_dir=\"$root\"{CONFIG_DIR}",
        'trap \'rm -rf "$staging"\' EXIT',
        "",
        WAIT_READY.format(timeout=p.ready_timeout, interval=p.interval),
        'invocation() { timeout 10 systemctl show -p InvocationID --value "$service" 2>/dev/null || true; }',
        "# Ready means a new process (the old one may still answer right after the restart) that is ready.",
        f'ready() {{ [ "$(invocation)" != "$before" ] && {check}; }}',
        "",
        *(
            [
                f'manifest="$root"{POD_MANIFESTS_DIR}/kube-vip.yaml',
                'if ! cmp -s "$staging/kube-vip.yaml" "$manifest"; then',
                f'  install -d -m 0755 "$root"{POD_MANIFESTS_DIR}',
                '  install -m 0600 "$staging/kube-vip.yaml" "$manifest"',
                '  log "$node: kube-vip static pod updated (kubelet restarts it)"',
                "fi",
            ]
            if p.kube_vip
            else []
        ),
        *([*admin_binding_install(), *admin_binding_wait(p.admin_group, interval=p.interval)] if p.admin_group else []),
        "changed=",
        f"for f in {files}; do",
        '  if ! cmp -s "$staging/$f" "$config_dir/$f"; then changed="$changed $f"; fi',
        "done",
        'if [ -z "$changed" ]; then',
        '  log "$node: settings unchanged, k3s keeps running"',
        "  exit 0",
        "fi",
        "before=$(invocation)",
        f"for f in {files}; do",
        '  install -m 0600 "$staging/$f" "$config_dir/$f"',
        "done",
        'timeout 30 systemctl restart --no-block "$service"',
        "wait_ready",
        'log "$node restarted with new$changed"',
        "",
    ]
    return "\n".join(lines)


def token_rotate_script(node: str, *, root: str = "") -> str:
    """On one server, before the config rolls: rotate the cluster's server token to the staged one.

    k3s token rotate (pkg/cli/token, pkg/server/handlers/token.go) authenticates as `server` with the token it is
    given (--token/K3S_TOKEN, else <data-dir>/server/token, which only a server has) and takes the new token's bare
    secret (it stores --new-token as the password as given). Already current: nothing to do. A re-run after the
    rotation succeeded finds the new token accepted. The token files and the restarts (which k3s asks for after a
    rotation) are the config rolls' that follow, one server at a time."""
    return "\n".join(
        [
            "#!/bin/sh",
            f"# Rotate the server token of the cluster on {node} (the other servers get it from the config rolls).",
            PRELUDE,
            f"root={q(root)}",
            f"staging=\"$root\"{STAGING_DIR}",
            f"node={q(node)}",
            f"installed=\"$root\"{CONFIG_DIR}/token",
            'trap \'rm -rf "$staging"\' EXIT',
            '[ -s "$installed" ] || fail "no server token at $installed: k3s is not installed as a server on $node"',
            'if cmp -s "$staging/token" "$installed"; then',
            '  log "$node: the server token is current, nothing to rotate"',
            "  exit 0",
            "fi",
            "new=$(sed -n 's/^K10[0-9a-f]*::server://p' \"$staging/token\")",
            '[ -n "$new" ] || fail "the staged token is not a secure server token (K10<ca hash>::server:<secret>)"',
            "# k3s hides its arguments from ps (it sets its process title); the old token goes in the environment.",
            'if K3S_TOKEN="$(cat "$installed")" timeout 60 k3s token rotate --new-token "$new" >&2; then',
            '  log "$node: server token rotated"',
            'elif K3S_TOKEN="$(cat "$staging/token")" timeout 60 k3s token rotate --new-token "$new" >&2; then',
            '  log "$node: the cluster already accepts the new server token (an earlier run rotated it)"',
            "else",
            '  fail "k3s token rotate failed on $node: neither the installed token nor the new one is accepted"',
            "fi",
            "# The token file is the config roll's: it installs it and restarts k3s, on this server as on the others.",
            "",
        ]
    )


# A dead node's pods never finish terminating (no kubelet confirms it): the drain deletes them instead of evicting
# (no PodDisruptionBudget can be honoured by a machine that is gone) and stops waiting for a pod whose deletion
# is older than this many seconds (kubectl drain --skip-wait-for-delete-timeout; "must be greater than 0").
DEAD_NODE_SKIP_WAIT_SECONDS = 10


def drain_script(node: str, *, timeout: str, unreachable: bool = False) -> str:
    """On a surviving server: cordon and drain the node; nothing to do when it is already gone. An unreachable
    node is drained with --disable-eviction --skip-wait-for-delete-timeout, so the drain ends."""
    flags = "--ignore-daemonsets --delete-emptydir-data --force"
    if unreachable:
        flags += f" --disable-eviction --skip-wait-for-delete-timeout={DEAD_NODE_SKIP_WAIT_SECONDS}"
    return "\n".join(
        [
            "#!/bin/sh",
            f"# Drain {node} before it leaves the cluster (runs on a surviving server"
            + ("; the machine is dead)." if unreachable else ")."),
            PRELUDE,
            f"node={q(node)}",
            'if ! out=$(timeout 60 k3s kubectl get node "$node" -o name 2>&1); then',
            '  case "$out" in',
            '    *NotFound*|*"not found"*) log "$node is not in the cluster: nothing to drain"; exit 0 ;;',
            "  esac",
            '  fail "cannot read node $node: $out"',
            "fi",
            f'if ! timeout {_seconds(timeout) + 60} k3s kubectl drain "$node" {flags} \\',
            f"    --timeout={timeout}; then",
            '  fail "draining $node failed (a PodDisruptionBudget?); it stays in the cluster, cordoned"',
            "fi",
            'log "$node drained"',
            "",
        ]
    )


def stop_script(node: str, role: str, *, root: str = "") -> str:
    """On the departing machine: stop k3s, remove Cilium's interfaces and rules, uninstall k3s."""
    service = "k3s" if role == "server" else "k3s-agent"
    uninstall = "k3s-uninstall.sh" if role == "server" else "k3s-agent-uninstall.sh"
    return "\n".join(
        [
            "#!/bin/sh",
            f"# Stop, clean up and uninstall k3s on {node} (runs on the departing machine).",
            PRELUDE,
            f"root={q(root)}",
            f"node={q(node)}",
            f"service={service}",
            f'bin_dir="$root"{BIN_DIR}',
            'if timeout 10 systemctl cat "$service" >/dev/null 2>&1; then',
            '  timeout 120 systemctl stop "$service" || fail "could not stop $service on $node"',
            "fi",
            'if [ -x "$bin_dir/k3s-killall.sh" ]; then',
            '  timeout 120 "$bin_dir/k3s-killall.sh" >/dev/null || fail "k3s-killall.sh failed on $node"',
            "fi",
            "# Cilium leaves its interfaces, iptables chains and state behind (k3s's scripts know only flannel's).",
            "for link in cilium_host cilium_net cilium_vxlan cilium_geneve; do",
            '  if timeout 10 ip link show "$link" >/dev/null 2>&1; then timeout 10 ip link delete "$link"; fi',
            "done",
            "for tool in iptables ip6tables; do",
            '  if command -v "$tool-save" >/dev/null 2>&1 && timeout 60 "$tool-save" | grep -q CILIUM; then',
            '    timeout 60 "$tool-save" | grep -v CILIUM | timeout 60 "$tool-restore"',
            "  fi",
            "done",
            'rm -rf "$root/run/cilium" "$root/var/run/cilium" "$root/etc/cni/net.d/05-cilium.conflist" "$root/opt/cni/bin/cilium-cni"',
            *(
                [
                    "# k3s-uninstall.sh deletes the data directory: keep this server's etcd snapshots on the machine.",
                    f'if [ -d "$root"{SNAPSHOT_DIR} ]; then',
                    f'  install -d -m 0700 "$root"{SNAPSHOT_KEEP_DIR}',
                    f'  cp -a "$root"{SNAPSHOT_DIR}/. "$root"{SNAPSHOT_KEEP_DIR}/',
                    f'  log "$node: etcd snapshots kept in {SNAPSHOT_KEEP_DIR}"',
                    "fi",
                ]
                if role == "server"
                else []
            ),
            f'if [ -x "$bin_dir/{uninstall}" ]; then',
            f'  timeout 300 "$bin_dir/{uninstall}" >/dev/null || fail "{uninstall} failed on $node"',
            "else",
            '  log "k3s is not installed on $node (any more)"',
            "fi",
            'log "$node: k3s stopped, cleaned up and uninstalled"',
            "",
        ]
    )


def delete_script(node: str, *, etcd_member: bool = False, member_timeout: int = 120, interval: int = 5) -> str:
    """On a surviving server: for a server, ask k3s to remove its etcd member and wait (bounded) until k3s records
    it (etcd.k3s.cattle.io/remove -> removed-node-name, k3s's etcd member controller); then delete the Node (k3s
    removes its node-password secret, so a new machine may take the name)."""
    lines = [
        "#!/bin/sh",
        f"# Delete {node} from the cluster (runs on a surviving server).",
        PRELUDE,
        f"node={q(node)}",
    ]
    if etcd_member:
        removed = "{.metadata.annotations.etcd\\.k3s\\.cattle\\.io/removed-node-name}"
        lines += [
            "# Its etcd member first, while the Node still carries the member's name and address.",
            'if timeout 60 k3s kubectl get node "$node" -o name >/dev/null 2>&1; then',
            '  if ! timeout 60 k3s kubectl annotate node "$node" --overwrite etcd.k3s.cattle.io/remove=true >/dev/null; then',
            '    fail "could not ask k3s to remove the etcd member of $node"',
            "  fi",
            "  i=0",
            f"  until [ -n \"$(timeout 30 k3s kubectl get node \"$node\" -o jsonpath='{removed}' 2>/dev/null)\" ]; do",
            "    i=$((i + 1))",
            f'    if [ "$i" -ge {max(1, member_timeout // interval)} ]; then',
            f'      fail "k3s did not remove the etcd member of $node within {member_timeout}s (is etcd quorate?)"',
            "    fi",
            f"    sleep {interval}",
            "  done",
            '  log "$node: etcd member removed"',
            "fi",
        ]
    lines += [
        'if ! timeout 90 k3s kubectl delete node "$node" --ignore-not-found --timeout=60s; then',
        '  fail "deleting node $node failed"',
        "fi",
        'log "$node deleted from the cluster"',
        "",
    ]
    return "\n".join(lines)


def endpoint_check_script(*, endpoint: str, mode: str, timeout: int = 300, interval: int = 5, root: str = "") -> str:
    """On the bootstrap server once it is ready: the API endpoint serves this cluster's CA (bounded), before any
    other node or stack relies on it. For kube-vip it waits for the VIP; for an external load balancer it is the
    preflight that it forwards to the servers."""
    why = {
        "kube-vip": "kube-vip's static pod holds the VIP (kubectl -n kube-system logs kube-vip-<server>; is the "
        "interface right, the address free?)",
        "external": "your load balancer forwards the API port to the servers (docs/nodes.md, API endpoint)",
        "first-server": "the bootstrap server answers on its own address",
    }.get(mode, "something serves it")
    return "\n".join(
        [
            "#!/bin/sh",
            f"# The API endpoint ({mode}) serves this cluster's CA: checked once the bootstrap server is ready.",
            PRELUDE,
            'trap \'rm -f "$0"\' EXIT',
            f"endpoint={q(endpoint)}",
            f"root={q(root)}",
            f'ca_file="$root"{TLS_DIR}/server-ca.crt',
            '[ -s "$ca_file" ] || fail "no server CA at $ca_file: k3s is not installed on this server"',
            'ca=$(sha256sum "$ca_file" | cut -d " " -f 1)',
            'served() { curl -fsSk --connect-timeout 5 --max-time 10 "$endpoint/cacerts" 2>/dev/null | sha256sum | cut -d " " -f 1; }',
            "i=0",
            'until [ "$(served)" = "$ca" ]; do',
            "  i=$((i + 1))",
            f'  if [ "$i" -ge {max(1, timeout // interval)} ]; then',
            f'    fail "$endpoint does not serve this cluster\'s CA after {timeout}s: check that {why}"',
            "  fi",
            f"  sleep {interval}",
            "done",
            'log "$endpoint serves this cluster"',
            "",
        ]
    )


# --- disaster recovery --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RestoreReset:
    """The server that a restore resets from an etcd snapshot (it becomes the cluster's only member)."""

    node: str
    snapshot: str  # a file path on the machine (local), or a snapshot name in the S3 bucket
    from_s3: bool
    # Machines that are new since the snapshot: their Nodes' node-password secrets are deleted after the reset,
    # or k3s would refuse their (new) passwords when they reconnect.
    new_machines: Sequence[str] = ()
    # The server token the snapshot was taken with: a snapshot from before a token rotation needs the old one.
    token_file: str = f"{CONFIG_DIR}/token"
    reset_timeout: int = 900
    ready_timeout: int = 300
    interval: int = 5
    root: str = ""


def restore_reset_script(p: RestoreReset) -> str:
    """Reset this server's etcd to the snapshot: k3s stopped; `server:` moved aside (k3s refuses --cluster-reset
    while a server URL is set); the token passed as K3S_TOKEN (the restore check reads --token, not token-file, and
    falls back to <data-dir>/server/token, absent on a new machine); then started as the first member."""
    s3_flag = "" if p.from_s3 else " --etcd-s3=false"
    lines = [
        "#!/bin/sh",
        f"# Restore: reset {p.node}'s etcd from a snapshot; every other server is stopped.",
        PRELUDE,
        f"root={q(p.root)}",
        f"node={q(p.node)}",
        "service=k3s",
        f"snapshot={q(p.snapshot)}",
        f"config_dir=\"$root\"{CONFIG_DIR}",
        f'dropin="$config_dir/{JOIN_DROPIN}"',
        "",
        WAIT_READY.format(timeout=p.ready_timeout, interval=p.interval),
        "ready() { timeout 10 k3s kubectl get --raw /readyz >/dev/null 2>&1; }",
        "",
        'command -v k3s >/dev/null 2>&1 || fail "k3s is not installed on $node: install it first (docs/nodes.md, Total loss)"',
        f"token_file=\"$root\"{q(p.token_file)}",
        '[ -s "$token_file" ] || fail "no server token at $token_file (docs/nodes.md, Total loss)"',
    ]
    if not p.from_s3:
        lines.append('[ -s "$root$snapshot" ] || fail "no snapshot file $snapshot on $node"')
    lines += [
        'if grep -Eq \'^"?server"?:\' "$config_dir/config.yaml"; then',
        '  fail "$config_dir/config.yaml sets server:; k3s refuses a cluster reset while a server URL is set"',
        "fi",
        'timeout 120 systemctl stop "$service" || fail "could not stop k3s on $node"',
        "# The join decision: a server URL here makes k3s refuse the reset. Kept aside, replaced after the reset.",
        'if [ -e "$dropin" ]; then mv "$dropin" "$dropin.before-restore"; fi',
        f'if ! K3S_TOKEN="$(cat "$token_file")" timeout {p.reset_timeout} k3s server --cluster-reset{s3_flag} \\',
        '    --cluster-reset-restore-path="$snapshot" >&2; then',
        '  fail "k3s could not reset $node from $snapshot (its journal and the output above say why)"',
        "fi",
        "# This server is now the cluster's only member: it starts as the one that initialized it.",
        "printf 'cluster-init: true\\n' > \"$dropin\"",
        'chmod 0600 "$dropin"',
        'timeout 30 systemctl start --no-block "$service"',
        "wait_ready",
    ]
    for name in p.new_machines:
        lines += [
            f"if ! timeout 60 k3s kubectl -n kube-system delete secret {q(name + '.node-password.k3s')} --ignore-not-found >/dev/null; then",
            f'  fail "could not delete the node password of {name}"',
            "fi",
        ]
    lines += ['log "$node restored from $snapshot: the other servers rejoin through it now"', ""]
    return "\n".join(lines)


@dataclass(frozen=True)
class RestoreRejoin:
    """A server that wipes its etcd data and rejoins through the restored server."""

    node: str
    via: str  # https://<restored server address>:<port>
    ready_timeout: int = 300
    interval: int = 5
    root: str = ""


def restore_rejoin_script(p: RestoreRejoin) -> str:
    """Stop k3s, move the old etcd data aside (never deleted), join through the restored server (its address now,
    not the URL recorded at the first join, which may be a peer's old address), start, wait."""
    return "\n".join(
        [
            "#!/bin/sh",
            f"# Restore: {p.node} drops its old etcd data and rejoins through the restored server.",
            PRELUDE,
            f"root={q(p.root)}",
            f"node={q(p.node)}",
            "service=k3s",
            f"via={q(p.via)}",
            f"config_dir=\"$root\"{CONFIG_DIR}",
            f'dropin="$config_dir/{JOIN_DROPIN}"',
            'db="$root/var/lib/rancher/k3s/server/db"',
            "",
            WAIT_READY.format(timeout=p.ready_timeout, interval=p.interval),
            "ready() { timeout 10 k3s kubectl get --raw /readyz >/dev/null 2>&1; }",
            "",
            'timeout 120 systemctl stop "$service" || fail "could not stop k3s on $node"',
            'if [ -d "$db" ]; then',
            '  [ -e "$db.before-restore" ] && fail "$db.before-restore exists from an earlier restore: move it away first"',
            '  mv "$db" "$db.before-restore"',
            "fi",
            'if [ -e "$dropin" ]; then mv "$dropin" "$dropin.before-restore"; fi',
            'install -d -m 0755 "$config_dir/config.yaml.d"',
            'printf \'server: "%s"\\n\' "$via" > "$dropin"',
            'chmod 0600 "$dropin"',
            'timeout 30 systemctl start --no-block "$service"',
            "wait_ready",
            'log "$node rejoined the restored cluster through $via"',
            "",
        ]
    )


def stop_server_script(node: str) -> str:
    """Restore, first step on every server but the one reset: stop k3s, so no member with the old data fights
    the restored one."""
    return "\n".join(
        [
            "#!/bin/sh",
            f"# Restore: stop k3s on {node} before any server is reset.",
            PRELUDE,
            f"node={q(node)}",
            'timeout 120 systemctl stop k3s || fail "could not stop k3s on $node"',
            'log "$node: k3s stopped"',
            "",
        ]
    )


def restart_agent_script(node: str, *, ready_timeout: int = 300, interval: int = 5) -> str:
    """Restore after a total loss: the agent registers again with the restored cluster (its password is new)."""
    return "\n".join(
        [
            "#!/bin/sh",
            f"# Restore: restart the agent {node} against the restored cluster.",
            PRELUDE,
            f"node={q(node)}",
            "service=k3s-agent",
            WAIT_READY.format(timeout=ready_timeout, interval=interval),
            'invocation() { timeout 10 systemctl show -p InvocationID --value "$service" 2>/dev/null || true; }',
            'ready() { [ "$(invocation)" != "$before" ] && timeout 10 systemctl is-active --quiet "$service"; }',
            "before=$(invocation)",
            'timeout 30 systemctl restart --no-block "$service"',
            "wait_ready",
            'log "$node: agent restarted"',
            "",
        ]
    )


@dataclass(frozen=True)
class RestoreStep:
    """One step of a restore: run `script` on `node` (at `address`), in order."""

    node: str
    address: str
    action: str  # stop | reset | rejoin | restart-agent
    script: str


def restore_runbook(
    *,
    servers: Sequence[tuple[str, str]],
    agents: Sequence[tuple[str, str]],
    reset_on: str,
    snapshot: str,
    from_s3: bool,
    api_port: int,
    total_loss: bool,
    token_file: str = f"{CONFIG_DIR}/token",
) -> list[RestoreStep]:
    """The restore of an embedded-etcd cluster from one snapshot, as ordered steps: stop every other server,
    reset `reset_on` from the snapshot, rejoin the other servers one at a time through it (its address, not the
    URL they recorded), and after a total loss (every machine new) restart the agents."""
    names = [n for n, _ in servers]
    if reset_on not in names:
        raise ValueError(f"restore: {reset_on!r} is not one of the servers ({', '.join(names)})")
    address = dict(servers)
    others = [(n, a) for n, a in servers if n != reset_on]
    via = f"https://{address[reset_on]}:{api_port}"
    steps = [RestoreStep(n, a, "stop", stop_server_script(n)) for n, a in others]
    new = [*names, *(n for n, _ in agents)] if total_loss else []
    reset = RestoreReset(node=reset_on, snapshot=snapshot, from_s3=from_s3, new_machines=new, token_file=token_file)
    steps.append(RestoreStep(reset_on, address[reset_on], "reset", restore_reset_script(reset)))
    steps += [RestoreStep(n, a, "rejoin", restore_rejoin_script(RestoreRejoin(node=n, via=via))) for n, a in others]
    if total_loss:
        steps += [RestoreStep(n, a, "restart-agent", restart_agent_script(n)) for n, a in agents]
    return steps


def _seconds(duration: str) -> int:
    """'300s', '5m', '1h' -> seconds."""
    units = {"s": 1, "m": 60, "h": 3600}
    if duration and duration[-1] in units and duration[:-1].isdigit():
        return int(duration[:-1]) * units[duration[-1]]
    if duration.isdigit():
        return int(duration)
    raise ValueError(f"{duration!r} is not a duration such as 300s or 5m")


def terraform_escape(text: str) -> str:
    """Text as a Terraform string literal's content: no interpolation or template directive."""
    return text.replace("${", "$${").replace("%{", "%%{")


def terraform_unescape(text: str) -> str:
    return text.replace("$${", "${").replace("%%{", "%{")
