//! The routing table: a snapshot compiled for the request path. Immutable once built; the
//! request path loads it once per request and never waits on anything to read it.
//!
//! It is keyed by what a socket is bound to (address, port, transport), and each entry is a
//! [`Listener`] of one kind: the binder accepts for every kind alike (admission, drain) and
//! hands the connection to that kind's server.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use elb_model::{FixedResponse, MtlsMode, Redirect};
use http::{HeaderName, HeaderValue};

use crate::access_log::NodeLog;
use crate::admission::Admission;
use crate::auth::{Guard, Providers};
use crate::binder::{BindKey, Transport};
use crate::gateway::flows::{Policy, Standing};
use crate::l7::desync::Mode as DesyncMode;
use crate::l7::rewrite::Rewrites;
use crate::l7::rules::Matcher;
use crate::metrics::{FlowMetrics, GatewayMetrics, NodeMetrics};
use crate::sticky::CookieSealer;
use crate::targets::{FlowTargets, HttpTargets};
use crate::upstream::Upstream;

/// The listeners by the socket they serve. Looked up for every connection, request and
/// datagram, by keys only the configuration makes: a fast hasher, not one that resists
/// flooding.
pub(crate) type Listeners = HashMap<BindKey, Listener, foldhash::fast::RandomState>;

/// Everything the request path needs, keyed by the socket a connection arrived on.
#[derive(Default)]
pub struct RoutingTable {
    pub revision: u64,
    pub(crate) listeners: Listeners,
    /// Gateway Load Balancer endpoints this host runs, by id: where each sends its packets.
    pub(crate) endpoints: HashMap<String, Arc<EndpointRoute>>,
}

impl RoutingTable {
    pub fn listener(&self, key: &BindKey) -> Option<&Listener> {
        self.listeners.get(key)
    }

    /// The HTTP or HTTPS listener on TCP `local`.
    pub fn http(&self, local: SocketAddr) -> Option<&Arc<HttpRoute>> {
        match self.listener(&BindKey::tcp(local))? {
            Listener::Http(route) => Some(route),
            Listener::Tcp(_) | Listener::Udp(_) | Listener::Geneve(_) => None,
        }
    }

    pub fn bind_keys(&self) -> impl Iterator<Item = BindKey> + '_ {
        self.listeners.keys().copied()
    }

    /// The route of the endpoint `id`, while this host runs it.
    pub fn endpoint(&self, id: &str) -> Option<&Arc<EndpointRoute>> {
        self.endpoints.get(id)
    }
}

/// One listener on one node, by the kind of server it needs. HTTP and HTTPS share a kind:
/// HTTPS is HTTP behind a handshake ([`HttpRoute::tls`]).
#[derive(Clone)]
pub enum Listener {
    Http(Arc<HttpRoute>),
    Tcp(Arc<TcpRoute>),
    Udp(Arc<UdpRoute>),
    /// A gateway's node: GENEVE from its appliances on UDP 6081.
    Geneve(Arc<GeneveRoute>),
}

impl Listener {
    /// Whether elbd itself answers what a client sends first (a request, a TLS ClientHello),
    /// rather than a target that may not.
    pub(crate) fn answers(&self) -> bool {
        match self {
            Self::Http(_) => true,
            Self::Tcp(route) => route.tls.is_some(),
            Self::Udp(_) | Self::Geneve(_) => false,
        }
    }

    pub fn door(&self) -> &Door {
        match self {
            Self::Http(route) => &route.door,
            Self::Tcp(route) => &route.door,
            Self::Udp(route) => &route.door,
            Self::Geneve(route) => &route.door,
        }
    }

    /// What the listener's socket takes.
    pub fn transport(&self) -> Transport {
        match self {
            Self::Http(_) | Self::Tcp(_) => Transport::Tcp,
            Self::Udp(_) => Transport::Udp,
            Self::Geneve(_) => Transport::Geneve,
        }
    }
}

/// A TCP or TLS listener (NLB) on one node: each connection is a flow to one target of its
/// group.
pub struct TcpRoute {
    pub door: Door,
    /// The node's flow metrics (AWS/NetworkELB), kept across snapshots.
    pub flows: Arc<FlowMetrics>,
    /// `tcp.idle_timeout.seconds`: a flow idle this long is closed with a reset.
    pub idle_timeout: Duration,
    /// TLS listeners: the configuration clients handshake with (certificates, policy, ALPN,
    /// mutual TLS).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Mutual TLS's identity filters: a verified client certificate none of them matches is
    /// not admitted. Empty: every verified one is.
    pub identity_filters: Vec<elb_model::IdentityFilter>,
    /// Where flows to targets leave from, unless the group preserves the client's: the node's
    /// private address, or for IPv6 targets its source NAT or IPv6 address ([`Node::source`]).
    ///
    /// [`Node::source`]: elb_model::Node::source
    pub source_ip: IpAddr,
    pub targets: Arc<FlowTargets>,
    /// TLS listeners of a load balancer that keeps access logs: where the node's entries go,
    /// and the listener's id they name.
    pub access_log: Option<(Arc<NodeLog>, String)>,
}

