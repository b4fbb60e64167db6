//! HTTP desync mitigation as ALB does it (`routing.http.desync_mitigation_mode`): each request
//! is classified the way AWS's http_desync_guardian classifies it, and the mode decides what
//! happens to it.
//!
//! HTTP/1 requests are classified from their heads as sent (`sniff`), since hyper resolves
//! some ambiguities silently; HTTP/2 ones from their parsed headers. Requests hyper itself
//! refuses (bad or conflicting Content-Length values, transfer codings not ending in chunked,
//! obs-fold, NUL or CR in a header, spaces or control bytes in the target) are answered 400
//! by hyper in every mode: what AWS would forward in monitor mode, elbd cannot.

use http::{HeaderMap, Method};

/// http_desync_guardian's classes, from harmless to dangerous.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Class {
    Compliant,
    Acceptable,
    Ambiguous,
    Severe,
}

/// `routing.http.desync_mitigation_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Monitor,
    Defensive,
    Strictest,
}

impl Mode {
    pub fn from_attribute(value: Option<&str>) -> Self {
        match value {
            Some("monitor") => Self::Monitor,
            Some("strictest") => Self::Strictest,
            _ => Self::Defensive,
        }
    }

    /// What to do with a request of `class`.
    pub fn verdict(self, class: Class) -> Verdict {
        match (self, class) {
            (_, Class::Compliant) | (Self::Monitor, _) => Verdict::Forward,
            (Self::Defensive, Class::Acceptable) => Verdict::Forward,
            (Self::Defensive, Class::Ambiguous) => Verdict::ForwardThenClose,
            (Self::Defensive, Class::Severe) | (Self::Strictest, _) => Verdict::Refuse,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Forward,
    /// Forward, then close the client's connection and the target's.
    ForwardThenClose,
    /// Answer 400 and close the client's connection.
    Refuse,
}

/// The class of a parsed request and AWS's reason for it (`classification_reason` in its
/// logs). HTTP/1 requests are classified from their raw heads instead ([`classify_raw`]).
pub fn classify(method: &Method, headers: &HeaderMap) -> (Class, &'static str) {
    let fields: Vec<(&[u8], &[u8])> = headers
        .iter()
        .map(|(name, value)| (name.as_str().as_bytes(), value.as_bytes()))
        .collect();
    classify_raw(method.as_str(), fields.iter().copied())
}

/// The class of a request from its method and header fields as sent.
pub fn classify_raw<'a>(
    method: &str,
    fields: impl Iterator<Item = (&'a [u8], &'a [u8])> + Clone,
) -> (Class, &'static str) {
    let mut worst = (Class::Compliant, "");
    let mut note = |class: Class, reason: &'static str| {
        if class > worst.0 {
            worst = (class, reason);
        }
    };
    let named = |wanted: &'static str| {
        fields
            .clone()
            .filter(move |(name, _)| name.eq_ignore_ascii_case(wanted.as_bytes()))
            .map(|(_, value)| value.trim_ascii())
    };
    let lengths: Vec<&[u8]> = named("content-length").collect();
    let codings: Vec<&[u8]> = named("transfer-encoding")
        .flat_map(|v| v.split(|b| *b == b','))
        .map(<[u8]>::trim_ascii)
        .collect();
    match lengths.as_slice() {
        [] => {}
        [one] if !is_number(one) => note(Class::Severe, "BadContentLength"),
        [first, rest @ ..] if rest.iter().any(|l| l != first) => {
            note(Class::Severe, "MultipleContentLength");
        }
        [_, _, ..] => note(Class::Ambiguous, "DuplicateContentLength"),
        [_] => {}
    }
    let chunked = codings
        .iter()
        .filter(|c| c.eq_ignore_ascii_case(b"chunked"))
        .count();
    if chunked > 1 {
        note(Class::Severe, "MultipleTransferEncodingChunked");
    } else if !codings.is_empty() && chunked == 0 {
        note(Class::Severe, "BadTransferEncoding");
    }
    if !lengths.is_empty() && !codings.is_empty() {
        note(Class::Ambiguous, "BothTeClPresent");
    }
    let bodiless = method == "GET" || method == "HEAD";
    if bodiless && !codings.is_empty() {
        note(Class::Ambiguous, "UndefinedTransferEncodingSemantics");
    }
    if bodiless && let [length] = lengths.as_slice() {
        if length.iter().all(|b| *b == b'0') {
            note(Class::Acceptable, "GetHeadZeroContentLength");
        } else {
            note(Class::Ambiguous, "UndefinedContentLengthSemantics");
        }
    }
    for (name, value) in fields {
        if is_suspicious(name) {
            note(Class::Ambiguous, "SuspiciousHeader");
        }
        let framing = name.eq_ignore_ascii_case(b"content-length")
            || name.eq_ignore_ascii_case(b"transfer-encoding");
        if framing && value.trim_ascii().is_empty() {
            note(Class::Ambiguous, "EmptyHeader");
        }
        if value
            .iter()
            .any(|b| !(0x20..0x7f).contains(b) && *b != b'\t')
        {
            note(Class::Acceptable, "NonCompliantHeader");
        }
    }
    worst
}

