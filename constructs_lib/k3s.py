"""A k3s cluster on existing machines, provisioned over SSH. (Skeleton: credentials only; provisioning follows.)"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

from cdktf_cdktf_provider_tls.cert_request import CertRequest, CertRequestSubject
from cdktf_cdktf_provider_tls.locally_signed_cert import LocallySignedCert
from cdktf_cdktf_provider_tls.private_key import PrivateKey
from cdktf_cdktf_provider_tls.provider import TlsProvider
from cdktf_cdktf_provider_tls.self_signed_cert import SelfSignedCert, SelfSignedCertSubject
from constructs import Construct

TEN_YEARS_HOURS = 10 * 365 * 24


@dataclass(frozen=True)
class K3sNode:
    """One machine. Props: name, address (IPv4), role ('server' or 'agent'), labels, taints ('key=value:Effect')."""

    name: str
    address: str
    role: str
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: Sequence[str] = ()


@dataclass(frozen=True)
class K3sClusterProps:
    """Props: version (exact k3s version), nodes, api_host (VIP or first server), api_port."""

    version: str
    nodes: Sequence[K3sNode]
    api_host: str
    api_port: int = 6443


class K3sCluster(Construct):
    """A k3s cluster. Attributes: api_url, cluster_ca_certificate, client_certificate, client_key."""

    def __init__(self, scope: Construct, id: str, *, props: K3sClusterProps) -> None:
        super().__init__(scope, id)
        TlsProvider(self, "tls")
        ca_key = PrivateKey(self, "client-ca-key", algorithm="ECDSA", ecdsa_curve="P256")
        ca = SelfSignedCert(
            self,
            "client-ca",
            private_key_pem=ca_key.private_key_pem,
            is_ca_certificate=True,
            validity_period_hours=TEN_YEARS_HOURS,
            allowed_uses=["cert_signing", "key_encipherment", "digital_signature"],
            subject=[SelfSignedCertSubject(common_name="k3s-client-ca")],
        )
        admin_key = PrivateKey(self, "admin-key", algorithm="ECDSA", ecdsa_curve="P256")
        request = CertRequest(
            self,
            "admin-csr",
            private_key_pem=admin_key.private_key_pem,
            subject=[CertRequestSubject(common_name="terraform-admin", organization="system:masters")],
        )
        admin = LocallySignedCert(
            self,
            "admin-cert",
            cert_request_pem=request.cert_request_pem,
            ca_cert_pem=ca.cert_pem,
            ca_private_key_pem=ca_key.private_key_pem,
            validity_period_hours=TEN_YEARS_HOURS,
            allowed_uses=["client_auth", "digital_signature", "key_encipherment"],
        )
        self.api_url = f"https://{props.api_host}:{props.api_port}"
        self.cluster_ca_certificate = ca.cert_pem
        self.client_certificate = admin.cert_pem
        self.client_key = admin_key.private_key_pem
