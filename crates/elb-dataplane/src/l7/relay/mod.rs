//! The HTTP/1.1 relay: the common request (HTTP/1.1, in cleartext or over TLS, forwarded to
//! an HTTP/1.1 target) handled the way dedicated proxies handle it, not through a general
//! HTTP library. Heads are parsed in place and written on with their header lines copied as
//! they came; bodies are copied as they are; the node keeps its own connections to each
//! target; and a cleartext connection waiting for its next request holds no buffer.
//!
//! Whatever the relay does not take (HTTP/2, upgrades, chunked or `Expect` requests, heads
//! desync mitigation does not find compliant, redirects and fixed responses, stickiness,
//! mutual TLS) goes to the general path (hyper), with the bytes read so far, for the rest of
//! the connection: the relay is a faster road to the same answers, never a second set of
//! rules.

pub(super) mod head;

use std::future::Future;
use std::io;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use http::HeaderMap;
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{timeout, timeout_at};
use tokio_rustls::server::TlsStream;

use super::decide::{decide, refusal};
use super::framing::{Framing, Remaining};
use super::headers::{push_client, push_decimal, strip_port, target_host, write_trace_id};
use super::outcome::Outcome;
use super::rescue::{self, ProxyError};
use super::rules::RequestView;
use super::{ClientCert, Clocks, dress, now_ms};
use crate::access_log::{Facts, LoggedHead, Session};
use crate::metrics::{CLIENT_CLOSED, GroupMetrics};
use crate::pool::TargetPool;
use crate::table::{HttpRoute, HttpSettings, RouteAction, RoutingTable, XffMode};
use crate::targets::{HttpTargets, REFUSALS};
use crate::{send, spare};

/// Request heads larger than this go the general way (which refuses them past its limits).
const MAX_HEAD: usize = 16 * 1024;
/// A target's response head may be this large.
pub(super) const MAX_RESPONSE_HEAD: usize = 64 * 1024;
/// A read asks for at least this much room.
const MIN_READ: usize = 1024;

/// Makes room in `buf` for a read: a spare buffer if it has none yet.
fn room(buf: &mut Vec<u8>) {
    if buf.capacity() == 0 {
        *buf = spare::take();
    } else if buf.capacity() - buf.len() < MIN_READ {
        buf.reserve(spare::SIZE);
    }
}

/// A client connection the relay serves.
pub(super) trait ClientStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// Waits for the first bytes of the next request; `false` at the end of the stream.
    fn next_bytes(&mut self, buf: &mut Vec<u8>) -> impl Future<Output = io::Result<bool>> + Send;

    /// Writes the last bytes of the connection's last response; its shutdown follows.
    fn write_last(&mut self, bytes: &[u8]) -> impl Future<Output = io::Result<()>> + Send;
}

