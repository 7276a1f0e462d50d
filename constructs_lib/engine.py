"""The CDK engine: the one module that imports `cdktf` or `cdktn` and their prebuilt provider packages.

Two engines synthesize the same Terraform JSON from the same constructs:

- **cdktf** 0.21 (the default): CDK for Terraform, archived upstream, with its last prebuilt providers
  (`cdktf_cdktf_provider_<name>`).
- **cdktn** 0.24: the maintained, state-compatible fork, with maintained prebuilt providers
  (`cdktn_provider_<name>`). See docs/engine.md.

Which one runs is one setting: the environment variable CDK_ENGINE (`cdktf` or `cdktn`). Unset, the engine is
cdktf when it is installed, else cdktn when that is (an environment normally holds one of them: cdktn needs
`constructs <10.8`).

The rest of the library, and an app built on it, import the engine's names from here:
`from constructs_lib.engine import App, TerraformStack, Release`, so none of them knows which engine runs.

Importing this module is cheap: it imports neither engine. Each name loads on first access (module
`__getattr__`), a provider class by importing only its own resource module, so a config that uses no
Cloudflare resource never imports the Cloudflare package (jsii assembly loads take seconds).
"""

from __future__ import annotations

import importlib
import os
from importlib.util import find_spec
from pathlib import Path
from types import ModuleType

# typing.TYPE_CHECKING without importing typing.
TYPE_CHECKING = False

VARIABLE = "CDK_ENGINE"
DEFAULT = "cdktf"
# engine -> (core package, prefix of its prebuilt provider packages, the core's distribution name)
ENGINES: dict[str, tuple[str, str, str]] = {
    "cdktf": ("cdktf", "cdktf_cdktf_provider_", "cdktf"),
    "cdktn": ("cdktn", "cdktn_provider_", "cdktn"),
}
# Every prefix of an engine module (core or provider), for the test that no other file imports one.
ENGINE_MODULE_PREFIXES = tuple(sorted({p for core, prefix, _ in ENGINES.values() for p in (core, prefix)}))


def _installed(package: str) -> bool:
    try:
        return find_spec(package) is not None
    except (ImportError, ValueError):
        return False


def select(environ: os._Environ[str] | dict[str, str] = os.environ) -> str:
    """The engine to use: $CDK_ENGINE when set (see `problem()` when it is not valid), else the first of cdktf and
    cdktn that is installed, else the default."""
    wanted = environ.get(VARIABLE, "").strip()
    if wanted:
        return wanted
    for name in (DEFAULT, *sorted(set(ENGINES) - {DEFAULT})):
        if _installed(ENGINES[name][0]):
            return name
    return DEFAULT


NAME = select()
CORE, PROVIDER_PREFIX, DISTRIBUTION = ENGINES.get(NAME, ENGINES[DEFAULT])


def problem() -> str | None:
    """Why the selected engine cannot run here (a one-line message), or None."""
    if NAME not in ENGINES:
        return f"{NAME!r} is not an engine: use one of {', '.join(sorted(ENGINES))}"
    if not _installed(CORE):
        return f"the {NAME} engine (Python package {CORE!r}) is not installed in this environment"
    return None


def version(name: str | None = None) -> str:
    """The installed version of an engine's core package (the selected engine's by default), read from its
    dist-info folder name (cheap: no importlib.metadata); "unknown" when it cannot be found."""
    core, _, distribution = ENGINES.get(name or NAME, (None, None, None))
    if core is None or distribution is None:
        return "unknown"
    try:
        spec = find_spec(core)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        return "unknown"
    site = Path(next(iter(spec.submodule_search_locations))).parent
    prefix = f"{distribution}-"
    try:
        for entry in sorted(os.listdir(site)):
            if entry.startswith(prefix) and entry.endswith(".dist-info"):
                candidate = entry[len(prefix) : -len(".dist-info")]
                if candidate[:1].isdigit():
                    return candidate
    except OSError:
        pass
    return "unknown"


def identity(environ: os._Environ[str] | dict[str, str] | None = None) -> str:
    """`<engine> <version>` of the engine that runs (or would run under `environ`): what a synth cache keys on."""
    name = NAME if environ is None else select(environ)
    return f"{name} {version(name)}"


# Providers whose prebuilt package only one engine has here. AWS: cdktf-cdktf-provider-aws 20.1.0 wraps hashicorp/aws
# 5.100.0, the version cloud node pools are validated and applied against; every cdktn-provider-aws release wraps a
# later major (docs/engine.md), so under cdktn the AWS names are not offered.
ONLY_WITH: dict[str, str] = {"aws": "cdktf"}


