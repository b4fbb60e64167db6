"""The model table: every input member of every operation elbd implements, taken from botocore's
service models and sent with a valid value, must be answered, or refused by an error that names
a member as not built, and then have changed nothing. Anything else (a valid value refused for
another reason, a refusal that names no member, one that changed elbd's state, a 5xx, a crash)
is a failure. The refused members, per operation and by wire name without list indexes
(`Filter`, `SubnetMappings.AllocationId`), are the table the README lists; with --readme the
table may not drift from the README's, so that list stays true.

Per operation a hand-written base (the smallest valid call) is sent first; then the base plus
one member, for every member path of the input shape the base lacks (nested ones too), with a
value generated from the model and made valid here by the tables below; last, the base plus
every answered member at once, to show they compose.

Usage: python model_table.py ENDPOINT --data-dir DIR [--write-readme README | --readme README]
[--verbose]. DIR is elbd's --data-dir: the trust stores' bundles go into its S3 stand-in, and
its stored state shows whether a request changed anything. --verbose prints each refusal's
message. Exits non-zero on any failure, or when the README's table differs.
"""

import argparse
import contextlib
import copy
import datetime
import ipaddress
import itertools
import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import uuid

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

OPERATIONS = {
    "elbv2": None,  # every operation of the model
    "ec2": ["CreateVpc", "DescribeVpcs", "DeleteVpc", "DescribeVpcAttribute", "ModifyVpcAttribute", "CreateSubnet", "DescribeSubnets", "DeleteSubnet",
            "DescribeAvailabilityZones", "CreateSecurityGroup", "DescribeSecurityGroups", "DeleteSecurityGroup",
            "AuthorizeSecurityGroupIngress", "RevokeSecurityGroupIngress", "AuthorizeSecurityGroupEgress",
            "RevokeSecurityGroupEgress", "RunInstances", "DescribeInstances",
            "StopInstances", "StartInstances", "TerminateInstances", "CreateTags", "DeleteTags", "DescribeTags",
            "AllocateAddress", "DescribeAddresses", "ReleaseAddress", "AssociateAddress", "DisassociateAddress",
            "CreateVpcEndpointServiceConfiguration", "DescribeVpcEndpointServiceConfigurations",
            "ModifyVpcEndpointServiceConfiguration", "DeleteVpcEndpointServiceConfigurations",
            "DescribeVpcEndpointServices", "DescribeVpcEndpointServicePermissions",
            "ModifyVpcEndpointServicePermissions", "CreateVpcEndpoint", "DescribeVpcEndpoints", "DeleteVpcEndpoints",
            "DescribeVpcEndpointConnections", "AcceptVpcEndpointConnections", "RejectVpcEndpointConnections",
            "DescribePrefixLists"],
    "acm": ["ImportCertificate", "RequestCertificate", "DescribeCertificate", "ListCertificates", "GetCertificate",
            "DeleteCertificate", "AddTagsToCertificate", "RemoveTagsFromCertificate", "ListTagsForCertificate",
            "UpdateCertificateOptions", "ExportCertificate", "RenewCertificate", "RevokeCertificate",
            "ResendValidationEmail", "GetAccountConfiguration", "PutAccountConfiguration"],
    "iam": ["UploadServerCertificate", "GetServerCertificate", "ListServerCertificates", "DeleteServerCertificate"],
}

# How elbd says it has not built something: the query layer's unread parameter, EC2's features,
# ACM's unknown fields, the actions, protocols and resources it does not have.
NOT_BUILT = re.compile(r"not recognized|not supported|not built|elbd does not|elbd has no|unknown field", re.I)
# What AWS answers a valid request from an account like elbd's: nothing shared, no resource
# policies, nothing pending validation.
ANSWERED_ERRORS = {
    "elbv2:DeleteSharedTrustStoreAssociation": "DeleteAssociationSameAccount",
    "elbv2:GetResourcePolicy": "ResourceNotFound",
    "acm:ResendValidationEmail": "InvalidStateException",
}

# Members every valid value of which AWS refuses for an account like elbd's, by the error it
# answers: the account has no Outposts or IPAM pools, (QUIC not being built) no QUIC group, and
# a limit of 0 reserved capacity units (a node's capacity is its host's).
NO_POOL = ("InvalidConfigurationRequest", re.compile(r"pool '[^']+' does not exist$"))
NO_QUIC = ("ValidationError", re.compile(r"^A QUIC server ID can be specified only for"))
NONE_HERE = {
    ("elbv2:CreateLoadBalancer", "CustomerOwnedIpv4Pool"): NO_POOL,
    ("elbv2:CreateLoadBalancer", "IpamPools"): NO_POOL,
    ("elbv2:ModifyIpPools", "IpamPools"): NO_POOL,
    ("elbv2:RegisterTargets", "Targets.QuicServerId"): NO_QUIC,
    ("elbv2:DeregisterTargets", "Targets.QuicServerId"): NO_QUIC,
    ("elbv2:DescribeTargetHealth", "Targets.QuicServerId"): NO_QUIC,
    ("elbv2:ModifyCapacityReservation", "MinimumLoadBalancerCapacity"):
        ("CapacityUnitsLimitExceeded", re.compile(r"^You've exceeded the capacity units limit")),
}


def none_here(key, wire, detail):
    """Whether a refusal is AWS's answer to a member whose every value names what the account
    lacks (by its code and message, not a not-built refusal, and it changed nothing)."""
    code, message, changed = detail
    return not changed and not NOT_BUILT.search(message) and any(
        code == answer and pattern.search(message) and (wire == member or wire.startswith(member + "."))
        for (op, member), (answer, pattern) in NONE_HERE.items() if op == key
    )


parser = argparse.ArgumentParser()
parser.add_argument("endpoint")
parser.add_argument("--data-dir", required=True)
parser.add_argument("--verbose", action="store_true")
mode = parser.add_mutually_exclusive_group()
mode.add_argument("--write-readme", metavar="README", help="rewrite the README's refusal table")
mode.add_argument("--readme", metavar="README", help="fail when the README's refusal table differs")
args = parser.parse_args()

session = boto3.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1")
# Parameter validation off: elbd, not botocore, judges every value.
config = Config(parameter_validation=False, retries={"max_attempts": 1})
clients = {name: session.client(name, endpoint_url=args.endpoint, config=config) for name in OPERATIONS}
elbv2, ec2, acm, iam = (clients[name] for name in OPERATIONS)
run = uuid.uuid4().hex[:6]  # names stay unique when the script runs twice against one elbd
counter = itertools.count(1)


def unique(prefix):
    return f"{prefix}-{run}-{next(counter)}"


def stored_state():
    """elbd's stored state, as text. A refused request must leave it as it was."""
    store = f"file:{os.path.join(args.data_dir, 'state.db')}?mode=ro"
    with contextlib.closing(sqlite3.connect(store, uri=True)) as db:
        return db.execute("SELECT group_concat(state) FROM states").fetchone()[0]


def settled(text):
    """The state without what elbd changes by itself in the background (load balancers turning
    active once their nodes listen, and the reason it gives; endpoints turning available once
    their interface is up, or failed and why), which may land during any call. What an owner
    does to an endpoint (accept, reject) stays."""
    state = json.loads(text)
    for region in state.get("regions", {}).values():
        for lb in region.get("load_balancers", {}).values():
            lb.pop("state", None)
            lb.pop("state_reason", None)
        for endpoint in region.get("vpc_endpoints", {}).values():
            if endpoint.get("state") in ("Pending", "Available", "Failed"):
                endpoint["state"] = "settling"
                endpoint.pop("last_error", None)
    return state


def call(service, op, params):
    client = clients[service]
    method = next(name for name, api in client.meta.method_to_api_mapping.items() if api == op)
    return getattr(client, method)(**params)


# ---------------------------------------------------------------------------------------------
# Setup: the resources the bases and values name, and factories for the calls that use one up.

workdir = tempfile.TemporaryDirectory(prefix="model-table-")  # removed at exit
tmp = workdir.name


def openssl(*argv):
    subprocess.run(["openssl", *argv], check=True, capture_output=True)


def authority(name):
    """A CA (certificate and key files under tmp) and its (empty) revocation list, in the S3
    stand-in as NAME.crl."""
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", f"{tmp}/{name}.key", "-out", f"{tmp}/{name}.pem", "-days", "30",
            "-subj", f"/CN={name}.model.test", "-addext", f"subjectAltName=DNS:{name}.model.test")
    open(f"{tmp}/{name}.index", "w").close()
    with open(f"{tmp}/{name}.crlnumber", "w") as f:
        f.write("01\n")
    with open(f"{tmp}/{name}.cnf", "w") as f:
        f.write(f"[ca]\ndefault_ca = d\n[d]\ndatabase = {tmp}/{name}.index\n"
                f"crlnumber = {tmp}/{name}.crlnumber\ndefault_md = sha256\ndefault_crl_days = 30\n")
    openssl("ca", "-config", f"{tmp}/{name}.cnf", "-keyfile", f"{tmp}/{name}.key", "-cert", f"{tmp}/{name}.pem",
            "-gencrl", "-out", os.path.join(s3_root, bucket, f"{name}.crl"))
    return open(f"{tmp}/{name}.pem").read(), open(f"{tmp}/{name}.key").read()


# The trust store's CA bundle: two CAs, each with a revocation list (a trust store takes one
# list per CA), in the S3 stand-in.
s3_root = os.path.join(args.data_dir, "s3")
bucket = f"model-table-{run}"
os.makedirs(os.path.join(s3_root, bucket))
CERT, KEY = authority("ca")
OTHER_CERT, _ = authority("other")
with open(os.path.join(s3_root, bucket, "ca.pem"), "w") as f:
    f.write(CERT + OTHER_CERT)
REVOCATION = {"S3Bucket": bucket, "S3Key": "ca.crl"}
OTHER_REVOCATION = {"S3Bucket": bucket, "S3Key": "other.crl"}

subnets = sorted((s for s in ec2.describe_subnets()["Subnets"] if s["DefaultForAz"]),
                 key=lambda s: s["AvailabilityZone"])
