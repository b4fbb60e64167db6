//! The session a login leaves: who the user is, their claims and access token, until when,
//! and for which provider and client. Sealed with the store's cookie key and split over
//! cookies `NAME-0`, `NAME-1`, ... as ALB splits its `AWSELBAuthSessionCookie`. Pure.

use std::time::{Duration, UNIX_EPOCH};

use http::{HeaderMap, HeaderValue, header};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::Login;

use crate::sticky::{self, CookieSealer};

/// What sessions are sealed for: a value sealed for anything else does not open as one.
const PURPOSE: &[u8] = b"elbd auth session v1";
/// Each cookie's value at most, so that name and value stay under browsers' 4 KB.
const SHARD: usize = 4000;
/// A sealed session at most: its cookies, sent in one `Cookie` header over HTTP/1.1, must
/// leave room for others under the 16 KB a header may have.
const MAX_SEALED: usize = 3 * SHARD;
const MAX_SHARDS: usize = MAX_SEALED / SHARD;

#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// The load balancer, provider (issuer) and client the session is for.
    pub signer: String,
    pub issuer: String,
    pub client_id: String,
    /// The user's `sub`.
    pub subject: String,
    /// The user-info endpoint's claims.
    pub claims: Map<String, Value>,
    pub access_token: String,
    /// When the access token expires, if the provider said: the session is refreshed then.
    #[serde(default)]
    pub access_expires_s: Option<u64>,
    /// The provider's refresh token, if it gave one.
    #[serde(default)]
    pub refresh_token: Option<String>,
    pub issued_s: u64,
    pub expires_s: u64,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("signer", &self.signer)
            .field("issuer", &self.issuer)
            .field("subject", &self.subject)
            .field("expires_s", &self.expires_s)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Whether the session holds at `now_s` for `login`: its load balancer, provider and
    /// client, and younger than its session timeout (another rule's may be longer).
    pub fn valid_for(&self, login: &Login, now_s: u64) -> bool {
        let timeout = u64::from(login.session.timeout_s);
        self.signer == login.signer
            && self.issuer == login.issuer
            && self.client_id == login.client_id
            && now_s < self.expires_s
            && now_s < self.issued_s.saturating_add(timeout)
    }

    /// Whether the access token has expired at `now_s`: the claims are refreshed with the
    /// refresh token, or the user logs in again.
    pub fn access_expired(&self, now_s: u64) -> bool {
        self.access_expires_s.is_some_and(|at| now_s >= at)
    }

    /// The sealed session as cookie values, in shard order; `None` when it is too large for
    /// cookies.
    pub fn seal(&self, sealer: &CookieSealer) -> Option<Vec<String>> {
        let json = serde_json::to_vec(self).ok()?;
        let sealed = sealer.seal_for(PURPOSE, &json)?;
        if sealed.len() > MAX_SEALED {
            return None;
        }
        // Base64 is ASCII, so any byte is a boundary.
        Some(
            sealed
                .as_bytes()
                .chunks(SHARD)
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect(),
        )
    }

    /// The session the request's `NAME-0`, `NAME-1`, ... cookies hold, if they hold one.
    pub fn from_request(headers: &HeaderMap, name: &str, sealer: &CookieSealer) -> Option<Self> {
        let mut sealed = String::new();
        for shard in shards(headers, name) {
            sealed.push_str(shard);
        }
        if sealed.is_empty() {
            return None;
        }
        let json = sealer.open_for(PURPOSE, &sealed)?;
        serde_json::from_slice(&json).ok()
    }
}

/// The request's shards of the cookie `name`, in order, up to the first missing.
fn shards<'h>(headers: &'h HeaderMap, name: &str) -> impl Iterator<Item = &'h str> {
    (0..MAX_SHARDS).map_while(move |i| sticky::request_cookie(headers, &format!("{name}-{i}")))
}

/// Sets the session's cookies on a response (secure, HTTP only, until the session ends) and
/// clears the shards the request had beyond them, which would otherwise spoil the value.
pub fn set_cookies(
    out: &mut HeaderMap,
    name: &str,
    values: &[String],
    expires_s: u64,
    request: &HeaderMap,
) {
    let expires = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(expires_s));
    for (i, value) in values.iter().enumerate() {
        let cookie = format!("{name}-{i}={value}; Expires={expires}; Path=/; Secure; HttpOnly");
        if let Ok(v) = HeaderValue::try_from(cookie) {
            out.append(header::SET_COOKIE, v);
        }
    }
    let had = shards(request, name).count();
    for i in values.len()..had {
        clear(out, &format!("{name}-{i}"));
    }
}

