//! The one decision both request roads take: what the load balancer does with a request, from
//! the listener and the request alone. Pure. The roads then write the answer their own way
//! (the relay in place, the general path through hyper), and record the same outcome.

use super::limits::MAX_FORWARDED_FOR;
use super::rescue::ProxyError;
use super::rewrite::Rewrites;
use super::rules::{self, Matcher, RequestView};
use crate::auth::Guard;
use crate::table::{HttpRoute, RouteAction, Rule};

/// A request's rule and the action it takes.
#[derive(Clone, Copy)]
pub(crate) struct Decision<'r> {
    /// The matched rule's priority; `None` for the listener's default rule.
    pub(crate) rule: Option<u16>,
    pub(crate) action: &'r RouteAction,
    /// The rule's authenticate or jwt-validation action, which runs first.
    pub(crate) guard: Option<&'r Guard>,
    /// The rule's transforms, for a forwarded request.
    pub(crate) rewrites: Option<&'r Rewrites>,
}

/// The load balancer's refusal of a request before anything of it is read further: TRACE
/// (405) and more than 30 X-Forwarded-For addresses (463), as on AWS. `forwarded_for` counts
/// the addresses the request's X-Forwarded-For headers hold.
pub(crate) fn refusal(method: &str, forwarded_for: usize) -> Result<(), ProxyError> {
    if method == "TRACE" {
        return Err(ProxyError::Trace);
    }
    if forwarded_for > MAX_FORWARDED_FOR {
        return Err(ProxyError::TooManyForwardedFor);
    }
    Ok(())
}

/// The rule a request [`refusal`] let through matches, and its action.
pub(crate) fn decide<'r>(route: &'r HttpRoute, view: &RequestView<'_>) -> Decision<'r> {
    let default = (&route.default_action, route.default_guard.as_deref());
    decide_by(&route.rules, default, view)
}

/// [`decide`] over a listener's rules (ascending priority) and its default rule's actions.
fn decide_by<'r>(
    rules: &'r [(Vec<Matcher>, Rule)],
    (default, default_guard): (&'r RouteAction, Option<&'r Guard>),
    view: &RequestView<'_>,
) -> Decision<'r> {
    match rules::first_match(rules, view) {
        Some(rule) => Decision {
            rule: Some(rule.priority),
            action: &rule.action,
            guard: rule.guard.as_deref(),
            rewrites: rule.rewrites.as_ref(),
        },
        None => Decision {
            rule: None,
            action: default,
            guard: default_guard,
            rewrites: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use elb_model::{Condition, FixedResponse};
    use http::HeaderMap;

    use super::*;

    fn fixed(status_code: u16) -> RouteAction {
        RouteAction::Fixed(FixedResponse {
            status_code,
            content_type: None,
            body: None,
        })
    }

    fn status(decision: &Decision<'_>) -> u16 {
        match decision.action {
            RouteAction::Fixed(f) => f.status_code,
            _ => 0,
        }
    }

    #[test]
    fn the_first_matching_rule_decides_else_the_default_and_some_requests_are_refused_first() {
        let rules = vec![(
            vec![Matcher::compile(&Condition::PathPattern {
                regex_values: Vec::new(),
                values: vec!["/api/*".into()],
            })],
            Rule {
                priority: 7,
                guard: None,
                action: fixed(201),
                conditions: Vec::new(),
                rewrites: None,
            },
        )];
        let default = fixed(404);
        let headers = HeaderMap::new();
        let view = |method, path| RequestView {
            method,
            host: Some("a"),
            authority: Some("a"),
            path,
            query: None,
            headers: &headers,
            peer: "127.0.0.1".parse().unwrap(),
        };
        let api = decide_by(&rules, (&default, None), &view("GET", "/api/x"));
        assert_eq!((api.rule, status(&api)), (Some(7), 201));
        let other = decide_by(&rules, (&default, None), &view("GET", "/x"));
        assert_eq!((other.rule, status(&other)), (None, 404));
        assert!(refusal("GET", 30).is_ok());
        assert!(matches!(refusal("TRACE", 0), Err(ProxyError::Trace)));
        assert!(matches!(
            refusal("GET", 31),
            Err(ProxyError::TooManyForwardedFor)
        ));
    }
}
