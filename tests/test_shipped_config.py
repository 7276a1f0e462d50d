"""The shipped config/helix.yaml's own checks, and the user edits the config-independent checks also run on.

The code's tests read the description's frozen copy (tests/fixtures/description/helix.yaml) and, for the
config-independent ones, an edited copy of the shipped file (tests/conftest.py). What is checked here is about
the shipped file itself: it validates, the generated docs and README's diagram describe it, and (in
test_safety.py) its synth keeps every address of the snapshot. The address snapshot and README diagram tests
use its synth, which is the description's when the two files say the same.
"""

from __future__ import annotations

import json

from tests.conftest import DESCRIPTION_CONFIG, SHIPPED_CONFIG, backend_kind
from tests.user_edits import ADDED_HOSTNAME_LABEL, DISABLED_COMPONENT


def test_shipped_config_validates(shipped_plan):
    assert shipped_plan.config_file == "config/helix.yaml"
    assert shipped_plan.components, "the shipped config installs nothing"


def test_components_doc_is_generated_from_the_shipped_config(shipped_plan):
    from tools.docs import DOC, render

    assert DOC.read_text() == render(shipped_plan), "docs/components.md is out of date: run `task docs`"


def test_description_copy_is_the_description(description_plan):
    """The frozen copy is what the cluster description asks for: 3 servers, 4 agents, the seed's hostnames."""
    cluster = description_plan.config.cluster
    assert [n.role for n in cluster.nodes].count("server") == 3
    assert [n.role for n in cluster.nodes].count("agent") == 4
    assert description_plan.config.domain == "helixaibot.com"
    assert DESCRIPTION_CONFIG != SHIPPED_CONFIG


def test_user_edits_were_made_and_synthesized(edited_synth, description_plan):
    """The edited copy really is the description's copy after the four edits (so its run of the code's checks
    is not the description's run again); an edit the file already has is not made twice."""
    synth, config, done = edited_synth
    assert done and any(d.startswith("added agent") for d in done), done
    nodes = synth.stack("nodes")
    hosts = nodes["resource"]["null_resource"]
    added = [r for r in hosts.values() if r.get("triggers", {}).get("name", "").endswith("-agent-added")]
    assert len(added) == 1 and added[0]["triggers"]["role"] == "agent"
    for name in synth.stack_names:
        assert list(synth.stack(name)["terraform"]["backend"]) == ["s3"], name
    assert DISABLED_COMPONENT not in {r["name"] for _, r in synth.releases().values()}
    everything = json.dumps([synth.stack(name) for name in synth.stack_names])
    assert f"{ADDED_HOSTNAME_LABEL}.{description_plan.config.domain}" in everything


def test_the_code_tests_never_run_on_the_shipped_file():
    """`synth` and `plan` are fixture configs only: the user's file is not a parameter of the code's tests."""
    from tests.conftest import CONFIGS

    assert CONFIGS == ["description", "edited"]


def test_shipped_config_synthesizes(shipped_synth, shipped_plan):
    """Every stack has the configured backend; the releases are the plan's enabled components with a chart."""
    for name in shipped_synth.stack_names:
        assert backend_kind(shipped_synth.stack(name)) == shipped_plan.config.state.backend, name
    charts = {c.release_name for c in shipped_plan.components.values() if c.has_release}
    assert charts <= {r["name"] for _, r in shipped_synth.releases().values()}


def test_every_reference_of_the_shipped_config_resolves(shipped_plan):
    """Every Service name its releases render belongs to a component it installs (tests/service_refs.py)."""
    from tests.service_refs import unresolved

    assert unresolved(shipped_plan) == []
