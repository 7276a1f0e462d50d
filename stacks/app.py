"""Render the platform plan as the Helix app, and synthesize it without ever leaving a half-written output."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from planner.files import ConfigError
from planner.load import load_plan
from planner.model import PlatformPlan

if TYPE_CHECKING:
    from stacks.outdir import SynthReport

NODES = "nodes"
EDGE = "edge"


def build_app(plan: PlatformPlan, outdir: str) -> Any:
    """All stacks of the platform, with the dependencies the plan gives. Imports jsii only when called."""
    from cdktf import App

    from constructs_lib.addons import RawChart
    from constructs_lib.cluster_access import ClusterAccess
    from stacks.base import backend_from_config
    from stacks.edge import EdgeStack
    from stacks.nodes import NodesStack, add_node_objects
    from stacks.platform import PlatformLayerStack

    cfg = plan.config
    backend = backend_from_config(cfg.state)
    # No stack traces in construct metadata: they hold absolute paths of the synthesizing machine.
    app = App(outdir=outdir, stack_traces=False)

    nodes: NodesStack | None = None
    if cfg.cluster.mode == "provision":
        nodes = NodesStack(app, NODES, plan=plan, backend=backend)
        access = nodes.access
        # Node labels and taints as Kubernetes objects, in a stack after the nodes, so a change of them shows in a plan.
        add_node_objects(app, nodes, cfg, backend)
    else:
        existing = cfg.cluster.existing
        assert existing is not None  # validated: mode existing needs it
        access = ClusterAccess(kubeconfig_path=existing.kubeconfig, kubeconfig_context=existing.context)

    # Synthesized even with cloudflare.enabled false (empty then), so that a deploy destroys what it created.
    edge_stack = EdgeStack(app, EDGE, plan=plan, backend=backend)
    edge = edge_stack if cfg.cloudflare.enabled else None
    raw_chart = RawChart(plan.raw_chart.repository, plan.raw_chart.chart, plan.raw_chart.version)

    built: dict[str, PlatformLayerStack] = {}
    for layer in plan.layers:
        stack = PlatformLayerStack(
            app, layer.name, plan=plan, layer=layer, access=access, backend=backend, raw_chart=raw_chart,
            edge=edge if layer.uses_edge else None, earlier=built,
        )
        if nodes is not None:
            stack.add_dependency(nodes)
        if layer.uses_edge and edge is not None:
            stack.add_dependency(edge)
        for dep in layer.stack_needs:
            stack.add_dependency(built[dep])
        built[layer.name] = stack
    return app


def synthesize(plan: PlatformPlan, outdir: Path) -> SynthReport:
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
        app = build_app(plan, str(staging))
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


def main(argv: list[str] | None = None) -> int:
    """Validate the config (exit 2 with one line per problem), then synthesize."""
    try:
        plan = load_plan()
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        print(f"{len(exc.problems)} problem(s) found; nothing was synthesized.", file=sys.stderr)
        return 2
    from stacks.summary import stack_digests, summary_line

    outdir = Path(os.environ.get("CDKTF_OUTDIR", "cdktf.out"))
    before = stack_digests(outdir)
    report = synthesize(plan, outdir)
    for line in report.lines():
        print(line, file=sys.stderr)
    print(summary_line(outdir, plan.config_file, before), file=sys.stderr)
    return 0
