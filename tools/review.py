"""Review a change: synthesize two git revisions and summarize, per stack, what Terraform would be asked to do.

    python -m tools.review BASE HEAD --out review.md
    python -m tools.review origin/main HEAD                      # markdown on stdout
    python -m tools.review origin/main WORKTREE                  # HEAD as the working tree is, uncommitted changes too
    python -m tools.review --base-out old/cdktf.out --head-out cdktf.out --out review.md   # no git, no synth

Each revision is checked out with `git worktree add` into a temporary folder and synthesized by its own main.py
into the review cache ($HELIX_REVIEW_CACHE, default ~/.cache/helix-platform/review; the checkout's cdktf.out is
never touched), keyed by commit and environment, so the base of the next review of the same branch is read from
there in no time. When HEAD is the commit checked out here and the working tree is clean, this checkout is
synthesized instead of a second one; when it has uncommitted changes, they are left out (with a note) unless HEAD
is given as WORKTREE.

The summary lists, for each stack: a change of its state backend (with the migration command), resources added,
removed (Terraform destroys them) and changed, Helm chart versions upgraded or downgraded, Cloudflare DNS
records changed, and new or removed input variables. It is computed from the
synthesized JSON only: no state, no credentials, no plan. The synthesized JSON holds no secret (see
docs/safety.md), so neither does the summary.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from stacks.outdir import backend_of, describe_backend, migrate_command  # noqa: E402 - plain Python, no jsii

# GitHub refuses comments longer than 65536 characters.
MAX_MARKDOWN = 60_000
MAX_DIFF_LINES = 80
RELEASE = "helm_release"
DNS_RECORD = "cloudflare_dns_record"
TUNNEL_CONFIG = "cloudflare_zero_trust_tunnel_cloudflared_config"
WORKTREE = "WORKTREE"  # as HEAD: this checkout's working tree, uncommitted changes included


# --- reading synthesized output ---------------------------------------------------------------------------


def read_output(outdir: Path) -> dict[str, dict]:
    """Each stack's synthesized JSON by stack name; an empty mapping when there is no output."""
    manifest_path = outdir / "manifest.json"
    if not manifest_path.exists():
        return {}
    manifest = json.loads(manifest_path.read_text())
    return {
        name: json.loads((outdir / entry["synthesizedStackPath"]).read_text())
        for name, entry in sorted(manifest["stacks"].items())
    }


def _strip_metadata(value: Any) -> Any:
    """A resource body without cdktf's "//" metadata (construct paths), which Terraform ignores."""
    if isinstance(value, dict):
        return {k: _strip_metadata(v) for k, v in value.items() if k != "//"}
    if isinstance(value, list):
        return [_strip_metadata(v) for v in value]
    return value


def resources(document: dict) -> dict[str, dict]:
    """address (type.name) -> resource body without metadata."""
    return {
        f"{rtype}.{name}": _strip_metadata(body)
        for rtype, blocks in document.get("resource", {}).items()
        for name, body in blocks.items()
    }


# --- the diff ---------------------------------------------------------------------------------------------


@dataclass
class ChartChange:
    address: str
    release: str
    namespace: str
    before: str | None  # "chart version", None when added
    after: str | None  # None when removed
    repository_before: str | None = None
    repository_after: str | None = None

    @property
    def direction(self) -> str:
        """upgraded | downgraded | changed (same version, another chart or repository; or not comparable)."""
        old, new = _version_key(self.before), _version_key(self.after)
        if old is None or new is None or old == new:
            return "changed"
        return "upgraded" if new > old else "downgraded"


def _version_key(chart_version: str | None) -> tuple | None:
    """Comparable form of the version in "chart 1.2.3": release numbers, then a pre-release sorting first."""
    if not chart_version or " " not in chart_version:
        return None
    version = chart_version.rsplit(" ", 1)[1].lstrip("v").split("+", 1)[0]
    release, _, pre = version.partition("-")
    try:
        numbers = tuple(int(part) for part in release.split("."))
    except ValueError:
        return None
    return numbers, (0, pre) if pre else (1, "")


