"""Where a synth's time goes, phase by phase, split between Python and the node kernel of jsii.

    python -O -m bench.split [--runs 3]

One process does what `python -O main.py` does, in its three phases, and reads the CPU time of itself and
of its node processes (from /proc) at each boundary:

1. validate the config (pure Python; no node yet);
2. load the jsii assemblies the app uses (the floor's work);
3. build the constructs and synthesize (`build_app` + `app.synth()`).

jsii's protocol is synchronous: while node serves a request, Python waits, and the other way round, so in
phase 3 the CPU time of node's main thread and Python's add up to the wall time (V8's helper threads, which
compile and collect garbage, run beside them).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import proc

ROOT = Path(__file__).resolve().parent.parent
PROVIDERS = ("helm", "kubernetes", "cloudflare", "null", "random", "tls")


def _cpu_s(stat_path: str) -> float:
    """user + system seconds from a /proc stat file (a process's, or one thread's under task/)."""
    fields = Path(stat_path).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _descendants_cpu_s(pid: int, main_threads_only: bool = False) -> float:
    """user + system seconds of every live descendant of pid: all their threads, or each one's main thread
    only (V8 compiles and collects garbage on helper threads, beside the thread that serves jsii requests)."""
    total = 0.0
    for child in proc.descendants(pid) - {pid}:
        try:
            total += _cpu_s(f"/proc/{child}/task/{child}/stat" if main_threads_only else f"/proc/{child}/stat")
        except OSError:
            continue  # exited since it was listed
    return total


def _python_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def one_run() -> dict:
    """The three phases in this process; run it in a fresh process each time."""
    sys.path.insert(0, str(ROOT))
    def mark() -> tuple[float, float, float, float]:
        pid = os.getpid()
        return time.perf_counter(), _python_cpu_s(), _descendants_cpu_s(pid), _descendants_cpu_s(pid, True)

    marks = [(time.perf_counter(), _python_cpu_s(), 0.0, 0.0)]
    from planner.load import load_plan

    plan = load_plan()
    marks.append(mark())
    from constructs_lib import lazy_providers

    lazy_providers.install()
    from constructs_lib import engine

    engine.core_module("_jsii")
    importlib.import_module("constructs._jsii")
    for p in PROVIDERS:
        engine.provider_module(p, "_jsii")
    marks.append(mark())
    from stacks.app import build_app

    with tempfile.TemporaryDirectory() as out:
        app = build_app(plan, out)
        app.synth()
        marks.append(mark())
    phases = {}
    for name, (a, b) in zip(("validate", "assemblies", "build_and_synth"), zip(marks, marks[1:], strict=False), strict=True):
        phases[name] = {"wall_s": b[0] - a[0], "python_cpu_s": b[1] - a[1], "node_cpu_s": b[2] - a[2],
                        "node_main_thread_cpu_s": b[3] - a[3]}
    return phases


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # a single run, as JSON
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(one_run()))
        return 0
    env = dict(os.environ)
    node = ROOT / ".node" / "node_modules" / ".bin" / "node"
    if node.exists():
        env.setdefault("JSII_NODE", str(node))  # the project's Node LTS, as main.py uses it
    runs = []
    for _ in range(args.runs):
        out = subprocess.run([sys.executable, "-O", "-m", "bench.split", "--one"], cwd=ROOT, env=env,
                             capture_output=True, text=True, check=True)
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"medians of {args.runs} runs (python -O), seconds")
    keys = ("wall_s", "python_cpu_s", "node_cpu_s", "node_main_thread_cpu_s")
    print(f"{'phase':18} {'wall':>6} {'python cpu':>11} {'node cpu':>9} {'of it, main thread':>19}")
    for phase in runs[0]:
        row = [statistics.median(r[phase][k] for r in runs) for k in keys]
        print(f"{phase:18} {row[0]:6.2f} {row[1]:11.2f} {row[2]:9.2f} {row[3]:19.2f}")
    floor = statistics.median(r["assemblies"]["wall_s"] for r in runs)
    node = statistics.median(r["build_and_synth"]["node_main_thread_cpu_s"] for r in runs)
    python = statistics.median(r["build_and_synth"]["python_cpu_s"] for r in runs)
    print(f"\nbuild and synth, one after the other (the protocol is synchronous): node's main thread {node:.2f} s "
          f"and Python {python:.2f} s, {(node + python) / floor:.2f}x the assembly loading ({floor:.2f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
