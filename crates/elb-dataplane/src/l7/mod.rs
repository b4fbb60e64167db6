//! The HTTP and HTTPS (ALB) listeners: accept connections on a node address, terminate TLS
//! for HTTPS, serve HTTP/1.1 and HTTP/2 (ALPN over TLS; prior knowledge in cleartext), and
//! forward each request to a target.

mod authenticate;
mod decide;
pub mod desync;
mod dressing;
mod exchange;
pub mod explain;
mod forward;
mod framing;
pub(crate) mod headers;
pub(crate) mod idle;
mod lambda;
mod limits;
mod malformed;
pub(crate) mod outcome;
mod relay;
pub mod rescue;
mod respond;
pub(crate) mod rewrite;
pub mod rules;
mod sniff;
mod stickiness;

/// The relay's HTTP/1 wire handling: its gate and rewriting of heads, and where a chunked body
/// ends (which the desync sniffer shares). Public for the fuzz targets and their corpus tests
/// (fuzz/, tests/corpus.rs); the relay is its one user.
pub mod http1 {
    pub use super::framing::{BadChunk, ChunkedEnd, Framing};
    pub use super::relay::head::{
        BadResponse, MAX_HEADERS, MAX_RESPONSE_HEADERS, RequestFacts, ResponseFacts, Unsuited,
        crlf_only, inspect_request, inspect_response, write_request, write_response,
    };
}

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use elb_model::MtlsMode;
use http::{HeaderName, HeaderValue};
use hyper::Request;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::debug;

use crate::access_log::{Facts, Handshake, LoggedHead, Session};
use crate::binder::Place;
use crate::metrics::Active;
use crate::table::{HttpRoute, HttpSettings, RoutingTable};

pub use exchange::TargetBody;
pub use rescue::{Body, Fault, ProxyError};

use outcome::{Recording, Tallied};

/// Spawns the serving of one accepted connection of an HTTP or HTTPS listener: through the
/// relay when the listener allows it, else on the general path. The two are spawned apart
/// because the general path's state is several times larger: an idle connection's task is
/// most of its memory.
pub(crate) fn spawn(
    connections: &mut JoinSet<()>,
    (stream, place): (TcpStream, Place),
    (local, peer): (SocketAddr, SocketAddr),
    route: &HttpRoute,
    (table, stopped): (Arc<ArcSwap<RoutingTable>>, watch::Receiver<bool>),
) {
    // Both held for as long as the connection is served.
    let held = (route.door.metrics.as_ref().map(Active::new), place);
    let session = Session::plain(peer);
    if let (None, Some(log)) = (&route.tls, &route.connection_log) {
        log.connection(&session, local.port(), &Handshake::default());
    }
    if route.tls.is_none() && route.relayable {
        let settings = route.http.clone();
        connections.spawn(async move {
            relay::serve(stream, local, session, table, stopped, &settings).await;
            drop(held);
        });
    } else {
        let general = general(stream, local, session, table, stopped);
        connections.spawn(async move {
            general.await;
            drop(held);
        });
    }
}

/// Answers a client its node has no room for: a 503 on a plain HTTP listener (after which
/// what it sent is read for a moment, so that closing does not reset the page away), a reset
/// on an HTTPS one (a handshake would cost the node what it has no room for).
pub(crate) async fn full(stream: TcpStream, peer: SocketAddr, route: Arc<HttpRoute>) {
    debug!(%peer, listener = %route.door.listener_arn, "node full: connection refused");
    if route.tls.is_some() {
        let _ = stream.set_zero_linger();
        return;
    }
    let mut stream = stream;
    let page = rescue::closing_page(&ProxyError::ConnectionLimit);
    if stream.write_all(&page).await.is_ok() && stream.shutdown().await.is_ok() {
        linger(&mut stream).await;
    }
}

