//! Beyond plain requests: WebSocket upgrades proxied both ways, h2c under h2load, and the
//! load balancer's own 405, 463, 414, 400 and 501, gRPC through a GRPC target group (464
//! for HTTP/1.1), and the idle timeout and AWS's header limits on HTTP/2 and WebSockets.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::harness::{Backend, Elbd, Lab, ProcessBackend, curl, venv};

/// A backend that answers 200, or switches protocols and echoes every byte back.
async fn echo_backend(addr: SocketAddr) {
    let listener = TcpListener::bind(addr).await.unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service = service_fn(|mut req: Request<Incoming>| async move {
                if !req.headers().contains_key("upgrade") {
                    return Ok::<_, Infallible>(plain(&req));
                }
                let upgrade = hyper::upgrade::on(&mut req);
                tokio::spawn(async move {
                    let Ok(upgraded) = upgrade.await else { return };
                    let mut io = TokioIo::new(upgraded);
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = io.read(&mut buf).await {
                        if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
                let mut response = Response::new(Full::new(Bytes::new()));
                *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
                response
                    .headers_mut()
                    .insert("upgrade", "websocket".parse().unwrap());
                response
                    .headers_mut()
                    .insert("connection", "Upgrade".parse().unwrap());
                Ok(response)
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
            });
        }
    });
}

