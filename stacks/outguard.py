"""An output folder is only ever an output folder: what a synth may write into, one synth at a time, and a swap
that survives being killed half-way.

- `check_target` refuses (before anything is touched) an output path that is the project folder or holds it,
  is or holds or sits in the local state folder, is a file, or is a folder holding anything but an earlier
  synth's output. An earlier output carries MARKER (written by every synth), or is a bare cdktf output
  (manifest.json with stacks, and nothing else at the top).
- `OutputLock` lets one synth at a time write an output folder: `.<name>.lock` next to it, held with flock and
  removed when the synth ends (a killed synth's lock file is free again: the kernel drops the flock).
- `swap_into_place` moves the fresh output into place in two renames (previous aside, fresh in), carrying over
  every entry the synth does not generate (stacks/outdir.py). `recover` finds the leftovers of a swap that
  was killed between or after those renames and puts the previous output back (with what was carried over)
  before a new synth starts.

Plain Python (no jsii).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stacks.outdir import SynthReport

MARKER = ".helix-output"
MARKER_TEXT = '{"project": "helix", "written_by": "stacks/app.py synthesize"}\n'
# What a bare cdktf output holds at its top (an output synthesized before the marker existed).
CDKTF_TOP = {"manifest.json", "stacks"}


class OutputRefused(Exception):
    """A one-line reason why a synth does not write the output folder it was given (exit 2)."""

    @property
    def lines(self) -> list[str]:
        """What the user reads on stderr."""
        return [f"error: {self}"]


class DestroyRefused(OutputRefused):
    """The new output would destroy or replace stateful objects the allow list does not name (tools/guard.py)."""

    def __init__(self, lines: list[str]):
        super().__init__(f"{len(lines)} stateful object(s) would be destroyed or replaced")
        self._lines = lines

    @property
    def lines(self) -> list[str]:
        return [*(f"error: {line}" for line in self._lines), f"{len(self._lines)} stateful object(s) would be lost; nothing was synthesized "
                "(the previous output is unchanged)"]


def _shown(path: Path) -> str:
    return str(path) or "."


def is_earlier_output(folder: Path) -> bool:
    """Whether a folder is an earlier synth's output: it carries MARKER, or it is a bare cdktf output."""
    marker = folder / MARKER
    if marker.is_file() and not marker.is_symlink():
        try:
            return json.loads(marker.read_text(encoding="utf-8")).get("project") == "helix"
        except (OSError, ValueError, AttributeError):
            return False
    try:
        names = set(os.listdir(folder))
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return names <= CDKTF_TOP and isinstance(manifest, dict) and isinstance(manifest.get("stacks"), dict)


def check_target(given: str, project_root: Path, state_dir: str | None) -> Path:
    """The absolute output folder for `given` (CDKTF_OUTDIR or the default), or OutputRefused.

    state_dir is the local backend's folder as configured (relative: the stacks find it from their working
    directory, `<output>/stacks/<stack>/../../..`, so it lives next to the output folder), None for a remote
    backend."""
    if given.strip() == "":
        raise OutputRefused(
            "the output folder is empty text (CDKTF_OUTDIR is set but empty): that is the current folder, "
            "which a synth would replace; unset CDKTF_OUTDIR or give a folder such as cdktf.out"
        )
    outdir = Path(os.path.abspath(given))
    shown = given
    try:
        real = Path(os.path.realpath(outdir, strict=False))
        root = Path(os.path.realpath(project_root))
    except OSError as exc:  # a symlink loop
        raise OutputRefused(f"output folder {shown}: cannot be resolved ({exc.strerror or exc})") from None
    if real == root or root.is_relative_to(real):
        raise OutputRefused(
            f"output folder {shown} is the project folder or holds it: a synth replaces its output folder as a "
            "whole; give a folder of its own such as cdktf.out"
        )
    if state_dir is not None:
        state = Path(os.path.realpath(outdir.parent / state_dir))
        if real == state or state.is_relative_to(real) or real.is_relative_to(state):
            raise OutputRefused(
                f"output folder {shown} is, holds or lies inside the local state folder {state_dir} "
                "(the Terraform state would be deleted by the next synth); give another output folder or move "
                "state.local.dir"
            )
    if outdir.is_symlink() and not outdir.exists():
        raise OutputRefused(f"output folder {shown} is a dangling symbolic link; remove it or give another folder")
    if outdir.exists() and not outdir.is_dir():
        raise OutputRefused(f"output folder {shown} is a file, not a folder; give another folder (nothing was written)")
    if outdir.is_symlink():
        raise OutputRefused(
            f"output folder {shown} is a symbolic link (a synth would replace the link, not its folder); give the "
            "folder it points to"
        )
    if outdir.is_dir():
        try:
            names = sorted(os.listdir(outdir))
        except OSError as exc:
            raise OutputRefused(f"output folder {shown}: cannot be read ({exc.strerror})") from None
        if names and not is_earlier_output(outdir):
            listed = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
            raise OutputRefused(
                f"output folder {shown} holds other things ({listed}) and is no earlier synth's output (no "
                f"{MARKER}, no manifest.json); a synth replaces its output folder as a whole: give an empty or new "
                "folder"
            )
    return outdir


