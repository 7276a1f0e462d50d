"""The one line a successful synth ends with: what was written, for whoever ran it."""

from __future__ import annotations

import json
from pathlib import Path


def summary_line(outdir: Path, config_file: str) -> str:
    """`synthesized <n> stacks, <m> resources into <outdir> from <config>` (managed resources, all stacks)."""
    manifest = json.loads((outdir / "manifest.json").read_text())["stacks"]
    resources = 0
    for entry in manifest.values():
        doc = json.loads((outdir / entry["synthesizedStackPath"]).read_text())
        resources += sum(len(blocks) for blocks in (doc.get("resource") or {}).values())
    return f"synthesized {len(manifest)} stacks, {resources} resources into {outdir} from {config_file}"
