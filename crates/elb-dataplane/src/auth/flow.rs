//! The login's steps that need no I/O: the authorization request and the state it carries
//! through the provider, the callback's parameters, the ID token's checks, and the claims
//! JWT (`x-amzn-oidc-data`) targets get.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use elb_tls::claims_key::ClaimsKey;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{AuthFailure, Login};
use crate::sticky::CookieSealer;

/// Where the provider sends the user back, on every listener with authenticate actions.
pub const CALLBACK_PATH: &str = "/oauth2/idpresponse";
/// How long a user has to log in (ALB's 15 minutes).
pub const LOGIN_TIMEOUT_S: u64 = 900;
/// The nonce cookies' names start so; the nonce's first characters follow.
pub const NONCE_COOKIE_PREFIX: &str = "__Host-AWSELBAuthNonce-";
/// How far apart nodes' clocks may be: a state made by one opens on another.
const CLOCK_SKEW_S: u64 = 60;
/// ALB's limit on the user's claims.
pub const MAX_CLAIMS: usize = 11 * 1024;
const STATE_PURPOSE: &[u8] = b"elbd auth state v1";

/// What the state parameter carries to the provider and back, sealed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The rule whose action sent the user (`None`: the listener's default rule), and its
    /// client, so a changed rule does not take another's login.
    pub rule: Option<u16>,
    pub client_id: String,
    pub nonce: String,
    /// The path and query the user asked for, where the login ends.
    pub target: String,
    pub issued_s: u64,
}

impl State {
    /// Sealed, in base64url: a provider that echoes it without encoding it again keeps it.
    pub fn seal(&self, sealer: &CookieSealer) -> Option<String> {
        let sealed = sealer.seal_for(STATE_PURPOSE, &serde_json::to_vec(self).ok()?)?;
        Some(URL_SAFE_NO_PAD.encode(STANDARD.decode(sealed).ok()?))
    }

    /// The state `value` carries, if this load balancer sealed it less than the login
    /// timeout before `now_s`.
    pub fn open(value: &str, sealer: &CookieSealer, now_s: u64) -> Result<Self, AuthFailure> {
        let state: Self = URL_SAFE_NO_PAD
            .decode(value)
            .ok()
            .and_then(|raw| sealer.open_for(STATE_PURPOSE, &STANDARD.encode(raw)))
            .and_then(|json| serde_json::from_slice(&json).ok())
            .ok_or(AuthFailure::InvalidState)?;
        let fresh = state.issued_s <= now_s + CLOCK_SKEW_S
            && now_s.saturating_sub(state.issued_s) <= LOGIN_TIMEOUT_S;
        if !fresh {
            return Err(AuthFailure::InvalidState);
        }
        Ok(state)
    }

    /// The cookie that ties the callback to the browser that was sent to log in: one per
    /// login under way (a second tab does not spoil the first), `__Host-` so that no other
    /// host can set it.
    pub fn nonce_cookie(&self) -> String {
        let tag: String = self.nonce.chars().take(8).collect();
        format!("{NONCE_COOKIE_PREFIX}{tag}")
    }
}

/// Where a login ends: the page first asked for on the host the provider sent the user back
/// to. Absolute, so that a path such as `//elsewhere.example` stays a path on this host;
/// bytes a header cannot carry are percent-encoded.
pub fn return_url(host: &str, target: &str) -> String {
    let mut url = format!("https://{host}");
    if !target.starts_with('/') {
        url.push('/');
    }
    for b in target.bytes() {
        if b.is_ascii_graphic() {
            url.push(char::from(b));
        } else {
            url.push_str(&format!("%{b:02X}"));
        }
    }
    url
}

/// `https://HOST/oauth2/idpresponse`, HOST as the client sent it (with its port).
pub fn redirect_uri(host: &str) -> String {
    format!("https://{host}{CALLBACK_PATH}")
}

/// The authorization endpoint with ALB's request: a code for the client, the scope, the
/// sealed state and the nonce, then the action's extra parameters.
pub fn authorization_url(login: &Login, redirect_uri: &str, state: &str, nonce: &str) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    query
        .append_pair("response_type", "code")
        .append_pair("client_id", &login.client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("scope", &login.session.scope)
        .append_pair("state", state)
        .append_pair("nonce", nonce);
    for (key, value) in &login.session.extra_params {
        query.append_pair(key, value);
    }
    let endpoint = &login.authorization_endpoint;
    let joint = if endpoint.contains('?') { '&' } else { '?' };
    format!("{endpoint}{joint}{}", query.finish())
}