SUBNETS = [s["SubnetId"] for s in subnets]
VPC, ZONE = subnets[0]["VpcId"], subnets[0]["AvailabilityZone"]
ZONE_ID = ec2.describe_availability_zones(ZoneNames=[ZONE])["AvailabilityZones"][0]["ZoneId"]
# Addresses of the first zone's subnet for targets and instances, clear of the nodes (the top
# addresses) and of instances given none (the bottom ones); where a run starts depends on the
# run, so that a second run against one elbd does not meet the first one's.
network = subnets[0]["CidrBlock"].rsplit(".", 2)[0]
addresses = (f"{network}.{128 + i // 250 % 120}.{1 + i % 250}" for i in itertools.count(int(run, 16) % 30000))
ports = itertools.count(10000)
priorities = itertools.count(1)
networks = (f"10.{i}.0.0/16" for i in itertools.count(1))


def fresh_sg():
    name = unique("group")
    return ec2.create_security_group(GroupName=name, Description="model table", VpcId=VPC)["GroupId"], name


def fresh_lb():
    name = unique("lb")
    lb = elbv2.create_load_balancer(Name=name, Subnets=SUBNETS[:2], SecurityGroups=[SG])
    return lb["LoadBalancers"][0]["LoadBalancerArn"], name


def fresh_tg(**extra):
    extra.setdefault("Protocol", "HTTP")
    tg = elbv2.create_target_group(Name=unique("tg"), Port=80, VpcId=VPC, TargetType="ip", **extra)
    return tg["TargetGroups"][0]["TargetGroupArn"]


def fresh_target():
    target = next(addresses)
    elbv2.register_targets(TargetGroupArn=TG, Targets=[{"Id": target}])
    return target


def forward():
    return {"Type": "forward", "TargetGroupArn": TG}


def fresh_listener(lb=None, https=False, actions=None, **extra):
    port = next(ports)
    tls = dict(Protocol="HTTPS", Certificates=[{"CertificateArn": ACM_CERT}]) if https else dict(Protocol="HTTP")
    listener = elbv2.create_listener(LoadBalancerArn=lb or LB, Port=port, DefaultActions=actions or [forward()],
                                     **{**tls, **extra})
    return listener["Listeners"][0]["ListenerArn"], port


def fresh_rule():
    rule = elbv2.create_rule(ListenerArn=HTTPS_LISTENER, Priority=next(priorities), Actions=[forward()],
                             Conditions=[{"Field": "path-pattern", "Values": ["/rule"]}])
    return rule["Rules"][0]["RuleArn"]


def fresh_trust_store():
    name = unique("ts")
    store = elbv2.create_trust_store(Name=name, CaCertificatesBundleS3Bucket=bucket, CaCertificatesBundleS3Key="ca.pem")
    return store["TrustStores"][0]["TrustStoreArn"], name


def fresh_revocation(store=None, content=REVOCATION):
    """A revocation list added to store (a fresh trust store when none): its store and id."""
    store = store or fresh_trust_store()[0]
    added = elbv2.add_trust_store_revocations(TrustStoreArn=store, RevocationContents=[content])
    return store, added["TrustStoreRevocations"][0]["RevocationId"]


def removable_revocation():
    store, revocation = fresh_revocation()
    return dict(TrustStoreArn=store, RevocationIds=[revocation])


def fresh_vpc():
    cidr = next(networks)
    return ec2.create_vpc(CidrBlock=cidr)["Vpc"]["VpcId"], cidr


def subnet_request():
    vpc, cidr = fresh_vpc()
    return dict(VpcId=vpc, CidrBlock=cidr.replace(".0.0/16", ".0.0/24"))


def ipv6_subnet(request, _):
    """A subnet with an IPv6 block, in a VPC given one: the first /64 of the VPC's /56."""
    cidr = next(networks)
    vpc = ec2.create_vpc(CidrBlock=cidr, AmazonProvidedIpv6CidrBlock=True)["Vpc"]
    block = vpc["Ipv6CidrBlockAssociationSet"][0]["Ipv6CidrBlock"]
    request.update(VpcId=vpc["VpcId"], CidrBlock=cidr.replace(".0.0/16", ".0.0/24"),
                   Ipv6CidrBlock=block.replace("/56", "/64"))


def fresh_instance():
    instance = ec2.run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1, SubnetId=SUBNETS[0])
    return instance["Instances"][0]["InstanceId"]


def fresh_eip():
    return ec2.allocate_address(Domain="vpc")["AllocationId"]


def associated_eip():
    return ec2.associate_address(AllocationId=fresh_eip(), InstanceId=fresh_instance())["AssociationId"]


def fresh_eip_ip():
    return ec2.allocate_address(Domain="vpc")["PublicIp"]


def associated_eip_ip():
    eip = ec2.allocate_address(Domain="vpc")
    ec2.associate_address(AllocationId=eip["AllocationId"], InstanceId=fresh_instance())
    return eip["PublicIp"]


def stopped_instance():
    instance = fresh_instance()
    ec2.stop_instances(InstanceIds=[instance])
    return instance


def fresh_gateway():
    """A gateway load balancer in the first zone."""
    lb = elbv2.create_load_balancer(Name=unique("gwlb"), Type="gateway", Subnets=SUBNETS[:1])
    return lb["LoadBalancers"][0]["LoadBalancerArn"]


def fresh_service(gateway=None, **extra):
    """An endpoint service offering gateway (a fresh gateway load balancer when none): its id
    and name."""
    service = ec2.create_vpc_endpoint_service_configuration(GatewayLoadBalancerArns=[gateway or fresh_gateway()],
                                                            **extra)["ServiceConfiguration"]
    return service["ServiceId"], service["ServiceName"]


def free_gateway():
    """FREE_GATEWAY, offered by no service: a load balancer belongs to one service at most, and
    the service a dry run or a failure left on it is deleted."""
    for service in ec2.describe_vpc_endpoint_service_configurations()["ServiceConfigurations"]:
        if FREE_GATEWAY in service["GatewayLoadBalancerArns"]:
            ec2.delete_vpc_endpoint_service_configurations(ServiceIds=[service["ServiceId"]])
    return FREE_GATEWAY


def endpoint_subnet():
    """A fresh VPC and its subnet in the first zone, where the services' gateways are: a VPC
    takes one endpoint of a service per zone."""
    vpc, cidr = fresh_vpc()
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock=cidr.replace(".0.0/16", ".0.0/24"), AvailabilityZone=ZONE)
    return vpc, subnet["Subnet"]["SubnetId"]


def fresh_endpoint(service_name=None):
    """A Gateway Load Balancer endpoint of the service (SERVICE when none) in a fresh VPC."""
    vpc, subnet = endpoint_subnet()
    endpoint = ec2.create_vpc_endpoint(VpcEndpointType="GatewayLoadBalancer", ServiceName=service_name or SERVICE_NAME,
                                       VpcId=vpc, SubnetIds=[subnet])
    return endpoint["VpcEndpoint"]["VpcEndpointId"]


def pending_endpoint():
    """An endpoint awaiting the acceptance of ACCEPTING's owner."""
    return fresh_endpoint(ACCEPTING_NAME)


def allowed_principal():
    """A principal SERVICE allows, to be removed."""
    principal = f"arn:aws:iam::123456789012:user/{unique('user')}"
    ec2.modify_vpc_endpoint_service_permissions(ServiceId=SERVICE, AddAllowedPrincipals=[principal])
    return [principal]


def fresh_acm(exportable=False):
    options = {"Options": {"Export": "ENABLED"}} if exportable else {}
    return acm.request_certificate(DomainName="request.model.test", **options)["CertificateArn"]


def exported_acm():
    arn = fresh_acm(exportable=True)
    acm.export_certificate(CertificateArn=arn, Passphrase=b"passphrase")
    return arn


def fresh_server_certificate():
    name = unique("server")
    iam.upload_server_certificate(ServerCertificateName=name, CertificateBody=CERT, PrivateKey=KEY)
    return name


