"""boto3 against elbd: each failure raises the exception class botocore models for it.

Usage: python boto3_errors.py ENDPOINT. Exits non-zero on the first mismatch.
"""

import sys

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

endpoint = sys.argv[1]
# Parameter validation off, so that bad values reach elbd instead of stopping in botocore.
config = Config(parameter_validation=False, retries={"max_attempts": 1})
session = boto3.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1")
elbv2 = session.client("elbv2", endpoint_url=endpoint, config=config)
ec2 = session.client("ec2", endpoint_url=endpoint, config=config)
acm = session.client("acm", endpoint_url=endpoint, config=config)


def expect(exception, call, **kwargs):
    try:
        call(**kwargs)
    except exception as e:
        return e
    except ClientError as e:
        raise SystemExit(f"{call.__name__}: expected {exception.__name__}, got {e.response['Error']}")
    raise SystemExit(f"{call.__name__}({kwargs}) succeeded; expected {exception.__name__}")


def expect_code(code, call, **kwargs):
    e = expect(ClientError, call, **kwargs)
    got = e.response["Error"]["Code"]
    assert got == code, f"{call.__name__}: expected {code}, got {got}: {e}"
    assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 400


subnets = sorted(ec2.describe_subnets()["Subnets"], key=lambda s: s["AvailabilityZone"])
subnet_ids = [s["SubnetId"] for s in subnets]
vpc = subnets[0]["VpcId"]
x = elbv2.exceptions

lb = elbv2.create_load_balancer(Name="errors", Subnets=subnet_ids)["LoadBalancers"][0]["LoadBalancerArn"]
tg = elbv2.create_target_group(Name="errors-tg", Protocol="HTTP", Port=80, VpcId=vpc, TargetType="ip")
tg = tg["TargetGroups"][0]["TargetGroupArn"]
action = [{"Type": "forward", "TargetGroupArn": tg}]
listener = elbv2.create_listener(LoadBalancerArn=lb, Protocol="HTTP", Port=8080, DefaultActions=action)
listener = listener["Listeners"][0]["ListenerArn"]

expect(x.LoadBalancerNotFoundException, elbv2.describe_load_balancers, Names=["nope"])
expect(x.LoadBalancerNotFoundException, elbv2.describe_load_balancers, LoadBalancerArns=[lb + "0"])
expect(x.TargetGroupNotFoundException, elbv2.describe_target_groups, TargetGroupArns=[tg + "0"])
# A group that does not exist is named before the QUIC server ID a target of it has.
expect(x.TargetGroupNotFoundException, elbv2.register_targets, TargetGroupArn=tg + "0",
       Targets=[{"Id": "10.0.0.9", "QuicServerId": "0123456789abcdef"}])
expect(x.ListenerNotFoundException, elbv2.describe_listeners, ListenerArns=[listener + "0"])
expect(x.DuplicateLoadBalancerNameException, elbv2.create_load_balancer, Name="errors",
       Subnets=subnet_ids, Scheme="internal")
other = elbv2.create_target_group(Name="other-tg", Protocol="HTTP", Port=80, VpcId=vpc, TargetType="ip")
other_action = [{"Type": "forward", "TargetGroupArn": other["TargetGroups"][0]["TargetGroupArn"]}]
expect(x.DuplicateListenerException, elbv2.create_listener, LoadBalancerArn=lb, Protocol="HTTP",
       Port=8080, DefaultActions=other_action)
expect(x.ResourceInUseException, elbv2.delete_target_group, TargetGroupArn=tg)
expect_code("ValidationError", elbv2.create_listener, LoadBalancerArn=lb, Protocol="TCP",
            Port=443, DefaultActions=action)
missing_cert = [{"CertificateArn": "arn:aws:acm:us-east-1:123456789012:certificate/0-0-0-0-0"}]
expect(x.CertificateNotFoundException, elbv2.create_listener, LoadBalancerArn=lb, Protocol="HTTPS",
       Port=443, DefaultActions=action, Certificates=missing_cert)
