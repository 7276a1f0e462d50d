"""The Helix platform's stacks, composed from constructs_lib and driven by config/."""

import os

# Provider package roots import only the resource modules used (see constructs_lib/lazy_providers.py).
# The library leaves this opt-in; the Helix app opts in here, before any stack module imports a provider.
# HELIX_EAGER_PROVIDERS=1 turns it off (to compare output or timings).
if os.environ.get("HELIX_EAGER_PROVIDERS") != "1":
    from constructs_lib import enable_lazy_providers

    enable_lazy_providers()
