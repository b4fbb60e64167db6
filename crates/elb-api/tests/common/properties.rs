//! What must hold for any input to a parser: the fuzz targets (fuzz/) and the corpus
//! regression test (tests/corpus.rs) both run these.

use std::collections::BTreeSet;

use elb_api::auth::{Credentials, sign};
use elb_api::query::Params;
use http::{HeaderMap, HeaderValue};

/// The Query decoder: any body decodes or is refused as malformed (a 400), never panics. It
/// refuses exactly bodies that are not UTF-8 or name a parameter twice; what it decodes
/// answers each name with the value the form gave it (form_urlencoded's decoding, which the
/// decoder uses too: percent-escapes that decode to invalid UTF-8 become U+FFFD).
pub(crate) fn query(data: &[u8]) {
    let decoded = Params::decode(data);
    if std::str::from_utf8(data).is_err() {
        let refused = decoded.expect_err("a body that is not UTF-8 is refused");
        assert_eq!(refused.status, 400);
        return;
    }
    let pairs: Vec<(String, String)> = form_urlencoded::parse(data).into_owned().collect();
    let names: BTreeSet<&str> = pairs.iter().map(|(name, _)| name.as_str()).collect();
    let repeated = names.len() != pairs.len();
    match decoded {
        Err(refused) => {
            assert!(repeated, "refused with no name repeated: {refused:?}");
            assert_eq!(refused.status, 400);
        }
        Ok(params) => {
            assert!(!repeated, "a repeated name was taken");
            for (name, value) in &pairs {
                assert_eq!(params.optional(name), Some(value.as_str()));
            }
        }
    }
}

/// SigV4 (`auth::Credentials::authenticate`): any Authorization and X-Amz-Date headers with
/// any body are refused with a 403 unless signed with the secret, never a panic; a request
/// taken under one secret is refused under another, and without credentials the same scope
/// is read; a request elbd signs for a body verifies, and with one bit of the body changed, or
/// signed with another secret, does not. The clock stands at the seeds' X-Amz-Date, so fuzzed
/// requests reach the signature's check rather than stop at the skew.
pub(crate) fn sigv4(data: &[u8]) {
    let mut parts = data.splitn(3, |b| *b == b'\n');
    let (authorization, date) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let body = parts.next().unwrap_or_default();
    // 2026-06-01T00:00:00Z: the seeds' X-Amz-Date.
    let now = 1_780_272_000;
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static("127.0.0.1:4566"));
    if let Ok(value) = HeaderValue::from_bytes(authorization) {
        headers.insert("authorization", value);
    }
    if let Ok(value) = HeaderValue::from_bytes(date) {
        headers.insert("x-amz-date", value);
    }
    let secret = |s: &str| Credentials([("AKID".to_owned(), s.to_owned())].into());
    let checked = secret("secret").authenticate("POST", &headers, body, now);
    let unchecked = Credentials::default().authenticate("POST", &headers, body, now);
    match &checked {
        Err(refused) => assert_eq!(refused.status, 403, "{refused:?}"),
        Ok(scope) => {
            // Taken: then it was signed with this secret, and no other takes it.
            assert_eq!(scope.access_key, "AKID");
            let other = secret("other").authenticate("POST", &headers, body, now);
            assert!(other.is_err(), "a request taken under two secrets");
            assert_eq!(unchecked.as_ref().ok(), Some(scope));
        }
    }
    if let Err(unread) = &unchecked {
        let refused = checked.as_ref().expect_err("unreadable, yet taken");
        assert_eq!(refused.code, unread.code);
    }

    let mut signed = HeaderMap::new();
    signed.insert("host", HeaderValue::from_static("127.0.0.1:4566"));
    let scope = ("us-east-1", "elasticloadbalancing");
    sign(
        ("AKID", "secret"),
        scope,
        ("POST", "/"),
        &mut signed,
        body,
        now,
    )
    .expect("signs");
    let verified = secret("secret")
        .authenticate("POST", &signed, body, now)
        .expect("verifies");
    assert_eq!(
        (verified.access_key.as_str(), verified.region.as_str()),
        ("AKID", "us-east-1")
    );
    if let Some((first, rest)) = body.split_first() {
        let changed = [&[first ^ 1][..], rest].concat();
        assert!(
            secret("secret")
                .authenticate("POST", &signed, &changed, now)
                .is_err()
        );
    }
    assert!(
        secret("other")
            .authenticate("POST", &signed, body, now)
            .is_err()
    );
}
