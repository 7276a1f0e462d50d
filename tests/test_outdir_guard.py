"""An output folder is only ever an output folder (stacks/outguard.py): refusals before anything is touched,
one synth at a time, a swap that survives a kill, and every file Terraform keeps in a stack folder survives.

The synth itself is replaced by a stand-in app (no jsii): what is tested is the folder handling around it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

# Imported first: on code without the guard this test module fails here, before a synth could replace the project
# folder (what CDKTF_OUTDIR=<project> did).
from stacks.outguard import OutputLock, OutputRefused, check_target, recover

ROOT = Path(__file__).resolve().parent.parent
CONFIG = "tests/fixtures/description/helix.yaml"

HOST_KEY_WAIVER = "cluster.ssh.insecure_ignore_host_keys is true"


def tree(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): (b"<dir>" if p.is_dir() else p.read_bytes())
        for p in sorted(folder.rglob("*"))
    }


class StandInApp:
    """Writes what cdktf writes: manifest.json and one folder per stack with its cdk.tf.json."""

    def __init__(self, staging: str, stacks=("nodes", "data")):
        self.staging = Path(staging)
        self.stacks = stacks
        StandInApp.built += 1

    built = 0

    def synth(self):
        manifest = {"version": "stand-in", "stacks": {}}
        for name in self.stacks:
            folder = self.staging / "stacks" / name
            folder.mkdir(parents=True)
            (folder / "cdk.tf.json").write_text(json.dumps({"new": name}))
            manifest["stacks"][name] = {
                "synthesizedStackPath": f"stacks/{name}/cdk.tf.json",
                "workingDirectory": f"stacks/{name}",
            }
        (self.staging / "manifest.json").write_text(json.dumps(manifest))


@pytest.fixture
def stand_in(monkeypatch):
    import stacks.app as app_module

    StandInApp.built = 0
    monkeypatch.setattr(app_module, "build_app", lambda plan, outdir: StandInApp(outdir))
    return app_module


@pytest.fixture
def run_main(stand_in, monkeypatch, capsys):
    """stacks.app.main() with CDKTF_OUTDIR as given: (exit status, stderr lines)."""

    def run(outdir: str, cwd: Path = ROOT) -> tuple[int, list[str]]:
        for name in [k for k in os.environ if k.startswith("HELIX_")]:
            monkeypatch.delenv(name)
        monkeypatch.setenv("HELIX_CONFIG", str(ROOT / CONFIG))
        monkeypatch.setenv("CDKTF_OUTDIR", outdir)
        monkeypatch.chdir(cwd)
        capsys.readouterr()
        code = stand_in.main()
        # The fixture waives host keys, so every synth warns about that first (planner/validate.py): not counted.
        return code, [line for line in capsys.readouterr().err.splitlines() if HOST_KEY_WAIVER not in line]

    return run


def previous_output(outdir: Path) -> None:
    """An earlier synth's output with everything Terraform keeps in a stack folder."""
    files = {
        "manifest.json": json.dumps({"version": "old", "stacks": {
            "nodes": {"synthesizedStackPath": "stacks/nodes/cdk.tf.json", "workingDirectory": "stacks/nodes"},
            "data": {"synthesizedStackPath": "stacks/data/cdk.tf.json", "workingDirectory": "stacks/data"},
        }}),
        "stacks/nodes/cdk.tf.json": "{}",
        "stacks/nodes/.terraform/terraform.tfstate": '{"backend": {"type": "local", "config": {}}}',
        "stacks/nodes/.terraform.lock.hcl": "# lock",
        "stacks/nodes/terraform.tfvars": 'ssh_user = "ops"',
        "stacks/nodes/saved.tfplan": "PLAN",
        "stacks/nodes/terraform.tfstate.d/staging/terraform.tfstate": '{"serial": 7}',
        "stacks/data/cdk.tf.json": "{}",
        "stacks/data/terraform.tfstate": '{"serial": 3}',
    }
    for name, text in files.items():
        (outdir / name).parent.mkdir(parents=True, exist_ok=True)
        (outdir / name).write_text(text)


# --- refused before anything is touched ------------------------------------------------------------------