/// Appends a `Set-Cookie` that removes the cookie `name`.
pub fn clear(out: &mut HeaderMap, name: &str) {
    let cookie =
        format!("{name}=; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/; Secure; HttpOnly");
    if let Ok(v) = HeaderValue::try_from(cookie) {
        out.append(header::SET_COOKIE, v);
    }
}

#[cfg(test)]
mod tests {
    use elb_model::SessionOptions;
    use http::Uri;

    use super::*;

    const SIGNER: &str = "arn:aws:elasticloadbalancing:us-east-1:1:loadbalancer/app/a/b";

    fn login(timeout_s: u32) -> Login {
        Login {
            issuer: "https://idp.example".into(),
            authorization_endpoint: "https://idp.example/auth".into(),
            token_endpoint: Uri::from_static("https://idp.example/token"),
            user_info_endpoint: Uri::from_static("https://idp.example/me"),
            client_id: "elbd".into(),
            client_secret: None,
            session: SessionOptions {
                timeout_s,
                ..SessionOptions::default()
            },
            signer: SIGNER.into(),
            unusable: None,
        }
    }

    fn session(claims_len: usize) -> Session {
        let claims = serde_json::json!({ "sub": "alice", "pad": "x".repeat(claims_len) });
        Session {
            signer: SIGNER.into(),
            issuer: "https://idp.example".into(),
            client_id: "elbd".into(),
            subject: "alice".into(),
            claims: claims.as_object().unwrap().clone(),
            access_token: "at".into(),
            access_expires_s: None,
            refresh_token: None,
            issued_s: 100,
            expires_s: 1_000,
        }
    }

    /// The request a browser sends back with the cookies `set` set.
    fn returned(set: &HeaderMap) -> HeaderMap {
        let pairs: Vec<String> = set
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap())
            .filter(|cookie| !cookie.contains("01 Jan 1970 00:00:00"))
            .map(|cookie| cookie.split(';').next().unwrap().to_owned())
            .collect();
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, pairs.join("; ").parse().unwrap());
        headers
    }

    #[test]
    fn a_session_splits_over_cookies_and_comes_back_whole() {
        let sealer = CookieSealer::from_hex(&"ab".repeat(32)).unwrap();
        let big = session(8000);
        let values = big.seal(&sealer).unwrap();
        assert_eq!(values.len(), 3, "about 11 KB of base64 in 4000-byte shards");
        let mut out = HeaderMap::new();
        set_cookies(&mut out, "S", &values, 1_000, &HeaderMap::new());
        let first = out.get(header::SET_COOKIE).unwrap().to_str().unwrap();
        assert!(first.starts_with("S-0="), "{first}");
        let attributes = "; Expires=Thu, 01 Jan 1970 00:16:40 GMT; Path=/; Secure; HttpOnly";
        assert!(first.ends_with(attributes), "{first}");
        let back = Session::from_request(&returned(&out), "S", &sealer).unwrap();
        assert!(back == big);
        assert!(back.valid_for(&login(3600), 999));
        assert!(!back.valid_for(&login(3600), 1_000), "expired");
        assert!(
            !back.valid_for(&login(60), 160),
            "older than this rule's timeout"
        );
        let mut elsewhere = login(3600);
        elsewhere.signer = "another load balancer".into();
        assert!(!back.valid_for(&elsewhere, 200));
        assert!(Session::from_request(&returned(&out), "T", &sealer).is_none());
        let other = CookieSealer::from_hex(&"cd".repeat(32)).unwrap();
        assert!(Session::from_request(&returned(&out), "S", &other).is_none());
        assert!(
            session(9000).seal(&sealer).is_none(),
            "too large for cookies"
        );
    }

    #[test]
    fn a_smaller_session_clears_the_shards_a_bigger_one_left() {
        let sealer = CookieSealer::from_hex(&"ab".repeat(32)).unwrap();
        let mut first = HeaderMap::new();
        let big = session(8000).seal(&sealer).unwrap();
        set_cookies(&mut first, "S", &big, 1_000, &HeaderMap::new());
        let request = returned(&first);
        let mut second = HeaderMap::new();
        let small = session(10);
        set_cookies(
            &mut second,
            "S",
            &small.seal(&sealer).unwrap(),
            1_000,
            &request,
        );
        let set: Vec<&str> = second
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(set.len(), 3);
        assert!(set[1].starts_with("S-1=; Expires=Thu, 01 Jan 1970 00:00:00 GMT"));
        let back = Session::from_request(&returned(&second), "S", &sealer);
        assert!(back == Some(small));
    }
}
