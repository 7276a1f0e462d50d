#!/usr/bin/env python
"""cdktf entry point: validate config/helix.yaml (or $HELIX_CONFIG) and synthesize the Helix stacks.

cdktf.json runs it as `python -O main.py`. Under -O the jsii bindings skip their typeguard checks of every
constructor and call (a third of the time synthesis spends beyond loading the jsii assemblies); the config is
already validated by pydantic and the jsii kernel still checks every value against the assembly's types. The
output is byte-identical either way (tests/test_safety.py compares the two).
"""

import sys

from stacks.app import main

if __name__ == "__main__":
    sys.exit(main())
