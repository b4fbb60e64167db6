//! Forwarding one request: pick a target, rewrite the request as an ALB does, send it over
//! the node's pool, and hand back the target's response.

use std::net::SocketAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{PathAndQuery, Uri};
use http::{Request, Response, StatusCode, Version};
use http_body_util::Either;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use super::ClientCert;
use super::desync::{self, Verdict};
use super::rescue::{Body, ProxyError};
use super::respond;
use super::rules::{self, RequestView};
use elb_model::ProtocolVersion;

use crate::pool::PooledBody;
use crate::sticky::{self, CookieSealer, Stickiness, Ticket};
use crate::table::{HttpRoute, HttpSettings, RouteAction, XffMode};
use crate::targets::HttpTargets;

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
static X_AMZN_TRACE_ID: HeaderName = HeaderName::from_static("x-amzn-trace-id");

/// Routes one request: the first rule whose conditions match (or the default) decides
/// whether it is forwarded, redirected or answered by the load balancer itself.
pub(super) async fn handle(
    mut req: Request<Incoming>,
    route: &HttpRoute,
    peer: SocketAddr,
    client: &ClientCert,
    raw_class: Option<(desync::Class, &'static str)>,
) -> Result<Response<Body>, ProxyError> {
    check_limits(&req)?;
    let (class, reason) =
        raw_class.unwrap_or_else(|| desync::classify(req.method(), req.headers()));
    let verdict = route.http.desync.verdict(class);
    if class != desync::Class::Compliant {
        tracing::info!(%peer, ?class, reason, ?verdict, "desync mitigation classified a request");
    }
    match verdict {
        Verdict::Forward => {}
        Verdict::Refuse => return Err(ProxyError::Desync(reason)),
        Verdict::ForwardThenClose => {
            req.extensions_mut().insert(CloseAfter);
            let mut response = Box::pin(route_request(req, route, peer, client)).await?;
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return Ok(response);
        }
    }
    route_request(req, route, peer, client).await
}

/// Marks a request whose client and target connections close after it (desync mitigation).
#[derive(Clone, Copy)]
struct CloseAfter;

async fn route_request(
    req: Request<Incoming>,
    route: &HttpRoute,
    peer: SocketAddr,
    client: &ClientCert,
) -> Result<Response<Body>, ProxyError> {
    if req.method() == http::Method::TRACE {
        return Err(ProxyError::Trace);
    }
    if forwarded_for_count(req.headers()) > MAX_FORWARDED_FOR {
        return Err(ProxyError::TooManyForwardedFor);
    }
    let host = request_host(&req, &route.dns_name)?;
    let view = RequestView {
        method: req.method().as_str(),
        host: Some(strip_port(&host)),
        path: req.uri().path(),
        query: req.uri().query(),
        headers: req.headers(),
        peer: peer.ip(),
    };
    match rules::first_match(&route.rules, &view).unwrap_or(&route.default_action) {
        RouteAction::Forward(forward) => {
            let now_s = now_ms() / 1000;
            let sealer = route.sealer.as_deref();
            let Some((duration_s, sealer)) = forward.group_stickiness_s.zip(sealer) else {
                let targets = forward.pick(fastrand::f64()).ok_or(ProxyError::NoTargets)?;
                return proxy(req, route, targets, host, (peer, client), now_s).await;
            };
            let stuck = sticky::request_cookie(req.headers(), sticky::GROUP_COOKIE)
                .and_then(|value| sealer.open(value))
                .filter(|t| t.target.is_none() && t.fresh(now_s, duration_s))
                .and_then(|t| forward.group(&t.group));
            let targets = stuck
                .or_else(|| forward.pick(fastrand::f64()))
                .ok_or(ProxyError::NoTargets)?;
            let mut response = proxy(req, route, targets, host, (peer, client), now_s).await?;
            let ticket = Ticket {
                group: targets.group_id.clone(),
                target: None,
                issued_s: now_s,
            };
            if let Some(value) = sealer.seal(&ticket) {
                let cors = Some(sticky::GROUP_COOKIE_CORS);
                sticky::set(
                    response.headers_mut(),
                    sticky::GROUP_COOKIE,
                    cors,
                    &value,
                    now_s,
                );
            }
            Ok(response)
        }
        RouteAction::Redirect(redirect) => {
            let original = respond::Original {
                protocol: route.scheme(),
                host: strip_port(&host),
                port: route.port,
                path: req.uri().path(),
                query: req.uri().query().unwrap_or(""),
            };
            respond::redirect(redirect, &original)
        }
        RouteAction::Fixed(fixed) => Ok(respond::fixed(fixed)),
    }
}

/// Sends the request to a target of `targets` (the one its stickiness cookie names, if that
/// one may still take it) and hands back its response, with the stickiness cookies renewed.
async fn proxy(
    mut req: Request<Incoming>,
    route: &HttpRoute,
    targets: &HttpTargets,
    host: String,
    (peer, client): (SocketAddr, &ClientCert),
    now_s: u64,
) -> Result<Response<Body>, ProxyError> {
    if targets.registered == 0 {
        return Err(ProxyError::NoTargets);
    }
    if !suits(&req, targets.proto.version) {
        return Err(ProxyError::IncompatibleProtocol);
    }
    let sealer = route.sealer.as_deref();
    let stuck = sealer.and_then(|s| sticky_target(req.headers(), targets, s, now_s));
    let (target, _in_flight) = match stuck.and_then(|addr| targets.endpoint(addr)) {
        Some(picked) => picked,
        None => targets.next(now_ms).ok_or(ProxyError::NoReachableTargets)?,
    };

    let path = req
        .uri()
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    let pooled = !targets.proto.tls && targets.proto.version == ProtocolVersion::Http1;
    // The node's own pool writes the target as it is: origin form. hyper-util's clients take
    // an absolute URI to know where to connect.
    *req.uri_mut() = if pooled {
        Uri::from(path)
    } else {
        Uri::builder()
            .scheme(if targets.proto.tls { "https" } else { "http" })
            .authority(target.proto.authority.clone())
            .path_and_query(path)
            .build()
            .map_err(|_| ProxyError::BadRequest("invalid request target"))?
    };
    let upgrade = wants_upgrade(req.headers()).then(|| {
        let protocol = req.headers().get(header::UPGRADE).cloned();
        (protocol, hyper::upgrade::on(&mut req))
    });
    *req.version_mut() = Version::HTTP_11;
    let close_after = req.extensions().get::<CloseAfter>().is_some();
    let headers = req.headers_mut();
    let trailers = wants_trailers(headers);
    remove_hop_by_hop(headers);

    if route.http.drop_invalid_headers {
        drop_invalid_names(headers);
    }
    let h2 = targets.proto.version != ProtocolVersion::Http1;
    if close_after && !h2 {
        // The target's connection is not reused after an ambiguous request.
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    if h2 && trailers {
        // gRPC needs it end to end; HTTP/2 allows no other TE.
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
    if let Some((Some(protocol), _)) = &upgrade {
        // An upgrade (WebSocket) keeps the two headers that ask for it.
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, protocol.clone());
    }
    headers.insert(
        header::HOST,
        target_host_value(&host, route.port, &route.http)?,
    );
    rewrite_forwarded(headers, &route.http, peer, route.scheme(), route.port)?;
    if route.mtls.is_some() {
        // What a client says of its own certificate is never passed on as ours.
        for name in MTLS_HEADERS {
            headers.remove(name);
        }
        for (name, value) in client.headers() {
            headers.insert(name, value.clone());
        }
    }
    let previous = headers.get(&X_AMZN_TRACE_ID).and_then(|v| v.to_str().ok());
    let mut trace = Vec::with_capacity(128);
    write_trace_id(&mut trace, previous, now_ms() / 1000, fastrand::u128(..));
    if let Ok(trace) = HeaderValue::try_from(trace) {
        headers.insert(&X_AMZN_TRACE_ID, trace);
    }

    let idle_timeout = route.http.idle_timeout;
    let response = if pooled {
        tokio::time::timeout(idle_timeout, target.proto.pool.send(req))
            .await
            .map_err(|_| ProxyError::TargetTimeout)?
            .map_err(ProxyError::from_pool)?
    } else {
        let upstream = &route.upstream;
        let sent = match (targets.proto.tls, h2) {
            (true, false) => upstream.https.request(req),
            (false, _) => upstream.h2.request(req),
            (true, true) => upstream.h2s.request(req),
        };
        tokio::time::timeout(idle_timeout, sent)
            .await
            .map_err(|_| ProxyError::TargetTimeout)?
            .map_err(ProxyError::from_target)?
            .map(PooledBody::unpooled)
    };
    let mut response = response.map(Either::Left);
    if let Some(sealer) = sealer {
        let ticket = Ticket {
            group: targets.group_id.clone(),
            target: Some(target.addr),
            issued_s: now_s,
        };
        renew_stickiness(
            response.headers_mut(),
            targets,
            sealer,
            &ticket,
            stuck.is_some(),
        );
    }
    if let (Some((_, client)), StatusCode::SWITCHING_PROTOCOLS) = (upgrade, response.status()) {
        let target = hyper::upgrade::on(&mut response);
        tokio::spawn(tunnel(client, target));
        return Ok(response);
    }
    remove_hop_by_hop(response.headers_mut());
    Ok(response)
}

/// Which requests a target group's protocol version takes (AWS's table): HTTP1 groups all but
/// gRPC, HTTP2 groups HTTP/2 requests, GRPC groups HTTP/2 POSTs.
fn suits(req: &Request<Incoming>, version: ProtocolVersion) -> bool {
    let h2 = req.version() == Version::HTTP_2;
    match version {
        ProtocolVersion::Http1 => {
            let grpc = req
                .headers()
                .get(header::CONTENT_TYPE)
                .is_some_and(|t| t.as_bytes().starts_with(b"application/grpc"));
            !(h2 && grpc)
        }
        ProtocolVersion::Http2 => h2,
        ProtocolVersion::Grpc => h2 && req.method() == http::Method::POST,
    }
}

/// Removes headers whose names hold anything but ASCII letters, digits and hyphens (an
/// underscore, say), which ELB calls invalid.
fn drop_invalid_names(headers: &mut HeaderMap) {
    let invalid: Vec<HeaderName> = headers
        .keys()
        .filter(|name| {
            !name
                .as_str()
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        .cloned()
        .collect();
    for name in invalid {
        headers.remove(name);
    }
}

/// Whether the client accepts trailers (`TE: trailers`), as gRPC clients say.
fn wants_trailers(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::TE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
}

/// The target a request's stickiness cookie names, when the group is sticky and the cookie is
/// genuine, for this group and not expired. With `app_cookie` stickiness the request must
/// also carry the application's cookie, as AWS requires.
fn sticky_target(
    headers: &HeaderMap,
    targets: &HttpTargets,
    sealer: &CookieSealer,
    now_s: u64,
) -> Option<SocketAddr> {
    let (cookie, duration_s) = match &targets.proto.stickiness {
        Stickiness::Off => return None,
        Stickiness::LbCookie { duration_s } => (sticky::LB_COOKIE, *duration_s),
        Stickiness::AppCookie { name, duration_s } => {
            sticky::request_cookie(headers, name)?;
            (sticky::APP_COOKIE, *duration_s)
        }
    };
    let ticket = sealer.open(sticky::request_cookie(headers, cookie)?)?;
    (ticket.group == targets.group_id && ticket.fresh(now_s, duration_s))
        .then_some(ticket.target)
        .flatten()
}

/// `lb_cookie`: AWSALB and AWSALBCORS on every response. `app_cookie`: AWSALBAPP-0 when the
/// target sets the application's cookie, or the request was already stuck.
fn renew_stickiness(
    headers: &mut HeaderMap,
    targets: &HttpTargets,
    sealer: &CookieSealer,
    ticket: &Ticket,
    stuck: bool,
) {
    let renew = match &targets.proto.stickiness {
        Stickiness::Off => false,
        Stickiness::LbCookie { .. } => true,
        Stickiness::AppCookie { name, .. } => stuck || sticky::response_sets(headers, name),
    };
    let Some(value) = renew.then(|| sealer.seal(ticket)).flatten() else {
        return;
    };
    let now_s = ticket.issued_s;
    match targets.proto.stickiness {
        Stickiness::AppCookie { .. } => sticky::set_app(headers, &value, now_s),
        _ => {
            let cors = Some(sticky::LB_COOKIE_CORS);
            sticky::set(headers, sticky::LB_COOKIE, cors, &value, now_s);
        }
    }
}

/// The headers mutual TLS sets towards targets.
const MTLS_HEADERS: [&str; 6] = [
    "x-amzn-mtls-clientcert",
    "x-amzn-mtls-clientcert-serial-number",
    "x-amzn-mtls-clientcert-issuer",
    "x-amzn-mtls-clientcert-subject",
    "x-amzn-mtls-clientcert-validity",
    "x-amzn-mtls-clientcert-leaf",
];

/// ALB's hard limits on a request (aws-elb-features.md §6.6): a target over 16 KB gets a 414,
/// a header over 16 KB or headers over 64 KB in all a 400; a transfer coding other than
/// chunked (or identity) a 501.
fn check_limits(req: &Request<Incoming>) -> Result<(), ProxyError> {
    const LINE: usize = 16 * 1024;
    const ALL_HEADERS: usize = 64 * 1024;
    if req.uri().path_and_query().map_or(0, |p| p.as_str().len()) > LINE {
        return Err(ProxyError::UriTooLong);
    }
    let mut total = 0;
    for (name, value) in req.headers() {
        let size = name.as_str().len() + value.len() + 4;
        if size > LINE {
            return Err(ProxyError::BadRequest("a header is larger than 16 KB"));
        }
        total += size;
    }
    if total > ALL_HEADERS {
        return Err(ProxyError::BadRequest("the headers are larger than 64 KB"));
    }
    let unsupported = req
        .headers()
        .get_all(header::TRANSFER_ENCODING)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .map(<[u8]>::trim_ascii)
        .any(|coding| {
            !coding.eq_ignore_ascii_case(b"chunked") && !coding.eq_ignore_ascii_case(b"identity")
        });
    if unsupported {
        return Err(ProxyError::UnsupportedTransferCoding);
    }
    Ok(())
}

/// More addresses than this in X-Forwarded-For get a 463, as on AWS.
pub(super) const MAX_FORWARDED_FOR: usize = 30;

fn forwarded_for_count(headers: &HeaderMap) -> usize {
    headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .map(|v| v.as_bytes().split(|b| *b == b',').count())
        .sum()
}

/// Whether an HTTP/1.1 request asks to switch protocols (`Connection: upgrade`).
fn wants_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|token| token.trim().eq_ignore_ascii_case("upgrade"))
}

/// After a 101, the two connections carry bytes both ways until either side closes: a
/// WebSocket is pinned to its target, as on AWS.
async fn tunnel(client: hyper::upgrade::OnUpgrade, target: hyper::upgrade::OnUpgrade) {
    let (Ok(client), Ok(target)) = (client.await, target.await) else {
        return;
    };
    let (mut client, mut target) = (TokioIo::new(client), TokioIo::new(target));
    if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut target).await {
        tracing::debug!(error = %e, "upgraded connection ended with an error");
    }
}

pub(super) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The Host the client asked for: the Host header, else the HTTP/2 `:authority`, else (HTTP/1.0
/// without Host) the load balancer's DNS name, as AWS does.
fn request_host(req: &Request<Incoming>, dns_name: &str) -> Result<String, ProxyError> {
    if let Some(host) = req.headers().get(header::HOST) {
        return host
            .to_str()
            .map(str::to_owned)
            .map_err(|_| ProxyError::BadRequest("Host header is not visible ASCII"));
    }
    Ok(req
        .uri()
        .authority()
        .map_or_else(|| dns_name.to_owned(), |a| a.as_str().to_owned()))
}

/// The Host a target gets and, when one is to be appended, the port. With
/// `preserve_host_header` off (the default), AWS strips the port from Host on listener ports
/// 80 and 443 and appends `:<listener port>` on the others when it is missing.
pub(super) fn target_host(host: &str, listener_port: u16, preserve: bool) -> (&str, Option<u16>) {
    if preserve {
        return (host, None);
    }
    let name = strip_port(host);
    match listener_port {
        80 | 443 => (name, None),
        port if name.len() == host.len() => (name, Some(port)),
        _ => (host, None),
    }
}

fn target_host_value(
    host: &str,
    listener_port: u16,
    http: &HttpSettings,
) -> Result<HeaderValue, ProxyError> {
    let mut value = Vec::with_capacity(host.len() + 6);
    let (name, port) = target_host(host, listener_port, http.preserve_host);
    value.extend_from_slice(name.as_bytes());
    if let Some(port) = port {
        value.push(b':');
        push_decimal(&mut value, port);
    }
    HeaderValue::try_from(value).map_err(|_| ProxyError::BadRequest("invalid Host header"))
}

/// `host:port` → `host`; `[v6]:port` → `[v6]`; anything without a port is returned whole.
pub(super) fn strip_port(host: &str) -> &str {
    match host.rfind(':') {
        Some(i)
            if !host[i..].contains(']') && host[i + 1..].bytes().all(|b| b.is_ascii_digit()) =>
        {
            &host[..i]
        }
        _ => host,
    }
}

/// `X-Amzn-Trace-Id` as ALB sets it: `Root=1-<8 hex epoch seconds>-<24 hex random>` for a new
/// trace; a request that already has a `Root` gets a `Self=1-…` field in front instead (an
/// older `Self` replaced), and every other field is kept.
pub(super) fn write_trace_id(
    out: &mut Vec<u8>,
    previous: Option<&str>,
    epoch_secs: u64,
    random: u128,
) {
    // `1-` 8 hex `-` 24 hex, written by hand (formatting machinery costs more than the rest).
    let field = match previous {
        Some(previous) if previous.split(';').any(|f| f.trim().starts_with("Root=")) => "Self=",
        _ => "Root=",
    };
    out.extend_from_slice(field.as_bytes());
    out.extend_from_slice(b"1-");
    push_hex(out, u128::from(epoch_secs as u32), 8);
    out.push(b'-');
    push_hex(out, random, 24);
    for kept in previous
        .into_iter()
        .flat_map(|p| p.split(';'))
        .map(str::trim)
        .filter(|f| !f.is_empty() && !f.starts_with("Self="))
    {
        out.push(b';');
        out.extend_from_slice(kept.as_bytes());
    }
}

/// The low `digits` hex digits of `value`, lowercase.
fn push_hex(out: &mut Vec<u8>, value: u128, digits: u32) {
    for i in (0..digits).rev() {
        let nibble = (value >> (4 * i)) & 0xf;
        out.push(b"0123456789abcdef"[nibble as usize]);
    }
}

/// Removes the hop-by-hop headers and those `Connection` lists. Most messages carry none, so
/// the names are looked at once and nothing is removed (or hashed) unless found.
fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let mut found = headers
        .keys()
        .filter(|n| is_hop_by_hop(n.as_str().as_bytes()));
    let (Some(first), more) = (found.next(), found.next().is_some()) else {
        return;
    };
    // The common case, a lone `Connection: keep-alive` or `close`: nothing else to find.
    if !more && *first == header::CONNECTION && only_persistence(headers) {
        headers.remove(header::CONNECTION);
        return;
    }
    let mut doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|n| is_hop_by_hop(n.as_str().as_bytes()))
        .cloned()
        .collect();
    let listed = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::try_from(name.trim()).ok());
    doomed.extend(listed);
    for name in doomed {
        headers.remove(name);
    }
}

