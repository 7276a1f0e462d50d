"""Synth benchmark: the jsii floor against the full synth, the no-op synth, the CLI, a 10x config, a broken config,
`task review` and `task test`.

    python -m bench.run [--runs 3] [--eager-runs 1] [--test-runs 3] [--factor 10] [--cli PATH] [--skip-cli] [--skip-scale]
                        [--skip-review] [--skip-tests] [--json FILE] [--verify-charts DIR]

Every measured command is a fresh process; the floor and the full synth run alternately, and each test-suite
run follows a floor run, so that a change in the machine's speed hits both sides of a ratio. The synth is
cdktf.json's app command (`python -O main.py`); plain `python main.py` and `task synth` (which `task diff` and
`task deploy` run first) are reported beside it. The review runs on a clone of HEAD with one value of the config
changed and an empty review cache (both sides synthesized); the suite is `task test`'s lane (its pytest arguments
read from the Taskfile). Reports medians of wall time, CPU time (user + system of the whole process
tree) and peak RSS (sum of each process's peak: python and the two node processes of the jsii runtime;
see bench/proc.py), and checks the targets of docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import proc, scale  # noqa: E402

TARGETS = {
    "wall_ratio": 1.8,  # full synth / floor, wall time (issue 28; 1.15 was out of reach on jsii, see docs/performance.md)
    "noop_ratio": 0.3,  # a synth with unchanged inputs (the synth cache) / floor, wall time
    "noop_s": 0.5,  # the same in seconds
    "rss_ratio": 1.2,  # full synth / floor, peak RSS
    "ms_per_resource": 10.0,  # additional synth wall time per additional resource
    "tests_s": 40.0,  # `task test` on a quiet machine, seconds (issue 28)
    "review_s": 8.0,  # `task review BASE=HEAD HEAD=WORKTREE` with one changed value, nothing cached (issue 28)
    "broken_s": 1.0,  # a broken config reported in under a second
    "verify_s": 30.0,  # task verify over the whole platform, warm cache, 2 cores (issue 13)
    "task_ratio": 1.2,  # `task synth` (and task diff's synth part) / the app itself (python -O main.py), wall time
}


def base_env() -> dict[str, str]:
    env = dict(os.environ)
    # The node every app run uses (main.py and the Taskfile pick the project's LTS in .node/ when it exists):
    # the floor and the app must start the same one.
    if (ROOT / ".node" / "node_modules" / ".bin" / "node").exists():
        env.setdefault("JSII_NODE", str(ROOT / ".node" / "node_modules" / ".bin" / "node"))
    env.setdefault("CHECKPOINT_DISABLE", "1")
    env.setdefault("DISABLE_VERSION_CHECK", "1")
    for var in ("HELIX_CONFIG", "HELIX_CATALOG_DIR", "CDKTF_OUTDIR", "HELIX_EAGER_PROVIDERS"):
        env.pop(var, None)
    # Some sandboxes set this; on a user's machine Python caches the project's compiled modules (__pycache__,
    # git-ignored) after the first run, and the warm-up run does that here.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def count_resources(outdir: Path) -> tuple[int, int, list[str]]:
    """(resources, data sources, provider names) over every stack of a synth output."""
    resources = data = 0
    providers: set[str] = set()
    manifest = json.loads((outdir / "manifest.json").read_text())
    for stack in manifest["stacks"].values():
        doc = json.loads((outdir / stack["synthesizedStackPath"]).read_text())
        resources += sum(len(v) for v in doc.get("resource", {}).values())
        data += sum(len(v) for v in doc.get("data", {}).values())
        providers |= set(doc.get("terraform", {}).get("required_providers", {}))
    return resources, data, sorted(providers)


def app_argv(py: str) -> list[str]:
    """cdktf.json's app command run with this interpreter: what `cdktf synth` and `task synth` start."""
    command = json.loads((ROOT / "cdktf.json").read_text())["app"].split()
    if command[:2] == ["pipenv", "run"]:
        command = command[2:]
    if not Path(command[0]).name.startswith("python"):
        raise SystemExit(f"cdktf.json: expected a python app command, got {command!r}")
    return [py, *command[1:]]


