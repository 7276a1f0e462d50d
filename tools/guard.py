"""The destroy guard: nothing stateful is destroyed or replaced unless the user named it.

    python -m tools.guard outputs OLD_OUTDIR NEW_OUTDIR          # two synthesized output folders
    python -m tools.guard plan STACK PLAN_JSON [--output cdktf.out]   # `terraform show -json` of a stack's plan

Each change is classed create, update, replace (an attribute the provider replaces on, config/stateful.yaml's
forced_replacement), destroy, or forget (a `removed` block with `destroy = false`: the object stays, only the
state entry goes). A destroy or replace of something stateful is refused (exit 2, one line each, naming the
stack, the address, what would be lost and how to proceed) unless config/allow-destroy.yaml names it. Stateful:

- anything whose block carries prevent_destroy (a namespace or release marked `protect`, the CAs, the k3s
  token, the tunnel: they are synthesized with it);
- a release whose catalog entry says what it `keeps:` (volumes, a database);
- a namespace that is protected or holds a protected or keeping release (of any stack); in a plan, which shows
  one stack only, every namespace;
- the resource types of config/stateful.yaml (the tunnel, generated secrets, keys, CA certificates);
- a k3s node that leaves cluster.nodes without going through cluster.departed_nodes.

A synth runs it against the previous output before swapping in the new one (stacks/app.py), `task review`
shows its classes, and the deploy workflow runs it on each stack's plan before applying.

Plain Python (no jsii).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RELEASE = "helm_release"
ALLOW_FILE = "allow-destroy.yaml"
STATEFUL_FILE = "stateful.yaml"


def data_dir() -> Path:
    value = os.environ.get("HELIX_DATA_DIR")
    return Path(value) if value else ROOT / "config"


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k != "//"}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def resources(document: dict) -> dict[str, dict]:
    """address (type.name) -> resource body without cdktf's metadata."""
    return {
        f"{rtype}.{name}": _strip(body)
        for rtype, blocks in (document.get("resource") or {}).items()
        for name, body in blocks.items()
    }


def read_output(outdir: Path) -> dict[str, dict]:
    """Each stack's synthesized JSON by name; empty when the folder holds no output."""
    from stacks.outdir import read_stacks

    return read_stacks(outdir)


# --- the rules (data) -------------------------------------------------------------------------------------


@dataclass
class Rules:
    resource_types: dict[str, str]
    namespace_types: set[str]
    node_type: str
    node_triggers: list[str]
    forced: dict[str, list[str]]
    releases: dict[tuple[str, str], str]  # (release name, chart) -> what it keeps
    rotations: frozenset[str] = frozenset()  # a replacement forced by these only is asked for (a rotation)

    @classmethod
    def load(cls, folder: Path | None = None) -> Rules:
        import yaml

        from planner.catalog import load_catalog

        folder = folder or data_dir()
        data = yaml.safe_load((folder / STATEFUL_FILE).read_text()) or {}
        catalog_dir = Path(os.environ.get("HELIX_CATALOG_DIR") or folder / "catalog")
        catalog, _ = load_catalog(catalog_dir, ROOT)
        releases = {
            (spec.release_name or cid, spec.chart or ""): spec.keeps
            for cid, (spec, _) in (catalog or {}).items()
            if spec.keeps
        }
        node = data.get("node") or {}
        return cls(
            resource_types=dict(data.get("resource_types") or {}),
            namespace_types=set(data.get("namespace_types") or []),
            node_type=node.get("type", ""),
            node_triggers=list(node.get("triggers") or []),
            forced={k: list(v) for k, v in (data.get("forced_replacement") or {}).items()},
            releases=releases,
            rotations=frozenset(data.get("rotation_attributes") or []),
        )


@dataclass(frozen=True)
class Allowed:
    entries: frozenset[tuple[str, str]]

    @classmethod
    def load(cls, path: Path | None = None, extra: list[str] | None = None) -> Allowed:
        """config/allow-destroy.yaml (or $HELIX_ALLOW_DESTROY), plus `stack:address` items given on a command line."""
        import yaml

        path = path or Path(os.environ.get("HELIX_ALLOW_DESTROY") or data_dir() / ALLOW_FILE)
        entries = set()
        if path.is_file():
            data = yaml.safe_load(path.read_text()) or {}
            for item in data.get("allow") or []:
                if isinstance(item, dict) and item.get("stack") and item.get("address"):
                    entries.add((str(item["stack"]), str(item["address"])))
        for item in extra or []:
            stack, _, address = item.partition(":")
            entries.add((stack, address))
        return cls(frozenset(entries))

    def __contains__(self, key: tuple[str, str]) -> bool:
        return key in self.entries


# --- classification ---------------------------------------------------------------------------------------


