//! Requests to a `lambda` group: read whole (up to 1 MB), dressed as any forwarded request,
//! turned into ALB's event, invoked within the load balancer's idle timeout, and the
//! function's answer turned into the response.

use std::net::SocketAddr;
use std::time::Instant;

use elb_lambda::{Failure, MAX_BODY};
use http::{HeaderMap, HeaderValue, Request, Response, Version, header};
use http_body_util::{BodyExt, Either, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::ext::ReasonPhrase;

use super::ClientCert;
use super::forward::{dress_request, wants_upgrade};
use super::headers::remove_hop_by_hop;
use super::outcome::Tally;
use super::rescue::{Body, ProxyError};
use crate::table::HttpRoute;
use crate::targets::{Function, HttpTargets};

/// Invokes `function` with `req` (whose Host is `host`) and answers with what it returns.
pub(super) async fn invoke(
    (req, host): (Request<Incoming>, &str),
    route: &HttpRoute,
    targets: &HttpTargets,
    function: &Function,
    client: (SocketAddr, &ClientCert),
    tally: &mut Tally,
) -> Result<Response<Body>, ProxyError> {
    if wants_upgrade(req.headers()) {
        return Err(ProxyError::BadRequest(
            "a Lambda function takes no WebSocket",
        ));
    }
    let (mut parts, body) = req.into_parts();
    remove_hop_by_hop(&mut parts.headers);
    dress_request(&mut parts.headers, host, route, client, tally)?
        .insert_into(&mut parts.headers)?;
    if parts.version == Version::HTTP_2 {
        join_cookies(&mut parts.headers);
    }
    // A body not received whole within the idle timeout is a 408, as a stalled one on ALB.
    let body = tokio::time::timeout(
        route.http.idle_timeout,
        Limited::new(body, MAX_BODY).collect(),
    )
    .await
    .map_err(|_| ProxyError::RequestTimeout)?
    .map_err(|e| {
        if e.is::<LengthLimitError>() {
            ProxyError::LambdaRequestTooLarge
        } else {
            ProxyError::BadRequest("the request body could not be read")
        }
    })?
    .to_bytes();
    let request = elb_lambda::Request {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query(),
        headers: &parts.headers,
        body: &body,
    };
    let invoker = function.invoker.as_ref().ok_or_else(|| {
        ProxyError::Lambda(Failure::Connection(
            "elbd has no lambda_endpoint in its [settings]".to_owned(),
        ))
    })?;
    let event = elb_lambda::event::event(&targets.target_group_arn, &request, function.multi_value);
    if let Some(facts) = tally.outcome.facts() {
        facts.dispatched = Some(facts.started.elapsed());
    }
    let sent_at = Instant::now();
    let answer = tokio::time::timeout(
        route.http.idle_timeout,
        invoker.invoke(&function.arn, event),
    )
    .await
    .map_err(|_| ProxyError::Lambda(Failure::Timeout))?
    .map_err(ProxyError::Lambda)?;
    tally.outcome.target_time = Some(sent_at.elapsed());
    let answer = elb_lambda::event::response(&answer, function.multi_value)
        .map_err(|e| ProxyError::Lambda(Failure::InvalidResponse(e)))?;
    tally.outcome.target_status = Some(answer.status.as_u16());
    let mut response = Response::new(Either::Right(Full::new(answer.body)));
    *response.status_mut() = answer.status;
    *response.headers_mut() = answer.headers;
    // HTTP/1 clients get the function's reason phrase; one that is not a valid phrase is
    // left for the status's own.
    let reason = answer.reason.map(String::into_bytes);
    if let Some(reason) = reason.and_then(|r| ReasonPhrase::try_from(r).ok()) {
        response.extensions_mut().insert(reason);
    }
    Ok(response)
}

/// HTTP/2 clients may split their cookies over several fields; they are one header again
/// before leaving HTTP/2 (RFC 9113, 8.2.3), so that a single-value event keeps them all.
fn join_cookies(headers: &mut HeaderMap) {
    let crumbs: Vec<&[u8]> = headers
        .get_all(header::COOKIE)
        .iter()
        .map(HeaderValue::as_bytes)
        .collect();
    if crumbs.len() < 2 {
        return;
    }
    if let Ok(joined) = HeaderValue::from_bytes(&crumbs.join(&b"; "[..])) {
        headers.insert(header::COOKIE, joined);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_cookies_are_joined_and_one_is_left_alone() {
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, HeaderValue::from_static("a=1"));
        join_cookies(&mut headers);
        assert_eq!(headers[header::COOKIE], "a=1");
        headers.append(header::COOKIE, HeaderValue::from_static("b=2"));
        join_cookies(&mut headers);
        let all: Vec<_> = headers.get_all(header::COOKIE).iter().collect();
        assert_eq!(all, ["a=1; b=2"]);
    }
}
