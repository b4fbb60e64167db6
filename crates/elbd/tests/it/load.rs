//! Fixed-rate load for the reliability tests: kept-alive and new-connection clients that
//! count every request answered and every one failed (and when), and slowloris clients.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What the load saw.
#[derive(Default)]
pub(crate) struct Tally {
    pub(crate) ok: AtomicU64,
    pub(crate) failed: AtomicU64,
    /// Why the first failures failed.
    pub(crate) reasons: std::sync::Mutex<Vec<String>>,
    /// When the last one failed.
    pub(crate) last_failure: std::sync::Mutex<Option<Instant>>,
}

impl Tally {
    fn fail(&self, why: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        *self.last_failure.lock().unwrap() = Some(Instant::now());
        let mut reasons = self.reasons.lock().unwrap();
        if reasons.len() < 10 {
            reasons.push(why);
        }
    }
}

/// Sends `GET /` on `stream` and reads the whole response: whether the connection may be
/// used again, or why the request failed.
pub(crate) async fn request(stream: &mut TcpStream, close: bool) -> Result<bool, String> {
    let connection = if close { "close" } else { "keep-alive" };
    let head = format!("GET / HTTP/1.1\r\nHost: handover.test\r\nConnection: {connection}\r\n\r\n");
    exchange(stream, &head).await
}

/// Sends `head` on `stream` and reads the whole response, as [`request`].
async fn exchange(stream: &mut TcpStream, head: &str) -> Result<bool, String> {
    stream
        .write_all(head.as_bytes())
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => return Err(format!("read: {e}")),
            Err(_) => return Err("no answer in 5 s".into()),
        };
        if n == 0 {
            return Err(format!("closed after {:?}", String::from_utf8_lossy(&got)));
        }
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).to_lowercase();
        let Some(end) = text.find("\r\n\r\n") else {
            continue;
        };
        let length: usize = (text.lines())
            .find_map(|l| l.strip_prefix("content-length: "))
            .map_or(0, |v| v.trim().parse().unwrap_or(0));
        if got.len() < end + 4 + length {
            continue;
        }
        if !text.starts_with("http/1.1 200") && !text.starts_with("http/1.0 200") {
            return Err(text.lines().next().unwrap_or_default().to_owned());
        }
        return Ok(!text.contains("connection: close"));
    }
}

/// A client on one kept-alive connection at `rate` requests per second, connecting again
/// when the load balancer closes it after a response.
pub(crate) async fn kept_alive(
    node: SocketAddr,
    rate: u32,
    tally: Arc<Tally>,
    running: Arc<AtomicBool>,
) {
    let mut ticks = tokio::time::interval(Duration::from_secs(1) / rate);
    // A stalled client does not catch up in a burst: the rate stays fixed.
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stream: Option<TcpStream> = None;
    while running.load(Ordering::Relaxed) {
        ticks.tick().await;
        let mut current = match stream.take() {
            Some(stream) => stream,
            None => match TcpStream::connect(node).await {
                Ok(stream) => stream,
                Err(e) => {
                    tally.fail(format!("connect: {e}"));
                    continue;
                }
            },
        };
        match request(&mut current, false).await {
            Ok(reusable) => {
                tally.ok.fetch_add(1, Ordering::Relaxed);
                stream = reusable.then_some(current);
            }
            Err(why) => tally.fail(format!("kept-alive: {why}")),
        }
    }
}

/// The requests a [`fresh`] client sends.
#[derive(Clone, Copy)]
pub(crate) enum Road {
    /// HTTP/1.1, which the relay takes.
    Relay,
    /// HTTP/1.0, which the relay leaves to the general path.
    General,
}

/// New connections at `rate` per second, one request each.
pub(crate) async fn fresh(
    node: SocketAddr,
    rate: u32,
    road: Road,
    tally: Arc<Tally>,
    running: Arc<AtomicBool>,
) {
    let mut ticks = tokio::time::interval(Duration::from_secs(1) / rate);
    // A stalled client does not catch up in a burst: the rate stays fixed.
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sent = tokio::task::JoinSet::new();
    while running.load(Ordering::Relaxed) {
        ticks.tick().await;
        let tally = tally.clone();
        sent.spawn(async move {
            let answered = match (TcpStream::connect(node).await, road) {
                (Ok(mut stream), Road::Relay) => request(&mut stream, true).await,
                (Ok(mut stream), Road::General) => {
                    exchange(&mut stream, "GET / HTTP/1.0\r\nHost: general.test\r\n\r\n").await
                }
                (Err(e), _) => Err(format!("connect: {e}")),
            };
            match answered {
                Ok(_) => tally.ok.fetch_add(1, Ordering::Relaxed),
                Err(why) => {
                    tally.fail(format!("new connection: {why}"));
                    0
                }
            };
        });
    }
    while sent.join_next().await.is_some() {}
}

/// A slowloris client: a request line, then a byte now and then, until it is closed.
pub(crate) async fn slowloris(node: SocketAddr, running: Arc<AtomicBool>) {
    let Ok(mut stream) = TcpStream::connect(node).await else {
        return;
    };
    let _ = stream.write_all(b"GET / HTTP/1.1\r\nX-Slow: ").await;
    while running.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if stream.write_all(b"x").await.is_err() {
            return;
        }
    }
}
