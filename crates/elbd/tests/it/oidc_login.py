"""Logging in through an ALB's authenticate-oidc and authenticate-cognito actions like a
browser: this script serves the target itself, makes an ALB with an HTTPS listener through
boto3, and follows the redirects with a `requests` session through a real OpenID Connect
provider (`oidc/provider.mjs`, already running) and back, filling in its login form.

Then jwt-validation: the script serves a JSON Web Key Set itself (HTTPS at JWKS_ADDR with
CERT and KEY, which elbd's `oidc_ca_file` trusts), signs tokens with its keys, and sends them
through a second HTTPS listener on the node's next port.

Usage: python oidc_login.py API NODE_ADDR TARGET_ADDR OIDC_ADDR COGNITO_ADDR POOL_ID CLIENT_ID
CLIENT_SECRET JWKS_ADDR CERT KEY. NODE_ADDR is the ALB's first node, where the HTTPS listener
on that port is reached; the provider's generic layout is at OIDC_ADDR and its Cognito layout
at COGNITO_ADDR (elbd's `cognito_endpoint`), both with the client CLIENT_ID and the redirect
URI `https://NODE_ADDR/oauth2/idpresponse`. Exits non-zero on the first mismatch.
"""

import base64
import json
import ssl
import subprocess
import sys
import threading
import time
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urljoin, urlsplit

import boto3
import requests
import urllib3
from botocore.config import Config
from botocore.exceptions import ClientError
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

api, node_addr, target_addr, oidc_addr, cognito_addr, pool_id, client_id, client_secret = sys.argv[1:9]
jwks_addr, cert_file, key_file = sys.argv[9:12]
ACCOUNT = "123456789012"
session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
config = Config(retries={"max_attempts": 1})
ec2 = session.client("ec2", endpoint_url=api, config=config)
elbv2 = session.client("elbv2", endpoint_url=api, config=config)
acm = session.client("acm", endpoint_url=api, config=config)
# The browser trusts neither elbd's CA nor the provider's: it checks what it is told, not who.
urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
node = f"https://{node_addr}"


class Target(BaseHTTPRequestHandler):
    """Answers every request with what it saw: its path and headers (lower-case names)."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.rfile.read(int(self.headers.get("content-length", "0")))
        seen = {"path": self.path, "headers": {name.lower(): value for name, value in self.headers.items()}}
        payload = json.dumps(seen).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_POST = do_PUT = do_DELETE = do_PATCH = do_GET


host, port = target_addr.rsplit(":", 1)
server = ThreadingHTTPServer((host, int(port)), Target)
threading.Thread(target=server.serve_forever, daemon=True).start()


def browser():
    """A fresh browser: its own cookies, and no proxy or CA bundle from the environment (whose
    REQUESTS_CA_BUNDLE would otherwise override `verify`)."""
    fresh = requests.Session()
    fresh.trust_env = False
    fresh.verify = False
    return fresh


def provider_requests(addr):
    """The provider's counts of authorization, token and userinfo requests, and the last
    authorization request's query."""
    return browser().get(f"https://{addr}/__requests", timeout=10).json()


class Forms(HTMLParser):
    """The forms of a page: action and named inputs (with their values) of each."""

    def __init__(self):
        super().__init__()
        self.forms = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.forms.append((attrs.get("action", ""), {}))
        elif tag == "input" and self.forms and attrs.get("name"):
            self.forms[-1][1][attrs["name"]] = attrs.get("value") or ""


def log_in(web, response, user):
    """Fills in the provider's login form (and its consent form, if it shows one), following the
    redirects to wherever they end: through elbd's `/oauth2/idpresponse`, back to the page."""
    for _ in range(3):
        if "text/html" not in response.headers.get("content-type", ""):
            return response
        parser = Forms()
        parser.feed(response.text)
        if not parser.forms:
            return response
        action, fields = parser.forms[0]
        if "password" in fields:
            fields.update(login=user, password="anything")
        response = web.post(urljoin(response.url, action), data=fields, timeout=20)
    raise AssertionError(f"still on a form after 3 submissions: {response.url} {response.text[:300]}")


