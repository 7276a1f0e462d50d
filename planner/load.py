"""Read and check everything the app is built from, before any jsii assembly loads, into one PlatformPlan.

    config/helix.yaml (or $HELIX_CONFIG)   the cluster file
    config/layers.yaml                     the layer order
    config/catalog/*.yaml                  the chart catalog (or $HELIX_CATALOG_DIR)
    config/variables.yaml                  the sensitive variables the catalog's extras may use
    config/manifests/                      the raw chart and the manifest files extras install

$HELIX_DATA_DIR replaces config/ for every data file but the cluster file (tests, and teams that keep a
modified catalog elsewhere).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from planner.catalog import VariablesFile, load_catalog, load_layers
from planner.edge_rules import backend_problems
from planner.files import ConfigError, Problem, display_path, parse_model, read_yaml_mapping
from planner.manifests import load_raw_chart
from planner.model import PlatformPlan
from planner.resolve import Inputs, resolve_platform
from planner.schema import HelixConfig, cross_field_problems
from planner.validate import config_problems, read_cluster_mapping

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = PROJECT_ROOT / "config"
DEFAULT_CONFIG = DATA_DIR / "helix.yaml"


def config_path_from_env() -> Path:
    """HELIX_CONFIG selects another cluster file; relative paths are taken from the working directory."""
    value = os.environ.get("HELIX_CONFIG")
    return Path(value) if value else DEFAULT_CONFIG


def data_dir_from_env() -> Path:
    value = os.environ.get("HELIX_DATA_DIR")
    return Path(value) if value else DATA_DIR


def catalog_dir_from_env(data_dir: Path) -> Path:
    """HELIX_CATALOG_DIR selects another catalog folder (the benchmark's generated 10x catalog, for one)."""
    value = os.environ.get("HELIX_CATALOG_DIR")
    return Path(value) if value else data_dir / "catalog"


def _shown(path: Path) -> str:
    if not path.is_absolute():
        return str(path)
    shown = display_path(path, PROJECT_ROOT)
    return shown if not Path(shown).is_absolute() else display_path(path, Path.cwd())


def _load_variables(path: Path) -> tuple[VariablesFile | None, list[Problem]]:
    shown = _shown(path)
    try:
        data = read_yaml_mapping(path, shown)
    except ConfigError as exc:
        return None, exc.problems
    return parse_model(VariablesFile, data, shown)


def _collect(read: Callable[[], tuple[Any, list[Problem]]], problems: list[Problem]) -> Any:
    """Run one loader; its problems (and a ConfigError's) join the list, and its value is None on failure."""
    try:
        value, errs = read()
    except ConfigError as exc:
        value, errs = None, exc.problems
    problems.extend(errs)
    return value


def resolve_config(
    cfg: HelixConfig | None, config_file: str, data_dir: Path | None = None
) -> tuple[PlatformPlan | None, list[Problem]]:
    """Read the data files (layers, catalog, variables, manifests) and resolve a parsed cluster file with them.
    With cfg None (the cluster file did not parse), the data files are still read and checked."""
    data = data_dir or data_dir_from_env()
    problems: list[Problem] = []
    if cfg is not None:
        problems.extend(Problem(config_file, p, m) for p, m in cross_field_problems(cfg))
        problems.extend(Problem(config_file, p, m) for p, m in config_problems(cfg))
    layers = _collect(lambda: load_layers(data / "layers.yaml", PROJECT_ROOT), problems)
    catalog = _collect(lambda: load_catalog(catalog_dir_from_env(data), PROJECT_ROOT), problems)
    variables = _collect(lambda: _load_variables(data / "variables.yaml"), problems)
    raw_chart = _collect(lambda: load_raw_chart(data / "manifests" / "raw-chart.yaml", PROJECT_ROOT), problems)
    if cfg is None or layers is None or catalog is None or variables is None or raw_chart is None or problems:
        # Resolving against broken data would only add follow-on problems; the files' own come first.
        return None, problems
    plan, errs = resolve_platform(
        Inputs(
            config=cfg,
            config_file=config_file,
            layers=layers,
            layers_file=_shown(data / "layers.yaml"),
            catalog=catalog,
            variables=variables,
            variables_file=_shown(data / "variables.yaml"),
            raw_chart=raw_chart,
            manifests_dir=data / "manifests",
            root=PROJECT_ROOT,
        )
    )
    problems.extend(errs)
    if plan is not None and not problems:
        # Rules that need the resolved plan (which Ingresses the installed components declare).
        problems.extend(backend_problems(cfg, plan, config_file))
        problems.extend(pod_security_problems(cfg, plan, catalog, config_file))
    return (plan if not problems else None), problems


# Pod Security Standards levels, lowest first.
POD_SECURITY_LEVELS = ("restricted", "baseline", "privileged")
ENFORCE_LABEL = "pod-security.kubernetes.io/enforce"


def pod_security_problems(
    cfg: HelixConfig, plan: PlatformPlan, catalog: dict[str, tuple[Any, str]], config_file: str
) -> list[Problem]:
    """A namespace that enforces a pod-security level below what an installed component's pods need (catalog
    `pod_security`): the API server would refuse those pods and the release would time out."""
    out = []
    for cid, comp in sorted(plan.components.items()):
        need = catalog[cid][0].pod_security if cid in catalog else None
        ns = cfg.namespaces.get(comp.namespace)
        level = (ns.labels or {}).get(ENFORCE_LABEL) if ns is not None else None
        if need is None or level not in POD_SECURITY_LEVELS:
            continue
        if POD_SECURITY_LEVELS.index(level) < POD_SECURITY_LEVELS.index(need.level):
            out.append(Problem(config_file, f"namespaces.{comp.namespace}.labels",
                               f"{ENFORCE_LABEL} is {level}, but {cid}'s pods need {need.level}: {need.because}"))
    return out


def load_plan(config_path: Path | None = None, data_dir: Path | None = None) -> PlatformPlan:
    """The resolved plan, or raise ConfigError listing every problem found in any input."""
    path = config_path or config_path_from_env()
    shown = _shown(path)
    problems: list[Problem] = []
    cfg = _collect(lambda: parse_model(HelixConfig, read_cluster_mapping(path, shown), shown), problems)
    plan, errs = resolve_config(cfg, shown, data_dir)
    problems.extend(errs)
    if problems or plan is None:
        raise ConfigError(problems)
    return plan