def find_cli(given: str | None) -> str | None:
    candidates = [given] if given else []
    candidates += [str(ROOT / "node_modules" / ".bin" / "cdktf"), shutil.which("cdktf") or "", "/tmp/npmt/node_modules/.bin/cdktf"]
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


class Series:
    """Repeated measurements of one command."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.runs: list[proc.Measurement] = []

    def add(self, m: proc.Measurement) -> proc.Measurement:
        if m.returncode not in (0, 2):
            raise SystemExit(f"{self.name} failed (exit {m.returncode}):\n{m.stderr[-2000:]}")
        self.runs.append(m)
        return m

    def median(self, attr: str) -> float:
        return statistics.median(getattr(m, attr) for m in self.runs)

    def summary(self) -> dict:
        return {
            "runs": len(self.runs),
            "wall_s": round(self.median("wall_s"), 3),
            "wall_s_all": [round(m.wall_s, 3) for m in self.runs],
            "cpu_s": round(self.median("cpu_s"), 3),
            "peak_rss_mb": round(self.median("sum_of_peaks_kb") / 1024, 1),
            # Largest simultaneous RSS of the tree: the meaningful figure for a test suite, whose subprocesses
            # run one after another (the sum of their peaks is not a peak).
            "peak_concurrent_mb": round(self.median("peak_total_kb") / 1024, 1),
            "largest_process_mb": round(self.median("largest_kb") / 1024, 1),
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="repetitions of each measurement (default 3)")
    parser.add_argument("--factor", type=int, default=10, help="size of the largest scaled config (default 10)")
    parser.add_argument("--also-factor", type=int, default=3,
                        help="a smaller scaled config, to see the cost per resource stay flat (default 3; 0: none)")
    parser.add_argument("--eager-runs", type=int, default=1,
                        help="runs of the eager floor, for reference (default 1: it takes several times the floor)")
    parser.add_argument("--test-runs", type=int, default=3, help="runs of `task test`, the everyday lane (default 3)")
    parser.add_argument("--cli", help="path of the cdktf CLI (default: node_modules/.bin/cdktf, then PATH)")
    parser.add_argument("--skip-cli", action="store_true")
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--skip-tests", action="store_true")
    parser.add_argument("--skip-review", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--verify-charts", type=Path, default=os.environ.get("HELIX_CHARTS") or None,
                        help="a HELIX_CHARTS folder: also time `task verify` on the seed's stacks with a warm cache "
                             "(default: $HELIX_CHARTS; skipped without one)")
    args = parser.parse_args(argv)

    py = sys.executable
    env = base_env()
    work = Path(tempfile.mkdtemp(prefix="helix-bench-"))
    load_before = os.getloadavg()
    results: dict = {"cpus": os.cpu_count(), "python": sys.version.split()[0]}

    app = app_argv(py)
    plain = [py, "main.py"]
    results["app_command"] = " ".join(["python", *app[1:]])

    def synth_cmd(outdir: Path, extra: dict[str, str] | None = None, argv: list[str] | None = None
                  ) -> Callable[[], proc.Measurement]:
        def go() -> proc.Measurement:
            shutil.rmtree(outdir, ignore_errors=True)
            return proc.run(argv or app, env={**env, "CDKTF_OUTDIR": str(outdir), **(extra or {})}, cwd=str(ROOT))

        return go

    try:
        # Warm-up (not counted): fills the page cache and tells which providers the app uses.
        seed_out = work / "seed.out"
        warm = synth_cmd(seed_out)()
        if warm.returncode != 0:
            raise SystemExit(f"{results['app_command']} failed:\n{warm.stderr[-2000:]}")
        resources, data, providers = count_resources(seed_out)
        results.update(providers=providers, seed_resources=resources, seed_data_sources=data)
        print(f"providers used: {', '.join(providers)}; seed: {resources} resources, {data} data sources", flush=True)

        floor = Series("floor")
        eager = Series("eager floor")
        full = Series(results["app_command"])
        task_synth = Series("task synth")
        unoptimized = Series("python main.py")
        noop = Series("no-op synth")
        task_exe = ROOT / ".venv" / "bin" / "task"
        if not os.access(task_exe, os.X_OK):
            task_exe = None
        floor_cmd = [py, str(ROOT / "bench" / "floor.py"), *providers]
        for i in range(args.runs):
            floor.add(proc.run(floor_cmd, env=env, cwd=str(ROOT)))
            full.add(synth_cmd(seed_out)())
            # Again with nothing changed: the output the full synth just stamped is reused (stacks/synth_cache.py).
            noop.add(proc.run(app, env={**env, "CDKTF_OUTDIR": str(seed_out)}, cwd=str(ROOT)))
            if task_exe is not None:
                # `task synth` as a user runs it (task diff and task deploy run this same task first).
                task_synth.add(synth_cmd(seed_out, argv=[str(task_exe), "synth"])())
            if app != plain:
                unoptimized.add(synth_cmd(seed_out, argv=plain)())
            if i < args.eager_runs:
                eager.add(proc.run([*floor_cmd, "--eager"], env=env, cwd=str(ROOT)))
            print(f"  run {i + 1}: floor {floor.runs[-1].wall_s:.2f}s  synth {full.runs[-1].wall_s:.2f}s"
                  f"  no-op {noop.runs[-1].wall_s:.2f}s"
                  + (f"  task synth {task_synth.runs[-1].wall_s:.2f}s" if task_synth.runs else "")
                  + (f"  without -O {unoptimized.runs[-1].wall_s:.2f}s" if unoptimized.runs else "")
                  + (f"  eager floor {eager.runs[-1].wall_s:.2f}s" if i < args.eager_runs else ""), flush=True)
        results["floor"] = floor.summary()
        if eager.runs:
            results["eager_floor"] = eager.summary()
        results["synth"] = full.summary()
        results["noop_synth"] = noop.summary()
        if task_synth.runs:
            results["task_synth"] = task_synth.summary()
        if unoptimized.runs:
            results["synth_unoptimized"] = unoptimized.summary()

        if not args.skip_cli:
            cli = find_cli(args.cli)
            if cli is None:
                print("cdktf CLI not found (pass --cli PATH); skipping the CLI measurement", flush=True)
            else:
                series = Series("cdktf synth")
                cli_out = work / "cli.out"
                for _ in range(args.runs):
                    shutil.rmtree(cli_out, ignore_errors=True)
                    # The same interpreter as the app runs above, so that the figure is the CLI's own overhead.
                    series.add(proc.run([cli, "synth", "--app", " ".join(app), "--output", str(cli_out)],
                                        env=env, cwd=str(ROOT)))
                results["cli"] = {**series.summary(), "cli": cli}

        if not args.skip_scale:
            # Each scaled config alternates with the seed; the cost per added resource at two sizes shows whether
            # it stays linear (the larger one is the figure the target is checked on).
            factors = sorted({f for f in (args.also_factor, args.factor) if f > 1}) or [10]
            for factor in factors:
                results.setdefault("scales", []).append(measure_scale(factor, synth_cmd, seed_out, resources, work, args.runs))
            results["scale"] = results["scales"][-1]

        broken = Series("broken config")
        bad = work / "broken.yaml"
        text = (ROOT / "config" / "helix.yaml").read_text()
        bad.write_text(text.replace("api_port: 6443", "api_port: 70000", 1) + "\nunknown_key: 1\n")
        for _ in range(args.runs):
            m = broken.add(proc.run(app, env={**env, "HELIX_CONFIG": str(bad)}, cwd=str(ROOT)))
            if m.returncode != 2:
                raise SystemExit(f"broken config was not rejected (exit {m.returncode})")
        results["broken_config"] = {**broken.summary(), "node_started": any(m.saw_node for m in broken.runs)}

        if args.verify_charts:
            # `task verify` over the seed's stacks: every release rendered by helm and checked. The first run fills
            # the cache (parsed repository indexes) and is not counted: the target is for a warm cache.
            verify_env = {**env, "HELIX_CHARTS": str(args.verify_charts), "HELIX_CHARTS_CACHE": str(work / "verify-cache")}
            verify_cmd = [py, "-m", "tools.verify", "--out", str(seed_out)]
            first = proc.run(verify_cmd, env=verify_env, cwd=str(ROOT))
            if first.returncode not in (0, 2) or not first.stdout.strip():
                raise SystemExit(f"task verify failed:\n{first.stderr[-2000:]}")
            series = Series("task verify")
            for _ in range(args.runs):
                series.add(proc.run(verify_cmd, env=verify_env, cwd=str(ROOT), interval=0.25))
            summary_line = first.stdout.strip().splitlines()[-1]
            results["verify"] = {**series.summary(), "charts": str(args.verify_charts), "summary": summary_line}
            print(f"  task verify: {series.runs[-1].wall_s:.2f}s ({summary_line})", flush=True)

        if not args.skip_review:
            results["review"] = measure_review(py, env, work, args.runs)

        if not args.skip_tests:
            # The machine's speed drifts over minutes; each suite run is paired with a floor run just before it.
            tests = Series("task test")
            tests_floor = Series("floor, next to the suite")
            for i in range(args.test_runs):
                tests_floor.add(proc.run(floor_cmd, env=env, cwd=str(ROOT)))
                # Sampled every 0.25 s, not 0.02 s: walking /proc for a tree of dozens of processes 50 times a
                # second takes a good part of one of the two cores from the suite it measures.
                m = proc.run([py, "-m", "pytest", *everyday_lane_args(), "-p", "no:cacheprovider"], env=env,
                             cwd=str(ROOT), interval=0.25)
                if m.returncode != 0:
                    raise SystemExit(f"the test suite failed:\n{m.stdout[-3000:]}")
                tests.add(m)
                print(f"  suite run {i + 1}: floor {tests_floor.runs[-1].wall_s:.2f}s  suite {m.wall_s:.2f}s", flush=True)
            results["tests"] = tests.summary()
            results["tests_floor"] = tests_floor.summary()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    results["loadavg_before"] = [round(x, 2) for x in load_before]
    results["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


def measure_scale(factor: int, synth_cmd: Callable, seed_out: Path, resources: int, work: Path, runs: int) -> dict:
    """The synth of a config `factor` times the seed (bench/scale.py), alternating with the seed's."""
    big_dir = work / f"x{factor}"
    cfg, catalog = scale.generate(big_dir, factor)
    extra = {"HELIX_CONFIG": str(cfg), "HELIX_CATALOG_DIR": str(catalog)}
    big_out = work / f"x{factor}.out"
    big = Series(f"{factor}x synth")
    seed_again = Series("seed synth")
    for _ in range(runs):
        big.add(synth_cmd(big_out, extra)())
        seed_again.add(synth_cmd(seed_out)())
    big_resources, big_data, _ = count_resources(big_out)
    from planner.load import load_plan  # noqa: E402 - pure Python, no jsii

    os.environ["HELIX_CATALOG_DIR"] = str(catalog)
    try:
        plan = load_plan(cfg)
    finally:
        os.environ.pop("HELIX_CATALOG_DIR")
    added = big_resources - resources
    return {
        "factor": factor,
        "nodes": len(plan.config.cluster.nodes),
        "releases": len(plan.components),
        "resources": big_resources,
        "data_sources": big_data,
        "synth": big.summary(),
        "seed_synth": seed_again.summary(),
        "ms_per_resource_wall": round(1000 * (big.median("wall_s") - seed_again.median("wall_s")) / added, 2),
        "ms_per_resource_cpu": round(1000 * (big.median("cpu_s") - seed_again.median("cpu_s")) / added, 2),
    }


