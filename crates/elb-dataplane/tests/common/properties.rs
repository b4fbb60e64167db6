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
/// with the same method and path, whose header lines are exactly the client's, in order, less
/// the hop-by-hop ones (those RFC 9110 names and those its `Connection` lines list, never its
/// Content-Length) and those the relay writes itself (Host, X-Forwarded-*, X-Amzn-Trace-Id);
/// and which frames the same body: the target reads the length the relay counts, with no
/// transfer coding and nothing desync mitigation would refuse. The headers the relay adds
/// are not covered here.
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
    let target = request.path.expect("a complete head has a target");
    http1::write_request(&mut out, &request, target, &facts, keep_forwarded_for);
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
    let mut set_here = vec![
        "host",
        "x-amzn-trace-id",
        "x-forwarded-port",
        "x-forwarded-proto",
    ];
    if !keep_forwarded_for {
        set_here.push("x-forwarded-for");
    }
    let listed = connection_options(request.headers);
    let expected = request.headers.iter().filter(|field| {
        let name = field.name.to_ascii_lowercase();
        let listed = listed.contains(&name) && name != "content-length";
        !(listed || HOP_BY_HOP.contains(&name.as_str()) || set_here.contains(&name.as_str()))
    });
    assert_same_lines(copied, expected);
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

/// The relay's response gate and rewriting: a target's head it takes is framed as RFC 9112
/// §6.3 says (read here on its own), and written for the client as exactly one head with the
/// same status and exactly the target's header lines, in order, less the hop-by-hop ones
/// (Transfer-Encoding stays: the body goes on as it came) and a Content-Length a transfer
/// coding overrides; the client frames it the same, and is told of a close whenever the relay
/// closes its connection after it. The first byte chooses whether the request was HEAD and
/// whether the client asked to close.
pub(crate) fn relay_response(data: &[u8]) {
    let Some((&choice, head)) = data.split_first() else {
        return;
    };
    let (for_head, client_close) = (choice & 1 == 1, choice & 2 == 2);
    let mut fields = [httparse::EMPTY_HEADER; http1::MAX_RESPONSE_HEADERS];
    let mut response = httparse::Response::new(&mut fields);
    let Ok(httparse::Status::Complete(_)) = response.parse(head) else {
        return;
    };
    let Ok(facts) = http1::inspect_response(&response, for_head) else {
        return;
    };
    let status = response.code.expect("a complete head has a status");
    assert_eq!(
        facts.framing,
        response_framing(status, response.headers, for_head),
        "framed otherwise than RFC 9112 §6.3"
    );
    let closes = status >= 200 && (client_close || facts.framing == http1::Framing::Close);
    assert_eq!(facts.closes_client(client_close), closes);
    let mut out = Vec::new();
    http1::write_response(&mut out, &response, &facts, closes);

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
        Some((last, rest)) if closes => {
            assert_eq!((last.name, last.value), ("connection", &b"close"[..]));
            rest
        }
        _ => &*again.headers,
    };
    let listed = connection_options(response.headers);
    let coded = response
        .headers
        .iter()
        .any(|f| f.name.eq_ignore_ascii_case("transfer-encoding"));
    let expected = response.headers.iter().filter(|field| {
        let name = field.name.to_ascii_lowercase();
        name == "transfer-encoding"
            || !(HOP_BY_HOP.contains(&name.as_str())
                || (coded && name == "content-length")
                || (listed.contains(&name) && name != "content-length"))
    });
    assert_same_lines(copied, expected);
    assert_eq!(
        response_framing(status, again.headers, for_head),
        facts.framing,
        "the client frames the body otherwise"
    );
}

/// How a response's body is delimited, read from RFC 9112 §6.3 alone: none after HEAD or for
/// 1xx, 204 and 304; chunked when Transfer-Encoding's last coding (all its lines are one
/// list) is chunked, until the close when it is another; else Content-Length's; else until
/// the close. Only for heads whose Content-Lengths agree.
fn response_framing(status: u16, headers: &[httparse::Header<'_>], head: bool) -> http1::Framing {
    let named = |name: &'static str| {
        headers
            .iter()
            .filter(move |f| f.name.eq_ignore_ascii_case(name))
            .map(|f| f.value)
    };
    let codings: Vec<Vec<u8>> = named("transfer-encoding").flat_map(list).collect();
    let length = named("content-length").next().map(|v| {
        std::str::from_utf8(v.trim_ascii())
            .expect("a length the relay took")
            .parse::<u64>()
            .expect("a length the relay took")
    });
    match (status, named("transfer-encoding").next(), length) {
        _ if head || (100..200).contains(&status) || status == 204 || status == 304 => {
            http1::Framing::Empty
        }
        (_, Some(_), _) if codings.last().is_some_and(|c| c == b"chunked") => {
            http1::Framing::Chunked
        }
        (_, Some(_), _) | (_, None, None) => http1::Framing::Close,
        (_, None, Some(n)) => http1::Framing::Length(n),
    }
}

/// The connection options the `Connection` lines list, lowercased.
fn connection_options(headers: &[httparse::Header<'_>]) -> Vec<String> {
    headers
        .iter()
        .filter(|f| f.name.eq_ignore_ascii_case("connection"))
        .flat_map(|f| list(f.value))
        .map(|option| String::from_utf8_lossy(&option).into_owned())
        .collect()
}

/// The elements of a comma-separated list, trimmed and lowercased, empty ones left out.
fn list(value: &[u8]) -> Vec<Vec<u8>> {
    value
        .split(|b| *b == b',')
        .map(|element| element.trim_ascii().to_ascii_lowercase())
        .filter(|element| !element.is_empty())
        .collect()
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

/// Header fields that are hop-by-hop whatever `Connection` says (RFC 9110 §7.6.1, which does
/// not list Trailer, and Transfer-Encoding, which the relay writes only as the target sent it).
const HOP_BY_HOP: [&str; 6] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "transfer-encoding",
    "upgrade",
];

/// The header lines written are exactly those expected, in order and as they were.
fn assert_same_lines<'h>(
    written: &[httparse::Header<'_>],
    expected: impl Iterator<Item = &'h httparse::Header<'h>>,
) {
    let written: Vec<(&str, &[u8])> = written.iter().map(|f| (f.name, f.value)).collect();
    let expected: Vec<(&str, &[u8])> = expected.map(|f| (f.name, f.value)).collect();
    assert_eq!(written, expected, "the header lines passed on");
}
