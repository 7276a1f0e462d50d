"""What the synthesized stacks (cdktf.out) say about the cluster: the Helm releases with exactly the values they
pass, the namespaces with their labels, the Secrets and ConfigMaps Terraform creates, and the order of stacks."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from planner.merge import deep_merge
from tools.verify.errors import VerifyError

# A Terraform interpolation (`${var.x}`, `${data.terraform_remote_state....}`) has no value at synth time; the
# verifier renders with this text in its place. A placeholder is a valid DNS label, so that a name built from it
# still renders, and it is recognisable in findings.
PLACEHOLDER = "verify-placeholder"


@dataclass
class Release:
    stack: str
    address: str                   # helm_release.<key> in its stack
    name: str
    namespace: str
    repository: str
    chart: str
    version: str
    values: list[str] = field(default_factory=list)              # YAML documents, placeholders substituted
    sets: list[tuple[str, str, str]] = field(default_factory=list)   # (name, value, type) incl. set_sensitive
    set_lists: list[tuple[str, list[str]]] = field(default_factory=list)
    depends_on: list[str] = field(default_factory=list)          # addresses in the same stack
    include_crds: bool = True

    @property
    def id(self) -> str:
        return f"{self.stack}/{self.name}"


@dataclass
class Platform:
    out_dir: Path
    releases: list[Release]
    namespaces: dict[str, dict[str, str]]          # Terraform-made namespace -> labels
    tf_objects: set[tuple[str, str, str]]          # (kind, namespace, name) of Secrets/ConfigMaps Terraform creates
    stack_deps: dict[str, list[str]]               # stack -> the stacks it depends on (directly)
    kube_version: str | None

    def stack_ancestors(self, stack: str) -> set[str]:
        seen: set[str] = set()
        todo = list(self.stack_deps.get(stack, []))
        while todo:
            s = todo.pop()
            if s not in seen:
                seen.add(s)
                todo.extend(self.stack_deps.get(s, []))
        return seen

    def predecessors(self, release: Release) -> set[str]:
        """Ids of the releases installed before this one: in stacks it depends on, or its depends_on chain."""
        earlier = self.stack_ancestors(release.stack)
        by_address = {(r.stack, r.address): r for r in self.releases}
        result = {r.id for r in self.releases if r.stack in earlier}
        todo = [(release.stack, a) for a in release.depends_on]
        while todo:
            key = todo.pop()
            dep = by_address.get(key)
            if dep is not None and dep.id not in result:
                result.add(dep.id)
                todo.extend((dep.stack, a) for a in dep.depends_on)
        return result


def substitute(text: str) -> str:
    """Replace every Terraform interpolation `${...}` (braces may nest) with PLACEHOLDER; `$${` is a literal."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text.startswith("$${", i):
            out.append("${")
            i += 3
            continue
        if text.startswith("${", i):
            depth, j = 1, i + 2
            while j < len(text) and depth:
                depth += {"{": 1, "}": -1}.get(text[j], 0)
                j += 1
            out.append(PLACEHOLDER)
            i = j
            continue
        out.append(text[i])
        i += 1
    return "".join(out)


def _bool(value: object, default: bool) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value in ("true", "false"):
        return value == "true"
    return default


def _entries(value: object) -> list[dict]:
    """set/set_list/set_sensitive: a list of blocks (or one block) in cdk.tf.json."""
    if isinstance(value, dict):
        return [value]
    return [v for v in (value if isinstance(value, list) else []) if isinstance(v, dict)]


K3S_VERSION = re.compile(r"INSTALL_K3S_VERSION=(v\d+\.\d+\.\d+(?:\+k3s\d+)?)")
PLAN_VERSION = re.compile(r"upgrade\.cattle\.io/v1\\n  kind: Plan[^\"]*?\\n    version: (v\d+\.\d+\.\d+(?:\+k3s\d+)?)")


def load_platform(out_dir: Path) -> Platform:
    manifest_path = out_dir / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text())
        stacks = manifest["stacks"]
        if not isinstance(stacks, dict):
            raise TypeError("stacks is not a mapping")
    except FileNotFoundError:
        raise VerifyError(f"{manifest_path}: not found; run `task synth` first (or pass --out DIR)") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise VerifyError(f"{manifest_path}: not a cdktf manifest ({exc})") from None

    releases: list[Release] = []
    namespaces: dict[str, dict[str, str]] = {}
    tf_objects: set[tuple[str, str, str]] = set()
    stack_deps: dict[str, list[str]] = {}
    versions: list[str] = []
    for stack_name in sorted(stacks):
        entry = stacks[stack_name]
        stack_deps[stack_name] = list(entry.get("dependencies") or [])
        path = out_dir / entry.get("synthesizedStackPath", f"stacks/{stack_name}/cdk.tf.json")
        try:
            raw = path.read_text()
            doc = json.loads(raw)
            resources = doc.get("resource") or {}
            if not isinstance(resources, dict):
                raise TypeError("resource is not a mapping")
        except (OSError, ValueError, TypeError) as exc:
            raise VerifyError(f"{path}: cannot read the synthesized stack ({exc})") from None
        versions += K3S_VERSION.findall(raw) + PLAN_VERSION.findall(raw)
        try:
            releases += [_release(stack_name, key, body) for key, body in sorted((resources.get("helm_release") or {}).items())]
            for body in (resources.get("kubernetes_namespace_v1") or {}).values():
                meta = _meta(body)
                namespaces[meta["name"]] = {k: str(v) for k, v in (meta.get("labels") or {}).items()}
            for kind, tf_type in (("Secret", "kubernetes_secret_v1"), ("ConfigMap", "kubernetes_config_map_v1")):
                for body in (resources.get(tf_type) or {}).values():
                    meta = _meta(body)
                    tf_objects.add((kind, meta.get("namespace") or "default", meta["name"]))
        except (KeyError, TypeError, AttributeError) as exc:
            raise VerifyError(f"{path}: unexpected resource layout ({exc!r})") from None
    kube = sorted(set(versions))
    return Platform(out_dir, releases, namespaces, tf_objects, stack_deps, kube[0] if len(kube) == 1 else None)


