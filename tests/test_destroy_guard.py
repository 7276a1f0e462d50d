"""The destroy guard (tools/guard.py): a destroy or replacement of anything stateful is refused unless the allow
list names it; one test per stateful class, the plan mode, and the synth that refuses with the previous output
untouched. The rules are the project's data (config/stateful.yaml, the catalog's `keeps:`), not config/helix.yaml."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from tools.guard import Allowed, Rules, classify_outputs, classify_plan, refusals
from tools.guard import main as guard_main

ROOT = Path(__file__).resolve().parent.parent
NONE = Allowed(frozenset())


@pytest.fixture(scope="module")
def rules() -> Rules:
    return Rules.load()


def ns(name: str, protect: bool = False) -> dict:
    body: dict = {"metadata": {"name": name}}
    if protect:
        body["lifecycle"] = {"prevent_destroy": True}
    return body


def release(name: str, chart: str, namespace: str, protect: bool = False) -> dict:
    body: dict = {"name": name, "chart": chart, "namespace": namespace, "version": "1.0.0"}
    if protect:
        body["lifecycle"] = {"prevent_destroy": True}
    return body


def doc(**resources: dict) -> dict:
    out: dict = {"resource": {}}
    for key, body in resources.items():
        rtype, name = key.split("__")
        out["resource"].setdefault(rtype, {})[name] = body
    return out


def refused(rules, before, after, allowed=NONE) -> list[str]:
    return [f"{c.stack}:{c.address}:{c.action}" for c in refusals(classify_outputs(before, after, rules), allowed)]


# --- one test per stateful class --------------------------------------------------------------------------


def test_protected_namespace_destroy_is_refused(rules):
    before = {"data": doc(kubernetes_namespace_v1__prod=ns("production", protect=True))}
    after = {"data": doc()}
    assert refused(rules, before, after) == ["data:kubernetes_namespace_v1.prod:destroy"]


def test_namespace_moving_between_stacks_is_refused(rules):
    """The issue's case: the namespace leaves the data stack for the production stack (a destroy and a create)."""
    before = {"data": doc(kubernetes_namespace_v1__prod=ns("production", protect=True)), "production": doc()}
    after = {"data": doc(), "production": doc(kubernetes_namespace_v1__prod=ns("production", protect=True))}
    changes = classify_outputs(before, after, rules)
    assert {(c.stack, c.action) for c in changes} == {("data", "destroy"), ("production", "create")}
    assert refused(rules, before, after) == ["data:kubernetes_namespace_v1.prod:destroy"]


def test_namespace_holding_a_stateful_release_of_another_stack_is_refused(rules):
    before = {
        "foundation": doc(kubernetes_namespace_v1__mon=ns("monitoring")),
        "observability": doc(helm_release__sw=release("seaweedfs", "seaweedfs", "monitoring")),
    }
    after = {"foundation": doc(), "observability": before["observability"]}
    lines = [c.line() for c in refusals(classify_outputs(before, after, rules), NONE)]
    assert len(lines) == 1 and "namespace monitoring" in lines[0] and "seaweedfs" in lines[0]


def test_namespace_holding_nothing_stateful_applies(rules):
    before = {"data": doc(kubernetes_namespace_v1__stg=ns("staging"))}
    assert refused(rules, before, {"data": doc()}) == []


def test_release_that_keeps_data_is_refused_and_one_that_does_not_applies(rules):
    # seaweedfs keeps every bucket (catalog keeps:); metrics-server keeps nothing.
    before = {"observability": doc(
        helm_release__sw=release("seaweedfs", "seaweedfs", "monitoring"),
        helm_release__ms=release("metrics-server", "metrics-server", "kube-system"),
    )}
    after = {"observability": doc()}
    assert refused(rules, before, after) == ["observability:helm_release.sw:destroy"]


def test_protected_release_is_refused(rules):
    before = {"data": doc(helm_release__db=release("oncall-db", "raw", "monitoring", protect=True))}
    assert refused(rules, before, {"data": doc()}) == ["data:helm_release.db:destroy"]


