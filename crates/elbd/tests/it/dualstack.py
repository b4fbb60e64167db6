"""Dual-stack load balancers, driven as a user would, inside the test's network namespace
(where fd00:ec2::/32 is routed to the loopback, so every node address is this host's).

A VPC with an Amazon-provided IPv6 block, a /64 of it per subnet, a security group open to
IPv6 clients only; a dual-stack application load balancer forwarding to targets that echo the
X-Forwarded-For they get and the peer they see, an IPv4 one and (on port 81) an IPv6 one; a
dual-stack network load balancer whose subnet mapping chooses its node's IPv6 address,
forwarding to targets that tell the peer they see, an IPv4 one and (port 7001) an IPv6 one;
one with IPv6 source NAT prefixes, whose UDP listener reaches an IPv6 target that answers
with the address it sees.
Checks the API's answers and refusals, the names' A and AAAA records, traffic over IPv6, the
security group at the door, and SetIpAddressType back to ipv4.

The test starts the targets: echo on 127.80.1.10:9001 and [fd00:ec2:0:1::20]:9003, greeters
on 127.80.1.10:9002 and [fd00:ec2:0:1::20]:9004, UDP echo on [fd00:ec2:0:1::20]:9005.

Usage: python dualstack.py API_ENDPOINT DNS_SERVER_PORT. Exits non-zero, saying what differs,
on the first failure.
"""

import http.client
import socket
import subprocess
import sys
import time

import boto3

endpoint, dns_port = sys.argv[1], sys.argv[2]
TARGET_V4, TARGET_V6 = "127.80.1.10", "fd00:ec2:0:1::20"
session = boto3.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1")
elbv2 = session.client("elbv2", endpoint_url=endpoint)
ec2 = session.client("ec2", endpoint_url=endpoint)


def check(what, got, expected):
    if got != expected:
        raise SystemExit(f"{what}: got {got!r}, expected {expected!r}")


def dig(name, kind):
    out = subprocess.run(["dig", "+short", "-p", dns_port, "@127.0.0.1", name, kind],
                         capture_output=True, text=True, check=True).stdout
    return sorted(line for line in out.split() if line)


def wait(what, done, seconds=30):
    deadline = time.monotonic() + seconds
    while True:
        result = done()
        if result:
            return result
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.25)


# The network: IPv6 blocks are echoed where AWS shows them.
vpc = ec2.create_vpc(CidrBlock="127.80.0.0/16", AmazonProvidedIpv6CidrBlock=True)["Vpc"]
block = vpc["Ipv6CidrBlockAssociationSet"][0]["Ipv6CidrBlock"]
check("the VPC's IPv6 block", block, "fd00:ec2::/56")
described = ec2.describe_vpcs(Filters=[{"Name": "ipv6-cidr-block-association.ipv6-cidr-block", "Values": [block]}])
check("VPCs by IPv6 block", [v["VpcId"] for v in described["Vpcs"]], [vpc["VpcId"]])
subnets = []
for n, zone in ((1, "us-east-1a"), (2, "us-east-1b")):
    subnet = ec2.create_subnet(VpcId=vpc["VpcId"], CidrBlock=f"127.80.{n}.0/24", AvailabilityZone=zone,
                               Ipv6CidrBlock=f"fd00:ec2:0:{n}::/64")["Subnet"]
    check("a subnet's IPv6 block", subnet["Ipv6CidrBlockAssociationSet"][0]["Ipv6CidrBlock"], f"fd00:ec2:0:{n}::/64")
    subnets.append(subnet["SubnetId"])
plain = ec2.create_subnet(VpcId=vpc["VpcId"], CidrBlock="127.80.3.0/24", AvailabilityZone="us-east-1c")["Subnet"]
v6_only = ec2.create_security_group(GroupName="v6-only", Description="IPv6 clients", VpcId=vpc["VpcId"])["GroupId"]
ec2.authorize_security_group_ingress(GroupId=v6_only, IpPermissions=[
    {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 81, "Ipv6Ranges": [{"CidrIpv6": "::/0", "Description": "all v6"}]}])
