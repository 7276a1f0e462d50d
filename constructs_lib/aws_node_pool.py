"""k3s agents in an AWS Auto Scaling group, for the cluster-autoscaler to scale, and the autoscaler's own access.

`AwsK3sAgentPool` creates, in the stack's AWS provider (the caller makes it, with its region and default_tags):

- the agent token as an SSM SecureString (the value is a sensitive Terraform expression; it never enters the
  user data or the launch template);
- a node role and instance profile allowed `ssm:GetParameter` on that one parameter, nothing else;
- a security group that accepts only the given rules (the caller lists what k3s and its CNI need, from which
  networks) and sends anywhere;
- a launch template: the AMI from a public SSM parameter, IMDSv2 required with a hop limit of 1, an encrypted gp3
  root volume, the user data of constructs_lib/k3s_cloud_init.py;
- a mixed-instances Auto Scaling group over the subnets, tagged for the autoscaler's auto-discovery and with its
  node-template tags (labels and taints, for scaling from zero), with `ignore_changes = [desired_capacity]` so
  that Terraform never undoes the autoscaler's work.

`AutoscalerAwsAccess` creates the IAM user the cluster-autoscaler runs as outside AWS, with the least privilege
its AWS README lists: describe calls on everything, and SetDesiredCapacity/TerminateInstanceInAutoScalingGroup
only on groups that carry the cluster's discovery tag; its access key is exposed as sensitive attributes.

Nothing here knows the app that uses it. Importing this module imports the engine's AWS provider package
(through constructs_lib.engine): import it only where a pool exists.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from constructs import Construct

from constructs_lib.engine import (
    AutoscalingGroup,
    AutoscalingGroupMixedInstancesPolicy,
    AutoscalingGroupMixedInstancesPolicyInstancesDistribution,
    AutoscalingGroupMixedInstancesPolicyLaunchTemplate,
    AutoscalingGroupMixedInstancesPolicyLaunchTemplateLaunchTemplateSpecification,
    AutoscalingGroupMixedInstancesPolicyLaunchTemplateOverride,
    AutoscalingGroupTag,
    DataAwsSsmParameter,
    Fn,
    IamAccessKey,
    IamInstanceProfile,
    IamRole,
    IamRolePolicy,
    IamUser,
    IamUserPolicy,
    LaunchTemplate,
    LaunchTemplateBlockDeviceMappings,
    LaunchTemplateBlockDeviceMappingsEbs,
    LaunchTemplateIamInstanceProfile,
    LaunchTemplateMetadataOptions,
    SecurityGroup,
    SsmParameter,
    TerraformResourceLifecycle,
    VpcSecurityGroupEgressRule,
    VpcSecurityGroupIngressRule,
)
from constructs_lib.k3s_cloud_init import AgentBoot, render_user_data

DISCOVERY_ENABLED = "k8s.io/cluster-autoscaler/enabled"
DISCOVERY_CLUSTER = "k8s.io/cluster-autoscaler/{cluster}"
NODE_TEMPLATE = "k8s.io/cluster-autoscaler/node-template"


@dataclass(frozen=True)
class IngressRule:
    """Traffic the agents accept: protocol tcp, udp or icmp (ports -1 for icmp), from these CIDRs."""

    description: str
    protocol: str
    from_port: int
    to_port: int
    cidrs: Sequence[str]


@dataclass(frozen=True)
class AwsK3sAgentPoolProps:
    """An Auto Scaling group of k3s agents.

    name: the group's name (unique in the account and region); also names the role, profile, SG and template.
    cluster: the cluster's name in the autoscaler's discovery tag (k8s.io/cluster-autoscaler/<cluster>).
    vpc_id, subnet_ids: where the instances run (private subnets routed to the cluster's servers).
    instance_types: the mixed-instances overrides, of one size (the autoscaler plans with the first).
    min_size, max_size: the group's bounds; the desired capacity starts at min_size and is the autoscaler's after.
    on_demand_base, on_demand_above_base: on-demand instances first, then this percent of the rest (0: spot).
    ami_ssm_parameter: the SSM parameter holding the AMI id; disk_gib: the encrypted gp3 root volume on
    root_device (the AMI's root device name: /dev/xvda on Amazon Linux, /dev/sda1 on Ubuntu).
    boot: the agent's boot settings (its token_parameter is the parameter this construct creates).
    agent_token: the join token (a sensitive Terraform expression), stored as the SecureString boot names.
    ingress: what the security group lets in.
    labels, taints: told to the autoscaler as node-template tags (taints as (key, value, effect)).
    """

    name: str
    cluster: str
    vpc_id: str
    subnet_ids: Sequence[str]
    instance_types: Sequence[str]
    min_size: int
    max_size: int
    ami_ssm_parameter: str
    boot: AgentBoot
    agent_token: str
    ingress: Sequence[IngressRule]
    on_demand_base: int = 0
    on_demand_above_base: int = 100
    disk_gib: int = 50
    root_device: str = "/dev/xvda"
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: Sequence[tuple[str, str, str]] = ()


def discovery_tags(cluster: str) -> dict[str, str]:
    """The tags the autoscaler's `--node-group-auto-discovery=asg:tag=...` finds a group by."""
    return {DISCOVERY_ENABLED: "true", DISCOVERY_CLUSTER.format(cluster=cluster): "owned"}


def node_template_tags(labels: Mapping[str, str], taints: Sequence[tuple[str, str, str]]) -> dict[str, str]:
    """Labels and taints of a group's future nodes, for the autoscaler to scale it up from zero."""
    tags = {f"{NODE_TEMPLATE}/label/{k}": v for k, v in sorted(labels.items())}
    tags.update({f"{NODE_TEMPLATE}/taint/{k}": f"{v}:{effect}" for k, v, effect in taints})
    return tags


def _policy(statements: list[dict[str, Any]]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": statements}, sort_keys=True)


class AwsK3sAgentPool(Construct):
    """k3s agents in a mixed-instances Auto Scaling group (see the module docstring).

    Attributes: group (the AutoscalingGroup), token_parameter (the SsmParameter), role, security_group,
    launch_template, user_data (the script, as text).
    """

    def __init__(self, scope: Construct, id: str, *, props: AwsK3sAgentPoolProps) -> None:
        super().__init__(scope, id)
        p = props
        if not p.instance_types:
            raise ValueError("instance_types: at least one")
        if p.min_size > p.max_size:
            raise ValueError(f"min_size {p.min_size} is above max_size {p.max_size}")
        self.token_parameter = SsmParameter(
            self, "agent-token", name=p.boot.token_parameter, type="SecureString", value=p.agent_token,
            description=f"k3s agent token of {p.name}",
        )
        self.role = IamRole(
            self, "role", name=p.name,
            assume_role_policy=_policy([{"Effect": "Allow", "Action": "sts:AssumeRole",
                                          "Principal": {"Service": "ec2.amazonaws.com"}}]),
        )
        IamRolePolicy(
            self, "read-token", name="read-agent-token", role=self.role.id,
            policy=Fn.jsonencode({"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "ssm:GetParameter", "Resource": self.token_parameter.arn}]}),
        )
        profile = IamInstanceProfile(self, "profile", name=p.name, role=self.role.name)
        self.security_group = SecurityGroup(
            self, "nodes", name=p.name, description=f"k3s agents of {p.name}", vpc_id=p.vpc_id
        )
        for i, rule in enumerate(p.ingress):
            for j, cidr in enumerate(rule.cidrs):
                VpcSecurityGroupIngressRule(
                    self, f"in-{i}-{j}", security_group_id=self.security_group.id, description=rule.description,
                    ip_protocol=rule.protocol, cidr_ipv4=cidr, from_port=rule.from_port, to_port=rule.to_port,
                )
        VpcSecurityGroupEgressRule(
            self, "out", security_group_id=self.security_group.id, description="anywhere", ip_protocol="-1",
            cidr_ipv4="0.0.0.0/0",
        )
        ami = DataAwsSsmParameter(self, "ami", name=p.ami_ssm_parameter)
        self.user_data = render_user_data(p.boot)
        self.launch_template = LaunchTemplate(
            self, "template", name=p.name, image_id=ami.insecure_value,
            # Encoded here: the script is literal text, never a Terraform template.
            user_data=base64.b64encode(self.user_data.encode()).decode(),
            iam_instance_profile=LaunchTemplateIamInstanceProfile(arn=profile.arn),
            vpc_security_group_ids=[self.security_group.id],
            metadata_options=LaunchTemplateMetadataOptions(
                http_endpoint="enabled", http_tokens="required", http_put_response_hop_limit=1,
                instance_metadata_tags="disabled",
            ),
            block_device_mappings=[LaunchTemplateBlockDeviceMappings(
                device_name=p.root_device, ebs=LaunchTemplateBlockDeviceMappingsEbs(
                    volume_size=p.disk_gib, volume_type="gp3", encrypted="true", delete_on_termination="true"),
            )],
            update_default_version=True,
        )
        self.group = self._group(p)

    def _group(self, p: AwsK3sAgentPoolProps) -> AutoscalingGroup:
        tags = {**discovery_tags(p.cluster), **node_template_tags(p.labels, p.taints)}
        return AutoscalingGroup(
            self, "group", name=p.name, min_size=p.min_size, max_size=p.max_size, desired_capacity=p.min_size,
            vpc_zone_identifier=list(p.subnet_ids),
            mixed_instances_policy=AutoscalingGroupMixedInstancesPolicy(
                instances_distribution=AutoscalingGroupMixedInstancesPolicyInstancesDistribution(
                    on_demand_base_capacity=p.on_demand_base,
                    on_demand_percentage_above_base_capacity=p.on_demand_above_base,
                    spot_allocation_strategy="capacity-optimized",
                ),
                launch_template=AutoscalingGroupMixedInstancesPolicyLaunchTemplate(
                    launch_template_specification=AutoscalingGroupMixedInstancesPolicyLaunchTemplateLaunchTemplateSpecification(
                        launch_template_id=self.launch_template.id, version="$Latest"),
                    override=[AutoscalingGroupMixedInstancesPolicyLaunchTemplateOverride(instance_type=t)
                              for t in p.instance_types],
                ),
            ),
            tag=[AutoscalingGroupTag(key="Name", value=p.name, propagate_at_launch=True)]
            + [AutoscalingGroupTag(key=k, value=v, propagate_at_launch=False) for k, v in tags.items()],
            # The autoscaler owns the desired capacity; an apply must not reset it.
            lifecycle=TerraformResourceLifecycle(ignore_changes=["desired_capacity"]),
        )


class AutoscalerAwsAccess(Construct):
    """An IAM user for a cluster-autoscaler that runs outside AWS, limited to the groups tagged for `cluster`.

    Attributes: user, access_key_id and secret_access_key (sensitive Terraform expressions).
    """

    def __init__(self, scope: Construct, id: str, *, name: str, cluster: str) -> None:
        super().__init__(scope, id)
        self.user = IamUser(self, "user", name=name)
        tag = DISCOVERY_CLUSTER.format(cluster=cluster)
        IamUserPolicy(self, "policy", name="cluster-autoscaler", user=self.user.name, policy=_policy([
            {"Effect": "Allow", "Resource": "*", "Action": [
                "autoscaling:DescribeAutoScalingGroups", "autoscaling:DescribeAutoScalingInstances",
                "autoscaling:DescribeLaunchConfigurations", "autoscaling:DescribeScalingActivities",
                "autoscaling:DescribeTags", "ec2:DescribeImages", "ec2:DescribeInstanceTypes",
                "ec2:DescribeLaunchTemplateVersions", "ec2:GetInstanceTypesFromInstanceRequirements"]},
            {"Effect": "Allow", "Resource": "*",
             "Action": ["autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup"],
             "Condition": {"StringEquals": {f"aws:ResourceTag/{tag}": "owned"}}},
        ]))
        key = IamAccessKey(self, "key", user=self.user.name)
        self.access_key_id = key.id
        self.secret_access_key = key.secret

