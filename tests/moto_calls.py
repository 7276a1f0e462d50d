"""AWS calls against a moto server on loopback, run with .venv-moto's Python (boto3 lives there, not in .venv).

    python tests/moto_calls.py <port> <region> network            -> {"vpc": ..., "subnets": [...]}
    python tests/moto_calls.py <port> <region> group <name>       -> {"desired": n, "instances": [...]}
    python tests/moto_calls.py <port> <region> scale <name> <n>   the autoscaler's scale-up (SetDesiredCapacity)
    python tests/moto_calls.py <port> <region> terminate <id>     the autoscaler's scale-in of one instance
                                                                  (TerminateInstanceInAutoScalingGroup, decrement)

tests/test_node_pools.py runs it with a closed proxy and the endpoint on 127.0.0.1: nothing leaves the machine.
"""

from __future__ import annotations

import json
import sys

import boto3


def main(argv: list[str]) -> None:
    port, region, command, *args = argv
    kw = {
        "endpoint_url": f"http://127.0.0.1:{int(port)}",
        "region_name": region,
        "aws_access_key_id": "test",
        "aws_secret_access_key": "test",
    }
    ec2 = boto3.client("ec2", **kw)
    asg = boto3.client("autoscaling", **kw)
    if command == "network":
        vpc = ec2.create_vpc(CidrBlock="172.31.0.0/16")["Vpc"]["VpcId"]
        subnets = [
            ec2.create_subnet(VpcId=vpc, CidrBlock=f"172.31.{i}.0/24", AvailabilityZone=f"{region}{zone}")["Subnet"]["SubnetId"]
            for i, zone in enumerate("ab", start=1)
        ]
        out = {"vpc": vpc, "subnets": subnets}
    elif command == "group":
        (group,) = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[args[0]])["AutoScalingGroups"]
        out = {"desired": group["DesiredCapacity"], "instances": sorted(i["InstanceId"] for i in group["Instances"]),
               "tags": {t["Key"]: t["Value"] for t in group["Tags"]}}
    elif command == "scale":
        asg.set_desired_capacity(AutoScalingGroupName=args[0], DesiredCapacity=int(args[1]), HonorCooldown=False)
        out = {}
    elif command == "terminate":
        asg.terminate_instance_in_auto_scaling_group(InstanceId=args[0], ShouldDecrementDesiredCapacity=True)
        out = {}
    else:
        raise SystemExit(f"unknown command {command!r}")
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1:])
