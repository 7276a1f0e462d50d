"""The cluster description file (config/helix.yaml): its schema and its cross-field rules.

Every option has a default where a sensible one exists; unknown keys are errors everywhere.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

# An exact version: 1.2.3, v1.2.3, 1.2.3-rc.1, v1.29.1+k3s2. Never "latest", a range or a wildcard.
EXACT_VERSION = re.compile(r"^v?\d+\.\d+\.\d+(?:[-+][0-9A-Za-z][0-9A-Za-z.+-]*)?$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
HOSTNAME = re.compile(r"^(?=.{1,253}$)([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$")
LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
CLOUDFLARE_ID = re.compile(r"^[0-9a-f]{32}$")
# A k3s release tag (github.com/k3s-io/k3s/releases): vX.Y.Z+k3sN. "1.29.1" or "v1.29.1" name no release.
K3S_RELEASE = re.compile(r"^v\d+\.\d+\.\d+\+k3s\d+$")
# Kubernetes label values (apimachinery IsValidLabelValue): at most 63 characters, alphanumeric at both ends.
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
# An OpenSSH public host key line ("<type> <base64>", as in known_hosts or /etc/ssh/ssh_host_*_key.pub).
HOST_KEY = re.compile(
    r"^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp256|ecdsa-sha2-nistp384|ecdsa-sha2-nistp521|sk-ssh-ed25519@openssh\.com"
    r"|sk-ecdsa-sha2-nistp256@openssh\.com) [A-Za-z0-9+/]+={0,3}$"
)
# The label namespaces kubelet may set on its own Node (k8s.io/kubelet/pkg/apis: KubeletLabels, KubeletLabelNamespaces).
# Every other key under kubernetes.io or k8s.io is refused by kubelet at registration (k3s then crash-loops).
KUBELET_LABELS = frozenset(
    {
        "kubernetes.io/hostname",
        "kubernetes.io/arch",
        "kubernetes.io/os",
        "beta.kubernetes.io/instance-type",
        "node.kubernetes.io/instance-type",
        "beta.kubernetes.io/arch",
        "beta.kubernetes.io/os",
        "failure-domain.beta.kubernetes.io/zone",
        "failure-domain.beta.kubernetes.io/region",
        "topology.kubernetes.io/zone",
        "topology.kubernetes.io/region",
    }
)
KUBELET_LABEL_NAMESPACES = ("kubelet.kubernetes.io", "node.kubernetes.io")


def _exact_version(value: str) -> str:
    if not EXACT_VERSION.fullmatch(value):
        raise ValueError(f"{value!r} is not an exact version (pin one such as 1.2.3; no 'latest', ranges or wildcards)")
    return value


def _k3s_release(value: str) -> str:
    if not K3S_RELEASE.fullmatch(value):
        raise ValueError(f"{value!r} is not a k3s release (vX.Y.Z+k3sN, such as v1.29.1+k3s2)")
    return value


def _ipv4(value: str) -> str:
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an IPv4 address") from None
    return value


def _ipv4_cidr(value: str) -> str:
    try:
        ipaddress.IPv4Network(value, strict=True)
    except ValueError:
        raise ValueError(f"{value!r} is not an IPv4 CIDR with its host bits zero (such as 10.42.0.0/16)") from None
    return value


def parse_address_range(value: str) -> tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]:
    """First and last address of "10.20.0.200-10.20.0.250" or of a CIDR such as "10.20.0.192/27"."""
    if "/" in value:
        net = ipaddress.IPv4Network(value, strict=True)
        return net.network_address, net.broadcast_address
    first, sep, last = value.partition("-")
    if not sep:
        raise ValueError("no '-'")
    return ipaddress.IPv4Address(first.strip()), ipaddress.IPv4Address(last.strip())


def _address_range(value: str) -> str:
    try:
        first, last = parse_address_range(value)
    except ValueError:
        raise ValueError(
            f"{value!r} is not an IPv4 range (first-last, such as 10.20.0.200-10.20.0.250) or CIDR (10.20.0.192/27)"
        ) from None
    if first > last:
        raise ValueError(f"{value!r}: the first address is after the last")
    return value


def _dns_label(value: str) -> str:
    if not DNS_LABEL.fullmatch(value):
        raise ValueError(f"{value!r} is not a DNS label (lowercase letters, digits and '-', at most 63)")
    return value


def _hostname(value: str) -> str:
    if not HOSTNAME.fullmatch(value):
        raise ValueError(f"{value!r} is not a lowercase DNS name")
    return value


def _host(value: str) -> str:
    """An IPv4 address or a DNS name. Dotted digits are an address, never a name: 10.0.0.999 is refused."""
    if re.fullmatch(r"[0-9.]+", value) or re.fullmatch(r".*\.[0-9]+", value):
        # RFC 1123 names can't end in an all-numeric label, so this can only be meant as an address.
        return _ipv4(value)
    return _hostname(value)


def _cloudflare_id(value: str) -> str:
    if not CLOUDFLARE_ID.fullmatch(value):
        raise ValueError(f"{value!r} is not a Cloudflare id (32 lowercase hex characters)")
    return value


def _label_key(value: str) -> str:
    return _qualified_key(value)


def _label_value(value: str) -> str:
    if len(value) > 63 or not LABEL_VALUE.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a Kubernetes label value (at most 63 letters, digits, '-', '_' or '.', "
            "alphanumeric at both ends)"
        )
    return value


def _qualified_key(value: str) -> str:
    """A label or taint key: [prefix/]name, the prefix a DNS subdomain of at most 253, the name at most 63."""
    prefix, _, name = value.rpartition("/")
    if not LABEL_KEY.fullmatch(value) or len(name) > 63 or len(prefix) > 253:
        raise ValueError(f"{value!r} is not a Kubernetes label key ([prefix/]name, name at most 63 characters)")
    return value


def _node_label_key(value: str) -> str:
    """What kubelet accepts in --node-labels: no kubernetes.io or k8s.io key except its own (see KUBELET_LABELS)."""
    _qualified_key(value)
    prefix = value.rpartition("/")[0]
    restricted = any(prefix == ns or prefix.endswith("." + ns) for ns in ("kubernetes.io", "k8s.io"))
    allowed = value in KUBELET_LABELS or any(
        prefix == ns or prefix.endswith("." + ns) for ns in KUBELET_LABEL_NAMESPACES
    )
    if restricted and not allowed:
        raise ValueError(
            f"{value!r}: kubelet refuses to set labels under kubernetes.io or k8s.io other than node.kubernetes.io/*, "
            "kubelet.kubernetes.io/* and its well-known labels (use your own prefix, such as helix.example.com/role)"
        )
    return value


def _host_key(value: str) -> str:
    if not HOST_KEY.fullmatch(value):
        raise ValueError(f"{value[:40]!r} is not an SSH public host key ('ssh-ed25519 AAAA...', no comment)")
    return value


def _relative_path(value: str) -> str:
    if value.startswith(("/", "~")) or re.match(r"^[A-Za-z]:[\\/]", value) or ".." in value.split("/"):
        raise ValueError(f"{value!r} must be a path inside the project (relative, without '..')")
    return value


ExactVersion = Annotated[str, AfterValidator(_exact_version)]
K3sRelease = Annotated[str, AfterValidator(_k3s_release)]
LabelValue = Annotated[str, AfterValidator(_label_value)]
NodeLabelKey = Annotated[str, AfterValidator(_node_label_key)]
TaintKey = Annotated[str, AfterValidator(_qualified_key)]
HostKey = Annotated[str, AfterValidator(_host_key)]
IPv4 = Annotated[str, AfterValidator(_ipv4)]
IPv4Cidr = Annotated[str, AfterValidator(_ipv4_cidr)]
AddressRange = Annotated[str, AfterValidator(_address_range)]
DnsLabel = Annotated[str, AfterValidator(_dns_label)]
Hostname = Annotated[str, AfterValidator(_hostname)]
Host = Annotated[str, AfterValidator(_host)]
CloudflareId = Annotated[str, AfterValidator(_cloudflare_id)]
LabelKey = Annotated[str, AfterValidator(_label_key)]
RelativePath = Annotated[str, AfterValidator(_relative_path)]


class Strict(BaseModel):
    """The base of every data file's schema: unknown keys refused, no type coercion, immutable. The docstring under
    a field is its description (docs/config-reference.md and config/helix.schema.json are generated from them)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, use_attribute_docstrings=True)


