"""The committed list of every resource address per stack, which guards against accidental destroys.

    python -m tools.snapshot                 # synthesize the default config and rewrite the snapshot
    python -m tools.snapshot --from cdktf.out   # take the addresses from an existing synth instead
    UPDATE_SNAPSHOTS=1 python -m pytest tests/test_safety.py -k snapshot   # same, from the test session

tests/test_safety.py fails when an address in the snapshot disappears from the synthesized stacks (a rename or
removal that Terraform would destroy), unless a moved block in that stack maps it to an address that exists.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SNAPSHOT = ROOT / "tests" / "snapshots" / "addresses.json"


def stack_documents(outdir: Path) -> dict[str, dict]:
    """Each stack's synthesized JSON, by stack name, read through the manifest."""
    manifest = json.loads((outdir / "manifest.json").read_text())
    return {
        name: json.loads((outdir / entry["synthesizedStackPath"]).read_text())
        for name, entry in sorted(manifest["stacks"].items())
    }


def resource_addresses(document: dict) -> list[str]:
    """Terraform addresses (type.name) of a stack's managed resources, sorted."""
    return sorted(f"{rtype}.{name}" for rtype, blocks in document.get("resource", {}).items() for name in blocks)


def moved_blocks(document: dict) -> dict[str, str]:
    """from -> to of a stack's moved blocks (cdktf's move_to/move_from_id, or a `moved` override)."""
    out = {}
    for block in document.get("moved", []) or []:
        src, dst = str(block.get("from", "")), str(block.get("to", ""))
        out[src.removeprefix("${").removesuffix("}")] = dst.removeprefix("${").removesuffix("}")
    return out


def addresses(outdir: Path) -> dict[str, list[str]]:
    return {name: resource_addresses(doc) for name, doc in stack_documents(outdir).items()}


def write(snapshot: dict[str, list[str]], path: Path = SNAPSHOT) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(snapshot, indent=2, sort_keys=True) + "\n")


def read(path: Path = SNAPSHOT) -> dict[str, list[str]]:
    return json.loads(path.read_text())


def compare(old: dict[str, list[str]], new_docs: dict[str, dict]) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """(removed, added) addresses per stack. A removed address covered by a moved block to an existing one is
    not removed."""
    removed: dict[str, list[str]] = {}
    added: dict[str, list[str]] = {}
    for stack in sorted(set(old) | set(new_docs)):
        doc = new_docs.get(stack, {})
        now = set(resource_addresses(doc))
        moved = moved_blocks(doc)
        before = set(old.get(stack, []))
        gone = sorted(a for a in before - now if moved.get(a) not in now)
        new = sorted(now - before - set(moved.values()))
        if gone:
            removed[stack] = gone
        if new:
            added[stack] = new
    return removed, added


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.snapshot", description=__doc__.split("\n\n")[0])
    parser.add_argument("--from", dest="source", type=Path, help="read an existing synth instead of synthesizing")
    args = parser.parse_args(argv)
    if args.source:
        snapshot = addresses(args.source)
    else:
        from planner.files import ConfigError
        from planner.load import load_plan
        from stacks.app import synthesize

        try:
            plan = load_plan(ROOT / "config" / "helix.yaml")
        except ConfigError as exc:
            for problem in exc.problems:
                print(f"error: {problem}", file=sys.stderr)
            return 2
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "cdktf.out"
            synthesize(plan, out)
            snapshot = addresses(out)
    old = read() if SNAPSHOT.exists() else {}
    removed, added = compare(old, {s: {"resource": _as_resources(a)} for s, a in snapshot.items()})
    write(snapshot)
    total = sum(len(v) for v in snapshot.values())
    print(f"wrote {SNAPSHOT.relative_to(ROOT)}: {total} addresses in {len(snapshot)} stacks")
    for label, changes in (("removed", removed), ("added", added)) if old else ():
        for stack, items in changes.items():
            for item in items:
                print(f"  {label}: {stack}: {item}")
    return 0


def _as_resources(addrs: list[str]) -> dict[str, dict[str, dict]]:
    out: dict[str, dict[str, dict]] = {}
    for addr in addrs:
        rtype, name = addr.split(".", 1)
        out.setdefault(rtype, {})[name] = {}
    return out


if __name__ == "__main__":
    sys.exit(main())
