"""Charts at exactly the pinned version, and the versions a chart repository publishes.

Two sources:
  HELIX_CHARTS=<dir>   a folder of `<chart>-<version>.tgz` files or `<chart>-<version>/` folders holding Chart.yaml,
                       for air-gapped users and the tests. Repository indexes for the `published` rule come from
                       `<dir>/index/<repository key>.yaml` or `<dir>/index.yaml` (Helm's index format); with
                       neither, `published` is not checked and the summary says so. (A parsed index is cached
                       in the cache folder, by content.)
  otherwise            `helm pull` from the release's https or oci repository into a cache folder
                       ($HELIX_CHARTS_CACHE, default ~/.cache/helix-verify); a cached chart is not pulled again.
                       The index.yaml of an https repository is read once per run.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import threading
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tools.verify.plan import Release


class ChartMissing(Exception):
    """The chart could not be obtained; the message says why (a finding of rule `render`)."""


OFFLINE_HINT = "offline? fetch every chart once with `task charts` and set HELIX_CHARTS to that folder"
_UNREACHABLE = ("dial tcp", "no such host", "lookup ", "connection refused", "i/o timeout", "network is unreachable",
                "TLS handshake timeout", "Temporary failure in name resolution", "cannot be reached")


def pull_failure(stderr: str) -> str:
    """Why `helm pull` failed, in a few words rather than helm's raw error chain."""
    if any(s in stderr for s in _UNREACHABLE):
        return "the repository cannot be reached (no network?)"
    if "not found" in stderr or "no chart version" in stderr or "not a valid chart repository" in stderr:
        return "the repository does not list this chart version"
    if "unauthorized" in stderr.lower() or "401" in stderr or "403" in stderr:
        return "the registry refused access"
    last = (stderr.strip().splitlines() or ["no chart archive"])[-1].removeprefix("Error: ")
    return f"helm pull failed ({last[:160]})"


def repository_key(repository: str) -> str:
    """`https://grafana.github.io/helm-charts/` -> `grafana.github.io_helm-charts` (a file name)."""
    bare = re.sub(r"^[a-z]+://", "", repository.strip()).strip("/")
    return re.sub(r"[^A-Za-z0-9._-]+", "_", bare)