def everyday_lane_args() -> list[str]:
    """The pytest arguments `task test` (the everyday lane) runs with here, as `task --dry test` prints them."""
    task = Path(sys.executable).parent / "task"  # this venv's (.venv, or .venv-cdktn under CDK_ENGINE=cdktn)
    dry = subprocess.run([str(task), "--dry", "test"], cwd=ROOT, capture_output=True, text=True, check=True)
    (line,) = [ln for ln in (dry.stdout + dry.stderr).splitlines() if "python -m pytest" in ln]
    return shlex.split(line.split("python -m pytest", 1)[1])


def measure_review(py: str, env: dict[str, str], work: Path, runs: int, config: Path | None = None) -> dict:
    """`task review BASE=HEAD HEAD=WORKTREE` with one changed value (acme_email), on a clone of this checkout's HEAD
    whose head commit holds `config` (default: config/helix.yaml) and an empty review cache each run: the base is
    synthesized from that commit, the working tree with the change."""
    clone = work / "review-src"
    subprocess.run(["git", "clone", "--quiet", "--local", str(ROOT), str(clone)], check=True)
    target = clone / "config" / "helix.yaml"
    text = (config or ROOT / "config" / "helix.yaml").read_text()
    line = re.compile(r"^acme_email: [^\s#]+$", re.M)
    if not line.search(text):
        raise SystemExit("the config has no plain top-level `acme_email: <address>` line for the review to change")
    target.write_text(text)
    identity = ["-c", "user.name=bench", "-c", "user.email=bench@bench.invalid"]
    subprocess.run(["git", *identity, "commit", "--quiet", "--allow-empty", "-am", "bench: the review's base"],
                   cwd=clone, check=True)
    series = Series("task review HEAD=WORKTREE")
    for i in range(runs):
        target.write_text(line.sub(f"acme_email: platform-{i}@bench.invalid", text, count=1))
        out = work / "review.md"
        m = series.add(proc.run([py, "-m", "tools.review", "HEAD", "WORKTREE", "--out", str(out)],
                                env={**env, "HELIX_REVIEW_CACHE": str(work / f"review-cache-{i}")}, cwd=str(clone)))
        if m.returncode != 0 or f"platform-{i}@bench.invalid" not in out.read_text():
            raise SystemExit(f"task review failed or missed the change (exit {m.returncode}):\n{m.stderr[-2000:]}")
        print(f"  review run {i + 1}: {m.wall_s:.2f}s", flush=True)
    return series.summary()


