"""The real cdktf CLI, end to end, and the README's generated stack diagram."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stacks import graph

ROOT = Path(__file__).resolve().parent.parent
CDKTF = ROOT / "node_modules" / ".bin" / "cdktf"


def _cli_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    # cdktf.json runs `pipenv run python main.py`: pipenv and this interpreter's venv come first.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), str(CDKTF.parent), env.get("PATH", "")])
    env.update(
        PIPENV_VENV_IN_PROJECT="1",
        PIPENV_VERBOSITY="-1",
        CHECKPOINT_DISABLE="1",
        DISABLE_VERSION_CHECK="1",
        JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20",
        CI="1",
        **extra,
    )
    return env


@pytest.fixture(scope="module")
def cli_synth(tmp_path_factory):
    assert CDKTF.exists(), "the cdktf CLI is missing: run `bash scripts/setup.sh` (npm ci installs it)"
    out = tmp_path_factory.mktemp("cli") / "cdktf.out"
    result = subprocess.run(
        [str(CDKTF), "synth", "--output", str(out)],
        cwd=ROOT,
        env=_cli_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    return result, out


def test_cdktf_cli_synthesizes_every_stack(cli_synth, synth):
    result, out = cli_synth
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Generated Terraform code for the stacks" in result.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert sorted(manifest["stacks"]) == synth.stack_names
    for name, stack in manifest["stacks"].items():
        assert stack["dependencies"] == synth.manifest["stacks"][name]["dependencies"]
        cli_json = (out / stack["synthesizedStackPath"]).read_text()
        assert cli_json == (synth.outdir / stack["synthesizedStackPath"]).read_text(), name


def test_cdktf_cli_refuses_a_broken_config_and_keeps_output(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: helix\ndomain: helixaibot.com\nacme_email: a@b.co\nclutser: {}\n")
    out = tmp_path / "cdktf.out"
    out.mkdir()
    (out / "keep.txt").write_text("previous output")
    result = subprocess.run(
        [str(CDKTF), "synth", "--output", str(out)],
        cwd=ROOT,
        env=_cli_env(HELIX_CONFIG=str(bad)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0
    assert "clutser: unknown key" in result.stdout + result.stderr
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert (out / "keep.txt").read_text() == "previous output"


def test_readme_stack_diagram_matches_the_app(synth):
    readme = (ROOT / "README.md").read_text()
    expected = graph.block(synth.manifest)
    assert expected in readme, "README's stack diagram is stale: run `task graph`"
    # Every dependency edge of the app is drawn.
    for name, stack in synth.manifest["stacks"].items():
        for dep in stack["dependencies"]:
            assert f"  {dep.replace('-', '_')} --> {name.replace('-', '_')}" in expected


def test_readme_lists_every_variable_a_user_must_set(synth):
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Secrets") : readme.index("## Documentation")]
    declared = {name for s in synth.stack_names for name in synth.stack(s).get("variable", {})}
    assert declared, "the app declares no variables at all"
    missing = sorted(name for name in declared if f"`{name}`" not in section)
    assert not missing, f"README's Secrets table does not list: {missing}"
