//! The targets one node sends one target group's traffic to: a protocol-neutral set, with
//! each protocol's part beside it. HTTP groups pick by round robin, least outstanding
//! requests, or weighted random (by the weights anomaly mitigation sets), with slow start on
//! top.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use elb_model::ProtocolVersion;

use tokio::sync::watch;

use crate::anomaly::{self, Counts};
use crate::flow::{self, Flow};
use crate::metrics::GroupMetrics;
use crate::pool::TargetPool;
use crate::select;
use crate::sticky::Stickiness;

/// Targets a request is sent past when they refuse its connection, as NGINX's
/// `proxy_next_upstream error` does (a target that does not answer a connect at all is not
/// passed over: each would cost the 10 s connect timeout).
pub(crate) const REFUSALS: usize = 2;

/// `load_balancing.algorithm.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    RoundRobin,
    LeastOutstandingRequests,
    WeightedRandom,
}

impl Algorithm {
    pub fn from_attribute(value: Option<&str>) -> Self {
        match value {
            Some("least_outstanding_requests") => Self::LeastOutstandingRequests,
            Some("weighted_random") => Self::WeightedRandom,
            _ => Self::RoundRobin,
        }
    }
}

/// The targets one node sends one target group's traffic to, whatever the protocol: what
/// every kind of listener needs of a group. `P` is the protocol's part: how it picks among
/// them, and what it keeps per target ([`Protocol::Endpoint`]).
pub struct TargetSet<P: Protocol> {
    /// Shared: access log entries name it.
    pub target_group_arn: Arc<str>,
    /// The last part of the ARN: what stickiness cookies name the group by.
    pub group_id: String,
    /// How many registered targets can take traffic at all (503 when none): instance targets
    /// count only while their instance runs.
    pub registered: usize,
    pub endpoints: Vec<Endpoint<P::Endpoint>>,
    pub proto: P,
}

/// What a protocol keeps beside the neutral part of a target set and of each target.
pub trait Protocol {
    type Endpoint;
}

pub struct Endpoint<E> {
    pub addr: SocketAddr,
    /// What this node has sent the target; kept across snapshots.
    pub(crate) load: Arc<TargetLoad>,
    pub proto: E,
}

/// What a node has sent one target (requests, or for flows connections tried).
#[derive(Debug)]
pub struct TargetLoad {
    /// Not ended yet: least outstanding requests reads it.
    outstanding: AtomicUsize,
    /// Ever: the console's shares of a node's traffic.
    sent: AtomicU64,
    /// Ever, of `sent`: answered 5XX, or not reached or not answering (anomaly detection).
    failed: AtomicU64,
    /// Out of [`anomaly::FULL`]: less while anomaly mitigation holds the target back.
    weight: AtomicU32,
}

impl Default for TargetLoad {
    fn default() -> Self {
        Self {
            outstanding: AtomicUsize::new(0),
            sent: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            weight: AtomicU32::new(anomaly::FULL),
        }
    }
}

impl TargetLoad {
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    pub(crate) fn outstanding(&self) -> usize {
        self.outstanding.load(Ordering::Relaxed)
    }

