//! The general path's exchange with an HTTP/1.1 target, over the node's own connections to it
//! (the pool the relay uses): the request head written from its parts and its body framed as
//! hyper's client frames it; the response head parsed in place, its header values sharing the
//! bytes read; and the body read as a `hyper` body, de-chunked with its trailers, for whichever
//! protocol the client speaks (HTTP/2 clients above all). An upgrade goes over hyper's client
//! on a connection of its own, which the tunnel keeps after the 101. The response body is
//! `body`'s.

mod body;

use std::future::poll_fn;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

pub use body::TargetBody;
use body::poll_read;

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;
use http::{Method, Request, Response, StatusCode, Version};
use hyper::body::{Body, Incoming};
use hyper::client::conn::http1;
use hyper::ext::ReasonPhrase;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

use super::dressing::Dressing;
use super::framing::{ChunkedEnd, Framing};
use super::headers::push_header;
use super::limits::MAX_RESPONSE_HEAD;
use super::relay::head;
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

/// Sends `req` (its URI in origin form) on an idle connection to the target or a new one
/// (as `deliver` says), and reads the response head while its body goes. Nothing going
/// either way for `idle` (the load balancer's idle timeout) ends the wait for the head with
/// the timeout of whichever side owed bytes, and the response body with an error.
pub(super) async fn send(
    pool: &Arc<TargetPool>,
    req: Request<Incoming>,
    dressing: &Dressing,
    idle: Duration,
) -> Sent {
    let (mut parts, body) = req.into_parts();
    let outgoing = outgoing(&mut parts, &body);
    let mut out = Vec::with_capacity(1024);
    write_head(&mut out, &parts, dressing);
    let resendable = outgoing == Outgoing::Nothing && parts.method.is_idempotent();
    let mut buf = BytesMut::new();
    let target = match deliver(pool, &out, (resendable, idle), &mut buf).await {
        Ok(target) => target,
        Err(Undelivered::Unsent(e)) => return Err((e, Some(Request::from_parts(parts, body)))),
        Err(Undelivered::Failed(e)) => return Err((e, None)),
    };
    let mut upload = Upload::new(body, outgoing);
    let head_method = parts.method == Method::HEAD;
    let mut silence = Silence::new(idle);
    let head = poll_fn(|cx| {
        let waiting = (&mut upload, &mut silence);
        poll_head(&target, &mut buf, waiting, head_method, cx)
    });
    let head = head.await.map_err(|e| (e, None))?;
    // A chunked body that breaks in the bytes that came with its head is a 502, as on the
    // relay: the head has not gone to the client yet.
    if head.framing == Framing::Chunked && ChunkedEnd::default().scan(&buf).is_err() {
        return Err((SendError::Request("malformed chunked body".into()), None));
    }
    let reusable = head.reusable && !asks_close(&parts.headers);
    let target = (target, Arc::clone(pool));
    let body = TargetBody::exchanged(target, (buf, upload), (head.framing, reusable), idle);
    Ok(head.response.map(|()| body))
}

/// Why a request's head did not reach a target.
enum Undelivered {
    /// Not sent: another target may take the request.
    Unsent(SendError),
    /// Sent, or may have been: the request goes no further.
    Failed(SendError),
}

/// Writes the request's head `out` on an idle connection to the target or a new one (dialed
/// within its own connect timeout). One the target had closed is given up for another when
/// the write fails, or when the request may be sent again and nothing at all comes back (its
/// first bytes are then read into `buf`); the write and that read wait at most `idle`.
async fn deliver(
    pool: &TargetPool,
    out: &[u8],
    (resendable, idle): (bool, Duration),
    buf: &mut BytesMut,
) -> Result<TcpStream, Undelivered> {
    let silent = || Undelivered::Failed(SendError::TargetTimeout);
    loop {
        let (mut target, reused) = match pool.take() {
            Some(target) => (target, true),
            None => (pool.dial().await.map_err(Undelivered::Unsent)?, false),
        };
        match tokio::time::timeout(idle, target.write_all(out)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) if reused => continue,
            Ok(Err(e)) => return Err(Undelivered::Failed(SendError::Request(e.into()))),
            Err(_) => return Err(silent()),
        }
        if !(reused && resendable) {
            return Ok(target);
        }
        buf.reserve(FIRST_READ);
        match tokio::time::timeout(idle, target.read_buf(buf)).await {
            Ok(Ok(1..)) => return Ok(target),
            Ok(_) => {}
            Err(_) => return Err(silent()),
        }
    }
}

