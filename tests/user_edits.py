"""The edits a platform engineer makes to config/helix.yaml in an ordinary week, applied to a copy of it.

The suite's config-independent checks run on the result (tests/conftest.py, the `edited` config), so that a
real customisation of the shipped file cannot turn the suite red: what they assert must hold for any valid
cluster file, not for the one the repository ships.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import yaml

# A leaf component (nothing needs it): turning it off is always valid.
DISABLED_COMPONENT = "chaos-mesh"
ADDED_HOSTNAME_LABEL = "status"
S3_STATE = {"bucket": "helix-state", "key_prefix": "helix", "region": "eu-west-1"}


def _free_address(cluster: dict) -> str:
    """The first address of the node network that no node, the API host or the load-balancer range uses."""
    network = ipaddress.ip_network(cluster["node_cidr"])
    taken = {str(n["address"]) for n in cluster.get("nodes", [])} | {str(cluster.get("api_host"))}
    lb = cluster.get("load_balancer_range")
    if lb:
        first, last = (ipaddress.ip_address(x) for x in str(lb).split("-"))
        taken |= {str(ipaddress.ip_address(i)) for i in range(int(first), int(last) + 1)}
    for host in network.hosts():
        if str(host) not in taken and int(host) > int(network.network_address) + 20:
            return str(host)
    raise AssertionError(f"no free address left in {network}")


def edits(data: dict) -> list[str]:
    """Apply the four edits in place; return what was done (for test ids and messages)."""
    done = []
    cluster = data["cluster"]
    if cluster.get("mode", "provision") == "provision":
        agents = [n for n in cluster["nodes"] if n.get("role") == "agent"]
        template = dict(agents[-1]) if agents else {"role": "agent"}
        template.update(name=f"{data['name']}-agent-added", address=_free_address(cluster), role="agent")
        cluster["nodes"].append(template)
        done.append(f"added agent {template['name']} ({template['address']})")
    components = data.get("components") or {}
    placed = {c for ns in (data.get("namespaces") or {}).values() for c in (ns or {}).get("components", [])}
    if DISABLED_COMPONENT in placed and (components.get(DISABLED_COMPONENT) or {}).get("enabled", True):
        components.setdefault(DISABLED_COMPONENT, {})["enabled"] = False
        data["components"] = components
        done.append(f"disabled {DISABLED_COMPONENT}")
    if data.get("state", {}).get("backend") != "s3":
        data["state"] = {"backend": "s3", "s3": dict(S3_STATE)}
        done.append("state backend s3")
    cloudflare = data.get("cloudflare") or {}
    if cloudflare.get("enabled", True):
        host = f"{ADDED_HOSTNAME_LABEL}.{data['domain']}"
        hostnames = cloudflare.setdefault("hostnames", [])
        names = [h if isinstance(h, str) else h.get("name") for h in hostnames]
        if host not in names:
            # A hostname needs a backend: a status page outside the cluster's Ingresses names its origin.
            hostnames.append({"name": host, "origin": "http_status:503"})
            done.append(f"added hostname {host}")
    return done


def write_edited_copy(source: Path, dest: Path) -> list[str]:
    data = yaml.safe_load(source.read_text())
    done = edits(data)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(yaml.safe_dump(data, sort_keys=False))
    return done
