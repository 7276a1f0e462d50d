"""The sensitive variables of config/variables.yaml, rendered where other files list them.

    python -m tools.variables            # print deploy.yml's generated env block
    python -m tools.variables --check    # exit 1 when .github/workflows/deploy.yml's block is out of date
    python -m tools.variables --write    # rewrite that block

deploy.yml passes every variable as TF_VAR_<name> from the repository secret <NAME> (upper case), with the
variable's default when the secret is unset. tests/test_first_deploy.py checks the block, and that README's and
docs/safety.md's tables list exactly these variables.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
VARIABLES = ROOT / "config" / "variables.yaml"
DEPLOY = ROOT / ".github" / "workflows" / "deploy.yml"
BEGIN = "  # BEGIN generated from config/variables.yaml (python -m tools.variables --write)\n"
END = "  # END generated\n"


def variables(path: Path = VARIABLES) -> dict[str, dict]:
    """Variable name -> its spec (description, default, pattern), in file order."""
    return dict((yaml.safe_load(path.read_text()) or {}).get("variables") or {})


def secret_name(variable: str) -> str:
    return variable.upper()


def env_block(specs: dict[str, dict]) -> str:
    lines = []
    for name, spec in specs.items():
        value = f"secrets.{secret_name(name)}"
        if spec.get("default"):
            value += f" || '{spec['default']}'"
        lines.append(f"  TF_VAR_{name}: ${{{{ {value} }}}}\n")
    return BEGIN + "".join(lines) + END


def current_block(text: str) -> str | None:
    if BEGIN not in text or END not in text:
        return None
    start = text.index(BEGIN)
    return text[start : text.index(END, start) + len(END)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.variables", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args(argv)
    block = env_block(variables())
    if not (args.check or args.write):
        sys.stdout.write(block)
        return 0
    text = DEPLOY.read_text()
    now = current_block(text)
    if now is None:
        print(f"error: {DEPLOY.relative_to(ROOT)} has no generated block ({BEGIN.strip()})", file=sys.stderr)
        return 1
    if args.check:
        if now != block:
            print(f"error: {DEPLOY.relative_to(ROOT)}: the TF_VAR_ list is out of date; run python -m tools.variables --write",
                  file=sys.stderr)
            return 1
        return 0
    DEPLOY.write_text(text.replace(now, block))
    return 0


if __name__ == "__main__":
    sys.exit(main())
