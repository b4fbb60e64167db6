//! `elbd explain`: how a listener's node would route a request now, from the routing table in
//! use, without sending anything and without advancing any round-robin cursor. Each rule in
//! priority order with each condition and what the request showed it; the action; for a
//! forward, each target group with its weight, stickiness, the targets the node may send to
//! and why the others are passed over (zone, health, fail-open, security groups), and the
//! target it would pick. Pure over the table.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use arc_swap::ArcSwap;
use elb_model::Condition;
use http::HeaderMap;
use serde::Serialize;

use super::authenticate::is_callback;
use super::decide::{decide, refusal};
use super::headers::strip_port;
use super::limits::forwarded_for_count;
use super::respond::{self, Original};
use super::rules::RequestView;
use super::stickiness::sticky_target;
use crate::anomaly;
use crate::auth::Guard;
use crate::sticky::{self, Stickiness};
use crate::table::HttpRoute;
use crate::table::{Listener, RouteAction, RoutingTable};
use crate::targets::{Algorithm, HttpTargets};
use elb_model::OnUnauthenticated;

/// The request to explain.
#[derive(Debug, Clone)]
pub struct Question {
    pub method: String,
    /// The path and query, as in the request line: `/api/v1?x=1`.
    pub target: String,
    pub headers: HeaderMap,
    /// The client's address (source-ip conditions).
    pub source: IpAddr,
}

/// How the node would route it. Serialized as `elbd explain --output json` prints it.
#[derive(Debug, Serialize)]
pub struct Explanation {
    pub listener_arn: String,
    /// The node's address and the listener's port.
    pub node: SocketAddr,
    /// The load balancer's security groups do not admit the source: its connection would be
    /// refused, and nothing else applies.
    pub admitted: bool,
    /// The load balancer answers the request before any rule (TRACE, too many
    /// X-Forwarded-For addresses): why, and nothing else applies.
    pub refused: Option<String>,
    /// The request is the identity provider's callback (`/oauth2/idpresponse` on a listener
    /// with authenticate actions): the load balancer finishes a login with it, and no rule
    /// applies.
    pub callback: bool,
    /// Every rule in priority order (the default rule is not listed).
    pub rules: Vec<RuleTrace>,
    /// The matched rule's priority; `None`: the default rule.
    pub matched_rule: Option<u16>,
    /// The rule's authenticate or jwt-validation action, which runs before `action`: what
    /// it asks of the request.
    pub guard: Option<String>,
    pub action: Option<ActionTrace>,
}

#[derive(Debug, Serialize)]
pub struct RuleTrace {
    pub priority: u16,
    /// All its conditions matched. Rules after the first that matches are not evaluated
    /// by the load balancer, but are shown evaluated here.
    pub matched: bool,
    pub conditions: Vec<ConditionTrace>,
}

#[derive(Debug, Serialize)]
pub struct ConditionTrace {
    /// `path-pattern ["/api/*"]`.
    pub condition: String,
    pub matched: bool,
    /// What the request showed the condition.
    pub saw: String,
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ActionTrace {
    Forward {
        /// Target group stickiness (AWSALBTG), in seconds.
        group_stickiness_seconds: Option<u64>,
        /// The group a valid AWSALBTG cookie of the request names: it takes the request,
        /// whatever the weights.
        sticky_group: Option<String>,
        /// Every weight is 0: the request is answered 503.
        no_weight: bool,
        groups: Vec<GroupTrace>,
    },
    Redirect {
        status: u16,
        location: String,
    },
    FixedResponse {
        status: u16,
    },
}

#[derive(Debug, Serialize)]
pub struct GroupTrace {
    pub target_group_arn: String,
    pub weight: u32,
    /// The share of requests its weight gives it, in percent.
    pub share_percent: f64,
    /// `round_robin`, `least_outstanding_requests` or `weighted_random`.
    pub algorithm: &'static str,
    /// `off`, `lb_cookie` or `app_cookie`.
    pub stickiness: &'static str,
    /// Registered targets that can take traffic at all (503 when none).
    pub registered: usize,
    /// Too few targets are healthy: every target in reach takes traffic.
    pub fail_open: bool,
    /// The targets this node may send to.
    pub eligible: Vec<SocketAddr>,
    pub passed_over: Vec<PassedOverTrace>,
    /// The target the next request would go to, when one can be named.
    pub pick: Option<SocketAddr>,
    pub why: String,
}

#[derive(Debug, Serialize)]
pub struct PassedOverTrace {
    pub target: SocketAddr,
    pub zone: String,
    pub why: &'static str,
}

/// Explains requests on the routing table in use: what `elbd explain` asks the running
/// process through.
#[derive(Clone)]
pub struct Explainer(pub(crate) Arc<ArcSwap<RoutingTable>>);

impl Explainer {
    /// [`explain`] on the table in use now.
    pub fn explain(
        &self,
        listener_arn: &str,
        node: Option<IpAddr>,
        question: &Question,
    ) -> Result<Explanation, ExplainError> {
        explain(
            &self.0.load(),
            listener_arn,
            node,
            question,
            super::now_ms(),
        )
    }
}

/// Why a question has no answer.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ExplainError {
    #[error("Listener '{0}' not found")]
    ListenerNotFound(String),
    #[error("Listener '{0}' is not an HTTP or HTTPS listener: only they have rules to explain")]
    NotHttp(String),
    #[error("Listener '{0}' has no node at {1}")]
    NoSuchNode(String, IpAddr),
}

