//! Request and response heads as the relay sees them: parsed in place by httparse, checked for
//! what the relay takes, and written to the other side with their header lines copied as they
//! came, less the hop-by-hop ones and those the load balancer sets itself.

use http::{HeaderMap, HeaderName, HeaderValue};
use httparse::Header;

use crate::l7::desync::{Class, HeadFacts};
use crate::l7::framing::Framing;
use crate::l7::headers::{is_hop_by_hop, push_header, valid_host};

/// Header lines a request head may have; more and the request goes the general way.
pub const MAX_HEADERS: usize = 64;
/// Header lines a response head may have, as hyper allows (many `Set-Cookie`s, say).
pub const MAX_RESPONSE_HEADERS: usize = 100;

/// Why a request is left to the general path, which answers it whatever it is.
pub type Unsuited = &'static str;

/// Header names `Connection` headers list: they are hop-by-hop for this message (RFC 9110
/// §7.6.1). The values are kept as they are and looked through only when one of them lists a
/// name beside `close` and `keep-alive`, which is rare; `close` is remembered apart (a field
/// named `Close` goes too), and `Keep-Alive` is hop-by-hop anyway.
#[derive(Default)]
pub(crate) struct Listed<'b> {
    values: [&'b [u8]; 4],
    len: usize,
    close: bool,
}

impl<'b> Listed<'b> {
    /// Reads one `Connection` value; `true` if it says `close`. `None` when more values list
    /// names than are kept.
    fn add(&mut self, value: &'b [u8]) -> Option<bool> {
        let (mut close, mut names) = (false, false);
        for token in tokens(value) {
            if token.eq_ignore_ascii_case(b"close") {
                close = true;
            } else if !token.eq_ignore_ascii_case(b"keep-alive") {
                names = true;
            }
        }
        if names {
            *self.values.get_mut(self.len)? = value;
            self.len += 1;
        }
        self.close |= close;
        Some(close)
    }

    /// Whether `name` is listed and goes. The message's framing never goes: a client's
    /// `Connection: content-length` would leave its body to be read as another request.
    fn drops(&self, name: &[u8]) -> bool {
        !name.eq_ignore_ascii_case(b"content-length")
            && ((self.close && name.eq_ignore_ascii_case(b"close")) || self.contains(name))
    }

    fn contains(&self, name: &[u8]) -> bool {
        self.values[..self.len]
            .iter()
            .flat_map(|value| tokens(value))
            .any(|listed| listed.eq_ignore_ascii_case(name))
    }
}

/// The non-empty tokens of a comma-separated list.
fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|b| *b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

/// What the relay needs to know of a request it takes.
pub struct RequestFacts<'b> {
    /// The Host header, a valid one (`headers::valid_host`).
    pub host: &'b str,
    /// The body's length (Content-Length; 0 without one).
    pub body: u64,
    /// The client asked to close the connection after this request.
    pub close: bool,
    /// The first X-Amzn-Trace-Id.
    pub trace: Option<&'b str>,
    /// How many addresses the X-Forwarded-For headers hold.
    pub forwarded_for: usize,
    /// Names its `Connection` header lists: not passed on.
    listed: Listed<'b>,
}

