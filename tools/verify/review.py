"""The part of `task review` that needs charts: the diff of each release's rendered objects between base and head
(the way flux-local shows it for Flux repositories), and the verify findings the change adds or removes."""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import yaml

from tools.verify.errors import VerifyError
from tools.verify.render import Rendered

MAX_DIFF_LINES = 300      # per release: a PR comment has to stay readable


def _objects_text(result: Rendered | None) -> list[str]:
    if result is None:
        return []
    if result.error:
        return [f"# does not render: {result.error}\n"]
    docs = sorted(result.objects, key=lambda o: (o.kind, o.explicit_namespace or "", o.name))
    text = "".join(f"---\n# {o.kind} {o.name}\n" + yaml.safe_dump(o.doc, sort_keys=True) for o in docs)
    return text.splitlines(keepends=True)


def rendered_diffs(base: dict[str, Rendered], head: dict[str, Rendered]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for rid in sorted(set(base) | set(head)):
        before, after = _objects_text(base.get(rid)), _objects_text(head.get(rid))
        if before != after:
            out[rid] = list(difflib.unified_diff(before, after, f"base/{rid}", f"head/{rid}", n=3))
    return out


def verify_section(base_dir: Path, head_dir: Path, charts: Path | None = None, allow: Path | None = None) -> str:
    from tools.verify.__main__ import DEFAULT_ALLOW, verify  # noqa: PLC0415 (keeps `task review` light without it)

    if charts is None and os.environ.get("HELIX_CHARTS"):
        charts = Path(os.environ["HELIX_CHARTS"])
    try:
        b = verify(base_dir, charts, allow or DEFAULT_ALLOW)
        h = verify(head_dir, charts, allow or DEFAULT_ALLOW)
    except VerifyError as exc:
        return f"\n### Rendered objects and verify findings\n\n`task verify` could not run: {exc}\n"
    lines = ["", "### Rendered objects (task verify)", ""]
    diffs = rendered_diffs(b.results, h.results)
    if not diffs:
        lines.append("No release renders differently.")
    for rid, diff in diffs.items():
        shown = diff[:MAX_DIFF_LINES]
        lines += [f"<details><summary><code>{rid}</code>: {len(diff)} diff lines</summary>", "", "```diff"]
        lines += [ln.rstrip("\n") for ln in shown]
        if len(diff) > MAX_DIFF_LINES:
            lines.append(f"... {len(diff) - MAX_DIFF_LINES} more lines")
        lines += ["```", "", "</details>", ""]
    key = lambda f: (f.rule, f.stack, f.release, f.object, f.message)   # noqa: E731
    before, after = {key(f) for f in b.findings}, {key(f) for f in h.findings}
    lines += ["", "### Verify findings", ""]
    added, removed = sorted(after - before), sorted(before - after)
    if not added and not removed:
        lines.append(f"The change adds and removes no finding ({len(after)} on head).")
    for label, items in (("added", added), ("removed", removed)):
        for rule, stack, release, obj, msg in items:
            lines.append(f"- {label}: `{rule}` {stack}/{release} {obj}: {msg}")
    return "\n".join(lines) + "\n"
