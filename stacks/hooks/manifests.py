"""Kubernetes objects installed as Helm releases of one pinned raw-manifest chart (config/manifests/raw-chart.yaml).

Custom resources go through Helm rather than kubernetes_manifest: kubernetes_manifest needs its kind's CRD on
the API server at plan time, which fails when the CRD comes from the same apply (istio-base and the Telemetry
resource, the Plan CRD and the Plans) and whenever the cluster does not exist yet. A helm_release touches the
cluster only at apply time and is ordered after the release that brings the CRD with depends_on.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from constructs_lib.addons import HelmAddOn
from stacks.catalog import placeholder_values, render_placeholders
from stacks.config import EXACT_VERSION, HelixConfig
from stacks.load import PROJECT_ROOT

MANIFESTS_DIR = PROJECT_ROOT / "config" / "manifests"
# The project's own files, read on every synth: libyaml when PyYAML has it (same data, several times faster).
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class RawChart:
    repository: str
    chart: str
    version: str


@functools.lru_cache(maxsize=None)
def raw_chart(path: Path = MANIFESTS_DIR / "raw-chart.yaml") -> RawChart:
    """The pinned raw chart; its repository must be https:// or oci:// and its version exact."""
    data = yaml.load(path.read_text(), Loader=_Loader)  # noqa: S506 - a safe loader
    chart = RawChart(repository=data["repository"], chart=data["chart"], version=str(data["version"]))
    if not chart.repository.startswith(("https://", "oci://")) or not EXACT_VERSION.match(chart.version):
        raise ValueError(f"{path.name}: the raw chart needs an https:// or oci:// repository and an exact version")
    return chart


def read_data(relative: str) -> Any:
    return yaml.load((MANIFESTS_DIR / relative).read_text(), Loader=_Loader)  # noqa: S506 - a safe loader


def load_manifests(relative: str, cfg: HelixConfig) -> list[dict[str, Any]]:
    """The objects of a multi-document YAML file under config/manifests/, with ((placeholders)) replaced."""
    docs = [d for d in yaml.load_all((MANIFESTS_DIR / relative).read_text(), Loader=_Loader) if d]  # noqa: S506
    problems: list[tuple[str, str]] = []
    rendered = render_placeholders(docs, placeholder_values(cfg), f"config/manifests/{relative}", problems)
    if problems:
        raise ValueError("; ".join(f"{where}: {msg}" for where, msg in problems))
    for doc in rendered:
        if not isinstance(doc, dict) or not {"apiVersion", "kind", "metadata"} <= set(doc):
            raise ValueError(f"config/manifests/{relative}: every document needs apiVersion, kind and metadata")
    return rendered


def manifest_addon(
    name: str,
    namespace: str,
    resources: Sequence[Mapping[str, Any]],
    *,
    needs: Sequence[str] = (),
    depends_on: Sequence[Any] = (),
    protect: bool = False,
    timeout: int = 300,
) -> HelmAddOn:
    """A release of the raw chart that installs `resources` as they are (no Helm templating)."""
    chart = raw_chart()
    return HelmAddOn(
        name=name,
        namespace=namespace,
        repository=chart.repository,
        chart=chart.chart,
        version=chart.version,
        values={"resources": [dict(r) for r in resources]},
        needs=tuple(needs),
        timeout=timeout,
        depends_on=tuple(depends_on),
        protect=protect,
    )