/// Whether the relay takes a parsed request head, and what it needs of it. It takes
/// HTTP/1.1 requests in origin form with one Host, no body or a Content-Length one, and a
/// head that desync mitigation finds compliant; the rest go the general way.
pub fn inspect_request<'b>(req: &httparse::Request<'_, 'b>) -> Result<RequestFacts<'b>, Unsuited> {
    if req.version != Some(1) {
        return Err("not HTTP/1.1");
    }
    let method = req.method.unwrap_or_default();
    if !req.path.is_some_and(|p| p.starts_with('/')) {
        return Err("not in origin form");
    }
    let mut framing = HeadFacts::default();
    let (mut host, mut hosts, mut trace, mut close) = (None, 0, None, false);
    let mut listed = Listed::default();
    let mut forwarded_for = 0;
    for header in req.headers.iter() {
        let (name, value) = (header.name.as_bytes(), header.value);
        framing.add(name, value);
        match name.len() {
            4 if name.eq_ignore_ascii_case(b"host") => {
                hosts += 1;
                host = Some(value);
            }
            6 if name.eq_ignore_ascii_case(b"expect") => return Err("Expect"),
            10 if name.eq_ignore_ascii_case(b"connection") => {
                close |= listed.add(value).ok_or("many Connection headers")?;
            }
            // Visible ASCII if the relay takes the head (desync mitigation sends the rest the
            // general way), so this reads as the general path's `HeaderValue::to_str` does.
            15 if name.eq_ignore_ascii_case(b"x-amzn-trace-id") => {
                trace = trace.or_else(|| std::str::from_utf8(value).ok());
            }
            15 if name.eq_ignore_ascii_case(b"x-forwarded-for") => {
                if !value.iter().all(|b| (0x20..0x7f).contains(b)) {
                    return Err("X-Forwarded-For is not ASCII");
                }
                forwarded_for += value.split(|b| *b == b',').count();
            }
            _ => {}
        }
    }
    if framing.class(method.as_bytes()).0 != Class::Compliant {
        return Err("desync mitigation classifies the head");
    }
    if framing.upgrade || framing.transfer_encoding().is_some() {
        return Err("an upgrade or a transfer coding");
    }
    let body = match framing.content_length() {
        Some(n) => n,
        None if framing.has_length() => return Err("bad Content-Length"),
        None => 0,
    };
    let host = host
        .filter(|h| hosts == 1 && !h.is_empty() && valid_host(h))
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or("no single valid Host")?;
    Ok(RequestFacts {
        host,
        body,
        close,
        trace,
        forwarded_for,
        listed,
    })
}

/// Whether every line of a head ends with CRLF (a lone CR does not pass httparse).
pub fn crlf_only(head: &[u8]) -> bool {
    let (lf, cr) = head.iter().fold((0usize, 0usize), |(lf, cr), b| {
        (lf + usize::from(*b == b'\n'), cr + usize::from(*b == b'\r'))
    });
    lf == cr
}

/// The request's headers as a map, for rules with header conditions.
pub(crate) fn header_map(headers: &[Header<'_>]) -> HeaderMap {
    let mut map = HeaderMap::with_capacity(headers.len());
    for header in headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(header.name.as_bytes()),
            HeaderValue::from_bytes(header.value),
        ) {
            map.append(name, value);
        }
    }
    map
}

/// Writes the request line, with `target` (the request's own, or a rule's rewrite of it), and
/// the header lines the target gets as the client sent them: all but the hop-by-hop ones,
/// Host, X-Forwarded-Proto/-Port, X-Amzn-Trace-Id and (unless `keep_forwarded_for`)
/// X-Forwarded-For, which the caller writes after. No blank line.
pub fn write_request(
    out: &mut Vec<u8>,
    req: &httparse::Request<'_, '_>,
    target: &str,
    facts: &RequestFacts<'_>,
    keep_forwarded_for: bool,
) {
    out.extend_from_slice(req.method.unwrap_or_default().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for header in req.headers.iter() {
        let name = header.name.as_bytes();
        let set_here = match name.len() {
            4 => name.eq_ignore_ascii_case(b"host"),
            15 => {
                name.eq_ignore_ascii_case(b"x-amzn-trace-id")
                    || (!keep_forwarded_for && name.eq_ignore_ascii_case(b"x-forwarded-for"))
            }
            16 => name.eq_ignore_ascii_case(b"x-forwarded-port"),
            17 => name.eq_ignore_ascii_case(b"x-forwarded-proto"),
            _ => false,
        };
        if !set_here && !is_hop_by_hop(name) && !facts.listed.drops(name) {
            push_header(out, name, header.value);
        }
    }
}

/// The values of the request's X-Forwarded-For headers, in order.
pub(crate) fn forwarded_for<'b>(headers: &[Header<'b>]) -> impl Iterator<Item = &'b [u8]> {
    headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("x-forwarded-for"))
        .map(|h| h.value)
}

