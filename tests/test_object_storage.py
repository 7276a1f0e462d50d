"""The object store setting (helix.yaml object_storage): Mimir, Loki, Tempo and Pyroscope keep their data where
it says, with the retention it says, reading the keys from the one Secret that the chosen store provides."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from planner.load import load_plan
from tests.conftest import DESCRIPTION_CONFIG, ROOT

CONSUMERS = ("mimir", "loki", "tempo", "pyroscope")


def _plan(tmp_path: Path, object_storage: dict | None = None):
    cfg = yaml.safe_load(DESCRIPTION_CONFIG.read_text())
    if object_storage is not None:
        cfg["object_storage"] = object_storage
    path = tmp_path / "helix.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return load_plan(path, ROOT / "config")


def _store(values: dict, cid: str) -> dict:
    """(endpoint, region, insecure, bucket, access key, secret key) as each chart spells them."""
    if cid == "mimir":
        s3 = values["mimir"]["structuredConfig"]["common"]["storage"]["s3"]
        return dict(endpoint=s3["endpoint"], region=s3["region"], insecure=s3["insecure"], bucket=s3["bucket_name"],
                    key=s3["access_key_id"], secret=s3["secret_access_key"])
    if cid == "loki":
        s3 = values["loki"]["storage"]["s3"]
        return dict(endpoint=s3["endpoint"], region=s3["region"], insecure=s3["insecure"],
                    bucket=values["loki"]["storage"]["bucketNames"]["chunks"], key=s3["accessKeyId"],
                    secret=s3["secretAccessKey"])
    if cid == "tempo":
        s3 = values["tempo"]["storage"]["trace"]["s3"]
        return dict(endpoint=s3["endpoint"], region=s3["region"], insecure=s3["insecure"], bucket=s3["bucket"],
                    key=s3["access_key"], secret=s3["secret_key"])
    s3 = values["pyroscope"]["structuredConfig"]["storage"]["s3"]
    return dict(endpoint=s3["endpoint"], region=s3["region"], insecure=s3["insecure"], bucket=s3["bucket_name"],
                key=s3["access_key_id"], secret=s3["secret_access_key"])


def _env_from(values: dict, cid: str) -> list:
    return {"mimir": lambda: values["global"]["extraEnvFrom"], "loki": lambda: values["singleBinary"]["extraEnvFrom"],
            "tempo": lambda: values["tempo"]["extraEnvFrom"], "pyroscope": lambda: values["pyroscope"]["extraEnvFrom"]}[cid]()


def _retention(values: dict, cid: str) -> str:
    return {"mimir": lambda: values["mimir"]["structuredConfig"]["limits"]["compactor_blocks_retention_period"],
            "loki": lambda: values["loki"]["limits_config"]["retention_period"],
            "tempo": lambda: values["tempo"]["retention"],
            "pyroscope": lambda: values["pyroscope"]["structuredConfig"]["limits"]["compactor_blocks_retention_period"]}[cid]()


def _secret_keys(plan, name: str, namespace: str) -> set[str]:
    keys = {k for s in plan.secrets if (s.namespace, s.name) == (namespace, name) for k in s.data}
    for comp in plan.components.values():
        for g in comp.generated_secrets:
            if (comp.namespace, g.name) == (namespace, name):
                keys |= set(g.random_keys) | set(g.fixed)
    return keys


def test_default_is_the_in_cluster_store_with_generated_keys(tmp_path):
    plan = _plan(tmp_path)
    assert plan.config.object_storage.mode == "in-cluster"
    assert "seaweedfs" in plan.components and "object-storage-external" not in plan.components
    weed = plan.components["seaweedfs"]
    assert _secret_keys(plan, "object-store", weed.namespace) == {"access_key_id", "secret_access_key"}
    assert not any(v.name.startswith("object_storage") for layer in plan.layers for v in layer.variables)
    buckets = {b["name"] for b in weed.values["s3"]["createBuckets"]}
    # Durable: retained volumes, two copies of every volume, three Raft masters.
    assert weed.values["master"]["replicas"] == 3 and weed.values["master"]["defaultReplication"] == "001"
    assert weed.values["volume"]["replicas"] >= 2
    assert {d["storageClass"] for d in weed.values["volume"]["dataDirs"]} == {"openebs-hostpath-retain"}
    for cid in CONSUMERS:
        comp = plan.components[cid]
        store = _store(comp.values, cid)
        assert store["endpoint"] == f"seaweedfs-s3.{weed.namespace}.svc:8333" and store["insecure"] is True, cid
        assert store["bucket"] in buckets, cid
        assert (store["key"], store["secret"]) == ("${access_key_id}", "${secret_access_key}"), cid
        assert _env_from(comp.values, cid) == [{"secretRef": {"name": "object-store"}}], cid
        assert comp.namespace == weed.namespace and "seaweedfs" in comp.needs, cid
    assert plan.components["mimir"].values["minio"]["enabled"] is False


def test_external_store_uses_the_config_and_sensitive_keys(tmp_path):
    plan = _plan(tmp_path, {
        "mode": "external",
        "external": {"endpoint": "s3.example.net", "region": "eu-central-1"},
        "buckets": {"metrics": "m-bucket", "logs": "l-bucket", "traces": "t-bucket", "profiles": "p-bucket"},
        "retention": {"metrics_days": 400, "logs_days": 7, "traces_days": 3, "profiles_days": 10},
    })
    assert "seaweedfs" not in plan.components and "object-storage-external" in plan.components
    ext = plan.components["object-storage-external"]
    secret = next(s for s in plan.secrets if s.name == "object-store")
    assert {k: v.name for k, v in secret.data.items()} == {
        "access_key_id": "object_storage_access_key_id", "secret_access_key": "object_storage_secret_access_key"}
    layer = next(layer for layer in plan.layers if layer.name == ext.layer)
    assert {"object_storage_access_key_id", "object_storage_secret_access_key"} <= {v.name for v in layer.variables}
    expected = {"mimir": ("m-bucket", "9600h"), "loki": ("l-bucket", "168h"), "tempo": ("t-bucket", "72h"),
                "pyroscope": ("p-bucket", "240h")}
    for cid in CONSUMERS:
        comp = plan.components[cid]
        store = _store(comp.values, cid)
        assert (store["endpoint"], store["region"], store["insecure"]) == ("s3.example.net", "eu-central-1", False), cid
        assert (store["bucket"], _retention(comp.values, cid)) == expected[cid], cid
        assert "seaweedfs" not in comp.needs, cid
    # Namespaces and layers do not move when the store changes (placement, not mode, decides them).
    (tmp_path / "default").mkdir()
    default = _plan(tmp_path / "default")
    assert [(lay.name, [n.name for n in lay.namespaces]) for lay in default.layers] == \
        [(lay.name, [n.name for n in lay.namespaces]) for lay in plan.layers]


@pytest.mark.parametrize("cid", CONSUMERS)
def test_retention_follows_the_config(tmp_path, cid):
    plan = _plan(tmp_path)
    days = getattr(plan.config.object_storage.retention, {"mimir": "metrics_days", "loki": "logs_days",
                                                          "tempo": "traces_days", "pyroscope": "profiles_days"}[cid])
    assert _retention(plan.components[cid].values, cid) == f"{days * 24}h"


def test_in_cluster_store_releases_wait_for_the_store(synth):
    releases = {res["name"]: (logical, res) for (_, logical), res in synth.all_resources("helm_release").items()}
    store = f"helm_release.{releases['seaweedfs'][0]}"
    for cid in CONSUMERS:
        assert store in releases[cid][1]["depends_on"], cid
    # The store reads its keys from the generated Secret, never from values.
    text = releases["seaweedfs"][1]["values"][0]
    assert "existingSecret: object-store" in text and "secretKey:" not in text.replace("secretKeyKey", "")


# --- database backups ---------------------------------------------------------------------------------------------


def _objects(plan, release: str) -> list[dict]:
    return [dict(o) for m in plan.manifests if m.release == release for o in m.resources]


def _secret(plan, namespace: str, name: str):
    return next(s for s in plan.secrets if (s.namespace, s.name) == (namespace, name))


@pytest.mark.parametrize("mode", ["in-cluster", "external"])
def test_each_database_backs_up_on_a_schedule_to_the_backups_bucket(tmp_path, mode):
    store = {"mode": mode} if mode == "in-cluster" else {"mode": mode, "external": {"endpoint": "s3.example.net"}}
    plan = _plan(tmp_path, store)
    bucket = plan.config.object_storage.buckets.backups
    url = "http://seaweedfs-s3.monitoring.svc:8333" if mode == "in-cluster" else "https://s3.example.net"
    expected_keys = ({"access_key_id": ("generated_in", "object-store/access_key_id"),
                      "secret_access_key": ("generated_in", "object-store/secret_access_key")} if mode == "in-cluster"
                     else {"access_key_id": ("variable", "object_storage_access_key_id"),
                           "secret_access_key": ("variable", "object_storage_secret_access_key")})

    # PostgreSQL: WAL archive and base backups, a nightly ScheduledBackup of that cluster.
    objs = _objects(plan, "flagsmith-db")
    cluster = next(o for o in objs if o["kind"] == "Cluster")
    scheduled = next(o for o in objs if o["kind"] == "ScheduledBackup")
    barman = cluster["spec"]["backup"]["barmanObjectStore"]
    assert barman["destinationPath"].startswith(f"s3://{bucket}/") and barman["endpointURL"] == url
    assert scheduled["spec"]["cluster"]["name"] == cluster["metadata"]["name"]
    assert scheduled["spec"]["method"] == "barmanObjectStore" and len(scheduled["spec"]["schedule"].split()) == 6
    assert cluster["spec"]["backup"]["retentionPolicy"] == f"{plan.config.object_storage.retention.backups_days}d"
    creds = barman["s3Credentials"]
    secret = _secret(plan, "production", creds["accessKeyId"]["name"])
    assert creds["secretAccessKey"]["name"] == secret.name
    got = {k: (secret.data[creds[f]["key"]].source, secret.data[creds[f]["key"]].name)
           for k, f in (("access_key_id", "accessKeyId"), ("secret_access_key", "secretAccessKey"))}
    assert got == expected_keys

    # MySQL: a dumpInstance profile to the bucket and a schedule that uses it; the credentials file names the keys.
    innodb = next(o for o in _objects(plan, "oncall-databases") if o["kind"] == "InnoDBCluster")
    profiles = {p["name"]: p for p in innodb["spec"]["backupProfiles"]}
    (schedule,) = innodb["spec"]["backupSchedules"]
    assert schedule["enabled"] and schedule["backupProfileName"] in profiles and len(schedule["schedule"].split()) == 5
    s3 = profiles[schedule["backupProfileName"]]["dumpInstance"]["storage"]["s3"]
    assert s3["bucketName"] == bucket and s3["endpoint"] == url
    credentials = _secret(plan, "monitoring", s3["config"]).data["credentials"]
    assert credentials.source == "format" and "aws_access_key_id" in credentials.name
    assert {(f.source, f.name) for _, f in credentials.fields} == set(expected_keys.values())

    # The layers that hold the copies declare the variables, or read the in-cluster keys from the store's stack.
    production = next(layer for layer in plan.layers if layer.name == "production")
    declared = {v.name for v in production.variables}
    if mode == "external":
        assert {"object_storage_access_key_id", "object_storage_secret_access_key"} <= declared
    else:
        assert not {v for v in declared if v.startswith("object_storage")}
        assert plan.components["seaweedfs"].layer in production.stack_needs
    if mode == "in-cluster":
        assert bucket in {b["name"] for b in plan.components["seaweedfs"].values["s3"]["createBuckets"]}


def test_the_in_cluster_keys_reach_production_as_a_sensitive_cross_stack_output(synth):
    outputs = synth.stack("observability").get("output", {})
    crossing = {k: v for k, v in outputs.items() if "seaweedfs-object-store" in k}
    assert len(crossing) == 2 and all(v.get("sensitive") for v in crossing.values())
    secret = next(r for r in synth.resources("production", "kubernetes_secret_v1").values()
                  if r["metadata"]["name"] == "flagsmith-db-backup")
    assert all("terraform_remote_state" in v for v in secret["data"].values())
    assert "observability" in synth.manifest["stacks"]["production"]["dependencies"]
