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

impl Class {
    /// As access logs' `classification` field writes it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Compliant => "Compliant",
            Self::Acceptable => "Acceptable",
            Self::Ambiguous => "Ambiguous",
            Self::Severe => "Severe",
        }
    }
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
/// logs). HTTP/1 requests are classified from their raw heads instead ([`HeadFacts`]).
pub fn classify(method: &Method, headers: &HeaderMap) -> (Class, &'static str) {
    let mut facts = HeadFacts::default();
    for (name, value) in headers {
        facts.add(name.as_str().as_bytes(), value.as_bytes());
    }
    facts.class(method.as_str().as_bytes())
}

/// What matters of a request head for desync mitigation and for framing its body, gathered
/// in one pass over its fields without allocating.
#[derive(Debug, Default)]
pub struct HeadFacts<'a> {
    lengths: usize,
    first_length: &'a [u8],
    lengths_differ: bool,
    /// Transfer-Encoding fields seen, their `chunked` codings, and whether the last coding
    /// of the last field is `chunked` (what decides framing).
    encodings: usize,
    chunked: usize,
    last_is_chunked: bool,
    empty_framing: bool,
    suspicious: bool,
    non_compliant: bool,
    pub upgrade: bool,
}

impl<'a> HeadFacts<'a> {
    pub fn add(&mut self, name: &[u8], value: &'a [u8]) {
        let value = value.trim_ascii();
        if name.eq_ignore_ascii_case(b"content-length") {
            if self.lengths == 0 {
                self.first_length = value;
            } else if value != self.first_length {
                self.lengths_differ = true;
            }
            self.lengths += 1;
            self.empty_framing |= value.is_empty();
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            self.encodings += 1;
            self.empty_framing |= value.is_empty();
            for coding in value.split(|b| *b == b',') {
                let chunked = coding.trim_ascii().eq_ignore_ascii_case(b"chunked");
                self.chunked += usize::from(chunked);
                self.last_is_chunked = chunked;
            }
        } else if name.eq_ignore_ascii_case(b"upgrade") {
            self.upgrade = true;
        } else if could_read_as_framing(name)
            && (reads_as(name, b"content-length") || reads_as(name, b"transfer-encoding"))
        {
            self.suspicious = true;
        }
        self.non_compliant |= value
            .iter()
            .any(|b| !(0x20..0x7f).contains(b) && *b != b'\t');
    }

    pub fn has_length(&self) -> bool {
        self.lengths > 0
    }

    /// The body's length when Content-Length frames it: no Transfer-Encoding, and every
    /// Content-Length the same run of digits (not `+5`, which `u64` parsing would take).
    pub fn content_length(&self) -> Option<u64> {
        let digits =
            !self.first_length.is_empty() && self.first_length.iter().all(u8::is_ascii_digit);
        if self.encodings > 0 || self.lengths == 0 || self.lengths_differ || !digits {
            return None;
        }
        std::str::from_utf8(self.first_length).ok()?.parse().ok()
    }

    /// Whether Transfer-Encoding frames the body: chunked when its last coding is.
    pub fn transfer_encoding(&self) -> Option<bool> {
        (self.encodings > 0).then_some(self.last_is_chunked)
    }

    /// The worst class the head earns, and AWS's reason for it.
    pub fn class(&self, method: &[u8]) -> (Class, &'static str) {
        let mut worst = (Class::Compliant, "");
        let mut note = |class: Class, reason: &'static str| {
            if class > worst.0 {
                worst = (class, reason);
            }
        };
        let number =
            !self.first_length.is_empty() && self.first_length.iter().all(u8::is_ascii_digit);
        match self.lengths {
            0 => {}
            1 if !number => note(Class::Severe, "BadContentLength"),
            _ if self.lengths_differ => note(Class::Severe, "MultipleContentLength"),
            1 => {}
            _ => note(Class::Ambiguous, "DuplicateContentLength"),
        }
        if self.chunked > 1 {
            note(Class::Severe, "MultipleTransferEncodingChunked");
        } else if self.encodings > 0 && self.chunked == 0 {
            note(Class::Severe, "BadTransferEncoding");
        }
        if self.lengths > 0 && self.encodings > 0 {
            note(Class::Ambiguous, "BothTeClPresent");
        }
        let bodiless = method == b"GET" || method == b"HEAD";
        if bodiless && self.encodings > 0 {
            note(Class::Ambiguous, "UndefinedTransferEncodingSemantics");
        }
        if bodiless && self.lengths == 1 {
            if self.first_length.iter().all(|b| *b == b'0') {
                note(Class::Acceptable, "GetHeadZeroContentLength");
            } else {
                note(Class::Ambiguous, "UndefinedContentLengthSemantics");
            }
        }
        if self.suspicious {
            note(Class::Ambiguous, "SuspiciousHeader");
        }
        if self.empty_framing {
            note(Class::Ambiguous, "EmptyHeader");
        }
        if self.non_compliant {
            note(Class::Acceptable, "NonCompliantHeader");
        }
        worst
    }
}

/// A cheap first look: only names at least as long as `content-length` and starting like
/// one of the two can read as them.
fn could_read_as_framing(name: &[u8]) -> bool {
    name.len() >= 14 && matches!(name[0].to_ascii_lowercase(), b'c' | b't')
}

/// Whether a header name reads as `target` once whitespace is dropped, case ignored and every
/// other separator taken for `-` (what some servers do with `Content_Length`).
fn reads_as(name: &[u8], target: &[u8]) -> bool {
    name.iter()
        .filter(|b| !b.is_ascii_whitespace())
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                b.to_ascii_lowercase()
            } else {
                b'-'
            }
        })
        .eq(target.iter().copied())
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
