//! One health check from the node's address, by protocol. TCP: connect, then close.
//! A group with PROXY protocol v2 gets a LOCAL header first, whatever the check. HTTP and
//! HTTPS: connect (and handshake, without verifying the target's certificate, as ELB), send
//! `GET path`, read the status, close. As ELB's, the connection is not reused; as HAProxy's,
//! it is closed with a reset so that thousands of checks a second leave no TIME_WAIT sockets
//! behind.
//!
//! Over HTTP/1.1 only the status line matters, so the request is written as bytes made once
//! per plan and the answer is read no further than its status code. HTTP2 and GRPC groups
//! are checked over HTTP/2 with hyper; a gRPC check is a call whose grpc-status is judged.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use elb_model::ProtocolVersion;
use elb_wire::proxy_v2;
use http::Request;
use http::header::{CONTENT_TYPE, TE};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::TlsConnector;

use crate::plan::{Check, HttpCheck, LambdaCheck, Probe};
use crate::state::ProbeResult;
use elb_lambda::Invoker;

pub(crate) async fn run(probe: &Probe, lambda: Option<&Invoker>) -> ProbeResult {
    // A function is invoked, not connected to: security groups do not apply.
    let http = match &probe.check {
        Check::Lambda(check) => return invoke(probe, check, lambda).await,
        Check::Tcp => None,
        Check::Http(check) => Some(check),
    };
    if probe.blocked {
        tokio::time::sleep(probe.timeout).await;
        return ProbeResult::Timeout;
    }
    let answer = async {
        match http {
            None => {
                let stream = connect(probe).await?;
                let _ = stream.set_zero_linger();
                Some(None)
            }
            Some(check) => exchange(probe, check).await.map(Some),
        }
    };
    match tokio::time::timeout(probe.timeout, answer).await {
        Err(_) => ProbeResult::Timeout,
        Ok(None) => ProbeResult::Failed,
        Ok(Some(None)) => ProbeResult::Pass,
        Ok(Some(Some(status))) => match http {
            Some(check) if !check.matcher.matches(status) => ProbeResult::Mismatch(status),
            _ => ProbeResult::Pass,
        },
    }
}

/// A function's check: its answer's status code against the matcher. A function that
/// fails, or elbd without a Lambda endpoint, fails the check.
async fn invoke(probe: &Probe, check: &LambdaCheck, lambda: Option<&Invoker>) -> ProbeResult {
    let Some(invoker) = lambda else {
        return ProbeResult::Failed;
    };
    let answer = invoker.invoke(&check.function, check.event.clone());
    match tokio::time::timeout(probe.timeout, answer).await {
        Err(_) => ProbeResult::Timeout,
        Ok(Err(_)) => ProbeResult::Failed,
        Ok(Ok(payload)) => match elb_lambda::event::response(&payload, check.multi_value) {
            Err(_) => ProbeResult::Failed,
            Ok(answer) if check.matcher.matches(answer.status.as_u16()) => ProbeResult::Pass,
            Ok(answer) => ProbeResult::Mismatch(answer.status.as_u16()),
        },
    }
}

/// A TCP connection to the target from the node's address.
async fn connect(probe: &Probe) -> Option<TcpStream> {
    let socket = if probe.target.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .ok()?;
    socket.bind((probe.node_ip, 0).into()).ok()?;
    let mut stream = socket.connect(probe.target).await.ok()?;
    if probe.proxy_protocol {
        stream.write_all(&proxy_v2::local()).await.ok()?;
    }
    Some(stream)
}

/// The status code the target answers with; `None` if it cannot be had.
async fn exchange(probe: &Probe, check: &HttpCheck) -> Option<u16> {
    let stream = connect(probe).await?;
    let h2 = check.version != ProtocolVersion::Http1;
    if !check.tls {
        if h2 {
            return over_h2(stream, probe.target, check).await;
        }
        let (status, stream) = ask(stream, &check.request).await;
        let _ = stream.set_zero_linger();
        return status;
    }
    let server_name = ServerName::IpAddress(probe.target.ip().into());
    let stream = tls_connector(h2).connect(server_name, stream).await.ok()?;
    if h2 {
        return over_h2(stream, probe.target, check).await;
    }
    let (status, stream) = ask(stream, &check.request).await;
    let _ = stream.get_ref().0.set_zero_linger();
    status
}

