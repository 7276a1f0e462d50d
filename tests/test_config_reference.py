"""The cluster file's reference (docs/config-reference.md) and JSON Schema (config/helix.schema.json): generated from
planner/schema.py by tools/config_reference.py, every field described, kept in sync by `python -m tools.docs --check`."""

from __future__ import annotations

import json
import typing
from pathlib import Path

import jsonschema
import pytest
import yaml
from pydantic import BaseModel

from planner.schema import HelixConfig
from tools import config_reference, docs

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
VALID = [*sorted((FIXTURES / "valid").glob("*.yaml")), FIXTURES / "description" / "helix.yaml"]


def _models(model: type[BaseModel], seen: dict[str, type[BaseModel]]) -> dict[str, type[BaseModel]]:
    if model.__name__ in seen:
        return seen
    seen[model.__name__] = model
    for field in model.model_fields.values():
        stack = [field.annotation]
        while stack:
            kind = stack.pop()
            if isinstance(kind, type) and issubclass(kind, BaseModel):
                _models(kind, seen)
            stack.extend(typing.get_args(kind))
    return seen


def test_every_field_of_the_cluster_file_has_a_description():
    models = _models(HelixConfig, {})
    assert len(models) > 20
    missing = [f"{name}.{field}" for name, m in models.items() for field, info in m.model_fields.items() if not info.description]
    assert missing == []
    reference = config_reference.render_reference()
    for name, m in models.items():
        assert f"## {name}" in reference
        for field, info in m.model_fields.items():
            row = next(line for line in reference.split(f"## {name}", 1)[1].splitlines() if line.startswith(f"| `{field}` |"))
            assert " ".join(str(info.description).split())[:40] in row.replace("\\|", "|"), (name, field)


def test_generated_files_are_committed_and_the_check_sees_drift(tmp_path, monkeypatch, capsys):
    for path, text in config_reference.outputs().items():
        assert path.read_text() == text, f"{path.relative_to(ROOT)} is out of date: run `python -m tools.docs`"
    # The check fails on a stale copy and names it; writing brings it back.
    stale = tmp_path / "config-reference.md"
    stale.write_text("old\n")
    monkeypatch.setattr(config_reference, "REFERENCE", stale)
    monkeypatch.setattr(config_reference, "SCHEMA", tmp_path / "helix.schema.json")
    monkeypatch.setattr(docs, "PROJECT_ROOT", tmp_path.parent)
    assert docs._sync(config_reference.outputs(), check=True) == [
        f"{tmp_path.name}/config-reference.md", f"{tmp_path.name}/helix.schema.json"
    ]
    assert stale.read_text() == "old\n" and "out of date" in capsys.readouterr().err
    docs._sync(config_reference.outputs(), check=False)
    assert docs._sync(config_reference.outputs(), check=True) == []


def test_the_cluster_file_names_the_schema_in_its_modeline():
    first = (ROOT / "config" / "helix.yaml").read_text().splitlines()[0]
    assert first == config_reference.MODELINE
    assert (ROOT / "config" / first.split("$schema=./", 1)[1]) == config_reference.SCHEMA


@pytest.mark.parametrize("path", VALID, ids=[p.parent.name + "/" + p.stem for p in VALID])
def test_json_schema_accepts_every_valid_fixture(path):
    schema = json.loads(config_reference.SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(yaml.safe_load(path.read_text()))


def test_json_schema_refuses_what_the_schema_refuses():
    schema = json.loads(config_reference.SCHEMA.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    good = yaml.safe_load((FIXTURES / "valid" / "single-server.yaml").read_text())
    assert not list(validator.iter_errors(good))
    for broken in (
        {**good, "unknown_key": 1},
        {**good, "cluster": {**good["cluster"], "api_port": "6443"}},
        {**good, "cluster": {**good["cluster"], "nodes": [{**good["cluster"]["nodes"][0], "role": "master"}]}},
        {k: v for k, v in good.items() if k != "domain"},
    ):
        assert list(validator.iter_errors(broken)), broken
