"""The nodes stack: the k3s machines, and the cluster access every later stack uses."""

from __future__ import annotations

from cdktf import TerraformOutput, TerraformVariable
from constructs import Construct

from constructs_lib.backend import StateBackend
from constructs_lib.k3s import EtcdS3Target, K3sCluster, K3sClusterProps, K3sNode, SshAccess
from stacks.base import HelixStack
from stacks.config import HelixConfig

# k3s's packaged components, and the platform component that replaces each one. A packaged component is
# disabled when its replacement is installed; None means it is always disabled (NGINX is the ingress).
K3S_PACKAGED = {
    "traefik": None,
    "servicelb": "cilium",  # LoadBalancer addresses from Cilium LB-IPAM with L2 announcements
    "metrics-server": "metrics-server",
    "coredns": "coredns",
    "local-storage": "openebs",
}
# Cilium is the CNI and replaces kube-proxy (the catalog's cilium entry sets kubeProxyReplacement).
CNI_COMPONENT = "cilium"


def platform_components(config: HelixConfig) -> set[str]:
    """The components the platform installs: placed in a namespace and not turned off."""
    placed = {c for ns in config.namespaces.values() for c in ns.components}
    return {c for c in placed if config.components.get(c) is None or config.components[c].enabled}


def disabled_packaged_components(config: HelixConfig) -> list[str]:
    installed = platform_components(config)
    return [name for name, by in K3S_PACKAGED.items() if by is None or by in installed]


class NodesStack(HelixStack):
    """Provisions the configured machines with k3s; exposes `access` for the platform layers."""

    def __init__(self, scope: Construct, name: str, *, config: HelixConfig, backend: StateBackend) -> None:
        super().__init__(scope, name, backend=backend)
        c = config.cluster
        ssh_user = TerraformVariable(
            self,
            "ssh_user",
            type="string",
            sensitive=True,
            description="SSH user on every node: root, or a user with passwordless sudo",
        )
        ssh_port = TerraformVariable(
            self, "ssh_port", type="number", sensitive=True, default=22, description="SSH port on every node"
        )
        ssh_private_key = TerraformVariable(
            self,
            "ssh_private_key",
            type="string",
            sensitive=True,
            default="",
            description="PEM private key for SSH; leave empty to use the SSH agent (required for node removal)",
        )
        etcd_s3 = None
        if c.etcd_snapshots.s3 is not None:
            s3 = c.etcd_snapshots.s3
            access_key = TerraformVariable(
                self, "etcd_s3_access_key", type="string", sensitive=True, description="Access key of the etcd snapshot bucket"
            )
            secret_key = TerraformVariable(
                self, "etcd_s3_secret_key", type="string", sensitive=True, description="Secret key of the etcd snapshot bucket"
            )
            etcd_s3 = EtcdS3Target(
                endpoint=s3.endpoint,
                bucket=s3.bucket,
                folder=s3.folder,
                region=s3.region,
                insecure=s3.insecure,
                access_key=access_key.string_value,
                secret_key=secret_key.string_value,
            )
        cilium = CNI_COMPONENT in platform_components(config)
        self.cluster = K3sCluster(
            self,
            "k3s",
            props=K3sClusterProps(
                version=c.k3s_version,
                api_host=config.api_host,
                api_port=c.api_port,
                ssh=SshAccess(user=ssh_user.string_value, port=ssh_port.number_value, private_key=ssh_private_key.string_value),
                embedded_etcd=c.ha,
                cluster_cidr=c.cluster_cidr,
                service_cidr=c.service_cidr,
                cluster_dns=c.cluster_dns,
                cluster_domain=c.cluster_domain,
                tls_san=list(c.tls_san),
                disable=disabled_packaged_components(config),
                flannel_backend="none" if cilium else "vxlan",
                disable_network_policy=cilium,
                disable_kube_proxy=cilium,
                etcd_snapshot_schedule_cron=c.etcd_snapshots.schedule_cron,
                etcd_snapshot_retention=c.etcd_snapshots.retention,
                etcd_s3=etcd_s3,
                # etcd's metrics on every server's :2381 (plain HTTP), scraped by kube-prometheus-stack's `etcd` job.
                server_config={"etcd-expose-metrics": True} if c.ha else {},
                nodes=[
                    K3sNode(
                        name=n.name,
                        address=n.address,
                        role=n.role,
                        labels=dict(n.labels),
                        taints=[f"{t.key}={t.value}:{t.effect}" if t.value else f"{t.key}:{t.effect}" for t in n.taints],
                    )
                    for n in c.nodes
                ],
            ),
        )
        outputs = {
            "api_url": (self.cluster.api_url, "Kubernetes API endpoint"),
            "cluster_ca_certificate": (self.cluster.cluster_ca_certificate, "PEM of the cluster's server CA"),
            "client_certificate": (self.cluster.client_certificate, "PEM of the admin client certificate"),
            "client_key": (self.cluster.client_key, "PEM of the admin client key"),
            "kubeconfig": (self.cluster.kubeconfig, "Admin kubeconfig: cdktf output nodes, or terraform output -raw"),
        }
        for key, (value, description) in outputs.items():
            TerraformOutput(self, key, value=value, sensitive=True, description=description)
        self.access = self.cluster.access
