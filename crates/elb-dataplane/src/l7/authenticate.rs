//! Authenticate and jwt-validation actions on the request path. A request with a valid
//! session goes on with the user's claims in `x-amzn-oidc-*` headers; one without is denied,
//! let through without them, or sent to log in; the provider's callback
//! (`/oauth2/idpresponse`) finishes a login with a session cookie and sends the user where
//! they were going. Once the access token expires, a session with a refresh token gets new
//! tokens and claims (its cookie renewed on the response); one whose refresh fails ends (its
//! cookie cleared); one without lasts its timeout. A jwt-validation action lets through
//! requests whose bearer token holds.

use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;

use super::rescue::{Body, ProxyError, error_page};
use crate::auth::flow::{self, State};
use crate::auth::session::{self, Session};
use std::sync::Arc;

use crate::auth::jwt::{self, TokenFailure};
use crate::auth::{AuthFailure, Guard, Login, TokenCheck};
use crate::sticky::{self, CookieSealer};
use crate::table::{AuthContext, HttpRoute};

const ACCESS_TOKEN: HeaderName = HeaderName::from_static("x-amzn-oidc-accesstoken");
const IDENTITY: HeaderName = HeaderName::from_static("x-amzn-oidc-identity");
const DATA: HeaderName = HeaderName::from_static("x-amzn-oidc-data");
/// Logins under way one browser keeps nonce cookies for.
const MAX_PENDING_LOGINS: usize = 8;

/// What the authenticate action decided: the request goes on (with the user's claims when
/// it has a session), or the load balancer answers it.
pub(super) enum Gate {
    Pass,
    Answer(Response<Body>),
}

/// Drops the identity headers a client sent, and their names from its `Connection` (whose
/// listed headers go as hop-by-hop after the load balancer has set its own): on listeners
/// with authenticate actions, only the load balancer says who the user is.
pub(super) fn strip_claims(headers: &mut HeaderMap) {
    // Underscored spellings too: CGI-style servers read them as the same variable.
    const UNDERSCORED: [&str; 3] = [
        "x_amzn_oidc_accesstoken",
        "x_amzn_oidc_identity",
        "x_amzn_oidc_data",
    ];
    for name in [ACCESS_TOKEN, IDENTITY, DATA] {
        headers.remove(name);
    }
    for name in UNDERSCORED {
        headers.remove(name);
    }
    let ours = |token: &str| {
        [ACCESS_TOKEN, IDENTITY, DATA]
            .iter()
            .any(|n| token.eq_ignore_ascii_case(n.as_str()))
    };
    let listed: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    if listed.iter().any(|t| ours(t)) {
        let kept: Vec<&str> = listed
            .iter()
            .map(String::as_str)
            .filter(|t| !ours(t))
            .collect();
        headers.remove(header::CONNECTION);
        if let Ok(value) = HeaderValue::try_from(kept.join(", "))
            && !kept.is_empty()
        {
            headers.insert(header::CONNECTION, value);
        }
    }
}