expect(x.SSLPolicyNotFoundException, elbv2.create_listener, LoadBalancerArn=lb, Protocol="HTTPS",
       Port=443, DefaultActions=action, Certificates=missing_cert, SslPolicy="ELBSecurityPolicy-Nope")

elbv2.create_rule(ListenerArn=listener, Priority=5, Conditions=[{"Field": "path-pattern", "Values": ["/a"]}],
                  Actions=action)
expect(x.PriorityInUseException, elbv2.create_rule, ListenerArn=listener, Priority=5,
       Conditions=[{"Field": "path-pattern", "Values": ["/b"]}], Actions=action)
expect(x.RuleNotFoundException, elbv2.describe_rules, RuleArns=[listener.replace(":listener/", ":listener-rule/") + "/0"])
expect(x.OperationNotPermittedException, elbv2.delete_rule,
       RuleArn=elbv2.describe_rules(ListenerArn=listener)["Rules"][-1]["RuleArn"])
expect_code("ValidationError", elbv2.create_load_balancer, Name="-bad-", Subnets=subnet_ids)
expect_code("ValidationError", elbv2.create_target_group, Name="a_b", Protocol="HTTP", Port=80, VpcId=vpc)
expect_code("ValidationError", elbv2.create_listener, LoadBalancerArn=lb, Protocol="HTTP", Port=0,
            DefaultActions=action)
expect_code("ValidationError", elbv2.create_listener, LoadBalancerArn=lb, Protocol="HTTP", Port=70000,
            DefaultActions=action)
expect_code("ValidationError", elbv2.create_load_balancer, Name="enum", Subnets=subnet_ids, Scheme="public")
expect_code("ValidationError", elbv2.modify_load_balancer_attributes, LoadBalancerArn=lb,
            Attributes=[{"Key": "idle_timeout.timeout_seconds", "Value": "0"}])

# The error table: what AWS answers each malformed or ill-fitting request with (code, HTTP
# status 400 and message).
nlb = elbv2.create_load_balancer(Name="errors-nlb", Type="network", Subnets=subnet_ids)
nlb = nlb["LoadBalancers"][0]["LoadBalancerArn"]


def rule(**action):
    return {"ListenerArn": listener, "Priority": 60, "Conditions": [{"Field": "path-pattern", "Values": ["/t"]}],
            "Actions": [action]}


