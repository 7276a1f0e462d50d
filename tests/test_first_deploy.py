"""The first deploy's tools: `task init` (tools/init.py), `task doctor` (tools/doctor.py), the one variable list
(config/variables.yaml) that deploy.yml and the docs follow, and synth's summary line."""

from __future__ import annotations

import os
import re
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import DESCRIPTION_CONFIG, ROOT, readme_section
from tools import doctor, init
from tools.keys import age_keypair, bech32_encode, x25519
from tools.variables import DEPLOY, env_block, variables

# --- the one variable list -----------------------------------------------------------------------------------


def _table_names(text: str) -> set[str]:
    names: set[str] = set()
    for line in text.splitlines():
        if line.startswith("| `"):
            names |= set(re.findall(r"`([a-z0-9_]+)`", line.split("|")[1]))
    return names


def test_deploy_workflow_passes_every_variable_of_the_list():
    assert subprocess.run([sys.executable, "-m", "tools.variables", "--check"], cwd=ROOT).returncode == 0
    env = yaml.safe_load(DEPLOY.read_text())["env"]
    assert {k.removeprefix("TF_VAR_") for k in env if k.startswith("TF_VAR_")} == set(variables())
    assert env["TF_VAR_ssh_port"] == "${{ secrets.SSH_PORT || '22' }}"


def test_an_out_of_date_deploy_block_is_caught():
    specs = variables()
    specs["new_token"] = {"description": "x"}
    assert env_block(specs) != env_block(variables()) and "TF_VAR_new_token: ${{ secrets.NEW_TOKEN }}" in env_block(specs)


def test_readme_and_safety_tables_list_exactly_the_variables():
    assert _table_names(readme_section("Secrets")) == set(variables())
    safety = (ROOT / "docs" / "safety.md").read_text()
    start = safety.index("| variable | stack | what |")
    assert _table_names(safety[start : safety.index("\n\n", start)]) == set(variables())


def test_every_variable_a_stack_declares_is_in_the_list(synth):
    listed = set(variables())
    for stack in synth.stack_names:
        declared = set(synth.stack(stack).get("variable") or {})
        assert declared <= listed, (stack, declared - listed)


@pytest.mark.parametrize("fixture", ["etcd-s3-snapshots", "provision-with-overrides"])
def test_optional_variables_of_other_configs_are_in_the_list_and_the_workflow(fixture, tmp_path):
    """Variables only some configs declare (etcd snapshot keys, the external object store's keys) too."""
    from planner.load import load_plan
    from tests.conftest import _synthesize_here

    path = tmp_path / "helix.yaml"
    data = yaml.safe_load((ROOT / "tests" / "fixtures" / "valid" / f"{fixture}.yaml").read_text())
    path.write_text(yaml.safe_dump(data))
    synth = _synthesize_here(load_plan(path), tmp_path / "out")
    env = yaml.safe_load(DEPLOY.read_text())["env"]
    for stack in synth.stack_names:
        for name in synth.stack(stack).get("variable") or {}:
            assert name in variables() and f"TF_VAR_{name}" in env, (stack, name)


def test_external_object_storage_variables_reach_the_stacks_and_the_workflow(tmp_path):
    from planner.load import load_plan

    data = yaml.safe_load(DESCRIPTION_CONFIG.read_text())
    data["object_storage"] = {**data["object_storage"], "mode": "external", "external": {"endpoint": "s3.example.org"}}
    path = tmp_path / "helix.yaml"
    path.write_text(yaml.safe_dump(data))
    plan = load_plan(path)
    used = {v.name for layer in plan.layers for v in layer.variables}
    assert {"object_storage_access_key_id", "object_storage_secret_access_key"} <= used
    env = yaml.safe_load(DEPLOY.read_text())["env"]
    assert {"TF_VAR_object_storage_access_key_id", "TF_VAR_object_storage_secret_access_key"} <= set(env)


# --- keys ----------------------------------------------------------------------------------------------------