# --- state backends -------------------------------------------------------------------------------------


class LocalState(Strict):
    dir: RelativePath = "state"
    """Folder of the state files, relative to the project root; kept outside cdktf.out so that a new synth never
    touches state."""

    @field_validator("dir")
    @classmethod
    def _outside_output(cls, value: str) -> str:
        # A synth replaces its output folder (cdktf.out, or its hidden .cdktf.out.* siblings) as a whole.
        parts = [p for p in value.replace("\\", "/").split("/") if p not in ("", ".")]
        if not parts or parts[0] == "cdktf.out" or parts[0].startswith(".cdktf.out."):
            raise ValueError(
                f"{value!r} is inside the synth output folder cdktf.out (or is the project folder), which every "
                "synth replaces: keep the state outside it, e.g. 'state'"
            )
        return value


class S3State(Strict):
    bucket: str = Field(min_length=3)
    """The S3 bucket that holds every stack's state."""
    key_prefix: str = "helix"
    """Key prefix of the state objects: <key_prefix>/<stack>.tfstate."""
    region: str = "us-east-1"
    """The bucket's region."""
    endpoint: str | None = None
    """Endpoint of an S3-compatible store (MinIO, R2, Ceph); unset: AWS S3. Credentials come from the environment,
    never from here."""
    use_path_style: bool = False
    """Address the bucket in the path (most S3-compatible stores), not as a subdomain."""
    kms_key_id: str | None = Field(default=None, pattern=r"^(arn:aws[a-z-]*:kms:\S+|alias/[A-Za-z0-9/_-]+|[0-9a-f-]{36})$")
    """The KMS key (ARN, id or alias/...) that encrypts the state objects (SSE-KMS); unset: the bucket's default."""


class RemoteState(Strict):
    """HCP Terraform / Terraform Enterprise: one workspace per stack, named <workspace_prefix>-<stack>."""

    organization: str = Field(min_length=1)
    """The HCP Terraform / Terraform Enterprise organization."""
    workspace_prefix: str = "helix"
    """Workspaces are named <workspace_prefix>-<stack>."""
    hostname: Hostname | None = None
    """Hostname of a Terraform Enterprise installation; unset: HCP Terraform."""


class PgState(Strict):
    conn_str: str = Field(pattern=r"^postgres(ql)?://[^@/]+(@[^/]+)?/.+$")  # a password: planner/validate.py
    """PostgreSQL connection string without the password (libpq reads it from PGPASSWORD or ~/.pgpass)."""
    schema_prefix: str = "helix"
    """Each stack's state lives in the schema <schema_prefix>_<stack>."""


class StateConfig(Strict):
    backend: Literal["local", "s3", "remote", "pg"] = "local"
    """Where every stack keeps its Terraform state: local files, S3, HCP Terraform (remote) or PostgreSQL."""
    local: LocalState = LocalState()
    """Settings of the local backend."""
    s3: S3State | None = None
    """Settings of the S3 backend (required with backend: s3)."""
    remote: RemoteState | None = None
    """Settings of the remote backend (required with backend: remote)."""
    pg: PgState | None = None
    """Settings of the pg backend (required with backend: pg)."""


# --- the cluster ----------------------------------------------------------------------------------------


class Taint(Strict):
    key: TaintKey
    """The taint's key (a Kubernetes qualified name)."""
    value: LabelValue = ""
    """The taint's value; empty: a taint without value."""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]
    """What the taint does to pods that do not tolerate it."""


class Node(Strict):
    name: DnsLabel
    """Kubernetes node name (a DNS label); also part of the node's Terraform addresses, so renaming replaces it."""
    address: IPv4
    """IPv4 address on the node LAN: reached over SSH, and the node's node-ip."""
    role: Literal["server", "agent"]
    """server (control plane and embedded etcd) or agent (workloads)."""
    labels: dict[NodeLabelKey, LabelValue] = {}
    """Node labels, set at registration and kept by the node-objects stack."""
    taints: list[Taint] = []
    """Node taints, set at registration and kept by the node-objects stack."""
    host_key: HostKey | None = None
    """The machine's SSH host public key ("ssh-ed25519 AAAA..."). Recommended: without it, Terraform does not verify
    the host it pushes the CA keys to."""
    unreachable: bool = False
    """The machine this entry had is dead: replacing it (a new address, or -replace) drains and deletes the old
    node through a surviving server and never connects to the old machine (docs/nodes.md, Replacing a machine)."""


class ApiEndpoint(Strict):
    """What serves cluster.api_host (docs/nodes.md, API endpoint).

    kube-vip: the nodes stack installs kube-vip as a static pod on every server before k3s starts; it holds
    api_host (an IPv4 address on the node LAN, a VIP) by ARP on the server that leads. external: a load balancer
    you run in front of the servers; the install checks that it serves the cluster after the first server.
    first-server: no VIP; api_host is the bootstrap server's address. Unset: first-server without api_host,
    external with it.
    """

    mode: Literal["kube-vip", "external", "first-server"] | None = None
    """kube-vip, external or first-server; unset: first-server without api_host, external with it."""
    interface: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.:-]{1,15}$")
    """kube-vip: the network interface that carries the VIP; unset, kube-vip takes the default route's interface."""


class DepartedNode(Strict):
    """A node that left the cluster: moved here from `nodes` so the next apply drains and removes it."""

    name: DnsLabel
    """The node's name, as it was in `nodes`."""
    address: IPv4
    """The node's address, as it was in `nodes`."""
    role: Literal["server", "agent"]
    """The node's role, as it was in `nodes`."""
    host_key: HostKey | None = None
    """The machine's SSH host public key, as it was in `nodes`."""
    unreachable: bool = False
    """The machine is dead or wiped: skip the steps that run on it (stop, clean up, uninstall)."""


