//! One HTTP health check: connect from the node's address, `GET path`, compare the status
//! with the matcher, close. As ELB's, the connection is not reused.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::Request;
use hyper::header::{CONNECTION, HOST, USER_AGENT};
use hyper_util::rt::TokioIo;
use tokio::net::TcpSocket;

use crate::plan::Probe;
use crate::state::ProbeResult;

pub(crate) async fn http(probe: &Probe) -> ProbeResult {
    match tokio::time::timeout(probe.timeout, exchange(probe)).await {
        Err(_) => ProbeResult::Timeout,
        Ok(Err(())) => ProbeResult::Failed,
        Ok(Ok(status)) if probe.matcher.matches(status) => ProbeResult::Pass,
        Ok(Ok(status)) => ProbeResult::Mismatch(status),
    }
}

/// The status code the target answers with.
async fn exchange(probe: &Probe) -> Result<u16, ()> {
    let socket = if probe.target.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(drop)?;
    socket.bind((probe.node_ip, 0).into()).map_err(drop)?;
    let stream = socket.connect(probe.target).await.map_err(drop)?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(drop)?;
    let driver = tokio::spawn(connection);
    let request = Request::get(probe.path.as_str())
        .header(HOST, probe.target.to_string())
        .header(USER_AGENT, "ELB-HealthChecker/2.0")
        .header(CONNECTION, "close")
        .body(Empty::<Bytes>::new())
        .map_err(drop)?;
    let status = sender
        .send_request(request)
        .await
        .map(|r| r.status().as_u16())
        .map_err(drop);
    driver.abort();
    status
}

/// A little jitter, so that thousands of checks with one interval do not fire together.
pub(crate) fn jittered(interval: Duration) -> Duration {
    interval.mul_f64(0.95 + fastrand::f64() * 0.1)
}
