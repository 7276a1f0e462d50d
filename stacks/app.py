"""Build the Helix app from validated settings, and synthesize it without ever leaving a half-written output."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from stacks.config_files import ConfigError
from stacks.load import Settings, load_settings

if TYPE_CHECKING:
    from stacks.outdir import SynthReport

NODES = "nodes"
EDGE = "edge"


def build_app(settings: Settings, outdir: str):
    """All stacks of the platform, with their dependencies. Imports jsii only when called."""
    from cdktf import App

    from constructs_lib.cluster_access import ClusterAccess
    from stacks.base import backend_from_config
    from stacks.edge import EdgeStack
    from stacks.nodes import NodesStack
    from stacks.platform import PlatformLayerStack

    cfg = settings.config
    backend = backend_from_config(cfg.state)
    # No stack traces in construct metadata: they hold absolute paths of the synthesizing machine.
    app = App(outdir=outdir, stack_traces=False)

    nodes: Optional[NodesStack] = None
    if cfg.cluster.mode == "provision":
        nodes = NodesStack(app, NODES, config=cfg, backend=backend)
        access = nodes.access
    else:
        existing = cfg.cluster.existing
        access = ClusterAccess(kubeconfig_path=existing.kubeconfig, kubeconfig_context=existing.context)

    edge = EdgeStack(app, EDGE, config=cfg, backend=backend, plan=settings.plan) if cfg.cloudflare.enabled else None

    built: dict[str, PlatformLayerStack] = {}
    # For a layer with nothing to install (every component turned off), its dependents wait for its needs.
    waits_for: dict[str, set[str]] = {}
    installed_by: dict[str, set[str]] = {}
    for layer in settings.plan.layers:
        direct: set[str] = set()
        installed_before: set[str] = set()
        for need in layer.needs:
            direct |= {need} if need in built else waits_for[need]
            installed_before |= installed_by[need]
        installed_by[layer.name] = installed_before | {c.id for c in layer.components}
        if not layer.components and not layer.namespaces:
            waits_for[layer.name] = direct
            continue
        waits_for[layer.name] = {layer.name}
        stack = PlatformLayerStack(
            app,
            layer.name,
            settings=settings,
            layer=layer,
            access=access,
            backend=backend,
            installed_before=installed_before,
            edge=edge if layer.edge else None,
        )
        if nodes is not None:
            stack.add_dependency(nodes)
        if layer.edge and edge is not None:
            stack.add_dependency(edge)
        for dep in sorted(direct):
            stack.add_dependency(built[dep])
        built[layer.name] = stack
    return app


def synthesize(settings: Settings, outdir: Path) -> "SynthReport":
    """Synthesize into a sibling folder and swap it into place only when synthesis succeeded.

    Terraform's working files in the previous output's stack folders (`.terraform/`, `.terraform.lock.hcl`) move
    into the new output, as stock cdktf keeps them; the returned report names stacks that disappeared (their
    folders are kept) and every backend change, with its migration command (stacks/outdir.py)."""
    from stacks.outdir import carry_over, remove_tree

    shown = str(outdir)
    outdir = outdir.absolute()
    outdir.parent.mkdir(parents=True, exist_ok=True)
    staging = outdir.parent / f".{outdir.name}.new-{os.getpid()}"
    previous = outdir.parent / f".{outdir.name}.old-{os.getpid()}"
    remove_tree(staging)
    try:
        app = build_app(settings, str(staging))
        app.synth()
    except BaseException:
        remove_tree(staging)
        raise
    if outdir.exists():
        outdir.rename(previous)
    try:
        report = carry_over(previous, staging, shown)
    except BaseException:
        # Put back whatever was moved, then the previous output as it was.
        carry_over(staging, previous, shown)
        previous.rename(outdir)
        remove_tree(staging)
        raise
    staging.rename(outdir)
    remove_tree(previous)
    return report


def main(argv: Optional[list[str]] = None) -> int:
    """Validate the config (exit 2 with one line per problem), then synthesize."""
    try:
        settings = load_settings()
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        print(f"{len(exc.problems)} problem(s) found; nothing was synthesized.", file=sys.stderr)
        return 2
    report = synthesize(settings, Path(os.environ.get("CDKTF_OUTDIR", "cdktf.out")))
    for line in report.lines():
        print(line, file=sys.stderr)
    return 0
