//! What must hold for any input to a parser: the fuzz targets (fuzz/) and the corpus
//! regression test (tests/corpus.rs) both run these.

use elb_dataplane::l7::desync::{Class, HeadFacts, classify};
use elb_dataplane::l7::http1;
use http::{HeaderMap, HeaderName, HeaderValue, Method};

/// Desync mitigation: any request head parses or is refused without panicking; one that
/// parses is classified the same from its raw fields as from a header map of them (the
/// HTTP/2 path's way), whenever the http crate takes every field; and a Content-Length that
/// frames a body is one the classification found sound.
pub(crate) fn desync(data: &[u8]) {
    let mut fields = [httparse::EMPTY_HEADER; 64];
    let mut request = httparse::Request::new(&mut fields);
    let Ok(httparse::Status::Complete(_)) = request.parse(data) else {
        return;
    };
    let method = request.method.expect("a complete head has a method");
    let mut facts = HeadFacts::default();
    for field in request.headers.iter() {
        facts.add(field.name.as_bytes(), field.value);
    }
    let raw = facts.class(method.as_bytes());
    if facts.content_length().is_some() {
        let unsound = [
            "BadContentLength",
            "MultipleContentLength",
            "BothTeClPresent",
        ];
        assert!(
            !unsound.contains(&raw.1),
            "framed by a length classed {}",
            raw.1
        );
    }
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return;
    };
    let mut map = HeaderMap::new();
    for field in request.headers.iter() {
        let name = HeaderName::from_bytes(field.name.as_bytes());
        let value = HeaderValue::from_bytes(field.value);
        let (Ok(name), Ok(value)) = (name, value) else {
            return;
        };
        map.append(name, value);
    }
    assert_eq!(classify(&method, &map), raw, "the two paths disagree");
}

/// The relay's request gate and rewriting: a head it takes (one httparse completes with CRLF
/// line ends and `inspect_request` accepts) is written for the target as exactly one head
/// with the same method and path, whose header lines are the client's own in order (none made
/// up, no hop-by-hop one left), and which frames the same body: the target reads the length
/// the relay counts, with no transfer coding and nothing desync mitigation would refuse.
pub(crate) fn relay_request(data: &[u8]) {
    let mut fields = [httparse::EMPTY_HEADER; http1::MAX_HEADERS];
    let mut request = httparse::Request::new(&mut fields);
    let Ok(httparse::Status::Complete(len)) = request.parse(data) else {
        return;
    };
    if !http1::crlf_only(&data[..len]) {
        return;
    }
    let Ok(facts) = http1::inspect_request(&request) else {
        return;
    };
    let keep_forwarded_for = data.len().is_multiple_of(2);
    let mut out = Vec::new();
    http1::write_request(&mut out, &request, &facts, keep_forwarded_for);
    // What the relay adds after the copied lines, less the headers it makes itself.
    out.extend_from_slice(b"host: ");
    out.extend_from_slice(facts.host.as_bytes());
    out.extend_from_slice(b"\r\n\r\n");

    let mut again_fields = [httparse::EMPTY_HEADER; http1::MAX_HEADERS + 1];
    let mut again = httparse::Request::new(&mut again_fields);
    assert_eq!(
        again.parse(&out),
        Ok(httparse::Status::Complete(out.len())),
        "the head written is not one whole head: {:?}",
        String::from_utf8_lossy(&out)
    );
    assert_eq!((again.method, again.path), (request.method, request.path));
    assert_eq!(again.version, Some(1));
    let (host, copied) = again.headers.split_last().expect("a host line");
    assert_eq!((host.name, host.value), ("host", facts.host.as_bytes()));
    assert_subsequence(copied, request.headers);
    for field in copied {
        assert!(
            !HOP_BY_HOP
                .iter()
                .any(|h| field.name.eq_ignore_ascii_case(h)),
            "{} passed on",
            field.name
        );
    }
    let mut framing = HeadFacts::default();
    for field in again.headers.iter() {
        framing.add(field.name.as_bytes(), field.value);
    }
    let method = again.method.expect("a method").as_bytes();
    assert_eq!(
        framing.class(method).0,
        Class::Compliant,
        "the target's head"
    );
    assert!(framing.transfer_encoding().is_none());
    assert_eq!(framing.content_length().unwrap_or(0), facts.body);
}

