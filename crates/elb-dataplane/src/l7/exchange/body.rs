//! A target's response body as the exchange reads it from the node's own connection:
//! straight into frames, de-chunked with its trailers, under the idle timeout, the request's
//! body still going meanwhile; the connection goes back to its pool when both have ended.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::net::TcpStream;

use super::{FIRST_READ, MAX_READ, MIN_ROOM, Silence, Upload};
use crate::l7::framing::{ChunkedEnd, Framing};
use crate::l7::relay::head;
use crate::pool::{BoxError, TargetPool};

/// A target's response body.
pub struct TargetBody(Source);

enum Source {
    /// Read by the exchange from the node's own connection (boxed: a response moves through
    /// several futures, and this is most of its size).
    Exchange(Box<Exchanged>),
    /// Read by hyper's client: TLS and HTTP/2 targets, upgrades.
    Hyper(Incoming),
}

impl TargetBody {
    pub(crate) fn hyper(body: Incoming) -> Self {
        Self(Source::Hyper(body))
    }

    /// The body after a response head the exchange read into `buf` from `target`.
    pub(super) fn exchanged(
        target: (TcpStream, Arc<TargetPool>),
        (buf, upload): (BytesMut, Upload),
        (framing, reusable): (Framing, bool),
        idle: Duration,
    ) -> Self {
        let body = Exchanged::new(target, (buf, upload), (framing, reusable), idle);
        Self(Source::Exchange(Box::new(body)))
    }
}

impl Body for TargetBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut self.0 {
            Source::Exchange(body) => body.poll_next(cx),
            Source::Hyper(body) => Pin::new(body).poll_frame(cx).map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            Source::Exchange(body) => matches!(body.reading, Reading::Done),
            Source::Hyper(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Source::Exchange(body) => match body.reading {
                Reading::Length(left) => SizeHint::with_exact(left),
                Reading::Done => SizeHint::with_exact(0),
                Reading::Chunked(_) | Reading::Close => SizeHint::default(),
            },
            Source::Hyper(body) => body.size_hint(),
        }
    }
}

/// Where a response body read by the exchange stands.
enum Reading {
    /// This many bytes are still to be handed out.
    Length(u64),
    Chunked(ChunkedEnd),
    /// Until the target closes.
    Close,
    Done,
}

/// A response body read from the node's own connection, which goes back to its pool when the
/// body has ended, if it may take another request.
struct Exchanged {
    target: Option<(TcpStream, Arc<TargetPool>)>,
    /// Bytes read and not yet handed out.
    buf: BytesMut,
    reading: Reading,
    /// The request's body, when it is still going.
    upload: Upload,
    reusable: bool,
    read_size: usize,
    /// A chunked body's trailer section, as it arrives.
    trailers: Vec<u8>,
    /// How long the target may send nothing (and the request's body not move).
    silence: Silence,
}

/// What the bytes at hand give.
enum Step {
    Frame(Frame<Bytes>),
    End,
    More,
}

