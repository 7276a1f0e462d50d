"""Terraform addresses of constructs that do not exist (any more): for `removed` and `moved` blocks.

cdktf names a resource after its construct path below its stack (the ids joined, with a hash suffix), whatever
its type. To name the address a resource had, or would have, without adding it to the real stack, the path is
rebuilt in a scratch app.
"""

from __future__ import annotations

from collections.abc import Sequence


def address_name(path: Sequence[str]) -> str:
    """The Terraform name (after `<type>.`) cdktf gives an element whose construct ids below its stack are `path`."""
    from constructs import Construct

    from constructs_lib.engine import App, TerraformLocal, TerraformStack

    if not path:
        raise ValueError("address_name: the construct path below the stack is empty")
    scope: Construct = TerraformStack(App(), "scratch")
    for cid in path[:-1]:
        scope = Construct(scope, cid)
    return TerraformLocal(scope, path[-1], "").friendly_unique_id