def has_provider(provider: str) -> bool:
    """Whether the selected engine offers this provider's prebuilt package here."""
    return ONLY_WITH.get(provider, NAME) == NAME


def provider_package(provider: str) -> str:
    """The module name of the engine's prebuilt package for a provider ("kubernetes" -> its package)."""
    return f"{PROVIDER_PREFIX}{provider}"


def provider_module(provider: str, module: str | None = None) -> ModuleType:
    """The engine's prebuilt provider package, or one of its resource modules (`provider_module("helm", "release")`)."""
    name = provider_package(provider)
    return importlib.import_module(f"{name}.{module}" if module else name)


def core_module(submodule: str | None = None) -> ModuleType:
    """The engine's core package (or a submodule of it, e.g. "_jsii")."""
    return importlib.import_module(f"{CORE}.{submodule}" if submodule else CORE)


_LIST_PARAMETERS: dict[tuple[type, str], bool] = {}


def block(cls: type, parameter: str, value: Any) -> Any:
    """`value`, a nested block's struct, as `cls` takes its `parameter`: the struct itself, or a one-item list where
    the engine's binding declares the block a list. Bindings differ there: cdktn's kubernetes bindings
    (hashicorp/kubernetes 3.4.0) take `kubernetes_namespace_v1.metadata` as a list, cdktf's (2.38.0) as one block."""
    key = (cls, parameter)
    if key not in _LIST_PARAMETERS:
        import inspect

        init = vars(cls).get("__init__")  # a binding class declares its own (signature(cls) is jsii's metaclass')
        parameters = inspect.signature(init).parameters if init is not None else {}
        annotation = parameters[parameter].annotation if parameter in parameters else ""
        _LIST_PARAMETERS[key] = "Sequence[" in str(annotation).split("Dict[", 1)[0]
    return [value] if _LIST_PARAMETERS[key] and not isinstance(value, list) else value


# Names of the engine's core package that the project uses.
CORE_NAMES = frozenset(
    {
        "App",
        "CloudBackend",
        "DataResource",
        "FileProvisioner",
        "Fn",
        "ITerraformDependable",
        "LocalBackend",
        "NamedCloudWorkspace",
        "Op",
        "PgBackend",
        "RemoteExecProvisioner",
        "S3Backend",
        "SSHProvisionerConnection",
        "TerraformLocal",
        "TerraformOutput",
        "TerraformProvider",
        "TerraformResource",
        "TerraformResourceLifecycle",
        "TerraformStack",
        "TerraformVariable",
        "TerraformVariableValidationConfig",
        "Testing",
        "Token",
    }
)