impl Exchanged {
    fn new(
        target: (TcpStream, Arc<TargetPool>),
        (buf, upload): (BytesMut, Upload),
        (framing, reusable): (Framing, bool),
        idle: Duration,
    ) -> Self {
        let reading = match framing {
            Framing::Empty | Framing::Length(0) => Reading::Done,
            Framing::Length(n) => Reading::Length(n),
            Framing::Chunked => Reading::Chunked(ChunkedEnd::default()),
            Framing::Close => Reading::Close,
        };
        let mut body = Self {
            target: Some(target),
            buf,
            reading: Reading::Close,
            upload,
            reusable,
            read_size: FIRST_READ,
            trailers: Vec::new(),
            silence: Silence::new(idle),
        };
        match reading {
            Reading::Done => body.end(),
            reading => body.reading = reading,
        }
        body
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        loop {
            let step = self.step();
            if matches!(step, Ok(Step::More))
                && let Some((target, _)) = &self.target
            {
                match self.upload.progress(target, cx) {
                    Ok(false) => {}
                    Ok(true) => self.silence.heard(),
                    Err(e) => return Poll::Ready(Some(Err(self.broken(e)))),
                }
            }
            match step {
                Ok(Step::Frame(frame)) => return Poll::Ready(Some(Ok(frame))),
                Ok(Step::End) => return Poll::Ready(None),
                Ok(Step::More) => {}
                Err(e) => return Poll::Ready(Some(Err(self.broken(e)))),
            }
            let Some((target, _)) = &self.target else {
                return Poll::Ready(None);
            };
            let read = match poll_read(target, &mut self.buf, self.read_size, cx) {
                Poll::Ready(read) => read,
                Poll::Pending => {
                    ready!(self.silence.poll_over(cx));
                    let silent = "the target sent nothing for the idle timeout";
                    return Poll::Ready(Some(Err(self.broken(silent.into()))));
                }
            };
            self.silence.heard();
            match read {
                Ok((0, _)) if matches!(self.reading, Reading::Close) => {
                    self.broken(());
                    return Poll::Ready(None);
                }
                Ok((0, _)) => {
                    let cut = "the target closed the connection before the body's end";
                    return Poll::Ready(Some(Err(self.broken(cut.into()))));
                }
                // A read that filled what was asked asks for more next time; a short one
                // for the first size again.
                Ok((_, true)) => self.read_size = (self.read_size * 2).min(MAX_READ),
                Ok((n, _)) if n < FIRST_READ / 4 => self.read_size = FIRST_READ,
                Ok(_) => {}
                Err(e) => return Poll::Ready(Some(Err(self.broken(e.into())))),
            }
        }
    }

    /// The exchange cannot go on: its connection is closed, not pooled.
    fn broken<E>(&mut self, error: E) -> E {
        self.silence.stop();
        self.target = None;
        self.reading = Reading::Done;
        self.upload = Upload::Stopped(None);
        error
    }

    /// The next frame the bytes at hand make, if they make one.
    fn step(&mut self) -> Result<Step, BoxError> {
        let step = match &mut self.reading {
            Reading::Done => return Ok(Step::End),
            _ if self.buf.is_empty() => return Ok(Step::More),
            Reading::Close => return Ok(Step::Frame(Frame::data(self.buf.split().freeze()))),
            Reading::Length(left) => {
                let take = usize::try_from(*left).map_or(self.buf.len(), |l| l.min(self.buf.len()));
                *left -= take as u64;
                let data = Step::Frame(Frame::data(self.buf.split_to(take).freeze()));
                if *left > 0 {
                    return Ok(data);
                }
                data
            }
            Reading::Chunked(decoder) => loop {
                if self.buf.is_empty() {
                    return Ok(Step::More);
                }
                let decoded = decoder
                    .decode(&self.buf)
                    .map_err(|_| "malformed chunked body")?;
                self.trailers
                    .extend_from_slice(&self.buf[decoded.trailers.clone()]);
                if decoded.done {
                    self.buf.advance(decoded.taken);
                    break match trailer_fields(&self.trailers)? {
                        Some(fields) => Step::Frame(Frame::trailers(fields)),
                        None => Step::End,
                    };
                }
                if decoded.data.is_empty() {
                    self.buf.advance(decoded.taken);
                    continue;
                }
                let taken = self.buf.split_to(decoded.taken).freeze();
                return Ok(Step::Frame(Frame::data(taken.slice(decoded.data))));
            },
        };
        // The body has ended with this step.
        self.end();
        Ok(step)
    }

    /// The body has ended: its connection goes back to the pool, unless the target sent
    /// more than the body, may not take another request, or answered before the request's
    /// body had all gone (what it has not read would be taken for the next request).
    fn end(&mut self) {
        self.reading = Reading::Done;
        self.silence.stop();
        let sent = matches!(self.upload, Upload::Sent);
        self.upload = Upload::Stopped(None);
        if let Some((target, pool)) = self.target.take()
            && self.reusable
            && sent
            && self.buf.is_empty()
        {
            pool.put(target);
        }
    }
}

/// The trailer section's fields, if it has any.
fn trailer_fields(section: &[u8]) -> Result<Option<HeaderMap>, BoxError> {
    if section.len() <= 2 {
        return Ok(None);
    }
    let mut storage = [httparse::EMPTY_HEADER; head::MAX_RESPONSE_HEADERS];
    let Ok(httparse::Status::Complete((_, fields))) =
        httparse::parse_headers(section, &mut storage)
    else {
        return Err("malformed trailers".into());
    };
    let mut map = HeaderMap::with_capacity(fields.len());
    for field in fields {
        let name = HeaderName::from_bytes(field.name.as_bytes())?;
        map.append(name, HeaderValue::from_bytes(field.value)?);
    }
    Ok(Some(map))
}