impl ClientStream for TcpStream {
    /// Only waits until the socket is readable: an idle connection holds no buffer.
    async fn next_bytes(&mut self, _: &mut Vec<u8>) -> io::Result<bool> {
        self.readable().await.map(|()| true)
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

    /// As any write: the close_notify record comes between them and the FIN.
    async fn write_last(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.write_all(bytes).await
    }
}

/// Serves one client connection: request after request through the relay, or the rest of it
/// on the general path once a request needs that.
pub(super) async fn serve<S: ClientStream>(
    stream: S,
    local: SocketAddr,
    session: Session,
    table: Arc<ArcSwap<RoutingTable>>,
    mut stopped: watch::Receiver<bool>,
    settings: &HttpSettings,
) {
    let started = Instant::now();
    let mut client = Client {
        stream,
        session,
        buf: Vec::new(),
        idle_timeout: settings.idle_timeout,
        header_timeout: settings.header_timeout,
        head_due: Some(started + settings.header_timeout),
        closes_at: started + settings.client_keep_alive,
        draining: false,
        sent: 0,
    };
    let (idle, header) = (settings.idle_timeout, settings.header_timeout);
    // The first head is due from the connection's start; a client that sends nothing at all
    // is let go without a page (as browsers' unused preconnections are).
    let mut first = true;
    loop {
        if client.buf.is_empty() {
            // Between requests a connection keeps no buffer.
            spare::give(std::mem::take(&mut client.buf));
            let wait = if first { idle.min(header) } else { idle };
            tokio::select! {
                ready = timeout(wait, client.stream.next_bytes(&mut client.buf)) => {
                    if !matches!(ready, Ok(Ok(true))) {
                        return;
                    }
                }
                // Draining, a kept-alive client is answered once more, with `Connection:
                // close`, rather than closed under a request it may be sending (the drain's
                // end cuts it). Seen between requests: no lock is taken per request.
                changed = stopped.changed(), if !client.draining => match changed {
                    Ok(()) => {
                        client.draining = true;
                        continue;
                    }
                    Err(_) => return,
                },
            }
        }
        if !std::mem::replace(&mut first, false) {
            // Later heads are due from their first byte.
            client.head_due = None;
        }
        // One load per request: the request keeps this table until it ends.
        let snapshot = table.load_full();
        let Some(route) = snapshot.http(local) else {
            let fail = client.fail(&ProxyError::ListenerGone, None, false, false);
            Box::pin(fail).await;
            return;
        };
        if !route.relayable {
            break;
        }
        match relay(&mut client, route).await {
            Next::Request => {}
            Next::Close => return,
            Next::Handover => break,
        }
    }
    let Some(http) = table.load().http(local).map(|r| r.http.clone()) else {
        return;
    };
    let ends = (local, client.session, ClientCert::default());
    let clocks = Clocks {
        head_due: (client.head_due).unwrap_or_else(|| Instant::now() + client.header_timeout),
        closes_at: client.closes_at,
    };
    let general = super::http(
        client.stream,
        client.buf,
        ends,
        &http,
        clocks,
        table,
        stopped,
    );
    // Boxed: the general path's state is large, and most connections never need it.
    Box::pin(general).await;
}

struct Client<S> {
    stream: S,
    /// Who the client is, for its requests' access log entries.
    session: Session,
    /// Bytes read from the client and not yet passed on.
    buf: Vec<u8>,
    idle_timeout: Duration,
    header_timeout: Duration,
    /// When the head being read must be whole: from the connection's start for the first,
    /// from its first byte for later ones (none before it).
    head_due: Option<Instant>,
    /// When the connection has lived its `client_keep_alive.seconds`: the request then
    /// being served is its last.
    closes_at: Instant,
    /// The listener is draining: the request being served is the connection's last.
    draining: bool,
    /// Bytes written to the client since the request began (for its outcome).
    sent: u64,
}

/// What the connection does after a request.
enum Next {
    Request,
    Close,
    Handover,
}

/// A request the relay takes, its head already written for the target.
struct Taken<'r> {
    /// Its record, decided and to be completed.
    outcome: Outcome,
    head_len: usize,
    body: u64,
    close: bool,
    head_method: bool,
    /// May be sent again if a kept-alive target connection closes without answering.
    idempotent: bool,
    targets: &'r HttpTargets,
}

/// What reading a request head came to.
enum Reading<'r> {
    Taken(Taken<'r>),
    /// The head is not complete yet.
    Partial,
    Handover,
    /// Answered by the load balancer.
    Failed(Refusal),
}

/// A request the load balancer answers itself, with what answering it needs.
struct Refusal {
    error: ProxyError,
    /// The request's length, head and body, in bytes.
    len: usize,
    head: bool,
    /// The client asked to close the connection after it.
    close: bool,
    /// Its record so far.
    outcome: Outcome,
}

/// Relays one request and its response, with buffers borrowed for as long.
async fn relay<S: ClientStream>(client: &mut Client<S>, route: &HttpRoute) -> Next {
    let (mut out, mut response) = (spare::take(), spare::take());
    let next = exchange(client, route, &mut out, &mut response).await;
    spare::give(out);
    spare::give(response);
    next
}