/// Explains `question` on listener `listener_arn` at `node` (its first node, the lowest
/// address, when `None`). `now_ms` judges stickiness cookies and slow start.
pub fn explain(
    table: &RoutingTable,
    listener_arn: &str,
    node: Option<IpAddr>,
    question: &Question,
    now_ms: u64,
) -> Result<Explanation, ExplainError> {
    let mut nodes: Vec<(&SocketAddr, &Listener)> = table
        .listeners
        .iter()
        .filter(|(_, l)| l.door().listener_arn == listener_arn)
        .map(|(key, l)| (&key.addr, l))
        .collect();
    if nodes.is_empty() {
        return Err(ExplainError::ListenerNotFound(listener_arn.to_owned()));
    }
    nodes.sort_by_key(|(addr, _)| **addr);
    let (addr, listener) = match node {
        Some(ip) => nodes
            .into_iter()
            .find(|(addr, _)| addr.ip() == ip)
            .ok_or(ExplainError::NoSuchNode(listener_arn.to_owned(), ip))?,
        None => nodes[0],
    };
    let Listener::Http(route) = listener else {
        return Err(ExplainError::NotHttp(listener_arn.to_owned()));
    };
    let (path, query) = match question.target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (question.target.as_str(), None),
    };
    // An empty Host names no authority: the load balancer's own, as the data plane reads it.
    let host_header = question
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty());
    let host = strip_port(host_header.unwrap_or(&route.dns_name));
    let view = RequestView {
        method: &question.method,
        host: Some(host),
        authority: Some(host_header.unwrap_or(&route.dns_name)),
        path,
        query,
        headers: &question.headers,
        peer: question.source,
    };
    let mut explanation = Explanation {
        listener_arn: listener_arn.to_owned(),
        node: *addr,
        admitted: route.door.admission.admits(question.source),
        refused: None,
        callback: false,
        rules: Vec::new(),
        matched_rule: None,
        guard: None,
        action: None,
    };
    if !explanation.admitted {
        return Ok(explanation);
    }
    if let Err(e) = refusal(&question.method, forwarded_for_count(&question.headers)) {
        explanation.refused = Some(format!("{} ({})", e.reason(), e.status().as_u16()));
        return Ok(explanation);
    }
    if is_callback(route, path) {
        explanation.callback = true;
        return Ok(explanation);
    }
    explanation.rules = route
        .rules
        .iter()
        .map(|(matchers, rule)| {
            let conditions: Vec<ConditionTrace> = matchers
                .iter()
                .zip(&rule.conditions)
                .map(|(matcher, condition)| ConditionTrace {
                    condition: describe(condition),
                    matched: matcher.matches(&view),
                    saw: saw(condition, &view),
                })
                .collect();
            RuleTrace {
                priority: rule.priority,
                matched: conditions.iter().all(|c| c.matched),
                conditions,
            }
        })
        .collect();
    let decision = decide(route, &view);
    explanation.matched_rule = decision.rule;
    explanation.guard = decision.guard.map(|guard| guard_text(guard, route));
    explanation.action = Some(match decision.action {
        RouteAction::Forward(forward) => {
            let total: u32 = forward.weights().map(|(_, w)| w).sum();
            let now_s = now_ms / 1000;
            // As forward.rs: a fresh group cookie naming a group of the action decides.
            let sticky_group = forward
                .group_stickiness_s
                .zip(route.sealer.as_deref())
                .and_then(|(duration_s, sealer)| {
                    let cookie = sticky::request_cookie(&question.headers, sticky::GROUP_COOKIE)?;
                    let ticket = sealer.open(cookie)?;
                    let fresh = ticket.target.is_none() && ticket.fresh(now_s, duration_s);
                    fresh.then(|| forward.group(&ticket.group)).flatten()
                })
                .map(|group| group.target_group_arn.to_string());
            let groups = forward
                .weights()
                .map(|(targets, weight)| {
                    let share = f64::from(weight) * 100.0 / f64::from(total.max(1));
                    let sealer = route.sealer.as_deref();
                    let stuck = sealer
                        .and_then(|s| sticky_target(&question.headers, targets, s, now_s))
                        .filter(|addr| targets.endpoints.iter().any(|e| e.addr == *addr));
                    group_trace(targets, (weight, share), stuck, now_ms)
                })
                .collect();
            ActionTrace::Forward {
                group_stickiness_seconds: forward.group_stickiness_s,
                sticky_group,
                no_weight: total == 0,
                groups,
            }
        }
        RouteAction::Redirect(redirect) => {
            let original = Original {
                protocol: route.scheme(),
                host,
                port: route.port,
                path,
                query: query.unwrap_or(""),
            };
            let location = respond::location(redirect, &original);
            ActionTrace::Redirect {
                status: redirect.status_code,
                location,
            }
        }
        RouteAction::Fixed(fixed) => ActionTrace::FixedResponse {
            status: fixed.status_code,
        },
    });
    Ok(explanation)
}

