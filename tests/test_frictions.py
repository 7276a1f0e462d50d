"""Everyday output for people: `task review` prints its summary, `task diff` shows plans without the shell loop."""

from __future__ import annotations

import yaml

from tests.conftest import ROOT


def test_review_with_out_prints_its_summary_and_where_the_rest_is(description_synth, edited_synth, tmp_path, capsys):
    from tools import review

    out = tmp_path / "review.md"
    assert review.main(["--base-out", str(description_synth.outdir), "--head-out", str(edited_synth[0].outdir),
                        "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    written = out.read_text()
    assert printed.startswith("## Helix change review") and "| stack | status |" in printed
    assert printed.rstrip().endswith(f"(the whole review: {out})")
    assert "### Stack `" in written and "### Stack `" not in printed
    assert written.startswith(printed.split("\n(the whole review")[0])


def test_task_diff_is_silent_and_synth_prints_one_line():
    tasks = yaml.safe_load((ROOT / "Taskfile.yml").read_text())["tasks"]
    assert tasks["diff"]["silent"] is True and tasks["synth"]["silent"] is True
