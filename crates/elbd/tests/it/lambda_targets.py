"""Lambda functions as ALB targets, end to end: this script serves the Lambda Invoke API
(`POST /2015-03-31/functions/NAME/invocations`, each request's SigV4 signature checked with
botocore's own signer), makes an ALB with `lambda` target groups through boto3, and sends
requests through the ALB with curl.

Usage: python lambda_targets.py API INVOKE_ADDR NODE_ADDR DATA_DIR. INVOKE_ADDR is where
elbd's `lambda_endpoint` points (signed for AKIDLAMBDA / lambda-secret); NODE_ADDR is the
ALB's first node, where its listener on that port is reached; DATA_DIR is elbd's, whose S3
stand-in receives the access logs (delivered every second).

`python lambda_targets.py file INVOKE_ADDR NODE_ADDR` serves the function only and checks an
ALB the config file declares (`fn-file-tg` with the function `echo`, checks on `/health`).
Exits non-zero on the first mismatch.
"""

import base64
import gzip
import json
import pathlib
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

if sys.argv[1] == "file":
    api, data_dir = None, None
    invoke_addr, node_addr = sys.argv[2:4]
else:
    api, invoke_addr, node_addr, data_dir = sys.argv[1:5]
ACCOUNT = "123456789012"
session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
config = Config(retries={"max_attempts": 1})
ec2 = session.client("ec2", endpoint_url=api, config=config)
elbv2 = session.client("elbv2", endpoint_url=api, config=config)
SIGNER = Credentials("AKIDLAMBDA", "lambda-secret")

# What the functions saw: (name, query string, event), in order.
seen = []
unsigned = []
# Whether each invocation carried an Authorization header at all.
authorized = []
health = {"status": 200}


def signature_ok(handler, body):
    """Recomputes the request's signature with botocore over the headers elbd says it signed."""
    auth = handler.headers.get("authorization", "")
    try:
        fields = dict(part.strip().split("=", 1) for part in auth.split(" ", 1)[1].split(","))
        scope = fields["Credential"].split("/")
        signed = fields["SignedHeaders"].split(";")
    except (IndexError, KeyError, ValueError):
        return False
    if scope[0] != "AKIDLAMBDA" or scope[2] != "us-east-1" or scope[3] != "lambda":
        return False
    headers = {name: handler.headers[name] for name in signed}
    request = AWSRequest(method="POST", url="http://" + handler.headers["host"] + handler.path, data=body, headers=headers)
    request.context["timestamp"] = handler.headers["x-amz-date"]
    signer = SigV4Auth(SIGNER, "lambda", "us-east-1")
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    return expected == fields["Signature"]


class Invoke(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        authorized.append("authorization" in self.headers)
        if not signature_ok(self, body):
            unsigned.append(self.path)
        url = urlsplit(self.path)
        parts = url.path.split("/")
        assert parts[1:3] == ["2015-03-31", "functions"] and parts[4] == "invocations", self.path
        name = parts[3]
        event = json.loads(body)
        seen.append((name, url.query, event))
        extra = {}
        if name == "echo":
            if event["headers" if "headers" in event else "multiValueHeaders"].get("user-agent") in (
                "ELB-HealthChecker/2.0",
                ["ELB-HealthChecker/2.0"],
            ):
                answer = {"statusCode": health["status"]}
            elif "multiValueHeaders" in event:
                answer = {
                    "statusCode": 201,
                    "statusDescription": "201 Created",
                    "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"], "X-Seen-Path": [event["path"]]},
                    "body": "multi",
                    "isBase64Encoded": False,
                }
            else:
                answer = {
                    "statusCode": 201,
                    "statusDescription": "201 Made For You",
                    "headers": {
                        "X-Seen-Path": event["path"],
                        "Content-Type": "application/octet-stream",
                        "Connection": "close",
                    },
                    "body": base64.b64encode(b"\x00binary\xff").decode(),
                    "isBase64Encoded": True,
                }
        elif name == "fails":
            answer = {"errorMessage": "boom", "errorType": "Exception"}
            extra["X-Amz-Function-Error"] = "Unhandled"
        elif name == "slow":
            # elbd gives up after its idle timeout and closes the connection first.
            time.sleep(4)
            self.close_connection = True
            return
        elif name == "malformed":
            answer = {"body": "no status code"}
        elif name == "huge":
            answer = {"statusCode": 200, "body": "x" * (1024 * 1024)}
        else:
            # Lambda's own refusals: an unknown function, or Lambda failing ("broken").
            status, kind = (500, "ServiceException") if name == "broken" else (404, "ResourceNotFoundException")
            self.send_response(status)
            payload = json.dumps({"Type": "User", "message": kind}).encode()
            self.send_header("content-length", str(len(payload)))
            self.send_header("x-amzn-errortype", kind)
            self.end_headers()
            self.wfile.write(payload)
            return
        payload = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        for key, value in extra.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(payload)


