"""Reusable cdktf constructs for a k3s platform: no project specifics, everything is passed in.

Public API (see docs/library.md)::

    from constructs_lib import K3sCluster, AddOnLayer, HelmAddOn, LocalStateBackend, ...

`import constructs_lib` is cheap: each name loads its submodule (and the provider classes it needs) on
first access, through the module `__getattr__` below. Importing the submodules directly
(`from constructs_lib.addons import AddOnLayer`) works the same.

Importing the package changes nothing outside it. Apps that want faster synthesis can opt in to lazy
provider package roots with `enable_lazy_providers()` (see constructs_lib/lazy_providers.py) before they
first import a provider class.
"""

from __future__ import annotations

import importlib

# typing.TYPE_CHECKING without importing typing (which alone is most of this package's import time).
TYPE_CHECKING = False

__version__ = "0.2.0"  # CHANGELOG.md lists each version; pyproject.toml reads this one

# Public name -> the submodule that defines it.
_EXPORTS: dict[str, str] = {
    # A k3s cluster on existing machines.
    "K3sCluster": "k3s",
    "K3sClusterProps": "k3s",
    "K3sNode": "k3s",
    "DepartedK3sNode": "k3s",
    "SshAccess": "k3s",
    "EtcdS3Target": "k3s",
    "KubeVip": "kube_vip",
    # A Cloudflare Tunnel with its ingress rules and DNS records.
    "CloudflareTunnel": "cloudflare_tunnel",
    "CloudflareTunnelProps": "cloudflare_tunnel",
    "TunnelRoute": "cloudflare_tunnel",
    "AccessProtection": "cloudflare_tunnel",
    "MachinePath": "cloudflare_tunnel",
    "AccessApplication": "cloudflare_tunnel",
    "TunnelAdoption": "cloudflare_tunnel",
    "CloudflareZoneSettings": "cloudflare_tunnel",
    # Reaching a cluster: providers for later stacks.
    "ClusterAccess": "cluster_access",
    "ClusterProviders": "cluster_access",
    # Helm add-ons and namespaces as one layer.
    "AddOnLayer": "addons",
    "HelmAddOn": "addons",
    "NamespaceSpec": "addons",
    "GeneratedSecretSpec": "addons",
    "ManifestRelease": "addons",
    "RawChart": "addons",
    "SecretSpec": "addons",
    # State backends.
    "StateBackend": "backend",
    "LocalStateBackend": "backend",
    "S3StateBackend": "backend",
    "RemoteStateBackend": "backend",
    "PgStateBackend": "backend",
}

__all__ = sorted([*_EXPORTS, "enable_lazy_providers"])


def enable_lazy_providers() -> None:
    """Opt in: make prebuilt provider package roots import only the resource modules that are used.

    It installs a process-wide import hook (idempotent) and saves seconds per synth for large providers
    such as Cloudflare. Call it before the first provider import, typically first thing in an app's
    main module; calling it later is harmless but has no effect on packages already imported.
    """
    from constructs_lib import lazy_providers

    lazy_providers.install()


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # for type checkers and IDEs; at runtime the names load lazily (`X as X`: a re-export)
    from typing import Any

    from constructs_lib.addons import AddOnLayer as AddOnLayer
    from constructs_lib.addons import GeneratedSecretSpec as GeneratedSecretSpec
    from constructs_lib.addons import HelmAddOn as HelmAddOn
    from constructs_lib.addons import ManifestRelease as ManifestRelease
    from constructs_lib.addons import NamespaceSpec as NamespaceSpec
    from constructs_lib.addons import RawChart as RawChart
    from constructs_lib.addons import SecretSpec as SecretSpec
    from constructs_lib.backend import LocalStateBackend as LocalStateBackend
    from constructs_lib.backend import PgStateBackend as PgStateBackend
    from constructs_lib.backend import RemoteStateBackend as RemoteStateBackend
    from constructs_lib.backend import S3StateBackend as S3StateBackend
    from constructs_lib.backend import StateBackend as StateBackend
    from constructs_lib.cloudflare_tunnel import AccessApplication as AccessApplication
    from constructs_lib.cloudflare_tunnel import AccessProtection as AccessProtection
    from constructs_lib.cloudflare_tunnel import CloudflareTunnel as CloudflareTunnel
    from constructs_lib.cloudflare_tunnel import CloudflareTunnelProps as CloudflareTunnelProps
    from constructs_lib.cloudflare_tunnel import CloudflareZoneSettings as CloudflareZoneSettings
    from constructs_lib.cloudflare_tunnel import MachinePath as MachinePath
    from constructs_lib.cloudflare_tunnel import TunnelAdoption as TunnelAdoption
    from constructs_lib.cloudflare_tunnel import TunnelRoute as TunnelRoute
    from constructs_lib.cluster_access import ClusterAccess as ClusterAccess
    from constructs_lib.cluster_access import ClusterProviders as ClusterProviders
    from constructs_lib.k3s import DepartedK3sNode as DepartedK3sNode
    from constructs_lib.k3s import EtcdS3Target as EtcdS3Target
    from constructs_lib.k3s import K3sCluster as K3sCluster
    from constructs_lib.k3s import K3sClusterProps as K3sClusterProps
    from constructs_lib.k3s import K3sNode as K3sNode
    from constructs_lib.k3s import SshAccess as SshAccess
    from constructs_lib.kube_vip import KubeVip as KubeVip
