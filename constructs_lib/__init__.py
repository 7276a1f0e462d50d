"""Reusable cdktf constructs (no Helix specifics).

Importing this package makes prebuilt provider packages import only the resource modules used: see
constructs_lib/lazy_providers.py (HELIX_EAGER_PROVIDERS=1 turns it off).
"""

from constructs_lib import lazy_providers as _lazy_providers

_lazy_providers.install()
