//! The general path's exchange with an HTTP/1.1 target, over the node's own connections to it
//! (the pool the relay uses): the request head written from its parts and its body framed as
//! hyper's client frames it; the response head parsed in place, its header values sharing the
//! bytes read; and the body read as a `hyper` body, de-chunked with its trailers, for whichever
//! protocol the client speaks (HTTP/2 clients above all). An upgrade goes over hyper's client
//! on a connection of its own, which the tunnel keeps after the 101.

use std::future::poll_fn;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;
use http::{Method, Request, Response, StatusCode, Version};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1;
use hyper::ext::ReasonPhrase;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

use super::framing::{ChunkedEnd, Framing};
use super::headers::push_header;
use super::relay::{MAX_RESPONSE_HEAD, head};
use crate::pool::{BoxError, SendError, TargetPool};

/// A target's response, or why there is none: with the request when it was not sent, so that
/// another target can take it.
pub(super) type Sent = Result<Response<TargetBody>, (SendError, Option<Request<Incoming>>)>;

/// Reads start at this size and double while they fill, up to `MAX_READ`: small responses
/// in little memory, large bodies in few reads.
const FIRST_READ: usize = 8 * 1024;
const MAX_READ: usize = 256 * 1024;
/// Less room than this left in the read buffer, and a read makes more first.
const MIN_ROOM: usize = 1024;

/// Sends `req` (its URI in origin form) on an idle connection to the target or a new one,
/// and reads the response head while its body goes. An idle connection the target had
/// closed is given up for another when the request was not taken (the head's write failed),
/// or when it was and may be sent again (an idempotent request without a body), as on the
/// relay. The response body ends with an error when nothing goes either way for `idle` (the
/// load balancer's idle timeout).
pub(super) async fn send(pool: &Arc<TargetPool>, req: Request<Incoming>, idle: Duration) -> Sent {
    let (mut parts, body) = req.into_parts();
    let outgoing = outgoing(&mut parts, &body);
    let mut out = Vec::with_capacity(1024);
    write_head(&mut out, &parts);
    let resendable = outgoing == Outgoing::Nothing && parts.method.is_idempotent();
    let failed = |e: BoxError| (SendError::Request(e), None);
    let mut buf = BytesMut::new();
    let target = loop {
        let (mut target, reused) = match pool.take() {
            Some(target) => (target, true),
            None => match pool.dial().await {
                Ok(target) => (target, false),
                Err(e) => return Err((e, Some(Request::from_parts(parts, body)))),
            },
        };
        match target.write_all(&out).await {
            Ok(()) => {}
            Err(_) if reused => continue,
            Err(e) => return Err(failed(e.into())),
        }
        if !(reused && resendable) {
            break target;
        }
        // Nothing from the target at all: it had closed the connection. Once more.
        buf.reserve(FIRST_READ);
        if let Ok(1..) = target.read_buf(&mut buf).await {
            break target;
        }
    };
    let mut upload = Upload::new(body, outgoing);
    let head_method = parts.method == Method::HEAD;
    let head = poll_fn(|cx| poll_head(&target, &mut buf, &mut upload, head_method, cx)).await;
    let head = head.map_err(|e| (e, None))?;
    let reusable = head.reusable && !asks_close(&parts.headers);
    let target = (target, Arc::clone(pool));
    let body = Exchanged::new(target, (buf, upload), (head.framing, reusable), idle);
    Ok(head
        .response
        .map(|()| TargetBody(Source::Exchange(Box::new(body)))))
}

