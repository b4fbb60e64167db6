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

mod client;
pub(super) mod head;
mod target;

use std::io;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use arc_swap::ArcSwap;
use http::HeaderMap;
use tokio::sync::watch;
use tokio::time::{timeout, timeout_at};

use client::{Client, ClientStream};
use target::{Outgoing, respond, send};

use super::decide::{decide, refusal};
use super::headers::{push_client, push_decimal, strip_port, target_host, write_trace_id};
use super::outcome::Outcome;
use super::rescue::ProxyError;
use super::rules::RequestView;
use super::{ClientCert, Clocks, now_ms};
use crate::access_log::{Facts, LoggedHead, Session};
use crate::metrics::CLIENT_CLOSED;
use crate::spare;
use crate::table::{HttpRoute, HttpSettings, RouteAction, RoutingTable, XffMode};
use crate::targets::{HttpTargets, REFUSALS};

/// Request heads larger than this go the general way (which refuses them past its limits).
const MAX_HEAD: usize = 16 * 1024;
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
                // Overdue, or idle past the idle timeout mid-head: a 408 (AWS's answer to a
                // client that sent no data for the idle timeout).
                match read {
                    Err(_) => return Box::pin(client.timed_out(route)).await,
                    Ok(Err(e)) if e.kind() == io::ErrorKind::TimedOut => {
                        return Box::pin(client.timed_out(route)).await;
                    }
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
            client.shutdown().await;
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
            // Part of the body is unread: closing under it would reset the page away.
            super::linger(&mut client.stream).await;
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