@dataclass
class Change:
    stack: str
    address: str
    action: str  # create | update | replace | destroy | forget
    loses: str | None = None  # what a destroy or replace takes with it, when stateful
    forced_by: list[str] = field(default_factory=list)  # the attributes that force a replacement

    @property
    def rtype(self) -> str:
        return self.address.split(".", 1)[0]

    def line(self) -> str:
        verb = "destroy" if self.action == "destroy" else f"replace (destroy, then create; {', '.join(self.forced_by)} changes)"
        return (
            f"stack {self.stack}: {self.address}: the change would {verb} it, and with it {self.loses}. Keep it: "
            "undo the change, or move it with a moved block (same stack) or a removed block with destroy = false "
            "and an import (another stack; docs/safety.md); or accept the loss: add "
            f"{{stack: {self.stack}, address: {self.address}, reason: ...}} to config/allow-destroy.yaml"
        )


def _get(body: Any, path: str) -> Any:
    """A dotted attribute; a one-item list (a block in plan JSON) is stepped into."""
    for part in path.split("."):
        if isinstance(body, list) and len(body) == 1:
            body = body[0]
        if not isinstance(body, dict):
            return None
        body = body.get(part)
    return body


def forced_by(rules: Rules, rtype: str, old: dict, new: dict) -> list[str]:
    return [a for a in rules.forced.get(rtype, []) if _get(old, a) != _get(new, a)]


def _protected(body: dict) -> bool:
    return bool((body.get("lifecycle") or {}).get("prevent_destroy"))


def release_keeps(rules: Rules, body: dict) -> str | None:
    keeps = rules.releases.get((str(body.get("name")), str(body.get("chart"))))
    parts = []
    if keeps:
        parts.append(keeps)
    if _protected(body):
        parts.append("a release marked protect")
    if not parts:
        return None
    return f"release {body.get('namespace')}/{body.get('name')}: " + "; ".join(parts)


def held_by_namespace(rules: Rules, documents: dict[str, dict]) -> dict[str, list[str]]:
    """namespace -> the stateful releases in it, across every stack of an output."""
    held: dict[str, list[str]] = {}
    for document in documents.values():
        for address, body in resources(document).items():
            if address.startswith(RELEASE + ".") and release_keeps(rules, body):
                held.setdefault(str(body.get("namespace")), []).append(str(body.get("name")))
    return held


def what_is_lost(rules: Rules, rtype: str, body: dict, held: dict[str, list[str]] | None) -> str | None:
    """What destroying this object loses, or None when it holds nothing. held=None: namespaces' content unknown."""
    if rtype == RELEASE:
        return release_keeps(rules, body)
    if rtype in rules.namespace_types:
        name = _get(body, "metadata.name")
        inside = (held or {}).get(str(name), [])
        if held is None:
            return f"namespace {name} and everything Kubernetes holds in it (volumes, databases, secrets)"
        if _protected(body) or inside:
            releases = f" (releases {', '.join(sorted(inside))})" if inside else ""
            kind = "the protected namespace" if _protected(body) else "namespace"
            return f"{kind} {name} and everything in it{releases}: volumes, databases, secrets"
        return None
    if rtype == rules.node_type and all(k in (body.get("triggers") or {}) for k in rules.node_triggers):
        t = body["triggers"]
        return (
            f"k3s {t.get('role')} node {t.get('name')} ({t.get('address')}), dropped from state with no drain and no "
            "uninstall (a node leaves through cluster.departed_nodes)"
        )
    if rtype in rules.resource_types:
        return " ".join(str(rules.resource_types[rtype]).split())
    if _protected(body):
        return f"{rtype} marked prevent_destroy"
    return None


def _moved_and_removed(document: dict) -> tuple[dict[str, str], dict[str, bool]]:
    moved = {str(m.get("from")): str(m.get("to")) for m in document.get("moved") or [] if isinstance(m, dict)}
    removed = {
        str(r.get("from")): bool((r.get("lifecycle") or {}).get("destroy", True))
        for r in document.get("removed") or []
        if isinstance(r, dict)
    }
    return moved, removed