/// Runs `login` (the action of the rule `rule`) on `req`, sent to `host`; the session cookie
/// a refresh renews or ends goes into `cookies`, for whatever answers the request.
pub(super) async fn gate(
    login: &Login,
    route: &HttpRoute,
    rule: Option<u16>,
    (req, host): (&mut Request<Incoming>, &str),
    now_s: u64,
    cookies: &mut HeaderMap,
) -> Result<Gate, ProxyError> {
    let (logins, sealer) = usable(login, route)?;
    let name = &login.session.cookie_name;
    let mut session =
        Session::from_request(req.headers(), name, sealer).filter(|s| s.valid_for(login, now_s));
    // Without a refresh token a session lasts its timeout, whatever its access token's.
    if let Some(expired) = session.take_if(|s| s.access_expired(now_s) && s.refresh_token.is_some())
    {
        match refresh(logins, login, expired, sealer, now_s).await {
            Ok((fresh, values)) => {
                session::set_cookies(cookies, name, &values, fresh.expires_s, req.headers());
                session = Some(fresh);
            }
            // As AWS: a failed refresh ends the session; its cookie goes, not to be tried
            // again on every request.
            Err(e) => {
                tracing::debug!(error = %e, "refreshing a session failed");
                session::set_cookies(cookies, name, &[], 0, req.headers());
            }
        }
    }
    if let Some(session) = session {
        let key = logins
            .claims_key
            .as_deref()
            .ok_or_else(|| unusable("no claims key"))?;
        // The rule's own timeout may end it sooner than the session's.
        let ends_s = session
            .expires_s
            .min(session.issued_s + u64::from(login.session.timeout_s));
        let jwt = flow::claims_jwt(key, login, &session.claims, ends_s)
            .ok_or_else(|| unusable("the claims could not be signed"))?;
        let headers = req.headers_mut();
        // The callback sealed only values a header carries; the JWT is base64url.
        for (name, value) in [
            (ACCESS_TOKEN, session.access_token.as_str()),
            (IDENTITY, session.subject.as_str()),
            (DATA, jwt.as_str()),
        ] {
            let value = HeaderValue::try_from(value).map_err(|_| unusable("a claim header"))?;
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
            let cookie = format!(
                "{}={nonce}; Max-Age={}; Path=/; Secure; HttpOnly",
                state.nonce_cookie(),
                flow::LOGIN_TIMEOUT_S
            );
            let state = state.seal(sealer).ok_or_else(|| unusable("no state"))?;
            let url = flow::authorization_url(login, &flow::redirect_uri(host), &state, &nonce);
            let mut response = found(&url)?;
            // Logins begun and never finished leave their cookies for 15 minutes; past a
            // few, they are cleared rather than left to crowd the Cookie header.
            let pending: Vec<&str> = req
                .headers()
                .get_all(header::COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(';'))
                .filter_map(|pair| pair.trim().split_once('=').map(|(name, _)| name))
                .filter(|name| name.starts_with(flow::NONCE_COOKIE_PREFIX))
                .collect();
            if pending.len() >= MAX_PENDING_LOGINS {
                for name in pending {
                    session::clear(response.headers_mut(), name);
                }
            }
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
    let cookie = state.nonce_cookie();
    if sticky::request_cookie(req.headers(), &cookie) != Some(state.nonce.as_str()) {
        return Err(failed(AuthFailure::InvalidState));
    }
    let guard = match state.rule {
        Some(priority) => route
            .rules
            .iter()
            .find(|(_, r)| r.priority == priority)
            .and_then(|(_, r)| r.guard.as_deref()),
        None => route.default_guard.as_deref(),
    };
    let login = match guard {
        Some(Guard::Login(login)) if login.client_id == state.client_id => login,
        _ => return Err(failed(AuthFailure::InvalidState)),
    };
    let (logins, sealer) = usable(login, route)?;
    let redirect_uri = flow::redirect_uri(host);
    let tokens = logins
        .providers
        .exchange(login, &code, &redirect_uri)
        .await
        .map_err(failed)?;
    let (grant, subject) =
        flow::token_response(&tokens, login, &state.nonce, now_s).map_err(failed)?;
    let info = logins
        .providers
        .user_info(login, &grant.access_token)
        .await
        .map_err(failed)?;
    let claims = flow::user_claims(&info, &subject).map_err(failed)?;
    let session = Session {
        signer: login.signer.clone(),
        issuer: login.issuer.clone(),
        client_id: login.client_id.clone(),
        subject,
        claims,
        access_token: grant.access_token,
        access_expires_s: grant.access_expires_s,
        refresh_token: grant.refresh_token,
        issued_s: now_s,
        expires_s: now_s + u64::from(login.session.timeout_s),
    };
    let values = session
        .seal(sealer)
        .ok_or(failed(AuthFailure::ClaimsTooLarge))?;
    let mut response = found(&flow::return_url(host, &state.target))?;
    let headers = response.headers_mut();
    let name = &login.session.cookie_name;
    session::set_cookies(headers, name, &values, session.expires_s, req.headers());
    session::clear(headers, &cookie);
    Ok(response)
}

/// `expired` with new tokens for its refresh token and the claims they give (the same
/// user's), until the session's own end; sealed for its cookies.
async fn refresh(
    logins: &AuthContext,
    login: &Login,
    expired: Session,
    sealer: &CookieSealer,
    now_s: u64,
) -> Result<(Session, Vec<String>), AuthFailure> {
    let refresh_token = (expired.refresh_token.as_deref())
        .ok_or_else(|| AuthFailure::InvalidGrant("no refresh token".into()))?;
    let tokens = logins.providers.refresh(login, refresh_token).await?;
    let (grant, _) = flow::Grant::parse(&tokens, now_s)?;
    let info = logins
        .providers
        .user_info(login, &grant.access_token)
        .await?;
    let claims = flow::user_claims(&info, &expired.subject)?;
    let fresh = Session {
        claims,
        access_token: grant.access_token,
        access_expires_s: grant.access_expires_s,
        // A provider that does not rotate it leaves the one it gave.
        refresh_token: grant.refresh_token.or(expired.refresh_token),
        ..expired
    };
    let values = fresh.seal(sealer).ok_or(AuthFailure::ClaimsTooLarge)?;
    Ok((fresh, values))
}

/// Whether `path` is the callback's on `route`, which has authenticate actions.
pub(super) fn is_callback(route: &HttpRoute, path: &str) -> bool {
    let login =
        |guard: Option<&Arc<Guard>>| matches!(guard.map(Arc::as_ref), Some(Guard::Login(_)));
    path == flow::CALLBACK_PATH
        && route.auth.is_some()
        && (login(route.default_guard.as_ref())
            || route.rules.iter().any(|(_, r)| login(r.guard.as_ref())))
}

/// A jwt-validation action: the request's bearer token must hold against the issuer's key
/// set (read again once when the token names a key the set lacks).
pub(super) async fn check_token(
    check: &TokenCheck,
    route: &HttpRoute,
    headers: &HeaderMap,
    now_s: u64,
) -> Result<(), ProxyError> {
    if let Some(why) = &check.unusable {
        return Err(unusable(why));
    }
    let providers = &route
        .auth
        .as_ref()
        .ok_or_else(|| unusable("no providers"))?
        .providers;
    let refused = |e| ProxyError::Auth(AuthFailure::Token(e));
    let token = jwt::bearer(headers).map_err(refused)?;
    let action = (check.issuer.as_str(), check.claims.as_slice());
    let mut lacking_key = false;
    loop {
        let keys = providers
            .key_set(&check.jwks_endpoint, &check.jwks_name, lacking_key)
            .await
            .map_err(ProxyError::Auth)?;
        match jwt::verify(token, &keys, action, now_s) {
            // Only a token that could be the issuer's has the set read again.
            Err(TokenFailure::UnknownKey(_))
                if !lacking_key && jwt::plausible(token, &check.issuer, now_s) =>
            {
                lacking_key = true;
            }
            checked => return checked.map_err(refused),
        }
    }
}

/// The listener's shared parts and its sealer, or why the action cannot run.
fn usable<'r>(
    login: &Login,
    route: &'r HttpRoute,
) -> Result<(&'r AuthContext, &'r CookieSealer), ProxyError> {
    if let Some(why) = &login.unusable {
        return Err(unusable(why));
    }
    let logins = route
        .auth
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
