"""renovate.json cannot rot: Renovate's own validator accepts it, and with its own regular expressions every pin of
the project (tools/pins.py finds them from what the files say) is matched by exactly one manager."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tools import pins

# The slow lane (`task test-all`, CI): Renovate's config validator runs on node.
pytestmark = pytest.mark.slow

# The Renovate release whose renovate-config-validator runs here: the last one that runs on Node 22, the project's
# (43.0.0 needs Node 24). renovate.json has a manager for this line.
RENOVATE_VERSION = "42.99.0"
FIXTURES = ROOT / "tests" / "fixtures" / "renovate"
CONFIG = json.loads((ROOT / "renovate.json").read_text())


def test_every_pin_is_matched_by_exactly_one_manager():
    found = pins.find_pins(ROOT)
    kinds = {p.kind for p in found}
    # The scan sees every kind of pin the project has (so an empty or broken scan cannot pass).
    assert {"chart", "release", "k3s", "k3s-installer", "image", "pypi", "npm", "action", "tool"} <= kinds, kinds
    assert sum(p.kind == "chart" for p in found) >= 30
    assert any(p.repository.startswith("oci://") for p in found) and any(p.file == "Taskfile.yml" or
                                                                         p.file.startswith("scripts/") for p in found)
    assert pins.problems(ROOT, CONFIG) == []


def _project_copy(tmp_path: Path) -> Path:
    """The files the pins live in, copied (the catalog, the other data, the Pipfile and scripts; no environments)."""
    root = tmp_path / "project"
    for part in ("renovate.json", "config", "Pipfile", "requirements-cdktn.txt", "package.json", "Taskfile.yml",
                 "scripts", ".ci", ".github", "constructs_lib/kube_vip.py", "constructs_lib/k3s.py", "planner/schema.py",
                 "tests/test_renovate.py"):
        source, target = ROOT / part, root / part
        if source.is_dir():
            shutil.copytree(source, target)
        elif source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, target)
    return root


def test_a_chart_pin_without_a_manager_fails_the_check(tmp_path):
    root = _project_copy(tmp_path)
    assert pins.problems(root, CONFIG) == []
    # Any catalog entry is covered, with other fields between layer, repository, chart and version (https and OCI).
    shutil.copy(FIXTURES / "other-fields-between.yaml", root / "config" / "catalog" / "zz-other-fields.yaml")
    covered = pins.coverage(root, CONFIG)
    added = {p.name: m for p, m in covered.items() if p.file.endswith("zz-other-fields.yaml")}
    assert set(added) == {"example-autoscaler", "example-oci"} and all(len(m) == 1 for m in added.values()), added
    assert pins.problems(root, CONFIG) == []
    # A chart pin in a shape no manager matches fails it, naming the entry.
    shutil.copy(FIXTURES / "no-manager.yaml", root / "config" / "catalog" / "zz-no-manager.yaml")
    found = pins.problems(root, CONFIG)
    assert len(found) == 1 and "example-unmanaged 1.4.2" in found[0] and "no Renovate manager" in found[0], found


def test_a_pin_two_managers_match_fails_the_check(tmp_path):
    root = _project_copy(tmp_path)
    doubled = json.loads(json.dumps(CONFIG))
    doubled["customManagers"].append(dict(doubled["customManagers"][0]))
    found = pins.problems(root, doubled)
    assert found and all("2 managers match it" in line for line in found)
    assert sum("(chart)" in line for line in found) >= 30


def test_a_manager_that_captures_no_pin_fails_the_check(tmp_path):
    root = _project_copy(tmp_path)
    greedy = json.loads(json.dumps(CONFIG))
    greedy["customManagers"].append({"customType": "regex", "managerFilePatterns": ["/(^|/)Taskfile\\.yml$/"],
                                     "matchStrings": ["version: \"(?<currentValue>\\d+)\""], "datasourceTemplate": "npm",
                                     "depNameTemplate": "x"})
    assert any("that is no pin" in line for line in pins.problems(root, greedy))


def test_the_indirect_python_pins_form_one_group():
    """The group of indirect pins is exactly the Pipfile's indirect blocks (after its `# Indirect dependencies`)."""
    indirect, inside = set(), False
    for line in (ROOT / "Pipfile").read_text().splitlines():
        if line.startswith("["):
            inside = False
        elif line.startswith("# Indirect dependencies"):
            inside = True
        elif inside and (m := re.match(r'^"?([A-Za-z0-9][\w.-]*)"?\s*=', line)):
            indirect.add(m.group(1))
    rules = [r for r in CONFIG["packageRules"] if r.get("groupName") == "python indirect dependencies"]
    assert len(rules) == 1 and indirect and set(rules[0]["matchPackageNames"]) == indirect


