"""The real cdktf CLI, end to end, and the README's generated stack diagram."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.conftest import CDKTF, background_fixture, cli_env, readme_section
from tools import graph

ROOT = Path(__file__).resolve().parent.parent


def test_cdktf_cli_synthesizes_every_stack(cli_synth, description_synth):
    synth = description_synth
    assert "Generated Terraform code for the stacks" in cli_synth.result.stdout
    assert cli_synth.stack_names == synth.stack_names
    for name, stack in cli_synth.manifest["stacks"].items():
        assert stack["dependencies"] == synth.manifest["stacks"][name]["dependencies"]
        assert cli_synth.stack(name) == synth.stack(name), name


@background_fixture("cli_broken_config", start=2)
def _cli_broken_config(tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    """`cdktf synth` with a broken config, over a previous output: the CLI must fail and leave it alone."""
    work = tmp_path_factory.mktemp("cli-broken")
    bad = work / "bad.yaml"
    bad.write_text("name: helix\ndomain: helixaibot.com\nacme_email: a@b.co\nclutser: {}\n")
    out = work / "cdktf.out"
    out.mkdir()
    (out / "keep.txt").write_text("previous output")
    # The app command without `pipenv run`: pipenv's part is end-to-end tested by the CLI synth (conftest).
    app = json.loads((ROOT / "cdktf.json").read_text())["app"].removeprefix("pipenv run ")
    result = subprocess.run(
        [str(CDKTF), "synth", "--app", app, "--output", str(out)],
        cwd=ROOT,
        env=cli_env(HELIX_CONFIG=str(bad), TMPDIR=str(work)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    return result, out


def test_cdktf_cli_refuses_a_broken_config_and_keeps_output(cli_broken_config):
    result, out = cli_broken_config
    assert result.returncode != 0
    assert "clutser: unknown key" in result.stdout + result.stderr
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert (out / "keep.txt").read_text() == "previous output"


def test_readme_stack_diagram_matches_the_app(shipped_synth_or_description):
    """The diagram is of the shipped config's app."""
    synth = shipped_synth_or_description
    readme = (ROOT / "README.md").read_text()
    expected = graph.block(synth.manifest)
    assert expected in readme, "README's stack diagram is stale: run `task graph`"
    # Every dependency edge of the app is drawn.
    for name, stack in synth.manifest["stacks"].items():
        for dep in stack["dependencies"]:
            assert f"  {dep.replace('-', '_')} --> {name.replace('-', '_')}" in expected


def test_readme_lists_every_variable_a_user_must_set(synth):
    section = readme_section("Secrets")
    declared = {name for s in synth.stack_names for name in synth.stack(s).get("variable", {})}
    assert declared, "the app declares no variables at all"
    missing = sorted(name for name in declared if f"`{name}`" not in section)
    assert not missing, f"README's Secrets table does not list: {missing}"