/// Reads until a final response head is in `buf`, sending the request's body meanwhile, for
/// as long as bytes go either way within the idle timeout: a long upload that flows is not
/// cut, and one that stops is the client's timeout, not the target's.
fn poll_head(
    target: &TcpStream,
    buf: &mut BytesMut,
    (upload, silence): (&mut Upload, &mut Silence),
    head_method: bool,
    cx: &mut Context<'_>,
) -> Poll<Result<ResponseHead, SendError>> {
    match upload.progress(target, cx) {
        Ok(true) => silence.heard(),
        Ok(false) => {}
        Err(e) => return Poll::Ready(Err(SendError::ClientBody(e))),
    }
    loop {
        match response_head(buf, head_method) {
            Ok(Some(head)) => return Poll::Ready(Ok(head)),
            Ok(None) => {}
            Err(e) => return Poll::Ready(Err(SendError::Request(e))),
        }
        let read = match poll_read(target, buf, FIRST_READ, cx) {
            Poll::Ready(read) => read,
            Poll::Pending => {
                ready!(silence.poll_over(cx));
                return Poll::Ready(Err(upload.stalled()));
            }
        };
        silence.heard();
        let failure = match read {
            Ok((0, _)) => upload.failure().unwrap_or_else(closed),
            Ok(_) => continue,
            Err(e) => e.into(),
        };
        return Poll::Ready(Err(SendError::Request(failure)));
    }
}

/// The idle timeout of an exchange: over once nothing has gone either way for `idle`. The
/// clock is read only once the exchange waits (an answer at hand never reads it), and then at
/// each sign of life (`heard`), the timer moved on lazily when it fires.
pub(super) struct Silence {
    idle: Duration,
    timer: Option<(Pin<Box<Sleep>>, Instant)>,
}

impl Silence {
    fn new(idle: Duration) -> Self {
        Self { idle, timer: None }
    }

    /// Bytes went to or came from the target: the timeout starts again.
    fn heard(&mut self) {
        if let Some((_, heard)) = &mut self.timer {
            *heard = Instant::now();
        }
    }

    /// Ready once the exchange has been silent for the idle timeout.
    fn poll_over(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let (timer, heard) = self.timer.get_or_insert_with(|| {
            let now = Instant::now();
            (Box::pin(tokio::time::sleep_until(now + self.idle)), now)
        });
        while timer.as_mut().poll(cx).is_ready() {
            let due = *heard + self.idle;
            if due <= Instant::now() {
                return Poll::Ready(());
            }
            timer.as_mut().reset(due);
        }
        Poll::Pending
    }

