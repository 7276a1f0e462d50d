"""Helpers the test modules share: read the synthesized output, synthesize a stack alone, run the entry point.

A helper used by more than one test module lives here (tests/README.md says where tests go); a test module
never imports from another test module.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml

from tests.conftest import ROOT

FIXTURES = ROOT / "tests" / "fixtures"


# --- the synthesized releases (a conftest.Synth) -----------------------------------------------------------


def releases(synth) -> dict[tuple[str, str], tuple[str, str, dict]]:
    """(namespace, release name) -> (stack, logical id, resource)."""
    out = {}
    for (stack, logical), res in synth.all_resources("helm_release").items():
        key = (res["namespace"], res["name"])
        assert key not in out, f"release {key} defined twice ({out.get(key, ('',))[0]} and {stack})"
        out[key] = (stack, logical, res)
    return out


def by_name(synth, name: str) -> tuple[str, str, dict]:
    found = [v for (ns, n), v in releases(synth).items() if n == name]
    assert len(found) == 1, name
    return found[0]


def stack_deps(synth) -> dict[str, set[str]]:
    direct = {name: set(s["dependencies"]) for name, s in synth.manifest["stacks"].items()}

    def closure(name: str) -> set[str]:
        out = set(direct[name])
        for dep in direct[name]:
            out |= closure(dep)
        return out

    return {name: closure(name) for name in direct}


def ordered_after(synth, user: str, provider: str) -> bool:
    """Release `user` is created after release `provider`: depends_on in one stack, a stack dependency across."""
    u_stack, _, u_res = by_name(synth, user)
    p_stack, p_logical, _ = by_name(synth, provider)
    if u_stack == p_stack:
        # Directly, or through releases it depends on (istio-telemetry waits for istiod, which waits for base).
        seen, todo = set(), list(u_res.get("depends_on") or [])
        releases = synth.resources(u_stack, "helm_release")
        while todo:
            dep = todo.pop()
            if dep == f"helm_release.{p_logical}":
                return True
            if dep.startswith("helm_release.") and dep not in seen:
                seen.add(dep)
                todo.extend(releases[dep.removeprefix("helm_release.")].get("depends_on") or [])
        return False
    return p_stack in stack_deps(synth)[u_stack]


def values(res: dict) -> dict:
    """The release's values as the chart receives them (Terraform's $${ and %%{ escapes undone)."""
    merged: dict = {}
    for text in res.get("values") or []:
        doc = yaml.safe_load(text.replace("$${", "${").replace("%%{", "%{"))
        assert isinstance(doc, dict)
        merged.update(doc)
    return merged


# --- the nodes stack alone -----------------------------------------------------------------------------------


def hosts(stack: dict) -> dict[str, dict]:
    """Install resources (one per machine) by node name."""
    out = {}
    for res in stack["resource"]["null_resource"].values():
        if "name" in res.get("triggers", {}):
            out[res["triggers"]["name"]] = res
    return out


def drains(stack: dict) -> dict[str, dict]:
    """Drain resources (destroy-time removal steps) by node name."""
    return {r["triggers"]["node"]: r for r in stack["resource"]["null_resource"].values() if "timeout" in r.get("triggers", {})}


def removed_blocks(stack: dict) -> dict[str, dict[str, dict]]:
    """The stack's `removed` blocks: node name -> {"drain"|"config"|"install": block}."""
    out: dict[str, dict[str, dict]] = {}
    for block in stack.get("removed", []):
        m = re.fullmatch(r"null_resource\.k3s_(.+?)(-drain|-config)?_[0-9A-F]{8}", block["from"])
        assert m, block["from"]
        kind = {"-drain": "drain", "-config": "config", None: "install"}[m.group(2)]
        out.setdefault(m.group(1), {})[kind] = block
    return out


def nodes_stack_of(path_or_config) -> dict:
    """A nodes stack alone, synthesized with Testing.synth (no cross-stack refs needed)."""
    from constructs_lib.backend import LocalStateBackend
    from constructs_lib.engine import App, Testing
    from planner.load import load_plan, resolve_config
    from stacks.nodes import NodesStack

    if isinstance(path_or_config, Path):
        plan = load_plan(path_or_config)
    else:
        plan, problems = resolve_config(path_or_config, "helix.yaml")
        assert plan is not None, problems
    return json.loads(Testing.synth(NodesStack(App(), "nodes", plan=plan, backend=LocalStateBackend())))


def departed_stack() -> dict:
    return nodes_stack_of(FIXTURES / "valid" / "departed-nodes.yaml")


def load_config(path: Path):
    from planner.load import load_plan

    return load_plan(path).config


# --- the entry point, over a previous output -----------------------------------------------------------------


def seed_outdir(outdir: Path) -> dict[str, bytes]:
    """A previous synth's output, to prove it survives untouched."""
    files = {
        "manifest.json": b'{"version": "previous", "stacks": {}}\n',
        "stacks/nodes/cdk.tf.json": b'{"previous": true}\n',
        "stacks/nodes/plan": bytes(range(256)),
    }
    for name, data in files.items():
        (outdir / name).parent.mkdir(parents=True, exist_ok=True)
        (outdir / name).write_bytes(data)
    return files


def tree(outdir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(outdir)): p.read_bytes() for p in sorted(outdir.rglob("*")) if p.is_file()}


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    cpu_seconds: float | None  # of the child process; None for a run in this process
    before: dict[str, bytes]
    after: dict[str, bytes]
    siblings: list[str]


