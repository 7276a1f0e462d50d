"""How a stack reaches a Kubernetes cluster: the helm and kubernetes providers, configured once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from constructs import Construct

from constructs_lib.engine import HelmProvider, HelmProviderKubernetes, KubernetesProvider


@dataclass(frozen=True)
class ClusterAccess:
    """Credentials for a cluster: either certificates (often tokens from another stack) or a kubeconfig.

    Props:
        host: API server URL, such as https://10.0.0.10:6443.
        cluster_ca_certificate: PEM of the cluster CA.
        client_certificate: PEM of an admin client certificate.
        client_key: PEM of its private key.
        kubeconfig_path: use this kubeconfig instead of certificates.
        kubeconfig_context: the context to use within it.
    """

    host: str | None = None
    cluster_ca_certificate: str | None = None
    client_certificate: str | None = None
    client_key: str | None = None
    kubeconfig_path: str | None = None
    kubeconfig_context: str | None = None

    def __post_init__(self) -> None:
        by_cert = self.host is not None
        by_file = self.kubeconfig_path is not None
        if by_cert == by_file:
            raise ValueError("ClusterAccess needs either host (with certificates) or kubeconfig_path, not both")

    def _settings(self) -> dict[str, Any]:
        if self.kubeconfig_path is not None:
            return dict(config_path=self.kubeconfig_path, config_context=self.kubeconfig_context)
        return dict(
            host=self.host,
            cluster_ca_certificate=self.cluster_ca_certificate,
            client_certificate=self.client_certificate,
            client_key=self.client_key,
        )


class ClusterProviders(Construct):
    """The helm and kubernetes providers of one stack, both pointed at the same cluster.

    Props:
        access: the cluster's ClusterAccess.
    Attributes:
        helm: the HelmProvider.
        kubernetes: the KubernetesProvider.
    """

    def __init__(self, scope: Construct, id: str, *, access: ClusterAccess) -> None:
        super().__init__(scope, id)
        settings = access._settings()
        self.kubernetes = KubernetesProvider(self, "kubernetes", **settings)
        self.helm = HelmProvider(self, "helm", kubernetes=HelmProviderKubernetes(**settings))