SG, SG_NAME = fresh_sg()
LB, LB_NAME = fresh_lb()
TG = fresh_tg()
TG_NAME = TG.split("/")[1]
GRPC_TG = fresh_tg(ProtocolVersion="GRPC")
ACM_CERT = fresh_acm()
IMPORTED = acm.import_certificate(Certificate=CERT.encode(), PrivateKey=KEY.encode())["CertificateArn"]
LISTENER, _ = fresh_listener()
HTTPS_LISTENER, _ = fresh_listener(https=True)
elbv2.add_listener_certificates(ListenerArn=HTTPS_LISTENER, Certificates=[{"CertificateArn": IMPORTED}])
MODIFIED_LISTENER, MODIFIED_PORT = fresh_listener(https=True)  # ModifyListener's alone
RULE = fresh_rule()
TRUST_STORE, TRUST_STORE_NAME = fresh_trust_store()
_, REVOCATION_ID = fresh_revocation(TRUST_STORE)
TARGET = fresh_target()
INSTANCE = fresh_instance()
SERVER_CERTIFICATE = fresh_server_certificate()
EIP = ec2.allocate_address(Domain="vpc")
# Every paged call the table makes has a second page to ask for: two load balancers with a
# listener verifying with the trust store, two trust stores, revocations, server certificates,
# and five more of each EC2 resource (EC2's pages hold at least five).
verify = {"MutualAuthentication": {"Mode": "verify", "TrustStoreArn": TRUST_STORE}}
fresh_listener(LB, https=True, **verify)
# (A target group serves one load balancer: the second one answers by itself.)
fresh_listener(fresh_lb()[0], https=True, actions=[
    {"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "200"}}], **verify)
fresh_trust_store()
fresh_revocation(TRUST_STORE, OTHER_REVOCATION)
fresh_server_certificate()
for _ in range(5):
    ec2.create_subnet(**subnet_request())
    fresh_sg()
    fresh_instance()
# Endpoint services, each offering a gateway load balancer of its own: SERVICE connects its
# endpoints at once, ACCEPTING makes them await acceptance, MODIFIED is ModifyVpcEndpoint-
# ServiceConfiguration's alone (with EXTRA_GATEWAY to add and remove), FREE_GATEWAY is for the
# services made and deleted; three more, and six endpoints of ACCEPTING (each in a VPC of its
# own), give the describes a second page, as do six principals SERVICE allows.
SERVICE, SERVICE_NAME = fresh_service()
ACCEPTING, ACCEPTING_NAME = fresh_service(AcceptanceRequired=True)
MODIFIED_GATEWAY = fresh_gateway()
MODIFIED, _ = fresh_service(MODIFIED_GATEWAY)
EXTRA_GATEWAY = fresh_gateway()
FREE_GATEWAY = fresh_gateway()
for _ in range(3):
    fresh_service()
ENDPOINT = pending_endpoint()
for _ in range(5):
    pending_endpoint()
PRINCIPALS = [f"arn:aws:iam::12345678900{i}:root" for i in range(6)]
ec2.modify_vpc_endpoint_service_permissions(ServiceId=SERVICE, AddAllowedPrincipals=PRINCIPALS)

# ---------------------------------------------------------------------------------------------
# Bases: the smallest valid call of each operation. One-shot operations get fresh resources.

# AlpnPolicy belongs to a network load balancer's TLS listeners.
NLB = elbv2.create_load_balancer(Name=unique("nlb"), Type="network", Subnets=SUBNETS[:2])
NLB = NLB["LoadBalancers"][0]["LoadBalancerArn"]
# A network load balancer with security groups: the one SetSecurityGroups' PrivateLink member
# is for.
GUARDED_NLB = elbv2.create_load_balancer(Name=unique("guarded"), Type="network", Subnets=SUBNETS[:1],
                                         SecurityGroups=[SG])["LoadBalancers"][0]["LoadBalancerArn"]
TCP_TG = fresh_tg(Protocol="TCP")
TLS_LISTENER, _ = fresh_listener(NLB, actions=[{"Type": "forward", "TargetGroupArn": TCP_TG}], Protocol="TLS",
                                 Certificates=[{"CertificateArn": ACM_CERT}])

SG_RULE = {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}
BASES = {
    "elbv2:AddListenerCertificates": lambda: dict(ListenerArn=HTTPS_LISTENER,
                                                  Certificates=[{"CertificateArn": IMPORTED}]),
    "elbv2:AddTags": lambda: dict(ResourceArns=[LB], Tags=[{"Key": "k"}]),
    "elbv2:AddTrustStoreRevocations": lambda: dict(TrustStoreArn=fresh_trust_store()[0],
                                                   RevocationContents=[REVOCATION]),
    "elbv2:CreateListener": lambda: dict(LoadBalancerArn=LB, Protocol="HTTPS", Port=next(ports),
                                         Certificates=[{"CertificateArn": ACM_CERT}], DefaultActions=[forward()]),
    "elbv2:CreateLoadBalancer": lambda: dict(Name=unique("lb"), Subnets=SUBNETS[:2]),
    "elbv2:CreateRule": lambda: dict(ListenerArn=HTTPS_LISTENER, Priority=next(priorities), Actions=[forward()],
                                     Conditions=[{"Field": "path-pattern", "Values": ["/a"]}]),
    "elbv2:CreateTargetGroup": lambda: dict(Name=unique("tg"), Protocol="HTTP", Port=80, VpcId=VPC),
    "elbv2:CreateTrustStore": lambda: dict(Name=unique("ts"), CaCertificatesBundleS3Bucket=bucket,
                                           CaCertificatesBundleS3Key="ca.pem"),
    "elbv2:DeleteListener": lambda: dict(ListenerArn=fresh_listener()[0]),
    "elbv2:DeleteLoadBalancer": lambda: dict(LoadBalancerArn=fresh_lb()[0]),
    "elbv2:DeleteRule": lambda: dict(RuleArn=fresh_rule()),
    "elbv2:DeleteSharedTrustStoreAssociation": lambda: dict(TrustStoreArn=TRUST_STORE, ResourceArn=LB),
    "elbv2:DeleteTargetGroup": lambda: dict(TargetGroupArn=fresh_tg()),
    "elbv2:DeleteTrustStore": lambda: dict(TrustStoreArn=fresh_trust_store()[0]),
    "elbv2:DeregisterTargets": lambda: dict(TargetGroupArn=TG, Targets=[{"Id": fresh_target()}]),
    "elbv2:DescribeAccountLimits": lambda: {},
    "elbv2:DescribeCapacityReservation": lambda: dict(LoadBalancerArn=LB),
    "elbv2:DescribeListenerAttributes": lambda: dict(ListenerArn=LISTENER),
    "elbv2:DescribeListenerCertificates": lambda: dict(ListenerArn=HTTPS_LISTENER),
    "elbv2:DescribeListeners": lambda: dict(LoadBalancerArn=LB),
    "elbv2:DescribeLoadBalancerAttributes": lambda: dict(LoadBalancerArn=LB),
    "elbv2:DescribeLoadBalancers": lambda: {},
    "elbv2:DescribeRules": lambda: dict(ListenerArn=HTTPS_LISTENER),
    "elbv2:DescribeSSLPolicies": lambda: {},
    "elbv2:DescribeTags": lambda: dict(ResourceArns=[LB]),
    "elbv2:DescribeTargetGroupAttributes": lambda: dict(TargetGroupArn=TG),
    "elbv2:DescribeTargetGroups": lambda: {},
    "elbv2:DescribeTargetHealth": lambda: dict(TargetGroupArn=TG),
    "elbv2:DescribeTrustStoreAssociations": lambda: dict(TrustStoreArn=TRUST_STORE),
    "elbv2:DescribeTrustStoreRevocations": lambda: dict(TrustStoreArn=TRUST_STORE),
    "elbv2:DescribeTrustStores": lambda: {},
    "elbv2:GetResourcePolicy": lambda: dict(ResourceArn=LB),
    "elbv2:GetTrustStoreCaCertificatesBundle": lambda: dict(TrustStoreArn=TRUST_STORE),
    "elbv2:GetTrustStoreRevocationContent": lambda: dict(TrustStoreArn=TRUST_STORE, RevocationId=REVOCATION_ID),
    "elbv2:ModifyCapacityReservation": lambda: dict(LoadBalancerArn=LB, ResetCapacityReservation=True),
    "elbv2:ModifyIpPools": lambda: dict(LoadBalancerArn=LB, RemoveIpamPools=["ipv4"]),
    "elbv2:ModifyListener": lambda: dict(ListenerArn=MODIFIED_LISTENER),
    "elbv2:ModifyListenerAttributes": lambda: dict(
        ListenerArn=HTTPS_LISTENER, Attributes=[{"Key": "routing.http.response.server.enabled", "Value": "true"}]),
    "elbv2:ModifyLoadBalancerAttributes": lambda: dict(
        LoadBalancerArn=LB, Attributes=[{"Key": "idle_timeout.timeout_seconds", "Value": "60"}]),
    "elbv2:ModifyRule": lambda: dict(RuleArn=RULE),
    "elbv2:ModifyTargetGroup": lambda: dict(TargetGroupArn=TG),
    "elbv2:ModifyTargetGroupAttributes": lambda: dict(
        TargetGroupArn=TG, Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": "300"}]),
    "elbv2:ModifyTrustStore": lambda: dict(TrustStoreArn=TRUST_STORE, CaCertificatesBundleS3Bucket=bucket,
                                           CaCertificatesBundleS3Key="ca.pem"),
    "elbv2:RegisterTargets": lambda: dict(TargetGroupArn=TG, Targets=[{"Id": TARGET}]),
    "elbv2:RemoveListenerCertificates": lambda: dict(ListenerArn=HTTPS_LISTENER,
                                                     Certificates=[{"CertificateArn": IMPORTED}]),
    "elbv2:RemoveTags": lambda: dict(ResourceArns=[LB], TagKeys=["k"]),
    "elbv2:RemoveTrustStoreRevocations": removable_revocation,
    "elbv2:SetIpAddressType": lambda: dict(LoadBalancerArn=LB, IpAddressType="ipv4"),
    "elbv2:SetRulePriorities": lambda: dict(RulePriorities=[{"RuleArn": RULE, "Priority": 50000}]),
    "elbv2:SetSecurityGroups": lambda: dict(LoadBalancerArn=LB, SecurityGroups=[SG]),
    "elbv2:SetSubnets": lambda: dict(LoadBalancerArn=LB, Subnets=SUBNETS[:2]),
    "ec2:CreateVpc": lambda: dict(CidrBlock=next(networks)),
    "ec2:DescribeVpcs": lambda: {},
    "ec2:DeleteVpc": lambda: dict(VpcId=fresh_vpc()[0]),
    "ec2:DescribeVpcAttribute": lambda: dict(VpcId=VPC, Attribute="enableDnsSupport"),
    "ec2:ModifyVpcAttribute": lambda: dict(VpcId=fresh_vpc()[0], EnableDnsSupport={"Value": True}),
    "ec2:CreateSubnet": subnet_request,
    "ec2:DescribeSubnets": lambda: {},
    "ec2:DeleteSubnet": lambda: dict(SubnetId=ec2.create_subnet(**subnet_request())["Subnet"]["SubnetId"]),
    "ec2:DescribeAvailabilityZones": lambda: {},
    "ec2:CreateSecurityGroup": lambda: dict(GroupName=unique("group"), Description="model table", VpcId=VPC),
    "ec2:DescribeSecurityGroups": lambda: {},
    "ec2:DeleteSecurityGroup": lambda: dict(GroupId=fresh_sg()[0]),
    "ec2:AuthorizeSecurityGroupIngress": lambda: dict(GroupId=fresh_sg()[0], IpPermissions=[SG_RULE]),
    "ec2:AuthorizeSecurityGroupEgress": lambda: dict(GroupId=fresh_sg()[0], IpPermissions=[SG_RULE]),
    "ec2:RevokeSecurityGroupEgress": lambda: dict(GroupId=fresh_sg()[0], IpPermissions=[SG_RULE]),
    "ec2:RevokeSecurityGroupIngress": lambda: dict(GroupId=fresh_sg()[0], IpPermissions=[SG_RULE]),
    "ec2:RunInstances": lambda: dict(ImageId="ami-12345678", MinCount=1, MaxCount=1, SubnetId=SUBNETS[0]),
    "ec2:DescribeInstances": lambda: {},
    "ec2:StopInstances": lambda: dict(InstanceIds=[fresh_instance()]),
    "ec2:StartInstances": lambda: dict(InstanceIds=[stopped_instance()]),
    "ec2:TerminateInstances": lambda: dict(InstanceIds=[fresh_instance()]),
    "ec2:CreateTags": lambda: dict(Resources=[VPC], Tags=[{"Key": "k", "Value": "v"}]),
    "ec2:DeleteTags": lambda: dict(Resources=[VPC]),
    "ec2:DescribeTags": lambda: {},
    "ec2:AllocateAddress": lambda: dict(Domain="vpc"),
    "ec2:DescribeAddresses": lambda: {},
    "ec2:ReleaseAddress": lambda: dict(AllocationId=fresh_eip()),
    "ec2:AssociateAddress": lambda: dict(AllocationId=fresh_eip(), InstanceId=INSTANCE, AllowReassociation=True),
    "ec2:DisassociateAddress": lambda: dict(AssociationId=associated_eip()),
    "ec2:CreateVpcEndpointServiceConfiguration": lambda: dict(GatewayLoadBalancerArns=[free_gateway()]),
    "ec2:DescribeVpcEndpointServiceConfigurations": lambda: {},
    "ec2:ModifyVpcEndpointServiceConfiguration": lambda: dict(ServiceId=MODIFIED),
    "ec2:DeleteVpcEndpointServiceConfigurations": lambda: dict(ServiceIds=[fresh_service(free_gateway())[0]]),
    "ec2:DescribeVpcEndpointServices": lambda: {},
    "ec2:DescribeVpcEndpointServicePermissions": lambda: dict(ServiceId=SERVICE),
    "ec2:ModifyVpcEndpointServicePermissions": lambda: dict(ServiceId=SERVICE),
    # In the default VPC's subnet of the gateway's zone: UNDO deletes what was made.
    "ec2:CreateVpcEndpoint": lambda: dict(VpcEndpointType="GatewayLoadBalancer", ServiceName=SERVICE_NAME, VpcId=VPC,
                                          SubnetIds=SUBNETS[:1]),
    "ec2:DescribeVpcEndpoints": lambda: {},
    "ec2:DeleteVpcEndpoints": lambda: dict(VpcEndpointIds=[fresh_endpoint()]),
    "ec2:DescribeVpcEndpointConnections": lambda: {},
    "ec2:AcceptVpcEndpointConnections": lambda: dict(ServiceId=ACCEPTING, VpcEndpointIds=[pending_endpoint()]),
    "ec2:RejectVpcEndpointConnections": lambda: dict(ServiceId=ACCEPTING, VpcEndpointIds=[pending_endpoint()]),
    "ec2:DescribePrefixLists": lambda: {},
    "acm:ImportCertificate": lambda: dict(Certificate=CERT.encode(), PrivateKey=KEY.encode()),
    "acm:RequestCertificate": lambda: dict(DomainName="request.model.test"),
    "acm:DescribeCertificate": lambda: dict(CertificateArn=ACM_CERT),
    "acm:ListCertificates": lambda: {},
    "acm:GetCertificate": lambda: dict(CertificateArn=ACM_CERT),
    "acm:DeleteCertificate": lambda: dict(CertificateArn=fresh_acm()),
    "acm:AddTagsToCertificate": lambda: dict(CertificateArn=ACM_CERT, Tags=[{"Key": "k"}]),
    "acm:RemoveTagsFromCertificate": lambda: dict(CertificateArn=ACM_CERT, Tags=[{"Key": "k"}]),
    "acm:ListTagsForCertificate": lambda: dict(CertificateArn=ACM_CERT),
    "acm:UpdateCertificateOptions": lambda: dict(CertificateArn=ACM_CERT,
                                                 Options={"CertificateTransparencyLoggingPreference": "ENABLED"}),
    "acm:ExportCertificate": lambda: dict(CertificateArn=fresh_acm(exportable=True), Passphrase=b"passphrase"),
    "acm:RenewCertificate": lambda: dict(CertificateArn=ACM_CERT),
    "acm:RevokeCertificate": lambda: dict(CertificateArn=exported_acm(), RevocationReason="KEY_COMPROMISE"),
    "acm:ResendValidationEmail": lambda: dict(CertificateArn=ACM_CERT, Domain="request.model.test",
                                              ValidationDomain="model.test"),
    "acm:GetAccountConfiguration": lambda: {},
    "acm:PutAccountConfiguration": lambda: dict(IdempotencyToken=uuid.uuid4().hex),
    "iam:UploadServerCertificate": lambda: dict(ServerCertificateName=unique("server"), CertificateBody=CERT,
                                                PrivateKey=KEY),
    "iam:GetServerCertificate": lambda: dict(ServerCertificateName=SERVER_CERTIFICATE),
    "iam:ListServerCertificates": lambda: {},
    "iam:DeleteServerCertificate": lambda: dict(ServerCertificateName=fresh_server_certificate()),
}


def authorize_first(direction):
    """A rule is revoked only where it was authorized: authorize what the request revokes (for
    real, also when the revoke is a dry run)."""
    operation = f"AuthorizeSecurityGroup{direction}"
    takes = ec2.meta.service_model.operation_model(operation).input_shape.members

    def before(params):
        try:
            call("ec2", operation, {k: v for k, v in params.items() if k in takes and k != "DryRun"})
        except ClientError:
            pass  # refused: the revoke is judged on its own
    return before


def offer_first(params):
    """A service adds a gateway load balancer it does not offer and removes one it does: set
    the service up so (for real, also for a dry run)."""
    service = params["ServiceId"]
    offered = ec2.describe_vpc_endpoint_service_configurations(ServiceIds=[service])["ServiceConfigurations"][0][
        "GatewayLoadBalancerArns"]
    removed = params.get("RemoveGatewayLoadBalancerArns", [])
    added = [arn for arn in params.get("AddGatewayLoadBalancerArns", []) if arn not in removed]
    change = dict(AddGatewayLoadBalancerArns=[arn for arn in removed if arn not in offered],
                  RemoveGatewayLoadBalancerArns=[arn for arn in added if arn in offered])
    if any(change.values()):
        ec2.modify_vpc_endpoint_service_configuration(ServiceId=service, **{k: v for k, v in change.items() if v})


# Run before each request of an operation, with the request.
BEFORE = {
    "ec2:RevokeSecurityGroupIngress": authorize_first("Ingress"),
    "ec2:RevokeSecurityGroupEgress": authorize_first("Egress"),
    "ec2:ModifyVpcEndpointServiceConfiguration": offer_first,
}

# What a create under a quota made is removed again, so that the script can run twice.
UNDO = {
    "elbv2:CreateLoadBalancer": lambda a: elbv2.delete_load_balancer(
        LoadBalancerArn=a["LoadBalancers"][0]["LoadBalancerArn"]),
    "elbv2:CreateListener": lambda a: elbv2.delete_listener(ListenerArn=a["Listeners"][0]["ListenerArn"]),
    "elbv2:CreateRule": lambda a: elbv2.delete_rule(RuleArn=a["Rules"][0]["RuleArn"]),
    # A VPC takes one endpoint of a service per zone.
    "ec2:CreateVpcEndpoint": lambda a: ec2.delete_vpc_endpoints(VpcEndpointIds=[a["VpcEndpoint"]["VpcEndpointId"]]),
}

# ---------------------------------------------------------------------------------------------
# Values. A member's value is looked up as "Operation:Member.Path", then "Structure.Member"
# (the containing structure's shape name), then by the member's own shape name (a list's, then
# its element's), and is otherwise generated from the model. Callables are called, so that
# one-shot values are fresh.


def dual_stack_subnets():
    """Two subnets with IPv6 blocks, in zones a and b of a VPC given one (made once)."""
    if not DUAL_STACK:
        cidr = next(networks)
        vpc = ec2.create_vpc(CidrBlock=cidr, AmazonProvidedIpv6CidrBlock=True)["Vpc"]
        block = ipaddress.ip_network(vpc["Ipv6CidrBlockAssociationSet"][0]["Ipv6CidrBlock"])
        for n, (subnet, ipv6) in enumerate(zip(subnets[:2], block.subnets(new_prefix=64))):
            DUAL_STACK.append(ec2.create_subnet(
                VpcId=vpc["VpcId"], CidrBlock=cidr.replace(".0.0/16", f".{n}.0/24"),
                AvailabilityZone=subnet["AvailabilityZone"], Ipv6CidrBlock=str(ipv6))["Subnet"])
    return DUAL_STACK


DUAL_STACK = []
# IPv6 addresses of zone a's dual-stack subnet, one per request (taken ones stay taken).
ipv6_hosts = itertools.count(0x10)


def dual_stack_address():
    block = ipaddress.ip_network(dual_stack_subnets()[0]["Ipv6CidrBlockAssociationSet"][0]["Ipv6CidrBlock"])
    return str(block[next(ipv6_hosts)])


def dual_stack_lb(structure, request):
    """A dual-stack network load balancer with IPv6 source NAT prefixes, for the subnet
    mapping that chooses an IPv6 address or prefix: the one created, or for SetSubnets one of
    its own in zone b, so that the mapping's zone a is new to it."""
    zone_a, zone_b = (s["SubnetId"] for s in dual_stack_subnets())
    mappings = request.get("SubnetMappings", [])
    structure["SubnetId"] = zone_a
    if request.get("EnablePrefixForIpv6SourceNat") == "on":
        return  # set up for the mapping's other member already
    request.update(IpAddressType="dualstack", EnablePrefixForIpv6SourceNat="on")
    if "Name" in request:
        vpc = dual_stack_subnets()[0]["VpcId"]
        group = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc]},
                                                      {"Name": "group-name", "Values": ["default"]}])
        request.update(Type="network", Scheme="internal",
                       SecurityGroups=[group["SecurityGroups"][0]["GroupId"]])
    else:
        created = elbv2.create_load_balancer(Name=unique("moved"), Type="network", Scheme="internal",
                                             IpAddressType="dualstack", EnablePrefixForIpv6SourceNat="on",
                                             Subnets=[zone_b])
        request["LoadBalancerArn"] = created["LoadBalancers"][0]["LoadBalancerArn"]
    for mapping in mappings:
        if mapping is not structure:
            mapping["SubnetId"] = zone_b