def test_release_moving_namespace_is_a_replacement(rules):
    """helm_release's name and namespace force replacement (provider v3.1.1): REPLACE, refused when it keeps data."""
    before = {"observability": doc(
        helm_release__tempo=release("tempo", "tempo", "monitoring"),
        helm_release__ms=release("metrics-server", "metrics-server", "kube-system"),
    )}
    after = {"observability": doc(
        helm_release__tempo=release("tempo", "tempo", "tracing"),
        helm_release__ms=release("metrics-server", "metrics-server", "monitoring"),
    )}
    changes = {c.address: c for c in classify_outputs(before, after, rules)}
    assert changes["helm_release.tempo"].action == "replace" and changes["helm_release.tempo"].forced_by == ["namespace"]
    assert changes["helm_release.ms"].action == "replace"
    assert refused(rules, before, after) == ["observability:helm_release.tempo:replace"]
    # A values change is an update, never refused.
    after2 = {"observability": doc(
        helm_release__tempo={**release("tempo", "tempo", "monitoring"), "values": ["x: 1"]},
        helm_release__ms=release("metrics-server", "metrics-server", "kube-system"),
    )}
    assert [c.action for c in classify_outputs(before, after2, rules)] == ["update"]


def test_object_store_leaving_is_refused(rules):
    """object_storage in-cluster -> external removes SeaweedFS: refused, naming what goes."""
    before = {"observability": doc(helm_release__sw=release("seaweedfs", "seaweedfs", "monitoring"))}
    (change,) = refusals(classify_outputs(before, {"observability": doc()}, rules), NONE)
    assert "database backups" in change.line() and "allow-destroy.yaml" in change.line()


def test_tunnel_keys_and_tokens_are_refused(rules):
    before = {
        "edge": doc(
            cloudflare_zero_trust_tunnel_cloudflared__t={"account_id": "a", "name": "helix", "config_src": "cloudflare"},
            random_bytes__s={"length": 32},
        ),
        "nodes": doc(
            tls_private_key__ca={"algorithm": "ECDSA"},
            tls_self_signed_cert__cacert={"is_ca_certificate": True},
            random_password__token={"length": 48},
        ),
    }
    assert sorted(refused(rules, before, {"edge": doc(), "nodes": doc()})) == [
        "edge:cloudflare_zero_trust_tunnel_cloudflared.t:destroy",
        "edge:random_bytes.s:destroy",
        "nodes:random_password.token:destroy",
        "nodes:tls_private_key.ca:destroy",
        "nodes:tls_self_signed_cert.cacert:destroy",
    ]
    # The tunnel's account changes: the provider (v5.14.0) replaces it.
    after = {"edge": doc(
        cloudflare_zero_trust_tunnel_cloudflared__t={"account_id": "b", "name": "helix", "config_src": "cloudflare"},
        random_bytes__s={"length": 32},
    ), "nodes": before["nodes"]}
    assert refused(rules, before, after) == ["edge:cloudflare_zero_trust_tunnel_cloudflared.t:replace"]


def test_node_leaving_without_departed_nodes_is_refused(rules):
    node = {"triggers": {"name": "helix-agent-4", "address": "10.20.0.24", "role": "agent"}}
    before = {"nodes": doc(null_resource__agent4=node)}
    lines = [c.line() for c in refusals(classify_outputs(before, {"nodes": doc()}, rules), NONE)]
    assert len(lines) == 1 and "helix-agent-4" in lines[0] and "departed_nodes" in lines[0]
    # Through cluster.departed_nodes: a removed block drains and uninstalls it.
    departed = {"nodes": {**doc(), "removed": [{"from": "null_resource.agent4", "lifecycle": {"destroy": True}}]}}
    assert refused(rules, before, departed) == []


