"""The checks, one named class each. A rule reads the rendered platform (Context) and yields Findings."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from tools.verify import kube
from tools.verify.charts import ChartInfo, ChartStore
from tools.verify.plan import PLACEHOLDER, Platform, Release, deep_merge, user_values
from tools.verify.render import Obj, Rendered


@dataclass(frozen=True)
class Finding:
    rule: str
    stack: str
    release: str
    object: str
    message: str

    def as_dict(self) -> dict:
        return {"rule": self.rule, "stack": self.stack, "release": self.release, "object": self.object,
                "message": self.message}


def finding(rule: str, release: Release, obj: str, message: str) -> Finding:
    return Finding(rule, release.stack, release.name, obj, message)


SYSTEM_NAMESPACES = {"default", "kube-system", "kube-public", "kube-node-lease"}
BUILTIN_SERVICES = {("default", "kubernetes"): {443}}


@dataclass
class Context:
    platform: Platform
    results: dict[str, Rendered]
    kube_version: str
    schemas: kube.BuiltinSchemas
    store: ChartStore | None = None
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.releases = {r.id: r for r in self.platform.releases}
        self.predecessors = {r.id: self.platform.predecessors(r) for r in self.platform.releases}
        self.crds: dict[tuple[str, str], list[tuple[Obj, dict]]] = {}
        for obj in self.all_objects(namespaced_only=False):
            if obj.kind == "CustomResourceDefinition":
                spec = obj.doc.get("spec") or {}
                key = (str(spec.get("group", "")), str((spec.get("names") or {}).get("kind", "")))
                self.crds.setdefault(key, []).append((obj, spec))
        self.namespace_of: dict[int, str | None] = {}
        for obj in self.all_objects(namespaced_only=False):
            self.namespace_of[id(obj)] = None if self.cluster_scoped(obj) else (obj.explicit_namespace or obj.release.namespace)
        self.services: dict[tuple[str, str], dict] = {}
        self.provided: set[tuple[str, str, str]] = set(self.platform.tf_objects)
        # Releases that did not render: what they would create is unknown, so an absence is not a finding.
        self.unrendered = [r for r in self.platform.releases if self.results[r.id].error is not None]
        self.unrendered_namespaces = {r.namespace for r in self.unrendered}
        self.unproven: list[str] = []
        self.storage_classes: dict[str, bool] = {}
        self.namespaces = set(SYSTEM_NAMESPACES) | set(self.platform.namespaces) | {
            r.namespace for r in self.platform.releases}
        for obj in self.all_objects(namespaced_only=False):
            ns = self.ns(obj)
            if obj.kind == "Service" and obj.api_version == "v1":
                self.services[(ns or "", obj.name)] = obj.doc.get("spec") or {}
            elif obj.kind in ("Secret", "ConfigMap") and obj.api_version == "v1":
                self.provided.add((obj.kind, ns or "", obj.name))
            elif obj.kind == "Certificate" and obj.group == "cert-manager.io":
                secret = (obj.doc.get("spec") or {}).get("secretName")
                if secret:
                    self.provided.add(("Secret", ns or "", str(secret)))
            elif obj.kind == "Cluster" and obj.group == "postgresql.cnpg.io":
                # CloudNativePG writes <cluster>-app (the owner's credentials) unless bootstrap names a Secret of
                # the user's, and <cluster>-superuser with enableSuperuserAccess unless superuserSecret names one.
                spec = obj.doc.get("spec") or {}
                boot = spec.get("bootstrap") or {}
                if not any(((boot.get(m) or {}).get("secret") or {}).get("name")
                           for m in ("recovery", "pg_basebackup", "initdb")):
                    self.provided.add(("Secret", ns or "", f"{obj.name}-app"))
                if spec.get("enableSuperuserAccess") is True and not (spec.get("superuserSecret") or {}).get("name"):
                    self.provided.add(("Secret", ns or "", f"{obj.name}-superuser"))
            elif obj.kind == "StorageClass":
                ann = (obj.doc.get("metadata") or {}).get("annotations") or {}
                self.storage_classes[obj.name] = str(ann.get("storageclass.kubernetes.io/is-default-class")) == "true"
            elif obj.kind == "Namespace" and obj.api_version == "v1":
                self.namespaces.add(obj.name)
        # Kubernetes itself publishes the cluster CA as ConfigMap kube-root-ca.crt in every namespace.
        self.provided |= {("ConfigMap", ns, "kube-root-ca.crt") for ns in self.namespaces}

    def absent(self, namespace: str | None, what: str, name: str | None = None) -> bool:
        """True if `what` (an object called `name`) is missing for certain; False (and counted) when a release that
        did not render would create it: one in that namespace (any, for a cluster-scoped object) whose release or
        chart name begins the object's name, or whose values name it (a fullnameOverride, an existingSecret)."""
        candidates = [r for r in self.unrendered if namespace is None or r.namespace == namespace]
        if name is not None:
            candidates = [r for r in candidates if could_create(r, name)]
        if candidates:
            self.unproven.append(what)
            return False
        return True

    def all_objects(self, namespaced_only: bool = False) -> Iterator[Obj]:
        for release in self.platform.releases:
            res = self.results.get(release.id)
            if res is not None:
                yield from res.objects

    def cluster_scoped(self, obj: Obj) -> bool:
        if obj.kind in kube.CLUSTER_SCOPED and (obj.group == "" or obj.group.endswith("k8s.io")):
            return True
        crds = self.crds.get((obj.group, obj.kind))
        return bool(crds) and crds is not None and crds[0][1].get("scope") == "Cluster"

    def ns(self, obj: Obj) -> str | None:
        return self.namespace_of.get(id(obj))

    def is_builtin(self, obj: Obj) -> bool:
        return self.schemas.validator(obj.api_version, obj.kind) is not None


