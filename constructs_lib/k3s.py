"""A k3s cluster on existing machines, provisioned over SSH with Terraform's provisioners.

What the construct creates:

- the join token (``random_password``), never a literal;
- the cluster PKI with the tls provider: the server, client and request-header CAs, the two etcd CAs and the
  service-account signing key. They are uploaded to the first server before k3s first starts (k3s then skips
  generating its own), so Terraform knows the admin credentials without reading anything back from a node;
- an admin client certificate signed by the client CA, in the ``system:masters`` group;
- per node, a ``null_resource`` that uploads ``/etc/rancher/k3s/config.yaml`` (rendered from data), installs the
  pinned k3s version with the official installer (``INSTALL_K3S_SKIP_START=true``), starts it and waits for it.
  The first server starts with ``cluster-init``; the other servers join one after another through the API
  endpoint; agents join after every server;
- per node, a second ``null_resource`` whose destroy-time provisioners drain the node, delete it from the
  cluster and uninstall k3s from the machine.

Upgrades are not done by re-running the installer: the version lives in the install script, which is not a
replacement trigger, so changing it never reinstalls a node. Roll versions with system-upgrade-controller Plans.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence, Union

import yaml
from cdktf import FileProvisioner, Fn, Op, RemoteExecProvisioner, SSHProvisionerConnection, TerraformLocal, TerraformResourceLifecycle, Token
from cdktf_cdktf_provider_null.provider import NullProvider
from cdktf_cdktf_provider_null.resource import Resource as NullResource
from cdktf_cdktf_provider_random.password import Password
from cdktf_cdktf_provider_random.provider import RandomProvider
from cdktf_cdktf_provider_tls.cert_request import CertRequest, CertRequestSubject
from cdktf_cdktf_provider_tls.locally_signed_cert import LocallySignedCert
from cdktf_cdktf_provider_tls.private_key import PrivateKey
from cdktf_cdktf_provider_tls.provider import TlsProvider
from cdktf_cdktf_provider_tls.self_signed_cert import SelfSignedCert, SelfSignedCertSubject
from constructs import Construct

from constructs_lib.cluster_access import ClusterAccess
from constructs_lib.providers import ensure_provider

TEN_YEARS_HOURS = 10 * 365 * 24
ONE_YEAR_HOURS = 365 * 24
# Where files are staged on a node before the install script moves them into place (mode 0700, removed after).
STAGING_DIR = "/tmp/k3s-provision"
TLS_DIR = "/var/lib/rancher/k3s/server/tls"
CONFIG_FILE = "/etc/rancher/k3s/config.yaml"
# The CAs k3s uses when it finds them at first start (docs.k3s.io, "k3s certificate", custom CA certificates).
CLUSTER_CAS = ("server-ca", "client-ca", "request-header-ca", "etcd/peer-ca", "etcd/server-ca")


@dataclass(frozen=True)
class K3sNode:
    """One machine.

    Props:
        name: Kubernetes node name (also the node's Terraform address); unique in the cluster.
        address: IPv4 address the node is reached at over SSH and registers with (node-ip).
        role: 'server' (control plane + embedded etcd) or 'agent' (workloads).
        labels: node labels applied at registration.
        taints: node taints applied at registration, each 'key=value:Effect'.
    """

    name: str
    address: str
    role: str
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: Sequence[str] = ()


@dataclass(frozen=True)
class SshAccess:
    """How Terraform reaches the machines. Pass tokens of sensitive variables, never literals.

    Props:
        user: SSH user (root, or a user with passwordless sudo).
        port: SSH port (a number, or a number token).
        private_key: PEM private key; when it evaluates to the empty string, the SSH agent is used instead.
        timeout: how long to retry connecting, such as '5m'.
    """

    user: str
    port: Union[int, float, str]
    private_key: str
    timeout: str = "5m"


@dataclass(frozen=True)
class EtcdS3Target:
    """An S3-compatible bucket for etcd snapshots.

    Props:
        endpoint: host[:port] of the S3 API.
        bucket: bucket name.
        access_key: access key id (token of a sensitive variable).
        secret_key: secret access key (token of a sensitive variable).
        folder: folder inside the bucket ('' for the root).
        region: bucket region.
        insecure: plain HTTP instead of HTTPS.
    """

    endpoint: str
    bucket: str
    access_key: str
    secret_key: str
    folder: str = ""
    region: str = "us-east-1"
    insecure: bool = False


@dataclass(frozen=True)
class K3sClusterProps:
    """Props of a K3sCluster. Defaults are k3s's own, except secrets encryption (on).

    Props:
        version: exact k3s version, such as v1.29.1+k3s2 (INSTALL_K3S_VERSION).
        nodes: the machines; the first server listed bootstraps the cluster.
        api_host: the API endpoint the other nodes join through and clients use: a VIP, or the first server.
        ssh: SSH credentials (sensitive tokens).
        api_port: API port.
        embedded_etcd: HA embedded etcd (cluster-init on the first server); False uses k3s's SQLite (one server).
        cluster_cidr, service_cidr, cluster_dns, cluster_domain: cluster networking (identical on all servers).
        tls_san: extra API certificate SANs; api_host is always included.
        disable: packaged components to turn off (traefik, servicelb, metrics-server, coredns, local-storage).
        flannel_backend: 'none' when another CNI (such as Cilium) is installed.
        disable_network_policy: turn off k3s's network policy controller (when the CNI enforces policies).
        disable_kube_proxy: turn off kube-proxy (when the CNI replaces it).
        secrets_encryption: encrypt Secrets at rest.
        etcd_snapshot_schedule_cron: snapshot schedule (embedded etcd only); None keeps k3s's default.
        etcd_snapshot_retention: snapshots kept; None keeps k3s's default.
        etcd_s3: upload snapshots to this bucket as well.
        installer_url: the official installer script.
        drain_timeout: how long a drain may take when a node is removed.
        server_config: extra keys merged into every server's config.yaml.
        agent_config: extra keys merged into every agent's config.yaml.
    """

    version: str
    nodes: Sequence[K3sNode]
    api_host: str
    ssh: SshAccess
    api_port: int = 6443
    embedded_etcd: bool = True
    cluster_cidr: str = "10.42.0.0/16"
    service_cidr: str = "10.43.0.0/16"
    cluster_dns: str = "10.43.0.10"
    cluster_domain: str = "cluster.local"
    tls_san: Sequence[str] = ()
    disable: Sequence[str] = ()
    flannel_backend: str = "vxlan"
    disable_network_policy: bool = False
    disable_kube_proxy: bool = False
    secrets_encryption: bool = True
    etcd_snapshot_schedule_cron: Optional[str] = None
    etcd_snapshot_retention: Optional[int] = None
    etcd_s3: Optional[EtcdS3Target] = None
    installer_url: str = "https://get.k3s.io"
    drain_timeout: str = "300s"
    server_config: Mapping[str, Any] = field(default_factory=dict)
    agent_config: Mapping[str, Any] = field(default_factory=dict)


def _validate(props: K3sClusterProps) -> None:
    servers = [n for n in props.nodes if n.role == "server"]
    if not servers:
        raise ValueError("K3sCluster needs at least one server")
    for node in props.nodes:
        if node.role not in ("server", "agent"):
            raise ValueError(f"node {node.name!r}: role must be 'server' or 'agent', not {node.role!r}")
    for attr, plural in (("name", "names"), ("address", "addresses")):
        values = [getattr(n, attr) for n in props.nodes]
        dupes = sorted({v for v in values if values.count(v) > 1})
        if dupes:
            raise ValueError(f"K3sCluster: duplicate node {plural}: {', '.join(dupes)}")
    if not props.embedded_etcd and len(servers) != 1:
        raise ValueError("K3sCluster: without embedded etcd exactly one server is supported")


def _as_root(command: str) -> str:
    """Run a command as root whether the SSH user is root or has passwordless sudo."""
    return f'if [ "$(id -u)" -eq 0 ]; then {command}; else sudo -n {command}; fi'


class K3sCluster(Construct):
    """A k3s cluster on existing machines.

    Props:
        props: a K3sClusterProps (version, nodes, api_host, ssh and the k3s settings; see there).
    Attributes:
        api_url: https://<api_host>:<api_port> (a Terraform local, so other stacks reference it).
        cluster_ca_certificate: PEM of the server CA (what the API server presents).
        client_certificate: PEM of the admin client certificate (O=system:masters).
        client_key: PEM of its private key.
        kubeconfig: a kubeconfig (YAML) with these credentials.
        access: the same credentials as a ClusterAccess, for ClusterProviders in this or another stack.
        token: the join token (random_password.result).
        hosts: install resources by node name; drains: drain resources by node name.
        configs: the rendered config.yaml of each node, as a dict (the token is a Terraform reference).
    """

    def __init__(self, scope: Construct, id: str, *, props: K3sClusterProps) -> None:
        super().__init__(scope, id)
        _validate(props)
        self.props = props
        # Shared with any other construct of the stack that needs them (Terraform allows one default each).
        ensure_provider(self, TlsProvider, "tls")
        ensure_provider(self, RandomProvider, "random")
        ensure_provider(self, NullProvider, "null")

        # The join token: alphanumeric, so it needs no quoting in config.yaml or in a shell.
        self.token = Password(self, "token", length=48, special=False).result

        self._pki()
        servers = [n for n in props.nodes if n.role == "server"]
        agents = [n for n in props.nodes if n.role == "agent"]
        first = servers[0]
        self.api_url = TerraformLocal(self, "api_url", f"https://{props.api_host}:{props.api_port}").as_string
        self.access = ClusterAccess(
            host=self.api_url,
            cluster_ca_certificate=self.cluster_ca_certificate,
            client_certificate=self.client_certificate,
            client_key=self.client_key,
        )

        self.configs: dict[str, dict[str, Any]] = {}
        self.hosts: dict[str, NullResource] = {}
        self.drains: dict[str, NullResource] = {}
        previous: list[NullResource] = []
        # Servers join one at a time (etcd adds one member at a time); agents after every server.
        for node in servers:
            host = self._node(node, bootstrap=node is first, depends_on=previous[-1:])
            previous.append(host)
        server_hosts = list(previous)
        for node in agents:
            self._node(node, bootstrap=False, depends_on=server_hosts)
        for node in props.nodes:
            # Agents are drained through the first server; a server drains itself with its own kubectl.
            self._drain(node, via=node.address if node.role == "server" else first.address)

        self.kubeconfig = self._kubeconfig()

    # --- PKI -------------------------------------------------------------------------------------------

    def _ca(self, name: str) -> tuple[PrivateKey, SelfSignedCert]:
        cid = name.replace("/", "-")
        key = PrivateKey(self, f"{cid}-key", algorithm="ECDSA", ecdsa_curve="P256")
        cert = SelfSignedCert(
            self,
            cid,
            private_key_pem=key.private_key_pem,
            is_ca_certificate=True,
            validity_period_hours=TEN_YEARS_HOURS,
            allowed_uses=["cert_signing", "key_encipherment", "digital_signature"],
            subject=[SelfSignedCertSubject(common_name=f"k3s-{cid}")],
        )
        return key, cert

    def _pki(self) -> None:
        self.cas: dict[str, tuple[PrivateKey, SelfSignedCert]] = {name: self._ca(name) for name in CLUSTER_CAS}
        # The service-account token signing key (k3s generates an RSA key; it has no certificate).
        self.service_key = PrivateKey(self, "service-key", algorithm="RSA", rsa_bits=2048)
        client_ca_key, client_ca = self.cas["client-ca"]
        admin_key = PrivateKey(self, "admin-key", algorithm="ECDSA", ecdsa_curve="P256")
        request = CertRequest(
            self,
            "admin-csr",
            private_key_pem=admin_key.private_key_pem,
            subject=[CertRequestSubject(common_name="terraform-admin", organization="system:masters")],
        )
        admin = LocallySignedCert(
            self,
            "admin-cert",
            cert_request_pem=request.cert_request_pem,
            ca_cert_pem=client_ca.cert_pem,
            ca_private_key_pem=client_ca_key.private_key_pem,
            validity_period_hours=ONE_YEAR_HOURS,
            # Terraform re-issues the certificate in the last 30 days; later stacks pick up the new one.
            early_renewal_hours=30 * 24,
            allowed_uses=["client_auth", "digital_signature", "key_encipherment"],
        )
        self.cluster_ca_certificate = self.cas["server-ca"][1].cert_pem
        self.client_certificate = admin.cert_pem
        self.client_key = admin_key.private_key_pem

    def _pki_files(self) -> dict[str, str]:
        """File name under the tls directory -> PEM content, for the bootstrap server."""
        files: dict[str, str] = {}
        for name, (key, cert) in self.cas.items():
            files[f"{name}.crt"] = cert.cert_pem
            files[f"{name}.key"] = key.private_key_pem
        files["service.key"] = self.service_key.private_key_pem
        return files

    # --- per node --------------------------------------------------------------------------------------

    def render_config(self, node: K3sNode, *, bootstrap: bool) -> dict[str, Any]:
        """The node's config.yaml as data. The token and S3 keys are Terraform references, not values."""
        p = self.props
        cfg: dict[str, Any] = {"token": self.token, "node-name": node.name, "node-ip": node.address}
        if not bootstrap:
            cfg["server"] = f"https://{p.api_host}:{p.api_port}"
        if node.labels:
            cfg["node-label"] = [f"{k}={v}" for k, v in sorted(node.labels.items())]
        if node.taints:
            cfg["node-taint"] = list(node.taints)
        if node.role == "agent":
            cfg.update(p.agent_config)
            return cfg
        if bootstrap and p.embedded_etcd:
            cfg["cluster-init"] = True
        cfg.update(
            {
                "tls-san": list(dict.fromkeys([p.api_host, *p.tls_san])),
                "cluster-cidr": p.cluster_cidr,
                "service-cidr": p.service_cidr,
                "cluster-dns": p.cluster_dns,
                "cluster-domain": p.cluster_domain,
                "flannel-backend": p.flannel_backend,
                "disable-network-policy": p.disable_network_policy,
                "disable-kube-proxy": p.disable_kube_proxy,
                "secrets-encryption": p.secrets_encryption,
            }
        )
        if p.disable:
            cfg["disable"] = list(p.disable)
        if p.embedded_etcd:
            if p.etcd_snapshot_schedule_cron is not None:
                cfg["etcd-snapshot-schedule-cron"] = p.etcd_snapshot_schedule_cron
            if p.etcd_snapshot_retention is not None:
                cfg["etcd-snapshot-retention"] = p.etcd_snapshot_retention
            if p.etcd_s3 is not None:
                s3 = p.etcd_s3
                cfg.update(
                    {
                        "etcd-s3": True,
                        "etcd-s3-endpoint": s3.endpoint,
                        "etcd-s3-bucket": s3.bucket,
                        "etcd-s3-region": s3.region,
                        "etcd-s3-access-key": s3.access_key,
                        "etcd-s3-secret-key": s3.secret_key,
                        "etcd-s3-insecure": s3.insecure,
                    }
                )
                if s3.folder:
                    cfg["etcd-s3-folder"] = s3.folder
        cfg.update(p.server_config)
        return cfg

    def render_install_script(self, node: K3sNode, *, bootstrap: bool) -> str:
        """The script that moves the staged files into place, installs k3s and waits for it. Holds no secret."""
        p = self.props
        service = "k3s" if node.role == "server" else "k3s-agent"
        lines = [
            "#!/bin/sh",
            f"# k3s {p.version} on {node.name} ({node.role}{', bootstraps the cluster' if bootstrap else ''})",
            "set -eu",
            f"staging={STAGING_DIR}",
            "trap 'rm -rf \"$staging\"' EXIT",
            "install -d -m 0755 /etc/rancher/k3s",
            f'install -m 0600 "$staging/config.yaml" {CONFIG_FILE}',
        ]
        if bootstrap:
            lines += [
                f"install -d -m 0700 {TLS_DIR} {TLS_DIR}/etcd",
                "# The cluster CAs from Terraform: k3s uses them instead of generating its own at first start.",
                f"for f in {' '.join(sorted(self._pki_files()))}; do",
                f'  if [ -e "{TLS_DIR}/$f" ] && ! cmp -s "$staging/tls/$f" "{TLS_DIR}/$f"; then',
                f'    echo "{TLS_DIR}/$f exists with other content: this machine already holds a cluster" >&2',
                "    exit 1",
                "  fi",
                f'  install -m 0600 "$staging/tls/$f" "{TLS_DIR}/$f"',
                "done",
            ]
        env = " ".join(
            f"{k}={shlex.quote(v)}"
            for k, v in (
                ("INSTALL_K3S_VERSION", p.version),
                ("INSTALL_K3S_SKIP_START", "true"),
                ("INSTALL_K3S_EXEC", node.role),
            )
        )
        lines += [
            f"curl -sfL {shlex.quote(p.installer_url)} | {env} sh -",
            f"systemctl start {service}",
            "i=0",
        ]
        if node.role == "server":
            ready, what = "k3s kubectl get --raw /readyz >/dev/null 2>&1", "API server"
        else:
            ready, what = f"systemctl is-active --quiet {service}", "k3s agent"
        lines += [
            f"until {ready}; do",
            "  i=$((i + 1))",
            f'  if [ "$i" -ge 60 ]; then echo "{what} on {node.name} not ready after 300s" >&2; exit 1; fi',
            "  sleep 5",
            "done",
            f'echo "k3s {p.version} {node.role} {node.name} is ready"',
            "",
        ]
        return "\n".join(lines)

    def _connection(self, host: str) -> SSHProvisionerConnection:
        ssh = self.props.ssh
        # (cdktf renders a literal "" or 0 operand as `undefined`, hence "shorter than 1".)
        use_agent = Op.lt(Fn.length_of(Fn.trimspace(ssh.private_key)), 1)
        return SSHProvisionerConnection(
            type="ssh",
            host=host,
            user=ssh.user,
            port=ssh.port if not isinstance(ssh.port, str) else Token.as_number(ssh.port),
            private_key=Token.as_string(Fn.conditional(use_agent, Token.null_value(), ssh.private_key)),
            agent=Token.as_string(use_agent),
            timeout=ssh.timeout,
        )

    def _node(self, node: K3sNode, *, bootstrap: bool, depends_on: Sequence[NullResource]) -> NullResource:
        config = self.render_config(node, bootstrap=bootstrap)
        self.configs[node.name] = config
        provisioners: list[Union[FileProvisioner, RemoteExecProvisioner]] = [
            RemoteExecProvisioner(
                type="remote-exec",
                inline=[
                    "set -e",
                    "umask 077",
                    # A leftover from a failed attempt is ours; a directory owned by someone else stops us here.
                    f"rm -rf {STAGING_DIR}",
                    f"mkdir -m 0700 {STAGING_DIR} {STAGING_DIR}/tls {STAGING_DIR}/tls/etcd",
                ],
            ),
            FileProvisioner(
                type="file",
                content=yaml.safe_dump(config, sort_keys=False, default_flow_style=False),
                destination=f"{STAGING_DIR}/config.yaml",
            ),
        ]
        if bootstrap:
            for name, pem in sorted(self._pki_files().items()):
                provisioners.append(FileProvisioner(type="file", content=pem, destination=f"{STAGING_DIR}/tls/{name}"))
        provisioners += [
            FileProvisioner(
                type="file",
                content=self.render_install_script(node, bootstrap=bootstrap),
                destination=f"{STAGING_DIR}/install.sh",
            ),
            RemoteExecProvisioner(type="remote-exec", inline=[_as_root(f"sh {STAGING_DIR}/install.sh")]),
        ]
        host = NullResource(
            self,
            node.name,
            # Only the machine's identity: changing the version or the config never reinstalls a node.
            triggers={"name": node.name, "address": node.address, "role": node.role},
            connection=self._connection(node.address),
            provisioners=provisioners,
            depends_on=list(depends_on) or None,
        )
        self.hosts[node.name] = host
        return host

    def _drain(self, node: K3sNode, *, via: str) -> NullResource:
        """Destroy-time steps for a removed node. They may only read `self`, so what they need is in triggers.

        The triggers hold no secret: the destroy-time connection authenticates with the SSH agent, because a
        private key kept in triggers would be written to the state.
        """
        p = self.props
        kubectl = "k3s kubectl"
        drain = (
            f"{kubectl} drain ${{self.triggers.node}} --ignore-daemonsets --delete-emptydir-data --force "
            f"--timeout=${{self.triggers.timeout}}"
        )
        delete = f"{kubectl} delete node ${{self.triggers.node}} --ignore-not-found"
        uninstall = "k3s-uninstall.sh" if node.role == "server" else "k3s-agent-uninstall.sh"

        def connection(host_key: str) -> dict[str, Any]:
            return {
                "type": "ssh",
                "host": f"${{self.triggers.{host_key}}}",
                "user": "${self.triggers.user}",
                "port": "${self.triggers.port}",
                "agent": True,
                "timeout": p.ssh.timeout,
            }

        resource = NullResource(
            self,
            f"{node.name}-drain",
            triggers={
                "node": node.name,
                "address": node.address,
                "via": via,
                "timeout": p.drain_timeout,
                "user": p.ssh.user,
                "port": Token.as_string(p.ssh.port) if not isinstance(p.ssh.port, str) else p.ssh.port,
            },
            depends_on=[self.hosts[node.name]],
            # A new machine under the same name is drained (old) and recorded (new) again; later changes of
            # the SSH user or port don't drain anything.
            lifecycle=TerraformResourceLifecycle(ignore_changes=["triggers"]),
        )
        # A bare address: cdktf would render a resource reference as an interpolation, which Terraform refuses here.
        host = self.hosts[node.name]
        resource.add_override(
            "lifecycle.replace_triggered_by", [f"{host.terraform_resource_type}.{host.friendly_unique_id}"]
        )
        resource.add_override(
            "provisioner",
            [
                {
                    "remote-exec": {
                        "when": "destroy",
                        "connection": connection("via"),
                        "inline": [_as_root(drain), _as_root(delete)],
                    }
                },
                {
                    "remote-exec": {
                        "when": "destroy",
                        # The machine may already be gone: the node is out of the cluster either way.
                        "on_failure": "continue",
                        "connection": connection("address"),
                        "inline": [_as_root(f"/usr/local/bin/{uninstall}")],
                    }
                },
            ],
        )
        self.drains[node.name] = resource
        return resource

    def _kubeconfig(self) -> str:
        name = self.node.id
        doc = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": name,
                    "cluster": {
                        "server": self.api_url,
                        "certificate-authority-data": Fn.base64encode(self.cluster_ca_certificate),
                    },
                }
            ],
            "users": [
                {
                    "name": f"{name}-admin",
                    "user": {
                        "client-certificate-data": Fn.base64encode(self.client_certificate),
                        "client-key-data": Fn.base64encode(self.client_key),
                    },
                }
            ],
            "contexts": [{"name": name, "context": {"cluster": name, "user": f"{name}-admin"}}],
            "current-context": name,
        }
        return json.dumps(doc, indent=2)
