"""The engine seam (constructs_lib/engine.py): the one module that imports cdktf or cdktn and their prebuilt
providers; everything else imports the engine's names from it, so the engine is one setting (CDK_ENGINE)."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from constructs_lib import engine
from stacks import synth_cache
from tools import engine_compare

ROOT = Path(__file__).resolve().parent.parent
ENGINE_FILE = ROOT / "constructs_lib" / "engine.py"
# Folders that hold no project source (environments, outputs, caches).
SKIPPED_DIRS = {"node_modules", "__pycache__", "cdktf.out", "build", "dist"}
IMPORT_CALLS = {"import_module", "__import__", "find_spec"}


def _is_engine_module(name: str) -> bool:
    top = name.split(".")[0]
    return any(top == prefix or (prefix.endswith("_") and top.startswith(prefix)) for prefix in engine.ENGINE_MODULE_PREFIXES)


def engine_imports(source: str) -> list[tuple[int, str]]:
    """(line, module) of each import of an engine package in a Python source: import statements, and
    import_module / __import__ / find_spec calls whose module name is a string literal or an f-string that starts
    with one."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if _is_engine_module(a.name)]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and _is_engine_module(node.module):
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if called not in IMPORT_CALLS:
                continue
            first = node.args[0]
            if isinstance(first, ast.JoinedStr) and first.values and isinstance(first.values[0], ast.Constant):
                first = first.values[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str) and _is_engine_module(first.value):
                found.append((node.lineno, first.value))
    return found


def python_files(root: Path) -> list[Path]:
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in SKIPPED_DIRS)
        files += [Path(dirpath) / f for f in sorted(filenames) if f.endswith(".py")]
    return files


def offenders(root: Path) -> list[str]:
    bad = []
    for path in python_files(root):
        if path.resolve() == ENGINE_FILE.resolve():
            continue
        for line, module in engine_imports(path.read_text()):
            bad.append(f"{path.relative_to(root)}:{line}: imports {module}")
    return bad


def test_nothing_but_the_engine_module_imports_an_engine():
    files = python_files(ROOT)
    # The scan sees the whole project (not an empty or wrong folder).
    assert {"main.py", "stacks/app.py", "constructs_lib/k3s.py", "tests/test_engine.py"} <= {
        p.relative_to(ROOT).as_posix() for p in files
    }
    assert offenders(ROOT) == []
    # ... and the engine module itself is what it exempts: it does name the engine's packages.
    assert engine_imports(ENGINE_FILE.read_text())


@pytest.mark.parametrize(
    "line",
    [
        "from cdktf import App",
        "import cdktf",
        "from cdktn import TerraformStack",
        "from cdktf_cdktf_provider_helm.release import Release",
        "import cdktn_provider_kubernetes as k8s",
        "def f():\n    from cdktf_cdktf_provider_tls.provider import TlsProvider",
        "importlib.import_module('cdktf._jsii')",
        "importlib.import_module(f'cdktn_provider_{name}._jsii')",
        "__import__('cdktf_cdktf_provider_random')",
    ],
)
def test_the_scan_fails_on_an_engine_import_elsewhere(tmp_path, line):
    (tmp_path / "stacks").mkdir()
    (tmp_path / "stacks" / "fine.py").write_text("from constructs_lib.engine import App\nimport constructs\n")
    assert offenders(tmp_path) == []
    (tmp_path / "stacks" / "sneaky.py").write_text(f"import importlib\n{line}\n")
    assert len(offenders(tmp_path)) == 1, offenders(tmp_path)


def _probe(code: str, **env: str) -> dict:
    environ = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", engine.VARIABLE)}
    environ.update(env)
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=environ, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout.strip().splitlines()[-1])


LOADED = (
    "import json, sys\n"
    "from constructs_lib import engine\n"
    "tops = sorted({m.split('.')[0] for m in sys.modules})\n"
    "print(json.dumps([m for m in tops if m in ('cdktf', 'cdktn', 'jsii') or m.startswith(('cdktf_', 'cdktn_'))]))"
)


def test_importing_the_engine_module_loads_no_engine():
    assert _probe("import constructs_lib.engine\n" + LOADED) == []