def classify_outputs(before: dict[str, dict], after: dict[str, dict], rules: Rules) -> list[Change]:
    """Every change between two synthesized apps (stack name -> stack JSON)."""
    held = held_by_namespace(rules, before)
    changes = []
    # A stack that leaves the app destroys nothing: its folder and state stay (stacks/outdir.py says so).
    for stack in sorted(after):
        old, new = resources(before.get(stack) or {}), resources(after.get(stack) or {})
        moved, removed = _moved_and_removed(after.get(stack) or {})
        for address in sorted(set(old) - set(new)):
            rtype = address.split(".", 1)[0]
            if moved.get(address) in new:
                continue  # a moved block: the object keeps living under its new address
            if removed.get(address) is False:
                changes.append(Change(stack, address, "forget"))
                continue
            loses = what_is_lost(rules, rtype, old[address], held)
            if removed.get(address) and rtype == rules.node_type:
                loses = None  # cluster.departed_nodes: removed blocks drain and uninstall it first
            changes.append(Change(stack, address, "destroy", loses))
        for address in sorted(set(old) & set(new)):
            if old[address] == new[address]:
                continue
            rtype = address.split(".", 1)[0]
            forced = forced_by(rules, rtype, old[address], new[address])
            if forced:
                rotation = set(forced) <= rules.rotations
                loses = None if rotation else what_is_lost(rules, rtype, old[address], held)
                changes.append(Change(stack, address, "replace", loses, forced))
            else:
                changes.append(Change(stack, address, "update"))
        changes += [Change(stack, a, "create") for a in sorted(set(new) - set(old)) if a not in moved.values()]
    return changes


PLAN_ACTIONS = {
    ("create",): "create",
    ("update",): "update",
    ("delete",): "destroy",
    ("delete", "create"): "replace",
    ("create", "delete"): "replace",
    ("forget",): "forget",
}


def classify_plan(stack: str, plan: dict, rules: Rules, document: dict | None = None) -> list[Change]:
    """Changes of one stack's plan (`terraform show -json`). document: the stack's synthesized JSON, whose
    removed blocks tell a departing node's planned removal from a dropped one."""
    _, removed = _moved_and_removed(document or {})
    changes = []
    for rc in plan.get("resource_changes") or []:
        action = PLAN_ACTIONS.get(tuple((rc.get("change") or {}).get("actions") or []))
        if action is None:
            continue
        address, rtype = rc.get("address", ""), rc.get("type", "")
        before = (rc.get("change") or {}).get("before") or {}
        loses = None
        forced: list[str] = []
        if action in ("destroy", "replace"):
            loses = what_is_lost(rules, rtype, before, None)
            if action == "destroy" and removed.get(address) and rtype == rules.node_type:
                loses = None
            if action == "replace":
                paths = [".".join(str(p) for p in path) for path in rc.get("change", {}).get("replace_paths") or []]
                forced = paths or ["an attribute the provider replaces on"]
        changes.append(Change(stack, address, action, loses, forced))
    return changes


def refusals(changes: list[Change], allowed: Allowed) -> list[Change]:
    return [
        c for c in changes
        if c.action in ("destroy", "replace") and c.loses and (c.stack, c.address) not in allowed
    ]


def check_outputs(old_dir: Path, new_dir: Path, allowed: Allowed | None = None) -> list[str]:
    """One line per refused change between two output folders (empty: nothing refused)."""
    before = read_output(old_dir)
    if not before:
        return []
    changes = classify_outputs(before, read_output(new_dir), Rules.load())
    return [c.line() for c in refusals(changes, allowed or Allowed.load())]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.guard", description=__doc__.split("\n\n")[0])
    parser.add_argument("--allow", action="append", default=[], metavar="STACK:ADDRESS",
                        help="accept this destroy or replacement too (besides config/allow-destroy.yaml)")
    sub = parser.add_subparsers(dest="mode", required=True)
    outputs = sub.add_parser("outputs", help="compare two synthesized output folders")
    outputs.add_argument("old", type=Path)
    outputs.add_argument("new", type=Path)
    plan = sub.add_parser("plan", help="a stack's plan as `terraform show -json` writes it")
    plan.add_argument("stack")
    plan.add_argument("plan_json", type=Path)
    plan.add_argument("--output", type=Path, default=Path("cdktf.out"), help="the synthesized output (removed blocks)")
    args = parser.parse_args(argv)
    allowed = Allowed.load(extra=args.allow)
    rules = Rules.load()
    if args.mode == "outputs":
        changes = classify_outputs(read_output(args.old), read_output(args.new), rules)
    else:
        try:
            document = json.loads(args.plan_json.read_text())
        except (OSError, ValueError) as exc:
            print(f"error: {args.plan_json}: not a plan in JSON ({exc})", file=sys.stderr)
            return 2
        changes = classify_plan(args.stack, document, rules, read_output(args.output).get(args.stack))
    refused = refusals(changes, allowed)
    for change in refused:
        print(f"error: {change.line()}", file=sys.stderr)
    counts = {a: sum(1 for c in changes if c.action == a) for a in ("create", "update", "replace", "destroy", "forget")}
    print(", ".join(f"{n} {a}" for a, n in counts.items()) + f"; {len(refused)} refused")
    return 2 if refused else 0


if __name__ == "__main__":
    sys.exit(main())