def main_in_process(config: str, workdir: Path, monkeypatch, capsys, extra_env: dict[str, str] | None = None) -> Run:
    """The same entry point, `stacks.app.main()`, called in this process with the same environment."""
    from stacks.app import main

    outdir = workdir / "cdktf.out"
    before = seed_outdir(outdir)
    for name in [k for k in os.environ if k.startswith("HELIX_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("HELIX_CONFIG", config)
    monkeypatch.setenv("CDKTF_OUTDIR", str(outdir))
    for name, value in (extra_env or {}).items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(ROOT)
    capsys.readouterr()
    returncode = main()  # an exception here is a traceback the user would see: the test fails with it
    out = capsys.readouterr()
    return Run(returncode, out.out, out.err, None, before, tree(outdir), sorted(p.name for p in workdir.iterdir()))


# --- refusals of a bad config (tests/test_config_fixtures.py and the hostile-input tests) -------------------

MAX_CPU_SECONDS = 2.5
SUMMARY = re.compile(r"^(\d+) problem\(s\) found; nothing was synthesized\.$")
FIELD_PATH = re.compile(r"^[A-Za-z0-9_.\[\]-]+$")


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def assert_refused(run: Run, shown: str, fragment: str) -> None:
    output = run.stdout + run.stderr
    assert run.returncode == 2, f"exit status {run.returncode}, not 2:\n{output}"
    assert "Traceback" not in output, output
    assert run.stdout == "", f"config errors go to stderr only:\n{run.stdout}"
    assert fragment in run.stderr, f"expected {fragment!r} in:\n{run.stderr}"
    lines = run.stderr.rstrip("\n").split("\n")
    summary = SUMMARY.match(lines[-1])
    assert summary, f"last line should count the problems:\n{run.stderr}"
    problems = lines[:-1]
    assert len(problems) == int(summary.group(1)) >= 1, run.stderr
    prefix = f"error: {shown}: "
    for line in problems:
        assert line.startswith(prefix), f"{line!r} does not start with {prefix!r}"
        rest = line[len(prefix) :]
        # Either `<field path>: <message>` or a whole-file message; a field path has no spaces.
        head = rest.split(": ", 1)[0]
        if ": " in rest and FIELD_PATH.match(head):
            assert rest.split(": ", 1)[1].strip(), line
        else:
            assert rest.strip(), line
    assert len(set(problems)) == len(problems), f"a problem is reported twice:\n{run.stderr}"
    # The previous output is byte-identical and no staging folder was left next to it.
    assert run.after == run.before
    assert run.siblings == ["cdktf.out"], run.siblings
    if run.cpu_seconds is not None:
        assert run.cpu_seconds < MAX_CPU_SECONDS, f"{run.cpu_seconds:.2f} CPU s; config errors must be found before jsii loads"


# --- copies of the data files, broken on purpose (tests/test_plan.py, tests/test_wiring.py) --------------


def copy_data(tmp_path: Path) -> Path:
    """A copy of config/ without the cluster file (the data files only)."""
    data = tmp_path / "config"
    shutil.copytree(ROOT / "config", data, ignore=shutil.ignore_patterns("helix.yaml"))
    return data


def break_data(data: Path, case: dict) -> None:
    target = data / case.get("edit", case.get("delete", ""))
    if "delete" in case:
        target.unlink()
        return
    text = target.read_text()
    if "replace" in case:
        old, new = case["replace"]
        assert old in text, f"{case['edit']} no longer contains {old!r}: update the fixture"
        text = text.replace(old, new, 1)
    if "append" in case:
        text += case["append"]
    target.write_text(text)


# --- the nodes stack's install scripts (tests/test_nodes.py, tests/test_node_lifecycle.py) ---------------


def _provisioners(resource: dict) -> list[tuple[str, dict]]:
    return [next(iter(p.items())) for p in resource.get("provisioner", [])]


def _uploaded(resource: dict, destination_suffix: str) -> str:
    found = [b["content"] for kind, b in _provisioners(resource) if kind == "file" and b["destination"].endswith(destination_suffix)]
    assert len(found) == 1, destination_suffix
    return found[0]


def install_script(resource: dict) -> str:
    return _uploaded(resource, "/install.sh")


def script_var(script: str, name: str) -> str:
    (value,) = re.findall(rf"^{name}=(.*)$", script, re.M)
    return value.strip("'")
