"""The change review (tools/review.py): its diff and markdown, without git.

The sample change is the description's config (tests/fixtures/description) plus a chart version bump and a new public hostname, synthesized once
in this module; the session's synth of that config is the base.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import yaml

from tests.conftest import DESCRIPTION_CONFIG
from tools.review import diff_dirs, diff_outputs, render_markdown
from tools.review import main as review_main

ROOT = Path(__file__).resolve().parent.parent
NEW_HOST_LABEL = "review-sample"


def bump_patch(version: str) -> str:
    prefix = "v" if version.startswith("v") else ""
    major, minor, patch = version.lstrip("v").split("-")[0].split("+")[0].split(".")
    return f"{prefix}{major}.{minor}.{int(patch) + 1}"


@pytest.fixture(scope="module")
def sample_change(description_plan, tmp_path_factory):
    """(component id, old version, new version, new hostname, head output folder)."""
    from planner.load import load_plan
    from stacks.app import synthesize

    plan = description_plan
    data = yaml.safe_load(DESCRIPTION_CONFIG.read_text())
    component = "cert-manager" if "cert-manager" in plan.components else sorted(plan.components)[0]
    old = plan.components[component].version
    new = bump_patch(old)
    data["components"] = data.get("components") or {}
    data["components"].setdefault(component, {})["version"] = new
    host = f"{NEW_HOST_LABEL}.{data['domain']}"
    data["cloudflare"]["hostnames"].append({"name": host, "origin": "http_status:404"})  # a backend, explicitly
    folder = tmp_path_factory.mktemp("review")
    config = folder / "helix-sample.yaml"
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    # A pull request that bumps a chart records the new version's Kubernetes range in the catalog's matrix too
    # (an unrecorded version is refused): the sample's catalog is a copy with that entry added.
    catalog = folder / "catalog"
    shutil.copytree(ROOT / "config" / "catalog", catalog)
    (path,) = [p for p in catalog.glob("*.yaml") if component in (yaml.safe_load(p.read_text()) or {})]
    specs = yaml.safe_load(path.read_text())
    specs[component]["kubernetes"][new] = specs[component]["kubernetes"][old]
    path.write_text(yaml.safe_dump(specs, sort_keys=False))
    head = folder / "cdktf.out"
    previous = os.environ.get("HELIX_CATALOG_DIR")
    os.environ["HELIX_CATALOG_DIR"] = str(catalog)
    try:
        synthesize(load_plan(config), head)
    finally:
        if previous is None:
            os.environ.pop("HELIX_CATALOG_DIR")
        else:
            os.environ["HELIX_CATALOG_DIR"] = previous
    return component, old, new, host, head


@pytest.mark.slow
def test_sample_change_chart_bump(description_synth, description_plan, sample_change):
    synth, plan = description_synth, description_plan
    component, old, new, _, head = sample_change
    review = diff_dirs(synth.outdir, head)
    release_stack, _ = synth.releases()[plan.components[component].release_name]
    s = review.stack(release_stack)
    bumped = [c for c in s.charts if c.before and c.after]
    assert len(bumped) == 1, s.charts
    assert bumped[0].before.endswith(old) and bumped[0].after.endswith(new)
    markdown = render_markdown(review, "main", "sample")
    assert f"### Stack `{release_stack}` (changed)" in markdown
    assert f"chart upgraded `{bumped[0].release}` in `{bumped[0].namespace}`" in markdown
    assert f"{old}` → `" in markdown and f"{new}`" in markdown
    # Nothing is destroyed by a version bump.
    assert "will be destroyed" not in markdown and not any(st.removed for st in review.stacks)
    # Stacks the change does not touch are listed as unchanged, not detailed.
    assert "unchanged:" in markdown
    untouched = next(name for name in synth.stack_names if name not in (release_stack, "edge", "network"))
    assert f"### Stack `{untouched}`" not in markdown


def test_sample_change_new_hostname(description_synth, sample_change):
    synth = description_synth
    *_, host, head = sample_change
    if not synth.all_resources("cloudflare_dns_record"):
        pytest.skip("the edge stack creates no cloudflare_dns_record yet")
    review = diff_dirs(synth.outdir, head)
    added = [d for s in review.stacks for d in s.dns if d.action == "added"]
    assert any(host in (d.after or "") or NEW_HOST_LABEL in (d.after or "") for d in added), added
    markdown = render_markdown(review)
    assert "**DNS records**" in markdown and NEW_HOST_LABEL in markdown


def _doc(resources=None, variables=None):
    return {"resource": resources or {}, "variable": variables or {}}


def test_diff_of_handmade_outputs():
    """Every section of the summary, on two small hand-written outputs."""
    meta = {"//": {"metadata": {"path": "x"}}}
    base = {
        "edge": _doc(
            {
                "cloudflare_dns_record": {
                    "apex": {"name": "example.com", "type": "CNAME", "content": "t.cfargotunnel.com", "proxied": True},
                    "old": {"name": "old.example.com", "type": "CNAME", "content": "t.cfargotunnel.com"},
                    "api": {"name": "api.example.com", "type": "CNAME", "content": "a.cfargotunnel.com"},
                }
            }
        ),
        "cni": _doc(
            {
                "helm_release": {
                    "cilium": {**meta, "name": "cilium", "namespace": "kube-system", "chart": "cilium", "version": "1.16.5",
                               "repository": "https://helm.cilium.io", "values": ["a: 1\nb: 2\n"]},
                    "gone": {"name": "gone", "namespace": "x", "chart": "gone", "version": "1.0.0",
                             "lifecycle": {"prevent_destroy": True}},
                }
            }
        ),
        "old-stack": _doc({"null_resource": {"n": {}}}),
    }
    head = {
        "edge": _doc(
            {
                "cloudflare_dns_record": {
                    "apex": {"name": "example.com", "type": "CNAME", "content": "t.cfargotunnel.com", "proxied": True},
                    "new": {"name": "new.example.com", "type": "CNAME", "content": "t.cfargotunnel.com"},
                    "api": {"name": "api.example.com", "type": "CNAME", "content": "b.cfargotunnel.com"},
                }
            },
            {"cloudflare_api_token": {"sensitive": True}},
        ),
        "cni": _doc(
            {
                "helm_release": {
                    "cilium": {**{"//": {"metadata": {"path": "y"}}}, "name": "cilium", "namespace": "kube-system",
                               "chart": "cilium", "version": "1.16.6", "repository": "https://helm.cilium.io",
                               "values": ["a: 1\nb: 3\n"]},
                    "hubble": {"name": "hubble", "namespace": "kube-system", "chart": "hubble", "version": "0.1.0"},
                }
            }
        ),
    }
    review = diff_outputs(base, head)
    assert [s.name for s in review.changed] == ["cni", "edge", "old-stack"]
    cni, edge, old = review.stack("cni"), review.stack("edge"), review.stack("old-stack")
    assert cni.added == ["helm_release.hubble"] and cni.removed == ["helm_release.gone"]
    assert cni.protected_removed == ["helm_release.gone"]
    assert cni.changed == {"helm_release.cilium": ["values", "version"]}  # metadata-only differences ignored
    bumps = {(c.release, c.before, c.after) for c in cni.charts}
    assert bumps == {("cilium", "cilium 1.16.5", "cilium 1.16.6"), ("hubble", None, "hubble 0.1.0"), ("gone", "gone 1.0.0", None)}
    assert {(d.action, d.address) for d in edge.dns} == {
        ("added", "cloudflare_dns_record.new"),
        ("removed", "cloudflare_dns_record.old"),
        ("changed", "cloudflare_dns_record.api"),
    }
    assert edge.variables_added == ["cloudflare_api_token"]
    assert old.status == "removed" and old.removed == ["null_resource.n"]

    md = render_markdown(review, "base", "head")
    assert "| cni | changed | 1 | 1 | 1 | 3 | 0 |" in md
    assert "| edge | changed | 1 | 1 | 1 | 0 | 3 |" in md
    assert "chart upgraded `cilium` in `kube-system`: `cilium 1.16.5` → `cilium 1.16.6`" in md
    assert "new release `hubble` in `kube-system`: `hubble 0.1.0`" in md
    assert "- added `new.example.com CNAME t.cfargotunnel.com`" in md
    assert "- removed `old.example.com CNAME t.cfargotunnel.com`" in md
    assert "- changed `api.example.com CNAME a.cfargotunnel.com` → `api.example.com CNAME b.cfargotunnel.com`" in md
    assert "Warning: 3 resource(s) will be destroyed" in md
    # prevent_destroy does not stop a block that left the configuration: the review says what the guard does.
    assert "`helm_release.gone`: **STATEFUL, refused: takes release x/gone: a release marked protect**" in md
    assert "will stop here" not in md and "Stop: 1 stateful object(s)" in md
    assert "-b: 2" in md and "+b: 3" in md
    assert "`cloudflare_api_token`" in md and "TF_VAR_" in md


def test_identical_outputs_review_as_unchanged(synth):
    review = diff_dirs(synth.outdir, synth.outdir)
    assert review.changed == []
    assert "No stack changes" in render_markdown(review)


def test_cli_with_prebuilt_outputs(description_synth, sample_change, tmp_path):
    """`python -m tools.review --base-out A --head-out B --out review.md` writes the summary (no git, no synth)."""
    synth = description_synth
    *_, head = sample_change
    out = tmp_path / "review.md"
    assert review_main(["--base-out", str(synth.outdir), "--head-out", str(head), "--out", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("## Helix change review:") and "chart upgraded" in text
    json.dumps(text)  # plain text, safe to post as a comment body


def test_a_downgrade_is_named_as_one():
    def release(version):
        return _doc({"helm_release": {"loki": {"name": "loki", "namespace": "monitoring", "chart": "loki",
                                                "version": version}}})

    for before, after, verb in (
        ("6.30.1", "6.29.0", "chart **downgraded**"),
        ("6.9.0", "6.10.0", "chart upgraded"),
        ("1.0.0", "1.0.0-rc.1", "chart **downgraded**"),
        ("1.0.0-rc.1", "1.0.0", "chart upgraded"),
    ):
        md = render_markdown(diff_outputs({"observability": release(before)}, {"observability": release(after)}))
        assert f"- {verb} `loki` in `monitoring`: `loki {before}` → `loki {after}`" in md, (before, after)


def test_backend_change_is_named_with_the_migration_command(description_synth, edited_synth):
    """The edited copy of the shipped config moves state from local to s3: every stack shows it."""
    head, _, _ = edited_synth
    review = diff_dirs(description_synth.outdir, head.outdir)
    nodes = review.stack("nodes")
    assert nodes.backend_changed and list(nodes.backend_before) == ["local"] and list(nodes.backend_after) == ["s3"]
    md = render_markdown(review)
    assert "the state backend of" in md
    assert ("- **State backend**: local (path=../../../state/nodes.tfstate) → s3 (bucket=helix-state, "
            "key=helix/nodes.tfstate") in md
    assert "`cd cdktf.out/stacks/nodes && terraform init -migrate-state`" in md
    same = diff_dirs(description_synth.outdir, description_synth.outdir)
    assert not any(s.backend_changed for s in same.stacks)


def test_worktree_head_reviews_uncommitted_changes(tmp_path, monkeypatch, capsys):
    """HEAD=WORKTREE synthesizes this checkout as it is; a review of the HEAD commit with a dirty tree says
    that it leaves the uncommitted changes out."""
    import tools.review as review

    synthesized = []
    monkeypatch.setattr(review, "synthesize_checkout", lambda checkout, outdir, label: synthesized.append(checkout))
    monkeypatch.setattr(review, "diff_dirs", lambda a, b: review.Review([]))
    assert review.main(["HEAD", review.WORKTREE, "--out", str(tmp_path / "r.md")]) == 0
    assert review.ROOT in synthesized
    assert "uncommitted changes included" in (tmp_path / "r.md").read_text()

    real_git = review._git
    monkeypatch.setattr(review, "_git", lambda *a, **k: " M config/helix.yaml" if a[0] == "status" else real_git(*a, **k))
    monkeypatch.setattr(review, "synthesize_revision", lambda rev, workdir, label: tmp_path)
    assert review.main(["HEAD", "HEAD", "--out", str(tmp_path / "r2.md")]) == 0
    assert f"give HEAD as {review.WORKTREE} to include them" in capsys.readouterr().err


def test_forced_replacement_shows_as_replace_with_what_it_takes():
    """A release whose namespace changes is replaced (helm provider v3.1.1: name and namespace force it)."""
    def release(namespace):
        return {"name": "loki", "namespace": namespace, "chart": "loki", "version": "6.0.0"}

    base = {"observability": _doc({"helm_release": {"loki": release("monitoring"), "other": {**release("a"), "name": "o", "chart": "o"}}})}
    head = {"observability": _doc({"helm_release": {"loki": release("logging"), "other": {**release("b"), "name": "o", "chart": "o"}}})}
    review = diff_outputs(base, head)
    s = review.stack("observability")
    assert s.replaced == {"helm_release.loki": ["namespace"], "helm_release.other": ["namespace"]}
    md = render_markdown(review)
    assert "**REPLACE (2): Terraform destroys these and creates them anew**" in md
    assert "- `helm_release.loki`: namespace changes: **STATEFUL, refused: takes release monitoring/loki: Loki's" in md
    assert "- `helm_release.other`: namespace changes\n" in md
    assert "**Changed" not in md


def test_a_reviewed_commit_is_synthesized_once_per_environment(tmp_path, monkeypatch):
    """The base of a review is kept by commit and environment: the next review of it synthesizes nothing."""
    import tools.review as review
    from stacks.synth_cache import write_stamp

    monkeypatch.setenv("HELIX_REVIEW_CACHE", str(tmp_path / "cache"))
    calls: list[Path] = []

    def fake_synth(checkout: Path, outdir: Path, label: str) -> None:
        calls.append(outdir)
        (outdir / "stacks" / "nodes").mkdir(parents=True, exist_ok=True)
        (outdir / "manifest.json").write_text(json.dumps({"stacks": {"nodes": {}}}))
        (outdir / "stacks" / "nodes" / "cdk.tf.json").write_text("{}")
        write_stamp(outdir, "any")

    monkeypatch.setattr(review, "synthesize_checkout", fake_synth)
    monkeypatch.setattr(review, "is_current_checkout", lambda sha: True)  # synthesize here, no git worktree
    first = review.synthesize_revision("HEAD", tmp_path / "w1", "base")
    assert review.synthesize_revision("HEAD", tmp_path / "w2", "base") == first
    assert calls == [first]
    # An output edited by hand is not trusted.
    (first / "stacks" / "nodes" / "cdk.tf.json").write_text('{"edited": 1}')
    review.synthesize_revision("HEAD", tmp_path / "w3", "base")
    assert len(calls) == 2
    # Another environment (a variable the synth reads) is another entry.
    monkeypatch.setenv("HELIX_CATALOG_DIR", str(tmp_path))
    other = review.synthesize_revision("HEAD", tmp_path / "w4", "base")
    assert other != first and len(calls) == 3
    # The working tree always goes through main.py, whose own cache decides.
    review.synthesize_revision(review.WORKTREE, tmp_path / "w5", "head")
    assert len(calls) == 4
