"""Input checks beyond the schema: what must never reach Terraform, the disk or a node unchecked (issue 22).

- The cluster file is read bounded (planner/files.py) and its YAML 1.1 surprises are refused: `06443` (octal),
  `1:30` (base 60), `yes`/`no`/`on`/`off` (booleans): each one names its field path and says what YAML made of it.
- Every string of the cluster file outside `components.*.values` (Helm values, which the add-on construct
  escapes) is refused when it holds `${` or `%{` (Terraform would evaluate it), a control character (a newline
  in a name lands in an install script), a `((placeholder))` (rendered only in component values), or a
  credential inside a URL (`https://user:token@...`, a pg `password=`): those belong in variables.
- Labels on a built-in namespace (default, kube-system, kube-public, kube-node-lease) are refused: the platform
  never creates or owns those, so the labels would be silently dropped.
- A k3s downgrade or a skipped minor is refused against the version the previous synth recorded in the output
  folder (the nodes stack's join-version record).
- Nodes without `host_key` need the explicit waiver `cluster.ssh.insecure_ignore_host_keys: true`; with it, every
  synth warns on stderr.
- The local state folder is kept 0700 and its state files (*.tfstate*) 0600 on every synth; it can't be the
  project root.

Nothing here imports cdktf or jsii.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from planner.files import (
    MAX_FILE_BYTES,
    ConfigError,
    Problem,
    _FastLoader,
    _plain_for_libyaml,
    _read_text,
    _StrictLoader,
    field_path,
    parse_yaml_mapping,
    read_bounded,
)
from planner.model import PlatformPlan
from planner.schema import HelixConfig
from planner.state_modes import secure_state_folder

# Namespaces every Kubernetes cluster has: never created, owned or labelled by a platform stack.
BUILTIN_NAMESPACES = frozenset({"default", "kube-system", "kube-public", "kube-node-lease"})

_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_OCTAL = re.compile(r"[-+]?0[0-7_]+")
_SEXAGESIMAL = re.compile(r"[-+]?[0-9][0-9_]*(:[0-5]?[0-9])+(\.[0-9_]*)?")
# scheme://userinfo@ : the userinfo of a URL (RFC 3986), up to the first '@' before any '/', '?' or '#'.
_URL_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://([^/?#@\s]*)@")
_PG_PASSWORD = re.compile(r"(?i)[?&]password=")
_ANY_PLACEHOLDER = re.compile(r"\(\(\s*[^()\s]*\s*\)\)")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


# --- reading the cluster file ----------------------------------------------------------------------------


def read_cluster_mapping(path: Path, shown: str) -> dict[str, Any]:
    """The cluster file as a mapping: read bounded, its YAML 1.1 surprises refused (ConfigError otherwise)."""
    text = _read_text(path, shown)
    data = parse_yaml_mapping(text, shown)
    surprises = yaml11_problems(text, shown)
    if surprises:
        raise ConfigError(surprises)
    return data


def yaml11_problems(text: str, shown: str) -> list[Problem]:
    """Plain scalars that YAML 1.1 reads as something else than they look: octal and base-60 numbers, and the
    booleans yes/no/on/off/y/n. The document has already parsed, so composing it again cannot fail."""
    # libyaml composes the same nodes ten times faster, where planner/files.py trusts it (shallow, no aliases).
    loader = _FastLoader if _FastLoader is not None and _plain_for_libyaml(text) else _StrictLoader
    try:
        root = yaml.compose(text, Loader=loader)  # noqa: S506 - both are SafeLoaders
    except (yaml.YAMLError, RecursionError):
        return []
    out: list[Problem] = []
    stack: list[tuple[yaml.Node, str]] = [(root, "")] if root is not None else []
    while stack:
        node, path = stack.pop()
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                name = key.value if isinstance(key, yaml.ScalarNode) else "?"
                child = field_path([*([path] if path else []), name])
                message = _surprise(key)
                if message:
                    out.append(Problem(shown, child, f"key {message}"))
                stack.append((value, child))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, f"{path}[{i}]") for i, item in enumerate(node.value))
        else:
            message = _surprise(node)
            if message:
                out.append(Problem(shown, path or "(document)", message))
    return sorted(out, key=lambda p: p.path)


def _surprise(node: yaml.Node) -> str | None:
    if not isinstance(node, yaml.ScalarNode) or node.style:
        return None  # quoted or block scalars are strings, as written (plain: None, or '' from libyaml)
    text = node.value
    if node.tag == _BOOL and text.lower() not in ("true", "false"):
        meaning = str(text.lower() in ("yes", "y", "on")).lower()
        return (
            f"{text} is read by YAML 1.1 as the boolean {meaning}: write {meaning}, or quote it ('{text}') "
            "for the text"
        )
    if node.tag == _INT and _OCTAL.fullmatch(text):
        value = yaml.safe_load(text)
        return (
            f"{text} is read by YAML 1.1 as the octal number {value}: write {text.lstrip('0_') or '0'} without the "
            f"leading zero, or quote it ('{text}') for the text"
        )
    if node.tag in (_INT, _FLOAT) and _SEXAGESIMAL.fullmatch(text):
        value = yaml.safe_load(text)
        return f"{text} is read by YAML 1.1 as the base-60 number {value}: quote it ('{text}') for the text"
    return None


# --- strings that reach Terraform ------------------------------------------------------------------------


def _strings(value: Any, path: str):
    """(path, string) of every key and string value, skipping Helm values (escaped by the add-on construct)."""
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, dict):
            for key, child in item.items():
                child_path = field_path([*([where] if where else []), key])
                if re.fullmatch(r"components\.[^.]+\.values", child_path):
                    continue
                if isinstance(key, str):
                    yield child_path, key
                stack.append((child, child_path))
        elif isinstance(item, (list, tuple)):
            stack.extend((child, f"{where}[{i}]") for i, child in enumerate(item))
        elif isinstance(item, str):
            yield where, item


def string_problems(cfg: HelixConfig) -> list[tuple[str, str]]:
    """Strings of the cluster file that Terraform would evaluate, that carry a credential or a control character,
    or a placeholder that nothing renders. (field path, message) pairs."""
    out: list[tuple[str, str]] = []
    for path, text in _strings(cfg.model_dump(mode="python", exclude_defaults=False), ""):
        for marker in ("${", "%{"):
            if marker in text:
                out.append(
                    (path, f"contains {marker!r}, which Terraform would evaluate as a template: this field can't carry it")
                )
        control = _CONTROL.search(text) or next((c for c in text if not c.isprintable()), None)
        if control:
            char = control if isinstance(control, str) else control.group(0)
            out.append((path, f"contains the invisible or control character {char!r} (a line break or similar)"))
        placeholder = _ANY_PLACEHOLDER.search(text)
        if placeholder:
            out.append(
                (path, f"{placeholder.group(0)} is a placeholder, and placeholders are only rendered in components.*.values")
            )
        out.extend(_credential_problems(path, text))
    return sorted(set(out))


# Where the credentials of each place that takes a URL belong: (field path or prefix, what to say).
_CREDENTIALS_GO_TO = (
    ("gitops.url", "use an ssh:// URL with the deploy key in the sensitive variable flux_git_identity "
     "(TF_VAR_flux_git_identity)"),
    ("state.pg", "libpq reads the password from PGPASSWORD or ~/.pgpass"),
    ("state.s3", "the S3 backend reads its keys from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or a profile)"),
    ("cluster.etcd_snapshots.s3", "the keys are the sensitive variables etcd_s3_access_key and etcd_s3_secret_key"),
    ("object_storage.external", "the keys are the sensitive variables object_storage_access_key_id and "
     "object_storage_secret_access_key"),
)


def _credential_problems(path: str, text: str) -> list[tuple[str, str]]:
    out = []
    where_it_goes = next(
        (where for prefix, where in _CREDENTIALS_GO_TO if path == prefix or path.startswith(prefix + ".")),
        "credentials belong in sensitive Terraform variables (README, Secrets), never in the cluster file",
    )
    for match in _URL_USERINFO.finditer(text):
        scheme, userinfo = match.group(1).lower(), match.group(2)
        if ":" in userinfo or (scheme in ("http", "https") and userinfo):
            out.append((path, f"the URL carries credentials ({scheme}://{userinfo.split(':')[0]}:***@...): {where_it_goes}"))
    if path == "state.pg.conn_str" and _PG_PASSWORD.search(text):
        out.append((path, f"the connection string carries a password: {where_it_goes}"))
    return out


def namespace_problems(cfg: HelixConfig) -> list[tuple[str, str]]:
    out = []
    for name, ns in cfg.namespaces.items():
        if name in BUILTIN_NAMESPACES and ns.labels:
            out.append(
                (
                    f"namespaces.{name}.labels",
                    f"{name!r} is a built-in namespace: no stack creates or owns it, so its labels would never be "
                    "applied; remove them (label it with kubectl, outside the platform)",
                )
            )
    return out


def state_dir_problems(cfg: HelixConfig) -> list[tuple[str, str]]:
    """The local state folder is a folder of its own: never the project root (every synth makes it owner-only)."""
    folder = PurePosixPath(cfg.state.local.dir)
    if str(folder) in ("", "."):
        return [("state.local.dir", f"{cfg.state.local.dir!r} is the project root; name a folder of its own, such as state")]
    return []


def config_problems(cfg: HelixConfig) -> list[tuple[str, str]]:
    """Every check of this module that needs only the parsed cluster file."""
    return string_problems(cfg) + namespace_problems(cfg) + state_dir_problems(cfg) + host_key_problems(cfg)


# --- SSH host keys -----------------------------------------------------------------------------------------


def _nodes_without_host_key(cfg: HelixConfig) -> list[str]:
    if cfg.cluster.mode != "provision":
        return []
    names = [f"cluster.nodes[{i}]" for i, n in enumerate(cfg.cluster.nodes) if n.host_key is None]
    names += [
        f"cluster.departed_nodes[{i}]"
        for i, n in enumerate(cfg.cluster.departed_nodes)
        if n.host_key is None and not n.unreachable
    ]
    return names


def host_key_problems(cfg: HelixConfig) -> list[tuple[str, str]]:
    """A node without host_key gets the CA keys over an unverified connection: only with the explicit waiver."""
    if cfg.cluster.ssh.insecure_ignore_host_keys:
        return []
    return [
        (
            f"{where}.host_key",
            "not set, so Terraform would push the cluster's CA keys to a host it does not verify: set the machine's "
            "host key (ssh-keyscan -t ed25519 <address>), or waive the check for every node with "
            "cluster.ssh.insecure_ignore_host_keys: true",
        )
        for where in _nodes_without_host_key(cfg)
    ]


def host_key_warnings(cfg: HelixConfig, shown: str) -> list[str]:
    """The warning every synth prints while the waiver covers nodes without a host key."""
    missing = _nodes_without_host_key(cfg)
    if not cfg.cluster.ssh.insecure_ignore_host_keys or not missing:
        return []
    return [
        f"warning: {shown}: cluster.ssh.insecure_ignore_host_keys is true and {len(missing)} node(s) have no host_key "
        f"({', '.join(missing)}): Terraform does not verify the hosts it pushes the CA keys to"
    ]


# --- k3s versions ------------------------------------------------------------------------------------------


def k3s_release_key(version: str) -> tuple[int, int, int, int] | None:
    match = re.fullmatch(r"v(\d+)\.(\d+)\.(\d+)\+k3s(\d+)", version)
    return tuple(int(g) for g in match.groups()) if match else None  # type: ignore[return-value]


def previous_k3s_version(outdir: Path) -> str | None:
    """The k3s version the previous synth in outdir recorded (the nodes stack's join-version input), if any."""
    try:
        data = json.loads(read_bounded(outdir / "stacks" / "nodes" / "cdk.tf.json", 64 * MAX_FILE_BYTES))
        records = data["resource"]["terraform_data"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(records, dict):
        return None
    for key, record in sorted(records.items()):
        if "join-version" in key and isinstance(record, dict) and isinstance(record.get("input"), str):
            return record["input"]
    return None


def k3s_upgrade_problems(cfg: HelixConfig, previous: str | None) -> list[tuple[str, str]]:
    """k3s moves forward one minor at a time: no downgrade (the datastore and the API objects only migrate
    forward) and no skipped minor (Kubernetes' version skew policy: control planes upgrade minor by minor)."""
    if cfg.cluster.mode != "provision" or previous is None:
        return []
    old, new = k3s_release_key(previous), k3s_release_key(cfg.cluster.k3s_version)
    if old is None or new is None or new == old:
        return []
    field = "cluster.k3s_version"
    if new < old:
        return [
            (
                field,
                f"{cfg.cluster.k3s_version} is older than {previous}, which the previous synth set up: k3s can't be "
                "downgraded in place (etcd and the API objects only migrate forward); keep "
                f"{previous} or a newer release",
            )
        ]
    if new[:2] > (old[0], old[1] + 1):
        return [
            (
                field,
                f"{cfg.cluster.k3s_version} skips a minor after {previous}, which the previous synth set up: Kubernetes "
                f"upgrades one minor at a time; upgrade to a v{old[0]}.{old[1] + 1}.x release first, deploy, then on",
            )
        ]
    return []


# --- local state permissions: planner/state_modes.py (standard library only, for the no-op synth) -------


# --- what a synth checks beyond the config (called by stacks/app.py before and after synthesis) ----------


def repeat_on_reuse(plan: PlatformPlan) -> dict:
    """What pre_synth_checks does every time that main.py must do again when it reuses this synth's output:
    print the host-key waiver's warning, make the local state folder owner-only (stacks/synth_cache.py). Called by stacks/app.py."""
    from planner.load import _shown, config_path_from_env

    state = plan.config.state
    return {
        "warnings": host_key_warnings(plan.config, _shown(config_path_from_env())) + post_synth_warnings(plan),
        "state_dir": state.local.dir if state.backend == "local" else None,
    }


def post_synth_warnings(plan: PlatformPlan) -> list[str]:
    """What a successful synth says last (stacks/app.py; the no-op synth replays it through repeat_on_reuse): the
    alert path's preflight, while no person can be paged (planner/components/alerting.py)."""
    return list(plan.alert_warnings)


def pre_synth_checks(plan: PlatformPlan, outdir: Path) -> int | None:
    """What needs more than the config (planner/validate.py): the previous output's k3s version, the host-key
    waiver's warning, the local state folder's modes. An exit status, or None to go on."""
    from planner.load import PROJECT_ROOT, _shown, config_path_from_env

    shown = _shown(config_path_from_env())
    problems = k3s_upgrade_problems(plan.config, previous_k3s_version(outdir))
    for path, message in problems:
        print(f"error: {shown}: {path}: {message}", file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s) found; nothing was synthesized.", file=sys.stderr)
        return 2
    try:  # the output folder's parent takes the staging folder: find out now, before jsii starts
        outdir.absolute().parent.mkdir(parents=True, exist_ok=True)
        os.rmdir(tempfile.mkdtemp(prefix=f".{outdir.name}.probe-", dir=outdir.absolute().parent))
    except OSError as exc:
        print(f"error: cannot write the output folder {outdir}: {exc.strerror or exc}; nothing was changed", file=sys.stderr)
        return 1
    for line in host_key_warnings(plan.config, shown):
        print(line, file=sys.stderr)
    if plan.config.state.backend == "local":
        try:
            for change in secure_state_folder(PROJECT_ROOT / plan.config.state.local.dir):
                print(f"state: {change} (state files hold secrets: owner only)", file=sys.stderr)
        except OSError as exc:  # not the owner, say: the synth itself does not need it
            print(
                f"warning: cannot make the local state folder owner-only: {exc.strerror or exc} ({exc.filename}); "
                "state files hold secrets",
                file=sys.stderr,
            )
    return None