def _ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b else float("nan")


def report(r: dict) -> None:
    f, e, s = r["floor"], r.get("eager_floor"), r["synth"]
    rows = [("floor (jsii assemblies only)", f)]
    if e:
        rows.append(("eager floor (plain import pkg._jsii)", e))
    rows.append((r["app_command"] + " (cdktf.json's app)", s))
    if "noop_synth" in r:
        rows.append(("the same, no input changed (synth cache)", r["noop_synth"]))
    if "task_synth" in r:
        rows.append(("task synth (also task diff's synth part)", r["task_synth"]))
    if "synth_unoptimized" in r:
        rows.append(("python main.py (without -O)", r["synth_unoptimized"]))
    if "cli" in r:
        rows.append((f"cdktf synth --app '{r['app_command']}'", r["cli"]))
    for sc in r.get("scales", [r["scale"]] if "scale" in r else []):
        rows.append((f"{r['app_command']}, {sc['factor']}x config", sc["synth"]))
    rows.append(("broken config", r["broken_config"]))
    if "verify" in r:
        rows.append(("task verify (warm cache, HELIX_CHARTS)", r["verify"]))
    if "review" in r:
        rows.append(("task review HEAD=WORKTREE, one changed value", r["review"]))
    if "tests" in r:
        rows.append(("floor, each just before a suite run", r["tests_floor"]))
        rows.append(("task test (RSS: largest simultaneous)", {**r["tests"], "peak_rss_mb": r["tests"]["peak_concurrent_mb"]}))
    print()
    print(f"{r['cpus']} CPUs, load average {r['loadavg_before'][0]} -> {r['loadavg_after'][0]}; medians of {f['runs']} runs")
    print(f"{'':46} {'wall s':>8} {'cpu s':>8} {'peak RSS MB':>12}")
    for name, row in rows:
        print(f"{name:46} {row['wall_s']:8.2f} {row['cpu_s']:8.2f} {row['peak_rss_mb']:12.1f}")
    checks = [
        ("synth / floor, wall", _ratio(s["wall_s"], f["wall_s"]), TARGETS["wall_ratio"]),
        ("synth / floor, cpu", _ratio(s["cpu_s"], f["cpu_s"]), TARGETS["wall_ratio"]),
        ("synth / floor, peak RSS", _ratio(s["peak_rss_mb"], f["peak_rss_mb"]), TARGETS["rss_ratio"]),
    ]
    if "noop_synth" in r:
        checks.append(("no-op synth / floor, wall", _ratio(r["noop_synth"]["wall_s"], f["wall_s"]), TARGETS["noop_ratio"]))
        checks.append(("no-op synth, wall s", r["noop_synth"]["wall_s"], TARGETS["noop_s"]))
    if "task_synth" in r:
        checks.append(("task synth / python -O main.py, wall", _ratio(r["task_synth"]["wall_s"], s["wall_s"]),
                       TARGETS["task_ratio"]))
        checks.append(("task synth / python -O main.py, cpu", _ratio(r["task_synth"]["cpu_s"], s["cpu_s"]),
                       TARGETS["task_ratio"]))
        checks.append(("task synth / floor, wall", _ratio(r["task_synth"]["wall_s"], f["wall_s"]), None))
    if "synth_unoptimized" in r:
        checks.append(("python main.py (without -O) / floor, wall", _ratio(r["synth_unoptimized"]["wall_s"], f["wall_s"]),
                       TARGETS["wall_ratio"]))
    if e:
        checks.append(("synth / eager floor, wall", _ratio(s["wall_s"], e["wall_s"]), TARGETS["wall_ratio"]))
        checks.append(("synth / eager floor, peak RSS", _ratio(s["peak_rss_mb"], e["peak_rss_mb"]), TARGETS["rss_ratio"]))
    if "scale" in r:
        print(f"\nseed: {r['seed_resources']} resources")
        for sc in r.get("scales", [r["scale"]]):
            print(f"{sc['factor']}x: {sc['nodes']} nodes, {sc['releases']} releases, {sc['resources']} resources, "
                  f"{sc['ms_per_resource_wall']} ms wall and {sc['ms_per_resource_cpu']} ms CPU per added resource")
        sc = r["scale"]
        checks.append((f"ms per additional resource at {sc['factor']}x, wall", sc["ms_per_resource_wall"],
                       TARGETS["ms_per_resource"]))
        checks.append((f"ms per additional resource at {sc['factor']}x, cpu", sc["ms_per_resource_cpu"],
                       TARGETS["ms_per_resource"]))
    checks.append(("broken config, wall s", r["broken_config"]["wall_s"], TARGETS["broken_s"]))
    if "verify" in r:
        checks.append(("task verify, warm cache, wall s", r["verify"]["wall_s"], TARGETS["verify_s"]))
    if "review" in r:
        checks.append(("task review HEAD=WORKTREE, wall s", r["review"]["wall_s"], TARGETS["review_s"]))
    if "tests" in r:
        # Reported, not checked: the 6x target of an earlier round was set for the whole suite at 226 tests; issue 28
        # replaced it with seconds for the everyday lane, which has grown with the project (950 tests).
        checks.append(("task test / floor next to it, wall", _ratio(r["tests"]["wall_s"], r["tests_floor"]["wall_s"]),
                       None))
        checks.append(("task test, wall s", r["tests"]["wall_s"], TARGETS["tests_s"]))
    print(f"\n{'check':46} {'value':>8} {'target':>8}")
    for name, value, target in checks:
        if target is None:
            print(f"{name:46} {value:8.2f}")
            continue
        print(f"{name:46} {value:8.2f} {'<= ' + str(target):>8}  {'met' if value <= target else 'NOT met'}")
    print(f"broken config started node: {r['broken_config']['node_started']}")


if __name__ == "__main__":
    sys.exit(main())