/// Relays one request: its head written for the target into `out`, the target's response
/// read into `response`. Its outcome is recorded when it ends, whichever way.
/// The load balancer's own answers (error pages, the 408 and its linger) are awaited boxed:
/// they are rare, and their state would otherwise size every connection's task, idle or not.
async fn exchange<S: ClientStream>(
    client: &mut Client<S>,
    route: &HttpRoute,
    out: &mut Vec<u8>,
    response: &mut Vec<u8>,
) -> Next {
    client.sent = 0;
    let mut taken = loop {
        match take_request(&client.buf, route, &client.session, out) {
            Reading::Taken(taken) => break taken,
            Reading::Partial => {
                if client.head_due.is_none() && !client.buf.is_empty() {
                    client.head_due = Some(Instant::now() + client.header_timeout);
                }
                let read = match client.head_due {
                    Some(due) => timeout_at(due.into(), client.read()).await,
                    None => Ok(client.read().await),
                };
                match read {
                    Err(_) => return Box::pin(client.timed_out(route)).await,
                    Ok(Ok(0) | Err(_)) => return Next::Close,
                    Ok(Ok(_)) => {}
                }
            }
            Reading::Handover => return Next::Handover,
            Reading::Failed(mut refused) => {
                refused.close |= client.draining || Instant::now() >= client.closes_at;
                let e = &refused.error;
                let next = client.refuse(e, route, (refused.len, refused.close), refused.head);
                let next = Box::pin(next).await;
                refused.outcome.failed(e);
                client.finish(refused.outcome, refused.len, route, None);
                return next;
            }
        }
    };
    taken.close |= client.draining || Instant::now() >= client.closes_at;
    let len = request_len(taken.head_len, taken.body);
    let group = &taken.targets.proto.metrics;
    let Some(mut picked) = taken.targets.next(now_ms) else {
        let e = ProxyError::NoReachableTargets;
        let next = client.refuse(&e, route, (len, taken.close), taken.head_method);
        let next = Box::pin(next).await;
        taken.outcome.failed(&e);
        client.finish(taken.outcome, len, route, Some(group));
        return next;
    };
    // The body bytes already read go with the head.
    let have = client.buf.len() - taken.head_len;
    let first = usize::try_from(taken.body).map_or(have, |body| body.min(have));
    out.extend_from_slice(&client.buf[taken.head_len..taken.head_len + first]);
    client.buf.drain(..taken.head_len + first);
    let rest = taken.body - first as u64;

    let idle = route.http.idle_timeout;
    let head = taken.head_method;
    if let Some(facts) = taken.outcome.facts() {
        facts.dispatched = Some(facts.started.elapsed());
    }
    // A target that refuses the connection has not begun the request (or, for an idempotent
    // one, closed the kept-alive connection it was sent on): it goes to another target, as
    // NGINX's `proxy_next_upstream error` does, up to `REFUSALS` of them.
    let mut refused = Vec::new();
    let (endpoint, sent_at, sent) = loop {
        let endpoint = picked.0;
        taken.outcome.target = Some(endpoint.addr);
        let request = Outgoing {
            out,
            rest,
            idempotent: taken.idempotent,
        };
        let sent_at = Instant::now();
        let sent = send(&endpoint.proto.pool, request, client, response, idle).await;
        if refused.len() < REFUSALS && sent.as_ref().is_err_and(Failure::is_refusal) {
            refused.push(endpoint.addr);
            if let Some(other) = taken.targets.other_than(&refused) {
                group
                    .target_connection_errors
                    .fetch_add(1, Ordering::Relaxed);
                endpoint.load.count_failure();
                picked = other;
                continue;
            }
        }
        break (endpoint, sent_at, sent);
    };
    let mut outcome = std::mem::replace(&mut taken.outcome, Outcome::refused());
    let answered = match sent {
        Ok(target) => {
            outcome.target_time = Some(sent_at.elapsed());
            respond(
                target,
                &endpoint.proto.pool,
                (out, response),
                (&taken, &mut outcome.target_status),
                client,
                idle,
            )
            .await
        }
        Err(failure) => Err(failure),
    };
    // The client got the target's status once its head went out.
    outcome.elb_status = outcome.target_status.unwrap_or(0);
    let next = match answered {
        Ok(true) => Next::Request,
        Ok(false) => {
            let _ = client.stream.shutdown().await;
            Next::Close
        }
        Err(Failure::Client) => {
            // Before an answer, ALB logs it as 460: the client left first.
            if outcome.target_status.is_none() {
                outcome.elb_status = CLIENT_CLOSED;
            }
            outcome.error = Some("ClientClosed");
            Next::Close
        }
        Err(Failure::TargetBroke) => {
            outcome.error = Some("TargetResponseIncomplete");
            outcome.target_error = true;
            Next::Close
        }
        Err(Failure::Proxy(e)) => {
            let next = Box::pin(client.fail(&e, Some(route), true, head)).await;
            outcome.failed(&e);
            next
        }
        Err(Failure::Midway(e)) => {
            let next = Box::pin(client.fail(&e, Some(route), false, head)).await;
            outcome.failed(&e);
            next
        }
    };
    if outcome.failed_by_target() {
        endpoint.load.count_failure();
    }
    client.finish(outcome, len, route, Some(group));
    next
}