def test_patches_automerge_and_majors_never_do():
    rules = CONFIG["packageRules"]
    assert any(r.get("matchUpdateTypes") == ["patch"] and r.get("automerge") is True for r in rules)
    major = [r for r in rules if r.get("matchUpdateTypes") == ["major"]]
    assert major and major[0]["automerge"] is False and "major" in major[0]["labels"]
    flagged = [r for r in rules if r.get("matchDepTypes") == ["k3s-installer"]]
    assert flagged and flagged[0]["automerge"] is False and "needs-checksum" in flagged[0]["labels"]


# --- Renovate's own validator --------------------------------------------------------------------------------------


def _tool_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RENOVATE_", "npm_config_"))}
    node_bin = ROOT / ".node" / "node_modules" / ".bin"
    if (node_bin / "node").exists():
        env["PATH"] = f"{node_bin}{os.pathsep}{env.get('PATH', '')}"
    return env


def validator() -> Path:
    """renovate-config-validator of RENOVATE_VERSION, installed once into a cache folder (skips when it cannot be)."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "helix-renovate" / RENOVATE_VERSION
    binary = base / "node_modules" / ".bin" / "renovate-config-validator"
    if binary.exists():
        return binary
    npm = shutil.which("npm", path=_tool_env()["PATH"])
    if npm is None:
        pytest.skip("npm is not installed: renovate-config-validator cannot be installed")
    base.mkdir(parents=True, exist_ok=True)
    # --ignore-scripts: no native build; Renovate falls back from RE2 to JavaScript regular expressions.
    install = subprocess.run(
        [npm, "install", "--prefix", str(base), "--no-save", "--no-package-lock", "--no-audit", "--no-fund",
         "--loglevel=error", "--ignore-scripts", f"renovate@{RENOVATE_VERSION}"],
        env=_tool_env(), capture_output=True, text=True, timeout=900,
    )
    if install.returncode != 0 or not binary.exists():
        pytest.skip(f"renovate {RENOVATE_VERSION} could not be installed (no package registry?): {install.stderr[-300:]}")
    return binary


def _validate(folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(validator()), "--strict"], cwd=folder, env=_tool_env(), capture_output=True, text=True,
                          timeout=300)


def test_renovate_config_validator_accepts_the_config(tmp_path):
    node = subprocess.run(["node", "--version"], env=_tool_env(), capture_output=True, text=True)
    assert node.stdout.startswith("v22."), node.stdout  # the project's Node, which this Renovate release supports
    result = _validate(ROOT)
    assert result.returncode == 0 and "Config validated successfully" in result.stdout, result.stdout + result.stderr
    # ... and it does reject a broken one: an unknown option, an unbalanced regular expression.
    broken = json.loads(json.dumps(CONFIG))
    broken["packageRules"][0]["groupNmae"] = "typo"
    broken["customManagers"][0]["matchStrings"] = ["(?<currentValue>unbalanced"]
    (tmp_path / "renovate.json").write_text(json.dumps(broken))
    rejected = _validate(tmp_path)
    assert rejected.returncode != 0 and "groupNmae" in rejected.stdout, rejected.stdout


NODE_MATCHES = r"""
const input = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const out = [];
for (const [i, pattern] of input.patterns.entries()) {
  const rx = new RegExp(pattern, 'gd');
  for (const [file, text] of Object.entries(input.texts)) {
    // offsets in code points, as Python counts them (JavaScript counts UTF-16 units)
    for (const m of text.matchAll(rx)) out.push([i, file, [...text.slice(0, m.indices.groups.currentValue[0])].length]);
  }
}
console.log(JSON.stringify(out));
"""


def test_javascript_reads_the_regexes_as_this_check_does():
    """Renovate runs the regexes in JavaScript: on every file they apply to, node finds the same currentValue
    captures as the Python translation the coverage check uses."""
    env = _tool_env()
    if shutil.which("node", path=env["PATH"]) is None:
        pytest.skip("node is not installed")
    managers = pins.custom_managers(CONFIG)
    files = [f for f in pins._project_files(ROOT) if any(m.applies_to(f) for m in managers)]
    texts = {f: (ROOT / f).read_text(errors="replace") for f in files}
    patterns, owners = [], []
    for i, raw in enumerate(m for m in CONFIG["customManagers"] if m.get("customType") == "regex"):
        for pattern in raw["matchStrings"]:
            patterns.append(pattern)
            owners.append(i)
    run = subprocess.run(["node", "-e", NODE_MATCHES], input=json.dumps({"patterns": patterns, "texts": texts}),
                         env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    in_js = {(owners[i], file, offset) for i, file, offset in json.loads(run.stdout)
             if managers[owners[i]].applies_to(file)}
    in_python = {(i, file, m.start("currentValue")) for i, manager in enumerate(managers) for file in files
                 if manager.applies_to(file) for rx in manager.match_strings for m in rx.finditer(texts[file])}
    assert in_js == in_python and len(in_js) >= 50, sorted(in_js ^ in_python)[:10]
