"""The edge stack: the Cloudflare tunnel and its DNS records. (Skeleton: provider only; the tunnel follows.)"""

from __future__ import annotations

from cdktf import TerraformVariable
from cdktf_cdktf_provider_cloudflare.provider import CloudflareProvider
from constructs import Construct

from constructs_lib.backend import StateBackend
from stacks.base import HelixStack
from stacks.config import HelixConfig


class EdgeStack(HelixStack):
    def __init__(self, scope: Construct, name: str, *, config: HelixConfig, backend: StateBackend) -> None:
        super().__init__(scope, name, backend=backend)
        token = TerraformVariable(
            self,
            "cloudflare_api_token",
            type="string",
            sensitive=True,
            description="Cloudflare API token with Tunnel edit and DNS edit on the zone",
        )
        CloudflareProvider(self, "cloudflare", api_token=token.string_value)
