"""Kubernetes facts the rules need: the API schemas of the configured version (from the kubernetes-validate
package, offline), schemas of custom resources from their CRDs, pod templates, and the Pod Security Standards."""

from __future__ import annotations

import copy
import json
import re
import threading
from pathlib import Path

import jsonschema
from referencing import Registry, Resource

CLUSTER_SCOPED = {
    "APIService", "CertificateSigningRequest", "ClusterRole", "ClusterRoleBinding", "ComponentStatus",
    "CSIDriver", "CSINode", "CustomResourceDefinition", "FlowSchema", "IngressClass", "MutatingWebhookConfiguration",
    "Namespace", "Node", "PersistentVolume", "PriorityClass", "PriorityLevelConfiguration", "RuntimeClass",
    "StorageClass", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding", "ValidatingWebhookConfiguration",
    "VolumeAttachment",
}


def schema_root() -> Path:
    import kubernetes_validate  # noqa: PLC0415 (a dev-package; imported when schemas are first needed)
    return Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"


def minor(version: str) -> tuple[int, int]:
    m = re.match(r"v?(\d+)\.(\d+)", version or "")
    if not m:
        raise ValueError(f"not a Kubernetes version: {version!r}")
    return int(m.group(1)), int(m.group(2))


class BuiltinSchemas:
    """Strict schemas (unknown fields are errors) of one Kubernetes minor version."""

    def __init__(self, kube_version: str):
        want = minor(kube_version)
        dirs = {}
        for d in schema_root().iterdir():
            m = re.match(r"v(\d+)\.(\d+)\.\d+-local-strict$", d.name)
            if m:
                dirs[(int(m.group(1)), int(m.group(2)))] = d
        usable = [v for v in dirs if v <= want]
        if not usable:
            raise ValueError(f"kubernetes-validate has no schemas for Kubernetes {kube_version}")
        self.version = max(usable)
        self.exact = self.version == want
        self.dir = dirs[self.version]
        defs = json.loads((self.dir / "_definitions.json").read_text())
        self._registry = Resource.from_contents(defs) @ Registry()
        self._validators: dict[str, jsonschema.protocols.Validator | None] = {}
        self._lock = threading.Lock()

    def validator(self, api_version: str, kind: str):
        api = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
        fname = f"{kind.lower()}-{api}.json"
        with self._lock:
            if fname not in self._validators:
                path = self.dir / fname
                if path.is_file():
                    schema = json.loads(path.read_text())
                    registry = Resource.from_contents(schema) @ self._registry
                    self._validators[fname] = jsonschema.Draft202012Validator(schema, registry=registry)
                else:
                    self._validators[fname] = None
            return self._validators[fname]


def crd_validator(version_schema: dict):
    """A validator for one CRD version's openAPIV3Schema: structural, with unknown fields reported (the API server
    would prune them silently), int-or-string and nullable understood, formats not checked."""
    schema: dict = _structural(copy.deepcopy(version_schema))  # type: ignore[assignment]
    for key in ("apiVersion", "kind", "metadata"):
        (schema.setdefault("properties", {})).setdefault(key, {})
    schema.get("properties", {})["metadata"] = {}
    return jsonschema.Draft7Validator(schema)


def _structural(node: object) -> object:
    if isinstance(node, list):
        return [_structural(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _structural(v) for k, v in node.items()}
    if out.pop("x-kubernetes-int-or-string", False):
        out.pop("type", None)
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if out.pop("nullable", False) and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    preserve = out.pop("x-kubernetes-preserve-unknown-fields", False)
    for k in [k for k in out if k.startswith("x-kubernetes-")]:
        out.pop(k)
    out.pop("format", None)
    if out.get("type") == "object" and "properties" in out and "additionalProperties" not in out and not preserve:
        out["additionalProperties"] = False
    return out


# -- pod templates --------------------------------------------------------------------------------------------
def pod_specs(doc: dict) -> list[tuple[str, dict, dict]]:
    """(path, pod metadata, pod spec) of every pod an object creates."""
    kind = doc.get("kind")
    spec = doc.get("spec") or {}
    if not isinstance(spec, dict):
        return []
    if kind == "Pod":
        return [("spec", doc.get("metadata") or {}, spec)]
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "ReplicationController"):
        tpl = spec.get("template") or {}
        return [("spec.template.spec", tpl.get("metadata") or {}, tpl.get("spec") or {})]
    if kind == "CronJob":
        tpl = ((spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}
        return [("spec.jobTemplate.spec.template.spec", tpl.get("metadata") or {}, tpl.get("spec") or {})]
    return []


def containers(spec: dict) -> list[tuple[str, dict]]:
    out = []
    for field in ("initContainers", "containers", "ephemeralContainers"):
        for i, c in enumerate(spec.get(field) or []):
            if isinstance(c, dict):
                out.append((f"{field}[{c.get('name', i)}]", c))
    return out


# -- Pod Security Standards (v1.29 and later; https://kubernetes.io/docs/concepts/security/pod-security-standards/)
BASELINE_CAPS = {"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
                 "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"}
SAFE_SYSCTLS = {"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
                "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
                "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
                "net.ipv4.tcp_keepalive_probes"}
RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                      "projected", "secret"}
LEVELS = ("privileged", "baseline", "restricted")


