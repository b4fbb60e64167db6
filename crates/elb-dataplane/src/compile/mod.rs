//! Snapshot + health → [`RoutingTable`], and the runtime state (round-robin cursors,
//! outstanding-request counters, connection pools, refusal counters) that outlives any one
//! table. Only the control path runs this.
//!
//! - `gwlb`: gateway load balancers' GENEVE listeners and the endpoints this host runs.
//! - `http`: HTTP and HTTPS listeners (rules, HTTP target groups).
//! - `nlb`: network load balancers' listeners, and the terminators that reset a target's flows.
//! - `targets`: which registered targets a node sends a group's traffic to (any protocol).
//! - `tls`: the TLS configurations of HTTPS and TLS listeners.

mod gwlb;
mod http;
mod nlb;
mod targets;
mod tls;

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use elb_model::{
    HealthView, Listener as ModelListener, ListenerProtocol, Node, Region, ServerCertificate, State,
};
use elb_tls::claims_key::ClaimsKey;
use elb_tls::server::Resumption;
use tracing::warn;

use crate::access_log::{LogStream, NodeLog, NodeLogs};
use crate::admission::Admission;
use crate::anomaly::Watched;
use crate::binder::BindKey;
use crate::metrics::{
    FlowMetrics, GatewayMetrics, GroupMetrics, NodeMetrics, Registry, Series, dimension,
};
use crate::pool::TargetPool;
use crate::sticky::CookieSealer;
use crate::table::{Door, Listener, Listeners, RoutingTable};
use crate::targets::{TargetLoad, Traffic};
use crate::upstream::Upstream;

/// State that must survive snapshot swaps, keyed by stable keys.
pub(crate) struct Runtime {
    kept: Kept,
    /// Where `/metrics` reads the series the current table counts in.
    registry: Arc<Registry>,
    /// The seed of every NLB group's flow hash.
    flow_seed: u64,
    /// `--transparent-client-ip`: keep client addresses this host lacks.
    transparent: bool,
    /// `--header-timeout-seconds`, for every HTTP listener.
    header_timeout: std::time::Duration,
    /// Session tickets and cache, shared by every HTTPS listener for as long as elbd runs.
    resumption: Option<Resumption>,
    /// The stickiness cookie key (hex) and its sealer.
    sealer: Option<(String, Arc<CookieSealer>)>,
    /// Gateway nodes' sockets and endpoints' interfaces.
    gateway: Arc<crate::gateway::Shared>,
    /// Where the control path takes log entries from.
    node_logs: Arc<NodeLogs>,
    /// Where the console reads what each node sent each target.
    traffic: Arc<Traffic>,
    /// Where functions of `lambda` groups are invoked.
    lambda: Option<Arc<elb_lambda::Invoker>>,
    /// How authenticate actions reach identity providers.
    providers: Arc<crate::auth::Providers>,
    /// The claims key (PEM) and the key made of it.
    claims_key: Option<(String, Arc<ClaimsKey>)>,
}

/// What snapshots hand on to the next. Each compile fills a new one with what it uses, which
/// then replaces the old: whatever no route uses any more is forgotten (pools of removed
/// nodes close with them).
#[derive(Default)]
struct Kept {
    /// (node id, target group ARN) → round-robin cursor.
    cursors: HashMap<(String, String), Arc<AtomicUsize>>,
    /// (node id, registration key) → what the node has sent the target.
    loads: HashMap<(String, String), Arc<TargetLoad>>,
    /// (node id, target group ARN) → a `weighted_random` group, for anomaly detection.
    watched: HashMap<(String, String), Watched>,
    /// (node id, registration key, address) → the node's keep-alive connections to the target.
    pools: HashMap<(String, String, SocketAddr), Arc<TargetPool>>,
    /// (node's private address, its IPv6 one) → its clients for TLS and HTTP/2 targets.
    upstreams: HashMap<(Ipv4Addr, Option<Ipv6Addr>), Upstream>,
    /// (load balancer ARN, zone) → the node's metrics.
    nodes: HashMap<(String, String), Arc<NodeMetrics>>,
    /// (load balancer ARN, target group ARN, zone) → the group's metrics in that zone.
    groups: HashMap<(String, String, String), Arc<GroupMetrics>>,
    /// (network load balancer ARN, zone) → the node's flow metrics.
    flows: HashMap<(String, String), Arc<FlowMetrics>>,
    /// (gateway load balancer ARN, zone) → the node's metrics.
    gateways: HashMap<(String, String), Arc<GatewayMetrics>>,
    /// What an HTTPS listener's configuration was made of → that configuration, so that a
    /// snapshot that changes nothing of it keeps it (and its parsed keys).
    tls: HashMap<String, Arc<rustls::ServerConfig>>,
    /// (node id, registration key) → what resets the node's flows to the target.
    terminators: HashMap<(String, String), Arc<nlb::Terminator>>,
    /// (load balancer ARN, node address, kind) → the node's log, while the load balancer
    /// keeps it: entries not yet taken survive a snapshot.
    node_logs: HashMap<LogStream, Arc<NodeLog>>,
}

