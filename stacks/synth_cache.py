"""Reuse the previous synth when none of its inputs changed, without validating again or starting jsii.

A synth is a pure function of its inputs: the cluster file, the data files under config/ (or $HELIX_DATA_DIR and
$HELIX_CATALOG_DIR), the environment variables the app and cdktf read (HELIX_*, CDKTF_*, JSII_*), the project's
own source (main.py, cdktf.json, planner/, stacks/, constructs_lib/), the engine that synthesizes (cdktf or cdktn,
and its version: constructs_lib/engine.py), the installed packages with their versions (providers, jsii,
pydantic, ...), Python and the Node binary jsii starts. The key below hashes
all of them. Each successful synth writes the key and a digest of every file it generated into the output
folder (STAMP). The next synth with the same key, whose generated files are all still there unchanged, has
nothing to do: it says so and exits 0 in a fraction of the jsii floor. Any other case synthesizes in full.

Plain Python (hashlib, os): importing this module must stay cheap, as the no-op path is all it runs.
HELIX_SYNTH_CACHE=0 turns the reuse off (every synth is then a full one).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import sys
from pathlib import Path

from constructs_lib import engine

# Bump when what the key covers or the stamp's format changes.
FORMAT = "helix-synth-cache/1"
STAMP = ".helix-synth.json"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
SOURCE_FOLDERS = ("planner", "stacks", "constructs_lib")
SOURCE_FILES = ("main.py", "cdktf.json")
ENV_PREFIXES = ("HELIX_", "CDKTF_", "JSII_")
# Read by the cache itself, not by the synth: changing them changes no output. (The output folder holds the
# stamp, so its own location is implied; the cdktf CLI stages into a new folder each time.)
ENV_IGNORED = frozenset({"HELIX_SYNTH_CACHE", "HELIX_REVIEW_CACHE", "CDKTF_OUTDIR"})


def enabled(environ: os._Environ[str] | dict[str, str] = os.environ) -> bool:
    return environ.get("HELIX_SYNTH_CACHE", "1") != "0"


class _Hasher:
    def __init__(self) -> None:
        self._h = hashlib.sha256(FORMAT.encode())

    def add(self, label: str, data: bytes) -> None:
        # Length-prefixed, so that no two different sequences of fields hash alike.
        for part in (label.encode(), data):
            self._h.update(len(part).to_bytes(8, "big"))
            self._h.update(part)

    def add_file(self, label: str, path: Path) -> None:
        self.add(label, _read_input(path))

    def add_tree(self, label: str, folder: Path, suffixes: tuple[str, ...] = ()) -> None:
        if not folder.is_dir():
            self.add(label, b"<absent>")
            return
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames[:] = sorted(d for d in dirnames if d != "__pycache__" and not d.startswith("."))
            for name in sorted(filenames):
                if suffixes and not name.endswith(suffixes):
                    continue
                path = Path(dirpath) / name
                self.add_file(f"{label}/{path.relative_to(folder).as_posix()}", path)

    def hexdigest(self) -> str:
        return self._h.hexdigest()


# Inputs are small; a larger one is refused by the full synth, so its contents never key a reusable output.
MAX_INPUT_BYTES = 16 * 1024 * 1024


def _read_input(path: Path) -> bytes:
    """A file's bytes; for anything the synth would refuse (missing, unreadable, not a regular file: a FIFO or a
    device must not block or stream here; over MAX_INPUT_BYTES), a marker, and the full synth says why."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        return f"<unreadable: {exc.__class__.__name__}>".encode()
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return b"<not a regular file>"
        if info.st_size > MAX_INPUT_BYTES:
            return b"<too large>"
        with os.fdopen(os.dup(fd), "rb") as handle:
            return handle.read(MAX_INPUT_BYTES + 1)
    except OSError as exc:
        return f"<unreadable: {exc.__class__.__name__}>".encode()
    finally:
        os.close(fd)


def _installed_packages() -> list[str]:
    """The dist-info folder names of every site-packages folder on sys.path: each names a package and its version."""
    names: list[str] = []
    for entry in sys.path:
        if not entry.endswith(("site-packages", "dist-packages")):
            continue
        try:
            names.extend(sorted(n for n in os.listdir(entry) if n.endswith((".dist-info", ".egg-info", ".egg-link"))))
        except OSError:
            continue
    return names


def _node_identity(environ: os._Environ[str] | dict[str, str]) -> str:
    """The Node binary jsii will start ($JSII_NODE, else node on PATH): its real path, size and modification time."""
    node = environ.get("JSII_NODE") or shutil.which("node", path=environ.get("PATH"))
    if not node:
        return "<no node>"
    try:
        real = os.path.realpath(node)
        st = os.stat(real)
    except OSError:
        return f"<unreadable node {node}>"
    return f"{real}:{st.st_size}:{st.st_mtime_ns}"


