"""A k3s cluster on existing machines, provisioned over SSH with Terraform's provisioners.

What the construct creates:

- two join secrets (``random_password``): the server token, handed to servers only in k3s's CA-pinned form
  ``K10<sha256 of the server CA>::server:<secret>``, and a separate agent token (``K10<hash>::node:<secret>``)
  for agents, which therefore can't fetch the cluster's bootstrap data (CA keys);
- the cluster PKI with the tls provider: the server, client and request-header CAs, the two etcd CAs and the
  service-account signing key (all ``prevent_destroy``). They are uploaded to the server that initializes the
  cluster before k3s first starts, so Terraform knows the admin credentials without reading anything back;
- an admin client certificate signed by the client CA, in ``admin_group``: ``system:masters`` by default, or a group
  bound to cluster-admin by a ClusterRoleBinding in every server's manifests directory, which a change of the group
  revokes for every certificate issued before;
- per node, an install ``null_resource``: it uploads config.yaml, the token file and the server CA, and runs
  ``install.sh`` (see ``constructs_lib/k3s_scripts.py``): check that the API endpoint's ``/cacerts`` serves this
  cluster's CA (which also waits for a VIP), join through it, or - only on the bootstrap server, and only when
  nothing answers at the endpoint or any other server - initialize the cluster; fetch the official installer from
  a release tag and check its sha256; ``systemctl start --no-block``; a bounded wait with the journal on failure.
  Servers go one at a time, agents after every server;
- per node, a config ``null_resource`` whose trigger is a fingerprint of the node's settings that can change on a
  running cluster (such as ``tls-san``): a change replaces it, which rolls the new config.yaml onto the nodes one
  at a time (servers first), restarting k3s only where the file changed;
- ``terraform_data`` ``cluster-flags``: the settings every server must share and that can't change on a running
  cluster (CIDRs, cluster DNS and domain, ``disable``, flannel, network policy, kube-proxy, secrets encryption).
  It records them at the first apply; a later change is refused at plan time with a message;
- ``terraform_data`` ``cluster-init``: the cluster's initialization, recorded in state (``plantimestamp()`` of the
  apply that created it). Only the bootstrap server's install in that apply may initialize; a replaced bootstrap
  server in any later apply joins or fails, whatever it can reach;
- with ``kube_vip``, kube-vip's static pod on every server (written before k3s starts) holding ``api_host``; and
  ``endpoint-check``, run on the bootstrap server once it is ready: the endpoint serves the cluster CA before the
  second server and the agents join (agents fall back to the servers while it does not);
- ``token-rotate``, on a server before the config rolls: a changed server secret (``server_token_rotation``) is
  rotated in the cluster with ``k3s token rotate``; the rolls then restart every node with its new token files
  (their triggers hold a sha256 of the secrets, never a secret);
- ``terraform_data`` ``join-version``: the k3s version new nodes install. It records ``version`` at the first apply
  and keeps it when ``version`` changes (the upgrade Plans move existing nodes), so a node added in the same
  change never runs newer than the servers; a ``check`` block shows the difference until it is recorded again;
- per node, a drain ``null_resource`` whose destroy-time provisioners (when the machine is replaced) drain it
  through a surviving server, stop and clean it up (Cilium included) and uninstall k3s, then remove a server's
  etcd member and delete the Node; for an ``unreachable`` node only the steps on the surviving server run, and
  the drain neither evicts nor waits for pods that no kubelet will confirm;
- for each of ``departed_nodes``, ``removed`` blocks that run the same steps when the node leaves the config
  (Terraform >= 1.9), agents before servers and servers one at a time.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml
from constructs import Construct

from constructs_lib import k3s_scripts as scripts
from constructs_lib.addresses import address_name
from constructs_lib.cluster_access import ClusterAccess
from constructs_lib.engine import (
    CertRequest,
    CertRequestSubject,
    DataResource,
    FileProvisioner,
    Fn,
    ITerraformDependable,
    LocallySignedCert,
    NullProvider,
    NullResource,
    Op,
    Password,
    PrivateKey,
    RandomProvider,
    RemoteExecProvisioner,
    SelfSignedCert,
    SelfSignedCertSubject,
    SSHProvisionerConnection,
    TerraformLocal,
    TerraformResourceLifecycle,
    TerraformStack,
    TlsProvider,
    Token,
)
from constructs_lib.k3s_cloud_init import INSTALLER_URL
from constructs_lib.k3s_scripts import ADMIN_BINDING, CONFIG_DIR, STAGING_DIR
from constructs_lib.kube_vip import KubeVip, static_pod_manifest
from constructs_lib.providers import ensure_provider

TEN_YEARS_HOURS = 10 * 365 * 24
ONE_YEAR_HOURS = 365 * 24
CONFIG_FILE = f"{CONFIG_DIR}/config.yaml"
ENDPOINT_CHECK_FILE = "/tmp/k3s-endpoint-check.sh"
# The CAs k3s uses when it finds them at first start (docs.k3s.io, "k3s certificate", custom CA certificates).
CLUSTER_CAS = ("server-ca", "client-ca", "request-header-ca", "etcd/peer-ca", "etcd/server-ca")
K3S_RELEASE = re.compile(r"^v\d+\.\d+\.\d+\+k3s\d+$")
# install.sh at a release tag -> its sha256 (install.sh.sha256sum in github.com/k3s-io/k3s at that tag).
KNOWN_INSTALLERS = {"v1.29.1+k3s2": "431c6fe653336279073e5b913557aa22d7ef1794b30b4f02002b4482910464d7"}
# Server settings k3s requires to be identical on every server (CriticalControlArgs; a server with another value
# fails with "critical configuration value mismatch"), plus the ones that can't change under running workloads.
CLUSTER_WIDE_KEYS = (
    "cluster-cidr",
    "service-cidr",
    "cluster-dns",
    "cluster-domain",
    "flannel-backend",
    "disable",
    "disable-network-policy",
    "disable-kube-proxy",
    "disable-cloud-controller",
    "disable-helm-controller",
    "secrets-encryption",
    "egress-selector-mode",
    "embedded-registry",
)
# Registration-time keys: changing them later never restarts k3s. To change labels and taints of running nodes,
# manage them as Kubernetes objects (kubernetes_labels, kubernetes_node_taint) in a stack after the cluster.
REGISTRATION_KEYS = ("node-label", "node-taint")


# What a node runs: 'server' (control plane + embedded etcd) or 'agent' (workloads).
NodeRole = Literal["server", "agent"]


@dataclass(frozen=True)
class K3sNode:
    """One machine.

    Props:
        name: Kubernetes node name (also the node's Terraform address); unique in the cluster.
        address: IPv4 address the node is reached at over SSH and registers with (node-ip).
        role: 'server' (control plane + embedded etcd) or 'agent' (workloads).
        labels: node labels applied at registration (kubelet refuses most kubernetes.io/k8s.io keys).
        taints: node taints applied at registration, each 'key=value:Effect'.
        host_key: the machine's SSH host public key ('ssh-ed25519 AAAA...'); recommended, since without it
            Terraform doesn't verify the host it uploads the CA keys to. None: not verified.
        unreachable: the machine this node had is dead: when it is replaced, its removal runs only through a
            surviving server (drain without waiting for its pods, etcd member, Node), never on the old machine.
    """

    name: str
    address: str
    role: NodeRole
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: Sequence[str] = ()
    host_key: str | None = None
    unreachable: bool = False


@dataclass(frozen=True)
class DepartedK3sNode:
    """A node removed from `nodes`: its resources are destroyed by `removed` blocks that drain it first.

    Props:
        name, address, role, host_key: as the node had them.
        unreachable: the machine is dead or wiped: skip the steps that run on it (stop, clean up, uninstall).
    """

    name: str
    address: str
    role: NodeRole
    host_key: str | None = None
    unreachable: bool = False


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
    port: int | float | str
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
        version: exact k3s release, such as v1.29.1+k3s2 (what new nodes install; see join-version).
        nodes: the machines.
        api_host: the API endpoint nodes join through and clients use: a VIP, or the bootstrap server's address.
        kube_vip: hold api_host (a VIP) with kube-vip, a static pod on every server installed before k3s starts;
            None: api_host is the bootstrap server's address or something you run (a load balancer).
        endpoint_check: once the bootstrap server is ready, check (bounded) that api_host serves the cluster CA
            before any other node joins: the wait for the VIP, the preflight of an external load balancer.
        ssh: SSH credentials (sensitive tokens).
        bootstrap_node: name of the server that initializes the cluster on the very first install; default: the
            first server. Only matters then: every server joins when the endpoint (or another server) answers.
        departed_nodes: nodes removed from `nodes`, to drain and uninstall with `removed` blocks.
        api_port: API port.
        embedded_etcd: HA embedded etcd; False uses k3s's SQLite (one server).
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
        installer_tag: the k3s release whose install.sh is used (any release's installer installs any version);
            default: `version`.
        installer_sha256: sha256 of that install.sh; default: from KNOWN_INSTALLERS (required for other tags).
        installer_url: where install.sh is fetched; '{tag}' is replaced by installer_tag.
        join_timeout: seconds a node waits for the endpoint's /cacerts to serve the cluster CA.
        ready_timeout: seconds a node waits for k3s to be ready after (re)starting it.
        drain_timeout: seconds a drain may take when a node is removed (like join_timeout and ready_timeout).
        protect_pki: prevent_destroy on the CAs, the keys and the tokens.
        server_token_rotation: 0 uses the server secret generated at the first apply; any other number a secret
            generated for that number: changing it rotates the server token (`k3s token rotate` on a server, then
            every server restarted with the new token file, one at a time).
        agent_token_rotation: the same for the agent secret (every server restarted with it, then every agent).
        admin_group: the group (O=) of Terraform's admin certificate. 'system:masters' (the default) can't be revoked
            by RBAC; any other group is bound to cluster-admin by the ClusterRoleBinding `terraform-admin`, written
            into every server's manifests directory (k3s's deploy controller applies it, and prunes what a changed
            file no longer holds). Changing the group re-issues the certificate and moves the binding: every
            certificate issued for the old group (a leaked kubeconfig) loses its access.
        server_config: extra keys merged into every server's config.yaml.
        agent_config: extra keys merged into every agent's config.yaml.
    """

    version: str
    nodes: Sequence[K3sNode]
    api_host: str
    ssh: SshAccess
    kube_vip: KubeVip | None = None
    endpoint_check: bool = True
    bootstrap_node: str | None = None
    departed_nodes: Sequence[DepartedK3sNode] = ()
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
    etcd_snapshot_schedule_cron: str | None = None
    etcd_snapshot_retention: int | None = None
    etcd_s3: EtcdS3Target | None = None
    installer_tag: str | None = None
    installer_sha256: str | None = None
    installer_url: str = INSTALLER_URL
    join_timeout: int = 300
    ready_timeout: int = 300
    drain_timeout: int = 300
    protect_pki: bool = True
    server_token_rotation: int = 0
    agent_token_rotation: int = 0
    admin_group: str = "system:masters"
    server_config: Mapping[str, Any] = field(default_factory=dict)
    agent_config: Mapping[str, Any] = field(default_factory=dict)


def _validate(props: K3sClusterProps) -> None:
    servers = [n for n in props.nodes if n.role == "server"]
    if not servers:
        raise ValueError("K3sCluster needs at least one server")
    everyone: list[K3sNode | DepartedK3sNode] = [*props.nodes, *props.departed_nodes]
    for node in everyone:
        if node.role not in ("server", "agent"):
            raise ValueError(f"node {node.name!r}: role must be 'server' or 'agent', not {node.role!r}")
    for attr, plural in (("name", "names"), ("address", "addresses")):
        values = [getattr(n, attr) for n in everyone]
        dupes = sorted({v for v in values if values.count(v) > 1})
        if dupes:
            raise ValueError(f"K3sCluster: duplicate node {plural} (nodes and departed_nodes): {', '.join(dupes)}")
    if not props.embedded_etcd and len(servers) != 1:
        raise ValueError("K3sCluster: without embedded etcd exactly one server is supported")
    if props.bootstrap_node is not None and props.bootstrap_node not in {n.name for n in servers}:
        raise ValueError(f"K3sCluster: bootstrap_node {props.bootstrap_node!r} is not one of the servers")
    tag = props.installer_tag or props.version
    for what, value in (("version", props.version), ("installer_tag", tag)):
        if not K3S_RELEASE.fullmatch(value):
            raise ValueError(f"K3sCluster: {what} {value!r} is not a k3s release (vX.Y.Z+k3sN)")
    if props.installer_sha256 is None and tag not in KNOWN_INSTALLERS:
        raise ValueError(f"K3sCluster: pass installer_sha256 for install.sh at {tag} (install.sh.sha256sum at the tag)")


def admin_binding_manifest(group: str) -> str:
    """A ClusterRoleBinding of `group` to cluster-admin, for k3s's manifests directory."""
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": ADMIN_BINDING},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": group}],
    }
    return yaml.safe_dump(binding, sort_keys=False, default_flow_style=False)


