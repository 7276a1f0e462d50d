"""Stateful services survive a drain of any one node: at least two replicas on different nodes, a disruption
budget that lets only one go, and requests and limits so the scheduler places them where they fit."""

from __future__ import annotations

import pytest


def _objects(plan, release: str) -> dict[str, dict]:
    return {o["kind"]: dict(o) for m in plan.manifests if m.release == release for o in m.resources}


def _sized(resources: dict) -> bool:
    return bool(resources.get("requests", {}).get("cpu") and resources.get("requests", {}).get("memory")
                and resources.get("limits", {}).get("memory"))


def test_postgres_for_flagsmith(plan):
    spec = _objects(plan, "flagsmith-db")["Cluster"]["spec"]
    assert spec["instances"] >= 3 and spec["enablePDB"] is True  # CNPG: switchover before a drain, one at a time
    assert spec["affinity"] == {"enablePodAntiAffinity": True, "podAntiAffinityType": "required",
                                "topologyKey": "kubernetes.io/hostname"}
    assert _sized(spec["resources"]) and spec["storage"]["storageClass"] == "openebs-hostpath-retain"


def test_mysql_and_redis_for_oncall(plan):
    objs = _objects(plan, "oncall-databases")
    mysql = objs["InnoDBCluster"]["spec"]
    assert mysql["instances"] >= 3 and mysql["router"]["instances"] >= 2  # operator PDB: maxUnavailable 1
    anti = mysql["podSpec"]["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert anti[0]["topologyKey"] == "kubernetes.io/hostname"
    assert anti[0]["labelSelector"]["matchLabels"]["mysql.oracle.com/cluster"] == objs["InnoDBCluster"]["metadata"]["name"]
    assert all(_sized(c["resources"]) for c in mysql["podSpec"]["containers"] + mysql["router"]["podSpec"]["containers"])
    assert mysql["datadirVolumeClaimTemplate"]["storageClassName"] == "openebs-hostpath-retain"
    redis = objs["RedisReplication"]["spec"]
    assert redis["clusterSize"] >= 3 and redis["sentinel"]["size"] >= 3
    assert redis["pdb"] == {"enabled": True, "maxUnavailable": 1}
    anti = redis["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert anti[0]["labelSelector"]["matchLabels"]["app"] == objs["RedisReplication"]["metadata"]["name"]
    assert _sized(redis["kubernetesConfig"]["resources"]) and _sized(redis["sentinel"]["resources"])


def test_object_store(plan):
    values = plan.components["seaweedfs"].values
    pdbs = {o["metadata"]["name"]: o for m in plan.manifests if m.component == "seaweedfs" for o in m.resources}
    for part in ("master", "volume", "s3"):
        assert values[part]["replicas"] >= 2, part
        assert _sized(values[part]["resources"]), part
        pdb = pdbs[f"seaweedfs-{part}"]
        assert pdb["spec"]["maxUnavailable"] == 1 and pdb["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == part
    assert _sized(values["filer"]["resources"])


@pytest.mark.parametrize("cid,path", [
    ("loki", "singleBinary"), ("tempo", "tempo"), ("pyroscope", "pyroscope"), ("mimir", "ingester"),
    ("mimir", "store_gateway"), ("mimir", "compactor"),
])
def test_monitoring_state_is_sized(plan, cid, path):
    assert _sized(plan.components[cid].values[path]["resources"]), (cid, path)


def test_loki_replicates_across_nodes(plan):
    values = plan.components["loki"].values
    assert values["singleBinary"]["replicas"] == 3 and values["loki"]["commonConfig"]["replication_factor"] == 3
    assert values["singleBinary"]["podDisruptionBudget"] == {"enabled": True, "maxUnavailable": 1}
    assert values["loki"]["storage"]["type"] == "s3"  # more than one replica needs the object store
