#!/usr/bin/env python
"""A 3-node k3s cluster provisioned over SSH, and one Helm add-on (metrics-server) installed on it.
Uses only constructs_lib.

    python examples/k3s_with_addon.py [OUTDIR]

OUTDIR defaults to $CDKTF_OUTDIR, then ./cdktf.out. Two stacks: `cluster` (the machines) and `addons`
(reaches the cluster with the admin certificate the first stack generated: cdktf wires the cross-stack
references through outputs and remote state). State is kept in ./state/<stack>.tfstate.

Deploy with `cdktf deploy cluster addons` after setting TF_VAR_ssh_private_key (or leave it empty to use
the SSH agent).
"""

from __future__ import annotations

import os
import sys

import constructs_lib

# Opt in before any provider class is imported: only the resource modules used are loaded.
constructs_lib.enable_lazy_providers()

from constructs_lib import (  # noqa: E402
    AddOnLayer,
    ClusterProviders,
    HelmAddOn,
    K3sCluster,
    K3sClusterProps,
    K3sNode,
    LocalStateBackend,
    SshAccess,
)
from constructs_lib.engine import App, TerraformOutput, TerraformStack, TerraformVariable  # noqa: E402

# Documentation addresses (RFC 5737): replace with your machines.
NODES = [
    K3sNode(name="server-1", address="192.0.2.11", role="server"),
    K3sNode(name="server-2", address="192.0.2.12", role="server"),
    K3sNode(name="server-3", address="192.0.2.13", role="server"),
]


def outdir_from(argv: list[str]) -> str:
    return argv[1] if len(argv) > 1 else os.environ.get("CDKTF_OUTDIR", "cdktf.out")


def build(outdir: str) -> App:
    app = App(outdir=outdir, stack_traces=False)  # stack traces would record absolute paths
    backend = LocalStateBackend(directory="state")

    cluster_stack = TerraformStack(app, "cluster")
    backend.apply(cluster_stack, "cluster")
    ssh_key = TerraformVariable(
        cluster_stack,
        "ssh_private_key",
        type="string",
        sensitive=True,
        default="",
        description="PEM private key for SSH; empty uses the SSH agent",
    )
    cluster = K3sCluster(
        cluster_stack,
        "k3s",
        props=K3sClusterProps(
            version="v1.29.1+k3s2",
            nodes=NODES,
            api_host=NODES[0].address,
            ssh=SshAccess(user="root", port=22, private_key=ssh_key.string_value),
            # metrics-server comes from its Helm chart below instead of k3s's packaged manifest.
            disable=["metrics-server"],
        ),
    )
    TerraformOutput(cluster_stack, "kubeconfig", value=cluster.kubeconfig, sensitive=True)

    addons_stack = TerraformStack(app, "addons")
    backend.apply(addons_stack, "addons")
    providers = ClusterProviders(
        addons_stack,
        "cluster",
        access=cluster.access,
    )
    AddOnLayer(
        addons_stack,
        "layer",
        providers=providers,
        add_ons=[
            HelmAddOn(
                name="metrics-server",
                namespace="kube-system",
                repository="https://kubernetes-sigs.github.io/metrics-server/",
                chart="metrics-server",
                version="3.13.1",
                values={"replicas": 2, "podDisruptionBudget": {"enabled": True, "minAvailable": 1}},
            )
        ],
    )
    addons_stack.add_dependency(cluster_stack)
    return app


if __name__ == "__main__":
    build(outdir_from(sys.argv)).synth()