/// A request's length in bytes, head and body.
fn request_len(head_len: usize, body: u64) -> usize {
    usize::try_from(body)
        .ok()
        .and_then(|body| body.checked_add(head_len))
        .unwrap_or(usize::MAX)
}

/// Reads the request head at the start of `buf`: whether the relay takes it, and if so
/// writes it for the target into `out` with ALB's rewrites.
fn take_request<'r>(
    buf: &[u8],
    route: &'r HttpRoute,
    session: &Session,
    out: &mut Vec<u8>,
) -> Reading<'r> {
    let peer = session.peer;
    // Uninitialised: filling 64 empty headers per request costs more than parsing them.
    let mut storage = [const { MaybeUninit::uninit() }; head::MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let head_len = match req.parse_with_uninit_headers(buf, &mut storage) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => return Reading::Partial,
        // Too large, malformed, the HTTP/2 preface, too many headers: the general path
        // answers those.
        _ => return Reading::Handover,
    };
    // Bare LF line ends, which httparse takes, are non-compliant for desync mitigation.
    if !head::crlf_only(&buf[..head_len]) {
        return Reading::Handover;
    }
    let Ok(facts) = head::inspect_request(&req) else {
        return Reading::Handover;
    };
    let method = req.method.unwrap_or_default();
    let target = req.path.unwrap_or_default();
    if target.contains('#') {
        // A fragment: the general path's URI parsing drops it before the rules look.
        return Reading::Handover;
    }
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    };
    let headers = if route.header_conditions {
        head::header_map(req.headers)
    } else {
        HeaderMap::new()
    };
    let view = RequestView {
        method,
        host: Some(strip_port(facts.host)),
        authority: Some(facts.host),
        path,
        query,
        headers: &headers,
        peer: peer.ip(),
    };
    let log = route.access_log.as_ref().map(|_| {
        let header = |name: &str| {
            req.headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .and_then(|h| std::str::from_utf8(h.value).ok())
        };
        let head = LoggedHead {
            method,
            host: view.host.unwrap_or(&route.dns_name),
            scheme: route.scheme(),
            port: route.port,
            target,
            version: if req.version == Some(0) {
                http::Version::HTTP_10
            } else {
                http::Version::HTTP_11
            },
            user_agent: header("user-agent"),
            websocket: false,
            grpc: false,
        };
        Box::new(Facts::new(&head, session.tls.is_some()))
    });
    let failed = |error, mut outcome: Outcome| Refusal {
        error,
        len: request_len(head_len, facts.body),
        head: method == "HEAD",
        close: facts.close,
        outcome: {
            outcome.log = log.clone();
            outcome
        },
    };
    if let Err(e) = refusal(method, facts.forwarded_for) {
        return Reading::Failed(failed(e, Outcome::refused()));
    }
    let decision = decide(route, &view);
    let RouteAction::Forward(forward) = decision.action else {
        return Reading::Handover;
    };
    let mut outcome = Outcome::decided(&decision);
    let picked = forward.pick(fastrand::f64());
    let group = |outcome: &mut Outcome, targets: &HttpTargets| {
        if let Some(facts) = outcome.facts() {
            facts.target_group = Some(targets.target_group_arn.clone());
        }
    };
    let Some(targets) = picked.filter(|t| t.registered > 0) else {
        let mut refused = failed(ProxyError::NoTargets, outcome);
        if let Some(targets) = picked {
            group(&mut refused.outcome, targets);
        }
        return Reading::Failed(refused);
    };
    // The rule's transforms: the target gets the URL and Host they make.
    let (url, host) = match decision
        .rewrites
        .map(|r| (r.url(target), r.host(facts.host)))
    {
        None => (None, None),
        Some((Ok(url), Ok(host))) => (url, host),
        Some((Err(e), _) | (_, Err(e))) => {
            let mut refused = failed(e, outcome);
            group(&mut refused.outcome, targets);
            return Reading::Failed(refused);
        }
    };
    outcome.log = log;
    group(&mut outcome, targets);

    let http = &route.http;
    out.clear();
    let target = url.as_deref().unwrap_or(target);
    head::write_request(out, &req, target, &facts, http.xff == XffMode::Preserve);
    let host = host.as_deref().unwrap_or(facts.host);
    let (name, port) = target_host(host, route.port, http.preserve_host);
    out.extend_from_slice(b"host: ");
    out.extend_from_slice(name.as_bytes());
    if let Some(port) = port {
        out.push(b':');
        push_decimal(out, port);
    }
    if http.xff == XffMode::Append {
        out.extend_from_slice(b"\r\nx-forwarded-for: ");
        for previous in head::forwarded_for(req.headers) {
            out.extend_from_slice(previous);
            out.extend_from_slice(b", ");
        }
        push_client(out, peer, http.xff_client_port);
    }
    out.extend_from_slice(b"\r\nx-forwarded-proto: ");
    out.extend_from_slice(route.scheme().as_bytes());
    out.extend_from_slice(b"\r\nx-forwarded-port: ");
    push_decimal(out, route.port);
    out.extend_from_slice(b"\r\nx-amzn-trace-id: ");
    let trace_at = out.len();
    write_trace_id(out, facts.trace, now_ms() / 1000, fastrand::u128(..));
    if let Some(log) = outcome.facts() {
        log.trace_id = Some(String::from_utf8_lossy(&out[trace_at..]).into_owned());
    }
    out.extend_from_slice(b"\r\n\r\n");
    Reading::Taken(Taken {
        outcome,
        head_len,
        body: facts.body,
        close: facts.close,
        head_method: method == "HEAD",
        idempotent: matches!(method, "GET" | "HEAD" | "OPTIONS" | "PUT" | "DELETE"),
        targets,
    })
}

