"""Every version pin of the project, and which Renovate manager (renovate.json) sees each one.

    python -m tools.pins            # one line per pin, with the managers that match it; exit 1 unless exactly one

A pin is found here from what the file says, independently of renovate.json:
  config/catalog/*.yaml      each component's `version`: a chart (with `repository` and `chart`), or a `kind:
                             manifests` component whose manifest files are written for that release (a folder named
                             after the version); other manifests components are data with a version of their own
  config/manifests/raw-chart.yaml   the raw chart
  config/helix.yaml          cluster.k3s_version
  Pipfile, requirements-*.txt, package.json   every exact pin
  Taskfile.yml, scripts/*, .ci/run, .github/workflows/*   `name==1.2`, `name@1.2`, `uses: owner/repo@ref`,
                             `<tool>-version: "..."`/`<tool>_version: "..."` outside comments
  CODE_PINS                  versions pinned in code (kube-vip's image, the k3s installer's tag, ...)

`coverage()` then runs renovate.json's own custom managers (their file patterns and regular expressions,
translated to Python's syntax) and models Renovate's built-in managers the config leaves enabled (pipenv,
pip_requirements, npm, github-actions), and says which of them match each pin. tests/test_renovate.py asserts
exactly one for every pin. tools/outdated.py (`task outdated`) lists the pins with the newest versions known.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
CATALOG_GLOB = "config/catalog/*.yaml"
TEXT_FILES = ("Taskfile.yml", "scripts/*", ".ci/run", ".github/workflows/*.yml", ".github/workflows/*.yaml")
# (file, regex whose group "v" is the pinned version, what is pinned, kind): versions pinned in code.
CODE_PINS: tuple[tuple[str, str, str, str], ...] = (
    ("constructs_lib/kube_vip.py", r'KUBE_VIP_IMAGE = "[^":]+:(?P<v>[^"]+)"', "kube-vip image", "image"),
    ("planner/schema.py", r'tag: K3sRelease = "(?P<v>[^"]+)"', "k3s installer tag", "k3s-installer"),
    ("constructs_lib/k3s.py", r'KNOWN_INSTALLERS = \{"(?P<v>[^"]+)": ', "k3s installer tag", "k3s-installer"),
    ("tests/test_renovate.py", r'RENOVATE_VERSION = "(?P<v>[^"]+)"', "renovate (its config validator)", "npm"),
)
# Renovate's built-in managers that find this project's pins, with their default file patterns.
BUILTIN_FILES = {
    "pipenv": r"(^|/)Pipfile$",
    "pip_requirements": r"(^|/)[\w-]*requirements([-.]\w+)?\.(txt|pip)$",
    "npm": r"(^|/)package\.json$",
    "github-actions": r"(^|/)(workflow-templates|\.(?:github|gitea|forgejo)/(?:workflows|actions))/.+\.ya?ml$",
}


@dataclass(frozen=True)
class Pin:
    file: str  # relative to the root, posix
    offset: int  # where the version starts in the file's text
    version: str
    name: str  # what is pinned: a component, a package, an action, a tool
    kind: str  # chart, release, k3s, pypi, npm, action, tool, image, k3s-installer
    line: int
    repository: str = ""  # charts: the repository
    chart: str = ""  # charts: the chart's name

    def where(self) -> str:
        return f"{self.file}:{self.line}"


def _line(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _scalar_offsets(text: str) -> dict[tuple[str, ...], tuple[int, str]]:
    """(key path) -> (offset, scalar) for every scalar of a YAML document's mappings."""
    out: dict[tuple[str, ...], tuple[int, str]] = {}

    def walk(node: Any, path: tuple[str, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                walk(value, (*path, str(key.value)))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, (*path, str(i)))
        elif isinstance(node, yaml.ScalarNode):
            out[path] = (node.start_mark.index, str(node.value))

    walk(yaml.compose(text, Loader=yaml.SafeLoader), ())
    return out


def catalog_pins(path: Path, root: Path) -> list[Pin]:
    text = path.read_text()
    data = yaml.safe_load(text) or {}
    scalars = _scalar_offsets(text)
    rel = path.relative_to(root).as_posix()
    pins = []
    for cid, spec in data.items():
        if not isinstance(spec, dict) or "version" not in spec:
            continue
        offset, version = scalars[(str(cid), "version")]
        if spec.get("repository") and spec.get("chart"):
            pins.append(Pin(rel, offset, version, str(cid), "chart", _line(text, offset), str(spec["repository"]),
                            str(spec["chart"])))
        elif spec.get("kind") == "manifests" and any(
            f"/{version}/" in f"/{m.get('file', '')}" for m in spec.get("manifests") or [] if isinstance(m, dict)
        ):
            pins.append(Pin(rel, offset, version, str(cid), "release", _line(text, offset)))
    return pins


def _mapping_pins(path: Path, root: Path, keys: tuple[tuple[str, ...], ...], kind: str) -> list[Pin]:
    text = path.read_text()
    scalars = _scalar_offsets(text)
    rel = path.relative_to(root).as_posix()
    return [Pin(rel, scalars[k][0], scalars[k][1], ".".join(k), kind, _line(text, scalars[k][0])) for k in keys
            if k in scalars]


def raw_chart_pins(root: Path) -> list[Pin]:
    path = root / "config" / "manifests" / "raw-chart.yaml"
    if not path.is_file():
        return []
    text = path.read_text()
    data = yaml.safe_load(text)
    offset, version = _scalar_offsets(text)[("version",)]
    return [Pin(path.relative_to(root).as_posix(), offset, version, "raw-chart", "chart", _line(text, offset),
                str(data["repository"]), str(data["chart"]))]


_PIPFILE_PIN = re.compile(r'^"?(?P<name>[A-Za-z0-9][\w.-]*)"?\s*=\s*"==(?P<v>[^"]+)"', re.M)
_REQUIREMENT_PIN = re.compile(r"^(?P<name>[A-Za-z0-9][\w.-]*)==(?P<v>[^\s#]+)", re.M)


def _regex_pins(path: Path, root: Path, pattern: re.Pattern[str], kind: str) -> list[Pin]:
    text = path.read_text()
    rel = path.relative_to(root).as_posix()
    return [Pin(rel, m.start("v"), m.group("v"), m.group("name"), kind, _line(text, m.start("v")))
            for m in pattern.finditer(text)]


def package_json_pins(path: Path, root: Path) -> list[Pin]:
    text = path.read_text()
    pins = []
    for section in ("dependencies", "devDependencies", "optionalDependencies"):
        for name, version in (json.loads(text).get(section) or {}).items():
            m = re.search(rf'"{re.escape(name)}"\s*:\s*"(?P<v>{re.escape(version)})"', text)
            if m:
                pins.append(Pin(path.relative_to(root).as_posix(), m.start("v"), version, name, "npm",
                                _line(text, m.start("v"))))
    return pins


_TEXT_PINS = (
    (re.compile(r"\buses:\s*(?P<name>[\w.-]+/[\w./-]+)@(?P<v>[\w.-]+)"), "action"),
    (re.compile(r"(?<![\w.-])(?P<name>[A-Za-z][\w.-]*)==(?P<v>\d[\w.]*)"), "pypi"),
    (re.compile(r"(?<![\w./-])(?P<name>@?[a-z][\w.-]*(?:/[\w.-]+)?)@(?P<v>\d+\.\d+[\w.-]*)"), "npm"),
    (re.compile(r"\b(?P<name>[a-z]+)[-_]version:\s*\"?(?P<v>\d[\w.]*)"), "tool"),
)


def _strip_comment(line: str) -> str:
    """A shell or YAML line without its comment (a `#` at the start or after a space, outside quotes)."""
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def text_pins(path: Path, root: Path) -> list[Pin]:
    text = path.read_text(errors="replace")
    rel = path.relative_to(root).as_posix()
    pins, offset = [], 0
    for raw in text.splitlines(keepends=True):
        code = _strip_comment(raw.rstrip("\n"))
        for pattern, kind in _TEXT_PINS:
            for m in pattern.finditer(code):
                pins.append(Pin(rel, offset + m.start("v"), m.group("v"), m.group("name"), kind,
                                _line(text, offset + m.start("v"))))
        offset += len(raw)
    return pins


def code_pins(root: Path) -> list[Pin]:
    pins = []
    for file, pattern, name, kind in CODE_PINS:
        path = root / file
        if not path.is_file():
            continue
        text = path.read_text()
        for m in re.finditer(pattern, text):
            pins.append(Pin(file, m.start("v"), m.group("v"), name, kind, _line(text, m.start("v"))))
    return pins


def find_pins(root: Path = ROOT) -> list[Pin]:
    pins: list[Pin] = []
    for path in sorted(root.glob(CATALOG_GLOB)):
        pins += catalog_pins(path, root)
    pins += raw_chart_pins(root)
    config = root / "config" / "helix.yaml"
    if config.is_file():
        pins += _mapping_pins(config, root, (("cluster", "k3s_version"),), "k3s")
    if (root / "Pipfile").is_file():
        pins += _regex_pins(root / "Pipfile", root, _PIPFILE_PIN, "pypi")
    for path in sorted(root.glob("requirements*.txt")):
        pins += _regex_pins(path, root, _REQUIREMENT_PIN, "pypi")
    if (root / "package.json").is_file():
        pins += package_json_pins(root / "package.json", root)
    seen: set[Path] = set()
    for pattern in TEXT_FILES:
        for path in sorted(root.glob(pattern)):
            if path.is_file() and path not in seen:
                seen.add(path)
                pins += text_pins(path, root)
    pins += code_pins(root)
    return sorted(pins, key=lambda p: (p.file, p.offset))


# --- renovate.json's managers ------------------------------------------------------------------------------------


def js_regex(pattern: str) -> re.Pattern[str]:
    """A regular expression of renovate.json (JavaScript/RE2 syntax) in Python's: named groups are (?P<name>...)."""
    return re.compile(re.sub(r"\(\?<([A-Za-z_]\w*)>", r"(?P<\1>", pattern))


def file_matcher(pattern: str) -> re.Pattern[str]:
    """A managerFilePatterns entry: `/regex/` or a glob."""
    if len(pattern) > 1 and pattern.startswith("/") and pattern.endswith("/"):
        return js_regex(pattern[1:-1])
    return re.compile(fnmatch.translate(pattern))


@dataclass
class Manager:
    name: str
    files: list[re.Pattern[str]]
    match_strings: list[re.Pattern[str]]

    def applies_to(self, file: str) -> bool:
        return any(p.search(file) for p in self.files)


def custom_managers(config: dict[str, Any]) -> list[Manager]:
    managers = []
    for i, m in enumerate(config.get("customManagers") or []):
        if m.get("customType") != "regex":
            continue
        patterns = m.get("managerFilePatterns") or m.get("fileMatch") or []
        name = f"customManagers[{i}] ({m.get('description', '')[:60]})"
        managers.append(Manager(name, [file_matcher(p) for p in patterns], [js_regex(s) for s in m["matchStrings"]]))
    return managers


def _ignored(file: str, config: dict[str, Any]) -> bool:
    return any(fnmatch.fnmatch(file, p) or fnmatch.fnmatch(file, p.rstrip("*").rstrip("/") + "/*")
               for p in config.get("ignorePaths") or [])


def coverage(root: Path = ROOT, config: dict[str, Any] | None = None) -> dict[Pin, list[str]]:
    """Each pin -> the managers that match it (a custom manager matches when one of its regexes captures exactly
    the pin's version as currentValue; a built-in one when its file pattern takes the pin's file)."""
    config = config if config is not None else json.loads((root / "renovate.json").read_text())
    enabled = config.get("enabledManagers")
    builtins = {name: re.compile(p) for name, p in BUILTIN_FILES.items() if enabled is None or name in enabled}
    customs = custom_managers(config) if enabled is None or "custom.regex" in enabled else []
    pins = find_pins(root)
    result: dict[Pin, list[str]] = {pin: [] for pin in pins}
    by_file: dict[str, list[Pin]] = {}
    for pin in pins:
        by_file.setdefault(pin.file, []).append(pin)
    for file, file_pins in by_file.items():
        if _ignored(file, config):
            continue
        text = (root / file).read_text(errors="replace")
        for manager in customs:
            if not manager.applies_to(file):
                continue
            spans = {m.start("currentValue") for rx in manager.match_strings for m in rx.finditer(text)}
            for pin in file_pins:
                if pin.offset in spans:
                    result[pin].append(manager.name)
        for name, pattern in builtins.items():
            if not pattern.search(file):
                continue
            for pin in file_pins:
                if name != "github-actions" or pin.kind == "action":
                    result[pin].append(name)
    return result


def custom_matches(root: Path = ROOT, config: dict[str, Any] | None = None) -> list[tuple[str, str, int]]:
    """(manager, file, offset) of every currentValue the custom managers capture: each must be a pin."""
    config = config if config is not None else json.loads((root / "renovate.json").read_text())
    out = []
    files = _project_files(root)
    for manager in custom_managers(config):
        for rel in files:
            if _ignored(rel, config) or not manager.applies_to(rel):
                continue
            text = (root / rel).read_text(errors="replace")
            out += [(manager.name, rel, m.start("currentValue")) for rx in manager.match_strings for m in rx.finditer(text)]
    return out


def _project_files(root: Path) -> list[str]:
    """The project's files (relative, posix): no environments, caches, outputs or VCS data."""
    keep_hidden = {".github", ".ci"}
    skipped = {"node_modules", "__pycache__", "cdktf.out", "build", "dist", "state"}
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if (not d.startswith(".") or d in keep_hidden) and d not in skipped)
        files += [(Path(dirpath) / f).relative_to(root).as_posix() for f in sorted(filenames)]
    return files


def problems(root: Path = ROOT, config: dict[str, Any] | None = None) -> list[str]:
    """One line per pin that no manager or more than one manager sees, and per capture that is no pin."""
    covered = coverage(root, config)
    lines = [f"{pin.where()}: {pin.name} {pin.version} ({pin.kind}): "
             + ("no Renovate manager matches it" if not managers else f"{len(managers)} managers match it: "
                + "; ".join(managers))
             for pin, managers in covered.items() if len(managers) != 1]
    pins = {(p.file, p.offset) for p in covered}
    lines += [f"{file}: {manager} captures a version at offset {offset} that is no pin"
              for manager, file, offset in custom_matches(root, config) if (file, offset) not in pins]
    return lines


def main(argv: list[str] | None = None) -> int:
    covered = coverage()
    for pin, managers in covered.items():
        print(f"{pin.where():40} {pin.kind:13} {pin.name} {pin.version}  <- {', '.join(managers) or 'NO MANAGER'}")
    found = problems()
    for line in found:
        print(f"problem: {line}", file=sys.stderr)
    print(f"{len(covered)} pins, {len(found)} problem(s)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
