"""Adding a component: every missing field of a new catalog entry is reported at once (issue 23).

pydantic runs a model's own cross-field check only after every field has validated, so a new helm entry used to
report its missing description, seed_name and version first and, once those were given, its missing repository
and chart in a second round. planner/catalog.py now reports them together.
"""

from __future__ import annotations

import pytest

from tests.conftest import DESCRIPTION_CONFIG, ROOT
from tests.helpers import copy_data, main_in_process

FILE = "config/catalog/new-thing.yaml"


def _refusal(tmp_path, monkeypatch, capsys, entry: str) -> list[str]:
    data = copy_data(tmp_path)
    (data / "catalog" / "new-thing.yaml").write_text(entry)
    (tmp_path / "work").mkdir()
    run = main_in_process(str(DESCRIPTION_CONFIG.relative_to(ROOT)), tmp_path / "work", monkeypatch, capsys,
                          {"HELIX_DATA_DIR": str(data)})
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr
    lines = run.stderr.rstrip("\n").split("\n")
    assert len(set(lines)) == len(lines), f"a problem is reported twice:\n{run.stderr}"
    return [line.split(f"{FILE}: ", 1)[1] for line in lines if f"{FILE}: " in line]


def _fields(problems: list[str]) -> set[str]:
    return {p.split(":", 1)[0] for p in problems}


def test_a_new_entry_reports_every_missing_field_in_one_round(tmp_path, monkeypatch, capsys):
    problems = _refusal(tmp_path, monkeypatch, capsys, "new-thing:\n  layer: observability\n")
    assert _fields(problems) == {f"new-thing.{f}" for f in ("description", "seed_name", "version", "repository", "chart")}, problems
    assert all("required field is missing" in p for p in problems), problems


@pytest.mark.parametrize("given, missing", [("chart: foo", "repository"), ("repository: https://charts.example.org", "chart")])
def test_an_otherwise_complete_entry_names_the_one_field_left(tmp_path, monkeypatch, capsys, given, missing):
    entry = f"new-thing:\n  description: d\n  seed_name: New\n  layer: observability\n  version: 1.0.0\n  {given}\n"
    problems = _refusal(tmp_path, monkeypatch, capsys, entry)
    assert problems == [f"new-thing.{missing}: required field is missing (a helm component needs `repository` and `chart`)"]


def test_a_manifests_entry_is_not_asked_for_a_chart(tmp_path, monkeypatch, capsys):
    problems = _refusal(tmp_path, monkeypatch, capsys, "new-thing:\n  kind: manifests\n  layer: observability\n")
    fields = _fields(problems)
    assert {"new-thing.description", "new-thing.version"} <= fields
    assert not fields & {"new-thing.repository", "new-thing.chart"}, problems
