"""The checks cdktf runs at synth that the app keeps, done on the synthesized JSON instead.

The app synthesizes with cdktf's validation off (`App(skip_validation=True)`, stacks/app.py). cdktf 0.21 adds two
kinds of validation to a construct tree:

- `ValidateProviderPresence`, on every stack: each resource and data source has its provider in the same stack.
  It guards against a defect of the code, not of a config, and is kept: `providers_missing` checks it here.
- `ValidateTerraformVersion`, on every `terraform_data` resource, import block, `cloud` backend and stack with moves:
  each runs `terraform version` on the synthesizing machine (a shell and a Terraform process per construct; seven
  of them, about 0.3 s, for the shipped config) and fails the synth, with a jsii traceback, where no Terraform is
  installed. A synth runs no Terraform (a reviewer, a CI synth job or `task review` need none), and every stack
  states `required_version = ">= 1.10"`, which Terraform enforces itself wherever it runs: these are dropped.

`skip_validation` turns off every construct validation, a library's too: no construct of this project adds one
(`node.add_validation`; tests/test_foundation.py fails if one does), so a rule the output must keep goes here.
"""

from __future__ import annotations

from pathlib import Path

from stacks.outdir import read_stacks

# Resource and data source types Terraform itself provides (terraform_data, terraform_remote_state).
BUILT_IN = "terraform"


class SynthInvalid(Exception):
    """The synthesized output breaks a rule the stacks must keep; one line per problem."""

    def __init__(self, lines: list[str]):
        super().__init__("\n".join(lines))
        self.lines = lines


def providers_missing(outdir: Path) -> list[str]:
    """One line per stack whose resources or data sources use a provider the stack does not configure."""
    lines = []
    for name, stack in sorted(read_stacks(outdir).items()):
        used = {rtype.split("_", 1)[0] for block in ("resource", "data") for rtype in stack.get(block, {})} - {BUILT_IN}
        missing = sorted(used - set(stack.get("provider", {})))
        if missing:
            lines.append(f"stack {name!r} has resources of providers it does not configure: {', '.join(missing)}")
    return lines