/// A UDP listener (NLB) on one node: each client address and port is a flow to one target
/// of its group. Flows idle out after AWS's fixed 120 s ([`crate::udp::IDLE_TIMEOUT`]).
pub struct UdpRoute {
    pub door: Door,
    /// The node's flow metrics, shared with its TCP listeners.
    pub flows: Arc<FlowMetrics>,
    /// Where flows leave from when the client's cannot be kept, as [`TcpRoute::source_ip`].
    pub source_ip: IpAddr,
    pub targets: Arc<FlowTargets>,
}

/// A gateway load balancer's node, where its appliances return packets (GENEVE on UDP 6081
/// of the node's address): for each endpoint it serves, by GENEVE id, what a returned
/// packet must carry to be let back in.
pub struct GeneveRoute {
    pub door: Door,
    pub endpoints: HashMap<u64, Arc<EndpointRoute>>,
    /// The node's metrics (AWS/GatewayELB), kept across snapshots.
    pub metrics: Arc<GatewayMetrics>,
}

/// A Gateway Load Balancer endpoint this host runs: its interface, the node its packets go
/// through, and the appliances that node sends them to.
pub struct EndpointRoute {
    /// `vpce-…`.
    pub id: String,
    /// The interface that stands for the endpoint (`gwlbe-` and 9 hex digits).
    pub interface: String,
    /// GENEVE options 1 and 2.
    pub endpoint_id: u64,
    pub attachment_id: u64,
    /// The gateway node's private address: packets leave from and return to port 6081 of it.
    /// `None` while the endpoint's service has no gateway in its zone (its packets are
    /// dropped).
    pub node_ip: Option<IpAddr>,
    /// The group's appliances the node may send to, with where each stands; empty when the
    /// gateway has no listener.
    pub appliances: Vec<(SocketAddr, Standing)>,
    pub policy: Policy,
    /// The flow hash's seed (the process's).
    pub seed: u64,
    /// The node's metrics.
    pub metrics: Arc<GatewayMetrics>,
}

/// What the binder checks and counts before any protocol code runs, for every kind of
/// listener.
#[derive(Clone)]
pub struct Door {
    pub listener_arn: String,
    /// Who may connect, from the load balancer's security groups.
    pub admission: Admission,
    /// The node's metrics (application load balancers'; network load balancers have none
    /// yet), kept across snapshots.
    pub metrics: Option<Arc<NodeMetrics>>,
}

/// An HTTP or HTTPS listener on one node.
pub struct HttpRoute {
    pub door: Door,
    pub port: u16,
    /// The load balancer's DNS name, the Host of HTTP/1.0 requests that have none.
    pub dns_name: String,
    pub http: HttpSettings,
    /// The listener's rules, by ascending priority, then its default action.
    pub rules: Vec<(Vec<Matcher>, Rule)>,
    pub default_action: RouteAction,
    /// The default rule's first action, when it has one before the one that answers.
    pub default_guard: Option<Arc<Guard>>,
    /// What the listener's authenticate and jwt-validation actions need; `None` when it has
    /// none.
    pub auth: Option<AuthContext>,
    pub(crate) upstream: Upstream,
    /// HTTPS listeners: the TLS configuration new connections handshake with.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Mutual TLS: what targets are told of client certificates.
    pub mtls: Option<MtlsMode>,
    /// Listener attributes: headers set on every response, and whether elbd's own responses
    /// keep `Server: awselb/2.0`.
    pub response_headers: Vec<(HeaderName, HeaderValue)>,
    pub server_header: bool,
    /// Seals and opens stickiness cookies; `None` only if the store has no key.
    pub sealer: Option<Arc<CookieSealer>>,
    /// Whether the HTTP/1.1 relay may take this listener's requests ([`HttpRoute::relay_serves`]).
    pub(crate) relayable: bool,
    /// Whether a rule has a header condition: only then does the relay build a header map.
    pub(crate) header_conditions: bool,
    /// Where the node's access log entries go, while the load balancer keeps them.
    pub access_log: Option<Arc<NodeLog>>,
    /// Where the node's connection log entries go, likewise.
    pub connection_log: Option<Arc<NodeLog>>,
}

