"""A corpus of malformed and hostile cluster files (issue 22), each refused the way a user must see it.

Every case starts from the frozen description config (tests/fixtures/description/helix.yaml), breaks it one way,
and goes through the app's entry point, stacks.app.main(), in this process: exit 2, one `error: <file>: <field
path>: ...` line per problem, the expected field path and message fragment, no traceback, and a previous output
folder and the local state folder left byte-identical (tests/test_config_fixtures.py: assert_refused).
"""

from __future__ import annotations

import copy
import hashlib
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import yaml

from tests.conftest import DESCRIPTION_CONFIG
from tests.helpers import ROOT, assert_refused, main_in_process

BASE_TEXT = DESCRIPTION_CONFIG.read_text()
BASE: dict[str, Any] = yaml.safe_load(BASE_TEXT)
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[], str | bytes]
    field: str  # the field path the problem names ("" for a whole-file problem)
    fragment: str


def edit(change: Callable[[dict[str, Any]], None]) -> Callable[[], str]:
    """The description config with one change, dumped as YAML (strings quoted where YAML needs it)."""

    def make() -> str:
        data = copy.deepcopy(BASE)
        change(data)
        return yaml.safe_dump(data, sort_keys=False)

    return make


def text(old: str, new: str) -> Callable[[], str]:
    """The description config's text with one literal replacement (for what only raw YAML can say)."""

    def make() -> str:
        assert old in BASE_TEXT, old
        return BASE_TEXT.replace(old, new, 1)

    return make


