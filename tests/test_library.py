"""constructs_lib as a library: project-independent sources, and the INSTALLED package running every example.

The background fixture `installed` builds a fresh virtualenv in a temp dir, pip-installs a copy of the repo into
it (offline: --no-index, --no-build-isolation) and deletes the copy's constructs_lib/, so every later import of
constructs_lib can only come from the venv. The heavy jsii packages are not reinstalled: a .pth file in the venv
points at this interpreter's site-packages (`venv --system-site-packages` would expose the *base* interpreter's
packages, which is not where they live when the tests themselves run in a venv). `--no-index` makes pip fail
instead of downloading if a pinned dependency is not already satisfied.

Then a fresh interpreter of the venv imports constructs_lib alone (it must stay cheap and load no jsii), and one
more runs tests/library_harness.py: every public name resolved, then each example run as `python
examples/<name>.py` would run it, from a working directory outside the source tree, in that one interpreter so
the jsii assemblies load once rather than once per example.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from tests.conftest import background_fixture

ROOT = Path(__file__).resolve().parent.parent
HARNESS = Path(__file__).with_name("library_harness.py")
LIB = ROOT / "constructs_lib"
EXAMPLES_DIR = ROOT / "examples"
LIB_SOURCES = sorted(LIB.glob("*.py"))
EXAMPLES = sorted(p.stem for p in EXAMPLES_DIR.glob("*.py"))

# What each example must synthesize, and how the test passes its output folder: "default" (./cdktf.out in
# the working directory), "argv" (first argument) or "env" (CDKTF_OUTDIR). Resource counts: an int is exact,
# None means "at least one" (internals of a construct that its own tests pin down).
EXPECTED: dict[str, dict] = {
    "k3s_with_addon": {
        "outdir_via": "argv",
        "stacks": {
            "cluster": {
                "null_resource": 11,  # per node: install, config roll, and destroy-time drain; the endpoint check; the token rotation
                "random_password": 2,  # the server and the agent join secrets
                "terraform_data": 3,  # the cluster-wide flags record, the join version, the cluster-init record
                "tls_private_key": None,
                "tls_self_signed_cert": None,
                "tls_cert_request": None,
                "tls_locally_signed_cert": None,
            },
            "addons": {"helm_release": 1},
        },
    },
    "tunnel_for_existing_cluster": {
        "outdir_via": "env",
        "stacks": {
            "tunnel": {
                "cloudflare_zero_trust_tunnel_cloudflared": 1,
                "cloudflare_zero_trust_tunnel_cloudflared_config": 1,
                "cloudflare_dns_record": 2,
                "random_bytes": 1,  # the tunnel secret
                "kubernetes_namespace_v1": 1,
                "helm_release": 1,  # the cloudflared connector
            },
        },
    },
    "addons_on_existing_cluster": {
        "outdir_via": "default",
        "stacks": {
            "addons": {
                "helm_release": 2,
                "kubernetes_namespace_v1": 2,
                "kubernetes_secret_v1": 1,
                "random_password": 1,
            },
        },
    },
}

# Third-party top-level modules the library may import -> the distribution that provides them.
DISTRIBUTION_OF = {"cdktf": "cdktf", "constructs": "constructs", "yaml": "pyyaml"}


# --------------------------------------------------------------------------------------------- helpers


def imported_modules(source: str) -> set[str]:
    """Absolute module names imported by a Python source (relative imports are reported as '.')."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add("." if node.level else node.module or "")
    return names


def project_imports(source: str) -> set[str]:
    """Imports of the app's own packages (planner, stacks, tools, config), which the library must never use."""
    return {m for m in imported_modules(source) if m.split(".")[0] in ("planner", "stacks", "tools", "config")}


def helix_mentions(source: str) -> list[str]:
    return [line.strip() for line in source.splitlines() if re.search("helix", line, re.IGNORECASE)]


def requirement_pins(requirements: list[str]) -> dict[str, str]:
    pins = {}
    for req in requirements:
        name, sep, version = req.partition("==")
        assert sep and version and not re.search(r"[<>~*,;!]", version), f"not an exact pin: {req!r}"
        pins[name.strip().lower()] = version.strip()
    return pins


