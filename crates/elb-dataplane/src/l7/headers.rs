//! The header work both request roads share: Host towards targets, X-Forwarded-For's client,
//! X-Amzn-Trace-Id, hop-by-hop headers, and the hand-written number and address writers
//! the relay's head writer and the general path's dressing use.

use std::net::SocketAddr;

use http::header::{self, HeaderMap, HeaderName};

pub(super) static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub(super) static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub(super) static X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
pub(super) static X_AMZN_TRACE_ID: HeaderName = HeaderName::from_static("x-amzn-trace-id");

/// The Host a target gets and, when one is to be appended, the port. With
/// `preserve_host_header` off (the default), AWS strips the port from Host on listener ports
/// 80 and 443 and appends `:<listener port>` on the others when it is missing.
pub(super) fn target_host(host: &str, listener_port: u16, preserve: bool) -> (&str, Option<u16>) {
    if preserve {
        return (host, None);
    }
    let name = strip_port(host);
    match listener_port {
        80 | 443 => (name, None),
        port if name.len() == host.len() => (name, Some(port)),
        _ => (host, None),
    }
}

/// Whether a Host value is `uri-host [":" port]` (RFC 9110 §7.2, RFC 3986 §3.2.2): a
/// bracketed IPv6 literal, or a non-empty name of unreserved characters, sub-delims and
/// percent-escapes; any port all digits. Anything else is a 400 (RFC 9112 §3.2).
pub(super) fn valid_host(host: &[u8]) -> bool {
    let (name, port) = match host.iter().rposition(|&b| b == b':') {
        Some(i) if !host[i..].contains(&b']') => (&host[..i], Some(&host[i + 1..])),
        _ => (host, None),
    };
    let name_ok = match name {
        [] => false,
        [b'[', literal @ .., b']'] => {
            literal.contains(&b':')
                && literal
                    .iter()
                    .all(|b| b.is_ascii_hexdigit() || matches!(b, b':' | b'.'))
        }
        _ => name
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=".contains(b)),
    };
    name_ok && port.is_none_or(|p| p.iter().all(u8::is_ascii_digit))
}

/// `host:port` → `host`; `[v6]:port` → `[v6]`; anything without a port is returned whole.
pub(super) fn strip_port(host: &str) -> &str {
    match host.rfind(':') {
        Some(i)
            if !host[i..].contains(']') && host[i + 1..].bytes().all(|b| b.is_ascii_digit()) =>
        {
            &host[..i]
        }
        _ => host,
    }
}

/// `X-Amzn-Trace-Id` as ALB sets it: `Root=1-<8 hex epoch seconds>-<24 hex random>` for a new
/// trace; a request that already has a `Root` gets a `Self=1-…` field in front instead (an
/// older `Self` replaced), and every other field is kept. One over 7 KB is replaced by a new
/// `Root` alone.
pub(super) fn write_trace_id(
    out: &mut Vec<u8>,
    previous: Option<&str>,
    epoch_secs: u64,
    random: u128,
) {
    const MAX_KEPT: usize = 7 * 1024;
    let previous = previous.filter(|p| p.len() <= MAX_KEPT);
    // `1-` 8 hex `-` 24 hex, written by hand (formatting machinery costs more than the rest).
    let field = match previous {
        Some(previous) if previous.split(';').any(|f| f.trim().starts_with("Root=")) => "Self=",
        _ => "Root=",
    };
    out.extend_from_slice(field.as_bytes());
    out.extend_from_slice(b"1-");
    push_hex(out, u128::from(epoch_secs as u32), 8);
    out.push(b'-');
    push_hex(out, random, 24);
    for kept in previous
        .into_iter()
        .flat_map(|p| p.split(';'))
        .map(str::trim)
        .filter(|f| !f.is_empty() && !f.starts_with("Self="))
    {
        out.push(b';');
        out.extend_from_slice(kept.as_bytes());
    }
}

/// The low `digits` hex digits of `value`, lowercase.
fn push_hex(out: &mut Vec<u8>, value: u128, digits: u32) {
    for i in (0..digits).rev() {
        let nibble = (value >> (4 * i)) & 0xf;
        out.push(b"0123456789abcdef"[nibble as usize]);
    }
}

/// Removes the hop-by-hop headers and those `Connection` lists. Most messages carry none, so
/// the names are looked at once and nothing is removed (or hashed) unless found.
pub(super) fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let mut found = headers
        .keys()
        .filter(|n| is_hop_by_hop(n.as_str().as_bytes()));
    let (Some(first), more) = (found.next(), found.next().is_some()) else {
        return;
    };
    // The common case, a lone `Connection: keep-alive` or `close`: nothing else to find.
    if !more && *first == header::CONNECTION && only_persistence(headers) {
        headers.remove(header::CONNECTION);
        return;
    }
    let mut doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|n| is_hop_by_hop(n.as_str().as_bytes()))
        .cloned()
        .collect();
    let listed = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::try_from(name.trim()).ok());
    doomed.extend(listed);
    for name in doomed {
        headers.remove(name);
    }
}