def test_empty_outdir_is_refused(run_main, tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    before = tree(tmp_path)
    code, err = run_main("", cwd=tmp_path)
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ") and "empty" in err[0]
    assert StandInApp.built == 0 and tree(tmp_path) == before


def test_project_root_is_refused(run_main):
    code, err = run_main(str(ROOT))
    assert code == 2 and len(err) == 1 and "project folder" in err[0]
    code, err = run_main(".")
    assert code == 2 and "project folder" in err[0]
    code, err = run_main(str(ROOT.parent))  # a folder holding the project
    assert code == 2 and "project folder" in err[0]
    assert StandInApp.built == 0
    assert not [p for p in ROOT.parent.iterdir() if p.name.startswith(f".{ROOT.name}.")]


def test_state_folder_is_refused(run_main, tmp_path):
    # The description's config keeps local state in `state` next to the output folder.
    state = tmp_path / "state"
    state.mkdir()
    (state / "nodes.tfstate").write_text('{"serial": 1}')
    before = tree(tmp_path)
    for given in (str(state), str(state) + "/"):
        code, err = run_main(given)
        assert code == 2 and len(err) == 1 and "state folder" in err[0], err
    assert StandInApp.built == 0 and tree(tmp_path) == before


def test_output_holding_the_state_folder_is_refused(stand_in, tmp_path):

    with pytest.raises(OutputRefused, match="state folder"):
        check_target(str(tmp_path / "cdktf.out"), ROOT, "cdktf.out/state")
    with pytest.raises(OutputRefused, match="state folder"):
        check_target(str(tmp_path / "state"), ROOT, "state/nodes")
    check_target(str(tmp_path / "cdktf.out"), ROOT, "state")  # next to it: fine


def test_file_is_refused(run_main, tmp_path):
    target = tmp_path / "cdktf.out"
    target.write_text("a file")
    code, err = run_main(str(target))
    assert code == 2 and len(err) == 1 and "is a file" in err[0]
    assert StandInApp.built == 0 and sorted(p.name for p in tmp_path.iterdir()) == ["cdktf.out"]
    assert target.read_text() == "a file"


def test_folder_holding_other_things_is_refused(run_main, tmp_path):
    target = tmp_path / "docs"
    (target / "sub").mkdir(parents=True)
    (target / "notes.md").write_text("mine")
    before = tree(tmp_path)
    code, err = run_main(str(target))
    assert code == 2 and len(err) == 1 and "holds other things" in err[0] and "notes.md" in err[0]
    assert StandInApp.built == 0 and tree(tmp_path) == before


def test_empty_absent_and_earlier_outputs_are_accepted(run_main, tmp_path):
    for name in ("absent", "empty", "earlier"):
        target = tmp_path / name
        if name == "empty":
            target.mkdir()
        if name == "earlier":
            previous_output(target)
        code, err = run_main(str(target))
        assert code == 0, err
        assert (target / ".helix-output").is_file() and (target / "manifest.json").is_file()
    # Marked by a synth: a file the user puts next to the stacks does not make it "other things".
    (tmp_path / "earlier" / "review.md").write_text("mine")
    code, err = run_main(str(tmp_path / "earlier"))
    assert code == 0, err
    assert (tmp_path / "earlier" / "review.md").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["absent", "earlier", "empty"]


# --- everything Terraform keeps survives ------------------------------------------------------------------


def test_every_file_terraform_keeps_survives_a_synth(run_main, tmp_path):
    outdir = tmp_path / "cdktf.out"
    previous_output(outdir)
    before = tree(outdir)
    code, err = run_main(str(outdir))
    assert code == 0, err
    after = tree(outdir)
    kept = [n for n in before if not n.endswith("cdk.tf.json") and n != "manifest.json"]
    for name in kept:
        assert after.get(name) == before[name], name
    assert json.loads(after["stacks/nodes/cdk.tf.json"]) == {"new": "nodes"}


# --- one synth at a time ----------------------------------------------------------------------------------


def test_second_synth_into_the_same_folder_is_refused(run_main, tmp_path):

    outdir = tmp_path / "cdktf.out"
    previous_output(outdir)
    before = tree(outdir)
    with OutputLock(outdir.absolute()):
        code, err = run_main(str(outdir))
        assert code == 2 and len(err) == 1 and "another synth is writing" in err[0]
        assert StandInApp.built == 0 and tree(outdir) == before
    code, err = run_main(str(outdir))
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cdktf.out"]  # the lock file goes with its synth


# --- a swap killed half-way -------------------------------------------------------------------------------

KILLED_SWAP = textwrap.dedent(
    """
    import json, os, signal, sys
    from pathlib import Path
    sys.path.insert(0, {root!r})
    import stacks.outdir as outdir_module
    from stacks import outguard

    outdir = Path({outdir!r})
    staging = outguard.staging_path(outdir)
    (staging / "stacks" / "nodes").mkdir(parents=True)
    (staging / "stacks" / "nodes" / "cdk.tf.json").write_text('{{"new": "nodes"}}')
    (staging / "manifest.json").write_text(json.dumps({{"stacks": {{"nodes": {{
        "synthesizedStackPath": "stacks/nodes/cdk.tf.json", "workingDirectory": "stacks/nodes"}}}}}}))
    real = outdir_module.carry_over

    def carry_then_die(previous, new, shown):
        real(previous, new, shown)  # the working files are in the fresh output now
        os.kill(os.getpid(), signal.SIGKILL)  # between the two renames

    outdir_module.carry_over = carry_then_die
    outguard.swap_into_place(staging, outdir, "cdktf.out")
    """
)


def test_a_swap_killed_between_the_renames_is_restored(run_main, tmp_path):
    outdir = tmp_path / "cdktf.out"
    previous_output(outdir)
    (outdir / ".helix-output").write_text('{"project": "helix"}\n')
    before = tree(outdir)
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_SWAP.format(root=str(ROOT), outdir=str(outdir))], capture_output=True, text=True
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert not outdir.exists()  # the state the kill leaves: the output aside, its working files in the new one
    assert (tmp_path / ".cdktf.out.new" / "stacks" / "nodes" / ".terraform").is_dir()


    notes = recover(outdir.absolute(), "cdktf.out")
    assert len(notes) == 1 and "restored cdktf.out" in notes[0]
    assert tree(outdir) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cdktf.out"]


