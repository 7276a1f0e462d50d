"""The user data of a k3s agent in an AWS Auto Scaling group: a shell script cloud-init runs once at first boot.

It holds no secret. The join token is a SecureString in SSM Parameter Store, read at boot with the instance
role (which may read that one parameter only); the instance metadata (IMDSv2) gives the availability zone and
instance id for the kubelet's provider ID, which the cluster-autoscaler matches nodes to instances with (k3s
otherwise sets `k3s://<node>`, and the autoscaler would never find a pool node's group). The installer is the
same pinned, checksum-verified install.sh as the on-prem agents'; a k3s-node-cleanup unit deletes the node's own
Node object when the instance shuts down (a scale-in), since nothing else removes it.

Pure Python (no jsii): render_user_data returns the script as text.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

INSTALLER_URL = "https://raw.githubusercontent.com/k3s-io/k3s/{tag}/install.sh"
CONFIG_DIR = "/etc/rancher/k3s"


@dataclass(frozen=True)
class AgentBoot:
    """What a cloud k3s agent needs at boot.

    server_url: the API endpoint the agent joins (https://host:port), reachable from the VPC.
    k3s_version, installer_tag, installer_sha256: the pinned k3s release and its install.sh (checked).
    token_parameter: name of the SSM SecureString that holds the agent token; region is read from metadata.
    labels, taints: registered by the kubelet (taints as key[=value]:effect).
    mtu: set on the default-route interface before k3s starts (the path to the LAN may be a VPN).
    """

    server_url: str
    k3s_version: str
    installer_tag: str
    installer_sha256: str
    token_parameter: str
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: Sequence[str] = ()
    mtu: int | None = None
    installer_url: str = INSTALLER_URL


CLEANUP_UNIT = """[Unit]
Description=Delete this node's Node object when the instance shuts down (scale-in)
After=network-online.target k3s-agent.service
Wants=network-online.target

[Service]
Type=oneshot
RemainAfterExit=true
ExecStart=/bin/true
ExecStop=/usr/local/bin/k3s-node-cleanup
TimeoutStopSec=30

[Install]
WantedBy=multi-user.target
"""

# Runs before k3s-agent stops (units stop in the reverse order of After=), with the kubelet's own credential: the
# Node authorizer lets a kubelet delete its own Node object.
CLEANUP_SCRIPT = """#!/bin/sh
node=$(cat /etc/rancher/k3s/node-name)
exec /usr/local/bin/k3s kubectl --kubeconfig /var/lib/rancher/k3s/agent/kubelet.kubeconfig \\
  delete node "$node" --wait=false --request-timeout=20s
"""


def _config_lines(boot: AgentBoot) -> list[str]:
    """config.yaml as YAML lines; $AZ, $ID, $IP, $REGION and $TYPE are expanded by the shell at boot."""
    q = _yaml_quote
    lines = [
        f"server: {q(boot.server_url)}",
        f"token-file: {CONFIG_DIR}/token",
        'node-name: "$ID"',
        'node-ip: "$IP"',
        "kubelet-arg:",
        '  - "provider-id=aws:///$AZ/$ID"',
        "node-label:",
        '  - "topology.kubernetes.io/region=$REGION"',
        '  - "topology.kubernetes.io/zone=$AZ"',
        '  - "node.kubernetes.io/instance-type=$TYPE"',
    ]
    lines += [f"  - {q(f'{k}={v}')}" for k, v in sorted(boot.labels.items())]
    if boot.taints:
        lines.append("node-taint:")
        lines += [f"  - {q(t)}" for t in boot.taints]
    return lines


def _yaml_quote(value: str) -> str:
    # Double-quoted YAML inside an unquoted heredoc: the values come from validated config (no quote, $ or \).
    if any(c in value for c in '"\\$`'):
        raise ValueError(f"{value!r} cannot be written into the agent's config.yaml")
    return f'"{value}"'


def render_user_data(boot: AgentBoot) -> str:
    """The first-boot script (bash) of one agent."""
    url = boot.installer_url.replace("{tag}", boot.installer_tag.replace("+", "%2B"))
    q = shlex.quote
    mtu = (
        [
            'iface=$(ip -o route show default | awk \'{print $5; exit}\')',
            f'ip link set dev "$iface" mtu {int(boot.mtu)}',
        ]
        if boot.mtu
        else []
    )
    return "\n".join(
        [
            "#!/bin/bash",
            "# k3s agent of an Auto Scaling group. No secret here: the join token is read from SSM below.",
            "set -euo pipefail",
            "umask 077",
            "imds=http://169.254.169.254/latest",
            "t=$(curl -fsS -X PUT \"$imds/api/token\" -H 'X-aws-ec2-metadata-token-ttl-seconds: 300')",
            'md() { curl -fsS -H "X-aws-ec2-metadata-token: $t" "$imds/meta-data/$1"; }',
            "AZ=$(md placement/availability-zone); REGION=$(md placement/region)",
            "ID=$(md instance-id); IP=$(md local-ipv4); TYPE=$(md instance-type)",
            *mtu,
            f"install -d -m 0700 {CONFIG_DIR}",
            f"aws ssm get-parameter --region \"$REGION\" --name {q(boot.token_parameter)} --with-decryption \\",
            f"  --query Parameter.Value --output text > {CONFIG_DIR}/token",
            f'printf \'%s\\n\' "$ID" > {CONFIG_DIR}/node-name',
            f"cat > {CONFIG_DIR}/config.yaml <<EOF",
            *_config_lines(boot),
            "EOF",
            "cat > /etc/systemd/system/k3s-node-cleanup.service <<'EOF'",
            CLEANUP_UNIT.rstrip("\n"),
            "EOF",
            "cat > /usr/local/bin/k3s-node-cleanup <<'EOF'",
            CLEANUP_SCRIPT.rstrip("\n"),
            "EOF",
            "chmod 0755 /usr/local/bin/k3s-node-cleanup",
            f"curl -fsSL --retry 3 -o /root/k3s-install.sh {q(url)}",
            f"printf '%s  %s\\n' {q(boot.installer_sha256)} /root/k3s-install.sh | sha256sum -c -",
            f"INSTALL_K3S_VERSION={q(boot.k3s_version)} INSTALL_K3S_EXEC=agent sh /root/k3s-install.sh",
            "systemctl daemon-reload",
            "systemctl enable --now k3s-node-cleanup.service",
            "",
        ]
    )
