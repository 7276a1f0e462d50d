"""The exact pins of one engine's environment: the Pipfile's, with the engine packages swapped.

    python3 scripts/engine_requirements.py cdktn     # one `name==version` a line, for pip install -r

cdktf (the default) is the Pipfile's [packages] and [dev-packages] as they are (pipenv installs them into .venv).
cdktn is the same less cdktf, its prebuilt providers and constructs, plus requirements-cdktn.txt (installed into
.venv-cdktn by `CDK_ENGINE=cdktn bash scripts/setup.sh`). tests/test_everyday.py checks an environment against
these pins. Plain Python 3.11 (tomllib), no project import: setup runs it before any venv exists.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENGINES = ("cdktf", "cdktn")
# The packages the cdktn requirements replace: the engine, its prebuilt providers, and constructs (another range).
REPLACED = re.compile(r"^(cdktf(-cdktf-provider-.*)?|constructs)$")


def _name(text: str) -> str:
    return re.sub(r"[-_.]+", "-", text).lower()


def pins(engine: str, root: Path = ROOT) -> dict[str, str]:
    """Normalized package name -> "==version" for every package of the engine's environment."""
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}: use one of {', '.join(ENGINES)}")
    pipfile = tomllib.loads((root / "Pipfile").read_text())
    result = {_name(k): v for section in ("packages", "dev-packages") for k, v in pipfile[section].items()}
    if engine == "cdktn":
        result = {k: v for k, v in result.items() if not REPLACED.match(k)}
        for line in (root / "requirements-cdktn.txt").read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                name, _, version = line.partition("==")
                result[_name(name)] = f"=={version.strip()}"
    return result


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in ENGINES:
        print(f"usage: engine_requirements.py {{{'|'.join(ENGINES)}}}", file=sys.stderr)
        return 2
    for name, pin in sorted(pins(argv[0]).items()):
        print(f"{name}{pin}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