rules = ec2.describe_security_groups(GroupIds=[v6_only])["SecurityGroups"][0]["IpPermissions"]
check("the group's rule", [(r["IpRanges"], r["Ipv6Ranges"]) for r in rules],
      [([], [{"CidrIpv6": "::/0", "Description": "all v6"}])])

# Refusals, each naming what is wrong.
def refused(what, code, **kwargs):
    try:
        elbv2.create_load_balancer(**kwargs)
    except elbv2.exceptions.ClientError as e:
        check(f"the error for {what}", e.response["Error"]["Code"], code)
        return
    raise SystemExit(f"{what} was accepted")


refused("a subnet without IPv6", "InvalidSubnet", Name="no-v6", IpAddressType="dualstack",
        Subnets=[subnets[0], plain["SubnetId"]])
refused("an internal ALB without public IPv4", "InvalidConfigurationRequest", Name="no-public", Scheme="internal",
        IpAddressType="dualstack-without-public-ipv4", Subnets=subnets)
refused("an IPv6 address outside its subnet", "InvalidConfigurationRequest", Name="outside", Type="network",
        Scheme="internal", IpAddressType="dualstack",
        SubnetMappings=[{"SubnetId": subnets[0], "IPv6Address": "fd00:ec2:0:2::10"}])
refused("an IPv6 address on an ipv4 load balancer", "InvalidConfigurationRequest", Name="v4-mapped",
        Type="network", Scheme="internal",
        SubnetMappings=[{"SubnetId": subnets[0], "IPv6Address": "fd00:ec2:0:1::10"}])

# The application load balancer.
alb = elbv2.create_load_balancer(Name="web", Subnets=subnets, SecurityGroups=[v6_only], Scheme="internal",
                                 IpAddressType="dualstack")["LoadBalancers"][0]
check("the ALB's address type", alb["IpAddressType"], "dualstack")


def group(name, protocol, port, target, family="ipv4", **checks):
    """A group of one ip target, checked every 5 s."""
    created = elbv2.create_target_group(Name=name, Protocol=protocol, Port=port, VpcId=vpc["VpcId"],
                                        TargetType="ip", IpAddressType=family, HealthCheckIntervalSeconds=5,
                                        HealthCheckTimeoutSeconds=2, HealthyThresholdCount=2,
                                        **checks)["TargetGroups"][0]
    check(f"{name}'s address type", created["IpAddressType"], family)
    elbv2.register_targets(TargetGroupArn=created["TargetGroupArn"], Targets=[{"Id": target}])
    return created["TargetGroupArn"]


def forward(lb, protocol, port, tg):
    return elbv2.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol=protocol, Port=port,
                                 DefaultActions=[{"Type": "forward", "TargetGroupArn": tg}])["Listeners"][0]


tg = group("echo", "HTTP", 9001, TARGET_V4)
tg6 = group("echo6", "HTTP", 9003, TARGET_V6, "ipv6")
try:
    elbv2.register_targets(TargetGroupArn=tg6, Targets=[{"Id": TARGET_V4}])
    raise SystemExit("an IPv4 target joined an ipv6 group")
except elbv2.exceptions.ClientError as e:
    check("an IPv4 target in an ipv6 group", e.response["Error"]["Code"], "ValidationError")
listener = forward(alb, "HTTP", 80, tg)
listener6 = forward(alb, "HTTP", 81, tg6)
# A rule for IPv6 clients, by a source-ip condition of that address type.
elbv2.create_rule(ListenerArn=listener["ListenerArn"], Priority=1, Conditions=[
    {"Field": "path-pattern", "Values": ["/family"]},
    {"Field": "source-ip", "SourceIpConfig": {"Values": ["::/0"], "IpAddressType": "ipv6"}}],
    Actions=[{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "200", "MessageBody": "ipv6"}}])

# The network load balancer, its zone a node at a chosen IPv6 address.
nlb = elbv2.create_load_balancer(Name="flows", Type="network", Scheme="internal", IpAddressType="dualstack",
                                 SubnetMappings=[{"SubnetId": subnets[0], "IPv6Address": "fd00:ec2:0:1::10"},
                                                 {"SubnetId": subnets[1]}])["LoadBalancers"][0]
