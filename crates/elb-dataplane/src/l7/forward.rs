//! The general path's handling of one request: limits and desync mitigation, the rules, then
//! a target picked (stickiness included), the request rewritten as an ALB does, sent over the
//! node's pool or client, and the target's response handed back.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{PathAndQuery, Uri};
use http::{Request, Response, StatusCode, Version};
use http_body_util::Either;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use super::authenticate::{self, Gate};
use super::decide::{Decision, decide, refusal};
use super::desync::{self, Verdict};
use super::dressing::{Arrival, Dressing};
use super::headers::{remove_hop_by_hop, strip_port, valid_host};
use super::idle::{Activity, Noted, NotedBody, idle};
use super::limits::{self, check_limits, forwarded_for_count};
use super::outcome::{Action, Tally};
use super::rescue::{Body, ProxyError};
use super::rewrite::Rewrites;
use super::rules::RequestView;
use super::stickiness::{renew_stickiness, sticky_target};
use super::{ClientCert, now_ms, rescue, respond};
use crate::auth::Guard;
use elb_model::ProtocolVersion;

use super::exchange::{self, TargetBody};
use crate::metrics::Active;
use crate::pool::SendError;
use crate::sticky::{self, Ticket};
use crate::table::{HttpRoute, RouteAction};
use crate::targets::{HttpTargets, REFUSALS};