def could_create(release, name: str) -> bool:
    """Whether `release` (which did not render) would plausibly create an object called `name`."""
    for prefix in {release.name, release.chart}:
        if name == prefix or name.startswith(prefix + "-"):
            return True
    return any(re.search(rf"(?<![\w.-]){re.escape(name)}(?![\w-])", text) for text in release.values)


class Rule:
    name = ""
    description = ""

    def check(self, ctx: Context) -> Iterable[Finding]:
        raise NotImplementedError


class RenderRule(Rule):
    """The chart must be obtainable and render: template errors, the chart's kubeVersion constraint, and its
    values.schema.json (Helm checks the last two itself) are reported with Helm's own message."""

    name = "render"

    def check(self, ctx: Context) -> Iterable[Finding]:
        for release in ctx.platform.releases:
            res = ctx.results[release.id]
            if res.error is None:
                continue
            if res.missing_chart:
                yield finding(self.name, release, "chart", res.error)
                continue
            for ref in res.unresolved_refs:   # one line each, never helm's "failing loading" over the network
                yield finding(self.name, release, f"chart {release.chart} {release.version}",
                              f"not rendered: {ref}")
            if res.unresolved_refs:
                continue
            msg = res.error.removeprefix("Error: ")
            if "incompatible with Kubernetes" in msg:
                msg = f"the chart's kubeVersion excludes Kubernetes {ctx.kube_version}: {msg}"
            elif "values don't meet the specifications of the schema" in msg:
                msg = f"values.schema.json rejects the values: {msg}"
            yield finding(self.name, release, f"chart {release.chart} {release.version}", msg)


# -- unknown-value --------------------------------------------------------------------------------------------
REF = re.compile(r"\$?\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)")
INDEX_REF = re.compile(r"index\s+\(?\s*\$?\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)*)\s*\)?((?:\s+\"[^\"]+\")+)")
# A subtree handed on whole. As data (serialized, merged, ranged over): its keys are whatever the consumer takes.
# To code (with, include, a variable, dict): the code reads keys of its own, which the defaults document.
DATA_BEFORE = re.compile(r"\b(?:toYaml|toJson|toPrettyJson|toRawJson|tpl|merge|mergeOverwrite|deepCopy|coalesce|range|"
                         r"keys|pick|omit)\b[^}]*$")
CODE_BEFORE = re.compile(r"(?:\b(?:with|include|dict|list|set|hasKey)\b|:=|\s=\s)[^}]*$")
TPL_REF = re.compile(r"\btpl\s+\(?\s*\$?\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)")
DATA_AFTER = re.compile(r"^\s*\)?\s*\|\s*(?:toYaml|toJson|toPrettyJson|toRawJson|deepCopy|keys)\b")