/// Reads what the target has sent into `buf`, with room for `size` more bytes when it has
/// little left: how many came, and whether they filled the room there was.
pub(super) fn poll_read(
    target: &TcpStream,
    buf: &mut BytesMut,
    size: usize,
    cx: &mut Context<'_>,
) -> Poll<io::Result<(usize, bool)>> {
    if buf.capacity() - buf.len() < MIN_ROOM {
        buf.reserve(size);
    }
    let room = buf.capacity() - buf.len();
    loop {
        ready!(target.poll_read_ready(cx))?;
        match target.try_read_buf(buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            read => return Poll::Ready(read.map(|n| (n, n == room))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use tokio::io::AsyncWriteExt;
    #[test]
    fn trailer_sections_become_trailer_frames() {
        assert!(trailer_fields(b"\r\n").unwrap().is_none());
        let fields = trailer_fields(b"X-Sum: 12\r\nX-B: 2\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(fields["x-sum"], "12");
        assert_eq!(fields.len(), 2);
        assert!(trailer_fields(b"no colon\r\n\r\n").is_err());
    }

    /// A target connection's two ends on loopback, and the pool the client end belongs to.
    async fn connection() -> (Arc<TargetPool>, TcpStream, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let pool = Arc::new(TargetPool::new(addr.ip(), addr));
        let client = TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (pool, client, server)
    }

    /// A response body read from `client` after the head, with `buf` read with the head.
    fn body(
        (pool, client): (&Arc<TargetPool>, TcpStream),
        buf: &[u8],
        framing: Framing,
        idle: Duration,
    ) -> TargetBody {
        let read = (BytesMut::from(buf), Upload::Sent);
        let body = Exchanged::new((client, Arc::clone(pool)), read, (framing, true), idle);
        TargetBody(Source::Exchange(Box::new(body)))
    }

    #[tokio::test]
    async fn the_body_is_read_de_chunked_and_its_connection_goes_back() {
        let (pool, client, mut server) = connection().await;
        let idle = Duration::from_secs(10);
        let body = body((&pool, client), b"5\r\nhel", Framing::Chunked, idle);
        server
            .write_all(b"lo\r\n6\r\n world\r\n0\r\nX-Sum: 11\r\n\r\n")
            .await
            .unwrap();
        let collected = body.collect().await.unwrap();
        assert_eq!(collected.trailers().unwrap()["x-sum"], "11");
        assert_eq!(&collected.to_bytes()[..], b"hello world");
        assert!(
            pool.take().is_some(),
            "the connection went back to the pool"
        );
    }

    #[tokio::test]
    async fn a_body_ends_with_an_error_once_the_target_is_silent_for_the_idle_timeout() {
        let (pool, client, mut server) = connection().await;
        // A byte every 250 ms, six times (longer in all than the 1 s idle timeout, each gap
        // well within it), then nothing.
        let trickle = tokio::spawn(async move {
            for byte in [b"a", b"b", b"c", b"d", b"e", b"f"] {
                tokio::time::sleep(Duration::from_millis(250)).await;
                server.write_all(byte).await.unwrap();
            }
            server
        });
        let idle = Duration::from_secs(1);
        let mut body = body((&pool, client), b"", Framing::Length(8), idle);
        let mut got = Vec::new();
        let mut last = std::time::Instant::now();
        let until_error = async {
            loop {
                match body.frame().await.expect("no end before the error") {
                    Ok(frame) => got.extend_from_slice(&frame.into_data().unwrap()),
                    Err(e) => break e,
                }
                last = std::time::Instant::now();
            }
        };
        let error = tokio::time::timeout(Duration::from_secs(5), until_error)
            .await
            .expect("the silence ends the body");
        assert_eq!(got, b"abcdef");
        assert!(error.to_string().contains("idle timeout"), "{error}");
        // Not before the whole timeout after the last byte (a timer never fires early).
        assert!(
            last.elapsed() >= Duration::from_millis(990),
            "{:?}",
            last.elapsed()
        );
        drop(trickle.await.unwrap());
    }
}
