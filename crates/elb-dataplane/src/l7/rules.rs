//! Listener rules compiled for the request path: conditions become matchers once per
//! snapshot, and a request is matched against them in priority order, the default last.
//! Pure: no I/O, no clock.

use std::net::IpAddr;

use elb_model::{Condition, condition_regex};
use http::header::{HeaderMap, HeaderName};
use ipnet::IpNet;
use regex::bytes::Regex;

/// A `*`/`?` wildcard pattern, as AWS's conditions use them: `*` is any run of characters
/// (even none), `?` exactly one, `\*` and `\?` the characters themselves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    /// `None` for a literal byte, `Some(true)` for `*`, `Some(false)` for `?`.
    tokens: Vec<(Option<bool>, u8)>,
    /// The pattern's bytes when it has no wildcard (folded if case-insensitive): such a
    /// pattern, the common case, is compared whole.
    literal: Option<Vec<u8>>,
    case_insensitive: bool,
}

impl Glob {
    pub fn new(pattern: &str, case_insensitive: bool) -> Self {
        let mut tokens = Vec::with_capacity(pattern.len());
        let mut bytes = pattern.bytes();
        while let Some(b) = bytes.next() {
            tokens.push(match b {
                b'\\' => (None, bytes.next().unwrap_or(b'\\')),
                b'*' => (Some(true), b),
                b'?' => (Some(false), b),
                _ => (
                    None,
                    if case_insensitive {
                        b.to_ascii_lowercase()
                    } else {
                        b
                    },
                ),
            });
        }
        let literal = tokens
            .iter()
            .all(|(kind, _)| kind.is_none())
            .then(|| tokens.iter().map(|(_, b)| *b).collect());
        Self {
            tokens,
            literal,
            case_insensitive,
        }
    }

    /// Whole-string match, in linear time with one backtracking point (the last `*`).
    pub fn matches(&self, text: &str) -> bool {
        let text = text.as_bytes();
        if let Some(literal) = &self.literal {
            return if self.case_insensitive {
                literal.eq_ignore_ascii_case(text)
            } else {
                literal == text
            };
        }
        let fold = |b: u8| {
            if self.case_insensitive {
                b.to_ascii_lowercase()
            } else {
                b
            }
        };
        let (mut t, mut p) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while t < text.len() {
            match self.tokens.get(p) {
                Some((Some(true), _)) => {
                    star = Some((p, t));
                    p += 1;
                }
                Some((Some(false), _)) => {
                    p += 1;
                    t += 1;
                }
                Some((None, b)) if *b == fold(text[t]) => {
                    p += 1;
                    t += 1;
                }
                _ => match star {
                    Some((sp, st)) => {
                        p = sp + 1;
                        t = st + 1;
                        star = Some((sp, st + 1));
                    }
                    None => return false,
                },
            }
        }
        self.tokens[p..].iter().all(|(kind, _)| *kind == Some(true))
    }
}

/// A condition's values: wildcard patterns, matched whole, or regular expressions, found
/// anywhere in the text ([`elb_model::condition_regex`]).
#[derive(Debug, Clone)]
pub enum Patterns {
    Globs(Vec<Glob>),
    Regexes(Vec<Regex>),
}

impl Patterns {
    fn compile(values: &[String], regex_values: &[String], case_insensitive: bool) -> Self {
        if regex_values.is_empty() {
            Self::Globs(
                values
                    .iter()
                    .map(|v| Glob::new(v, case_insensitive))
                    .collect(),
            )
        } else {
            // The API validated them; one a later, stricter check refuses (stored by an
            // earlier elbd, say) matches nothing rather than failing the whole snapshot.
            Self::Regexes(regex_values.iter().filter_map(|r| compiled(r)).collect())
        }
    }

    pub fn matches(&self, text: &str) -> bool {
        match self {
            Self::Globs(globs) => globs.iter().any(|g| g.matches(text)),
            Self::Regexes(regexes) => regexes.iter().any(|r| r.is_match(text.as_bytes())),
        }
    }