/// The callback's `code` and `state`; the provider's `error` first.
pub fn callback_params(query: Option<&str>) -> Result<(String, String), AuthFailure> {
    let (mut code, mut state, mut error) = (None, None, None);
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match key.as_ref() {
            "code" => code = Some(value.into_owned()),
            "state" => state = Some(value.into_owned()),
            "error" => error = Some(value.into_owned()),
            _ => {}
        }
    }
    if let Some(error) = error {
        return Err(AuthFailure::Provider(error));
    }
    let state = state.ok_or(AuthFailure::MissingState)?;
    let code = code.ok_or(AuthFailure::MissingCode)?;
    Ok((code, state))
}

/// What a token response grants (RFC 6749 5.1): the access token, until when, and a refresh
/// token when the provider gives one.
#[derive(Debug, PartialEq, Eq)]
pub struct Grant {
    pub access_token: String,
    /// `expires_in` from now; `None` when the provider does not say.
    pub access_expires_s: Option<u64>,
    pub refresh_token: Option<String>,
}

impl Grant {
    /// The grant of a token endpoint's answer `body`, received at `now_s`.
    pub fn parse(body: &[u8], now_s: u64) -> Result<(Self, Map<String, Value>), AuthFailure> {
        let bad = |why: &str| AuthFailure::InvalidTokenResponse(why.to_owned());
        let response: Map<String, Value> =
            serde_json::from_slice(body).map_err(|_| bad("not a JSON object"))?;
        // It goes to targets in a header.
        let access_token = response
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|t| header_safe(t))
            .ok_or_else(|| bad("no access_token a header can carry"))?;
        let grant = Self {
            access_token: access_token.to_owned(),
            access_expires_s: (response.get("expires_in"))
                .and_then(Value::as_u64)
                .map(|s| now_s.saturating_add(s)),
            refresh_token: (response.get("refresh_token"))
                .and_then(Value::as_str)
                .map(str::to_owned),
        };
        Ok((grant, response))
    }
}

/// The token endpoint's answer to a login: its grant and the ID token's subject, once the ID
/// token is for this provider, this client and this login (its nonce) and unexpired. Its
/// signature is not checked: it came straight from the token endpoint over TLS, which
/// OpenID Connect Core (3.1.3.7) lets stand for it.
pub fn token_response(
    body: &[u8],
    login: &Login,
    nonce: &str,
    now_s: u64,
) -> Result<(Grant, String), AuthFailure> {
    let (grant, response) = Grant::parse(body, now_s)?;
    let id_token = response
        .get("id_token")
        .and_then(Value::as_str)
        .ok_or_else(|| AuthFailure::InvalidIdToken("no id_token".into()))?;
    let subject = id_token_subject(id_token, login, nonce, now_s)?;
    Ok((grant, subject))
}

fn id_token_subject(
    token: &str,
    login: &Login,
    nonce: &str,
    now_s: u64,
) -> Result<String, AuthFailure> {
    let bad = |why: String| AuthFailure::InvalidIdToken(why);
    let payload = token
        .split('.')
        .nth(1)
        .and_then(|p| URL_SAFE_NO_PAD.decode(p.trim_end_matches('=')).ok())
        .and_then(|json| serde_json::from_slice::<Map<String, Value>>(&json).ok())
        .ok_or_else(|| bad("not a JWT".into()))?;
    let text = |name: &str| payload.get(name).and_then(Value::as_str);
    if text("iss") != Some(login.issuer.as_str()) {
        return Err(bad(format!(
            "issued by {:?}, not {}",
            text("iss"),
            login.issuer
        )));
    }
    let client = Some(login.client_id.as_str());
    let audience = match payload.get("aud") {
        Some(Value::String(one)) => one == &login.client_id,
        // Several audiences: the party it was issued to must be this client (Core 3.1.3.7).
        Some(Value::Array(many)) => {
            many.iter().any(|a| a.as_str() == client) && (many.len() == 1 || text("azp") == client)
        }
        _ => false,
    };
    if !audience {
        return Err(bad(format!("not for client {}", login.client_id)));
    }
    if text("nonce") != Some(nonce) {
        return Err(bad("its nonce is not this login's".into()));
    }
    // A NumericDate may have a fraction.
    if payload
        .get("exp")
        .and_then(Value::as_f64)
        .is_none_or(|exp| exp <= now_s as f64)
    {
        return Err(bad("expired".into()));
    }
    text("sub")
        .filter(|sub| header_safe(sub))
        .map(str::to_owned)
        .ok_or_else(|| bad("no sub a header can carry".into()))
}

/// Whether `value` can be a header value as it is.
fn header_safe(value: &str) -> bool {
    !value.is_empty() && http::HeaderValue::from_str(value).is_ok()
}