host, port = invoke_addr.rsplit(":", 1)
server = ThreadingHTTPServer((host, int(port)), Invoke)
threading.Thread(target=server.serve_forever, daemon=True).start()


def function(name):
    return f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:{name}"


def refused(code, call, **kwargs):
    try:
        call(**kwargs)
    except ClientError as e:
        assert e.response["Error"]["Code"] == code, (code, e.response["Error"])
        return e.response["Error"]["Message"]
    raise AssertionError(f"{call.__name__} {kwargs} was not refused")


status_lines = []


def curl(path, *args):
    """Status, headers (lower-case names, every value) and body of a request through the ALB."""
    with tempfile.NamedTemporaryFile() as out:
        done = subprocess.run(
            ["curl", "-s", "-o", out.name, "-D", "-", "--max-time", "20", *args, f"http://{node_addr}{path}"],
            capture_output=True,
            check=True,
        )
        body = open(out.name, "rb").read()
    # The last head: an interim `100 Continue` may come first.
    head = [block for block in done.stdout.decode().split("\r\n\r\n") if block][-1]
    lines = head.split("\r\n")
    status_lines.append(lines[0])
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers.setdefault(name.lower(), []).append(value.strip())
    return status, headers, body


def through_the_file():
    """The config file's lambda group: invoked, and checked on its path."""
    for _ in range(100):
        try:
            status, headers, _ = curl("/from-file")
            if status != 503:
                break
        except subprocess.CalledProcessError:
            pass
        time.sleep(0.1)
    assert status == 201 and headers["x-seen-path"] == ["/from-file"], (status, headers)
    event = [e for _, _, e in seen if e.get("path") == "/from-file"][-1]
    arn = event["requestContext"]["elb"]["targetGroupArn"]
    assert ":targetgroup/fn-file-tg/" in arn, arn
    for _ in range(100):
        if any(e.get("path") == "/health" for _, _, e in seen):
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the file's health check never invoked the function")
    # This elbd has no Lambda credentials: it signs nothing.
    assert authorized and not any(authorized), authorized
    print("ok: the file's lambda group")


if api is None:
    through_the_file()
    sys.exit(0)

subnets = [s["SubnetId"] for s in ec2.describe_subnets()["Subnets"]]
lb = elbv2.create_load_balancer(Name="fn-alb", Subnets=subnets[:2])["LoadBalancers"][0]
lb_arn = lb["LoadBalancerArn"]
logs = pathlib.Path(data_dir) / "s3" / "lambda-logs"
logs.mkdir(parents=True)
elbv2.modify_load_balancer_attributes(
    LoadBalancerArn=lb_arn,
    Attributes=[
        {"Key": "idle_timeout.timeout_seconds", "Value": "2"},
        {"Key": "access_logs.s3.enabled", "Value": "true"},
        {"Key": "access_logs.s3.bucket", "Value": "lambda-logs"},
    ],
)

# A lambda group takes no protocol, port or VPC, and its checks are off.
refused("ValidationError", elbv2.create_target_group, Name="bad", TargetType="lambda", Protocol="HTTP")
groups = {}
for name in ["echo", "fails", "slow", "malformed", "missing", "huge", "broken"]:
    tg = elbv2.create_target_group(Name=f"fn-{name}", TargetType="lambda")["TargetGroups"][0]
    for absent in ["Protocol", "Port", "VpcId", "HealthCheckProtocol", "HealthCheckPort", "ProtocolVersion"]:
        assert absent not in tg, (absent, tg)
    assert tg["TargetType"] == "lambda" and tg["HealthCheckEnabled"] is False, tg
    assert (tg["HealthCheckIntervalSeconds"], tg["HealthCheckTimeoutSeconds"]) == (35, 30), tg
    groups[name] = tg["TargetGroupArn"]
attrs = elbv2.describe_target_group_attributes(TargetGroupArn=groups["echo"])["Attributes"]
assert attrs == [{"Key": "lambda.multi_value_headers.enabled", "Value": "false"}], attrs
refused(
    "ValidationError",
    elbv2.modify_target_group_attributes,
    TargetGroupArn=groups["echo"],
    Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": "10"}],
)

