"""The layering rules of docs/architecture.md, checked on the source: stacks render the plan, the planner decides."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STACKS = ROOT / "stacks"
# What a stack may take from the cluster file's schema: the state backend's settings, passed through as is.
SCHEMA_NAMES_STACKS_MAY_IMPORT = {"StateConfig"}


def raw_config_reads(source: str) -> list[str]:
    """Where a module reads the raw cluster file: `<anything>.config`, or imports from planner.schema beyond the
    state backend's settings (HelixConfig and every section of it)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr == "config":
            found.append(f"line {node.lineno}: .config")
        elif isinstance(node, ast.ImportFrom) and node.module == "planner.schema":
            for alias in node.names:
                if alias.name not in SCHEMA_NAMES_STACKS_MAY_IMPORT:
                    found.append(f"line {node.lineno}: imports {alias.name} from {node.module}")
        elif isinstance(node, ast.Import) and any(a.name == "planner.schema" for a in node.names):
            found.append(f"line {node.lineno}: imports the schema module")
    return found


def test_no_stack_module_reads_the_raw_config():
    """Stacks render the plan: no module under stacks/ reads `plan.config` or the cluster file's schema."""
    modules = sorted(STACKS.rglob("*.py"))
    assert len(modules) >= 5
    offenders = {str(p.relative_to(ROOT)): hits for p in modules if (hits := raw_config_reads(p.read_text()))}
    assert offenders == {}


def test_the_scan_finds_a_raw_config_read():
    """The rule's scan is not blind: each way of reaching the raw config is reported."""
    assert raw_config_reads("def f(plan):\n    return plan.config.cluster.nodes\n") == ["line 2: .config"]
    assert raw_config_reads("from planner.schema import HelixConfig, StateConfig\n") == [
        "line 1: imports HelixConfig from planner.schema"
    ]
    assert raw_config_reads("import planner.schema\n") == ["line 1: imports the schema module"]
    assert raw_config_reads("from planner.schema import StateConfig\nx = plan.nodes.api_host\n") == []


# --- the planner in small named steps ----------------------------------------------------------------------

PLANNER = ROOT / "planner"
MAX_FUNCTION_LINES = 80


def long_functions(source: str, limit: int = MAX_FUNCTION_LINES) -> list[str]:
    """Functions (and methods, nested ones included) longer than `limit` lines, decorators and docstring counted."""
    return [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines, line {node.lineno})"
        for node in ast.walk(ast.parse(source))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > limit
    ]


def test_no_planner_function_is_longer_than_80_lines():
    """The planner reads as named steps: a function that grows past 80 lines is split into steps of its own."""
    offenders = {str(p.relative_to(ROOT)): hits for p in sorted(PLANNER.rglob("*.py")) if (hits := long_functions(p.read_text()))}
    assert offenders == {}


def test_the_length_scan_finds_a_long_function():
    body = "".join(f"    x{i} = {i}\n" for i in range(80))
    assert long_functions(f"def f():\n{body}") == ["f (81 lines, line 1)"]
    assert long_functions(f"def f():\n{body}", limit=81) == []


def test_resolve_platform_is_a_pipeline_of_named_steps():
    """resolve_platform calls the steps docs/architecture.md names, in that order."""
    from planner import resolve

    source = (PLANNER / "resolve.py").read_text()
    (fn,) = [n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.FunctionDef) and n.name == "resolve_platform"]
    called = [n.func.id for n in ast.walk(fn) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)]
    steps = ["place", "enable", "check_needs", "own_namespaces", "plan_extras", "plan_stacks"]
    assert [c for c in called if c in steps] == steps
    assert all(callable(getattr(resolve, step)) for step in steps)


# --- one definition each -----------------------------------------------------------------------------------

CODE_DIRS = ("planner", "stacks", "constructs_lib", "tools")


def _definitions(predicate) -> list[str]:
    found = []
    for folder in CODE_DIRS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            tree = ast.parse(path.read_text())
            found += [f"{path.relative_to(ROOT)}:{node.lineno}" for node in ast.walk(tree) if predicate(node)]
    return found