def requirement_ranges(requirements: list[str]) -> dict[str, SpecifierSet]:
    """name -> its version range; each range has a lower and an upper bound and no exact pin."""
    ranges = {}
    for req in requirements:
        parsed = Requirement(req)
        operators = {spec.operator for spec in parsed.specifier}
        assert ">=" in operators and "<" in operators and "==" not in operators, f"not a bounded range: {req!r}"
        ranges[parsed.name.lower()] = parsed.specifier
    return ranges


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def third_party_distributions(path: Path) -> set[str]:
    dists = set()
    stdlib = sys.stdlib_module_names
    for module in imported_modules(path.read_text()):
        top = module.split(".")[0]
        if module == "." or top in stdlib or top in ("constructs_lib", "__future__"):
            continue
        if top.startswith("cdktf_cdktf_provider_"):
            dists.add(top.replace("_", "-"))
        else:
            assert top in DISTRIBUTION_OF, f"{path.name} imports {top}, which no declared dependency provides"
            dists.add(DISTRIBUTION_OF[top])
    return dists


def class_defs(path: Path) -> dict[str, ast.ClassDef]:
    return {n.name: n for n in ast.parse(path.read_text()).body if isinstance(n, ast.ClassDef)}


def documented_props(cls: ast.ClassDef) -> tuple[str, list[str]]:
    """(docstring, the names it must describe): dataclass fields and keyword-only __init__ parameters.

    A parameter typed with a *Props class counts as described when the docstring names the parameter or
    that class.
    """
    doc = ast.get_docstring(cls) or ""
    names: list[str] = [
        n.target.id for n in cls.body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)
    ]
    for node in cls.body:
        if isinstance(node, ast.FunctionDef) and node.name == "__init__":
            for arg in node.args.kwonlyargs:
                annotation = ast.unparse(arg.annotation) if arg.annotation else ""
                names.append(f"{arg.arg}|{annotation}" if annotation.endswith("Props") else arg.arg)
    return doc, names


def is_described(doc: str, name: str) -> bool:
    return any(re.search(rf"\b{re.escape(alt)}\b", doc) for alt in name.split("|"))


# ------------------------------------------------------------------------------------ source checks


def test_helpers_detect_what_they_look_for():
    """The scans below would catch a violation (so they cannot pass vacuously)."""
    bad = "from planner.schema import HelixConfig\nimport stacks.app\nfrom constructs_lib import addons\n"
    assert project_imports(bad) == {"planner.schema", "stacks.app"}
    assert helix_mentions('NAME = "Helix-AI"\nok = 1\n') == ['NAME = "Helix-AI"']
    doc, names = documented_props(ast.parse('class A:\n    """Props: x."""\n    x: int\n    y: int\n').body[0])
    assert [n for n in names if not is_described(doc, n)] == ["y"]


def test_library_sources_are_project_independent():
    assert len(LIB_SOURCES) >= 5, "constructs_lib sources not found"
    for path in LIB_SOURCES:
        source = path.read_text()
        assert not helix_mentions(source), f"{path.name} mentions Helix: {helix_mentions(source)}"
        assert not project_imports(source), f"{path.name} imports the app: {project_imports(source)}"


def test_examples_use_only_the_library():
    assert EXAMPLES, "no examples"
    assert set(EXPECTED) == set(EXAMPLES), "every example needs expectations in EXPECTED (and vice versa)"
    for name in EXAMPLES:
        source = (EXAMPLES_DIR / f"{name}.py").read_text()
        assert not project_imports(source), f"{name} imports the app: {project_imports(source)}"
        assert not helix_mentions(source), f"{name} mentions Helix"
        assert "constructs_lib" in imported_modules(source)
        assert 'if __name__ == "__main__":' in source