class K3sInstaller(Strict):
    """The official install script, fetched from a k3s release tag and checked against its sha256."""

    tag: K3sRelease = "v1.29.1+k3s2"
    """The k3s release tag whose install.sh is fetched. Any release's install.sh installs any k3s_version; bump both
    fields together (install.sh.sha256sum at the tag)."""
    sha256: str = Field(default="431c6fe653336279073e5b913557aa22d7ef1794b30b4f02002b4482910464d7", pattern=r"^[0-9a-f]{64}$")
    """The sha256 of install.sh at that tag; the install refuses a script that differs."""


class EtcdS3(Strict):
    """S3-compatible bucket for etcd snapshots. Access and secret keys are sensitive Terraform variables."""

    endpoint: Host
    """host[:port] of the S3-compatible service, no scheme."""
    bucket: str = Field(min_length=3)
    """The bucket the snapshots are uploaded to."""
    folder: str = ""
    """Folder inside the bucket; empty: its root."""
    region: str = "us-east-1"
    """The bucket's region."""
    insecure: bool = False
    """Plain HTTP instead of HTTPS."""


class EtcdSnapshots(Strict):
    """Scheduled etcd snapshots on every server (embedded etcd only), optionally uploaded to S3."""

    schedule_cron: str = Field(default="0 */6 * * *", pattern=r"^\S+( \S+){4}$")
    """When each server takes a snapshot (five-field cron)."""
    retention: int = Field(default=20, ge=1, le=1000)
    """How many snapshots each server keeps."""
    s3: EtcdS3 | None = None
    """Also upload the snapshots to this bucket; unset: on the servers' disks only."""


class Rotation(Strict):
    """Rotation of the cluster's credentials (docs/nodes.md, Rotation): change a number and apply the nodes stack."""

    server_token: int = Field(default=0, ge=0)
    """Change it (raise it by one) to rotate the server token: a new secret, `k3s token rotate` on a server, then
    every server restarted with it, one at a time. 0: the secret generated at the first apply."""
    agent_token: int = Field(default=0, ge=0)
    """Change it to rotate the agent token: a new secret on every server (restarted one at a time), then on every
    agent. 0: the secret generated at the first apply."""
    admin: int = Field(default=0, ge=0)
    """Change it to revoke every admin certificate issued so far (a leaked kubeconfig): Terraform's admin
    certificate is in the group helix-admins-<admin>, the only group bound to cluster-admin; a change re-issues the
    certificate and moves the binding to the new group."""


class ExistingCluster(Strict):
    """Target a cluster provisioned elsewhere: no nodes stack, providers read this kubeconfig."""

    kubeconfig: str = "~/.kube/config"
    """Path of the kubeconfig the providers read."""
    context: str = Field(min_length=1)
    """The kubeconfig context of the cluster."""


AWS_REGION = r"^[a-z]{2}(-gov)?-[a-z]+-\d$"
AWS_INSTANCE_TYPE = r"^[a-z][a-z0-9-]*\.[a-z0-9]+$"
# The AMI by public SSM parameter (resolved when Terraform plans): Amazon Linux 2023 has curl and the AWS CLI the
# user data reads the join token with.
DEFAULT_AMI_PARAMETER = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"


class CloudNodePool(Strict):
    """A pool of k3s agents in AWS, scaled by the cluster-autoscaler between min_size and max_size (one stack
    `nodepool-<name>` each; docs/autoscaling.md). The network link from the VPC to node_cidr (VPN, Direct Connect,
    transit gateway) is yours: a prerequisite the tool cannot create or check."""

    name: DnsLabel
    """The pool's name: its stack is nodepool-<name>, its Auto Scaling group <cluster name>-<name>."""
    provider: Literal["aws"]
    """The cloud that runs the pool (aws only)."""
    region: str = Field(pattern=AWS_REGION)
    """The AWS region of the VPC (every pool of a cluster is in the same region: the autoscaler runs with one)."""
    vpc_id: str = Field(pattern=r"^vpc-[0-9a-f]{8,17}$")
    """The VPC the instances run in (yours, routed to node_cidr)."""
    vpc_cidr: IPv4Cidr
    """The VPC's IPv4 CIDR: it must not overlap the cluster's networks; pool nodes accept each other from it."""
    subnet_ids: list[Annotated[str, Field(pattern=r"^subnet-[0-9a-f]{8,17}$")]] = Field(min_length=1)
    """Private subnets of the VPC the group launches into (one per availability zone), with a route to node_cidr
    and NAT for downloads."""
    instance_types: list[Annotated[str, Field(pattern=AWS_INSTANCE_TYPE)]] = Field(min_length=1)
    """Instance types of one size (same vCPUs and memory, config/instance-types.yaml): the autoscaler builds its
    scale-from-zero template from the first one."""
    min_size: int = Field(default=0, ge=0, le=1000)
    """The fewest instances (0: the pool may scale to zero)."""
    max_size: int = Field(ge=1, le=1000)
    """The most instances: the cost ceiling."""
    on_demand_base: int = Field(default=0, ge=0, le=1000)
    """Instances that are always on demand, before any spot."""
    spot: bool = False
    """Above on_demand_base: spot instances (capacity-optimized) instead of on demand."""
    ami_ssm_parameter: str = Field(default=DEFAULT_AMI_PARAMETER, pattern=r"^/[A-Za-z0-9_./-]+$")
    """The SSM parameter that holds the AMI id (the AMI needs curl, the AWS CLI and systemd)."""
    disk_gib: int = Field(default=50, ge=20, le=16384)
    """Size of the encrypted gp3 root volume."""
    root_device: str = Field(default="/dev/xvda", pattern=r"^/dev/[a-z0-9]+$")
    """The AMI's root device name, which the volume settings apply to (/dev/xvda on Amazon Linux, /dev/sda1 on
    Ubuntu)."""
    labels: dict[NodeLabelKey, LabelValue] = {}
    """Node labels (kubelet-settable keys), also told to the autoscaler for scale from zero."""
    taints: list[Taint] = []
    """Node taints, also told to the autoscaler for scale from zero."""
    mtu: int = Field(default=1400, ge=1200, le=9001)
    """MTU of the instances' interface: below the link's path MTU to node_cidr (a VPN's overhead)."""


class SshConfig(Strict):
    """How Terraform's SSH connections to the nodes are checked (user, port and key are variables)."""

    insecure_ignore_host_keys: bool = False
    """Connect to nodes that have no host_key without verifying the host: the cluster's CA keys then go to whatever
    answers at the address. Off: a node without host_key is refused. On: every synth warns."""