    /// The exchange is over: its timer goes.
    fn stop(&mut self) {
        self.timer = None;
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

/// Writes the request line, the client's header lines but those the dressing replaces, and
/// the dressing's.
fn write_head(out: &mut Vec<u8>, parts: &Parts, dressing: &Dressing) {
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in &parts.headers {
        if !dressing.replaces(name) {
            push_header(out, name.as_str().as_bytes(), value.as_bytes());
        }
    }
    dressing.write(out);
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

    /// Whose silence it is when nothing has moved for the idle timeout: the client's when
    /// its body has more to come and all it sent has gone on.
    fn stalled(&self) -> SendError {
        match self {
            Self::Sending {
                pending,
                ended: false,
                ..
            } if pending.is_empty() => SendError::ClientTimeout,
            _ => SendError::TargetTimeout,
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
            Ok(httparse::Status::Complete(n)) if n <= MAX_RESPONSE_HEAD => n,
            Ok(httparse::Status::Partial) if buf.len() < MAX_RESPONSE_HEAD => return Ok(None),
            Ok(_) => return Err("response head too large".into()),
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
            // Hop-by-hop fields are not passed on (Transfer-Encoding neither: the body is
            // de-chunked here), nor is a Content-Length beside a coding, nor one on a 204
            // (RFC 9110 §8.6: HTTP/2 clients reset the stream over it).
            let name = field.name.as_bytes();
            let length_on_204 = facts.status == 204 && name.eq_ignore_ascii_case(b"content-length");
            if !facts.passes(name) || length_on_204 {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::l7::dressing::tests::{arrival, settings};
    use crate::table::XffMode;
    use http_body_util::{Empty, Full};
    use hyper::body::Frame;

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
    fn the_head_keeps_the_clients_lines_in_order_and_ends_with_the_dressing() {
        let parts = parts(
            Method::GET,
            &[
                ("host", "a.test:80"),
                ("cookie", "a=1"),
                ("x-one", "1"),
                ("x-forwarded-proto", "https"),
                ("cookie", "b=2"),
                ("x-forwarded-for", "10.0.0.1"),
                ("x-one", "2"),
            ],
        );
        let http = settings(XffMode::Append, false, false);
        let trace = (0x5f5e_1000, 1);
        let dressing = Dressing::new(&parts.headers, "a.test:80", &http, &arrival(80), trace);
        let mut out = Vec::new();
        write_head(&mut out, &parts, &dressing.unwrap());
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "GET /p?q=1 HTTP/1.1\r\ncookie: a=1\r\ncookie: b=2\r\nx-one: 1\r\nx-one: 2\r\n\
             host: a.test\r\nx-forwarded-for: 10.0.0.1, 127.0.9.9\r\nx-forwarded-proto: http\r\n\
             x-forwarded-port: 80\r\nx-amzn-trace-id: Root=1-5f5e1000-000000000000000000000001\r\n\r\n"
        );
    }

    #[test]
    fn x_forwarded_for_is_kept_once_or_removed_as_the_mode_says() {
        let parts = parts(Method::GET, &[("x-forwarded-for", "10.0.0.1")]);
        let head = |xff| {
            let http = settings(xff, false, false);
            let dressing = Dressing::new(&parts.headers, "h", &http, &arrival(80), (0, 0));
            let mut out = Vec::new();
            write_head(&mut out, &parts, &dressing.unwrap());
            String::from_utf8(out).unwrap()
        };
        let preserved = head(XffMode::Preserve);
        assert_eq!(preserved.matches("x-forwarded-for").count(), 1);
        assert!(preserved.contains("x-forwarded-for: 10.0.0.1\r\n"));
        assert!(!head(XffMode::Remove).contains("x-forwarded-for"));
    }

    #[test]
    fn response_heads_skip_interims_and_share_the_bytes_read() {
        let mut buf = BytesMut::from(
            &b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n\
               HTTP/1.1 200 Fine\r\nContent-Length: 10\r\nTransfer-Encoding: chunked\r\n\
               Connection: x-gone\r\nX-Gone: 1\r\nX-A: 1\r\nX-A: 2\r\n\r\n5\r\nhello"[..],
        );
        let head = response_head(&mut buf, false).unwrap().unwrap();
        assert_eq!(head.response.status(), StatusCode::OK);
        let reason = head.response.extensions().get::<ReasonPhrase>().unwrap();
        assert_eq!(reason.as_bytes(), b"Fine");
        let headers = head.response.headers();
        assert!(!headers.contains_key(header::CONTENT_LENGTH));
        assert!(!headers.contains_key(header::TRANSFER_ENCODING));
        assert!(!headers.contains_key(header::CONNECTION) && !headers.contains_key("x-gone"));
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
        let mut no_content =
            BytesMut::from(&b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n"[..]);
        let head = response_head(&mut no_content, false).unwrap().unwrap();
        assert!(!head.response.headers().contains_key(header::CONTENT_LENGTH));
    }
}
