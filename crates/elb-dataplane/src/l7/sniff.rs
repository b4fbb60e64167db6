//! The raw request heads of an HTTP/1 connection, seen before hyper parses them, for desync
//! mitigation: hyper resolves some ambiguities silently (it drops Content-Length beside
//! Transfer-Encoding, and a repeated Content-Length), so only the bytes as sent can be
//! classified the way ALB classifies them.
//!
//! [`Sniffed`] wraps the client stream (after the bytes the relay read from it, if it handed
//! the connection over); every byte hyper reads also passes through a
//! [`HeadTracker`], which follows the HTTP/1 framing (heads, fixed-length and chunked bodies)
//! just far enough to find each head, and queues one classification per request, in order.
//! The service takes them in the same order, since HTTP/1 answers requests in order.
//!
//! Knowing where heads start and end, [`Sniffed`] also keeps the header timeout: a client
//! that has not sent a whole head in time is answered 408 and its stream ends (hyper's own
//! header timeout closes without an answer).

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use super::desync::{Class, HeadFacts};
use super::framing::ChunkedEnd;
use super::rescue::{ProxyError, closing_page};

/// Heads larger than this are not tracked (hyper refuses them anyway).
const MAX_HEAD: usize = 96 * 1024;

/// Classifications of the connection's requests, oldest first.
pub(crate) type Queue = Arc<Mutex<VecDeque<(Class, &'static str)>>>;

pub(crate) struct Sniffed<S> {
    inner: S,
    /// Bytes already read from `inner` (by the relay), read again first; and how many have.
    replay: Vec<u8>,
    replayed: usize,
    tracker: HeadTracker,
    queue: Queue,
    /// Classes found in one read, before they join the queue (kept to reuse its memory).
    found: Vec<(Class, &'static str)>,
    clock: HeadClock,
}

/// The header timeout of one connection.
struct HeadClock {
    limit: Duration,
    /// When the head being read is due: armed at the start for the first head, and at the
    /// first byte of each later one; none while no head is being read.
    due: Option<Pin<Box<Sleep>>>,
    /// The 408 being written, and how much of it has been.
    answer: Option<(Vec<u8>, usize)>,
    /// Set once a head timed out (for the request's record).
    timed_out: Arc<AtomicBool>,
}

impl<S> Sniffed<S> {
    /// `inner` read after `replay`, heads due `header_timeout` after they start; with the
    /// classes of its heads, and a flag that turns when one timed out.
    pub(crate) fn new(
        inner: S,
        replay: Vec<u8>,
        header_timeout: Duration,
    ) -> (Self, Queue, Arc<AtomicBool>) {
        let queue = Queue::default();
        let timed_out = Arc::new(AtomicBool::new(false));
        let sniffed = Self {
            inner,
            replay,
            replayed: 0,
            tracker: HeadTracker::default(),
            queue: queue.clone(),
            found: Vec::new(),
            clock: HeadClock {
                limit: header_timeout,
                due: Some(Box::pin(tokio::time::sleep(header_timeout))),
                answer: None,
                timed_out: timed_out.clone(),
            },
        };
        (sniffed, queue, timed_out)
    }
}

impl<S: AsyncWrite + Unpin> Sniffed<S> {
    /// Whether the head being read is overdue: then the stream ends, after a 408 if part of
    /// a head came (a client that sent nothing is let go without one). Ready when it has.
    fn poll_overdue(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let clock = &mut self.clock;
        if clock.answer.is_none() {
            let Some(due) = &mut clock.due else {
                return Poll::Pending;
            };
            if due.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let page = if self.tracker.mid_head() {
                clock.timed_out.store(true, Ordering::Relaxed);
                closing_page(&ProxyError::RequestTimeout)
            } else {
                Vec::new()
            };
            clock.answer = Some((page, 0));
        }
        let (page, written) = clock.answer.as_mut().expect("set above");
        while *written < page.len() {
            match Pin::new(&mut self.inner).poll_write(cx, &page[*written..]) {
                Poll::Ready(Ok(n)) if n > 0 => *written += n,
                Poll::Ready(_) => return Poll::Ready(()),
                Poll::Pending => return Poll::Pending,
            }
        }
        Pin::new(&mut self.inner).poll_shutdown(cx).map(|_| ())
    }

    /// Arms the clock at the first byte of a head, and stops it once no head is being read.
    fn time(&mut self) {
        let clock = &mut self.clock;
        if !self.tracker.mid_head() {
            clock.due = None;
        } else if clock.due.is_none() {
            clock.due = Some(Box::pin(tokio::time::sleep_until(
                Instant::now() + clock.limit,
            )));
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Sniffed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        // An overdue head ends the stream: hyper then closes the connection.
        if self.poll_overdue(cx).is_ready() {
            return Poll::Ready(Ok(()));
        }
        if self.clock.answer.is_some() {
            return Poll::Pending;
        }
        let before = buf.filled().len();
        let polled = if self.replayed < self.replay.len() {
            let this = &mut *self;
            let n = buf.remaining().min(this.replay.len() - this.replayed);
            buf.put_slice(&this.replay[this.replayed..this.replayed + n]);
            this.replayed += n;
            if this.replayed == this.replay.len() {
                (this.replay, this.replayed) = (Vec::new(), 0);
            }
            Poll::Ready(Ok(()))
        } else {
            Pin::new(&mut self.inner).poll_read(cx, buf)
        };
        if polled.is_ready() && buf.filled().len() > before {
            let this = &mut *self;
            this.tracker.feed(&buf.filled()[before..], &mut this.found);
            if !this.found.is_empty() {
                this.queue
                    .lock()
                    .expect("not poisoned")
                    .extend(this.found.drain(..));
            }
            this.time();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Sniffed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Where in the byte stream the tracker is.
#[derive(Debug, Default)]
enum State {
    /// Collecting a head until its blank line.
    #[default]
    Head,
    /// Skipping a body of this many more bytes.
    Body(u64),
    /// Following a chunked body to its end.
    Chunked(ChunkedEnd),
    /// Not following any more (an upgrade, an oversized head, a framing hyper refuses).
    Off,
}

#[derive(Debug, Default)]
pub(crate) struct HeadTracker {
    state: State,
    /// The head or line being collected.
    pending: Vec<u8>,
    /// Where the current line of a head starts: an index into `pending`, or `pending.len()`
    /// plus an index into the bytes being fed.
    line_start: usize,
}

impl HeadTracker {
    /// Whether part of a head has come and not the rest.
    fn mid_head(&self) -> bool {
        matches!(self.state, State::Head) && !self.pending.is_empty()
    }

    /// Consumes `bytes`, pushing the class of every request head completed in them.
    pub(crate) fn feed(&mut self, mut bytes: &[u8], found: &mut Vec<(Class, &'static str)>) {
        while !bytes.is_empty() {
            match self.state {
                State::Off => return,
                State::Body(n) => {
                    let take = n.min(bytes.len() as u64);
                    bytes = &bytes[take as usize..];
                    self.state = if n == take {
                        State::Head
                    } else {
                        State::Body(n - take)
                    };
                }
                State::Chunked(ref mut chunks) => match chunks.scan(bytes) {
                    Ok(Some(end)) => {
                        bytes = &bytes[end..];
                        self.state = State::Head;
                    }
                    Ok(None) => return,
                    Err(_) => self.state = State::Off,
                },
                State::Head => {
                    let taken = self.head_bytes(bytes, found);
                    bytes = &bytes[taken..];
                }
            }
        }
    }

    /// Takes the bytes of a head up to its blank line (all of `bytes` if it is not there
    /// yet); returns how many it took. Each byte is scanned once.
    fn head_bytes(&mut self, bytes: &[u8], found: &mut Vec<(Class, &'static str)>) -> usize {
        let old = self.pending.len();
        self.pending.extend_from_slice(bytes);
        let mut from = old;
        let mut dropped = 0;
        while let Some(i) = self.pending[from..].iter().position(|b| *b == b'\n') {
            let newline = from + i;
            from = newline + 1;
            let line = &self.pending[self.line_start..newline];
            if !(line.is_empty() || line == b"\r") {
                self.line_start = from;
                continue;
            }
            if self.line_start == 0 {
                // Blank lines before a request line are allowed and skipped.
                self.pending.drain(..from);
                dropped += from;
                from = 0;
                continue;
            }
            self.pending.truncate(from);
            self.state = head_state(&self.pending, found);
            self.pending.clear();
            self.line_start = 0;
            // What of `bytes` the head took; the rest is its body or the next request.
            return dropped + from - old;
        }
        if self.pending.len() > MAX_HEAD {
            self.state = State::Off;
        }
        bytes.len()
    }
}

/// Classifies a complete head and says how its body is framed. A head hyper would refuse (no
/// request line, a field without a colon, obs-fold) ends the tracking: the connection ends
/// with it.
fn head_state(head: &[u8], found: &mut Vec<(Class, &'static str)>) -> State {
    if head.starts_with(b"PRI * HTTP/2.0") {
        // The HTTP/2 preface: the rest of the connection is not HTTP/1.
        return State::Off;
    }
    let mut lines = head
        .split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let Some(method) = lines
        .next()
        .and_then(|line| line.split(|b| *b == b' ').next())
    else {
        return State::Off;
    };
    let mut facts = HeadFacts::default();
    for line in lines.filter(|l| !l.is_empty()) {
        if line[0] == b' ' || line[0] == b'\t' {
            return State::Off;
        }
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            return State::Off;
        };
        facts.add(&line[..colon], &line[colon + 1..]);
    }
    let mut class = facts.class(method);
    let bare_lf = head.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r');
    if bare_lf && class.0 < Class::Acceptable {
        class = (Class::Acceptable, "NonCompliantHeader");
    }
    found.push(class);
    if facts.upgrade {
        return State::Off;
    }
    // hyper's framing: Transfer-Encoding wins over Content-Length.
    match (facts.transfer_encoding(), facts.content_length()) {
        (Some(true), _) => State::Chunked(ChunkedEnd::default()),
        (Some(false), _) => State::Off,
        (None, Some(0)) => State::Head,
        (None, Some(n)) => State::Body(n),
        (None, None) if facts.has_length() => State::Off,
        (None, None) => State::Head,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classes(stream: &[u8], split: usize) -> Vec<(Class, &'static str)> {
        let mut tracker = HeadTracker::default();
        let mut found = Vec::new();
        let split = split.min(stream.len());
        tracker.feed(&stream[..split], &mut found);
        tracker.feed(&stream[split..], &mut found);
        found
    }

    #[test]
    fn heads_are_found_across_bodies_chunks_and_reads() {
        let stream = b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello\
POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n\
POST /c HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n\
GET /d HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n";
        let expected = vec![
            (Class::Compliant, ""),
            (Class::Compliant, ""),
            (Class::Ambiguous, "BothTeClPresent"),
            (Class::Ambiguous, "DuplicateContentLength"),
        ];
        for split in [0, 1, 30, 60, 100, 150, 200, stream.len()] {
            assert_eq!(classes(stream, split), expected, "split at {split}");
        }
    }

    #[test]
    fn blank_lines_before_a_request_are_skipped() {
        let stream = b"\r\nPOST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\n\r\n";
        for split in [0, 1, 2, 5, 40, 44] {
            assert_eq!(classes(stream, split).len(), 2, "split at {split}");
        }
    }

    #[test]
    fn bare_line_feeds_are_noted_and_upgrades_end_tracking() {
        let bare = b"GET / HTTP/1.1\nHost: x\n\n";
        assert_eq!(
            classes(bare, 5),
            vec![(Class::Acceptable, "NonCompliantHeader")]
        );
        let upgrade =
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n\
GET /not-http HTTP/1.1\r\n\r\n";
        assert_eq!(classes(upgrade, 0).len(), 1);
    }
}
