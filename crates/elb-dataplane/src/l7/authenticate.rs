//! Authenticate actions on the request path. A request with a valid session goes on with
//! the user's claims in `x-amzn-oidc-*` headers; one without is denied, let through without
//! them, or sent to log in; the provider's callback (`/oauth2/idpresponse`) finishes a
//! login with a session cookie and sends the user where they were going.

use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;

use super::rescue::{Body, ProxyError, error_page};
use crate::auth::flow::{self, NONCE_COOKIE, State};
use crate::auth::session::{self, Session};
use crate::auth::{AuthFailure, Login};
use crate::sticky::{self, CookieSealer};
use crate::table::{HttpRoute, Logins};

const ACCESS_TOKEN: HeaderName = HeaderName::from_static("x-amzn-oidc-accesstoken");
const IDENTITY: HeaderName = HeaderName::from_static("x-amzn-oidc-identity");
const DATA: HeaderName = HeaderName::from_static("x-amzn-oidc-data");

/// What the authenticate action decided: the request goes on (with the user's claims when
/// it has a session), or the load balancer answers it.
pub(super) enum Gate {
    Pass,
    Answer(Response<Body>),
}

/// Runs `login` (the action of the rule `rule`) on `req`, sent to `host`.
pub(super) fn gate(
    login: &Login,
    route: &HttpRoute,
    rule: Option<u16>,
    (req, host): (&mut Request<Incoming>, &str),
    now_s: u64,
) -> Result<Gate, ProxyError> {
    // Only the load balancer says who the user is.
    for name in [ACCESS_TOKEN, IDENTITY, DATA] {
        req.headers_mut().remove(name);
    }
    let (logins, sealer) = usable(login, route)?;
    let session = Session::from_request(req.headers(), &login.session.cookie_name, sealer)
        .filter(|s| s.valid_for(&login.issuer, &login.client_id, now_s));
    if let Some(session) = session {
        let key = logins
            .claims_key
            .as_deref()
            .ok_or_else(|| unusable("no claims key"))?;
        let jwt = flow::claims_jwt(key, login, &session.claims, session.expires_s)
            .ok_or_else(|| unusable("the claims could not be signed"))?;
        let headers = req.headers_mut();
        for (name, value) in [
            (ACCESS_TOKEN, session.access_token.as_str()),
            (IDENTITY, session.subject.as_str()),
            (DATA, jwt.as_str()),
        ] {
            let value = HeaderValue::try_from(value)
                .map_err(|_| AuthFailure::InvalidUserInfo(format!("{name} is not a header value")))
                .map_err(ProxyError::Auth)?;
            headers.insert(name, value);
        }
        return Ok(Gate::Pass);
    }
    use elb_model::OnUnauthenticated::*;
    match login.session.on_unauthenticated {
        Allow => Ok(Gate::Pass),
        Deny => Err(ProxyError::Auth(AuthFailure::Unauthenticated)),
        Authenticate => {
            let nonce = flow::nonce().ok_or_else(|| unusable("no randomness"))?;
            let target = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
            let state = State {
                rule,
                client_id: login.client_id.clone(),
                nonce: nonce.clone(),
                target: target.to_owned(),
                issued_s: now_s,
            };
            let state = state.seal(sealer).ok_or_else(|| unusable("no state"))?;
            let url = flow::authorization_url(login, &flow::redirect_uri(host), &state, &nonce);
            let mut response = found(&url)?;
            let cookie = format!(
                "{NONCE_COOKIE}={nonce}; Max-Age={}; Path=/; Secure; HttpOnly",
                flow::LOGIN_TIMEOUT_S
            );
            set_cookie(response.headers_mut(), cookie);
            Ok(Gate::Answer(response))
        }
    }
}

/// The provider's redirect back after a login: the code for tokens, the tokens for the
/// user's claims, the claims into a session cookie, and the user back where they were going.
pub(super) async fn callback(
    route: &HttpRoute,
    req: &Request<Incoming>,
    host: &str,
    now_s: u64,
) -> Result<Response<Body>, ProxyError> {
    let failed = ProxyError::Auth;
    let (code, state) = flow::callback_params(req.uri().query()).map_err(failed)?;
    let sealer = route
        .sealer
        .as_deref()
        .ok_or_else(|| unusable("no cookie key"))?;
    let state = State::open(&state, sealer, now_s).map_err(failed)?;
    // The browser that comes back must be the one that was sent.
    if sticky::request_cookie(req.headers(), NONCE_COOKIE) != Some(state.nonce.as_str()) {
        return Err(failed(AuthFailure::InvalidState));
    }
    let login = match state.rule {
        Some(priority) => route
            .rules
            .iter()
            .find(|(_, r)| r.priority == priority)
            .and_then(|(_, r)| r.login.as_deref()),
        None => route.default_login.as_deref(),
    }
    .filter(|l| l.client_id == state.client_id)
    .ok_or(failed(AuthFailure::InvalidState))?;
    let (logins, sealer) = usable(login, route)?;
    let redirect_uri = flow::redirect_uri(host);
    let tokens = logins
        .providers
        .exchange(login, &code, &redirect_uri)
        .await
        .map_err(failed)?;
    let (access_token, subject) =
        flow::token_response(&tokens, login, &state.nonce, now_s).map_err(failed)?;
    let info = logins
        .providers
        .user_info(login, &access_token)
        .await
        .map_err(failed)?;
    let claims = flow::user_claims(&info, &subject).map_err(failed)?;
    let session = Session {
        issuer: login.issuer.clone(),
        client_id: login.client_id.clone(),
        subject,
        claims,
        access_token,
        expires_s: now_s + u64::from(login.session.timeout_s),
    };
    let values = session.seal(sealer).ok_or_else(|| unusable("no session"))?;
    let mut response = found(&state.target)?;
    let headers = response.headers_mut();
    let name = &login.session.cookie_name;
    session::set_cookies(headers, name, &values, session.expires_s, req.headers());
    session::clear(headers, NONCE_COOKIE);
    Ok(response)
}

/// Whether `path` is the callback's on `route`, which has authenticate actions.
pub(super) fn is_callback(route: &HttpRoute, path: &str) -> bool {
    route.logins.is_some() && path == flow::CALLBACK_PATH
}

/// The listener's shared parts and its sealer, or why the action cannot run.
fn usable<'r>(
    login: &Login,
    route: &'r HttpRoute,
) -> Result<(&'r Logins, &'r CookieSealer), ProxyError> {
    if let Some(why) = &login.unusable {
        return Err(unusable(why));
    }
    let logins = route
        .logins
        .as_ref()
        .ok_or_else(|| unusable("no providers"))?;
    let sealer = route
        .sealer
        .as_deref()
        .ok_or_else(|| unusable("no cookie key"))?;
    Ok((logins, sealer))
}

fn unusable(why: &str) -> ProxyError {
    ProxyError::Auth(AuthFailure::Unusable(why.to_owned()))
}

/// A 302 to `location`, not to be cached.
fn found(location: &str) -> Result<Response<Body>, ProxyError> {
    let location = HeaderValue::try_from(location)
        .map_err(|_| ProxyError::BadRequest("login redirect location"))?;
    let mut response = error_page(StatusCode::FOUND);
    let headers = response.headers_mut();
    headers.insert(header::LOCATION, location);
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store"),
    );
    Ok(response)
}

fn set_cookie(headers: &mut HeaderMap, cookie: String) {
    if let Ok(value) = HeaderValue::try_from(cookie) {
        headers.append(header::SET_COOKIE, value);
    }
}
