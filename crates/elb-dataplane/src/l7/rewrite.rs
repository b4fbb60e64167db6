//! Rule transforms compiled for the request path: a rule's Host header and URL rewrites
//! (AWS's `host-header-rewrite` and `url-rewrite`), applied to the requests it forwards.
//! Pure: no I/O, no clock.

use std::borrow::Cow;

use elb_model::{Rewrite, Transform, expanded_replacement};
use http::uri::{Authority, PathAndQuery};
use regex::bytes::Regex;

use super::rescue::ProxyError;
use super::rules::compiled;

/// A rule's transforms, compiled once per snapshot: each type's rewrites, in order.
#[derive(Debug, Clone, Default)]
pub(crate) struct Rewrites {
    host: Vec<(Regex, String)>,
    url: Vec<(Regex, String)>,
}

impl Rewrites {
    /// `None` for a rule without transforms, the common case.
    pub(crate) fn compile(transforms: &[Transform]) -> Option<Self> {
        if transforms.is_empty() {
            return None;
        }
        // A regular expression a later, stricter check refuses rewrites nothing (rules.rs).
        let compile = |rewrites: &[Rewrite]| {
            rewrites
                .iter()
                .filter_map(|r| Some((compiled(&r.regex)?, expanded_replacement(&r.replace))))
                .collect()
        };
        let mut compiled = Self::default();
        for transform in transforms {
            match transform {
                Transform::HostHeaderRewrite { rewrites } => compiled.host = compile(rewrites),
                Transform::UrlRewrite { rewrites } => compiled.url = compile(rewrites),
            }
        }
        Some(compiled)
    }

    /// The Host header (as the client sent it) rewritten, or `None` when no rewrite matched
    /// it; a result that is no host and port is a 500, as ALB answers a failed transform.
    pub(crate) fn host(&self, host: &str) -> Result<Option<String>, ProxyError> {
        let Some(rewritten) = apply(&self.host, host) else {
            return Ok(None);
        };
        Authority::try_from(rewritten.as_slice())
            .ok()
            .filter(|a| !a.as_str().is_empty() && !a.as_str().contains('@'))
            .map(|a| Some(a.as_str().to_owned()))
            .ok_or(ProxyError::Transform("Host header"))
    }

    /// The request target (path and query) rewritten, or `None` when no rewrite matched it;
    /// a result that is no absolute path (with its query) is a 500.
    pub(crate) fn url(&self, target: &str) -> Result<Option<String>, ProxyError> {
        let Some(rewritten) = apply(&self.url, target) else {
            return Ok(None);
        };
        // Whole as written: the http crate would drop a fragment rather than refuse it.
        let sendable = rewritten.first() == Some(&b'/')
            && !rewritten.contains(&b'#')
            && PathAndQuery::try_from(rewritten.as_slice())
                .is_ok_and(|p| p.as_str().len() == rewritten.len());
        match String::from_utf8(rewritten) {
            Ok(url) if sendable => Ok(Some(url)),
            _ => Err(ProxyError::Transform("URL")),
        }
    }
}

/// `text` after each rewrite whose regular expression matches it (the first match replaced),
/// in order; `None` when none matched.
fn apply(rewrites: &[(Regex, String)], text: &str) -> Option<Vec<u8>> {
    let mut current = Cow::Borrowed(text.as_bytes());
    let mut matched = false;
    for (regex, replace) in rewrites {
        if regex.is_match(&current) {
            current = Cow::Owned(regex.replace(&current, replace.as_bytes()).into_owned());
            matched = true;
        }
    }
    matched.then(|| current.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrites(host: &[(&str, &str)], url: &[(&str, &str)]) -> Rewrites {
        let list = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(regex, replace)| Rewrite {
                    regex: (*regex).into(),
                    replace: (*replace).into(),
                })
                .collect()
        };
        let mut transforms = Vec::new();
        if !host.is_empty() {
            transforms.push(Transform::HostHeaderRewrite {
                rewrites: list(host),
            });
        }
        if !url.is_empty() {
            transforms.push(Transform::UrlRewrite {
                rewrites: list(url),
            });
        }
        Rewrites::compile(&transforms).unwrap()
    }

    #[test]
    fn rewrites_replace_the_first_match_with_its_groups_in_order() {
        let r = rewrites(
            &[("^(.+)\\.example\\.com$", "$1.internal.test")],
            &[("^/api/(.*)$", "/${1}"), ("v1", "v2")],
        );
        assert_eq!(
            r.host("shop.example.com").unwrap().as_deref(),
            Some("shop.internal.test")
        );
        assert_eq!(
            r.host("shop.example.org").unwrap(),
            None,
            "no match: as sent"
        );
        assert_eq!(
            r.url("/api/v1/users?id=v1").unwrap().as_deref(),
            Some("/v2/users?id=v1"),
            "each rewrite replaces its first match"
        );
        assert_eq!(r.url("/static/a.js").unwrap(), None);
        assert!(Rewrites::compile(&[]).is_none());
    }

    #[test]
    fn a_result_that_cannot_be_sent_is_a_500() {
        let r = rewrites(&[("^.*$", "a b")], &[("^/(.*)$", "$1")]);
        assert!(matches!(r.host("x.test"), Err(ProxyError::Transform(_))));
        assert!(
            matches!(r.url("/relative"), Err(ProxyError::Transform(_))),
            "not an absolute path"
        );
        let fragment = rewrites(&[], &[("$", "#top")]);
        assert!(fragment.url("/a").is_err());
    }
}
