"""Cloud node pools: autoscaled k3s agents in AWS, resolved into the NodePoolsPlan the pool stacks render.

The schema (planner/schema.py, CloudNodePool) checks each pool's fields and the rules across pools; this module
checks the instance types against config/instance-types.yaml (read only when a pool exists, so the default
config reads nothing more) and decides every name, label, port and tag input the stacks need.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from planner.files import ConfigError, Problem, parse_model, read_yaml_mapping
from planner.model import IngressRulePlan, NodePoolPlan, NodePoolsPlan, TaintPlan
from planner.schema import CloudNodePool, HelixConfig, Strict

INSTANCE_TYPES_FILE = "instance-types.yaml"
# Every pool node carries this label with its pool's name (kubelet may set node.kubernetes.io/*): the LAN's L2
# announcements and the pool's own selection go by it.
POOL_LABEL_KEY = "node.kubernetes.io/cloud-pool"
# The Secret with the cluster-autoscaler's AWS key (read by the chart's envFromSecret), in its namespace.
AUTOSCALER_SECRET = "cluster-autoscaler-aws"
ACCESS_STACK = "nodepools"
# What an agent must accept for k3s with Cilium (VXLAN tunnel, its health checks, Hubble's peer service) and the
# kubelet API (the servers, metrics-server and Prometheus). Pod-to-pod traffic rides the tunnel, so no pod port
# is open: `peers` are node_cidr and the VPC, `pods` adds cluster_cidr.
AGENT_PORTS: tuple[tuple[str, Literal["tcp", "udp", "icmp"], int, int, str], ...] = (
    ("kubelet API", "tcp", 10250, 10250, "pods"),
    ("Cilium VXLAN", "udp", 8472, 8472, "peers"),
    ("Cilium health", "tcp", 4240, 4240, "peers"),
    ("Hubble peer", "tcp", 4244, 4244, "peers"),
    ("ICMP (path MTU, health)", "icmp", -1, -1, "peers"),
)


class InstanceType(Strict):
    vcpu: int
    memory_mib: int
    arch: Literal["amd64", "arm64"]


class InstanceTypesFile(Strict):
    types: dict[str, InstanceType]


def load_instance_types(path: Path, shown: str) -> tuple[InstanceTypesFile | None, list[Problem]]:
    try:
        data = read_yaml_mapping(path, shown)
    except ConfigError as exc:
        return None, exc.problems
    return parse_model(InstanceTypesFile, data, shown)


def _size_problems(pool: CloudNodePool, known: InstanceTypesFile, at: str, file: str) -> list[Problem]:
    problems: list[Problem] = []
    first = None
    for j, name in enumerate(pool.instance_types):
        size = known.types.get(name)
        if size is None:
            problems.append(Problem(file, f"{at}.instance_types[{j}]", f"{name!r} is not in config/{INSTANCE_TYPES_FILE}"))
            continue
        if first is None:
            first = (name, size)
        elif size != first[1]:
            problems.append(Problem(
                file, f"{at}.instance_types[{j}]",
                f"{name} ({size.vcpu} vCPU, {size.memory_mib} MiB, {size.arch}) is not the size of {first[0]} "
                f"({first[1].vcpu} vCPU, {first[1].memory_mib} MiB, {first[1].arch}): the autoscaler plans with the "
                "first type",
            ))
    return problems


def _ingress(cfg: HelixConfig, pool: CloudNodePool) -> tuple[IngressRulePlan, ...]:
    peers = (cfg.cluster.node_cidr, pool.vpc_cidr)
    pods = (*peers, cfg.cluster.cluster_cidr)
    return tuple(
        IngressRulePlan(what, proto, low, high, pods if source == "pods" else peers)
        for what, proto, low, high, source in AGENT_PORTS
    )


def _pool(cfg: HelixConfig, pool: CloudNodePool, size: InstanceType) -> NodePoolPlan:
    labels = {**pool.labels, POOL_LABEL_KEY: pool.name}
    return NodePoolPlan(
        name=pool.name,
        stack=f"nodepool-{pool.name}",
        group_name=f"{cfg.name}-{pool.name}",
        region=pool.region,
        vpc_id=pool.vpc_id,
        subnet_ids=tuple(pool.subnet_ids),
        instance_types=tuple(pool.instance_types),
        vcpu=size.vcpu,
        memory_mib=size.memory_mib,
        arch=size.arch,
        min_size=pool.min_size,
        max_size=pool.max_size,
        on_demand_base=pool.on_demand_base,
        on_demand_above_base=0 if pool.spot else 100,
        ami_ssm_parameter=pool.ami_ssm_parameter,
        disk_gib=pool.disk_gib,
        root_device=pool.root_device,
        labels=tuple(sorted(labels.items())),
        taints=tuple(TaintPlan(t.key, t.value, t.effect) for t in pool.taints),
        mtu=pool.mtu,
        ingress=_ingress(cfg, pool),
        token_parameter=f"/{cfg.name}/k3s/{pool.name}/agent-token",
    )


def plan_node_pools(
    cfg: HelixConfig, config_file: str, types_path: Path, types_shown: str, secret_namespace: str
) -> tuple[NodePoolsPlan | None, list[Problem]]:
    """The pools as the stacks render them (None without any), with every problem of their instance types."""
    pools = cfg.cluster.cloud_node_pools
    if not pools:
        return None, []
    known, problems = load_instance_types(types_path, types_shown)
    if known is None:
        return None, problems
    for i, pool in enumerate(pools):
        problems += _size_problems(pool, known, f"cluster.cloud_node_pools[{i}]", config_file)
    if problems:
        return None, problems
    c = cfg.cluster
    return NodePoolsPlan(
        pools=tuple(_pool(cfg, p, known.types[p.instance_types[0]]) for p in pools),
        cluster_name=cfg.name,
        region=pools[0].region,
        access_stack=ACCESS_STACK,
        secret_name=AUTOSCALER_SECRET,
        secret_namespace=secret_namespace,
        pool_label_key=POOL_LABEL_KEY,
        server_url=f"https://{cfg.api_host}:{c.api_port}",
        k3s_version=c.k3s_version,
        installer_tag=c.k3s_installer.tag,
        installer_sha256=c.k3s_installer.sha256,
    ), []
