"""What a synth carries over from the previous output folder, and what it tells the user about it.

Terraform keeps its working files in each stack's folder: `.terraform/` (the initialized backend, providers and
modules), `.terraform.lock.hcl` (provider checksums), and the user's tfvars, saved plans and workspace state.
Stock cdktf keeps existing stack folders; this app swaps a freshly synthesized folder into place, so it moves
every entry it does not generate into the new folder first. Without them
`terraform init` has no record of the previous backend: after a backend change it would start on empty state
instead of offering to migrate it.

Plain Python (no jsii): tools/review.py uses the backend helpers too.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

# Terraform's own files in a working directory. They are never synthesized, so a new output has none of them.
TERRAFORM_FILES = (".terraform", ".terraform.lock.hcl", "terraform.tfstate", "terraform.tfstate.backup")
# What a synth writes into a stack's folder and at the top of the output folder. Everything else there is the
# user's or Terraform's (.terraform/, lock files, terraform.tfvars, saved plans, terraform.tfstate.d/ of
# workspaces, ...) and is carried over into the new output.
GENERATED_IN_STACK = frozenset({"cdk.tf.json", "assets"})
# (.helix-synth.json: the synth cache's stamp, stacks/synth_cache.py)
GENERATED_AT_TOP = frozenset({"manifest.json", "stacks", ".helix-output", ".helix-synth.json"})


def kept_entries(old_dir: Path, new_dir: Path | None) -> list[str]:
    """Names in an old stack folder that the synth does not generate (and the new folder does not hold)."""
    try:
        names = sorted(p.name for p in old_dir.iterdir())
    except OSError:
        return []
    generated = set(GENERATED_IN_STACK)
    if new_dir is not None and new_dir.is_dir():
        generated |= {p.name for p in new_dir.iterdir()}
    return [n for n in names if n not in generated]


def migrate_command(stack_dir: str) -> str:
    return f"cd {stack_dir} && terraform init -migrate-state"


def backend_of(document: dict) -> dict | None:
    """{type: settings} of a synthesized stack's backend, or None (Terraform's implicit local backend)."""
    backend = (document.get("terraform") or {}).get("backend") or {}
    if not backend:
        return None
    (kind, settings), *_ = backend.items()
    return {kind: settings or {}}


def describe_backend(backend: dict | None) -> str:
    """`s3 (bucket=helix-state, key=helix/nodes.tfstate)`: type and the settings that locate the state."""
    if not backend:
        return "local (terraform.tfstate in the stack folder)"
    (kind, settings), *_ = backend.items()
    located = [
        f"{k}={settings[k]}"
        for k in ("path", "bucket", "key", "region", "organization", "conn_str", "schema_name", "workspace_dir")
        if settings.get(k) not in (None, "")
    ]
    workspaces = settings.get("workspaces")
    if isinstance(workspaces, dict) and workspaces.get("name"):
        located.append(f"workspace={workspaces['name']}")
    return f"{kind} ({', '.join(located)})" if located else kind


def initialized_backend(stack_dir: Path) -> dict | None:
    """The backend `terraform init` last recorded in stack_dir/.terraform, or None when it was never initialized."""
    path = stack_dir / ".terraform" / "terraform.tfstate"
    try:
        recorded = json.loads(path.read_text()).get("backend") or {}
    except (OSError, ValueError):
        return None
    if not recorded.get("type"):
        return None
    settings = {k: v for k, v in (recorded.get("config") or {}).items() if v is not None}
    return {recorded["type"]: settings}


def same_backend(recorded: dict | None, wanted: dict | None) -> bool:
    """Whether a backend Terraform recorded (every setting, unset ones dropped) is the one now synthesized."""
    recorded = recorded or {"local": {}}
    wanted = wanted or {"local": {}}
    (kind_a, a), (kind_b, b) = next(iter(recorded.items())), next(iter(wanted.items()))
    if kind_a != kind_b:
        return False
    return all(a.get(k) == v for k, v in b.items() if v is not None)


@dataclass(frozen=True)
class BackendChange:
    stack: str
    before: dict | None
    after: dict | None
    stack_dir: str  # as the user would cd into it
    initialized: bool  # the stack's folder holds a `terraform init` of the previous backend

    def message(self) -> str:
        where = (
            f"{self.stack_dir}/.terraform still points at the old backend"
            if self.initialized
            else "this checkout never ran `terraform init` for it"
        )
        return (
            f"stack {self.stack}: the state backend changes from {describe_backend(self.before)} to "
            f"{describe_backend(self.after)} ({where}). Move the state before any plan or deploy: "
            f"{migrate_command(self.stack_dir)}"
        )


@dataclass
class SynthReport:
    """What a synth did to the previous output, beyond replacing it."""

    kept: list[str] = field(default_factory=list)  # stacks whose Terraform working files were carried over
    stacks_removed: list[str] = field(default_factory=list)  # stacks the app no longer has
    folders_kept: list[str] = field(default_factory=list)  # of those, the ones whose Terraform folder is kept
    backend_changes: list[BackendChange] = field(default_factory=list)
    outdir: str = "cdktf.out"

    def lines(self) -> list[str]:
        out = [f"warning: {change.message()}" for change in self.backend_changes]
        for name in self.stacks_removed:
            if name in self.folders_kept:
                where = f"its Terraform folder {self.outdir}/stacks/{name} is kept"
            else:
                where = "this checkout holds no `terraform init` of it"
            out.append(
                f"warning: stack {name} is no longer in the app ({where}); if it was deployed, its resources still "
                f"exist in its state: destroy them from the previous revision (`cdktf destroy {name}`) or move "
                "them, then delete the folder."
            )
        return out


def read_stacks(outdir: Path) -> dict[str, dict]:
    """Each stack's synthesized JSON by name; empty when the folder holds no output (a broken stack: {})."""
    return {name: document for name, (_, document) in _stack_dirs(outdir).items()}