/// After a page that closes the connection before its client is done sending: what the
/// client still sends is read away for a moment, so that closing does not reset the page
/// away (the kernel answers unread data with a reset).
async fn linger(stream: &mut (impl AsyncRead + Unpin)) {
    let mut sink = [0u8; 1024];
    let _ = tokio::time::timeout(sniff::LINGER, async {
        while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The listener's response attributes: injected headers, and no `Server: awselb/2.0` on
/// elbd's own responses when the listener turned it off.
fn dress(response: &mut hyper::Response<Body>, route: &HttpRoute) {
    let headers = response.headers_mut();
    if !route.server_header
        && headers
            .get(http::header::SERVER)
            .is_some_and(|v| v == rescue::SERVER)
    {
        headers.remove(http::header::SERVER);
    }
    for (name, value) in &route.response_headers {
        headers.insert(name, value.clone());
    }
}

/// What a general-path request's access log entry needs from its head.
fn facts(req: &Request<Incoming>, route: &HttpRoute, session: &Session) -> Facts {
    let headers = req.headers();
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let host = req
        .uri()
        .host()
        .or_else(|| text(http::header::HOST).map(headers::strip_port))
        .unwrap_or(&route.dns_name);
    let head = LoggedHead {
        method: req.method().as_str(),
        host,
        scheme: route.scheme(),
        port: route.port,
        target: req.uri().path_and_query().map_or("/", |p| p.as_str()),
        version: req.version(),
        user_agent: text(http::header::USER_AGENT),
        websocket: text(http::header::UPGRADE).is_some_and(|u| u.eq_ignore_ascii_case("websocket")),
        grpc: text(http::header::CONTENT_TYPE).is_some_and(|c| c.starts_with("application/grpc")),
    };
    Facts::new(&head, session.tls.is_some())
}

/// A client gets this long to complete its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves one client connection until it closes, or until the listener stops, in which case
/// the request in progress finishes and the connection closes after it. HTTPS listeners
/// complete the handshake first, under the configuration current at accept, and log it when
/// the load balancer keeps connection logs.
async fn general(
    stream: TcpStream,
    local: SocketAddr,
    session: Session,
    table: Arc<ArcSwap<RoutingTable>>,
    stopped: watch::Receiver<bool>,
) {
    let Some(route) = table.load().http(local).cloned() else {
        return;
    };
    let Some(tls) = route.tls.clone() else {
        let ends = (local, session, ClientCert::default());
        let clocks = Clocks::start(&route.http);
        return http(
            stream,
            Vec::new(),
            ends,
            &route.http,
            clocks,
            table,
            stopped,
        )
        .await;
    };
    let peer = session.peer;
    let started = Instant::now();
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let accepted = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await;
    let log = |session: &Session, handshake: Handshake| {
        if let Some(log) = &route.connection_log {
            log.connection(session, local.port(), &handshake);
        }
    };
    let failed = |status| Handshake {
        latency: Some(started.elapsed()),
        client_cert: None,
        status: Some(status),
    };
    let stream = match accepted {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            debug!(%peer, %local, error = %e, "TLS handshake failed");
            return log(&session, failed(Handshake::failed(&e)));
        }
        Err(_) => {
            debug!(%peer, %local, "TLS handshake timed out");
            return log(
                &session,
                failed("Failed:UnmappedConnectionError".to_owned()),
            );
        }
    };
    let connection = stream.get_ref().1;
    let session = session.with_tls(connection);
    if route.connection_log.is_some() {
        let handshake = Handshake {
            latency: Some(started.elapsed()),
            client_cert: connection.peer_certificates().and_then(leaf),
            status: Some("Success".to_owned()),
        };
        log(&session, handshake);
    }
    if route.relayable && connection.alpn_protocol() != Some(b"h2") {
        let settings = route.http.clone();
        drop(route);
        return relay::serve(stream, local, session, table, stopped, &settings).await;
    }
    let client = match (route.mtls, connection.peer_certificates()) {
        (Some(mode), Some(chain)) => ClientCert::of(mode, chain),
        _ => ClientCert::default(),
    };
    let ends = (local, session, client);
    let clocks = Clocks::start(&route.http);
    http(
        stream,
        Vec::new(),
        ends,
        &route.http,
        clocks,
        table,
        stopped,
    )
    .await;
}

/// A client certificate's subject, validity and serial number, as connection logs write
/// them (the values ALB's mutual TLS headers carry).
fn leaf(chain: &[rustls::pki_types::CertificateDer<'_>]) -> Option<[String; 3]> {
    let headers = elb_tls::mtls::client_headers(MtlsMode::Verify, chain);
    let value = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
    };
    Some([
        value("x-amzn-mtls-clientcert-subject")?,
        value("x-amzn-mtls-clientcert-validity")?,
        value("x-amzn-mtls-clientcert-serial-number")?,
    ])
}

/// What a connection's client certificate tells targets (mutual TLS), made once per
/// connection: header name and value pairs, empty without one.
#[derive(Clone, Default)]
pub(crate) struct ClientCert(Arc<Vec<(HeaderName, HeaderValue)>>);

impl ClientCert {
    fn of(mode: MtlsMode, chain: &[rustls::pki_types::CertificateDer<'_>]) -> Self {
        let headers = elb_tls::mtls::client_headers(mode, chain)
            .into_iter()
            .filter_map(|(name, value)| {
                Some((
                    HeaderName::from_static(name),
                    HeaderValue::try_from(value).ok()?,
                ))
            })
            .collect();
        Self(Arc::new(headers))
    }

    pub(crate) fn headers(&self) -> &[(HeaderName, HeaderValue)] {
        &self.0
    }
}

/// When a connection's head is due and when it has lived its keep-alive: carried on when
/// the relay hands a connection to the general path, so that neither starts again.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clocks {
    pub(crate) head_due: Instant,
    pub(crate) closes_at: Instant,
}

impl Clocks {
    /// The clocks of a connection starting now.
    pub(crate) fn start(settings: &HttpSettings) -> Self {
        let now = Instant::now();
        Self {
            head_due: now + settings.header_timeout,
            closes_at: now + settings.client_keep_alive,
        }
    }
}

/// HTTP over an established client stream, on `local` for the client `session` tells of,
/// with what its certificate tells targets; `replay` holds what the relay already read from
/// it.
async fn http<S>(
    stream: S,
    replay: Vec<u8>,
    (local, session, client): (SocketAddr, Session, ClientCert),
    settings: &HttpSettings,
    Clocks {
        head_due,
        closes_at,
    }: Clocks,
    table: Arc<ArcSwap<RoutingTable>>,
    mut stopped: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let timeout = (settings.header_timeout, settings.idle_timeout, head_due);
    // HTTP/2 off, the sniffer answers its preface (the builder's `http1_only` is not heeded
    // by connections with upgrades).
    let (stream, heads, progress) = sniff::Sniffed::new(stream, replay, timeout, settings.http2);
    let draining = Arc::new(AtomicBool::new(*stopped.borrow()));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // The sniffer times heads and the idle check below closes idle connections (within 1.25 ×
    // the idle timeout); hyper's header timeout, which counts from the end of the response
    // before, is a backstop past both.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_timeout + 2 * settings.idle_timeout);
    builder
        .http2()
        .max_header_list_size(limits::HTTP2_HEADER_LIST);
    let peer = session.peer;
    let (record_table, record_session) = (table.clone(), session.clone());
    let (last_call, answered) = (draining.clone(), progress.answered.clone());
    let counted = progress.clone();
    let service = service_fn(move |req: Request<Incoming>| {
        counted.started.fetch_add(1, Ordering::Relaxed);
        let (table, client, session) = (table.clone(), client.clone(), session.clone());
        let answered = answered.clone();
        // HTTP/1 heads were classified as sent, in order; HTTP/2 ones are classified parsed.
        let class = if req.version() == http::Version::HTTP_2 {
            None
        } else {
            heads.lock().expect("not poisoned").pop_front()
        };
        // Past `client_keep_alive.seconds`, or draining, an HTTP/1 request is the
        // connection's last (an upgrade aside: its answer must keep `Connection: upgrade`).
        let last = req.version() < http::Version::HTTP_2
            && !req.headers().contains_key(http::header::UPGRADE)
            && (last_call.load(Ordering::Relaxed) || Instant::now() >= closes_at);
        let http10 = req.version() == http::Version::HTTP_10;
        // Boxed: HTTP/2 spawns a task per stream around this future, and a task moves its
        // future through its stages; a pointer moves, not the request's kilobytes of state.
        Box::pin(async move {
            // One load per request: the request keeps this table until it ends.
            let table = table.load_full();
            let Some(route) = table.http(local).cloned() else {
                answered.add();
                let gone = rescue::respond(&ProxyError::ListenerGone);
                return Ok::<_, Infallible>(gone.map(Tallied::untracked));
            };
            // `METHOD target HTTP/1.1\r\n`; a chunked body counts as empty (its size is
            // unknown).
            let target = req.uri().path_and_query().map_or(1, |p| p.as_str().len());
            let first_line = req.method().as_str().len() + target + 12;
            let received = outcome::head_size(first_line, req.headers())
                + hyper::body::Body::size_hint(req.body())
                    .exact()
                    .unwrap_or(0);
            let facts = route
                .access_log
                .as_ref()
                .map(|_| facts(&req, &route, &session));
            // Recorded as a client that left if hyper drops the request before an answer.
            let mut recording = Recording::new(route.clone(), session, (received, facts), answered);
            let tally = recording.tally();
            let response = forward::handle(req, &route, peer, &client, class, tally).await;
            let mut response = response.unwrap_or_else(|e| {
                tally.outcome.failed(&e);
                rescue::respond(&e)
            });
            dress(&mut response, &route);
            // An HTTP/1.0 client cannot take a chunked body: one of unknown length ends with
            // the connection, which hyper would still call kept alive.
            let unframed = http10
                && hyper::body::Body::size_hint(response.body())
                    .exact()
                    .is_none();
            if last || unframed {
                let close = http::HeaderValue::from_static("close");
                response
                    .headers_mut()
                    .insert(http::header::CONNECTION, close);
            }
            // Else hyper adds `keep-alive` beside a `close` (this one, a desync verdict's, an
            // error page's) for an HTTP/1.0 client that asked for it.
            if http10 && headers::closes(response.headers()) {
                *response.version_mut() = http::Version::HTTP_10;
            }
            Ok(recording.answered(response))
        })
    });
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let aged = tokio::time::sleep_until(closes_at.into());
    tokio::pin!(aged);
    let mut aged_past = false;
    // Past its keep-alive, or draining, an HTTP/2 connection gets a GOAWAY; HTTP/1 ones are
    // told on their next response (hyper's graceful shutdown would close them idle, under a
    // request they may be sending; the drain's end cuts them).
    let http1 = |progress: &sniff::Progress| !progress.http2.load(Ordering::Relaxed);
    // No byte either way for the idle timeout: a client that left a write waiting all that
    // time has stopped reading, and is dropped (hyper has no write timeout; the relay
    // drops it alike). Otherwise an HTTP/2 connection gets a GOAWAY, and is dropped if it
    // stays idle as long again (a client that never acknowledges it); an HTTP/1 one between
    // requests is closed, as the relay closes it; a head begun is the sniffer's to time
    // (AWS's 408), and any wait within a request answers by its own.
    let watch = || idle::idle(&progress.activity, settings.idle_timeout);
    let idled = watch();
    tokio::pin!(idled);
    let mut told_idle = false;
    let result = loop {
        tokio::select! {
            result = conn.as_mut() => break result,
            () = &mut idled => {
                if progress.activity.blocked()
                    || (told_idle && !http1(&progress))
                    || (http1(&progress) && progress.between_requests())
                {
                    break Ok(());
                }
                if !http1(&progress) {
                    told_idle = true;
                    conn.as_mut().graceful_shutdown();
                }
                idled.set(watch());
            }
            _ = stopped.changed(), if !draining.load(Ordering::Relaxed) => {
                draining.store(true, Ordering::Relaxed);
                if !http1(&progress) {
                    conn.as_mut().graceful_shutdown();
                }
            }
            () = &mut aged, if !aged_past => {
                aged_past = true;
                if !http1(&progress) {
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    };
    if let Some(refusal) = progress.refused.get()
        && let Some(route) = record_table.load().http(local)
    {
        let mut outcome = outcome::Outcome::refused();
        outcome.failed(refusal);
        outcome.record(route, None, &record_session);
    }
    if let Err(e) = result {
        debug!(%peer, %local, error = %e, "client connection ended with an error");
    }
}