# Provider class -> "<provider>.<resource module>" in the engine's prebuilt provider packages.
PROVIDER_NAMES: dict[str, str] = {
    # aws: only with cloud node pools (constructs_lib/aws_node_pool.py), so only then is its package imported.
    "AutoscalingGroup": "aws.autoscaling_group",
    "AutoscalingGroupMixedInstancesPolicy": "aws.autoscaling_group",
    "AutoscalingGroupMixedInstancesPolicyInstancesDistribution": "aws.autoscaling_group",
    "AutoscalingGroupMixedInstancesPolicyLaunchTemplate": "aws.autoscaling_group",
    "AutoscalingGroupMixedInstancesPolicyLaunchTemplateLaunchTemplateSpecification": "aws.autoscaling_group",
    "AutoscalingGroupMixedInstancesPolicyLaunchTemplateOverride": "aws.autoscaling_group",
    "AutoscalingGroupTag": "aws.autoscaling_group",
    "DataAwsSsmParameter": "aws.data_aws_ssm_parameter",
    "IamAccessKey": "aws.iam_access_key",
    "IamInstanceProfile": "aws.iam_instance_profile",
    "IamRole": "aws.iam_role",
    "IamRolePolicy": "aws.iam_role_policy",
    "IamUser": "aws.iam_user",
    "IamUserPolicy": "aws.iam_user_policy",
    "LaunchTemplate": "aws.launch_template",
    "LaunchTemplateBlockDeviceMappings": "aws.launch_template",
    "LaunchTemplateBlockDeviceMappingsEbs": "aws.launch_template",
    "LaunchTemplateIamInstanceProfile": "aws.launch_template",
    "LaunchTemplateMetadataOptions": "aws.launch_template",
    "AwsProvider": "aws.provider",
    "SecurityGroup": "aws.security_group",
    "SsmParameter": "aws.ssm_parameter",
    "VpcSecurityGroupEgressRule": "aws.vpc_security_group_egress_rule",
    "VpcSecurityGroupIngressRule": "aws.vpc_security_group_ingress_rule",
    "DataCloudflareZeroTrustTunnelCloudflaredToken": "cloudflare.data_cloudflare_zero_trust_tunnel_cloudflared_token",
    "DnsRecord": "cloudflare.dns_record",
    "NotificationPolicy": "cloudflare.notification_policy",
    "NotificationPolicyFilters": "cloudflare.notification_policy",
    "NotificationPolicyMechanisms": "cloudflare.notification_policy",
    "NotificationPolicyMechanismsEmail": "cloudflare.notification_policy",
    "CloudflareProvider": "cloudflare.provider",
    "ZeroTrustAccessApplication": "cloudflare.zero_trust_access_application",
    "ZeroTrustAccessApplicationDestinations": "cloudflare.zero_trust_access_application",
    "ZeroTrustAccessApplicationPolicies": "cloudflare.zero_trust_access_application",
    "ZeroTrustAccessPolicy": "cloudflare.zero_trust_access_policy",
    "ZeroTrustAccessPolicyInclude": "cloudflare.zero_trust_access_policy",
    "ZeroTrustAccessPolicyIncludeEmail": "cloudflare.zero_trust_access_policy",
    "ZeroTrustAccessPolicyIncludeEmailDomain": "cloudflare.zero_trust_access_policy",
    "ZeroTrustAccessPolicyIncludeEveryone": "cloudflare.zero_trust_access_policy",
    "ZeroTrustAccessPolicyIncludeGroup": "cloudflare.zero_trust_access_policy",
    "ZeroTrustAccessPolicyIncludeLoginMethod": "cloudflare.zero_trust_access_policy",
    "ZeroTrustAccessPolicyIncludeServiceToken": "cloudflare.zero_trust_access_policy",
    "ZeroTrustTunnelCloudflared": "cloudflare.zero_trust_tunnel_cloudflared",
    "ZeroTrustTunnelCloudflaredConfigA": "cloudflare.zero_trust_tunnel_cloudflared_config",
    "ZeroTrustTunnelCloudflaredConfigConfig": "cloudflare.zero_trust_tunnel_cloudflared_config",
    "ZeroTrustTunnelCloudflaredConfigConfigIngress": "cloudflare.zero_trust_tunnel_cloudflared_config",
    "ZeroTrustTunnelCloudflaredConfigConfigIngressOriginRequest": "cloudflare.zero_trust_tunnel_cloudflared_config",
    "ZeroTrustTunnelCloudflaredConfigConfigIngressOriginRequestAccess": "cloudflare.zero_trust_tunnel_cloudflared_config",
    "ZoneSetting": "cloudflare.zone_setting",
    "HelmProvider": "helm.provider",
    "HelmProviderKubernetes": "helm.provider",
    "Release": "helm.release",
    "ReleaseSet": "helm.release",
    "ReleaseSetSensitive": "helm.release",
    "Annotations": "kubernetes.annotations",
    "AnnotationsMetadata": "kubernetes.annotations",
    "Labels": "kubernetes.labels",
    "LabelsMetadata": "kubernetes.labels",
    "NamespaceV1": "kubernetes.namespace_v1",
    "NamespaceV1Metadata": "kubernetes.namespace_v1",
    "NodeTaint": "kubernetes.node_taint",
    "NodeTaintMetadata": "kubernetes.node_taint",
    "NodeTaintTaint": "kubernetes.node_taint",
    "KubernetesProvider": "kubernetes.provider",
    "SecretV1": "kubernetes.secret_v1",
    "SecretV1Metadata": "kubernetes.secret_v1",
    "NullProvider": "null.provider",
    "NullResource": "null.resource",
    "Bytes": "random.bytes",
    "Password": "random.password",
    "RandomProvider": "random.provider",
    "CertRequest": "tls.cert_request",
    "CertRequestSubject": "tls.cert_request",
    "LocallySignedCert": "tls.locally_signed_cert",
    "PrivateKey": "tls.private_key",
    "TlsProvider": "tls.provider",
    "SelfSignedCert": "tls.self_signed_cert",
    "SelfSignedCertSubject": "tls.self_signed_cert",
}
# The one name two providers' modules share, renamed here.
RENAMED = {"NullResource": "Resource"}

