//! Keep-alive HTTP/1.1 connections from one node to one target, the hot path of a load
//! balancer. A request takes an idle connection (or opens one from the node's address), the
//! relay or the general path's exchange writes and reads it, and the connection goes back
//! when the response has been read to its end: no pool key to hash, no task per connection
//! (what hyper-util's general-purpose client has).

use std::error::Error as StdError;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

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
    Request(BoxError),
    /// The client's request body broke off on its way.
    ClientBody(BoxError),
    /// Nothing went either way for the idle timeout while the target owed its answer...
    TargetTimeout,
    /// ... or while the client owed the rest of its body.
    ClientTimeout,
}

pub(crate) struct TargetPool {
    local: IpAddr,
    target: SocketAddr,
    idle: Mutex<Vec<(TcpStream, Instant)>>,
}

impl TargetPool {
    pub(crate) fn new(local: IpAddr, target: SocketAddr) -> Self {
        Self {
            local,
            target,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// The most recently used idle connection that is still open: one the target closed has
    /// its end of stream ready to read, which is looked at without a syscall unless the
    /// connection is readable.
    pub(crate) fn take(&self) -> Option<TcpStream> {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        loop {
            let (stream, since) = self.idle.lock().expect("not poisoned").pop()?;
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

    pub(crate) fn put(&self, stream: TcpStream) {
        let mut idle = self.idle.lock().expect("not poisoned");
        if idle.len() < MAX_IDLE {
            idle.push((stream, Instant::now()));
        }
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
