""".github/workflows/deploy.yml run locally on a fresh copy of the repository: every variable reaches every stack.

Both jobs' `run:` steps run here in order, as GitHub runs them: with the workflow's own shell line, its `env`
block (the `${{ secrets.X }}` expressions given a value for every secret the workflow names, as an adopter who
set them all would have), and a fresh clone as the working folder (the tracked and new files of this checkout).
Stubbed: scripts/setup.sh (it puts this checkout's interpreter into the copy's .venv), `task` (`test` is this
suite, `synth` is the real synth) and `terraform`, whose `plan` fails like Terraform's own when a variable a
stack declares without a default is not in the environment as TF_VAR_<name>. `uses:` steps (checkout,
setup-python, setup-node, setup-terraform) are the copy, this interpreter, the project's node and the stub.

Two configs: the shipped file with only its state backend made remote (the workflow refuses a local one), and a
fixture with the optional variables' sections on (an external object store, etcd snapshots to S3). Issue 23.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import DESCRIPTION_CONFIG, ROOT
from tests.heavy_edits import backend

# The slow lane (`task test-all`, CI): deploy.yml run step by step on fresh copies of the project.
pytestmark = pytest.mark.slow


WORKFLOW = Path(".github") / "workflows" / "deploy.yml"
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")

FAKE_TERRAFORM = r"""#!/usr/bin/env python3
import json, os, sys
if sys.argv[1:2] == ["version"]:  # cdktf's synth asks (provisioner checks): setup-terraform's pinned version
    version = os.environ["FAKE_TERRAFORM_VERSION"]
    print(json.dumps({"terraform_version": version}) if "-json" in sys.argv else "Terraform v" + version)
    sys.exit(0)
dir = sys.argv[1].removeprefix("-chdir=")
command = sys.argv[2]
stack = os.path.basename(dir)
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps({"stack": stack, "command": command}) + "\n")
if command == "plan":
    declared = json.load(open(os.path.join(dir, "cdk.tf.json"))).get("variable") or {}
    unset = sorted(n for n, v in declared.items() if "default" not in v and "TF_VAR_" + n not in os.environ)
    for name in unset:  # Terraform's own message for a required variable with no value (-input=false)
        print("Error: No value for required variable\n\n  on cdk.tf.json: The root module input variable "
              f'"{name}" is not set, and has no default value.\n')
    if unset:
        sys.exit(1)
    open(os.path.join(dir, "plan.tfplan"), "w").write(json.dumps(sorted(declared)))
    print("Plan: 0 to add, 0 to change, 0 to destroy.")
elif command == "show":
    print('{"resource_changes": []}')
elif command == "apply":
    print("Apply complete!")
"""

# scripts/setup.sh, stubbed: the copy's .venv runs this checkout's interpreter (its packages), and `task`.
FAKE_SETUP = """#!/usr/bin/env bash
set -euo pipefail
mkdir -p .venv/bin
printf '#!/bin/sh\\nexec "%s" "$@"\\n' "$REAL_PYTHON" > .venv/bin/python
cat > .venv/bin/task <<'EOF'
#!/usr/bin/env bash
set -euo pipefail
echo "task $*" >> "$FAKE_LOG.task"
case "$1" in
  test-all) ;;                              # the suite itself: this test runs inside it
  synth) exec .venv/bin/python -O main.py ;;
  *) echo "stub task: unexpected verb $1" >&2; exit 3 ;;
