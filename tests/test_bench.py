"""The benchmark's tooling (bench/): the scaled config, the process-tree meter, validation before jsii, lazy providers.

No timing assertions here: figures come from `python -m bench.run` and live in docs/performance.md.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from bench import proc, scale
from planner.load import load_plan
from tests.conftest import DESCRIPTION_CONFIG, background_fixture

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def scaled(tmp_path_factory):
    """The description's config at ten times its size, validated by the app's own loader."""
    cfg, catalog = scale.generate(tmp_path_factory.mktemp("x10"), 10, DESCRIPTION_CONFIG)
    mp = pytest.MonkeyPatch()
    mp.setenv("HELIX_CATALOG_DIR", str(catalog))
    try:
        yield load_plan(cfg)
    finally:
        mp.undo()


@pytest.mark.slow
def test_scaled_config_has_70_nodes_and_valid_quorum(scaled, description_plan):
    plan = description_plan
    nodes = scaled.config.cluster.nodes
    assert len(nodes) == 10 * len(plan.config.cluster.nodes) == 70
    assert len(scaled.config.servers) == len(plan.config.servers)
    assert len({n.name for n in nodes}) == len({n.address for n in nodes}) == 70


def test_scaled_config_has_ten_times_the_releases(scaled, description_plan):
    plan = description_plan
    seed = plan.components
    big = scaled.components
    assert len(big) == 10 * len(seed)
    release_names = [c.release_name for c in big.values()]
    assert len(set(release_names)) == len(release_names)
    # Each copy sits in its own namespace, in the layer of its original, needing its own copies.
    for cid, comp in seed.items():
        copy = big[f"{cid}-x7"]
        assert copy.namespace == f"{comp.namespace}-x7"
        assert copy.layer == comp.layer
        assert copy.chart == comp.chart and copy.version == comp.version
        assert set(copy.needs) == {f"{d}-x7" for d in comp.needs}
    per_layer = Counter(c.layer for c in big.values())
    assert per_layer == Counter({k: 10 * v for k, v in Counter(c.layer for c in seed.values()).items()})


def test_scaled_config_keeps_the_seed_namespaces(scaled, description_plan):
    plan = description_plan
    assert set(plan.config.namespaces) < set(scaled.config.namespaces)
    assert len(scaled.config.namespaces) == 10 * len(plan.config.namespaces)


@background_fixture("meter_run", start=4)
def _meter_run(tmp_path_factory) -> proc.Measurement:
    """A child that starts a grandchild holding ~80 MB, through the benchmark's meter."""
    code = textwrap.dedent(
        """
        import subprocess, sys
        subprocess.run([sys.executable, "-c", "b = bytearray(80 * 1024 * 1024); b[::4096] = b'x' * len(b[::4096]); import time; time.sleep(0.3)"], check=True)
        """
    )
    return proc.run([sys.executable, "-c", code], interval=0.01)


def test_meter_counts_grandchildren(meter_run):
    """The tree's peak includes the grandchild's."""
    m = meter_run
    assert m.returncode == 0
    assert len(m.peaks_kb) >= 2
    assert m.sum_of_peaks_kb >= 80 * 1024
    assert m.sum_of_peaks_kb > max(m.peaks_kb.values())
    assert m.largest_kb >= 80 * 1024
    assert m.cpu_s > 0


@background_fixture("broken_config_run", start=4)
def _broken_config_run(tmp_path_factory) -> subprocess.CompletedProcess:
    """main() on a config with an out-of-range port, in a child that reports whether jsii was imported."""
    bad = tmp_path_factory.mktemp("broken") / "helix.yaml"
    bad.write_text(DESCRIPTION_CONFIG.read_text().replace("api_port: 6443", "api_port: 70000", 1))
    code = "import sys\nfrom stacks.app import main\nrc = main()\nprint('jsii' in sys.modules)\nsys.exit(rc)"
    env = {**os.environ, "HELIX_CONFIG": str(bad)}
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)


def test_broken_config_is_reported_before_any_jsii_import(broken_config_run):
    run = broken_config_run
    assert run.returncode == 2, run.stderr
    assert "cluster.api_port" in run.stderr
    assert run.stdout.strip() == "False"


def test_provider_roots_are_lazy(synth):
    from constructs_lib import engine

    k8s = engine.provider_module("kubernetes")
    loaded = [m for m in sys.modules if m.startswith(engine.provider_package("cloudflare") + ".")]
    # The root imports 559 resource modules when eager; the app uses the provider and little else.
    assert 0 < len(loaded) < 50, loaded
    # Submodules still resolve on first use, by attribute and by from-import.
    assert k8s.config_map_v1.ConfigMapV1.__name__ == "ConfigMapV1"
    # `from <package> import service_account_v1`, with the package named by the engine.
    service_account_v1 = __import__(engine.provider_package("kubernetes"), fromlist=["service_account_v1"]).service_account_v1

    assert service_account_v1.ServiceAccountV1.__module__ == engine.provider_package("kubernetes") + ".service_account_v1"
    with pytest.raises(AttributeError):
        k8s.no_such_resource


def test_split_reads_the_cpu_time_of_live_descendants():
    """bench/split.py's /proc reading: a grandchild that has burnt 0.25 s of CPU and is still alive is counted
    for its parent, and a process without children counts nothing."""
    from bench.split import _descendants_cpu_s

    burn = "import sys, time\nwhile time.process_time() < 0.25: pass\nprint('ready', flush=True)\nsys.stdin.read()"
    parent = f"import subprocess, sys\nsubprocess.run([sys.executable, '-c', {burn!r}])"
    child = subprocess.Popen([sys.executable, "-c", parent], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        assert _descendants_cpu_s(child.pid) >= 0.2
    finally:
        child.stdin.close()
        child.wait()
    lone = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        assert _descendants_cpu_s(lone.pid) == 0.0
    finally:
        lone.stdin.close()
        lone.wait()


def test_everyday_lane_arguments_are_the_taskfiles():
    """The benchmark times what `task test` runs here: the everyday lane, one worker per core up to four."""
    from bench.run import everyday_lane_args

    args = everyday_lane_args()
    assert args[args.index("--lane") + 1] == "everyday" and args[args.index("--dist") + 1] == "loadfile"
    cores = len(os.sched_getaffinity(0))
    assert int(args[args.index("-n") + 1]) == (0 if cores == 1 else min(4, cores))


@pytest.mark.slow
def test_the_review_measurement_reviews_one_changed_value(tmp_path):
    """The review figure is a real review of a clone: both sides synthesized, the one change found in the summary."""
    from bench.run import base_env, measure_review

    summary = measure_review(sys.executable, base_env(), tmp_path, 1, DESCRIPTION_CONFIG)
    assert summary["runs"] == 1 and summary["wall_s"] > 0
    assert "platform-0@bench.invalid" in (tmp_path / "review.md").read_text()
    assert len(list(tmp_path.glob("review-cache-0/*/cdktf.out"))) == 2, "the base and the working tree, each synthesized"
