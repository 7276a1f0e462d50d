"""`task verify` without network, and `task charts` (tools/verify --pull) for an air-gapped run: one clean line per
missing chart, a summary that counts rendered and not rendered releases apart, a folder that renders every release,
an old index copy that cannot tell, and a missing reference judged by the one release that would create it."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.verify_helpers import CHARTS, HELM, NO_ALLOW, found, make_out, release, run
from tools.verify.__main__ import verify
from tools.verify.charts import ChartStore, pull_failure
from tools.verify.output import text_report
from tools.verify.plan import load_platform

pytestmark = pytest.mark.skipif(HELM is None, reason="helm is installed by scripts/setup.sh")

HELM_OFFLINE = ('Error: looks like "https://charts.example.invalid" is not a valid chart repository or cannot be '
                'reached: Get "https://charts.example.invalid/index.yaml": dial tcp: lookup charts.example.invalid '
                'on 10.0.0.1:53: no such host\n')


def _fake_helm(tmp_path: Path, script: str) -> str:
    path = tmp_path / "fake-helm"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)
    return str(path)


def test_an_unreachable_repository_is_one_plain_line_with_the_hint(tmp_path):
    helm = _fake_helm(tmp_path, f"cat >&2 <<'EOF'\n{HELM_OFFLINE}EOF\nexit 1\n")
    store = ChartStore(helm=helm, cache=tmp_path / "cache")
    out = make_out(tmp_path, {"apps": {"releases": {"c": release("clean", "clean")}}})
    (rel,) = load_platform(out).releases
    with pytest.raises(Exception) as err:
        store.obtain(rel)
    message = str(err.value)
    assert message == ("chart clean 1.0.0 not obtainable from https://charts.example.invalid: the repository cannot "
                       "be reached (no network?); offline? fetch every chart once with `task charts` and set "
                       "HELIX_CHARTS to that folder")
    assert "Error:" not in message and "dial tcp" not in message
    assert pull_failure("Error: chart \"x\" version \"9\" not found in https://r index") == \
        "the repository does not list this chart version"


def test_the_summary_counts_rendered_and_not_rendered_apart():
    summary = {"releases": 48, "stacks": 9, "kube_version": "v1.35.5+k3s1", "seconds": 5.5, "rendered": 0,
               "charts_missing": 48}
    last = text_report([], [], summary, []).splitlines()[-1]
    assert "0 of 48 releases in 9 stacks rendered" in last and "48 not rendered (48 for want of the chart" in last
    assert "task charts" in last and "HELIX_CHARTS" in last
    summary.update(rendered=48, charts_missing=0)
    assert text_report([], [], summary, []).splitlines()[-1] == (
        "verify: 0 finding(s), 0 allowed; 48 releases in 9 stacks rendered for Kubernetes v1.35.5+k3s1 in 5.5 s")


def test_the_charts_folder_renders_every_release(tmp_path, monkeypatch):
    """--pull puts each pinned chart and each repository's index into a folder; verify with it renders all."""
    packaged = tmp_path / "packaged"
    for chart in ("crds-1.0.0", "storage-1.0.0", "clean-1.0.0", "widget-1.0.0"):
        subprocess.run([HELM, "package", str(CHARTS / chart), "-d", str(packaged)], check=True, capture_output=True)
    # A helm whose `pull <chart> ... --destination D` copies the packaged chart (no repository is reached).
    helm = _fake_helm(tmp_path, f'''
chart="$2"; version="$6"; dest="$8"
cp "{packaged}/$chart-$version.tgz" "$dest/" 2>/dev/null || {{ echo "Error: $chart not found" >&2; exit 1; }}
''')
    index = (CHARTS / "index.yaml").read_bytes()
    monkeypatch.setattr("tools.verify.charts.urllib.request.urlopen", lambda url, timeout: io.BytesIO(index))
    out = make_out(tmp_path, {"base": {"releases": {"crds": release("crds", "crds", "kube-system"),
                                                    "storage": release("storage", "storage", "kube-system")}},
                              "apps": {"deps": ["nodes", "base"], "releases": {
                                  "clean": release("clean", "clean"), "widget": release("widget", "widget")}}})
    folder = tmp_path / "charts"
    lines: list[str] = []
    store = ChartStore(helm=helm, cache=tmp_path / "cache")
    assert store.pull_into(load_platform(out).releases, folder, out=lines.append) == 0
    assert sorted(p.name for p in folder.glob("*.tgz")) == sorted(f"{c}.tgz" for c in
                                                                   ("crds-1.0.0", "storage-1.0.0", "clean-1.0.0", "widget-1.0.0"))
    assert (folder / "index" / "charts.example.invalid.yaml").read_bytes() == index
    again: list[str] = []
    assert store.pull_into(load_platform(out).releases, folder, out=again.append) == 0
    assert all(line.startswith("have ") or line.startswith("fetched index/") for line in again)
    outcome = verify(out, folder, NO_ALLOW, helm=HELM)
    assert outcome.summary["rendered"] == outcome.summary["releases"] == 4
    assert found(outcome, "render") == [] and found(outcome, "published") == []


