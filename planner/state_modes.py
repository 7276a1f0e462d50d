"""The local state folder owner-only: every synth does it, the no-op synth of main.py too, so this module imports
nothing but the standard library (planner/validate.py re-exports it with the other checks)."""

from __future__ import annotations

import os
import stat
from pathlib import Path


def secure_state_folder(folder: Path) -> list[str]:
    """Make the local state folder 0700 and its state files 0600 (state holds every secret Terraform created).
    Returns one line per change. A folder that does not exist yet is left to Terraform (fixed on the next synth).
    Never follows a symbolic link."""
    changes: list[str] = []
    if folder.is_symlink() or not folder.is_dir():
        return changes
    mode = stat.S_IMODE(folder.stat().st_mode)
    if mode != 0o700:
        os.chmod(folder, 0o700)
        changes.append(f"{folder}: mode {mode:04o} -> 0700")
    # Only Terraform's state files (<stack>.tfstate, .backup, lock info): a folder the user shares with other
    # files keeps their modes.
    for path in sorted(folder.rglob("*.tfstate*")):
        if path.is_symlink() or not path.is_file():
            continue
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode != 0o600:
            os.chmod(path, 0o600)
            changes.append(f"{path}: mode {mode:04o} -> 0600")
    return changes