/// An HTTP/2 (prior knowledge) target giving [`plain`] answers.
async fn h2_backend(addr: SocketAddr) {
    let listener = TcpListener::bind(addr).await.unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service =
                service_fn(
                    |req: Request<Incoming>| async move { Ok::<_, Infallible>(plain(&req)) },
                );
            tokio::spawn(
                hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
}

/// A plain answer: `/bighead/N` with a header of N bytes, `/trace` and `/host` with the
/// trace id and the Host the request came with, anything else `plain`.
fn plain(req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    if let Some(size) = path.strip_prefix("/bighead/") {
        let mut response = Response::new(Full::new(Bytes::from_static(b"big")));
        let value = "h".repeat(size.parse().unwrap());
        response
            .headers_mut()
            .insert("x-big", value.parse().unwrap());
        return response;
    }
    let echoed = match path {
        "/trace" => req.headers().get("x-amzn-trace-id"),
        "/host" => req.headers().get("host"),
        _ => None,
    };
    let body = echoed.map_or(Bytes::from_static(b"plain"), |v| {
        Bytes::copy_from_slice(v.as_bytes())
    });
    Response::new(Full::new(body))
}

/// A WebSocket handshake.
const WEBSOCKET: &str = "GET /chat HTTP/1.1\r\nHost: chat.test\r\nConnection: Upgrade\r\n\
    Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

/// Sends `head` on a new connection to `node` and returns the response head.
async fn exchange_head(stream: &mut TcpStream, head: &str) -> String {
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(
            n > 0,
            "connection closed after {:?}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websockets_h2c_and_the_load_balancers_own_answers() {
    let lab = Lab::new("protocols", 20);
    let target = SocketAddr::from((lab.ip('a', 10), 9001));
    echo_backend(target).await;
    let config = format!(
        "{}\n[[load_balancer]]\nname = \"p\"\navailability_zones = [\"us-east-1a\", \"us-east-1b\"]\n\
         [[load_balancer.listener]]\nprotocol = \"HTTP\"\nport = 8080\ndefault_action = {{ forward = \"p-tg\" }}\n\
         [[target_group]]\nname = \"p-tg\"\nprotocol = \"HTTP\"\nport = 9001\ntargets = [\"{target}\"]\n",
        lab.settings()
    );
    let node = lab.node('a', 8080);
    let mut elbd = Elbd::start(&lab, &lab.write("elbd.toml", &config), &[], &[node]);
    elbd.wait_healthy(2);

    // A WebSocket handshake through elbd, then bytes both ways over the same connection.
    let mut ws = TcpStream::connect(node).await.unwrap();
    let head = exchange_head(&mut ws, WEBSOCKET).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("upgrade: websocket"),
        "{head}"
    );
    for message in ["hello", "over the tunnel"] {
        ws.write_all(message.as_bytes()).await.unwrap();
        let mut echo = vec![0u8; message.len()];
        tokio::time::timeout(Duration::from_secs(5), ws.read_exact(&mut echo))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(echo, message.as_bytes());
    }

    // TRACE gets 405 and more than 30 X-Forwarded-For addresses 463, from elbd itself.
    let mut plain = TcpStream::connect(node).await.unwrap();
    let head = exchange_head(&mut plain, "TRACE / HTTP/1.1\r\nHost: p.test\r\n\r\n").await;
    assert!(
        head.starts_with("HTTP/1.1 405") && head.contains("awselb/2.0"),
        "{head}"
    );
    let addresses: Vec<String> = (1..=31).map(|i| format!("10.0.0.{i}")).collect();
    let request = format!(
        "GET / HTTP/1.1\r\nHost: p.test\r\nX-Forwarded-For: {}\r\n\r\n",
        addresses.join(", ")
    );
    let mut plain = TcpStream::connect(node).await.unwrap();
    let head = exchange_head(&mut plain, &request).await;
    assert!(head.starts_with("HTTP/1.1 463"), "{head}");

    // ALB's limits: a 17 KB target gets 414, a 17 KB header 400, a transfer coding other
    // than chunked 501; each with AWS's page.
    for (request, status) in [
        (
            format!(
                "GET /{} HTTP/1.1\r\nHost: p.test\r\n\r\n",
                "a".repeat(17 * 1024)
            ),
            "414",
        ),
        (
            format!(
                "GET / HTTP/1.1\r\nHost: p.test\r\nX-Big: {}\r\n\r\n",
                "b".repeat(17 * 1024)
            ),
            "400",
        ),
        (
            "POST / HTTP/1.1\r\nHost: p.test\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"
                .to_owned(),
            "501",
        ),
        // A Host that is no `host[:port]` (RFC 9112 §3.2).
        ("GET / HTTP/1.1\r\nHost: a wild\r\n\r\n".to_owned(), "400"),
        (
            "GET / HTTP/1.1\r\nHost: p.test:abc\r\n\r\n".to_owned(),
            "400",
        ),
    ] {
        let mut plain = TcpStream::connect(node).await.unwrap();
        let head = exchange_head(&mut plain, &request).await;
        let expected = format!("HTTP/1.1 {status}");
        assert!(
            head.starts_with(&expected) && head.contains("awselb/2.0"),
            "{head}"
        );
    }

    // An absolute-form target names the host: the Host header is ignored (RFC 9112 §3.2.2).
    let mut absolute = TcpStream::connect(node).await.unwrap();
    absolute
        .write_all(
            b"GET http://abs.test/host HTTP/1.1\r\nHost: other.test\r\nConnection: close\r\n\r\n",
        )
        .await
        .unwrap();
    let mut answer = String::new();
    absolute.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("abs.test:8080"), "{answer}");

    // h2c with prior knowledge, multiplexed.
    let out = Command::new("h2load")
        .args(["-n", "20000", "-c", "10", "-m", "10"])
        .arg(format!("http://{node}/"))
        .output()
        .expect("h2load runs (Debian package nghttp2-client)");
    let text = String::from_utf8_lossy(&out.stdout);
    let requests = text
        .lines()
        .find(|l| l.starts_with("requests:"))
        .unwrap_or_default();
    eprintln!("h2load through elbd: {requests}");
    assert!(
        requests.contains("20000 succeeded, 0 failed, 0 errored"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_http2_off_a_prior_knowledge_client_gets_505_on_both_roads() {
    let lab = Lab::new("http2off", 68);
    let target = SocketAddr::from((lab.ip('a', 10), 9001));
    echo_backend(target).await;
    let off = "\"routing.http2.enabled\" = false";
    let config = lab.both_roads("off", off, target, "");
    let nodes = [lab.node('a', 8080), lab.node('a', 8081)];
    let _elbd = Elbd::start(&lab, &config, &[], &nodes);
    for node in nodes {
        // The preface and an empty SETTINGS frame: hyper-util's server took it as HTTP/2.
        let mut stream = TcpStream::connect(node).await.unwrap();
        let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0";
        stream.write_all(preface).await.unwrap();
        let said = closes_between(&mut stream, Duration::ZERO, Duration::from_secs(5)).await;
        let said = String::from_utf8_lossy(&said);
        assert!(
            said.starts_with("HTTP/1.1 505 HTTP Version Not Supported\r\n"),
            "{node}: {said}"
        );
        assert!(
            said.contains("<h1>505 HTTP Version Not Supported</h1>"),
            "{said}"
        );
        // HTTP/1.1 is served as ever.
        let mut stream = TcpStream::connect(node).await.unwrap();
        let head = exchange_head(&mut stream, "GET / HTTP/1.1\r\nHost: off.test\r\n\r\n").await;
        assert!(head.starts_with("HTTP/1.1 200"), "{node}: {head}");
    }
}

/// Reads `stream` until it closes, which must be after `at_least` and before `within`:
/// what came.
async fn closes_between(stream: &mut TcpStream, at_least: Duration, within: Duration) -> Vec<u8> {
    let start = std::time::Instant::now();
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(15), stream.read_to_end(&mut got));
    let _ = read.await;
    let took = start.elapsed();
    assert!(took >= at_least, "closed early: {took:?}");
    assert!(took < within, "not closed in time: {took:?}");
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_http2_and_websocket_connections_close_and_aws_header_limits_hold() {
    let lab = Lab::new("idle-h2", 61);
    let target = SocketAddr::from((lab.ip('a', 10), 9001));
    echo_backend(target).await;
    let h2_target = SocketAddr::from((lab.ip('a', 10), 9002));
    h2_backend(h2_target).await;
    let config = format!(
        "{}\n[[load_balancer]]\nname = \"i\"\navailability_zones = [\"us-east-1a\", \"us-east-1b\"]\n\
         attributes = {{ \"idle_timeout.timeout_seconds\" = 2 }}\n\
         [[load_balancer.listener]]\nprotocol = \"HTTP\"\nport = 8080\ndefault_action = {{ forward = \"i-tg\" }}\n\
         [[load_balancer.listener]]\nprotocol = \"HTTP\"\nport = 8081\ndefault_action = {{ forward = \"i-h2\" }}\n\
         [[target_group]]\nname = \"i-tg\"\nprotocol = \"HTTP\"\nport = 9001\ntargets = [\"{target}\"]\n\
         [[target_group]]\nname = \"i-h2\"\nprotocol = \"HTTP\"\nprotocol_version = \"HTTP2\"\nport = 9002\n\
         targets = [\"{h2_target}\"]\n",
        lab.settings()
    );
    let (node, h2_node) = (lab.node('a', 8080), lab.node('a', 8081));
    let config = lab.write("elbd.toml", &config);
    let mut elbd = Elbd::start(&lab, &config, &[], &[node, h2_node]);
    elbd.wait_healthy(4);
    let url = |path: &str| format!("http://{node}{path}");
    let h2c = "--http2-prior-knowledge";

    // A WebSocket that carries nothing for the idle timeout is closed (it was kept forever).
    let mut ws = TcpStream::connect(node).await.unwrap();
    let head = exchange_head(&mut ws, WEBSOCKET).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let idle = Duration::from_millis(1900);
    closes_between(&mut ws, idle, Duration::from_secs(5)).await;

    // An HTTP/2 connection with nothing to do gets a GOAWAY, and is closed when the client
    // does not take it up (this one never answers the PING that comes with it).
    let mut h2 = TcpStream::connect(node).await.unwrap();
    h2.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .unwrap();
    let got = closes_between(&mut h2, idle, Duration::from_secs(10)).await;
    let mut frames = Vec::new();
    let mut rest = got.as_slice();
    while rest.len() >= 9 {
        let len = usize::from(rest[0]) << 16 | usize::from(rest[1]) << 8 | usize::from(rest[2]);
        frames.push(rest[3]);
        rest = &rest[(9 + len).min(rest.len())..];
    }
    assert!(frames.contains(&0x7), "no GOAWAY among frames {frames:?}");

    // HTTP/2 takes headers up to AWS's 64 KB in all, as HTTP/1.1 does (hyper's default list
    // of 16 KB refused these three cookies with a bare 431).
    let cookies: Vec<String> = (0..3)
        .map(|i| format!("Cookie: c{i}={}", "a".repeat(7000)))
        .collect();
    for version in ["--http1.1", h2c] {
        let mut args = vec![version];
        for cookie in &cookies {
            args.extend(["-H", cookie.as_str()]);
        }
        assert_eq!(curl(&url("/"), &args).status, 200, "{version}");
    }

    // A target's response head over 32 KB is a 502, on the relay and through the exchange,
    // and from an HTTP/2 target (hyper's client failed heads over 16 KB), which takes HTTP/2
    // clients only.
    for (to, version) in [(node, "--http1.1"), (node, h2c), (h2_node, h2c)] {
        let (small, big) = (
            format!("http://{to}/bighead/31000"),
            format!("http://{to}/bighead/33000"),
        );
        assert_eq!(curl(&small, &[version]).status, 200, "{small} {version}");
        assert_eq!(curl(&big, &[version]).status, 502, "{big} {version}");
    }

    // A trace id over 7 KB is replaced by a new Root alone.
    let long = format!("X-Amzn-Trace-Id: Root=1-1-2;Pad={}", "p".repeat(7200));
    for version in ["--http1.1", h2c] {
        let reply = curl(&url("/trace"), &[version, "-H", &long]);
        assert!(
            reply.body.starts_with("Root=1-"),
            "{version}: {}",
            &reply.body[..40]
        );
        assert!(!reply.body.contains(';'), "{version}: kept fields");
    }
}

/// A real gRPC server (grpcio) on `addr`.
fn grpc_server(addr: SocketAddr) -> ProcessBackend {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/grpc_echo.py");
    let mut command = Command::new(venv().join("bin/python"));
    command.args([script, "serve", &addr.to_string()]);
    ProcessBackend::spawn(command, addr)
}

#[test]
fn grpc_calls_reach_a_grpc_target_group_and_http1_requests_get_464() {
    let lab = Lab::new("grpc", 26);
    let targets = [lab.ip('a', 10), lab.ip('b', 10)].map(|ip| SocketAddr::from((ip, 50051)));
    let _servers = targets.map(grpc_server);
    let config = format!(
        "{}\n[[load_balancer]]\nname = \"g\"\navailability_zones = [\"us-east-1a\", \"us-east-1b\"]\n\
         [[load_balancer.listener]]\nprotocol = \"HTTP\"\nport = 8080\ndefault_action = {{ forward = \"g-tg\" }}\n\
         [[target_group]]\nname = \"g-tg\"\nprotocol = \"HTTP\"\nprotocol_version = \"GRPC\"\nport = 50051\n\
         targets = [\"{}\", \"{}\"]\nhealth_check = {{ interval_seconds = 5, timeout_seconds = 2 }}\n",
        lab.settings(),
        targets[0],
        targets[1]
    );
    let node = lab.node('a', 8080);
    let mut elbd = Elbd::start(&lab, &lab.write("elbd.toml", &config), &[], &[node]);
    // The default gRPC check calls /AWS.ALB/healthcheck, which answers UNIMPLEMENTED (12):
    // healthy by the default GrpcCode matcher.
    elbd.wait_healthy(4);

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/grpc_echo.py");
    let mut served = std::collections::BTreeSet::new();
    for _ in 0..6 {
        let out = Command::new(venv().join("bin/python"))
            .args([script, "call", &node.to_string()])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (reply, by) = text.trim().split_once(' ').unwrap();
        assert_eq!(reply, "echo:hello", "the reply and its trailers came back");
        served.insert(by.to_owned());
    }
    assert_eq!(
        served.len(),
        2,
        "calls spread over both targets: {served:?}"
    );

    // HTTP/1.1 to a GRPC group is refused with 464, as AWS does.
    assert_eq!(curl(&format!("http://{node}/"), &[]).status, 464);
}

/// Sends `request` raw on a new connection; returns the status and whether the response said
/// `Connection: close`.
async fn raw(node: SocketAddr, request: &str) -> (u16, bool) {
    let mut stream = TcpStream::connect(node).await.unwrap();
    let head = exchange_head(&mut stream, request).await;
    let status = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    (
        status,
        head.to_ascii_lowercase().contains("connection: close"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn desync_mitigation_classifies_smuggling_attempts_and_acts_per_mode() {
    let lab = Lab::new("desync", 27);
    let target = SocketAddr::from((lab.ip('a', 10), 9001));
    let backend = Backend::start(target, Duration::ZERO).await;
    let api = SocketAddr::from((lab.ip('a', 1), 4566));
    let config = format!(
        "{}\n[[load_balancer]]\nname = \"d\"\navailability_zones = [\"us-east-1a\", \"us-east-1b\"]\n\
         [[load_balancer.listener]]\nprotocol = \"HTTP\"\nport = 8080\ndefault_action = {{ forward = \"d-tg\" }}\n\
         [[target_group]]\nname = \"d-tg\"\nprotocol = \"HTTP\"\nport = 9001\ntargets = [\"{target}\"]\n",
        lab.settings()
    );
    let node = lab.node('a', 8080);
    let mut elbd = Elbd::start(
        &lab,
        &lab.write("elbd.toml", &config),
        &["--api-listen", &api.to_string()],
        &[node, api],
    );
    elbd.wait_healthy(2);
    let both = "POST / HTTP/1.1\r\nHost: d\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    let suspicious = "POST / HTTP/1.1\r\nHost: d\r\nContent_Length: 5\r\nContent-Length: 0\r\n\r\n";
    let get_zero = "GET / HTTP/1.1\r\nHost: d\r\nContent-Length: 0\r\n\r\n";
    let double_chunked =
        "POST / HTTP/1.1\r\nHost: d\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n";
    let two_lengths =
        "POST / HTTP/1.1\r\nHost: d\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!";
    let compliant = "POST / HTTP/1.1\r\nHost: d\r\nContent-Length: 5\r\n\r\nhello";

    // defensive (the default): ambiguous ones pass and close; acceptable pass; severe get 400.
    assert_eq!(raw(node, both).await, (200, true));
    assert_eq!(raw(node, suspicious).await, (200, true));
    assert_eq!(raw(node, get_zero).await.0, 200);
    assert_eq!(raw(node, double_chunked).await, (400, true));
    assert_eq!(raw(node, two_lengths).await.0, 400);
    assert_eq!(raw(node, compliant).await, (200, false));

    // strictest: nothing but compliant requests reaches the target.
    let aws = crate::harness::Aws::new(api);
    let lb = aws.ok(&["elbv2", "describe-load-balancers", "--names", "d"]);
    let lb_arn = lb["LoadBalancers"][0]["LoadBalancerArn"].as_str().unwrap();
    let mode = |mode: &str| {
        aws.ok(&[
            "elbv2",
            "modify-load-balancer-attributes",
            "--load-balancer-arn",
            lb_arn,
            "--attributes",
            &format!("Key=routing.http.desync_mitigation_mode,Value={mode}"),
        ]);
        std::thread::sleep(Duration::from_millis(200));
    };
    mode("strictest");
    let before = backend.count();
    for request in [both, suspicious, get_zero, double_chunked, two_lengths] {
        assert_eq!(raw(node, request).await.0, 400, "{request:?}");
    }
    assert_eq!(
        backend.count(),
        before,
        "no ambiguous request reached the target"
    );
    assert_eq!(raw(node, compliant).await.0, 200);

    // monitor: whatever hyper can parse is forwarded, and logged with its class.
    mode("monitor");
    // (hyper closes the client connection after Content-Length beside Transfer-Encoding
    // whatever the mode.)
    assert_eq!(raw(node, both).await.0, 200);
    assert_eq!(raw(node, suspicious).await, (200, false));
    assert_eq!(raw(node, double_chunked).await.0, 200);
    assert_eq!(
        raw(node, two_lengths).await.0,
        400,
        "hyper refuses conflicting lengths"
    );
    let logs = elbd.logs();
    assert!(logs.contains("reason=\"BothTeClPresent\""), "{logs}");
    assert!(
        logs.contains("reason=\"MultipleTransferEncodingChunked\""),
        "{logs}"
    );
}