class ClusterConfig(Strict):
    mode: Literal["provision", "existing"] = "provision"
    """provision: install k3s on `nodes` over SSH; existing: target a cluster provisioned elsewhere (`existing`)."""
    k3s_version: K3sRelease = "v1.35.5+k3s1"
    """The k3s release every node runs (also the Kubernetes version each component's range is checked against)."""
    k3s_installer: K3sInstaller = K3sInstaller()
    """The official install script, pinned to a release tag and its sha256."""
    api_host: Host | None = None
    """The API endpoint the other servers, the agents and Terraform use: a VIP, or the bootstrap server's address;
    unset: the bootstrap server's address."""
    api_endpoint: ApiEndpoint = ApiEndpoint()
    """What serves api_host: kube-vip (a VIP the nodes stack creates), external (your load balancer), first-server."""
    api_port: int = Field(default=6443, ge=1, le=65535)
    """Port of the Kubernetes API."""
    ha: bool = True
    """HA with embedded etcd: needs an odd number of servers, at least 3. false: exactly one server."""
    node_cidr: IPv4Cidr = "10.20.0.0/24"
    """The node LAN; every node address (and a VIP) is inside it."""
    cluster_cidr: IPv4Cidr = "10.42.0.0/16"
    """The pods' network; must not overlap the node LAN or the services' network."""
    service_cidr: IPv4Cidr = "10.43.0.0/16"
    """The Services' network; must not overlap the others."""
    cluster_dns: IPv4 = "10.43.0.10"
    """The cluster DNS Service address, inside service_cidr."""
    cluster_domain: Hostname = "cluster.local"
    """The cluster's DNS domain."""
    load_balancer_range: AddressRange | None = None
    """Node-LAN addresses that Cilium LB-IPAM gives to LoadBalancer Services (ingress-internal, the Istio ingress
    gateway), announced by ARP from one node at a time: "first-last" or a CIDR, inside node_cidr and clear of the
    nodes and the API host. Unset: no pool, and LoadBalancer Services stay <pending>."""
    tls_san: list[Host] = []
    """Extra SANs for the API server certificate; the API host is always included."""
    etcd_snapshots: EtcdSnapshots = EtcdSnapshots()
    """Scheduled etcd snapshots on every server (embedded etcd only)."""
    rotation: Rotation = Rotation()
    """Rotation of the join tokens and the admin credential: change a number and apply."""
    nodes: list[Node] = []
    """The machines of the cluster (mode provision)."""
    bootstrap_node: DnsLabel | None = None
    """The server that initializes the cluster on the very first install (by name; the first server when unset). It
    only ever matters then: every server, this one included, joins when the API endpoint already answers."""
    departed_nodes: list[DepartedNode] = []
    """Nodes removed from `nodes`: the next apply drains and uninstalls them (docs/nodes.md, "Removing a node")."""
    existing: ExistingCluster | None = None
    """The cluster to target with mode existing."""
    cloud_node_pools: list[CloudNodePool] = []
    """Autoscaled pools of k3s agents in AWS (docs/autoscaling.md); empty: none, and the AWS provider is never
    loaded."""
    ssh: SshConfig = SshConfig()
    """How Terraform's SSH connections to the nodes verify the hosts."""


UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
# A tunnel origin named explicitly: an http(s)/tcp/ssh/... URL or a fixed status (cloudflared's ingress services).
ORIGIN = r"^((https?|tcp|ssh|rdp|unix|smb)://\S+|http_status:[1-5]\d\d|hello_world)$"


def _uuid(value: str) -> str:
    if not UUID.fullmatch(value):
        raise ValueError(f"{value!r} is not a Cloudflare UUID (such as 0b3f4c1e-1b2a-4c3d-9e8f-0123456789ab)")
    return value


Uuid = Annotated[str, AfterValidator(_uuid)]
Email = Annotated[str, Field(pattern=EMAIL)]


class MachinePathConfig(Strict):
    """A path under a protected hostname that machines call (webhooks, SDKs)."""

    path: str = Field(pattern=r"^(/[A-Za-z0-9._~-]+)+/?$")
    """A path under the hostname, such as /api/v1/flags/."""
    service_tokens: list[Uuid] = []
    """Access service token ids allowed on the path; empty: the path bypasses Access (the app authenticates)."""


class AccessConfig(Strict):
    """Cloudflare Access in front of one hostname: who may pass (at least one of the lists)."""

    emails: list[Email] = []
    """Email addresses allowed to pass."""
    email_domains: list[Hostname] = []
    """Email domains whose addresses may pass."""
    groups: list[Uuid] = []                 # Access group ids
    """Access group ids allowed to pass."""
    identity_providers: list[Uuid] = []     # IdP ids: anyone who logs in through one of them
    """Identity provider ids: anyone who logs in through one of them may pass."""
    session_duration: str = Field(default="24h", pattern=r"^(\d+(ns|us|µs|ms|s|m|h))+$")
    """How long a login lasts, such as 24h or 30m."""
    machine_paths: list[MachinePathConfig] = []
    """Paths that machines call (webhooks, SDKs), with their own rules."""


def _hostname_entry(value: Any) -> Any:
    return {"name": value} if isinstance(value, str) else value


class HostnameConfig(Strict):
    """A public hostname of the tunnel. Written as a plain string, it has no access and no explicit origin."""

    name: Hostname
    """The public hostname, inside the zone `domain`."""
    origin: str | None = Field(default=None, pattern=ORIGIN)
    """Where cloudflared sends it. Unset: the external ingress controller, and an installed component must declare an
    Ingress of its class for the name."""
    access: AccessConfig | None = None
    """Cloudflare Access in front of the hostname; unset: public."""


class HstsConfig(Strict):
    enabled: bool = True
    """Send Strict-Transport-Security."""
    max_age: int = Field(default=15552000, ge=0, le=63072000)   # 180 days
    """max-age in seconds (15552000: 180 days)."""
    include_subdomains: bool = False
    """includeSubDomains: also every name below each one."""
    preload: bool = False
    """preload: ask browsers to hard-code HTTPS for the zone (hard to undo)."""
    nosniff: bool = True
    """Send X-Content-Type-Options: nosniff."""


class ZoneSettingsConfig(Strict):
    """Zone-wide settings managed by the edge stack (they apply to every name in the zone)."""

    manage: bool = True
    """Manage the zone's settings here; false: leave them as they are."""
    always_use_https: bool = True
    """Redirect HTTP to HTTPS."""
    min_tls_version: Literal["1.0", "1.1", "1.2", "1.3"] = "1.2"
    """The oldest TLS version the zone accepts."""
    hsts: HstsConfig = HstsConfig()
    """HTTP Strict Transport Security."""


class AdoptConfig(Strict):
    """Existing Cloudflare objects taken under management with import blocks (docs/edge.md, Adoption)."""

    tunnel_id: Uuid | None = None
    """The id of an existing tunnel to take under management instead of creating one."""
    records: dict[Hostname, CloudflareId] = {}
    """hostname -> id of its existing DNS record, taken under management."""


