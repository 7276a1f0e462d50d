"""TEMPORARY wiring of the catalog extras `secrets` and `manifests` (issue 14, branch dayone).

The lead's issue 12 replaces stacks/hooks/ with extras declared as data on their component (config/catalog/*.yaml)
and installs them from its own planner; this branch only needs the two kinds it declares (Flux's sync objects
and deploy key, Alertmanager's OnCall URL), in the same format. On merge this module and its one call in
stacks/platform.py are dropped; the catalog data and config/variables.yaml stay.

- `secrets`: a Kubernetes Secret in the component's namespace, created before the component's release, each
  value from a sensitive Terraform variable declared in config/variables.yaml (one variable per stack).
- `manifests`: a release of the pinned raw chart with the objects of a file under config/manifests/
  (((placeholders)) rendered), installed after the component's release.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import yaml

from stacks.load import PROJECT_ROOT

if TYPE_CHECKING:
    from stacks.platform import LayerContext

VARIABLES_FILE = PROJECT_ROOT / "config" / "variables.yaml"


@functools.lru_cache(maxsize=None)
def declared_variables() -> dict[str, dict[str, Any]]:
    data = yaml.safe_load(VARIABLES_FILE.read_text()) or {}
    return dict(data.get("variables") or {})


def _variable(stack: Any, name: str) -> str:
    from cdktf import TerraformVariable, TerraformVariableValidationConfig

    existing = stack.node.try_find_child(name)
    if existing is not None:
        return existing.string_value
    spec = declared_variables().get(name)
    if spec is None:
        raise ValueError(f"config/variables.yaml: variable {name!r} is used by a catalog secret but not declared")
    kwargs: dict[str, Any] = {}
    if "default" in spec:
        kwargs["default"] = spec["default"]
    if spec.get("pattern") and "default" not in spec:
        kwargs["validation"] = [
            TerraformVariableValidationConfig(
                condition=f"${{can(regex({_hcl_string(spec['pattern'])}, var.{name}))}}",
                error_message=f"{name} does not look like the expected value (see config/variables.yaml).",
            )
        ]
    var = TerraformVariable(
        stack, name, type="string", sensitive=True, nullable=False, description=" ".join(spec["description"].split()),
        **kwargs,
    )
    return var.string_value


def _hcl_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class InterimExtras:
    """`before`: the secrets (the releases wait for them). `after`: the manifest releases."""

    def __init__(self) -> None:
        self._secrets: list[tuple[Any, str]] = []

    def before(self, ctx: "LayerContext") -> None:
        from cdktf_cdktf_provider_kubernetes.secret_v1 import SecretV1, SecretV1Metadata

        for comp in ctx.layer.components:
            for extra in comp.secrets:
                secret = SecretV1(
                    ctx.stack,
                    f"{comp.id}-{extra.name}",
                    provider=ctx.providers.kubernetes,
                    metadata=SecretV1Metadata(
                        name=extra.name, namespace=comp.namespace, labels={"app.kubernetes.io/managed-by": "terraform"}
                    ),
                    data={key: _variable(ctx.stack, source.variable) for key, source in extra.data.items()},
                )
                ctx.depends_on[comp.id].append(secret)
                self._secrets.append((secret, comp.namespace))

    def after(self, ctx: "LayerContext") -> None:
        from constructs_lib.addons import AddOnLayer
        from stacks.hooks.manifests import load_manifests, manifest_addon

        for secret, namespace in self._secrets:
            if ctx.addons is not None and namespace in ctx.addons.namespaces:
                # The namespace is created by this layer: refer to its name so the secret waits for it.
                secret.add_override("metadata.namespace", ctx.addons.namespaces[namespace].metadata.name)
        self._secrets.clear()
        cfg = ctx.settings.config
        add_ons = [
            manifest_addon(
                extra.release,
                comp.namespace,
                load_manifests(extra.file, cfg),
                depends_on=[ctx.addons.releases[comp.id]],
                timeout=extra.timeout,
                protect=cfg.namespace_protected(comp.namespace),
            )
            for comp in ctx.layer.components
            for extra in comp.manifests
        ]
        if add_ons:
            ctx.shared["extras"] = AddOnLayer(ctx.stack, "extras", providers=ctx.providers, add_ons=add_ons)