/// Whether `Connection` names only `keep-alive` or `close`, no other header to remove.
fn only_persistence(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .all(|t| {
            let t = t.trim_ascii();
            t.eq_ignore_ascii_case(b"keep-alive") || t.eq_ignore_ascii_case(b"close")
        })
}

/// Hop-by-hop headers (RFC 9110 §7.6.1), which describe one connection, not the message, and
/// the old `Proxy-Connection`. The length is looked at first: most names are not near one.
pub(super) fn is_hop_by_hop(name: &[u8]) -> bool {
    match name.len() {
        2 => name.eq_ignore_ascii_case(b"te"),
        7 => name.eq_ignore_ascii_case(b"trailer") || name.eq_ignore_ascii_case(b"upgrade"),
        10 => name.eq_ignore_ascii_case(b"connection") || name.eq_ignore_ascii_case(b"keep-alive"),
        16 => name.eq_ignore_ascii_case(b"proxy-connection"),
        17 => name.eq_ignore_ascii_case(b"transfer-encoding"),
        _ => false,
    }
}

/// The client as X-Forwarded-For names it: `1.2.3.4`, or with the client port option
/// `1.2.3.4:5678` / `[::1]:5678`. IPv4 is written by hand: `Display` costs more than the rest
/// of the header work.
pub(super) fn push_client(out: &mut Vec<u8>, peer: SocketAddr, with_port: bool) {
    use std::io::Write as _;
    match peer {
        SocketAddr::V4(v4) => {
            for (i, octet) in v4.ip().octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                push_decimal(out, octet.into());
            }
            if with_port {
                out.push(b':');
                push_decimal(out, v4.port());
            }
        }
        SocketAddr::V6(v6) if with_port => {
            let _ = write!(out, "[{}]:{}", v6.ip(), v6.port());
        }
        SocketAddr::V6(v6) => {
            let _ = write!(out, "{}", v6.ip());
        }
    }
}

