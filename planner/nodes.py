"""The nodes plan: the k3s machines resolved from the cluster file, everything stacks/nodes.py renders."""

from __future__ import annotations

from planner.model import (
    DepartedNodePlan,
    EtcdS3Plan,
    EtcdSnapshotsPlan,
    ExistingClusterPlan,
    NodePlan,
    NodesPlan,
    TaintPlan,
)
from planner.schema import HelixConfig

# The cluster-autoscaler's AWS provider skips a Node with this annotation instead of logging, on every loop, that
# it found no Auto Scaling group for it (cloudprovider/aws HasInstance): every on-prem node, once pools exist.
NOT_AUTOSCALED = {"k8s.io/cluster-autoscaler-enabled": "false"}


def resolve_nodes(cfg: HelixConfig) -> NodesPlan:
    """The validated cluster file's `cluster` section as the nodes stack installs it."""
    c = cfg.cluster
    bootstrap = cfg.bootstrap_server
    snapshots = c.etcd_snapshots
    s3 = snapshots.s3
    return NodesPlan(
        mode=c.mode,
        existing=ExistingClusterPlan(c.existing.kubeconfig, c.existing.context) if c.existing is not None else None,
        k3s_version=c.k3s_version,
        installer_tag=c.k3s_installer.tag,
        installer_sha256=c.k3s_installer.sha256,
        bootstrap_node=bootstrap.name if bootstrap else None,
        # The configured VIP, or else the bootstrap server's address.
        api_host=cfg.api_host,
        api_port=c.api_port,
        embedded_etcd=c.ha,
        cluster_cidr=c.cluster_cidr,
        service_cidr=c.service_cidr,
        cluster_dns=c.cluster_dns,
        cluster_domain=c.cluster_domain,
        tls_san=tuple(c.tls_san),
        etcd_snapshots=EtcdSnapshotsPlan(
            schedule_cron=snapshots.schedule_cron,
            retention=snapshots.retention,
            s3=EtcdS3Plan(s3.endpoint, s3.bucket, s3.folder, s3.region, s3.insecure) if s3 is not None else None,
        ),
        # etcd's metrics on every server's :2381 (plain HTTP), scraped by kube-prometheus-stack's `etcd` job.
        server_config={"etcd-expose-metrics": True} if c.ha else {},
        nodes=tuple(
            NodePlan(
                name=n.name,
                address=n.address,
                role=n.role,
                labels=dict(n.labels),
                taints=tuple(TaintPlan(t.key, t.value, t.effect) for t in n.taints),
                host_key=n.host_key,
                unreachable=n.unreachable,
                annotations=dict(NOT_AUTOSCALED) if c.cloud_node_pools else {},
            )
            for n in c.nodes
        ),
        departed=tuple(
            DepartedNodePlan(name=d.name, address=d.address, role=d.role, host_key=d.host_key, unreachable=d.unreachable)
            for d in c.departed_nodes
        ),
        api_endpoint_mode=cfg.api_endpoint_mode,
        kube_vip_interface=c.api_endpoint.interface,
        server_token_rotation=c.rotation.server_token,
        agent_token_rotation=c.rotation.agent_token,
        # Not system:masters, which no RBAC change can revoke: a group of our own, bound to cluster-admin.
        admin_group=f"helix-admins-{c.rotation.admin}",
    )
