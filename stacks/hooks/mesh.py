"""Mesh layer: Istio's Telemetry API, the replacement for Mixer's telemetry role.

One mesh-wide `Telemetry` (telemetry.istio.io/v1) in Istio's root namespace, with no selector, so it applies to
every proxy: Prometheus metrics (the built-in `prometheus` provider, scraped from each sidecar) and Envoy access
logs to the proxies' stdout (the built-in `envoy` provider, collected with all other pod logs). Tracing is added
only when istiod's meshConfig.extensionProviders defines a tracing provider (opentelemetry, zipkin, ...), for
example an OpenTelemetry provider pointing at Tempo; the sampling rate then comes from meshConfig.

Installed as a release of the raw chart after istio-base (which brings the Telemetry CRD) and istiod (whose
validating webhook checks the resource).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from stacks.hooks.manifests import manifest_addon

if TYPE_CHECKING:
    from stacks.platform import LayerContext

RELEASE = "istio-telemetry"
TELEMETRY_NAME = "mesh-default"
# meshConfig.extensionProviders entries that carry traces (the key names the provider type).
TRACING_PROVIDER_TYPES = ("opentelemetry", "zipkin", "datadog", "skywalking", "stackdriver", "lightstep")


def tracing_providers(istiod_values: Mapping[str, Any]) -> list[str]:
    """Names of the tracing providers declared in istiod's meshConfig, in their order."""
    mesh = istiod_values.get("meshConfig") or {}
    out = []
    for provider in mesh.get("extensionProviders") or []:
        if isinstance(provider, dict) and provider.get("name") and any(t in provider for t in TRACING_PROVIDER_TYPES):
            out.append(str(provider["name"]))
    return out


def root_namespace(istiod_values: Mapping[str, Any], istiod_namespace: str) -> str:
    return str((istiod_values.get("meshConfig") or {}).get("rootNamespace") or istiod_namespace)


def mesh_telemetry(istiod_values: Mapping[str, Any], istiod_namespace: str) -> dict[str, Any]:
    """The mesh-wide Telemetry resource for an istiod installed with these values."""
    spec: dict[str, Any] = {
        "metrics": [{"providers": [{"name": "prometheus"}]}],
        "accessLogging": [{"providers": [{"name": "envoy"}]}],
    }
    tracing = tracing_providers(istiod_values)
    if tracing:
        spec["tracing"] = [{"providers": [{"name": name} for name in tracing]}]
    return {
        "apiVersion": "telemetry.istio.io/v1",
        "kind": "Telemetry",
        "metadata": {"name": TELEMETRY_NAME, "namespace": root_namespace(istiod_values, istiod_namespace)},
        "spec": spec,
    }


class MeshTelemetryHook:
    """Adds the Telemetry release when istiod is installed by this layer."""

    def before(self, ctx: "LayerContext") -> None:
        return None

    def after(self, ctx: "LayerContext") -> None:
        from constructs_lib.addons import AddOnLayer

        istiod = next((c for c in ctx.layer.components if c.chart == "istiod"), None)
        if istiod is None:
            return
        base = next((c for c in ctx.layer.components if c.chart == "base" and "istio" in c.repository), None)
        first = [ctx.addons.releases[istiod.id]]
        if base is not None:
            first.insert(0, ctx.addons.releases[base.id])
        telemetry = mesh_telemetry(istiod.values, istiod.namespace)
        ctx.shared["telemetry"] = AddOnLayer(
            ctx.stack,
            "telemetry",
            providers=ctx.providers,
            add_ons=[manifest_addon(RELEASE, telemetry["metadata"]["namespace"], [telemetry], depends_on=first)],
        )