def test_pull_reports_each_chart_it_cannot_fetch(tmp_path):
    helm = _fake_helm(tmp_path, f"cat >&2 <<'EOF'\n{HELM_OFFLINE}EOF\nexit 1\n")
    out = make_out(tmp_path, {"apps": {"releases": {"c": release("clean", "clean"), "w": release("widget", "widget")}}})
    lines: list[str] = []
    failed = ChartStore(helm=helm, cache=tmp_path / "cache").pull_into(
        [r for r in load_platform(out).releases], tmp_path / "charts", out=lines.append)
    # two charts, and the index (urlopen of an .invalid host fails without any network)
    chart_lines = [line for line in lines if "not obtainable" in line]
    assert len(chart_lines) == 2 and all(line.startswith("error: chart ") for line in chart_lines)
    assert failed >= 2 and not any("dial tcp" in line for line in lines)


def _old_index(folder: Path, generated: str) -> None:
    index = yaml.safe_load((CHARTS / "index.yaml").read_text())
    index["generated"] = generated
    (folder / "index.yaml").write_text(yaml.safe_dump(index))


@pytest.mark.parametrize("generated, reported", [("2001-01-01T00:00:00Z", False), ("2999-01-01T00:00:00Z", True)])
def test_an_index_older_than_the_chart_cannot_tell(tmp_path, generated, reported):
    folder = tmp_path / "charts"
    folder.mkdir()
    subprocess.run([HELM, "package", str(CHARTS / "unpublished-1.0.1"), "-d", str(folder)], check=True, capture_output=True)
    _old_index(folder, generated)
    out = make_out(tmp_path, {"apps": {"releases": {"p": release("p", "unpublished", version="1.0.1")}}})
    outcome = verify(out, folder, NO_ALLOW, helm=HELM)
    assert bool(found(outcome, "published")) is reported
    notes = [n for n in outcome.notes if n.startswith("published: cannot tell")]
    assert bool(notes) is not reported
    if notes:
        assert "p 1.0.1 (index.yaml lists up to 1.0.0)" in notes[0]


def test_a_missing_reference_is_a_finding_unless_its_own_release_did_not_render(tmp_path):
    """gw (dns-client) names Service apps/clean. Another release that did not render does not excuse it."""
    unrelated = run(tmp_path / "a", {"releases": {"gw": release("gw", "dns-client"),
                                                  "other": release("other", "no-such-chart")}})
    refs = [f[3] for f in found(unrelated, "reference") if f[1] == "gw"]
    assert any("no release renders a Service apps/clean" in m for m in refs), refs
    own = run(tmp_path / "b", {"releases": {"gw": release("gw", "dns-client"),
                                            "clean": release("clean", "clean", version="9.9.9")}})
    refs = [f[3] for f in found(own, "reference") if f[1] == "gw"]
    assert not any("Service apps/clean" in m for m in refs), refs
    assert any("Service apps/clean" in n for n in own.notes if n.startswith("reference:"))


def test_task_charts_and_the_offline_hint_are_documented():
    root = Path(__file__).resolve().parent.parent
    tasks = yaml.safe_load((root / "Taskfile.yml").read_text())["tasks"]
    assert "--pull" in " ".join(tasks["charts"]["cmds"][-1:])
    assert subprocess.run(["git", "check-ignore", "-q", ".charts/x.tgz"], cwd=root).returncode == 0
    readme = (root / "README.md").read_text()
    assert "task charts" in readme and os.path.basename("HELIX_CHARTS") in readme
    assert shutil.which("helm", path=str(root / ".venv" / "bin")) or HELM