def test_x25519_and_bech32_match_their_specifications():
    k = bytes.fromhex("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4")
    u = bytes.fromhex("e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c")
    assert x25519(k, u).hex() == "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552"  # RFC 7748 5.2
    alice = bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
    assert x25519(alice, (9).to_bytes(32, "little")).hex() == (
        "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")  # RFC 7748 6.1
    assert bech32_encode("a", []) == "a12uel5l"  # BIP-173 valid strings
    assert bech32_encode("abcdef", list(range(32))) == "abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw"


def test_age_identity_has_the_format_flux_expects():
    identity, recipient = age_keypair()
    pattern = variables()["sops_age_key"]["pattern"]
    assert re.fullmatch(pattern, identity) and len(identity) == 74
    assert re.fullmatch(r"age1[02-9ac-hj-np-z]{58}", recipient)
    assert age_keypair(b"\x01" * 32) == age_keypair(b"\x01" * 32) and age_keypair()[0] != identity


# --- init then doctor ----------------------------------------------------------------------------------------


@pytest.fixture
def fake_terraform(tmp_path, monkeypatch):
    """A `terraform` on the PATH that reports a version (the real binary's calls stubbed)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()

    def install(version: str | None) -> None:
        script = bin_dir / "terraform"
        if version is None:
            script.unlink(missing_ok=True)
            return
        script.write_text(f'#!/bin/sh\necho \'{{"terraform_version": "{version}"}}\'\n')
        script.chmod(0o755)

    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}/usr/bin:/bin")
    install("1.15.5")
    return install


def _env_after_sourcing(env_sh: Path) -> dict[str, str]:
    run = subprocess.run(["bash", "-c", f'source "{env_sh}" && env -0'], capture_output=True, text=True, env={}, check=True)
    return {k: v for k, _, v in (item.partition("=") for item in run.stdout.split("\0") if item) if k.startswith("TF_VAR_")}


def test_init_then_doctor_lists_exactly_the_manual_inputs_left(tmp_path, monkeypatch, fake_terraform, description_synth):
    monkeypatch.setattr(init, "SAMPLE", DESCRIPTION_CONFIG)  # the documented sample, as the repository ships it
    config, secrets = tmp_path / "mine" / "helix.yaml", tmp_path / "keys"
    said: list[str] = []
    assert init.init(config, secrets, out=said.append) == 0
    assert config.read_text() == DESCRIPTION_CONFIG.read_text()
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o700
    for name in ("age.agekey", "flux-deploy-key", "env.sh"):
        assert stat.S_IMODE((secrets / name).stat().st_mode) == 0o600, name
    pub = (secrets / "flux-deploy-key.pub").read_text().split()
    assert pub[0] == "ssh-ed25519" and any(pub[1] in line for line in said), said

    env = _env_after_sourcing(secrets / "env.sh")
    assert set(env) == {"TF_VAR_sops_age_key", "TF_VAR_flux_git_identity"}
    assert "AGE-SECRET-KEY-1" in env["TF_VAR_sops_age_key"]
    assert "-----BEGIN OPENSSH " + "PRIVATE KEY-----" in env["TF_VAR_flux_git_identity"]  # split: no key header in git

    lines: list[str] = []
    assert doctor.doctor(config, description_synth.outdir, [], ssh=False, environ=env, out=lines.append) == 1
    placeholders = sorted(line.split(" is still")[0].removeprefix("placeholder: ") for line in lines if line.startswith("placeholder:"))
    assert placeholders == sorted(["cloudflare.account_id", "cloudflare.zone_id", "cloudflare.access_team_name",
                                   "gitops.url", "cluster.api_host", *[f"cluster.nodes[{i}].address" for i in range(7)]])
    missing = sorted(re.match(r"variable: TF_VAR_(\w+) ", line).group(1) for line in lines if line.startswith("variable:"))
    assert missing == sorted(["ssh_user", "cloudflare_edge_token", "cloudflare_dns_token", "flux_git_known_hosts"])
    # The alert path's warning (no channel in the description) is said, not counted as a thing to fix.
    warnings = [line for line in lines if line.startswith("warning: alerting: ")]
    assert lines[-1].startswith(f"doctor: {len(lines) - 1 - len(warnings)} thing(s) to fix")
    assert len(lines) == len(placeholders) + len(missing) + len(warnings) + 1

    # Given every input, nothing is left.
    data = yaml.safe_load(config.read_text())
    data["cloudflare"].update(account_id="1" * 32, zone_id="2" * 32, access_team_name="acme")
    data["gitops"]["url"] = "ssh://git@git.example.org/acme/platform.git"
    data["cluster"]["api_host"] = "10.20.0.9"
    for i, node in enumerate(data["cluster"]["nodes"]):
        node["address"] = f"10.20.0.{100 + i}"
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    env.update({f"TF_VAR_{n}": "given" for n in missing})
    lines.clear()
    assert doctor.doctor(config, description_synth.outdir, [], ssh=False, environ=env, out=lines.append) == 0, lines
    assert [line for line in lines if not line.startswith("warning: alerting: ")] == [
        f"doctor: ready to deploy {', '.join(doctor.dependency_order_of(description_synth.outdir))}"
    ]


def test_init_never_overwrites(tmp_path, monkeypatch):
    monkeypatch.setattr(init, "SAMPLE", DESCRIPTION_CONFIG)
    config, secrets = tmp_path / "helix.yaml", tmp_path / "keys"
    config.write_text("name: mine\n")
    said: list[str] = []
    assert init.init(config, secrets, out=said.append) == 0
    before = {p.name: p.read_bytes() for p in secrets.iterdir()}
    said.clear()
    assert init.init(config, secrets, out=said.append) == 0
    assert config.read_text() == "name: mine\n"
    assert {p.name: p.read_bytes() for p in secrets.iterdir()} == before
    assert sum(line.startswith("kept ") for line in said) == 4 and not any(line.startswith("created") for line in said)


def test_init_refuses_a_secrets_folder_git_would_track(tmp_path, monkeypatch):
    monkeypatch.setattr(init, "SAMPLE", DESCRIPTION_CONFIG)
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    said: list[str] = []
    assert init.init(tmp_path / "helix.yaml", repo / "keys", out=said.append) == 2
    assert said[-1].startswith("error:") and "git" in said[-1]
    assert not (repo / "keys" / "age.agekey").exists()
    assert subprocess.run(["git", "check-ignore", "-q", ".secrets/age.agekey"], cwd=ROOT).returncode == 0


def test_doctor_reports_terraform_missing_or_too_old(fake_terraform):
    fake_terraform("1.9.8")
    assert doctor.terraform_lines() == [line for line in doctor.terraform_lines() if "older than 1.10" in line] != []
    fake_terraform("1.10.0")
    assert doctor.terraform_lines() == []
    fake_terraform(None)
    (line,) = doctor.terraform_lines()
    assert line.startswith("terraform: not on the PATH")


def _listener(banner: bytes | None):
    """A local port that accepts one connection and sends `banner` (None: says nothing, as a proxy that accepts
    every connection does)."""
    import threading

    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen()

    def serve() -> None:
        conn, _ = listening.accept()
        with conn:
            if banner is not None:
                conn.sendall(banner)
            conn.recv(1)  # until the probe closes

    threading.Thread(target=serve, daemon=True).start()
    return listening


@pytest.mark.slow
def test_doctor_probes_ssh_with_a_bounded_timeout():
    with _listener(b"SSH-2.0-OpenSSH_9.6\r\n") as ssh_server:
        assert doctor.ssh_lines([("up", "127.0.0.1")], ssh_server.getsockname()[1], timeout=1) == []
    with _listener(None) as silent:  # the connection opens, but nothing speaks SSH
        port = silent.getsockname()[1]
        (line,) = doctor.ssh_lines([("mute", "127.0.0.1")], port, timeout=1)
        assert line == (f"ssh: mute (127.0.0.1:{port}) does not answer: the port accepts a connection but no SSH "
                        "server identified itself within 1 s")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    (line,) = doctor.ssh_lines([("down", "127.0.0.1")], closed, timeout=1)
    assert line.startswith(f"ssh: down (127.0.0.1:{closed}) does not answer")


def test_doctor_on_an_invalid_config_prints_its_problems(tmp_path):
    bad = tmp_path / "helix.yaml"
    bad.write_text("name: x\nclutser: {}\n")
    lines: list[str] = []
    assert doctor.doctor(bad, tmp_path, [], ssh=False, environ={}, out=lines.append) == 2
    assert lines and all(line.startswith("error: ") for line in lines)


def test_the_terraform_floor_is_the_one_the_docs_state():
    floor = ".".join(map(str, doctor.TERRAFORM_FLOOR))
    for doc in ("README.md", "docs/first-deploy.md"):
        text = (ROOT / doc).read_text()
        assert re.search(rf"Terraform[^\n]{{0,40}}(≥|>=) ?{re.escape(floor)}", text), doc


def test_synth_ends_with_one_summary_line(tmp_path, monkeypatch, capsys):
    from tests.helpers import main_in_process

    run = main_in_process(str(DESCRIPTION_CONFIG.relative_to(ROOT)), tmp_path, monkeypatch, capsys)
    assert run.returncode == 0
    last = run.stderr.strip().splitlines()[-1]
    m = re.fullmatch(r"synthesized (\d+) stacks, (\d+) resources into (\S+) from (\S+)(; since the last synth: .*)?", last)
    assert m and int(m.group(1)) >= 10 and int(m.group(2)) > 100, last


def test_the_summary_names_the_stacks_changed_since_the_last_synth(tmp_path, description_synth):
    import json
    import shutil

    from stacks.summary import stack_digests, summary_line

    out = tmp_path / "out"
    shutil.copytree(description_synth.outdir, out)
    before = stack_digests(out)
    assert summary_line(out, "c.yaml", before).endswith("; since the last synth: no stack changed")
    path = out / description_synth.manifest["stacks"]["edge"]["synthesizedStackPath"]
    doc = json.loads(path.read_text())
    doc["resource"]["terraform_data"] = {"x": {}}
    path.write_text(json.dumps(doc))
    line = summary_line(out, "c.yaml", before)
    assert line.endswith("; since the last synth: 1 changed (edge)"), line
    assert summary_line(out, "c.yaml", None).endswith("from c.yaml")


# --- docs/first-deploy.md ------------------------------------------------------------------------------------


def test_first_deploy_checklist_covers_every_stack_in_a_valid_order(description_synth):
    """Its deploy table names every stack once, each after the stacks it depends on; links and verbs exist."""
    from tools.order import dependency_order

    text = (ROOT / "docs" / "first-deploy.md").read_text()
    rows = re.findall(r"^\| (\d+) \| `([a-z-]+)` \|", text, re.M)
    order = [stack for _, stack in rows]
    assert sorted(order) == sorted(description_synth.stack_names)
    deps = {name: set(entry.get("dependencies", [])) for name, entry in description_synth.manifest["stacks"].items()}
    for i, stack in enumerate(order):
        assert deps[stack] <= set(order[:i]), (stack, deps[stack] - set(order[:i]))
    assert dependency_order(description_synth.manifest["stacks"])  # the same manifest the deploy walks
    for link in re.findall(r"\]\(([^)#]+\.md)", text):
        assert (ROOT / "docs" / link).resolve().exists(), link
    tasks = yaml.safe_load((ROOT / "Taskfile.yml").read_text())["tasks"]
    for verb in set(re.findall(r"task (\w+)", text)):
        assert verb in tasks, verb
    readme = (ROOT / "README.md").read_text()
    assert readme.index("docs/first-deploy.md") < readme.index("## Quick start")
