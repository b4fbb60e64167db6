//! The web console at `/console` on the API address: every load balancer with its nodes per
//! zone, listeners and rules, target groups with each target's health and reason, and the
//! share of requests each node sent each target over the last minute, drawn as zones side by
//! side with node → target arrows. The page (`console.html`) redraws from
//! `/console/state.json` every two seconds. Read-only, no secrets; with API credentials
//! configured it asks for HTTP basic auth, as `/metrics` does.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State as Shared;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use elb_dataplane::l7::explain::describe;
use elb_dataplane::targets::{NodeTarget, Traffic};
use elb_model::{Action, HealthView, Region, State, TargetId, TargetType};
use elb_store::Store;
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::scrape::authorized;

/// The window the shares are over.
const WINDOW: Duration = Duration::from_secs(60);
/// How often the counts are sampled into the window.
const SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// What each node sent each target so far, by (node id, registration key).
type Counts = HashMap<NodeTarget, u64>;

pub(crate) struct Console {
    pub(crate) store: Arc<Store>,
    pub(crate) health: watch::Receiver<Arc<HealthView>>,
    pub(crate) traffic: Arc<Traffic>,
    /// Access key id → secret; empty: no authentication.
    pub(crate) credentials: HashMap<String, String>,
    /// Samples of the counts, oldest first, over the last [`WINDOW`] and a sample more.
    pub(crate) samples: Mutex<VecDeque<(Instant, Counts)>>,
}

impl Console {
    fn counts(&self) -> Counts {
        self.traffic.sent().into_iter().collect()
    }
}

/// Samples the counts every few seconds, so that a share is over the last minute.
pub(crate) async fn sample(console: Arc<Console>) {
    let mut ticks = tokio::time::interval(SAMPLE_EVERY);
    loop {
        ticks.tick().await;
        let counts = console.counts();
        let now = Instant::now();
        let mut samples = console
            .samples
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        samples.push_back((now, counts));
        // Keep the newest sample at least a window old: the base of every share.
        while samples.len() > 1 && now.duration_since(samples[1].0) >= WINDOW {
            samples.pop_front();
        }
    }
}

pub(crate) fn router(console: Arc<Console>) -> Router {
    Router::new()
        .route("/console", get(page))
        .route("/console/state.json", get(state))
        .with_state(console)
}

fn challenge() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Basic realm=\"elbd\"")],
        "the console needs an access key id and its secret\n",
    )
        .into_response()
}

async fn page(Shared(console): Shared<Arc<Console>>, headers: HeaderMap) -> Response {
    if !console.credentials.is_empty() && !authorized(&headers, &console.credentials) {
        return challenge();
    }
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        include_str!("console.html"),
    )
        .into_response()
}