def ec2_tags(resource_type):
    return [{"ResourceType": resource_type, "Tags": [{"Key": "k", "Value": "v"}]}]


def ec2_filter(name, value):
    return [{"Name": name, "Values": [value]}]


OIDC = "https://idp.model.test"
VALUES = {
    # ELBv2: the resources made above, and what AWS takes for each string.
    "LoadBalancerArn": LB,
    "LoadBalancerName": LB_NAME,
    "ListenerArn": LISTENER,
    "RuleArn": RULE,
    "SecurityGroupId": SG,
    "SecurityGroupName": SG_NAME,
    "SubnetId": SUBNETS[0],
    "TargetGroupArn": TG,
    "TargetGroupName": TG_NAME,
    "TrustStoreArn": TRUST_STORE,
    "TrustStoreName": TRUST_STORE_NAME,
    "RevocationId": REVOCATION_ID,
    "VpcId": VPC,
    "ZoneName": ZONE,
    "AlpnPolicyValue": "HTTP2Preferred",
    "SslPolicyName": "ELBSecurityPolicy-TLS13-1-2-2021-06",
    "ProtocolVersion": "HTTP1",
    "HealthCheckPort": "traffic-port",
    "Path": "/health",
    "HealthCheckIntervalSeconds": 30,
    "HealthCheckTimeoutSeconds": 5,
    "HealthCheckThresholdCount": 3,
    "Port": 80,
    # The one version an object of an unversioned bucket (the S3 stand-in's) has.
    "S3ObjectVersion": "null",
    "IpamPoolId": "ipam-pool-0123456789abcdef0",
    "CustomerOwnedIpv4Pool": "ipv4pool-coip-0123456789abcdef0",
    "EnablePrefixForIpv6SourceNatEnum": "off",
    "CapacityUnits": 100,
    "ModifyListener:Port": MODIFIED_PORT,
    "ModifyListener:Protocol": "HTTPS",
    "AddListenerCertificates:Certificates.IsDefault": False,
    "RemoveListenerCertificates:Certificates.IsDefault": False,
    "CreateLoadBalancer:SubnetMappings": [{"SubnetId": SUBNETS[0]}, {"SubnetId": SUBNETS[1]}],
    "SetSubnets:SubnetMappings": [{"SubnetId": SUBNETS[0]}, {"SubnetId": SUBNETS[1]}],
    "SubnetMapping.AllocationId": fresh_eip,
    "SubnetMapping.PrivateIPv4Address": lambda: next(addresses),
    "SubnetMapping.IPv6Address": dual_stack_address,
    "SubnetMapping.SourceNatIpv6Prefix": "auto_assigned",
    "MutualAuthenticationAttributes.IgnoreClientCertificateExpiry": False,
    "ClientCertificateIdentityFilter.Value": "client.model.test",
    "Matcher.GrpcCode": "12",
    "TargetDescription.QuicServerId": "0123456789abcdef",
    "TargetGroupTuple.Weight": 1,
    "AuthenticateOidcActionConfig.UseExistingClientSecret": False,
    "AuthenticateOidcActionConfig.SessionTimeout": 604800,
    "AuthenticateOidcActionConfig.Scope": "openid",
    "AuthenticateCognitoActionConfig.UserPoolArn": "arn:aws:cognito-idp:us-east-1:123456789012:userpool/us-east-1_abc",
    "AuthenticateCognitoActionConfig.UserPoolClientId": "client",
    "AuthenticateCognitoActionConfig.UserPoolDomain": "model-table",
    "AuthenticateCognitoActionConfig.SessionTimeout": 604800,
    "AuthenticateCognitoActionConfig.Scope": "openid",
    "AuthenticateOidcActionSessionCookieName": "AWSELBAuthSessionCookie",
    "AuthenticateCognitoActionSessionCookieName": "AWSELBAuthSessionCookie",
    "JwtValidationActionConfig.JwksEndpoint": f"{OIDC}/jwks.json",
    "JwtValidationActionConfig.Issuer": OIDC,
    "JwtValidationActionAdditionalClaim.Name": "aud",
    "JwtValidationActionAdditionalClaim.Values": ["model-table"],
    "RedirectActionConfig.Protocol": "HTTPS",
    "RedirectActionConfig.Port": "443",
    "RedirectActionConfig.Path": "/moved",
    "RedirectActionConfig.Query": "from=rule",
    "FixedResponseActionConfig.StatusCode": "200",
    "FixedResponseActionConfig.MessageBody": "ok",
    "FixedResponseActionConfig.ContentType": "text/plain",
    "HostHeaderConditionConfig.Values": ["www.model.test"],
    "HostHeaderConditionConfig.RegexValues": ["^www\\.model\\.test$"],
    "PathPatternConditionConfig.Values": ["/p/*"],
    "PathPatternConditionConfig.RegexValues": ["^/p/.*$"],
    "HttpHeaderConditionConfig.RegexValues": ["^table$"],
    "HttpRequestMethodConditionConfig.Values": ["GET"],
    "SourceIpConditionConfig.Values": ["10.0.0.0/8"],
    "RuleCondition.RegexValues": ["^/r/.*$"],
    # EC2.
    "CreateVpc:TagSpecifications": ec2_tags("vpc"),
    "CreateSubnet:TagSpecifications": ec2_tags("subnet"),
    "CreateSecurityGroup:TagSpecifications": ec2_tags("security-group"),
    "AuthorizeSecurityGroupIngress:TagSpecifications": ec2_tags("security-group-rule"),
    "RunInstances:TagSpecifications": ec2_tags("instance"),
    "DescribeVpcs:Filters": ec2_filter("vpc-id", VPC),
    "DescribeSubnets:Filters": ec2_filter("subnet-id", SUBNETS[0]),
    "DescribeAvailabilityZones:Filters": ec2_filter("zone-name", ZONE),
    "DescribeSecurityGroups:Filters": ec2_filter("group-id", SG),
    "DescribeInstances:Filters": ec2_filter("instance-id", INSTANCE),
    "DescribeTags:Filters": ec2_filter("resource-id", VPC),
    "DescribeAddresses:Filters": ec2_filter("domain", "vpc"),
    "DescribeAddresses:AllocationIds": [EIP["AllocationId"]],
    "DescribeAddresses:PublicIps": [EIP["PublicIp"]],
    "AllocateAddress:TagSpecifications": ec2_tags("elastic-ip"),
    "AllocateAddress:NetworkBorderGroup": "us-east-1",
    "ReleaseAddress:PublicIp": fresh_eip_ip,
    "AssociateAddress:PublicIp": fresh_eip_ip,
    "DisassociateAddress:PublicIp": associated_eip_ip,
    "ReleaseAddress:NetworkBorderGroup": "us-east-1",
    "DescribeAvailabilityZones:ZoneNames": [ZONE],
    "DescribeAvailabilityZones:ZoneIds": [ZONE_ID],
    "DescribeInstances:InstanceIds": [INSTANCE],
    "DescribeInstances:MaxResults": 5,
    "DescribeTags:MaxResults": 5,
    "DeleteTags:Tags": [{"Key": "k"}],
    "StopInstances:Hibernate": False,  # true is for instances launched with hibernation
    "CreateVpc:Ipv6CidrBlock": "2600:1f18::/56",
    "CreateVpc:Ipv6Pool": "ipv6pool-ec2-0123456789abcdef0",
    "CreateVpc:Ipv4NetmaskLength": 16,
    "CreateVpc:Ipv6NetmaskLength": 56,
    "CreateVpc:Ipv6CidrBlockNetworkBorderGroup": "us-east-1",
    "CreateSubnet:AvailabilityZone": ZONE,
    "CreateSubnet:AvailabilityZoneId": ZONE_ID,
    "CreateSubnet:OutpostArn": "arn:aws:outposts:us-east-1:123456789012:outpost/op-0123456789abcdef0",
    "CreateSubnet:Ipv4NetmaskLength": 24,
    "CreateSubnet:Ipv6NetmaskLength": 64,
    "Ipv6Range.CidrIpv6": "::/0",
    "PrefixListId.PrefixListId": "pl-0123456789abcdef0",
    "UserIdGroupPair.GroupName": SG_NAME,
    "UserIdGroupPair.UserId": "123456789012",
    "UserIdGroupPair.VpcId": VPC,
    "UserIdGroupPair.VpcPeeringConnectionId": "pcx-0123456789abcdef0",
    "UserIdGroupPair.PeeringStatus": "active",
    **{f"{direction}SecurityGroup{way}Request.{member}": value
       for direction in ("Authorize", "Revoke") for way in ("Ingress", "Egress")
       for member, value in (("CidrIp", "10.0.0.0/8"), ("SourceSecurityGroupOwnerId", "123456789012"))},
    "RevokeSecurityGroupIngress:SecurityGroupRuleIds": ["sgr-0123456789abcdef0"],
    "InstanceType": "t3.micro",
    "RunInstances:PrivateIpAddress": lambda: next(addresses),
    "RunInstances:ClientToken": lambda: unique("token"),
    "RunInstances:UserData": "bW9kZWwgdGFibGU=",
    "RunInstances:Ipv6AddressCount": 1,
    "RunInstances:KeyName": "model-table",
    "KernelId": "aki-0123456789abcdef0",
    "RamdiskId": "ari-0123456789abcdef0",
    "Placement.AvailabilityZoneId": ZONE_ID,
    "LaunchTemplateSpecification.LaunchTemplateId": "lt-0123456789abcdef0",
    "CreditSpecificationRequest.CpuCredits": "standard",
    "IamInstanceProfileSpecification.Arn": "arn:aws:iam::123456789012:instance-profile/model-table",
    "CreateVpcEndpointServiceConfiguration:NetworkLoadBalancerArns": [NLB],
    "CreateVpcEndpointServiceConfiguration:SupportedIpAddressTypes": ["ipv4"],
    "CreateVpcEndpointServiceConfiguration:SupportedRegions": ["us-west-2"],
    "CreateVpcEndpointServiceConfiguration:PrivateDnsName": "service.model.test",
    "CreateVpcEndpointServiceConfiguration:TagSpecifications": ec2_tags("vpc-endpoint-service"),
    "DescribeVpcEndpointServiceConfigurations:ServiceIds": [SERVICE],
    "DescribeVpcEndpointServiceConfigurations:Filters": ec2_filter("service-id", SERVICE),
    "DescribeVpcEndpointServiceConfigurations:MaxResults": 5,
    "ModifyVpcEndpointServiceConfiguration:PrivateDnsName": "service.model.test",
    "ModifyVpcEndpointServiceConfiguration:AddNetworkLoadBalancerArns": [NLB],
    "ModifyVpcEndpointServiceConfiguration:RemoveNetworkLoadBalancerArns": [NLB],
    "ModifyVpcEndpointServiceConfiguration:AddGatewayLoadBalancerArns": [EXTRA_GATEWAY],
    "ModifyVpcEndpointServiceConfiguration:RemoveGatewayLoadBalancerArns": [EXTRA_GATEWAY],
    "ModifyVpcEndpointServiceConfiguration:AddSupportedIpAddressTypes": ["ipv4"],
    "ModifyVpcEndpointServiceConfiguration:RemoveSupportedIpAddressTypes": ["ipv6"],
    "ModifyVpcEndpointServiceConfiguration:AddSupportedRegions": ["us-west-2"],
    "ModifyVpcEndpointServiceConfiguration:RemoveSupportedRegions": ["us-west-2"],
    "DescribeVpcEndpointServices:ServiceNames": [SERVICE_NAME],
    "DescribeVpcEndpointServices:Filters": ec2_filter("service-name", SERVICE_NAME),
    "DescribeVpcEndpointServices:MaxResults": 5,
    "DescribeVpcEndpointServices:ServiceRegions": ["us-west-2"],
    "DescribeVpcEndpointServicePermissions:Filters": ec2_filter("principal", PRINCIPALS[0]),
    "DescribeVpcEndpointServicePermissions:MaxResults": 5,
    "ModifyVpcEndpointServicePermissions:AddAllowedPrincipals": ["arn:aws:iam::123456789012:role/model-table"],
    "ModifyVpcEndpointServicePermissions:RemoveAllowedPrincipals": allowed_principal,
    "CreateVpcEndpoint:PrivateDnsEnabled": False,  # true is for interface endpoints
    "CreateVpcEndpoint:TagSpecifications": ec2_tags("vpc-endpoint"),
    "CreateVpcEndpoint:ServiceNetworkArn":
        "arn:aws:vpc-lattice:us-east-1:123456789012:servicenetwork/sn-0123456789abcdef0",
    "CreateVpcEndpoint:ResourceConfigurationArn":
        "arn:aws:vpc-lattice:us-east-1:123456789012:resourceconfiguration/rcfg-0123456789abcdef0",
    "CreateVpcEndpoint:ServiceRegion": "us-west-2",
    "CreateVpcEndpoint:RouteTableIds": ["rtb-0123456789abcdef0"],
    "CreateVpcEndpoint:SecurityGroupIds": [SG],
    "CreateVpcEndpoint:PolicyDocument": json.dumps(
        {"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"}]}),
    "DescribeVpcEndpoints:VpcEndpointIds": [ENDPOINT],
    "DescribeVpcEndpoints:Filters": ec2_filter("vpc-endpoint-id", ENDPOINT),
    "DescribeVpcEndpoints:MaxResults": 5,
    "DescribeVpcEndpointConnections:Filters": ec2_filter("service-id", ACCEPTING),
    "DescribeVpcEndpointConnections:MaxResults": 5,
    "TransitGatewayAttachmentId": "tgw-attach-0123456789abcdef0",
    "DescribePrefixLists:PrefixListIds": ["pl-63a5400a"],
    "DescribePrefixLists:Filters": ec2_filter("prefix-list-name", "com.amazonaws.us-east-1.s3"),
    "DescribePrefixLists:MaxResults": 5,
    # elbd has no prefix lists, so no page follows the first: a token as AWS makes them.
    "DescribePrefixLists:NextToken": "eyJ2IjoiMiIsImMiOiJtb2RlbC10YWJsZSJ9",
    # ACM and IAM.
    "ImportCertificate:CertificateArn": IMPORTED,
    # Export is fixed when a certificate is requested: the value it has is the valid one.
    "UpdateCertificateOptions:Options.Export": "DISABLED",
    "CertificateChainBlob": CERT.encode(),
    "DomainNameString": "request.model.test",
    "IdempotencyToken": lambda: uuid.uuid4().hex,
    "KeyAlgorithm": "EC_prime256v1",
    "PcaArn": "arn:aws:acm-pca:us-east-1:123456789012:certificate-authority/12345678-1234-1234-1234-123456789012",
    "CertificateStatuses": ["ISSUED"],
    "pathType": "/model/",
    "pathPrefixType": "/",
    "certificateChainType": CERT,
}

