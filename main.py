#!/usr/bin/env python
"""cdktf entry point: validate config/helix.yaml (or $HELIX_CONFIG) and synthesize the Helix stacks."""

import sys

from stacks.app import main

if __name__ == "__main__":
    sys.exit(main())
