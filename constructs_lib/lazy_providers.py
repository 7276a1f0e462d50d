"""Import prebuilt cdktf provider packages without importing every resource module they contain.

A prebuilt provider package (`<engine prefix><name>`, see constructs_lib/engine.py) ends its `__init__.py` with one
`from . import <resource>` line per resource type: 559 for Cloudflare, 109 for Kubernetes. Python runs that
file before any submodule, so importing the Cloudflare provider class from its `provider` module
builds the Python classes of every Cloudflare resource (seconds of CPU and tens of MB), although the app
uses a handful. The jsii assembly itself is loaded by the package's `_jsii` module either way.

`install()` adds an import hook that runs those package roots without their trailing submodule imports,
and gives each a module `__getattr__`, so `pkg.some_resource` and `from pkg import some_resource` still
import the submodule on first use. Nothing else changes: the same classes, the same jsii assembly, the
same synthesized output.

The hook is opt-in: importing constructs_lib does not install it (a library should not change how other
packages import behind its users' backs). An app calls `constructs_lib.enable_lazy_providers()` (or
`install()` here) first thing, before any provider import; it is the app's choice to offer a switch to
turn it off.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import re
import sys
from collections.abc import Callable, Sequence
from types import ModuleType

from constructs_lib.engine import PROVIDER_PREFIX

PREFIX = PROVIDER_PREFIX  # the selected engine's prebuilt provider packages (constructs_lib/engine.py)
# The first of the trailing submodule imports, after `publication.publish()`.
_SUBMODULE_IMPORT = re.compile(r"^from \. import \w+\s*$", re.MULTILINE)


def _lazy_getattr(package: str, public: Sequence[str]) -> Callable[[str], ModuleType]:
    names = frozenset(public)

    def __getattr__(name: str) -> ModuleType:
        if name in names:
            return importlib.import_module(f"{package}.{name}")
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__


# Plain classes rather than importlib.abc ones: importing importlib.abc costs ~50 ms (importlib.metadata).
class _LazyRootLoader:
    def __init__(self, wrapped: importlib.machinery.SourceFileLoader) -> None:
        self._wrapped = wrapped

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        path = self._wrapped.get_filename(module.__name__)
        source = self._wrapped.get_data(path).decode("utf-8")
        match = _SUBMODULE_IMPORT.search(source)
        if match is None:
            # Not the layout this hook knows: run the package as it is.
            self._wrapped.exec_module(module)
            return
        exec(compile(source[: match.start()], path, "exec"), module.__dict__)  # noqa: S102 - the package's own code
        # publication.publish() replaced the module in sys.modules by its public copy: extend that one.
        public = sys.modules[module.__name__]
        setattr(public, "__getattr__", _lazy_getattr(module.__name__, getattr(public, "__all__", ())))  # noqa: B010


class _LazyProviderFinder:
    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith(PREFIX) or "." in fullname:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or not isinstance(spec.loader, importlib.machinery.SourceFileLoader):
            return spec
        spec.loader = _LazyRootLoader(spec.loader)  # type: ignore[assignment]  # a loader by protocol, not by base
        return spec


_FINDER = _LazyProviderFinder()


def install() -> None:
    """Make provider package roots lazy for this process (idempotent)."""
    if _FINDER in sys.meta_path:
        return
    sys.meta_path.insert(0, _FINDER)
