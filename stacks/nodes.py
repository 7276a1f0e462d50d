"""The nodes stack: the k3s machines, and the cluster access every later stack uses."""

from __future__ import annotations

from constructs import Construct

from constructs_lib.addresses import address_name
from constructs_lib.backend import StateBackend
from constructs_lib.cluster_access import ClusterAccess, ClusterProviders
from constructs_lib.engine import (
    Annotations,
    AnnotationsMetadata,
    Labels,
    LabelsMetadata,
    NodeTaint,
    NodeTaintMetadata,
    NodeTaintTaint,
    TerraformOutput,
    TerraformVariable,
)
from constructs_lib.k3s import DepartedK3sNode, EtcdS3Target, K3sCluster, K3sClusterProps, K3sNode, SshAccess
from constructs_lib.kube_vip import KubeVip
from planner.model import NodesPlan, PlatformPlan
from stacks.base import HelixStack


class NodesStack(HelixStack):
    """Provisions the configured machines with k3s; exposes `access` for the platform layers."""

    def __init__(self, scope: Construct, name: str, *, plan: PlatformPlan, backend: StateBackend) -> None:
        super().__init__(scope, name, backend=backend)
        nodes = plan.nodes
        k3s = plan.k3s
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
        if nodes.etcd_snapshots.s3 is not None:
            s3 = nodes.etcd_snapshots.s3
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
        self.cluster = K3sCluster(
            self,
            "k3s",
            props=K3sClusterProps(
                version=nodes.k3s_version,
                installer_tag=nodes.installer_tag,
                installer_sha256=nodes.installer_sha256,
                bootstrap_node=nodes.bootstrap_node,
                departed_nodes=[
                    DepartedK3sNode(name=d.name, address=d.address, role=d.role, host_key=d.host_key, unreachable=d.unreachable)
                    for d in nodes.departed
                ],
                api_host=nodes.api_host,
                api_port=nodes.api_port,
                # cluster.api_endpoint: kube-vip holds the VIP (docs/nodes.md, API endpoint).
                kube_vip=KubeVip(interface=nodes.kube_vip_interface) if nodes.kube_vip else None,
                ssh=SshAccess(user=ssh_user.string_value, port=ssh_port.number_value, private_key=ssh_private_key.string_value),
                embedded_etcd=nodes.embedded_etcd,
                cluster_cidr=nodes.cluster_cidr,
                service_cidr=nodes.service_cidr,
                cluster_dns=nodes.cluster_dns,
                cluster_domain=nodes.cluster_domain,
                tls_san=list(nodes.tls_san),
                # What the platform replaces (the catalog's replaces_k3s of every placed component).
                disable=list(k3s.disable),
                flannel_backend=k3s.flannel_backend,
                disable_network_policy=k3s.disable_network_policy,
                disable_kube_proxy=k3s.disable_kube_proxy,
                etcd_snapshot_schedule_cron=nodes.etcd_snapshots.schedule_cron,
                etcd_snapshot_retention=nodes.etcd_snapshots.retention,
                etcd_s3=etcd_s3,
                server_config=dict(nodes.server_config),
                server_token_rotation=nodes.server_token_rotation,
                agent_token_rotation=nodes.agent_token_rotation,
                admin_group=nodes.admin_group,
                nodes=[
                    K3sNode(
                        name=n.name,
                        address=n.address,
                        role=n.role,
                        labels=dict(n.labels),
                        taints=n.k3s_taints,
                        host_key=n.host_key,
                        unreachable=n.unreachable,
                    )
                    for n in nodes.nodes
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


class NodeObjectsStack(HelixStack):
    """The nodes' labels and taints as Kubernetes objects (kubernetes_labels, kubernetes_node_taint), after the
    nodes stack: a change of `labels` or `taints` in the config shows in this stack's plan and is applied to the
    running nodes. (The nodes also get them at registration, so taints hold from the first second.)"""

    def __init__(
        self, scope: Construct, name: str, *, nodes: NodesPlan, backend: StateBackend, access: ClusterAccess
    ) -> None:
        super().__init__(scope, name, backend=backend)
        ClusterProviders(self, "cluster", access=access)
        self.labels: dict[str, Labels] = {}
        self.taints: dict[str, NodeTaint] = {}
        self.annotations: dict[str, Annotations] = {}
        for node in nodes.nodes:
            if node.annotations:
                self.annotations[node.name] = Annotations(
                    self,
                    f"annotations-{node.name}",
                    api_version="v1",
                    kind="Node",
                    metadata=AnnotationsMetadata(name=node.name),
                    annotations=dict(sorted(node.annotations.items())),
                    field_manager=FIELD_MANAGER,
                    force=True,
                )
            if node.labels:
                self.labels[node.name] = Labels(
                    self,
                    f"labels-{node.name}",
                    api_version="v1",
                    kind="Node",
                    metadata=LabelsMetadata(name=node.name),
                    labels=dict(sorted(node.labels.items())),
                    field_manager=FIELD_MANAGER,
                    # The labels kubelet set at registration are taken over by this field manager.
                    force=True,
                )
            if node.taints:
                self.taints[node.name] = NodeTaint(
                    self,
                    f"taints-{node.name}",
                    metadata=NodeTaintMetadata(name=node.name),
                    taint=[NodeTaintTaint(key=t.key, value=t.value, effect=t.effect) for t in node.taints],
                    field_manager=FIELD_MANAGER,
                    force=True,
                )
        # A departed node's Node object is deleted by the nodes stack: forget its labels and taints here without
        # asking the API to patch a Node that is gone.
        removed = []
        kinds = [("kubernetes_labels", "labels"), ("kubernetes_node_taint", "taints")]
        if any(n.annotations for n in nodes.nodes):
            kinds.append(("kubernetes_annotations", "annotations"))
        for departed in nodes.departed:
            for kind, prefix in kinds:
                removed.append({"from": f"{kind}.{address_name([f'{prefix}-{departed.name}'])}", "lifecycle": {"destroy": False}})
        if removed:
            self.add_override("removed", removed)


FIELD_MANAGER = "helix-nodes"


def add_node_objects(app: Construct, nodes: NodesStack, plan: NodesPlan, backend: StateBackend) -> NodeObjectsStack:
    """The node-objects stack, after the nodes stack (the one call stacks/app.py makes)."""
    stack = NodeObjectsStack(app, NODE_OBJECTS, nodes=plan, backend=backend, access=nodes.access)
    stack.add_dependency(nodes)
    return stack


NODE_OBJECTS = "node-objects"