class _Oracle:
    """What one chart level knows of its values (see UnknownValueRule)."""

    _MISSING = object()

    def __init__(self, chart: ChartInfo):
        self.chart = chart
        text = "\n".join(chart.templates.values())
        # A default string the templates pass to `tpl` is template code too (tempo's `config` renders
        # `toYaml .Values.tempo.storage`): what it reads counts as read.
        for dotted in sorted({m.group(1).strip(".") for m in TPL_REF.finditer(text)}):
            code_in_values = _lookup(chart.defaults, dotted)
            if isinstance(code_in_values, str) and "{{" in code_in_values:
                text += "\n" + code_in_values
        refs: set[tuple[str, ...]] = set()
        data: set[tuple[str, ...]] = set()
        code: set[tuple[str, ...]] = set()
        for regex, key in ((REF, lambda m: tuple(m.group(1).strip(".").split("."))),
                           (INDEX_REF, lambda m: tuple(p for p in m.group(1).strip(".").split(".") if p)
                            + tuple(re.findall(r"\"([^\"]+)\"", m.group(2))))):
            for m in regex.finditer(text):
                path = key(m)
                refs.add(path)
                before = text[text.rfind("{{", 0, m.start()) + 2:m.start()]
                if DATA_BEFORE.search(before) or DATA_AFTER.match(text[m.end():m.end() + 40]):
                    data.add(path)
                elif CODE_BEFORE.search(before):
                    code.add(path)
        self.refs = refs
        self.prefixes = {r[:i] for r in refs for i in range(1, len(r) + 1)}
        self.data = data
        # Used whole by code, or referenced with nothing referenced below it: free-form unless the defaults
        # document the keys (a non-empty map).
        self.whole = code | {r for r in refs if not any(len(o) > len(r) and o[:len(r)] == r for o in refs)}
        self.subcharts = {key: (cond, _Oracle(sub)) for key, cond, sub in chart.subcharts}

    def default(self, path: tuple[str, ...]) -> object:
        node: object = self.chart.defaults
        for key in path:
            if not isinstance(node, dict) or key not in node:
                return self._MISSING
            node = node[key]
        return node

    def schema_status(self, path: tuple[str, ...]) -> str | None:
        node = self.chart.schema
        if not isinstance(node, dict):
            return None
        for key in path:
            props = node.get("properties") if isinstance(node, dict) else None
            if isinstance(props, dict) and key in props:
                node = props[key]
                continue
            if isinstance(node, dict) and (isinstance(node.get("additionalProperties"), dict)
                                           or node.get("additionalProperties") is True
                                           or (node.get("type") == "object" and "properties" not in node)):
                return "free"
            return None
        return "known"

    def status(self, path: tuple[str, ...]) -> str:
        """'known', 'free' (anything goes below an ancestor) or 'unknown'."""
        if path[0] == "global":
            return "free"
        for i in range(1, len(path)):
            anc = path[:i]
            d = self.default(anc)
            if d is None or d == {} or anc in self.data or anc in self.whole and not (isinstance(d, dict) and d):
                return "free"
        if self.schema_status(path) == "free":
            return "free"
        sub = self.subcharts.get(path[0])
        if sub is not None and len(path) > 1:
            inner = sub[1].status(path[1:])
            if inner != "unknown":
                return inner
        if self.default(path) is not self._MISSING or path in self.prefixes or self.schema_status(path) == "known":
            return "known"
        if sub is not None and len(path) == 1:
            return "known"
        return "unknown"


def _lookup(tree: dict, dotted: str) -> object:
    node: object = tree
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