pub(super) fn push_decimal(out: &mut Vec<u8>, n: u16) {
    let mut digits = [0u8; 5];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// X-Forwarded-For per the LB's mode; X-Forwarded-Proto and -Port always set.
fn rewrite_forwarded(
    headers: &mut HeaderMap,
    http: &HttpSettings,
    peer: SocketAddr,
    scheme: &'static str,
    listener_port: u16,
) -> Result<(), ProxyError> {
    match http.xff {
        XffMode::Preserve => {}
        XffMode::Remove => {
            headers.remove(&X_FORWARDED_FOR);
        }
        XffMode::Append => {
            let mut value = Vec::with_capacity(64);
            for previous in headers.get_all(&X_FORWARDED_FOR) {
                let previous = previous
                    .to_str()
                    .map_err(|_| ProxyError::BadRequest("invalid X-Forwarded-For header"))?;
                value.extend_from_slice(previous.as_bytes());
                value.extend_from_slice(b", ");
            }
            push_client(&mut value, peer, http.xff_client_port);
            let value = HeaderValue::try_from(value)
                .map_err(|_| ProxyError::BadRequest("invalid X-Forwarded-For header"))?;
            headers.insert(&X_FORWARDED_FOR, value);
        }
    }
    headers.insert(&X_FORWARDED_PROTO, HeaderValue::from_static(scheme));
    headers.insert(&X_FORWARDED_PORT, HeaderValue::from(listener_port));
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn settings(xff: XffMode, xff_client_port: bool, preserve_host: bool) -> HttpSettings {
        HttpSettings {
            idle_timeout: Duration::from_secs(60),
            xff,
            xff_client_port,
            preserve_host,
            http2: true,
            drop_invalid_headers: false,
            desync: desync::Mode::Defensive,
        }
    }

    #[test]
    fn only_names_of_letters_digits_and_hyphens_survive_dropping() {
        let mut headers = HeaderMap::new();
        for name in ["x-ok-1", "x_under", "x.dot", "accept"] {
            headers.insert(
                HeaderName::try_from(name).unwrap(),
                HeaderValue::from_static("v"),
            );
        }
        drop_invalid_names(&mut headers);
        let mut left: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, ["accept", "x-ok-1"]);
    }

    fn host(h: &str, port: u16, preserve: bool) -> String {
        let http = settings(XffMode::Append, false, preserve);
        target_host_value(h, port, &http)
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned()
    }

    #[test]
    fn host_is_rewritten_as_aws_does() {
        assert_eq!(host("example.com", 8080, false), "example.com:8080");
        assert_eq!(host("example.com:8080", 8080, false), "example.com:8080");
        assert_eq!(host("example.com:81", 80, false), "example.com");
        assert_eq!(host("[::1]:443", 443, false), "[::1]");
        assert_eq!(host("[::1]", 8080, false), "[::1]:8080");
        assert_eq!(host("example.com:81", 80, true), "example.com:81");
    }

    #[test]
    fn x_forwarded_for_modes() {
        let peer: SocketAddr = "127.0.9.9:4567".parse().unwrap();
        let run = |xff, port, existing: Option<&str>| {
            let mut headers = HeaderMap::new();
            if let Some(v) = existing {
                headers.insert(&X_FORWARDED_FOR, HeaderValue::from_str(v).unwrap());
            }
            rewrite_forwarded(
                &mut headers,
                &settings(xff, port, false),
                peer,
                "http",
                8080,
            )
            .unwrap();
            assert_eq!(headers[&X_FORWARDED_PROTO], "http");
            assert_eq!(headers[&X_FORWARDED_PORT], "8080");
            headers
                .get(&X_FORWARDED_FOR)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        assert_eq!(
            run(XffMode::Append, false, None).as_deref(),
            Some("127.0.9.9")
        );
        assert_eq!(
            run(XffMode::Append, true, Some("10.0.0.1")).as_deref(),
            Some("10.0.0.1, 127.0.9.9:4567")
        );
        assert_eq!(
            run(XffMode::Preserve, false, Some("1.2.3.4")).as_deref(),
            Some("1.2.3.4")
        );
        assert_eq!(run(XffMode::Remove, false, Some("1.2.3.4")), None);
    }

    fn trace_id(previous: Option<&str>, epoch_secs: u64, random: u128) -> String {
        let mut out = Vec::new();
        write_trace_id(&mut out, previous, epoch_secs, random);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn trace_ids_as_alb_sets_them() {
        let t = 0x5f5e_1000;
        assert_eq!(
            trace_id(None, t, 0xabc),
            "Root=1-5f5e1000-000000000000000000000abc"
        );
        assert_eq!(
            trace_id(Some("Root=1-1-2;CalledFrom=app"), t, 1),
            "Self=1-5f5e1000-000000000000000000000001;Root=1-1-2;CalledFrom=app"
        );
        assert_eq!(
            trace_id(Some("Self=1-0-0;Root=1-1-2"), t, 1),
            "Self=1-5f5e1000-000000000000000000000001;Root=1-1-2"
        );
        assert_eq!(
            trace_id(Some("Custom=x"), t, 1),
            "Root=1-5f5e1000-000000000000000000000001;Custom=x"
        );
    }

    #[test]
    fn hop_by_hop_headers_go() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        headers.insert("x-secret", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert("x-kept", HeaderValue::from_static("1"));
        remove_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1);
        assert!(headers.contains_key("x-kept"));
    }
}
