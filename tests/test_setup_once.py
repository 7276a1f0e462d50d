"""scripts/setup.sh installs the Python tree with one resolution (issue 23: `pipenv install --dev` resolved the
Pipfile twice, [packages] and then [dev-packages] with [packages]' pins as constraints, hashing every file).

setup.sh runs here in a scratch folder with its installers stubbed (pip, npm, node, helm's copy): it must hand pip
every pin of both Pipfile sections in one `pip install` and call no pipenv at all.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib

from tests.conftest import ROOT

STUB_PYTHON = """#!/bin/sh
echo "python $*" >> "$SETUP_LOG"
case "$1 $2" in "-m pip"|"-m venv") exit 0 ;; esac
case "$1" in scripts/install_helm.py) exit 0 ;; esac
exec "$REAL_PYTHON" "$@"
"""


def _stub(path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)


def test_setup_installs_every_pin_with_one_pip_install(tmp_path):
    work = tmp_path / "repo"
    (work / "scripts").mkdir(parents=True)
    shutil.copy2(ROOT / "scripts" / "setup.sh", work / "scripts" / "setup.sh")
    shutil.copy2(ROOT / "Pipfile", work / "Pipfile")
    bin_dir, log = tmp_path / "bin", tmp_path / "setup.log"
    _stub(bin_dir / "python3", STUB_PYTHON)
    _stub(work / ".venv" / "bin" / "python", STUB_PYTHON)
    _stub(work / ".venv-moto" / "bin" / "python", STUB_PYTHON)  # moto's own venv (tests/test_node_pools.py)
    _stub(bin_dir / "npm", '#!/bin/sh\necho "npm $*" >> "$SETUP_LOG"\n')
    _stub(bin_dir / "node", "#!/bin/sh\ncase \"$1\" in --version) echo v22.0.0 ;; *) printf 22 ;; esac\n")
    env = {"PATH": f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin", "HOME": str(tmp_path), "SETUP_LOG": str(log),
           "REAL_PYTHON": sys.executable, "PIP_INDEX_URL": "https://index.example.invalid/simple"}
    run = subprocess.run(["bash", "scripts/setup.sh", "--no-synth"], cwd=work, env=env, capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    calls = log.read_text().splitlines()
    installs = [c for c in calls if c.startswith("python -m pip install") and "moto[server]" not in c]
    assert len(installs) == 1 and installs[0].endswith("-r .venv/pins.txt"), calls
    assert not any("pipenv" in c for c in calls), calls
    pipfile = tomllib.loads((ROOT / "Pipfile").read_text())
    pins = [f"{n}{v}" for section in ("packages", "dev-packages") for n, v in pipfile[section].items()]
    assert (work / ".venv" / "pins.txt").read_text().splitlines() == pins
    assert "npm ci --no-audit --no-fund --loglevel=error" in calls
