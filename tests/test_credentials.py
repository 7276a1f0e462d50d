"""No chart-default credential and no bundled development database, in the values every release is rendered with.

The scan reads what Terraform would install: each helm_release's values (YAML) and set_sensitive names in
cdktf.out, per chart. It knows, for each chart used here, the credentials the chart falls back to when nobody
sets them (read in each chart's values.yaml at the pinned version) and the databases it bundles for a quick
start. A finding is any of:
- a bundled database/broker left enabled (its `enabled` flag is true or left at a default of true);
- a part with a known default credential enabled while that credential is neither set in the values nor set as
  a sensitive value;
- a known default credential string, or an empty string, as the value of a credential key anywhere;
- a sensitive value or generated secret key whose value is a literal rather than a Terraform reference.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest
import yaml


@dataclass(frozen=True)
class DefaultCredential:
    """A chart part that ships with a default credential unless `paths` set one."""

    chart: str
    enabled: str  # value path of the part's toggle
    enabled_default: bool
    paths: tuple[str, ...]  # any of these set (in values or as a sensitive value) replaces the default
    default: str
    source: str


@dataclass(frozen=True)
class BundledDatabase:
    """A development database or broker bundled as a subchart, for a quick start only."""

    chart: str
    enabled: str
    enabled_default: bool
    what: str


# Read in each chart's values.yaml at the version pinned in config/catalog/.
DEFAULT_CREDENTIALS = (
    DefaultCredential("mimir-distributed", "minio.enabled", True, ("minio.rootPassword", "minio.existingSecret"),
                      "supersecret", "mimir-distributed 6.0.6 values.yaml minio.rootUser/rootPassword "
                      "(grafana-mimir/supersecret), templated into Mimir's config too"),
    DefaultCredential("loki", "minio.enabled", False, ("minio.rootPassword", "minio.existingSecret"),
                      "supersecretpassword", "loki 18.11.0 values.yaml minio.rootPassword and users[0].secretKey"),
    DefaultCredential("pyroscope", "minio.enabled", False, ("minio.rootPassword", "minio.existingSecret"),
                      "supersecret", "pyroscope 2.2.1 values.yaml minio.rootUser/rootPassword "
                      "(grafana-pyroscope/supersecret)"),
    DefaultCredential("flagsmith", "devPostgresql.enabled", True, ("devPostgresql.auth.postgresPassword",),
                      "flagsmith", "flagsmith 0.81.0 values.yaml devPostgresql.auth.postgresPassword"),
)

BUNDLED_DATABASES = (
    BundledDatabase("flagsmith", "devPostgresql.enabled", True, "Bitnami PostgreSQL (bitnamilegacy image)"),
    BundledDatabase("flagsmith", "pgbouncer.enabled", False, "Bitnami PgBouncer"),
    BundledDatabase("oncall", "mariadb.enabled", True, "Bitnami MariaDB"),
    BundledDatabase("oncall", "postgresql.enabled", False, "Bitnami PostgreSQL"),
    BundledDatabase("oncall", "rabbitmq.enabled", True, "Bitnami RabbitMQ"),
    BundledDatabase("oncall", "redis.enabled", True, "Bitnami Redis"),
    BundledDatabase("mimir-distributed", "kafka.enabled", True, "single demo Kafka broker (ingest storage)"),
    BundledDatabase("loki", "minio.enabled", False, "MinIO"),
    BundledDatabase("pyroscope", "minio.enabled", False, "MinIO"),
)

# Strings charts (and their READMEs) use as credentials; never acceptable as one.
KNOWN_DEFAULTS = {
    "supersecret", "supersecretpassword", "prom-operator", "flagsmith", "admin", "password", "changeme",
    "secret", "root", "guest", "bitnami", "oncall", "grafana-mimir", "minio123", "minioadmin",
}
# Keys whose value is a credential itself (not the name of a Secret or of a key in one).
CREDENTIAL_KEY = re.compile(
    r"(?i)^(password|.*[-_]password|.*Password|passwd|rootpassword|secret_access_key|secretAccessKey|secretKey|"
    r"access_key_id|accessKeyId|accessKey|token|authToken|.*_token|apiKey|api_key)$"
)
TERRAFORM_REF = re.compile(r"^\$\{[a-z_]+\.[^}]+\}$")


def _get(values: dict[str, Any], path: str) -> Any:
    node: Any = values
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _walk(node: Any, path: str = ""):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{path}[{i}]")
    else:
        yield path, node


def scan(chart: str, values: dict[str, Any], sensitive: set[str] = frozenset()) -> list[str]:
    """Findings for one release of `chart` rendered with `values` and sensitive `set`s named `sensitive`."""
    found: list[str] = []

    def enabled(path: str, default: bool) -> bool:
        value = _get(values, path)
        return default if value is None else bool(value)

    for db in BUNDLED_DATABASES:
        if db.chart == chart and enabled(db.enabled, db.enabled_default):
            found.append(f"bundled {db.what} ({db.enabled})")
    for cred in DEFAULT_CREDENTIALS:
        if cred.chart != chart or not enabled(cred.enabled, cred.enabled_default):
            continue
        set_here = [p for p in cred.paths if p in sensitive or _get(values, p) not in (None, "", cred.default)]
        if not set_here:
            found.append(f"default credential {cred.default!r} ({cred.source})")
    for path, value in _walk(values):
        key = re.split(r"[.\[]", path)[-1]
        if not CREDENTIAL_KEY.match(key) or not isinstance(value, str):
            continue
        if value == "":
            found.append(f"{path}: empty credential")
        elif value.lower() in KNOWN_DEFAULTS:
            found.append(f"{path}: known default credential {value!r}")
    return found


def _rendered(synth):
    for (stack, logical), res in sorted(synth.all_resources("helm_release").items()):
        values: dict[str, Any] = {}
        for text in res.get("values") or []:
            values.update(yaml.safe_load(text) or {})
        sensitive = {s["name"] for s in res.get("set_sensitive") or []}
        yield f"{stack}/{res['namespace']}/{res['name']}", res["chart"], values, sensitive, res


# --- the scanner finds what it must (today's values on main, 2026-12, before this change) ------------------------

TODAY = {
    "mimir-distributed": {"kafka": {"enabled": False}, "minio": {"enabled": True, "persistence": {"size": "100Gi"}}},
    "flagsmith": {"devPostgresql": {"enabled": True, "storage": "10Gi"}, "influxdb2": {"enabled": False}},
    "oncall": {
        "database": {"type": "mysql"},
        "mariadb": {"enabled": True, "image": {"repository": "bitnamilegacy/mariadb"}},
        "rabbitmq": {"enabled": True, "image": {"repository": "bitnamilegacy/rabbitmq"}},
        "redis": {"enabled": True, "image": {"repository": "bitnamilegacy/redis"}},
        "broker": {"type": "rabbitmq"},
    },
}


@pytest.mark.parametrize("chart", sorted(TODAY))
def test_scan_fails_on_the_values_before_operator_databases(chart):
    assert scan(chart, TODAY[chart]), chart


def test_scan_names_each_kind_of_finding():
    assert any("supersecret" in f for f in scan("mimir-distributed", TODAY["mimir-distributed"]))
    assert len(scan("oncall", TODAY["oncall"])) == 3  # MariaDB, RabbitMQ, Redis
    assert any("'flagsmith'" in f for f in scan("flagsmith", TODAY["flagsmith"]))
    # A sensitive set of the password is enough; a literal default or an empty string is not.
    fixed = {"kafka": {"enabled": False}, "minio": {"enabled": True}}
    assert scan("mimir-distributed", fixed, {"minio.rootPassword"}) == []
    assert scan("mimir-distributed", {"kafka": {"enabled": False}, "minio": {"rootPassword": "supersecret"}})
    assert scan("grafana", {"adminPassword": ""}) == ["adminPassword: empty credential"]
    assert scan("anything", {"auth": {"password": "changeme"}}) == ["auth.password: known default credential 'changeme'"]
    # The name of a key in a Secret is a reference, not a credential.
    assert scan("oncall", {"mariadb": {"enabled": False}, "rabbitmq": {"enabled": False}, "redis": {"enabled": False},
                           "oncall": {"secrets": {"secretKey": "secret-key"}}}) == []


# --- the shipped platform ---------------------------------------------------------------------------------------


def test_no_release_uses_a_default_credential_or_a_bundled_database(synth):
    findings = {}
    charts = set()
    for where, chart, values, sensitive, _ in _rendered(synth):
        charts.add(chart)
        if found := scan(chart, values, sensitive):
            findings[where] = found
    assert not findings
    # The rules cover the charts that bundle databases or ship credentials, and those charts are in use.
    assert {"mimir-distributed", "flagsmith", "oncall", "loki", "pyroscope"} <= charts


def test_sensitive_values_and_generated_secrets_are_references_never_literals(synth):
    checked = 0
    for where, _, _, _, res in _rendered(synth):
        for item in res.get("set_sensitive") or []:
            assert TERRAFORM_REF.match(item["value"]), (where, item["name"])
            checked += 1
    literal_ok = {"admin-user", "rootUser", "rootHost", "username", "root-user"}
    for (stack, logical), secret in synth.all_resources("kubernetes_secret_v1").items():
        for key, value in (secret.get("data") or {}).items():
            if key in literal_ok:
                assert not TERRAFORM_REF.match(value) and value.lower() not in {"supersecret"}, (stack, logical, key)
            elif not TERRAFORM_REF.match(value):
                # A file built around references (an AWS credentials file): only references carry secret text.
                rest = re.sub(r"\$\{[^}]+\}", "", value)
                assert rest != value and not re.search(r"[A-Za-z0-9]{12,}", rest), (stack, logical, key)
            else:
                checked += 1
    assert checked >= 1  # the generated passwords, the tunnel token, the Cloudflare and age keys
