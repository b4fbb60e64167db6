//! Keep-alive HTTP/1.1 connections from one node to one target, the hot path of a load
//! balancer. A request takes an idle connection (or opens one from the node's address), sends
//! on it, and the connection goes back when the response body has been read to its end: no
//! pool key to hash, no task per request to bring it back (what hyper-util's general-purpose
//! client does).

use std::error::Error as StdError;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tracing::debug;

use crate::dial::{self, Source};

/// AWS gives up connecting to a target after 10 s (and answers 504).
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle connections are not reused after this: a target's usual 60 s keep-alive would close
/// them under us.
pub(crate) const IDLE: Duration = Duration::from_secs(50);
/// Idle connections kept at most. A cap near the concurrency of real load makes connections
/// churn (64 halved h2c throughput, where 32 clients keep 320 requests in flight); this one
/// only bounds a pathological burst.
const MAX_IDLE: usize = 4096;

pub(crate) type BoxError = Box<dyn StdError + Send + Sync>;

/// Why a request to a target failed.
#[derive(Debug)]
pub(crate) enum SendError {
    Connect(BoxError),
    ConnectTimeout,
    /// The request was sent (or may have been) and failed.
    Request(hyper::Error),
}

pub(crate) struct TargetPool {
    local: IpAddr,
    target: SocketAddr,
    idle: Mutex<Vec<(SendRequest<Incoming>, Instant)>>,
    /// Idle connections of the HTTP/1.1 relay, which writes and reads them itself.
    raw: Mutex<Vec<(TcpStream, Instant)>>,
}

impl TargetPool {
    pub(crate) fn new(local: IpAddr, target: SocketAddr) -> Self {
        Self {
            local,
            target,
            idle: Mutex::new(Vec::new()),
            raw: Mutex::new(Vec::new()),
        }
    }

    /// Sends `req` on an idle connection, or on a new one; a request that an idle connection
    /// closed before taking is sent again on a new one. When no connection could be made,
    /// the request comes back with the error, untouched, for another target.
    pub(crate) async fn send(
        self: &Arc<Self>,
        mut req: Request<Incoming>,
    ) -> Result<Response<PooledBody>, (SendError, Option<Request<Incoming>>)> {
        let mut fresh = false;
        loop {
            let mut sender = match self.take_idle().await {
                Some(sender) => sender,
                None => {
                    fresh = true;
                    match self.connect().await {
                        Ok(sender) => sender,
                        Err(e) => return Err((e, Some(req))),
                    }
                }
            };
            match sender.try_send_request(req).await {
                Ok(response) => {
                    let pool = Arc::clone(self);
                    return Ok(response.map(|body| PooledBody::pooled(body, sender, pool)));
                }
                Err(mut e) => match e.take_message() {
                    // Not sent: the idle connection was gone. Once more, on a new one.
                    Some(back) if !fresh => req = back,
                    _ => return Err((SendError::Request(e.into_error()), None)),
                },
            }
        }
    }

    /// The most recently used idle connection that is still open and ready.
    async fn take_idle(&self) -> Option<SendRequest<Incoming>> {
        loop {
            let (mut sender, since) = self.idle.lock().expect("not poisoned").pop()?;
            if sender.is_closed() || since.elapsed() > IDLE {
                continue;
            }
            // Its last response ended just now; the connection may need a turn to be ready.
            if sender.ready().await.is_ok() {
                return Some(sender);
            }
        }
    }

    fn put_back(&self, sender: SendRequest<Incoming>) {
        let mut idle = self.idle.lock().expect("not poisoned");
        if idle.len() >= MAX_IDLE {
            idle.retain(|(s, _)| !s.is_closed());
        }
        if idle.len() < MAX_IDLE {
            idle.push((sender, Instant::now()));
        }
    }

    /// The most recently used idle relay connection that is still open: one the target
    /// closed has its end of stream ready to read, which is looked at without a syscall
    /// unless the connection is readable.
    pub(crate) fn take_raw(&self) -> Option<TcpStream> {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        loop {
            let (stream, since) = self.raw.lock().expect("not poisoned").pop()?;
            if since.elapsed() > IDLE {
                continue;
            }
            match stream.poll_read_ready(&mut cx) {
                Poll::Pending => return Some(stream),
                // Readable while idle: closed, or talking out of turn.
                Poll::Ready(_) => {
                    let mut byte = [0u8];
                    match stream.try_read(&mut byte) {
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            return Some(stream);
                        }
                        _ => continue,
                    }
                }
            }
        }
    }

    pub(crate) fn put_raw(&self, stream: TcpStream) {
        let mut raw = self.raw.lock().expect("not poisoned");
        if raw.len() < MAX_IDLE {
            raw.push((stream, Instant::now()));
        }
    }

    async fn connect(&self) -> Result<SendRequest<Incoming>, SendError> {
        let stream = self.dial().await?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| SendError::Connect(e.into()))?;
        let target = self.target;
        tokio::spawn(async move {
            if let Err(e) = connection.with_upgrades().await {
                debug!(%target, error = %e, "target connection ended with an error");
            }
        });
        Ok(sender)
    }

    /// A new connection to the target from the node's address.
    pub(crate) async fn dial(&self) -> Result<TcpStream, SendError> {
        dial::connect(Source::Node(self.local), self.target, CONNECT_TIMEOUT)
            .await
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::TimedOut => SendError::ConnectTimeout,
                _ => SendError::Connect(e.into()),
            })
    }
}

/// A target's response body; when it ends, its connection goes back to the pool.
pub struct PooledBody {
    inner: Incoming,
    home: Option<(SendRequest<Incoming>, Arc<TargetPool>)>,
}

impl PooledBody {
    fn pooled(inner: Incoming, sender: SendRequest<Incoming>, pool: Arc<TargetPool>) -> Self {
        Self {
            inner,
            home: Some((sender, pool)),
        }
    }

    /// A body from a connection elbd does not pool itself (HTTP/2 and TLS targets).
    pub(crate) fn unpooled(inner: Incoming) -> Self {
        Self { inner, home: None }
    }

    fn finished(&mut self) {
        if let Some((sender, pool)) = self.home.take() {
            pool.put_back(sender);
        }
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.finished(),
            Poll::Ready(Some(Ok(_))) if self.inner.is_end_stream() => self.finished(),
            // A broken body leaves a connection nobody should reuse.
            Poll::Ready(Some(Err(_))) => self.home = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