def test_a_synth_after_a_killed_swap_says_so_and_keeps_the_working_files(run_main, tmp_path):
    outdir = tmp_path / "cdktf.out"
    previous_output(outdir)
    before = tree(outdir)
    subprocess.run([sys.executable, "-c", KILLED_SWAP.format(root=str(ROOT), outdir=str(outdir))], capture_output=True)
    assert not outdir.exists()
    code, err = run_main(str(outdir))
    assert code == 0, err
    assert any(line.startswith("note: restored") for line in err), err
    after = tree(outdir)
    for name in ("stacks/nodes/.terraform/terraform.tfstate", "stacks/nodes/terraform.tfvars",
                 "stacks/nodes/terraform.tfstate.d/staging/terraform.tfstate", "stacks/data/terraform.tfstate"):
        assert after[name] == before[name], name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cdktf.out"]


def test_a_swap_killed_after_the_renames_is_completed(tmp_path):

    outdir = tmp_path / "cdktf.out"
    previous_output(outdir)
    old = tmp_path / ".cdktf.out.old"
    old.mkdir()
    (old / "stacks" / "data").mkdir(parents=True)
    (old / "stacks" / "data" / "saved.tfplan").write_text("left behind")
    (outdir / "stacks" / "data" / "saved.tfplan").unlink(missing_ok=True)
    notes = recover(outdir, "cdktf.out")
    assert notes and (outdir / "stacks" / "data" / "saved.tfplan").read_text() == "left behind"
    assert not old.exists()


def test_unwritable_output_is_one_line_and_exit_1(run_main, stand_in, monkeypatch, tmp_path):
    """A read-only or full file system (EROFS, ENOSPC) while the synth writes: one line, exit 1, no traceback,
    and the previous output as it was."""
    import errno

    outdir = tmp_path / "cdktf.out"
    previous_output(outdir)
    before = tree(outdir)

    class FullDisk:
        def __init__(self, staging: str):
            self.staging = Path(staging)

        def synth(self):
            self.staging.mkdir()
            raise OSError(errno.ENOSPC, "No space left on device", str(self.staging / "manifest.json"))

    monkeypatch.setattr(stand_in, "build_app", lambda plan, o: FullDisk(o))
    code, err = run_main(str(outdir))
    assert code == 1 and len(err) == 1 and "No space left on device" in err[0] and "unchanged" in err[0]
    assert tree(outdir) == before and sorted(p.name for p in tmp_path.iterdir()) == ["cdktf.out"]
