"""State backends: one state per stack, chosen once for the whole app.

cdktf's implicit local backend writes the absolute path of the machine that synthesized; these helpers set
the backend explicitly so that synthesized stacks are the same on every machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from constructs_lib.engine import CloudBackend, LocalBackend, NamedCloudWorkspace, PgBackend, S3Backend, TerraformStack

# Terraform runs each stack in <outdir>/stacks/<stack>; with the default outdir (cdktf.out at the project
# root) this climbs back to the project root.
DEFAULT_STACK_DIR_TO_ROOT = "../../.."


class StateBackend(Protocol):
    """Anything that can configure the backend of one stack."""

    def apply(self, stack: TerraformStack, stack_name: str) -> None: ...


@dataclass(frozen=True)
class LocalStateBackend:
    """State files under `directory` (relative to the project root), one `<stack>.tfstate` per stack.

    Props:
        directory: folder relative to the project root; keep it outside the synth output folder.
        stack_dir_to_root: relative path from a stack's working directory back to the project root.
    """

    directory: str = "state"
    stack_dir_to_root: str = DEFAULT_STACK_DIR_TO_ROOT

    def apply(self, stack: TerraformStack, stack_name: str) -> None:
        LocalBackend(stack, path=f"{self.stack_dir_to_root}/{self.directory}/{stack_name}.tfstate")


@dataclass(frozen=True)
class S3StateBackend:
    """S3 or an S3-compatible store; the key is `<key_prefix>/<stack>.tfstate`, locked with a lock file.

    Credentials come from the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY or a profile).

    Props:
        bucket: bucket name.
        key_prefix: folder inside the bucket.
        region: bucket region.
        endpoint: custom S3 endpoint for MinIO, R2 or Ceph; None for AWS.
        use_path_style: path-style addressing, which most S3-compatible stores need.
        kms_key_id: ARN (or id/alias) of the AWS KMS key the state objects are encrypted with (SSE-KMS);
            None: the bucket's default encryption (SSE-S3).
    """

    bucket: str
    key_prefix: str
    region: str = "us-east-1"
    endpoint: str | None = None
    use_path_style: bool = False
    kms_key_id: str | None = None

    def apply(self, stack: TerraformStack, stack_name: str) -> None:
        # A non-AWS store (an endpoint) has no STS or account to check.
        other_store = True if self.endpoint else None
        backend = S3Backend(
            stack,
            bucket=self.bucket,
            key=f"{self.key_prefix}/{stack_name}.tfstate",
            region=self.region,
            encrypt=True,
            kms_key_id=self.kms_key_id,
            use_path_style=self.use_path_style or None,
            endpoints={"s3": self.endpoint} if self.endpoint else None,
            skip_credentials_validation=other_store,
            skip_region_validation=other_store,
            skip_requesting_account_id=other_store,
            skip_metadata_api_check=other_store,
            skip_s3_checksum=other_store,
        )
        # S3-native locking (Terraform >= 1.10) needs no DynamoDB table; cdktf 0.21 predates the option.
        backend.add_override("use_lockfile", True)


@dataclass(frozen=True)
class RemoteStateBackend:
    """HCP Terraform or Terraform Enterprise: one workspace per stack, `<workspace_prefix>-<stack>`.

    The token comes from `terraform login` or TF_TOKEN_<host>, never from here.

    Props:
        organization: the organization that owns the workspaces.
        workspace_prefix: prefix of each stack's workspace name.
        hostname: Terraform Enterprise host; None for HCP Terraform.
    """

    organization: str
    workspace_prefix: str
    hostname: str | None = None

    def apply(self, stack: TerraformStack, stack_name: str) -> None:
        CloudBackend(
            stack,
            organization=self.organization,
            workspaces=NamedCloudWorkspace(f"{self.workspace_prefix}-{stack_name}"),
            hostname=self.hostname,
        )


@dataclass(frozen=True)
class PgStateBackend:
    """PostgreSQL: one schema per stack, `<schema_prefix>_<stack>`.

    Props:
        conn_str: connection string without a password; libpq reads it from PGPASSWORD or ~/.pgpass.
        schema_prefix: prefix of each stack's schema name.
    """

    conn_str: str
    schema_prefix: str

    def apply(self, stack: TerraformStack, stack_name: str) -> None:
        PgBackend(stack, conn_str=self.conn_str, schema_name=f"{self.schema_prefix}_{stack_name.replace('-', '_')}")
