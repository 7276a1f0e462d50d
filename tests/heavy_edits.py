"""Heavy edits of a cluster file: what an adopter's config looks like once it is really theirs.

Each variant takes any valid cluster file (the shipped config/helix.yaml, in practice) and rewrites it the way
another team would: another domain, other CIDRs and addresses, 1 or 5 servers, 0 or 6 agents, every optional
component off, Cloudflare off, each state backend. tests/test_any_config.py runs the shipped file's own checks
on each; `python -m tests.heavy_edits <variant> <dest>` writes one, to run the whole suite on it by hand
(HELIX_CONFIG, or a replaced config/helix.yaml in a scratch copy of the repository).
"""

from __future__ import annotations

import ipaddress
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

OTHER_DOMAIN = "acme-robotics.example"
OTHER_NAME = "acme"
OTHER_NODE_CIDR = "172.20.8.0/24"
# When the file already uses the values above (a copy made by this module), the edits take these instead.
SECOND_DOMAIN = "globex.example"
SECOND_NODE_CIDR = "192.168.77.0/24"
OTHER_POD_SERVICE_CIDRS = (("10.60.0.0/16", "10.61.0.0/16"), ("10.70.0.0/16", "10.71.0.0/16"))

BACKENDS: dict[str, dict[str, Any]] = {
    "local": {"backend": "local", "local": {"dir": "tfstate"}},
    "s3": {"backend": "s3", "s3": {"bucket": "acme-tf-state", "key_prefix": "acme", "region": "eu-north-1"}},
    "remote": {"backend": "remote", "remote": {"organization": "acme-robotics", "workspace_prefix": "acme"}},
    "pg": {"backend": "pg", "pg": {"conn_str": "postgres://terraform@db.acme-robotics.example/tfstate"}},
}


def _replace_strings(node: Any, old: str, new: str) -> Any:
    if isinstance(node, str):
        return node.replace(old, new)
    if isinstance(node, list):
        return [_replace_strings(x, old, new) for x in node]
    if isinstance(node, dict):
        return {_replace_strings(k, old, new): _replace_strings(v, old, new) for k, v in node.items()}
    return node


def other_domain(data: dict) -> dict:
    """Every mention of the domain (hostnames, e-mail domains, internal domain, ACME address) and the name."""
    data = _replace_strings(data, data["domain"], OTHER_DOMAIN if data["domain"] != OTHER_DOMAIN else SECOND_DOMAIN)
    data["name"] = OTHER_NAME
    cloudflare = data.get("cloudflare") or {}
    if cloudflare.get("tunnel_name"):
        cloudflare["tunnel_name"] = OTHER_NAME
    if cloudflare.get("access_team_name"):
        cloudflare["access_team_name"] = "acme-robotics"
    return data


def nodes(data: dict, servers: int, agents: int, cidr: str | None = None) -> dict:
    """servers + agents nodes, renumbered in the node network (another one when `cidr` is given)."""
    cluster = data["cluster"]
    if cidr:
        cluster["node_cidr"] = cidr if cluster.get("node_cidr") != cidr else SECOND_NODE_CIDR
        pods, services = next(p for p in OTHER_POD_SERVICE_CIDRS if p[0] != cluster.get("cluster_cidr"))
        cluster["cluster_cidr"], cluster["service_cidr"] = pods, services
        cluster["cluster_dns"] = str(ipaddress.ip_network(services).network_address + 10)
    net = ipaddress.ip_network(cluster["node_cidr"])
    base = int(net.network_address)
    old = cluster.get("nodes") or []

    def template(role: str) -> dict:
        same = [n for n in old if n.get("role", "agent") == role]
        return {k: v for k, v in (same[0] if same else {"role": role}).items() if k not in ("name", "address")}

    name = data.get("name", "helix")
    out = []
    for i in range(servers):
        out.append({"name": f"{name}-cp-{i + 1}", "address": str(ipaddress.ip_address(base + 31 + i)), **template("server"), "role": "server"})
    for i in range(agents):
        out.append({"name": f"{name}-worker-{i + 1}", "address": str(ipaddress.ip_address(base + 61 + i)), **template("agent"), "role": "agent"})
    cluster["nodes"] = out
    cluster["departed_nodes"] = []
    cluster["ha"] = servers >= 3
    cluster["bootstrap_node"] = out[0]["name"]
    if servers > 1:
        cluster["api_host"] = str(ipaddress.ip_address(base + 30))  # a free address: the VIP
    else:  # one server is the endpoint itself: no VIP to hold
        cluster.pop("api_host", None)
        cluster["api_endpoint"] = {"mode": "first-server"}
    if cluster.get("load_balancer_range"):
        cluster["load_balancer_range"] = f"{ipaddress.ip_address(base + 150)}-{ipaddress.ip_address(base + 180)}"
    return data


