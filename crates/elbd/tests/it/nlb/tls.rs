//! TLS listeners and TLS target groups.

use super::*;

/// Through a TLS listener at `node`, trusting `ca` for `name` and offering `alpn`: the
/// protocol ALPN settled on (or "none"), the target's greeting, and its echo of "ping".
fn tls_exchange(node: SocketAddr, name: &str, ca: &std::path::Path, alpn: &[&str]) -> String {
    try_tls_exchange(node, name, ca, alpn)
        .unwrap_or_else(|e| panic!("TLS through {node} offering {alpn:?}: {e}"))
}

/// [`tls_exchange`], or why it failed.
fn try_tls_exchange(
    node: SocketAddr,
    name: &str,
    ca: &std::path::Path,
    alpn: &[&str],
) -> Result<String, String> {
    exchange_as(node, (name, ca), alpn, None)
}

/// [`try_tls_exchange`] presenting `client` (certificate, key) when given.
fn exchange_as(
    node: SocketAddr,
    (name, ca): (&str, &std::path::Path),
    alpn: &[&str],
    client: Option<(&std::path::Path, &std::path::Path)>,
) -> Result<String, String> {
    let script = r#"
import socket, ssl, sys
node, port, name, ca, alpn = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
context = ssl.create_default_context(cafile=ca)
if alpn:
    context.set_alpn_protocols(alpn.split(","))
if len(sys.argv) > 7:
    context.load_cert_chain(sys.argv[6], sys.argv[7])
with socket.create_connection((node, port), timeout=5) as raw:
    with context.wrap_socket(raw, server_hostname=name) as tls:
        stream = tls.makefile("rwb")
        hello = stream.readline().decode().strip()
        stream.write(b"ping\n")
        stream.flush()
        echo = stream.readline().decode().strip()
        print(tls.selected_alpn_protocol() or "none", hello, echo)
"#;
    let alpn = std::ffi::OsString::from(alpn.join(","));
    let mut args = vec![ca.as_os_str(), alpn.as_os_str()];
    args.extend(
        client
            .iter()
            .flat_map(|(cert, key)| [cert.as_os_str(), key.as_os_str()]),
    );
    client_script(script, node, name, &args)
}

/// Runs a Python client `script` with the node's address and port, `name` and `args`: what
/// it printed, or its error.
fn client_script(
    script: &str,
    node: SocketAddr,
    name: &str,
    args: &[&std::ffi::OsStr],
) -> Result<String, String> {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            script,
            &node.ip().to_string(),
            &node.port().to_string(),
            name,
        ])
        .args(args)
        .output()
        .unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// A TLS target in Python: greets each connection with `alpn=PROTOCOL` (what the client,
/// elbd, negotiated), then echoes.
fn alpn_target(lab: &Lab, addr: SocketAddr) -> crate::harness::ProcessBackend {
    let (cert, key) = crate::tls::self_signed(lab, "alpn", "alpn.internal");
    let script = r#"
import socket, ssl, sys, threading
host, port, cert, key = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
context.set_alpn_protocols(["h2", "http/1.1", "http/1.0"])
def serve(conn):
    try:
        with context.wrap_socket(conn, server_side=True) as tls:
            tls.sendall(f"alpn={tls.selected_alpn_protocol()}\n".encode())
            while data := tls.recv(4096):
                tls.sendall(data)
    except OSError:
        pass
with socket.create_server((host, port)) as server:
    while True:
        conn, _ = server.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()
"#;
    let mut command = std::process::Command::new("python3");
    command
        .args([
            "-c",
            script,
            &addr.ip().to_string(),
            &addr.port().to_string(),
        ])
        .arg(cert)
        .arg(key);
    crate::harness::ProcessBackend::spawn(command, addr)
}