fn is_number(value: &[u8]) -> bool {
    !value.is_empty() && value.iter().all(u8::is_ascii_digit)
}

/// A header that is not Content-Length or Transfer-Encoding but reads as one once `_` and
/// other separators are taken for `-` and case is ignored (what some servers do).
fn is_suspicious(name: &[u8]) -> bool {
    if name.eq_ignore_ascii_case(b"content-length")
        || name.eq_ignore_ascii_case(b"transfer-encoding")
    {
        return false;
    }
    let normalized: Vec<u8> = name
        .iter()
        .filter(|b| !b.is_ascii_whitespace())
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                b.to_ascii_lowercase()
            } else {
                b'-'
            }
        })
        .collect();
    normalized == b"content-length" || normalized == b"transfer-encoding"
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderName, HeaderValue};

    fn class(method: Method, headers: &[(&str, &str)]) -> (Class, &'static str) {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(
                HeaderName::try_from(*name).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        classify(&method, &map)
    }

    /// A request (method and headers) and the class and reason expected for it.
    type Case = (
        Method,
        &'static [(&'static str, &'static str)],
        (Class, &'static str),
    );

    #[test]
    fn requests_are_classified_as_http_desync_guardian_does() {
        use Class::*;
        let cases: &[Case] = &[
            (Method::GET, &[("host", "a")], (Compliant, "")),
            (Method::POST, &[("content-length", "5")], (Compliant, "")),
            (
                Method::POST,
                &[("transfer-encoding", "chunked")],
                (Compliant, ""),
            ),
            (
                Method::GET,
                &[("content-length", "0")],
                (Acceptable, "GetHeadZeroContentLength"),
            ),
            (
                Method::GET,
                &[("content-length", "3")],
                (Ambiguous, "UndefinedContentLengthSemantics"),
            ),
            (
                Method::POST,
                &[("content-length", "5"), ("transfer-encoding", "chunked")],
                (Ambiguous, "BothTeClPresent"),
            ),
            (
                Method::POST,
                &[("content-length", "5"), ("content-length", "5")],
                (Ambiguous, "DuplicateContentLength"),
            ),
            (
                Method::POST,
                &[("content-length", "5"), ("content-length", "6")],
                (Severe, "MultipleContentLength"),
            ),
            (
                Method::POST,
                &[("content-length", "five")],
                (Severe, "BadContentLength"),
            ),
            (
                Method::POST,
                &[("transfer-encoding", "chunked, chunked")],
                (Severe, "MultipleTransferEncodingChunked"),
            ),
            (
                Method::POST,
                &[("transfer-encoding", "gzip")],
                (Severe, "BadTransferEncoding"),
            ),
            (
                Method::POST,
                &[("content_length", "5")],
                (Ambiguous, "SuspiciousHeader"),
            ),
            (
                Method::POST,
                &[("x-note", "caf\u{e9}")],
                (Acceptable, "NonCompliantHeader"),
            ),
        ];
        for (method, headers, expected) in cases {
            assert_eq!(
                class(method.clone(), headers),
                *expected,
                "{method} {headers:?}"
            );
        }
    }

    #[test]
    fn modes_act_as_aws_table_says() {
        use Class::*;
        use Verdict::*;
        let table = [
            (Mode::Monitor, [Forward, Forward, Forward, Forward]),
            (
                Mode::Defensive,
                [Forward, Forward, ForwardThenClose, Refuse],
            ),
            (Mode::Strictest, [Forward, Refuse, Refuse, Refuse]),
        ];
        for (mode, verdicts) in table {
            for (class, verdict) in [Compliant, Acceptable, Ambiguous, Severe]
                .into_iter()
                .zip(verdicts)
            {
                assert_eq!(mode.verdict(class), verdict, "{mode:?} {class:?}");
            }
        }
    }
}
