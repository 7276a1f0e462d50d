"""Shared fixtures: the full app is synthesized once per test session, and every test reads that output."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
os.environ.setdefault("CHECKPOINT_DISABLE", "1")
os.environ.setdefault("DISABLE_VERSION_CHECK", "1")


class Synth:
    """A synthesized app on disk, with helpers to read its stacks."""

    def __init__(self, outdir: Path):
        self.outdir = outdir
        self.manifest = json.loads((outdir / "manifest.json").read_text())
        self._stacks: dict[str, dict] = {}

    @property
    def stack_names(self) -> list[str]:
        return sorted(self.manifest["stacks"])

    def stack(self, name: str) -> dict:
        if name not in self._stacks:
            path = self.outdir / self.manifest["stacks"][name]["synthesizedStackPath"]
            self._stacks[name] = json.loads(path.read_text())
        return self._stacks[name]

    def stack_dir(self, name: str) -> Path:
        return self.outdir / self.manifest["stacks"][name]["workingDirectory"]

    def resources(self, name: str, rtype: str) -> dict[str, dict]:
        return self.stack(name).get("resource", {}).get(rtype, {})

    def all_resources(self, rtype: str) -> dict[tuple[str, str], dict]:
        return {(s, k): v for s in self.stack_names for k, v in self.resources(s, rtype).items()}

    def releases(self) -> dict[str, tuple[str, dict]]:
        """Helm releases by release name: (stack, resource)."""
        return {r["name"]: (s, r) for (s, _), r in self.all_resources("helm_release").items()}


@pytest.fixture(scope="session")
def settings():
    from stacks.load import load_settings

    return load_settings(ROOT / "config" / "helix.yaml")


@pytest.fixture(scope="session")
def synth(settings, tmp_path_factory) -> Synth:
    """The default config, synthesized once through the same path `python main.py` takes."""
    from stacks.app import synthesize

    outdir = tmp_path_factory.mktemp("synth") / "cdktf.out"
    synthesize(settings, outdir)
    return Synth(outdir)
