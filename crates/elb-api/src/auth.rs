//! SigV4: which service, region and key a request names, and, when elbd has credentials
//! configured, whether its signature is right.
//!
//! With no credentials configured (the local default) any well-formed signature is accepted,
//! as LocalStack and moto do. With credentials, each request must be signed with a known
//! access key's secret within 15 minutes of elbd's clock, else 403 with AWS's codes.

use std::collections::HashMap;

use axum::http::HeaderMap;
use elb_wire::sigv4;

use crate::clock;
use crate::error::ApiError;

/// How far a request's X-Amz-Date may be from elbd's clock, as AWS allows.
const MAX_SKEW_SECS: i64 = 15 * 60;

/// The credential scope of a signed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub access_key: String,
    pub date: String,
    pub region: String,
    pub service: String,
}

#[derive(Debug)]
struct Authorization {
    scope: Scope,
    signed_headers: Vec<String>,
    signature: String,
}

/// Access key id → secret access key. Empty: signatures are not checked.
#[derive(Debug, Clone, Default)]
pub struct Credentials(pub HashMap<String, String>);

impl Credentials {
    /// Reads the scope of the request and, if credentials are configured, checks its
    /// signature over `body`. `now` is seconds since the epoch.
    pub fn authenticate(
        &self,
        method: &str,
        headers: &HeaderMap,
        body: &[u8],
        now: i64,
    ) -> Result<Scope, ApiError> {
        self.authenticate_at(method, "/", headers, body, now)
    }

    /// [`Credentials::authenticate`] for a request to `path` (no query string), as elbd's
    /// own endpoints beside the API are signed.
    pub fn authenticate_at(
        &self,
        method: &str,
        path: &str,
        headers: &HeaderMap,
        body: &[u8],
        now: i64,
    ) -> Result<Scope, ApiError> {
        let auth = parse(headers)?;
        if self.0.is_empty() {
            return Ok(auth.scope);
        }
        let secret = self.0.get(&auth.scope.access_key).ok_or_else(|| {
            ApiError::new(
                403,
                "InvalidClientTokenId",
                "The security token included in the request is invalid.",
            )
        })?;
        let amz_date = header(headers, "x-amz-date").ok_or_else(|| {
            ApiError::new(
                403,
                "IncompleteSignature",
                "The request must contain a valid X-Amz-Date header",
            )
        })?;
        let signed_at = clock::parse_amz_date(amz_date).ok_or_else(|| {
            ApiError::new(
                403,
                "IncompleteSignature",
                format!("X-Amz-Date '{amz_date}' is not valid"),
            )
        })?;
        if (now - signed_at).abs() > MAX_SKEW_SECS {
            return Err(ApiError::new(
                403,
                "SignatureDoesNotMatch",
                format!(
                    "Signature expired: {amz_date} is now earlier than {} ({} - 15 min.)",
                    clock::amz_date(now - MAX_SKEW_SECS),
                    clock::amz_date(now)
                ),
            ));
        }
        let expected = signature(secret, (method, path), headers, body, &auth, amz_date)?;
        if !same(expected.as_bytes(), auth.signature.as_bytes()) {
            return Err(ApiError::new(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided. \
                 Check your AWS Secret Access Key and signing method.",
            ));
        }
        Ok(auth.scope)
    }
}

/// Equality whose time does not depend on where the inputs differ (only on their lengths):
/// for secrets and signatures.
pub fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name)?.to_str().ok()
}