/// What the relay needs to know of a target's response head.
pub struct ResponseFacts<'b> {
    pub status: u16,
    pub framing: Framing,
    /// The target's connection may take another request after this response.
    pub reusable: bool,
    /// Transfer-Encoding frames the body: a Content-Length beside it is not passed on.
    pub coded: bool,
    listed: Listed<'b>,
}

impl ResponseFacts<'_> {
    /// Whether the client's connection ends after this response: when the client asked
    /// (`client_close`), or when only the target's close ends the body. Never after an
    /// interim (1xx) response.
    pub fn closes_client(&self, client_close: bool) -> bool {
        self.status >= 200 && (client_close || self.framing == Framing::Close)
    }

    /// Whether a field of this name goes on to the client: not a hop-by-hop one (nor one
    /// `Connection` lists), and not a Content-Length beside a Transfer-Encoding, which RFC
    /// 9112 §6.3 says the coding overrides.
    pub fn passes(&self, name: &[u8]) -> bool {
        let overridden = self.coded && name.eq_ignore_ascii_case(b"content-length");
        !overridden && !is_hop_by_hop(name) && !self.listed.drops(name)
    }
}

/// A response head the relay cannot forward: the client gets a 502.
pub type BadResponse = &'static str;

/// How a response to a request (a HEAD one if `head`) is framed, and whether the target keeps
/// its connection open after it.
pub fn inspect_response<'b>(
    res: &httparse::Response<'_, 'b>,
    head: bool,
) -> Result<ResponseFacts<'b>, BadResponse> {
    let status = res.code.unwrap_or_default();
    if status < 100 {
        return Err("status below 100");
    }
    let mut listed = Listed::default();
    let (mut close, mut length, mut coded, mut chunked) =
        (res.version != Some(1), None, false, false);
    for header in res.headers.iter() {
        let (name, value) = (header.name.as_bytes(), header.value);
        match name.len() {
            10 if name.eq_ignore_ascii_case(b"connection") => {
                close |= listed.add(value).ok_or("many Connection headers")?;
            }
            14 if name.eq_ignore_ascii_case(b"content-length") => {
                let n = std::str::from_utf8(value.trim_ascii())
                    .ok()
                    .filter(|v| v.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|v| v.parse::<u64>().ok())
                    .ok_or("bad Content-Length")?;
                if length.is_some_and(|l| l != n) {
                    return Err("conflicting Content-Lengths");
                }
                length = Some(n);
            }
            17 if name.eq_ignore_ascii_case(b"transfer-encoding") => {
                coded = true;
                // The codings of all the lines make one list; chunked frames the body when
                // it is the last (empty elements are no codings).
                if let Some(last) = tokens(value).last() {
                    chunked = last.eq_ignore_ascii_case(b"chunked");
                }
            }
            _ => {}
        }
    }
    let framing = match (status, coded, length) {
        (100..=199 | 204 | 304, _, _) => Framing::Empty,
        _ if head => Framing::Empty,
        (_, true, _) if chunked => Framing::Chunked,
        (_, true, _) => Framing::Close,
        (_, false, Some(n)) => Framing::Length(n),
        (_, false, None) => Framing::Close,
    };
    Ok(ResponseFacts {
        status,
        framing,
        // A target that sent both framings is not trusted with another request (§6.3).
        reusable: !close && framing != Framing::Close && !(coded && length.is_some()),
        coded,
        listed,
    })
}

