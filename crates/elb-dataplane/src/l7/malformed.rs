//! Request heads hyper would refuse, found before hyper sees them: hyper answers those with a
//! bare status line of its own, where ALB answers with its page. The checks are hyper 1's
//! server parse (`proto::h1::role`), step for step, so that a head refused here is one hyper
//! would have refused, and every other head is left to it.

use std::mem::MaybeUninit;

use super::rescue::ProxyError;

/// Header fields a head may have: hyper's default, and HAProxy's (`tune.http.maxhdr`, 101).
const MAX_FIELDS: usize = 100;

/// The longest request target hyper takes.
const MAX_TARGET: usize = u16::MAX as usize - 1;

/// Room for a head's fields, left uninitialised: httparse writes what it reads.
pub(super) type Fields<'h> = [MaybeUninit<httparse::Header<'h>>; MAX_FIELDS];

pub(super) fn fields<'h>() -> Fields<'h> {
    [const { MaybeUninit::uninit() }; MAX_FIELDS]
}

/// Parses a head as hyper does: the request if hyper would take it whole, else the error
/// whose page the client gets. `None` while it is not whole (as far as it goes, nothing in
/// it is refused).
pub(super) fn parse<'s, 'h>(
    head: &'h [u8],
    fields: &'s mut Fields<'h>,
) -> Result<Option<httparse::Request<'s, 'h>>, ProxyError> {
    const MALFORMED: ProxyError = ProxyError::BadRequest("the request head is malformed");
    let mut req = httparse::Request::new(&mut []);
    match req.parse_with_uninit_headers(head, fields) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(ProxyError::BadRequest(
                "the request has more than 100 header fields",
            ));
        }
        Err(_) => return Err(MALFORMED),
    }
    let target = req.path.unwrap_or_default();
    if target.len() > MAX_TARGET {
        return Err(ProxyError::UriTooLong);
    }
    let method = http::Method::from_bytes(req.method.unwrap_or_default().as_bytes());
    if method.is_err() || http::Uri::try_from(target).is_err() {
        return Err(MALFORMED);
    }
    if req.headers.iter().any(|h| h.name.len() >= 1 << 16) {
        return Err(MALFORMED);
    }
    framing(req.version == Some(1), req.headers)?;
    Ok(Some(req))
}

/// hyper's framing rules for a request: Transfer-Encoding only in HTTP/1.1 and ending in
/// `chunked` (its last field decides); else every Content-Length the same run of digits.
fn framing(http11: bool, fields: &[httparse::Header<'_>]) -> Result<(), ProxyError> {
    const FRAMING: ProxyError =
        ProxyError::BadRequest("the request's Content-Length or Transfer-Encoding is invalid");
    let (mut encoded, mut chunked, mut length) = (false, false, None);
    for field in fields {
        if field.name.eq_ignore_ascii_case("transfer-encoding") {
            if !http11 {
                return Err(FRAMING);
            }
            encoded = true;
            // As hyper reads it: a value of visible ASCII, whose last coding is `chunked`.
            let value = http::HeaderValue::from_bytes(field.value);
            chunked = value.is_ok_and(|value| {
                value.to_str().is_ok_and(|value| {
                    let last = value.rsplit(',').next().unwrap_or_default();
                    last.trim().eq_ignore_ascii_case("chunked")
                })
            });
        } else if field.name.eq_ignore_ascii_case("content-length") && !encoded {
            let value = digits(field.value).ok_or(FRAMING)?;
            if length.is_some_and(|first| first != value) {
                return Err(FRAMING);
            }
            length = Some(value);
        }
    }
    if (encoded && !chunked) || length.is_some_and(|n| n > u64::MAX - 2) {
        return Err(FRAMING);
    }
    Ok(())
}

/// A run of ASCII digits as a number (no sign, no spaces), if it fits.
fn digits(value: &[u8]) -> Option<u64> {
    if value.is_empty() {
        return None;
    }
    value.iter().try_fold(0u64, |n, b| {
        let digit = b.is_ascii_digit().then(|| u64::from(b - b'0'))?;
        n.checked_mul(10)?.checked_add(digit)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(head: &str) -> Option<u16> {
        let mut fields = fields();
        let parsed = parse(head.as_bytes(), &mut fields);
        parsed.err().map(|e| e.status().as_u16())
    }

    #[test]
    fn heads_hyper_takes_pass() {
        for head in [
            "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET /a?b=c HTTP/1.0\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: x\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n",
            "OPTIONS * HTTP/1.1\r\n\r\n",
            "GET http://a/b HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\nHost: a\n\n",
        ] {
            assert_eq!(refused(head), None, "{head:?}");
        }
        let many = format!("GET / HTTP/1.1\r\n{}\r\n", "X: y\r\n".repeat(100));
        assert_eq!(refused(&many), None);
    }

    #[test]
    fn heads_hyper_refuses_get_a_status_of_albs() {
        for (head, status) in [
            ("GET / HTTP/1.1\r\nX-A: b\r\n  c\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nBad Field: b\r\n\r\n", 400),
            ("GARBAGE\r\n\r\n", 400),
            ("GET / HTTP/1.2\r\n\r\n", 400),
            ("GET a b HTTP/1.1\r\n\r\n", 400),
            ("GET /\x7f HTTP/1.1\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n", 400),
            (
                "POST / HTTP/1.1\r\nContent-Length: x\r\nTransfer-Encoding: chunked\r\n\r\n",
                400,
            ),
            (
                "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
                400,
            ),
            (
                "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
                400,
            ),
            (
                "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n",
                400,
            ),
            ("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            (
                "POST / HTTP/1.1\r\nTransfer-Encoding: \u{e9}, chunked\r\n\r\n",
                400,
            ),
        ] {
            assert_eq!(refused(head), Some(status), "{head:?}");
        }
        let many = format!("GET / HTTP/1.1\r\n{}\r\n", "X: y\r\n".repeat(101));
        assert_eq!(refused(&many), Some(400));
        let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_TARGET));
        assert_eq!(refused(&long), Some(414));
    }
}