class CloudflareConfig(Strict):
    enabled: bool = True
    """Build the Cloudflare edge; false: the edge stack stays, empty, so a deploy destroys what it created
    (docs/edge.md)."""
    account_id: CloudflareId | None = None
    """The Cloudflare account that owns the tunnel (required when enabled)."""
    zone_id: CloudflareId | None = None
    """The id of the zone `domain` (required when enabled)."""
    tunnel_name: DnsLabel = "helix"
    """The tunnel's name."""
    tunnel_secret_rotation: int = Field(default=0, ge=0)
    """Bump to generate a new tunnel secret; the cluster gets the new connector token in the same deploy."""
    access_team_name: DnsLabel | None = None
    """The Zero Trust team name (<team>.cloudflareaccess.com): required when a hostname has access."""
    alert_emails: list[Email] | None = None
    """Who is emailed when the tunnel's health changes; unset: acme_email. [] turns the alert off."""
    zone_settings: ZoneSettingsConfig = ZoneSettingsConfig()
    """Zone-wide settings (they apply to every name in the zone)."""
    adopt: AdoptConfig = AdoptConfig()
    """Existing Cloudflare objects taken under management with import blocks."""
    internal_domain: Hostname | None = None
    """LAN-only names (the internal ingress class), inside the zone but never published: the internal controller serves
    a wildcard certificate for them (DNS-01 through the zone-scoped token). Unset: lan.<domain>."""
    hostnames: list[Annotated[HostnameConfig, BeforeValidator(_hostname_entry, json_schema_input_type=str | HostnameConfig)]] = []
    """Public hostnames served through the tunnel: "name" or {name, origin, access}."""

    @property
    def hostname_names(self) -> list[str]:
        return [h.name for h in self.hostnames]

    def internal_domain_of(self, domain: str) -> str:
        return self.internal_domain or f"lan.{domain}"


class NamespaceConfig(Strict):
    layer: str | None = None
    """The layer that creates the namespace; derived from its components (the earliest layer) when omitted."""
    labels: dict[LabelKey, LabelValue] = {}
    """Labels of the namespace (keys and values checked against Kubernetes' rules)."""
    protect: bool = False
    """Refuse `terraform destroy` of the namespace and every release in it (and so of the data in it)."""
    components: list[str] = []
    """Catalog components installed into the namespace (each placed once)."""


class GitOpsConfig(Strict):
    """The repository Flux syncs: a GitRepository and a Kustomization that decrypts SOPS files with the age key.
    The deploy key (and the server's known_hosts line) are sensitive variables, never set here."""

    url: str = Field(pattern=r"^(ssh://|https://)[^\s]+$")
    """The repository Flux syncs (ssh:// or https://)."""
    branch: str = Field(default="main", pattern=r"^[A-Za-z0-9._/-]+$")
    """The branch Flux follows."""
    path: str = Field(default="./", pattern=r"^\./[A-Za-z0-9._/-]*$")
    """The folder of the repository Flux applies."""
    interval: str = Field(default="5m", pattern=r"^[0-9]+(s|m|h)$")
    """How often Flux looks for changes, such as 5m."""


class ObjectStorageExternal(Strict):
    """An S3-compatible service outside the cluster. Its keys are the sensitive variables
    object_storage_access_key_id and object_storage_secret_access_key."""

    endpoint: Host  # host[:port], no scheme
    """host[:port] of the S3-compatible service, no scheme."""
    region: str = Field(default="us-east-1", min_length=1)
    """The service's region."""
    insecure: bool = False  # plain HTTP
    """Plain HTTP instead of HTTPS."""


BucketName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")]


class ObjectStorageBuckets(Strict):
    metrics: BucketName = "helix-metrics"  # Mimir (blocks, ruler and alertmanager under their own prefixes)
    """Mimir's bucket (blocks, ruler and alertmanager under their own prefixes)."""
    logs: BucketName = "helix-logs"  # Loki (chunks, ruler)
    """Loki's bucket (chunks, ruler)."""
    traces: BucketName = "helix-traces"  # Tempo
    """Tempo's bucket."""
    profiles: BucketName = "helix-profiles"  # Pyroscope
    """Pyroscope's bucket."""
    backups: BucketName = "helix-backups"  # database backups (CloudNativePG, MySQL Operator)
    """Database backups (CloudNativePG, MySQL Operator)."""


class ObjectStorageRetention(Strict):
    """Days each signal is kept in the object store (each backend's compactor deletes older data)."""

    metrics_days: int = Field(default=90, ge=1, le=3650)
    """Days metrics are kept."""
    logs_days: int = Field(default=30, ge=1, le=3650)
    """Days logs are kept."""
    traces_days: int = Field(default=14, ge=1, le=3650)
    """Days traces are kept."""
    profiles_days: int = Field(default=30, ge=1, le=3650)
    """Days profiles are kept."""
    backups_days: int = Field(default=30, ge=1, le=3650)  # CloudNativePG's recovery window
    """Days database backups are kept (CloudNativePG's recovery window)."""


class ObjectStorageConfig(Strict):
    """Where metrics, logs, traces and profiles are kept: `in-cluster` (SeaweedFS, component `seaweedfs`, with
    generated keys on retained volumes) or `external` (an S3-compatible service; keys as sensitive variables)."""

    mode: Literal["in-cluster", "external"] = "in-cluster"
    """in-cluster: SeaweedFS with generated keys on retained volumes; external: an S3-compatible service (`external`)."""
    external: ObjectStorageExternal | None = None
    """The external service (required with mode external)."""
    buckets: ObjectStorageBuckets = ObjectStorageBuckets()
    """The bucket of each signal."""
    retention: ObjectStorageRetention = ObjectStorageRetention()
    """How long each signal is kept."""


