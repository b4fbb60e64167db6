//! The relay's client side: the stream a request comes on, and how the relay reads it,
//! writes to it and answers on it.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::server::TlsStream;

use super::{Failure, Next, room};
use crate::access_log::Session;
use crate::l7::dress;
use crate::l7::outcome::Outcome;
use crate::l7::rescue::{self, ProxyError};
use crate::metrics::GroupMetrics;
use crate::send;
use crate::table::HttpRoute;

/// A client connection the relay serves.
pub(in crate::l7) trait ClientStream:
    AsyncRead + AsyncWrite + Unpin + Send + 'static
{
    /// Waits for the first bytes of the next request; `false` at the end of the stream.
    fn next_bytes(&mut self, buf: &mut Vec<u8>) -> impl Future<Output = io::Result<bool>> + Send;

    /// Whether bytes written are still held on this side (TLS records the socket did not
    /// take: a write returns once rustls holds them), to be flushed.
    fn holds_unsent(&self) -> bool;

    /// Writes the last bytes of the connection's last response; its shutdown follows.
    fn write_last(&mut self, bytes: &[u8]) -> impl Future<Output = io::Result<()>> + Send;
}

impl ClientStream for TcpStream {
    /// Only waits until the socket is readable: an idle connection holds no buffer.
    async fn next_bytes(&mut self, _: &mut Vec<u8>) -> io::Result<bool> {
        self.readable().await.map(|()| true)
    }

    fn holds_unsent(&self) -> bool {
        false
    }

    /// With MSG_MORE: the FIN leaves in their segment, and the client acknowledges one.
    async fn write_last(&mut self, bytes: &[u8]) -> io::Result<()> {
        send::send_last(self, bytes).await
    }
}

impl ClientStream for TlsStream<TcpStream> {
    /// Reads: rustls may hold decrypted bytes already, which socket readiness would not show.
    async fn next_bytes(&mut self, buf: &mut Vec<u8>) -> io::Result<bool> {
        room(buf);
        self.read_buf(buf).await.map(|n| n > 0)
    }

    fn holds_unsent(&self) -> bool {
        self.get_ref().1.wants_write()
    }

    /// As any write: the close_notify record comes between them and the FIN.
    async fn write_last(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.write_all(bytes).await
    }
}

pub(super) struct Client<S> {
    pub(super) stream: S,
    /// Who the client is, for its requests' access log entries.
    pub(super) session: Session,
    /// Bytes read from the client and not yet passed on.
    pub(super) buf: Vec<u8>,
    pub(super) idle_timeout: Duration,
    pub(super) header_timeout: Duration,
    /// When the head being read must be whole: from the connection's start for the first,
    /// from its first byte for later ones (none before it).
    pub(super) head_due: Option<Instant>,
    /// When the connection has lived its `client_keep_alive.seconds`: the request then
    /// being served is its last.
    pub(super) closes_at: Instant,
    /// The listener is draining: the request being served is the connection's last.
    pub(super) draining: bool,
    /// Bytes written to the client since the request began (for its outcome).
    pub(super) sent: u64,
}