/// Routes one request: the first rule whose conditions match (or the default) decides
/// whether it is forwarded, redirected or answered by the load balancer itself.
pub(super) async fn handle(
    mut req: Request<Incoming>,
    route: &HttpRoute,
    peer: SocketAddr,
    client: &ClientCert,
    raw_class: Option<(desync::Class, &'static str)>,
    tally: &mut Tally,
) -> Result<Response<Body>, ProxyError> {
    check_limits(&req)?;
    let (class, reason) =
        raw_class.unwrap_or_else(|| desync::classify(req.method(), req.headers()));
    let verdict = route.http.desync.verdict(class);
    if class != desync::Class::Compliant {
        tracing::info!(%peer, ?class, reason, ?verdict, "desync mitigation classified a request");
        if let Some(facts) = tally.outcome.facts() {
            facts.classification = Some((class.name(), reason));
        }
    }
    match verdict {
        Verdict::Forward => {}
        Verdict::Refuse => return Err(ProxyError::Desync(reason)),
        Verdict::ForwardThenClose => {
            req.extensions_mut().insert(CloseAfter);
            let mut response = Box::pin(route_request(req, route, peer, client, tally)).await?;
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return Ok(response);
        }
    }
    route_request(req, route, peer, client, tally).await
}

/// Marks a request whose client and target connections close after it (desync mitigation).
#[derive(Clone, Copy)]
struct CloseAfter;

async fn route_request(
    mut req: Request<Incoming>,
    route: &HttpRoute,
    peer: SocketAddr,
    client: &ClientCert,
    tally: &mut Tally,
) -> Result<Response<Body>, ProxyError> {
    refusal(req.method().as_str(), forwarded_for_count(req.headers()))?;
    let host = request_host(req.uri(), req.headers(), &route.dns_name)?;
    if authenticate::is_callback(route, req.uri().path()) {
        tally.outcome.action = Action::Authenticate;
        return authenticate::callback(route, &req, &host, now_ms() / 1000).await;
    }
    let view = RequestView {
        method: req.method().as_str(),
        host: Some(strip_port(&host)),
        authority: Some(&host),
        path: req.uri().path(),
        query: req.uri().query(),
        headers: req.headers(),
        peer: peer.ip(),
    };
    let decision = decide(route, &view);
    tally.outcome.decide(&decision);
    if route.auth.is_some() {
        authenticate::strip_claims(req.headers_mut());
    }
    let Some(guard) = decision.guard else {
        return act(decision, req, route, host, (peer, client), tally).await;
    };
    let mut cookies = HeaderMap::new();
    let now_s = now_ms() / 1000;
    let gated = match guard {
        Guard::Login(login) => {
            let request = (&mut req, host.as_str());
            authenticate::gate(login, route, decision.rule, request, now_s, &mut cookies).await
        }
        Guard::Token(check) => authenticate::check_token(check, route, req.headers(), now_s)
            .await
            .map(|()| Gate::Pass),
    };
    // What the authenticate action answers (a redirect, a denial) is its own.
    if !matches!(gated, Ok(Gate::Pass)) {
        tally.outcome.action = Action::Authenticate;
    }
    let answered = match gated {
        Ok(Gate::Pass) => {
            tally.outcome.authenticated = true;
            act(decision, req, route, host, (peer, client), tally).await
        }
        Ok(Gate::Answer(response)) => Ok(response),
        Err(e) => Err(e),
    };
    if cookies.is_empty() {
        return answered;
    }
    // A session renewed or ended goes with any answer, an error page too: a provider that
    // rotates refresh tokens has spent the old one.
    let mut response = answered.unwrap_or_else(|e| {
        tally.outcome.failed(&e);
        rescue::respond(&e)
    });
    // Appended: `extend` would replace the target's own cookies.
    for (name, value) in &cookies {
        response.headers_mut().append(name, value.clone());
    }
    Ok(response)
}

/// Runs the rule's action: forward (with group stickiness), redirect or fixed response.
async fn act(
    decision: Decision<'_>,
    req: Request<Incoming>,
    route: &HttpRoute,
    host: String,
    (peer, client): (SocketAddr, &ClientCert),
    tally: &mut Tally,
) -> Result<Response<Body>, ProxyError> {
    match decision.action {
        RouteAction::Forward(forward) => {
            let rewrites = decision.rewrites;
            let now_s = now_ms() / 1000;
            let sealer = route.sealer.as_deref();
            let Some((duration_s, sealer)) = forward.group_stickiness_s.zip(sealer) else {
                let targets = forward.pick(fastrand::f64()).ok_or(ProxyError::NoTargets)?;
                let request = (req, host, rewrites);
                return proxy(request, route, targets, (peer, client), now_s, tally).await;
            };
            let stuck = sticky::request_cookie(req.headers(), sticky::GROUP_COOKIE)
                .and_then(|value| sealer.open(value))
                .filter(|t| t.target.is_none() && t.fresh(now_s, duration_s))
                .and_then(|t| forward.group(&t.group));
            let targets = stuck
                .or_else(|| forward.pick(fastrand::f64()))
                .ok_or(ProxyError::NoTargets)?;
            let request = (req, host, rewrites);
            let mut response = proxy(request, route, targets, (peer, client), now_s, tally).await?;
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

/// The request and its Host as a rule's transforms make them, for its target.
fn rewritten(
    mut req: Request<Incoming>,
    host: String,
    rewrites: &Rewrites,
) -> Result<(Request<Incoming>, String), ProxyError> {
    // What the target would get: an absolute-form request without a path asks for `/`.
    let target = match req.uri().path_and_query().map(PathAndQuery::as_str) {
        Some(target) if target.starts_with('/') => target.to_owned(),
        other => format!("/{}", other.unwrap_or_default()),
    };
    if let Some(url) = rewrites.url(&target)? {
        let url = PathAndQuery::try_from(url).map_err(|_| ProxyError::Transform("URL"))?;
        // The target's URI is made from its path and query (`proxy`).
        *req.uri_mut() = Uri::from(url);
    }
    let host = rewrites.host(&host)?.unwrap_or(host);
    Ok((req, host))
}

/// Sends the request (with its Host and its rule's transforms) to a target of `targets` (the one its stickiness cookie names, if that
/// one may still take it) and hands back its response, with the stickiness cookies renewed.
async fn proxy(
    (req, host, rewrites): (Request<Incoming>, String, Option<&Rewrites>),
    route: &HttpRoute,
    targets: &HttpTargets,
    (peer, client): (SocketAddr, &ClientCert),
    now_s: u64,
    tally: &mut Tally,
) -> Result<Response<Body>, ProxyError> {
    tally.group = Some(targets.proto.metrics.clone());
    if let Some(facts) = tally.outcome.facts() {
        facts.target_group = Some(targets.target_group_arn.clone());
    }
    if targets.registered == 0 {
        return Err(ProxyError::NoTargets);
    }
    if !suits(&req, targets.proto.version) {
        return Err(ProxyError::IncompatibleProtocol);
    }
    // The rule's transforms, checked after the group as on the relay.
    let (mut req, host) = match rewrites {
        Some(rewrites) => rewritten(req, host, rewrites)?,
        None => (req, host),
    };
    if let Some(function) = &targets.proto.function {
        let request = (req, host.as_str());
        return super::lambda::invoke(request, route, targets, function, (peer, client), tally)
            .await;
    }
    let sealer = route.sealer.as_deref();
    let stuck = sealer.and_then(|s| sticky_target(req.headers(), targets, s, now_s));
    let (mut target, mut _in_flight) = match stuck.and_then(|addr| targets.endpoint(addr)) {
        Some(picked) => picked,
        None => targets.next(now_ms).ok_or(ProxyError::NoReachableTargets)?,
    };
    tally.outcome.target = Some(target.addr);
    tally.load = Some(target.load.clone());

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
    if req.version() == Version::HTTP_2 && targets.proto.version == ProtocolVersion::Http1 {
        join_cookie_crumbs(req.headers_mut());
    }
    *req.version_mut() = Version::HTTP_11;
    let close_after = req.extensions().get::<CloseAfter>().is_some();
    let headers = req.headers_mut();
    let trailers = wants_trailers(headers);
    remove_hop_by_hop(headers);

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
    let dressing = dress_request(headers, &host, route, (peer, client), tally)?;
    // The exchange writes the dressing after the client's headers; every other road reads
    // the map.
    let by_exchange = pooled && upgrade.is_none();
    let dressing = if by_exchange {
        Some(dressing)
    } else {
        dressing.insert_into(headers)?;
        None
    };

    let idle_timeout = route.http.idle_timeout;
    let mut sent_at = Instant::now();
    if let Some(facts) = tally.outcome.facts() {
        facts.dispatched = Some(facts.started.elapsed());
    }
    let response = if pooled {
        // A target that refuses the connection has not seen the request: it goes to another
        // target, as on the relay.
        let mut refused = Vec::new();
        loop {
            let pool = &target.proto.pool;
            let sent = match &dressing {
                // The exchange keeps its own idle timeout, which an upload's bytes restart.
                Some(dressing) => exchange::send(pool, req, dressing, idle_timeout).await,
                None => tokio::time::timeout(idle_timeout, exchange::upgrade(pool, req))
                    .await
                    .map_err(|_| ProxyError::TargetTimeout)?,
            };
            match sent {
                Ok(response) => break response,
                Err((SendError::Connect(e), Some(unsent))) if refused.len() < REFUSALS => {
                    refused.push(target.addr);
                    let Some(other) = targets.other_than(&refused) else {
                        return Err(ProxyError::TargetConnect(e));
                    };
                    let counter = &targets.proto.metrics.target_connection_errors;
                    counter.fetch_add(1, Ordering::Relaxed);
                    target.load.count_failure();
                    (target, _in_flight) = other;
                    tally.outcome.target = Some(target.addr);
                    tally.load = Some(target.load.clone());
                    // The target's time is the last attempt's, as on the relay.
                    sent_at = Instant::now();
                    req = unsent;
                }
                Err((e, _)) => return Err(ProxyError::from_pool(e)),
            }
        }
    } else {
        let upstream = &route.upstream;
        let (parts, body) = req.into_parts();
        let (body, upload) = NotedBody::new(body);
        let req = Request::from_parts(parts, body);
        let sent = match (targets.proto.tls, h2) {
            (true, false) => upstream.https.request(req),
            (false, _) => upstream.h2.request(req),
            (true, true) => upstream.h2s.request(req),
        };
        // Timed as the exchange times its own, as closely as hyper's client lets it: each
        // frame of the body hyper takes restarts the idle timeout (not each byte it writes,
        // nor the target's bytes before its head).
        tokio::select! {
            sent = sent => sent.map_err(ProxyError::from_target)?.map(TargetBody::hyper),
            client_owes = upload.stalled(idle_timeout) => return Err(match client_owes {
                true => ProxyError::RequestTimeout,
                false => ProxyError::TargetTimeout,
            }),
        }
    };
    tally.outcome.target_time = Some(sent_at.elapsed());
    tally.outcome.target_status = Some(response.status().as_u16());
    if !by_exchange {
        // The exchange held the head's bytes to ALB's limit; hyper's clients (HTTPS and
        // HTTP/2 targets, upgrades) are held to it here.
        limits::check_response_head(response.status(), response.headers())?;
    }
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
        // Active until the tunnel ends, after the client connection's own task has.
        let active = route.door.metrics.as_ref().map(Active::continued);
        tokio::spawn(async move {
            tunnel(client, target, idle_timeout).await;
            drop(active);
        });
        return Ok(response);
    }
    if !by_exchange {
        // The exchange's responses come without them (`ResponseFacts::passes`), and without a
        // 204's Content-Length (RFC 9110 §8.6; HTTP/2 clients reset the stream over it).
        remove_hop_by_hop(response.headers_mut());
        if response.status() == StatusCode::NO_CONTENT {
            response.headers_mut().remove(header::CONTENT_LENGTH);
        }
    }
    Ok(response)
}

/// What the load balancer sets on every request it forwards (to an address or a function),
/// its hop-by-hop headers already gone: invalid header names dropped when the load balancer
/// asks, mutual TLS's headers; and the dressing (Host, X-Forwarded-*, X-Amzn-Trace-Id), which
/// the caller writes or inserts.
pub(super) fn dress_request(
    headers: &mut HeaderMap,
    host: &str,
    route: &HttpRoute,
    (peer, client): (SocketAddr, &ClientCert),
    tally: &mut Tally,
) -> Result<Dressing, ProxyError> {
    if route.http.drop_invalid_headers {
        drop_invalid_names(headers);
    }
    if route.mtls.is_some() {
        // What a client says of its own certificate is never passed on as ours.
        for name in MTLS_HEADERS {
            headers.remove(name);
        }
        for (name, value) in client.headers() {
            headers.insert(name, value.clone());
        }
    }
    let arrival = Arrival {
        peer,
        scheme: route.scheme(),
        port: route.port,
    };
    let trace = (now_ms() / 1000, fastrand::u128(..));
    let dressing = Dressing::new(headers, host, &route.http, &arrival, trace)?;
    if let Some(facts) = tally.outcome.facts() {
        facts.trace_id = Some(String::from_utf8_lossy(dressing.trace_id()).into_owned());
    }
    Ok(dressing)
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

/// The headers mutual TLS sets towards targets.
const MTLS_HEADERS: [&str; 6] = [
    "x-amzn-mtls-clientcert",
    "x-amzn-mtls-clientcert-serial-number",
    "x-amzn-mtls-clientcert-issuer",
    "x-amzn-mtls-clientcert-subject",
    "x-amzn-mtls-clientcert-validity",
    "x-amzn-mtls-clientcert-leaf",
];

/// Whether an HTTP/1.1 request asks to switch protocols (`Connection: upgrade`).
pub(super) fn wants_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|token| token.trim().eq_ignore_ascii_case("upgrade"))
}

/// After a 101, the two connections carry bytes both ways until either side closes, or
/// neither has sent any for the idle timeout: a WebSocket is pinned to its target, and idles
/// out, as on AWS.
async fn tunnel(
    client: hyper::upgrade::OnUpgrade,
    target: hyper::upgrade::OnUpgrade,
    idle_timeout: Duration,
) {
    let (Ok(client), Ok(target)) = (client.await, target.await) else {
        return;
    };
    let activity = Arc::new(Activity::default());
    let mut client = Noted::new(TokioIo::new(client), activity.clone());
    let mut target = Noted::new(TokioIo::new(target), activity.clone());
    tokio::select! {
        copied = tokio::io::copy_bidirectional(&mut client, &mut target) => {
            if let Err(e) = copied {
                tracing::debug!(error = %e, "upgraded connection ended with an error");
            }
        }
        () = idle(&activity, idle_timeout) => {
            tracing::debug!("upgraded connection idle past the timeout: closed");
        }
    }
}

/// HTTP/2 splits Cookie into a field per crumb; an HTTP/1.1 target gets them joined on one
/// line (RFC 9113 §8.2.3), whichever road takes the request.
fn join_cookie_crumbs(headers: &mut HeaderMap) {
    let mut crumbs = headers.get_all(header::COOKIE).iter();
    let (Some(first), Some(_)) = (crumbs.next(), crumbs.next()) else {
        return;
    };
    let mut joined = first.as_bytes().to_vec();
    for crumb in headers.get_all(header::COOKIE).iter().skip(1) {
        joined.extend_from_slice(b"; ");
        joined.extend_from_slice(crumb.as_bytes());
    }
    if let Ok(joined) = HeaderValue::from_bytes(&joined) {
        headers.insert(header::COOKIE, joined);
    }
}

/// The Host the client asked for: the authority of an absolute-form target or HTTP/2's
/// `:authority` (RFC 9112 §3.2.2: the Host header is then ignored), else the Host header,
/// else (HTTP/1.0 without Host, or an empty one) the load balancer's DNS name, as AWS does.
fn request_host(uri: &Uri, headers: &HeaderMap, dns_name: &str) -> Result<String, ProxyError> {
    if let Some(authority) = uri.authority().map(|a| a.as_str()) {
        // The `http` crate takes userinfo and any port; a Host takes neither.
        if authority.contains('@') || !valid_host(authority.as_bytes()) {
            return Err(ProxyError::BadRequest("invalid authority"));
        }
        return Ok(authority.to_owned());
    }
    match headers.get(header::HOST).map(HeaderValue::as_bytes) {
        // An empty Host names no authority (RFC 9112 §3.2): the load balancer's own.
        None | Some(b"") => Ok(dns_name.to_owned()),
        Some(host) if valid_host(host) => Ok(String::from_utf8_lossy(host).into_owned()),
        Some(_) => Err(ProxyError::BadRequest("invalid Host header")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_crumbs_are_joined_on_one_line() {
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, HeaderValue::from_static("a=1"));
        headers.append(header::COOKIE, HeaderValue::from_static("b=2"));
        join_cookie_crumbs(&mut headers);
        let joined: Vec<_> = headers.get_all(header::COOKIE).iter().collect();
        assert_eq!(joined, ["a=1; b=2"]);
    }

    #[test]
    fn the_host_is_the_targets_authority_before_the_host_header() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("other.com"));
        let absolute: Uri = "http://a.wild.example/echo".parse().unwrap();
        let origin: Uri = "/echo".parse().unwrap();
        let host = |uri: &Uri, headers: &HeaderMap| request_host(uri, headers, "lb.dns").unwrap();
        assert_eq!(host(&absolute, &headers), "a.wild.example");
        assert_eq!(host(&origin, &headers), "other.com");
        assert_eq!(host(&origin, &HeaderMap::new()), "lb.dns");
        headers.insert(header::HOST, HeaderValue::from_static(""));
        assert_eq!(host(&origin, &headers), "lb.dns");
        headers.insert(header::HOST, HeaderValue::from_static("a wild"));
        assert!(request_host(&origin, &headers, "lb.dns").is_err());
        for bad in ["http://u:p@abs.test/", "http://abs.test:abc/"] {
            let uri: Uri = bad.parse().unwrap();
            assert!(
                request_host(&uri, &HeaderMap::new(), "lb.dns").is_err(),
                "{bad}"
            );
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
}