/// Why a request could not be relayed to its end.
enum Failure {
    /// The client went away or broke the exchange: its connection closes, nothing to answer.
    Client,
    /// The target cut its response short or broke its framing after the head went out: the
    /// client can only be told by closing.
    TargetBroke,
    /// The client gets the error page for this, and its connection goes on: the whole
    /// request was read.
    Proxy(ProxyError),
    /// The client gets the error page for this, and its connection closes: part of the
    /// request body was not read.
    Midway(ProxyError),
}

impl Failure {
    /// The target refused the connection (or one could not be made to it).
    fn is_refusal(&self) -> bool {
        matches!(
            self,
            Self::Proxy(ProxyError::TargetConnect(_)) | Self::Midway(ProxyError::TargetConnect(_))
        )
    }
}

/// A request on its way to a target: `out` (its head and the body bytes read with it), the
/// `rest` of its body still to come from the client.
struct Outgoing<'a> {
    out: &'a [u8],
    rest: u64,
    idempotent: bool,
}

/// Sends the request on an idle connection to the target or a new one, and reads the first
/// bytes of the response into `response`. A kept-alive connection the target closed meanwhile
/// is given up for another when the request was not taken (the write failed), or when it was
/// and may be sent again (an idempotent method), as long as the whole request is at hand.
async fn send<S: ClientStream>(
    pool: &TargetPool,
    request: Outgoing<'_>,
    client: &mut Client<S>,
    response: &mut Vec<u8>,
    idle: Duration,
) -> Result<TcpStream, Failure> {
    let Outgoing {
        out,
        rest,
        idempotent,
    } = request;
    // Until the body is passed on, a failure leaves part of it unread on the client's side.
    let unread = |e| {
        if rest > 0 {
            Failure::Midway(e)
        } else {
            Failure::Proxy(e)
        }
    };
    loop {
        let (mut target, reused) = match pool.take() {
            Some(target) => (target, true),
            None => {
                let fresh = pool.dial().await;
                (fresh.map_err(|e| unread(ProxyError::from_pool(e)))?, false)
            }
        };
        let retry = reused && rest == 0;
        match timeout(idle, target.write_all(out)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) if retry => continue,
            Ok(Err(e)) => return Err(unread(ProxyError::Target(e.into()))),
            Err(_) => return Err(unread(ProxyError::TargetTimeout)),
        }
        if rest > 0 {
            client
                .copy_body(&mut target, rest)
                .await
                .map_err(|e| match e {
                    Failure::Proxy(e) => Failure::Midway(e),
                    other => other,
                })?;
        }
        room(response);
        match timeout(idle, target.read_buf(response)).await {
            Err(_) => return Err(Failure::Proxy(ProxyError::TargetTimeout)),
            Ok(Ok(n)) if n > 0 => return Ok(target),
            _ if retry && idempotent => continue,
            Ok(Ok(_)) => return Err(target_closed()),
            Ok(Err(e)) => return Err(Failure::Proxy(ProxyError::Target(e.into()))),
        }
    }
}