impl HttpRoute {
    /// Whether the HTTP/1.1 relay does all this listener asks of the requests it takes: no
    /// mutual TLS, no authenticate or jwt-validation action, no headers to add to responses or to drop from requests, and every
    /// forward to plain HTTP/1.1 groups without stickiness. Redirects and fixed
    /// responses are left to the general path request by request.
    pub(crate) fn relay_serves(&self) -> bool {
        let plain = |action: &RouteAction| match action {
            RouteAction::Forward(forward) => {
                forward.group_stickiness_s.is_none()
                    && forward.groups.iter().all(|(set, _)| set.is_plain())
            }
            RouteAction::Redirect(_) | RouteAction::Fixed(_) => true,
        };
        self.mtls.is_none()
            && self.auth.is_none()
            && self.response_headers.is_empty()
            && !self.http.drop_invalid_headers
            && self.rules.iter().all(|(_, rule)| plain(&rule.action))
            && plain(&self.default_action)
    }

    /// `http` or `https`: X-Forwarded-Proto and `#{protocol}` in redirects.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }
}

/// A listener rule past its conditions: its priority, what it does, and its conditions as
/// written (for `elbd explain`; the request path uses the compiled matchers beside it).
pub struct Rule {
    pub priority: u16,
    /// Its authenticate or jwt-validation action, which runs before `action`.
    pub guard: Option<Arc<Guard>>,
    pub action: RouteAction,
    pub conditions: Vec<elb_model::Condition>,
    /// Its transforms, for the requests it forwards; `None` without any.
    pub(crate) rewrites: Option<Rewrites>,
}

/// What a listener's authenticate and jwt-validation actions share: the client towards
/// identity providers, and the key that signs the claims targets get (`None` if the store
/// has none).
#[derive(Clone)]
pub struct AuthContext {
    pub providers: Arc<Providers>,
    pub claims_key: Option<Arc<elb_tls::claims_key::ClaimsKey>>,
}

/// What a matched rule answers with.
pub enum RouteAction {
    Forward(Forward),
    Redirect(Redirect),
    Fixed(FixedResponse),
}

/// Target groups with their weights: a request goes to one of them in proportion.
pub struct Forward {
    /// Each group with the running total of the weights up to and including it.
    groups: Vec<(Arc<HttpTargets>, u32)>,
    /// Target group stickiness (AWSALBTG): how long a client keeps its group.
    pub group_stickiness_s: Option<u64>,
}

impl Forward {
    pub(crate) fn new(
        weighted: Vec<(Arc<HttpTargets>, u16)>,
        group_stickiness_s: Option<u64>,
    ) -> Self {
        let mut total = 0;
        let groups = weighted
            .into_iter()
            .map(|(set, weight)| {
                total += u32::from(weight);
                (set, total)
            })
            .collect();
        Self {
            groups,
            group_stickiness_s,
        }
    }

    /// Each group with its own weight.
    pub fn weights(&self) -> impl Iterator<Item = (&HttpTargets, u32)> {
        let mut previous = 0;
        self.groups.iter().map(move |(set, upto)| {
            let weight = upto - previous;
            previous = *upto;
            (set.as_ref(), weight)
        })
    }

    /// The group a group-stickiness cookie names, if the action still has it.
    pub fn group(&self, group_id: &str) -> Option<&HttpTargets> {
        self.groups
            .iter()
            .map(|(set, _)| set.as_ref())
            .find(|set| set.group_id == group_id)
    }

    /// The group for a uniform `draw` in `0..1`: by weight; `None` when every weight is 0.
    pub fn pick(&self, draw: f64) -> Option<&HttpTargets> {
        let total = self.groups.last()?.1;
        if total == 0 {
            return None;
        }
        let point = (draw * f64::from(total)) as u32;
        self.groups
            .iter()
            .find(|(_, upto)| point < *upto)
            .map(|(set, _)| set.as_ref())
    }
}

/// The load balancer attributes the HTTP path acts on.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// `idle_timeout.timeout_seconds`: idle client connections, and waiting for a target.
    pub idle_timeout: Duration,
    /// `client_keep_alive.seconds`: a client connection older than this is closed after the
    /// request it is on (HTTP/1 `Connection: close`, HTTP/2 GOAWAY).
    pub client_keep_alive: Duration,
    /// How long a client may take to send a request head (`--header-timeout-seconds`).
    pub header_timeout: Duration,
    pub xff: XffMode,
    pub xff_client_port: bool,
    pub preserve_host: bool,
    pub http2: bool,
    /// `routing.http.drop_invalid_header_fields.enabled`: drop request headers whose names
    /// are not letters, digits and hyphens.
    pub drop_invalid_headers: bool,
    /// `routing.http.desync_mitigation_mode`.
    pub desync: DesyncMode,
}

/// `routing.http.xff_header_processing.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XffMode {
    Append,
    Preserve,
    Remove,
}
