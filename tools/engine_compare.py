"""Synthesize configs with both engines (cdktf and cdktn, constructs_lib/engine.py) and compare the outputs.

    python -m tools.engine_compare                        # the shipped config and every tests/fixtures/valid one
    python -m tools.engine_compare path/to/cluster.yaml   # these configs
    python -m tools.engine_compare --keep DIR             # keep both outputs in DIR/<engine>/<config>/

Each engine runs in its own environment (.venv for cdktf, .venv-cdktn for cdktn: `CDK_ENGINE=cdktn bash
scripts/setup.sh`; or --python ENGINE=PATH), one process per engine for all configs. Every difference between
the two outputs must be one of ACCEPTED below, each with its reason and a check of how the values relate;
anything else is printed and the exit status is 1. Exit 2 when an environment is missing.
docs/engine.md lists the same differences.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VENVS = {"cdktf": ROOT / ".venv", "cdktn": ROOT / ".venv-cdktn"}
FIXTURES = ROOT / "tests" / "fixtures" / "valid"
VERSION = re.compile(r"^\d+\.\d+\.\d+")


# Nested blocks that one engine's provider bindings declare a list (of one) and the other's a single block:
# (resource type, block). hashicorp/kubernetes 3.x (cdktn's bindings) makes kubernetes_namespace_v1's metadata a
# list, 2.x (cdktf's) a single block; Terraform keeps nested blocks as lists in its state either way.
LIST_BLOCKS: tuple[tuple[str, str], ...] = (("kubernetes_namespace_v1", "metadata"),)


def single_blocks(stack: dict[str, Any]) -> dict[str, Any]:
    """A synthesized stack with each LIST_BLOCKS block as a single block, whichever engine wrote it (in place):
    what tests read, so that they assert the same thing under both engines."""
    for rtype, block in LIST_BLOCKS:
        for resource in stack.get("resource", {}).get(rtype, {}).values():
            value = resource.get(block)
            if isinstance(value, list) and len(value) == 1:
                resource[block] = value[0]
    return stack


def _provider_source(value: Any) -> str:
    """A provider source in full: cdktf's bindings write hashicorp providers as `kubernetes`, cdktn's as
    `hashicorp/kubernetes`; Terraform reads both as registry.terraform.io/hashicorp/kubernetes."""
    text = str(value)
    return text if "/" in text else f"hashicorp/{text}"


@dataclass(frozen=True)
class Accepted:
    """A difference the engines are allowed: where (a file glob and a JSON path, `*` for any key), why, and a
    check of the two values (cdktf's, cdktn's) so that an unrelated change at the same place still shows."""

    file: str
    path: tuple[str, ...]
    reason: str
    check: Callable[[Any, Any], bool]

    def matches(self, file: str, path: tuple[str, ...], cdktf: Any, cdktn: Any) -> bool:
        return (
            fnmatch.fnmatch(file, self.file)
            and len(path) == len(self.path)
            and all(p == "*" or p == k for p, k in zip(self.path, path, strict=True))
            and self.check(cdktf, cdktn)
        )


def _both_versions(a: Any, b: Any) -> bool:
    return isinstance(a, str) and isinstance(b, str) and bool(VERSION.match(a) and VERSION.match(b))


ACCEPTED: tuple[Accepted, ...] = (
    Accepted("manifest.json", ("version",), "the engine's own version (cdktf 0.21.0, cdktn 0.24.x)", _both_versions),
    Accepted(
        "stacks/*/cdk.tf.json", ("//", "metadata", "version"), "the engine's version, written into every stack",
        _both_versions,
    ),
    Accepted(
        "stacks/*/cdk.tf.json",
        ("terraform", "required_providers", "*", "version"),
        "each engine's prebuilt provider bindings pin their provider's version: cdktf's stopped at hashicorp/helm "
        "3.1.1, hashicorp/kubernetes 2.38.0, cloudflare/cloudflare 5.14.0; cdktn's are newer (docs/engine.md)",
        _both_versions,
    ),
    Accepted(
        "stacks/*/cdk.tf.json",
        ("terraform", "required_providers", "*", "source"),
        "cdktn's bindings name hashicorp providers in full (hashicorp/kubernetes), cdktf's by their short name; "
        "the same provider for Terraform",
        lambda a, b: _provider_source(a) == _provider_source(b),
    ),
    *(
        Accepted(
            "stacks/*/cdk.tf.json",
            ("resource", rtype, "*", block),
            f"{rtype}.{block} is a list of one block in cdktn's provider bindings (hashicorp/kubernetes 3.x), a single "
            "block in cdktf's (2.x); Terraform keeps nested blocks as lists in its state either way (LIST_BLOCKS)",
            lambda a, b: isinstance(b, list) and b == [a],
        )
        for rtype, block in LIST_BLOCKS
    ),
)


def differences(a: Any, b: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any, Any]]:
    """(JSON path, a's value, b's value) of each place where two JSON documents differ, at the deepest level where
    both have the same kind of value."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if key not in a or key not in b:
                yield (*path, key), a.get(key, "<absent>"), b.get(key, "<absent>")
            else:
                yield from differences(a[key], b[key], (*path, key))
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for index, (x, y) in enumerate(zip(a, b, strict=True)):
            yield from differences(x, y, (*path, str(index)))
    elif a != b:
        yield path, a, b


