"""State backends chosen in the config: each stack gets its own state, and no machine path leaks in."""

from __future__ import annotations

import json

import pytest

from planner.schema import StateConfig

CASES = {
    "local": ({"backend": "local", "local": {"dir": "tfstate"}}, "local", {"path": "../../../tfstate/foundation.tfstate"}),
    "s3": (
        {"backend": "s3", "s3": {"bucket": "helix-state", "key_prefix": "helix", "region": "eu-central-1"}},
        "s3",
        {"bucket": "helix-state", "key": "helix/foundation.tfstate", "region": "eu-central-1", "use_lockfile": True},
    ),
    "remote": (
        {"backend": "remote", "remote": {"organization": "sinless-games", "workspace_prefix": "helix"}},
        "cloud",
        {"organization": "sinless-games", "workspaces": {"name": "helix-foundation"}},
    ),
    "pg": (
        {"backend": "pg", "pg": {"conn_str": "postgres://tfstate@db.internal/terraform", "schema_prefix": "helix"}},
        "pg",
        {"conn_str": "postgres://tfstate@db.internal/terraform", "schema_name": "helix_foundation"},
    ),
}


def _synth_backend(state: dict) -> dict:
    # Imported here, not at collection: the background work of conftest starts only after collection.
    from constructs_lib.engine import App, TerraformOutput, TerraformStack
    from constructs_lib.engine import Testing as CdktfTesting
    from stacks.base import backend_from_config

    app = App(stack_traces=False)
    stack = TerraformStack(app, "foundation")
    backend_from_config(StateConfig.model_validate(state)).apply(stack, "foundation")
    TerraformOutput(stack, "marker", value="x")
    return json.loads(CdktfTesting.synth(stack))["terraform"]


@pytest.mark.parametrize("case", sorted(CASES))
def test_backend_is_configured_per_stack(case):
    state, block, expected = CASES[case]
    terraform = _synth_backend(state)
    key = "cloud" if block == "cloud" else "backend"
    config = terraform[key] if key == "cloud" else terraform["backend"][block]
    for field, value in expected.items():
        assert config[field] == value, (case, field, config)


def test_s3_compatible_endpoint_skips_aws_checks():
    terraform = _synth_backend(
        {"backend": "s3", "s3": {"bucket": "state", "endpoint": "https://minio.lan:9000", "use_path_style": True}}
    )
    s3 = terraform["backend"]["s3"]
    assert s3["endpoints"] == {"s3": "https://minio.lan:9000"}
    assert s3["use_path_style"] is True and s3["skip_credentials_validation"] is True


@pytest.mark.parametrize(
    "state, message",
    [
        ({"backend": "s3"}, "state.backend is 's3' but state.s3 is not set"),
        ({"backend": "pg", "pg": {"conn_str": "postgres://u:secret@db/x"}}, "conn_str"),
        ({"backend": "local", "local": {"dir": "/var/lib/state"}}, "must be a path inside the project"),
    ],
)
def test_backend_config_errors(state, message):
    from pydantic import ValidationError

    from planner.schema import HelixConfig, cross_field_problems
    from planner.validate import config_problems

    base = {"domain": "example.com", "acme_email": "ops@example.com", "cloudflare": {"enabled": False}}
    try:
        cfg = HelixConfig.model_validate({**base, "state": state})
    except ValidationError as exc:
        assert message in str(exc)
        return
    # A password in the pg connection string is refused by planner/validate.py, pointing at PGPASSWORD.
    assert any(message in p + ": " + m for p, m in cross_field_problems(cfg) + config_problems(cfg))


def test_s3_kms_key_encrypts_state():
    arn = "arn:aws:kms:eu-central-1:111122223333:key/0b3f4c1e-1b2a-4c3d-9e8f-0123456789ab"
    terraform = _synth_backend({"backend": "s3", "s3": {"bucket": "helix-state", "kms_key_id": arn}})
    s3 = terraform["backend"]["s3"]
    assert s3["kms_key_id"] == arn and s3["encrypt"] is True
    assert "kms_key_id" not in _synth_backend({"backend": "s3", "s3": {"bucket": "helix-state"}})["backend"]["s3"]


def test_every_stack_requires_the_terraform_its_output_needs(synth):
    """Every stack refuses a Terraform older than 1.10: the S3 backend's `use_lockfile` needs 1.10, the nodes
    stack's `removed` blocks with destroy-time provisioners 1.9."""
    from stacks.base import REQUIRED_TERRAFORM

    assert REQUIRED_TERRAFORM == ">= 1.10"
    assert synth.stack_names
    for name in synth.stack_names:
        assert synth.stack(name)["terraform"]["required_version"] == REQUIRED_TERRAFORM, name
    assert _synth_backend({"backend": "s3", "s3": {"bucket": "state"}})["backend"]["s3"]["use_lockfile"] is True