# The smallest valid structures, where the model's required members are not enough.
MINIMAL = {
    "Action": forward,
    "Certificate": {"CertificateArn": ACM_CERT},
    "Ipv6Range": {"CidrIpv6": "::/0"},
    "ForwardActionConfig": {"TargetGroups": [{"TargetGroupArn": TG}]},
    "TargetGroupStickinessConfig": {"Enabled": True, "DurationSeconds": 3600},
    "RedirectActionConfig": {"StatusCode": "HTTP_301", "Host": "www.model.test"},  # one that does not loop
    "AuthenticateOidcActionConfig": {"Issuer": OIDC, "AuthorizationEndpoint": f"{OIDC}/authorize",
                                     "TokenEndpoint": f"{OIDC}/token", "UserInfoEndpoint": f"{OIDC}/userinfo",
                                     "ClientId": "client", "ClientSecret": "secret"},
    "RuleCondition": {"Field": "path-pattern", "Values": ["/m"]},
    "HttpHeaderConditionConfig": {"HttpHeaderName": "X-Model", "Values": ["table"]},
    "QueryStringKeyValuePair": {"Key": "k", "Value": "v"},
    "RuleTransform": {"Type": "host-header-rewrite",
                      "HostHeaderRewriteConfig": {"Rewrites": [{"Regex": "^(.*)$", "Replace": "$1"}]}},
    "UrlRewriteConfig": {"Rewrites": [{"Regex": "^/old/(.*)$", "Replace": "/new/$1"}]},
    "MutualAuthenticationAttributes": {"Mode": "verify", "TrustStoreArn": TRUST_STORE},
    "Matcher": {"HttpCode": "200"},
    "TargetDescription": {"Id": TARGET},
    "UserIdGroupPair": {"GroupId": SG},
    "Placement": {"AvailabilityZone": ZONE},
    "InstanceNetworkInterfaceSpecification": {"DeviceIndex": 0, "SubnetId": SUBNETS[0]},
    "BlockDeviceMapping": {"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 8}},
    "DomainValidationOption": {"DomainName": "request.model.test", "ValidationDomain": "model.test"},
}


def drop(*names):
    def fix(structure, request):
        for name in names:
            structure.pop(name, None)
    return fix


def typed(type_name, without):
    """Makes an action (or transform) of another type, without what that type does not take."""
    def fix(action, request):
        action["Type"] = type_name
        drop(*without)(action, request)
    return fix


def field(name):
    """Makes a condition of another field, whose values its own configuration holds."""
    def fix(condition, request):
        condition["Field"] = name
        condition.pop("Values", None)
    return fix


def grpc(matcher, request):
    matcher.pop("HttpCode", None)
    if "Name" in request:
        request["ProtocolVersion"] = "GRPC"
    else:
        request["TargetGroupArn"] = GRPC_TG


def legacy_cidr(request, _):
    request.pop("IpPermissions", None)
    request.update(IpProtocol="tcp", FromPort=80, ToPort=80, CidrIp="10.0.0.0/8")


def legacy_group(request, _):
    """A default VPC's group by name, which takes no protocol or ports (it opens them all)."""
    request.pop("IpPermissions", None)
    request["SourceSecurityGroupName"] = SG_NAME


def by_name(request, _):
    request["GroupName"] = ec2.describe_security_groups(GroupIds=[request.pop("GroupId")])["SecurityGroups"][0][
        "GroupName"]


def nothing(structure, request):
    pass


def network_lb(scheme):
    """A network load balancer of scheme, for the subnet mapping that chooses an address: the
    one created, or for SetSubnets one of its own in the last zone, so that the mappings'
    zones are new to it (a kept zone's node keeps its addresses)."""
    def fix(structure, request):
        if "Name" in request:
            request.update(Type="network", Scheme=scheme)
        elif "LoadBalancerArn" in request:
            created = elbv2.create_load_balancer(Name=unique("moved"), Type="network", Scheme=scheme,
                                                 Subnets=SUBNETS[-1:])
            request["LoadBalancerArn"] = created["LoadBalancers"][0]["LoadBalancerArn"]
    return fix


def endpoint_type(kind, service):
    """An endpoint of another type, of a service of that type: where route tables, security
    groups and policies belong (a gateway endpoint takes no subnets)."""
    def fix(request, _):
        request.update(VpcEndpointType=kind, ServiceName=service)
        if kind == "Gateway":
            request.pop("SubnetIds", None)
    return fix


def on_tls_listener(structure, request):
    """A new listener of the network load balancer, or its TLS listener."""
    if "ListenerArn" in request:
        request["ListenerArn"] = TLS_LISTENER
    else:
        request.update(LoadBalancerArn=NLB, Protocol="TLS",
                       DefaultActions=[{"Type": "forward", "TargetGroupArn": TCP_TG}])


# Members that only fit a structure (or a request) set up for them: "Structure.Member" ->
# ((dimension, choice), fix), where fix(structure, request) sets it up. Two members that make
# different choices on one dimension of one structure exclude each other: the composed request
# takes the first.
ADJUST = {
    "Action.ForwardConfig": (("type", "forward"), nothing),
    "Action.RedirectConfig": (("type", "redirect"), typed("redirect", ["TargetGroupArn"])),
    "Action.FixedResponseConfig": (("type", "fixed"), typed("fixed-response", ["TargetGroupArn"])),
    "Action.AuthenticateOidcConfig": (("type", "oidc"), typed("authenticate-oidc", ["TargetGroupArn"])),
    "Action.AuthenticateCognitoConfig": (("type", "cognito"), typed("authenticate-cognito", ["TargetGroupArn"])),
    "Action.JwtValidationConfig": (("type", "jwt"), typed("jwt-validation", ["TargetGroupArn"])),
    "RuleCondition.RegexValues": (("field", "path-regex"), field("path-pattern")),
    "RuleCondition.HostHeaderConfig": (("field", "host"), field("host-header")),
    "RuleCondition.PathPatternConfig": (("field", "path-config"), field("path-pattern")),
    "RuleCondition.HttpHeaderConfig": (("field", "header"), field("http-header")),
    "RuleCondition.QueryStringConfig": (("field", "query"), field("query-string")),
    "RuleCondition.HttpRequestMethodConfig": (("field", "method"), field("http-request-method")),
    "RuleCondition.SourceIpConfig": (("field", "source"), field("source-ip")),
    "HostHeaderConditionConfig.RegexValues": (("match", "regex"), drop("Values")),
    "PathPatternConditionConfig.RegexValues": (("match", "regex"), drop("Values")),
    "HttpHeaderConditionConfig.RegexValues": (("match", "regex"), drop("Values")),
    "RuleTransform.HostHeaderRewriteConfig": (("type", "host"), typed("host-header-rewrite", ["UrlRewriteConfig"])),
    "RuleTransform.UrlRewriteConfig": (("type", "url"), typed("url-rewrite", ["HostHeaderRewriteConfig"])),
    "Matcher.GrpcCode": (("code", "grpc"), grpc),
    "CreateListenerInput.AlpnPolicy": (("listener", "tls"), on_tls_listener),
    "SetSecurityGroupsInput.EnforceSecurityGroupInboundRulesOnPrivateLinkTraffic": (
        ("load balancer", "network"), lambda structure, request: request.update(LoadBalancerArn=GUARDED_NLB)),
    "SubnetMapping.AllocationId": (("address", "elastic"), network_lb("internet-facing")),
    # An Elastic IP named by its address rather than its allocation (or association) id.
    "ReleaseAddressRequest.PublicIp": (("by", "ip"), drop("AllocationId")),
    "AssociateAddressRequest.PublicIp": (("by", "ip"), drop("AllocationId")),
    "DisassociateAddressRequest.PublicIp": (("by", "ip"), drop("AssociationId")),
    "SubnetMapping.PrivateIPv4Address": (("address", "private"), network_lb("internal")),
    "SubnetMapping.IPv6Address": (("address", "ipv6"), dual_stack_lb),
    "SubnetMapping.SourceNatIpv6Prefix": (("address", "ipv6"), dual_stack_lb),
    "ModifyListenerInput.AlpnPolicy": (("listener", "tls"), on_tls_listener),
    # Network load balancers' mutual TLS only.
    "MutualAuthenticationAttributes.ClientCertificateIdentityFilters": (("listener", "tls"),
                                                                        on_tls_listener),
    "CreateSubnetRequest.Ipv6CidrBlock": (("vpc", "ipv6"), ipv6_subnet),
    "CreateVpcRequest.Ipv6CidrBlockNetworkBorderGroup": (
        ("ipv6", "amazon"), lambda request, _: request.update(AmazonProvidedIpv6CidrBlock=True)),
    "CreateLoadBalancerInput.SubnetMappings": (("subnets", "mappings"), drop("Subnets")),
    "SetSubnetsInput.SubnetMappings": (("subnets", "mappings"), drop("Subnets")),
    "DescribeListenersInput.ListenerArns": (("by", "arns"), drop("LoadBalancerArn")),
    "DescribeRulesInput.RuleArns": (("by", "arns"), drop("ListenerArn")),
    "DescribeLoadBalancersInput.LoadBalancerArns": (("by", "arns"), nothing),
    "DescribeLoadBalancersInput.Names": (("by", "names"), nothing),
    "DescribeTargetGroupsInput.LoadBalancerArn": (("by", "load balancer"), nothing),
    "DescribeTargetGroupsInput.TargetGroupArns": (("by", "arns"), nothing),
    "DescribeTargetGroupsInput.Names": (("by", "names"), nothing),
    "DescribeTrustStoresInput.TrustStoreArns": (("by", "arns"), nothing),
    "DescribeTrustStoresInput.Names": (("by", "names"), nothing),
    # AWS: "If you specify Transforms, you can't specify ResetTransforms".
    "ModifyRuleInput.ResetTransforms": (("transforms", "reset"), drop("Transforms")),
    "ModifyCapacityReservationInput.MinimumLoadBalancerCapacity": (("capacity", "reserve"),
                                                                  drop("ResetCapacityReservation")),
    "ModifyIpPoolsInput.IpamPools": (("pools", "add"), drop("RemoveIpamPools")),
    "DeleteSecurityGroupRequest.GroupName": (("group", "name"), by_name),
    # What a Gateway Load Balancer endpoint does not take, on the endpoints that do.
    "CreateVpcEndpointRequest.RouteTableIds": (("type", "gateway"),
                                               endpoint_type("Gateway", "com.amazonaws.us-east-1.s3")),
    "CreateVpcEndpointRequest.PolicyDocument": (("type", "gateway"),
                                                endpoint_type("Gateway", "com.amazonaws.us-east-1.s3")),
    "CreateVpcEndpointRequest.SecurityGroupIds": (("type", "interface"),
                                                  endpoint_type("Interface", "com.amazonaws.us-east-1.sqs")),
    # ModifyVpcAttribute takes one switch per call, as EC2 does.
    "ModifyVpcAttributeRequest.EnableDnsSupport": (("switch", "dns"), nothing),
    "ModifyVpcAttributeRequest.EnableDnsHostnames": (("switch", "hostnames"), drop("EnableDnsSupport")),
    "ModifyVpcAttributeRequest.EnableNetworkAddressUsageMetrics": (("switch", "metrics"),
                                                                   drop("EnableDnsSupport")),
}
# The older top-level form of a security group rule, from a CIDR or a group by name.
for shape in ("AuthorizeSecurityGroupIngressRequest", "RevokeSecurityGroupIngressRequest",
              "AuthorizeSecurityGroupEgressRequest", "RevokeSecurityGroupEgressRequest"):
    ADJUST[f"{shape}.IpPermissions"] = (("rule", "permissions"), nothing)
    for member in ("CidrIp", "FromPort", "ToPort", "IpProtocol"):
        ADJUST[f"{shape}.{member}"] = (("rule", "cidr"), legacy_cidr)
    for member in ("SourceSecurityGroupName", "SourceSecurityGroupOwnerId"):
        ADJUST[f"{shape}.{member}"] = (("rule", "group"), legacy_group)
    ADJUST[f"{shape}.GroupName"] = (("group", "name"), by_name)


def authenticate_then_forward(actions):
    """An authentication action must be followed by the action that serves the request."""
    if actions[0]["Type"] in ("authenticate-oidc", "authenticate-cognito", "jwt-validation") and len(actions) == 1:
        actions[0]["Order"] = 1
        actions.append({**forward(), "Order": 2})
    return actions


# Lists whose elements depend on each other, put right after a member was added to one.
SETTLE = {"Actions": authenticate_then_forward}

# ---------------------------------------------------------------------------------------------
# The model: member paths, their wire names, and requests carrying them.

TOKENS = ("Marker", "NextToken")
PAGE_SIZES = ("PageSize", "MaxResults", "MaxItems")


class Conflict(Exception):
    """A member that cannot join a structure already set up for another choice."""


def paths(shape, prefix=()):
    """Every member path of a structure, parents first, through lists of structures."""
    for name, member in shape.members.items():
        yield prefix + (name,)
        inner = member.member if member.type_name == "list" else member
        if inner.type_name == "structure":
            yield from paths(inner, prefix + (name,))


def wire_name(service, shape, path):
    """The name a member path is sent under, without list indexes (EC2: `Filter.Value`)."""
    wire = []
    for name in path:
        member = shape.members[name]
        if service == "ec2":
            location = member.serialization.get("queryName") or member.serialization.get("name") or name
            wire.append(location[0].upper() + location[1:])
        else:
            wire.append(member.serialization.get("name", name))
        shape = member.member if member.type_name == "list" else member
    return ".".join(wire)


def present(value, path):
    """Whether value carries the member at path (in any element of a list)."""
    if not path:
        return True
    if isinstance(value, list):
        return any(present(v, path) for v in value)
    return isinstance(value, dict) and path[0] in value and present(value[path[0]], path[1:])


def fresh(value):
    return copy.deepcopy(value() if callable(value) else value)


def generated(shape):
    """A value of a scalar shape from its model alone."""
    if shape.type_name == "string":
        return shape.enum[0] if shape.enum else "model-table"
    if shape.type_name in ("integer", "long"):
        return max(shape.metadata.get("min", 1), 1)
    if shape.type_name == "boolean":
        return True
    if shape.type_name == "blob":
        return b"model-table"
    if shape.type_name == "timestamp":
        return datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)
    if shape.type_name == "map":
        return {"display": "page"}
    raise ValueError(f"no value for {shape.name} ({shape.type_name})")


