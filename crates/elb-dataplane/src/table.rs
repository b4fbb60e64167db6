//! The routing table: a snapshot compiled for the request path, and the runtime state
//! (round-robin cursors, connection pools) that outlives any one table.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::time::Duration;

use elb_model::health::below_minimum;
use elb_model::{
    HealthState, HealthView, ListenerProtocol, Node, Registration, State, TargetGroup,
};

use crate::admission::Admission;
use crate::binder::{BindKey, Transport};
use crate::select;
use crate::upstream::Upstream;

/// Everything the request path needs, keyed by the local address a connection arrived on.
/// Immutable once built.
#[derive(Default)]
pub struct RoutingTable {
    pub revision: u64,
    routes: HashMap<SocketAddr, Arc<Route>>,
}

impl RoutingTable {
    pub fn route(&self, local: SocketAddr) -> Option<&Arc<Route>> {
        self.routes.get(&local)
    }

    pub fn bind_keys(&self) -> impl Iterator<Item = BindKey> + '_ {
        self.routes.keys().map(|&addr| BindKey {
            addr,
            transport: Transport::Tcp,
        })
    }
}

/// One listener on one node.
pub struct Route {
    pub listener_arn: String,
    /// Who may connect, from the load balancer's security groups.
    pub admission: Admission,
    /// Connections the security groups refused on this load balancer (AWS's
    /// `RejectedConnectionCount`), kept across snapshots.
    pub refused: Arc<AtomicU64>,
    pub port: u16,
    /// The load balancer's DNS name, the Host of HTTP/1.0 requests that have none.
    pub dns_name: String,
    pub http: HttpSettings,
    pub targets: Arc<TargetSet>,
    pub(crate) upstream: Upstream,
}

/// The load balancer attributes the HTTP path acts on.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// `idle_timeout.timeout_seconds`: idle client connections, and waiting for a target.
    pub idle_timeout: Duration,
    pub xff: XffMode,
    pub xff_client_port: bool,
    pub preserve_host: bool,
    pub http2: bool,
}

/// `routing.http.xff_header_processing.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XffMode {
    Append,
    Preserve,
    Remove,
}

/// The targets one node may send to for one target group.
pub struct TargetSet {
    pub target_group_arn: String,
    /// How many registered targets can take traffic at all (503 when none): instance targets
    /// count only while their instance runs.
    pub registered: usize,
    pub endpoints: Vec<Endpoint>,
    cursor: Arc<AtomicUsize>,
}

impl TargetSet {
    /// The next target, round robin; a target in slow start is taken with the probability of
    /// its share so far, else passed over; the clock is read only then. `None` when the node
    /// has none to use.
    pub fn next(&self, now_ms: impl Fn() -> u64) -> Option<&Endpoint> {
        let mut pick = None;
        for _ in 0..self.endpoints.len() {
            let endpoint =
                &self.endpoints[select::round_robin(&self.cursor, self.endpoints.len())?];
            pick = Some(endpoint);
            match endpoint.ramp {
                Some(ramp) if fastrand::f64() >= ramp.share(now_ms()) => continue,
                _ => break,
            }
        }
        pick
    }
}

#[derive(Debug, Clone)]
pub struct Endpoint {
    pub addr: SocketAddr,
    /// `addr` as a URI authority, made once per snapshot rather than per request.
    pub authority: http::uri::Authority,
    /// Set while the target is in its slow-start window.
    pub ramp: Option<select::Ramp>,
}

/// State of the data plane that must survive snapshot swaps. Only the control path (apply)
/// touches it.
#[derive(Default)]
pub(crate) struct Runtime {
    cursors: HashMap<String, Arc<AtomicUsize>>,
    upstreams: HashMap<IpAddr, Upstream>,
    refused: HashMap<String, Arc<AtomicU64>>,
}