/// TLS listeners: an ACM certificate from the local CA, ALPN by the listener's policy, the
/// idle timeout fixed at 350 s; a TLS target group re-encrypts to its target.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_listeners_terminate_and_tls_groups_re_encrypt() {
    let lab = Lab::new("nlb-tls", 39);
    let plain = TcpTarget::start(SocketAddr::from((lab.ip('a', 10), 9300))).await;
    let secure = SocketAddr::from((lab.ip('a', 11), 9443));
    // A target of the TLS group that speaks no TLS: its handshakes fail.
    let _plain_in_tls = TcpTarget::start(SocketAddr::from((lab.ip('a', 13), 9443))).await;
    let _secure = crate::tls::tls_target(&lab, secure);
    let alpn = SocketAddr::from((lab.ip('a', 12), 9444));
    let _alpn = alpn_target(&lab, alpn);
    let (mut elbd, aws) = start(&lab);
    let (lb_arn, vpc) = aws.load_balancer_of_type("secure", "network");
    let name = "flows.nlb.test";
    let certificate =
        aws.ok(&["acm", "request-certificate", "--domain-name", name])["CertificateArn"]
            .as_str()
            .unwrap()
            .to_owned();
    let ca = lab.dir.join("ca.pem");
    aws.save_ca(&ca);

    let tls_listener = |port: &str, tg: &str, alpn: &[&str]| {
        let mut args = vec![
            "elbv2",
            "create-listener",
            "--load-balancer-arn",
            &lb_arn,
            "--protocol",
            "TLS",
            "--port",
            port,
        ];
        let certificate = format!("CertificateArn={certificate}");
        let action = format!("Type=forward,TargetGroupArn={tg}");
        args.extend(["--certificates", &certificate, "--default-actions", &action]);
        args.extend_from_slice(alpn);
        aws.ok(&args)["Listeners"][0].clone()
    };
    let plain_tg = aws.target_group_of("TCP", "plain", &vpc, (9300, "ip"), &FAST_CHECKS);
    aws.register(&plain_tg, &[plain.addr.ip().to_string()]);
    let preferred = tls_listener("7443", &plain_tg, &["--alpn-policy", "HTTP2Preferred"]);
    assert_eq!(preferred["AlpnPolicy"][0], "HTTP2Preferred", "{preferred}");
    assert_eq!(
        preferred["SslPolicy"], "ELBSecurityPolicy-2016-08",
        "{preferred}"
    );
    let listener_arn = text(&preferred["ListenerArn"]).to_owned();
    let fixed = aws.err(&[
        "elbv2",
        "modify-listener-attributes",
        "--listener-arn",
        &listener_arn,
        "--attributes",
        "Key=tcp.idle_timeout.seconds,Value=400",
    ]);
    assert!(fixed.contains("ValidationError"), "{fixed}");
    let secure_tg = aws.target_group_of("TLS", "secure", &vpc, (9443, "ip"), &FAST_CHECKS);
    let in_tls_group = [secure.ip().to_string(), lab.ip('a', 13).to_string()];
    aws.register(&secure_tg, &in_tls_group);
    let sticky = aws.err(&[
        "elbv2",
        "modify-target-group-attributes",
        "--target-group-arn",
        &secure_tg,
        "--attributes",
        "Key=stickiness.enabled,Value=true",
    ]);
    assert!(sticky.contains("ValidationError"), "{sticky}");
    tls_listener("7444", &secure_tg, &[]);
    let alpn_tg = aws.target_group_of("TLS", "alpn", &vpc, (9444, "ip"), &FAST_CHECKS);
    aws.register(&alpn_tg, &[alpn.ip().to_string()]);
    tls_listener("7445", &alpn_tg, &["--alpn-policy", "HTTP2Optional"]);
    tls_listener("7446", &plain_tg, &["--alpn-policy", "HTTP2Only"]);
    let unknown = aws.err(&[
        "elbv2",
        "modify-listener",
        "--listener-arn",
        &listener_arn,
        "--alpn-policy",
        "HTTP3Only",
    ]);
    assert!(unknown.contains("ALPNPolicyNotFound"), "{unknown}");
    // Three groups, one target each in zone a, checked from its node (cross-zone is off).
    elbd.wait_healthy(4);

    // Terminated with the ACM certificate (verified against the local CA); h2 when offered.
    let node = lab.node('a', 7443);
    let exchange = tls_exchange(node, name, &ca, &["h2", "http/1.1"]);
    let target = plain.addr.to_string();
    assert!(
        exchange.starts_with(&format!("h2 {target} ")) && exchange.ends_with(" ping"),
        "{exchange}"
    );
    let exchange = tls_exchange(node, name, &ca, &["http/1.1"]);
    assert!(exchange.starts_with("http/1.1 "), "{exchange}");
    // openssl s_client too: the certificate verifies, h2 is negotiated, the target answers.
    let mut s_client = std::process::Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &node.to_string(),
            "-servername",
            name,
        ])
        .args(["-alpn", "h2,http/1.1", "-CAfile"])
        .arg(&ca)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    {
        use std::io::Write as _;
        let mut input = s_client.stdin.take().unwrap();
        input.write_all(b"ping\n").unwrap();
        std::thread::sleep(Duration::from_secs(1));
    }
    let out = String::from_utf8_lossy(&s_client.wait_with_output().unwrap().stdout).into_owned();
    for expected in [
        "ALPN protocol: h2",
        "Verify return code: 0 (ok)",
        &format!("{target} "),
        "ping",
    ] {
        assert!(
            out.contains(expected),
            "s_client lacks {expected:?}:\n{out}"
        );
    }
    let exchange = tls_exchange(node, name, &ca, &[]);
    assert!(exchange.starts_with("none "), "{exchange}");

    // HTTP2Optional prefers HTTP/1.1, and a TLS group offers the target what was negotiated.
    let optional = lab.node('a', 7445);
    let exchange = tls_exchange(optional, name, &ca, &["h2", "http/1.1"]);
    assert_eq!(exchange, "http/1.1 alpn=http/1.1 ping");
    let exchange = tls_exchange(optional, name, &ca, &["h2"]);
    assert_eq!(exchange, "h2 alpn=h2 ping");
    // HTTP2Only turns away a client that speaks HTTP/1.1 only, and counts it.
    let only = lab.node('a', 7446);
    assert!(try_tls_exchange(only, name, &ca, &["http/1.1"]).is_err());
    assert!(tls_exchange(only, name, &ca, &["h2"]).starts_with("h2 "));
    let metric = |name: &str| metric_sum(&aws, name, "");
    assert_eq!(
        metric("aws_networkelb_client_tlsnegotiation_error_count_total"),
        1.0
    );
    assert_eq!(metric("aws_networkelb_new_flow_count_tls_total"), 8.0);

    // A TLS group: the target (openssl s_server -www) answers over TLS from elbd, and its
    // answer, which ends when the connection does, ends with close_notify (curl fails on a
    // TLS stream cut without it). Flows the hash sends to the target that speaks no TLS fail
    // its handshake and pass on to the other.
    let node = lab.node('a', 7444);
    let resolve = format!("{name}:7444:{}", node.ip());
    for _ in 0..20 {
        let out = std::process::Command::new("curl")
            .args(["-sS", "--http1.1", "--cacert", ca.to_str().unwrap()])
            .args(["--resolve", &resolve, &format!("https://{name}:7444/")])
            .output()
            .unwrap();
        let body = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && body.contains("s_server"),
            "{}: {body}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let failed = metric_sum(
        &aws,
        "aws_networkelb_target_tlsnegotiation_error_count_total",
        "",
    );
    // The chance that none of 20 flows ranks the plain target first is 2^-20.
    assert!(failed >= 1.0, "{failed} failed target handshakes");
}