def test_a_provider_class_loads_its_own_provider_package_only():
    loaded = _probe("from constructs_lib.engine import Release\n" + LOADED)
    assert set(loaded) == {engine.CORE, "jsii", engine.provider_package("helm")}, loaded


@pytest.mark.slow
def test_every_exported_name_resolves_and_is_typed():
    # Resolved in a fresh interpreter (with lazy provider roots), not here: this process' module set is other tests'.
    code = (
        "import json\nfrom constructs_lib import engine, lazy_providers\nlazy_providers.install()\n"
        "print(json.dumps({n: getattr(engine, n).__name__ for n in engine.__all__}))"
    )
    resolved = _probe(code)
    assert set(resolved) == set(engine.__all__)
    assert resolved["NullResource"] == "Resource" and resolved["Release"] == "Release"
    # The TYPE_CHECKING block names every exported type for mypy, as the same public name.
    typed = set()
    for node in ast.parse(ENGINE_FILE.read_text()).body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            typed |= {a.asname or a.name for n in node.body if isinstance(n, ast.ImportFrom) for a in n.names}
            typed |= {t.id for n in node.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
    assert set(engine.__all__) <= typed


def test_selection(monkeypatch):
    assert engine.select({engine.VARIABLE: "cdktn"}) == "cdktn"
    assert engine.select({engine.VARIABLE: " cdktf "}) == "cdktf"
    # Unset: the default when it is installed, else the other engine when that is.
    installed = [name for name, (core, _, _) in engine.ENGINES.items() if engine._installed(core)]
    assert installed, "no engine installed"
    expected = engine.DEFAULT if engine.DEFAULT in installed else installed[0]
    assert engine.select({}) == expected
    monkeypatch.setattr(engine, "_installed", lambda package: package == "cdktn")
    assert engine.select({}) == "cdktn"
    monkeypatch.setattr(engine, "_installed", lambda package: False)
    assert engine.select({}) == engine.DEFAULT


def test_the_running_engine_is_installed_with_a_version():
    assert engine.problem() is None
    assert engine.NAME in engine.ENGINES
    assert engine.version()[0].isdigit(), engine.version()
    assert engine.identity() == f"{engine.NAME} {engine.version()}"
    assert engine.identity({engine.VARIABLE: engine.NAME}) == engine.identity()
    assert engine.version("no-such-engine") == "unknown"


def test_an_unknown_engine_is_refused_in_one_line():
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env[engine.VARIABLE] = "terraform-cdk-classic"
    run = subprocess.run([sys.executable, "main.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert run.stderr.splitlines() == [
        "error: CDK_ENGINE: 'terraform-cdk-classic' is not an engine: use one of cdktf, cdktn"
    ], run.stderr


def test_the_synth_cache_key_covers_the_engine_and_its_version(monkeypatch):
    environ = {"PATH": os.environ.get("PATH", "")}
    before = synth_cache.input_key(environ)
    assert synth_cache.input_key(environ) == before
    other = "cdktn" if engine.NAME == "cdktf" else "cdktf"
    other_engine = synth_cache.input_key({**environ, engine.VARIABLE: other})
    real_version = engine.version
    monkeypatch.setattr(engine, "version", lambda name=None: "999.0.0" if (name or engine.NAME) == engine.NAME else real_version(name))
    other_version = synth_cache.input_key(environ)
    assert len({before, other_version, other_engine}) == 3
    assert synth_cache.environment_key(environ) != synth_cache.environment_key({**environ, engine.VARIABLE: other})


# --- the two engines side by side (tools/engine_compare.py) -------------------------------------------------------

ENGINE_PYTHONS = {name: venv / "bin" / "python" for name, venv in engine_compare.VENVS.items()}


def _both_engines() -> None:
    missing = [f"{name} ({path.relative_to(ROOT)})" for name, path in ENGINE_PYTHONS.items() if not path.exists()]
    if missing:
        pytest.skip(f"no environment for {', '.join(missing)}: `CDK_ENGINE=<engine> bash scripts/setup.sh` builds it")


def test_engines_synthesize_alike_but_for_the_listed_differences(capsys):
    """The shipped config and every valid fixture, synthesized with cdktf and with cdktn: every difference is one
    of engine_compare.ACCEPTED (with its reason), and each accepted difference does occur (none is stale)."""
    _both_engines()
    configs = engine_compare.default_configs()
    assert len(configs) > 5
    code = engine_compare.main([])
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"{len(configs)} config(s) synthesized" in out
    for entry in engine_compare.ACCEPTED:
        assert f": {entry.reason}" in out, f"stale accepted difference: {entry.reason}"


def _write(folder: Path, stack: dict, version: str) -> Path:
    (folder / "stacks" / "s").mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"version": version, "stacks": {"s": {}}}))
    (folder / "stacks" / "s" / "cdk.tf.json").write_text(json.dumps(stack))
    return folder


