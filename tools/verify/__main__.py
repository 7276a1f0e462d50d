"""python -m tools.verify [--out cdktf.out] [--json] [--jobs N] [--allow config/verify-allow.yaml] [--pull DIR]

--pull DIR fetches every pinned chart and its repository's index into DIR (usable as HELIX_CHARTS) and exits:
0 when everything was fetched, 2 otherwise (one line per chart).

Exit 0: no finding beyond the allow list. Exit 2: findings, or the verifier could not run (one line saying why).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tools.verify import kube
from tools.verify.allow import Allowed, load_allow, split
from tools.verify.charts import ChartStore, default_cache, which_helm
from tools.verify.errors import VerifyError
from tools.verify.output import json_report, text_report
from tools.verify.plan import Platform, load_platform
from tools.verify.render import Rendered, render_platform
from tools.verify.rules import RULES, Context, Finding

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_ALLOW = PROJECT_ROOT / "config" / "verify-allow.yaml"


@dataclass
class Outcome:
    findings: list[Finding]
    accepted: list
    notes: list[str]
    summary: dict
    results: dict[str, Rendered] = field(default_factory=dict)


def kube_version_of(platform: Platform, given: str | None) -> str:
    if given:
        return given
    if platform.kube_version:
        return platform.kube_version
    # cdktf.out of a cluster in `existing` mode holds no k3s version: the validated config knows it.
    try:
        from planner.files import ConfigError  # noqa: PLC0415
        from planner.load import load_plan  # noqa: PLC0415

        return str(load_plan().config.cluster.k3s_version)
    except (ImportError, ConfigError, OSError, AttributeError) as exc:
        raise VerifyError(f"cannot tell the cluster's Kubernetes version from {platform.out_dir} or the config "
                          f"({exc.__class__.__name__}); pass --kube-version") from None


def verify(out_dir: Path, charts: Path | None, allow_path: Path, jobs: int | None = None,
           kube_version: str | None = None, helm: str | None = None, cache: Path | None = None) -> Outcome:
    started = time.monotonic()
    helm = helm or which_helm()
    if not helm:
        raise VerifyError("helm (Helm 3) is not on PATH; `bash scripts/setup.sh` puts one into .venv/bin")
    if charts is not None and not charts.is_dir():
        raise VerifyError(f"HELIX_CHARTS={charts}: not a folder")
    shown = os.path.relpath(allow_path, Path.cwd()) if allow_path.is_absolute() else str(allow_path)
    allowed = load_allow(allow_path, shown)
    platform = load_platform(out_dir)
    version = kube_version_of(platform, kube_version)
    try:
        schemas = kube.BuiltinSchemas(version)
    except ValueError as exc:
        raise VerifyError(str(exc)) from None
    store = ChartStore(helm=helm, folder=charts, cache=cache or default_cache())
    predecessors = {r.id: platform.predecessors(r) for r in platform.releases}
    # Repository indexes are read (and parsed: some are megabytes of YAML) while helm renders.
    with ThreadPoolExecutor(max_workers=1) as prefetch:
        indexes = prefetch.submit(lambda: [store.published_versions(r) for r in platform.releases])
        results = render_platform(store, platform.releases, version, predecessors, jobs)
        indexes.result()
    ctx = Context(platform, results, version, schemas, store)
    if not schemas.exact:
        ctx.notes.append(f"schema: kubernetes-validate has no schemas for {version}; used "
                         f"{schemas.version[0]}.{schemas.version[1]}")
    findings: list[Finding] = []
    for rule in RULES:
        findings.extend(rule().check(ctx))
    findings = sorted(set(findings), key=lambda f: (f.stack, f.release, f.rule, f.object, f.message))
    kept, accepted = split(findings, allowed)
    if all(r.error is None for r in results.values()):
        kept += stale(allowed, platform, results)
    elif allowed:
        ctx.notes.append("allow: entries that match nothing are not judged while a release does not render")
    summary = {"releases": len(platform.releases), "stacks": len({r.stack for r in platform.releases}),
               "rendered": sum(r.error is None for r in results.values()),
               "charts_missing": sum(r.missing_chart for r in results.values()),
               "kube_version": version, "seconds": round(time.monotonic() - started, 2)}
    return Outcome(kept, accepted, ctx.notes, summary, results)


def stale(allowed: list[Allowed], platform: Platform, results: dict[str, Rendered]) -> list[Finding]:
    """An allow-list entry that matches nothing is itself a finding (judged only when every release rendered:
    a finding may depend on what another release renders)."""
    out = []
    rendered = {r.name: r for r in platform.releases if results[r.id].chart is not None}
    for entry in allowed:
        release = rendered.get(entry.release)
        if entry.used == 0 and release is not None:
            out.append(Finding("allow", release.stack, release.name, "allow list",
                               f"{entry.where}: the entry for rule {entry.rule} matches no finding; remove it"))
    return out


def pull(out_dir: Path, folder: Path) -> int:
    helm = which_helm()
    if not helm:
        print("error: helm (Helm 3) is not on PATH; `bash scripts/setup.sh` puts one into .venv/bin", file=sys.stderr)
        return 2
    try:
        platform = load_platform(out_dir)
    except VerifyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    failed = ChartStore(helm=helm, cache=default_cache()).pull_into(platform.releases, folder)
    print(f"charts: {folder} holds {'all but ' + str(failed) + ' of ' if failed else ''}the charts and indexes of "
          f"{len(platform.releases)} releases; use it with HELIX_CHARTS={folder} task verify")
    return 2 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.verify", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="cdktf.out", help="the synthesized stacks (default: cdktf.out)")
    parser.add_argument("--json", action="store_true", help="print the findings as JSON")
    parser.add_argument("--jobs", type=int, default=None, help="releases rendered at once (default: CPUs, at least 2)")
    parser.add_argument("--allow", default=str(DEFAULT_ALLOW), help="the allow list (default: config/verify-allow.yaml)")
    parser.add_argument("--kube-version", default=None, help="override the Kubernetes version read from the stacks")
    parser.add_argument("--pull", type=Path, default=None, metavar="DIR",
                        help="fetch every pinned chart and index into DIR (a folder for HELIX_CHARTS), then exit")
    args = parser.parse_args(argv)
    if args.pull is not None:
        return pull(Path(args.out), args.pull)
    charts = os.environ.get("HELIX_CHARTS")
    try:
        outcome = verify(Path(args.out), Path(charts) if charts else None, Path(args.allow), args.jobs,
                         args.kube_version)
    except VerifyError as exc:
        for msg in str(exc).splitlines():
            print(f"error: {msg}", file=sys.stderr)
        return 2
    report = json_report if args.json else text_report
    print(report(outcome.findings, outcome.accepted, outcome.summary, outcome.notes))
    return 2 if outcome.findings else 0


if __name__ == "__main__":
    sys.exit(main())