/// Whether `Connection` names only `keep-alive` or `close`, no other header to remove.
fn only_persistence(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .all(|t| {
            let t = t.trim_ascii();
            t.eq_ignore_ascii_case(b"keep-alive") || t.eq_ignore_ascii_case(b"close")
        })
}

/// Whether `Connection` says `close`.
pub(super) fn closes(headers: &HeaderMap) -> bool {
    (headers.get_all(header::CONNECTION).iter())
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"))
}

/// Hop-by-hop headers (RFC 9110 §7.6.1), which describe one connection, not the message, and
/// the old `Proxy-Connection`. `Trailer` is not one: it names the message's trailer fields,
/// which an HTTP/1.1 client only gets from hyper's server when they are named there. The
/// length is looked at first: most names are not near one.
pub(super) fn is_hop_by_hop(name: &[u8]) -> bool {
    match name.len() {
        2 => name.eq_ignore_ascii_case(b"te"),
        7 => name.eq_ignore_ascii_case(b"upgrade"),
        10 => name.eq_ignore_ascii_case(b"connection") || name.eq_ignore_ascii_case(b"keep-alive"),
        16 => name.eq_ignore_ascii_case(b"proxy-connection"),
        17 => name.eq_ignore_ascii_case(b"transfer-encoding"),
        _ => false,
    }
}

/// The client as X-Forwarded-For names it: `1.2.3.4`, or with the client port option
/// `1.2.3.4:5678` / `[::1]:5678`. IPv4 is written by hand: `Display` costs more than the rest
/// of the header work.
pub(crate) fn push_client(out: &mut Vec<u8>, peer: SocketAddr, with_port: bool) {
    use std::io::Write as _;
    match peer {
        SocketAddr::V4(v4) => {
            for (i, octet) in v4.ip().octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                push_decimal(out, octet);
            }
            if with_port {
                out.push(b':');
                push_decimal(out, v4.port());
            }
        }
        SocketAddr::V6(v6) if with_port => {
            let _ = write!(out, "[{}]:{}", v6.ip(), v6.port());
        }
        SocketAddr::V6(v6) => {
            let _ = write!(out, "{}", v6.ip());
        }
    }
}

/// `n` in decimal, written by hand (`Display` costs more than the rest of the work here).
pub(crate) fn push_decimal(out: &mut Vec<u8>, n: impl Into<u64>) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut n = n.into();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Writes the field `name: value` of an HTTP/1 head.
pub(crate) fn push_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn trace_id(previous: Option<&str>, epoch_secs: u64, random: u128) -> String {
        let mut out = Vec::new();
        write_trace_id(&mut out, previous, epoch_secs, random);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn hosts_are_names_or_ip_literals_with_digit_ports() {
        for good in [
            "a.example",
            "a.example:8080",
            "[::1]",
            "[::1]:443",
            "127.0.0.1:80",
            "a%2d_b~",
        ] {
            assert!(valid_host(good.as_bytes()), "{good}");
        }
        for bad in [
            ":80",
            "",
            "[1.2.3.4]",
            "a wild",
            "a.example:abc",
            "a.example:8080:9",
            "[::1",
            "[zz]",
            "a/b",
            "a@b",
        ] {
            assert!(!valid_host(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn trace_ids_as_alb_sets_them() {
        let t = 0x5f5e_1000;
        assert_eq!(
            trace_id(None, t, 0xabc),
            "Root=1-5f5e1000-000000000000000000000abc"
        );
        assert_eq!(
            trace_id(Some("Root=1-1-2;CalledFrom=app"), t, 1),
            "Self=1-5f5e1000-000000000000000000000001;Root=1-1-2;CalledFrom=app"
        );
        assert_eq!(
            trace_id(Some("Self=1-0-0;Root=1-1-2"), t, 1),
            "Self=1-5f5e1000-000000000000000000000001;Root=1-1-2"
        );
        assert_eq!(
            trace_id(Some("Custom=x"), t, 1),
            "Root=1-5f5e1000-000000000000000000000001;Custom=x"
        );
        let large = format!("Root=1-1-2;Pad={}", "x".repeat(7 * 1024));
        assert_eq!(
            trace_id(Some(&large), t, 1),
            "Root=1-5f5e1000-000000000000000000000001"
        );
    }

    #[test]
    fn hop_by_hop_headers_go() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        headers.insert("x-secret", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert("x-kept", HeaderValue::from_static("1"));
        remove_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1);
        assert!(headers.contains_key("x-kept"));
    }
}