    /// Counts one of the requests sent as failed by the target.
    pub(crate) fn count_failure(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn counts(&self) -> Counts {
        Counts {
            sent: self.sent(),
            failed: self.failed.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn weight(&self) -> u32 {
        self.weight.load(Ordering::Relaxed)
    }

    pub(crate) fn set_weight(&self, weight: u32) {
        self.weight.store(weight, Ordering::Relaxed);
    }
}

/// What every node of the current table has sent each target, by (node id, registration
/// key): where the console reads its shares.
#[derive(Default)]
pub struct Traffic(Mutex<Vec<(NodeTarget, Arc<TargetLoad>)>>);

/// (node id, registration key).
pub type NodeTarget = (String, String);

impl Traffic {
    pub(crate) fn replace(&self, loads: Vec<(NodeTarget, Arc<TargetLoad>)>) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = loads;
    }

    /// Requests (or connections) sent so far, by (node id, registration key).
    pub fn sent(&self) -> Vec<(NodeTarget, u64)> {
        let loads = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        loads
            .iter()
            .map(|(key, load)| (key.clone(), load.sent()))
            .collect()
    }
}

/// Counts a request as outstanding on its target until dropped.
pub struct InFlight(Arc<TargetLoad>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.outstanding.fetch_sub(1, Ordering::Relaxed);
    }
}

fn take<E>(e: &Endpoint<E>) -> (&Endpoint<E>, InFlight) {
    e.load.outstanding.fetch_add(1, Ordering::Relaxed);
    e.load.sent.fetch_add(1, Ordering::Relaxed);
    (e, InFlight(e.load.clone()))
}

/// An HTTP or HTTPS target group's part: stickiness, the way to its targets, and the
/// balancing algorithm.
pub struct Http {
    pub stickiness: Stickiness,
    /// HTTPS target group: requests go to targets over TLS.
    pub tls: bool,
    /// HTTP/1.1, HTTP/2 or gRPC to targets, and which requests the group takes.
    pub version: ProtocolVersion,
    pub(crate) algorithm: Algorithm,
    pub(crate) cursor: Arc<AtomicUsize>,
    /// The group's metrics in the node's zone, kept across snapshots.
    pub metrics: Arc<GroupMetrics>,
    pub eligibility: Eligibility,
    /// A `lambda` group's function: its requests are invoked, not sent to addresses.
    pub function: Option<Arc<Function>>,
}

/// A `lambda` group's registered function and how it is invoked.
pub struct Function {
    pub arn: elb_model::FunctionArn,
    /// `lambda.multi_value_headers.enabled`.
    pub multi_value: bool,
    /// `None` when elbd has no Lambda endpoint: its requests fail.
    pub invoker: Option<Arc<elb_lambda::Invoker>>,
}

/// Which of a group's targets a node may send to, for `elbd explain`: the rest, and why.
#[derive(Debug, Clone, Default)]
pub struct Eligibility {
    /// Too few targets are healthy: every target in reach takes traffic.
    pub fail_open: bool,
    pub passed_over: Vec<PassedOver>,
}

/// A registered target a node does not send to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassedOver {
    pub addr: SocketAddr,
    pub zone: String,
    pub why: &'static str,
}

impl PassedOver {
    pub(crate) const NOT_IN_SERVICE: &str =
        "not in service (draining, or its instance is not running)";
    pub(crate) const OTHER_ZONE: &str = "in another zone, and cross-zone load balancing is off";
    pub(crate) const UNHEALTHY: &str = "not healthy by this node's checks";
    pub(crate) const EGRESS: &str =
        "the load balancer's security groups do not let the node reach it";

    pub(crate) fn of(target: &elb_model::Registration, why: &'static str) -> Self {
        Self {
            addr: SocketAddr::new(target.address, target.port),
            zone: target.availability_zone.clone(),
            why,
        }
    }
}

/// An HTTP target's part.
pub struct HttpEndpoint {
    /// The address as a URI authority, made once per snapshot rather than per request.
    pub authority: http::uri::Authority,
    /// Set while the target is in its slow-start window.
    pub ramp: Option<select::Ramp>,
    /// This node's keep-alive HTTP/1.1 connections to the target; kept across snapshots.
    pub(crate) pool: Arc<TargetPool>,
}

impl Protocol for Http {
    type Endpoint = HttpEndpoint;
}

pub type HttpTargets = TargetSet<Http>;

/// A flow-hashed group's part (NLB: TCP and UDP): how flows are hashed to targets.
pub struct Flows {
    /// The flow hash's seed, the same for every node of this process.
    pub seed: u64,
    /// `stickiness.type=source_ip`: the hash covers the client's address only.
    pub source_ip_sticky: bool,
    /// `preserve_client_ip.enabled`: flows to targets leave from the client's address.
    pub preserve_client_ip: bool,
    /// elbd runs with `--transparent-client-ip`: client addresses this host lacks are kept
    /// too, with their ports (`dial::Source`).
    pub transparent: bool,
    /// `proxy_protocol_v2.enabled`: each flow to a target starts with a PROXY v2 header.
    pub proxy_protocol: bool,
    /// TLS groups: flows are re-encrypted to the target.
    pub tls: bool,
}

/// A flow-hashed target's part.
pub struct FlowEndpoint {
    /// Turns `true` when the target's open flows must be reset (it turned unhealthy, or its
    /// deregistration delay ended, as the group's attributes ask).
    pub cut: watch::Receiver<bool>,
}

impl Protocol for Flows {
    type Endpoint = FlowEndpoint;
}

pub type FlowTargets = TargetSet<Flows>;

impl TargetSet<Flows> {
    /// The target for `flow` by the flow hash, and the others in the order to try them if it
    /// cannot be reached; counted as outstanding while the returned guard lives.
    pub fn for_flow(
        &self,
        flow: &Flow,
    ) -> impl Iterator<Item = (&Endpoint<FlowEndpoint>, InFlight)> {
        let hash = flow.hash(self.proto.seed, self.proto.source_ip_sticky);
        // Every connection asks for its own target: found without sorting or allocating.
        // The others are ranked only when it cannot be reached.
        let first = flow::first(hash, self.endpoints.iter().map(|e| e.addr));
        let mut others: Option<std::vec::IntoIter<usize>> = None;
        let rest = std::iter::from_fn(move || {
            let others = others.get_or_insert_with(|| {
                let addrs: Vec<SocketAddr> = self.endpoints.iter().map(|e| e.addr).collect();
                flow::ranked(hash, &addrs).into_iter()
            });
            others.find(|&i| Some(i) != first)
        });
        first
            .into_iter()
            .chain(rest)
            .map(|i| take(&self.endpoints[i]))
    }
}