def test_dependencies_are_ranges_holding_the_pipfile_pins_and_cover_every_import():
    """The library declares ranges (it installs beside other code); the app's Pipfile pins one exact version of
    each, inside the range."""
    project = pyproject()
    # Extras count too (`aws`: constructs_lib.aws_node_pool, imported only by whoever uses it).
    extras = [r for group in project["project"].get("optional-dependencies", {}).values() for r in group]
    pins = requirement_ranges([*project["project"]["dependencies"], *extras])
    pipfile = requirement_pins([f"{k}{v}" for k, v in tomllib.loads((ROOT / "Pipfile").read_text())["packages"].items()])
    for name, specifier in pins.items():
        assert name in pipfile, f"{name} is not pinned in the Pipfile"
        assert specifier.contains(pipfile[name]), f"the Pipfile's {name}=={pipfile[name]} is outside {specifier}"
    used = set().union(*(third_party_distributions(p) for p in LIB_SOURCES))
    assert used <= set(pins), f"imported but not declared: {sorted(used - set(pins))}"
    assert set(pins) <= used, f"declared but never imported: {sorted(set(pins) - used)}"
    # The app's own dependencies stay out of the library's.
    assert "pydantic" not in pins


def test_range_check_refuses_a_pin_outside_or_an_exact_pin():
    ranges = requirement_ranges(["pyyaml>=6.0,<7"])
    assert ranges["pyyaml"].contains("6.0.3") and not ranges["pyyaml"].contains("7.0")
    with pytest.raises(AssertionError, match="not a bounded range"):
        requirement_ranges(["pyyaml==6.0.3"])
    with pytest.raises(AssertionError, match="not a bounded range"):
        requirement_ranges(["pyyaml>=6.0"])