/// Mutual TLS on a TLS listener (network load balancers take verify mode): only clients whose
/// certificate the trust store verifies get through, and with identity filters only those a
/// filter matches (here by URI SAN prefix, then by exact common name).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_listeners_verify_clients_and_admit_them_by_identity_filters() {
    let lab = Lab::new("nlb-mtls", 31);
    let target = TcpTarget::start(SocketAddr::from((lab.ip('a', 10), 9300))).await;
    let (mut elbd, aws) = start(&lab);
    let (lb_arn, vpc) = aws.load_balancer_of_type("mtls", "network");
    let name = "mtls.nlb.test";
    let request = ["acm", "request-certificate", "--domain-name", name];
    let certificate = text(&aws.ok(&request)["CertificateArn"]).to_owned();
    let ca = lab.dir.join("ca.pem");
    aws.save_ca(&ca);
    // Two clients of one CA: alice with a SPIFFE ID, mallory without.
    let (client_ca, client_key) = crate::tls::self_signed(&lab, "clients", "clients-ca");
    let client = |file: &str, cn: &str, san: &str| {
        let ext = format!("basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n{san}");
        let subject = format!("/O=elbd tests/CN={cn}");
        crate::tls::signed_by(&lab, (&client_ca, &client_key), file, &subject, &ext)
    };
    let alice = client(
        "alice",
        "alice client",
        "subjectAltName=URI:spiffe://Example.org/alice\n",
    );
    let mallory = client("mallory", "mallory client", "");
    // Eve's certificate matches the filter but no CA of the trust store signed it.
    let (eve_ca, eve_ca_key) = crate::tls::self_signed(&lab, "eve-ca", "eve-ca");
    let eve_ext = "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n\
                   subjectAltName=URI:spiffe://example.org/eve\n";
    let eve = crate::tls::signed_by(&lab, (&eve_ca, &eve_ca_key), "eve", "/CN=eve", eve_ext);
    let bucket = lab.dir.join("data/s3/bundles");
    std::fs::create_dir_all(&bucket).unwrap();
    std::fs::copy(&client_ca, bucket.join("clients.pem")).unwrap();
    let store = aws.ok(&[
        "elbv2",
        "create-trust-store",
        "--name",
        "clients",
        "--ca-certificates-bundle-s3-bucket",
        "bundles",
        "--ca-certificates-bundle-s3-key",
        "clients.pem",
    ]);
    let store = text(&store["TrustStores"][0]["TrustStoreArn"]).to_owned();
    let mutual = |filter: &str| {
        serde_json::json!({
            "Mode": "verify",
            "TrustStoreArn": store,
            "ClientCertificateIdentityFilters": [serde_json::from_str::<serde_json::Value>(filter).unwrap()],
        })
    };
    let by_uri = r#"{"Field": "san-uri", "Action": "accept", "MatchType": "prefix", "Value": "spiffe://example.org/"}"#;
    let tg = aws.target_group_of("TCP", "mtls", &vpc, (9300, "ip"), &FAST_CHECKS);
    aws.register(&tg, &[target.addr.ip().to_string()]);
    // boto3: the aws cli's older botocore lacks the identity filters.
    let api = SocketAddr::from((lab.ip('a', 1), 4566));
    let listener = boto3_elbv2(
        api,
        "create_listener",
        &serde_json::json!({
            "LoadBalancerArn": lb_arn,
            "Protocol": "TLS",
            "Port": 7443,
            "Certificates": [{"CertificateArn": certificate}],
            "DefaultActions": [{"Type": "forward", "TargetGroupArn": tg}],
            "MutualAuthentication": mutual(by_uri),
        }),
    );
    let described = &listener["Listeners"][0]["MutualAuthentication"];
    assert_eq!(described["Mode"], "verify", "{described}");
    let filter = &described["ClientCertificateIdentityFilters"][0];
    assert_eq!(
        (&filter["Field"], &filter["MatchType"], &filter["Value"]),
        (
            &"san-uri".into(),
            &"prefix".into(),
            &"spiffe://example.org/".into()
        ),
        "{described}"
    );
    let listener_arn = text(&listener["Listeners"][0]["ListenerArn"]).to_owned();
    // AWS's rules: filters only in verify mode, on TLS listeners; passthrough is not a
    // network load balancer's.
    let passthrough = aws.err(&[
        "elbv2",
        "modify-listener",
        "--listener-arn",
        &listener_arn,
        "--mutual-authentication",
        "Mode=passthrough",
    ]);
    assert!(
        passthrough.contains("must be off or verify"),
        "{passthrough}"
    );
    elbd.wait_healthy(1);

    let node = lab.node('a', 7443);
    let as_client = |who: Option<&(std::path::PathBuf, std::path::PathBuf)>| {
        let client = who.map(|(c, k)| (c.as_path(), k.as_path()));
        exchange_as(node, (name, &ca), &[], client)
    };
    let admitted = as_client(Some(&alice)).unwrap();
    assert!(admitted.ends_with(" ping"), "{admitted}");
    assert!(
        as_client(Some(&mallory)).is_err(),
        "mallory matches no filter"
    );
    assert!(as_client(Some(&eve)).is_err(), "eve's CA is not trusted");
    assert!(as_client(None).is_err(), "no client certificate");
    // No session is resumed on a listener with mutual TLS (a resumed one skips the check);
    // a listener without it resumes them.
    let plain = aws.ok(&[
        "elbv2",
        "create-listener",
        "--load-balancer-arn",
        &lb_arn,
        "--protocol",
        "TLS",
        "--port",
        "7444",
        "--certificates",
        &format!("CertificateArn={certificate}"),
        "--default-actions",
        &format!("Type=forward,TargetGroupArn={tg}"),
    ]);
    assert!(
        plain["Listeners"][0]["MutualAuthentication"].is_null(),
        "{plain}"
    );
    let plain_node = lab.node('a', 7444);
    elbd.wait_until("the plain listener", || {
        resumed(plain_node, (name, &ca), &alice).is_ok()
    });
    assert_eq!(resumed(plain_node, (name, &ca), &alice), Ok(true));
    assert_eq!(resumed(node, (name, &ca), &alice), Ok(false));

    // Another filter: mallory's common name, exactly (case aside); alice no longer matches.
    let by_name = r#"{"Field": "subject-cn", "Action": "accept", "MatchType": "exact", "Value": "Mallory Client"}"#;
    let modify =
        serde_json::json!({"ListenerArn": listener_arn, "MutualAuthentication": mutual(by_name)});
    boto3_elbv2(api, "modify_listener", &modify);
    elbd.wait_until("the new filter", || {
        as_client(Some(&mallory)).is_ok_and(|e| e.ends_with(" ping"))
    });
    assert!(
        as_client(Some(&alice)).is_err(),
        "alice matches no filter now"
    );
}