addresses = {z["ZoneName"]: z["LoadBalancerAddresses"][0] for z in nlb["AvailabilityZones"]}
check("the chosen IPv6 address", addresses["us-east-1a"]["IPv6Address"], "fd00:ec2:0:1::10")
zone_b = addresses["us-east-1b"]["IPv6Address"]
if not zone_b.startswith("fd00:ec2:0:2:"):
    raise SystemExit(f"zone b's node has {zone_b}, not an address of its subnet")
tcp, tcp6 = group("greeter", "TCP", 9002, TARGET_V4), group("greeter6", "TCP", 9004, TARGET_V6, "ipv6")
forward(nlb, "TCP", 7000, tcp)
forward(nlb, "TCP", 7001, tcp6)

# UDP on a dual-stack NLB takes IPv6 source NAT prefixes: one chosen, one auto-assigned.
udp6 = group("udp6", "UDP", 9005, TARGET_V6, "ipv6", HealthCheckPort="9004")
try:
    forward(nlb, "UDP", 5300, udp6)
    raise SystemExit("a UDP listener of a dual-stack NLB without source NAT prefixes was accepted")
except elbv2.exceptions.ClientError as e:
    check("UDP without source NAT prefixes", e.response["Error"]["Code"], "InvalidConfigurationRequest")
datagrams = elbv2.create_load_balancer(
    Name="datagrams", Type="network", Scheme="internal", IpAddressType="dualstack",
    EnablePrefixForIpv6SourceNat="on",
    SubnetMappings=[{"SubnetId": subnets[0], "IPv6Address": "fd00:ec2:0:1::11",
                     "SourceNatIpv6Prefix": "fd00:ec2:0:1:1::/80"},
                    {"SubnetId": subnets[1], "SourceNatIpv6Prefix": "auto_assigned"}])["LoadBalancers"][0]
check("the source NAT switch", datagrams["EnablePrefixForIpv6SourceNat"], "on")
prefixes = {z["ZoneName"]: z["SourceNatIpv6Prefixes"] for z in datagrams["AvailabilityZones"]}
check("zone a's chosen prefix", prefixes["us-east-1a"], ["fd00:ec2:0:1:1::/80"])
if not (len(prefixes["us-east-1b"]) == 1 and prefixes["us-east-1b"][0].startswith("fd00:ec2:0:2:")):
    raise SystemExit(f"zone b's auto-assigned prefixes {prefixes['us-east-1b']} are not of its subnet")
forward(datagrams, "UDP", 5300, udp6)


def active(arn):
    lb = elbv2.describe_load_balancers(LoadBalancerArns=[arn])["LoadBalancers"][0]
    return lb["State"]["Code"] == "active"


wait("the load balancers to be active",
     lambda: all(active(lb["LoadBalancerArn"]) for lb in (alb, nlb, datagrams)))


def healthy(arn):
    described = elbv2.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
    return all(d["TargetHealth"]["State"] == "healthy" for d in described)


# DNS answers with the zones whose nodes see healthy targets: wait for every check to pass.
wait("the targets to be healthy", lambda: all(healthy(arn) for arn in (tg, tg6, tcp, tcp6, udp6)))

# DNS: A and AAAA records, under the name and its dualstack. alias.
name = alb["DNSName"]
# The DNS table follows the health view a moment after DescribeTargetHealth does.
v6 = wait("AAAA records of two zones", lambda: len(dig(name, "AAAA")) == 2 and dig(name, "AAAA"))
if not all(a.startswith(("fd00:ec2:0:1:", "fd00:ec2:0:2:")) for a in v6):
    raise SystemExit(f"AAAA records {v6} are not the subnets' addresses")
v4 = dig(name, "A")
check("A records of two zones", len(v4), 2)
check("the dualstack. alias's AAAA records", dig(f"dualstack.{name}", "AAAA"), v6)
check("the NLB's zonal AAAA record", dig(f"us-east-1a.{nlb['DNSName']}", "AAAA"), ["fd00:ec2:0:1::10"])