impl Kept {
    /// The metrics series this compile uses, by CloudWatch's dimensions.
    fn series(&self) -> Series {
        let nodes = self
            .nodes
            .iter()
            .map(|((lb, zone), m)| ((dimension(lb), zone.clone()), m.clone()))
            .collect();
        let groups = self
            .groups
            .iter()
            .map(|((lb, tg, zone), g)| ((dimension(lb), dimension(tg), zone.clone()), g.clone()))
            .collect();
        let flows = self
            .flows
            .iter()
            .map(|((lb, zone), f)| ((dimension(lb), zone.clone()), f.clone()))
            .collect();
        let gateways = self
            .gateways
            .iter()
            .map(|((lb, zone), g)| ((dimension(lb), zone.clone()), g.clone()))
            .collect();
        Series {
            nodes,
            groups,
            flows,
            gateways,
        }
    }
}

/// The value kept under `key`, from `old` if it had one, recorded as used in `used`.
fn keep<K: std::hash::Hash + Eq + Clone, V: Clone>(
    old: &HashMap<K, V>,
    used: &mut HashMap<K, V>,
    key: K,
    new: impl FnOnce() -> V,
) -> V {
    used.entry(key)
        .or_insert_with_key(|k| old.get(k).cloned().unwrap_or_else(new))
        .clone()
}

/// What one compile reads, besides the listener at hand.
struct Inputs<'a> {
    state: &'a Region,
    /// The account's IAM server certificates.
    iam: &'a BTreeMap<String, ServerCertificate>,
    health: &'a HealthView,
    sealer: &'a Option<Arc<CookieSealer>>,
    claims_key: &'a Option<Arc<ClaimsKey>>,
}

impl Runtime {
    pub(crate) fn new(options: &crate::Options) -> Self {
        Self {
            kept: Kept::default(),
            registry: Arc::default(),
            flow_seed: options.flow_seed,
            lambda: options.lambda.clone(),
            providers: options.providers.clone(),
            claims_key: None,
            transparent: options.transparent_client_ip,
            header_timeout: options.header_timeout,
            resumption: None,
            sealer: None,
            gateway: Arc::default(),
            node_logs: Arc::default(),
            traffic: Arc::default(),
        }
    }

    /// What the gateway's tasks share: the endpoint manager needs it too.
    pub(crate) fn gateway(&self) -> Arc<crate::gateway::Shared> {
        self.gateway.clone()
    }