/// An HTTP/2 check: `GET path`, or for gRPC an empty unary call to `path`, whose grpc-status
/// (in the headers of a trailers-only answer, else in the trailers) is the code judged.
async fn over_h2<S>(stream: S, target: SocketAddr, check: &HttpCheck) -> Option<u16>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .ok()?;
    let driver = tokio::spawn(connection);
    let grpc = check.version == ProtocolVersion::Grpc;
    let uri = format!("http://{target}{}", check.path);
    let request = if grpc {
        // One empty message: not compressed, length 0.
        Request::post(uri)
            .header(CONTENT_TYPE, "application/grpc")
            .header(TE, "trailers")
            .body(Full::new(Bytes::from_static(&[0, 0, 0, 0, 0])))
    } else {
        Request::get(uri).body(Full::new(Bytes::new()))
    };
    let request = request.ok()?;
    let answer = async {
        let response = sender.send_request(request).await.ok()?;
        let status = response.status().as_u16();
        if !grpc || status != 200 {
            return Some(status);
        }
        if let Some(code) = grpc_status(response.headers()) {
            return Some(code);
        }
        let body = response.into_body().collect().await.ok()?;
        body.trailers().and_then(grpc_status)
    };
    let code = answer.await;
    driver.abort();
    code
}

fn grpc_status(headers: &http::HeaderMap) -> Option<u16> {
    headers.get("grpc-status")?.to_str().ok()?.parse().ok()
}

/// Writes `request` and reads up to the status code; hands the stream back to be closed.
async fn ask<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, request: &[u8]) -> (Option<u16>, S) {
    if stream.write_all(request).await.is_err() {
        return (None, stream);
    }
    let mut head = [0u8; 16];
    let mut len = 0;
    while len < head.len() {
        match stream.read(&mut head[len..]).await {
            Ok(0) | Err(_) => break,
            Ok(n) => len += n,
        }
    }
    (status_code(&head[..len]), stream)
}

/// TLS to targets, offering HTTP/2 by ALPN for HTTP/2 checks.
fn tls_connector(h2: bool) -> &'static TlsConnector {
    static HTTP1: OnceLock<TlsConnector> = OnceLock::new();
    static HTTP2: OnceLock<TlsConnector> = OnceLock::new();
    if h2 {
        HTTP2.get_or_init(|| TlsConnector::from(elb_tls::client::target_config(&[b"h2"])))
    } else {
        HTTP1.get_or_init(|| TlsConnector::from(elb_tls::client::target_config(&[])))
    }
}

/// `HTTP/1.x NNN …` → NNN.
fn status_code(head: &[u8]) -> Option<u16> {
    let rest = head.strip_prefix(b"HTTP/1.")?;
    let code = rest.get(2..5)?;
    if rest.get(1) != Some(&b' ') || !code.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(code).ok()?.parse().ok()
}

/// A little jitter, so that thousands of checks with one interval do not fire together.
pub(crate) fn jittered(interval: Duration) -> Duration {
    interval.mul_f64(0.95 + fastrand::f64() * 0.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(status_code(b"HTTP/1.1 200 OK\r\n"), Some(200));
        assert_eq!(status_code(b"HTTP/1.0 503 Service"), Some(503));
        assert_eq!(status_code(b"HTTP/1.1 20"), None);
        assert_eq!(status_code(b"SSH-2.0-OpenSSH"), None);
        assert_eq!(status_code(b"HTTP/1.1 2x0 OK"), None);
        assert_eq!(status_code(b""), None);
    }

    /// A group with PROXY protocol v2: the check's connection starts with a LOCAL header,
    /// then the HTTP request.
    #[tokio::test]
    async fn checks_of_a_proxy_protocol_group_send_local_first() {
        let target = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = target.local_addr().unwrap();
        let request = b"GET /ping HTTP/1.1\r\n\r\n";
        let probe = Probe {
            node_ip: "127.0.0.1".parse().unwrap(),
            target: addr,
            check: Check::Http(HttpCheck {
                request: request.to_vec(),
                path: "/ping".into(),
                tls: false,
                version: ProtocolVersion::Http1,
                matcher: elb_model::Matcher::parse("200").unwrap(),
            }),
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(5),
            thresholds: crate::state::Thresholds {
                healthy: 2,
                unhealthy: 2,
            },
            blocked: false,
            proxy_protocol: true,
        };
        let checked = tokio::spawn(async move { run(&probe, None).await });
        let (mut stream, _) = target.accept().await.unwrap();
        let mut received = vec![0u8; 16 + request.len()];
        stream.read_exact(&mut received).await.unwrap();
        stream.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
        assert_eq!(
            elb_wire::proxy_v2::decode(&received),
            Ok(Some((elb_wire::proxy_v2::Header::Local, 16)))
        );
        assert_eq!(&received[16..], request);
        assert_eq!(checked.await.unwrap(), ProbeResult::Pass);
    }
}
