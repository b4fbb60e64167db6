//! CloudWatch's metrics as values, with no I/O: what the data plane reads from its counters
//! ([`Reading`]), the per-minute history the CloudWatch API answers from ([`history`]), and
//! Prometheus's text format for `/metrics` ([`prometheus`]).

pub mod history;
pub mod prometheus;

/// The namespace of application load balancers' metrics.
pub const APPLICATION_ELB: &str = "AWS/ApplicationELB";
/// The namespace of network load balancers' metrics.
pub const NETWORK_ELB: &str = "AWS/NetworkELB";
/// The namespace of gateway load balancers' metrics.
pub const GATEWAY_ELB: &str = "AWS/GatewayELB";
/// elbd's own counts of a gateway node's dropped packets (AWS has none).
pub const ELBD_GATEWAY: &str = "elbd/Gateway";

/// Upper bounds of the TargetResponseTime histogram, in seconds.
pub const RESPONSE_TIME_BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// One series' value now, at the finest dimensions it is counted in.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub namespace: &'static str,
    /// CloudWatch's name, e.g. `RequestCount`.
    pub metric: &'static str,
    /// CloudWatch's dimension names and values, e.g. `("LoadBalancer", "app/web/0f3c…")`.
    pub dimensions: Vec<(&'static str, String)>,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A count since the series began (CloudWatch's per-event metrics: each event is a sample
    /// of 1, so Sum counts them).
    Count(u64),
    /// A level now (host and connection counts).
    Gauge(u64),
    /// Durations: cumulative counts per bound of [`RESPONSE_TIME_BUCKETS`] and +Inf, and their
    /// sum in seconds.
    Timing { cumulative: Vec<u64>, sum: f64 },
}
