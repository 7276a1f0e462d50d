"""Stacks of a synthesized output in dependency order (each after the stacks it depends on).

    python -m tools.order                     every stack of cdktf.out, one per line
    python -m tools.order 'platform-*' edge   only stacks matching a pattern (cdktf's glob patterns)
    python -m tools.order --outdir DIR        another output folder
    python -m tools.order --refuse-local      exit 2, naming the fix, when a selected stack keeps local state

`task diff` plans the stacks in this order and the deploy workflow shows each plan in this order before it
applies anything. Plain Python: reads manifest.json only.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import sys
from pathlib import Path


def dependency_order(stacks: dict[str, dict]) -> list[str]:
    """Names of a manifest's stacks, each after its dependencies; ties broken by name, so the order is stable."""
    done: set[str] = set()
    order: list[str] = []

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in done:
            return
        if name in path:
            raise ValueError(f"dependency cycle: {' -> '.join(path + (name,))}")
        for dep in sorted(stacks[name].get("dependencies", [])):
            visit(dep, path + (name,))
        done.add(name)
        order.append(name)

    for name in sorted(stacks):
        visit(name, ())
    return order


def select(order: list[str], patterns: list[str]) -> list[str]:
    if not patterns:
        return order
    return [name for name in order if any(fnmatch.fnmatchcase(name, p) for p in patterns)]


LOCAL_REFUSED = (
    "error: {stacks} keep state in the local backend (state.backend: local in config/helix.yaml): deployed from "
    "CI, that state would stay on the throwaway runner and be lost, and the next deploy would start on empty "
    "state. Select a shared backend first: state.backend s3, remote or pg (README, \"State backends\"); to move "
    "state that already exists, see docs/state.md, \"Changing the state backend\". Or deploy from your machine "
    "with `task deploy`."
)


def local_state_stacks(outdir: Path, names: list[str]) -> list[str]:
    """Those of the named stacks whose synthesized backend is local (or Terraform's implicit local one)."""
    manifest = json.loads((outdir / "manifest.json").read_text())["stacks"]
    local = []
    for name in names:
        document = json.loads((outdir / manifest[name]["synthesizedStackPath"]).read_text())
        backend = (document.get("terraform") or {}).get("backend") or {"local": {}}
        if "local" in backend:
            local.append(name)
    return local


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.order", description=__doc__.split("\n\n")[0])
    parser.add_argument("patterns", nargs="*", help="stack names or glob patterns (default: every stack)")
    parser.add_argument("--outdir", type=Path, default=Path("cdktf.out"), help="synthesized output (cdktf.out)")
    parser.add_argument("--refuse-local", action="store_true", help="fail when a selected stack keeps local state")
    args = parser.parse_args(argv)
    manifest = args.outdir / "manifest.json"
    if not manifest.exists():
        print(f"error: {manifest} not found: run `task synth` first", file=sys.stderr)
        return 2
    stacks = json.loads(manifest.read_text())["stacks"]
    chosen = select(dependency_order(stacks), args.patterns)
    if not chosen:
        print(f"error: no stack matches {' '.join(args.patterns)} (stacks: {', '.join(sorted(stacks))})", file=sys.stderr)
        return 2
    if args.refuse_local:
        local = local_state_stacks(args.outdir, chosen)
        if local:
            print(LOCAL_REFUSED.format(stacks="stacks " + ", ".join(local) if len(local) > 1 else f"stack {local[0]}"),
                  file=sys.stderr)
            return 2
    print("\n".join(chosen))
    return 0


if __name__ == "__main__":
    sys.exit(main())