impl Runtime {
    /// Compiles `state` and `health` into a table: for every node of every load balancer, one
    /// route per HTTP listener, with the targets that node may send to.
    pub(crate) fn compile(
        &mut self,
        state: &State,
        health: &HealthView,
        revision: u64,
    ) -> RoutingTable {
        let mut routes = HashMap::new();
        let mut cursors = HashMap::new();
        let mut upstreams = HashMap::new();
        let mut refused_counts = HashMap::new();
        for listener in state.listeners.values() {
            if listener.protocol != ListenerProtocol::Http {
                continue;
            }
            let lb = &state.load_balancers[&listener.load_balancer_arn];
            let Some(tg) = listener
                .forward_target_group()
                .and_then(|arn| state.target_groups.get(arn))
            else {
                continue;
            };
            let in_service = tg.targets.iter().filter(|t| state.in_service(t)).count();
            let http = http_settings(&lb.attributes);
            let admission = Admission::for_listener(state, lb, listener.port);
            let refused = self.refused.get(&lb.arn).cloned().unwrap_or_default();
            refused_counts.insert(lb.arn.clone(), refused.clone());
            for node in state.nodes_of(&lb.arn) {
                let node_ip = IpAddr::V4(node.private_ipv4);
                let cursor_key = format!("{}|{}", node.id, tg.arn);
                let cursor = self.cursors.get(&cursor_key).cloned().unwrap_or_default();
                cursors.insert(cursor_key, cursor.clone());
                let upstream = self
                    .upstreams
                    .get(&node_ip)
                    .cloned()
                    .unwrap_or_else(|| Upstream::new(node_ip));
                upstreams.insert(node_ip, upstream.clone());
                let route = Route {
                    admission: admission.clone(),
                    refused: refused.clone(),
                    listener_arn: listener.arn.clone(),
                    port: listener.port,
                    dns_name: lb.dns_name.clone(),
                    http: http.clone(),
                    targets: Arc::new(TargetSet {
                        target_group_arn: tg.arn.clone(),
                        registered: in_service,
                        endpoints: endpoints(state, node, tg, health),
                        cursor,
                    }),
                    upstream,
                };
                // The node listens on its private address and, when it has one, its public one.
                let route = Arc::new(route);
                for ip in node.addresses() {
                    routes.insert(
                        SocketAddr::new(IpAddr::V4(ip), listener.port),
                        route.clone(),
                    );
                }
            }
        }
        // Forget what no listener uses any more; pools of removed nodes close with them.
        self.cursors = cursors;
        self.upstreams = upstreams;
        self.refused = refused_counts;
        RoutingTable { revision, routes }
    }
}

/// The targets `node` sends `tg`'s requests to: those in reach (its zone, or all with
/// cross-zone) that its health checks find healthy, or all in reach when too few are healthy
/// (fail-open, per `target_group_health.unhealthy_state_routing.*`).
fn endpoints(state: &State, node: &Node, tg: &TargetGroup, health: &HealthView) -> Vec<Endpoint> {
    let in_reach: Vec<(&Registration, String)> = state
        .in_reach(node, tg)
        .map(|t| (t, t.key(&tg.arn)))
        .collect();
    let healthy_since = |key: &str| {
        health
            .get(&node.id, key)
            .filter(|h| h.state == HealthState::Healthy)
            .map(|h| h.healthy_since_ms.unwrap_or(0))
    };
    let healthy = in_reach
        .iter()
        .filter(|(_, key)| healthy_since(key).is_some())
        .count();
    let attrs = &tg.attributes;
    let count =
        attrs.int("target_group_health.unhealthy_state_routing.minimum_healthy_targets.count");
    let percent =
        attrs.int("target_group_health.unhealthy_state_routing.minimum_healthy_targets.percentage");
    // Too few healthy: route to every target in reach, healthy or not.
    let fail_open = !in_reach.is_empty() && below_minimum(healthy, in_reach.len(), count, percent);
    let slow_start_ms = attrs.int("slow_start.duration_seconds").unwrap_or(0) * 1000;
    in_reach
        .into_iter()
        .filter_map(|(t, key)| {
            let since = healthy_since(&key);
            if since.is_none() && !fail_open {
                return None;
            }
            let addr = SocketAddr::new(t.address, t.port);
            Some(Endpoint {
                addr,
                authority: addr
                    .to_string()
                    .parse()
                    .expect("a socket address is an authority"),
                ramp: since
                    .filter(|_| slow_start_ms > 0 && !fail_open)
                    .map(|since_ms| select::Ramp {
                        since_ms,
                        duration_ms: slow_start_ms,
                    }),
            })
        })
        .collect()
}

fn http_settings(attrs: &elb_model::Attributes) -> HttpSettings {
    HttpSettings {
        idle_timeout: Duration::from_secs(attrs.int("idle_timeout.timeout_seconds").unwrap_or(60)),
        xff: match attrs.get("routing.http.xff_header_processing.mode") {
            Some("preserve") => XffMode::Preserve,
            Some("remove") => XffMode::Remove,
            _ => XffMode::Append,
        },
        xff_client_port: attrs.flag("routing.http.xff_client_port.enabled"),
        preserve_host: attrs.flag("routing.http.preserve_host_header.enabled"),
        http2: attrs.get("routing.http2.enabled") != Some("false"),
    }
}
