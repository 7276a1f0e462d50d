"""Reading YAML data files safely, and reporting what is wrong with them.

Nothing here imports cdktf or jsii: a broken config must be reported before any jsii assembly loads.
"""

from __future__ import annotations

import errno
import os
import reprlib
import stat
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

# A config file larger than this is certainly not a cluster description.
MAX_FILE_BYTES = 1024 * 1024
# YAML aliases can expand exponentially ("billion laughs"); a cluster description needs only a few.
MAX_ALIASES = 100
# Even a few aliases nest into an exponential tree (9 levels of 10 make 10**9 values) once something walks
# it; the expanded document is counted, with an early stop, before anything else walks it.
MAX_VALUES = 100_000


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one file, at one field path."""

    file: str
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.path}: {self.message}" if self.path else f"{self.file}: {self.message}"


class ConfigError(Exception):
    """Every problem found in the configuration, reported together."""

    def __init__(self, problems: Sequence[Problem]):
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = list(problems)


def field_path(loc: Iterable[Any]) -> str:
    """Render a pydantic location such as ('nodes', 2, 'address') as nodes[2].address."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not str(part).isprintable() or " " in str(part):
            out += f"[{str(part)!r}]"  # a key with a line break or a space stays on one line, quoted
        else:
            out += f".{part}" if out else str(part)
    return out


def problems_from_validation(file: str, error: ValidationError, prefix: Sequence[Any] = ()) -> list[Problem]:
    problems = []
    for err in error.errors(include_url=False):
        # Drop pydantic's internal location parts (function-after[...] and the like).
        loc = [p for p in err["loc"] if not (isinstance(p, str) and "[" in p and p.endswith("]"))]
        message = err["msg"]
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        elif err["type"] == "extra_forbidden":
            message = "unknown key"
        elif err["type"] == "missing":
            message = "required field is missing"
        else:
            message = f"{message} (got {_short(err.get('input'))})"
        problems.append(Problem(file, field_path([*prefix, *loc]), message))
    return problems


_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 60
_REPR.maxlevel = 3


def _short(value: Any) -> str:
    # reprlib stops early: a plain repr() of an aliased tree would walk every expanded value.
    text = _REPR.repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def expanded_size_exceeds(data: Any, limit: int) -> bool:
    """True when data, with every alias expanded, holds more than `limit` values. Stops at the limit."""
    count = 0
    stack = [data]
    while stack:
        item = stack.pop()
        count += 1
        if count > limit:
            return True
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys and bounds alias expansion."""

    def __init__(self, stream):
        super().__init__(stream)
        self._aliases = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                event = self.peek_event()
                raise yaml.YAMLError(
                    f"more than {MAX_ALIASES} YAML aliases (line {event.start_mark.line + 1}); "
                    "refusing a possible alias bomb"
                )
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        return _strict_construct_mapping(self, node, deep)


def _strict_construct_mapping(loader, node, deep=False):
    """SafeConstructor.construct_mapping, refusing duplicate and non-scalar keys."""
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if isinstance(key, (list, dict)):
            raise yaml.YAMLError(f"line {key_node.start_mark.line + 1}: a mapping key must be a scalar")
        if key in seen:
            raise yaml.YAMLError(f"line {key_node.start_mark.line + 1}: duplicate key {key!r}")
        seen.add(key)
    return yaml.constructor.SafeConstructor.construct_mapping(loader, node, deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _StrictLoader.construct_mapping)

# libyaml (C) parses several times faster than the pure-Python loader: the catalog is most of the time a broken
# config takes to report. It is used only for a document that it parses without error, that holds no alias and
# that nests at most _FAST_MAX_DEPTH levels (libyaml's composer recurses in C and would crash, not raise, on
# a very deep document). Anything else goes through _StrictLoader, so errors and limits read exactly the same.
_FAST_MAX_DEPTH = 64
_FastLoader: type[yaml.CSafeLoader] | None = None
if getattr(yaml, "__with_libyaml__", False):

    class _CStrictLoader(yaml.CSafeLoader):
        def construct_mapping(self, node, deep=False):
            return _strict_construct_mapping(self, node, deep)

    _CStrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _CStrictLoader.construct_mapping)
    _FastLoader = _CStrictLoader


def _plain_for_libyaml(text: str) -> bool:
    """True when the document parses in libyaml, has no alias, and is shallow enough for its composer."""
    depth = 0
    try:
        for event in yaml.parse(text, Loader=yaml.CSafeLoader):
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > _FAST_MAX_DEPTH:
                    return False
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
            elif isinstance(event, yaml.AliasEvent):
                return False
    except yaml.YAMLError:
        return False
    return True


def load_yaml(text: str) -> Any:
    """One YAML document with _StrictLoader's rules (libyaml when that changes nothing but the speed)."""
    if _FastLoader is not None and _plain_for_libyaml(text):
        try:
            return yaml.load(text, Loader=_FastLoader)  # noqa: S506 - a CSafeLoader
        except yaml.YAMLError:
            pass  # reported by the pure-Python loader below, in its words
    return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - _StrictLoader is a SafeLoader


