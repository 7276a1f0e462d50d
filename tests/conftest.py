"""Shared fixtures: the full app is synthesized once per test session, and every test reads that output.

Work that runs in other processes and does not need the in-process synth (the real `cdktf synth`, the
installed-package venv running every example, a sample of broken configs through `python main.py`) is declared
with `background_fixture`: it starts in a thread as soon as the session starts, so the machine's second core
runs it while this process synthesizes and runs the in-process tests; the tests that wait for it run last.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# The Node LTS scripts/setup.sh puts in the project when the system's node is older: jsii (in this process, and
# in every app run below) and the cdktf CLI run on it, as they do under the Taskfile and main.py.
PROJECT_NODE_BIN = ROOT / ".node" / "node_modules" / ".bin"
if (PROJECT_NODE_BIN / "node").exists():
    os.environ.setdefault("JSII_NODE", str(PROJECT_NODE_BIN / "node"))
os.environ.setdefault("CHECKPOINT_DISABLE", "1")
os.environ.setdefault("DISABLE_VERSION_CHECK", "1")
# Processes are started with fork, not vfork: the background threads below start processes while the main thread
# does too, and a fresh-clone CI run on Python 3.11.7 had one exec fail with EFAULT ("[Errno 14] Bad address") on a
# path that existed, which a vforked child sharing the parent's memory with running threads can see since 3.11
# releases the GIL around vfork (CPython gh-104372). `_USE_VFORK` is CPython's own off switch for this (gh-91401).
subprocess._USE_VFORK = False  # type: ignore[attr-defined]

from tools.engine_compare import single_blocks  # noqa: E402  (needs ROOT on sys.path)

# --- nothing left in /tmp ---------------------------------------------------------------------------------
#
# Everything a session writes to temporary folders goes under one folder, removed when the session ends: pytest's
# tmp_path folders, the jsii kernels' node_modules copies, cdktf Testing's cdktf.outdir.* folders and the cdktf
# CLI's staging, in this process and in every process it starts (TMPDIR). To keep pytest's folders for a look
# after a failure, give them a place: `task test -- --basetemp=/some/dir`.

_SESSION_TMP: list[Path] = []


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config) -> None:
    import tempfile

    # An xdist worker inherits the controller's TMPDIR (its session folder) and makes its own folder inside it.
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    inherited = Path(tempfile.gettempdir())
    session_tmp = Path(tempfile.mkdtemp(prefix=f"helix-tests-{worker}-" if worker else "helix-tests-"))
    _SESSION_TMP.append(session_tmp)
    os.environ["TMPDIR"] = str(session_tmp)
    # Reviews keep synthesized revisions in a cache (tools/review.py): the session's, not the user's.
    os.environ["HELIX_REVIEW_CACHE"] = str(session_tmp / "review-cache")
    tempfile.tempdir = None  # gettempdir() reads TMPDIR again
    basetemp = config.option.basetemp
    if basetemp is None or (worker and Path(basetemp).is_relative_to(inherited)):
        config.option.basetemp = str(session_tmp / "pytest")


def pytest_sessionfinish(session, exitstatus) -> None:
    import shutil

    if _SESSION_TMP:
        shutil.rmtree(_SESSION_TMP[0], ignore_errors=True)


class Synth:
    """A synthesized app on disk, with helpers to read its stacks."""

    def __init__(self, outdir: Path):
        self.outdir = outdir
        self.manifest = json.loads((outdir / "manifest.json").read_text())
        self._stacks: dict[str, dict] = {}

    @property
    def stack_names(self) -> list[str]:
        return sorted(self.manifest["stacks"])

    def stack(self, name: str) -> dict:
        if name not in self._stacks:
            path = self.outdir / self.manifest["stacks"][name]["synthesizedStackPath"]
            # Blocks one engine writes as a list of one, the other as one block: read as one block (the engine
            # comparison in tests/test_engine.py checks the raw difference).
            self._stacks[name] = single_blocks(json.loads(path.read_text()))
        return self._stacks[name]

    def stack_dir(self, name: str) -> Path:
        return self.outdir / self.manifest["stacks"][name]["workingDirectory"]

    def resources(self, name: str, rtype: str) -> dict[str, dict]:
        return self.stack(name).get("resource", {}).get(rtype, {})

    def all_resources(self, rtype: str) -> dict[tuple[str, str], dict]:
        return {(s, k): v for s in self.stack_names for k, v in self.resources(s, rtype).items()}

    def releases(self) -> dict[str, tuple[str, dict]]:
        """Helm releases by release name: (stack, resource)."""
        return {r["name"]: (s, r) for (s, _), r in self.all_resources("helm_release").items()}


# --- background work ----------------------------------------------------------------------------------------

BACKGROUND_JOBS: dict[str, Callable[[pytest.TempPathFactory], Any]] = {}
BACKGROUND_ORDER: dict[str, int] = {}
# Two at a time: with this process's own work that keeps a 2-core machine busy without oversubscribing it.
BACKGROUND_WORKERS = 2


SLOW_JOBS: set[str] = set()


def background_fixture(name: str, start: int, slow: bool = True):
    """Decorator: a session fixture `name` whose value `job(tmp_path_factory)` is computed in a background thread
    started with the session (only if a selected test uses the fixture). Jobs start in order of `start`: give the
    longest the lowest, so that the short ones fill in at the end. A `slow` job (the default: these run real tools
    in other processes) puts every test that uses it in the slow lane, which `task test` leaves to `task test-all`."""

    def register(job: Callable[[pytest.TempPathFactory], Any]):
        BACKGROUND_JOBS[name] = job
        BACKGROUND_ORDER[name] = start
        if slow:
            SLOW_JOBS.add(name)

        @pytest.fixture(scope="session", name=name)
        def waiting(_background_jobs):
            return _background_jobs.result(name)

        waiting.__doc__ = job.__doc__
        return waiting

    return register


class BackgroundJobs:
    """The session's background jobs. `lazy` (an xdist worker, which does not know which tests it will get): a job
    starts when a test first needs it, not with the session."""

    def __init__(self, factory: pytest.TempPathFactory, names: list[str], lazy: bool = False):
        self._factory = factory
        self.started = time.monotonic()
        self.spans: dict[str, tuple[float, float]] = {}  # name -> (start, end), seconds since the session's start
        self._pool = ThreadPoolExecutor(max_workers=BACKGROUND_WORKERS, thread_name_prefix="background")
        self._futures: dict[str, Future] = {}
        if not lazy:
            for name in names:
                self._futures[name] = self._pool.submit(self._timed, name, factory)

    def _timed(self, name: str, factory: pytest.TempPathFactory) -> Any:
        start = time.monotonic() - self.started
        try:
            return BACKGROUND_JOBS[name](factory)
        finally:
            self.spans[name] = (start, time.monotonic() - self.started)

    def result(self, name: str) -> Any:
        future = self._futures.get(name)
        if future is None or future.cancel():
            # Not started: lazy, or both threads busy. Run it here rather than wait idle for a thread.
            return self._timed(name, self._factory)
        return future.result()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


_SUMMARY: list[str] = []


def pytest_terminal_summary(terminalreporter, config) -> None:
    """One line on where the background work went, for whoever tunes the suite's wall time; one on the slow lane
    when this run left it out (`task test`)."""
    if _SUMMARY and _SUMMARY[0]:
        terminalreporter.write_line("background jobs (start-end, s): " + _SUMMARY[0])
    if config.option.lane == EVERYDAY and not config.option.collectonly:
        terminalreporter.write_line("the slow lane (tests marked slow) was not run: `task test-all` runs every test, as CI does")


def _background_names(item: pytest.Item) -> set[str]:
    return set(getattr(item, "fixturenames", ())) & set(BACKGROUND_JOBS)


# `task test` runs `--lane everyday -n <cores> --dist loadfile`: each module's tests run in one xdist worker (its
# module-scoped fixtures, such as variant synths, are built once), and a worker starts a background job when one of
# its tests first needs it (the everyday lane's only background job is mypy, which test_lint.py alone waits for).
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
EVERYDAY = "everyday"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--lane", choices=("all", EVERYDAY), default="all",
        help="everyday: leave out the tests marked slow (`task test`; a -m or -k of yours narrows it further); "
             "all: every test (`task test-all`, CI)",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_itemcollected(item: pytest.Item) -> None:
    """A test that waits for a slow background job is a slow test (marked before `-m` selects)."""
    if _background_names(item) & SLOW_JOBS:
        item.add_marker(pytest.mark.slow)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The everyday lane leaves out the slow tests; tests that wait for background work run after the others."""
    if config.option.lane == EVERYDAY:
        slow = [i for i in items if i.get_closest_marker("slow")]
        if slow:
            config.hook.pytest_deselected(items=slow)
            items[:] = [i for i in items if not i.get_closest_marker("slow")]
    items[:] = [i for i in items if not _background_names(i)] + [i for i in items if _background_names(i)]