class UnknownValueRule(Rule):
    """Every key a release sets must be one the chart or an enabled subchart reads: present in its values.yaml,
    in its values.schema.json, or referenced by its templates (`.Values.a.b`, `index .Values "a" "b"`).

    Free-form maps are skipped, by this rule: below a key whose default is an empty map or null, below a key the
    schema leaves open (additionalProperties, or an object without properties), below a key the templates hand
    on whole as data (toYaml, toJson, tpl, range, merge, mergeOverwrite, coalesce, deepCopy, keys, pick, omit),
    below a key without a default map that the templates hand to code (with, include, dict, hasKey, a variable)
    or reference with nothing below it, and below `global`. Where the defaults document a map's keys and
    templates read it through code, a key the defaults lack is reported. Values for a subchart
    whose condition is false are reported, unless the parent chart reads them itself."""

    name = "unknown-value"

    def check(self, ctx: Context) -> Iterable[Finding]:
        for release in ctx.platform.releases:
            res = ctx.results[release.id]
            if res.chart is None:
                continue
            try:
                values = user_values(release)
            except Exception as exc:   # noqa: BLE001 (a values document that is not YAML is itself a finding)
                yield finding(self.name, release, "values", f"values are not valid YAML: {exc}")
                continue
            oracle = _Oracle(res.chart)
            merged = deep_merge(_copy(res.chart.defaults), _copy(values))  # type: ignore[arg-type]
            for path in self._unknown(oracle, values, ()):
                yield finding(self.name, release, "values", f"{'.'.join(path)}: the chart {release.chart} "
                              f"{release.version} has no such value (Helm ignores it)")
            for key, (cond, _sub) in oracle.subcharts.items():
                if not cond or not isinstance(values.get(key), dict):
                    continue
                enabled = _lookup(merged, cond)
                if enabled is False:
                    cond_key = cond.split(".", 1)[1] if cond.startswith(key + ".") else None
                    for k in values[key]:
                        if k == cond_key or (key, k) in oracle.prefixes or oracle.default((key, k)) is not oracle._MISSING:
                            continue
                        yield finding(self.name, release, "values", f"{key}.{k}: subchart {key} is disabled "
                                      f"({cond}=false), so this value has no effect")

    def _unknown(self, oracle: _Oracle, node: dict, path: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
        for key, value in node.items():
            p = path + (str(key),)
            status = oracle.status(p)
            if status == "unknown":
                yield p
            elif status == "known" and isinstance(value, dict):
                yield from self._unknown(oracle, value, p)


def _copy(tree: object) -> object:
    if isinstance(tree, dict):
        return {k: _copy(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_copy(v) for v in tree]
    return tree


# -- schema ---------------------------------------------------------------------------------------------------
def _path(parts) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(root)"


class SchemaRule(Rule):
    """Every object must be valid against the Kubernetes schema of the configured version (strict: unknown
    fields are errors), and every custom resource against the CRD the platform renders for it (unknown fields,
    which the API server would drop silently, included). An API the version does not serve is reported too."""

    name = "schema"
    MAX_ERRORS = 3

    def check(self, ctx: Context) -> Iterable[Finding]:
        crd_validators: dict[tuple[int, str], object] = {}
        for obj in ctx.all_objects():
            validator = ctx.schemas.validator(obj.api_version, obj.kind)
            if validator is not None:
                yield from self._errors(obj, validator, f"Kubernetes {ctx.schemas.version[0]}.{ctx.schemas.version[1]}")
                continue
            crds = ctx.crds.get((obj.group, obj.kind))
            if not crds:
                if obj.group == "" or "." not in obj.group or obj.group.endswith(".k8s.io"):
                    yield finding(self.name, obj.release, obj.label(), f"{obj.api_version} {obj.kind} is not served "
                                  f"by Kubernetes {ctx.kube_version} and no release renders a CRD for it")
                continue      # a custom resource without a CRD is the order rule's finding
            crd_obj, spec = crds[0]
            version = obj.api_version.rpartition("/")[2]
            entry = next((v for v in spec.get("versions") or [] if isinstance(v, dict) and v.get("name") == version), None)
            if entry is None or not entry.get("served", True):
                served = [v.get("name") for v in spec.get("versions") or [] if isinstance(v, dict) and v.get("served", True)]
                yield finding(self.name, obj.release, obj.label(), f"the CRD {crd_obj.name} (release "
                              f"{crd_obj.release.name}) does not serve {obj.api_version}; it serves {served}")
                continue
            schema = (entry.get("schema") or {}).get("openAPIV3Schema")
            if not isinstance(schema, dict):
                continue
            key = (id(crd_obj), version)
            if key not in crd_validators:
                crd_validators[key] = kube.crd_validator(schema)
            yield from self._errors(obj, crd_validators[key], f"the CRD {crd_obj.name}")

    def _errors(self, obj: Obj, validator, against: str) -> Iterator[Finding]:
        errors = sorted(validator.iter_errors(obj.doc), key=lambda e: (list(map(str, e.absolute_path)), e.message))
        for err in errors[: self.MAX_ERRORS]:
            msg = err.message if len(err.message) < 300 else err.message[:300] + "..."
            yield finding(self.name, obj.release, obj.label(), f"{_path(err.absolute_path)}: {msg} (against {against})")
        if len(errors) > self.MAX_ERRORS:
            yield finding(self.name, obj.release, obj.label(), f"and {len(errors) - self.MAX_ERRORS} more schema errors")


# -- reference ------------------------------------------------------------------------------------------------
LABEL = r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?"
SVC_DNS = re.compile(rf"(?<![-a-z0-9_])(\.)?({LABEL})\.({LABEL})\.svc(?:\.cluster\.local)?\.?(?![-a-z0-9_])(?::(\d+))?")
SHORT_URL = re.compile(rf"(?:\b([a-z][a-z0-9+]*)://)({LABEL})\.({LABEL})(?::(\d+))?(?![-a-z0-9_.])")
SHORT_HOSTPORT = re.compile(rf"(?<![-a-z0-9_./@])({LABEL})\.({LABEL}):(\d+)(?![-a-z0-9_.])")
SCHEME_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def _strings(node: object, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _strings(v, f"{path}.{k}" if path else str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _strings(v, f"{path}[{i}]")
    elif isinstance(node, str):
        yield path, node


class ReferenceRule(Rule):
    """In-cluster references must resolve to something the platform creates:
      - every Service DNS name (`name.ns.svc[.cluster.local][:port]`, and `scheme://name.ns[:port]` or
        `name.ns:port` where ns is a namespace of the platform) in any field of any object, ConfigMap and Secret
        data included, names a Service a release renders, with that port;
      - every Secret or ConfigMap a pod mounts or reads (volumes, env, envFrom, imagePullSecrets; not optional
        ones) is rendered by a release, made by Terraform, issued by a cert-manager Certificate, or written by
        CloudNativePG for a Cluster (`<cluster>-app`, `<cluster>-superuser`, as the operator names them);
      - every storageClassName names a StorageClass a release renders; a claim without one needs a default class;
      - every Service selector matches the labels of a pod template rendered in its namespace.
    Something missing that a release which did not render might create is not reported; the summary counts it.
    """

    name = "reference"

    def check(self, ctx: Context) -> Iterable[Finding]:
        for obj in ctx.all_objects():
            if obj.kind == "CustomResourceDefinition":
                continue
            yield from self._addresses(ctx, obj)
            yield from self._mounts(ctx, obj)
            yield from self._storage(ctx, obj)
        yield from self._selectors(ctx)
        if ctx.unproven:
            ctx.notes.append(f"reference: {len(set(ctx.unproven))} referenced object(s) not found but not reported, "
                             f"since {len(ctx.unrendered)} release(s) did not render and might create them: "
                             f"{', '.join(sorted(set(ctx.unproven))[:8])}{' ...' if len(set(ctx.unproven)) > 8 else ''}")

    # Service addresses
    def _texts(self, obj: Obj) -> Iterator[tuple[str, str]]:
        doc = {k: v for k, v in obj.doc.items() if k not in ("metadata", "status")}
        if obj.kind == "Secret" and isinstance(doc.get("data"), dict):
            decoded = {}
            for k, v in doc["data"].items():
                try:
                    decoded[k] = base64.b64decode(str(v), validate=True).decode("utf-8")
                except (binascii.Error, UnicodeDecodeError, ValueError):
                    continue
            doc["data"] = decoded
        yield from _strings(doc)

    def _addresses(self, ctx: Context, obj: Obj) -> Iterator[Finding]:
        seen: set[str] = set()
        for where, text in self._texts(obj):
            if ".svc" not in text and "." not in text:
                continue
            for m in SVC_DNS.finditer(text):
                pod_prefix, svc, ns, port = m.group(1), m.group(2), m.group(3), m.group(4)
                yield from self._service(ctx, obj, where, m.group(0), ns, svc, int(port) if port else None,
                                         pod_dns=bool(pod_prefix), seen=seen)
            for m in SHORT_URL.finditer(text):
                scheme, svc, ns, port = m.groups()
                if ns in ctx.namespaces and ns not in ("svc",):
                    p = int(port) if port else SCHEME_PORTS.get(scheme)
                    yield from self._service(ctx, obj, where, m.group(0), ns, svc, p, pod_dns=False, seen=seen)
            for m in SHORT_HOSTPORT.finditer(text):
                svc, ns, port = m.groups()
                if ns in ctx.namespaces:
                    yield from self._service(ctx, obj, where, m.group(0), ns, svc, int(port), pod_dns=False, seen=seen)

    def _service(self, ctx: Context, obj: Obj, where: str, text: str, ns: str, svc: str, port: int | None,
                 pod_dns: bool, seen: set[str]) -> Iterator[Finding]:
        if PLACEHOLDER in text or text in seen:
            return
        seen.add(text)
        if (ns, svc) in BUILTIN_SERVICES:
            ports = BUILTIN_SERVICES[(ns, svc)]
            if port is not None and port not in ports:
                yield finding(self.name, obj.release, obj.label(), f"{where}: {text}: Service {ns}/{svc} has no port {port}")
            return
        spec = ctx.services.get((ns, svc))
        if spec is None and ctx.absent(ns, f"Service {ns}/{svc}", svc):
            yield finding(self.name, obj.release, obj.label(), f"{where}: {text}: no release renders a Service "
                          f"{ns}/{svc}")
            return
        if spec is None or port is None or pod_dns or spec.get("type") == "ExternalName" or spec.get("clusterIP") == "None":
            return
        service_ports = {p.get("port") for p in spec.get("ports") or [] if isinstance(p, dict)}
        if port not in service_ports:
            yield finding(self.name, obj.release, obj.label(), f"{where}: {text}: Service {ns}/{svc} has no port "
                          f"{port} (its ports: {', '.join(map(str, sorted(str(p) for p in service_ports if p is not None)))})")

    # Secrets and ConfigMaps
    def _mounts(self, ctx: Context, obj: Obj) -> Iterator[Finding]:
        ns = ctx.ns(obj) or obj.release.namespace
        for path, _meta, spec in kube.pod_specs(obj.doc):
            refs: list[tuple[str, str, str]] = []
            for v in spec.get("volumes") or []:
                if not isinstance(v, dict):
                    continue
                if isinstance(v.get("secret"), dict) and not v["secret"].get("optional"):
                    refs.append(("Secret", str(v["secret"].get("secretName")), f"volume {v.get('name')}"))
                if isinstance(v.get("configMap"), dict) and not v["configMap"].get("optional"):
                    refs.append(("ConfigMap", str(v["configMap"].get("name")), f"volume {v.get('name')}"))
                for src in (v.get("projected") or {}).get("sources") or []:
                    for kind, key in (("Secret", "secret"), ("ConfigMap", "configMap")):
                        s = (src or {}).get(key)
                        if isinstance(s, dict) and not s.get("optional"):
                            refs.append((kind, str(s.get("name")), f"projected volume {v.get('name')}"))
            for where, c in kube.containers(spec):
                for e in c.get("env") or []:
                    vf = (e or {}).get("valueFrom") or {}
                    for kind, key in (("Secret", "secretKeyRef"), ("ConfigMap", "configMapKeyRef")):
                        ref = vf.get(key)
                        if isinstance(ref, dict) and not ref.get("optional"):
                            refs.append((kind, str(ref.get("name")), f"{where} env {e.get('name')}"))
                for e in c.get("envFrom") or []:
                    for kind, key in (("Secret", "secretRef"), ("ConfigMap", "configMapRef")):
                        ref = (e or {}).get(key)
                        if isinstance(ref, dict) and not ref.get("optional"):
                            refs.append((kind, str(ref.get("name")), f"{where} envFrom"))
            for s in spec.get("imagePullSecrets") or []:
                if isinstance(s, dict) and s.get("name"):
                    refs.append(("Secret", str(s["name"]), "imagePullSecrets"))
            for kind, name, where in refs:
                if PLACEHOLDER in name or (kind, ns, name) in ctx.provided or not ctx.absent(ns, f"{kind} {ns}/{name}", name):
                    continue
                yield finding(self.name, obj.release, obj.label(), f"{path} {where}: {kind} {ns}/{name} is "
                              f"neither rendered by a release nor created by Terraform")

    # Service selectors
    def _selectors(self, ctx: Context) -> Iterator[Finding]:
        labels_by_ns: dict[str | None, list[dict]] = {}
        for obj in ctx.all_objects():
            for _path, meta, _spec in kube.pod_specs(obj.doc):
                labels_by_ns.setdefault(ctx.ns(obj), []).append(meta.get("labels") or {})
        for obj in ctx.all_objects():
            if obj.kind != "Service" or obj.api_version != "v1":
                continue
            selector = (obj.doc.get("spec") or {}).get("selector")
            if not isinstance(selector, dict) or not selector:
                continue
            ns = ctx.ns(obj)
            if any(all(str(labels.get(k)) == str(v) for k, v in selector.items()) for labels in labels_by_ns.get(ns, [])):
                continue
            shown = ", ".join(f"{k}={v}" for k, v in sorted(selector.items()))
            if ctx.absent(ns, f"pods {shown} in {ns}"):
                yield finding(self.name, obj.release, obj.label(), f"spec.selector {shown}: no pod template in "
                              f"namespace {ns} has these labels, so the Service has no endpoints")

    # Storage classes
    def _storage(self, ctx: Context, obj: Obj) -> Iterator[Finding]:
        for where, value in _keyed(obj.doc, "storageClassName"):
            if isinstance(value, str) and value and PLACEHOLDER not in value and value not in ctx.storage_classes \
                    and ctx.absent(None, f"StorageClass {value}", str(value)):
                yield finding(self.name, obj.release, obj.label(), f"{where}: no release renders StorageClass {value}")
        claims: list[tuple[str, dict]] = []
        if obj.kind == "PersistentVolumeClaim":
            claims.append(("spec", obj.doc.get("spec") or {}))
        if obj.kind == "StatefulSet":
            for i, t in enumerate((obj.doc.get("spec") or {}).get("volumeClaimTemplates") or []):
                claims.append((f"spec.volumeClaimTemplates[{i}].spec", (t or {}).get("spec") or {}))
        for where, spec in claims:
            if "storageClassName" not in spec and not spec.get("volumeName") and not any(ctx.storage_classes.values()) \
                    and ctx.absent(None, "a default StorageClass"):
                yield finding(self.name, obj.release, obj.label(), f"{where}: no storageClassName and no release "
                              f"renders a default StorageClass")


def _keyed(node: object, key: str, path: str = "") -> Iterator[tuple[str, object]]:
    if isinstance(node, dict):
        for k, v in node.items():
            p = f"{path}.{k}" if path else str(k)
            if k == key:
                yield p, v
            else:
                yield from _keyed(v, key, p)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _keyed(v, key, f"{path}[{i}]")


# -- order ----------------------------------------------------------------------------------------------------
class OrderRule(Rule):
    """A custom resource must come after its CRD: the CRD is rendered by the same release (Helm installs crds/
    and CustomResourceDefinitions first) or by a release installed before it (an earlier stack, or a depends_on).
    A CRD no release renders is not reported while the release itself or one installed before it did not render
    (it might provide the CRD); a note counts it."""

    name = "order"

    def check(self, ctx: Context) -> Iterable[Finding]:
        unrendered = {r.id for r in ctx.unrendered}
        unproven: set[str] = set()
        for obj in ctx.all_objects():
            if ctx.is_builtin(obj) or obj.group == "" or "." not in obj.group:
                continue
            crds = ctx.crds.get((obj.group, obj.kind))
            if not crds:
                if obj.group.endswith(".k8s.io") and obj.group not in {"gateway.networking.k8s.io",
                                                                      "snapshot.storage.k8s.io"}:
                    continue      # a built-in API the version does not serve: the schema rule reports it
                if unrendered & (ctx.predecessors[obj.release.id] | {obj.release.id}):
                    unproven.add(f"{obj.api_version} {obj.kind}")
                    continue
                yield finding(self.name, obj.release, obj.label(), f"no release renders the CRD for "
                              f"{obj.api_version} {obj.kind}")
                continue
            owners = {crd.release.id for crd, _ in crds}
            if obj.release.id in owners or owners & ctx.predecessors[obj.release.id]:
                continue
            names = ", ".join(sorted(owners))
            yield finding(self.name, obj.release, obj.label(), f"the CRD for {obj.kind} comes from {names}, which "
                          f"is not installed before {obj.release.id}")
        if unproven:
            ctx.notes.append(f"order: no release renders the CRD for {', '.join(sorted(unproven))}, not reported, "
                             f"since a release installed before it did not render and might")


# -- conflict -------------------------------------------------------------------------------------------------
class ConflictRule(Rule):
    """No object may be rendered by two releases, nor by a release and a Terraform resource (Helm refuses to
    adopt an object another owner created, or one release takes it over from the other). A CRD two releases both
    ship in their charts' crds/ folders is no conflict (Helm creates it when missing and skips it when present,
    owned by no release), unless the two differ: then the cluster keeps whichever was installed first."""

    name = "conflict"

    def check(self, ctx: Context) -> Iterable[Finding]:
        owners: dict[tuple[str, str, str, str], Obj] = {}
        for obj in ctx.all_objects():
            key = (obj.group, obj.kind, ctx.ns(obj) or "", obj.name)
            first = owners.get(key)
            if first is None:
                owners[key] = obj
            elif first.release.id != obj.release.id:
                if first.from_crds_dir and obj.from_crds_dir and obj.kind == "CustomResourceDefinition":
                    if first.doc != obj.doc:
                        yield finding(self.name, obj.release, obj.label(), f"{obj.kind} {obj.name} differs from the "
                                      f"one in {first.release.id}'s crds/ (Helm keeps the one installed first)")
                    continue
                where = f"{key[2]}/" if key[2] else ""
                yield finding(self.name, obj.release, obj.label(), f"{obj.kind} {where}{obj.name} is also rendered "
                              f"by {first.release.id}")
            if obj.api_version == "v1" and (obj.kind, key[2], obj.name) in ctx.platform.tf_objects:
                yield finding(self.name, obj.release, obj.label(), f"{obj.kind} {key[2]}/{obj.name} is also "
                              f"created by a Terraform resource")
            if obj.kind == "Namespace" and obj.api_version == "v1" and obj.name in ctx.platform.namespaces:
                yield finding(self.name, obj.release, obj.label(), f"Namespace {obj.name} is also created by a "
                              f"Terraform resource")


# -- image ----------------------------------------------------------------------------------------------------
class ImageRule(Rule):
    """Every container image is pinned: a tag other than `latest`, or a digest. (`image: auto` in a pod that Istio's
    gateway injection template completes is the injector's to fill in.)"""

    name = "image"

    def check(self, ctx: Context) -> Iterable[Finding]:
        for obj in ctx.all_objects():
            for path, _meta, spec in kube.pod_specs(obj.doc):
                for where, c in kube.containers(spec):
                    image = str(c.get("image") or "")
                    if image == "auto" and gateway_template(_meta):
                        continue      # Istio's injector sets the proxy image of a gateway pod
                    problem = image_problem(image)
                    if problem:
                        yield finding(self.name, obj.release, obj.label(), f"{path}.{where}: {problem}")


def gateway_template(pod_meta: dict) -> bool:
    templates = str(((pod_meta or {}).get("annotations") or {}).get("inject.istio.io/templates", ""))
    return "gateway" in templates.split(",")


def image_problem(image: str) -> str | None:
    if not image.strip():
        return "no image"
    if "@" in image:
        return None if re.search(r"@sha256:[0-9a-f]{64}$", image) else f"image {image}: malformed digest"
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return f"image {image} has no tag or digest"
    tag = last.split(":", 1)[1]
    if not tag or tag == "latest":
        return f"image {image} uses a moving tag"
    return None


# -- pod-security ---------------------------------------------------------------------------------------------
class PodSecurityRule(Rule):
    """Every pod template must pass the Pod Security level its namespace enforces (the label
    pod-security.kubernetes.io/enforce the project sets; privileged where none is set), with the containers the
    Istio sidecar injector adds counted: istio-init (NET_ADMIN, NET_RAW, root) unless istio-cni runs, and
    istio-proxy (the `gateway` injection template adds neither). Injection follows the namespace label istio-injection=enabled (or istio.io/rev) and the pod's
    sidecar.istio.io/inject label or annotation; host-network pods are not injected."""

    name = "pod-security"

    def check(self, ctx: Context) -> Iterable[Finding]:
        mesh = any(o.kind == "MutatingWebhookConfiguration" and "sidecar-injector" in o.name for o in ctx.all_objects())
        cni = any(o.kind == "DaemonSet" and o.name.startswith("istio-cni") for o in ctx.all_objects())
        native = any(o.kind == "Deployment" and o.name.startswith("istiod") and
                     any(e.get("name") == "ENABLE_NATIVE_SIDECARS" and str(e.get("value")).lower() == "true"
                         for _, c in kube.containers(((o.doc.get("spec") or {}).get("template") or {}).get("spec") or {})
                         for e in c.get("env") or [] if isinstance(e, dict))
                     for o in ctx.all_objects())
        for obj in ctx.all_objects():
            ns = ctx.ns(obj) or obj.release.namespace
            labels = ctx.platform.namespaces.get(ns, {})
            level = labels.get("pod-security.kubernetes.io/enforce", "privileged")
            if level not in ("baseline", "restricted"):
                continue
            for path, meta, spec in kube.pod_specs(obj.doc):
                spec = dict(spec)
                injected = mesh and self._injected(labels, meta, spec)
                if injected and gateway_template(meta):
                    injected = False     # the gateway template only fills in the proxy container the chart renders
                if injected:
                    init, extra = kube.istio_injected(cni, native)
                    spec["initContainers"] = list(spec.get("initContainers") or []) + init
                    spec["containers"] = list(spec.get("containers") or []) + extra
                problems = kube.pod_security_violations(meta, spec, level)
                if problems:
                    note = " (istio-init and istio-proxy injected by Istio, no istio-cni)" if injected and not cni else \
                        (" (istio-proxy injected by Istio)" if injected else "")
                    yield finding(self.name, obj.release, obj.label(), f"{path} violates pod-security {level} of "
                                  f"namespace {ns}{note}: {'; '.join(problems)}")

    @staticmethod
    def _injected(ns_labels: dict, meta: dict, spec: dict) -> bool:
        if spec.get("hostNetwork"):
            return False
        pod_labels = meta.get("labels") or {}
        ann = meta.get("annotations") or {}
        explicit = pod_labels.get("sidecar.istio.io/inject", ann.get("sidecar.istio.io/inject"))
        if explicit is not None:
            return str(explicit).lower() == "true"
        return ns_labels.get("istio-injection") == "enabled" or "istio.io/rev" in ns_labels


# -- published ------------------------------------------------------------------------------------------------
class PublishedRule(Rule):
    """The pinned version must be in the chart repository's index (a tag in the source repository is not a
    release). Where no index can be read (an air-gapped HELIX_CHARTS folder without index.yaml) the summary
    says which releases were not checked."""

    name = "published"

    def check(self, ctx: Context) -> Iterable[Finding]:
        if ctx.store is None:
            return
        unchecked: list[str] = []
        cannot_tell: list[str] = []
        for release in ctx.platform.releases:
            versions, source = ctx.store.published_versions(release)
            if versions is None:
                unchecked.append(release.name)
                continue
            if release.version not in versions:
                latest = _latest(versions)
                if (latest is None or _newer(release.version, latest)) and ctx.store.index_predates(release):
                    cannot_tell.append(f"{release.name} {release.version} ({source} lists up to {latest or 'nothing'})")
                    continue
                tail = f"; the latest it lists is {latest}" if latest else "; it lists no version of this chart"
                yield finding(self.name, release, f"chart {release.chart} {release.version}",
                              f"version {release.version} is not in the repository index ({source}){tail}")
        if unchecked:
            ctx.notes.append(f"published: no repository index for {len(unchecked)} release(s), not checked: "
                             f"{', '.join(unchecked)}")
        if cannot_tell:
            ctx.notes.append(f"published: cannot tell for {len(cannot_tell)} release(s), the index copy predates the "
                             f"pinned version (refresh it with `task charts`): {', '.join(cannot_tell)}")


def _version_key(v: str):
    nums = re.findall(r"\d+", v.split("-")[0])
    return [int(n) for n in nums], "-" not in v


def _latest(versions: set[str]) -> str | None:
    stable = [v for v in versions if v]
    return max(stable, key=_version_key) if stable else None


def _newer(version: str, than: str) -> bool:
    return _version_key(version) > _version_key(than)


RULES: list[type[Rule]] = [RenderRule, UnknownValueRule, SchemaRule, ReferenceRule, OrderRule, ConflictRule,
                           ImageRule, PodSecurityRule, PublishedRule]
RULE_NAMES = [r.name for r in RULES]