def visit(web, path, user, response=None):
    """GET `path` on the listener (or go on from its `response`), logging in as `user` at the
    provider: what the target saw."""
    if response is None:
        response = web.get(node + path, timeout=20)
    else:
        response = web.get(urljoin(response.url, response.headers["location"]), timeout=20)
    assert response.status_code == 200, (path, response.status_code, response.url, response.text[:300])
    response = log_in(web, response, user)
    assert response.status_code == 200, (path, response.status_code, response.url, response.text[:300])
    # Back where the browser started, by way of elbd's redirect URI.
    assert any(urlsplit(r.url).path == "/oauth2/idpresponse" for r in response.history), response.history
    back = urlsplit(response.url)
    assert (back.path + ("?" + back.query if back.query else "")) == path, (path, response.url)
    return response.json()


def b64url(part):
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def claims_of(data, issuer, client=None):
    """Checks `x-amzn-oidc-data` as ALB makes it (for `client`, the test's by default), signature
    included; returns its payload."""
    parts = data.split(".")
    assert len(parts) == 3 and all(parts), data
    # AWS's own ALB pads these parts (its docs say so); elbd does not.
    assert not any("=" in part for part in parts), data
    header, payload = json.loads(b64url(parts[0])), json.loads(b64url(parts[1]))
    assert header["alg"] == "ES256" and header.get("kid"), header
    assert header["signer"] == lb_arn and header["client"] == (client or client_id), header
    assert header["iss"] == issuer, (header, issuer)
    assert isinstance(header["exp"], int) and header["exp"] > time.time(), header
    # The key is published by id, as at public-keys.auth.elb.REGION.amazonaws.com/KID.
    pem = browser().get(f"{api}/elbd/public-keys/{header['kid']}", timeout=10)
    assert pem.status_code == 200, (pem.status_code, pem.text)
    key = serialization.load_pem_public_key(pem.content)
    signature = b64url(parts[2])
    assert len(signature) == 64, len(signature)
    der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
    signed = f"{parts[0]}.{parts[1]}".encode()
    key.verify(der, signed, ec.ECDSA(hashes.SHA256()))
    tampered = bytearray(signed)
    tampered[len(parts[0]) + 2] ^= 1
    try:
        key.verify(der, bytes(tampered), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        pass
    else:
        raise AssertionError("a changed payload still verifies")
    return payload


def identity(seen, user, issuer, email=True, client=None):
    """Checks the identity headers the target saw for `user` (with the email claim, or without:
    the scope was `openid` alone); returns the claims."""
    headers = seen["headers"]
    assert headers.get("x-amzn-oidc-identity") == user, headers
    assert headers.get("x-amzn-oidc-accesstoken"), headers
    claims = claims_of(headers["x-amzn-oidc-data"], issuer, client)
    assert claims["sub"] == user, claims
    assert claims.get("email") == (f"{user}@example.test" if email else None), claims
    return claims


def oidc_headers(seen):
    return [name for name in seen["headers"] if name.startswith("x-amzn-oidc-")]


def refused(code, call, **kwargs):
    try:
        call(**kwargs)
    except ClientError as e:
        assert e.response["Error"]["Code"] == code, (code, e.response["Error"])
        return e.response["Error"]["Message"]
    raise AssertionError(f"{call.__name__} {kwargs} was not refused")


# a. The ALB: an HTTPS listener whose default is to log in at the provider, then forward.
subnets = ec2.describe_subnets()["Subnets"]
lb = elbv2.create_load_balancer(Name="oidc-alb", Subnets=[s["SubnetId"] for s in subnets[:2]], Scheme="internal")
lb_arn = lb["LoadBalancers"][0]["LoadBalancerArn"]
tg_arn = elbv2.create_target_group(
    Name="oidc-tg",
    Protocol="HTTP",
    Port=int(port),
    VpcId=subnets[0]["VpcId"],
    TargetType="ip",
    HealthCheckIntervalSeconds=5,
    HealthCheckTimeoutSeconds=2,
    HealthyThresholdCount=2,
)["TargetGroups"][0]["TargetGroupArn"]
elbv2.register_targets(TargetGroupArn=tg_arn, Targets=[{"Id": host}])
certificate = acm.request_certificate(DomainName="oidc.elbd.test")["CertificateArn"]
forward = {"Type": "forward", "TargetGroupArn": tg_arn, "Order": 2}


def oidc(**extra):
    """An authenticate-oidc action at the generic provider, first."""
    issuer = f"https://{oidc_addr}"
    settings = {
        "Issuer": issuer,
        "AuthorizationEndpoint": f"{issuer}/auth",
        "TokenEndpoint": f"{issuer}/token",
        "UserInfoEndpoint": f"{issuer}/me",
        "ClientId": client_id,
        "ClientSecret": client_secret,
        "Scope": "openid email profile",
        "AuthenticationRequestExtraParams": {"elbd_test": "yes"},
    }
    settings.update(extra)
    return {"Type": "authenticate-oidc", "AuthenticateOidcConfig": settings, "Order": 1}


listener_arn = elbv2.create_listener(
    LoadBalancerArn=lb_arn,
    Protocol="HTTPS",
    Port=int(node_addr.rsplit(":", 1)[1]),
    Certificates=[{"CertificateArn": certificate}],
    DefaultActions=[oidc(), forward],
)["Listeners"][0]["ListenerArn"]
for _ in range(60):
    health = elbv2.describe_target_health(TargetGroupArn=tg_arn)["TargetHealthDescriptions"]
    if health[0]["TargetHealth"]["State"] == "healthy":
        break
    time.sleep(1)
else:
    raise AssertionError(f"the target never turned healthy: {health}")
print("ok: an HTTPS listener authenticating at the provider, its target healthy")

# b. Rules: refusing or letting through the unauthenticated, a short session, and Cognito.
cognito = {
    "Type": "authenticate-cognito",
    "AuthenticateCognitoConfig": {
        "UserPoolArn": f"arn:aws:cognito-idp:us-east-1:{ACCOUNT}:userpool/{pool_id}",
        "UserPoolClientId": client_id,
        "UserPoolDomain": "elbd-test",
    },
    "Order": 1,
}
for priority, (pattern, first) in enumerate(
    [
        ("/deny*", oidc(OnUnauthenticatedRequest="deny")),
        ("/allow*", oidc(OnUnauthenticatedRequest="allow")),
        ("/short*", oidc(SessionTimeout=3, SessionCookieName="ShortSession")),
        ("/cognito*", cognito),
        ("/refresh*", oidc(ClientId=f"{client_id}-refresh", SessionCookieName="RefreshSession")),
    ],
    start=1,
):
    elbv2.create_rule(
        ListenerArn=listener_arn,
        Priority=priority,
        Conditions=[{"Field": "path-pattern", "Values": [pattern]}],
        Actions=[first, forward],
    )
described = elbv2.describe_rules(ListenerArn=listener_arn)["Rules"]
default = next(r for r in described if r["IsDefault"])["Actions"]
assert [(a["Type"], a["Order"]) for a in default] == [("authenticate-oidc", 1), ("forward", 2)], default
shown = default[0]["AuthenticateOidcConfig"]
assert "ClientSecret" not in shown, shown
assert shown["OnUnauthenticatedRequest"] == "authenticate" and shown["SessionTimeout"] == 604800, shown
assert shown["SessionCookieName"] == "AWSELBAuthSessionCookie", shown
assert shown["AuthenticationRequestExtraParams"] == {"elbd_test": "yes"}, shown
shown = next(r for r in described if r["Priority"] == "4")["Actions"][0]["AuthenticateCognitoConfig"]
assert shown["UserPoolDomain"] == "elbd-test" and shown["Scope"] == "openid", shown
# A modify that keeps the client secret it does not repeat.
kept = oidc(UseExistingClientSecret=True)
del kept["AuthenticateOidcConfig"]["ClientSecret"]
elbv2.modify_listener(ListenerArn=listener_arn, DefaultActions=[kept, forward])
print("ok: rules with deny, allow, a short session and Cognito, described as AWS does")

# c. Logging in: to the provider's form, back through elbd, to the page first asked for.
alice = browser()
seen = visit(alice, "/app?x=1", "alice")
assert seen["path"] == "/app?x=1", seen
claims = identity(seen, "alice", f"https://{oidc_addr}")
assert "AWSELBAuthSessionCookie-0" in alice.cookies.get_dict(), alice.cookies.get_dict()
asked = provider_requests(oidc_addr)
query = asked["last_auth_query"]
assert query["response_type"] == "code" and query["client_id"] == client_id, query
assert query["redirect_uri"] == f"{node}/oauth2/idpresponse", query
assert query["scope"] == "openid email profile" and query["elbd_test"] == "yes", query
assert query.get("state") and query.get("nonce"), query
assert asked["auth"] == 1 and asked["token"] == 1 and asked["userinfo"] == 1, asked
# The access token passed on is the provider's own: its userinfo endpoint takes it.
token = seen["headers"]["x-amzn-oidc-accesstoken"]
me = browser().get(f"https://{oidc_addr}/me", headers={"Authorization": f"Bearer {token}"}, timeout=10)
assert me.status_code == 200 and me.json()["sub"] == "alice", (me.status_code, me.text)
print(f"ok: logged in as alice, the target saw her claims {claims}")

# d. The session cookie alone lets the next request through: the provider is not asked again.
before = provider_requests(oidc_addr)
response = alice.get(f"{node}/app/again", allow_redirects=False, timeout=20)
assert response.status_code == 200, (response.status_code, response.headers)
identity(response.json(), "alice", f"https://{oidc_addr}")
after = provider_requests(oidc_addr)
assert [after[k] for k in ("auth", "token", "userinfo")] == [before[k] for k in ("auth", "token", "userinfo")], (
    before,
    after,
)
# A client cannot say who it is: its identity headers are dropped, even when its Connection
# names them to take the load balancer's away.
spoof = {"x-amzn-oidc-identity": "mallory", "x-amzn-oidc-data": "forged", "Connection": "x-amzn-oidc-identity"}
response = alice.get(f"{node}/app/again", headers=spoof, allow_redirects=False, timeout=20)
identity(response.json(), "alice", f"https://{oidc_addr}")
print("ok: the session cookie is enough the second time, and claims cannot be forged")

# e. Unauthenticated requests: refused, let through bare, or sent to the provider.
response = browser().get(f"{node}/deny/x", allow_redirects=False, timeout=20)
assert response.status_code == 401, (response.status_code, response.headers)
spoof = {"x-amzn-oidc-identity": "mallory"}
response = browser().get(f"{node}/allow/x", headers=spoof, allow_redirects=False, timeout=20)
assert response.status_code == 200 and not oidc_headers(response.json()), (response.status_code, response.text)
response = alice.get(f"{node}/allow/x", allow_redirects=False, timeout=20)
assert response.status_code == 200, (response.status_code, response.headers)
identity(response.json(), "alice", f"https://{oidc_addr}")
response = browser().get(f"{node}/app", allow_redirects=False, timeout=20)
assert response.status_code == 302, (response.status_code, response.headers)
assert response.headers["location"].startswith(f"https://{oidc_addr}/auth?"), response.headers
# Logins begun and abandoned: past eight, their nonce cookies are cleared.
pending = browser()
for _ in range(9):
    pending.get(f"{node}/app", allow_redirects=False, timeout=20)
nonces = [c.name for c in pending.cookies if c.name.startswith("__Host-AWSELBAuthNonce-")]
assert len(nonces) == 1, nonces
print("ok: deny is a 401, allow passes without identity (with it when logged in), else a redirect")

# f. A session of 3 seconds, under its own cookie name.
short = browser()
identity(visit(short, "/short/x", "carol"), "carol", f"https://{oidc_addr}")
assert "ShortSession-0" in short.cookies.get_dict(), short.cookies.get_dict()
response = short.get(f"{node}/short/x", allow_redirects=False, timeout=20)
assert response.status_code == 200, (response.status_code, response.headers)
time.sleep(4)
response = short.get(f"{node}/short/x", allow_redirects=False, timeout=20)
assert response.status_code == 302, (response.status_code, response.headers)
assert response.headers["location"].startswith(f"https://{oidc_addr}/auth?"), response.headers
print("ok: the short session expires after its 3 seconds")

# An access token that expires (the provider gives this client 6-second ones, and refresh
# tokens): the next request gets new tokens and claims with the refresh token, without a
# login, and the renewed session cookie carries the one after without the provider.
erin = browser()
refreshing = f"{client_id}-refresh"
first = visit(erin, "/refresh/x", "erin")
identity(first, "erin", f"https://{oidc_addr}", client=refreshing)
before = provider_requests(oidc_addr)
time.sleep(7)
response = erin.get(f"{node}/refresh/x", allow_redirects=False, timeout=20)
assert response.status_code == 200, (response.status_code, response.headers)
assert "RefreshSession-0" in response.cookies.get_dict(), response.headers
refreshed = response.json()
identity(refreshed, "erin", f"https://{oidc_addr}", client=refreshing)
after = provider_requests(oidc_addr)
assert after["auth"] == before["auth"], (before, after)
assert (after["token"], after["userinfo"]) == (before["token"] + 1, before["userinfo"] + 1), (before, after)
token = refreshed["headers"]["x-amzn-oidc-accesstoken"]
assert token != first["headers"]["x-amzn-oidc-accesstoken"], "a new access token"
me = browser().get(f"https://{oidc_addr}/me", headers={"Authorization": f"Bearer {token}"}, timeout=10)
assert me.status_code == 200 and me.json()["sub"] == "erin", (me.status_code, me.text)
response = erin.get(f"{node}/refresh/y", allow_redirects=False, timeout=20)
assert response.status_code == 200, (response.status_code, response.headers)
assert provider_requests(oidc_addr)["token"] == after["token"], "the renewed cookie alone"
print("ok: an expired access token is refreshed with the refresh token, without a login")

# A login started at a path that looks like another host ends on this one.
dave = browser()
# visit() checks the browser ended at this path on the node; Python's server folds the
# leading slashes of what it is sent.
seen = visit(dave, "//evil.example/x?y=1", "dave")
assert seen["path"] in ("//evil.example/x?y=1", "/evil.example/x?y=1"), seen
print("ok: a login ends on the load balancer's host whatever the path")

# g. Cognito: the user pool's domain is the provider's Cognito layout.
bob = browser()
response = bob.get(f"{node}/cognito/x", allow_redirects=False, timeout=20)
assert response.status_code == 302, (response.status_code, response.headers)
assert response.headers["location"].startswith(f"https://{cognito_addr}/oauth2/authorize?"), response.headers
seen = visit(bob, "/cognito/x", "bob", response)
# The action names no scope: ALB's default, `openid`, gets no email from userinfo.
identity(seen, "bob", f"https://{cognito_addr}/{pool_id}", email=False)
assert provider_requests(cognito_addr)["last_auth_query"]["client_id"] == client_id
print("ok: logged in as bob through the Cognito user pool")

# h. What ALB refuses: authentication on HTTP, alone, unordered, or after the forward.
listeners = elbv2.describe_listeners(LoadBalancerArn=lb_arn)["Listeners"]
refused(
    "ValidationError",
    elbv2.create_listener,
    LoadBalancerArn=lb_arn,
    Protocol="HTTP",
    Port=int(node_addr.rsplit(":", 1)[1]) + 1,
    DefaultActions=[oidc(), forward],
)
assert elbv2.describe_listeners(LoadBalancerArn=lb_arn)["Listeners"] == listeners
rules = elbv2.describe_rules(ListenerArn=listener_arn)["Rules"]
unordered = [{k: v for k, v in action.items() if k != "Order"} for action in (oidc(), forward)]
for actions in [[oidc()], unordered, [{**oidc(), "Order": 2}, {**forward, "Order": 1}]]:
    refused(
        "ValidationError",
        elbv2.create_rule,
        ListenerArn=listener_arn,
        Priority=10,
        Conditions=[{"Field": "path-pattern", "Values": ["/refused*"]}],
        Actions=actions,
    )
assert elbv2.describe_rules(ListenerArn=listener_arn)["Rules"] == rules
print("ok: authentication on HTTP, alone, without orders or after the forward is refused")

# i. jwt-validation: tokens signed by keys of a key set this script serves.
def rsa_jwk(private, kid):
    numbers = private.public_key().public_numbers()
    encode = lambda n: base64.urlsafe_b64encode(n.to_bytes((n.bit_length() + 7) // 8, "big")).rstrip(b"=").decode()
    return {"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": encode(numbers.n), "e": encode(numbers.e)}


keys = {"k1": rsa.generate_private_key(public_exponent=65537, key_size=2048)}
published = {"jwks": [rsa_jwk(keys["k1"], "k1")], "reads": 0}


class KeySet(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        published["reads"] += 1
        body = json.dumps({"keys": published["jwks"]}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


jwks_host, jwks_port = jwks_addr.rsplit(":", 1)
jwks_server = ThreadingHTTPServer((jwks_host, int(jwks_port)), KeySet)
tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
tls.load_cert_chain(cert_file, key_file)
jwks_server.socket = tls.wrap_socket(jwks_server.socket, server_side=True)
threading.Thread(target=jwks_server.serve_forever, daemon=True).start()

ISSUER = "https://issuer.elbd.test"


def token(kid="k1", signer=None, **claims):
    payload = {"iss": ISSUER, "exp": int(time.time()) + 300, "scope": "read write", "sub": "svc"}
    payload.update(claims)
    payload = {k: v for k, v in payload.items() if v is not None}
    encode = lambda doc: base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=").decode()
    signed = f"{encode({'alg': 'RS256', 'kid': kid, 'typ': 'JWT'})}.{encode(payload)}"
    signature = (signer or keys[kid]).sign(signed.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signed}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


jwt_port = int(node_addr.rsplit(":", 1)[1]) + 1
jwt_node = f"https://{node_addr.rsplit(':', 1)[0]}:{jwt_port}"
validation = {
    "Type": "jwt-validation",
    "Order": 1,
    "JwtValidationConfig": {
        "JwksEndpoint": f"https://{jwks_addr}/.well-known/jwks.json",
        "Issuer": ISSUER,
        "AdditionalClaims": [{"Format": "space-separated-values", "Name": "scope", "Values": ["read", "admin"]}],
    },
}
jwt_listener = elbv2.create_listener(
    LoadBalancerArn=lb_arn,
    Protocol="HTTPS",
    Port=jwt_port,
    Certificates=[{"CertificateArn": certificate}],
    DefaultActions=[validation, forward],
)["Listeners"][0]
shown = jwt_listener["DefaultActions"][0]
assert shown["Type"] == "jwt-validation" and shown["Order"] == 1, shown
assert shown["JwtValidationConfig"]["AdditionalClaims"][0]["Values"] == ["read", "admin"], shown


def call(bearer=None):
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    return browser().get(f"{jwt_node}/api", headers=headers, allow_redirects=False, timeout=20)


good = token()
for attempt in range(50):
    try:
        response = call(good)
        if response.status_code != 503:
            break
    except requests.ConnectionError:
        pass  # the listener is not bound yet
    time.sleep(0.1)
assert response.status_code == 200, (response.status_code, response.text)
assert response.json()["headers"]["authorization"] == f"Bearer {good}", response.json()
response = call()
assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer", response.headers
# A second Authorization header: one would be checked, the other might reach the target.
twice = subprocess.run(
    ["curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}", "-H", f"Authorization: Bearer {good}",
     "-H", "Authorization: Bearer forged", f"{jwt_node}/api"],
    capture_output=True, text=True, check=True,
).stdout
assert twice == "401", twice
stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
for name, bad in [
    ("expired", token(exp=int(time.time()) - 10)),
    ("no expiry", token(exp=None)),
    ("not yet valid", token(nbf=int(time.time()) + 3600)),
    ("another issuer", token(iss="https://elsewhere.test")),
    ("without the scope", token(scope="write")),
    ("signed by a stranger", token(signer=stranger)),
    ("not a JWT", "abc.def"),
]:
    response = call(bad)
    assert response.status_code == 401, (name, response.status_code)
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"', (name, response.headers)
reads = published["reads"]
assert reads == 1, f"the key set is read once and kept: {reads} reads"
# A new key: a token naming it makes elbd read the set again (once it is a second old).
time.sleep(1.5)
keys["k2"] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
published["jwks"].append(rsa_jwk(keys["k2"], "k2"))
response = call(token(kid="k2", scope="admin"))
assert response.status_code == 200, (response.status_code, response.text)
assert published["reads"] == 2, published["reads"]
print("ok: jwt-validation passes tokens of the issuer's keys and claims, and refuses the rest")