def test_moved_and_forgotten_objects_are_not_destroys(rules):
    before = {"data": doc(kubernetes_namespace_v1__old=ns("production", protect=True))}
    moved = {"data": {**doc(kubernetes_namespace_v1__new=ns("production", protect=True)),
                      "moved": [{"from": "kubernetes_namespace_v1.old", "to": "kubernetes_namespace_v1.new"}]}}
    assert classify_outputs(before, moved, rules) == []
    forgotten = {"data": {**doc(), "removed": [{"from": "kubernetes_namespace_v1.old", "lifecycle": {"destroy": False}}]}}
    assert [c.action for c in classify_outputs(before, forgotten, rules)] == ["forget"]
    assert refused(rules, before, forgotten) == []


def test_allow_list_file_accepts_exactly_what_it_names(rules, tmp_path):
    before = {"data": doc(kubernetes_namespace_v1__prod=ns("production", protect=True),
                          kubernetes_namespace_v1__dp=ns("data-plane", protect=True))}
    allow = tmp_path / "allow-destroy.yaml"
    allow.write_text(yaml.safe_dump({"allow": [
        {"stack": "data", "address": "kubernetes_namespace_v1.prod", "reason": "moved by hand"}]}))
    assert refused(rules, before, {"data": doc()}, Allowed.load(allow)) == ["data:kubernetes_namespace_v1.dp:destroy"]
    both = Allowed.load(allow, extra=["data:kubernetes_namespace_v1.dp"])
    assert refused(rules, before, {"data": doc()}, both) == []


def test_shipped_allow_list_is_empty():
    assert (yaml.safe_load((ROOT / "config" / "allow-destroy.yaml").read_text()) or {}).get("allow") == []


# --- on a plan (the deploy workflow) ----------------------------------------------------------------------


def plan_json(*changes: tuple[str, list[str], dict, list]) -> dict:
    return {"resource_changes": [
        {"address": a, "type": a.split(".")[0], "change": {"actions": acts, "before": before, "replace_paths": rp}}
        for a, acts, before, rp in changes
    ]}


def test_plan_destroy_and_replace_of_stateful_objects_are_refused(rules, tmp_path, capsys):
    plan = plan_json(
        ("kubernetes_namespace_v1.prod", ["delete"], {"metadata": [{"name": "production"}]}, []),
        ("helm_release.sw", ["delete", "create"], release("seaweedfs", "seaweedfs", "monitoring"), [["namespace"]]),
        ("helm_release.ms", ["update"], release("metrics-server", "metrics-server", "kube-system"), []),
        ("null_resource.x", ["create"], None, []),
    )
    changes = classify_plan("data", plan, rules)
    assert [c.action for c in changes] == ["destroy", "replace", "update", "create"]
    assert [c.address for c in refusals(changes, NONE)] == ["kubernetes_namespace_v1.prod", "helm_release.sw"]
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan))
    code = guard_main(["plan", "data", str(path), "--output", str(tmp_path)])
    # The fixture waives host keys, so every synth warns about that first (planner/validate.py): not counted.
    err = [line for line in capsys.readouterr().err.splitlines() if "insecure_ignore_host_keys is true" not in line]
    assert code == 2 and len(err) == 2 and all(line.startswith("error: stack data: ") for line in err)
    assert guard_main(["--allow", "data:kubernetes_namespace_v1.prod", "--allow", "data:helm_release.sw",
                       "plan", "data", str(path), "--output", str(tmp_path)]) == 0


def test_plan_of_a_departing_node_applies(rules):
    node = {"triggers": {"name": "helix-agent-4", "address": "10.20.0.24", "role": "agent"}}
    plan = plan_json(("null_resource.agent4", ["delete"], node, []))
    assert len(refusals(classify_plan("nodes", plan, rules), NONE)) == 1
    synthesized = {"removed": [{"from": "null_resource.agent4", "lifecycle": {"destroy": True}}]}
    assert refusals(classify_plan("nodes", plan, rules, synthesized), NONE) == []


# --- in the synth ------------------------------------------------------------------------------------------