def _hcl_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("${", "$${").replace("%{", "%%{") + '"'


class K3sCluster(Construct):
    """A k3s cluster on existing machines.

    Props:
        props: a K3sClusterProps (version, nodes, api_host, ssh and the k3s settings; see there).
    Attributes:
        api_url: https://<api_host>:<api_port> (a Terraform local, so other stacks reference it).
        cluster_ca_certificate: PEM of the server CA (what the API server presents).
        client_certificate: PEM of the admin client certificate (O=admin_group).
        client_key: PEM of its private key.
        kubeconfig: a kubeconfig (YAML) with these credentials.
        access: the same credentials as a ClusterAccess, for ClusterProviders in this or another stack.
        server_token, agent_token: the CA-pinned join tokens (Terraform expressions; sensitive).
        hosts: install resources by node name; configs_applied: config roll resources by node name;
        drains: drain resources by node name.
        configs: each node's config.yaml as data (secret values are Terraform references).
        bootstrap: the bootstrap server (a K3sNode).
    """

    def __init__(self, scope: Construct, id: str, *, props: K3sClusterProps) -> None:
        super().__init__(scope, id)
        _validate(props)
        self.props = props
        # Shared with any other construct of the stack that needs them (Terraform allows one default each).
        ensure_provider(self, TlsProvider, "tls")
        ensure_provider(self, RandomProvider, "random")
        ensure_provider(self, NullProvider, "null")
        protect = TerraformResourceLifecycle(prevent_destroy=True) if props.protect_pki else None

        # Alphanumeric secrets: they need no quoting anywhere. The resource id "token" is kept from earlier
        # versions (the server secret stays what existing clusters were bootstrapped with).
        server_secret = self._secret("token", props.server_token_rotation, protect)
        agent_secret = self._secret("agent-token", props.agent_token_rotation, protect)
        self._pki(protect)
        ca_hash = Fn.sha256(self.cluster_ca_certificate)
        self.server_token = f"K10{ca_hash}::server:{server_secret}"
        self.agent_token = f"K10{ca_hash}::node:{agent_secret}"
        self._agent_secret = agent_secret
        self._server_secret = server_secret
        # Kept for callers of earlier versions: the server secret (not CA-pinned).
        self.token = server_secret

        servers = [n for n in props.nodes if n.role == "server"]
        agents = [n for n in props.nodes if n.role == "agent"]
        self.bootstrap = next(n for n in servers if props.bootstrap_node in (None, n.name))
        self.api_url = TerraformLocal(self, "api_url", f"https://{props.api_host}:{props.api_port}").as_string
        self.access = ClusterAccess(
            host=self.api_url,
            cluster_ca_certificate=self.cluster_ca_certificate,
            client_certificate=self.client_certificate,
            client_key=self.client_key,
        )

        self.cluster_flags = self._cluster_flags_guard()
        self.join_version = self._join_version()
        self.cluster_init = self._cluster_init_record()

        self.configs: dict[str, dict[str, Any]] = {}
        self.hosts: dict[str, NullResource] = {}
        self.configs_applied: dict[str, NullResource] = {}
        self.drains: dict[str, NullResource] = {}
        # Servers join one at a time (etcd adds one member at a time), the bootstrap server first; agents after
        # every server.
        ordered = [self.bootstrap, *[n for n in servers if n is not self.bootstrap]]
        previous: list[ITerraformDependable] = [self.cluster_flags]
        self.endpoint_check: NullResource | None = None
        for node in ordered:
            after = previous[-1:]
            if self.endpoint_check is not None and len(previous) == 2:
                # The second server joins only once the endpoint serves the cluster: nothing waits on a VIP that
                # nothing created, and a missing load balancer fails here, with its reason, not 300 s later.
                after = [*after, self.endpoint_check]
            previous.append(self._node(node, depends_on=after))
            if node is self.bootstrap and props.endpoint_check:
                self.endpoint_check = self._endpoint_check()
        server_hosts = previous[1:]
        if self.endpoint_check is not None:
            server_hosts = [*server_hosts, self.endpoint_check]
        for node in agents:
            self._node(node, depends_on=server_hosts)
        # A new server secret reaches the cluster first (k3s token rotate), then the servers' files (the rolls).
        self.token_rotate = self._token_rotate(after=server_hosts)
        # Config rolls: one node at a time, servers first.
        rolled: list[NullResource] = [self.token_rotate]
        for node in [*ordered, *agents]:
            rolled.append(self._config_roll(node, after=rolled[-1:]))
        # Drains, destroyed in reverse: agents (depend on every server's drain) before servers, and servers one at
        # a time (each depends on the previous one's drain).
        server_drains: list[NullResource] = []
        for node in ordered:
            server_drains.append(self._drain(node, after=server_drains[-1:]))
        for node in agents:
            self._drain(node, after=server_drains)
        self._departed()
        self.kubeconfig = self._kubeconfig()

    def _secret(self, id: str, rotation: int, protect: TerraformResourceLifecycle | None) -> str:
        """A join secret: the one generated at the first apply (kept, prevent_destroy), or for rotation N > 0 one
        generated for N (its `keepers`): a change of N replaces it, which rotates the token."""
        original: str = Password(self, id, length=48, special=False, lifecycle=protect).result
        if rotation == 0:
            return original
        rotated: str = Password(self, f"{id}-rotated", length=48, special=False, keepers={"rotation": str(rotation)}).result
        return rotated

    def _token_rotate(self, *, after: Sequence[ITerraformDependable]) -> NullResource:
        """On a server, before any config roll: a changed server token is rotated in the cluster (k3s token
        rotate, authenticated with the installed token); nothing happens when the installed token is current."""
        node = self._via("")
        script = scripts.terraform_escape(scripts.token_rotate_script(node.name))
        return NullResource(
            self,
            "token-rotate",
            # A hash of the token (never the token): a new secret replaces this resource, which rotates it.
            triggers={"token": Fn.sha256(self._server_secret)},
            connection=self._connection(node.address, node.host_key),
            provisioners=[
                self._staging(),
                FileProvisioner(type="file", content=self.server_token, destination=f"{STAGING_DIR}/token"),
                FileProvisioner(type="file", content=script, destination=f"{STAGING_DIR}/rotate-token.sh"),
                RemoteExecProvisioner(type="remote-exec", inline=[f"sh {STAGING_DIR}/rotate-token.sh"]),
            ],
            depends_on=list(after),
        )

    # --- PKI -------------------------------------------------------------------------------------------

    def _ca(self, name: str, protect: TerraformResourceLifecycle | None) -> tuple[PrivateKey, SelfSignedCert]:
        cid = name.replace("/", "-")
        key = PrivateKey(self, f"{cid}-key", algorithm="ECDSA", ecdsa_curve="P256", lifecycle=protect)
        cert = SelfSignedCert(
            self,
            cid,
            private_key_pem=key.private_key_pem,
            is_ca_certificate=True,
            validity_period_hours=TEN_YEARS_HOURS,
            allowed_uses=["cert_signing", "key_encipherment", "digital_signature"],
            subject=[SelfSignedCertSubject(common_name=f"k3s-{cid}")],
            lifecycle=protect,
        )
        return key, cert

    def _pki(self, protect: TerraformResourceLifecycle | None) -> None:
        self.cas: dict[str, tuple[PrivateKey, SelfSignedCert]] = {name: self._ca(name, protect) for name in CLUSTER_CAS}
        # The service-account token signing key (k3s generates an RSA key; it has no certificate).
        self.service_key = PrivateKey(self, "service-key", algorithm="RSA", rsa_bits=2048, lifecycle=protect)
        client_ca_key, client_ca = self.cas["client-ca"]
        # The admin certificate is re-issued before it expires (a replacement); its key is kept.
        admin_key = PrivateKey(self, "admin-key", algorithm="ECDSA", ecdsa_curve="P256", lifecycle=protect)
        request = CertRequest(
            self,
            "admin-csr",
            private_key_pem=admin_key.private_key_pem,
            subject=[CertRequestSubject(common_name="terraform-admin", organization=self.props.admin_group)],
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


    # --- cluster-wide records -------------------------------------------------------------------------

    def _server_static_config(self) -> dict[str, Any]:
        """What every server's config.yaml shares (without node identity or secrets)."""
        return self.render_config(self.bootstrap, secrets=False)

    def _cluster_flags_guard(self) -> DataResource:
        """Record the cluster-wide settings at the first apply; refuse a later change at plan time."""
        shared = self._server_static_config()
        flags = {k: shared[k] for k in CLUSTER_WIDE_KEYS if k in shared}
        flags["embedded-etcd"] = self.props.embedded_etcd
        text = json.dumps(flags, sort_keys=True, separators=(",", ":"))
        self.cluster_flags_text = text
        local = TerraformLocal(self, "cluster-flags-configured", text)
        guard = DataResource(self, "cluster-flags")
        guard.add_override("input", f"${{local.{local.friendly_unique_id}}}")
        guard.add_override("lifecycle.ignore_changes", ["input"])
        guard.add_override(
            "lifecycle.postcondition",
            [
                {
                    "condition": f"${{self.output == local.{local.friendly_unique_id}}}",
                    "error_message": (
                        "k3s cluster-wide settings can't change while the cluster runs: every server must share "
                        "them, and k3s refuses a server whose values differ. Recorded: ${self.output}. Configured: "
                        f"${{local.{local.friendly_unique_id}}}. Revert the change, or rebuild the cluster "
                        "(docs/nodes.md, Changing settings)."
                    ),
                }
            ],
        )
        return guard

    def _cluster_init_record(self) -> DataResource:
        """The cluster's initialization, recorded in state: `plantimestamp()` of the apply that created it. Only
        the bootstrap server's install in that apply may initialize (when nothing answers anywhere); a replaced or
        re-installed bootstrap server in any later apply always joins, whatever it can reach. A first apply that
        failed before the bootstrap server decided is retried with -replace of this record (docs/nodes.md)."""
        record = DataResource(self, "cluster-init")
        record.add_override("input", "${plantimestamp()}")
        record.add_override("lifecycle.ignore_changes", ["input"])
        return record

    def may_initialize_expression(self) -> str:
        """True only in the apply that records the cluster's initialization (a Terraform template)."""
        return f"${{terraform_data.{self.cluster_init.friendly_unique_id}.output == plantimestamp()}}"

    def endpoint_mode(self) -> str:
        if self.props.kube_vip is not None:
            return "kube-vip"
        return "first-server" if self.props.api_host == self.bootstrap.address else "external"

    def _endpoint_check(self) -> NullResource:
        """On the bootstrap server, once it is ready: the endpoint serves this cluster (bounded)."""
        node = self.bootstrap
        script = scripts.endpoint_check_script(endpoint=self.endpoint(), mode=self.endpoint_mode(), timeout=self.props.join_timeout)
        return NullResource(
            self,
            "endpoint-check",
            # Only the first install needs it: a later endpoint change rolls in -config resources after this.
            triggers={"bootstrap": node.name},
            connection=self._connection(node.address, node.host_key),
            # Its own file, not the staging directory: the bootstrap server's config roll runs at the same time.
            provisioners=[
                FileProvisioner(type="file", content=scripts.terraform_escape(script), destination=ENDPOINT_CHECK_FILE),
                RemoteExecProvisioner(type="remote-exec", inline=[f"sh {ENDPOINT_CHECK_FILE}"]),
            ],
            depends_on=[self.hosts[node.name]],
        )

    def kube_vip_manifest(self) -> str | None:
        if self.props.kube_vip is None:
            return None
        return static_pod_manifest(self.props.kube_vip, address=self.props.api_host, port=self.props.api_port)

    def _join_version(self) -> DataResource:
        """The version new nodes install: `version` at the first apply, kept until recorded again."""
        record = DataResource(self, "join-version")
        record.add_override("input", self.props.version)
        record.add_override("lifecycle.ignore_changes", ["input"])
        address = f"terraform_data.{record.friendly_unique_id}"
        TerraformStack.of(self).add_override(
            f"check.{self.node.id}_join_version",
            {
                "assert": [
                    {
                        "condition": f'${{{address}.output == "{self.props.version}"}}',
                        "error_message": (
                            f"New nodes install k3s ${{{address}.output}} (what the servers ran when it was "
                            f"recorded), not {self.props.version}: a node never runs newer than the servers. Once the "
                            f"upgrade Plans have moved every node to {self.props.version}, record it: terraform apply "
                            f"-replace={address}"
                        ),
                    }
                ]
            },
        )
        return record

    # --- per node --------------------------------------------------------------------------------------

    def endpoint(self) -> str:
        return f"https://{self.props.api_host}:{self.props.api_port}"

    def render_config(self, node: K3sNode, *, secrets: bool = True) -> dict[str, Any]:
        """The node's config.yaml as data. Tokens are files next to it; S3 keys are Terraform references."""
        p = self.props
        cfg: dict[str, Any] = {
            "token-file": f"{CONFIG_DIR}/token",
            "node-name": node.name,
            "node-ip": node.address,
        }
        if node.labels:
            cfg["node-label"] = [f"{k}={v}" for k, v in sorted(node.labels.items())]
        if node.taints:
            cfg["node-taint"] = list(node.taints)
        if node.role == "agent":
            cfg["server"] = self.endpoint()
            cfg.update(p.agent_config)
            return cfg
        # A server's `server:` (or `cluster-init`) is decided on the machine by install.sh (config.yaml.d).
        cfg["agent-token-file"] = f"{CONFIG_DIR}/agent-token"
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
        # Sorted: the same list on every server, whatever order the caller derived it in.
        if p.disable:
            cfg["disable"] = sorted(set(p.disable))
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
                        "etcd-s3-insecure": s3.insecure,
                    }
                )
                if s3.folder:
                    cfg["etcd-s3-folder"] = s3.folder
                if secrets:
                    cfg["etcd-s3-access-key"] = s3.access_key
                    cfg["etcd-s3-secret-key"] = s3.secret_key
        cfg.update(p.server_config)
        return cfg

    def _secret_keys(self, node: K3sNode) -> dict[str, str]:
        s3 = self.props.etcd_s3
        if node.role == "server" and self.props.embedded_etcd and s3 is not None:
            return {"etcd-s3-access-key": s3.access_key, "etcd-s3-secret-key": s3.secret_key}
        return {}

    def config_content(self, node: K3sNode) -> str:
        """config.yaml: the literal settings as YAML, then Terraform's yamlencode of the interpolated ones."""
        static = {k: v for k, v in self.render_config(node).items() if k not in self._secret_keys(node)}
        text = scripts.terraform_escape(yaml.safe_dump(static, sort_keys=False, default_flow_style=False))
        secret = self._secret_keys(node)
        if secret:
            text += Fn.yamlencode(secret)
        return text

    def fingerprint(self, node: K3sNode) -> str:
        """sha256 of the node's settings that a config roll applies: not labels or taints (Kubernetes objects), not
        the cluster-wide ones (refused by the cluster-flags guard instead), not secrets."""
        cfg = self.render_config(node, secrets=False)
        rolled = {k: v for k, v in cfg.items() if k not in REGISTRATION_KEYS and k not in CLUSTER_WIDE_KEYS}
        manifest = self.kube_vip_manifest()
        if manifest is not None and node.role == "server":
            rolled["kube-vip static pod"] = manifest
        binding = self.admin_binding_manifest()
        if binding is not None and node.role == "server":
            rolled["admin binding"] = binding
        return hashlib.sha256(json.dumps(rolled, sort_keys=True).encode()).hexdigest()

    def _peers(self, node: K3sNode) -> list[str]:
        return [
            f"https://{n.address}:{self.props.api_port}"
            for n in self.props.nodes
            if n.role == "server" and n is not node
        ]

    def render_install_script(self, node: K3sNode, *, root: str = "", version: str | None = None) -> str:
        """install.sh for the node (plain shell; `version` defaults to the recorded join version)."""
        p = self.props
        tag = p.installer_tag or p.version
        return scripts.install_script(
            scripts.InstallScript(
                node=node.name,
                role=node.role,
                version=version or "@JOIN_VERSION@",
                installer_url=p.installer_url.replace("{tag}", tag.replace("+", "%2B")),
                installer_sha256=p.installer_sha256 or KNOWN_INSTALLERS[tag],
                endpoint=self.endpoint(),
                peers=self._peers(node),
                embedded_etcd=p.embedded_etcd,
                may_initialize="@MAY_INITIALIZE@" if node is self.bootstrap else False,
                kube_vip=p.kube_vip is not None and node.role == "server",
                admin_group=self._bound_group(node),
                join_timeout=p.join_timeout,
                ready_timeout=p.ready_timeout,
                root=root,
            )
        )

    def render_reconfigure_script(self, node: K3sNode, *, root: str = "") -> str:
        return scripts.reconfigure_script(
            scripts.ReconfigureScript(
                node=node.name,
                role=node.role,
                ready_timeout=self.props.ready_timeout,
                root=root,
                kube_vip=self.props.kube_vip is not None and node.role == "server",
                admin_group=self._bound_group(node),
            )
        )

    def admin_binding_manifest(self) -> str | None:
        """The ClusterRoleBinding of the admin group to cluster-admin (None for system:masters)."""
        if self.props.admin_group == "system:masters":
            return None
        return admin_binding_manifest(self.props.admin_group)

    def _bound_group(self, node: K3sNode) -> str | None:
        return self.props.admin_group if node.role == "server" and self.admin_binding_manifest() is not None else None

    def _kube_vip_upload(self, node: K3sNode) -> list[FileProvisioner]:
        """The files a server installs besides config.yaml and the tokens: kube-vip's static pod, the admin binding."""
        if node.role != "server":
            return []
        uploads = []
        manifest = self.kube_vip_manifest()
        if manifest is not None:
            uploads.append(
                FileProvisioner(type="file", content=scripts.terraform_escape(manifest), destination=f"{STAGING_DIR}/kube-vip.yaml")
            )
        binding = self.admin_binding_manifest()
        if binding is not None:
            uploads.append(
                FileProvisioner(type="file", content=scripts.terraform_escape(binding), destination=f"{STAGING_DIR}/{ADMIN_BINDING}.yaml")
            )
        return uploads

    def _connection(self, host: str, host_key: str | None) -> SSHProvisionerConnection:
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
            host_key=host_key,
        )

    def _staging(self) -> RemoteExecProvisioner:
        return RemoteExecProvisioner(
            type="remote-exec",
            inline=[
                "set -e",
                "umask 077",
                # A leftover from a failed attempt is ours; a directory owned by someone else stops us here.
                f"rm -rf {STAGING_DIR}",
                f"mkdir -m 0700 {STAGING_DIR} {STAGING_DIR}/tls {STAGING_DIR}/tls/etcd",
            ],
        )

    def _token_uploads(self, node: K3sNode) -> list[FileProvisioner]:
        uploads = [
            FileProvisioner(
                type="file",
                content=self.server_token if node.role == "server" else self.agent_token,
                destination=f"{STAGING_DIR}/token",
            )
        ]
        if node.role == "server":
            uploads.append(FileProvisioner(type="file", content=self._agent_secret, destination=f"{STAGING_DIR}/agent-token"))
        return uploads

    def _node(self, node: K3sNode, *, depends_on: Sequence[Any]) -> NullResource:
        self.configs[node.name] = self.render_config(node)
        install = (
            scripts.terraform_escape(self.render_install_script(node))
            .replace("@JOIN_VERSION@", f"${{terraform_data.{self.join_version.friendly_unique_id}.output}}")
            .replace("@MAY_INITIALIZE@", self.may_initialize_expression())
        )
        provisioners: list[FileProvisioner | RemoteExecProvisioner] = [
            self._staging(),
            FileProvisioner(type="file", content=self.config_content(node), destination=f"{STAGING_DIR}/config.yaml"),
            *self._token_uploads(node),
            FileProvisioner(type="file", content=self.cluster_ca_certificate, destination=f"{STAGING_DIR}/server-ca.crt"),
            *self._kube_vip_upload(node),
        ]
        if node is self.bootstrap:
            for name, pem in sorted(self._pki_files().items()):
                provisioners.append(FileProvisioner(type="file", content=pem, destination=f"{STAGING_DIR}/tls/{name}"))
        provisioners += [
            FileProvisioner(type="file", content=install, destination=f"{STAGING_DIR}/install.sh"),
            RemoteExecProvisioner(type="remote-exec", inline=[f"sh {STAGING_DIR}/install.sh"]),
        ]
        host = NullResource(
            self,
            node.name,
            # Only the machine's identity: changing the version or the config never reinstalls a node.
            triggers={"name": node.name, "address": node.address, "role": node.role},
            connection=self._connection(node.address, node.host_key),
            provisioners=provisioners,
            depends_on=list(depends_on) or None,
        )
        self.hosts[node.name] = host
        return host

    def _config_roll(self, node: K3sNode, *, after: Sequence[NullResource]) -> NullResource:
        """Replaced when the node's rollable settings change: installs the new files, restarts if they differ."""
        script = scripts.terraform_escape(self.render_reconfigure_script(node))
        triggers = {"node": node.name, "fingerprint": self.fingerprint(node)}
        secret = self._secret_keys(node)
        # Rotated tokens and S3 keys reach every node: a hash of them (never the values) is part of what the roll
        # tracks.
        tokens = [self._server_secret, self._agent_secret] if node.role == "server" else [self._agent_secret]
        triggers["secrets"] = Fn.sha256(Fn.join("\n", [*tokens, *(secret[k] for k in sorted(secret))]))
        roll = NullResource(
            self,
            f"{node.name}-config",
            triggers=triggers,
            connection=self._connection(node.address, node.host_key),
            provisioners=[
                self._staging(),
                FileProvisioner(type="file", content=self.config_content(node), destination=f"{STAGING_DIR}/config.yaml"),
                *self._token_uploads(node),
                *self._kube_vip_upload(node),
                FileProvisioner(type="file", content=script, destination=f"{STAGING_DIR}/reconfigure.sh"),
                RemoteExecProvisioner(type="remote-exec", inline=[f"sh {STAGING_DIR}/reconfigure.sh"]),
            ],
            depends_on=[self.hosts[node.name], *after],
        )
        self.configs_applied[node.name] = roll
        return roll

    def _via(self, node_name: str) -> K3sNode:
        """The surviving server removal steps run on: the bootstrap server, or another server for it."""
        servers = [self.bootstrap, *[n for n in self.props.nodes if n.role == "server" and n is not self.bootstrap]]
        dead = {n.name for n in self.props.nodes if n.unreachable}
        others = [n for n in servers if n.name != node_name and n.name not in dead]
        return others[0] if others else servers[0]

    def _removal_steps(
        self, *, node: str, role: str, host: str, host_key: str, unreachable: bool = False
    ) -> list[dict[str, Any]]:
        """Destroy-time provisioners: drain (via a surviving server), stop + clean + uninstall (on the machine),
        delete the Node (via the surviving server). Only `self` and literals: Terraform allows nothing else."""
        via = self._via(node)

        def connection(address: str, key: str) -> dict[str, Any]:
            return {
                "type": "ssh",
                "host": address,
                "user": "${self.triggers.user}",
                "port": "${self.triggers.port}",
                "agent": True,
                "host_key": key,
                "timeout": self.props.ssh.timeout,
            }

        def step(script: str, conn: dict[str, Any]) -> dict[str, Any]:
            # No empty line: Terraform's remote-exec refuses one ("invalid empty string in 'scripts'"), which the
            # SSH tests (tests/test_node_ssh.py) found; the scripts hold no multi-line strings.
            lines = [line for line in scripts.terraform_escape(script).rstrip("\n").split("\n") if line]
            return {"remote-exec": {"when": "destroy", "connection": conn, "inline": lines}}

        on_via = connection(via.address, via.host_key or "")
        drain = step(scripts.drain_script(node, timeout=f"{self.props.drain_timeout}s", unreachable=unreachable), on_via)
        # A server's etcd member goes with it (not for the last server: it is the whole cluster).
        member = role == "server" and self.props.embedded_etcd and via.name != node
        delete = step(scripts.delete_script(node, etcd_member=member), on_via)
        stop = step(scripts.stop_script(node, role), connection(host, host_key))
        if via.name == node:
            # The last server: nothing survives it, so it deletes itself while k3s still runs, then stops.
            return [drain, delete, stop]
        return [drain, delete] if unreachable else [drain, stop, delete]

    def _drain(self, node: K3sNode, *, after: Sequence[NullResource]) -> NullResource:
        """Destroy-time steps when the machine is replaced (new address, or -replace of its install resource).

        They run through another server (the bootstrap server, or the next one for the bootstrap server itself),
        so a full `terraform destroy` is not a way to decommission a cluster: the bootstrap server goes last and
        its drain finds no server left (and protect_pki refuses it anyway).

        The connections authenticate with the SSH agent: a private key kept in triggers would be in the state.
        """
        p = self.props
        resource = NullResource(
            self,
            f"{node.name}-drain",
            triggers={
                "node": node.name,
                "address": node.address,
                "role": node.role,
                "host_key": node.host_key or "",
                "timeout": f"{p.drain_timeout}s",
                "user": p.ssh.user,
                "port": Token.as_string(p.ssh.port) if not isinstance(p.ssh.port, str) else p.ssh.port,
            },
            depends_on=[self.hosts[node.name], *after],
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
            self._removal_steps(
                node=node.name,
                role=node.role,
                host="${self.triggers.address}",
                # Earlier versions recorded no host key: lookup() keeps their destroy working.
                host_key='${lookup(self.triggers, "host_key", "")}',
                unreachable=node.unreachable,
            ),
        )
        self.drains[node.name] = resource
        return resource

    def departed_addresses(self, name: str) -> dict[str, str]:
        """Terraform addresses the install, config and drain resources of node `name` have (or had)."""
        stack = TerraformStack.of(self)
        scopes = self.node.scopes
        path = [c.node.id for c in scopes[scopes.index(stack) + 1 :]]
        return {
            kind: f"null_resource.{address_name([*path, f'{name}{suffix}'])}"
            for kind, suffix in (("install", ""), ("config", "-config"), ("drain", "-drain"))
        }

    def _departed(self) -> None:
        """`removed` blocks for the departed nodes: agents first, then servers one at a time (state dependencies
        recorded by the drains' depends_on order the destroys). They are the stack's `removed` list: one
        K3sCluster with departed nodes per stack."""
        blocks: list[dict[str, Any]] = []
        self.removed: dict[str, list[dict[str, Any]]] = {}
        for node in self.props.departed_nodes:
            addresses = self.departed_addresses(node.name)
            mine: list[dict[str, Any]] = [
                {
                    "from": addresses["drain"],
                    "lifecycle": {"destroy": True},
                    "provisioner": self._removal_steps(
                        node=node.name,
                        role=node.role,
                        host=node.address,
                        host_key=node.host_key or "",
                        unreachable=node.unreachable,
                    ),
                },
                {"from": addresses["config"], "lifecycle": {"destroy": True}},
                {"from": addresses["install"], "lifecycle": {"destroy": True}},
            ]
            self.removed[node.name] = mine
            blocks += mine
        if blocks:
            TerraformStack.of(self).add_override("removed", blocks)

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
