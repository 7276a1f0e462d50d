"""Safe to run for real: no secret in the output or in git, deterministic output, no accidental destroy.

The second synth is the session's `cdktf synth` through the real CLI (fixture `cli_synth` in conftest.py): another
process, with a known value for every sensitive variable in TF_VAR_*, a different hash seed and a different
output folder. Its output must be byte-identical to the session synth and hold none of the injected values.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from tests.conftest import sensitive_variables
from tools import snapshot as snap

ROOT = Path(__file__).resolve().parent.parent
UPDATE_COMMAND = "UPDATE_SNAPSHOTS=1 python -m pytest -q tests/test_safety.py -k snapshot   (or: python -m tools.snapshot)"
CREDENTIAL_NAME = re.compile(r"token|key|password|passwd|secret|credential|passphrase|private", re.I)
NOT_CREDENTIAL_NAME = re.compile(r"public|key_id$|_id$", re.I)
# Attributes that carry credentials when an output exposes them.
CREDENTIAL_ATTRIBUTE = re.compile(
    r"private_key|\.result\b|password|token|secret|client_key|client_certificate|kubeconfig|\.cert_pem\b", re.I
)


@pytest.fixture(scope="module")
def second_synth(cli_synth):
    return cli_synth.outdir, cli_synth.secrets


def files(outdir: Path) -> dict[str, bytes]:
    """Every synthesized file. Not the synth cache's stamp: it records a digest of the environment that synthesized
    the folder (variables, packages, working directory), which differs by design between two processes."""
    from stacks.synth_cache import STAMP

    return {
        str(p.relative_to(outdir)): p.read_bytes()
        for p in sorted(outdir.rglob("*"))
        if p.is_file() and p.relative_to(outdir).as_posix() != STAMP
    }


# --- secrets ----------------------------------------------------------------------------------------------


def test_app_declares_sensitive_variables(synth):
    found = sensitive_variables(synth)
    assert found, "the app declares no sensitive variable: credentials must enter as sensitive TF variables"
    assert {"cloudflare_edge_token", "cloudflare_dns_token", "sops_age_key"} <= set(found), sorted(found)


def test_injected_secrets_never_reach_the_output(synth, second_synth):
    out, secrets = second_synth
    # A value was injected for every sensitive variable the app declares (the names come from README's table).
    missing = sorted(set(sensitive_variables(synth)) - {k[len("TF_VAR_"):] for k in secrets if k.startswith("TF_VAR_")})
    assert not missing, f"no value injected for {missing}: list them in README's Secrets table"
    for rel, data in files(out).items():
        for env_name, value in secrets.items():
            assert value.encode() not in data, f"{env_name} leaked into cdktf.out/{rel}"


def test_credential_named_variables_are_sensitive(synth):
    for stack in synth.stack_names:
        for name, var in synth.stack(stack).get("variable", {}).items():
            if CREDENTIAL_NAME.search(name) and not NOT_CREDENTIAL_NAME.search(name):
                assert var.get("sensitive") is True, f"{stack}: variable {name} looks like a credential"


def test_outputs_carrying_credentials_are_sensitive(synth):
    sensitive_vars = set(sensitive_variables(synth))
    checked = 0
    for stack in synth.stack_names:
        for name, output in synth.stack(stack).get("output", {}).items():
            value = json.dumps(output.get("value"))
            carries = (
                CREDENTIAL_NAME.search(name)
                or CREDENTIAL_ATTRIBUTE.search(value)
                or any(f"var.{v}" in value for v in sensitive_vars)
            )
            if carries:
                checked += 1
                assert output.get("sensitive") is True, f"{stack}: output {name} carries a credential: {value[:120]}"
    assert checked, "expected at least one credential-carrying output (the nodes stack's cluster credentials)"


def test_no_literal_secret_material_in_output(synth):
    pem = re.compile(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----")
    age = re.compile(rb"AGE-SECRET-KEY-1[0-9A-Z]{20,}")
    for rel, data in files(synth.outdir).items():
        assert not pem.search(data) and not age.search(data), rel


def test_no_secret_material_in_git():
    """Tracked files hold no private key, age identity or state file."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True)
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    paths = [p for p in listed.stdout.decode().split("\0") if p]
    assert paths
    pem = re.compile(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----")
    age = re.compile(rb"AGE-SECRET-KEY-1[0-9A-Z]{20,}")
    for path in paths:
        assert not path.endswith((".tfstate", ".tfstate.backup", ".agekey", ".pem", ".tfvars")), path
        full = ROOT / path
        if full.is_file():
            data = full.read_bytes()
            assert not pem.search(data) and not age.search(data), path


def test_sops_age_secret_for_flux(synth):
    """flux-system/sops-age holds the sensitive variable sops_age_key and exists before Flux is installed."""
    delivery = synth.stack("delivery")
    var = delivery["variable"]["sops_age_key"]
    assert var["sensitive"] is True and var["type"] == "string" and var["nullable"] is False
    secrets = {
        key: body
        for key, body in delivery["resource"]["kubernetes_secret_v1"].items()
        if body["metadata"]["name"] == "sops-age"
    }
    assert len(secrets) == 1
    key, body = next(iter(secrets.items()))
    assert body["data"] == {"age.agekey": "${var.sops_age_key}"}
    namespaces = delivery["resource"]["kubernetes_namespace_v1"]
    ns_key = next(k for k, ns in namespaces.items() if ns["metadata"]["name"] == "flux-system")
    # The secret waits for the namespace that the same stack creates.
    assert body["metadata"]["namespace"] == "flux-system"
    assert f"kubernetes_namespace_v1.{ns_key}" in body["depends_on"]
    flux = next(r for r in delivery["resource"]["helm_release"].values() if r["chart"] == "flux2")
    assert f"kubernetes_secret_v1.{key}" in flux["depends_on"]
    assert flux["namespace"] == "flux-system"


# --- determinism ------------------------------------------------------------------------------------------


def test_second_synth_is_byte_identical(description_synth, second_synth):
    """Also the same bytes with and without -O: the CLI runs cdktf.json's `python -O main.py`, this session not."""
    assert json.loads((ROOT / "cdktf.json").read_text())["app"].split()[-2:] == ["-O", "main.py"]
    assert sys.flags.optimize == 0
    out, _ = second_synth
    first, second = files(description_synth.outdir), files(out)
    assert sorted(first) == sorted(second)
    different = [rel for rel in first if first[rel] != second[rel]]
    assert not different, f"synth is not deterministic: {different}"


def test_no_timestamps_paths_or_machine_names(synth, second_synth):
    out, _ = second_synth
    hostname = socket.gethostname()
    # Paths of this machine: the checkout, both output folders, the interpreter. (Paths on the nodes, such as a
    # provisioning script's /tmp/k3s-provision, are not of this machine and are fine.)
    forbidden = [str(ROOT), str(synth.outdir.parent), str(out.parent), sys.prefix, os.getcwd()]
    if Path.home() != Path("/root"):
        forbidden.append(str(Path.home()))
    if len(hostname) >= 4 and hostname not in {"localhost"}:
        forbidden.append(hostname)
    timestamp = re.compile(rb"\b20\d\d-[01]\d-[0-3]\d[T ][0-2]\d:[0-5]\d")
    for rel, data in files(out).items():
        for text in forbidden:
            assert text.encode() not in data, f"{text!r} in cdktf.out/{rel}"
        match = timestamp.search(data)
        assert not match, f"timestamp {match.group(0)!r} in cdktf.out/{rel}"


# --- no accidental destroy --------------------------------------------------------------------------------


def test_address_snapshot(shipped_synth_or_description, description_synth):
    """Every address in tests/snapshots/addresses.json still exists in the shipped config's synth (or is moved);
    new ones are reported. An address that the shipped config no longer asks for (a component turned off, for
    one) while the description's frozen config, through the same code, still has it is a destroy the config
    asks for: reported, not failed (`task review` shows it on the pull request). One the code drops fails."""
    synth = shipped_synth_or_description
    docs = {name: synth.stack(name) for name in synth.stack_names}
    current = {name: snap.resource_addresses(doc) for name, doc in docs.items()}
    assert sum(map(len, current.values())) > 0
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        snap.write(current)
        pytest.skip(f"snapshot rewritten: {snap.SNAPSHOT.relative_to(ROOT)} (review and commit it)")
    assert snap.SNAPSHOT.exists(), f"no snapshot yet: run {UPDATE_COMMAND}"
    removed, added = snap.compare(snap.read(), docs)
    if added:
        listed = "; ".join(f"{stack}: {', '.join(items)}" for stack, items in added.items())
        warnings.warn(f"new resource addresses not in the snapshot ({listed}); update it with {UPDATE_COMMAND}", stacklevel=2)
    by_config: dict[str, list[str]] = {}
    if synth is not description_synth:
        for stack, items in list(removed.items()):
            kept = set(snap.resource_addresses(description_synth.stack(stack))) if stack in description_synth.stack_names else set()
            by_config[stack] = [a for a in items if a in kept]
            removed[stack] = [a for a in items if a not in kept]
        removed = {s: items for s, items in removed.items() if items}
        by_config = {s: items for s, items in by_config.items() if items}
    if by_config:
        listed = "; ".join(f"{stack}: {', '.join(items)}" for stack, items in by_config.items())
        warnings.warn(
            f"config/helix.yaml no longer asks for these addresses, so `cdktf deploy` destroys them ({listed}); "
            f"if intended, update the snapshot with {UPDATE_COMMAND}",
            stacklevel=2,
        )
    if removed:
        listed = "\n".join(f"  {stack}: {addr}" for stack, items in removed.items() for addr in items)
        pytest.fail(
            "These resource addresses disappeared; `cdktf deploy` would DESTROY them:\n"
            f"{listed}\n"
            "If a construct id was renamed or moved within its stack, keep the real object with a moved block:\n"
            "  new_resource.move_from_id('<type>.<old name>')   (or old.move_to(...); see docs/safety.md)\n"
            f"If the destroy is intended, update the snapshot on purpose and commit it:\n  {UPDATE_COMMAND}",
            pytrace=False,
        )


def test_snapshot_compare_detects_removal_and_honours_moved_blocks():
    old = {"s": ["helm_release.a", "helm_release.b"], "gone": ["null_resource.x"]}
    docs = {"s": {"resource": {"helm_release": {"b": {}, "c": {}}}}}
    removed, added = snap.compare(old, docs)
    assert removed == {"s": ["helm_release.a"], "gone": ["null_resource.x"]}
    assert added == {"s": ["helm_release.c"]}
    docs["s"]["moved"] = [{"from": "helm_release.a", "to": "helm_release.c"}]
    removed, added = snap.compare(old, docs)
    assert removed == {"gone": ["null_resource.x"]} and added == {}
