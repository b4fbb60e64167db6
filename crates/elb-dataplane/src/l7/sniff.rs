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
//! Knowing where heads start and end, [`Sniffed`] also keeps the header timeout and the idle
//! timeout within a head: a client that has not sent a whole head in time, or that sent
//! nothing more of one for the idle timeout, is answered 408 and its stream ends, as on the
//! relay (hyper's own header timeout closes without an answer, and counts from the end of
//! the response before, so it is only a backstop here).
//!
//! hyper answers a head it cannot take (malformed, too many fields, bad framing) with a bare
//! status line; ALB answers with its page. So hyper gets each head only once it is whole and
//! [`malformed`](super::malformed) finds nothing hyper would refuse in it: a head still
//! coming is held back, and one hyper would refuse is answered here with ALB's page once
//! the requests before it are, ending the stream.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use super::desync::{Class, HeadFacts};
use super::framing::ChunkedEnd;
use super::idle::Activity;
use super::malformed;
use super::outcome::Answered;
use super::rescue::{ProxyError, closing_page};

/// Heads larger than this are refused. ALB refuses headers over 64 KB: `check_limits` answers
/// those, counting fields, for heads up to this; past it, only padding could keep them under.
const MAX_HEAD: usize = 96 * 1024;

/// How HTTP/2's preface starts.
const PREFACE: &[u8] = b"PRI * HTTP/2.0";

/// How long an overdue client's last bytes are read away after its 408.
pub(crate) const LINGER: Duration = Duration::from_secs(1);

