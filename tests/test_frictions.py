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


def test_review_shows_tunnel_origins(description_synth, description_plan, edited_synth):
    """The edited config adds a hostname with its own origin: the review names the route, not only a DNS record."""
    from tests.user_edits import ADDED_HOSTNAME_LABEL
    from tools.review import diff_dirs, render_markdown, tunnel_origin_changes

    text = render_markdown(diff_dirs(description_synth.outdir, edited_synth[0].outdir))
    host = f"{ADDED_HOSTNAME_LABEL}.{description_plan.config.domain}"
    assert "**Tunnel origins**" in text and f"- added `{host}` → `http_status:503`" in text
    before = {"config": {"ingress": [{"hostname": "a.example", "service": "http://x:80"}, {"service": "http_status:404"}]}}
    after = {"config": {"ingress": [{"hostname": "a.example", "service": "http://y:80"},
                                    {"hostname": "b.example", "path": "^/api", "service": "http://x:80"},
                                    {"service": "http_status:404"}]}}
    assert tunnel_origin_changes(before, after) == [("changed", "a.example", "http://x:80", "http://y:80"),
                                                    ("added", "b.example ^/api", None, "http://x:80")]