def default_cache() -> Path:
    env = os.environ.get("HELIX_CHARTS_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "helix-verify"


@dataclass
class ChartStore:
    helm: str
    folder: Path | None = None
    cache: Path = field(default_factory=default_cache)
    _indexes: dict = field(default_factory=dict)
    _generated: dict = field(default_factory=dict)   # repository key -> the folder index's `generated` (epoch s)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- charts -----------------------------------------------------------------------------------------------
    def obtain(self, release: Release) -> Path:
        if self.folder is not None:
            return self._from_folder(release)
        return self._from_repository(release)

    def _candidates(self, release: Release) -> list[str]:
        names = [f"{release.chart}-{release.version}"]
        if release.version.startswith("v"):
            names.append(f"{release.chart}-{release.version[1:]}")
        return names

    def _from_folder(self, release: Release) -> Path:
        assert self.folder is not None
        for stem in self._candidates(release):
            tgz = self.folder / f"{stem}.tgz"
            if tgz.is_file():
                return tgz
            folder = self.folder / stem
            if (folder / "Chart.yaml").is_file():
                return folder
        raise ChartMissing(f"chart {release.chart} {release.version} is not in HELIX_CHARTS={self.folder} "
                           f"(expected {self._candidates(release)[0]}.tgz or {self._candidates(release)[0]}/Chart.yaml); "
                           "`task charts` fetches every pinned chart into such a folder")

    def _helm_env(self) -> dict[str, str]:
        home = self.cache / "helm"
        env = dict(os.environ)
        env.update(HELM_CACHE_HOME=str(home / "cache"), HELM_CONFIG_HOME=str(home / "config"),
                   HELM_DATA_HOME=str(home / "data"))
        return env

    def _from_repository(self, release: Release) -> Path:
        if not release.repository:
            raise ChartMissing(f"chart {release.chart} has no repository to pull it from")
        target_dir = self.cache / "charts" / repository_key(release.repository)
        for stem in self._candidates(release):
            if (target_dir / f"{stem}.tgz").is_file():
                return target_dir / f"{stem}.tgz"
        target_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target_dir) as tmp:
            if release.repository.startswith("oci://"):
                ref = release.repository.rstrip("/") + "/" + release.chart
                cmd = [self.helm, "pull", ref, "--version", release.version, "--destination", tmp]
            else:
                cmd = [self.helm, "pull", release.chart, "--repo", release.repository, "--version", release.version,
                       "--destination", tmp]
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, env=self._helm_env(), timeout=300)
            except subprocess.TimeoutExpired:
                raise ChartMissing(f"helm pull {release.chart} {release.version} from {release.repository} timed out") from None
            pulled = sorted(Path(tmp).glob("*.tgz"))
            if proc.returncode != 0 or len(pulled) != 1:
                raise ChartMissing(f"chart {release.chart} {release.version} not obtainable from {release.repository}: "
                                   f"{pull_failure(proc.stderr)}; {OFFLINE_HINT}")
            final = target_dir / pulled[0].name
            os.replace(pulled[0], final)
            return final

    # -- repository indexes -----------------------------------------------------------------------------------
    def published_versions(self, release: Release) -> tuple[set[str] | None, str]:
        """The versions of the chart its repository lists, and where they were read; None if not checkable."""
        key = repository_key(release.repository)
        with self._lock:
            if key not in self._indexes:
                self._indexes[key] = self._read_index(release.repository, key)
        index, source = self._indexes[key]
        if index is None:
            return None, source
        return set(index.get(release.chart) or []), source

    def index_predates(self, release: Release) -> bool:
        """True when the repository index in the HELIX_CHARTS folder was generated before the release's chart was
        packaged (its `generated` time against the archive's Chart.yaml time): an old copy of the index, which
        cannot say whether the version is published. False when either time is unknown."""
        if self.folder is None:
            return False
        key = repository_key(release.repository)
        generated = self._generated.get(key)
        if generated is None:
            return False
        try:
            archive = self._from_folder(release)
        except ChartMissing:
            return False
        if not archive.is_file():
            return False
        try:
            with tarfile.open(archive) as tar:
                packaged = max((m.mtime for m in tar.getmembers() if m.name.endswith("/Chart.yaml")), default=None)
        except (OSError, tarfile.TarError):
            return False
        return packaged is not None and generated < packaged

    def pull_into(self, releases: list[Release], folder: Path, out=print) -> int:
        """Every release's chart into `folder` as `<chart>-<version>.tgz`, and each https repository's index as
        `index/<repository key>.yaml`: a folder usable as HELIX_CHARTS. One line per chart; the number that failed."""
        folder.mkdir(parents=True, exist_ok=True)
        failed, done = 0, set()
        for release in releases:
            stem = f"{release.chart}-{release.version}"
            if stem in done:
                continue
            done.add(stem)
            target = folder / f"{stem}.tgz"
            if target.is_file():
                out(f"have {target.name}")
            else:
                try:
                    source = self._from_repository(release)
                except ChartMissing as exc:
                    out(f"error: {exc}".replace(f"; {OFFLINE_HINT}", ""))
                    failed += 1
                    continue
                shutil.copyfile(source, target)
                out(f"fetched {target.name} from {release.repository}")
        for repository in sorted({r.repository for r in releases if r.repository.startswith("https://")}):
            url = repository.rstrip("/") + "/index.yaml"
            dest = folder / "index" / f"{repository_key(repository)}.yaml"
            try:
                with urllib.request.urlopen(url, timeout=60) as resp:   # noqa: S310 (https chart repositories)
                    data = resp.read()
            except OSError as exc:
                out(f"error: index of {repository} not fetched ({type(exc).__name__}): `published` cannot be checked for it")
                failed += 1
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)
            out(f"fetched index/{dest.name}")
        return failed

    def _read_index(self, repository: str, key: str) -> tuple[dict[str, list[str]] | None, str]:
        if self.folder is not None:
            for path in (self.folder / "index" / f"{key}.yaml", self.folder / "index.yaml"):
                if path.is_file():
                    data = path.read_bytes()
                    self._generated[key] = _generated_at(data)
                    return self._versions(data), path.name if path.parent == self.folder else f"index/{path.name}"
            return None, f"no index.yaml in HELIX_CHARTS for {repository}"
        if repository.startswith("oci://"):
            return None, "oci repository (no index; a successful pull is the proof)"
        url = repository.rstrip("/") + "/index.yaml"
        try:
            with urllib.request.urlopen(url, timeout=60) as resp:   # noqa: S310 (https chart repositories)
                data = resp.read()
        except OSError as exc:
            return None, f"cannot read {url}: {exc}"
        return self._versions(data), url

    def _versions(self, data: bytes) -> dict[str, list[str]] | None:
        """chart -> versions of an index; parsing megabytes of YAML is slow, so the result is cached by content."""
        digest = hashlib.sha256(data).hexdigest()
        cached = self.cache / "indexes" / f"{digest}.json"
        try:
            return json.loads(cached.read_text())
        except (OSError, ValueError):
            pass
        index = _load_index(data)
        if index is None:
            return None
        versions = {str(name): [str(e.get("version")) for e in entries or [] if isinstance(e, dict)]
                    for name, entries in (index.get("entries") or {}).items()}
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            tmp = cached.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(versions))
            os.replace(tmp, cached)
        except OSError:
            pass
        return versions