/// Writes the response head the client gets: the target's status and header lines, less the
/// hop-by-hop ones (Transfer-Encoding stays: the body goes on as it came), and
/// `Connection: close` when the client's connection ends after it.
pub fn write_response(
    out: &mut Vec<u8>,
    res: &httparse::Response<'_, '_>,
    facts: &ResponseFacts<'_>,
    close_client: bool,
) {
    out.extend_from_slice(b"HTTP/1.1 ");
    let code = facts.status;
    out.extend_from_slice(&[
        b'0' + (code / 100 % 10) as u8,
        b'0' + (code / 10 % 10) as u8,
        b'0' + (code % 10) as u8,
        b' ',
    ]);
    out.extend_from_slice(res.reason.unwrap_or_default().as_bytes());
    out.extend_from_slice(b"\r\n");
    for header in res.headers.iter() {
        let name = header.name.as_bytes();
        // The body goes on as it came, framed as it was.
        let framing = name.eq_ignore_ascii_case(b"transfer-encoding");
        if framing || facts.passes(name) {
            push_header(out, name, header.value);
        }
    }
    if close_client {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(head: &[u8], f: impl FnOnce(&httparse::Request<'_, '_>)) {
        let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut storage);
        assert!(req.parse(head).unwrap().is_complete());
        f(&req);
    }

    fn unsuited(head: &[u8]) -> Option<Unsuited> {
        let mut reason = None;
        request(head, |req| reason = inspect_request(req).err());
        reason
    }

    #[test]
    fn the_relay_takes_plain_requests_and_leaves_the_rest() {
        assert_eq!(unsuited(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"), None);
        assert_eq!(
            unsuited(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n"),
            None
        );
        for head in [
            &b"GET / HTTP/1.0\r\nHost: a\r\n\r\n"[..],
            b"GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: a\r\nConnection: b\r\nConnection: c\r\n\
Connection: d\r\nConnection: e\r\n\r\n",
        ] {
            assert!(
                unsuited(head).is_some(),
                "{}",
                String::from_utf8_lossy(head)
            );
        }
        // TRACE and a long X-Forwarded-For are the decision's to refuse, on either road.
        assert_eq!(unsuited(b"TRACE / HTTP/1.1\r\nHost: a\r\n\r\n"), None);
        let many = format!(
            "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: {}\r\nX-Forwarded-For: 2.2.2.2\r\n\r\n",
            ["1.1.1.1"; 30].join(",")
        );
        request(many.as_bytes(), |req| {
            assert_eq!(inspect_request(req).unwrap().forwarded_for, 31);
        });
    }

    #[test]
    fn a_connection_header_cannot_take_the_framing_away() {
        let head = b"POST / HTTP/1.1\r\nHost: a\r\nConnection: content-length\r\n\
Content-Length: 3\r\n\r\n";
        request(head, |req| {
            let facts = inspect_request(req).unwrap();
            let mut out = Vec::new();
            write_request(&mut out, req, req.path.unwrap(), &facts, false);
            assert_eq!(out, b"POST / HTTP/1.1\r\nContent-Length: 3\r\n");
        });
        let (facts, out) = response(
            b"HTTP/1.1 200 OK\r\nConnection: Content-Length\r\nContent-Length: 5\r\n\r\n",
            false,
        );
        assert_eq!(facts.unwrap(), (200, Framing::Length(5), true));
        assert_eq!(out, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n");
    }

    #[test]
    fn only_crlf_heads_count_as_such() {
        assert!(crlf_only(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
        assert!(!crlf_only(b"GET / HTTP/1.1\nHost: a\r\n\r\n"));
    }

    #[test]
    fn hop_by_hop_and_rewritten_headers_are_not_copied() {
        let head = b"GET /p?q=1 HTTP/1.1\r\nHost: a:8080\r\n\
Connection: keep-alive, X-Secret, a, b, c, d\r\nX-Secret: s\r\nKeep-Alive: 5\r\nX-Forwarded-For: 1.2.3.4\r\nX-Forwarded-Proto: https\r\n\
X-Amzn-Trace-Id: Root=1\r\nAccept: */*\r\n\r\n";
        request(head, |req| {
            let facts = inspect_request(req).unwrap();
            assert_eq!((facts.host, facts.body, facts.close), ("a:8080", 0, false));
            assert_eq!(facts.trace, Some("Root=1"));
            let mut out = Vec::new();
            write_request(&mut out, req, req.path.unwrap(), &facts, false);
            assert_eq!(out, b"GET /p?q=1 HTTP/1.1\r\nAccept: */*\r\n");
            out.clear();
            write_request(&mut out, req, req.path.unwrap(), &facts, true);
            assert_eq!(
                out,
                b"GET /p?q=1 HTTP/1.1\r\nX-Forwarded-For: 1.2.3.4\r\nAccept: */*\r\n"
            );
        });
    }

    #[test]
    fn the_trace_id_is_the_first_field_and_never_beyond_visible_ascii() {
        let head = b"GET / HTTP/1.1\r\nHost: a\r\nX-Amzn-Trace-Id: Root=1;\tA=b\r\n\
X-Amzn-Trace-Id: Root=2\r\n\r\n";
        request(head, |req| {
            assert_eq!(inspect_request(req).unwrap().trace, Some("Root=1;\tA=b"));
        });
        let accented = "GET / HTTP/1.1\r\nHost: a\r\nX-Amzn-Trace-Id: Root=\u{e9}\r\n\r\n";
        let reason = unsuited(accented.as_bytes());
        assert_eq!(reason, Some("desync mitigation classifies the head"));
    }

    /// Status, framing and reuse of a response head, and the head written for the client.
    type Inspected = (Result<(u16, Framing, bool), BadResponse>, Vec<u8>);

    fn response(head: &[u8], for_head: bool) -> Inspected {
        let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut res = httparse::Response::new(&mut storage);
        assert!(res.parse(head).unwrap().is_complete());
        let mut out = Vec::new();
        let facts = inspect_response(&res, for_head).map(|f| {
            write_response(&mut out, &res, &f, false);
            (f.status, f.framing, f.reusable)
        });
        (facts, out)
    }

    #[test]
    fn responses_are_framed_as_rfc_9112_says() {
        let ok = |head: &[u8], for_head| response(head, for_head).0.unwrap();
        assert_eq!(
            ok(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", false),
            (200, Framing::Length(5), true)
        );
        assert_eq!(
            ok(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true),
            (200, Framing::Empty, true)
        );
        assert_eq!(
            ok(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                false
            ),
            (200, Framing::Chunked, true)
        );
        assert_eq!(
            ok(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", false),
            (200, Framing::Close, false)
        );
        assert_eq!(
            ok(b"HTTP/1.1 204 No Content\r\n\r\n", false),
            (204, Framing::Empty, true)
        );
        assert_eq!(
            ok(
                b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
                false
            ),
            (200, Framing::Length(0), false)
        );
        assert_eq!(
            ok(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false),
            (200, Framing::Length(0), false)
        );
        assert!(
            response(
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                false
            )
            .0
            .is_err()
        );
        assert!(
            response(b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", false)
                .0
                .is_err()
        );
        assert!(response(b"HTTP/1.1 099 Odd\r\n\r\n", false).0.is_err());
        // Both framings: the coding wins, and the connection is not used again.
        assert_eq!(
            ok(
                b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
                false
            ),
            (200, Framing::Chunked, false)
        );
    }

    #[test]
    fn transfer_codings_are_one_list_and_a_listed_close_field_goes() {
        let ok = |head: &[u8]| response(head, false).0.unwrap().1;
        let chunked =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked,\r\n\r\n";
        assert_eq!(ok(chunked), Framing::Chunked);
        let last =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n";
        assert_eq!(ok(last), Framing::Close);
        let (_, out) = response(
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nClose: x\r\nContent-Length: 0\r\n\r\n",
            false,
        );
        assert_eq!(out, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    }

    #[test]
    fn response_heads_lose_hop_by_hop_headers_but_keep_their_framing() {
        let (_, out) = response(
            b"HTTP/1.0 200 Fine\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\n\
Transfer-Encoding: chunked\r\nContent-Length: 10\r\nServer: t\r\n\r\n",
            false,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 200 Fine\r\nTransfer-Encoding: chunked\r\nServer: t\r\n\r\n"
        );
    }
}
