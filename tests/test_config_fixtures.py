"""Config fixtures: every valid file loads, every invalid one is refused the way a user must see it.

Invalid fixtures live in tests/fixtures/invalid/, each starting with a comment `# expect: <message fragment>`.
Each goes through the app's entry point, `stacks.app.main()`, with HELIX_CONFIG pointing at it, and the test
asserts: exit status 2, the fragment printed, one `error: <file>: ...` line per problem (and the count line), no
traceback, nothing on stdout, and an existing cdktf.out left byte-identical (no staging folder left behind
either). That runs in this process (a config error costs ~10 ms here, ~0.5 s as a new process). A sample also
runs as `python main.py` in its own process, in the background: the same assertions on the real exit status and
output, and a CPU time that shows no jsii assembly was loaded.

Valid fixtures (tests/fixtures/valid/) are loaded in-process with planner.load.load_plan, not synthesized.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from planner.load import load_plan
from tests.conftest import background_fixture
from tests.helpers import MAX_CPU_SECONDS, Run, assert_refused, main_in_process, rel, seed_outdir, tree

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
VALID = sorted((FIXTURES / "valid").glob("*.yaml"))
INVALID = sorted((FIXTURES / "invalid").glob("*.yaml"))
# Run as `python main.py` too: an error of the YAML reader, and several of the schema at once.
SUBPROCESS_SAMPLE = ["malformed-yaml.yaml", "many-problems.yaml"]
# CPU seconds of the child process (its own, measured with wait4, so a busy machine doesn't skew it). A config
# error costs about half a second: interpreter, pydantic and PyYAML. Loading any jsii assembly costs several.


def expected_fragment(path: Path) -> str:
    first = path.read_bytes().split(b"\n", 1)[0].decode("utf-8")
    match = re.match(r"^# expect: (.+)$", first)
    assert match, f"{path.relative_to(ROOT)}: the first line must be '# expect: <message fragment>'"
    return match.group(1).strip()


def run_main(config: str, workdir: Path, extra_env: dict[str, str] | None = None) -> Run:
    """`python main.py` in a child process, over a previous output in workdir/cdktf.out."""
    outdir = workdir / "cdktf.out"
    before = seed_outdir(outdir)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELIX_")}
    env.update(HELIX_CONFIG=config, CDKTF_OUTDIR=str(outdir), **(extra_env or {}))
    returncode, stdout, stderr, cpu = run_measured([sys.executable, "main.py"], env)
    return Run(returncode, stdout, stderr, cpu, before, tree(outdir), sorted(p.name for p in workdir.iterdir()))


def run_measured(argv: list[str], env: dict[str, str]) -> tuple[int, str, str, float]:
    """Run a child in the project root; return its status, output and CPU seconds (user + system)."""
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with ThreadPoolExecutor(max_workers=1) as reader:
        stderr_future = reader.submit(proc.stderr.read)
        stdout = proc.stdout.read()
        stderr = stderr_future.result()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    proc.stdout.close()
    proc.stderr.close()
    return proc.returncode, stdout, stderr, usage.ru_utime + usage.ru_stime


@background_fixture("invalid_sample_runs", start=3)
def _invalid_sample_runs(tmp_path_factory) -> dict[str, Run]:
    """The sample of invalid fixtures through `python main.py`, one process after another."""
    return {name: run_main(f"tests/fixtures/invalid/{name}", tmp_path_factory.mktemp(name)) for name in SUBPROCESS_SAMPLE}


def test_there_are_fixtures():
    assert len(VALID) >= 3 and len(INVALID) >= 20
    assert {FIXTURES / "invalid" / name for name in SUBPROCESS_SAMPLE} <= set(INVALID)


@pytest.mark.parametrize("path", INVALID, ids=[p.name for p in INVALID])
def test_invalid_fixture_is_refused(path, tmp_path, monkeypatch, capsys):
    assert_refused(main_in_process(rel(path), tmp_path, monkeypatch, capsys), rel(path), expected_fragment(path))


@pytest.mark.parametrize("name", SUBPROCESS_SAMPLE)
def test_invalid_fixture_is_refused_by_python_main_py(name, invalid_sample_runs):
    path = FIXTURES / "invalid" / name
    assert_refused(invalid_sample_runs[name], rel(path), expected_fragment(path))


@pytest.mark.parametrize("path", VALID, ids=[p.name for p in VALID])
def test_valid_fixture_loads(path):
    plan = load_plan(path)
    assert plan.config.domain
    # Every placed component resolved to an exact version and a known layer.
    layers = {layer.name for layer in plan.layers}
    for comp in plan.components.values():
        assert comp.layer in layers and re.match(r"^v?\d+\.\d+\.\d+", comp.version), comp


def test_valid_fixture_override_applies():
    plan = load_plan(FIXTURES / "valid" / "provision-with-overrides.yaml")
    cilium = plan.components["cilium"]
    assert cilium.version == "1.16.5"
    # Mappings merge over the catalog's values: the override's key wins, the catalog's other keys stay.
    assert cilium.values["hubble"]["enabled"] is False
    assert set(cilium.values) > {"hubble"}


def test_missing_file(tmp_path, monkeypatch, capsys):
    run = main_in_process("tests/fixtures/invalid/no-such-file.yaml", tmp_path, monkeypatch, capsys)
    assert_refused(run, "tests/fixtures/invalid/no-such-file.yaml", "file not found")


def test_directory_instead_of_file(tmp_path, monkeypatch, capsys):
    run = main_in_process("tests/fixtures/invalid", tmp_path, monkeypatch, capsys)
    assert_refused(run, "tests/fixtures/invalid", "cannot read file")


def test_not_utf8(tmp_path, monkeypatch, capsys):
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(b"domain: caf\xe9.example\n")
    work = tmp_path / "work"
    work.mkdir()
    run = main_in_process(str(bad), work, monkeypatch, capsys)
    assert_refused(run, str(bad), "file is not UTF-8 text")


BOUNDED = """
import resource, sys
limit = 768 * 1024 * 1024
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
sys.argv = ["main.py"]
sys.path.insert(0, ".")
from stacks.app import main
rc = main()
# VmHWM, this process's own peak: getrusage's ru_maxrss keeps the peak of the image exec replaced, so a child
# forked from a large parent (pytest, with jsii loaded) would report the parent's size.
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print("jsii", "jsii" in sys.modules, "maxrss_kib", hwm)
sys.exit(rc)
"""


ALIAS_BOMBS = ["alias-bomb.yaml", "alias-flood.yaml"]


@background_fixture("alias_bomb_runs", start=3)
def _alias_bomb_runs(tmp_path_factory) -> dict[str, tuple[int, str, str, float, Path]]:
    """Each alias bomb through main() in a child process under a 768 MiB address-space limit."""
    runs = {}
    for name in ALIAS_BOMBS:
        outdir = tmp_path_factory.mktemp(name) / "cdktf.out"
        env = {k: v for k, v in os.environ.items() if not k.startswith("HELIX_")}
        env.update(HELIX_CONFIG=f"tests/fixtures/invalid/{name}", CDKTF_OUTDIR=str(outdir))
        runs[name] = (*run_measured([sys.executable, "-c", BOUNDED], env), outdir)
    return runs


@pytest.mark.parametrize("name", ALIAS_BOMBS)
def test_alias_bomb_bounded_time_and_memory(name, alias_bomb_runs):
    """Under a 768 MiB address-space limit the bomb is refused quickly, small in memory, without jsii."""
    returncode, stdout, stderr, cpu, outdir = alias_bomb_runs[name]
    assert returncode == 2, stdout + stderr
    assert "alias bomb" in stderr and "Traceback" not in stderr
    match = re.search(r"jsii (True|False) maxrss_kib (\d+)", stdout)
    assert match, stdout
    assert match.group(1) == "False", "a config error must be reported before any jsii assembly loads"
    assert int(match.group(2)) < 200 * 1024, f"peak RSS {int(match.group(2)) // 1024} MiB"
    assert cpu < MAX_CPU_SECONDS, f"{cpu:.2f} CPU s"
    assert not outdir.exists()


def test_alias_bomb_would_explode_without_the_bound():
    """The fixture really is a bomb: 82 aliases (under the alias bound) expand to 9**10 values,
    which no walk over the data could survive."""
    from planner.files import MAX_ALIASES, MAX_VALUES, expanded_size_exceeds

    text = (FIXTURES / "invalid" / "alias-bomb.yaml").read_text()
    assert text.count("*l") == 82 < MAX_ALIASES and "&l9" in text
    assert 9**10 > 1000 * MAX_VALUES
    assert expanded_size_exceeds([["x"] * 10] * 10_000, MAX_VALUES)
    assert not expanded_size_exceeds([["x"] * 10] * 9_000, MAX_VALUES)


def test_failed_synth_leaves_previous_output(tmp_path, monkeypatch, plan):
    """A synth that fails half-way (after writing into its staging folder) leaves cdktf.out untouched."""
    import stacks.app as app_module

    outdir = tmp_path / "cdktf.out"
    before = seed_outdir(outdir)

    class HalfWrittenApp:
        def __init__(self, staging: str):
            self.staging = Path(staging)

        def synth(self):
            (self.staging / "stacks" / "nodes").mkdir(parents=True)
            (self.staging / "manifest.json").write_text("{}")
            raise RuntimeError("synth failed half-way")

    monkeypatch.setattr(app_module, "build_app", lambda plan, outdir: HalfWrittenApp(outdir))
    with pytest.raises(RuntimeError, match="half-way"):
        app_module.synthesize(plan, outdir)
    assert tree(outdir) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cdktf.out"]


def test_successful_swap_replaces_whole_output(tmp_path, monkeypatch, plan):
    """On success the new output replaces the old folder as a whole: no stale file of the old one survives."""
    import stacks.app as app_module

    outdir = tmp_path / "cdktf.out"
    seed_outdir(outdir)

    class TinyApp:
        def __init__(self, staging: str):
            self.staging = Path(staging)

        def synth(self):
            self.staging.mkdir(parents=True)
            (self.staging / "manifest.json").write_text('{"new": true}')

    monkeypatch.setattr(app_module, "build_app", lambda plan, outdir: TinyApp(outdir))
    report = app_module.synthesize(plan, outdir)
    # No generated file of the old output survives at its place; the old stack `nodes` holds a saved plan (a
    # file Terraform keeps, issue 22), so its folder is kept and named, as a stack no longer in the app.
    after = tree(outdir)
    assert after.pop("manifest.json") == b'{"new": true}'
    assert after.pop(".helix-output").startswith(b'{"project": "helix"')
    assert after == {"stacks/nodes/cdk.tf.json": b'{"previous": true}\n', "stacks/nodes/plan": bytes(range(256))}
    assert report.folders_kept == ["nodes"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cdktf.out"]