/// What a rule's first action asks of a request, and what happens without it; or why it
/// cannot run (every request then answers 500), as the data plane checks first.
fn guard_text(guard: &Guard, route: &HttpRoute) -> String {
    let unusable = match guard {
        Guard::Login(login) => login.unusable.clone().or_else(|| {
            route
                .sealer
                .is_none()
                .then(|| "the store has no cookie key".to_owned())
        }),
        Guard::Token(check) => check.unusable.clone(),
    };
    if let Some(why) = unusable {
        return format!(
            "an authentication action that cannot run ({why}): every request answers 500"
        );
    }
    match guard {
        Guard::Login(login) => {
            let without = match login.session.on_unauthenticated {
                OnUnauthenticated::Authenticate => "a 302 to the provider's login",
                OnUnauthenticated::Deny => "401",
                OnUnauthenticated::Allow => "forwarded without the user's claims",
            };
            format!(
                "authenticate at {} as client {}; a valid {}-N session cookie adds x-amzn-oidc-*, \
                 without one: {without}",
                login.issuer, login.client_id, login.session.cookie_name
            )
        }
        Guard::Token(check) => {
            let claims: Vec<&str> = check.claims.iter().map(|c| c.name.as_str()).collect();
            let claims = if claims.is_empty() {
                String::new()
            } else {
                format!(", with the claims {}", claims.join(", "))
            };
            format!(
                "jwt-validation: a bearer token issued by {}, signed by a key of {}{claims}; \
                 without one: 401",
                check.issuer, check.jwks_name
            )
        }
    }
}

