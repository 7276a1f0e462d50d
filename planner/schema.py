"""The cluster description file (config/helix.yaml): its schema and its cross-field rules.

Every option has a default where a sensible one exists; unknown keys are errors everywhere.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal, Optional

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

# An exact version: 1.2.3, v1.2.3, 1.2.3-rc.1, v1.29.1+k3s2. Never "latest", a range or a wildcard.
EXACT_VERSION = re.compile(r"^v?\d+\.\d+\.\d+(?:[-+][0-9A-Za-z][0-9A-Za-z.+-]*)?$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
HOSTNAME = re.compile(r"^(?=.{1,253}$)([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$")
LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
CLOUDFLARE_ID = re.compile(r"^[0-9a-f]{32}$")


def _exact_version(value: str) -> str:
    if not EXACT_VERSION.match(value):
        raise ValueError(f"{value!r} is not an exact version (pin one such as 1.2.3; no 'latest', ranges or wildcards)")
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
    if not DNS_LABEL.match(value):
        raise ValueError(f"{value!r} is not a DNS label (lowercase letters, digits and '-', at most 63)")
    return value


def _hostname(value: str) -> str:
    if not HOSTNAME.match(value):
        raise ValueError(f"{value!r} is not a lowercase DNS name")
    return value


def _host(value: str) -> str:
    try:
        ipaddress.IPv4Address(value)
        return value
    except ValueError:
        return _hostname(value)


def _cloudflare_id(value: str) -> str:
    if not CLOUDFLARE_ID.match(value):
        raise ValueError(f"{value!r} is not a Cloudflare id (32 lowercase hex characters)")
    return value


def _label_key(value: str) -> str:
    if not LABEL_KEY.match(value):
        raise ValueError(f"{value!r} is not a Kubernetes label key")
    return value


def _relative_path(value: str) -> str:
    if value.startswith(("/", "~")) or re.match(r"^[A-Za-z]:[\\/]", value) or ".." in value.split("/"):
        raise ValueError(f"{value!r} must be a path inside the project (relative, without '..')")
    return value


ExactVersion = Annotated[str, AfterValidator(_exact_version)]
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
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


# --- state backends -------------------------------------------------------------------------------------


class LocalState(Strict):
    # Relative to the project root. Kept outside cdktf.out so that a new synth never touches state.
    dir: RelativePath = "state"


class S3State(Strict):
    bucket: str = Field(min_length=3)
    key_prefix: str = "helix"
    region: str = "us-east-1"
    # For S3-compatible stores (MinIO, R2, Ceph). Credentials come from the environment, never from here.
    endpoint: Optional[str] = None
    use_path_style: bool = False


class RemoteState(Strict):
    """HCP Terraform / Terraform Enterprise: one workspace per stack, named <workspace_prefix>-<stack>."""

    organization: str = Field(min_length=1)
    workspace_prefix: str = "helix"
    hostname: Optional[Hostname] = None


class PgState(Strict):
    # The password is not part of the config: libpq reads it from PGPASSWORD or ~/.pgpass.
    conn_str: str = Field(pattern=r"^postgres(ql)?://[^:@/]+(@[^/]+)?/.+$")
    schema_prefix: str = "helix"


class StateConfig(Strict):
    backend: Literal["local", "s3", "remote", "pg"] = "local"
    local: LocalState = LocalState()
    s3: Optional[S3State] = None
    remote: Optional[RemoteState] = None
    pg: Optional[PgState] = None


# --- the cluster ----------------------------------------------------------------------------------------


class Taint(Strict):
    key: LabelKey
    value: str = ""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]


class Node(Strict):
    name: DnsLabel
    address: IPv4
    role: Literal["server", "agent"]
    labels: dict[LabelKey, str] = {}
    taints: list[Taint] = []


class EtcdS3(Strict):
    """S3-compatible bucket for etcd snapshots. Access and secret keys are sensitive Terraform variables."""

    endpoint: Host
    bucket: str = Field(min_length=3)
    folder: str = ""
    region: str = "us-east-1"
    insecure: bool = False


class EtcdSnapshots(Strict):
    """Scheduled etcd snapshots on every server (embedded etcd only), optionally uploaded to S3."""

    schedule_cron: str = Field(default="0 */6 * * *", pattern=r"^\S+( \S+){4}$")
    retention: int = Field(default=20, ge=1, le=1000)
    s3: Optional[EtcdS3] = None


class ExistingCluster(Strict):
    """Target a cluster provisioned elsewhere: no nodes stack, providers read this kubeconfig."""

    kubeconfig: str = "~/.kube/config"
    context: str = Field(min_length=1)


class CloudNodePool(Strict):
    """Extension point for the seed's AWS autoscaling; not implemented yet, so the list must stay empty."""

    name: DnsLabel
    provider: Literal["aws"]


