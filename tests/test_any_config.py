"""The shipped file's own checks hold for any user's config: proven on heavily edited copies of it.

tests/heavy_edits.py rewrites a copy of config/helix.yaml the way another team would (other domain, other CIDRs
and addresses, 1, 3 and 5 servers, 0 and 6 agents, every optional component off, Cloudflare off, each state
backend). Each copy must pass what tests/test_shipped_config.py and the address snapshot check ask of the shipped
file: it validates, it synthesizes with its own backend, every reference resolves, the generated docs render,
and the snapshot reports only what the config asks to remove (the snapshot is the user's own to update).
"""

from __future__ import annotations

import pytest

from tests.conftest import SHIPPED_CONFIG, Synth, _synthesize_here, backend_kind
from tests.heavy_edits import BACKENDS, VARIANTS, write_variant


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def shipped_variant(request, tmp_path_factory):
    from planner.load import load_plan

    work = tmp_path_factory.mktemp(request.param)
    config = write_variant(SHIPPED_CONFIG, request.param, work / "helix.yaml")
    plan = load_plan(config)
    return request.param, plan, _synthesize_here(plan, work / "cdktf.out")


def test_the_variants_cover_every_edit_of_the_issue():
    import yaml

    from tests.heavy_edits import catalog_needs

    shipped = yaml.safe_load(SHIPPED_CONFIG.read_text())
    made = {name: fn(yaml.safe_load(SHIPPED_CONFIG.read_text())) for name, fn in VARIANTS.items()}
    servers = {sum(n["role"] == "server" for n in d["cluster"]["nodes"]) for d in made.values()}
    agents = {sum(n["role"] == "agent" for n in d["cluster"]["nodes"]) for d in made.values()}
    assert {1, 5} <= servers and {0, 6} <= agents
    assert {d["state"]["backend"] for d in made.values()} == set(BACKENDS)
    assert any(d["domain"] != shipped["domain"] for d in made.values())
    assert any(d["cluster"]["node_cidr"] != shipped["cluster"]["node_cidr"] for d in made.values())
    assert any(d["cluster"]["service_cidr"] != shipped["cluster"].get("service_cidr") for d in made.values())
    assert any(not d["cloudflare"].get("enabled", True) for d in made.values())
    placed = {c for ns in shipped["namespaces"].values() for c in (ns or {}).get("components", [])}
    optional = placed - set().union(*(catalog_needs().get(c, set()) for c in placed))
    assert any({c for c, o in (d.get("components") or {}).items() if o.get("enabled") is False} >= optional
               for d in made.values())


def test_a_variant_validates_and_synthesizes_with_its_own_backend(shipped_variant):
    name, plan, synth = shipped_variant
    assert plan.components
    for stack in synth.stack_names:
        assert backend_kind(synth.stack(stack)) == plan.config.state.backend, (name, stack)
    releases = {r["name"] for _, r in synth.releases().values()}
    assert {c.release_name for c in plan.components.values() if c.has_release} <= releases


def test_every_reference_of_a_variant_resolves(shipped_variant):
    from tests.service_refs import unresolved

    _, plan, _ = shipped_variant
    assert unresolved(plan) == []


def test_a_variant_renders_its_docs(shipped_variant):
    from tools.docs import render

    _, plan, _ = shipped_variant
    doc = render(plan)
    assert all(f"`{cid}`" in doc or cid in doc for cid in plan.components)


def test_a_variant_removes_from_the_snapshot_only_what_its_config_drops(shipped_variant, description_synth: Synth):
    """The committed snapshot is of the shipped file: a variant may drop addresses (other nodes, components off),
    but only ones its config drops: the description's copy, through the same code, still has each of them
    (the rule of test_safety.py's address snapshot check)."""
    from tools import snapshot as snap

    _, _, synth = shipped_variant
    removed, _ = snap.compare(snap.read(), {name: synth.stack(name) for name in synth.stack_names})
    kept = {s: set(snap.resource_addresses(description_synth.stack(s))) for s in description_synth.stack_names}
    by_code = {s: [a for a in items if a not in kept.get(s, set())] for s, items in removed.items()}
    assert not {s: items for s, items in by_code.items() if items}