def minimal(shape, where, request, context):
    """The smallest value of a structure: its required members, or else its first member."""
    if shape.name in MINIMAL:
        return fresh(MINIMAL[shape.name])
    names = shape.required_members or list(shape.members)[:1]
    return {name: value_of(shape, name, where + (name,), request, context) for name in names}


def value_of(container, name, where, request, context):
    """A valid value for member name of structure container, at path where."""
    op = context[1]
    member = container.members[name]
    keys = [f"{op}:{'.'.join(where)}", f"{container.name}.{name}", member.name]
    if member.type_name == "list":
        keys.append(member.member.name)
    for key in keys:
        if key in VALUES:
            value = fresh(VALUES[key])
            wrap = member.type_name == "list" and key == member.member.name
            return [value] if wrap else value
    if name in TOKENS:
        return page_token(context, request)
    if member.type_name == "structure":
        return minimal(member, where, request, context)
    if member.type_name == "list":
        element = member.member
        return [minimal(element, where, request, context) if element.type_name == "structure" else generated(element)]
    return generated(member)


def page_token(context, request):
    """A real token: the next page's, of the same request at the smallest page size. Where elbd
    does not page the call, a made-up one, to be refused by name."""
    service, op, shape = context
    size = next(n for n in PAGE_SIZES if n in shape.members)
    try:
        first = call(service, op, {**request, size: value_of(shape, size, (size,), request, context)})
    except ClientError:
        return "model-table"
    token = first.get("NextMarker") or first.get("NextToken") or (first.get("IsTruncated") and first.get("Marker"))
    if not token:
        raise RuntimeError(f"{service}:{op} has a single page; the setup should make a second")
    return token


