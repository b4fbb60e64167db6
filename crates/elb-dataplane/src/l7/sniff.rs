//! The raw request heads of an HTTP/1 connection, seen before hyper parses them, for desync
//! mitigation: hyper resolves some ambiguities silently (it drops Content-Length beside
//! Transfer-Encoding, and a repeated Content-Length), so only the bytes as sent can be
//! classified the way ALB classifies them.
//!
//! [`Sniffed`] wraps the client stream; every byte hyper reads also passes through a
//! [`HeadTracker`], which follows the HTTP/1 framing (heads, fixed-length and chunked bodies)
//! just far enough to find each head, and queues one classification per request, in order.
//! The service takes them in the same order, since HTTP/1 answers requests in order.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::desync::{self, Class};

/// Heads larger than this are not tracked (hyper refuses them anyway).
const MAX_HEAD: usize = 96 * 1024;

/// Classifications of the connection's requests, oldest first.
pub(crate) type Queue = Arc<Mutex<VecDeque<(Class, &'static str)>>>;

pub(crate) struct Sniffed<S> {
    inner: S,
    tracker: HeadTracker,
    queue: Queue,
}

impl<S> Sniffed<S> {
    pub(crate) fn new(inner: S) -> (Self, Queue) {
        let queue = Queue::default();
        let sniffed = Self {
            inner,
            tracker: HeadTracker::default(),
            queue: queue.clone(),
        };
        (sniffed, queue)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Sniffed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if polled.is_ready() && buf.filled().len() > before {
            let this = &mut *self;
            let mut found = Vec::new();
            this.tracker.feed(&buf.filled()[before..], &mut found);
            if !found.is_empty() {
                this.queue.lock().expect("not poisoned").extend(found);
            }
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
    /// Reading a chunk-size line.
    ChunkSize,
    /// Skipping chunk data, then its CRLF.
    ChunkData(u64),
    /// Reading trailer lines until the blank one.
    Trailers,
    /// Not following any more (an upgrade, an oversized head, a framing hyper refuses).
    Off,
}

#[derive(Debug, Default)]
pub(crate) struct HeadTracker {
    state: State,
    /// The head or line being collected.
    pending: Vec<u8>,
}

impl HeadTracker {
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
                State::ChunkData(n) => {
                    let take = n.min(bytes.len() as u64);
                    bytes = &bytes[take as usize..];
                    self.state = State::ChunkData(n - take);
                    if n == take {
                        // The chunk's CRLF ends a (blank) line.
                        self.state = State::ChunkSize;
                        self.pending.clear();
                        self.pending.push(b'\0');
                    }
                }
                State::Head | State::ChunkSize | State::Trailers => {
                    let end = match bytes.iter().position(|b| *b == b'\n') {
                        Some(i) => i + 1,
                        None => bytes.len(),
                    };
                    self.pending.extend_from_slice(&bytes[..end]);
                    bytes = &bytes[end..];
                    if self.pending.len() > MAX_HEAD {
                        self.state = State::Off;
                    } else if self.pending.ends_with(b"\n") {
                        self.line_done(found);
                    }
                }
            }
        }
    }

    /// `pending` ends with a newline: a complete line (or a head, once blank-terminated).
    fn line_done(&mut self, found: &mut Vec<(Class, &'static str)>) {
        match self.state {
            State::Head => {
                let blank_end =
                    self.pending.ends_with(b"\n\n") || self.pending.ends_with(b"\n\r\n");
                // Blank lines before a request are allowed and skipped.
                if self.pending.iter().all(u8::is_ascii_whitespace) {
                    self.pending.clear();
                } else if blank_end {
                    let head = std::mem::take(&mut self.pending);
                    self.state = self.head_done(&head, found);
                }
            }
            State::ChunkSize => {
                let line = std::mem::take(&mut self.pending);
                // After chunk data the first "line" is its CRLF; skip it.
                if line.first() == Some(&b'\0') {
                    return;
                }
                let digits: Vec<u8> = line
                    .iter()
                    .copied()
                    .take_while(u8::is_ascii_hexdigit)
                    .collect();
                let size = std::str::from_utf8(&digits)
                    .ok()
                    .and_then(|d| u64::from_str_radix(d, 16).ok());
                self.state = match size {
                    Some(0) => State::Trailers,
                    Some(n) => State::ChunkData(n),
                    None => State::Off,
                };
            }
            State::Trailers => {
                let line = std::mem::take(&mut self.pending);
                if line == b"\r\n" || line == b"\n" {
                    self.state = State::Head;
                }
            }
            _ => {}
        }
    }

    /// Classifies a complete head and says how its body is framed.
    fn head_done(&mut self, head: &[u8], found: &mut Vec<(Class, &'static str)>) -> State {
        let mut headers = [httparse::EMPTY_HEADER; 128];
        let mut request = httparse::Request::new(&mut headers);
        let mut config = httparse::ParserConfig::default();
        config.allow_multiple_spaces_in_request_line_delimiters(true);
        if !matches!(
            config.parse_request(&mut request, head),
            Ok(httparse::Status::Complete(_))
        ) {
            // hyper refuses what httparse cannot parse; the connection ends with it.
            return State::Off;
        }
        let method = request.method.unwrap_or("");
        let fields = request.headers.iter().map(|h| (h.name.as_bytes(), h.value));
        let mut class = desync::classify_raw(method, fields);
        if head.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r') && class.0 < Class::Acceptable {
            class = (Class::Acceptable, "NonCompliantHeader");
        }
        found.push(class);
        let has = |name: &'static str| {
            request
                .headers
                .iter()
                .filter(move |h| h.name.eq_ignore_ascii_case(name))
        };
        if has("upgrade").next().is_some() {
            return State::Off;
        }
        // hyper's framing: Transfer-Encoding wins over Content-Length.
        if let Some(te) = has("transfer-encoding").next_back() {
            let chunked = te
                .value
                .rsplit(|b| *b == b',')
                .next()
                .is_some_and(|c| c.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            return if chunked {
                State::ChunkSize
            } else {
                State::Off
            };
        }
        match has("content-length").next() {
            None => State::Head,
            Some(cl) => match std::str::from_utf8(cl.value.trim_ascii())
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
            {
                Some(0) => State::Head,
                Some(n) => State::Body(n),
                None => State::Off,
            },
        }
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