def _stack(namespace_metadata: object, helm: str = "3.1.1", source: str = "kubernetes", chart: str = "1.0.0") -> dict:
    return {
        "//": {"metadata": {"version": "0.21.0"}},
        "terraform": {"required_providers": {"helm": {"version": helm}, "kubernetes": {"source": source}}},
        "resource": {
            "kubernetes_namespace_v1": {"ns": {"metadata": namespace_metadata}},
            "helm_release": {"r": {"version": chart}},
        },
    }


def test_the_comparison_accepts_only_what_it_lists(tmp_path):
    meta = {"name": "a"}
    cdktf = _write(tmp_path / "cdktf", _stack(meta), "0.21.0")
    same_but_listed = _write(tmp_path / "ok", _stack([meta], helm="3.3.0", source="hashicorp/kubernetes"), "0.24.0")
    result = engine_compare.compare(cdktf, same_but_listed)
    assert result.unlisted == [] and sum(result.accepted.values()) == 4, result
    # A chart version, a namespace whose list holds something else, a provider from elsewhere: all reported.
    for name, stack in {
        "chart": _stack([meta], chart="1.0.1"),
        "metadata": _stack([{"name": "b"}]),
        "source": _stack([meta], source="someone/kubernetes"),
        "version": _stack([meta], helm="latest"),
    }.items():
        result = engine_compare.compare(cdktf, _write(tmp_path / name, stack, "0.24.0"))
        assert len(result.unlisted) == 1, (name, result)


def test_tests_read_list_blocks_as_single_blocks():
    stack = _stack([{"name": "a"}])
    assert engine_compare.single_blocks(stack)["resource"]["kubernetes_namespace_v1"]["ns"]["metadata"] == {"name": "a"}
    assert engine_compare.single_blocks(_stack({"name": "a"})) == _stack({"name": "a"})


def test_choosing_the_other_engine_runs_its_environment(tmp_path):
    """CDK_ENGINE alone switches: main.py started by the other environment's interpreter moves to the chosen one."""
    _both_engines()
    other = "cdktn" if engine.NAME == "cdktf" else "cdktf"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CDKTF_OUTDIR")}
    env.update({engine.VARIABLE: engine.NAME, "CDKTF_OUTDIR": str(tmp_path / "out"), "HELIX_SYNTH_CACHE": "0",
                "HELIX_CONFIG": str(engine_compare.FIXTURES / "existing-cluster.yaml")})
    run = subprocess.run([str(ENGINE_PYTHONS[other]), "-O", "main.py"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["version"] == engine.version()


def test_block_passes_a_nested_block_as_the_binding_declares_it():
    # Annotations as jsii writes them (strings here, as under `from __future__ import annotations`).
    class OneBlock:
        def __init__(self, *, metadata: Any | dict[str, Any]) -> None: ...

    class ListOfBlocks:
        def __init__(self, *, metadata: Any | Sequence[Any | dict[str, Any]]) -> None: ...

    value = {"name": "a"}
    assert engine.block(OneBlock, "metadata", value) is value
    assert engine.block(ListOfBlocks, "metadata", value) == [value]
    assert engine.block(ListOfBlocks, "metadata", [value]) == [value]
    # The real binding: a list under cdktn's kubernetes bindings, one block under cdktf's.
    shaped = engine.block(engine.NamespaceV1, "metadata", value)
    assert shaped == ([value] if engine.NAME == "cdktn" else value)
