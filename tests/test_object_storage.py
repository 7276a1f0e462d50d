"""The object store setting (helix.yaml object_storage): Mimir, Loki, Tempo and Pyroscope keep their data where
it says, with the retention it says, reading the keys from the one Secret that the chosen store provides."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from planner.load import load_plan
from tests.conftest import ROOT

CONSUMERS = ("mimir", "loki", "tempo", "pyroscope")


def _plan(tmp_path: Path, object_storage: dict | None = None):
    cfg = yaml.safe_load((ROOT / "config" / "helix.yaml").read_text())
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