def display_path(path: Path, root: Path) -> str:
    """A path as the user should read it: relative to the project when inside it."""
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except (ValueError, OSError, RuntimeError):
        # RuntimeError: a symlink loop (Path.resolve before Python 3.13); shown as given, reported when read.
        return str(path)


def read_bounded(path: Path, limit: int) -> bytes:
    """At most limit + 1 bytes of a regular file. Never blocks: a FIFO is opened non-blocking and refused, like a
    device or a folder; /dev/zero can't fill the memory. Raises OSError (with strerror) for anything else."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = (
                "a folder" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode)
                else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode)
                else "not a regular file"
            )
            raise OSError(errno.EINVAL, f"is {kind}, not a regular file")
        os.set_blocking(fd, True)
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, limit + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _read_text(path: Path, shown: str) -> str:
    """A project file's text: it must be a regular file of at most MAX_FILE_BYTES, in UTF-8 (read bounded)."""
    try:
        raw = read_bounded(path, MAX_FILE_BYTES)
    except FileNotFoundError:
        raise ConfigError([Problem(shown, "", "file not found")]) from None
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if exc.errno == errno.ELOOP:
            reason = "a symbolic link loop"
        raise ConfigError([Problem(shown, "", f"cannot read file: {reason}")]) from None
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigError([Problem(shown, "", f"file is larger than {MAX_FILE_BYTES} bytes")])
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError([Problem(shown, "", "file is not UTF-8 text")]) from None


def _parse(load: Callable[[], Any], shown: str) -> Any:
    """Run a YAML load, turning any failure into a one-line ConfigError, and refuse alias bombs."""
    try:
        data = load()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigError([Problem(shown, "", f"malformed YAML: {where}{exc.problem}")]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([Problem(shown, "", f"malformed YAML: {exc}")]) from None
    except RecursionError:
        raise ConfigError([Problem(shown, "", "malformed YAML: nesting is too deep")]) from None
    if expanded_size_exceeds(data, MAX_VALUES):
        raise ConfigError(
            [Problem(shown, "", f"expands to more than {MAX_VALUES} values; refusing a possible YAML alias bomb")]
        )
    return data


def read_yaml_mapping(path: Path, shown: str) -> dict[str, Any]:
    """Load one YAML file that must hold a mapping; raise ConfigError with a one-line reason otherwise."""
    return parse_yaml_mapping(_read_text(path, shown), shown)


def parse_yaml_mapping(text: str, shown: str) -> dict[str, Any]:
    """read_yaml_mapping for text already read (bounded) from the file `shown`."""
    data = _parse(lambda: load_yaml(text), shown)
    if data is None:
        raise ConfigError([Problem(shown, "", "file is empty")])
    if not isinstance(data, dict):
        raise ConfigError([Problem(shown, "", f"expected a mapping at the top level, got {type(data).__name__}")])
    return data


def load_yaml_documents(text: str) -> list[Any]:
    """Every non-empty document of a YAML stream, with load_yaml's rules (libyaml when that changes nothing but the
    speed: the manifests under config/manifests/ are most of what the planner parses)."""
    if _FastLoader is not None and _plain_for_libyaml(text):
        try:
            return [d for d in yaml.load_all(text, Loader=_FastLoader) if d is not None]  # noqa: S506 - a CSafeLoader
        except yaml.YAMLError:
            pass  # reported by the pure-Python loader below, in its words
    return [d for d in yaml.load_all(text, Loader=_StrictLoader) if d is not None]  # noqa: S506


def read_yaml_documents(path: Path, shown: str) -> list[Any]:
    """Every non-empty document of a multi-document YAML file, with read_yaml_mapping's limits and messages."""
    text = _read_text(path, shown)
    return _parse(lambda: load_yaml_documents(text), shown)


def parse_model(model: type[BaseModel], data: Any, shown: str, prefix: Sequence[Any] = ()):
    """Validate data against a pydantic model, turning errors into Problems."""
    try:
        return model.model_validate(data), []
    except ValidationError as exc:
        return None, problems_from_validation(shown, exc, prefix)