__all__ = sorted([*CORE_NAMES, *(n for n, where in PROVIDER_NAMES.items() if has_provider(where.split(".")[0])),
                  "Construct"])


def __getattr__(name: str) -> Any:
    if name in CORE_NAMES:
        value = getattr(core_module(), name)
    elif name in PROVIDER_NAMES:
        provider, module = PROVIDER_NAMES[name].split(".", 1)
        value = getattr(provider_module(provider, module), RENAMED.get(name, name))
    elif name == "Construct":
        value = importlib.import_module("constructs").Construct
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # the types, for mypy: both engines' classes share names and signatures (`X as X`: a re-export)
    from typing import Any

    from cdktf import App as App
    from cdktf import CloudBackend as CloudBackend
    from cdktf import DataResource as DataResource
    from cdktf import FileProvisioner as FileProvisioner
    from cdktf import Fn as Fn
    from cdktf import ITerraformDependable as ITerraformDependable
    from cdktf import LocalBackend as LocalBackend
    from cdktf import NamedCloudWorkspace as NamedCloudWorkspace
    from cdktf import Op as Op
    from cdktf import PgBackend as PgBackend
    from cdktf import RemoteExecProvisioner as RemoteExecProvisioner
    from cdktf import S3Backend as S3Backend
    from cdktf import SSHProvisionerConnection as SSHProvisionerConnection
    from cdktf import TerraformLocal as TerraformLocal
    from cdktf import TerraformOutput as TerraformOutput
    from cdktf import TerraformProvider as TerraformProvider
    from cdktf import TerraformResource as TerraformResource
    from cdktf import TerraformResourceLifecycle as TerraformResourceLifecycle
    from cdktf import TerraformStack as TerraformStack
    from cdktf import TerraformVariable as TerraformVariable
    from cdktf import TerraformVariableValidationConfig as TerraformVariableValidationConfig
    from cdktf import Testing as Testing
    from cdktf import Token as Token
    from cdktf_cdktf_provider_aws.autoscaling_group import AutoscalingGroup as AutoscalingGroup
    from cdktf_cdktf_provider_aws.autoscaling_group import (
        AutoscalingGroupMixedInstancesPolicy as AutoscalingGroupMixedInstancesPolicy,
    )
    from cdktf_cdktf_provider_aws.autoscaling_group import (
        AutoscalingGroupMixedInstancesPolicyInstancesDistribution as AutoscalingGroupMixedInstancesPolicyInstancesDistribution,
    )
    from cdktf_cdktf_provider_aws.autoscaling_group import (
        AutoscalingGroupMixedInstancesPolicyLaunchTemplate as AutoscalingGroupMixedInstancesPolicyLaunchTemplate,
    )
    from cdktf_cdktf_provider_aws.autoscaling_group import (
        AutoscalingGroupMixedInstancesPolicyLaunchTemplateLaunchTemplateSpecification as AutoscalingGroupMixedInstancesPolicyLaunchTemplateLaunchTemplateSpecification,
    )
    from cdktf_cdktf_provider_aws.autoscaling_group import (
        AutoscalingGroupMixedInstancesPolicyLaunchTemplateOverride as AutoscalingGroupMixedInstancesPolicyLaunchTemplateOverride,
    )
    from cdktf_cdktf_provider_aws.autoscaling_group import AutoscalingGroupTag as AutoscalingGroupTag
    from cdktf_cdktf_provider_aws.data_aws_ssm_parameter import DataAwsSsmParameter as DataAwsSsmParameter
    from cdktf_cdktf_provider_aws.iam_access_key import IamAccessKey as IamAccessKey
    from cdktf_cdktf_provider_aws.iam_instance_profile import IamInstanceProfile as IamInstanceProfile
    from cdktf_cdktf_provider_aws.iam_role import IamRole as IamRole
    from cdktf_cdktf_provider_aws.iam_role_policy import IamRolePolicy as IamRolePolicy
    from cdktf_cdktf_provider_aws.iam_user import IamUser as IamUser
    from cdktf_cdktf_provider_aws.iam_user_policy import IamUserPolicy as IamUserPolicy
    from cdktf_cdktf_provider_aws.launch_template import LaunchTemplate as LaunchTemplate
    from cdktf_cdktf_provider_aws.launch_template import (
        LaunchTemplateBlockDeviceMappings as LaunchTemplateBlockDeviceMappings,
    )
    from cdktf_cdktf_provider_aws.launch_template import (
        LaunchTemplateBlockDeviceMappingsEbs as LaunchTemplateBlockDeviceMappingsEbs,
    )
    from cdktf_cdktf_provider_aws.launch_template import (
        LaunchTemplateIamInstanceProfile as LaunchTemplateIamInstanceProfile,
    )
    from cdktf_cdktf_provider_aws.launch_template import LaunchTemplateMetadataOptions as LaunchTemplateMetadataOptions
    from cdktf_cdktf_provider_aws.provider import AwsProvider as AwsProvider
    from cdktf_cdktf_provider_aws.security_group import SecurityGroup as SecurityGroup
    from cdktf_cdktf_provider_aws.ssm_parameter import SsmParameter as SsmParameter
    from cdktf_cdktf_provider_aws.vpc_security_group_egress_rule import (
        VpcSecurityGroupEgressRule as VpcSecurityGroupEgressRule,
    )
    from cdktf_cdktf_provider_aws.vpc_security_group_ingress_rule import (
        VpcSecurityGroupIngressRule as VpcSecurityGroupIngressRule,
    )
    from cdktf_cdktf_provider_cloudflare.data_cloudflare_zero_trust_tunnel_cloudflared_token import (
        DataCloudflareZeroTrustTunnelCloudflaredToken as DataCloudflareZeroTrustTunnelCloudflaredToken,
    )
    from cdktf_cdktf_provider_cloudflare.dns_record import DnsRecord as DnsRecord
    from cdktf_cdktf_provider_cloudflare.notification_policy import NotificationPolicy as NotificationPolicy
    from cdktf_cdktf_provider_cloudflare.notification_policy import (
        NotificationPolicyFilters as NotificationPolicyFilters,
    )
    from cdktf_cdktf_provider_cloudflare.notification_policy import (
        NotificationPolicyMechanisms as NotificationPolicyMechanisms,
    )
    from cdktf_cdktf_provider_cloudflare.notification_policy import (
        NotificationPolicyMechanismsEmail as NotificationPolicyMechanismsEmail,
    )
    from cdktf_cdktf_provider_cloudflare.provider import CloudflareProvider as CloudflareProvider
    from cdktf_cdktf_provider_cloudflare.zero_trust_access_application import (
        ZeroTrustAccessApplication as ZeroTrustAccessApplication,
    )
    from cdktf_cdktf_provider_cloudflare.zero_trust_access_application import (
        ZeroTrustAccessApplicationDestinations as ZeroTrustAccessApplicationDestinations,
    )
    from cdktf_cdktf_provider_cloudflare.zero_trust_access_application import (
        ZeroTrustAccessApplicationPolicies as ZeroTrustAccessApplicationPolicies,
    )
    from cdktf_cdktf_provider_cloudflare.zero_trust_access_policy import ZeroTrustAccessPolicy as ZeroTrustAccessPolicy
    from cdktf_cdktf_provider_cloudflare.zero_trust_access_policy import (
        ZeroTrustAccessPolicyInclude as ZeroTrustAccessPolicyInclude,
    )
    from cdktf_cdktf_provider_cloudflare.zero_trust_access_policy import (
        ZeroTrustAccessPolicyIncludeEmail as ZeroTrustAccessPolicyIncludeEmail,
    )
    from cdktf_cdktf_provider_cloudflare.zero_trust_access_policy import (
        ZeroTrustAccessPolicyIncludeEmailDomain as ZeroTrustAccessPolicyIncludeEmailDomain,
    )
    from cdktf_cdktf_provider_cloudflare.zero_trust_access_policy import (
        ZeroTrustAccessPolicyIncludeEveryone as ZeroTrustAccessPolicyIncludeEveryone,
    )
    from cdktf_cdktf_provider_cloudflare.zero_trust_access_policy import (
        ZeroTrustAccessPolicyIncludeGroup as ZeroTrustAccessPolicyIncludeGroup,
    )
    from cdktf_cdktf_provider_cloudflare.zero_trust_access_policy import (
        ZeroTrustAccessPolicyIncludeLoginMethod as ZeroTrustAccessPolicyIncludeLoginMethod,
    )
    from cdktf_cdktf_provider_cloudflare.zero_trust_access_policy import (
        ZeroTrustAccessPolicyIncludeServiceToken as ZeroTrustAccessPolicyIncludeServiceToken,
    )
    from cdktf_cdktf_provider_cloudflare.zero_trust_tunnel_cloudflared import (
        ZeroTrustTunnelCloudflared as ZeroTrustTunnelCloudflared,
    )
    from cdktf_cdktf_provider_cloudflare.zero_trust_tunnel_cloudflared_config import (
        ZeroTrustTunnelCloudflaredConfigA as ZeroTrustTunnelCloudflaredConfigA,
    )
    from cdktf_cdktf_provider_cloudflare.zero_trust_tunnel_cloudflared_config import (
        ZeroTrustTunnelCloudflaredConfigConfig as ZeroTrustTunnelCloudflaredConfigConfig,
    )
    from cdktf_cdktf_provider_cloudflare.zero_trust_tunnel_cloudflared_config import (
        ZeroTrustTunnelCloudflaredConfigConfigIngress as ZeroTrustTunnelCloudflaredConfigConfigIngress,
    )
    from cdktf_cdktf_provider_cloudflare.zero_trust_tunnel_cloudflared_config import (
        ZeroTrustTunnelCloudflaredConfigConfigIngressOriginRequest as ZeroTrustTunnelCloudflaredConfigConfigIngressOriginRequest,
    )
    from cdktf_cdktf_provider_cloudflare.zero_trust_tunnel_cloudflared_config import (
        ZeroTrustTunnelCloudflaredConfigConfigIngressOriginRequestAccess as ZeroTrustTunnelCloudflaredConfigConfigIngressOriginRequestAccess,
    )
    from cdktf_cdktf_provider_cloudflare.zone_setting import ZoneSetting as ZoneSetting
    from cdktf_cdktf_provider_helm.provider import HelmProvider as HelmProvider
    from cdktf_cdktf_provider_helm.provider import HelmProviderKubernetes as HelmProviderKubernetes
    from cdktf_cdktf_provider_helm.release import Release as Release
    from cdktf_cdktf_provider_helm.release import ReleaseSet as ReleaseSet
    from cdktf_cdktf_provider_helm.release import ReleaseSetSensitive as ReleaseSetSensitive
    from cdktf_cdktf_provider_kubernetes.annotations import Annotations as Annotations
    from cdktf_cdktf_provider_kubernetes.annotations import AnnotationsMetadata as AnnotationsMetadata
    from cdktf_cdktf_provider_kubernetes.labels import Labels as Labels
    from cdktf_cdktf_provider_kubernetes.labels import LabelsMetadata as LabelsMetadata
    from cdktf_cdktf_provider_kubernetes.namespace_v1 import NamespaceV1 as NamespaceV1
    from cdktf_cdktf_provider_kubernetes.namespace_v1 import NamespaceV1Metadata as NamespaceV1Metadata
    from cdktf_cdktf_provider_kubernetes.node_taint import NodeTaint as NodeTaint
    from cdktf_cdktf_provider_kubernetes.node_taint import NodeTaintMetadata as NodeTaintMetadata
    from cdktf_cdktf_provider_kubernetes.node_taint import NodeTaintTaint as NodeTaintTaint
    from cdktf_cdktf_provider_kubernetes.provider import KubernetesProvider as KubernetesProvider
    from cdktf_cdktf_provider_kubernetes.secret_v1 import SecretV1 as SecretV1
    from cdktf_cdktf_provider_kubernetes.secret_v1 import SecretV1Metadata as SecretV1Metadata
    from cdktf_cdktf_provider_null import resource as _null_resource
    from cdktf_cdktf_provider_null.provider import NullProvider as NullProvider
    from cdktf_cdktf_provider_random.bytes import Bytes as Bytes
    from cdktf_cdktf_provider_random.password import Password as Password
    from cdktf_cdktf_provider_random.provider import RandomProvider as RandomProvider
    from cdktf_cdktf_provider_tls.cert_request import CertRequest as CertRequest
    from cdktf_cdktf_provider_tls.cert_request import CertRequestSubject as CertRequestSubject
    from cdktf_cdktf_provider_tls.locally_signed_cert import LocallySignedCert as LocallySignedCert
    from cdktf_cdktf_provider_tls.private_key import PrivateKey as PrivateKey
    from cdktf_cdktf_provider_tls.provider import TlsProvider as TlsProvider
    from cdktf_cdktf_provider_tls.self_signed_cert import SelfSignedCert as SelfSignedCert
    from cdktf_cdktf_provider_tls.self_signed_cert import SelfSignedCertSubject as SelfSignedCertSubject
    from constructs import Construct as Construct

    # Renamed (see RENAMED): an alias, which mypy exports as it does not export `import X as Y`.
    NullResource = _null_resource.Resource