def test_one_version_source_and_a_changelog_entry_for_it():
    import constructs_lib

    project = pyproject()["project"]
    assert "version" not in project and project["dynamic"] == ["version"]
    assert pyproject()["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "constructs_lib.__version__"}
    changelog = (ROOT / "CHANGELOG.md").read_text()
    versions = re.findall(r"^## \[?(\d+\.\d+\.\d+)\]?", changelog, re.M)
    assert versions and versions[0] == constructs_lib.__version__, versions


def test_one_python_floor_everywhere():
    """pyproject's requires-python, docs/library.md and the CI workflows state the same floor."""
    floor = re.fullmatch(r">=(\d+\.\d+)", pyproject()["project"]["requires-python"])
    assert floor
    version = floor.group(1)
    docs = (ROOT / "docs" / "library.md").read_text()
    assert re.findall(r"Python (\d+\.\d+) or later", docs) == [version]
    workflows = " ".join(p.read_text() for p in (ROOT / ".github" / "workflows").glob("*.yml"))
    assert set(re.findall(r'python-version: "(\d+\.\d+)"', workflows)) == {version}
    assert pyproject()["tool"]["ruff"]["target-version"] == f"py{version.replace('.', '')}"
    assert pyproject()["tool"]["mypy"]["python_version"] == version


def test_only_constructs_lib_is_packaged():
    tool = pyproject()["tool"]["setuptools"]
    assert tool["packages"] == ["constructs_lib"]
    assert tool["package-data"]["constructs_lib"] == ["py.typed"]
    assert (LIB / "py.typed").exists()


def test_public_api_is_complete_and_documented():
    import constructs_lib

    exports = constructs_lib._EXPORTS
    assert set(constructs_lib.__all__) == set(exports) | {"enable_lazy_providers"}
    for kind in ("K3sCluster", "CloudflareTunnel", "AddOnLayer", "HelmAddOn", "NamespaceSpec", "LocalStateBackend", "S3StateBackend"):
        assert kind in exports
    for name, module in exports.items():
        cls = class_defs(LIB / f"{module}.py").get(name)
        assert cls is not None, f"{name} is not a class of constructs_lib/{module}.py"
        doc, props = documented_props(cls)
        assert doc, f"{name} has no docstring"
        missing = [p for p in props if not is_described(doc, p)]
        assert not missing, f"{name}'s docstring does not describe {missing}"


def test_docs_cover_the_public_api_and_every_example():
    import constructs_lib

    docs = (ROOT / "docs" / "library.md").read_text()
    missing = [n for n in constructs_lib.__all__ if f"`{n}" not in docs and f" {n}`" not in docs and f"{n}`" not in docs]
    assert not missing, f"docs/library.md does not mention {missing}"
    for name in EXAMPLES:
        assert f"examples/{name}.py" in docs


# ---------------------------------------------------------------------------- the installed package


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CDKTF_OUTDIR", "PYTHONHOME")}
    env.update(CHECKPOINT_DISABLE="1", DISABLE_VERSION_CHECK="1")
    env.update(extra)
    return env


IMPORT_PROBE = (
    "import json, sys, time\n"
    "hooks = len(sys.meta_path); t = time.perf_counter()\n"
    "import constructs_lib\n"
    "elapsed = time.perf_counter() - t\n"
    "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('cdktf', 'constructs', 'jsii')"
    " or m.startswith('cdktf_cdktf_provider_'))\n"
    "print(json.dumps(dict(file=constructs_lib.__file__, all=constructs_lib.__all__, heavy=heavy,"
    " hooks_added=len(sys.meta_path) - hooks, seconds=elapsed)))"
)


class Installed:
    """The venv with the installed package, and what ran in it: `import_probe` (a fresh interpreter importing
    constructs_lib), `names` (every public name resolved) and `examples` (each example's exit status and
    output) from tests/library_harness.py, and each example's output folder in `outdirs`."""

    def __init__(self, base: Path):
        self.base = base
        self.src = base / "src"
        self.venv = base / "venv"
        self.python = self.venv / "bin" / "python"
        self.outside = base / "elsewhere"  # a working directory outside any source tree
        self.import_probe: dict = {}
        self.names: dict = {}
        self.examples: dict[str, dict] = {}
        self.outdirs: dict[str, Path] = {}

    def site_packages(self) -> Path:
        out = subprocess.run(
            [str(self.python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True, text=True, check=True,
        )
        return Path(out.stdout.strip())

    def run(self, argv: list[str], cwd: Path | None = None) -> dict:
        result = subprocess.run(
            [str(self.python), *argv], cwd=cwd or self.outside, env=_env(), capture_output=True, text=True, timeout=600
        )
        assert result.returncode == 0, result.stderr[-3000:]
        return json.loads(result.stdout.strip().splitlines()[-1])


@background_fixture("installed", start=1)
def _installed(tmp_path_factory) -> Installed:
    """A copy of the repo pip-installed into a fresh venv, then every example run from it (in the background)."""
    inst = Installed(tmp_path_factory.mktemp("library"))
    shutil.copytree(
        ROOT,
        inst.src,
        ignore=shutil.ignore_patterns(
            ".git", "cdktf.out", ".cdktf.out.*", "node_modules", "__pycache__", "build", "*.egg-info", "state", ".venv"
        ),
    )
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(inst.venv)], check=True)
    parent = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
    (inst.site_packages() / "_parent_env.pth").write_text("".join(f"{p}\n" for p in parent))

    pip = subprocess.run(
        # The venv's own interpreter runs pip (importable through the .pth): one pip start-up, not two.
        [str(inst.python), "-m", "pip", "install", "--no-index", "--no-build-isolation",
         "--no-cache-dir", "--disable-pip-version-check", "-q", str(inst.src)],
        env=_env(), capture_output=True, text=True, timeout=600,
    )
    assert pip.returncode == 0, pip.stdout[-2000:] + pip.stderr[-3000:]

    # From here on, the only constructs_lib there is, is the installed one.
    shutil.rmtree(inst.src / "constructs_lib")
    inst.outside.mkdir()
    inst.import_probe = inst.run(["-c", IMPORT_PROBE])

    # Every example, from one working directory outside the source tree (the jsii kernel, a node process, keeps
    # the working directory it started in), each with its output folder passed the way EXPECTED says.
    workdir = inst.base / "run"
    workdir.mkdir()
    examples = []
    for name in EXAMPLES:
        via = EXPECTED[name]["outdir_via"]
        args, env, outdir = [], {}, workdir / "cdktf.out"
        if via == "argv":
            outdir = workdir / "out-argv"
            args = [str(outdir)]
        elif via == "env":
            outdir = workdir / "out-env"
            env = {"CDKTF_OUTDIR": str(outdir)}
        inst.outdirs[name] = outdir
        path = inst.src / "examples" / f"{name}.py"
        examples.append({"name": name, "path": str(path), "args": args, "env": env})
    harness = shutil.copy(HARNESS, inst.base / HARNESS.name)
    facts = inst.run([str(harness), json.dumps(examples)], cwd=workdir)
    inst.names, inst.examples = facts["names"], facts["examples"]
    return inst


def test_installed_package_holds_only_constructs_lib(installed):
    site = installed.site_packages()
    dist_info = next(site.glob("constructs_lib-*.dist-info"))
    files = [line.split(",")[0] for line in (dist_info / "RECORD").read_text().splitlines() if line]
    packaged = {f for f in files if not f.startswith(dist_info.name + "/") and "__pycache__" not in f}
    assert packaged == {f"constructs_lib/{p.name}" for p in LIB_SOURCES} | {"constructs_lib/py.typed"}
    metadata = (dist_info / "METADATA").read_text()
    requires = {line.split(":", 1)[1].strip() for line in metadata.splitlines() if line.startswith("Requires-Dist:")}
    extras = [f'{r}; extra == "{name}"' for name, group in pyproject()["project"].get("optional-dependencies", {}).items()
              for r in group]
    assert {str(Requirement(r)) for r in requires} == {
        str(Requirement(r)) for r in [*pyproject()["project"]["dependencies"], *extras]}


def test_import_from_outside_the_source_tree_is_cheap_and_side_effect_free(installed):
    facts = installed.import_probe
    assert Path(facts["file"]).is_relative_to(installed.venv), facts["file"]
    assert not Path(facts["file"]).is_relative_to(ROOT)
    assert facts["heavy"] == [], "import constructs_lib loaded jsii/cdktf modules"
    assert facts["hooks_added"] == 0, "import constructs_lib installed an import hook"
    assert facts["seconds"] < 1.0


def test_every_public_name_resolves_in_the_installed_package(installed):
    facts = installed.names
    assert facts["added"] == 1, "enable_lazy_providers() must install exactly one hook, once"
    import constructs_lib

    for name, module in constructs_lib._EXPORTS.items():
        assert facts["modules"][name] == f"constructs_lib.{module}"
    assert all(Path(f).is_relative_to(installed.venv) for f in facts["files"]), facts["files"]


def _read_stacks(outdir: Path) -> dict[str, dict]:
    manifest = json.loads((outdir / "manifest.json").read_text())
    return {
        name: json.loads((outdir / entry["synthesizedStackPath"]).read_text())
        for name, entry in manifest["stacks"].items()
    }


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_synthesizes_from_the_installed_package(name, installed):
    result, outdir = installed.examples[name], installed.outdirs[name]
    assert result["returncode"] == 0, result["stderr"][-4000:]
    assert (outdir / "manifest.json").exists(), f"{name} did not write {outdir}"
    stacks = _read_stacks(outdir)
    expected = EXPECTED[name]["stacks"]
    assert set(stacks) == set(expected)

    for stack_name, counts in expected.items():
        stack = stacks[stack_name]
        backend = stack["terraform"].get("backend", {})
        assert len(backend) == 1, f"{stack_name}: the backend must be set explicitly"
        for settings in backend.values():
            for value in settings.values():
                assert not str(value).startswith("/"), f"{stack_name}: absolute backend setting {value!r}"
        found = {rtype: len(resources) for rtype, resources in stack.get("resource", {}).items()}
        assert set(found) == set(counts), f"{stack_name}: resource types {found}"
        for rtype, count in counts.items():
            assert found[rtype] == count if count is not None else found[rtype] >= 1, f"{stack_name}: {found}"

    # No path of the machine that synthesized: the temp dir, the venv, the repo, the home directory.
    forbidden = [str(installed.base), str(ROOT), os.path.expanduser("~") + "/", str(Path(sys.prefix).resolve())]
    for path in outdir.rglob("*"):
        if path.is_file():
            text = path.read_text()
            for bad in forbidden:
                assert bad not in text, f"{path.relative_to(outdir)} contains the absolute path {bad}"

    check = globals().get(f"check_{name}")
    assert check is not None, f"write check_{name}: the example's own properties"
    check(stacks, json.loads((outdir / "manifest.json").read_text()))


def check_k3s_with_addon(stacks: dict[str, dict], manifest: dict) -> None:
    cluster, addons = stacks["cluster"], stacks["addons"]
    assert manifest["stacks"]["addons"]["dependencies"] == ["cluster"]
    text = json.dumps(cluster)
    for address in ("192.0.2.11", "192.0.2.12", "192.0.2.13"):
        assert address in text
    # The SSH key enters as a sensitive variable; every value handed to the addons stack is a sensitive output.
    assert cluster["variable"]["ssh_private_key"]["sensitive"] is True
    assert "BEGIN" not in text, "a PEM literal in the output"
    outputs = cluster["output"]
    assert outputs and all(o.get("sensitive") is True for o in outputs.values()), outputs
    # The addons stack reaches the cluster through the first stack's state (a relative local path).
    (remote,) = addons["data"]["terraform_remote_state"].values()
    assert remote["backend"] == "local" and remote["config"]["path"] == "../../../state/cluster.tfstate"
    helm = addons["provider"]["helm"][0]["kubernetes"]
    for key in ("host", "cluster_ca_certificate", "client_certificate", "client_key"):
        assert helm[key].startswith("${data.terraform_remote_state."), (key, helm[key])
    (release,) = addons["resource"]["helm_release"].values()
    assert (release["chart"], release["version"], release["namespace"]) == ("metrics-server", "3.13.1", "kube-system")


def check_tunnel_for_existing_cluster(stacks: dict[str, dict], manifest: dict) -> None:
    stack = stacks["tunnel"]
    variables = stack["variable"]
    assert variables["cloudflare_api_token"]["sensitive"] is True
    assert stack["provider"]["cloudflare"] == [{"api_token": "${var.cloudflare_api_token}"}]
    assert stack["provider"]["kubernetes"] == [{"config_path": "~/.kube/config"}]
    (tunnel_id, tunnel), = stack["resource"]["cloudflare_zero_trust_tunnel_cloudflared"].items()
    assert tunnel["config_src"] == "cloudflare"
    assert tunnel["tunnel_secret"].startswith("${random_bytes.")
    (config,) = stack["resource"]["cloudflare_zero_trust_tunnel_cloudflared_config"].values()
    ingress = config["config"]["ingress"]
    assert [r.get("hostname") for r in ingress] == ["app.example.com", "api.example.com", None]
    assert ingress[-1]["service"] == "http_status:404"
    records = {r["name"]: r for r in stack["resource"]["cloudflare_dns_record"].values()}
    assert set(records) == {"app.example.com", "api.example.com"}
    for record in records.values():
        assert record["type"] == "CNAME" and record["proxied"] is True
        assert record["content"] == f"${{cloudflare_zero_trust_tunnel_cloudflared.{tunnel_id}.id}}.cfargotunnel.com"
    # The connector gets the tunnel token through a sensitive Helm value read from the token data source.
    (release,) = stack["resource"]["helm_release"].values()
    assert (release["chart"], release["version"], release["namespace"]) == ("cloudflare-tunnel-remote", "0.1.2", "cloudflared")
    (token_source,) = stack["data"]["cloudflare_zero_trust_tunnel_cloudflared_token"]
    assert release["set_sensitive"] == [
        {"name": "cloudflare.tunnel_token",
         "value": f"${{data.cloudflare_zero_trust_tunnel_cloudflared_token.{token_source}.token}}"}
    ]
    assert "tunnel_token" not in release["values"][0]


def check_addons_on_existing_cluster(stacks: dict[str, dict], manifest: dict) -> None:
    stack = stacks["addons"]
    assert stack["provider"]["kubernetes"] == [{"config_path": "~/.kube/config", "config_context": "default"}]
    releases = {r["name"]: r for r in stack["resource"]["helm_release"].values()}
    assert set(releases) == {"cert-manager", "grafana"}
    assert releases["cert-manager"]["version"] == "v1.21.1"
    grafana = releases["grafana"]
    assert "existingSecret: grafana-admin" in grafana["values"][0]
    # The secret is generated in Terraform and created before the release.
    (secret_id, secret), = stack["resource"]["kubernetes_secret_v1"].items()
    assert f"kubernetes_secret_v1.{secret_id}" in grafana["depends_on"]
    assert secret["data"]["admin-user"] == "admin"
    assert re.fullmatch(r"\$\{random_password\.[\w-]+\.result\}", secret["data"]["admin-password"])


# ------------------------------------------------------------- beside a project that pins other versions


class Beside:
    """A fresh venv that already holds another PyYAML 6.x than the Pipfile's, then the library pip-installed."""

    def __init__(self, base: Path):
        self.base = base
        self.venv = base / "venv"
        self.python = self.venv / "bin" / "python"
        self.pyyaml = ""  # the version the venv pins before the library comes
        self.skipped = ""  # why the test cannot run here (no registry)
        self.install: subprocess.CompletedProcess | None = None
        self.after: dict = {}


def _other_pyyaml() -> str:
    pinned = tomllib.loads((ROOT / "Pipfile").read_text())["packages"]["pyyaml"].lstrip("=")
    return next(v for v in ("6.0.2", "6.0.1") if v != pinned)


@background_fixture("beside_pyyaml", start=2)
def _beside_pyyaml(tmp_path_factory) -> Beside:
    """The heavy jsii packages come from this interpreter's site-packages, through a folder of links that leaves
    out PyYAML (so pip sees them installed, and never touches the originals); PyYAML itself is installed into the
    venv from the package index, at another 6.x version. Then the library is installed with --no-index: it must
    accept that PyYAML, since pip cannot fetch another."""
    beside = Beside(tmp_path_factory.mktemp("beside"))
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(beside.venv)], check=True)
    links = beside.base / "deps"
    links.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        name = entry.name.lower()
        if name in ("yaml", "_yaml", "__pycache__") or name.startswith(("pyyaml-", "constructs_lib")) or name.endswith(".pth"):
            continue
        (links / entry.name).symlink_to(entry)
    site = subprocess.run(
        [str(beside.python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    (Path(site) / "_deps.pth").write_text(f"{links}\n")
    beside.pyyaml = _other_pyyaml()
    pip = [str(beside.python), "-m", "pip", "--disable-pip-version-check", "install", "-q", "--no-cache-dir"]
    first = subprocess.run([*pip, f"pyyaml=={beside.pyyaml}"], env=_env(), capture_output=True, text=True, timeout=300)
    if first.returncode != 0:
        beside.skipped = f"PyYAML {beside.pyyaml} could not be installed from the package index: {first.stderr[-500:]}"
        return beside
    src = beside.base / "src"
    src.mkdir()
    for part in ("pyproject.toml", "constructs_lib", "docs"):
        (shutil.copytree if (ROOT / part).is_dir() else shutil.copy)(ROOT / part, src / part)
    shutil.rmtree(src / "constructs_lib" / "__pycache__", ignore_errors=True)
    beside.install = subprocess.run(
        [*pip, "--no-index", "--no-build-isolation", str(src)], env=_env(), capture_output=True, text=True, timeout=600
    )
    probe = (
        "import json, yaml, constructs_lib, importlib.metadata as m; "
        "print(json.dumps(dict(yaml=yaml.__version__, yaml_file=yaml.__file__, lib=constructs_lib.__file__, "
        "version=m.version('constructs-lib'))))"
    )
    shutil.rmtree(src)
    done = subprocess.run([str(beside.python), "-c", probe], cwd=beside.base, env=_env(), capture_output=True, text=True)
    if done.returncode == 0:
        beside.after = json.loads(done.stdout)
    return beside


def test_installs_into_a_venv_that_pins_another_pyyaml(beside_pyyaml):
    """Done when: `pip install` of the library into a fresh venv that already pins pyyaml to another 6.x works,
    and leaves that pyyaml as it was."""
    import constructs_lib

    if beside_pyyaml.skipped:
        pytest.skip(beside_pyyaml.skipped)
    install = beside_pyyaml.install
    assert install is not None and install.returncode == 0, install.stdout[-2000:] + install.stderr[-3000:]
    after = beside_pyyaml.after
    assert after["yaml"] == beside_pyyaml.pyyaml
    assert after["yaml_file"].startswith(str(beside_pyyaml.venv)) and after["lib"].startswith(str(beside_pyyaml.venv))
    assert after["version"] == constructs_lib.__version__
