"""A boto3 script as test suites written for moto's server mode make it, run unchanged against
elbd in one region: VPC with InstanceTenancy, subnets outside loopback, a tagged security group,
an ALB, a target group, a listener, a rule, tags. `check` mode asserts that the region sees
only its own resources.

Usage: python moto_style.py ENDPOINT REGION build|check. Exits non-zero on the first mismatch.
"""

import sys
import time

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

endpoint, region, mode = sys.argv[1:4]
session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=region)
config = Config(retries={"max_attempts": 1})
ec2 = session.client("ec2", endpoint_url=endpoint, config=config)
elbv2 = session.client("elbv2", endpoint_url=endpoint, config=config)


def build():
    vpc = ec2.create_vpc(CidrBlock="172.28.0.0/16", InstanceTenancy="default")["Vpc"]
    assert vpc["InstanceTenancy"] == "default", vpc
    vpc_id = vpc["VpcId"]
    # DNS switches, as Terraform sets and reads them right after CreateVpc.
    ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsHostnames={"Value": True})
    dns = ec2.describe_vpc_attribute(VpcId=vpc_id, Attribute="enableDnsHostnames")
    assert dns["EnableDnsHostnames"] == {"Value": True}, dns
    dns = ec2.describe_vpc_attribute(VpcId=vpc_id, Attribute="enableDnsSupport")
    assert dns["EnableDnsSupport"] == {"Value": True}, dns
    subnet1 = ec2.create_subnet(VpcId=vpc_id, CidrBlock="172.28.7.192/26", AvailabilityZone=region + "a")
    subnet2 = ec2.create_subnet(
        VpcId=vpc_id,
        CidrBlock="172.28.7.0/26",
        AvailabilityZone=region + "b",
        TagSpecifications=[{"ResourceType": "subnet", "Tags": [{"Key": "Name", "Value": "second"}]}],
    )["Subnet"]
    assert subnet2["Tags"] == [{"Key": "Name", "Value": "second"}], subnet2
    security_group = ec2.create_security_group(
        GroupName="a-security-group",
        Description="First One",
        VpcId=vpc_id,
        TagSpecifications=[{"ResourceType": "security-group", "Tags": [{"Key": "team", "Value": "web"}]}],
    )
    assert security_group["Tags"] == [{"Key": "team", "Value": "web"}], security_group
    # Rule descriptions are echoed; a revoke names the rule without them.
    web = {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80}
    ec2.authorize_security_group_ingress(
        GroupId=security_group["GroupId"],
        IpPermissions=[{**web, "IpRanges": [{"CidrIp": "127.0.0.0/8", "Description": "loopback"}]}],
    )
    group = ec2.describe_security_groups(GroupIds=[security_group["GroupId"]])["SecurityGroups"][0]
    assert group["IpPermissions"][0]["IpRanges"] == [{"CidrIp": "127.0.0.0/8", "Description": "loopback"}], group
    ec2.revoke_security_group_ingress(
        GroupId=security_group["GroupId"], IpPermissions=[{**web, "IpRanges": [{"CidrIp": "127.0.0.0/8"}]}]
    )
    lb = elbv2.create_load_balancer(
        Name="my-lb",
        Subnets=[subnet1["Subnet"]["SubnetId"], subnet2["SubnetId"]],
        SecurityGroups=[security_group["GroupId"]],
        Scheme="internal",
        Tags=[{"Key": "key_name", "Value": "a_value"}],
    )["LoadBalancers"][0]
    assert lb["LoadBalancerArn"].startswith(f"arn:aws:elasticloadbalancing:{region}:"), lb
    assert lb["DNSName"].startswith("internal-my-lb-") and f".{region}.elb." in lb["DNSName"], lb
    target_group = elbv2.create_target_group(
        Name="a-target",
        Protocol="HTTP",
        Port=8080,
        VpcId=vpc_id,
        HealthCheckProtocol="HTTP",
        HealthCheckPort="8080",
        HealthCheckPath="/",
        HealthCheckIntervalSeconds=5,
        HealthCheckTimeoutSeconds=3,
        HealthyThresholdCount=5,
        UnhealthyThresholdCount=2,
        Matcher={"HttpCode": "200"},
    )["TargetGroups"][0]
    assert "LoadBalancerArns" not in target_group, target_group
    tg_arn = target_group["TargetGroupArn"]
    forward = [{"Type": "forward", "TargetGroupArn": tg_arn}]
    listener = elbv2.create_listener(
        LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=80, DefaultActions=forward
    )["Listeners"][0]
    # Order is echoed as given, and left out when not given.
    assert "Order" not in listener["DefaultActions"][0], listener
    rule = elbv2.create_rule(
        ListenerArn=listener["ListenerArn"],
        Priority=100,
        Conditions=[{"Field": "host-header", "Values": ["example.com"]}],
        Actions=[{**forward[0], "Order": 10}],
    )["Rules"][0]
    assert rule["Actions"][0]["Order"] == 10, rule
    elbv2.add_tags(ResourceArns=[tg_arn], Tags=[{"Key": "a", "Value": "b"}])
    tags = elbv2.describe_tags(ResourceArns=[tg_arn])["TagDescriptions"][0]["Tags"]
    assert tags == [{"Key": "a", "Value": "b"}], tags
    # Nodes come up on addresses this host does not have (IP_FREEBIND).
    waiter = elbv2.get_waiter("load_balancer_available")
    waiter.wait(LoadBalancerArns=[lb["LoadBalancerArn"]], WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    # The listener binds a moment after it is created; the state's reason then names the
    # addresses this host lacks.
    for _ in range(50):
        state = elbv2.describe_load_balancers(LoadBalancerArns=[lb["LoadBalancerArn"]])["LoadBalancers"][0]["State"]
        if "Reason" in state:
            break
        time.sleep(0.2)
    assert "172.28.7." in state.get("Reason", "") and "does not have" in state["Reason"], state
    # DryRun checks and changes nothing.
    vpcs = len(ec2.describe_vpcs()["Vpcs"])
    try:
        ec2.create_vpc(CidrBlock="172.29.0.0/16", DryRun=True)
        raise SystemExit("DryRun created a VPC")
    except ClientError as e:
        assert e.response["Error"]["Code"] == "DryRunOperation", e.response
    assert len(ec2.describe_vpcs()["Vpcs"]) == vpcs
    for cidr in ["172.28.9.0/28", "172.28.9.16/28", "172.28.9.32/28"]:
        ec2.create_subnet(VpcId=vpc_id, CidrBlock=cidr, AvailabilityZone=region + "a")


def check():
    lbs = elbv2.describe_load_balancers(Names=["my-lb"])["LoadBalancers"]
    assert len(lbs) == 1 and f":{region}:" in lbs[0]["LoadBalancerArn"], lbs
    everything = elbv2.describe_load_balancers(LoadBalancerArns=[])["LoadBalancers"]
    assert [lb["LoadBalancerName"] for lb in everything] == ["my-lb"], everything
    groups = elbv2.describe_target_groups()["TargetGroups"]
    assert len(groups) == 1 and f":{region}:" in groups[0]["TargetGroupArn"], groups
    assert groups[0]["LoadBalancerArns"] == [lbs[0]["LoadBalancerArn"]], groups
    vpcs = ec2.describe_vpcs()["Vpcs"]
    assert sorted(v["IsDefault"] for v in vpcs) == [False, True], vpcs
    # Filters, as test suites and Terraform's data sources use them.
    mine = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["false"]}])["Vpcs"]
    assert [v["CidrBlock"] for v in mine] == ["172.28.0.0/16"], mine
    in_vpc = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [mine[0]["VpcId"]]}])["Subnets"]
    assert len(in_vpc) == 5, in_vpc
    named = ec2.describe_subnets(Filters=[{"Name": "tag:Name", "Values": ["sec*"]}])["Subnets"]
    assert [s["CidrBlock"] for s in named] == ["172.28.7.0/26"], named
    groups = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": ["a-security-group"]}])
    assert len(groups["SecurityGroups"]) == 1, groups
    try:
        ec2.describe_subnets(Filters=[{"Name": "no-such-filter", "Values": ["x"]}])
        raise SystemExit("an unknown filter was accepted")
    except ClientError as e:
        assert e.response["Error"]["Code"] == "InvalidParameterValue", e.response
    zones = {z["ZoneName"] for z in ec2.describe_availability_zones()["AvailabilityZones"]}
    assert zones == {region + "a", region + "b"}, zones
    # Two default subnets, the two above and three more: pages of 5 and 2.
    page = ec2.describe_subnets(MaxResults=5)
    assert len(page["Subnets"]) == 5 and "NextToken" in page, page
    rest = ec2.describe_subnets(MaxResults=5, NextToken=page["NextToken"])
    assert len(rest["Subnets"]) == 2 and "NextToken" not in rest, rest
    assert len({s["SubnetId"] for s in page["Subnets"] + rest["Subnets"]}) == 7


{"build": build, "check": check}[mode]()