@pytest.fixture(scope="session", autouse=True)
def _background_jobs(request, tmp_path_factory):
    needed = set().union(*(_background_names(item) for item in request.session.items))
    tmp_path_factory.getbasetemp()  # created here, once: two jobs creating it at the same time would race
    jobs = BackgroundJobs(
        tmp_path_factory, sorted(needed, key=lambda name: (BACKGROUND_ORDER[name], name)), lazy=XDIST_WORKER is not None
    )
    yield jobs
    jobs.close()
    _SUMMARY[:] = [", ".join(f"{name} {a:.1f}-{b:.1f}" for name, (a, b) in sorted(jobs.spans.items(), key=lambda kv: kv[1]))]


# --- which config: the code's tests run on fixtures, not on the shipped file --------------------------------
#
# description  tests/fixtures/description/helix.yaml, a frozen copy of the cluster description's config: the
#              in-process synth every test reads, and the only config the description's fidelity checks
#              (3 servers + 4 agents, every seed component, ...) run on (`description_synth`, `description_plan`).
# edited       the description's copy after a week's user edits (tests/user_edits.py), synthesized in this
#              process (a second app costs about a second here): the code's checks run on it too.
# shipped      config/helix.yaml, the user's own file. No test of code reads it: it is checked only for what
#              holds for any user's config (it validates, synthesizes, every reference resolves, its address
#              snapshot, docs and diagram are current: tests/test_shipped_config.py, test_safety.py, test_cli.py),
#              and tests/test_any_config.py proves those checks pass on heavily edited copies of it.
#
# Tests that take `synth` or `plan` run once per fixture config above (description and edited).

