"""`task outdated` (tools/outdated.py): offline from a chart folder, the newest version each chart index knows, what
the compatibility matrix says of it, and what could not be checked."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT
from tools import outdated
from tools.verify.charts import repository_key

FIXTURES = ROOT / "tests" / "fixtures" / "renovate"
AUTOSCALER_REPO = "https://charts.example.org/autoscaler"


def _index(entries: dict[str, list[tuple[str, str]]]) -> str:
    return yaml.safe_dump({"apiVersion": "v1", "entries": {
        chart: [{"name": chart, "version": v, **({"kubeVersion": k} if k else {})} for v, k in versions]
        for chart, versions in entries.items()}})


@pytest.fixture
def project(tmp_path) -> tuple[Path, Path, Path]:
    """A project with the fixture catalog only, a cluster file on k3s 1.35, and a chart folder with one index."""
    root = tmp_path / "project"
    (root / "config" / "catalog").mkdir(parents=True)
    shutil.copy(FIXTURES / "other-fields-between.yaml", root / "config" / "catalog" / "example.yaml")
    (root / "config" / "catalog" / "elsewhere.yaml").write_text(
        "example-elsewhere:\n  layer: foundation\n  repository: https://charts.example.net/x\n  chart: x\n"
        "  version: 1.0.0\n"
    )
    config = tmp_path / "cluster.yaml"
    config.write_text("cluster:\n  k3s_version: v1.35.2+k3s1\n")
    charts = tmp_path / "charts"
    (charts / "index").mkdir(parents=True)
    (charts / "index" / f"{repository_key(AUTOSCALER_REPO)}.yaml").write_text(_index({
        "example-autoscaler": [("9.46.6", ">=1.30.0-0"), ("9.47.0", ">=1.31.0-0"), ("10.0.0-beta.1", "")],
    }))
    return root, config, charts


def _run(root: Path, config: Path, charts: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "HELIX_CONFIG": str(config), "HELIX_CHARTS": str(charts),
           "HELIX_CHARTS_CACHE": str(charts.parent / "cache")}
    return subprocess.run([sys.executable, "-m", "tools.outdated", "--offline", "--root", str(root), *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)


def _line(out: str, name: str) -> str:
    return next(line for line in out.splitlines() if f" {name} (" in line)


def test_outdated_offline_from_a_chart_folder(project):
    root, config, charts = project
    run = _run(root, config, charts)
    assert run.returncode == 0, run.stderr
    assert "cluster: v1.35.2+k3s1" in run.stdout
    # The newest stable version (not the pre-release), not yet in the matrix: what to record is shown.
    autoscaler = _line(run.stdout, "example-autoscaler")
    assert "9.46.6" in autoscaler and "9.47.0" in autoscaler and "10.0.0" not in autoscaler
    assert "not in the matrix yet" in autoscaler and ">=1.31.0-0" in autoscaler
    # What could not be checked, and why: an OCI chart, a repository whose index the folder lacks.
    assert "not checked: an OCI registry has no index" in _line(run.stdout, "example-oci")
    assert "not checked: no index for https://charts.example.net/x in HELIX_CHARTS" in _line(run.stdout, "example-elsewhere")
    assert "3 chart pins: 1 with a newer version, 0 up to date, 2 not checked" in run.stdout


def test_the_matrix_decides_whether_the_newest_is_allowed(project):
    root, config, charts = project
    catalog = root / "config" / "catalog" / "example.yaml"
    text = catalog.read_text()
    recorded = text.replace('  kubernetes:\n', '  kubernetes:\n    9.47.0:\n      min: "1.36"\n      source: a test entry\n', 1)
    catalog.write_text(recorded)
    assert "NOT allowed: Kubernetes 1.36 to any excludes 1.35" in _line(_run(root, config, charts).stdout, "example-autoscaler")
    catalog.write_text(recorded.replace('min: "1.36"', 'min: "1.31"', 1))
    assert "allowed: Kubernetes 1.31 to any holds 1.35" in _line(_run(root, config, charts).stdout, "example-autoscaler")
    # Pinned at the newest: up to date.
    catalog.write_text(text.replace("  version: 9.46.6", "  version: 9.47.0", 1))
    assert "up to date" in _line(_run(root, config, charts).stdout, "example-autoscaler")


def test_offline_without_a_folder_says_it_could_not_check(project, tmp_path):
    root, config, charts = project
    run = subprocess.run([sys.executable, "-m", "tools.outdated", "--offline", "--root", str(root)], cwd=ROOT,
                         env={"PATH": "/usr/bin:/bin", "HELIX_CONFIG": str(config),
                              "HELIX_CHARTS_CACHE": str(tmp_path / "empty-cache")},
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "offline, and no cached index for https://charts.example.org/autoscaler" in run.stdout
    assert "0 with a newer version, 0 up to date, 3 not checked" in run.stdout


def test_a_chart_folder_that_is_not_one_is_refused(project):
    root, config, charts = project
    run = _run(root, config, charts / "index" / "missing")
    assert run.returncode == 2 and run.stderr.startswith("error: HELIX_CHARTS=") and "Traceback" not in run.stderr


def test_version_order():
    assert outdated.version_key("v1.21.1") == (1, 21, 1) and outdated.version_key("1.2.0-rc.1") is None
    assert outdated.version_key("10.0.0") > outdated.version_key("9.47.0")


def test_offline_reads_the_cached_index(project, tmp_path):
    root, config, charts = project
    cache = tmp_path / "cache"
    (cache / "outdated").mkdir(parents=True)
    shutil.copy(charts / "index" / f"{repository_key(AUTOSCALER_REPO)}.yaml",
                cache / "outdated" / f"{repository_key(AUTOSCALER_REPO)}.yaml")
    run = subprocess.run([sys.executable, "-m", "tools.outdated", "--offline", "--root", str(root)], cwd=ROOT,
                         env={"PATH": "/usr/bin:/bin", "HELIX_CONFIG": str(config), "HELIX_CHARTS_CACHE": str(cache)},
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "9.47.0" in _line(run.stdout, "example-autoscaler")
    assert "1 with a newer version, 0 up to date, 2 not checked" in run.stdout
