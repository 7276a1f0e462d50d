"""The Helix platform's stacks, composed from constructs_lib and driven by config/."""

# Provider package roots import only the resource modules used (see constructs_lib/lazy_providers.py).
import constructs_lib  # noqa: F401