DESCRIPTION_CONFIG = ROOT / "tests" / "fixtures" / "description" / "helix.yaml"
SHIPPED_CONFIG = ROOT / "config" / "helix.yaml"


def _parsed(path: Path) -> Any:
    import yaml

    return yaml.safe_load(path.read_text())


def backend_kind(stack: dict) -> str:
    """The state backend a synthesized stack uses: `remote` is rendered as Terraform's `cloud` block."""
    terraform = stack["terraform"]
    return "remote" if "cloud" in terraform else next(iter(terraform["backend"]))


def shipped_is_description() -> bool:
    """The shipped config says exactly what the description's frozen copy says (comments aside)."""
    return _parsed(SHIPPED_CONFIG) == _parsed(DESCRIPTION_CONFIG)


# The user's config is not among them: what these tests assert is about the code, on configs we know.
CONFIGS = ["description", "edited"]


def _synthesize_here(plan, outdir: Path) -> Synth:
    """A second app in this process: the jsii assemblies are loaded already, so it costs about a second,
    against four for a fresh `python main.py` (which loads them again)."""
    from stacks.app import synthesize

    synthesize(plan, outdir)
    return Synth(outdir)


@pytest.fixture(scope="session")
def edited_synth(tmp_path_factory, description_synth) -> tuple[Synth, Path, list[str]]:
    """The description's copy after the user edits of tests/user_edits.py, synthesized: (synth, config, edits)."""
    from planner.load import load_plan
    from tests.user_edits import write_edited_copy

    work = tmp_path_factory.mktemp("edited")
    config = work / "helix.yaml"
    done = write_edited_copy(DESCRIPTION_CONFIG, config)
    return _synthesize_here(load_plan(config), work / "cdktf.out"), config, done


@pytest.fixture(scope="session")
def shipped_synth(tmp_path_factory, shipped_plan, description_synth) -> Synth:
    """config/helix.yaml synthesized (the description's synth when the two files say the same)."""
    if shipped_is_description():
        return description_synth
    return _synthesize_here(shipped_plan, tmp_path_factory.mktemp("shipped") / "cdktf.out")


@pytest.fixture(scope="session", params=CONFIGS)
def config_name(request) -> str:
    return request.param


@pytest.fixture(scope="session")
def description_plan():
    from planner.load import load_plan

    return load_plan(DESCRIPTION_CONFIG)


@pytest.fixture(scope="session")
def shipped_plan():
    from planner.load import load_plan

    return load_plan(SHIPPED_CONFIG)


@pytest.fixture(scope="session")
def description_synth(description_plan, tmp_path_factory) -> Synth:
    """The description's config, synthesized once through the same path `python main.py` takes."""
    from stacks.app import synthesize

    outdir = tmp_path_factory.mktemp("synth") / "cdktf.out"
    synthesize(description_plan, outdir)
    return Synth(outdir)


@pytest.fixture(scope="session")
def shipped_synth_or_description(shipped_synth) -> Synth:
    """The shipped config's synth (the description's when the two files say the same)."""
    return shipped_synth


@pytest.fixture(scope="session")
def plan(config_name, request):
    """The platform plan of each config in CONFIGS (config-independent tests)."""
    from planner.load import load_plan

    if config_name == "description":
        return request.getfixturevalue("description_plan")
    _, config, _ = request.getfixturevalue("edited_synth")
    return load_plan(config)