def _meta(body: dict) -> dict:
    meta = body["metadata"]
    if isinstance(meta, list):
        meta = meta[0]
    return meta


def _release(stack: str, key: str, body: dict) -> Release:
    sets: list[tuple[str, str, str]] = []
    for block in _entries(body.get("set")):
        sets.append((block["name"], substitute(str(block.get("value", ""))), block.get("type") or "auto"))
    for block in _entries(body.get("set_sensitive")):
        # The value is secret and usually a Terraform reference: a placeholder of the same kind stands in for it.
        sets.append((block["name"], PLACEHOLDER, block.get("type") or "auto"))
    set_lists = [(b["name"], [substitute(str(v)) for v in b.get("value") or []]) for b in _entries(body.get("set_list"))]
    depends = [d.split(".", 1)[1] for d in body.get("depends_on") or [] if d.startswith("helm_release.")]
    return Release(
        stack=stack,
        address=key,
        name=body["name"],
        namespace=body.get("namespace") or "default",
        repository=body.get("repository") or "",
        chart=body["chart"],
        version=str(body.get("version") or ""),
        values=[substitute(v) for v in body.get("values") or []],
        sets=sets,
        set_lists=set_lists,
        depends_on=depends,
        include_crds=not _bool(body.get("skip_crds"), False),
    )


def user_values(release: Release) -> dict:
    """The values the release passes, merged as Helm merges them (values files in order, then --set)."""
    merged: dict = {}
    for text in release.values:
        doc = yaml.safe_load(text)
        if isinstance(doc, dict):
            merged = deep_merge(merged, doc)
    for name, value, _type in release.sets:
        _set_path(merged, split_set_name(name), value)
    for name, values in release.set_lists:
        _set_path(merged, split_set_name(name), list(values))
    return merged


def split_set_name(name: str) -> list[str]:
    """`a.b\\.c[0].d` -> ['a', 'b.c']: the path up to the first list index (lists are not walked)."""
    parts, cur, i = [], "", 0
    while i < len(name):
        ch = name[i]
        if ch == "\\" and i + 1 < len(name):
            cur += name[i + 1]
            i += 2
            continue
        if ch == ".":
            parts.append(cur)
            cur = ""
        elif ch == "[":
            parts.append(cur)
            return [p for p in parts if p]
        else:
            cur += ch
        i += 1
    parts.append(cur)
    return [p for p in parts if p]


def _set_path(tree: dict, path: list[str], value: object) -> None:
    node = tree
    for key in path[:-1]:
        nxt = node.get(key)
        if not isinstance(nxt, dict):
            nxt = node[key] = {}
        node = nxt
    if path:
        node[path[-1]] = value