def _generated_at(data: bytes) -> float | None:
    """The `generated:` time of a Helm repository index (epoch seconds), read without parsing the whole file."""
    import datetime

    m = re.search(rb'^generated:\s*["\']?([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8})(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})?["\']?\s*$',
                  data, re.M)
    if not m:
        return None
    zone = (m.group(3) or b"Z").decode().replace("Z", "+00:00")
    return datetime.datetime.fromisoformat(m.group(1).decode() + zone).timestamp()


def _load_index(data: bytes) -> dict | None:
    try:
        doc = yaml.load(data, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError:
        try:
            doc = json.loads(data)
        except ValueError:
            return None
    return doc if isinstance(doc, dict) else None


# -- chart contents (for unknown-value and for knowing which templates consult .Capabilities) -----------------
@dataclass
class ChartInfo:
    name: str
    metadata: dict
    defaults: dict
    schema: dict | None
    templates: dict[str, str]
    crd_files: dict[str, str]
    subcharts: list[tuple[str, str | None, ChartInfo]]   # (key in the parent's values, condition, chart)

    def all_templates(self) -> str:
        text = "\n".join(self.templates.values())
        return text + "\n".join(sub.all_templates() for _, _, sub in self.subcharts)


def _files_from_tgz(data: bytes) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar.getmembers():
            if not member.isfile():
                continue
            parts = member.name.split("/", 1)
            if len(parts) == 2:
                f = tar.extractfile(member)
                if f is not None:
                    files[parts[1]] = f.read()
    return files


def _files_from_dir(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def load_chart(path: Path) -> ChartInfo:
    files = _files_from_tgz(path.read_bytes()) if path.is_file() else _files_from_dir(path)
    return _chart_from_files(files)


def _yaml(data: bytes | None) -> object:
    if not data:
        return None
    try:
        return yaml.safe_load(data)
    except yaml.YAMLError:
        return None


def _chart_from_files(files: dict[str, bytes]) -> ChartInfo:
    metadata = _yaml(files.get("Chart.yaml")) or {}
    defaults = _yaml(files.get("values.yaml")) or {}
    schema = None
    if "values.schema.json" in files:
        try:
            schema = json.loads(files["values.schema.json"])
        except ValueError:
            schema = None
    templates = {p: b.decode("utf-8", "replace") for p, b in files.items() if p.startswith("templates/")}
    crds = {p: b.decode("utf-8", "replace") for p, b in files.items() if p.startswith("crds/")}

    # Subcharts: charts/<x>.tgz or charts/<x>/..., matched to Chart.yaml dependencies by name (alias wins).
    subs: dict[str, ChartInfo] = {}
    folders: dict[str, dict[str, bytes]] = {}
    for p, b in files.items():
        if not p.startswith("charts/"):
            continue
        rest = p[len("charts/"):]
        if "/" not in rest and rest.endswith(".tgz"):
            sub = _chart_from_files(_files_from_tgz(b))
            subs.setdefault(sub.name, sub)
        elif "/" in rest:
            top, inner = rest.split("/", 1)
            folders.setdefault(top, {})[inner] = b
    for files in folders.values():
        if "Chart.yaml" in files:
            sub = _chart_from_files(files)
            subs.setdefault(sub.name, sub)
    subcharts: list[tuple[str, str | None, ChartInfo]] = []
    deps = metadata.get("dependencies") if isinstance(metadata, dict) else None
    named = set()
    for dep in deps or []:
        if isinstance(dep, dict) and dep.get("name") in subs:
            named.add(dep["name"])
            cond = dep.get("condition")
            subcharts.append((dep.get("alias") or dep["name"], str(cond).split(",")[0].strip() if cond else None,
                              subs[dep["name"]]))
    subcharts += [(n, None, s) for n, s in sorted(subs.items()) if n not in named]
    return ChartInfo(
        name=str(metadata.get("name", "")) if isinstance(metadata, dict) else "",
        metadata=metadata if isinstance(metadata, dict) else {},
        defaults=defaults if isinstance(defaults, dict) else {},
        schema=schema if isinstance(schema, dict) else None,
        templates=templates,
        crd_files=crds,
        subcharts=subcharts,
    )


def which_helm() -> str | None:
    return shutil.which("helm")