    /// [`Patterns::matches`] over a header value, which regular expressions see as bytes
    /// even where it is not ASCII.
    fn matches_value(&self, value: &http::HeaderValue) -> bool {
        match self {
            Self::Globs(_) => value.to_str().is_ok_and(|v| self.matches(v)),
            Self::Regexes(regexes) => regexes.iter().any(|r| r.is_match(value.as_bytes())),
        }
    }

    fn is_regex(&self) -> bool {
        matches!(self, Self::Regexes(_))
    }
}

/// `pattern` compiled, or `None` (and a warning) when it no longer passes the checks.
pub(crate) fn compiled(pattern: &str) -> Option<Regex> {
    condition_regex(pattern)
        .inspect_err(|why| {
            tracing::warn!(
                pattern,
                why,
                "a stored regular expression is refused: it matches nothing"
            )
        })
        .ok()
}

/// What the conditions look at in a request.
pub struct RequestView<'a> {
    pub method: &'a str,
    /// The Host, without its port.
    pub host: Option<&'a str>,
    /// The Host as sent, with its port if it has one: what regular expressions are matched
    /// against (a wildcard value cannot name a port).
    pub authority: Option<&'a str>,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    pub peer: IpAddr,
}

/// One compiled condition.
#[derive(Debug, Clone)]
pub enum Matcher {
    Host(Patterns),
    Path(Patterns),
    Header(HeaderName, Patterns),
    Method(Vec<String>),
    Query(Vec<(Option<Glob>, Glob)>),
    Source(Vec<IpNet>),
}

impl Matcher {
    pub fn compile(condition: &Condition) -> Self {
        match condition {
            Condition::HostHeader {
                values,
                regex_values,
            } => Self::Host(Patterns::compile(values, regex_values, true)),
            Condition::PathPattern {
                values,
                regex_values,
            } => Self::Path(Patterns::compile(values, regex_values, false)),
            Condition::HttpHeader {
                name,
                values,
                regex_values,
            } => Self::Header(
                HeaderName::try_from(name.as_str()).expect("header names were validated"),
                Patterns::compile(values, regex_values, true),
            ),
            Condition::HttpRequestMethod { values } => Self::Method(values.clone()),
            Condition::QueryString { values } => Self::Query(
                values
                    .iter()
                    .map(|p| {
                        (
                            p.key.as_deref().map(|k| Glob::new(k, true)),
                            Glob::new(&p.value, true),
                        )
                    })
                    .collect(),
            ),
            Condition::SourceIp { values, .. } => Self::Source(values.clone()),
        }
    }

    /// Whether any of the condition's values matches the request.
    pub fn matches(&self, req: &RequestView<'_>) -> bool {
        match self {
            Self::Host(patterns) => {
                let host = if patterns.is_regex() {
                    req.authority
                } else {
                    req.host
                };
                host.is_some_and(|h| patterns.matches(h))
            }
            Self::Path(patterns) => patterns.matches(req.path),
            Self::Header(name, patterns) => req
                .headers
                .get_all(name)
                .iter()
                .any(|v| patterns.matches_value(v)),
            Self::Method(methods) => methods.iter().any(|m| m == req.method),
            Self::Query(pairs) => req.query.is_some_and(|q| {
                form_urlencoded::parse(q.as_bytes()).any(|(key, value)| {
                    pairs.iter().any(|(k, v)| {
                        k.as_ref().is_none_or(|k| k.matches(&key)) && v.matches(&value)
                    })
                })
            }),
            Self::Source(nets) => nets.iter().any(|n| n.contains(&req.peer)),
        }
    }
}

/// The index of the first rule whose conditions all match; `None` sends the request to the
/// default rule. `rules` are in ascending priority.
pub fn first_match<'r, A>(rules: &'r [(Vec<Matcher>, A)], req: &RequestView<'_>) -> Option<&'r A> {
    rules
        .iter()
        .find(|(matchers, _)| matchers.iter().all(|m| m.matches(req)))
        .map(|(_, action)| action)
}

#[cfg(test)]
mod tests;
