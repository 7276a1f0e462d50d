"""The plan between the config and the stacks (planner/): every input checked up front, extras that follow
their component, and namespaces and stacks that never move when a component is turned on or off.

Data-file fixtures (tests/fixtures/invalid-data/*.yaml) each break one file of a copy of config/: `edit` names
the file (relative to config/), then `replace: [old, new]`, `append: text` or `delete: true` says how. The app
must refuse it the way it refuses a broken cluster file: exit 2, one line per problem naming the file, no
traceback, and a previous cdktf.out left byte-identical.
"""

from __future__ import annotations

import copy

import pytest
import yaml

from planner.files import parse_model
from planner.load import load_plan, resolve_config
from planner.model import PlatformPlan
from planner.schema import HelixConfig
from tests.conftest import DESCRIPTION_CONFIG, ROOT
from tests.helpers import break_data, copy_data, main_in_process

DATA_FIXTURES = sorted((ROOT / "tests" / "fixtures" / "invalid-data").glob("*.yaml"))




def test_there_are_data_fixtures_for_each_kind_of_file():
    edited = {yaml.safe_load(p.read_text()).get("edit", "variables.yaml").split("/")[0] for p in DATA_FIXTURES}
    assert {"catalog", "layers.yaml", "manifests", "variables.yaml"} <= edited


@pytest.mark.parametrize("path", DATA_FIXTURES, ids=[p.stem for p in DATA_FIXTURES])
def test_broken_data_file_is_refused(path, tmp_path, monkeypatch, capsys):
    case = yaml.safe_load(path.read_text())
    data = copy_data(tmp_path)
    break_data(data, case)
    (tmp_path / "work").mkdir()
    run = main_in_process(str(DESCRIPTION_CONFIG.relative_to(ROOT)), tmp_path / "work", monkeypatch, capsys, {"HELIX_DATA_DIR": str(data)})
    output = run.stdout + run.stderr
    assert run.returncode == 2, output
    assert "Traceback" not in output and run.stdout == "", output
    assert case["expect"] in run.stderr, f"expected {case['expect']!r} in:\n{run.stderr}"
    lines = run.stderr.rstrip("\n").split("\n")
    assert lines[-1].endswith("problem(s) found; nothing was synthesized.")
    assert all(line.startswith("error: ") for line in lines[:-1]), run.stderr
    assert len(set(lines)) == len(lines), f"a problem is reported twice:\n{run.stderr}"
    assert run.after == run.before and run.siblings == ["cdktf.out"]


# --- extras follow their component ---------------------------------------------------------------------------


def test_moving_cert_manager_to_another_layer_takes_its_issuers_and_secret_along(tmp_path):
    data = copy_data(tmp_path)
    break_data(data, {"edit": "catalog/cert-manager.yaml", "replace": ["  layer: foundation\n", "  layer: cni\n"]})
    plan = load_plan(DESCRIPTION_CONFIG, data)
    layers = {layer.name: layer for layer in plan.layers}
    assert "cert-manager" in {c.id for c in layers["cni"].components}
    assert "cluster-issuers" in {m.release for m in layers["cni"].manifests}
    assert ("cert-manager", "cloudflare-api-token") in {(s.namespace, s.name) for s in layers["cni"].secrets}
    assert "cert-manager" in {ns.name for ns in layers["cni"].namespaces}
    assert "cloudflare_dns_token" in {v.name for v in layers["cni"].variables}
    foundation = layers["foundation"]
    assert "cluster-issuers" not in {m.release for m in foundation.manifests}
    assert "cert-manager" not in {s.namespace for s in foundation.secrets}
    issuers = next(m for m in layers["cni"].manifests if m.release == "cluster-issuers")
    assert issuers.after == ("cert-manager",)


def test_moved_cert_manager_is_built_in_its_new_stack(tmp_path):
    """Built, not synthesized: the cni stack holds the release, the issuers after it and the secret before."""
    from stacks.app import build_app

    data = copy_data(tmp_path)
    break_data(data, {"edit": "catalog/cert-manager.yaml", "replace": ["  layer: foundation\n", "  layer: cni\n"]})
    app = build_app(load_plan(DESCRIPTION_CONFIG, data), str(tmp_path / "out"))
    stacks = {c.node.id: c for c in app.node.children}
    addons = stacks["cni"].addons
    assert {"cert-manager", "cluster-issuers"} <= set(addons.releases)
    assert ("cert-manager", "cloudflare-api-token") in addons.secrets
    assert "cluster-issuers" not in stacks["foundation"].addons.releases