/// Classifications of the connection's requests, oldest first.
pub(crate) type Queue = Arc<Mutex<VecDeque<(Class, &'static str)>>>;

pub(crate) struct Sniffed<S> {
    inner: S,
    /// Bytes already read from `inner` (by the relay), read again first.
    replay: Spool,
    /// Bytes tracked and released, waiting for room in hyper's buffer.
    ready: Spool,
    /// Bytes of a head not whole yet, held back from hyper.
    held: Vec<u8>,
    /// A head hyper would refuse, answered once the requests before it are.
    refusal: Option<ProxyError>,
    tracker: HeadTracker,
    queue: Queue,
    /// Classes found in one read, before they join the queue (kept to reuse its memory).
    found: Vec<(Class, &'static str)>,
    clock: HeadClock,
    progress: Arc<Progress>,
    /// Whether the load balancer takes HTTP/2 (`routing.http2.enabled`): without it, the
    /// preface is answered with a 505 here (hyper-util's server reads it as HTTP/2 whatever
    /// its builder says, once upgrades are on).
    http2: bool,
}

/// How far the connection's requests have come, shared with the service.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    /// HTTP/1 heads found whole.
    pub(crate) heads: AtomicUsize,
    /// Requests hyper handed to the service (the tracker stops counting heads after an
    /// `Upgrade` request, which hyper may answer without switching).
    pub(crate) started: AtomicUsize,
    /// Requests whose responses hyper is done with (see
    /// [`Recording`](super::outcome::Recording)).
    pub(crate) answered: Answered,
    /// The sniffer's own answer, if it gave one (a head timed out or malformed, a refused
    /// HTTP/2 preface), for its request's record.
    pub(crate) refused: OnceLock<ProxyError>,
    /// The connection opened with HTTP/2's preface.
    pub(crate) http2: AtomicBool,
    /// Part of an HTTP/1 head has come, not the rest: the head's clock, not the connection's
    /// idle timeout, ends the wait.
    pub(crate) mid_head: AtomicBool,
    /// Its reads and writes, for the idle timeout.
    pub(crate) activity: Activity,
}

impl Progress {
    /// No request of the connection is being read or answered (HTTP/1).
    pub(crate) fn between_requests(&self) -> bool {
        !self.mid_head.load(Ordering::Relaxed) && !self.in_flight()
    }

    /// A request whose head has come is not answered yet.
    fn in_flight(&self) -> bool {
        let begun = (self.heads.load(Ordering::Relaxed)).max(self.started.load(Ordering::Relaxed));
        self.answered.count() < begun
    }

    /// hyper has something left to write: a request not answered, or bytes the client has
    /// not taken yet. The sniffer's own page must wait for them.
    fn owes(&self) -> bool {
        self.in_flight() || self.activity.blocked()
    }
}

/// Bytes to hand hyper before the stream's own.
#[derive(Default)]
struct Spool {
    bytes: Vec<u8>,
    given: usize,
}

impl Spool {
    fn new(bytes: Vec<u8>) -> Self {
        Self { bytes, given: 0 }
    }

    fn is_empty(&self) -> bool {
        self.given == self.bytes.len()
    }

    /// Puts what fits into `buf`.
    fn give(&mut self, buf: &mut ReadBuf<'_>) {
        let n = buf.remaining().min(self.bytes.len() - self.given);
        buf.put_slice(&self.bytes[self.given..self.given + n]);
        self.given += n;
        if self.is_empty() {
            *self = Self::default();
        }
    }
}

/// The header timeout of one connection, and its idle timeout within a head.
struct HeadClock {
    limit: Duration,
    idle: Duration,
    /// When the head being read must be whole: from the connection's start for the first
    /// head, and from the first byte of each later one; none while no head is being read.
    whole_by: Option<Instant>,
    /// When the wait ends: at `whole_by`, or earlier at the idle timeout after the head's
    /// last byte; none while no head is being read.
    due: Option<Pin<Box<Sleep>>>,
    /// Set once a head is overdue: the stream is ending.
    ending: Option<Ending>,
    /// Requests answered when the clock was armed: one answered since restarts it (hyper
    /// reads a pipelined head only after the request before it).
    answered: usize,
}

/// How an overdue head (or a refused HTTP/2 preface) ends its stream: the 408 (505) written
/// (none to a client that sent nothing), the stream shut, and what the client still sends
/// read away for a moment, so that closing does not reset the page away.
struct Ending {
    page: Vec<u8>,
    written: usize,
    shut: bool,
    linger: Pin<Box<Sleep>>,
}

impl<S> Sniffed<S> {
    /// `inner` read after `replay`, its first head due at `first_due` and later ones
    /// `header_timeout` after their first byte, each within `idle_timeout` of its last byte
    /// (the first's wait for a first byte too); with the classes of its heads, and its
    /// requests' progress.
    pub(crate) fn new(
        inner: S,
        replay: Vec<u8>,
        (header_timeout, idle_timeout, first_due): (Duration, Duration, std::time::Instant),
        http2: bool,
    ) -> (Self, Queue, Arc<Progress>) {
        let queue = Queue::default();
        let progress = Arc::new(Progress::default());
        let first_due = Instant::from_std(first_due);
        let first_wait = first_due.min(Instant::now() + idle_timeout);
        let sniffed = Self {
            inner,
            replay: Spool::new(replay),
            ready: Spool::default(),
            held: Vec::new(),
            refusal: None,
            tracker: HeadTracker::default(),
            queue: queue.clone(),
            found: Vec::new(),
            clock: HeadClock {
                limit: header_timeout,
                idle: idle_timeout,
                whole_by: Some(first_due),
                due: Some(Box::pin(tokio::time::sleep_until(first_wait))),
                ending: None,
                answered: 0,
            },
            progress: progress.clone(),
            http2,
        };
        (sniffed, queue, progress)
    }

    /// After bytes of the stream: arms the clock at the first byte of a head (and afresh for
    /// a head begun in the read that `completed` another), moves its idle deadline on from
    /// each later byte, and stops it once no head is being read.
    fn time(&mut self, completed: bool) {
        let clock = &mut self.clock;
        let mid_head = self.tracker.mid_head();
        self.progress.mid_head.store(mid_head, Ordering::Relaxed);
        if !mid_head {
            (clock.whole_by, clock.due) = (None, None);
            return;
        }
        let now = Instant::now();
        if clock.whole_by.is_none() || completed {
            clock.whole_by = Some(now + clock.limit);
            clock.answered = self.progress.answered.count();
        }
        let by = clock.whole_by.map_or(now, |by| by.min(now + clock.idle));
        match &mut clock.due {
            Some(due) => due.as_mut().reset(by),
            None => clock.due = Some(Box::pin(tokio::time::sleep_until(by))),
        }
    }

    /// Whether the head being read is overdue. Not while hyper still owes an answer, nor if
    /// one was answered since the clock was armed: hyper reads a pipelined head only after
    /// the request before it, so its time starts again then.
    fn overdue(&mut self, cx: &mut Context<'_>) -> bool {
        let clock = &mut self.clock;
        let Some(due) = &mut clock.due else {
            return false;
        };
        if due.as_mut().poll(cx).is_pending() {
            return false;
        }
        let answered = self.progress.answered.count();
        if self.progress.owes() || answered != clock.answered {
            clock.answered = answered;
            let now = Instant::now();
            clock.whole_by = Some(now + clock.limit);
            due.as_mut().reset(now + clock.limit.min(clock.idle));
            let _ = due.as_mut().poll(cx);
            return false;
        }
        true
    }

    /// Before noting a write of hyper's: if it went through where the last was left waiting,
    /// a refusal waiting for hyper's bytes looks again (hyper reads again only when woken).
    fn wrote(&self, cx: &Context<'_>, through: bool) {
        if through && self.refusal.is_some() && self.progress.activity.blocked() {
            cx.waker().wake_by_ref();
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Sniffed<S> {
    /// The page for `error`, which the connection's record will give.
    fn refuse(&self, error: ProxyError) -> Vec<u8> {
        let page = closing_page(&error);
        let _ = self.progress.refused.set(error);
        page
    }

    /// Starts ending the stream with `page`.
    fn end_with(&mut self, page: Vec<u8>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.clock.ending = Some(Ending {
            page,
            written: 0,
            shut: false,
            linger: Box::pin(tokio::time::sleep(LINGER)),
        });
        self.poll_end(cx).map(Ok)
    }

    /// Ends the stream of an overdue head; ready when it has ended.
    fn poll_end(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(ending) = &mut self.clock.ending else {
            return Poll::Ready(());
        };
        while ending.written < ending.page.len() {
            match Pin::new(&mut self.inner).poll_write(cx, &ending.page[ending.written..]) {
                Poll::Ready(Ok(n)) if n > 0 => ending.written += n,
                Poll::Ready(_) => return Poll::Ready(()),
                Poll::Pending => return Poll::Pending,
            }
        }
        if !ending.shut {
            if Pin::new(&mut self.inner).poll_shutdown(cx).is_pending() {
                return Poll::Pending;
            }
            ending.shut = true;
        }
        let mut scratch = [0u8; 512];
        loop {
            if ending.linger.as_mut().poll(cx).is_ready() {
                return Poll::Ready(());
            }
            let mut read = ReadBuf::new(&mut scratch);
            match Pin::new(&mut self.inner).poll_read(cx, &mut read) {
                Poll::Ready(Ok(())) if !read.filled().is_empty() => {}
                Poll::Ready(_) => return Poll::Ready(()),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// Passes on what `fed` released of the bytes read into `buf` after `before`: held bytes
    /// of a head it completed go first (through `ready` when the two do not fit), the rest of
    /// a head still coming is held, and a refused head is dropped with all after it.
    fn release(&mut self, buf: &mut ReadBuf<'_>, before: usize, fed: Fed) {
        let read = &buf.filled()[before..];
        let pass = fed.pass;
        if self.held.is_empty() || pass == 0 {
            if fed.refused.is_some() {
                self.held.clear();
            } else {
                self.held.extend_from_slice(&read[pass..]);
            }
            buf.set_filled(before + pass);
        } else {
            let read = read.to_vec();
            let mut released = std::mem::take(&mut self.held);
            released.extend_from_slice(&read[..pass]);
            if fed.refused.is_none() {
                self.held.extend_from_slice(&read[pass..]);
            }
            buf.set_filled(before);
            self.ready = Spool::new(released);
            self.ready.give(buf);
        }
        self.refusal = fed.refused;
    }

    /// Answers a refused head once hyper owes nothing before it. Meanwhile what the client
    /// sends is read away (nothing after a refused head is taken), and its leaving is
    /// passed on: hyper then drops the request in flight, as for any client that leaves.
    fn poll_refuse(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.progress.owes() {
            // Woken by the next answer, or by the next write that goes through.
            self.progress.answered.wake_at_next(cx.waker());
            if self.progress.owes() {
                let mut scratch = [0u8; 512];
                loop {
                    let mut read = ReadBuf::new(&mut scratch);
                    match Pin::new(&mut self.inner).poll_read(cx, &mut read) {
                        Poll::Ready(Ok(())) if !read.filled().is_empty() => {}
                        Poll::Ready(ended) => return Poll::Ready(ended),
                        Poll::Pending => return Poll::Pending,
                    }
                }
            }
        }
        let error = self.refusal.take().expect("a refusal waits");
        let page = self.refuse(error);
        self.end_with(page, cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Sniffed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        // An overdue or refused head ends the stream: hyper then closes the connection.
        if this.clock.ending.is_some() {
            return this.poll_end(cx).map(Ok);
        }
        if !this.ready.is_empty() {
            this.ready.give(buf);
            return Poll::Ready(Ok(()));
        }
        loop {
            if this.refusal.is_some() {
                return this.poll_refuse(cx);
            }
            let before = buf.filled().len();
            let polled = if this.replay.is_empty() {
                Pin::new(&mut this.inner).poll_read(cx, buf)
            } else {
                this.replay.give(buf);
                Poll::Ready(Ok(()))
            };
            if polled.is_pending() {
                if !this.overdue(cx) {
                    return Poll::Pending;
                }
                let page = if this.tracker.mid_head() {
                    this.refuse(ProxyError::RequestTimeout)
                } else {
                    Vec::new()
                };
                return this.end_with(page, cx);
            }
            if buf.filled().len() == before {
                // The end of the stream, or an error: a head held back goes with it.
                return polled;
            }
            this.progress.activity.note();
            let fed = this.tracker.feed(&buf.filled()[before..], &mut this.found);
            if this.tracker.http2 && !this.http2 {
                // hyper never sees the preface: it reads the end of the stream after the page.
                buf.set_filled(before);
                let page = this.refuse(ProxyError::Http2Off);
                return this.end_with(page, cx);
            }
            if this.tracker.http2 {
                this.progress.http2.store(true, Ordering::Relaxed);
            }
            let completed = !this.found.is_empty();
            if completed {
                (this.progress.heads).fetch_add(this.found.len(), Ordering::Relaxed);
                this.queue
                    .lock()
                    .expect("not poisoned")
                    .extend(this.found.drain(..));
            }
            this.time(completed);
            this.release(buf, before, fed);
            if buf.filled().len() > before {
                return Poll::Ready(Ok(()));
            }
            // All of it held back, or refused: read on, or answer.
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Sniffed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.wrote(cx, polled.is_ready());
        self.progress.activity.wrote(polled)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.wrote(cx, polled.is_ready());
        self.progress.activity.flushed(polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.wrote(cx, polled.is_ready());
        self.progress.activity.wrote(polled)
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
    /// Not following any more (HTTP/2, an upgrade, a chunked body hyper refuses).
    Off,
    /// A head was refused: the stream ends there.
    Refused,
}

/// What of the bytes fed hyper may have.
#[derive(Debug)]
pub(crate) struct Fed {
    /// How many, from the first: the rest is a head not whole yet (held back), or refused.
    pass: usize,
    /// The head at `pass` is one hyper would refuse: the error its page tells.
    refused: Option<ProxyError>,
}

#[derive(Debug, Default)]
pub(crate) struct HeadTracker {
    state: State,
    /// The stream opened with HTTP/2's preface (at its very first byte, as hyper-util
    /// reads it: a `PRI` head later is HTTP/1's to refuse).
    http2: bool,
    /// A head, or a blank line before one, has come: the preface can no longer.
    opened: bool,
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

    /// Whether the head coming may be HTTP/2's preface, which opens a connection.
    fn may_be_preface(&self) -> bool {
        let n = self.pending.len().min(PREFACE.len());
        !self.opened && self.pending[..n] == PREFACE[..n]
    }

    /// Consumes `bytes`, pushing the class of every request head completed in them; says
    /// how many of them hyper may have: bodies, and heads once whole and not refused.
    pub(crate) fn feed(&mut self, bytes: &[u8], found: &mut Vec<(Class, &'static str)>) -> Fed {
        let mut at = 0;
        let mut pass = 0;
        while at < bytes.len() {
            match self.state {
                State::Off => return Fed::all(bytes),
                State::Refused => break,
                State::Body(n) => {
                    let take = n.min((bytes.len() - at) as u64);
                    at += take as usize;
                    pass = at;
                    self.state = if n == take {
                        State::Head
                    } else {
                        State::Body(n - take)
                    };
                }
                State::Chunked(ref mut chunks) => match chunks.scan(&bytes[at..]) {
                    Ok(Some(end)) => {
                        at += end;
                        pass = at;
                        self.state = State::Head;
                    }
                    Ok(None) => return Fed::all(bytes),
                    Err(_) => self.state = State::Off,
                },
                State::Head => {
                    let (taken, whole) = self.head_bytes(&bytes[at..], found);
                    at += taken;
                    match whole {
                        Some(Ok(())) => pass = at,
                        Some(Err(error)) => {
                            self.state = State::Refused;
                            return Fed {
                                pass,
                                refused: Some(error),
                            };
                        }
                        None => {}
                    }
                }
            }
        }
        // Blank lines before a head pass: hyper skips them.
        if matches!(self.state, State::Head) && self.pending.is_empty() {
            pass = bytes.len();
        }
        Fed {
            pass,
            refused: None,
        }
    }

    /// Takes the bytes of a head up to its blank line (all of `bytes` if it is not there
    /// yet); returns how many it took, and once the head is whole whether hyper may have
    /// it. Each byte is scanned once.
    fn head_bytes(
        &mut self,
        bytes: &[u8],
        found: &mut Vec<(Class, &'static str)>,
    ) -> (usize, Option<Result<(), ProxyError>>) {
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
                self.opened = true;
                self.pending.drain(..from);
                dropped += from;
                from = 0;
                continue;
            }
            self.pending.truncate(from);
            // The HTTP/2 preface: the rest of the connection is not HTTP/1.
            let preface = !self.opened && self.pending.starts_with(PREFACE);
            self.http2 |= preface;
            self.opened = true;
            let state = if preface {
                Ok(State::Off)
            } else if self.pending.len() > MAX_HEAD {
                Err(too_large(&self.pending))
            } else {
                head_state(&self.pending, found)
            };
            self.pending.clear();
            self.line_start = 0;
            // What of `bytes` the head took; the rest is its body or the next request.
            let taken = dropped + from - old;
            return match state {
                Ok(state) => {
                    self.state = state;
                    (taken, Some(Ok(())))
                }
                Err(error) => (taken, Some(Err(error))),
            };
        }
        if self.pending.len() > MAX_HEAD {
            return (bytes.len(), Some(Err(too_large(&self.pending))));
        }
        // hyper parses what it has of a head, and refuses it at the first byte it cannot
        // take (a TLS handshake on an HTTP port, say), not at a blank line that may never come.
        if !self.pending.is_empty() && !self.may_be_preface() {
            let mut fields = malformed::fields();
            if let Err(error) = malformed::parse(&self.pending, &mut fields) {
                return (bytes.len(), Some(Err(error)));
            }
        }
        (bytes.len(), None)
    }
}

impl Fed {
    fn all(bytes: &[u8]) -> Self {
        Self {
            pass: bytes.len(),
            refused: None,
        }
    }
}

/// The error for a head past [`MAX_HEAD`]: a 414 if its request line is not even whole.
fn too_large(head: &[u8]) -> ProxyError {
    if head.contains(&b'\n') {
        ProxyError::BadRequest("the request head is larger than 96 KB")
    } else {
        ProxyError::UriTooLong
    }
}

/// Classifies a complete head and says how its body is framed; or the error whose page
/// answers a head hyper would refuse.
fn head_state(head: &[u8], found: &mut Vec<(Class, &'static str)>) -> Result<State, ProxyError> {
    let mut fields = malformed::fields();
    let Some(req) = malformed::parse(head, &mut fields)? else {
        return Ok(State::Off);
    };
    let mut facts = HeadFacts::default();
    for field in req.headers.iter() {
        facts.add(field.name.as_bytes(), field.value);
    }
    let mut class = facts.class(req.method.unwrap_or_default().as_bytes());
    let bare_lf = head.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r');
    if bare_lf && class.0 < Class::Acceptable {
        class = (Class::Acceptable, "NonCompliantHeader");
    }
    found.push(class);
    if facts.upgrade {
        return Ok(State::Off);
    }
    // hyper's framing: Transfer-Encoding wins over Content-Length.
    Ok(match (facts.transfer_encoding(), facts.content_length()) {
        (Some(true), _) => State::Chunked(ChunkedEnd::default()),
        (Some(false), _) => State::Off,
        (None, Some(0)) => State::Head,
        (None, Some(n)) => State::Body(n),
        (None, None) if facts.has_length() => State::Off,
        (None, None) => State::Head,
    })
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
    fn only_a_stream_that_opens_with_the_preface_is_http2() {
        let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
        let later = [&b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..], preface].concat();
        let blank_first = [&b"\r\n"[..], preface].concat();
        for (stream, http2) in [(&preface[..], true), (&later, false), (&blank_first, false)] {
            for split in [1, 10, stream.len()] {
                let mut tracker = HeadTracker::default();
                tracker.feed(&stream[..split], &mut Vec::new());
                tracker.feed(&stream[split..], &mut Vec::new());
                assert_eq!(
                    tracker.http2,
                    http2,
                    "{:?}",
                    String::from_utf8_lossy(stream)
                );
            }
        }
    }

    fn fed(tracker: &mut HeadTracker, bytes: &[u8]) -> (usize, Option<u16>) {
        let fed = tracker.feed(bytes, &mut Vec::new());
        (fed.pass, fed.refused.map(|e| e.status().as_u16()))
    }

    #[test]
    fn hyper_gets_heads_only_whole_and_bodies_as_they_come() {
        let mut tracker = HeadTracker::default();
        assert_eq!(fed(&mut tracker, b"GET / HTTP/1.1\r\n\r\n"), (18, None));
        assert_eq!(fed(&mut tracker, b"POST / HT"), (0, None));
        let rest = b"TP/1.1\r\nContent-Length: 10\r\n\r\nabc";
        assert_eq!(fed(&mut tracker, rest), (rest.len(), None));
        assert_eq!(fed(&mut tracker, b"defghijGET /b"), (7, None));
        assert_eq!(fed(&mut tracker, b" HTTP/1.1\r\n\r\n\r\n"), (15, None));
    }

    #[test]
    fn a_head_hyper_would_refuse_stops_the_stream_where_it_starts() {
        let mut tracker = HeadTracker::default();
        let stream =
            b"GET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nX: a\r\n b\r\n\r\nGET / HTTP/1.1\r\n\r\n";
        assert_eq!(fed(&mut tracker, stream), (18, Some(400)));
        assert_eq!(fed(&mut tracker, b"GET / HTTP/1.1\r\n\r\n"), (0, None));

        let mut tracker = HeadTracker::default();
        assert_eq!(fed(&mut tracker, b"GET / HTTP/1.1\r\nX: a\r\n"), (0, None));
        assert_eq!(fed(&mut tracker, b" b\r\n\r\n"), (0, Some(400)));

        let mut tracker = HeadTracker::default();
        let huge = [b"GET / HTTP/1.1\r\nX: ".as_slice(), &[b'a'; MAX_HEAD]].concat();
        assert_eq!(fed(&mut tracker, &huge), (0, Some(400)));
        let mut tracker = HeadTracker::default();
        let huge = [b"GET /".as_slice(), &[b'a'; MAX_HEAD]].concat();
        assert_eq!(fed(&mut tracker, &huge), (0, Some(414)));

        // hyper refuses what it cannot take as soon as it comes, blank line or not; the
        // preface, coming in pieces, is not refused.
        for garbage in [
            &b"\x16\x03\x01\x02\x00\x01"[..],
            b"GET /\r\n",
            b"GET / HTTP/1.1\r\nX: a\r\n b",
        ] {
            let mut tracker = HeadTracker::default();
            assert_eq!(fed(&mut tracker, garbage), (0, Some(400)), "{garbage:?}");
        }
        let mut tracker = HeadTracker::default();
        assert_eq!(fed(&mut tracker, b"PRI * HTTP/2.0\r\n"), (0, None));
        assert_eq!(fed(&mut tracker, b"\r\nSM\r\n\r\n"), (8, None));

        let mut tracker = HeadTracker::default();
        let later_preface = b"GET / HTTP/1.1\r\n\r\nPRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
        assert_eq!(fed(&mut tracker, later_preface), (18, Some(400)));
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