/// `elbv2.CALL(**kwargs)` through boto3 against the API at `api`: its answer as JSON.
fn boto3_elbv2(api: SocketAddr, call: &str, kwargs: &serde_json::Value) -> serde_json::Value {
    let script = r#"
import json, sys
import boto3
client = boto3.client("elbv2", endpoint_url=sys.argv[1], region_name="us-east-1",
                      aws_access_key_id="test", aws_secret_access_key="test")
answer = getattr(client, sys.argv[2])(**json.loads(sys.argv[3]))
answer.pop("ResponseMetadata", None)
print(json.dumps(answer, default=str))
"#;
    let out = std::process::Command::new(crate::harness::venv().join("bin/python"))
        .args([
            "-c",
            script,
            &format!("http://{api}"),
            call,
            &kwargs.to_string(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{call}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Whether a second connection through `node` as `client` resumed the first's TLS session.
fn resumed(
    node: SocketAddr,
    (name, ca): (&str, &std::path::Path),
    (cert, key): &(std::path::PathBuf, std::path::PathBuf),
) -> Result<bool, String> {
    let script = r#"
import socket, ssl, sys
node, port, name, ca, cert, key = sys.argv[1], int(sys.argv[2]), *sys.argv[3:7]
context = ssl.create_default_context(cafile=ca)
context.load_cert_chain(cert, key)
session = None
for _ in range(2):
    with socket.create_connection((node, port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname=name, session=session) as tls:
            stream = tls.makefile("rwb")
            stream.readline()
            stream.write(b"ping\n")
            stream.flush()
            stream.readline()
            reused, session = tls.session_reused, tls.session
print(reused)
"#;
    let args = [ca.as_os_str(), cert.as_os_str(), key.as_os_str()];
    client_script(script, node, name, &args).map(|out| out == "True")
}