fn target_closed() -> Failure {
    let closed = io::Error::from(io::ErrorKind::UnexpectedEof);
    Failure::Proxy(ProxyError::Target(closed.into()))
}

/// A response head, read and written for the client.
struct Answer {
    status: u16,
    head_len: usize,
    framing: Framing,
    reusable: bool,
}

enum Head {
    Final(Answer),
    /// A 1xx response before the final one: forwarded, then the next head.
    Interim(usize),
    Partial,
}

/// Reads the response head at the start of `response` and writes it for the client into
/// `out`.
fn take_response(
    response: &[u8],
    taken: &Taken<'_>,
    out: &mut Vec<u8>,
) -> Result<Head, ProxyError> {
    let mut storage = [const { MaybeUninit::uninit() }; head::MAX_RESPONSE_HEADERS];
    let mut res = httparse::Response::new(&mut []);
    let bad = |why: &'static str| ProxyError::Target(why.into());
    let parser = httparse::ParserConfig::default();
    let head_len = match parser.parse_response_with_uninit_headers(&mut res, response, &mut storage)
    {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if response.len() < MAX_RESPONSE_HEAD => {
            return Ok(Head::Partial);
        }
        Ok(httparse::Status::Partial) => return Err(bad("response head too large")),
        Err(_) => return Err(bad("malformed response head")),
    };
    let facts = head::inspect_response(&res, taken.head_method).map_err(bad)?;
    if facts.status == 101 {
        return Err(bad("101 to a request that asked for no upgrade"));
    }
    out.clear();
    head::write_response(out, &res, &facts, facts.closes_client(taken.close));
    if facts.status < 200 {
        return Ok(Head::Interim(head_len));
    }
    Ok(Head::Final(Answer {
        status: facts.status,
        head_len,
        framing: facts.framing,
        reusable: facts.reusable,
    }))
}

