"""The synth cache (stacks/synth_cache.py): unchanged inputs reuse the previous output; any changed input synthesizes.

The key's tests run without jsii: each class of input is changed in turn on a copy of the project and must change
the key. The end-to-end test runs `python -O main.py` twice on a fixture config: the second run reuses the first's
output, quickly, and that output is byte-identical to a fresh in-process synth of the same config.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from stacks import synth_cache
from stacks.synth_cache import STAMP, input_key, reusable, write_stamp
from tests.conftest import background_fixture

ROOT = Path(__file__).resolve().parent.parent
DESCRIPTION_CONFIG = ROOT / "tests" / "fixtures" / "description" / "helix.yaml"


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    """A copy of what the key reads of the project: its source and its data files."""
    copy = tmp_path / "project"
    for name in synth_cache.SOURCE_FOLDERS:
        shutil.copytree(ROOT / name, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "config", copy / "config")
    for name in synth_cache.SOURCE_FILES:
        shutil.copy(ROOT / name, copy / name)
    (copy / "config" / "helix.yaml").write_bytes(DESCRIPTION_CONFIG.read_bytes())
    return copy


def key(project: Path, **env: str) -> str:
    base = {"PATH": os.environ.get("PATH", ""), "HOME": "/nonexistent"}
    return input_key({**base, **env}, root=project)


def test_the_key_is_stable_and_ignores_what_the_synth_does_not_read(project: Path) -> None:
    first = key(project)
    assert key(project) == first
    # Variables the synth does not read, and the cache's own switch, leave the key alone.
    assert key(project, HOME="/elsewhere", TF_VAR_ssh_user="ops", HELIX_SYNTH_CACHE="1") == first
    # Byte-compiled files are not source.
    (project / "planner" / "__pycache__").mkdir(exist_ok=True)
    (project / "planner" / "__pycache__" / "x.pyc").write_bytes(b"\0")
    assert key(project) == first


@pytest.mark.parametrize(
    "change",
    [
        "cluster file",
        "catalog file",
        "manifest file",
        "new data file",
        "HELIX_ variable",
        "CDKTF_ variable",
        "JSII_ variable",
        "planner source",
        "stacks source",
        "library source",
        "main.py",
        "cdktf.json",
        "HELIX_CONFIG elsewhere",
    ],
)
def test_each_input_changes_the_key(project: Path, tmp_path: Path, change: str) -> None:
    before = key(project)
    env: dict[str, str] = {}

    def append(path: Path, text: str) -> None:
        path.write_text(path.read_text() + text)

    if change == "cluster file":
        append(project / "config" / "helix.yaml", "\n# a comment is an edit too\n")
    elif change == "catalog file":
        append(sorted((project / "config" / "catalog").glob("*.yaml"))[0], "\n# edited\n")
    elif change == "manifest file":
        manifest = sorted((project / "config" / "manifests").rglob("*.yaml"))[0]
        append(manifest, "\n# edited\n")
    elif change == "new data file":
        (project / "config" / "catalog" / "extra.yaml").write_text("{}\n")
    elif change == "HELIX_ variable":
        env["HELIX_CATALOG_DIR"] = str(project / "config" / "catalog")
    elif change == "CDKTF_ variable":
        env["CDKTF_CONTEXT_JSON"] = "{}"
    elif change == "JSII_ variable":
        env["JSII_RUNTIME_PACKAGE_CACHE"] = "disabled"
    elif change == "planner source":
        append(project / "planner" / "resolve.py", "\n# edited\n")
    elif change == "stacks source":
        append(project / "stacks" / "platform.py", "\n# edited\n")
    elif change == "library source":
        append(project / "constructs_lib" / "addons.py", "\n# edited\n")
    elif change in ("main.py", "cdktf.json"):
        append(project / change, "\n")
    elif change == "HELIX_CONFIG elsewhere":
        other = tmp_path / "other.yaml"
        other.write_text((project / "config" / "helix.yaml").read_text().replace("domain:", "domain:", 1) + "\n")
        env["HELIX_CONFIG"] = str(other)
    assert key(project, **env) != before, change


def test_installed_packages_python_and_node_are_inputs(project: Path, tmp_path: Path, monkeypatch) -> None:
    site = tmp_path / "lib" / "site-packages"
    (site / "cdktf-0.21.0.dist-info").mkdir(parents=True)
    monkeypatch.setattr(sys, "path", [*sys.path, str(site)])
    node = tmp_path / "node"
    node.write_bytes(b"node 22")
    before = key(project, JSII_NODE=str(node))

    (site / "cdktf-0.21.0.dist-info").rename(site / "cdktf-0.21.1.dist-info")
    upgraded = key(project, JSII_NODE=str(node))
    assert upgraded != before

    node.write_bytes(b"node 22, another build")
    other_node = key(project, JSII_NODE=str(node))
    assert other_node != upgraded

    monkeypatch.setattr(sys, "version", sys.version + " (another build)")
    assert key(project, JSII_NODE=str(node)) != other_node


def _fake_output(outdir: Path) -> None:
    (outdir / "stacks" / "nodes").mkdir(parents=True)
    (outdir / "manifest.json").write_text(json.dumps({"stacks": {"nodes": {}}}))
    (outdir / "stacks" / "nodes" / "cdk.tf.json").write_text("{}")


def test_a_stamped_output_is_reused_only_while_every_generated_file_is_intact(tmp_path: Path) -> None:
    outdir = tmp_path / "cdktf.out"
    _fake_output(outdir)
    assert reusable(outdir, "k") is None  # no stamp: never synthesized by this app
    write_stamp(outdir, "k")
    assert reusable(outdir, "k") == 1
    assert reusable(outdir, "another key") is None
    # Terraform's own files in a stack folder are not generated: they don't matter.
    (outdir / "stacks" / "nodes" / ".terraform").mkdir()
    (outdir / "stacks" / "nodes" / ".terraform.lock.hcl").write_text("lock")
    assert reusable(outdir, "k") == 1
    # A generated file edited by hand, or deleted: synthesize again.
    stack = outdir / "stacks" / "nodes" / "cdk.tf.json"
    stack.write_text('{"edited": true}')
    assert reusable(outdir, "k") is None
    stack.unlink()
    assert reusable(outdir, "k") is None
    # A broken stamp is no stamp.
    (outdir / STAMP).write_text("{not json")
    assert reusable(outdir, "k") is None


def _generated(outdir: Path) -> dict[str, bytes]:
    return {
        p.relative_to(outdir).as_posix(): p.read_bytes()
        for p in sorted(outdir.rglob("*"))
        if p.is_file() and p.name != STAMP
    }


@dataclass
class TwoRuns:
    first: subprocess.CompletedProcess
    fresh: dict[str, bytes]
    second: subprocess.CompletedProcess
    second_wall_s: float
    after: dict[str, bytes]


@background_fixture("twice_through_main", start=2)
def _twice_through_main(tmp_path_factory) -> TwoRuns:
    """`python -O main.py` twice on the description's config, in another process on the second core."""
    outdir = tmp_path_factory.mktemp("synth-cache") / "cdktf.out"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HELIX_", "CDKTF_"))}
    env.update(HELIX_CONFIG=str(DESCRIPTION_CONFIG), CDKTF_OUTDIR=str(outdir))
    run = [sys.executable, "-O", str(ROOT / "main.py")]
    first = subprocess.run(run, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    fresh = _generated(outdir)
    started = time.perf_counter()
    second = subprocess.run(run, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    return TwoRuns(first, fresh, second, time.perf_counter() - started, _generated(outdir))


def test_main_reuses_an_unchanged_synth_byte_for_byte(twice_through_main: TwoRuns, description_synth) -> None:
    """The first run synthesizes in full; the second reuses it without loading pydantic or jsii."""
    runs = twice_through_main
    assert runs.first.returncode == 0, runs.first.stderr[-2000:]
    assert "up to date" not in runs.first.stderr
    # The full synth through main.py is the in-process synth of the same config, file for file.
    assert runs.fresh == _generated(description_synth.outdir)
    assert runs.second.returncode == 0, runs.second.stderr[-2000:]
    assert "up to date" in runs.second.stderr, runs.second.stderr
    assert runs.after == runs.fresh
    # What the first run warned about every time, the second says again.
    warned = [line for line in runs.first.stderr.splitlines() if line.startswith("warning:")]
    assert all(line in runs.second.stderr for line in warned)
    # Well under the half second of the target even on a busy machine (a full synth takes several seconds).
    assert runs.second_wall_s < 2.0, runs.second_wall_s


def test_the_cache_can_be_switched_off() -> None:
    assert synth_cache.enabled({})
    assert synth_cache.enabled({"HELIX_SYNTH_CACHE": "1"})
    assert not synth_cache.enabled({"HELIX_SYNTH_CACHE": "0"})


def test_a_reused_output_repeats_what_every_synth_does(tmp_path: Path, capsys) -> None:
    """The host-key waiver's warning comes again, and the local state folder is made owner-only again."""
    outdir = tmp_path / "cdktf.out"
    _fake_output(outdir)
    warning = "warning: helix.yaml: cluster.ssh.insecure_ignore_host_keys is true and 1 node(s) have no host_key"
    write_stamp(outdir, "k", {"warnings": [warning], "state_dir": "state"})
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    (state / "nodes.tfstate").write_text("{}")
    (state / "nodes.tfstate").chmod(0o644)

    assert not synth_cache.reuse(outdir, "another key", root=tmp_path)
    assert capsys.readouterr().err == ""
    assert synth_cache.reuse(outdir, "k", root=tmp_path)
    err = capsys.readouterr().err
    assert warning in err and "up to date, 1 stacks" in err
    assert (state.stat().st_mode & 0o777, (state / "nodes.tfstate").stat().st_mode & 0o777) == (0o700, 0o600)
    assert "nodes.tfstate: mode 0644 -> 0600" in err


def test_the_key_never_blocks_on_a_fifo_or_streams_a_device(project: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "helix.yaml"
    os.mkfifo(fifo)
    started = time.perf_counter()
    first = key(project, HELIX_CONFIG=str(fifo))
    assert key(project, HELIX_CONFIG="/dev/zero") != first
    assert time.perf_counter() - started < 5
