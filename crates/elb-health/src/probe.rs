//! One HTTP or HTTPS health check: connect from the node's address (and handshake, without
//! verifying the target's certificate, as ELB), send `GET path`, read the status line, close.
//! As ELB's, the connection is not reused; as HAProxy's, it is closed with a reset so that
//! thousands of checks a second leave no TIME_WAIT sockets behind.
//!
//! Only the status line matters, so the request is written as bytes made once per plan and
//! the answer is read no further than its status code: no HTTP client, no extra task.

use std::sync::OnceLock;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpSocket;
use tokio_rustls::TlsConnector;

use crate::plan::Probe;
use crate::state::ProbeResult;

pub(crate) async fn http(probe: &Probe) -> ProbeResult {
    match tokio::time::timeout(probe.timeout, exchange(probe)).await {
        Err(_) => ProbeResult::Timeout,
        Ok(None) => ProbeResult::Failed,
        Ok(Some(status)) if probe.matcher.matches(status) => ProbeResult::Pass,
        Ok(Some(status)) => ProbeResult::Mismatch(status),
    }
}

/// The status code the target answers with; `None` if it cannot be had.
async fn exchange(probe: &Probe) -> Option<u16> {
    let socket = if probe.target.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .ok()?;
    socket.bind((probe.node_ip, 0).into()).ok()?;
    let stream = socket.connect(probe.target).await.ok()?;
    if !probe.tls {
        let (status, stream) = ask(stream, &probe.request).await;
        let _ = stream.set_zero_linger();
        return status;
    }
    let server_name = ServerName::IpAddress(probe.target.ip().into());
    let stream = tls_connector().connect(server_name, stream).await.ok()?;
    let (status, stream) = ask(stream, &probe.request).await;
    let _ = stream.get_ref().0.set_zero_linger();
    status
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

fn tls_connector() -> &'static TlsConnector {
    static CONNECTOR: OnceLock<TlsConnector> = OnceLock::new();
    CONNECTOR.get_or_init(|| TlsConnector::from(elb_tls::client::target_config()))
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
}