/// Reads until a final response head is in `buf`, sending the request's body meanwhile.
fn poll_head(
    target: &TcpStream,
    buf: &mut BytesMut,
    upload: &mut Upload,
    head_method: bool,
    cx: &mut Context<'_>,
) -> Poll<Result<ResponseHead, SendError>> {
    if let Err(e) = upload.progress(target, cx) {
        return Poll::Ready(Err(SendError::ClientBody(e)));
    }
    loop {
        match response_head(buf, head_method) {
            Ok(Some(head)) => return Poll::Ready(Ok(head)),
            Ok(None) => {}
            Err(e) => return Poll::Ready(Err(SendError::Request(e))),
        }
        let failure = match ready!(poll_read(target, buf, FIRST_READ, cx)) {
            Ok((0, _)) => upload.failure().unwrap_or_else(closed),
            Ok(_) => continue,
            Err(e) => e.into(),
        };
        return Poll::Ready(Err(SendError::Request(failure)));
    }
}

/// Sends an upgrade request (a WebSocket's) over hyper's client, on a new connection that
/// the tunnel takes over after a 101.
pub(super) async fn upgrade(pool: &TargetPool, req: Request<Incoming>) -> Sent {
    let target = match pool.dial().await {
        Ok(target) => target,
        Err(e) => return Err((e, Some(req))),
    };
    let (mut sender, connection) = match http1::handshake(TokioIo::new(target)).await {
        Ok(handshake) => handshake,
        Err(e) => return Err((SendError::Connect(e.into()), Some(req))),
    };
    tokio::spawn(async move {
        if let Err(e) = connection.with_upgrades().await {
            tracing::debug!(error = %e, "upgraded target connection ended with an error");
        }
    });
    match sender.send_request(req).await {
        Ok(response) => Ok(response.map(TargetBody::hyper)),
        Err(e) => Err((SendError::Request(e.into()), None)),
    }
}

fn closed() -> BoxError {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the target closed the connection without a response",
    )
    .into()
}

/// How a request's body goes to the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outgoing {
    Nothing,
    Length,
    Chunked,
}

/// Frames the request's body as hyper's client does, setting the header that says so: its
/// Content-Length when known, chunked when not (hop-by-hop Transfer-Encoding is gone by now),
/// and nothing at all for GET, HEAD and CONNECT bodies of unknown length.
fn outgoing(parts: &mut Parts, body: &impl Body) -> Outgoing {
    if body.is_end_stream() {
        return Outgoing::Nothing;
    }
    if parts.headers.contains_key(header::CONTENT_LENGTH) {
        return Outgoing::Length;
    }
    if let Some(length) = body.size_hint().exact() {
        let length = HeaderValue::from(length);
        parts.headers.insert(header::CONTENT_LENGTH, length);
        return Outgoing::Length;
    }
    if matches!(parts.method, Method::GET | Method::HEAD | Method::CONNECT) {
        return Outgoing::Nothing;
    }
    let chunked = HeaderValue::from_static("chunked");
    parts.headers.insert(header::TRANSFER_ENCODING, chunked);
    Outgoing::Chunked
}

