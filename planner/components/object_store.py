"""The in-cluster object store (concern `object-store`; the catalog's `seaweedfs`): where its S3 gateway answers,
and the generated Secret with its keys. With object_storage.mode external, the external service and the
variables replace both."""

from __future__ import annotations

from typing import Any

from planner.components import Provider
from planner.model import ValueRef
from planner.schema import HelixConfig

CONCERN = "object-store"
# The seaweedfs chart's S3 gateway: Service <release>-s3 (s3-service template), port s3.port (8333 by default).
S3_SERVICE_SUFFIX = "-s3"
S3_DEFAULT_PORT = 8333
AWS_CREDENTIALS_FILE = "[default]\naws_access_key_id = {access_key_id}\naws_secret_access_key = {secret_access_key}\n"
KEYS = ("access_key_id", "secret_access_key")


def endpoint(provider: Provider | None) -> str:
    """host:port of the in-cluster S3 gateway, in the namespace the cluster file places the store in."""
    release = provider.release_name if provider else "object-store"
    namespace = provider.namespace if provider and provider.namespace else "default"
    port = ((provider.values.get("s3") or {}).get("port") if provider else None) or S3_DEFAULT_PORT
    return f"{release}{S3_SERVICE_SUFFIX}.{namespace}.svc:{port}"


def keys_secret(provider: Provider) -> str:
    """The store's generated Secret that holds both keys."""
    for secret in provider.spec.generated_secrets:
        if set(KEYS) <= set(secret.random_keys):
            return secret.name
    raise ValueError(f"{provider.component}: no generated secret holds {' and '.join(KEYS)}")


def key_ref(cfg: HelixConfig, what: str, provider: Provider | None) -> ValueRef:
    """A key of the object store wherever object_storage puts it, or both as an AWS shared credentials file."""

    def key(name: str) -> ValueRef:
        if cfg.object_storage.mode == "external" or provider is None:
            return ValueRef("variable", f"object_storage_{name}")
        return ValueRef("generated_in", f"{keys_secret(provider)}/{name}", component=provider.component)

    if what == "aws_credentials_file":
        return ValueRef("format", AWS_CREDENTIALS_FILE, fields=tuple((name, key(name)) for name in KEYS))
    return key(what)


def placeholders(cfg: HelixConfig, provider: Provider | None) -> dict[str, Any]:
    """Where the object store is, as placeholders: the external service, or the in-cluster gateway."""
    store = cfg.object_storage
    if store.mode == "external" and store.external is not None:
        address, region, insecure = store.external.endpoint, store.external.region, store.external.insecure
    else:
        address, region, insecure = endpoint(provider), "us-east-1", True
    out: dict[str, Any] = {
        "object_storage_endpoint": address,
        "object_storage_region": region,
        "object_storage_insecure": insecure,
    }
    for signal in ("metrics", "logs", "traces", "profiles"):
        out[f"bucket_{signal}"] = getattr(store.buckets, signal)
        out[f"retention_{signal}"] = f"{getattr(store.retention, f'{signal}_days') * 24}h"
    out["bucket_backups"] = store.buckets.backups
    out["retention_backups"] = f"{store.retention.backups_days}d"
    out["object_storage_url"] = f"{'http' if insecure else 'https'}://{address}"
    return out