async fn state(Shared(console): Shared<Arc<Console>>, headers: HeaderMap) -> Response {
    if !console.credentials.is_empty() && !authorized(&headers, &console.credentials) {
        return challenge();
    }
    let now = console.counts();
    let base = console
        .samples
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .front()
        .map(|(_, counts)| counts.clone())
        .unwrap_or_default();
    let sent: Counts = now
        .into_iter()
        .map(|(key, n)| {
            let before = base.get(&key).copied().unwrap_or(0);
            (key, n.saturating_sub(before))
        })
        .collect();
    let snapshot = console.store.snapshot();
    let health = console.health.borrow().clone();
    let body = view(&snapshot.state, &health, &sent).to_string();
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

/// The console's state: every load balancer of every region, with `sent`, the requests each
/// node sent each target in the window.
fn view(state: &State, health: &HealthView, sent: &Counts) -> Value {
    let load_balancers: Vec<Value> = state
        .regions
        .values()
        .flat_map(|region| {
            region
                .load_balancers
                .values()
                .map(move |lb| load_balancer(region, &lb.arn, health, sent))
        })
        .collect();
    json!({ "load_balancers": load_balancers })
}

fn load_balancer(region: &Region, arn: &str, health: &HealthView, sent: &Counts) -> Value {
    let lb = &region.load_balancers[arn];
    let mut zones: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    for node in region.nodes_of(arn) {
        zones
            .entry(&node.availability_zone)
            .or_default()
            .push(json!({
                "id": node.id,
                "private": node.private_ipv4.to_string(),
                "public": node.public_ipv4.map(|ip| ip.to_string()),
                "ipv6": node.ipv6.map(|ip| ip.to_string()),
            }));
    }
    let zones: Vec<Value> = zones
        .into_iter()
        .map(|(name, nodes)| json!({ "name": name, "nodes": nodes }))
        .collect();
    let group_name = |tg_arn: &str| {
        region
            .target_groups
            .get(tg_arn)
            .map_or(tg_arn.to_owned(), |tg| tg.name.clone())
    };
    let action = |actions: &[Action]| match actions.last() {
        Some(Action::Forward { target_groups, .. }) => {
            let groups: Vec<String> = target_groups
                .iter()
                .map(|g| format!("{} ({})", group_name(&g.target_group_arn), g.weight))
                .collect();
            format!("forward to {}", groups.join(", "))
        }
        Some(Action::Redirect(r)) => format!("redirect {}", r.status_code),
        Some(Action::FixedResponse(f)) => format!("fixed response {}", f.status_code),
        Some(Action::Authenticate(_) | Action::JwtValidation(_)) | None => "-".to_owned(),
    };
    // An authenticate or jwt-validation action runs first.
    let action = |actions: &[Action]| match actions.first() {
        Some(first) if !first.is_terminal() && actions.len() > 1 => {
            format!("{}, then {}", first.action_type(), action(actions))
        }
        _ => action(actions),
    };
    let listeners: Vec<Value> = region
        .listeners_of(arn)
        .map(|l| {
            let mut rules: Vec<Value> = region
                .rules_of(&l.arn)
                .iter()
                .map(|r| {
                    let conditions: Vec<String> = r.conditions.iter().map(describe).collect();
                    json!({
                        "priority": r.priority.to_string(),
                        "conditions": conditions.join("; "),
                        "action": action(&r.actions),
                    })
                })
                .collect();
            rules.push(json!({
                "priority": "default",
                "conditions": "",
                "action": action(&l.default_actions),
            }));
            json!({ "protocol": l.protocol.as_str(), "port": l.port, "rules": rules })
        })
        .collect();
    // Registration key → (address:port, zone), for the arrows.
    let mut targets_by_key = HashMap::new();
    let target_groups: Vec<Value> = region
        .target_groups_of(arn)
        .map(|tg| {
            // As traffic and checks go: an ALB-type target stands for each of its nodes.
            let targets: Vec<Value> = tg
                .targets
                .iter()
                .flat_map(|t| region.expand(t))
                .map(|t| {
                    let key = t.key(&tg.arn);
                    // A function has no address, and no health while its checks are off.
                    let address = match t.id {
                        TargetId::Lambda(_) => "function".to_owned(),
                        _ => format!("{}:{}", t.address, t.port),
                    };
                    targets_by_key
                        .insert(key.clone(), (address.clone(), t.availability_zone.clone()));
                    let overall = health.overall(&key);
                    let unchecked = !tg.health_check.enabled;
                    json!({
                        "id": t.id.to_string(),
                        "address": address,
                        "zone": t.availability_zone,
                        "health": if unchecked { "unavailable" } else { overall.map_or("initial", |h| h.state.as_str()) },
                        "reason": overall.and_then(|h| h.reason.as_ref()).map(|r| r.description()),
                    })
                })
                .collect();
            json!({
                "name": tg.name,
                "protocol": match tg.target_type {
                    TargetType::Lambda => "LAMBDA",
                    _ => tg.protocol.as_str(),
                },
                "targets": targets,
            })
        })
        .collect();
    let traffic = arrows(region, arn, sent, &targets_by_key);
    json!({
        "name": lb.name,
        "arn": lb.arn,
        "type": lb.kind.as_str(),
        "scheme": lb.scheme,
        "state": lb.state,
        "dns_name": lb.dns_name,
        "zones": zones,
        "listeners": listeners,
        "target_groups": target_groups,
        "traffic": traffic,
    })
}

/// Each node's requests to each target in the window, with the target's share of the node's.
fn arrows(
    region: &Region,
    arn: &str,
    sent: &Counts,
    targets_by_key: &HashMap<String, (String, String)>,
) -> Vec<Value> {
    let mut arrows = Vec::new();
    for node in region.nodes_of(arn) {
        // By target address: two groups may hold the same target.
        let mut to: BTreeMap<&str, u64> = BTreeMap::new();
        for ((node_id, key), n) in sent {
            if node_id == &node.id
                && let Some((address, _)) = targets_by_key.get(key)
            {
                *to.entry(address).or_default() += n;
            }
        }
        let total: u64 = to.values().sum();
        for (target, requests) in to {
            arrows.push(json!({
                "node": node.id,
                "node_ip": node.private_ipv4.to_string(),
                "zone": node.availability_zone,
                "target": target,
                "requests": requests,
                "share_percent": if total == 0 { 0.0 } else { requests as f64 * 100.0 / total as f64 },
            }));
        }
    }
    arrows
}
