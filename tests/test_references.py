"""Every Secret and Service that Flagsmith's and OnCall's connection settings name exists after the same apply.

A name resolves when, in the release's namespace, either Terraform creates it (a kubernetes_secret_v1 of the same
stack, with the key asked for) or an operator creates it for a custom resource that a manifest release installs
before the consuming release. The operators' naming rules below were read in their sources at the pinned
versions; a name typed wrong, a key that the Secret does not have, or an object installed after its consumer
is a failure.
"""

from __future__ import annotations

from typing import Any

import yaml

# Objects each operator creates for one custom resource named N (Secrets with their keys, Services).
# CloudNativePG 1.30.0 pkg/specs/secrets.go and services; MySQL Operator router_objects.py / cluster_objects.py;
# OT redis-operator v0.26.0 internal/k8sutils/redis-replication.go and MasterService().
CNPG_APP_KEYS = {"username", "user", "password", "dbname", "host", "port", "pgpass", "uri", "jdbc-uri", "fqdn-uri",
                 "fqdn-jdbc-uri"}


def _operator_objects(obj: dict[str, Any]) -> tuple[dict[str, set[str]], set[str], list[tuple[str, str]]]:
    """(secrets created: name -> keys, services created, secrets read: (name, key))."""
    kind, name, spec = obj["kind"], obj["metadata"]["name"], obj.get("spec") or {}
    if kind == "Cluster" and obj["apiVersion"].startswith("postgresql.cnpg.io/"):
        secrets = {} if (spec.get("bootstrap", {}).get("initdb", {}).get("secret")) else {f"{name}-app": CNPG_APP_KEYS}
        return secrets, {f"{name}-rw", f"{name}-ro", f"{name}-r"}, []
    if kind == "InnoDBCluster":
        reads = [(spec["secretName"], key) for key in ("rootUser", "rootHost", "rootPassword")]
        return {}, {name, f"{name}-instances"}, reads
    if kind == "RedisReplication":
        reads = []
        for part in (spec.get("kubernetesConfig") or {}, spec.get("sentinel") or {}):
            if ref := part.get("redisSecret"):
                reads.append((ref["name"], ref["key"]))
        return {}, {name, f"{name}-headless", f"{name}-additional", f"{name}-master", f"{name}-replica"}, reads
    return {}, set(), []


def _secret_key_refs(node: Any):
    if isinstance(node, dict):
        if "secretKeyRef" in node:
            yield node["secretKeyRef"]["name"], node["secretKeyRef"]["key"]
        for value in node.values():
            yield from _secret_key_refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _secret_key_refs(value)


def _namespace_view(synth, namespace: str):
    """Secrets (name -> keys) and Services available in `namespace`, the manifest releases that provide them, and
    every (secret, key) that those manifests read."""
    secrets: dict[str, set[str]] = {}
    for (_, _), res in synth.all_resources("kubernetes_secret_v1").items():
        meta = res["metadata"]
        if meta["namespace"] == namespace:
            secrets[meta["name"]] = set(res.get("data") or {})
    services: dict[str, str] = {}
    operator_secrets: dict[str, str] = {}
    reads: list[tuple[str, str, str]] = []
    for (_, logical), res in synth.all_resources("helm_release").items():
        if res["namespace"] != namespace or res["chart"] != "raw":
            continue
        for obj in yaml.safe_load(res["values"][0])["resources"]:
            made, svcs, read = _operator_objects(obj)
            for name, keys in made.items():
                secrets[name] = keys
                operator_secrets[name] = logical
            for svc in svcs:
                services[svc] = logical
            reads += [(res["name"], s, k) for s, k in [*read, *_secret_key_refs(obj)]]
    return secrets, services, operator_secrets, reads


def _release(synth, name: str) -> tuple[str, dict]:
    found = [(logical, res) for (_, logical), res in synth.all_resources("helm_release").items() if res["name"] == name]
    assert len(found) == 1, name
    return found[0]


def _values(res: dict) -> dict:
    out: dict = {}
    for text in res.get("values") or []:
        out.update(yaml.safe_load(text))
    return out


def _comes_first(res: dict, logical: str) -> bool:
    return f"helm_release.{logical}" in (res.get("depends_on") or [])


def test_flagsmith_reads_its_database_url_from_the_cnpg_app_secret(synth):
    logical, res = _release(synth, "flagsmith")
    values = _values(res)
    assert values["devPostgresql"]["enabled"] is False
    ref = values["databaseExternal"]
    assert ref["enabled"] and ref["urlFromExistingSecret"]["enabled"]
    secrets, _, operator_secrets, _ = _namespace_view(synth, res["namespace"])
    name, key = ref["urlFromExistingSecret"]["name"], ref["urlFromExistingSecret"]["key"]
    assert key in secrets.get(name, set()), (name, key)
    assert name in operator_secrets and _comes_first(res, operator_secrets[name])
    # The Django key comes from Terraform.
    key_ref = values["api"]["secretKeyFromExistingSecret"]
    assert key_ref["key"] in secrets[key_ref["name"]]


def test_oncall_connects_to_operator_services_with_generated_secrets(synth):
    logical, res = _release(synth, "oncall")
    values = _values(res)
    assert values["database"]["type"] == "mysql" and values["broker"]["type"] == "redis"
    assert not values["mariadb"]["enabled"] and not values["rabbitmq"]["enabled"] and not values["redis"]["enabled"]
    secrets, services, _, reads = _namespace_view(synth, res["namespace"])
    for part in ("externalMysql", "externalRedis"):
        conf = values[part]
        assert conf["passwordKey"] in secrets.get(conf["existingSecret"], set()), part
        assert conf["host"] in services, (part, conf["host"])
        assert _comes_first(res, services[conf["host"]]), part
    assert values["oncall"]["secrets"]["secretKey"] in secrets[values["oncall"]["secrets"]["existingSecret"]]
    # Whatever the database objects read themselves exists too (root account, app password, Redis password).
    assert reads
    for release, name, key in reads:
        assert key in secrets.get(name, set()), (release, name, key)


def test_a_misspelt_reference_would_be_caught(synth):
    """The view is not vacuous: names that nothing creates are absent from it."""
    secrets, services, _, _ = _namespace_view(synth, "monitoring")
    assert "oncall-mysql" in services and "oncall-redis-master" in services
    assert "oncall-mysql-master" not in services and "oncall-redis-primary" not in services
    assert secrets["oncall-redis"] == {"password"}
    secrets, services, _, _ = _namespace_view(synth, "production")
    assert "flagsmith-db-app" in secrets and "flagsmith-db-rw" in services
    assert "flagsmith-db-superuser" not in secrets  # enableSuperuserAccess is off, and nobody should read it
