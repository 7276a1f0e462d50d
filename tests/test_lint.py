"""Guardrails of the code itself, configured in pyproject.toml: ruff finds nothing, and mypy finds nothing (the
library, which ships py.typed, with mypy's strict flags; the app with its defaults). mypy runs in the
background on the second core (a cold run costs most of a minute; .mypy_cache makes later ones fast)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import background_fixture

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _run(tool: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / tool), *args], cwd=ROOT, capture_output=True, text=True, timeout=900)


@background_fixture("mypy_run", start=1, slow=False)  # incremental: .mypy_cache makes a rerun take seconds
def _mypy_run(tmp_path_factory) -> subprocess.CompletedProcess:
    """mypy over the files and strictness of [tool.mypy] in pyproject.toml."""
    return _run("mypy")


def test_ruff_finds_nothing():
    result = _run("ruff", "check", "--no-cache", ".")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_mypy_finds_nothing(mypy_run):
    assert mypy_run.returncode == 0 and "Success" in mypy_run.stdout, mypy_run.stdout[-4000:] + mypy_run.stderr[-2000:]


def test_the_guardrails_would_catch_a_finding(tmp_path):
    """The two checks above can fail: the same tools on a planted defect report it."""
    bad = tmp_path / "bad.py"
    bad.write_text("import os\n\n\ndef f(x: int) -> str:\n    return x\n")
    ruff = _run("ruff", "check", "--no-cache", "--isolated", "--select", "F401", str(bad))
    assert ruff.returncode != 0 and "F401" in ruff.stdout
    mypy = _run("mypy", "--no-incremental", "--config-file", "/dev/null", str(bad))
    assert mypy.returncode != 0 and "Incompatible return value" in mypy.stdout