# One function per group, of this region and account.
refused(
    "InvalidTarget",
    elbv2.register_targets,
    TargetGroupArn=groups["echo"],
    Targets=[{"Id": f"arn:aws:lambda:eu-west-1:{ACCOUNT}:function:echo"}],
)
echo_arn = function("echo") + ":live"
elbv2.register_targets(TargetGroupArn=groups["echo"], Targets=[{"Id": echo_arn}])
refused("TooManyTargets", elbv2.register_targets, TargetGroupArn=groups["echo"], Targets=[{"Id": function("other")}])
for name in ["fails", "slow", "malformed", "missing", "huge", "broken"]:
    elbv2.register_targets(TargetGroupArn=groups[name], Targets=[{"Id": function(name)}])

listener = elbv2.create_listener(
    LoadBalancerArn=lb_arn,
    Protocol="HTTP",
    Port=int(node_addr.rsplit(":", 1)[1]),
    DefaultActions=[{"Type": "forward", "TargetGroupArn": groups["echo"]}],
)["Listeners"][0]
for priority, name in enumerate(["fails", "slow", "malformed", "missing", "huge", "broken"], start=1):
    elbv2.create_rule(
        ListenerArn=listener["ListenerArn"],
        Priority=priority,
        Conditions=[{"Field": "path-pattern", "Values": [f"/{name}"]}],
        Actions=[{"Type": "forward", "TargetGroupArn": groups[name]}],
    )
described = elbv2.describe_target_health(TargetGroupArn=groups["echo"])["TargetHealthDescriptions"]
assert len(described) == 1, described
assert described[0]["Target"] == {"Id": echo_arn, "AvailabilityZone": "all"}, described
assert "HealthCheckPort" not in described[0], described
assert described[0]["TargetHealth"]["State"] == "unavailable", described
assert described[0]["TargetHealth"]["Reason"] == "Target.HealthCheckDisabled", described

# The listener is up once the node answers with the function's status.
for _ in range(100):
    try:
        status, headers, body = curl("/lambda/items?k=v1&k=v2&e=%41", "-H", "Cookie: a=1", "-H", "Cookie: b=2")
        if status != 503:
            break
    except subprocess.CalledProcessError:
        pass
    time.sleep(0.1)
else:
    raise AssertionError("the listener never answered")
assert status == 201, (status, headers, body)
# The function's statusDescription is the reason phrase.
assert status_lines[-1] == "HTTP/1.1 201 Made For You", status_lines[-1]
assert headers["x-seen-path"] == ["/lambda/items"], headers
assert body == b"\x00binary\xff", body
assert headers["content-length"] == ["8"] and "connection" not in headers, headers
name, query, event = seen[-1]
assert (name, query) == ("echo", "Qualifier=live"), seen[-1]
assert event["requestContext"] == {"elb": {"targetGroupArn": groups["echo"]}}, event
assert event["httpMethod"] == "GET" and event["path"] == "/lambda/items", event
assert event["queryStringParameters"] == {"k": "v2", "e": "%41"}, event
assert event["headers"]["cookie"] == "b=2", event
assert event["headers"]["x-forwarded-port"] == node_addr.rsplit(":", 1)[1], event
assert event["headers"]["x-forwarded-proto"] == "http", event
assert event["headers"]["x-forwarded-for"].startswith("127."), event
assert event["headers"]["x-amzn-trace-id"].startswith("Root=1-"), event
assert (event["body"], event["isBase64Encoded"]) == ("", False), event

# Bodies: text as it is, the rest base64.
status, _, _ = curl("/json", "-X", "POST", "-H", "Content-Type: application/json", "--data-binary", '{"n": 1}')
event = seen[-1][2]
assert status == 201 and (event["body"], event["isBase64Encoded"]) == ('{"n": 1}', False), event
status, _, _ = curl("/bin", "-X", "PUT", "-H", "Content-Type: image/png", "--data-binary", "\x01\x02")
event = seen[-1][2]
assert (event["httpMethod"], event["body"], event["isBase64Encoded"]) == ("PUT", "AQI=", True), event
with tempfile.NamedTemporaryFile() as big:
    big.write(b"x" * (1024 * 1024 + 1))
    big.flush()
    calls = len(seen)
    status, _, _ = curl("/big", "-X", "POST", "-H", "Content-Type: text/plain", "--data-binary", "@" + big.name)
    assert status == 413 and len(seen) == calls, status

# Multi-value headers: every value both ways.
elbv2.modify_target_group_attributes(
    TargetGroupArn=groups["echo"], Attributes=[{"Key": "lambda.multi_value_headers.enabled", "Value": "true"}]
)
for _ in range(100):
    status, headers, body = curl("/multi?k=v1&k=v2", "-H", "Cookie: a=1", "-H", "Cookie: b=2")
    if body == b"multi":
        break
    time.sleep(0.1)