/// Writes what of `bytes` the stream takes without waiting: how much.
fn write_now<S: AsyncWrite + Unpin>(stream: &mut S, bytes: &[u8]) -> io::Result<usize> {
    // Polled again, with a waker, by whoever waits for the rest or flushes what TLS holds.
    let mut cx = Context::from_waker(Waker::noop());
    let mut written = 0;
    while written < bytes.len() {
        match Pin::new(&mut *stream).poll_write(&mut cx, &bytes[written..]) {
            Poll::Ready(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
            Poll::Ready(Ok(n)) => written += n,
            Poll::Ready(Err(e)) => return Err(e),
            Poll::Pending => break,
        }
    }
    Ok(written)
}

impl<S: ClientStream> Client<S> {
    /// Reads more from the client into `buf`.
    pub(super) async fn read(&mut self) -> io::Result<usize> {
        room(&mut self.buf);
        match timeout(self.idle_timeout, self.stream.read_buf(&mut self.buf)).await {
            Ok(read) => read,
            Err(_) => Err(io::ErrorKind::TimedOut.into()),
        }
    }

    /// Writes `bytes` to the client; one that takes none of them for the idle timeout (it
    /// stopped reading) has left. What the socket takes at once is written without reading
    /// the clock (most responses): the timeout is armed only for the rest.
    pub(super) async fn write(&mut self, bytes: &[u8]) -> Result<(), Failure> {
        self.sent += bytes.len() as u64;
        let written = write_now(&mut self.stream, bytes).map_err(|_| Failure::Client)?;
        if written == bytes.len() && !self.stream.holds_unsent() {
            return Ok(());
        }
        let rest = async {
            self.stream.write_all(&bytes[written..]).await?;
            self.stream.flush().await
        };
        match timeout(self.idle_timeout, rest).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(Failure::Client),
        }
    }

    /// Shuts the connection's sending side, waiting at most the idle timeout for the client
    /// to take what is left.
    pub(super) async fn shutdown(&mut self) {
        let _ = timeout(self.idle_timeout, self.stream.shutdown()).await;
    }

    /// Writes bytes of a target's response, the `last` of the connection when its shutdown
    /// comes next, under the idle timeout as `write`.
    pub(super) async fn write_response(&mut self, bytes: &[u8], last: bool) -> Result<(), Failure> {
        if !last {
            return self.write(bytes).await;
        }
        self.sent += bytes.len() as u64;
        match timeout(self.idle_timeout, self.stream.write_last(bytes)).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(Failure::Client),
        }
    }

    /// Records a request of `len` bytes as it ended.
    pub(super) fn finish(
        &self,
        mut outcome: Outcome,
        len: usize,
        route: &HttpRoute,
        group: Option<&GroupMetrics>,
    ) {
        outcome.received_bytes = len as u64;
        outcome.sent_bytes = self.sent;
        outcome.record(route, group, &self.session);
    }

    /// Passes the next `left` bytes of the request body from the client to the target;
    /// what the client sent after them stays in `buf` (its next request).
    pub(super) async fn copy_body(
        &mut self,
        target: &mut TcpStream,
        mut left: u64,
    ) -> Result<(), Failure> {
        while left > 0 {
            match self.read().await {
                Ok(0) => return Err(Failure::Client),
                Ok(_) => {}
                // No byte of the body for the idle timeout: AWS's 408.
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    return Err(Failure::Proxy(ProxyError::RequestTimeout));
                }
                Err(_) => return Err(Failure::Client),
            }
            let take = usize::try_from(left).map_or(self.buf.len(), |l| l.min(self.buf.len()));
            match timeout(self.idle_timeout, target.write_all(&self.buf[..take])).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(Failure::Proxy(ProxyError::Target(e.into()))),
                Err(_) => return Err(Failure::Proxy(ProxyError::TargetTimeout)),
            }
            self.buf.drain(..take);
            left -= take as u64;
        }
        Ok(())
    }

    /// Answers a request of `len` bytes without forwarding it: it is skipped if it is all
    /// here, and the connection goes on unless the client asked to `close` it; otherwise the
    /// connection closes after the page.
    pub(super) async fn refuse(
        &mut self,
        error: &ProxyError,
        route: &HttpRoute,
        (len, close): (usize, bool),
        head: bool,
    ) -> Next {
        let whole = len <= self.buf.len();
        if whole {
            self.buf.drain(..len);
        }
        self.fail(error, Some(route), whole && !close, head).await
    }

    /// Answers a client that did not send a whole head in time with a 408, and closes (a
    /// client that sent nothing is let go without one).
    pub(super) async fn timed_out(&mut self, route: &HttpRoute) -> Next {
        if self.buf.is_empty() {
            return Next::Close;
        }
        let e = ProxyError::RequestTimeout;
        tracing::debug!(peer = %self.session.peer, "request head timed out");
        self.fail(&e, Some(route), false, false).await;
        let mut outcome = Outcome::refused();
        outcome.failed(&e);
        self.finish(outcome, self.buf.len(), route, None);
        crate::l7::linger(&mut self.stream).await;
        Next::Close
    }

    /// Answers with the load balancer's page for `error` (its length only, to a HEAD); the
    /// connection goes on if `keep` (and the error does not close it, as a desync refusal
    /// does).
    pub(super) async fn fail(
        &mut self,
        error: &ProxyError,
        route: Option<&HttpRoute>,
        keep: bool,
        head: bool,
    ) -> Next {
        let mut response = rescue::respond(error);
        if let Some(route) = route {
            dress(&mut response, route);
        }
        let keep = keep && !response.headers().contains_key(http::header::CONNECTION);
        let (parts, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let mut out = Vec::with_capacity(512 + body.len());
        rescue::write_http1(&mut out, &parts, &body, keep);
        if head {
            out.truncate(out.len() - body.len());
        }
        self.sent += out.len() as u64;
        match timeout(self.idle_timeout, self.stream.write_all(&out)).await {
            Ok(Ok(())) if keep => Next::Request,
            Ok(Ok(())) => {
                self.shutdown().await;
                Next::Close
            }
            _ => Next::Close,
        }
    }
}
