"""The one line a successful synth ends with: what was written, and what changed since the last synth."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path


def stack_digests(outdir: Path) -> dict[str, str] | None:
    """Stack name -> sha256 of its synthesized JSON in `outdir` (None when there is no previous synth)."""
    try:
        manifest = json.loads((outdir / "manifest.json").read_text())["stacks"]
        return {name: hashlib.sha256((outdir / entry["synthesizedStackPath"]).read_bytes()).hexdigest()
                for name, entry in manifest.items()}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def summary_line(outdir: Path, config_file: str, before: dict[str, str] | None = None) -> str:
    """`synthesized <n> stacks, <m> resources into <outdir> from <config>; <what changed since the last synth>`."""
    manifest = json.loads((outdir / "manifest.json").read_text())["stacks"]
    resources = 0
    for entry in manifest.values():
        doc = json.loads((outdir / entry["synthesizedStackPath"]).read_text())
        resources += sum(len(blocks) for blocks in (doc.get("resource") or {}).values())
    line = f"synthesized {len(manifest)} stacks, {resources} resources into {outdir} from {config_file}"
    if before is None:
        return line
    after = stack_digests(outdir) or {}
    changed = sorted(name for name in after if name in before and before[name] != after[name])
    added = sorted(set(after) - set(before))
    gone = sorted(set(before) - set(after))
    parts = [f"{len(changed)} changed ({', '.join(changed)})" if changed else ""]
    parts += [f"new: {', '.join(added)}" if added else "", f"gone: {', '.join(gone)}" if gone else ""]
    said = "; ".join(p for p in parts if p)
    return f"{line}; since the last synth: {said or 'no stack changed'}"
