"""Run by the installed-package venv's python (tests/test_library.py): resolve every public name of
constructs_lib, then run each example the way `python examples/<name>.py [args]` run from this working
directory runs it (runpy as __main__, with that command's sys.argv, sys.path[0] and environment), all in this one
interpreter so the jsii assemblies load once. Prints one JSON line.

    python library_harness.py '<json: [{"name", "path", "args", "env"}, ...]>'
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import runpy
import sys
import traceback


def public_names() -> dict:
    import constructs_lib

    hooks = len(sys.meta_path)
    constructs_lib.enable_lazy_providers()
    constructs_lib.enable_lazy_providers()
    added = len(sys.meta_path) - hooks
    objects = {name: getattr(constructs_lib, name) for name in constructs_lib.__all__}
    return {
        "added": added,
        "modules": {name: obj.__module__ for name, obj in objects.items()},
        "files": sorted({sys.modules[obj.__module__].__file__ for obj in objects.values()}),
    }


def run_example(path: str, args: list[str], env: dict[str, str]) -> dict:
    saved_argv, saved_path0 = sys.argv, sys.path[0]
    saved_env = {k: os.environ.get(k) for k in env}
    out, err = io.StringIO(), io.StringIO()
    returncode = 0
    try:
        sys.argv = [path, *args]
        sys.path[0] = os.path.dirname(path)
        os.environ.update(env)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                runpy.run_path(path, run_name="__main__")
            except SystemExit as exc:
                code = exc.code
                returncode = code if isinstance(code, int) else (0 if code is None else 1)
                if not isinstance(code, (int, type(None))):
                    print(code, file=sys.stderr)
            except BaseException:  # noqa: BLE001 - reported to the test, as the interpreter would print it
                traceback.print_exc()
                returncode = 1
    finally:
        sys.argv, sys.path[0] = saved_argv, saved_path0
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return {"returncode": returncode, "stdout": out.getvalue(), "stderr": err.getvalue()}


def main() -> None:
    examples = json.loads(sys.argv[1])
    facts = {"names": public_names(), "examples": {}}
    for ex in examples:
        facts["examples"][ex["name"]] = run_example(ex["path"], ex["args"], ex["env"])
    print(json.dumps(facts))


if __name__ == "__main__":
    main()