/// Passes the target's response to the client, and the target's connection back to `pool`
/// when it can take another request: whether the client's connection goes on. The target's
/// status is noted in `status` as soon as its head is read.
async fn respond<S: ClientStream>(
    mut target: TcpStream,
    pool: &TargetPool,
    (out, response): (&mut Vec<u8>, &mut Vec<u8>),
    (taken, status): (&Taken<'_>, &mut Option<u16>),
    client: &mut Client<S>,
    idle: Duration,
) -> Result<bool, Failure> {
    let answer = loop {
        match take_response(response, taken, out).map_err(Failure::Proxy)? {
            Head::Final(answer) => break answer,
            Head::Interim(len) => {
                client.write(out).await?;
                response.drain(..len);
                if !response.is_empty() {
                    continue;
                }
            }
            Head::Partial => {}
        }
        read_target(&mut target, response, idle).await?;
    };
    *status = Some(answer.status);
    let mut body = Remaining::new(answer.framing);
    let (end, extra) = body
        .advance(&response[answer.head_len..])
        .map_err(|_| Failure::Proxy(ProxyError::Target("malformed chunked body".into())))?;
    out.extend_from_slice(&response[answer.head_len..answer.head_len + end]);
    // The connection's last response: its end goes with the shutdown's FIN.
    let ends = |body: &Remaining| body.done && taken.close;
    client.write_response(out, ends(&body)).await?;
    let mut reusable = answer.reusable && !extra;
    while !body.done {
        response.clear();
        match read_target(&mut target, response, idle).await {
            Ok(()) => {}
            // The end of a close-delimited body.
            Err(_) if answer.framing == Framing::Close => break,
            Err(_) => return Err(Failure::TargetBroke),
        }
        let (end, extra) = body.advance(response).map_err(|_| Failure::TargetBroke)?;
        reusable &= !extra;
        client.write_response(&response[..end], ends(&body)).await?;
    }
    if reusable {
        pool.put(target);
    }
    Ok(!taken.close && answer.framing != Framing::Close)
}

/// Reads more of the response; an error when the target closes first.
async fn read_target(
    target: &mut TcpStream,
    response: &mut Vec<u8>,
    idle: Duration,
) -> Result<(), Failure> {
    room(response);
    match timeout(idle, target.read_buf(response)).await {
        Err(_) => Err(Failure::Proxy(ProxyError::TargetTimeout)),
        Ok(Ok(0)) => Err(target_closed()),
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(Failure::Proxy(ProxyError::Target(e.into()))),
    }
}

impl<S: ClientStream> Client<S> {
    /// Reads more from the client into `buf`.
    async fn read(&mut self) -> io::Result<usize> {
        room(&mut self.buf);
        match timeout(self.idle_timeout, self.stream.read_buf(&mut self.buf)).await {
            Ok(read) => read,
            Err(_) => Err(io::ErrorKind::TimedOut.into()),
        }
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), Failure> {
        self.sent += bytes.len() as u64;
        self.stream
            .write_all(bytes)
            .await
            .map_err(|_| Failure::Client)
    }

    /// Writes bytes of a target's response, the `last` of the connection when its shutdown
    /// comes next.
    async fn write_response(&mut self, bytes: &[u8], last: bool) -> Result<(), Failure> {
        self.sent += bytes.len() as u64;
        let written = if last {
            self.stream.write_last(bytes).await
        } else {
            self.stream.write_all(bytes).await
        };
        written.map_err(|_| Failure::Client)
    }

    /// Records a request of `len` bytes as it ended.
    fn finish(
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
    async fn copy_body(&mut self, target: &mut TcpStream, mut left: u64) -> Result<(), Failure> {
        while left > 0 {
            if self.read().await.map_err(|_| Failure::Client)? == 0 {
                return Err(Failure::Client);
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
    async fn refuse(
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
    async fn timed_out(&mut self, route: &HttpRoute) -> Next {
        if self.buf.is_empty() {
            return Next::Close;
        }
        let e = ProxyError::RequestTimeout;
        tracing::debug!(peer = %self.session.peer, "request head timed out");
        self.fail(&e, Some(route), false, false).await;
        let mut outcome = Outcome::refused();
        outcome.failed(&e);
        self.finish(outcome, self.buf.len(), route, None);
        super::linger(&mut self.stream).await;
        Next::Close
    }

    /// Answers with the load balancer's page for `error` (its length only, to a HEAD); the
    /// connection goes on if `keep` (and the error does not close it, as a desync refusal
    /// does).
    async fn fail(
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
        match self.stream.write_all(&out).await {
            Ok(()) if keep => Next::Request,
            Ok(()) => {
                let _ = self.stream.shutdown().await;
                Next::Close
            }
            Err(_) => Next::Close,
        }
    }
}
