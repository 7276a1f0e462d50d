"""Render the platform plan as the Helix app, and synthesize it without ever leaving a half-written output."""

from __future__ import annotations

import os
import re
import sys
import tempfile
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
        try:
            outdir.rename(previous)
        except OSError:  # an immutable or read-only output folder: leave it as it was
            remove_tree(staging)
            raise
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
    outdir = Path(os.environ.get("CDKTF_OUTDIR", "cdktf.out"))
    checked = pre_synth_checks(plan, outdir)
    if checked is not None:
        return checked
    try:
        report = synthesize(plan, outdir)
    except (OSError, RuntimeError) as exc:
        # A read-only, full or immutable output folder: the environment, not the config (jsii reports Node's
        # errors as RuntimeError "EROFS: ...").
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).split("\n")[0]
        if isinstance(exc, RuntimeError) and not re.match(r"^(Error: )?E[A-Z]+: ", reason):
            raise
        print(f"error: cannot write the output folder {outdir}: {reason}; nothing was changed", file=sys.stderr)
        return 1
    for line in report.lines():
        print(line, file=sys.stderr)
    return 0


def pre_synth_checks(plan: PlatformPlan, outdir: Path) -> int | None:
    """What needs more than the config (planner/validate.py): the previous output's k3s version, the host-key
    waiver's warning, the local state folder's modes. An exit status, or None to go on."""
    from planner.load import PROJECT_ROOT, _shown, config_path_from_env
    from planner.validate import host_key_warnings, k3s_upgrade_problems, previous_k3s_version, secure_state_folder

    shown = _shown(config_path_from_env())
    problems = k3s_upgrade_problems(plan.config, previous_k3s_version(outdir))
    for path, message in problems:
        print(f"error: {shown}: {path}: {message}", file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s) found; nothing was synthesized.", file=sys.stderr)
        return 2
    try:  # the output folder's parent takes the staging folder: find out now, before jsii starts
        outdir.absolute().parent.mkdir(parents=True, exist_ok=True)
        os.rmdir(tempfile.mkdtemp(prefix=f".{outdir.name}.probe-", dir=outdir.absolute().parent))
    except OSError as exc:
        print(f"error: cannot write the output folder {outdir}: {exc.strerror or exc}; nothing was changed", file=sys.stderr)
        return 1
    for line in host_key_warnings(plan.config, shown):
        print(line, file=sys.stderr)
    if plan.config.state.backend == "local":
        try:
            for change in secure_state_folder(PROJECT_ROOT / plan.config.state.local.dir):
                print(f"state: {change} (state files hold secrets: owner only)", file=sys.stderr)
        except OSError as exc:  # not the owner, say: the synth itself does not need it
            print(
                f"warning: cannot make the local state folder owner-only: {exc.strerror or exc} ({exc.filename}); "
                "state files hold secrets",
                file=sys.stderr,
            )
    return None
