"""Disaster recovery of the k3s cluster from an etcd snapshot, rendered from the config (docs/nodes.md, Restore).

    python -m tools.restore --snapshot NAME                 lost quorum, snapshot NAME in the S3 bucket
    python -m tools.restore --snapshot /path/on/server --local
    python -m tools.restore --snapshot NAME --total-loss    every machine is new (after the reinstall below)
    options: --server NAME (the server that is reset; default the bootstrap server), --config FILE,
             --token-file PATH (on the server; default /etc/rancher/k3s/token: the token before a rotation),
             --out DIR (default restore/; the scripts are written there, never run by this tool)

It writes one script per step, numbered in the order to run them (`ssh <address> sudo sh < NN-<node>-<step>.sh`),
and prints that order. The scripts hold no secret: the reset reads the server token from the machine's
/etc/rancher/k3s/token. Plain Python: reads the config, not the synthesized stacks.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from constructs_lib.k3s_scripts import restore_runbook
from planner.files import ConfigError
from planner.load import load_plan

TOTAL_LOSS_FIRST = """\
Total loss: first reinstall every machine from Terraform, which starts a throwaway cluster with the same CAs and
tokens, then run the steps below to put the snapshot's data in it:
  cd cdktf.out/stacks/nodes
  terraform state list | grep '^null_resource\\.k3s_' | xargs -n1 terraform state rm
  terraform apply -replace="$(terraform state list | grep '^terraform_data\\.k3s_cluster-init_')"
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.restore", description=__doc__.splitlines()[0])
    parser.add_argument("--snapshot", required=True, help="snapshot name in the bucket, or a file path on the server")
    parser.add_argument("--local", action="store_true", help="the snapshot is a file on the server, not in S3")
    parser.add_argument("--total-loss", action="store_true", help="every machine is new")
    parser.add_argument("--server", help="the server that is reset (default: the bootstrap server)")
    parser.add_argument(
        "--token-file",
        default="/etc/rancher/k3s/token",
        help="the server token the snapshot was taken with, a file on the server (a snapshot from before a token rotation)",
    )
    parser.add_argument("--config", default="config/helix.yaml")
    parser.add_argument("--out", default="restore")
    args = parser.parse_args(argv)

    try:
        plan = load_plan(Path(args.config))
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 2
    config = plan.config
    cluster = config.cluster
    if cluster.mode != "provision" or not cluster.ha:
        print(f"error: {args.config}: cluster: a restore from etcd snapshots needs mode: provision and ha: true", file=sys.stderr)
        return 2
    if not args.local and cluster.etcd_snapshots.s3 is None:
        print(f"error: {args.config}: cluster.etcd_snapshots.s3: not set: pass --local and a snapshot file path", file=sys.stderr)
        return 2
    servers = [(n.name, n.address) for n in cluster.nodes if n.role == "server"]
    agents = [(n.name, n.address) for n in cluster.nodes if n.role == "agent"]
    reset_on = args.server or (config.bootstrap_server.name if config.bootstrap_server else servers[0][0])
    try:
        steps = restore_runbook(
            servers=servers,
            agents=agents,
            reset_on=reset_on,
            snapshot=args.snapshot,
            from_s3=not args.local,
            api_port=cluster.api_port,
            total_loss=args.total_loss,
            token_file=args.token_file,
        )
    except ValueError as err:
        print(f"error: {args.config}: --server: {err}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.total_loss:
        print(TOTAL_LOSS_FIRST)
    print(f"Then run, in this order (each must succeed before the next; scripts in {out}/):")
    for i, step in enumerate(steps, 1):
        name = f"{i:02d}-{step.node}-{step.action}.sh"
        (out / name).write_text(step.script)
        print(f"  ssh {step.address} sudo sh < {out}/{name}")
    print("Then: kubectl get nodes, and cdktf deploy of the platform stacks (docs/nodes.md, Restore).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