@dataclass
class DnsChange:
    action: str  # added | removed | changed
    address: str
    before: str | None
    after: str | None


@dataclass
class StackReview:
    name: str
    status: str = "changed"  # added | removed | changed | unchanged
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    protected_removed: list[str] = field(default_factory=list)
    changed: dict[str, list[str]] = field(default_factory=dict)  # address -> changed top-level attributes
    charts: list[ChartChange] = field(default_factory=list)
    dns: list[DnsChange] = field(default_factory=list)
    # Where the tunnel sends each hostname (and path): "added|removed|changed", rule, before, after.
    origins: list[tuple[str, str, str | None, str | None]] = field(default_factory=list)
    values_diffs: dict[str, list[str]] = field(default_factory=dict)  # release address -> unified diff lines
    variables_added: list[str] = field(default_factory=list)
    variables_removed: list[str] = field(default_factory=list)
    dependencies_before: list[str] = field(default_factory=list)
    dependencies_after: list[str] = field(default_factory=list)
    backend_before: dict | None = None
    backend_after: dict | None = None
    # From the destroy guard (tools/guard.py): address -> attributes that force the replacement, and
    # address -> what a destroy or replacement takes with it (stateful only), and those config/allow-destroy.yaml names.
    replaced: dict[str, list[str]] = field(default_factory=dict)
    stateful: dict[str, str] = field(default_factory=dict)
    allowed: list[str] = field(default_factory=list)

    @property
    def backend_changed(self) -> bool:
        return self.status == "changed" and self.backend_before != self.backend_after

    @property
    def has_changes(self) -> bool:
        return bool(
            self.status in ("added", "removed")
            or self.backend_changed
            or self.added
            or self.removed
            or self.changed
            or self.variables_added
            or self.variables_removed
            or self.dependencies_before != self.dependencies_after
        )


@dataclass
class Review:
    stacks: list[StackReview]

    def stack(self, name: str) -> StackReview:
        return next(s for s in self.stacks if s.name == name)

    @property
    def changed(self) -> list[StackReview]:
        return [s for s in self.stacks if s.has_changes]


def _chart_of(body: dict) -> str:
    return f"{body.get('chart')} {body.get('version')}"


def _dns_text(body: dict) -> str:
    proxied = " (proxied)" if body.get("proxied") else ""
    return f"{body.get('name')} {body.get('type')} {body.get('content')}{proxied}"


def _values_text(body: dict) -> list[str]:
    return "\n".join(body.get("values") or []).splitlines()


def _tunnel_routes(body: dict | None) -> dict[str, str]:
    """`hostname[path]` -> the origin service, from a tunnel config's ingress rules (the catch-all as `*`)."""
    routes: dict[str, str] = {}
    for rule in ((body or {}).get("config") or {}).get("ingress") or []:
        key = (rule.get("hostname") or "*") + (f" {rule['path']}" if rule.get("path") else "")
        routes[key] = str(rule.get("service"))
    return routes


def tunnel_origin_changes(before: dict | None, after: dict | None) -> list[tuple[str, str, str | None, str | None]]:
    old, new = _tunnel_routes(before), _tunnel_routes(after)
    out: list[tuple[str, str, str | None, str | None]] = []
    for key in sorted(set(old) | set(new)):
        if key not in old:
            out.append(("added", key, None, new[key]))
        elif key not in new:
            out.append(("removed", key, old[key], None))
        elif old[key] != new[key]:
            out.append(("changed", key, old[key], new[key]))
    return out


def _dependencies(document: dict) -> list[str]:
    return sorted(document.get("//", {}).get("dependencies", []) or [])