def _environment(h: _Hasher, environ: os._Environ[str] | dict[str, str]) -> None:
    env = {k: v for k, v in environ.items() if k.startswith(ENV_PREFIXES) and k not in ENV_IGNORED}
    h.add("env", json.dumps(env, sort_keys=True).encode())
    h.add("engine", engine.identity(environ).encode())
    h.add("packages", "\n".join(_installed_packages()).encode())
    h.add("python", f"{sys.version}|{sys.implementation.cache_tag}".encode())
    h.add("node", _node_identity(environ).encode())


def environment_key(environ: os._Environ[str] | dict[str, str] = os.environ) -> str:
    """A digest of the inputs a git commit does not fix: the variables, the installed packages, Python, Node, and
    the cluster file and data folders when the variables point outside the checkout. A commit's synth is a
    function of (commit, environment_key): tools/review.py keeps base outputs by that pair."""
    h = _Hasher()
    _environment(h, environ)
    if environ.get("HELIX_CONFIG"):
        h.add_file("config", Path(environ["HELIX_CONFIG"]))
    for variable in ("HELIX_DATA_DIR", "HELIX_CATALOG_DIR"):
        if environ.get(variable):
            h.add_tree(variable, Path(environ[variable]))
    return h.hexdigest()


def input_key(environ: os._Environ[str] | dict[str, str] = os.environ, root: Path = PROJECT_ROOT) -> str:
    """A digest of everything a synth reads. Equal keys mean byte-identical outputs."""
    h = _Hasher()
    _environment(h, environ)
    # Relative paths are taken from the working directory (planner/load.py), so it is an input too.
    h.add("cwd", os.getcwd().encode())
    config = environ.get("HELIX_CONFIG") or str(root / "config" / "helix.yaml")
    h.add_file("config", Path(config))
    data_dir = Path(environ.get("HELIX_DATA_DIR") or root / "config")
    h.add_tree("data", data_dir)
    if environ.get("HELIX_CATALOG_DIR"):
        h.add_tree("catalog", Path(environ["HELIX_CATALOG_DIR"]))
    for name in SOURCE_FILES:
        h.add_file(f"source/{name}", root / name)
    for folder in SOURCE_FOLDERS:
        h.add_tree(f"source/{folder}", root / folder, suffixes=(".py",))
    return h.hexdigest()


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_stamp(outdir: Path, key: str, repeat: dict | None = None) -> None:
    """Record the key and every generated file of a fresh synth (call before Terraform's files are carried in).
    `repeat`: what a synth does every time, for the no-op synth to do too: {"warnings": [lines to print again],
    "state_dir": the local state folder as the config gives it, relative to the project, whose modes it fixes}."""
    files = {
        path.relative_to(outdir).as_posix(): _digest(path)
        for path in sorted(outdir.rglob("*"))
        if path.is_file() and path.name != STAMP
    }
    stamp = {"format": FORMAT, "key": key, "files": files, "repeat": repeat or {}}
    (outdir / STAMP).write_text(json.dumps(stamp, indent=1, sort_keys=True))


def repeated(outdir: Path) -> dict:
    """The `repeat` record of the output's stamp (see write_stamp); empty when there is none."""
    try:
        record = json.loads((outdir / STAMP).read_text()).get("repeat") or {}
        return record if isinstance(record, dict) else {}
    except (OSError, ValueError, AttributeError):
        return {}


def reusable(outdir: Path, key: str | None) -> int | None:
    """The number of stacks of the previous output when it was synthesized from `key` (any key when None) and its
    generated files are all still as written; None when a full synth is needed."""
    try:
        stamp = json.loads((outdir / STAMP).read_text())
        if stamp.get("format") != FORMAT or (key is not None and stamp.get("key") != key):
            return None
        files: dict[str, str] = stamp["files"]
        for relative, digest in files.items():
            if _digest(outdir / relative) != digest:
                return None
        manifest = json.loads((outdir / "manifest.json").read_text())
        return len(manifest.get("stacks") or {})
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def reuse(outdir: Path, key: str, root: Path = PROJECT_ROOT) -> bool:
    """Stand by the previous output when it was synthesized from `key` and is intact: say so, and do again what a
    full synth does every time (stacks/app.py): print the host-key waiver's warning, the warnings about an
    unmigrated backend and the kept folders of removed stacks, and make the local state folder owner-only.
    False when a full synth is needed."""
    stack_count = reusable(outdir, key)
    if stack_count is None:
        return False
    from planner.state_modes import secure_state_folder
    from stacks.outdir import standing_warnings

    record = repeated(outdir)
    for line in [*record.get("warnings", []), *standing_warnings(outdir, str(outdir)).lines()]:
        print(line, file=sys.stderr)
    if record.get("state_dir"):
        try:
            for change in secure_state_folder(root / record["state_dir"]):
                print(f"state: {change} (state files hold secrets: owner only)", file=sys.stderr)
        except OSError as exc:  # not the owner, say: the synth itself does not need it
            print(f"warning: cannot make the local state folder owner-only: {exc.strerror or exc}", file=sys.stderr)
    print(f"{outdir}: up to date, {stack_count} stacks (no input changed since its synth)", file=sys.stderr)
    return True
