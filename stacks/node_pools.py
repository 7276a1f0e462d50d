"""The cloud node pools: one stack per pool (nodepool-<name>), and one with the cluster-autoscaler's access.

Rendered from plan.node_pools only. This module imports the AWS provider package (through
constructs_lib.aws_node_pool), so stacks/app.py imports it only when a pool exists.
"""

from __future__ import annotations

from constructs import Construct

from constructs_lib.aws_node_pool import AutoscalerAwsAccess, AwsK3sAgentPool, AwsK3sAgentPoolProps, IngressRule
from constructs_lib.backend import StateBackend
from constructs_lib.cluster_access import ClusterAccess, ClusterProviders
from constructs_lib.engine import AwsProvider, SecretV1, SecretV1Metadata
from constructs_lib.k3s_cloud_init import AgentBoot
from planner.model import NodePoolPlan, NodePoolsPlan
from stacks.base import HelixStack


def _aws(stack: Construct, pools: NodePoolsPlan, pool: str | None) -> AwsProvider:
    tags = {"helix/cluster": pools.cluster_name, **({"helix/node-pool": pool} if pool else {})}
    return AwsProvider(stack, "aws", region=pools.region, default_tags=[{"tags": tags}])


class NodePoolStack(HelixStack):
    """One pool's Auto Scaling group of k3s agents, joining with the nodes stack's agent token."""

    def __init__(
        self, scope: Construct, name: str, *, pools: NodePoolsPlan, pool: NodePoolPlan, agent_token: str,
        backend: StateBackend,
    ) -> None:
        super().__init__(scope, name, backend=backend)
        _aws(self, pools, pool.name)
        boot = AgentBoot(
            server_url=pools.server_url,
            k3s_version=pools.k3s_version,
            installer_tag=pools.installer_tag,
            installer_sha256=pools.installer_sha256,
            token_parameter=pool.token_parameter,
            labels=dict(pool.labels),
            taints=pool.k3s_taints,
            mtu=pool.mtu,
        )
        self.pool = AwsK3sAgentPool(self, "pool", props=AwsK3sAgentPoolProps(
            name=pool.group_name,
            cluster=pools.cluster_name,
            vpc_id=pool.vpc_id,
            subnet_ids=list(pool.subnet_ids),
            instance_types=list(pool.instance_types),
            min_size=pool.min_size,
            max_size=pool.max_size,
            on_demand_base=pool.on_demand_base,
            on_demand_above_base=pool.on_demand_above_base,
            ami_ssm_parameter=pool.ami_ssm_parameter,
            disk_gib=pool.disk_gib,
            root_device=pool.root_device,
            boot=boot,
            agent_token=agent_token,
            ingress=[IngressRule(r.description, r.protocol, r.from_port, r.to_port, list(r.cidrs)) for r in pool.ingress],
            labels=dict(pool.labels),
            taints=[(t.key, t.value, t.effect) for t in pool.taints],
        ))


class NodePoolsAccessStack(HelixStack):
    """The cluster-autoscaler's IAM user, and its key as the Secret the chart reads (envFromSecret)."""

    def __init__(
        self, scope: Construct, name: str, *, pools: NodePoolsPlan, access: ClusterAccess, backend: StateBackend
    ) -> None:
        super().__init__(scope, name, backend=backend)
        _aws(self, pools, None)
        ClusterProviders(self, "cluster", access=access)
        self.access = AutoscalerAwsAccess(
            self, "autoscaler", name=f"{pools.cluster_name}-cluster-autoscaler", cluster=pools.cluster_name
        )
        SecretV1(
            self, "autoscaler-key",
            metadata=SecretV1Metadata(name=pools.secret_name, namespace=pools.secret_namespace),
            data={
                "AWS_ACCESS_KEY_ID": self.access.access_key_id,
                "AWS_SECRET_ACCESS_KEY": self.access.secret_access_key,
                "AWS_REGION": pools.region,
            },
        )