impl TargetSet<Http> {
    /// HTTP/1.1 in cleartext, no stickiness, no function: what the relay forwards to.
    pub(crate) fn is_plain(&self) -> bool {
        let http = &self.proto;
        !http.tls
            && http.version == ProtocolVersion::Http1
            && http.stickiness == Stickiness::Off
            && http.function.is_none()
    }

    /// The next target by the group's algorithm; a target in slow start is taken with the
    /// probability of its share so far, else passed over (the clock is read only then).
    /// `None` when the node has none to use.
    pub fn next(&self, now_ms: impl Fn() -> u64) -> Option<(&Endpoint<HttpEndpoint>, InFlight)> {
        let n = self.endpoints.len();
        let http = &self.proto;
        let mut pick = None;
        for _ in 0..n {
            let i = match http.algorithm {
                Algorithm::RoundRobin => select::round_robin(&http.cursor, n)?,
                Algorithm::WeightedRandom => {
                    let weights = self.endpoints.iter().map(|e| e.load.weight());
                    select::weighted_random(weights, fastrand::u64(..))?
                }
                Algorithm::LeastOutstandingRequests => {
                    let outstanding: Vec<usize> = self
                        .endpoints
                        .iter()
                        .map(|e| e.load.outstanding())
                        .collect();
                    select::least_outstanding(&outstanding, &http.cursor)?
                }
            };
            let endpoint = &self.endpoints[i];
            pick = Some(endpoint);
            match endpoint.proto.ramp {
                Some(ramp) if fastrand::f64() >= ramp.share(now_ms()) => continue,
                _ => break,
            }
        }
        pick.map(take)
    }

    /// A target other than those of `refused` (which refused a connection), from a random
    /// place in the list: after a refusal, spreading matters more than the algorithm. A
    /// request is passed on this way past at most `REFUSALS` targets.
    pub fn other_than(
        &self,
        refused: &[SocketAddr],
    ) -> Option<(&Endpoint<HttpEndpoint>, InFlight)> {
        let n = self.endpoints.len();
        let start = fastrand::usize(..n.max(1));
        (0..n)
            .map(|k| &self.endpoints[(start + k) % n])
            .find(|e| !refused.contains(&e.addr))
            .map(take)
    }

    /// The target at `addr`, if this node may still send to it (a sticky target that was
    /// deregistered or turned unhealthy is not here).
    pub fn endpoint(&self, addr: SocketAddr) -> Option<(&Endpoint<HttpEndpoint>, InFlight)> {
        self.endpoints.iter().find(|e| e.addr == addr).map(take)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: u64 = 7;

    fn flow_set(addrs: &[SocketAddr]) -> FlowTargets {
        let endpoint = |addr| Endpoint {
            addr,
            load: Arc::default(),
            proto: FlowEndpoint {
                cut: watch::channel(false).1,
            },
        };
        TargetSet {
            target_group_arn: Arc::from("arn:test"),
            group_id: String::new(),
            registered: addrs.len(),
            endpoints: addrs.iter().copied().map(endpoint).collect(),
            proto: Flows {
                seed: SEED,
                source_ip_sticky: false,
                preserve_client_ip: false,
                transparent: false,
                proxy_protocol: false,
                tls: false,
            },
        }
    }

    #[test]
    fn a_flow_tries_the_targets_in_the_ranking_order() {
        // Up to six targets, the last two repeating addresses: tied scores too.
        for n in 0..=6u8 {
            let addrs: Vec<SocketAddr> = (0..n)
                .map(|i| SocketAddr::from(([127, 0, 60, 1 + i % 4], 9000)))
                .collect();
            let set = flow_set(&addrs);
            for port in 40_000..40_100 {
                let flow = Flow {
                    protocol: flow::TCP,
                    source: SocketAddr::from(([127, 0, 0, 9], port)),
                    destination: SocketAddr::from(([127, 0, 0, 1], 80)),
                };
                let tried: Vec<usize> = set
                    .for_flow(&flow)
                    .map(|(e, _)| set.endpoints.iter().position(|x| std::ptr::eq(x, e)))
                    .map(Option::unwrap)
                    .collect();
                assert_eq!(tried, flow::ranked(flow.hash(SEED, false), &addrs));
            }
        }
    }
}