assert status == 201 and headers["set-cookie"] == ["a=1", "b=2"], (status, headers, body)
event = seen[-1][2]
assert event["multiValueQueryStringParameters"] == {"k": ["v1", "v2"]}, event
assert event["multiValueHeaders"]["cookie"] == ["a=1", "b=2"], event
assert "headers" not in event and "queryStringParameters" not in event, event

# A function's failures are the load balancer's 502s; one slower than the idle timeout, 504.
assert curl("/fails")[0] == 502
assert curl("/malformed")[0] == 502
assert curl("/missing")[0] == 502
assert curl("/huge")[0] == 502
assert curl("/broken")[0] == 502
started = time.monotonic()
assert curl("/slow")[0] == 504
assert 1.5 < time.monotonic() - started < 4, time.monotonic() - started

# Health checks, once on: an event to the path from ELB's checker, judged by its status.
elbv2.modify_target_group(
    TargetGroupArn=groups["echo"],
    HealthCheckEnabled=True,
    HealthCheckPath="/health",
    HealthCheckIntervalSeconds=5,
    HealthCheckTimeoutSeconds=2,
    HealthyThresholdCount=2,
    UnhealthyThresholdCount=2,
)
refused("ValidationError", elbv2.modify_target_group, TargetGroupArn=groups["echo"], HealthCheckPort="80")


def state_of_echo():
    described = elbv2.describe_target_health(TargetGroupArn=groups["echo"])["TargetHealthDescriptions"]
    return described[0]["TargetHealth"]


for _ in range(60):
    if state_of_echo()["State"] == "healthy":
        break
    time.sleep(0.5)
else:
    raise AssertionError(f"the function never turned healthy: {state_of_echo()}")
checks = [e for n, _, e in seen if e.get("path") == "/health"]
assert checks and checks[0]["httpMethod"] == "GET", checks
# The group has multi-value headers on: its checks' events have that shape too.
assert checks[0]["multiValueHeaders"] == {"user-agent": ["ELB-HealthChecker/2.0"]}, checks[0]
health["status"] = 500
for _ in range(60):
    if state_of_echo()["State"] == "unhealthy":
        break
    time.sleep(0.5)
else:
    raise AssertionError(f"the function never turned unhealthy: {state_of_echo()}")
assert state_of_echo()["Reason"] == "Target.ResponseCodeMismatch", state_of_echo()

# The access log names no target for a function, and the failures by ALB's reason codes.
wanted = {"/fails": ("502", "LambdaUnhandled"), "/malformed": ("502", "LambdaInvalidResponse"),
          "/missing": ("502", "LambdaResourceNotFound"), "/slow": ("504", "LambdaConnectionTimeout"),
          "/big": ("413", "LambdaRequestTooLarge"), "/huge": ("502", "LambdaResponseTooLarge"),
          "/broken": ("502", "LambdaServiceException"),
          "/json": ("201", "-")}
found = {}
for _ in range(100):
    for gz in logs.rglob("*.log.gz"):
        for line in gzip.decompress(gz.read_bytes()).decode().splitlines():
            # AWS's fields: 4 target:port, 8 elb_status_code, 12 request, 24 error_reason.
            fields = shlex.split(line)
            path = urlsplit(fields[12].split(" ")[1]).path
            if path in wanted:
                found[path] = (fields[4], fields[8], fields[24])
    if len(found) == len(wanted):
        break
    time.sleep(0.2)
for path, (status, reason) in wanted.items():
    assert path in found, (path, found)
    target, elb_status, error_reason = found[path]
    assert (target, elb_status, error_reason) == ("-", status, reason), (path, found[path])

# ALB's Lambda error metrics, per target group: every failure here is the function's (the
# slow one's too: it is the function that did not answer in time) but Lambda's own.
page = subprocess.run(["curl", "-sf", f"{api}/metrics"], capture_output=True, check=True).stdout.decode()


def counted(metric, group):
    values = [
        float(line.rsplit(" ", 1)[1])
        for line in page.splitlines()
        if line.startswith(metric + "{") and f'target_group="targetgroup/fn-{group}/' in line
    ]
    return sum(values)


# The body over 1 MB is a user error of the echo group's too, as ALB counts it.
for group, user, internal in [
    ("fails", 1, 0), ("malformed", 1, 0), ("missing", 1, 0), ("huge", 1, 0), ("slow", 1, 0), ("echo", 1, 0),
    ("broken", 0, 1)
]:
    seen_counts = (counted("aws_applicationelb_lambda_user_error_total", group),
                   counted("aws_applicationelb_lambda_internal_error_total", group))
    assert seen_counts == (user, internal), (group, seen_counts)

assert not unsigned, f"invocations whose signature did not verify: {unsigned}"
print(f"ok: {len(seen)} invocations, each signed")