redirect = {"Type": "redirect", "RedirectConfig": {"StatusCode": "HTTP_301", "Host": "example.com"}}
TABLE = [
    (elbv2.create_listener, dict(LoadBalancerArn=lb, Protocol="TCP", Port=443, DefaultActions=action),
     "Listener protocol 'TCP' must be one of 'HTTPS, HTTP'"),
    (elbv2.create_listener, dict(LoadBalancerArn=nlb, Protocol="HTTP", Port=80, DefaultActions=action),
     "Listener protocol 'HTTP' must be one of 'TCP, TLS, UDP, TCP_UDP'"),
    (elbv2.create_listener, dict(LoadBalancerArn=lb, Protocol="HTTP", DefaultActions=action),
     "A listener port must be specified"),
    (elbv2.create_listener, dict(LoadBalancerArn=lb, Port=81, DefaultActions=action),
     "A protocol must be specified"),
    (elbv2.create_target_group, dict(Name="noport", Protocol="HTTP", VpcId=vpc), "A port must be specified"),
    (elbv2.create_target_group, dict(Name="noproto", Port=80, VpcId=vpc), "A protocol must be specified"),
    (elbv2.create_rule, rule(Type="fixed-response", FixedResponseConfig={"StatusCode": "600"}),
     "^(2|4|5)\\d\\d$"),
    (elbv2.create_rule, rule(Type="fixed-response", FixedResponseConfig={"StatusCode": "+200"}),
     "^(2|4|5)\\d\\d$"),
    (elbv2.create_rule, rule(Type="fixed-response", FixedResponseConfig={"StatusCode": "200", "MessageBody": "x" * 1025}),
     "1024"),
    (elbv2.create_rule, rule(**{**redirect, "RedirectConfig": {**redirect["RedirectConfig"], "Protocol": "FTP"}}),
     "FTP"),
    (elbv2.create_rule, rule(**{**redirect, "RedirectConfig": {**redirect["RedirectConfig"], "Host": "h" * 129}}),
     "128"),
    (elbv2.create_rule, dict(ListenerArn=listener, Priority=61, Actions=action,
                             Conditions=[{"Field": "host-header", "Values": ["a.test", "b.test"]}]),
     "A 'host-header' condition field contains too many values; the limit is '1'"),
    (elbv2.create_rule, dict(ListenerArn=listener, Priority=62, Actions=action,
                             Conditions=[{"Field": "path-pattern", "Values": ["/a", "/b"]}]),
     "A 'path-pattern' condition field contains too many values; the limit is '1'"),
    (elbv2.create_load_balancer, dict(Name="x" * 33, Subnets=subnet_ids), "32"),
    (elbv2.create_load_balancer, dict(Name="bad_name", Subnets=subnet_ids), "bad_name"),
    (elbv2.create_target_group, dict(Name="tg-", Protocol="HTTP", Port=80, VpcId=vpc), "tg-"),
    (elbv2.register_targets, dict(TargetGroupArn=tg, Targets=[{"Id": "10.0.0.9", "QuicServerId": "0123456789abcdef"}]),
     "QUIC"),
]
for call, kwargs, message in TABLE:
    e = expect(ClientError, call, **kwargs)
    error = e.response["Error"]
    assert error["Code"] == "ValidationError", f"{call.__name__}({kwargs}): {error}"
    assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 400, e.response
    assert message in error["Message"], f"{call.__name__}: {error['Message']!r} lacks {message!r}"
# A request refused for what the account does not have (an Outposts or IPAM pool) changes
# nothing, even where the rest of it would have been valid.
for pools in [dict(CustomerOwnedIpv4Pool="ipv4pool-coip-0123456789abcdef0"),
              dict(IpamPools={"Ipv4IpamPoolId": "ipam-pool-0123456789abcdef0"})]:
    expect_code("InvalidConfigurationRequest", elbv2.create_load_balancer, Name="pool", Subnets=subnet_ids, **pools)
    expect(x.LoadBalancerNotFoundException, elbv2.describe_load_balancers, Names=["pool"])
vpcs = len(ec2.describe_vpcs()["Vpcs"])
expect_code("UnknownParameter", ec2.create_vpc, CidrBlock="127.91.0.0/16", Ipv6Pool="ipv6pool-ec2-0")
assert len(ec2.describe_vpcs()["Vpcs"]) == vpcs
# Refused requests changed nothing.
assert len(elbv2.describe_rules(ListenerArn=listener)["Rules"]) == 2
names = [t["TargetGroupName"] for t in elbv2.describe_target_groups()["TargetGroups"]]
assert names == ["errors-tg", "other-tg"], names

# EC2 speaks its own codes: a value out of range is InvalidParameterValue.
expect_code("InvalidParameterValue", ec2.describe_vpcs, MaxResults=2)
expect_code("InvalidParameterValue", ec2.create_vpc, CidrBlock="127.90.0.0/16", InstanceTenancy="host")

# RunInstances as test suites call it: a zone to place in, groups by name, a key pair.
zone_b = subnets[1]["AvailabilityZone"]
launched = ec2.run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1, KeyName="deploy",
                             Placement={"AvailabilityZone": zone_b}, SecurityGroups=["default"])
instance = launched["Instances"][0]
assert instance["Placement"]["AvailabilityZone"] == zone_b and instance["SubnetId"] == subnet_ids[1], instance
assert instance["KeyName"] == "deploy" and instance["SourceDestCheck"] is True, instance
assert [g["GroupName"] for g in instance["SecurityGroups"]] == ["default"], instance
ec2.terminate_instances(InstanceIds=[instance["InstanceId"]])

