//! CloudWatch's load balancer metrics, counted on the request path and read by `/metrics`
//! and the CloudWatch history.
//!
//! Each node keeps its counters per load balancer and zone ([`NodeMetrics`]: what the load
//! balancer did) and per target group and zone ([`GroupMetrics`]: what targets did): plain
//! atomics that a request adds to without a lock. The compile step makes them (kept across
//! snapshots, like connection pools) and lists them in the [`Registry`], whose lock only the
//! control path and the readers take. Each metric is read at one level, the finest CloudWatch
//! has, so that summing it over any label gives the coarser dimension.

use elb_lambda::Blame;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use elb_metrics::{
    APPLICATION_ELB, ELBD_GATEWAY, GATEWAY_ELB, NETWORK_ELB, RESPONSE_TIME_BUCKETS, Reading, Value,
};
use elb_model::{HealthState, HealthView, LoadBalancerKind, State};

use crate::l7::outcome::{Action, Outcome};

/// A histogram of durations in Prometheus's form: cumulative buckets are made at scrape time
/// from per-bucket counts.
#[derive(Default)]
pub struct Histogram {
    /// Per bucket of [`RESPONSE_TIME_BUCKETS`], and one past the last.
    counts: [AtomicU64; RESPONSE_TIME_BUCKETS.len() + 1],
    sum_us: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        let bucket = RESPONSE_TIME_BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(RESPONSE_TIME_BUCKETS.len());
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_us
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    /// (cumulative count per bound and +Inf, sum in seconds).
    pub fn read(&self) -> (Vec<u64>, f64) {
        let mut total = 0;
        let cumulative = self
            .counts
            .iter()
            .map(|c| {
                total += c.load(Ordering::Relaxed);
                total
            })
            .collect();
        let sum = self.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        (cumulative, sum)
    }
}

/// HTTP status classes, 2XX to 5XX.
#[derive(Default)]
pub struct ByClass([AtomicU64; 4]);