    /// Compiles `state` and `health`: for every node of every load balancer, one entry per
    /// listener, with what its kind of server needs and the targets that node may send to.
    pub(crate) fn compile(
        &mut self,
        state: &State,
        health: &HealthView,
        revision: u64,
    ) -> RoutingTable {
        let mut listeners = Listeners::default();
        let mut endpoints = HashMap::new();
        let mut used = Kept::default();
        let sealer = self.sealer(&state.secrets.cookie_key);
        let claims_key = self.claims_key(&state.secrets.claims_key_pem);
        for region in state.regions.values() {
            let inputs = Inputs {
                state: region,
                iam: &state.server_certificates,
                health,
                sealer: &sealer,
                claims_key: &claims_key,
            };
            let region_endpoints = self.endpoint_routes(&inputs, &mut used);
            for listener in region.listeners.values() {
                let lb = &region.load_balancers[&listener.load_balancer_arn];
                let door = Door {
                    listener_arn: listener.arn.clone(),
                    admission: Admission::for_listener(region, lb, "tcp", listener.port),
                    metrics: None,
                };
                let per_node = match listener.protocol {
                    ListenerProtocol::Http | ListenerProtocol::Https => {
                        self.http_listener(&inputs, lb, listener, door, &mut used)
                    }
                    ListenerProtocol::Tcp
                    | ListenerProtocol::Tls
                    | ListenerProtocol::Udp
                    | ListenerProtocol::TcpUdp => {
                        self.nlb_listener(&inputs, lb, listener, door, &mut used)
                    }
                    ListenerProtocol::Geneve => {
                        self.gateway_listener(&inputs, lb, door, &region_endpoints, &mut used)
                    }
                };
                for (node, served) in per_node {
                    insert(&mut listeners, node, listener, served);
                }
            }
            endpoints.extend(region_endpoints);
        }
        nlb::forget(&self.kept, &used, state);
        self.registry.replace(used.series());
        let loads = used.loads.iter();
        self.traffic.replace(
            loads
                .map(|(key, load)| (key.clone(), load.clone()))
                .collect(),
        );
        let logs = used.node_logs.iter();
        self.node_logs.replace(
            logs.map(|(stream, log)| (stream.clone(), log.clone()))
                .collect(),
        );
        self.kept = used;
        RoutingTable {
            revision,
            listeners,
            endpoints,
        }
    }

    pub(crate) fn registry(&self) -> Arc<Registry> {
        self.registry.clone()
    }

    pub(crate) fn node_logs(&self) -> Arc<NodeLogs> {
        self.node_logs.clone()
    }

    pub(crate) fn traffic(&self) -> Arc<Traffic> {
        self.traffic.clone()
    }

    /// The `weighted_random` groups of the last compile, as each node sends to them.
    pub(crate) fn watched(&self) -> impl Iterator<Item = &Watched> {
        self.kept.watched.values()
    }

    fn sealer(&mut self, key: &str) -> Option<Arc<CookieSealer>> {
        if self.sealer.as_ref().is_none_or(|(k, _)| k != key) {
            self.sealer = CookieSealer::from_hex(key).map(|s| (key.to_owned(), Arc::new(s)));
        }
        self.sealer.as_ref().map(|(_, s)| s.clone())
    }

    fn claims_key(&mut self, pem: &str) -> Option<Arc<ClaimsKey>> {
        if pem.is_empty() {
            return None;
        }
        if self.claims_key.as_ref().is_none_or(|(k, _)| k != pem) {
            self.claims_key = ClaimsKey::from_pem(pem)
                .inspect_err(|e| warn!(error = %e, "the store's claims key is unusable"))
                .ok()
                .map(|key| (pem.to_owned(), Arc::new(key)));
        }
        self.claims_key.as_ref().map(|(_, k)| k.clone())
    }
}

/// Adds `served` on each of the node's addresses (private; public and IPv6 where it has them). Node
/// addresses are allocated apart across regions (`State::in_region`), so an address already
/// taken means a damaged store: the first listener keeps it and the clash is logged.
fn insert(listeners: &mut Listeners, node: &Node, listener: &ModelListener, served: Listener) {
    for ip in node.addresses() {
        let key = BindKey {
            addr: SocketAddr::new(ip, listener.port),
            transport: served.transport(),
        };
        match listeners.entry(key) {
            Entry::Vacant(slot) => {
                slot.insert(served.clone());
            }
            Entry::Occupied(taken) => warn!(
                addr = %key.addr,
                listener = %listener.arn,
                serving = %taken.get().door().listener_arn,
                "address already served by another region's listener; not served"
            ),
        }
    }
}
