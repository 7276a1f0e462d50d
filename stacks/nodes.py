"""The nodes stack: the k3s machines, and the cluster access every later stack uses."""

from __future__ import annotations

from cdktf import TerraformOutput
from constructs import Construct

from constructs_lib.backend import StateBackend
from constructs_lib.cluster_access import ClusterAccess
from constructs_lib.k3s import K3sCluster, K3sClusterProps, K3sNode
from stacks.base import HelixStack
from stacks.config import HelixConfig


class NodesStack(HelixStack):
    """Provisions the configured machines with k3s; exposes `access` for the platform layers."""

    def __init__(self, scope: Construct, name: str, *, config: HelixConfig, backend: StateBackend) -> None:
        super().__init__(scope, name, backend=backend)
        c = config.cluster
        self.cluster = K3sCluster(
            self,
            "k3s",
            props=K3sClusterProps(
                version=c.k3s_version,
                api_host=config.api_host,
                api_port=c.api_port,
                nodes=[
                    K3sNode(
                        name=n.name,
                        address=n.address,
                        role=n.role,
                        labels=dict(n.labels),
                        taints=[f"{t.key}={t.value}:{t.effect}" for t in n.taints],
                    )
                    for n in c.nodes
                ],
            ),
        )
        TerraformOutput(self, "api_url", value=self.cluster.api_url)
        self.access = ClusterAccess(
            host=self.cluster.api_url,
            cluster_ca_certificate=self.cluster.cluster_ca_certificate,
            client_certificate=self.cluster.client_certificate,
            client_key=self.cluster.client_key,
        )