def _stack_dirs(outdir: Path) -> dict[str, tuple[Path, dict]]:
    """name -> (working directory, synthesized JSON) of an output folder's stacks, from its manifest."""
    try:
        manifest = json.loads((outdir / "manifest.json").read_text())
        stacks = manifest["stacks"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    out = {}
    for name, entry in stacks.items():
        try:
            document = json.loads((outdir / entry["synthesizedStackPath"]).read_text())
        except (OSError, ValueError, KeyError, TypeError):
            document = {}
        out[name] = (outdir / entry.get("workingDirectory", f"stacks/{name}"), document)
    return out


def carry_over(previous: Path, staging: Path, shown: str) -> SynthReport:
    """Move Terraform's working files of each stack from the previous output into the freshly synthesized one,
    keep the folders of stacks that disappeared, and name every backend change. `shown` is how the user refers
    to the output folder (for the commands printed)."""
    report = SynthReport(outdir=shown)
    if not previous.is_dir():
        return report
    new = _stack_dirs(staging)
    old = _stack_dirs(previous)
    old_dirs = {name: d for name, (d, _) in old.items()}
    stacks_root = previous / "stacks"
    if stacks_root.is_dir():  # folders kept from earlier synths are in no manifest
        for d in stacks_root.iterdir():
            if d.is_dir():
                old_dirs.setdefault(d.name, d)
    for entry in sorted(previous.iterdir()):  # the user's files next to the stacks
        if entry.name not in GENERATED_AT_TOP and not (staging / entry.name).exists():
            entry.rename(staging / entry.name)
    for name, old_dir in sorted(old_dirs.items()):
        if name not in new:
            if kept_entries(old_dir, None):
                target = staging / "stacks" / name
                target.parent.mkdir(parents=True, exist_ok=True)
                if not target.exists():
                    old_dir.rename(target)
                    report.folders_kept.append(name)
                    report.stacks_removed.append(name)
            elif name in old:
                report.stacks_removed.append(name)
            continue
        new_dir, document = new[name]
        moved = False
        if old_dir.is_dir() and not new_dir.exists():  # moved back whole (stacks.outguard.recover)
            new_dir.parent.mkdir(parents=True, exist_ok=True)
            old_dir.rename(new_dir)
            moved = True
        for f in kept_entries(old_dir, new_dir):
            new_dir.mkdir(parents=True, exist_ok=True)
            (old_dir / f).rename(new_dir / f)
            moved = True
        if moved:
            report.kept.append(name)
        after = backend_of(document)
        recorded = initialized_backend(new_dir)
        before: dict | None
        if recorded is not None:
            before, initialized = recorded, True
        else:
            before, initialized = backend_of(old.get(name, (None, {}))[1]), False
            if name not in old:
                continue
        if not same_backend(before, after):
            relative = new_dir.relative_to(staging).as_posix()
            report.backend_changes.append(BackendChange(name, before, after, f"{shown}/{relative}", initialized))
    return report


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def standing_warnings(outdir: Path, shown: str) -> SynthReport:
    """What still needs the user's hand in an output folder that a synth reuses unchanged (stacks/synth_cache.py):
    a stack whose `.terraform` was initialized with another backend than the one synthesized, and the kept folders
    of stacks the app no longer has. A full synth reports the same through carry_over; read-only."""
    report = SynthReport(outdir=shown)
    current = _stack_dirs(outdir)
    for name, (stack_dir, document) in sorted(current.items()):
        recorded = initialized_backend(stack_dir)
        after = backend_of(document)
        if recorded is not None and not same_backend(recorded, after):
            relative = stack_dir.relative_to(outdir).as_posix()
            report.backend_changes.append(BackendChange(name, recorded, after, f"{shown}/{relative}", True))
    stacks_root = outdir / "stacks"
    if stacks_root.is_dir():
        for d in sorted(stacks_root.iterdir()):
            if d.is_dir() and d.name not in current and any((d / f).exists() for f in TERRAFORM_FILES):
                report.stacks_removed.append(d.name)
                report.folders_kept.append(d.name)
    return report