def insert(shape, value, path, request, context, choices, where=()):
    """Adds the member at path to value (a structure of shape, inside request) in place, with
    what it needs. choices records the choice each structure was set up for."""
    name, rest = path[0], path[1:]
    member = shape.members[name]
    key = f"{shape.name}.{name}"
    if key in ADJUST:
        (dimension, choice), fix = ADJUST[key]
        if choices.setdefault((where, dimension), choice) != choice:
            raise Conflict(key)
        fix(value, request)
    here = where + (name,)
    if name not in value:
        value[name] = value_of(shape, name, here, request, context)
    if not rest:
        return
    if member.type_name == "list":
        insert(member.member, value[name][0], rest, request, context, choices, here)
        if member.name in SETTLE:
            value[name] = SETTLE[member.name](value[name])
    else:
        insert(member, value[name], rest, request, context, choices, here)

# ---------------------------------------------------------------------------------------------
# The table.


def outcome(service, op, params):
    """("answered", None), ("refused", (code, message, whether elbd changed anything nonetheless))
    or ("failed", what happened)."""
    key = f"{service}:{op}"
    if key in BEFORE:
        BEFORE[key](params)
    before = stored_state()
    try:
        answer = call(service, op, params)
        if key in UNDO:
            UNDO[key](answer)
        return "answered", None
    except ClientError as e:
        error, status = e.response["Error"], e.response["ResponseMetadata"]["HTTPStatusCode"]
        code, message = error.get("Code", "?"), error.get("Message", "")
        if ANSWERED_ERRORS.get(key) == code or (code == "DryRunOperation" and params.get("DryRun")):
            return "answered", None
        if status >= 500:
            return "failed", f"HTTP {status} {code}: {message}"
        after = stored_state()
        return "refused", (code, message, after != before and settled(after) != settled(before))
    except Exception as e:  # a crash, a dropped connection, an answer botocore cannot read
        return "failed", f"{type(e).__name__}: {e}"