impl ByClass {
    fn add(&self, status: u16) {
        if let Some(class) = (status / 100).checked_sub(2).filter(|c| *c < 4) {
            self.0[class as usize].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The count of `class` (2 to 5).
    pub fn get(&self, class: u16) -> u64 {
        self.0[(class - 2) as usize].load(Ordering::Relaxed)
    }
}

/// A load balancer's counters in one zone (AWS/ApplicationELB with the LoadBalancer and
/// AvailabilityZone dimensions). What targets answered is counted per group only
/// ([`GroupMetrics`]): a load balancer's are the sum of its groups'.
#[derive(Default)]
pub struct NodeMetrics {
    pub request_count: AtomicU64,
    /// HTTPCode_ELB_3XX/4XX/5XX_Count: answers the load balancer made itself (redirects and
    /// fixed responses included; 460, a client that left, is logged only, as on AWS).
    pub elb: ByClass,
    /// HTTPCode_ELB_500/502/503/504_Count.
    pub elb_500: AtomicU64,
    pub elb_502: AtomicU64,
    pub elb_503: AtomicU64,
    pub elb_504: AtomicU64,
    /// HTTP_Redirect_Count and HTTP_Fixed_Response_Count.
    pub redirects: AtomicU64,
    pub fixed_responses: AtomicU64,
    pub processed_bytes: AtomicU64,
    pub new_connections: AtomicU64,
    /// Client connections open now (a gauge: added at accept, taken at close).
    pub active_connections: AtomicU64,
    /// Connections the security groups refused.
    pub rejected_connections: AtomicU64,
}

/// A client connection, counted as new when made and as active until dropped.
pub(crate) struct Active(Arc<NodeMetrics>);

impl Active {
    pub(crate) fn new(metrics: &Arc<NodeMetrics>) -> Self {
        metrics.new_connections.fetch_add(1, Ordering::Relaxed);
        metrics.active_connections.fetch_add(1, Ordering::Relaxed);
        Self(metrics.clone())
    }
}

impl Active {
    /// A connection handed on to another task (upgraded to a WebSocket): active, not new.
    pub(crate) fn continued(metrics: &Arc<NodeMetrics>) -> Self {
        metrics.active_connections.fetch_add(1, Ordering::Relaxed);
        Self(metrics.clone())
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.0.active_connections.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A target group's counters in one zone (the TargetGroup dimension).
#[derive(Default)]
pub struct GroupMetrics {
    /// Requests the rules sent to the group (RequestCount with the TargetGroup dimension).
    pub requests: AtomicU64,
    /// HTTPCode_Target_2XX..5XX_Count.
    pub target: ByClass,
    pub target_response_time: Histogram,
    pub target_connection_errors: AtomicU64,
    /// LambdaUserError and LambdaInternalError: a function's failed invocations.
    pub lambda_user_errors: AtomicU64,
    pub lambda_internal_errors: AtomicU64,
}

impl NodeMetrics {
    /// Counts one request's outcome here and, when it went to a group, in `group`.
    pub(crate) fn record(&self, outcome: &Outcome, group: Option<&GroupMetrics>) {
        self.request_count.fetch_add(1, Ordering::Relaxed);
        self.processed_bytes.fetch_add(
            outcome.received_bytes + outcome.sent_bytes,
            Ordering::Relaxed,
        );
        match outcome.action {
            Action::Redirect => self.redirects.fetch_add(1, Ordering::Relaxed),
            Action::FixedResponse => self.fixed_responses.fetch_add(1, Ordering::Relaxed),
            _ => 0,
        };
        if let Some(group) = group {
            group.requests.fetch_add(1, Ordering::Relaxed);
            if outcome.target_connection_error {
                group
                    .target_connection_errors
                    .fetch_add(1, Ordering::Relaxed);
            }
            if let Some(took) = outcome.target_time {
                group.target_response_time.observe(took);
            }
            let lambda = match outcome.lambda_error {
                Some(Blame::User) => Some(&group.lambda_user_errors),
                Some(Blame::Internal) => Some(&group.lambda_internal_errors),
                None => None,
            };
            if let Some(errors) = lambda {
                errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        match (outcome.target_status, group) {
            (Some(status), Some(group)) if outcome.action == Action::Forward => {
                group.target.add(status);
            }
            _ if outcome.elb_status == CLIENT_CLOSED => {}
            _ => {
                self.elb.add(outcome.elb_status);
                match outcome.elb_status {
                    500 => &self.elb_500,
                    502 => &self.elb_502,
                    503 => &self.elb_503,
                    504 => &self.elb_504,
                    _ => return,
                }
                .fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// A network load balancer's counters in one zone (AWS/NetworkELB with the LoadBalancer and
/// AvailabilityZone dimensions).
#[derive(Default)]
pub struct FlowMetrics {
    /// The counts of TCP, TLS and UDP flows (NewFlowCount_TCP, NewFlowCount_TLS, ...);
    /// NewFlowCount, ActiveFlowCount and ProcessedBytes are their sums.
    pub tcp: Transport,
    pub tls: Transport,
    pub udp: Transport,
    /// TCP_ELB_Reset_Count: resets the load balancer sent (idle flows, terminated targets,
    /// no target to reach, the end of a drain).
    pub elb_resets: AtomicU64,
    /// TCP_Target_Reset_Count and TCP_Client_Reset_Count: flows a side reset.
    pub target_resets: AtomicU64,
    pub client_resets: AtomicU64,
    /// ClientTLSNegotiationErrorCount and TargetTLSNegotiationErrorCount: handshakes that
    /// failed on a TLS listener or towards a TLS group's target.
    pub client_tls_errors: AtomicU64,
    pub target_tls_errors: AtomicU64,
}

/// A gateway load balancer's counters in one zone (AWS/GatewayELB with the LoadBalancer and
/// AvailabilityZone dimensions): AWS's flow counts, and elbd's counts of the packets its node
/// dropped, by why (elbd/Gateway: AWS has no such metrics).
#[derive(Default)]
pub struct GatewayMetrics {
    pub new_flows: AtomicU64,
    /// A gauge: the flows the node's endpoints keep.
    pub active_flows: AtomicU64,
    /// Bytes of inner packets, both ways.
    pub processed_bytes: AtomicU64,
    /// Returns that were not GENEVE as AWS speaks it.
    pub malformed: AtomicU64,
    /// Returns whose options are not what was sent (another endpoint, attachment or flow
    /// cookie), or that came from no appliance of the endpoint.
    pub mismatched: AtomicU64,
    /// Packets with nowhere to go: not IP, TCP without a flow that is no SYN, no appliance,
    /// the node's socket not bound, a full queue.
    pub undeliverable: AtomicU64,
}

/// One more of `counter`.
pub(crate) fn count(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// One transport's flows on a network load balancer's node.
#[derive(Default)]
pub struct Transport {
    pub new_flows: AtomicU64,
    /// A gauge.
    pub active_flows: AtomicU64,
    /// Bytes moved either way.
    pub processed_bytes: AtomicU64,
}

/// What a flow carries, as CloudWatch tells flows apart.
#[derive(Clone, Copy)]
pub(crate) enum FlowKind {
    Tcp,
    Tls,
    Udp,
}

impl FlowMetrics {
    fn of(&self, kind: FlowKind) -> &Transport {
        match kind {
            FlowKind::Tcp => &self.tcp,
            FlowKind::Tls => &self.tls,
            FlowKind::Udp => &self.udp,
        }
    }
}

/// A flow, counted as new when made and as active until dropped.
pub(crate) struct ActiveFlow {
    metrics: Arc<FlowMetrics>,
    kind: FlowKind,
}

impl ActiveFlow {
    pub(crate) fn new(metrics: &Arc<FlowMetrics>, kind: FlowKind) -> Self {
        let counts = metrics.of(kind);
        counts.new_flows.fetch_add(1, Ordering::Relaxed);
        counts.active_flows.fetch_add(1, Ordering::Relaxed);
        Self {
            metrics: metrics.clone(),
            kind,
        }
    }

    /// Where the flow's bytes are counted.
    pub(crate) fn processed(&self) -> &AtomicU64 {
        &self.metrics.of(self.kind).processed_bytes
    }
}

impl Drop for ActiveFlow {
    fn drop(&mut self) {
        let counts = self.metrics.of(self.kind);
        counts.active_flows.fetch_sub(1, Ordering::Relaxed);
    }
}

/// ALB's status for a request whose client left before the answer: logged, not counted in
/// HTTPCode_ELB_4XX (aws-elb-features.md §6.4).
pub(crate) const CLIENT_CLOSED: u16 = 460;

/// Reads one counter of a node.
type Read = fn(&NodeMetrics) -> u64;

/// The counters of a load balancer's node, by CloudWatch's names.
const NODE_COUNTERS: [(&str, Read); 13] = [
    ("RequestCount", |m| m.request_count.load(Ordering::Relaxed)),
    ("HTTPCode_ELB_3XX_Count", |m| m.elb.get(3)),
    ("HTTPCode_ELB_4XX_Count", |m| m.elb.get(4)),
    ("HTTPCode_ELB_5XX_Count", |m| m.elb.get(5)),
    ("HTTPCode_ELB_500_Count", |m| {
        m.elb_500.load(Ordering::Relaxed)
    }),
    ("HTTPCode_ELB_502_Count", |m| {
        m.elb_502.load(Ordering::Relaxed)
    }),
    ("HTTPCode_ELB_503_Count", |m| {
        m.elb_503.load(Ordering::Relaxed)
    }),
    ("HTTPCode_ELB_504_Count", |m| {
        m.elb_504.load(Ordering::Relaxed)
    }),
    ("HTTP_Redirect_Count", |m| {
        m.redirects.load(Ordering::Relaxed)
    }),
    ("HTTP_Fixed_Response_Count", |m| {
        m.fixed_responses.load(Ordering::Relaxed)
    }),
    ("ProcessedBytes", |m| {
        m.processed_bytes.load(Ordering::Relaxed)
    }),
    ("NewConnectionCount", |m| {
        m.new_connections.load(Ordering::Relaxed)
    }),
    ("RejectedConnectionCount", |m| {
        m.rejected_connections.load(Ordering::Relaxed)
    }),
];

/// Where `/metrics` finds every series: (load balancer id, zone) and (load balancer id,
/// target group id, zone), ids as CloudWatch's dimensions write them (`app/NAME/ID`,
/// `targetgroup/NAME/ID`).
#[derive(Default)]
pub struct Registry {
    series: Mutex<Series>,
}

#[derive(Default, Clone)]
pub(crate) struct Series {
    pub(crate) nodes: BTreeMap<(String, String), Arc<NodeMetrics>>,
    pub(crate) groups: BTreeMap<(String, String, String), Arc<GroupMetrics>>,
    /// Network load balancers' nodes.
    pub(crate) flows: BTreeMap<(String, String), Arc<FlowMetrics>>,
    /// Gateway load balancers' nodes.
    pub(crate) gateways: BTreeMap<(String, String), Arc<GatewayMetrics>>,
}

impl Registry {
    pub(crate) fn replace(&self, series: Series) {
        *self.series.lock().expect("not poisoned") = series;
    }

    fn series(&self) -> Series {
        self.series.lock().expect("not poisoned").clone()
    }

    /// Every series' value now, followed by `hosts` (made by the caller from the health
    /// view): what `/metrics` renders and the CloudWatch history folds in. Only `for` the
    /// history are the groups' RequestCounts read: CloudWatch publishes RequestCount both per
    /// load balancer and per target group, while in Prometheus one name has one level.
    pub fn readings(&self, hosts: &[HostCount], reader: Reader) -> Vec<Reading> {
        let series = self.series();
        let mut out = Vec::new();
        let node = |(lb, zone): &(String, String)| {
            vec![
                ("LoadBalancer", lb.clone()),
                ("AvailabilityZone", zone.clone()),
            ]
        };
        let group = |(lb, tg, zone): &(String, String, String)| {
            vec![
                ("LoadBalancer", lb.clone()),
                ("TargetGroup", tg.clone()),
                ("AvailabilityZone", zone.clone()),
            ]
        };
        let reading = |metric, dimensions, value| Reading {
            namespace: APPLICATION_ELB,
            metric,
            dimensions,
            value,
        };
        for (key, m) in &series.nodes {
            for (metric, read) in NODE_COUNTERS {
                out.push(reading(metric, node(key), Value::Count(read(m))));
            }
            let active = m.active_connections.load(Ordering::Relaxed);
            out.push(reading(
                "ActiveConnectionCount",
                node(key),
                Value::Gauge(active),
            ));
        }
        for (key, g) in &series.groups {
            if reader == Reader::CloudWatch {
                let requests = g.requests.load(Ordering::Relaxed);
                out.push(reading("RequestCount", group(key), Value::Count(requests)));
            }
            let errors = g.target_connection_errors.load(Ordering::Relaxed);
            out.push(reading(
                "TargetConnectionErrorCount",
                group(key),
                Value::Count(errors),
            ));
            // Only functions' groups have these: they appear with the first failure.
            let lambda = [
                ("LambdaUserError", &g.lambda_user_errors),
                ("LambdaInternalError", &g.lambda_internal_errors),
            ];
            for (metric, errors) in lambda {
                let errors = errors.load(Ordering::Relaxed);
                if errors > 0 {
                    out.push(reading(metric, group(key), Value::Count(errors)));
                }
            }
            for (class, metric) in TARGET_CLASSES {
                out.push(reading(
                    metric,
                    group(key),
                    Value::Count(g.target.get(class)),
                ));
            }
            let (cumulative, sum) = g.target_response_time.read();
            out.push(reading(
                "TargetResponseTime",
                group(key),
                Value::Timing { cumulative, sum },
            ));
        }
        for (key, f) in &series.flows {
            let flow = |metric, value| Reading {
                namespace: NETWORK_ELB,
                metric,
                dimensions: node(key),
                value,
            };
            let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
            type Counter = fn(&Transport) -> &AtomicU64;
            // Each count in all, then for TCP, TLS and UDP flows.
            let by_transport: [([&'static str; 4], Counter, bool); 3] = [
                (
                    [
                        "NewFlowCount",
                        "NewFlowCount_TCP",
                        "NewFlowCount_TLS",
                        "NewFlowCount_UDP",
                    ],
                    |t| &t.new_flows,
                    false,
                ),
                (
                    [
                        "ActiveFlowCount",
                        "ActiveFlowCount_TCP",
                        "ActiveFlowCount_TLS",
                        "ActiveFlowCount_UDP",
                    ],
                    |t| &t.active_flows,
                    true,
                ),
                (
                    [
                        "ProcessedBytes",
                        "ProcessedBytes_TCP",
                        "ProcessedBytes_TLS",
                        "ProcessedBytes_UDP",
                    ],
                    |t| &t.processed_bytes,
                    false,
                ),
            ];
            for ([all, by_tcp, by_tls, by_udp], counter, gauge) in by_transport {
                let value = |n| {
                    if gauge {
                        Value::Gauge(n)
                    } else {
                        Value::Count(n)
                    }
                };
                let [tcp, tls, udp] = [&f.tcp, &f.tls, &f.udp].map(|t| load(counter(t)));
                out.push(flow(all, value(tcp + tls + udp)));
                out.push(flow(by_tcp, value(tcp)));
                out.push(flow(by_tls, value(tls)));
                out.push(flow(by_udp, value(udp)));
            }
            let counts = [
                ("TCP_ELB_Reset_Count", &f.elb_resets),
                ("TCP_Target_Reset_Count", &f.target_resets),
                ("TCP_Client_Reset_Count", &f.client_resets),
                ("ClientTLSNegotiationErrorCount", &f.client_tls_errors),
                ("TargetTLSNegotiationErrorCount", &f.target_tls_errors),
            ];
            for (metric, counter) in counts {
                out.push(flow(metric, Value::Count(load(counter))));
            }
        }
        for (key, g) in &series.gateways {
            let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
            let counts = [
                (
                    GATEWAY_ELB,
                    "NewFlowCount",
                    Value::Count(load(&g.new_flows)),
                ),
                (
                    GATEWAY_ELB,
                    "ActiveFlowCount",
                    Value::Gauge(load(&g.active_flows)),
                ),
                (
                    GATEWAY_ELB,
                    "ProcessedBytes",
                    Value::Count(load(&g.processed_bytes)),
                ),
                (
                    ELBD_GATEWAY,
                    "MalformedPacketCount",
                    Value::Count(load(&g.malformed)),
                ),
                (
                    ELBD_GATEWAY,
                    "MismatchedPacketCount",
                    Value::Count(load(&g.mismatched)),
                ),
                (
                    ELBD_GATEWAY,
                    "UndeliverablePacketCount",
                    Value::Count(load(&g.undeliverable)),
                ),
            ];
            for (namespace, metric, value) in counts {
                out.push(Reading {
                    namespace,
                    metric,
                    dimensions: node(key),
                    value,
                });
            }
        }
        for h in hosts {
            let key = (
                h.load_balancer.clone(),
                h.target_group.clone(),
                h.zone.clone(),
            );
            for (metric, count) in [
                ("HealthyHostCount", h.healthy),
                ("UnHealthyHostCount", h.unhealthy),
            ] {
                out.push(Reading {
                    namespace: h.namespace,
                    metric,
                    dimensions: group(&key),
                    value: Value::Gauge(count),
                });
            }
        }
        out
    }
}

/// Who reads the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reader {
    Prometheus,
    CloudWatch,
}

/// HTTPCode_Target_*_Count by status class.
const TARGET_CLASSES: [(u16, &str); 4] = [
    (2, "HTTPCode_Target_2XX_Count"),
    (3, "HTTPCode_Target_3XX_Count"),
    (4, "HTTPCode_Target_4XX_Count"),
    (5, "HTTPCode_Target_5XX_Count"),
];

/// One target group's healthy and unhealthy targets in one zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostCount {
    /// AWS/ApplicationELB, AWS/NetworkELB or AWS/GatewayELB, by the load balancer's type.
    pub namespace: &'static str,
    pub load_balancer: String,
    pub target_group: String,
    pub zone: String,
    pub healthy: u64,
    pub unhealthy: u64,
}

/// HealthyHostCount and UnHealthyHostCount of every load balancer's target
/// groups, per zone of the targets, by the health checks' overall verdict (a target is
/// unhealthy if any node finds it so). Draining and unused targets count in neither.
pub fn host_counts(state: &State, health: &HealthView) -> Vec<HostCount> {
    let mut counts: BTreeMap<(&'static str, String, String, String), (u64, u64)> = BTreeMap::new();
    for region in state.regions.values() {
        for lb in region.load_balancers.values() {
            let namespace = match lb.kind {
                LoadBalancerKind::Application => APPLICATION_ELB,
                LoadBalancerKind::Network => NETWORK_ELB,
                LoadBalancerKind::Gateway => GATEWAY_ELB,
            };
            for tg in region.target_groups_of(&lb.arn) {
                let in_service = tg.targets.iter().filter(|t| region.in_service(t));
                for target in in_service.flat_map(|t| region.expand(t)) {
                    let key = (
                        namespace,
                        dimension(&lb.arn),
                        dimension(&tg.arn),
                        target.availability_zone.clone(),
                    );
                    let entry = counts.entry(key).or_default();
                    match health.overall(&target.key(&tg.arn)).map(|h| h.state) {
                        Some(HealthState::Healthy) => entry.0 += 1,
                        Some(HealthState::Unhealthy) => entry.1 += 1,
                        _ => {}
                    }
                }
            }
        }
    }
    counts
        .into_iter()
        .map(
            |((namespace, load_balancer, target_group, zone), (healthy, unhealthy))| HostCount {
                namespace,
                load_balancer,
                target_group,
                zone,
                healthy,
                unhealthy,
            },
        )
        .collect()
}

/// An ARN's resource as CloudWatch's dimensions name it: `app/NAME/ID` for a load balancer,
/// `targetgroup/NAME/ID` for a target group.
pub fn dimension(arn: &str) -> String {
    let resource = arn.splitn(6, ':').nth(5).unwrap_or(arn);
    resource
        .strip_prefix("loadbalancer/")
        .unwrap_or(resource)
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dimensions_are_arn_resources() {
        assert_eq!(
            dimension("arn:aws:elasticloadbalancing:us-east-1:1:loadbalancer/app/web/abc"),
            "app/web/abc"
        );
        assert_eq!(
            dimension("arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/t/def"),
            "targetgroup/t/def"
        );
    }

    #[test]
    fn histograms_are_cumulative() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(500));
        h.observe(Duration::from_millis(30));
        h.observe(Duration::from_secs(60));
        let (cumulative, sum) = h.read();
        assert_eq!(cumulative[0], 1, "≤ 1 ms");
        assert_eq!(cumulative[4], 2, "≤ 50 ms");
        assert_eq!(*cumulative.last().unwrap(), 3, "+Inf");
        assert!((sum - 60.0305).abs() < 1e-6);
    }
}