fn group_trace(
    targets: &HttpTargets,
    (weight, share_percent): (u32, f64),
    stuck: Option<SocketAddr>,
    now_ms: u64,
) -> GroupTrace {
    let http = &targets.proto;
    let eligible: Vec<SocketAddr> = targets.endpoints.iter().map(|e| e.addr).collect();
    let (pick, why) = if targets.registered == 0 {
        (
            None,
            "no registered target can take traffic: 503".to_owned(),
        )
    } else if let Some(function) = &http.function {
        let arn = &function.arn;
        let qualifier = arn
            .qualifier
            .as_deref()
            .map_or(String::new(), |q| format!(" ({q})"));
        (
            None,
            format!("invokes the Lambda function {}{qualifier}", arn.name),
        )
    } else if let Some(addr) = stuck {
        (
            Some(addr),
            "its stickiness cookie names this target, which may still take it".to_owned(),
        )
    } else if eligible.is_empty() {
        (None, "no target this node may send to: 503".to_owned())
    } else {
        let n = eligible.len();
        let next = http.cursor.load(Ordering::Relaxed);
        match http.algorithm {
            Algorithm::RoundRobin => (
                Some(eligible[next % n]),
                "round robin: next in turn".to_owned(),
            ),
            Algorithm::LeastOutstandingRequests => {
                let outstanding: Vec<usize> = targets
                    .endpoints
                    .iter()
                    .map(|e| e.load.outstanding())
                    .collect();
                let least = outstanding.iter().copied().min().unwrap_or(0);
                let i = (0..n)
                    .map(|k| (next + k) % n)
                    .find(|&i| outstanding[i] == least)
                    .unwrap_or(0);
                (
                    Some(eligible[i]),
                    format!("least outstanding requests: {least} outstanding, ties in turn"),
                )
            }
            Algorithm::WeightedRandom => {
                let held_back: Vec<String> = (targets.endpoints.iter())
                    .filter(|e| e.load.weight() < anomaly::FULL)
                    .map(|e| e.addr.to_string())
                    .collect();
                let why = if held_back.is_empty() {
                    "weighted random: any eligible target, drawn per request".to_owned()
                } else {
                    format!(
                        "weighted random: drawn per request, less often {} (anomaly mitigation)",
                        held_back.join(", ")
                    )
                };
                (None, why)
            }
        }
    };
    let ramp = pick
        .and_then(|addr| targets.endpoints.iter().find(|e| e.addr == addr))
        .and_then(|e| e.proto.ramp)
        .map(|ramp| ramp.share(now_ms))
        .filter(|share| *share < 1.0);
    let why = match ramp {
        Some(share) => format!(
            "{why}; in slow start, taken only {:.0}% of the times it comes up",
            share * 100.0
        ),
        None => why,
    };
    GroupTrace {
        target_group_arn: targets.target_group_arn.to_string(),
        weight,
        share_percent,
        algorithm: match http.algorithm {
            Algorithm::RoundRobin => "round_robin",
            Algorithm::LeastOutstandingRequests => "least_outstanding_requests",
            Algorithm::WeightedRandom => "weighted_random",
        },
        stickiness: match http.stickiness {
            Stickiness::Off => "off",
            Stickiness::LbCookie { .. } => "lb_cookie",
            Stickiness::AppCookie { .. } => "app_cookie",
        },
        registered: targets.registered,
        fail_open: http.eligibility.fail_open,
        eligible,
        passed_over: http
            .eligibility
            .passed_over
            .iter()
            .map(|p| PassedOverTrace {
                target: p.addr,
                zone: p.zone.clone(),
                why: p.why,
            })
            .collect(),
        pick,
        why,
    }
}

/// `path-pattern ["/api/*", "/v2"]`; regular expressions as `path-pattern regex ["^/v[0-9]/"]`.
pub fn describe(condition: &Condition) -> String {
    let values: Vec<String> = match condition {
        c if !c.regex_values().is_empty() => c.regex_values().to_vec(),
        Condition::HostHeader { values, .. }
        | Condition::PathPattern { values, .. }
        | Condition::HttpHeader { values, .. }
        | Condition::HttpRequestMethod { values } => values.clone(),
        Condition::QueryString { values } => values
            .iter()
            .map(|p| match &p.key {
                Some(key) => format!("{key}={}", p.value),
                None => p.value.clone(),
            })
            .collect(),
        Condition::SourceIp { values, .. } => values.iter().map(ToString::to_string).collect(),
    };
    let mut field = match condition {
        Condition::HttpHeader { name, .. } => format!("http-header {name}"),
        other => other.field().to_owned(),
    };
    if !condition.regex_values().is_empty() {
        field.push_str(" regex");
    }
    format!("{field} {values:?}")
}

/// What the request shows `condition`.
fn saw(condition: &Condition, view: &RequestView<'_>) -> String {
    match condition {
        Condition::HostHeader { regex_values, .. } if !regex_values.is_empty() => {
            view.authority.unwrap_or("-").to_owned()
        }
        Condition::HostHeader { .. } => view.host.unwrap_or("-").to_owned(),
        Condition::PathPattern { .. } => view.path.to_owned(),
        Condition::HttpRequestMethod { .. } => view.method.to_owned(),
        Condition::QueryString { .. } => view.query.unwrap_or("").to_owned(),
        Condition::SourceIp { .. } => view.peer.to_string(),
        Condition::HttpHeader { name, .. } => {
            let values: Vec<&str> = view
                .headers
                .get_all(name.as_str())
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            if values.is_empty() {
                "(absent)".to_owned()
            } else {
                values.join(", ")
            }
        }
    }
}