class ClusterConfig(Strict):
    mode: Literal["provision", "existing"] = "provision"
    k3s_version: ExactVersion = "v1.29.1+k3s2"
    # The API endpoint the other servers, the agents and Terraform use: a VIP, or the first server.
    api_host: Optional[Host] = None
    api_port: int = Field(default=6443, ge=1, le=65535)
    # HA embedded etcd needs an odd number of servers, at least 3.
    ha: bool = True
    node_cidr: IPv4Cidr = "10.20.0.0/24"
    cluster_cidr: IPv4Cidr = "10.42.0.0/16"
    service_cidr: IPv4Cidr = "10.43.0.0/16"
    cluster_dns: IPv4 = "10.43.0.10"
    cluster_domain: Hostname = "cluster.local"
    # Node-LAN addresses that Cilium LB-IPAM gives to LoadBalancer Services (ingress-internal, the Istio ingress
    # gateway), announced by ARP from one node at a time: "first-last" or a CIDR, inside node_cidr and clear of
    # the nodes and the API host. Unset: no pool, and LoadBalancer Services stay <pending>.
    load_balancer_range: Optional[AddressRange] = None
    # Extra SANs for the API server certificate; the API host is always included.
    tls_san: list[Host] = []
    etcd_snapshots: EtcdSnapshots = EtcdSnapshots()
    nodes: list[Node] = []
    existing: Optional[ExistingCluster] = None
    cloud_node_pools: list[CloudNodePool] = []


class CloudflareConfig(Strict):
    enabled: bool = True
    account_id: Optional[CloudflareId] = None
    zone_id: Optional[CloudflareId] = None
    tunnel_name: DnsLabel = "helix"
    # Public hostnames served through the tunnel, each routed to the external ingress controller.
    hostnames: list[Hostname] = []


class NamespaceConfig(Strict):
    # The layer that creates the namespace; derived from its components (the earliest layer) when omitted.
    layer: Optional[str] = None
    labels: dict[LabelKey, str] = {}
    # Refuse `terraform destroy` of the namespace (and so of the data in it).
    protect: bool = False
    components: list[str] = []


class ObjectStorageExternal(Strict):
    """An S3-compatible service outside the cluster. Its keys are the sensitive variables
    object_storage_access_key_id and object_storage_secret_access_key."""

    endpoint: Host  # host[:port], no scheme
    region: str = Field(default="us-east-1", min_length=1)
    insecure: bool = False  # plain HTTP


BucketName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")]


class ObjectStorageBuckets(Strict):
    metrics: BucketName = "helix-metrics"  # Mimir (blocks, ruler and alertmanager under their own prefixes)
    logs: BucketName = "helix-logs"  # Loki (chunks, ruler)
    traces: BucketName = "helix-traces"  # Tempo
    profiles: BucketName = "helix-profiles"  # Pyroscope
    backups: BucketName = "helix-backups"  # database backups (CloudNativePG, MySQL Operator)


class ObjectStorageRetention(Strict):
    """Days each signal is kept in the object store (each backend's compactor deletes older data)."""

    metrics_days: int = Field(default=90, ge=1, le=3650)
    logs_days: int = Field(default=30, ge=1, le=3650)
    traces_days: int = Field(default=14, ge=1, le=3650)
    profiles_days: int = Field(default=30, ge=1, le=3650)
    backups_days: int = Field(default=30, ge=1, le=3650)  # CloudNativePG's recovery window


