"""Load and validate everything the app is built from, before any jsii assembly loads."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from stacks.catalog import PlatformPlan, load_catalog, load_layers, resolve_platform
from stacks.config import HelixConfig, cross_field_problems
from stacks.config_files import ConfigError, Problem, display_path, parse_model, read_yaml_mapping

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = PROJECT_ROOT / "config" / "helix.yaml"
LAYERS_FILE = PROJECT_ROOT / "config" / "layers.yaml"
CATALOG_DIR = PROJECT_ROOT / "config" / "catalog"


@dataclass(frozen=True)
class Settings:
    """A validated cluster file and the platform plan resolved from it."""

    config: HelixConfig
    plan: PlatformPlan
    config_file: str


def config_path_from_env() -> Path:
    """HELIX_CONFIG selects another cluster file; relative paths are taken from the working directory."""
    value = os.environ.get("HELIX_CONFIG")
    return Path(value) if value else DEFAULT_CONFIG


def catalog_dir_from_env() -> Path:
    """HELIX_CATALOG_DIR selects another catalog folder (the benchmark's generated 10x catalog, for one)."""
    value = os.environ.get("HELIX_CATALOG_DIR")
    return Path(value) if value else CATALOG_DIR


def load_settings(config_path: Path | None = None) -> Settings:
    """Return validated settings, or raise ConfigError listing every problem found."""
    path = config_path or config_path_from_env()
    shown = display_path(path, Path.cwd()) if path.is_absolute() else str(path)
    if path == DEFAULT_CONFIG:
        shown = display_path(path, PROJECT_ROOT)

    problems: list[Problem] = []
    data = read_yaml_mapping(path, shown)
    cfg, errs = parse_model(HelixConfig, data, shown)
    problems.extend(errs)
    if cfg is not None:
        problems.extend(Problem(shown, p, m) for p, m in cross_field_problems(cfg))

    layers, errs = load_layers(LAYERS_FILE, PROJECT_ROOT)
    problems.extend(errs)
    catalog, errs = load_catalog(catalog_dir_from_env(), PROJECT_ROOT)
    problems.extend(errs)

    if cfg is None or layers is None:
        raise ConfigError(problems)
    plan, errs = resolve_platform(cfg, shown, layers, display_path(LAYERS_FILE, PROJECT_ROOT), catalog)
    problems.extend(errs)
    if not problems:
        # Needs a valid config and plan: checked once everything else is right.
        from stacks.edge_rules import backend_problems

        problems.extend(backend_problems(cfg, plan, shown))
    if problems:
        raise ConfigError(problems)
    return Settings(config=cfg, plan=plan, config_file=shown)
