"""One default provider configuration per stack, however many constructs in it need the provider.

Terraform rejects two default (un-aliased) configurations of the same provider in one module, so constructs
never create a utility provider (random, tls, null) themselves: they ask for the stack's.
"""

from __future__ import annotations

from typing import Any, TypeVar

from constructs import Construct

from constructs_lib.engine import TerraformProvider, TerraformStack

P = TypeVar("P", bound=TerraformProvider)


def ensure_provider(scope: Construct, provider_class: type[P], id: str) -> P:
    """The stack's provider of this class with construct id `id`, created at stack level on first use."""
    stack = TerraformStack.of(scope)
    existing = stack.node.try_find_child(id)
    if existing is None:
        # Every prebuilt provider class takes (scope, id); TerraformProvider's own signature says more.
        factory: Any = provider_class
        created: P = factory(stack, id)
        return created
    if not isinstance(existing, provider_class):
        raise TypeError(f"{stack.node.path}/{id} is a {type(existing).__name__}, not a {provider_class.__name__}")
    return existing