def get(address, port=80, path="/"):
    """The answer's status and body, and the address the request came from."""
    conn = http.client.HTTPConnection(address, port, timeout=5)
    conn.request("GET", path, headers={"Host": "web"})
    response = conn.getresponse()
    return response.status, response.read().decode(), conn.sock.getsockname()[0]


for address in v6:
    status, body, client = get(address)
    if ":" not in client:
        raise SystemExit(f"the request to {address} came from {client}, not over IPv6")
    # The IPv4 target sees the node's private address; the IPv6 one the node's IPv6 address.
    forwarded_for, peer = body.split(" ")
    check(f"GET over IPv6 to {address}: status, X-Forwarded-For", (status, forwarded_for), (200, client))
    if not peer.startswith("127.80."):
        raise SystemExit(f"the IPv4 target saw {peer}, not a node's private address")
    status, body, client = get(address, 81)
    check(f"GET to the IPv6 target through {address}", (status, body), (200, f"{client} {address}"))
    check(f"the IPv6 clients' rule through {address}", get(address, 80, "/family")[:2], (200, "ipv6"))

# The group admits IPv6 clients only: an IPv4 client's connection is taken (the listener is
# there, so not refused) and reset at the door before any answer. The reset may come before
# connect() returns: the kernel completes the handshake and elbd may accept and reset before
# the client runs again.
try:
    with socket.create_connection((v4[0], 80), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: web\r\n\r\n")
        answer = s.recv(1024)
except (ConnectionResetError, BrokenPipeError):
    answer = b""
check("what an IPv4 client gets through a group for IPv6 clients", answer, b"")

# The NLB over IPv6: an ip target sees the node's private IPv4 address, an IPv6 one its IPv6
# address.
def greeting(port):
    with socket.create_connection(("fd00:ec2:0:1::10", port), timeout=5) as s:
        return s.makefile().readline().strip().rsplit(":", 1)[0]


check("the peer the IPv4 TCP target sees", greeting(7000), addresses["us-east-1a"]["PrivateIPv4Address"])
check("the peer the IPv6 TCP target sees", greeting(7001), "fd00:ec2:0:1::10")

# UDP through the prefix: UDP groups keep the client's address where they can; an IPv4
# client's cannot reach an IPv6 target, so the target sees the node's prefix's ::1 address.
node_v4 = next(z for z in datagrams["AvailabilityZones"] if z["ZoneName"] == "us-east-1a")[
    "LoadBalancerAddresses"][0]["PrivateIPv4Address"]
for family, node in ((socket.AF_INET, node_v4), (socket.AF_INET6, "fd00:ec2:0:1::11")):
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.settimeout(5)
        s.sendto(b"hello", (node, 5300))
        check(f"the peer the UDP target sees of a client of {node}", s.recv(2048).decode(), "fd00:ec2:0:1:1::1")

# Back to ipv4, once no listener forwards to IPv6 targets: the nodes give their IPv6
# addresses up.
try:
    elbv2.set_ip_address_type(LoadBalancerArn=alb["LoadBalancerArn"], IpAddressType="ipv4")
    raise SystemExit("an ALB forwarding to IPv6 targets became ipv4")
except elbv2.exceptions.ClientError as e:
    check("ipv4 while forwarding to IPv6 targets", e.response["Error"]["Code"], "InvalidConfigurationRequest")
elbv2.delete_listener(ListenerArn=listener6["ListenerArn"])
check("SetIpAddressType", elbv2.set_ip_address_type(LoadBalancerArn=alb["LoadBalancerArn"],
                                                    IpAddressType="ipv4")["IpAddressType"], "ipv4")
wait("the AAAA records to go", lambda: not dig(name, "AAAA"))


def unreachable(address):
    try:
        get(address)
        return False
    except OSError:
        return True


# DNS and the data plane take the change each on its own: the listener goes soon after.
wait(f"{v6[0]} to stop answering after SetIpAddressType ipv4", lambda: unreachable(v6[0]))
check("A records after SetIpAddressType", dig(name, "A"), v4)
print("dual-stack: ok")