fn parse(headers: &HeaderMap) -> Result<Authorization, ApiError> {
    let missing = || {
        ApiError::new(
            403,
            "MissingAuthenticationToken",
            "Request is missing Authentication Token",
        )
    };
    let raw = header(headers, "authorization").ok_or_else(missing)?;
    let incomplete = |why: &str| {
        ApiError::new(
            403,
            "IncompleteSignature",
            format!("Authorization header is not valid SigV4: {why}"),
        )
    };
    let rest = raw
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or_else(|| incomplete("only AWS4-HMAC-SHA256 is supported"))?;
    let mut fields = HashMap::new();
    for part in rest.split(',') {
        let (k, v) = part
            .trim()
            .split_once('=')
            .ok_or_else(|| incomplete("expected Key=Value parts"))?;
        fields.insert(k, v);
    }
    let credential = fields
        .get("Credential")
        .ok_or_else(|| incomplete("no Credential"))?;
    let parts: Vec<&str> = credential.split('/').collect();
    let [access_key, date, region, service, "aws4_request"] = parts[..] else {
        return Err(incomplete(
            "Credential must be KEY/DATE/REGION/SERVICE/aws4_request",
        ));
    };
    Ok(Authorization {
        scope: Scope {
            access_key: access_key.to_owned(),
            date: date.to_owned(),
            region: region.to_owned(),
            service: service.to_owned(),
        },
        signed_headers: fields
            .get("SignedHeaders")
            .ok_or_else(|| incomplete("no SignedHeaders"))?
            .split(';')
            .map(str::to_owned)
            .collect(),
        signature: fields
            .get("Signature")
            .ok_or_else(|| incomplete("no Signature"))?
            .to_string(),
    })
}

/// Signs a request to `path` (no query string) as a client does: adds `x-amz-date` and
/// `Authorization` to `headers`, which must hold `host`. For elbd's own clients (`elbd
/// explain`).
pub fn sign(
    (access_key, secret): (&str, &str),
    (region, service): (&str, &str),
    (method, path): (&str, &str),
    headers: &mut HeaderMap,
    body: &[u8],
    now: i64,
) -> Result<(), ApiError> {
    let amz_date = clock::amz_date(now);
    let bad = |_| ApiError::internal("a header value elbd made is not valid");
    headers.insert("x-amz-date", amz_date.parse().map_err(bad)?);
    let auth = Authorization {
        scope: Scope {
            access_key: access_key.to_owned(),
            date: amz_date[..8].to_owned(),
            region: region.to_owned(),
            service: service.to_owned(),
        },
        signed_headers: vec!["host".to_owned(), "x-amz-date".to_owned()],
        signature: String::new(),
    };
    let signature = signature(secret, (method, path), headers, body, &auth, &amz_date)?;
    let s = &auth.scope;
    let scope = sigv4::Scope {
        date: &s.date,
        region: &s.region,
        service: &s.service,
    };
    let value = sigv4::authorization(access_key, scope, &["host", "x-amz-date"], &signature);
    headers.insert("authorization", value.parse().map_err(bad)?);
    Ok(())
}