/// The user-info endpoint's answer as the session keeps it: a JSON object of at most 11 KB
/// whose `sub` is the ID token's.
pub fn user_claims(body: &[u8], subject: &str) -> Result<Map<String, Value>, AuthFailure> {
    if body.len() > MAX_CLAIMS {
        return Err(AuthFailure::ClaimsTooLarge);
    }
    let claims: Map<String, Value> = serde_json::from_slice(body)
        .map_err(|_| AuthFailure::InvalidUserInfo("not a JSON object".into()))?;
    if claims.get("sub").and_then(Value::as_str) != Some(subject) {
        return Err(AuthFailure::InvalidUserInfo(
            "its sub is not the ID token's".into(),
        ));
    }
    Ok(claims)
}

/// `x-amzn-oidc-data`: the user's claims signed ES256, the header naming the key, the load
/// balancer (`signer`), the provider, the client and the expiry, as ALB's. The payload is
/// the claims with `iss` and `exp` set too, so that JWT libraries check them.
pub fn claims_jwt(
    key: &ClaimsKey,
    login: &Login,
    claims: &Map<String, Value>,
    expires_s: u64,
) -> Option<String> {
    let header = serde_json::json!({
        "alg": "ES256",
        "typ": "JWT",
        "kid": key.id(),
        "signer": login.signer,
        "iss": login.issuer,
        "client": login.client_id,
        "exp": expires_s,
    });
    let mut payload = claims.clone();
    payload.insert("iss".into(), Value::from(login.issuer.as_str()));
    payload.insert("exp".into(), Value::from(expires_s));
    key.sign_jwt(&header.to_string(), &Value::Object(payload).to_string())
        .ok()
}