def test_namespace_created_after_its_component_is_refused():
    """`namespaces.system-upgrade.layer: data` while the upgrade controller installs in foundation: exit 2 (the
    invalid fixture namespace-created-after-its-component.yaml runs it through main())."""
    path = ROOT / "tests" / "fixtures" / "invalid" / "namespace-created-after-its-component.yaml"
    with pytest.raises(Exception) as err:
        load_plan(path)
    text = str(err.value)
    assert "system-upgrade-controller" in text and "namespaces.system-upgrade.layer" in text


# --- turning a component off moves nothing else ---------------------------------------------------------------


def footprint(plan: PlatformPlan) -> dict[tuple[str, str], str]:
    """(stack, construct id under the layer's `platform` construct) -> the component it exists for, for every
    resource of the platform stacks. test_footprint_is_what_the_stacks_create holds it against a real synth."""
    out: dict[tuple[str, str], str] = {}
    for layer in plan.layers:
        for ns in layer.namespaces:
            out[(layer.name, f"namespace-{ns.name}")] = ""
        for c in layer.components:
            if c.has_release:
                out[(layer.name, c.id)] = c.id
            for secret in c.generated_secrets:
                out[(layer.name, f"{c.id}-{secret.name}")] = c.id
                for key in secret.random_keys:
                    out[(layer.name, f"{c.id}-{secret.name}-{key}")] = c.id
        for m in layer.manifests:
            out[(layer.name, m.release)] = m.component
        for s in layer.secrets:
            out[(layer.name, s.construct_id)] = s.component
    return out


def test_footprint_is_what_the_stacks_create(plan, synth):
    found = set()
    for stack in synth.stack_names:
        for rtype, blocks in synth.stack(stack).get("resource", {}).items():
            for body in blocks.values():
                parts = body["//"]["metadata"]["path"].split("/")
                if len(parts) == 3 and parts[1] == "platform":
                    found.add((stack, parts[2]))
    assert found == set(footprint(plan))


@pytest.fixture(scope="module")
def shipped_config() -> dict:
    """The description's cluster file (the frozen copy): the toggles below are edits of it."""
    from tests.conftest import DESCRIPTION_CONFIG

    return yaml.safe_load(DESCRIPTION_CONFIG.read_text())


def _resolve(data: dict):
    cfg, problems = parse_model(HelixConfig, data, "helix.yaml")
    assert cfg is not None, problems
    return resolve_config(cfg, "helix.yaml")


def test_turning_any_one_component_off_changes_nothing_else(description_plan, shipped_config):
    plan = description_plan  # config-specific: the description's config
    base = footprint(plan)
    stacks = [layer.name for layer in plan.layers]
    checked = refused = 0
    for cid in sorted(plan.components):
        data = copy.deepcopy(shipped_config)
        data["components"] = {cid: {"enabled": False}}
        toggled, problems = _resolve(data)
        if toggled is None:
            # Something else needs it: one clear problem per dependent, each naming the component.
            assert problems and all(cid in str(p) for p in problems), problems
            refused += 1
            continue
        checked += 1
        assert [layer.name for layer in toggled.layers] == stacks, cid
        expected = {key: owner for key, owner in base.items() if owner != cid}
        assert footprint(toggled) == expected, cid
        assert toggled.k3s == plan.k3s, f"turning {cid} off changed the k3s configuration of the nodes"
    assert checked >= 20 and refused >= 1, (checked, refused)


def test_turning_coredns_off_keeps_the_network_namespace_in_foundation(shipped_config):
    data = copy.deepcopy(shipped_config)
    data["components"] = {"coredns": {"enabled": False}}
    toggled, problems = _resolve(data)
    assert toggled is not None, problems
    owners = {ns.name: layer.name for layer in toggled.layers for ns in layer.namespaces}
    assert owners["network"] == "foundation"


def test_a_layer_with_every_component_off_keeps_its_stack(shipped_config):
    """So that turning them all off destroys them in that stack, instead of leaving a stack nobody plans."""
    data = copy.deepcopy(shipped_config)
    data["components"] = {cid: {"enabled": False} for cid in ("falco", "trivy-operator", "chaos-mesh")}
    toggled, problems = _resolve(data)
    assert toggled is not None, problems
    security = next(layer for layer in toggled.layers if layer.name == "security")
    layers = yaml.safe_load((ROOT / "config" / "layers.yaml").read_text())["layers"]
    assert security.components == [] and set(security.stack_needs) == set(layers["security"]["needs"])


def test_stack_dependencies_and_installed_before_come_from_the_plan(plan, synth):
    for layer in plan.layers:
        deps = set(synth.manifest["stacks"][layer.name]["dependencies"])
        expected = set(layer.stack_needs) | {"nodes"} | ({"edge"} if layer.uses_edge else set())
        assert deps == expected, layer.name
        earlier = {c.id for other in plan.layers[: plan.layers.index(layer)] for c in other.components}
        assert layer.installed_before <= earlier
