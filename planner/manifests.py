"""The manifest files under config/manifests/ and the raw chart that installs them, read and checked up front."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from planner.catalog import render_placeholders
from planner.files import ConfigError, Problem, display_path, parse_model, read_yaml_documents, read_yaml_mapping
from planner.schema import ExactVersion, Strict


class RawChartFile(Strict):
    """config/manifests/raw-chart.yaml: the pinned chart that installs plain objects as a Helm release."""

    repository: str = Field(pattern=r"^(https|oci)://[^\s]+$")
    chart: str = Field(min_length=1)
    version: ExactVersion


def load_raw_chart(path: Path, root: Path) -> tuple[RawChartFile | None, list[Problem]]:
    shown = display_path(path, root)
    try:
        data = read_yaml_mapping(path, shown)
    except ConfigError as exc:
        return None, exc.problems
    return parse_model(RawChartFile, data, shown)


def load_manifest_file(
    folder: Path, relative: str, root: Path, known: dict[str, Any]
) -> tuple[list[dict[str, Any]], list[Problem]]:
    """The objects of one file under config/manifests/, placeholders replaced; problems name the file and the
    document's path (documents[i].field)."""
    path = folder / relative
    shown = display_path(path, root)
    if ".." in Path(relative).parts or Path(relative).is_absolute():
        return [], [Problem(shown, "", "a manifest file is a path inside config/manifests/")]
    try:
        docs = read_yaml_documents(path, shown)
    except ConfigError as exc:
        return [], exc.problems
    problems: list[Problem] = []
    found: list[tuple[str, str]] = []
    rendered = render_placeholders(docs, known, "documents", found)
    problems.extend(Problem(shown, where, message) for where, message in found)
    if not rendered:
        problems.append(Problem(shown, "", "holds no Kubernetes object"))
    for i, doc in enumerate(rendered):
        if not isinstance(doc, dict):
            problems.append(Problem(shown, f"documents[{i}]", "a Kubernetes object is a mapping"))
            continue
        missing = [key for key in ("apiVersion", "kind", "metadata") if key not in doc]
        if missing:
            problems.append(Problem(shown, f"documents[{i}]", f"missing {', '.join(missing)}"))
        elif not isinstance(doc["metadata"], dict) or not doc["metadata"].get("name"):
            problems.append(Problem(shown, f"documents[{i}].metadata.name", "required field is missing"))
    return rendered, problems
