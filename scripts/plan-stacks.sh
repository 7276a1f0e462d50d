#!/usr/bin/env bash
# Plan the selected stacks in dependency order with Terraform, check each plan with the destroy guard, and with
# --apply apply each checked plan before planning the next stack. .github/workflows/deploy.yml runs it: the plan
# job without --apply, the deploy job with it.
#
#   bash scripts/plan-stacks.sh [--apply] [PATTERN...]      (cdktf stack patterns; none: every stack)
#
# A failed plan stops everything (exit 1), with one exception in plan-only mode: a stack whose only errors are
# "Unable to find remote state" reads the outputs of a stack that is not deployed yet (a first deploy); that is a
# warning there, and the deploy job plans the stack again once its dependencies are applied. A plan that would
# destroy or replace something stateful stops everything too (tools/guard.py, exit 2), unless
# config/allow-destroy.yaml names it. Nothing is applied after a failed or refused plan.
#
# Environment: CDKTF_OUTDIR (cdktf.out), HELIX_PYTHON (.venv/bin/python), RUNNER_TEMP (logs and plan JSON),
# GITHUB_STEP_SUMMARY (a line per stack).
set -euo pipefail

apply=false
if [[ "${1:-}" == "--apply" ]]; then
  apply=true
  shift
fi
outdir="${CDKTF_OUTDIR:-cdktf.out}"
python="${HELIX_PYTHON:-.venv/bin/python}"
logs="${RUNNER_TEMP:-$(mktemp -d)}"
summary="${GITHUB_STEP_SUMMARY:-/dev/null}"

# Only "its dependencies are not deployed yet": every error of the log is a missing remote state.
only_undeployed_dependencies() {
  local errors missing
  errors=$(grep -c '^Error: ' "$1" || true)
  missing=$(grep -c '^Error: Unable to find remote state' "$1" || true)
  [[ "$errors" -gt 0 && "$errors" -eq "$missing" ]]
}

stacks=$("$python" -m tools.order --outdir "$outdir" "$@")
for stack in $stacks; do
  dir="$outdir/stacks/$stack"
  log="$logs/plan-$stack.txt"
  echo "::group::plan of stack $stack"
  status=0
  {
    terraform -chdir="$dir" init -input=false -no-color &&
      terraform -chdir="$dir" plan -input=false -no-color -out=plan.tfplan
  } >"$log" 2>&1 || status=$?
  cat "$log"
  echo "::endgroup::"
  if [[ "$status" -ne 0 ]]; then
    if ! "$apply" && only_undeployed_dependencies "$log"; then
      echo "::warning::stack $stack: not planned yet: it reads outputs of a stack that is not deployed yet"
      echo "- \`$stack\`: not planned yet (a stack it reads is not deployed yet)" >>"$summary"
      continue
    fi
    echo "::error::stack $stack: terraform plan failed (exit $status); nothing more is planned or applied"
    echo "- \`$stack\`: **plan failed**" >>"$summary"
    exit 1
  fi
  terraform -chdir="$dir" show -json plan.tfplan >"$logs/plan-$stack.json"
  # The destroy guard: exit 2 (and under set -e, the end of this script) on a stateful destroy or replacement.
  counts=$("$python" -m tools.guard plan "$stack" "$logs/plan-$stack.json" --output "$outdir")
  echo "- \`$stack\`: $counts" >>"$summary"
  if "$apply"; then
    terraform -chdir="$dir" apply -input=false -no-color plan.tfplan
  fi
done
