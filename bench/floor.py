"""The jsii floor: a process that only loads the jsii assemblies the app uses, and builds nothing.

    python bench/floor.py helm kubernetes cloudflare random tls          # strict floor
    python bench/floor.py --eager helm kubernetes cloudflare random tls  # eager floor

It imports the engine's `_jsii` (constructs_lib/engine.py), `constructs._jsii` and each named provider package's `_jsii`. Importing
`pkg._jsii` runs `pkg/__init__.py` first, and a prebuilt provider's `__init__.py` imports every resource
module of the provider (559 for Cloudflare). The strict floor runs those package roots through
constructs_lib.lazy_providers, so it loads the assemblies and nothing else; `--eager` runs them as
they are, which is what a plain `import pkg._jsii` costs (and what the app cost before lazy_providers).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv: list[str]) -> int:
    eager = "--eager" in argv
    providers = [a for a in argv if not a.startswith("-")]
    if not eager:
        from constructs_lib import lazy_providers

        lazy_providers.install()
    from constructs_lib import engine

    engine.core_module("_jsii")
    importlib.import_module("constructs._jsii")
    for name in providers:
        engine.provider_module(name, "_jsii")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