def _json_files(folder: Path) -> dict[str, Any]:
    return {p.relative_to(folder).as_posix(): json.loads(p.read_text()) for p in sorted(folder.rglob("*.json"))}


@dataclass
class Comparison:
    accepted: dict[str, int]  # reason -> how many differences it explains
    unlisted: list[str]  # one line per difference no entry accepts


def compare(cdktf_out: Path, cdktn_out: Path) -> Comparison:
    """Compare two synth outputs (cdktf's, cdktn's) of the same config."""
    result = Comparison(accepted={}, unlisted=[])
    a, b = _json_files(cdktf_out), _json_files(cdktn_out)
    for name in sorted(set(a) ^ set(b)):
        result.unlisted.append(f"{name}: only in the {'cdktf' if name in a else 'cdktn'} output")
    for name in sorted(set(a) & set(b)):
        for path, x, y in differences(a[name], b[name]):
            entry = next((e for e in ACCEPTED if e.matches(name, path, x, y)), None)
            if entry is None:
                shown = "/".join(path)
                result.unlisted.append(f"{name}: {shown}: {json.dumps(x)[:200]} (cdktf) != {json.dumps(y)[:200]} (cdktn)")
            else:
                result.accepted[entry.reason] = result.accepted.get(entry.reason, 0) + 1
    return result


def default_configs() -> list[Path]:
    """The shipped config and every valid fixture, less those with cloud node pools: only cdktf has the AWS
    provider here (constructs_lib.engine.ONLY_WITH), so a pool cannot be synthesized by both."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from planner.files import parse_yaml_mapping

    def has_pools(config: Path) -> bool:
        cluster = parse_yaml_mapping(config.read_text(), str(config)).get("cluster")
        return isinstance(cluster, dict) and bool(cluster.get("cloud_node_pools"))

    configs = [ROOT / "config" / "helix.yaml", *sorted(FIXTURES.glob("*.yaml"))]
    return [c for c in configs if not has_pools(c)]


def synth_all(outdir: Path, configs: list[Path]) -> None:
    """In this process (one engine): synthesize each config into outdir/<config file stem>/."""
    sys.path.insert(0, str(ROOT))
    from constructs_lib import lazy_providers
    from planner.load import load_plan
    from stacks.app import build_app

    lazy_providers.install()
    for config in configs:
        plan = load_plan(config)
        (outdir / config.stem).mkdir(parents=True, exist_ok=True)
        build_app(plan, str(outdir / config.stem)).synth()


def run_engine(python: Path, engine_name: str, outdir: Path, configs: list[Path]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CDKTF_OUTDIR")}
    env.update(CDK_ENGINE=engine_name, CHECKPOINT_DISABLE="1", DISABLE_VERSION_CHECK="1")
    node = ROOT / ".node" / "node_modules" / ".bin"
    if node.is_dir():
        env["PATH"] = f"{node}{os.pathsep}{env.get('PATH', '')}"
    command = [str(python), "-O", "-m", "tools.engine_compare", "--synth-into", str(outdir), *map(str, configs)]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.engine_compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("configs", nargs="*", type=Path, help="cluster files (default: shipped config and fixtures)")
    parser.add_argument("--keep", type=Path, help="write both outputs under this folder and keep them")
    parser.add_argument("--python", action="append", default=[], metavar="ENGINE=PATH",
                        help="the interpreter of an engine's environment (default: .venv, .venv-cdktn)")
    parser.add_argument("--synth-into", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    configs = [c.resolve() for c in args.configs] or default_configs()
    if args.synth_into:
        synth_all(args.synth_into, configs)
        return 0
    pythons = {name: venv / "bin" / "python" for name, venv in VENVS.items()}
    for item in args.python:
        name, _, path = item.partition("=")
        if name not in pythons or not path:
            parser.error(f"--python {item}: use cdktf=PATH or cdktn=PATH")
        pythons[name] = Path(path)
    missing = [f"{name} ({path})" for name, path in pythons.items() if not path.exists()]
    if missing:
        print(f"error: no environment for {', '.join(missing)}: run `CDK_ENGINE=<engine> bash scripts/setup.sh`",
              file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="engine-compare-") as scratch:
        base = args.keep or Path(scratch)
        for name, python in pythons.items():
            run = run_engine(python, name, base / name, configs)
            if run.returncode != 0:
                print(f"error: the {name} synth failed:\n{run.stderr[-3000:]}", file=sys.stderr)
                return 1
        accepted: dict[str, int] = {}
        unlisted: list[str] = []
        for config in configs:
            result = compare(base / "cdktf" / config.stem, base / "cdktn" / config.stem)
            for reason, count in result.accepted.items():
                accepted[reason] = accepted.get(reason, 0) + count
            unlisted += [f"{config.name}: {line}" for line in result.unlisted]
    print(f"{len(configs)} config(s) synthesized with cdktf and cdktn")
    for reason, count in sorted(accepted.items()):
        print(f"  accepted x{count}: {reason}")
    for line in unlisted:
        print(f"  NOT LISTED: {line}")
    return 1 if unlisted else 0


if __name__ == "__main__":
    sys.exit(main())