def spelled(name, message):
    """Whether message spells out a member's name: `Filter` as is, `IpamPools` as "IPAM pools"."""
    words = re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+", name)
    if len(words) == 1:
        return re.search(rf"\b{re.escape(name)}\b", message) is not None
    stems = (re.escape(word.rstrip("sy") or word) for word in words)
    return re.search(r"\b" + r"\w*[\s_-]*".join(stems), message, re.I) is not None


def named(message, candidates, json_protocol):
    """Which of candidates ({path: wire name}) the message refuses as not built, if any: by the
    first name it quotes (as sent, list indexes aside, or relative to an enclosing structure;
    serde names a JSON field alone), or else by a name it spells out. The deepest one wins."""
    if not NOT_BUILT.search(message):
        return None
    quoted = re.search(r"['`\"]([^'`\"]+)['`\"]", message)
    quoted = quoted and ".".join(p for p in quoted[1].split(".") if p not in ("member", "entry") and not p.isdigit())
    hits = [path for path, wire in candidates.items()
            if quoted and (f".{wire}".lower().endswith(f".{quoted}".lower()) or json_protocol and quoted == path[-1])]
    hits = hits or [path for path, wire in candidates.items()
                    if spelled(path[-1], message) or spelled(wire.rsplit(".", 1)[-1], message)]
    return candidates[max(hits, key=len)] if hits else None


failures, refusals, table = [], {}, {}
counts = {"answered": 0, "refused": 0}


def differs(original, params, path):
    """Whether a scalar member of the request's top level has another value than in original."""
    if len(path) > 1 or isinstance(original.get(path[0]), (dict, list)):
        return False
    return params.get(path[0]) != original.get(path[0])


def fail(key, label, params, what):
    if isinstance(what, tuple):  # a refusal that names no member
        code, message, changed = what
        what = f"{code}: {message}" + ("; and elbd's state changed nonetheless" if changed else "")
    failures.append(f"{key} {label}: {what}\n    request: {params!r}"[:3000])


def exercise(service, op, model):
    key = f"{service}:{op}"
    shape = model.operation_model(op).input_shape
    context = (service, op, shape)
    refused = table.setdefault(key, set())

    def base():
        return copy.deepcopy(BASES[key]())  # the values the tables share stay untouched

    params = base()
    state, detail = outcome(service, op, params)
    if state != "answered":
        return fail(key, "base", params, detail)
    counts["answered"] += 1
    if shape is None:
        return
    every = list(paths(shape))
    in_base = {path for path in every if present(params, path)}
    answered, proven, failed, leaks = [], set(in_base), set(), {}
    for path in every:
        wire = wire_name(service, shape, path)
        # What lies under a member refused or failed is refused or fails with it.
        if path in proven or any(wire == w or wire.startswith(w + ".") for w in refused | failed):
            continue
        params = base()
        original = copy.deepcopy(params)
        try:
            insert(shape, params, path, params, context, {})
        except Exception as e:  # no valid value could be made: the tables above need one
            fail(key, wire, params, f"{type(e).__name__}: {e}")
            continue
        state, detail = outcome(service, op, params)
        if state == "answered":
            counts["answered"] += 1
            answered.append(path)
            proven.update(p for p in every if present(params, p))
            continue
        if state == "refused" and none_here(key, wire, detail):
            counts["answered"] += 1
            continue
        if state == "refused":
            # What the member brought, and a value of the base's the member's setup changed
            # (an endpoint of another type, for the members only that type takes).
            candidates = {p: wire_name(service, shape, p) for p in every
                          if present(params, p) and (p not in in_base or differs(original, params, p))}
            code, message, changed = detail
            name = named(message, candidates, model.protocol == "json")
            if name:
                counts["refused"] += 1
                refused.add(name)
                refusals.setdefault(f"{key} {name}", f"{code}: {message}")
                if changed:  # the refusal is the table's; that it changed something is a failure
                    leaks.setdefault(name, (params, f"{code}: {message}"))
                continue
        failed.add(wire)
        fail(key, wire, params, detail)
    if leaks:
        params, refusal = next(iter(leaks.values()))
        fail(key, ", ".join(sorted(leaks)), params,
             f"refused, yet elbd's state changed, for each of these members; first: {refusal}")
    # The composed request. A page token belongs to the request it came from, DryRun would
    # make it a check only, and AlpnPolicy, identity filters and a subnet mapping's addresses
    # move the request to a network load balancer, where the application load balancer's
    # members do not fit: they stay out.
    network = ("AlpnPolicy", "ClientCertificateIdentityFilters", "AllocationId", "PrivateIPv4Address")
    answered = [path for path in answered if path[-1] not in (*TOKENS, "DryRun", *network)]
    if len(answered) < 2:
        return
    params, choices = base(), {}
    for path in answered:
        attempt, tried = copy.deepcopy(params), copy.deepcopy(choices)
        try:
            insert(shape, attempt, path, attempt, context, tried)
        except Conflict:
            continue
        params, choices = attempt, tried
    state, detail = outcome(service, op, params)
    if state != "answered":
        fail(key, "(every answered member at once)", params, detail)


for service, ops in OPERATIONS.items():
    model = clients[service].meta.service_model
    for op in ops or model.operation_names:
        exercise(service, op, model)

table = {key: sorted(refused) for key, refused in table.items()}
width = max(map(len, table))
print(f"{'operation':{width}}  refused members")
for key, refused in table.items():
    print(textwrap.fill(", ".join(refused) or "-", 120, initial_indent=f"{key:{width}}  ",
                        subsequent_indent=" " * (width + 2), break_on_hyphens=False))
if args.verbose:
    print()
    for refusal, message in refusals.items():
        print(f"{refusal}: {message}")
print(f"\n{counts['answered']} requests answered, {counts['refused']} refused by name, {len(failures)} failures")
for failure in failures:
    print(f"FAIL {failure}")
# The README lists the refusals between these markers; the table is generated, never edited.
BEGIN, END = "<!-- refusals: model_table.py --write-readme -->", "<!-- /refusals -->"
rows = ["| operation | members refused, naming them |", "|---|---|"]
rows += [f"| {key} | {', '.join(f'`{m}`' for m in refused)} |" for key, refused in table.items() if refused]
generated = "\n".join([BEGIN, *rows, END])
drift = False
if args.write_readme or args.readme:
    path = args.write_readme or args.readme
    text = open(path).read()
    start, stop = text.index(BEGIN), text.index(END) + len(END)
    if args.write_readme:
        with open(path, "w") as f:
            f.write(text[:start] + generated + text[stop:])
    elif text[start:stop] != generated:
        drift = True
        print(f"DRIFT: the refusal table of {path} differs; rerun with --write-readme and review")
sys.exit(1 if failures or drift else 0)