class EmailChannel(Strict):
    """Alerts mailed through an SMTP relay (Alertmanager's email receiver, and OnCall's mail when it is installed).
    The relay's password is the sensitive variable alerting_smtp_password (empty: no authentication)."""

    to: list[Email] = Field(min_length=1)
    """Who is mailed every alert."""
    sender: Email
    """The From address (one the relay accepts)."""
    smarthost: str = Field(pattern=r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?:[0-9]{1,5}$")
    """host:port of the SMTP relay, such as smtp.example.com:587."""
    username: str | None = Field(default=None, min_length=1)
    """The relay's user; unset: no authentication."""
    require_tls: bool = True
    """STARTTLS required on the relay."""


class SlackChannel(Strict):
    """Alerts posted to Slack through an incoming webhook (its URL: the sensitive variable
    alerting_slack_webhook_url)."""

    channel: str = Field(pattern=r"^[#@]?[A-Za-z0-9._-]{1,80}$")
    """The channel (#alerts) or user the webhook posts to."""


class AlertingConfig(Strict):
    """Where alerts reach a person. Alertmanager's own receivers, the path that must always work: every alert
    goes to each channel set here (and to Grafana OnCall too while it is installed). The secrets are sensitive
    variables (alerting_*), never set here. No channel: nobody is paged, and every synth says so."""

    email: EmailChannel | None = None
    """Mail through an SMTP relay."""
    slack: SlackChannel | None = None
    """A Slack incoming webhook."""
    pagerduty: bool = False
    """PagerDuty Events API v2 (its routing key: the sensitive variable alerting_pagerduty_routing_key)."""
    webhook: bool = False
    """A generic webhook (its URL: the sensitive variable alerting_webhook_url)."""
    heartbeat: bool = False
    """The Watchdog (an alert that always fires) sent to a dead man's switch (its URL: the sensitive variable
    alerting_heartbeat_url, such as a healthchecks.io ping URL), which pages when the pings stop: a dead
    Prometheus, Alertmanager or uplink. false: the Watchdog goes nowhere and their loss goes unnoticed."""
    oncall_people: list[Email] | None = None
    """Grafana users that OnCall's default escalation chain notifies (by their own OnCall notification rules);
    unset: email.to, else acme_email."""

    @property
    def channels(self) -> list[str]:
        """The channels set, in a fixed order."""
        return [name for name, on in (("email", self.email), ("slack", self.slack), ("pagerduty", self.pagerduty),
                                      ("webhook", self.webhook)) if on]


class PermissiveWorkload(Strict):
    """Ports of one workload that non-mesh clients reach in plain text under STRICT mTLS (Istio's port-level
    PeerAuthentication needs a workload selector)."""

    namespace: DnsLabel
    """The workload's namespace (one with istio-injection: enabled)."""
    match_labels: dict[LabelKey, LabelValue] = Field(min_length=1)
    """The workload's pod labels."""
    ports: list[Annotated[int, Field(ge=1, le=65535)]] = Field(min_length=1)
    """Its container ports left PERMISSIVE (a metrics port Prometheus scrapes, a port an operator calls)."""
    why: str = Field(min_length=1)
    """Who the non-mesh client is (kept in the PeerAuthentication's annotation)."""


class MeshConfig(Strict):
    """The Istio mesh's policies (docs/mesh.md)."""

    mtls: Literal["permissive", "strict"] = "permissive"
    """strict: PeerAuthentication STRICT in every namespace labelled istio-injection: enabled (sidecars accept only
    mTLS). The public hostnames of such namespaces enter the mesh through the Istio ingress gateway; refused while
    one is still served through an ingress controller outside the mesh (its component has no catalog mesh_service,
    or the gateway is off: its plain-text requests would be refused; docs/mesh.md)."""
    permissive: list[PermissiveWorkload] = []
    """Under strict: workloads' ports left PERMISSIVE for clients outside the mesh."""
    egress: Literal["allow-any", "registry-only"] = "allow-any"
    """registry-only: sidecars reach only Services and ServiceEntries Istio knows (meshConfig.outboundTrafficPolicy
    REGISTRY_ONLY); every external host then needs a ServiceEntry."""


class PodAutoscaling(Strict):
    """A HorizontalPodAutoscaler on the component's CPU (metrics-server's metrics), for the components whose
    catalog entry has `pod_autoscaling` (the stateless front doors, docs/autoscaling.md). Unset fields take the
    catalog's defaults."""

    enabled: bool = True
    """false: a fixed replica count (`min`, else the catalog's floor) and no HorizontalPodAutoscaler."""
    min: int | None = Field(default=None, ge=2, le=100)
    """The fewest replicas (2 at least: the component's PodDisruptionBudget keeps 1, so a drain may take one)."""
    max: int | None = Field(default=None, ge=2, le=100)
    """The most replicas (at least `min`)."""
    cpu_percent: int | None = Field(default=None, ge=10, le=100)
    """The average CPU use, in percent of the pods' CPU request, the autoscaler keeps them at."""

    @model_validator(mode="after")
    def _bounds(self) -> PodAutoscaling:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is above max ({self.max})")
        return self


class ComponentOverride(Strict):
    enabled: bool = True
    """false: the component is not installed (its namespace and stack stay)."""
    autoscaling: PodAutoscaling | None = None
    """Its HorizontalPodAutoscaler's bounds and target, or `enabled: false` for fixed replicas; only for the
    components whose catalog entry has `pod_autoscaling` (on by default for those)."""
    version: ExactVersion | None = None
    """Another chart version than the catalog's (its Kubernetes range must be recorded in the catalog)."""
    values: dict[str, Any] = Field(default_factory=dict)
    """Merged over the catalog's values (mappings deep-merged, everything else replaced)."""


class HelixConfig(Strict):
    name: DnsLabel = "helix"
    """The platform's name (record comments, names of shared objects)."""
    domain: Hostname
    """The DNS zone of the public hostnames."""
    acme_email: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    """Contact of the ACME (Let's Encrypt) account, and the tunnel alert's default recipient."""
    state: StateConfig = StateConfig()
    """Where the Terraform state of every stack is kept."""
    cluster: ClusterConfig = ClusterConfig()
    """The Kubernetes cluster: k3s on your machines, or an existing cluster."""
    cloudflare: CloudflareConfig = CloudflareConfig()
    """The Cloudflare edge: tunnel, DNS records, Access, zone settings."""
    namespaces: dict[DnsLabel, NamespaceConfig] = {}
    """Namespaces, each with the catalog components installed into it."""
    gitops: GitOpsConfig | None = None
    """The repository Flux syncs; unset: no GitOps sync."""
    object_storage: ObjectStorageConfig = ObjectStorageConfig()
    """Where metrics, logs, traces, profiles and backups are kept."""
    alerting: AlertingConfig = AlertingConfig()
    """Where alerts reach a person: mail, Slack, PagerDuty, a webhook, and the Watchdog's dead man's switch."""
    mesh: MeshConfig = MeshConfig()
    """The Istio mesh's mTLS mode, its PERMISSIVE exceptions and its egress policy."""
    components: dict[str, ComponentOverride] = {}
    """Per component: enabled, version and values overrides of the catalog."""

    @property
    def api_host(self) -> str:
        """The API host: the configured VIP, or the bootstrap server's address."""
        if self.cluster.api_host:
            return self.cluster.api_host
        bootstrap = self.bootstrap_server
        return bootstrap.address if bootstrap else "127.0.0.1"

    @property
    def api_endpoint_mode(self) -> str:
        """cluster.api_endpoint.mode, or what an unset mode means: external with api_host, else first-server."""
        mode = self.cluster.api_endpoint.mode
        if mode is not None:
            return mode
        return "external" if self.cluster.api_host else "first-server"

    @property
    def bootstrap_server(self) -> Node | None:
        """The server named by cluster.bootstrap_node, or the first server when unset."""
        servers = self.servers
        wanted = self.cluster.bootstrap_node
        for node in servers:
            if wanted is None or node.name == wanted:
                return node
        return None

    def namespace_protected(self, namespace: str) -> bool:
        """Whether the namespace holds data: it and every release in it refuse destroy, whichever layer installs."""
        ns = self.namespaces.get(namespace)
        return bool(ns and ns.protect)

    @property
    def servers(self) -> list[Node]:
        return [n for n in self.cluster.nodes if n.role == "server"]

    @property
    def agents(self) -> list[Node]:
        return [n for n in self.cluster.nodes if n.role == "agent"]


def cross_field_problems(cfg: HelixConfig) -> list[tuple[str, str]]:
    """Rules that span fields. Returns (field path, message) pairs."""
    out: list[tuple[str, str]] = []
    cluster = cfg.cluster

    # State backend: the selected one must be configured.
    backend = cfg.state.backend
    if backend != "local" and getattr(cfg.state, backend) is None:
        out.append((f"state.{backend}", f"state.backend is {backend!r} but state.{backend} is not set"))

    # Networks must not overlap: pods, services and the node LAN are routed differently.
    nets = _networks(cluster)
    names = list(nets)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            if nets[a].overlaps(nets[b]):
                out.append((b, f"{nets[b]} overlaps {a} ({nets[a]})"))
    if ipaddress.IPv4Address(cluster.cluster_dns) not in nets["cluster.service_cidr"]:
        out.append(("cluster.cluster_dns", f"{cluster.cluster_dns} is not inside service_cidr {cluster.service_cidr}"))

    if cluster.load_balancer_range:
        out.extend(_load_balancer_problems(cfg, nets["cluster.node_cidr"]))

    if cfg.object_storage.mode == "external" and cfg.object_storage.external is None:
        out.append(("object_storage.external", "object_storage.mode is 'external' but object_storage.external is not set"))
    out.extend(_cluster_mode_problems(cfg))
    out.extend(_cloudflare_problems(cfg))
    return out


def _networks(cluster: ClusterConfig) -> dict[str, ipaddress.IPv4Network]:
    return {
        "cluster.node_cidr": ipaddress.IPv4Network(cluster.node_cidr),
        "cluster.cluster_cidr": ipaddress.IPv4Network(cluster.cluster_cidr),
        "cluster.service_cidr": ipaddress.IPv4Network(cluster.service_cidr),
    }


def _cluster_mode_problems(cfg: HelixConfig) -> list[tuple[str, str]]:
    """The machines of a provisioned cluster, or none with an existing one."""
    out: list[tuple[str, str]] = []
    cluster = cfg.cluster
    nets = _networks(cluster)
    if cluster.mode == "provision":
        if cluster.existing is not None:
            out.append(("cluster.existing", "only allowed with cluster.mode: existing"))
        servers = cfg.servers
        if not servers:
            out.append(("cluster.nodes", "at least one server is required to provision a cluster"))
        elif cluster.ha and (len(servers) < 3 or len(servers) % 2 == 0):
            out.append(
                (
                    "cluster.nodes",
                    f"HA embedded etcd needs an odd number of servers, at least 3 (got {len(servers)})",
                )
            )
        elif not cluster.ha and len(servers) != 1:
            out.append(("cluster.nodes", f"without HA exactly one server is allowed (got {len(servers)})"))
        seen_names: dict[str, int] = {}
        seen_addresses: dict[str, int] = {}
        for i, node in enumerate(cluster.nodes):
            if node.name in seen_names:
                out.append((f"cluster.nodes[{i}].name", f"{node.name!r} is already used by nodes[{seen_names[node.name]}]"))
            seen_names.setdefault(node.name, i)
            if node.address in seen_addresses:
                out.append(
                    (f"cluster.nodes[{i}].address", f"{node.address} is already used by nodes[{seen_addresses[node.address]}]")
                )
            seen_addresses.setdefault(node.address, i)
            if ipaddress.IPv4Address(node.address) not in nets["cluster.node_cidr"]:
                out.append((f"cluster.nodes[{i}].address", f"{node.address} is not inside node_cidr {cluster.node_cidr}"))
        if cluster.api_host and _is_ipv4(cluster.api_host):
            if ipaddress.IPv4Address(cluster.api_host) not in nets["cluster.node_cidr"]:
                out.append(("cluster.api_host", f"{cluster.api_host} is not inside node_cidr {cluster.node_cidr}"))
        bootstrap = cfg.bootstrap_server
        if cluster.bootstrap_node is not None and bootstrap is None:
            listed = [n.name for n in cluster.nodes if n.name == cluster.bootstrap_node]
            why = "is an agent" if listed else "is not in cluster.nodes"
            out.append(("cluster.bootstrap_node", f"{cluster.bootstrap_node!r} {why}; name one of the servers"))
        # The API endpoint is a VIP or the bootstrap server: the others join through the endpoint, so it can't be
        # another node's address.
        if cluster.api_host and bootstrap is not None:
            for i, node in enumerate(cluster.nodes):
                if node.address == cluster.api_host and node is not bootstrap:
                    out.append(
                        (
                            "cluster.api_host",
                            f"{cluster.api_host} is the address of nodes[{i}] ({node.name}); use a VIP or the "
                            f"bootstrap server's address ({bootstrap.address})",
                        )
                    )
        out.extend(_endpoint_problems(cfg))
        out.extend(_departed_problems(cfg))
        if not cluster.ha and cluster.etcd_snapshots.s3 is not None:
            out.append(("cluster.etcd_snapshots.s3", "etcd snapshots need embedded etcd (cluster.ha: true)"))
    else:
        if cluster.existing is None:
            out.append(("cluster.existing", "cluster.mode is 'existing': set existing.kubeconfig and existing.context"))
        if cluster.nodes:
            out.append(("cluster.nodes", "must be empty with cluster.mode: existing (the cluster is provisioned elsewhere)"))
        if cluster.departed_nodes:
            out.append(("cluster.departed_nodes", "must be empty with cluster.mode: existing"))
    out.extend(_node_pool_problems(cfg))
    return out


def _node_pool_problems(cfg: HelixConfig) -> list[tuple[str, str]]:
    """Cloud node pools: names, one region, networks clear of the cluster's, sizes (instance types: planner)."""
    out: list[tuple[str, str]] = []
    cluster = cfg.cluster
    pools = cluster.cloud_node_pools
    if pools and cluster.mode != "provision":
        out.append(("cluster.cloud_node_pools", "needs cluster.mode: provision (the pools join with its agent token)"))
    seen: dict[str, int] = {}
    nets = _networks(cluster)
    for i, pool in enumerate(pools):
        at = f"cluster.cloud_node_pools[{i}]"
        if pool.name in seen:
            out.append((f"{at}.name", f"{pool.name!r} is already used by cloud_node_pools[{seen[pool.name]}]"))
        seen.setdefault(pool.name, i)
        if pool.region != pools[0].region:
            out.append((f"{at}.region", f"{pool.region} differs from cloud_node_pools[0] ({pools[0].region}): the "
                                        "autoscaler runs in one region"))
        vpc = ipaddress.IPv4Network(pool.vpc_cidr)
        for name, net in nets.items():
            if vpc.overlaps(net):
                out.append((f"{at}.vpc_cidr", f"{vpc} overlaps {name} ({net})"))
        if len(set(pool.subnet_ids)) != len(pool.subnet_ids):
            out.append((f"{at}.subnet_ids", "a subnet is listed twice"))
        if pool.min_size > pool.max_size:
            out.append((f"{at}.min_size", f"{pool.min_size} is above max_size {pool.max_size}"))
        if pool.on_demand_base > pool.max_size:
            out.append((f"{at}.on_demand_base", f"{pool.on_demand_base} is above max_size {pool.max_size}"))
        if len(set(pool.instance_types)) != len(pool.instance_types):
            out.append((f"{at}.instance_types", "an instance type is listed twice"))
    return out


def _cloudflare_problems(cfg: HelixConfig) -> list[tuple[str, str]]:
    """The tunnel's account, zone and hostnames, Access, the internal domain and adopted records."""
    out: list[tuple[str, str]] = []
    cf = cfg.cloudflare
    if cf.enabled:
        if cf.account_id is None:
            out.append(("cloudflare.account_id", "required when cloudflare.enabled is true (the account that owns the tunnel)"))
        if cf.zone_id is None:
            out.append(("cloudflare.zone_id", f"required when cloudflare.enabled is true (the id of the zone {cfg.domain!r})"))
        if not cf.hostnames:
            out.append(("cloudflare.hostnames", "list at least one public hostname for the tunnel"))
    seen_hosts: dict[str, int] = {}
    for i, entry in enumerate(cf.hostnames):
        host = entry.name
        where = f"cloudflare.hostnames[{i}]"
        if host != cfg.domain and not host.endswith("." + cfg.domain):
            out.append((where, f"{host!r} is not in the zone {cfg.domain!r}"))
        if host in seen_hosts:
            out.append((where, f"{host!r} is already listed at hostnames[{seen_hosts[host]}]"))
        seen_hosts.setdefault(host, i)
        access = entry.access
        if access is not None:
            if not (access.emails or access.email_domains or access.groups or access.identity_providers):
                out.append((f"{where}.access", "list who may pass: emails, email_domains, groups or identity_providers"))
            paths = [p.path.rstrip("/") for p in access.machine_paths]
            for j, path in enumerate(paths):
                if path in paths[:j]:
                    out.append((f"{where}.access.machine_paths[{j}].path", f"{path!r} is listed twice"))
            if cf.access_team_name is None and not any(p[0] == "cloudflare.access_team_name" for p in out):
                out.append(
                    (
                        "cloudflare.access_team_name",
                        f"required when a hostname has access ({host}): the Zero Trust team name cloudflared checks",
                    )
                )
    internal = cf.internal_domain_of(cfg.domain)
    if internal == cfg.domain or not internal.endswith("." + cfg.domain):
        out.append(("cloudflare.internal_domain", f"{internal!r} must be a subdomain of the zone {cfg.domain!r}"))
    for i, entry in enumerate(cf.hostnames):
        if entry.name == internal or entry.name.endswith("." + internal):
            out.append(
                (
                    f"cloudflare.hostnames[{i}]",
                    f"{entry.name!r} is under the internal domain {internal!r}, whose names never go to public DNS",
                )
            )
    for host in cf.adopt.records:
        if host not in seen_hosts:
            out.append((f"cloudflare.adopt.records.{host}", f"{host!r} is not one of cloudflare.hostnames"))
    return out


def _endpoint_problems(cfg: HelixConfig) -> list[tuple[str, str]]:
    """cluster.api_endpoint against api_host: every mode names something that will answer."""
    cluster = cfg.cluster
    mode = cfg.api_endpoint_mode
    bootstrap = cfg.bootstrap_server
    out: list[tuple[str, str]] = []
    if mode == "kube-vip":
        if not cluster.api_host or not _is_ipv4(cluster.api_host):
            out.append(("cluster.api_host", "api_endpoint.mode kube-vip needs api_host: a free IPv4 address on the node LAN (the VIP)"))
        elif bootstrap is not None and cluster.api_host == bootstrap.address:
            out.append(("cluster.api_host", f"{cluster.api_host} is {bootstrap.name}'s address; kube-vip needs a free address (the VIP)"))
    elif mode == "external" and not cluster.api_host:
        out.append(("cluster.api_host", "api_endpoint.mode external needs api_host: the address or name of your load balancer"))
    elif mode == "first-server" and cluster.api_host and bootstrap is not None and cluster.api_host != bootstrap.address:
        out.append(
            (
                "cluster.api_host",
                f"api_endpoint.mode first-server uses the bootstrap server's address ({bootstrap.address}); leave api_host unset",
            )
        )
    if cluster.api_endpoint.interface is not None and mode != "kube-vip":
        out.append(("cluster.api_endpoint.interface", "only kube-vip uses an interface"))
    return out


def _departed_problems(cfg: HelixConfig) -> list[tuple[str, str]]:
    """A departed node is gone from `nodes`: its name and address can't be in use there (its removal would reach the
    new machine), and it is listed once."""
    out: list[tuple[str, str]] = []
    names = {n.name: i for i, n in enumerate(cfg.cluster.nodes)}
    addresses = {n.address: i for i, n in enumerate(cfg.cluster.nodes)}
    seen: dict[str, int] = {}
    for i, node in enumerate(cfg.cluster.departed_nodes):
        where = f"cluster.departed_nodes[{i}]"
        if node.name in names:
            out.append((f"{where}.name", f"{node.name!r} is still in cluster.nodes[{names[node.name]}]; a node is in one list"))
        if node.address in addresses:
            out.append(
                (
                    f"{where}.address",
                    f"{node.address} is used by cluster.nodes[{addresses[node.address]}]; remove the departed node "
                    "first (one apply), then reuse its address",
                )
            )
        if node.name in seen:
            out.append((f"{where}.name", f"{node.name!r} is already listed at departed_nodes[{seen[node.name]}]"))
        seen.setdefault(node.name, i)
    return out


def _load_balancer_problems(cfg: HelixConfig, node_net: ipaddress.IPv4Network) -> list[tuple[str, str]]:
    """The LoadBalancer range must be usable LAN addresses that nothing else on the LAN already answers for."""
    field = "cluster.load_balancer_range"
    value = cfg.cluster.load_balancer_range
    assert value is not None  # only called when set
    first, last = parse_address_range(value)
    if first not in node_net or last not in node_net:
        return [(field, f"{value} is not inside node_cidr {node_net} (L2 announcements only reach the node LAN)")]
    out: list[tuple[str, str]] = []
    if node_net.prefixlen < 31 and (first == node_net.network_address or last == node_net.broadcast_address):
        out.append((field, f"{value} includes the network or broadcast address of {node_net}"))
    taken = [(f"cluster.nodes[{i}] ({n.name})", n.address) for i, n in enumerate(cfg.cluster.nodes)]
    if cfg.cluster.api_host and _is_ipv4(cfg.cluster.api_host):
        taken.append(("cluster.api_host", cfg.cluster.api_host))
    for owner, address in taken:
        if first <= ipaddress.IPv4Address(address) <= last:
            out.append((field, f"{value} includes {address}, used by {owner}"))
    return out


def _is_ipv4(value: str) -> bool:
    try:
        ipaddress.IPv4Address(value)
        return True
    except ValueError:
        return False