# DeleteTags as EC2 does it: a given value must match; no tags named deletes them all.
ec2.create_tags(Resources=[vpc], Tags=[{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}])
tagged = lambda: {t["Key"]: t["Value"] for t in ec2.describe_vpcs(VpcIds=[vpc])["Vpcs"][0].get("Tags", [])}
ec2.delete_tags(Resources=[vpc], Tags=[{"Key": "a", "Value": "other"}])
assert tagged() == {"a": "1", "b": "2"}, tagged()
ec2.delete_tags(Resources=[vpc], Tags=[{"Key": "a"}])
assert tagged() == {"b": "2"}, tagged()
ec2.delete_tags(Resources=[vpc])
assert tagged() == {}, tagged()

# What has no local meaning is answered as AWS answers an account that has none of it.
assert elbv2.describe_capacity_reservation(LoadBalancerArn=lb)["CapacityReservationState"] == []
elbv2.modify_capacity_reservation(LoadBalancerArn=lb, ResetCapacityReservation=True)
# An account whose limit of reserved capacity units is 0: the modeled 400, and nothing reserved.
limited = expect(x.CapacityUnitsLimitExceededException, elbv2.modify_capacity_reservation,
                 LoadBalancerArn=lb, MinimumLoadBalancerCapacity={"CapacityUnits": 100})
assert limited.response["ResponseMetadata"]["HTTPStatusCode"] == 400, limited.response
assert elbv2.describe_capacity_reservation(LoadBalancerArn=lb)["CapacityReservationState"] == []
expect(x.LoadBalancerNotFoundException, elbv2.describe_capacity_reservation, LoadBalancerArn=lb + "0")
assert "IpamPools" not in elbv2.modify_ip_pools(LoadBalancerArn=lb, RemoveIpamPools=["ipv4"])
expect_code("InvalidConfigurationRequest", elbv2.modify_ip_pools, LoadBalancerArn=lb,
            IpamPools={"Ipv4IpamPoolId": "ipam-pool-0123456789abcdef0"})
expect(x.ResourceNotFoundException, elbv2.get_resource_policy, ResourceArn=lb)
no_store = lb.replace(":loadbalancer/app/errors/", ":truststore/nope/")
expect(x.TrustStoreNotFoundException, elbv2.delete_shared_trust_store_association, TrustStoreArn=no_store,
       ResourceArn=lb)
expect(x.TrustStoreNotFoundException, elbv2.get_trust_store_ca_certificates_bundle, TrustStoreArn=no_store)

# Creates are idempotent: the same call returns the same load balancer.
again = elbv2.create_load_balancer(Name="errors", Subnets=subnet_ids)["LoadBalancers"][0]["LoadBalancerArn"]
assert again == lb, (again, lb)

# Pagination follows Marker / NextMarker.
for i in range(3):
    elbv2.create_target_group(Name=f"page-{i}", Protocol="HTTP", Port=80, VpcId=vpc, TargetType="ip")
pages = list(elbv2.get_paginator("describe_target_groups").paginate(PaginationConfig={"PageSize": 2}))
names = [tg["TargetGroupName"] for page in pages for tg in page["TargetGroups"]]
assert len(pages) == 3 and len(names) == len(set(names)) == 5, names
# ACM (JSON protocol): modeled exceptions, pagination, tags.
a = acm.exceptions
bogus = "arn:aws:acm:us-east-1:123456789012:certificate/00000000-0000-0000-0000-000000000000"
expect(a.ResourceNotFoundException, acm.describe_certificate, CertificateArn=bogus)
expect(a.ResourceNotFoundException, acm.delete_certificate, CertificateArn=bogus)
expect(a.InvalidParameterException, acm.import_certificate, Certificate=b"not pem", PrivateKey=b"no")
arns = [acm.request_certificate(DomainName=f"p{i}.boto.test", Tags=[{"Key": "n", "Value": str(i)}])["CertificateArn"]
        for i in range(3)]
