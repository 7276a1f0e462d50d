"""Delivery layer: the SOPS age key for Flux, as the Kubernetes secret flux-system/sops-age.

Flux's kustomize-controller decrypts SOPS-encrypted manifests with the age identities it finds in the secret a
Kustomization names in `spec.decryption.secretRef` (provider: sops); the key of each identity ends in `.agekey`.
The private key enters Terraform only as the sensitive variable `sops_age_key` (TF_VAR_sops_age_key, the whole
content of an age key file as `age-keygen` writes it). It is never in git, the config or cdktf.out; it is in the
delivery stack's state, like every secret Terraform manages, so that state must be protected (see
docs/safety.md). The secret is created before the flux2 release, so Flux finds it on its first reconcile.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cdktf import TerraformVariable, TerraformVariableValidationConfig
from cdktf_cdktf_provider_kubernetes.secret_v1 import SecretV1, SecretV1Metadata

if TYPE_CHECKING:
    from stacks.platform import LayerContext

FLUX = "flux2"
SECRET_NAME = "sops-age"
SECRET_KEY = "age.agekey"
VARIABLE = "sops_age_key"


class SopsAgeKeyHook:
    """Creates flux-system/sops-age from the sensitive variable sops_age_key, before Flux is installed."""

    def before(self, ctx: "LayerContext") -> None:
        flux = next((c for c in ctx.layer.components if c.id == FLUX), None)
        if flux is None:
            return
        key = TerraformVariable(
            ctx.stack,
            VARIABLE,
            type="string",
            sensitive=True,
            nullable=False,
            description=(
                "The age private key Flux decrypts SOPS files with: the whole key file from `age-keygen` "
                "(set TF_VAR_sops_age_key; never commit it)"
            ),
            validation=[
                TerraformVariableValidationConfig(
                    condition=f'${{can(regex("AGE-SECRET-KEY-1[0-9A-Z]+", var.{VARIABLE}))}}',
                    error_message="sops_age_key must hold an age identity (a line starting AGE-SECRET-KEY-1).",
                )
            ],
        )
        secret = SecretV1(
            ctx.stack,
            "flux-sops-age",
            provider=ctx.providers.kubernetes,
            metadata=SecretV1Metadata(
                name=SECRET_NAME,
                namespace=flux.namespace,
                labels={"app.kubernetes.io/managed-by": "terraform", "app.kubernetes.io/part-of": "flux"},
            ),
            data={SECRET_KEY: key.string_value},
        )
        ctx.depends_on[FLUX].append(secret)
        ctx.shared[SECRET_NAME] = (secret, flux.namespace)

    def after(self, ctx: "LayerContext") -> None:
        secret, namespace = ctx.shared.get(SECRET_NAME, (None, None))
        if secret is None or ctx.addons is None or namespace not in ctx.addons.namespaces:
            return
        # The namespace is created by this layer's AddOnLayer, after `before` ran: refer to its name so the
        # secret waits for it (an implicit dependency, as Terraform writes one).
        secret.add_override("metadata.namespace", ctx.addons.namespaces[namespace].metadata.name)