def pod_security_violations(meta: dict, spec: dict, level: str) -> list[str]:
    if level not in ("baseline", "restricted"):
        return []
    problems: list[str] = []
    ann = meta.get("annotations") or {}
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field):
            problems.append(f"{field}=true")
    if (spec.get("securityContext") or {}).get("windowsOptions", {}).get("hostProcess"):
        problems.append("hostProcess")
    for v in spec.get("volumes") or []:
        if isinstance(v, dict) and "hostPath" in v:
            problems.append(f"hostPath volume {v.get('name')}")
    pod_sc = spec.get("securityContext") or {}
    for sysctl in pod_sc.get("sysctls") or []:
        if isinstance(sysctl, dict) and sysctl.get("name") not in SAFE_SYSCTLS:
            problems.append(f"sysctl {sysctl.get('name')}")
    if (pod_sc.get("seccompProfile") or {}).get("type") == "Unconfined":
        problems.append("pod seccompProfile Unconfined")
    for key, value in ann.items():
        if key.startswith("container.apparmor.security.beta.kubernetes.io/") and value not in ("runtime/default",) \
                and not str(value).startswith("localhost/"):
            problems.append(f"AppArmor {value}")
    for where, c in containers(spec):
        sc = c.get("securityContext") or {}
        if sc.get("privileged"):
            problems.append(f"{where}: privileged")
        added = set((sc.get("capabilities") or {}).get("add") or [])
        extra = sorted(a for a in added if str(a).upper().removeprefix("CAP_") not in BASELINE_CAPS)
        if extra:
            problems.append(f"{where}: capabilities {','.join(map(str, extra))}")
        for p in c.get("ports") or []:
            if isinstance(p, dict) and p.get("hostPort"):
                problems.append(f"{where}: hostPort {p['hostPort']}")
        if sc.get("procMount") not in (None, "Default"):
            problems.append(f"{where}: procMount {sc['procMount']}")
        if (sc.get("seccompProfile") or {}).get("type") == "Unconfined":
            problems.append(f"{where}: seccompProfile Unconfined")
    if level == "restricted":
        for v in spec.get("volumes") or []:
            if isinstance(v, dict):
                kinds = set(v) - {"name"}
                if kinds and not kinds <= RESTRICTED_VOLUMES:
                    problems.append(f"volume {v.get('name')} of type {','.join(sorted(kinds - RESTRICTED_VOLUMES))}")
        pod_nonroot = pod_sc.get("runAsNonRoot")
        pod_seccomp = (pod_sc.get("seccompProfile") or {}).get("type")
        if pod_sc.get("runAsUser") == 0:
            problems.append("pod runAsUser=0")
        for where, c in containers(spec):
            sc = c.get("securityContext") or {}
            if sc.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where}: allowPrivilegeEscalation != false")
            if not (sc.get("runAsNonRoot") if "runAsNonRoot" in sc else pod_nonroot):
                problems.append(f"{where}: runAsNonRoot != true")
            if sc.get("runAsUser") == 0:
                problems.append(f"{where}: runAsUser=0")
            seccomp = (sc.get("seccompProfile") or {}).get("type") or pod_seccomp
            if seccomp not in ("RuntimeDefault", "Localhost"):
                problems.append(f"{where}: seccompProfile not RuntimeDefault/Localhost")
            caps = sc.get("capabilities") or {}
            if "ALL" not in (caps.get("drop") or []):
                problems.append(f"{where}: capabilities do not drop ALL")
            extra = sorted(a for a in caps.get("add") or [] if a != "NET_BIND_SERVICE")
            if extra:
                problems.append(f"{where}: adds capabilities {','.join(map(str, extra))}")
    return list(dict.fromkeys(problems))


# The containers Istio's sidecar injector adds (istio 1.2x injection template, values at their defaults).
def istio_injected(cni: bool, native_sidecars: bool) -> tuple[list[dict], list[dict]]:
    proxy = {
        "name": "istio-proxy", "image": "istio/proxyv2",
        "securityContext": {"allowPrivilegeEscalation": False, "privileged": False, "readOnlyRootFilesystem": True,
                            "runAsNonRoot": True, "runAsUser": 1337, "runAsGroup": 1337,
                            "capabilities": {"drop": ["ALL"]}},
    }
    init: list[dict] = []
    if not cni:
        init.append({
            "name": "istio-init", "image": "istio/proxyv2",
            "securityContext": {"allowPrivilegeEscalation": False, "privileged": False, "readOnlyRootFilesystem": False,
                                "runAsNonRoot": False, "runAsUser": 0, "runAsGroup": 0,
                                "capabilities": {"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]}},
        })
    if native_sidecars:
        init.append(dict(proxy, restartPolicy="Always"))
        return init, []
    return init, [proxy]