def _write_output(outdir: Path, documents: dict[str, dict]) -> None:
    manifest = {"version": "stand-in", "stacks": {}}
    for name, document in documents.items():
        (outdir / "stacks" / name).mkdir(parents=True, exist_ok=True)
        (outdir / "stacks" / name / "cdk.tf.json").write_text(json.dumps(document))
        manifest["stacks"][name] = {"synthesizedStackPath": f"stacks/{name}/cdk.tf.json", "workingDirectory": f"stacks/{name}"}
    (outdir / "manifest.json").write_text(json.dumps(manifest))


def test_synth_refuses_a_stateful_destroy_and_keeps_the_previous_output(tmp_path, monkeypatch, capsys):
    import stacks.app as app_module

    previous = {"data": doc(kubernetes_namespace_v1__prod=ns("production", protect=True))}
    new = {"data": doc()}

    class StandIn:
        def __init__(self, staging: str):
            self.staging = Path(staging)

        def synth(self):
            _write_output(self.staging, new)

    outdir = tmp_path / "cdktf.out"
    _write_output(outdir, previous)
    before = {p: p.read_bytes() for p in outdir.rglob("*") if p.is_file()}
    monkeypatch.setattr(app_module, "build_app", lambda plan, o: StandIn(o))
    monkeypatch.setenv("HELIX_CONFIG", str(ROOT / "tests/fixtures/description/helix.yaml"))
    monkeypatch.setenv("CDKTF_OUTDIR", str(outdir))
    monkeypatch.chdir(ROOT)
    capsys.readouterr()
    assert app_module.main() == 2
    # The fixture waives host keys, so every synth warns about that first (planner/validate.py): not counted.
    err = [line for line in capsys.readouterr().err.splitlines() if "insecure_ignore_host_keys is true" not in line]
    assert len(err) == 2 and err[0].startswith("error: stack data: kubernetes_namespace_v1.prod: ")
    assert "nothing was synthesized" in err[1]
    assert {p: p.read_bytes() for p in outdir.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cdktf.out"]
    # Named in the allow list: the synth goes ahead.
    allow = tmp_path / "allow.yaml"
    allow.write_text("allow:\n  - {stack: data, address: kubernetes_namespace_v1.prod, reason: test}\n")
    monkeypatch.setenv("HELIX_ALLOW_DESTROY", str(allow))
    assert app_module.main() == 0


@pytest.mark.slow
def test_real_synth_refuses_the_issues_namespace_move_and_object_store_switch(description_synth, tmp_path):
    """The issue's cases through the real app: `production` (protect) moves from layer data to production, and
    object_storage goes external (SeaweedFS leaves). The synth over the description's output refuses both."""
    from planner.load import load_plan
    from stacks.app import synthesize
    from stacks.outguard import DestroyRefused

    config = yaml.safe_load((ROOT / "tests/fixtures/description/helix.yaml").read_text())
    config["namespaces"]["production"]["layer"] = "production"
    config["object_storage"]["mode"] = "external"
    config["object_storage"]["external"] = {"endpoint": "s3.example.com", "region": "eu-central-1"}
    path = tmp_path / "helix.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    outdir = tmp_path / "cdktf.out"
    shutil.copytree(description_synth.outdir, outdir)
    before = {p: p.read_bytes() for p in outdir.rglob("*") if p.is_file()}
    with pytest.raises(DestroyRefused) as refused_exc:
        synthesize(load_plan(path), outdir)
    text = "\n".join(refused_exc.value.lines)
    assert "stack data: kubernetes_namespace_v1.platform_namespace-production" in text
    assert "stack observability: helm_release.platform_seaweedfs" in text
    assert {p: p.read_bytes() for p in outdir.rglob("*") if p.is_file()} == before


def test_safety_doc_says_what_each_kind_of_edit_does():
    """docs/safety.md: one row per kind of edit, each with what the tool does, and no false prevent_destroy claim."""
    text = (ROOT / "docs" / "safety.md").read_text()
    assert "will stop here" not in text and "so Terraform itself refuses to destroy them" not in text
    section = text.split("### What each kind of edit does", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| edit")]
    assert len(rows) >= 12
    for row in rows:
        outcome = row.rsplit("|", 2)[1]
        assert any(word in outcome for word in ("**applies**", "**refuses**", "**REPLACE**")), row
    for edit in ("object_storage", "namespace", "node", "CDKTF_OUTDIR", "state.local.dir", "another namespace"):
        assert any(edit in row for row in rows), edit


@pytest.mark.slow
def test_real_synth_node_leaving_nodes_is_refused_and_departed_nodes_applies(description_synth, tmp_path):
    """Through the real app: helix-agent-4 dropped from cluster.nodes is refused (its install resource, with no
    drain or uninstall); moved to cluster.departed_nodes it goes through removed blocks and the guard passes."""
    from planner.load import load_plan
    from stacks.app import synthesize
    from stacks.outguard import DestroyRefused
    from tools.guard import check_outputs

    config = yaml.safe_load((ROOT / "tests/fixtures/description/helix.yaml").read_text())
    (agent4,) = [n for n in config["cluster"]["nodes"] if n["name"] == "helix-agent-4"]
    config["cluster"]["nodes"].remove(agent4)
    dropped = tmp_path / "dropped.yaml"
    dropped.write_text(yaml.safe_dump(config, sort_keys=False))
    outdir = tmp_path / "cdktf.out"
    shutil.copytree(description_synth.outdir, outdir)
    with pytest.raises(DestroyRefused) as refused_exc:
        synthesize(load_plan(dropped), outdir)
    lines = refused_exc.value.lines[:-1]
    assert lines and all("stack nodes: null_resource." in line for line in lines)
    assert any("helix-agent-4 (10.20.0.24)" in line and "departed_nodes" in line for line in lines)

    config["cluster"]["departed_nodes"] = [{"name": "helix-agent-4", "address": "10.20.0.24", "role": "agent"}]
    departed = tmp_path / "departed.yaml"
    departed.write_text(yaml.safe_dump(config, sort_keys=False))
    fresh = tmp_path / "departed-out"
    synthesize(load_plan(departed), fresh)
    assert check_outputs(description_synth.outdir, fresh) == []


def test_a_rotation_is_a_replace_that_is_not_refused(rules):
    """cloudflare.tunnel_secret_rotation changes the secret's keepers (random v3.7.2: RequiresReplace): the
    review shows REPLACE, and the guard lets the asked-for rotation through; a length change is refused."""
    before = {"edge": doc(random_bytes__s={"length": 32})}
    rotated = {"edge": doc(random_bytes__s={"length": 32, "keepers": {"rotation": "1"}})}
    (change,) = classify_outputs(before, rotated, rules)
    assert change.action == "replace" and change.forced_by == ["keepers"]
    assert refused(rules, before, rotated) == []
    longer = {"edge": doc(random_bytes__s={"length": 64})}
    assert refused(rules, before, longer) == ["edge:random_bytes.s:replace"]


def test_a_cluster_rotation_passes_the_guard_and_undoing_one_is_refused(rules):
    """cluster.rotation: raising a number replaces the rotated secret through its keepers (a rotation), and the
    admin certificate's request and certificate (not stateful); lowering a token's back to 0 destroys the rotated
    secret, which the guard refuses like any generated credential."""
    from planner.schema import HelixConfig
    from tests.helpers import FIXTURES, load_config, nodes_stack_of

    def stack(server_token: int, admin: int) -> dict:
        data = load_config(FIXTURES / "valid" / "etcd-s3-snapshots.yaml").model_dump()
        data["cluster"]["rotation"] = {"server_token": server_token, "admin": admin}
        return {"nodes": nodes_stack_of(HelixConfig.model_validate(data))}

    first, second, back = stack(1, 0), stack(2, 1), stack(0, 1)
    changes = classify_outputs(first, second, rules)
    assert any(c.address.startswith("random_password.k3s_token-rotated_") and c.forced_by == ["keepers"] for c in changes)
    assert any(c.address.startswith("tls_cert_request.k3s_admin-csr_") for c in changes), changes
    assert refused(rules, first, second) == []
    (undone,) = refused(rules, second, back)
    assert undone.startswith("nodes:random_password.k3s_token-rotated_") and undone.endswith(":destroy")
