"""Render the platform plan as the Helix app, and synthesize it without ever leaving a half-written output."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from planner.files import ConfigError
from planner.load import load_plan
from planner.model import PlatformPlan
from planner.validate import post_synth_warnings, pre_synth_checks, repeat_on_reuse
from stacks.outguard import OutputRefused
from stacks.validation import SynthInvalid, providers_missing

if TYPE_CHECKING:
    from stacks.outdir import SynthReport

NODES = "nodes"
EDGE = "edge"


def build_app(plan: PlatformPlan, outdir: str) -> Any:
    """All stacks of the platform, with the dependencies the plan gives. Imports jsii only when called."""
    from constructs_lib.addons import RawChart
    from constructs_lib.cluster_access import ClusterAccess
    from constructs_lib.engine import App
    from stacks.base import backend_from_config
    from stacks.edge import EdgeStack
    from stacks.nodes import NodesStack, add_node_objects
    from stacks.platform import PlatformLayerStack

    backend = backend_from_config(plan.state)
    # No stack traces in construct metadata: they hold absolute paths of the synthesizing machine. No cdktf
    # validation: it runs `terraform version` per terraform_data, import block and stack with moves, and fails where no
    # Terraform is installed; the check worth keeping is done on the output (stacks/validation.py).
    app = App(outdir=outdir, stack_traces=False, skip_validation=True)

    nodes: NodesStack | None = None
    if plan.nodes.provisioned:
        nodes = NodesStack(app, NODES, plan=plan, backend=backend)
        access = nodes.access
        # Node labels and taints as Kubernetes objects, in a stack after the nodes, so a change of them shows in a plan.
        add_node_objects(app, nodes, plan.nodes, backend)
    else:
        existing = plan.nodes.existing
        assert existing is not None  # validated: mode existing needs it
        access = ClusterAccess(kubeconfig_path=existing.kubeconfig, kubeconfig_context=existing.context)

    pool_stacks = _node_pool_stacks(app, plan, nodes, access, backend)

    # Synthesized even with cloudflare.enabled false (empty then), so that a deploy destroys what it created.
    edge_stack = EdgeStack(app, EDGE, plan=plan, backend=backend)
    edge = edge_stack if plan.edge.enabled else None
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
        if layer.uses_node_pools:
            for pool_stack in pool_stacks:
                stack.add_dependency(pool_stack)
        for dep in layer.stack_needs:
            stack.add_dependency(built[dep])
        built[layer.name] = stack
    return app


def _node_pool_stacks(app: Any, plan: PlatformPlan, nodes: Any, access: Any, backend: Any) -> list[Any]:
    """One stack per cloud node pool after the nodes, and the autoscaler's access; none (and no AWS provider
    import) without a pool."""
    pools = plan.node_pools
    if pools is None or nodes is None:
        return []
    from stacks.node_pools import NodePoolsAccessStack, NodePoolStack

    built: list[Any] = []
    for pool in pools.pools:
        stack = NodePoolStack(app, pool.stack, pools=pools, pool=pool, agent_token=nodes.cluster.agent_token,
                              backend=backend)
        stack.add_dependency(nodes)
        built.append(stack)
    access_stack = NodePoolsAccessStack(app, pools.access_stack, pools=pools, access=access, backend=backend)
    access_stack.add_dependency(nodes)
    return [*built, access_stack]


def synthesize(
    plan: PlatformPlan,
    outdir: Path | str,
    notes: list[str] | None = None,
    cache_key: str | None = None,
    repeat: dict | None = None,
) -> SynthReport:
    """Synthesize into a sibling folder and swap it into place only when synthesis succeeded.

    The output path must be an output folder (stacks/outguard.py: absent, empty or an earlier synth's; else
    OutputRefused before anything is touched), written by one synth at a time; leftovers of a swap that was
    killed are put back first (one note each in `notes`). Every entry of the previous output that the synth does
    not generate (`.terraform/`, lock files, tfvars, saved plans, workspace state) moves into the new output; the
    returned report names stacks that disappeared (their folders are kept) and every backend change, with its
    migration command (stacks/outdir.py). With a cache_key, the new output records it (stacks/synth_cache.py), so
    that the next synth of the same inputs reuses it."""
    from stacks.outdir import remove_tree
    from stacks.outguard import DestroyRefused, OutputLock, check_target, recover, staging_path, swap_into_place
    from tools.guard import check_outputs

    shown = str(outdir)  # Path('') would read as '.': main passes CDKTF_OUTDIR as text
    state = plan.state
    root = Path(__file__).resolve().parent.parent
    outdir = check_target(shown, root, state.local.dir if state.backend == "local" else None)
    outdir.parent.mkdir(parents=True, exist_ok=True)
    with OutputLock(outdir):
        found = recover(outdir, shown)
        if notes is not None:
            notes.extend(found)
        check_target(shown, root, state.local.dir if state.backend == "local" else None)
        staging = staging_path(outdir)
        try:
            app = build_app(plan, str(staging))
            app.synth()
            missing = providers_missing(staging)
            if missing:
                raise SynthInvalid(missing)
            if cache_key is not None:
                from stacks.synth_cache import write_stamp

                write_stamp(staging, cache_key, repeat)
            # The destroy guard: nothing stateful goes unless config/allow-destroy.yaml names it.
            refused = check_outputs(outdir, staging)
        except BaseException:
            remove_tree(staging)
            raise
        if refused:
            remove_tree(staging)
            raise DestroyRefused(refused)
        return swap_into_place(staging, outdir, shown)


def main(argv: list[str] | None = None, cache_key: str | None = None) -> int:
    """Validate the config (exit 2 with one line per problem), then synthesize (recording cache_key, main.py's
    digest of every input, in the output)."""
    try:
        plan = load_plan()
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        print(f"{len(exc.problems)} problem(s) found; nothing was synthesized.", file=sys.stderr)
        return 2
    from constructs_lib import engine

    if plan.node_pools is not None and not engine.has_provider("aws"):
        print(f"error: {plan.config_file}: cluster.cloud_node_pools: the {engine.NAME} engine has no AWS provider here; "
              f"cloud node pools need the cdktf engine (unset {engine.VARIABLE}; docs/engine.md)", file=sys.stderr)
        return 2
    given = os.environ.get("CDKTF_OUTDIR", "cdktf.out")
    notes: list[str] = []
    try:
        from stacks.outguard import check_target
        from stacks.summary import stack_digests, summary_line

        state = plan.state
        # Where the output goes is checked first (stacks/outguard.py): nothing below may touch a folder that is
        # not an output folder.
        check_target(given, Path(__file__).resolve().parent.parent,
                     state.local.dir if state.backend == "local" else None)
        checked = pre_synth_checks(plan, Path(given))  # planner/validate.py
        if checked is not None:
            return checked
        before = stack_digests(Path(given))
        report = synthesize(plan, given, notes, cache_key=cache_key, repeat=repeat_on_reuse(plan))
    except OutputRefused as exc:
        for line in notes:
            print(line, file=sys.stderr)
        for line in exc.lines:
            print(line, file=sys.stderr)
        return 2
    except SynthInvalid as exc:  # a defect of the stacks' code, not of the config: exit 1, the output unchanged
        for line in exc.lines:
            print(f"error: {line}; the previous output is unchanged", file=sys.stderr)
        return 1
    except (OSError, RuntimeError) as exc:
        # A read-only, full or immutable file system: the environment, not the config (jsii reports Node's
        # errors as RuntimeError "EROFS: ...").
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).split("\n")[0]
        if isinstance(exc, RuntimeError) and not re.match(r"^(Error: )?E[A-Z]+: ", reason):
            raise
        for line in notes:
            print(line, file=sys.stderr)
        where = exc.filename if isinstance(exc, OSError) and exc.filename else given
        print(f"error: cannot write the output folder {given} ({where}: {reason}); the previous output is unchanged",
              file=sys.stderr)
        return 1
    for line in notes + report.lines() + post_synth_warnings(plan):
        print(line, file=sys.stderr)
    print(summary_line(Path(given), plan.config_file, before), file=sys.stderr)
    return 0