/// The signature the client should have sent to `path`, with no query string (Query APIs:
/// POST to `/`).
fn signature(
    secret: &str,
    (method, path): (&str, &str),
    headers: &HeaderMap,
    body: &[u8],
    auth: &Authorization,
    amz_date: &str,
) -> Result<String, ApiError> {
    let mut signed = Vec::with_capacity(auth.signed_headers.len());
    for name in &auth.signed_headers {
        let value = header(headers, name).ok_or_else(|| {
            ApiError::new(
                403,
                "SignatureDoesNotMatch",
                format!("signed header '{name}' is missing"),
            )
        })?;
        signed.push((name.as_str(), value));
    }
    let s = &auth.scope;
    let scope = sigv4::Scope {
        date: &s.date,
        region: &s.region,
        service: &s.service,
    };
    let request = sigv4::Request {
        method,
        path,
        query: "",
        headers: &signed,
        body,
    };
    Ok(sigv4::signature(secret, scope, amz_date, &request))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The aws cli's own request from xml-samples/awscli-debug-CreateLoadBalancer-sigv4.txt.
    fn recorded(signature: &str) -> (HeaderMap, &'static [u8]) {
        let mut h = HeaderMap::new();
        h.insert(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8"
                .parse()
                .unwrap(),
        );
        h.insert("host", "127.0.0.1:5000".parse().unwrap());
        h.insert("x-amz-date", "20261127T204902Z".parse().unwrap());
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential=test/20261127/us-east-1/elasticloadbalancing/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date, Signature={signature}"
        );
        h.insert("authorization", auth.parse().unwrap());
        let body = b"Action=CreateLoadBalancer&Version=2015-12-01&Name=my-alb&Subnets.member.1=subnet-bd3c5243818aaa077&Subnets.member.2=subnet-aea6d6978aa8dcbb3&SecurityGroups.member.1=sg-1ecce66bf59997944";
        (h, body)
    }

    const GOOD: &str = "baf09c027082116e21a1e7b62142b6cf8906275705f9c51d605e77f29a1f8cc8";

    fn creds() -> Credentials {
        Credentials(HashMap::from([("test".to_owned(), "test".to_owned())]))
    }

    #[test]
    fn verifies_the_recorded_cli_request() {
        let now = clock::parse_amz_date("20261127T205000Z").unwrap();
        let (headers, body) = recorded(GOOD);
        let scope = creds().authenticate("POST", &headers, body, now).unwrap();
        assert_eq!(
            (scope.region.as_str(), scope.service.as_str()),
            ("us-east-1", "elasticloadbalancing")
        );
    }

    #[test]
    fn refuses_bad_signatures_keys_and_stale_requests() {
        let now = clock::parse_amz_date("20261127T205000Z").unwrap();
        let (headers, body) = recorded(GOOD);
        let tampered = creds().authenticate("POST", &headers, b"Action=DeleteLoadBalancer", now);
        assert_eq!(tampered.unwrap_err().code, "SignatureDoesNotMatch");
        let (headers, _) = recorded(&GOOD.replace('b', "c"));
        assert_eq!(
            creds()
                .authenticate("POST", &headers, body, now)
                .unwrap_err()
                .code,
            "SignatureDoesNotMatch"
        );
        let other = Credentials(HashMap::from([("other".to_owned(), "x".to_owned())]));
        let (headers, body) = recorded(GOOD);
        assert_eq!(
            other
                .authenticate("POST", &headers, body, now)
                .unwrap_err()
                .code,
            "InvalidClientTokenId"
        );
        let late = now + 16 * 60;
        let err = creds()
            .authenticate("POST", &headers, body, late)
            .unwrap_err();
        assert!(
            err.message.starts_with("Signature expired"),
            "{}",
            err.message
        );
        assert_eq!(err.status, 403);
    }

    #[test]
    fn what_sign_signs_authenticates_at_its_path_only() {
        let mut headers = HeaderMap::new();
        headers.insert("host", "127.0.0.1:4566".parse().unwrap());
        let now = 1_765_000_000;
        sign(
            ("test", "test"),
            ("us-east-1", "elasticloadbalancing"),
            ("POST", "/elbd/explain"),
            &mut headers,
            b"{}",
            now,
        )
        .unwrap();
        let creds = creds();
        let scope = creds
            .authenticate_at("POST", "/elbd/explain", &headers, b"{}", now)
            .unwrap();
        assert_eq!(scope.service, "elasticloadbalancing");
        assert!(
            creds
                .authenticate_at("POST", "/", &headers, b"{}", now)
                .is_err()
        );
        assert!(
            creds
                .authenticate_at("POST", "/elbd/explain", &headers, b"{ }", now)
                .is_err()
        );
    }

    #[test]
    fn without_credentials_any_well_formed_signature_passes() {
        let (headers, body) = recorded("00");
        assert!(
            Credentials::default()
                .authenticate("POST", &headers, body, 0)
                .is_ok()
        );
        assert_eq!(
            Credentials::default()
                .authenticate("POST", &HeaderMap::new(), body, 0)
                .unwrap_err()
                .code,
            "MissingAuthenticationToken"
        );
    }
}
