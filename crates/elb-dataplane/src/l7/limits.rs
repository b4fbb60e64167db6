//! ALB's hard limits on a request, checked before any rule runs, and on a target's response head.

use http::Request;
use http::header::{self, HeaderMap};
use hyper::body::Incoming;

use super::headers::X_FORWARDED_FOR;
use super::rescue::ProxyError;

/// ALB's hard limits on a request (aws-elb-features.md §6.6): a target over 16 KB gets a 414,
/// a header over 16 KB or headers over 64 KB in all a 400; a transfer coding other than
/// chunked (or identity) a 501.
pub(super) fn check_limits(req: &Request<Incoming>) -> Result<(), ProxyError> {
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

/// A target's response head may be this large: a larger one is a 502, as on AWS (whole
/// response header 32 KB). The relay and the exchange count the head's bytes as sent.
pub(super) const MAX_RESPONSE_HEAD: usize = 32 * 1024;

/// A response from hyper's clients (HTTPS and HTTP/2 targets) whose head is over
/// [`MAX_RESPONSE_HEAD`], counted as HTTP/1.1 would send it: a 502, as the relay answers.
pub(super) fn check_response_head(
    status: http::StatusCode,
    headers: &HeaderMap,
) -> Result<(), ProxyError> {
    // `HTTP/1.1 200 OK\r\n`, each field as `name: value\r\n`, and the blank line.
    let status_line = 15 + status.canonical_reason().map_or(0, str::len);
    let fields: usize = (headers.iter())
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if status_line + fields + 2 > MAX_RESPONSE_HEAD {
        return Err(ProxyError::Target("response head too large".into()));
    }
    Ok(())
}

/// HTTP/2's SETTINGS_MAX_HEADER_LIST_SIZE: the 64 KB of headers [`check_limits`] takes (a
/// larger request gets its 400 page), plus the 32 bytes HTTP/2 counts per field (RFC 9113
/// §6.5.2) for a thousand fields. hyper's default, 16 KB, refused large cookies over HTTP/2
/// that HTTP/1.1 took.
pub(super) const HTTP2_HEADER_LIST: u32 = (64 + 32) * 1024;

/// More addresses than this in X-Forwarded-For get a 463, as on AWS.
pub(super) const MAX_FORWARDED_FOR: usize = 30;

pub(super) fn forwarded_for_count(headers: &HeaderMap) -> usize {
    headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .map(|v| v.as_bytes().split(|b| *b == b',').count())
        .sum()
}