def diff_stack(name: str, before: dict | None, after: dict | None) -> StackReview:
    review = StackReview(name=name)
    if before is None:
        review.status = "added"
    elif after is None:
        review.status = "removed"
    old, new = resources(before or {}), resources(after or {})
    review.added = sorted(set(new) - set(old))
    review.removed = sorted(set(old) - set(new))
    review.protected_removed = [
        a for a in review.removed if (old[a].get("lifecycle") or {}).get("prevent_destroy")
    ]
    for address in sorted(set(old) & set(new)):
        if old[address] != new[address]:
            keys = sorted(k for k in set(old[address]) | set(new[address]) if old[address].get(k) != new[address].get(k))
            review.changed[address] = keys

    for address in sorted(set(old) | set(new)):
        rtype = address.split(".", 1)[0]
        a, b = old.get(address), new.get(address)
        if rtype == RELEASE:
            if a and b and (a.get("chart"), a.get("version"), a.get("repository")) != (
                b.get("chart"),
                b.get("version"),
                b.get("repository"),
            ):
                review.charts.append(
                    ChartChange(
                        address, b.get("name", ""), b.get("namespace", ""), _chart_of(a), _chart_of(b),
                        a.get("repository"), b.get("repository"),
                    )
                )
            elif a is None or b is None:
                body = a or b or {}
                review.charts.append(
                    ChartChange(
                        address, body.get("name", ""), body.get("namespace", ""),
                        _chart_of(a) if a else None, _chart_of(b) if b else None,
                    )
                )
            if a and b and a.get("values") != b.get("values"):
                diff = list(
                    difflib.unified_diff(_values_text(a), _values_text(b), "before", "after", n=2, lineterm="")
                )
                review.values_diffs[address] = diff
        elif rtype == TUNNEL_CONFIG:
            review.origins += tunnel_origin_changes(a, b)
        elif rtype == DNS_RECORD:
            if a is None:
                review.dns.append(DnsChange("added", address, None, _dns_text(b or {})))
            elif b is None:
                review.dns.append(DnsChange("removed", address, _dns_text(a), None))
            elif a != b:
                review.dns.append(DnsChange("changed", address, _dns_text(a), _dns_text(b)))

    old_vars, new_vars = (before or {}).get("variable", {}), (after or {}).get("variable", {})
    review.variables_added = sorted(set(new_vars) - set(old_vars))
    review.variables_removed = sorted(set(old_vars) - set(new_vars))
    review.dependencies_before = _dependencies(before or {})
    review.dependencies_after = _dependencies(after or {})
    review.backend_before = backend_of(before or {})
    review.backend_after = backend_of(after or {})
    if review.status == "changed" and not review.has_changes:
        review.status = "unchanged"
    return review


def diff_outputs(base: dict[str, dict], head: dict[str, dict]) -> Review:
    """Compare two synthesized apps (stack name -> stack JSON, as read_output returns)."""
    review = Review([diff_stack(name, base.get(name), head.get(name)) for name in sorted(set(base) | set(head))])
    _add_guard(review, base, head)
    return review


def _add_guard(review: Review, base: dict[str, dict], head: dict[str, dict]) -> None:
    """The destroy guard's classes: replacements, and what each stateful destroy or replacement takes."""
    from tools.guard import Allowed, Rules, classify_outputs  # noqa: PLC0415 - plain Python too

    allowed = Allowed.load()
    stacks = {s.name: s for s in review.stacks}
    for change in classify_outputs(base, head, Rules.load()):
        s = stacks[change.stack]
        if change.action == "replace":
            s.replaced[change.address] = change.forced_by
        if change.action in ("destroy", "replace") and change.loses:
            s.stateful[change.address] = change.loses
            if (change.stack, change.address) in allowed:
                s.allowed.append(change.address)


def _manifest_dependencies(outdir: Path) -> dict[str, list[str]]:
    manifest = json.loads((outdir / "manifest.json").read_text())
    return {name: sorted(entry.get("dependencies", [])) for name, entry in manifest["stacks"].items()}


def diff_dirs(base_dir: Path, head_dir: Path) -> Review:
    """Compare two synthesized output folders (each holding a manifest.json)."""
    base, head = read_output(base_dir), read_output(head_dir)
    for outdir, docs in ((base_dir, base), (head_dir, head)):
        if docs:
            for name, deps in _manifest_dependencies(outdir).items():
                docs[name] = {**docs[name], "//": {**docs[name].get("//", {}), "dependencies": deps}}
    return diff_outputs(base, head)


# --- markdown ---------------------------------------------------------------------------------------------


def _code(text: Any) -> str:
    return "`" + str(text).replace("`", "'") + "`"