class ObjectStorageConfig(Strict):
    """Where metrics, logs, traces and profiles are kept: `in-cluster` (SeaweedFS, component `seaweedfs`, with
    generated keys on retained volumes) or `external` (an S3-compatible service; keys as sensitive variables)."""

    mode: Literal["in-cluster", "external"] = "in-cluster"
    external: Optional[ObjectStorageExternal] = None
    buckets: ObjectStorageBuckets = ObjectStorageBuckets()
    retention: ObjectStorageRetention = ObjectStorageRetention()


class ComponentOverride(Strict):
    enabled: bool = True
    version: Optional[ExactVersion] = None
    # Merged over the catalog's values (mappings deep-merged, everything else replaced).
    values: dict[str, Any] = Field(default_factory=dict)


class HelixConfig(Strict):
    name: DnsLabel = "helix"
    domain: Hostname
    acme_email: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    state: StateConfig = StateConfig()
    cluster: ClusterConfig = ClusterConfig()
    cloudflare: CloudflareConfig = CloudflareConfig()
    namespaces: dict[DnsLabel, NamespaceConfig] = {}
    object_storage: ObjectStorageConfig = ObjectStorageConfig()
    components: dict[str, ComponentOverride] = {}

    @property
    def api_host(self) -> str:
        """The API host: the configured VIP, or the first server's address."""
        if self.cluster.api_host:
            return self.cluster.api_host
        servers = [n for n in self.cluster.nodes if n.role == "server"]
        return servers[0].address if servers else "127.0.0.1"

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
    nets = {
        "cluster.node_cidr": ipaddress.IPv4Network(cluster.node_cidr),
        "cluster.cluster_cidr": ipaddress.IPv4Network(cluster.cluster_cidr),
        "cluster.service_cidr": ipaddress.IPv4Network(cluster.service_cidr),
    }
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
        # The API endpoint is a VIP or the first server: the first server bootstraps the cluster, the others join
        # through the endpoint, so it can't be another node's address.
        if cluster.api_host and servers:
            for i, node in enumerate(cluster.nodes):
                if node.address == cluster.api_host and node is not servers[0]:
                    out.append(
                        (
                            "cluster.api_host",
                            f"{cluster.api_host} is the address of nodes[{i}] ({node.name}); use a VIP or the first "
                            f"server's address ({servers[0].address})",
                        )
                    )
        if not cluster.ha and cluster.etcd_snapshots.s3 is not None:
            out.append(("cluster.etcd_snapshots.s3", "etcd snapshots need embedded etcd (cluster.ha: true)"))
    else:
        if cluster.existing is None:
            out.append(("cluster.existing", "cluster.mode is 'existing': set existing.kubeconfig and existing.context"))
        if cluster.nodes:
            out.append(("cluster.nodes", "must be empty with cluster.mode: existing (the cluster is provisioned elsewhere)"))
    if cluster.cloud_node_pools:
        out.append(("cluster.cloud_node_pools", "cloud node pools are not implemented yet; leave the list empty"))

    cf = cfg.cloudflare
    if cf.enabled:
        if cf.account_id is None:
            out.append(("cloudflare.account_id", "required when cloudflare.enabled is true (the account that owns the tunnel)"))
        if cf.zone_id is None:
            out.append(("cloudflare.zone_id", f"required when cloudflare.enabled is true (the id of the zone {cfg.domain!r})"))
        if not cf.hostnames:
            out.append(("cloudflare.hostnames", "list at least one public hostname for the tunnel"))
    seen_hosts: dict[str, int] = {}
    for i, host in enumerate(cf.hostnames):
        if host != cfg.domain and not host.endswith("." + cfg.domain):
            out.append((f"cloudflare.hostnames[{i}]", f"{host!r} is not in the zone {cfg.domain!r}"))
        if host in seen_hosts:
            out.append((f"cloudflare.hostnames[{i}]", f"{host!r} is already listed at hostnames[{seen_hosts[host]}]"))
        seen_hosts.setdefault(host, i)
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