/// The relay's response gate and rewriting: a target's head it takes is written for the
/// client as exactly one head with the same status, the target's header lines in order (less
/// hop-by-hop ones and a Content-Length a transfer coding overrides), framing the body as the
/// relay reads it, and announcing a close whenever the relay closes. The first byte chooses
/// whether the request was HEAD and whether the client's connection ends.
pub(crate) fn relay_response(data: &[u8]) {
    let Some((&choice, head)) = data.split_first() else {
        return;
    };
    let (for_head, close_client) = (choice & 1 == 1, choice & 2 == 2);
    let mut fields = [httparse::EMPTY_HEADER; http1::MAX_RESPONSE_HEADERS];
    let mut response = httparse::Response::new(&mut fields);
    let Ok(httparse::Status::Complete(_)) = response.parse(head) else {
        return;
    };
    let Ok(facts) = http1::inspect_response(&response, for_head) else {
        return;
    };
    let mut out = Vec::new();
    http1::write_response(&mut out, &response, &facts, close_client);

    let mut again_fields = [httparse::EMPTY_HEADER; http1::MAX_RESPONSE_HEADERS + 1];
    let mut again = httparse::Response::new(&mut again_fields);
    assert_eq!(
        again.parse(&out),
        Ok(httparse::Status::Complete(out.len())),
        "the head written is not one whole head: {:?}",
        String::from_utf8_lossy(&out)
    );
    assert_eq!((again.version, again.code), (Some(1), response.code));
    let copied = match again.headers.split_last() {
        Some((last, rest)) if close_client => {
            assert_eq!((last.name, last.value), ("connection", &b"close"[..]));
            rest
        }
        _ => &*again.headers,
    };
    assert_subsequence(copied, response.headers);
    let seen = http1::inspect_response(&again, for_head).expect("the client's head is taken");
    assert_eq!(
        seen.framing, facts.framing,
        "the client frames the body otherwise"
    );
    assert_eq!(seen.status, facts.status);
    if close_client {
        assert!(!seen.reusable, "a close not announced");
    }
}

/// Where a chunked body ends does not depend on how its bytes arrive (the first two bytes
/// choose two places to split the rest at), is the first place it could, and is where a plain
/// reading of RFC 9112 §7.1's grammar ends it (within the scanner's bounds, exactly there).
pub(crate) fn chunked(data: &[u8]) {
    let [a, b, body @ ..] = data else {
        return;
    };
    let whole = http1::ChunkedEnd::default().scan(body);
    let at = |x: u8| usize::from(x) * body.len() / 255;
    let (first, second) = (at(*a.min(b)), at(*a.max(b)));
    let mut scanner = http1::ChunkedEnd::default();
    let mut pieces = Ok(None);
    for (start, end) in [(0, first), (first, second), (second, body.len())] {
        pieces = scanner
            .scan(&body[start..end])
            .map(|n| n.map(|n| start + n));
        if !matches!(pieces, Ok(None)) {
            break;
        }
    }
    assert_eq!(whole, pieces, "split at {first} and {second}");
    if let Ok(Some(n)) = whole {
        assert_eq!(http1::ChunkedEnd::default().scan(&body[..n]), Ok(Some(n)));
        assert_eq!(http1::ChunkedEnd::default().scan(&body[..n - 1]), Ok(None));
        assert_eq!(chunked_end(body), Some(n), "the grammar ends it elsewhere");
    }
    // Below the bounds on extensions and trailers (4 KiB, 16 KiB), what the grammar takes
    // the scanner takes too.
    if let Some(n) = chunked_end(body).filter(|n| *n <= 4096) {
        assert_eq!(
            whole,
            Ok(Some(n)),
            "a body the grammar ends is not ended there"
        );
    }
}

/// Where a chunked body that follows the grammar ends, read line by line: chunks of a hex size
/// (an extension after `;`, a space or a tab) and their data, the last chunk, trailer lines
/// and the blank line. `None` if it breaks the grammar or has not ended.
fn chunked_end(body: &[u8]) -> Option<usize> {
    let line = |at: usize| -> Option<(&[u8], usize)> {
        let end = at + body.get(at..)?.windows(2).position(|w| w == b"\r\n")?;
        let text = &body[at..end];
        (!text.contains(&b'\r') && !text.contains(&b'\n')).then_some((text, end + 2))
    };
    let mut at = 0;
    loop {
        let (text, next) = line(at)?;
        let digits = text
            .split(|b| matches!(b, b';' | b' ' | b'\t'))
            .next()
            .unwrap_or_default();
        if digits.is_empty() || digits.len() > 15 || !digits.iter().all(u8::is_ascii_hexdigit) {
            return None;
        }
        let size = u64::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()?;
        at = next;
        if size == 0 {
            loop {
                let (trailer, next) = line(at)?;
                at = next;
                if trailer.is_empty() {
                    return Some(at);
                }
            }
        }
        at = at.checked_add(usize::try_from(size).ok()?)?;
        if body.get(at..at.checked_add(2)?)? != b"\r\n" {
            return None;
        }
        at += 2;
    }
}

/// Header lines the relay never passes on (RFC 9110 §7.6.1, and Transfer-Encoding on
/// requests, which it does not take).
const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// `written` are header lines of `read`, in their order, each as it was.
fn assert_subsequence(written: &[httparse::Header<'_>], read: &[httparse::Header<'_>]) {
    let mut rest = read.iter();
    for field in written {
        assert!(
            rest.any(|r| r.name == field.name && r.value == field.value),
            "{}: {:?} was not sent so, or not in that order",
            field.name,
            String::from_utf8_lossy(field.value)
        );
    }
}
