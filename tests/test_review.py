"""The change review (tools/review.py): its diff and markdown, without git.

The sample change is the default config plus a chart version bump and a new public hostname, synthesized once
in this module; the session synth is the base.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import yaml

from tools.review import diff_dirs, diff_outputs, main as review_main, render_markdown

ROOT = Path(__file__).resolve().parent.parent
NEW_HOST_LABEL = "review-sample"


def bump_patch(version: str) -> str:
    prefix = "v" if version.startswith("v") else ""
    major, minor, patch = version.lstrip("v").split("-")[0].split("+")[0].split(".")
    return f"{prefix}{major}.{minor}.{int(patch) + 1}"


@pytest.fixture(scope="module")
def sample_change(plan, tmp_path_factory):
    """(component id, old version, new version, new hostname, head output folder)."""
    from stacks.app import synthesize
    from planner.load import load_plan

    data = yaml.safe_load((ROOT / "config" / "helix.yaml").read_text())
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


def test_sample_change_chart_bump(synth, plan, sample_change):
    component, old, new, _, head = sample_change
    review = diff_dirs(synth.outdir, head)
    release_stack, _ = synth.releases()[plan.components[component].release_name]
    s = review.stack(release_stack)
    bumped = [c for c in s.charts if c.before and c.after]
    assert len(bumped) == 1, s.charts
    assert bumped[0].before.endswith(old) and bumped[0].after.endswith(new)
    markdown = render_markdown(review, "main", "sample")
    assert f"### Stack `{release_stack}` (changed)" in markdown
    assert f"chart bumped `{bumped[0].release}` in `{bumped[0].namespace}`" in markdown
    assert f"{old}` → `" in markdown and f"{new}`" in markdown
    # Nothing is destroyed by a version bump.
    assert "will be destroyed" not in markdown and not any(st.removed for st in review.stacks)
    # Stacks the change does not touch are listed as unchanged, not detailed.
    assert "unchanged:" in markdown
    untouched = next(name for name in synth.stack_names if name not in (release_stack, "edge", "network"))
    assert f"### Stack `{untouched}`" not in markdown


def test_sample_change_new_hostname(synth, sample_change):
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
    assert "chart bumped `cilium` in `kube-system`: `cilium 1.16.5` → `cilium 1.16.6`" in md
    assert "new release `hubble` in `kube-system`: `hubble 0.1.0`" in md
    assert "- added `new.example.com CNAME t.cfargotunnel.com`" in md
    assert "- removed `old.example.com CNAME t.cfargotunnel.com`" in md
    assert "- changed `api.example.com CNAME a.cfargotunnel.com` → `api.example.com CNAME b.cfargotunnel.com`" in md
    assert "Warning: 3 resource(s) will be destroyed" in md
    assert "`helm_release.gone` (prevent_destroy" in md
    assert "-b: 2" in md and "+b: 3" in md
    assert "`cloudflare_api_token`" in md and "TF_VAR_" in md


def test_identical_outputs_review_as_unchanged(synth):
    review = diff_dirs(synth.outdir, synth.outdir)
    assert review.changed == []
    assert "No stack changes" in render_markdown(review)


def test_cli_with_prebuilt_outputs(synth, sample_change, tmp_path):
    """`python -m tools.review --base-out A --head-out B --out review.md` writes the summary (no git, no synth)."""
    *_, head = sample_change
    out = tmp_path / "review.md"
    assert review_main(["--base-out", str(synth.outdir), "--head-out", str(head), "--out", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("## Helix change review:") and "chart bumped" in text
    json.dumps(text)  # plain text, safe to post as a comment body
