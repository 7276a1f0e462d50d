#!/usr/bin/env python
"""cdktf entry point: validate config/helix.yaml (or $HELIX_CONFIG) and synthesize the Helix stacks.

cdktf.json runs it as `.venv/bin/python -O main.py`, and so does `task synth`. Under -O the jsii bindings skip
their typeguard checks of every constructor and call (a third of the time synthesis spends beyond loading the
jsii assemblies); the config is already validated by pydantic and the jsii kernel still checks every value
against the assembly's types. The output is byte-identical either way (tests/test_safety.py compares the two).
"""

import os
import sys
from importlib.util import find_spec
from pathlib import Path

ROOT = Path(__file__).resolve().parent
# The Node 22 LTS scripts/setup.sh installs into the project when the system's node is older (jsii starts it).
PROJECT_NODE = ROOT / ".node" / "node_modules" / ".bin" / "node"

if __name__ == "__main__":
    if str(ROOT) not in sys.path:  # `python -I`/`-P` leave the script's folder off the path
        sys.path.insert(0, str(ROOT))
    from constructs_lib import engine

    if engine.NAME not in engine.ENGINES:
        print(f"error: {engine.VARIABLE}: {engine.problem()}", file=sys.stderr)
        sys.exit(2)
    missing = [name for name in (engine.CORE, "pydantic", "yaml") if find_spec(name) is None]
    if missing:
        print(
            f"error: {sys.executable} lacks this project's packages ({', '.join(missing)}): "
            "run `bash scripts/setup.sh` once, then `.venv/bin/task synth` (or `.venv/bin/python -O main.py`)",
            file=sys.stderr,
        )
        sys.exit(2)
    if "JSII_NODE" not in os.environ and PROJECT_NODE.exists():
        os.environ["JSII_NODE"] = str(PROJECT_NODE)

    # Unchanged inputs: the previous output stands, and neither pydantic nor jsii is loaded (stacks/synth_cache.py).
    from stacks import synth_cache

    outdir = Path(os.environ.get("CDKTF_OUTDIR", "cdktf.out"))
    key = synth_cache.input_key() if synth_cache.enabled() else None
    if key is not None and synth_cache.reuse(outdir, key, ROOT):
        sys.exit(0)

    from stacks.app import main

    sys.exit(main(cache_key=key))