def test_one_deep_merge_one_strict_base_one_address_helper():
    deep_merges = _definitions(lambda n: isinstance(n, ast.FunctionDef) and n.name == "deep_merge")
    assert deep_merges == ["planner/merge.py:10"]
    # A pydantic base that forbids unknown keys: planner.schema.Strict, and no second one.
    strict_bases = _definitions(
        lambda n: isinstance(n, ast.Call)
        and getattr(n.func, "id", None) == "ConfigDict"
        and any(k.arg == "extra" for k in n.keywords)
    )
    assert [s.split(":")[0] for s in strict_bases] == ["planner/schema.py"]
    # Addresses of constructs that are not in the stack: built in a scratch app by one helper only.
    scratch_apps = _definitions(
        lambda n: isinstance(n, ast.Call) and getattr(n.func, "id", None) == "TerraformStack"
        and any(isinstance(a, ast.Call) and getattr(a.func, "id", None) == "App" for a in n.args)
    )
    assert [s.split(":")[0] for s in scratch_apps] == ["constructs_lib/addresses.py"]


def test_generator_names_are_the_registry():
    """The catalog accepts exactly the generators planner/generators.py registers, and names the field otherwise."""
    import pytest
    from pydantic import ValidationError

    from planner.catalog import ManifestExtra
    from planner.generators import GENERATORS

    assert GENERATORS
    for name in GENERATORS:
        assert ManifestExtra(release="x", generator=name).generator == name
    with pytest.raises(ValidationError) as err:
        ManifestExtra(release="x", generator="no-such-generator")
    (error,) = err.value.errors()
    assert error["loc"] == ("generator",) and "'no-such-generator' is not a generator" in error["msg"]


def test_test_modules_share_helpers_only_through_helper_modules():
    """A helper used by two test modules lives in tests/helpers.py (or conftest.py): no test_*.py imports another."""
    shared = {"tests.conftest", "tests.helpers", "tests.user_edits", "tests.library_harness", "tests.heavy_edits",
              "tests.service_refs", "tests.verify_helpers"}
    offenders = {}
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        imported = {
            node.module
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tests.")
        }
        if imported - shared:
            offenders[path.name] = sorted(imported - shared)
    assert offenders == {}
    assert (ROOT / "tests" / "README.md").exists()


# --- one home per component that has code ------------------------------------------------------------------

# Modules that hold component-specific knowledge, each found from the catalog (`provides`, `generator`).
COMPONENT_HOMES = ("planner/components/", "planner/generators.py")


def catalog_ids() -> set[str]:
    import yaml

    ids: set[str] = set()
    for path in sorted((ROOT / "config" / "catalog").glob("*.yaml")):
        ids |= set(yaml.safe_load(path.read_text()) or {})
    return ids


def component_ids_named(source: str, ids: set[str]) -> list[str]:
    """String constants of the source that are a component id (docstrings and comments are prose, not code)."""
    return sorted(
        {n.value for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value in ids}
    )


def test_the_generic_planner_names_no_component_id():
    """Component-specific code lives in planner/components/ (one module per concern, found through the catalog's
    `provides`) or in a generator; the rest of the planner, and the stacks, name no component."""
    from planner.resolve import K3S_PACKAGED

    ids = catalog_ids()
    assert {"seaweedfs", "ingress-external", "kube-prometheus-stack", "internal-wildcard-certificate"} <= ids
    # k3s's own packaged components (traefik, coredns, metrics-server, ...) are k3s' names, which some catalog
    # ids share: the planner names them as what k3s must not run (`replaces_k3s`), not as catalog components.
    ids -= set(K3S_PACKAGED)
    offenders = {}
    for folder in ("planner", "stacks"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            shown = str(path.relative_to(ROOT))
            if shown.startswith(COMPONENT_HOMES):
                continue
            if named := component_ids_named(path.read_text(), ids):
                offenders[shown] = named
    assert offenders == {}
    assert component_ids_named('X = ("seaweedfs", "object-store")\n"""seaweedfs"""\n', {"seaweedfs"}) == ["seaweedfs"]


def test_every_concern_has_its_module_and_a_provider():
    from planner.catalog import load_catalog
    from planner.components import CONCERNS
    from planner.load import PROJECT_ROOT

    catalog, problems = load_catalog(ROOT / "config" / "catalog", PROJECT_ROOT)
    assert not problems
    for concern in CONCERNS:
        assert (ROOT / "planner" / "components" / f"{concern.replace('-', '_')}.py").exists(), concern
        assert [cid for cid, (spec, _) in catalog.items() if concern in spec.provides], concern
