"""`task doctor`: what is still missing before a deploy, one line each, before anything is applied.

    python -m tools.doctor [--config PATH] [--outdir cdktf.out] [--no-ssh] [stack or pattern...]

Checks, for the stacks about to deploy (default: every stack; `task doctor` synthesizes first):
- placeholders: every example value of config/placeholders.yaml still in the cluster file;
- variables: every variable a selected stack declares without a default whose TF_VAR_<name> is unset or empty
  (descriptions from config/variables.yaml, the one list);
- SSH: every node the nodes stack provisions answers on its SSH port (TCP, 3 s each, all at once);
- Terraform: on the PATH (or OpenTofu) at the floor version or newer.
Exit status 0 when nothing is missing, 1 otherwise, 2 when the cluster file itself is invalid.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
PLACEHOLDERS = ROOT / "config" / "placeholders.yaml"
# S3 lock files (use_lockfile) arrived in Terraform 1.10; README, Quick start, and docs/first-deploy.md say the same.
TERRAFORM_FLOOR = (1, 10)
SSH_TIMEOUT = 3.0


def _values_at(data: Any, path: str) -> list[tuple[str, Any]]:
    """(concrete path, value) for a field path with `[*]` wildcards; nothing when a part is missing."""
    found = [("", data)]
    for part in path.split("."):
        m = re.fullmatch(r"([\w-]+)(\[\*\])?", part)
        assert m, path
        key, every = m.group(1), m.group(2)
        nxt = []
        for where, node in found:
            if isinstance(node, dict) and key in node:
                here = f"{where}.{key}" if where else key
                if every:
                    nxt += [(f"{here}[{i}]", item) for i, item in enumerate(node[key] or [])]
                else:
                    nxt.append((here, node[key]))
        found = nxt
    return found


def placeholder_lines(data: dict, placeholders: Path = PLACEHOLDERS) -> list[str]:
    lines = []
    for entry in yaml.safe_load(placeholders.read_text())["placeholders"]:
        when = entry.get("when")
        if when and not all(bool(v) for _, v in _values_at(data, when) or [("", True)]):
            continue
        examples = {str(v) for v in entry["values"]}
        for where, value in _values_at(data, entry["path"]):
            if str(value) in examples:
                lines.append(f"placeholder: {where} is still the example {value!r}: {entry['hint']}")
    return lines


def variable_lines(outdir: Path, stacks: list[str], environ: dict[str, str], described: dict[str, dict]) -> list[str]:
    manifest = json.loads((outdir / "manifest.json").read_text())["stacks"]
    needed: dict[str, list[str]] = {}
    for stack in stacks:
        doc = json.loads((outdir / manifest[stack]["synthesizedStackPath"]).read_text())
        for name, var in (doc.get("variable") or {}).items():
            if "default" not in var and not environ.get(f"TF_VAR_{name}"):
                needed.setdefault(name, []).append(stack)
    lines = []
    for name in sorted(needed, key=lambda n: (list(described).index(n) if n in described else len(described), n)):
        what = " ".join(str(described.get(name, {}).get("description", "")).split())
        lines.append(f"variable: TF_VAR_{name} is not set (stacks {', '.join(needed[name])})" + (f": {what}" if what else ""))
    return lines


def _probe(address: str, port: int, timeout: float) -> str | None:
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return None
    except OSError as err:
        return err.strerror or type(err).__name__


def ssh_lines(nodes: list[tuple[str, str]], port: int, timeout: float = SSH_TIMEOUT) -> list[str]:
    """One line per (name, address) that does not accept a TCP connection on `port` within `timeout`."""
    with ThreadPoolExecutor(max_workers=max(1, min(16, len(nodes)))) as pool:
        results = list(pool.map(lambda n: _probe(n[1], port, timeout), nodes))
    return [f"ssh: {name} ({address}:{port}) does not answer: {why}" for (name, address), why in zip(nodes, results, strict=True) if why]


def terraform_lines(floor: tuple[int, int] = TERRAFORM_FLOOR) -> list[str]:
    binary = shutil.which("terraform") or shutil.which("tofu")
    if binary is None:
        return [f"terraform: not on the PATH: install Terraform {floor[0]}.{floor[1]} or newer (or OpenTofu)"]
    try:
        run = subprocess.run([binary, "version", "-json"], capture_output=True, text=True, timeout=20,
                             env={**os.environ, "CHECKPOINT_DISABLE": "1"})
        version = json.loads(run.stdout)["terraform_version"]
    except (subprocess.TimeoutExpired, ValueError, KeyError, OSError) as err:
        return [f"terraform: {binary} did not report its version ({type(err).__name__})"]
    parts = tuple(int(x) for x in re.findall(r"\d+", version)[:2])
    if parts < floor:
        return [f"terraform: {binary} is {version}, older than {floor[0]}.{floor[1]} (S3 lock files): upgrade it"]
    return []


AWS_CREDENTIAL_VARIABLES = ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI")


def aws_lines(pool_stacks: list[str], environ: dict[str, str], home: Path | None = None) -> list[str]:
    """The cloud node pool stacks use the AWS provider's default credential chain: say so when nothing of it is
    set (an environment variable, or ~/.aws/credentials or config). The link to the LAN cannot be checked here."""
    if not pool_stacks:
        return []
    aws_dir = (home or Path(environ.get("HOME") or Path.home())) / ".aws"
    if any(environ.get(v) for v in AWS_CREDENTIAL_VARIABLES) or any((aws_dir / f).is_file() for f in ("credentials", "config")):
        return []
    return [f"aws: {', '.join(pool_stacks)} need AWS credentials: set AWS_PROFILE or AWS_ACCESS_KEY_ID/"
            "AWS_SECRET_ACCESS_KEY (docs/autoscaling.md, Prerequisites)"]


def dependency_order_of(outdir: Path) -> list[str]:
    from tools.order import dependency_order

    return dependency_order(json.loads((outdir / "manifest.json").read_text())["stacks"])


def doctor(config: Path, outdir: Path, patterns: list[str], *, ssh: bool = True, environ: dict[str, str] | None = None,
           out=print) -> int:
    from planner.files import ConfigError
    from planner.load import load_plan
    from tools.order import select
    from tools.variables import variables

    environ = dict(os.environ if environ is None else environ)
    try:
        plan = load_plan(config)
    except ConfigError as err:
        for problem in err.problems:
            out(f"error: {problem}")
        return 2
    data = yaml.safe_load(config.read_text())
    lines = placeholder_lines(data)
    if not (outdir / "manifest.json").exists():
        lines.append(f"synth: no {outdir}/manifest.json: run `task synth` first")
        stacks: list[str] = []
    else:
        stacks = select(dependency_order_of(outdir), patterns)
        lines += variable_lines(outdir, stacks, environ, variables())
    cluster = plan.config.cluster
    if ssh and "nodes" in stacks and cluster.mode == "provision":
        port = int(environ.get("TF_VAR_ssh_port") or 22)
        lines += ssh_lines([(n.name, str(n.address)) for n in cluster.nodes], port)
    pools = plan.node_pools
    if pools is not None:
        wanted = {p.stack for p in pools.pools} | {pools.access_stack}
        lines += aws_lines([s for s in stacks if s in wanted], environ)
    lines += terraform_lines()
    # Said, not counted as a thing to fix: a cluster may deploy before its alert channels exist.
    for line in plan.alert_warnings:
        out(line)
    for line in lines:
        out(line)
    if lines:
        out(f"doctor: {len(lines)} thing(s) to fix before deploying {', '.join(stacks) or 'anything'}")
        return 1
    out(f"doctor: ready to deploy {', '.join(stacks)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.doctor", description=__doc__.split("\n\n")[0])
    parser.add_argument("patterns", nargs="*", help="stacks about to deploy (default: every stack)")
    parser.add_argument("--config", type=Path, default=None, help="the cluster file (default $HELIX_CONFIG or config/helix.yaml)")
    parser.add_argument("--outdir", type=Path, default=Path("cdktf.out"))
    parser.add_argument("--no-ssh", action="store_true", help="skip the SSH reachability probes")
    args = parser.parse_args(argv)
    from planner.load import config_path_from_env

    return doctor(args.config or config_path_from_env(), args.outdir, args.patterns, ssh=not args.no_ssh)


if __name__ == "__main__":
    sys.exit(main())