def at(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """Set a dotted path (list indexes as numbers), creating mappings on the way."""

    def change(data: dict[str, Any]) -> None:
        parts = path.split(".")
        node: Any = data
        for part in parts[:-1]:
            key: Any = int(part) if part.isdigit() else part
            if isinstance(node, dict) and node.get(key) is None:
                node[key] = {}
            node = node[key]
        last = parts[-1]
        node[int(last) if last.isdigit() else last] = value

    return change


def both(*changes: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        for one in changes:
            one(data)

    return change


def existing(**fields: Any) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        cluster = data["cluster"]
        for key in ("nodes", "departed_nodes", "bootstrap_node", "api_host", "load_balancer_range"):
            cluster.pop(key, None)
        cluster["mode"] = "existing"
        cluster["existing"] = {"kubeconfig": "~/.kube/config", "context": "helix", **fields}

    return change


S3 = {"bucket": "helix-state", "key_prefix": "helix", "region": "eu-west-1"}
ETCD_S3 = {"endpoint": "minio.example.com", "bucket": "etcd-snapshots", "folder": "helix"}
GITOPS = {"url": "ssh://git@git.example.com/platform.git"}
LONG = "a" * 64

CASES = [
    # --- YAML 1.1 surprises ---
    Case("octal-api-port", text("api_port: 6443", "api_port: 06443"), "cluster.api_port", "octal number 3363"),
    Case("yes-for-a-boolean", text("ha: true ", "ha: yes "), "cluster.ha", "yes is read by YAML 1.1 as the boolean true"),
    Case("no-for-a-string", text("tunnel_name: helix", "tunnel_name: no"), "cloudflare.tunnel_name", "the boolean false"),
    Case("on-as-a-key", text("  production:\n", "  production:\n    on: 1\n"), "namespaces.production.on", "key on is read"),
    Case("sexagesimal-retention", text("retention: 20", "retention: 1:20"), "cluster.etcd_snapshots.retention", "base-60 number 80"),
    Case("off-in-a-label", edit(at("namespaces.production.labels", {"team": "x"})), "", ""),  # replaced below
    # --- Terraform templates outside Helm values ---
    Case("template-in-access-email", edit(at("cloudflare.hostnames.0.access.emails", ["${var.x}@helixaibot.com"])),
         "cloudflare.hostnames[0].access.emails[0]", "'${'"),
    Case("directive-in-acme-email", edit(at("acme_email", "%{x}ops@helixaibot.com")), "acme_email", "'%{'"),
    Case("template-in-kubeconfig", edit(existing(kubeconfig="${path.module}/kubeconfig")),
         "cluster.existing.kubeconfig", "'${'"),
    Case("template-in-context", edit(existing(context="${terraform.workspace}")), "cluster.existing.context", "'${'"),
    Case("template-in-s3-bucket", edit(both(at("state.backend", "s3"), at("state.s3", {**S3, "bucket": "${var.b}"}))),
         "state.s3.bucket", "'${'"),
    Case("template-in-s3-key-prefix", edit(both(at("state.backend", "s3"), at("state.s3", {**S3, "key_prefix": "a/${x}"}))),
         "state.s3.key_prefix", "'${'"),
    Case("template-in-s3-region", edit(both(at("state.backend", "s3"), at("state.s3", {**S3, "region": "%{x}"}))),
         "state.s3.region", "'%{'"),
    Case("template-in-s3-endpoint", edit(both(at("state.backend", "s3"),
                                              at("state.s3", {**S3, "endpoint": "https://${x}.example.com"}))),
         "state.s3.endpoint", "'${'"),
    Case("template-in-remote-org", edit(both(at("state.backend", "remote"), at("state.remote", {"organization": "${o}"}))),
         "state.remote.organization", "'${'"),
    Case("template-in-pg-schema", edit(both(at("state.backend", "pg"),
                                            at("state.pg", {"conn_str": "postgres://tf@db/tf", "schema_prefix": "${s}"}))),
         "state.pg.schema_prefix", "'${'"),
    Case("template-in-etcd-folder", edit(at("cluster.etcd_snapshots.s3", {**ETCD_S3, "folder": "${x}"})),
         "cluster.etcd_snapshots.s3.folder", "'${'"),
    Case("template-in-etcd-region", edit(at("cluster.etcd_snapshots.s3", {**ETCD_S3, "region": "${x}"})),
         "cluster.etcd_snapshots.s3.region", "'${'"),
    Case("template-in-origin", edit(at("cloudflare.hostnames.0.origin", "https://web.default.svc/${x}")),
         "cloudflare.hostnames[0].origin", "'${'"),
    Case("template-in-gitops-url", edit(at("gitops", {"url": "ssh://git@git.example.com/${x}.git"})), "gitops.url", "'${'"),
    Case("template-in-object-store-region", edit(both(at("object_storage.mode", "external"), at(
        "object_storage.external", {"endpoint": "s3.example.com", "region": "${r}"}))),
         "object_storage.external.region", "'${'"),
    # --- credentials inside URLs ---
    Case("gitops-url-user-and-token", edit(at("gitops", {"url": "https://user:ghp_token@git.example.com/p.git"})),
         "gitops.url", "flux_git_identity"),
    Case("gitops-url-token-as-user", edit(at("gitops", {"url": "https://ghp_token@git.example.com/p.git"})),
         "gitops.url", "the URL carries credentials"),
    Case("pg-conn-str-password-param", edit(both(at("state.backend", "pg"), at(
        "state.pg", {"conn_str": "postgres://tf@db.example.com/tf?sslmode=require&password=hunter2"}))),
         "state.pg.conn_str", "PGPASSWORD"),
    Case("pg-conn-str-user-password", edit(both(at("state.backend", "pg"), at(
        "state.pg", {"conn_str": "postgresql://tf:hunter2@db.example.com/tf"}))),
         "state.pg.conn_str", "PGPASSWORD"),
    Case("s3-endpoint-with-keys", edit(both(at("state.backend", "s3"), at(
        "state.s3", {**S3, "endpoint": "https://AKIA:secret@minio.example.com"}))),
         "state.s3.endpoint", "AWS_ACCESS_KEY_ID"),
    Case("origin-with-password", edit(at("cloudflare.hostnames.0.origin", "https://admin:pw@web.default.svc")),
         "cloudflare.hostnames[0].origin", "the URL carries credentials"),
    # --- names and versions matched whole ---
    Case("k3s-version-trailing-newline", edit(at("cluster.k3s_version", "v1.35.5+k3s1\n")),
         "cluster.k3s_version", "is not a k3s release"),
    Case("component-version-trailing-newline", edit(at("components.cilium", {"version": "1.16.5\n"})),
         "components.cilium.version", "is not an exact version"),
    Case("node-name-trailing-newline", edit(at("cluster.nodes.3.name", "helix-agent-1\n")),
         "cluster.nodes[3].name", "is not a DNS label"),
    Case("domain-trailing-newline", edit(at("domain", "helixaibot.com\n")), "domain", "is not a lowercase DNS name"),
    Case("account-id-trailing-newline", edit(at("cloudflare.account_id", "0" * 32 + "\n")),
         "cloudflare.account_id", "is not a Cloudflare id"),
    Case("host-key-trailing-newline", edit(at("cluster.nodes.0.host_key", HOST_KEY + "\n")),
         "cluster.nodes[0].host_key", "is not an SSH public host key"),
    Case("tunnel-name-trailing-newline", edit(at("cloudflare.tunnel_name", "helix\n")),
         "cloudflare.tunnel_name", "is not a DNS label"),
    Case("group-uuid-trailing-newline", edit(at("cloudflare.hostnames.0.access.groups",
                                                ["0b3f4c1e-1b2a-4c3d-9e8f-0123456789ab\n"])),
         "cloudflare.hostnames[0].access.groups[0]", "is not a Cloudflare UUID"),
    # --- Kubernetes label rules ---
    Case("label-value-too-long", edit(at("namespaces.production.labels", {"team": LONG})),
         "namespaces.production.labels.team", "is not a Kubernetes label value"),
    Case("label-value-with-space", edit(at("namespaces.production.labels", {"team": "data team"})),
         "namespaces.production.labels.team", "is not a Kubernetes label value"),
    Case("label-value-leading-dash", edit(at("namespaces.production.labels", {"team": "-data"})),
         "namespaces.production.labels.team", "is not a Kubernetes label value"),
    Case("label-key-name-too-long", edit(at("namespaces.production.labels", {LONG: "x"})),
         "namespaces.production.labels", "is not a Kubernetes label key"),
    Case("label-key-trailing-newline", edit(at("namespaces.production.labels", {"team\n": "x"})),
         "namespaces.production.labels", "is not a Kubernetes label key"),
    # --- built-in namespaces ---
    Case("labels-on-kube-system", edit(at("namespaces.kube-system.labels", {"team": "platform"})),
         "namespaces.kube-system.labels", "built-in namespace"),
    Case("labels-on-default", edit(at("namespaces.default", {"labels": {"team": "platform"}})),
         "namespaces.default.labels", "built-in namespace"),
    Case("labels-on-kube-node-lease", edit(at("namespaces.kube-node-lease", {"labels": {"a": "b"}})),
         "namespaces.kube-node-lease.labels", "built-in namespace"),
    # --- control characters and stray placeholders outside values ---
    Case("newline-in-kubeconfig", edit(existing(kubeconfig="~/.kube/config\nrm -rf /")),
         "cluster.existing.kubeconfig", "control character"),
    Case("state-dir-is-the-project-root", edit(at("state.local.dir", ".")), "state.local.dir", "project"),
    Case("state-dir-empty", edit(at("state.local.dir", "")), "state.local.dir", "project"),
    Case("right-to-left-override", edit(at("state.local.dir", "\u202estate")), "state.local.dir", "invisible"),
    Case("nul-in-s3-key-prefix", edit(both(at("state.backend", "s3"), at("state.s3", {**S3, "key_prefix": "a\x00b"}))),
         "state.s3.key_prefix", "control character"),
    Case("placeholder-in-context", edit(existing(context="((name))")), "cluster.existing.context",
         "placeholders are only rendered in components.*.values"),
    Case("placeholder-wrong-case", edit(at("components.cilium", {"values": {"x": "((K3s_Version))"}})),
         "cilium.values.x", "((K3s_Version)) is not a placeholder"),
    Case("placeholder-with-spaces", edit(at("components.cilium", {"values": {"x": "(( domain ))"}})),
         "cilium.values.x", "(( domain )) is not a placeholder"),
    Case("placeholder-unknown", edit(at("components.cilium", {"values": {"x": "((domian))"}})),
         "cilium.values.x", "unknown placeholder ((domian))"),
    # --- SSH host keys ---
    Case("no-host-key-no-waiver", edit(lambda d: d["cluster"].pop("ssh")), "cluster.nodes[0].host_key", "not set"),
    Case("waiver-false", edit(at("cluster.ssh.insecure_ignore_host_keys", False)), "cluster.nodes[6].host_key", "not set"),
    Case("departed-node-without-host-key", edit(both(
        lambda d: d["cluster"].pop("ssh"),
        at("cluster.nodes", [{**n, "host_key": HOST_KEY} for n in BASE["cluster"]["nodes"]]),
        at("cluster.departed_nodes", [{"name": "old-agent", "address": "10.20.0.99", "role": "agent"}]))),
         "cluster.departed_nodes[0].host_key", "not set"),
    # --- whole-file and schema hostility ---
    Case("over-the-size-limit", lambda: BASE_TEXT + "#" * (1024 * 1024), "", "file is larger than"),
    Case("binary-garbage", lambda: bytes(range(256)) * 4, "", "file is not UTF-8 text"),
    Case("top-level-list", lambda: "- a\n- b\n", "", "expected a mapping at the top level"),
    Case("deep-nesting", lambda: "a: " + "[" * 5000 + "]" * 5000 + "\n", "", "malformed YAML"),
    Case("tab-indentation", text("  mode: provision", "\tmode: provision"), "", "malformed YAML"),
    Case("nodes-as-a-string", edit(at("cluster.nodes", "helix-server-1")), "cluster.nodes", "valid list"),
    Case("port-out-of-range", edit(at("cluster.api_port", 70000)), "cluster.api_port", "less than or equal to 65535"),
    Case("k3s-latest", edit(at("cluster.k3s_version", "latest")), "cluster.k3s_version", "is not a k3s release"),
    Case("negative-retention", edit(at("cluster.etcd_snapshots.retention", -1)), "cluster.etcd_snapshots.retention",
         "greater than or equal to 1"),
    Case("unknown-deep-key", edit(at("cluster.ssh.strict", True)), "cluster.ssh.strict", "unknown key"),
]
CASES[5] = Case("off-in-a-label", text("namespaces:\n", "namespaces:\n  extra:\n    labels: {team: off}\n"),
                "namespaces.extra.labels.team", "off is read by YAML 1.1 as the boolean false")


def test_the_corpus_is_large_and_distinct():
    assert len(CASES) >= 50
    assert len({c.name for c in CASES}) == len(CASES)
    made = [c.make() for c in CASES]
    assert len({m if isinstance(m, bytes) else m.encode() for m in made}) == len(CASES)


def state_snapshot() -> dict[str, tuple[int, str]]:
    """The project's local state folder (state/, the description config's): every entry's mode and content hash."""
    folder = ROOT / "state"
    if not folder.exists():
        return {}
    out = {}
    for path in sorted([folder, *folder.rglob("*")]):
        mode = os.lstat(path).st_mode
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if stat.S_ISREG(mode) else ""
        out[str(path.relative_to(ROOT))] = (mode, digest)
    return out


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_config_is_refused(case, tmp_path, monkeypatch, capsys):
    content = case.make()
    config = tmp_path / "helix.yaml"
    if isinstance(content, bytes):
        config.write_bytes(content)
    else:
        config.write_text(content)
    work = tmp_path / "work"
    work.mkdir()
    state_before = state_snapshot()
    run = main_in_process(str(config), work, monkeypatch, capsys)
    assert_refused(run, str(config), case.fragment)
    assert state_snapshot() == state_before
    if case.field:
        lines = [line for line in run.stderr.splitlines() if case.fragment in line]
        assert any(
            f": {case.field}: " in line or f": {case.field}." in line or f"{case.field}[" in line for line in lines
        ), f"no problem names {case.field!r}:\n{run.stderr}"


# --- generated: every string of the description config, replaced by hostile text ----------------------------

HOSTILE_STRINGS = [
    "${file(\"/etc/passwd\")}",
    "%{ for x in [1] }x%{ endfor }",
    "ok\nINJECTED=1",
    "nul\x00byte",
    "((domain))",
    "https://user:secret@example.com/x",
    "x" * 5000,
    "\u202egnp.exe",
    "",
    "yes",
]


def _string_leaves(value: Any, path: tuple = ()) -> list[tuple]:
    if isinstance(value, dict):
        return [leaf for k, v in value.items() for leaf in _string_leaves(v, (*path, k))]
    if isinstance(value, list):
        return [leaf for i, v in enumerate(value) for leaf in _string_leaves(v, (*path, i))]
    return [path] if isinstance(value, str) else []


def test_generated_hostile_strings_never_pass_or_crash():
    """Each string field of the description config (outside component values) gets each hostile string: the config
    is refused with one-line problems naming the field, or, for text that is harmless there, accepted without
    any Terraform template, control character or credential surviving into the plan's config."""
    import random

    from planner.files import ConfigError, parse_model
    from planner.load import resolve_config
    from planner.schema import HelixConfig

    leaves = [p for p in _string_leaves(BASE) if not (p[0] == "components" and "values" in p)]
    cases = [(leaf, bad) for leaf in leaves for bad in HOSTILE_STRINGS]
    random.Random(22).shuffle(cases)
    cases = cases[:150]
    assert len(leaves) >= 20 and len(cases) == 150
    refused = 0
    for leaf, bad in cases:
        data = copy.deepcopy(BASE)
        node: Any = data
        for part in leaf[:-1]:
            node = node[part]
        node[leaf[-1]] = bad
        cfg, problems = parse_model(HelixConfig, data, "helix.yaml")
        try:
            plan, more = resolve_config(cfg, "helix.yaml")
        except ConfigError as exc:  # a data file problem would be a defect of this test's base
            raise AssertionError(exc) from None
        problems += more
        for problem in problems:
            assert "\n" not in str(problem) and "\x00" not in str(problem), (leaf, bad, str(problem))
        if problems:
            refused += 1
            continue
        dumped = str(cfg.model_dump())
        for forbidden in ("${", "%{", "\n", "\x00", "user:secret@", "((", "\u202e"):
            assert forbidden not in bad or forbidden not in dumped, (leaf, bad)
    assert refused >= 100, refused
