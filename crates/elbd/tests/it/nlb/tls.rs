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
    let script = r#"
import socket, ssl, sys
node, port, name, ca, alpn = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
context = ssl.create_default_context(cafile=ca)
if alpn:
    context.set_alpn_protocols(alpn.split(","))
with socket.create_connection((node, port), timeout=5) as raw:
    with context.wrap_socket(raw, server_hostname=name) as tls:
        stream = tls.makefile("rwb")
        hello = stream.readline().decode().strip()
        stream.write(b"ping\n")
        stream.flush()
        echo = stream.readline().decode().strip()
        print(tls.selected_alpn_protocol() or "none", hello, echo)
"#;
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            script,
            &node.ip().to_string(),
            &node.port().to_string(),
            name,
        ])
        .arg(ca)
        .arg(alpn.join(","))
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