@pytest.fixture(scope="session")
def synth(config_name, request) -> Synth:
    """Each config in CONFIGS, synthesized (config-independent tests)."""
    if config_name == "description":
        return request.getfixturevalue("description_synth")
    return request.getfixturevalue("edited_synth")[0]


# --- the real CLI, run once: the end-to-end test, and the second synth that determinism is checked against ---

CDKTF = ROOT / "node_modules" / ".bin" / "cdktf"
# Credential variables a deployer commonly has set; none may leak into the output.
AMBIENT_SECRETS = {
    "CLOUDFLARE_API_TOKEN": "ambient-cloudflare-7f3a9c1e5b",
    "AWS_SECRET_ACCESS_KEY": "ambient-aws-2d8e4f6a0c",
    "PGPASSWORD": "ambient-pg-9b1c3e5d7f",
    "TF_TOKEN_app_terraform_io": "ambient-tfc-4a6c8e0b2d",
}


def sensitive_variables(synth: Synth) -> dict[str, set[str]]:
    """Variable name -> stacks declaring it sensitive."""
    out: dict[str, set[str]] = {}
    for stack in synth.stack_names:
        for name, var in synth.stack(stack).get("variable", {}).items():
            if var.get("sensitive"):
                out.setdefault(name, set()).add(stack)
    return out


def readme_section(title: str) -> str:
    """The text of README's `## <title>` section, up to the next `## ` heading."""
    readme = (ROOT / "README.md").read_text()
    start = readme.index(f"\n## {title}\n")
    end = readme.find("\n## ", start + 1)
    return readme[start : end if end != -1 else len(readme)]


def readme_secret_variables() -> list[str]:
    """The variables README's Secrets table tells users to set (tests check it lists every sensitive variable)."""
    names: set[str] = set()
    for line in readme_section("Secrets").splitlines():
        if line.startswith("| `"):
            names |= set(re.findall(r"`([a-z0-9_]+)`", line.split("|")[1]))
    return sorted(names)


def injected_secrets() -> dict[str, str]:
    """A distinctive value for every variable of README's Secrets table, as a deployer would export it, plus
    ambient credential variables. (From the README rather than the synth, so the CLI synth can start first;
    test_safety checks that these cover every sensitive variable of the synth.)"""
    values = {}
    for i, name in enumerate(readme_secret_variables()):
        values[f"TF_VAR_{name}"] = f"s3cr3t-{name}-{i:02d}-q7Zk2VwX9pLm"
    # Shaped like a real age identity (split here, so the scan of tracked files doesn't flag this file).
    values["TF_VAR_sops_age_key"] = "AGE-SECRET-" + "KEY-1QQQTESTVALUEQQQ9X8Y7Z6W5V4U3T2S1R0P9N8M7L6K5J4H3G2F1E0D"
    return {**values, **AMBIENT_SECRETS}


def cli_env(**extra: str) -> dict[str, str]:
    """The environment `cdktf` runs in: the project's node and this interpreter's venv first on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HELIX_", "TF_VAR_"))}
    env["PATH"] = os.pathsep.join(
        [str(Path(sys.executable).parent), str(PROJECT_NODE_BIN), str(CDKTF.parent), env.get("PATH", "")]
    )
    env.update(
        CHECKPOINT_DISABLE="1",
        DISABLE_VERSION_CHECK="1",
        CI="1",
        **extra,
    )
    return env


class CliSynth(Synth):
    """`cdktf synth` through the real CLI, with its output and the secrets that were in its environment."""

    def __init__(self, outdir: Path, result: subprocess.CompletedProcess, secrets: dict[str, str]):
        self.result = result
        self.secrets = secrets
        if result.returncode == 0:
            super().__init__(outdir)
        else:
            self.outdir = outdir


@background_fixture("cli_synth", start=0)
def _cli_synth(tmp_path_factory) -> CliSynth:
    """The description's config through `cdktf synth`: another process, hash seed and folder, with every sensitive
    variable and common credential variables set in the environment."""
    assert CDKTF.exists(), "the cdktf CLI is missing: run `bash scripts/setup.sh` (npm ci installs it)"
    work = tmp_path_factory.mktemp("cli-synth-elsewhere")
    out = work / "nested" / "cdktf.out"
    secrets = injected_secrets()
    result = subprocess.run(
        [str(CDKTF), "synth", "--output", str(out)],
        cwd=ROOT,
        # The description's config, as the in-process synth it is compared with; the CLI stages in TMPDIR.
        env=cli_env(**secrets, PYTHONHASHSEED="4242", HELIX_CONFIG=str(DESCRIPTION_CONFIG), TMPDIR=str(work)),
        capture_output=True,
        text=True,
        timeout=600,
    )
    cli = CliSynth(out, result, secrets)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return cli
