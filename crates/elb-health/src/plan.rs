//! What to probe, from a snapshot: for every node, the targets of every group its load
//! balancer forwards to (by default actions or rules) that the node may route to (its zone's,
//! or all zones' with cross-zone), each with its group's settings. Pure.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use elb_model::attributes::{MULTI_VALUE_HEADERS, PROXY_PROTOCOL_V2};
use elb_model::{FunctionArn, LoadBalancerKind, Matcher, ProtocolVersion, State, TargetId};

use crate::state::Thresholds;

/// One node's checks of one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// The node whose address the probe leaves from.
    pub node_ip: IpAddr,
    pub target: SocketAddr,
    pub check: Check,
    pub interval: Duration,
    pub timeout: Duration,
    pub thresholds: Thresholds,
    /// The load balancer's security groups do not let the node reach the target: the check
    /// times out without a packet sent, as it would on AWS.
    pub blocked: bool,
    /// `proxy_protocol_v2.enabled`: the connection starts with a LOCAL header (a check has
    /// no client to name).
    pub proxy_protocol: bool,
}

/// What a probe does, by the health check's protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// A TCP connection is opened and closed: passing means the target accepted it.
    Tcp,
    /// An HTTP or HTTPS request, judged by its status code.
    Http(HttpCheck),
    /// An event to a `lambda` group's function, judged by the status code it answers with.
    Lambda(LambdaCheck),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LambdaCheck {
    pub function: FunctionArn,
    /// The whole event, made once: `GET path` from ELB's health checker, as ALB sends it.
    pub event: Vec<u8>,
    /// `lambda.multi_value_headers.enabled`: the event and the answer have the group's shape.
    pub multi_value: bool,
    pub matcher: Matcher,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCheck {
    /// The whole HTTP/1.1 request, made once: `GET path` with ELB's Host and User-Agent.
    pub request: Vec<u8>,
    pub path: String,
    /// HTTPS checks: the request goes over TLS (the target's certificate is not verified).
    pub tls: bool,
    /// HTTP2 and GRPC groups are checked over HTTP/2 (GRPC: a gRPC call, judged by its
    /// grpc-status).
    pub version: ProtocolVersion,
    pub matcher: Matcher,
}

/// `(node id, registration key)` → probe, for every check the snapshot calls for.
pub fn plan(state: &State) -> BTreeMap<(String, String), Probe> {
    let mut probes = BTreeMap::new();
    let pairs = state.regions.values().flat_map(|state| {
        state.load_balancers.values().flat_map(move |lb| {
            state
                .target_groups_of(&lb.arn)
                .map(move |tg| (state, lb, tg))
        })
    });
    for (state, lb, tg) in pairs {
        let hc = &tg.health_check;
        // Only a `lambda` group's checks can be off.
        if !hc.enabled {
            continue;
        }
        let egress = state.egress(lb);
        // An NLB's HTTP checks name the node and the port of the listener forwarding to the
        // group in their Host, as AWS's do (the lowest such port if there are several).
        let listener_port = (lb.kind == LoadBalancerKind::Network)
            .then(|| {
                let forwarding = state.listeners_of(&lb.arn);
                (forwarding.filter(|l| l.default_target_groups().any(|t| t == tg.arn)))
                    .map(|l| l.port)
                    .min()
            })
            .flatten();
        for node in state.nodes_of(&lb.arn) {
            for r in state.in_reach(node, tg) {
                let key = (node.id.clone(), r.key(&tg.arn));
                let target = SocketAddr::new(r.address, hc.port_for(r.port));
                let blocked = !egress.allows("tcp", target.ip(), target.port());
                let host = listener_port.map_or(target, |port| {
                    SocketAddr::new(node.source(target.is_ipv6()), port)
                });
                let check = match (&r.id, hc.protocol.as_str()) {
                    (TargetId::Lambda(arn), _) => {
                        let Ok(function) = FunctionArn::parse(arn) else {
                            continue;
                        };
                        let multi_value = tg.attributes.flag(MULTI_VALUE_HEADERS);
                        Check::Lambda(LambdaCheck {
                            function,
                            event: lambda_event(&tg.arn, &hc.path, multi_value),
                            multi_value,
                            matcher: hc.matcher(),
                        })
                    }
                    (_, "TCP") => Check::Tcp,
                    (_, protocol) => Check::Http(HttpCheck {
                        request: request(&hc.path, host),
                        path: hc.path.clone(),
                        tls: protocol == "HTTPS",
                        version: tg.protocol_version,
                        matcher: hc.matcher(),
                    }),
                };
                probes.insert(
                    key,
                    Probe {
                        node_ip: node.source(target.ip().is_ipv6()),
                        target,
                        check,
                        interval: Duration::from_secs(hc.interval_seconds.into()),
                        timeout: Duration::from_secs(hc.timeout_seconds.into()),
                        thresholds: Thresholds {
                            healthy: hc.healthy_threshold,
                            unhealthy: hc.unhealthy_threshold,
                        },
                        blocked,
                        proxy_protocol: tg.attributes.flag(PROXY_PROTOCOL_V2),
                    },
                );
            }
        }
    }
    probes
}

/// ALB's health check event: a GET of the path with ELB's User-Agent, and nothing else.
fn lambda_event(target_group_arn: &str, path: &str, multi_value: bool) -> Vec<u8> {
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::USER_AGENT,
        http::HeaderValue::from_static("ELB-HealthChecker/2.0"),
    );
    let request = elb_lambda::Request {
        method: "GET",
        path,
        query: None,
        headers: &headers,
        body: b"",
    };
    elb_lambda::event::event(target_group_arn, &request, multi_value)
}

/// An HTTP check's request, with `host` (the target's address, or an NLB node's) as Host.
fn request(path: &str, host: SocketAddr) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: ELB-HealthChecker/2.0\r\n\
         Accept: */*\r\nConnection: close\r\n\r\n"
    )
    .into_bytes()
}
