//! The idle timeout (`idle_timeout.timeout_seconds`) of the connections whose bytes hyper
//! moves: HTTP/2 connections, HTTP/1 ones between requests (a head begun is the sniffer's to
//! time), and upgraded ones (WebSockets). No byte either way for that long ends them, as on
//! AWS. (The relay keeps its own.)
//!
//! I/O is counted, not timed, so that a read or a write costs an increment and no clock: a
//! watch looks at the count every quarter of the timeout, and a connection is idle once four
//! looks in a row find it unchanged. It ends between the timeout and 1.25 × it after its last
//! byte. A request hyper's client sends is watched alike until its answer comes, by the
//! frames of its body ([`NotedBody`]).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// How many reads that brought bytes and writes a connection has made, and whether its
/// last write (or flush) had to wait for the peer.
#[derive(Debug, Default)]
pub(crate) struct Activity {
    count: AtomicU64,
    blocked: AtomicBool,
}

impl Activity {
    pub(crate) fn note(&self) {
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Notes a write that wrote, and passes its result on.
    pub(crate) fn wrote(&self, polled: Poll<io::Result<usize>>) -> Poll<io::Result<usize>> {
        self.blocked.store(polled.is_pending(), Ordering::Relaxed);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.note();
        }
        polled
    }

    /// Notes whether a flush had to wait (TLS holds what the socket did not take).
    pub(crate) fn flushed(&self, polled: Poll<io::Result<()>>) -> Poll<io::Result<()>> {
        self.blocked.store(polled.is_pending(), Ordering::Relaxed);
        polled
    }

    /// Whether the peer left the last write waiting: idle so, it has stopped reading.
    pub(crate) fn blocked(&self) -> bool {
        self.blocked.load(Ordering::Relaxed)
    }

    fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

/// Resolves once `activity` has stood still for `timeout`.
pub(crate) async fn idle(activity: &Activity, timeout: Duration) {
    const LOOKS: u32 = 4;
    let mut seen = activity.count();
    let mut still = 0;
    loop {
        tokio::time::sleep(timeout / LOOKS).await;
        let now = activity.count();
        if now != seen {
            (seen, still) = (now, 0);
            continue;
        }
        still += 1;
        if still == LOOKS {
            return;
        }
    }
}

/// A stream whose reads and writes count in an [`Activity`].
pub(crate) struct Noted<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S> Noted<S> {
    pub(crate) fn new(inner: S, activity: Arc<Activity>) -> Self {
        Self { inner, activity }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Noted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.note();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Noted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.activity.wrote(polled)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.activity.flushed(polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A request body on its way through hyper's client: its frames count as activity, and it
/// knows whether the client owes the next one (hyper waits for it) when nothing moves.
pub(crate) struct NotedBody {
    inner: Incoming,
    progress: Arc<UploadProgress>,
}

#[derive(Debug, Default)]
pub(crate) struct UploadProgress {
    activity: Activity,
    client_owes: AtomicBool,
}

impl UploadProgress {
    /// Resolves once the upload has stood still for `timeout`: whether the client owed it
    /// bytes then (rather than the target being slow to take them, or to answer).
    pub(crate) async fn stalled(&self, timeout: Duration) -> bool {
        idle(&self.activity, timeout).await;
        self.client_owes.load(Ordering::Relaxed)
    }
}

impl NotedBody {
    pub(crate) fn new(inner: Incoming) -> (Self, Arc<UploadProgress>) {
        let progress = Arc::new(UploadProgress::default());
        let progress_seen = progress.clone();
        (Self { inner, progress }, progress_seen)
    }
}

impl Body for NotedBody {
    type Data = bytes::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        let owes = polled.is_pending();
        self.progress.client_owes.store(owes, Ordering::Relaxed);
        if !owes {
            self.progress.activity.note();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_connection_is_idle_after_the_timeout_without_io_and_not_before() {
        let activity = Arc::new(Activity::default());
        let timeout = Duration::from_secs(8);
        let start = tokio::time::Instant::now();
        let noting = activity.clone();
        // Bytes every 3 s for 20 s keep it busy; then it idles.
        tokio::spawn(async move {
            for _ in 0..7 {
                noting.note();
                tokio::time::sleep(Duration::from_secs(3)).await;
            }
        });
        idle(&activity, timeout).await;
        let took = start.elapsed();
        // The last byte at 18 s: idle from 26 s, seen by 28 s.
        assert!(took >= Duration::from_secs(26), "{took:?}");
        assert!(took <= Duration::from_secs(28), "{took:?}");
    }
}