esac
EOF
chmod +x .venv/bin/python .venv/bin/task
"""


def fresh_clone(dest: Path) -> Path:
    """The checkout's tracked and new (not ignored) files, as a clone of this commit would have them."""
    listed = subprocess.run(["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                            check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file() and not source.is_symlink():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    (dest / "scripts" / "setup.sh").write_text(FAKE_SETUP)
    return dest


def expand(value: str, secrets: dict[str, str], inputs: dict[str, str]) -> str:
    """GitHub's expressions, the few forms the workflow uses: secrets.X, secrets.X || 'literal', inputs.x."""

    def one(match: re.Match) -> str:
        found = ""
        for alternative in match.group(1).split("||"):
            term = alternative.strip()
            if term.startswith("secrets."):
                found = secrets.get(term.removeprefix("secrets."), "")
            elif term.startswith("inputs."):
                found = inputs[term.removeprefix("inputs.")]
            elif re.fullmatch(r"'[^']*'", term):
                found = term[1:-1]
            else:
                raise AssertionError(f"the local runner does not know the expression {match.group(0)!r}: teach it")
            if found:
                return found
        return found

    return EXPRESSION.sub(one, value)


def secret_names(workflow_text: str) -> set[str]:
    return set(re.findall(r"secrets\.([A-Z0-9_]+)", workflow_text))


def run_workflow(clone: Path, stacks: str = "*") -> dict:
    """Each job's run steps in order, stopping at the first failed step. -> the jobs' outcomes and the calls."""
    text = (clone / WORKFLOW).read_text()
    workflow = yaml.safe_load(text)
    secrets = {name: f"value-of-{name.lower()}" for name in secret_names(text)}  # every secret set
    shell = workflow["defaults"]["run"]["shell"].split()
    bindir = clone.parent / "runner-bin"
    bindir.mkdir(exist_ok=True)
    (bindir / "terraform").write_text(FAKE_TERRAFORM)
    (bindir / "terraform").chmod(0o755)
    node = ROOT / ".node" / "node_modules" / ".bin"
    log = clone.parent / "calls.log"
    log.write_text("")
    result: dict = {"log": log, "jobs": {}}
    for job_name, job in workflow["jobs"].items():
        temp = clone.parent / f"runner-temp-{job_name}"
        temp.mkdir(exist_ok=True)
        env = {"HOME": str(clone.parent), "LANG": "C.UTF-8", "RUNNER_TEMP": str(temp), "REAL_PYTHON": str(ROOT / ".venv" / "bin" / "python"),
               "PATH": os.pathsep.join([str(bindir), *([str(node)] if node.is_dir() else []), "/usr/local/bin", "/usr/bin", "/bin"]),
               "FAKE_LOG": str(log), "GITHUB_STEP_SUMMARY": str(temp / "summary.md")}
        env.update({k: expand(str(v), secrets, {"stacks": stacks}) for k, v in workflow["env"].items()})
        env.update({k: expand(str(v), secrets, {"stacks": stacks}) for k, v in (job.get("env") or {}).items()})
        setup = [s for s in job["steps"] if str(s.get("uses", "")).startswith("hashicorp/setup-terraform@")]
        env["FAKE_TERRAFORM_VERSION"] = str(setup[0]["with"]["terraform_version"])
        outcome = {"steps": [], "returncode": 0, "output": ""}
        for i, step in enumerate(job["steps"]):
            if "run" not in step:
                continue
            script = temp / f"step-{i}.sh"
            script.write_text(step["run"])
            proc = subprocess.run([part.replace("{0}", str(script)) for part in shell], cwd=clone, env=env,
                                  capture_output=True, text=True, timeout=600)
            outcome["steps"].append(step.get("name", step["run"].split("\n")[0]))
            outcome["output"] += proc.stdout + proc.stderr
            if proc.returncode != 0:
                outcome["returncode"] = proc.returncode
                break
        result["jobs"][job_name] = outcome
        if outcome["returncode"] != 0:
            break  # `deploy` needs `plan`
    return result


def calls(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def declared_variables(clone: Path) -> dict[str, set[str]]:
    manifest = json.loads((clone / "cdktf.out" / "manifest.json").read_text())
    out = {}
    for stack in manifest["stacks"]:
        tf = json.loads((clone / "cdktf.out" / "stacks" / stack / "cdk.tf.json").read_text())
        out[stack] = {n for n, v in (tf.get("variable") or {}).items() if "default" not in v}
    return out


def write_config(clone: Path, data: dict) -> None:
    """The copy's cluster file replaced, as an adopter edits theirs."""
    (clone / "config" / "helix.yaml").write_text(yaml.safe_dump(data, sort_keys=False))


def shipped_with_remote_state(clone: Path) -> None:
    """The shipped file as it is, but for the state backend: a first deploy keeps state in a bucket."""
    write_config(clone, backend(yaml.safe_load((clone / "config" / "helix.yaml").read_text()), "s3"))


def optional_sections_on(clone: Path) -> None:
    """A fixture config with every section that adds variables: an external object store, etcd snapshots to S3."""
    data = yaml.safe_load(DESCRIPTION_CONFIG.read_text())
    data["object_storage"] = {**data["object_storage"], "mode": "external",
                              "external": {"endpoint": "s3.example.org", "region": "eu-central-1"}}
    data["cluster"]["etcd_snapshots"] = {"schedule_cron": "0 */4 * * *", "retention": 30,
                                         "s3": {"endpoint": "minio.example.org", "bucket": "etcd", "region": "eu-west-1"}}
    write_config(clone, backend(data, "s3"))


CONFIGS = {"shipped-remote-state": shipped_with_remote_state, "optional-sections-on": optional_sections_on}


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def deployed(request, tmp_path_factory):
    clone = fresh_clone(tmp_path_factory.mktemp(request.param) / "repo")
    CONFIGS[request.param](clone)
    return request.param, clone, run_workflow(clone)


def test_both_jobs_run_every_step_and_deploy_every_stack(deployed):
    name, clone, result = deployed
    for job, outcome in result["jobs"].items():
        assert outcome["returncode"] == 0, (name, job, outcome["steps"][-1], outcome["output"][-3000:])
    assert set(result["jobs"]) == {"plan", "deploy"}
    stacks = set(declared_variables(clone))
    made = calls(result["log"])
    assert {c["stack"] for c in made if c["command"] == "plan"} == stacks
    assert {c["stack"] for c in made if c["command"] == "apply"} == stacks  # the deploy job applied each
    tasks = (result["log"].parent / "calls.log.task").read_text().split("\n")
    assert tasks[:3] == ["task test-all", "task synth", "task synth"], tasks  # plan: test-all, synth; deploy: synth


def test_every_variable_of_every_stack_is_passed(deployed):
    """Each stack's required variables were in the plan's environment (the stub would have failed otherwise),
    and the configs do declare the optional ones: the check covers them."""
    name, clone, _ = deployed
    needed = set().union(*declared_variables(clone).values())
    env = yaml.safe_load((clone / WORKFLOW).read_text())["env"]
    assert {f"TF_VAR_{v}" for v in needed} <= set(env), (name, sorted(needed))
    if name == "optional-sections-on":
        assert {"object_storage_access_key_id", "object_storage_secret_access_key",
                "etcd_s3_access_key", "etcd_s3_secret_key"} <= needed


@pytest.mark.parametrize("dropped", ["object_storage_secret_access_key", "ssh_user"])
def test_a_variable_missing_from_the_workflow_fails_the_plan_job(tmp_path, dropped):
    """The check is real: deploy.yml without one TF_VAR_ line stops at the plan of the first stack needing it."""
    clone = fresh_clone(tmp_path / "repo")
    optional_sections_on(clone)
    workflow = clone / WORKFLOW
    text = workflow.read_text()
    line = next(x for x in text.splitlines(keepends=True) if x.strip().startswith(f"TF_VAR_{dropped}:"))
    workflow.write_text(text.replace(line, ""))
    result = run_workflow(clone)
    plan = result["jobs"]["plan"]
    assert plan["returncode"] == 1 and "deploy" not in result["jobs"], plan["output"][-2000:]
    assert f'input variable "{dropped}" is not set' in plan["output"]
    assert not any(c["command"] == "apply" for c in calls(result["log"]))


def test_a_local_state_backend_is_refused_before_any_plan(tmp_path):
    clone = fresh_clone(tmp_path / "repo")
    write_config(clone, backend(yaml.safe_load(DESCRIPTION_CONFIG.read_text()), "local"))
    result = run_workflow(clone)
    plan = result["jobs"]["plan"]
    assert plan["returncode"] == 2 and plan["steps"][-1] == "Refuse a local state backend", plan["output"][-2000:]
    assert calls(result["log"]) == []
