"""Where a synth's time goes, phase by phase, split between Python and the node kernel of jsii.

    python -O -m bench.split [--runs 3]

One process does what `python -O main.py` does, in its three phases, and reads the CPU time of itself and
of its node processes (from /proc) at each boundary:

1. validate the config (pure Python; no node yet);
2. load the jsii assemblies the app uses (the floor's work);
3. build the constructs and synthesize (`build_app` + `app.synth()`).

jsii's protocol is synchronous: while node works, Python waits, and the other way round, so in phase 3 the
node kernel's CPU time is a part of the wall time that no change on the Python side can remove or overlap.
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

ROOT = Path(__file__).resolve().parent.parent
PROVIDERS = ("helm", "kubernetes", "cloudflare", "null", "random", "tls")


def _descendants_cpu_s(pid: int) -> float:
    """user + system seconds of every live descendant of pid."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry))
    ticks = os.sysconf("SC_CLK_TCK")
    total, todo = 0.0, list(children.get(pid, []))
    while todo:
        child = todo.pop()
        todo += children.get(child, [])
        try:
            fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def _python_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def one_run() -> dict:
    """The three phases in this process; run it in a fresh process each time."""
    sys.path.insert(0, str(ROOT))
    marks = [(time.perf_counter(), _python_cpu_s(), 0.0)]
    from stacks.load import load_settings

    settings = load_settings()
    marks.append((time.perf_counter(), _python_cpu_s(), _descendants_cpu_s(os.getpid())))
    from constructs_lib import lazy_providers

    lazy_providers.install()
    for module in ["cdktf._jsii", "constructs._jsii", *(f"cdktf_cdktf_provider_{p}._jsii" for p in PROVIDERS)]:
        importlib.import_module(module)
    marks.append((time.perf_counter(), _python_cpu_s(), _descendants_cpu_s(os.getpid())))
    from stacks.app import build_app

    with tempfile.TemporaryDirectory() as out:
        app = build_app(settings, out)
        app.synth()
        marks.append((time.perf_counter(), _python_cpu_s(), _descendants_cpu_s(os.getpid())))
    phases = {}
    for name, (a, b) in zip(("validate", "assemblies", "build_and_synth"), zip(marks, marks[1:])):
        phases[name] = {"wall_s": b[0] - a[0], "python_cpu_s": b[1] - a[1], "node_cpu_s": b[2] - a[2]}
    return phases


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # a single run, as JSON
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(one_run()))
        return 0
    env = {**os.environ, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"}
    runs = []
    for _ in range(args.runs):
        out = subprocess.run([sys.executable, "-O", "-m", "bench.split", "--one"], cwd=ROOT, env=env,
                             capture_output=True, text=True, check=True)
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"medians of {args.runs} runs (python -O), seconds")
    print(f"{'phase':18} {'wall':>6} {'python cpu':>11} {'node cpu':>9}")
    for phase in runs[0]:
        row = [statistics.median(r[phase][k] for r in runs) for k in ("wall_s", "python_cpu_s", "node_cpu_s")]
        print(f"{phase:18} {row[0]:6.2f} {row[1]:11.2f} {row[2]:9.2f}")
    floor = statistics.median(r["assemblies"]["wall_s"] for r in runs)
    node = statistics.median(r["build_and_synth"]["node_cpu_s"] for r in runs)
    print(f"\nnode's own work after the assemblies: {node:.2f} s = {node / floor:.2f}x the assembly loading "
          f"({floor:.2f} s); with no Python time at all the synth would still be {1 + node / floor:.2f}x the floor")
    return 0


if __name__ == "__main__":
    sys.exit(main())
