//! AWS Signature Version 4: the canonical request and the signature over it, shared by the
//! API (which checks clients' signatures) and elbd's own clients (which sign theirs: Lambda
//! invocations). Pure: the caller gives the date and the headers to sign.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// What a signature is made for: `date` is `YYYYMMDD`, the first 8 characters of
/// `x-amz-date`.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    pub date: &'a str,
    pub region: &'a str,
    pub service: &'a str,
}

/// A request as SigV4 reads it: `path` already URI-encoded as sent, `query` its canonical
/// query string (empty without one), `headers` the signed ones, lower-case names in the order
/// of `SignedHeaders`.
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
}

/// The hex signature of `request` under `secret` for `scope`, signed at `amz_date`
/// (`YYYYMMDDTHHMMSSZ`).
pub fn signature(secret: &str, scope: Scope<'_>, amz_date: &str, request: &Request<'_>) -> String {
    let mut canonical_headers = String::new();
    for (name, value) in request.headers {
        canonical_headers.push_str(&format!("{name}:{}\n", value.trim()));
    }
    let signed: Vec<&str> = request.headers.iter().map(|(name, _)| *name).collect();
    let canonical_request = format!(
        "{}\n{}\n{}\n{canonical_headers}\n{}\n{}",
        request.method,
        request.path,
        request.query,
        signed.join(";"),
        hex(&Sha256::digest(request.body))
    );
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{}/{}/{}/aws4_request\n{}",
        scope.date,
        scope.region,
        scope.service,
        hex(&Sha256::digest(canonical_request.as_bytes()))
    );
    let mut key = hmac(format!("AWS4{secret}").as_bytes(), scope.date);
    for part in [scope.region, scope.service, "aws4_request"] {
        key = hmac(&key, part);
    }
    hex(&hmac(&key, &string_to_sign))
}

/// The `Authorization` header of a request signed by `access_key` with `signature`.
pub fn authorization(
    access_key: &str,
    scope: Scope<'_>,
    signed_headers: &[&str],
    signature: &str,
) -> String {
    format!(
        "AWS4-HMAC-SHA256 Credential={access_key}/{}/{}/{}/aws4_request, SignedHeaders={}, \
         Signature={signature}",
        scope.date,
        scope.region,
        scope.service,
        signed_headers.join(";")
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AWS's SigV4 test suite, `get-vanilla-query-order-key-case`: a query string and the
    /// documented example key.
    #[test]
    fn matches_the_aws_test_suite() {
        let scope = Scope {
            date: "20150830",
            region: "us-east-1",
            service: "service",
        };
        let request = Request {
            method: "GET",
            path: "/",
            query: "Param1=value1&Param2=value2",
            headers: &[
                ("host", "example.amazonaws.com"),
                ("x-amz-date", "20150830T123600Z"),
            ],
            body: b"",
        };
        let secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
        assert_eq!(
            signature(secret, scope, "20150830T123600Z", &request),
            "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"
        );
        let plain = Request {
            query: "",
            ..request
        };
        assert_eq!(
            signature(secret, scope, "20150830T123600Z", &plain),
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }
}