again = acm.request_certificate(DomainName="p0.boto.test", IdempotencyToken="t1")["CertificateArn"]
assert acm.request_certificate(DomainName="p0.boto.test", IdempotencyToken="t1")["CertificateArn"] == again
listed = [c["CertificateArn"] for page in acm.get_paginator("list_certificates").paginate(PaginationConfig={"PageSize": 2})
          for c in page["CertificateSummaryList"]]
assert set(arns) <= set(listed) and len(listed) == len(set(listed)), listed
assert acm.list_tags_for_certificate(CertificateArn=arns[1])["Tags"] == [{"Key": "n", "Value": "1"}]
got = acm.get_certificate(CertificateArn=arns[0])
assert got["Certificate"].startswith("-----BEGIN CERTIFICATE-----") and "CertificateChain" in got

# ACM: options, export, renewal, revocation, account configuration.
exportable = acm.request_certificate(DomainName="export.boto.test",
                                     Options={"Export": "ENABLED", "CertificateTransparencyLoggingPreference": "DISABLED"})
exportable = exportable["CertificateArn"]
detail = acm.describe_certificate(CertificateArn=exportable)["Certificate"]
assert detail["Options"] == {"Export": "ENABLED", "CertificateTransparencyLoggingPreference": "DISABLED"}, detail
assert detail["RenewalEligibility"] == "ELIGIBLE", detail
validated = acm.request_certificate(DomainName="dv.boto.test", ValidationMethod="DNS",
                                    SubjectAlternativeNames=["dv.boto.test", "www.dv.boto.test"],
                                    DomainValidationOptions=[{"DomainName": "www.dv.boto.test",
                                                              "ValidationDomain": "dv.boto.test"}])
options = acm.describe_certificate(CertificateArn=validated["CertificateArn"])["Certificate"]["DomainValidationOptions"]
assert [(o["DomainName"], o["ValidationDomain"], o["ValidationStatus"], o["ValidationMethod"]) for o in options] == [
    ("dv.boto.test", "dv.boto.test", "SUCCESS", "DNS"), ("www.dv.boto.test", "dv.boto.test", "SUCCESS", "DNS")], options
exported = acm.export_certificate(CertificateArn=exportable, Passphrase=b"correct horse")
assert exported["PrivateKey"].startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----"), exported["PrivateKey"][:40]
assert exported["Certificate"].startswith("-----BEGIN CERTIFICATE-----")
expect_code("ValidationException", acm.export_certificate, CertificateArn=arns[0], Passphrase=b"correct horse")
expect_code("InvalidStateException", acm.revoke_certificate, CertificateArn=arns[0], RevocationReason="SUPERSEDED")
before = acm.describe_certificate(CertificateArn=arns[1])["Certificate"]["Serial"]
acm.renew_certificate(CertificateArn=arns[1])
assert acm.describe_certificate(CertificateArn=arns[1])["Certificate"]["Serial"] != before
acm.update_certificate_options(CertificateArn=arns[1], Options={"CertificateTransparencyLoggingPreference": "DISABLED"})
options = acm.describe_certificate(CertificateArn=arns[1])["Certificate"]["Options"]
assert options["CertificateTransparencyLoggingPreference"] == "DISABLED", options
assert acm.revoke_certificate(CertificateArn=exportable, RevocationReason="KEY_COMPROMISE")["CertificateArn"] == exportable
detail = acm.describe_certificate(CertificateArn=exportable)["Certificate"]
assert detail["Status"] == "REVOKED" and detail["RevocationReason"] == "KEY_COMPROMISE", detail
expect_code("InvalidStateException", acm.resend_validation_email, CertificateArn=arns[0],
                Domain="p0.boto.test", ValidationDomain="boto.test")
assert acm.get_account_configuration()["ExpiryEvents"]["DaysBeforeExpiry"] == 45
acm.put_account_configuration(ExpiryEvents={"DaysBeforeExpiry": 30}, IdempotencyToken="t")
assert acm.get_account_configuration()["ExpiryEvents"]["DaysBeforeExpiry"] == 30
expect_code("ValidationException", acm.put_account_configuration, ExpiryEvents={"DaysBeforeExpiry": 46},
                IdempotencyToken="t")
print("ok")