def render_markdown(review: Review, base_label: str = "base", head_label: str = "head") -> str:
    lines = [f"## Helix change review: {base_label} → {head_label}", ""]
    changed = review.changed
    if not changed:
        lines += ["No stack changes: every synthesized stack is identical apart from metadata.", ""]
        return "\n".join(lines)
    unchanged = [s.name for s in review.stacks if not s.has_changes]
    lines += [
        f"{len(changed)} stack(s) change" + (f"; unchanged: {', '.join(unchanged)}." if unchanged else "."),
        "",
        "| stack | status | added | removed | changed | charts | DNS |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for s in changed:
        lines.append(
            f"| {s.name} | {s.status} | {len(s.added)} | {len(s.removed)} | {len(s.changed)} | "
            f"{len(s.charts)} | {len(s.dns)} |"
        )
    moving = [s for s in changed if s.backend_changed]
    if moving:
        lines += [
            "",
            f"> **Warning: the state backend of {len(moving)} stack(s) changes.** Migrate each stack's state before "
            "any plan or deploy (in dependency order; docs/state.md), or Terraform starts on empty state.",
        ]
    losses = [(s.name, a) for s in changed for a in s.stateful if a not in s.allowed]
    if losses:
        lines += [
            "",
            f"> **Stop: {len(losses)} stateful object(s) would be destroyed or replaced** (marked below). The synth "
            "and the deploy refuse this unless `config/allow-destroy.yaml` names each one; docs/safety.md says how to "
            "keep them instead.",
        ]
    destroys = [(s.name, a) for s in changed for a in s.removed]
    if destroys:
        lines += [
            "",
            f"> **Warning: {len(destroys)} resource(s) will be destroyed.** A rename needs a moved block "
            "(`resource.move_from_id(\"type.old_name\")`) to keep the real object; see docs/safety.md.",
        ]
    for s in changed:
        lines += ["", f"### Stack `{s.name}` ({s.status})", ""]
        if s.backend_changed:
            lines.append(
                f"- **State backend**: {describe_backend(s.backend_before)} → {describe_backend(s.backend_after)}. "
                f"Migrate it before any plan: `{migrate_command(f'cdktf.out/stacks/{s.name}')}`"
            )
        if s.dependencies_before != s.dependencies_after:
            lines.append(
                f"- Dependencies: {', '.join(s.dependencies_before) or 'none'} → {', '.join(s.dependencies_after) or 'none'}"
            )
        if s.variables_added:
            lines.append(
                "- New input variables (set them as `TF_VAR_<name>` before deploying): "
                + ", ".join(_code(v) for v in s.variables_added)
            )
        if s.variables_removed:
            lines.append("- Removed input variables: " + ", ".join(_code(v) for v in s.variables_removed))
        if s.charts:
            lines += ["", "**Charts**", ""]
            for c in s.charts:
                where = f"{_code(c.release)} in {_code(c.namespace)}"
                if c.before is None:
                    lines.append(f"- new release {where}: {_code(c.after)}")
                elif c.after is None:
                    lines.append(f"- release removed {where}: was {_code(c.before)}")
                else:
                    repo = ""
                    if c.repository_before != c.repository_after:
                        repo = f" (repository {_code(c.repository_before)} → {_code(c.repository_after)})"
                    verb = {"upgraded": "chart upgraded", "downgraded": "chart **downgraded**"}.get(c.direction, "chart changed")
                    lines.append(f"- {verb} {where}: {_code(c.before)} → {_code(c.after)}{repo}")
        if s.origins:
            lines += ["", "**Tunnel origins** (where Cloudflare sends each hostname)", ""]
            for action, rule, before_origin, after_origin in s.origins:
                if action == "added":
                    lines.append(f"- added {_code(rule)} → {_code(after_origin)}")
                elif action == "removed":
                    lines.append(f"- removed {_code(rule)} (was {_code(before_origin)})")
                else:
                    lines.append(f"- changed {_code(rule)}: {_code(before_origin)} → {_code(after_origin)}")
        if s.dns:
            lines += ["", "**DNS records**", ""]
            for d in s.dns:
                if d.action == "added":
                    lines.append(f"- added {_code(d.after)}")
                elif d.action == "removed":
                    lines.append(f"- removed {_code(d.before)}")
                else:
                    lines.append(f"- changed {_code(d.before)} → {_code(d.after)}")
        if s.added:
            lines += ["", f"**Added ({len(s.added)})**", ""] + [f"- {_code(a)}" for a in s.added]
        if s.removed:
            lines += ["", f"**Removed ({len(s.removed)}): Terraform destroys these**", ""]
            lines += [f"- {_code(a)}{_loss(s, a)}" for a in s.removed]
        if s.replaced:
            lines += ["", f"**REPLACE ({len(s.replaced)}): Terraform destroys these and creates them anew**", ""]
            lines += [f"- {_code(a)}: {', '.join(keys)} changes{_loss(s, a)}" for a, keys in s.replaced.items()]
        updated = {a: keys for a, keys in s.changed.items() if a not in s.replaced}
        if updated:
            lines += ["", f"**Changed ({len(updated)})**", ""]
            lines += [f"- {_code(a)}: {', '.join(keys)}" for a, keys in updated.items()]
        for address, diff in s.values_diffs.items():
            shown = diff[:MAX_DIFF_LINES]
            more = [f"... {len(diff) - MAX_DIFF_LINES} more lines"] if len(diff) > MAX_DIFF_LINES else []
            lines += [
                "",
                f"<details><summary>values of {_code(address)}</summary>",
                "",
                "```diff",
                *shown,
                *more,
                "```",
                "</details>",
            ]
    text = "\n".join(lines) + "\n"
    while "\n\n\n" in text:  # a section may start with nothing before it; diff lines never are empty
        text = text.replace("\n\n\n", "\n\n")
    if len(text) > MAX_MARKDOWN:
        text = text[:MAX_MARKDOWN].rsplit("\n", 1)[0] + "\n\n_(truncated; run `task review` locally for the rest)_\n"
    return text


def _loss(s: StackReview, address: str) -> str:
    """What a destroy or replacement takes, for a stateful object; prevent_destroy does not stop a removed block."""
    if address not in s.stateful:
        return ""
    if address in s.allowed:
        return f": **takes {s.stateful[address]}** (allowed in config/allow-destroy.yaml)"
    return f": **STATEFUL, refused: takes {s.stateful[address]}**"


# --- git and synthesis ------------------------------------------------------------------------------------


class SynthFailed(Exception):
    def __init__(self, label: str, output: str):
        super().__init__(f"{label} did not synthesize")
        self.label = label
        self.output = output


def _git(*args: str, cwd: Path = ROOT) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def resolve(rev: str) -> str:
    return _git("rev-parse", "--verify", f"{rev}^{{commit}}")


def is_current_checkout(sha: str) -> bool:
    """True when sha is checked out here with no modified or untracked (non-ignored) file."""
    return resolve("HEAD") == sha and _git("status", "--porcelain") == ""


def synthesize_checkout(checkout: Path, outdir: Path, label: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_VAR_")}
    env.update(CDKTF_OUTDIR=str(outdir), CHECKPOINT_DISABLE="1", DISABLE_VERSION_CHECK="1")
    proc = subprocess.run([sys.executable, "-O", "main.py"], cwd=checkout, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SynthFailed(label, (proc.stdout + proc.stderr)[-4000:])


def review_cache() -> Path:
    """Where reviews keep synthesized revisions: $HELIX_REVIEW_CACHE, else the user's cache folder."""
    given = os.environ.get("HELIX_REVIEW_CACHE")
    if given:
        return Path(given)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "helix-platform" / "review"


def synthesize_revision(rev: str, workdir: Path, label: str) -> Path:
    """Synthesize a git revision (or WORKTREE: this checkout as it is) and return its output folder.

    A commit's output is a function of the commit and of what the commit does not fix (variables, installed
    packages, Python, Node: stacks/synth_cache.environment_key), so it is kept in the review cache under that pair
    and a later review of the same base reuses it without a checkout or a synth. The working tree is synthesized
    into the cache too, where main.py's own synth cache reuses it while nothing changed."""
    from stacks.synth_cache import environment_key, reusable

    cache = review_cache()
    env_key = environment_key()[:16]
    if rev == WORKTREE:
        outdir = cache / f"worktree-{env_key}" / "cdktf.out"
        synthesize_checkout(ROOT, outdir, label)
        return outdir
    sha = resolve(rev)
    outdir = cache / f"{sha}-{env_key}" / "cdktf.out"
    if reusable(outdir, None) is not None:
        return outdir
    if is_current_checkout(sha):
        synthesize_checkout(ROOT, outdir, label)
        return outdir
    checkout = workdir / label / "src"
    _git("worktree", "add", "--detach", str(checkout), sha)
    try:
        synthesize_checkout(checkout, outdir, label)
    finally:
        _git("worktree", "remove", "--force", str(checkout))
    return outdir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.review", description=__doc__.split("\n\n")[0])
    parser.add_argument("base", nargs="?", help="base revision (a branch, tag or commit)")
    parser.add_argument("head", nargs="?", help=f"head revision, or {WORKTREE} for this checkout with its uncommitted changes")
    parser.add_argument("--out", type=Path, help="write the markdown here instead of stdout")
    parser.add_argument("--base-out", type=Path, help="use this synthesized folder for the base")
    parser.add_argument("--head-out", type=Path, help="use this synthesized folder for the head")
    parser.add_argument("--verify", action="store_true",
                        help="add the rendered-object diff and the verify findings (needs helm and charts)")
    args = parser.parse_args(argv)
    if not (args.base or args.base_out) or not (args.head or args.head_out):
        parser.error("give BASE and HEAD revisions, or --base-out and --head-out folders")

    with tempfile.TemporaryDirectory(prefix="helix-review-") as tmp:
        labels = {}
        try:
            # The two synths are independent processes: run them side by side.
            with ThreadPoolExecutor(max_workers=2) as pool:
                futures = []
                for rev, given, label in ((args.base, args.base_out, "base"), (args.head, args.head_out, "head")):
                    if given:
                        futures.append(pool.submit(lambda g=given: g))  # type: ignore[misc]
                        labels[label] = str(given)
                    elif rev == WORKTREE:
                        labels[label] = f"the working tree at {resolve('HEAD')[:10]}, uncommitted changes included"
                        futures.append(pool.submit(synthesize_revision, rev, Path(tmp), label))
                    else:
                        labels[label] = f"{rev} ({resolve(rev)[:10]})"
                        if label == "head" and resolve(rev) == resolve("HEAD") and _git("status", "--porcelain"):
                            print(
                                "note: the working tree has uncommitted changes, which this review leaves out "
                                f"(it reviews the commit {rev}); give HEAD as {WORKTREE} to include them",
                                file=sys.stderr,
                            )
                        futures.append(pool.submit(synthesize_revision, rev, Path(tmp), label))
                dirs = [f.result() for f in futures]
            text = render_markdown(diff_dirs(dirs[0], dirs[1]), labels["base"], labels["head"])
            if args.verify:
                from tools.verify.review import verify_section  # noqa: PLC0415

                text += verify_section(dirs[0], dirs[1])
            status = 0
        except subprocess.CalledProcessError as exc:
            print(f"error: git {' '.join(exc.cmd[1:])}: {exc.stderr.strip()}", file=sys.stderr)
            return 2
        except SynthFailed as exc:
            text = (
                f"## Helix change review\n\nThe {exc.label} revision did not synthesize:\n\n```\n{exc.output.strip()}\n```\n"
            )
            status = 1
    if args.out:
        args.out.write_text(text)
        # The summary (everything before the first stack's section) on the terminal too, then where the rest is.
        sys.stdout.write(summary_of(text) + f"\n(the whole review: {args.out})\n")
    else:
        sys.stdout.write(text)
    return status


def summary_of(markdown: str) -> str:
    """A review's summary: its text up to the first per-stack section."""
    head = markdown.split("\n### ", 1)[0]
    return head.rstrip("\n")


if __name__ == "__main__":
    sys.exit(main())
