"""The shipped file's own checks hold for any user's config: proven on heavily edited copies of it.

tests/heavy_edits.py rewrites a copy of config/helix.yaml the way another team would (other domain, other CIDRs
and addresses, 1, 3 and 5 servers, 0 and 6 agents, every optional component off, Cloudflare off, each state
backend). Each copy must pass what tests/test_shipped_config.py and the address snapshot check ask of the shipped
file: it validates, it synthesizes with its own backend, every reference resolves, the generated docs render,
and it gets an address snapshot of its own that a second synth keeps (the snapshot is the user's to update).
"""

from __future__ import annotations

import pytest

from tests.conftest import SHIPPED_CONFIG, _synthesize_here, backend_kind
from tests.heavy_edits import BACKENDS, VARIANTS, write_variant

# The slow lane (`task test-all`, CI): heavily edited copies of the shipped config, each validated and synthesized.
pytestmark = pytest.mark.slow


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


def test_a_variant_gets_an_address_snapshot_of_its_own(shipped_variant, tmp_path):
    """The address snapshot is the user's own: written from a variant's synth (`python -m tools.snapshot`), the
    snapshot check finds nothing removed or added, and a second synth of the same file keeps every address."""
    from stacks.app import synthesize
    from tests.conftest import Synth
    from tools import snapshot as snap

    _, plan, synth = shipped_variant
    docs = {name: synth.stack(name) for name in synth.stack_names}
    path = tmp_path / "addresses.json"
    snap.write({name: snap.resource_addresses(doc) for name, doc in docs.items()}, path)
    assert snap.compare(snap.read(path), docs) == ({}, {})
    synthesize(plan, tmp_path / "again")
    again = Synth(tmp_path / "again")
    assert snap.compare(snap.read(path), {n: again.stack(n) for n in again.stack_names}) == ({}, {})



def test_a_variant_keeps_the_files_leading_comments(tmp_path):
    """The schema modeline (tests/test_config_reference.py checks the cluster file starts with it) survives."""
    from tests.conftest import DESCRIPTION_CONFIG
    from tools.config_reference import MODELINE

    body = "".join(line for line in DESCRIPTION_CONFIG.read_text().splitlines(keepends=True) if not line.startswith("#"))
    source = tmp_path / "source.yaml"
    source.write_text(f"{MODELINE}\n# a team's note\n{body}")
    lines = write_variant(source, "big-other-network", tmp_path / "v.yaml").read_text().splitlines()
    assert lines[:2] == [MODELINE, "# a team's note"] and not lines[2].startswith("#")