def write_marker(folder: Path) -> None:
    (folder / MARKER).write_text(MARKER_TEXT, encoding="utf-8")


class OutputLock:
    """One synth at a time per output folder: an exclusive flock on `.<name>.lock` next to it."""

    def __init__(self, outdir: Path):
        self.path = outdir.parent / f".{outdir.name}.lock"
        self.shown = outdir
        self.fd: int | None = None

    def __enter__(self) -> OutputLock:
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.EAGAIN, errno.EACCES):
                    raise OutputRefused(
                        f"another synth is writing output folder {self.shown} (it holds {self.path.name}); wait for "
                        "it to finish, or give another folder"
                    ) from None
                raise
            # The holder before us may have removed the file between our open and our flock: lock the file
            # that is there now.
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self.fd = fd
                return self
            os.close(fd)

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
            os.close(self.fd)
            self.fd = None


def staging_path(outdir: Path) -> Path:
    return outdir.parent / f".{outdir.name}.new"


def previous_path(outdir: Path) -> Path:
    return outdir.parent / f".{outdir.name}.old"


def _leftovers(outdir: Path, kind: str) -> list[Path]:
    """Hidden siblings of a swap: `.<name>.new` / `.<name>.old`, and the `-<pid>` ones of earlier versions."""
    prefix = f".{outdir.name}.{kind}"
    try:
        return sorted(p for p in outdir.parent.iterdir() if p.name == prefix or p.name.startswith(prefix + "-"))
    except FileNotFoundError:
        return []


def recover(outdir: Path, shown: str) -> list[str]:
    """Put back what an interrupted swap left aside; return one note per thing done (empty: nothing found).

    Killed between the two renames: the output folder is missing, the previous one is `.<name>.old` and some of
    its carried-over files may already be in `.<name>.new`: they go back, and the previous output returns.
    Killed after the second rename: the new output is in place and `.<name>.old` holds the rest of the previous
    one: whatever of it is not generated moves into the new output, the rest goes. A lone `.<name>.new` is a
    synth that never reached the swap: it is removed."""
    from stacks.outdir import carry_over

    notes = []
    olds = [p for p in _leftovers(outdir, "old") if p.is_dir()]
    news = [p for p in _leftovers(outdir, "new") if p.is_dir()]
    if olds and not outdir.exists():
        previous = olds[-1]
        for staged in news:
            carry_over(staged, previous, shown)
        previous.rename(outdir)
        olds.remove(previous)
        notes.append(
            f"note: restored {shown} from {previous.name}, left by a synth that was stopped while it swapped the "
            "output folder (Terraform's working files included)"
        )
    elif olds:
        for previous in olds:
            carry_over(previous, outdir, shown)
            notes.append(
                f"note: {previous.name}, left by a synth stopped after its swap: what it held beyond generated "
                f"files is now in {shown}"
            )
    for leftover in olds + news:
        if leftover.exists():
            shutil.rmtree(leftover, ignore_errors=True)
            if leftover in news and not notes:
                notes.append(f"note: removed {leftover.name}, an unfinished synth's output")
    return notes


def swap_into_place(staging: Path, outdir: Path, shown: str) -> SynthReport:
    """Previous output aside, carry over what the synth does not generate, fresh output in, previous removed.

    Each step is a rename or a removal of what was carried over; `recover` completes or undoes any prefix of them."""
    from stacks.outdir import carry_over

    previous = previous_path(outdir)
    write_marker(staging)
    if outdir.exists():
        try:
            outdir.rename(previous)
        except OSError:  # an immutable or read-only output folder: it stays as it was, and so does the folder above
            shutil.rmtree(staging, ignore_errors=True)
            raise
    try:
        report = carry_over(previous, staging, shown)
    except BaseException:
        carry_over(staging, previous, shown)
        previous.rename(outdir)
        shutil.rmtree(staging, ignore_errors=True)
        raise
    staging.rename(outdir)
    shutil.rmtree(previous, ignore_errors=True)
    return report