def optional_components_off(data: dict, catalog_needs: dict[str, set[str]]) -> dict:
    """Turn off every placed component that no other placed component needs (each one alone is optional)."""
    placed = {c for ns in (data.get("namespaces") or {}).values() for c in (ns or {}).get("components", [])}
    needed = set().union(*(catalog_needs.get(c, set()) for c in placed))
    components = data.get("components") or {}
    for cid in sorted(placed - needed):
        components.setdefault(cid, {})["enabled"] = False
    data["components"] = components
    return data


def cloudflare_off(data: dict) -> dict:
    data["cloudflare"] = {**(data.get("cloudflare") or {}), "enabled": False}
    return data


def backend(data: dict, name: str) -> dict:
    data["state"] = dict(BACKENDS[name])
    return data


def catalog_needs() -> dict[str, set[str]]:
    """Component id -> the ids it needs, from the catalog (for `optional_components_off`)."""
    root = Path(__file__).resolve().parent.parent
    out: dict[str, set[str]] = {}
    for path in sorted((root / "config" / "catalog").glob("*.yaml")):
        for cid, spec in (yaml.safe_load(path.read_text()) or {}).items():
            out[cid] = set((spec or {}).get("needs") or [])
    return out


# The variants: together they cover every edit of the issue (other domain, other CIDRs and addresses, 1 and 5
# servers, 0 and 6 agents, every optional component off, Cloudflare off, each state backend).
VARIANTS: dict[str, Callable[[dict], dict]] = {
    "big-other-network": lambda d: backend(nodes(other_domain(d), 5, 6, OTHER_NODE_CIDR), "s3"),
    "single-server-lean": lambda d: backend(
        cloudflare_off(optional_components_off(nodes(other_domain(d), 1, 0, OTHER_NODE_CIDR), catalog_needs())), "pg"
    ),
    "three-servers-no-agents-remote": lambda d: backend(nodes(other_domain(d), 3, 0), "remote"),
    "one-server-six-agents-local": lambda d: backend(nodes(d, 1, 6, OTHER_NODE_CIDR), "local"),
}


def write_variant(source: Path, variant: str, dest: Path) -> Path:
    """The variant, under the source's leading comment lines (its schema modeline first), as an edit keeps them."""
    text = source.read_text()
    header = "".join(line for line in _leading_comments(text))
    data = VARIANTS[variant](yaml.safe_load(text))
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(header + yaml.safe_dump(data, sort_keys=False))
    return dest


def _leading_comments(text: str) -> list[str]:
    lines = []
    for line in text.splitlines(keepends=True):
        if not line.startswith("#"):
            break
        lines.append(line)
    return lines


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in VARIANTS:
        sys.exit(f"usage: python -m tests.heavy_edits {{{'|'.join(VARIANTS)}}} <dest.yaml>")
    root = Path(__file__).resolve().parent.parent
    write_variant(root / "config" / "helix.yaml", sys.argv[1], Path(sys.argv[2]))