/// Writes the request line and header lines. HTTP/2 splits Cookie into a field per crumb;
/// they go to the target joined on one line (RFC 9113 §8.2.3).
fn write_head(out: &mut Vec<u8>, parts: &Parts) {
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let mut crumbs = parts.headers.get_all(header::COOKIE).iter();
    if let Some(first) = crumbs.next() {
        out.extend_from_slice(b"cookie: ");
        out.extend_from_slice(first.as_bytes());
        for crumb in crumbs {
            out.extend_from_slice(b"; ");
            out.extend_from_slice(crumb.as_bytes());
        }
        out.extend_from_slice(b"\r\n");
    }
    for (name, value) in &parts.headers {
        if name != header::COOKIE {
            push_header(out, name.as_str().as_bytes(), value.as_bytes());
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// Whether the request says its connection ends after it (desync mitigation's close).
fn asks_close(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONNECTION)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"))
}

/// A request body on its way to the target, sent as the client sends it, while the response
/// may already be coming (an early answer, or a target that answers as it reads).
enum Upload {
    Sending {
        body: Incoming,
        chunked: bool,
        /// What is still to be written of the last frame (with its chunk framing).
        pending: Bytes,
        /// The body has no more frames: when `pending` has gone, so has all of it.
        ended: bool,
    },
    /// All of it went.
    Sent,
    /// The target stopped taking it (with the write's error), or the exchange ended first.
    Stopped(Option<BoxError>),
}

impl Upload {
    fn new(body: Incoming, outgoing: Outgoing) -> Self {
        match outgoing {
            Outgoing::Nothing => Self::Sent,
            Outgoing::Length | Outgoing::Chunked => Self::Sending {
                body,
                chunked: outgoing == Outgoing::Chunked,
                pending: Bytes::new(),
                ended: false,
            },
        }
    }

    /// Writes what the client's body has ready: whether any of it went. Only a failure of
    /// that body is an error: a target that stops reading may still answer.
    fn progress(&mut self, target: &TcpStream, cx: &mut Context<'_>) -> Result<bool, BoxError> {
        let Self::Sending {
            body,
            chunked,
            pending,
            ended,
        } = self
        else {
            return Ok(false);
        };
        let mut wrote = false;
        match poll_send(target, body, *chunked, (pending, ended), &mut wrote, cx) {
            Poll::Pending => Ok(wrote),
            Poll::Ready(Ok(())) => {
                *self = Self::Sent;
                Ok(wrote)
            }
            Poll::Ready(Err(Broke::Target(e))) => {
                *self = Self::Stopped(Some(e.into()));
                Ok(wrote)
            }
            Poll::Ready(Err(Broke::Client(e))) => {
                *self = Self::Stopped(None);
                Err(e)
            }
        }
    }

    /// Why the target stopped taking the body, if it did.
    fn failure(&mut self) -> Option<BoxError> {
        match self {
            Self::Stopped(e) => e.take(),
            _ => None,
        }
    }
}

/// Which side broke an upload.
enum Broke {
    Client(BoxError),
    Target(io::Error),
}

/// Passes the client's body frames on, chunked or as they come, until they have all gone;
/// trailers are not sent (hyper's client sends only those a Trailer header announces, and
/// Trailer is hop-by-hop).
fn poll_send(
    target: &TcpStream,
    body: &mut Incoming,
    chunked: bool,
    (pending, ended): (&mut Bytes, &mut bool),
    wrote: &mut bool,
    cx: &mut Context<'_>,
) -> Poll<Result<(), Broke>> {
    loop {
        while !pending.is_empty() {
            ready!(target.poll_write_ready(cx)).map_err(Broke::Target)?;
            match target.try_write(pending) {
                Ok(n) => {
                    pending.advance(n);
                    *wrote = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(Broke::Target(e))),
            }
        }
        if *ended {
            return Poll::Ready(Ok(()));
        }
        let Some(frame) = ready!(Pin::new(&mut *body).poll_frame(cx)) else {
            *ended = true;
            if chunked {
                *pending = Bytes::from_static(b"0\r\n\r\n");
            }
            continue;
        };
        let frame = frame.map_err(|e| Broke::Client(e.into()))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        *ended = body.is_end_stream();
        *pending = if chunked && !data.is_empty() {
            let mut framed = Vec::with_capacity(data.len() + 32);
            framed.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
            framed.extend_from_slice(&data);
            framed.extend_from_slice(b"\r\n");
            if *ended {
                framed.extend_from_slice(b"0\r\n\r\n");
            }
            Bytes::from(framed)
        } else if chunked && *ended {
            Bytes::from_static(b"0\r\n\r\n")
        } else {
            data
        };
    }
}

/// A final response head, as the client's side takes it.
struct ResponseHead {
    response: Response<()>,
    framing: Framing,
    /// The target's connection may take another request after this response.
    reusable: bool,
}

/// Takes the response head from the start of `buf`, interim (1xx) ones skipped: `None` until
/// the whole head is there.
fn response_head(buf: &mut BytesMut, head_method: bool) -> Result<Option<ResponseHead>, BoxError> {
    loop {
        let mut storage = [const { MaybeUninit::uninit() }; head::MAX_RESPONSE_HEADERS];
        let mut res = httparse::Response::new(&mut []);
        let parser = httparse::ParserConfig::default();
        let head_len = match parser.parse_response_with_uninit_headers(&mut res, buf, &mut storage)
        {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) if buf.len() < MAX_RESPONSE_HEAD => return Ok(None),
            Ok(httparse::Status::Partial) => return Err("response head too large".into()),
            Err(_) => return Err("malformed response head".into()),
        };
        let facts = head::inspect_response(&res, head_method)?;
        if facts.status == 101 {
            return Err("101 to a request that asked for no upgrade".into());
        }
        if facts.status < 200 {
            buf.advance(head_len);
            continue;
        }
        let status = StatusCode::from_u16(facts.status)?;
        // Each value is found again in the head's bytes once they are frozen.
        let base = buf.as_ptr() as usize;
        let mut fields = Vec::with_capacity(res.headers.len());
        for field in res.headers.iter() {
            // Transfer-Encoding frames the body: a Content-Length beside it is not passed on.
            if facts.coded && field.name.eq_ignore_ascii_case("content-length") {
                continue;
            }
            let start = field.value.as_ptr() as usize - base;
            let name = HeaderName::from_bytes(field.name.as_bytes())?;
            fields.push((name, start..start + field.value.len()));
        }
        // hyper's client keeps a reason phrase that is not the status's own.
        let reason = res
            .reason
            .filter(|reason| Some(*reason) != status.canonical_reason())
            .map(|reason| Bytes::copy_from_slice(reason.as_bytes()));
        let version = match res.version {
            Some(0) => Version::HTTP_10,
            _ => Version::HTTP_11,
        };
        let (framing, reusable) = (facts.framing, facts.reusable);
        let head = buf.split_to(head_len).freeze();
        let mut headers = HeaderMap::with_capacity(fields.len());
        for (name, range) in fields {
            headers.append(name, HeaderValue::from_maybe_shared(head.slice(range))?);
        }
        let mut response = Response::new(());
        *response.status_mut() = status;
        *response.version_mut() = version;
        *response.headers_mut() = headers;
        if let Some(reason) = reason.and_then(|r| ReasonPhrase::try_from(r).ok()) {
            response.extensions_mut().insert(reason);
        }
        return Ok(Some(ResponseHead {
            response,
            framing,
            reusable,
        }));
    }
}

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
    /// How long the target may send nothing, and the timer that says so: armed when a read
    /// first waits (a body that came with its head never reads the clock), and moved on
    /// lazily from `heard`, when the target last sent something.
    idle: Duration,
    timer: Option<(Pin<Box<Sleep>>, Instant)>,
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
            idle,
            timer: None,
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
                    Ok(true) => self.heard(),
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
                Poll::Pending => return self.poll_idle(cx),
            };
            self.heard();
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

    /// Waiting for the target: an error once it has sent nothing for the idle timeout.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let (timer, heard) = self.timer.get_or_insert_with(|| {
            let now = Instant::now();
            (Box::pin(tokio::time::sleep_until(now + self.idle)), now)
        });
        while timer.as_mut().poll(cx).is_ready() {
            let due = *heard + self.idle;
            if due <= Instant::now() {
                let silent = "the target sent nothing for the idle timeout";
                return Poll::Ready(Some(Err(self.broken(silent.into()))));
            }
            timer.as_mut().reset(due);
        }
        Poll::Pending
    }

    /// Something went to or came from the target: the idle timeout starts again.
    fn heard(&mut self) {
        if let Some((_, heard)) = &mut self.timer {
            *heard = Instant::now();
        }
    }

    /// The exchange cannot go on: its connection is closed, not pooled.
    fn broken<E>(&mut self, error: E) -> E {
        self.timer = None;
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
        self.timer = None;
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
fn poll_read(
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
    use http_body_util::{BodyExt, Empty, Full};

    fn parts(method: Method, headers: &[(&str, &str)]) -> Parts {
        let mut req = Request::builder().method(method).uri("/p?q=1");
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        req.body(()).unwrap().into_parts().0
    }

    #[test]
    fn bodies_are_framed_as_hypers_client_frames_them() {
        let mut get = parts(Method::GET, &[]);
        assert_eq!(
            outgoing(&mut get, &Empty::<Bytes>::new()),
            Outgoing::Nothing
        );
        assert!(get.headers.is_empty());

        let mut put = parts(Method::PUT, &[]);
        let known = Full::new(Bytes::from_static(b"abc"));
        assert_eq!(outgoing(&mut put, &known), Outgoing::Length);
        assert_eq!(put.headers[header::CONTENT_LENGTH], "3");

        // A body whose length is not known ahead (a chunked or HTTP/2 one without a length).
        let unknown = || Unknown;
        let mut post = parts(Method::POST, &[]);
        assert_eq!(outgoing(&mut post, &unknown()), Outgoing::Chunked);
        assert_eq!(post.headers[header::TRANSFER_ENCODING], "chunked");
        let mut sized = parts(Method::POST, &[("content-length", "5")]);
        assert_eq!(outgoing(&mut sized, &unknown()), Outgoing::Length);
        assert!(!sized.headers.contains_key(header::TRANSFER_ENCODING));
        let mut get = parts(Method::GET, &[]);
        assert_eq!(outgoing(&mut get, &unknown()), Outgoing::Nothing);
    }

    struct Unknown;

    impl Body for Unknown {
        type Data = Bytes;
        type Error = io::Error;

        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
            Poll::Ready(None)
        }
    }

    #[test]
    fn the_head_joins_cookie_crumbs_and_keeps_the_rest_in_order() {
        let parts = parts(
            Method::GET,
            &[
                ("host", "a.test"),
                ("cookie", "a=1"),
                ("x-one", "1"),
                ("cookie", "b=2"),
                ("x-one", "2"),
            ],
        );
        let mut out = Vec::new();
        write_head(&mut out, &parts);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "GET /p?q=1 HTTP/1.1\r\ncookie: a=1; b=2\r\nhost: a.test\r\nx-one: 1\r\nx-one: 2\r\n\r\n"
        );
    }

    #[test]
    fn response_heads_skip_interims_and_share_the_bytes_read() {
        let mut buf = BytesMut::from(
            &b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n\
               HTTP/1.1 200 Fine\r\nContent-Length: 10\r\nTransfer-Encoding: chunked\r\n\
               X-A: 1\r\nX-A: 2\r\n\r\n5\r\nhello"[..],
        );
        let head = response_head(&mut buf, false).unwrap().unwrap();
        assert_eq!(head.response.status(), StatusCode::OK);
        let reason = head.response.extensions().get::<ReasonPhrase>().unwrap();
        assert_eq!(reason.as_bytes(), b"Fine");
        let headers = head.response.headers();
        assert!(!headers.contains_key(header::CONTENT_LENGTH));
        let values: Vec<_> = headers.get_all("x-a").iter().collect();
        assert_eq!(values, ["1", "2"]);
        assert_eq!(head.framing, Framing::Chunked);
        assert!(!head.reusable, "both framings: not trusted again");
        assert_eq!(&buf[..], b"5\r\nhello");

        let mut partial = BytesMut::from(&b"HTTP/1.1 200 OK\r\nContent-Le"[..]);
        assert!(response_head(&mut partial, false).unwrap().is_none());
        let mut upgraded = BytesMut::from(&b"HTTP/1.1 101 Switching Protocols\r\n\r\n"[..]);
        assert!(response_head(&mut upgraded, false).is_err());
        let mut head_only = BytesMut::from(&b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n"[..]);
        let head = response_head(&mut head_only, true).unwrap().unwrap();
        assert_eq!(head.framing, Framing::Empty);
        assert!(head.response.extensions().get::<ReasonPhrase>().is_none());
    }

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