/// A fresh random nonce, base64url; `None` if the system has no randomness to give.
pub fn nonce() -> Option<String> {
    let mut bytes = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).ok()?;
    Some(URL_SAFE_NO_PAD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use elb_model::SessionOptions;
    use http::Uri;

    use super::*;

    fn login() -> Login {
        Login {
            issuer: "https://idp.example".into(),
            authorization_endpoint: "https://idp.example/auth?tenant=1".into(),
            token_endpoint: Uri::from_static("https://idp.example/token"),
            user_info_endpoint: Uri::from_static("https://idp.example/me"),
            client_id: "elbd".into(),
            client_secret: Some("s".into()),
            session: SessionOptions {
                scope: "openid email".into(),
                extra_params: vec![("prompt".into(), "login".into())],
                ..SessionOptions::default()
            },
            signer: "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/a/b"
                .into(),
            unusable: None,
        }
    }

    fn jwt(payload: &str) -> String {
        format!("e30.{}.sig", URL_SAFE_NO_PAD.encode(payload))
    }

    #[test]
    fn the_authorization_request_carries_the_state_nonce_and_extra_params() {
        let url = authorization_url(&login(), &redirect_uri("lb:8443"), "s+/=", "n1");
        assert_eq!(
            url,
            "https://idp.example/auth?tenant=1&response_type=code&client_id=elbd&redirect_uri=\
             https%3A%2F%2Flb%3A8443%2Foauth2%2Fidpresponse&scope=openid+email&state=s%2B%2F%3D\
             &nonce=n1&prompt=login"
        );
    }

    #[test]
    fn the_state_opens_only_here_and_only_within_the_login_timeout() {
        let sealer = CookieSealer::from_hex(&"ab".repeat(32)).unwrap();
        let state = State {
            rule: Some(3),
            client_id: "elbd".into(),
            nonce: "n".into(),
            target: "/app?x=1".into(),
            issued_s: 100,
        };
        let sealed = state.seal(&sealer).unwrap();
        assert!(!sealed.contains(['+', '/', '=']), "{sealed}");
        assert_eq!(
            State::open(&sealed, &sealer, 40),
            Ok(state.clone()),
            "a clock behind"
        );
        assert_eq!(
            State::open(&sealed, &sealer, 39),
            Err(AuthFailure::InvalidState)
        );
        assert_eq!(state.nonce_cookie(), "__Host-AWSELBAuthNonce-n");
        assert_eq!(State::open(&sealed, &sealer, 100 + 900), Ok(state));
        assert_eq!(
            State::open(&sealed, &sealer, 100 + 901),
            Err(AuthFailure::InvalidState)
        );
        let other = CookieSealer::from_hex(&"cd".repeat(32)).unwrap();
        assert_eq!(
            State::open(&sealed, &other, 100),
            Err(AuthFailure::InvalidState)
        );
    }

    #[test]
    fn a_login_ends_on_this_host_whatever_the_path() {
        assert_eq!(return_url("lb:8443", "/app?x=1"), "https://lb:8443/app?x=1");
        assert_eq!(
            return_url("lb", "//evil.example/x"),
            "https://lb//evil.example/x"
        );
        assert_eq!(return_url("lb", ""), "https://lb/");
        assert_eq!(return_url("lb", "/caf\u{e9}"), "https://lb/caf%C3%A9");
    }

    #[test]
    fn callbacks_carry_a_code_and_state_or_the_providers_error() {
        assert_eq!(
            callback_params(Some("code=c&state=s%2B")),
            Ok(("c".into(), "s+".into()))
        );
        assert_eq!(
            callback_params(Some("code=c")),
            Err(AuthFailure::MissingState)
        );
        assert_eq!(
            callback_params(Some("state=s")),
            Err(AuthFailure::MissingCode)
        );
        assert_eq!(
            callback_params(Some("error=access_denied&state=s")),
            Err(AuthFailure::Provider("access_denied".into()))
        );
    }

    #[test]
    fn the_id_token_must_be_this_logins() {
        let good =
            r#"{"iss":"https://idp.example","aud":["elbd"],"nonce":"n","exp":200,"sub":"alice"}"#;
        let response = |id: &str| format!(r#"{{"access_token":"at","id_token":"{}"}}"#, jwt(id));
        let ok = token_response(response(good).as_bytes(), &login(), "n", 100);
        let grant = Grant {
            access_token: "at".into(),
            access_expires_s: None,
            refresh_token: None,
        };
        assert_eq!(ok, Ok((grant, "alice".into())));
        let shared = good.replace(r#"["elbd"]"#, r#"["elbd","other"],"azp":"other""#);
        for (payload, why) in [
            (shared, "client"),
            (good.replace("alice", "al\\u0001ice"), "sub"),
            (good.replace("\"n\"", "\"m\""), "nonce"),
            (good.replace("[\"elbd\"]", "\"other\""), "client"),
            (good.replace("idp.example", "evil.example"), "issued"),
            (good.replace("200", "100"), "expired"),
        ] {
            let refused = token_response(response(&payload).as_bytes(), &login(), "n", 100);
            let Err(AuthFailure::InvalidIdToken(message)) = refused else {
                panic!("{payload} was taken");
            };
            assert!(message.contains(why), "{message}");
        }
        assert!(matches!(
            token_response(br#"{"access_token":"at"}"#, &login(), "n", 100),
            Err(AuthFailure::InvalidIdToken(_))
        ));
        assert!(matches!(
            token_response(b"<html>", &login(), "n", 100),
            Err(AuthFailure::InvalidTokenResponse(_))
        ));
    }

    #[test]
    fn a_grant_says_until_when_and_may_bring_a_refresh_token() {
        let body =
            br#"{"access_token":"at","expires_in":60,"refresh_token":"rt","token_type":"Bearer"}"#;
        let (grant, _) = Grant::parse(body, 100).unwrap();
        assert_eq!(grant.access_expires_s, Some(160));
        assert_eq!(grant.refresh_token.as_deref(), Some("rt"));
        let refused = Grant::parse(br#"{"access_token":"a\nb"}"#, 100);
        assert!(matches!(refused, Err(AuthFailure::InvalidTokenResponse(_))));
    }

    #[test]
    fn user_claims_are_the_tokens_user_and_at_most_11_kb() {
        let claims = user_claims(br#"{"sub":"alice",  "email":"a@x"}"#, "alice").unwrap();
        assert_eq!(claims["email"], "a@x");
        assert!(matches!(
            user_claims(br#"{"sub":"mallory"}"#, "alice"),
            Err(AuthFailure::InvalidUserInfo(_))
        ));
        let big = format!(r#"{{"sub":"alice","pad":"{}"}}"#, "x".repeat(MAX_CLAIMS));
        assert_eq!(
            user_claims(big.as_bytes(), "alice"),
            Err(AuthFailure::ClaimsTooLarge)
        );
    }

    #[test]
    fn the_claims_jwt_names_its_key_signer_issuer_and_client() {
        let key = ClaimsKey::from_pem(&elb_tls::claims_key::new_claims_key().unwrap()).unwrap();
        let claims = serde_json::from_str(r#"{"sub":"alice","exp":1}"#).unwrap();
        let jwt = claims_jwt(&key, &login(), &claims, 500).unwrap();
        let parts: Vec<Value> = jwt
            .split('.')
            .take(2)
            .map(|p| serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap())
            .collect();
        assert_eq!(parts[0]["kid"], key.id());
        assert_eq!(parts[0]["alg"], "ES256");
        assert_eq!(parts[0]["signer"], login().signer.as_str());
        assert_eq!(parts[0]["client"], "elbd");
        assert_eq!(parts[0]["exp"], 500);
        assert_eq!(parts[1]["sub"], "alice");
        assert_eq!(
            parts[1]["exp"], 500,
            "the session's expiry, not the provider's"
        );
        assert_eq!(parts[1]["iss"], "https://idp.example");
    }
}
