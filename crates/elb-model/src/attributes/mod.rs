//! Load balancer and target group attributes: AWS's string keys, their defaults per type
//! (aws-elb-features.md §2.3 and §5.5), and what values each accepts.
//!
//! Every key AWS documents is present with its default, because Terraform reads them all.
//! A key whose behaviour elbd does not implement yet accepts only its default: setting it to
//! anything else is refused with a message saying so, rather than stored and ignored.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{ErrorCode, ModelError, Result};
use crate::listener::ListenerProtocol;
use crate::load_balancer::{LoadBalancerKind, Scheme};
use crate::target_group::{TargetGroupProtocol, TargetType};

/// A full set of attributes: every applicable key, defaults filled in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attributes(BTreeMap<String, String>);

impl Attributes {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// A boolean attribute; absent or unparsable reads as `false` (values were validated on
    /// the way in).
    pub fn flag(&self, key: &str) -> bool {
        self.get(key) == Some("true")
    }

    /// An integer attribute, validated on the way in.
    pub fn int(&self, key: &str) -> Option<u64> {
        self.get(key)?.parse().ok()
    }

    fn from_defaults<'a>(
        specs: impl IntoIterator<Item = &'a Spec>,
        defaults: &dyn Fn(&Spec) -> &'static str,
    ) -> Self {
        Self(
            specs
                .into_iter()
                .map(|s| (s.key.to_owned(), defaults(s).to_owned()))
                .collect(),
        )
    }
}

/// What values a key accepts.
#[derive(Debug, Clone, Copy)]
enum Value {
    Bool,
    Int(u64, u64),
    OneOf(&'static [&'static str]),
    /// `off` or an integer in the range.
    OffOr(u64, u64),
    /// 0 (off) or 30 to 900 seconds.
    SlowStart,
    Text,
}

#[derive(Debug)]
struct Spec {
    key: &'static str,
    value: Value,
    default: &'static str,
    /// Whether elbd acts on non-default values yet.
    honoured: bool,
}

const fn spec(key: &'static str, value: Value, default: &'static str, honoured: bool) -> Spec {
    Spec {
        key,
        value,
        default,
        honoured,
    }
}

const BOOL: Value = Value::Bool;
const TEXT: Value = Value::Text;
const CROSS_ZONE: &str = "load_balancing.cross_zone.enabled";
const DENY_IGW: &str = "ipv6.deny_all_igw_traffic";

const COMMON_LB: &[Spec] = &[
    spec("deletion_protection.enabled", BOOL, "false", true),
    spec(CROSS_ZONE, BOOL, "false", true),
];
const ACCESS_LOGS: &str = "access_logs.s3.enabled";
/// `lambda` groups: whether events and answers carry every value of a header or query
/// parameter, or the last.
pub const MULTI_VALUE_HEADERS: &str = "lambda.multi_value_headers.enabled";
const ACCESS_LOGS_BUCKET: &str = "access_logs.s3.bucket";
const ACCESS_LOGS_PREFIX: &str = "access_logs.s3.prefix";
const CONNECTION_LOGS: &str = "connection_logs.s3.enabled";
/// Access logs: an ALB's of every request, an NLB's of its TLS connections (as AWS's).
const LOGS: &[Spec] = &[
    spec(ACCESS_LOGS, BOOL, "false", true),
    spec(ACCESS_LOGS_BUCKET, TEXT, "", true),
    spec(ACCESS_LOGS_PREFIX, TEXT, "", true),
];
const LB_MISC: &[Spec] = &[
    spec(DENY_IGW, BOOL, "false", false),
    spec("zonal_shift.config.enabled", BOOL, "false", false),
];
const ALB_ONLY: &[Spec] = &[
    spec(
        "idle_timeout.timeout_seconds",
        Value::Int(1, 4000),
        "60",
        true,
    ),
    spec(
        "client_keep_alive.seconds",
        Value::Int(60, 604_800),
        "3600",
        true,
    ),
    spec(CONNECTION_LOGS, BOOL, "false", true),
    spec("connection_logs.s3.bucket", TEXT, "", true),
    spec("connection_logs.s3.prefix", TEXT, "", true),
    spec("health_check_logs.s3.enabled", BOOL, "false", false),
    spec("health_check_logs.s3.bucket", TEXT, "", false),
    spec("health_check_logs.s3.prefix", TEXT, "", false),
    spec(
        "routing.http.desync_mitigation_mode",
        Value::OneOf(&["monitor", "defensive", "strictest"]),
        "defensive",
        true,
    ),
    spec(
        "routing.http.drop_invalid_header_fields.enabled",
        BOOL,
        "false",
        true,
    ),
    spec(
        "routing.http.preserve_host_header.enabled",
        BOOL,
        "false",
        true,
    ),
    spec(
        "routing.http.x_amzn_tls_version_and_cipher_suite.enabled",
        BOOL,
        "false",
        false,
    ),
    spec("routing.http.xff_client_port.enabled", BOOL, "false", true),
    spec(
        "routing.http.xff_header_processing.mode",
        Value::OneOf(&["append", "preserve", "remove"]),
        "append",
        true,
    ),
    spec("routing.http2.enabled", BOOL, "true", true),
    spec("waf.fail_open.enabled", BOOL, "false", false),
];
const NLB_ONLY: &[Spec] = &[
    spec(
        "dns_record.client_routing_policy",
        Value::OneOf(&[
            "availability_zone_affinity",
            "partial_availability_zone_affinity",
            "any_availability_zone",
        ]),
        "any_availability_zone",
        false,
    ),
    spec(
        "secondary_ips.auto_assigned.per_subnet",
        Value::Int(0, 7),
        "0",
        false,
    ),
];

/// The attributes of every instance and ip target group, whatever its protocol.
const TARGET_GROUP_COMMON: &[Spec] = &[
    spec(
        "deregistration_delay.timeout_seconds",
        Value::Int(0, 3600),
        "300",
        true,
    ),
    spec(
        CROSS_ZONE,
        Value::OneOf(&["true", "false", "use_load_balancer_configuration"]),
        "use_load_balancer_configuration",
        true,
    ),
    spec(
        "target_group_health.dns_failover.minimum_healthy_targets.count",
        Value::OffOr(1, 1000),
        "1",
        true,
    ),
    spec(
        "target_group_health.dns_failover.minimum_healthy_targets.percentage",
        Value::OffOr(1, 100),
        "off",
        true,
    ),
    // Not `off`: routing failover always has a count.
    spec(
        "target_group_health.unhealthy_state_routing.minimum_healthy_targets.count",
        Value::Int(1, 1000),
        "1",
        true,
    ),
    spec(
        "target_group_health.unhealthy_state_routing.minimum_healthy_targets.percentage",
        Value::OffOr(1, 100),
        "off",
        true,
    ),
];

/// An ALB's (HTTP and HTTPS) target groups, besides the common ones.
const TARGET_GROUP_HTTP: &[Spec] = &[
    spec("stickiness.enabled", BOOL, "false", true),
    spec(
        STICKINESS_TYPE,
        Value::OneOf(&["lb_cookie", "app_cookie", "source_ip"]),
        "lb_cookie",
        true,
    ),
    spec(
        "stickiness.lb_cookie.duration_seconds",
        Value::Int(1, 604_800),
        "86400",
        true,
    ),
    spec(APP_COOKIE_NAME, TEXT, "", true),
    spec(
        "stickiness.app_cookie.duration_seconds",
        Value::Int(1, 604_800),
        "86400",
        true,
    ),
    spec(
        "load_balancing.algorithm.type",
        Value::OneOf(&[
            "round_robin",
            "least_outstanding_requests",
            "weighted_random",
        ]),
        "round_robin",
        true,
    ),
    spec(
        ANOMALY_MITIGATION,
        Value::OneOf(&["on", "off"]),
        "off",
        true,
    ),
    spec("slow_start.duration_seconds", Value::SlowStart, "0", true),
];

/// An NLB's target groups, whatever their protocol, besides the common ones.
const TARGET_GROUP_FLOWS: &[Spec] = &[
    spec("stickiness.enabled", BOOL, "false", true),
    spec(
        STICKINESS_TYPE,
        Value::OneOf(&["source_ip"]),
        "source_ip",
        true,
    ),
];

/// An NLB's TCP and TLS target groups' own. Client IP preservation defaults by target type
/// ([`target_group_defaults`]).
const TARGET_GROUP_TCP: &[Spec] = &[
    spec(DEREGISTRATION_TERMINATION, BOOL, "false", true),
    spec(PRESERVE_CLIENT_IP, BOOL, "false", true),
    spec(PROXY_PROTOCOL_V2, BOOL, "false", true),
    spec(UNHEALTHY_TERMINATION, BOOL, "true", true),
    spec(
        "target_health_state.unhealthy.draining_interval_seconds",
        Value::Int(0, 360_000),
        "0",
        false,
    ),
];

/// An NLB's UDP and TCP_UDP target groups' own: as AWS, a deregistered target's flows end
/// when its delay does, the client's address is always kept ([`modify_target_group`]
/// refuses turning it off), and there is no PROXY protocol and no choice of ending an
/// unhealthy target's flows (elbd always ends them).
const TARGET_GROUP_UDP: &[Spec] = &[
    spec(DEREGISTRATION_TERMINATION, BOOL, "true", true),
    spec(PRESERVE_CLIENT_IP, BOOL, "true", true),
];

/// A GWLB's (GENEVE) target groups: no target-group cross-zone or health thresholds for DNS;
/// flows keyed by the 5-tuple unless stickiness names a shorter tuple; what becomes of an
/// appliance's flows when it fails or leaves (both keys alike, as AWS requires).
const TARGET_GROUP_GENEVE: &[Spec] = &[
    spec(
        "deregistration_delay.timeout_seconds",
        Value::Int(0, 3600),
        "300",
        true,
    ),
    spec("stickiness.enabled", BOOL, "false", true),
    spec(
        STICKINESS_TYPE,
        Value::OneOf(&["source_ip_dest_ip_proto", "source_ip_dest_ip"]),
        "source_ip_dest_ip_proto",
        true,
    ),
    spec(FAILOVER_ON_DEREGISTRATION, FAILOVER, "no_rebalance", true),
    spec(FAILOVER_ON_UNHEALTHY, FAILOVER, "no_rebalance", true),
];

/// A `lambda` group's only attribute.
const TARGET_GROUP_LAMBDA: &[Spec] = &[spec(MULTI_VALUE_HEADERS, BOOL, "false", true)];
const FAILOVER: Value = Value::OneOf(&["no_rebalance", "rebalance"]);
/// `target_failover.on_deregistration`: whether a deregistered appliance's flows move to
/// another once its delay ends.
pub const FAILOVER_ON_DEREGISTRATION: &str = "target_failover.on_deregistration";
/// `target_failover.on_unhealthy`: whether an unhealthy appliance's flows move.
pub const FAILOVER_ON_UNHEALTHY: &str = "target_failover.on_unhealthy";

/// `deregistration_delay.connection_termination.enabled`: whether a deregistered target's
/// open connections are closed when its delay ends.
pub const DEREGISTRATION_TERMINATION: &str = "deregistration_delay.connection_termination.enabled";
/// `target_health_state.unhealthy.connection_termination.enabled`: whether the connections
/// of a target that turns unhealthy are reset.
pub const UNHEALTHY_TERMINATION: &str =
    "target_health_state.unhealthy.connection_termination.enabled";
/// `preserve_client_ip.enabled`: whether connections to targets leave from the client's
/// address.
pub const PRESERVE_CLIENT_IP: &str = "preserve_client_ip.enabled";
/// `proxy_protocol_v2.enabled`: whether connections to targets start with a PROXY protocol
/// version 2 header naming the client.
pub const PROXY_PROTOCOL_V2: &str = "proxy_protocol_v2.enabled";

/// ALB listener attributes. The response headers are injected into every response when set;
/// the renames of request headers are not built and keep AWS's names.
const LISTENER_HTTP: &[Spec] = &[
    spec(SERVER_HEADER, BOOL, "true", true),
    spec(
        "routing.http.response.strict_transport_security.header_value",
        TEXT,
        "",
        true,
    ),
    spec(
        "routing.http.response.access_control_allow_origin.header_value",
        TEXT,
        "",
        true,
    ),
    spec(
        "routing.http.response.access_control_allow_methods.header_value",
        TEXT,
        "",
        true,
    ),
    spec(
        "routing.http.response.access_control_allow_headers.header_value",
        TEXT,
        "",
        true,
    ),
    spec(
        "routing.http.response.access_control_allow_credentials.header_value",
        TEXT,
        "",
        true,
    ),
    spec(
        "routing.http.response.access_control_expose_headers.header_value",
        TEXT,
        "",
        true,
    ),
    spec(
        "routing.http.response.access_control_max_age.header_value",
        TEXT,
        "",
        true,
    ),
    spec(
        "routing.http.response.content_security_policy.header_value",
        TEXT,
        "",
        true,
    ),
    spec(
        "routing.http.response.x_content_type_options.header_value",
        TEXT,
        "",
        true,
    ),
    spec(
        "routing.http.response.x_frame_options.header_value",
        TEXT,
        "",
        true,
    ),
    spec(
        "routing.http.request.x_amzn_mtls_clientcert_serial_number.header_name",
        TEXT,
        "X-Amzn-Mtls-Clientcert-Serial-Number",
        false,
    ),
    spec(
        "routing.http.request.x_amzn_mtls_clientcert_issuer.header_name",
        TEXT,
        "X-Amzn-Mtls-Clientcert-Issuer",
        false,
    ),
    spec(
        "routing.http.request.x_amzn_mtls_clientcert_subject.header_name",
        TEXT,
        "X-Amzn-Mtls-Clientcert-Subject",
        false,
    ),
    spec(
        "routing.http.request.x_amzn_mtls_clientcert_validity.header_name",
        TEXT,
        "X-Amzn-Mtls-Clientcert-Validity",
        false,
    ),
    spec(
        "routing.http.request.x_amzn_mtls_clientcert_leaf.header_name",
        TEXT,
        "X-Amzn-Mtls-Clientcert-Leaf",
        false,
    ),
    spec(
        "routing.http.request.x_amzn_mtls_clientcert.header_name",
        TEXT,
        "X-Amzn-Mtls-Clientcert",
        false,
    ),
    spec(
        "routing.http.request.x_amzn_tls_version.header_name",
        TEXT,
        "X-Amzn-Tls-Version",
        false,
    ),
    spec(
        "routing.http.request.x_amzn_tls_cipher_suite.header_name",
        TEXT,
        "X-Amzn-Tls-Cipher-Suite",
        false,
    ),
];

/// `routing.http.response.server.enabled`: whether elbd's own responses say
/// `Server: awselb/2.0`.
pub const SERVER_HEADER: &str = "routing.http.response.server.enabled";
/// The prefix and suffix of the response headers a listener injects.
pub const RESPONSE_HEADER_PREFIX: &str = "routing.http.response.";
pub const RESPONSE_HEADER_SUFFIX: &str = ".header_value";

/// NLB TCP and TCP_UDP listener attributes (TLS listeners fix the idle timeout at 350).
const LISTENER_TCP: &[Spec] = &[spec(TCP_IDLE_TIMEOUT, Value::Int(60, 6000), "350", true)];

/// `tcp.idle_timeout.seconds`: a TCP flow idle this long is closed with a reset.
pub const TCP_IDLE_TIMEOUT: &str = "tcp.idle_timeout.seconds";

/// A TLS listener's idle timeout is AWS's fixed 350 s.
const LISTENER_TLS: &[Spec] = &[spec(TCP_IDLE_TIMEOUT, Value::Int(350, 350), "350", true)];

/// A UDP listener has no attributes: its flows idle out after AWS's fixed 120 s.
fn listener_specs(protocol: ListenerProtocol) -> &'static [Spec] {
    match protocol {
        ListenerProtocol::Http | ListenerProtocol::Https => LISTENER_HTTP,
        ListenerProtocol::Udp => &[],
        ListenerProtocol::Tls => LISTENER_TLS,
        ListenerProtocol::Tcp | ListenerProtocol::TcpUdp | ListenerProtocol::Geneve => LISTENER_TCP,
    }
}

/// The attributes a new HTTP or HTTPS listener starts with (and those stored before
/// listeners had other protocols).
pub fn http_listener_defaults() -> Attributes {
    listener_defaults(ListenerProtocol::Http)
}

/// A listener's attributes once its protocol changes from `from` to `to`: kept when both
/// protocols take the same attributes, else the new protocol's defaults.
pub fn listener_protocol_changed(
    attrs: &Attributes,
    from: ListenerProtocol,
    to: ListenerProtocol,
) -> Attributes {
    if std::ptr::eq(listener_specs(from), listener_specs(to)) {
        attrs.clone()
    } else {
        listener_defaults(to)
    }
}

/// The attributes a new listener of `protocol` starts with.
pub fn listener_defaults(protocol: ListenerProtocol) -> Attributes {
    Attributes::from_defaults(listener_specs(protocol), &|s| s.default)
}

/// Applies `changes` to a listener's attributes, all or nothing.
pub fn modify_listener(
    attrs: &Attributes,
    protocol: ListenerProtocol,
    changes: &[(String, String)],
) -> Result<Attributes> {
    let specs: Vec<&Spec> = listener_specs(protocol).iter().collect();
    let mut next = attrs.clone();
    for (key, value) in changes {
        let spec = find(&specs, key, "listener")?;
        check(spec, value, attrs.get(key))?;
        if key.ends_with(RESPONSE_HEADER_SUFFIX)
            && value.bytes().any(|b| b.is_ascii_control() || !b.is_ascii())
        {
            return Err(ModelError::validation(format!(
                "Invalid value for attribute '{key}': a header value is visible ASCII"
            )));
        }
        next.0.insert(key.clone(), value.clone());
    }
    Ok(next)
}

fn lb_specs(kind: LoadBalancerKind) -> impl Iterator<Item = &'static Spec> {
    let extra: [&'static [Spec]; 3] = match kind {
        LoadBalancerKind::Application => [LOGS, LB_MISC, ALB_ONLY],
        LoadBalancerKind::Network => [LOGS, LB_MISC, NLB_ONLY],
        LoadBalancerKind::Gateway => [&[], &[], &[]],
    };
    COMMON_LB.iter().chain(extra.into_iter().flatten())
}

/// The attributes a new load balancer of `kind` and `scheme` starts with.
pub fn load_balancer_defaults(kind: LoadBalancerKind, scheme: Scheme) -> Attributes {
    let specs: Vec<&Spec> = lb_specs(kind).collect();
    let mut attrs = Attributes(BTreeMap::new());
    for s in specs {
        let value = match s.key {
            CROSS_ZONE if kind == LoadBalancerKind::Application => "true",
            DENY_IGW if scheme == Scheme::Internal => "true",
            _ => s.default,
        };
        attrs.0.insert(s.key.to_owned(), value.to_owned());
    }
    attrs
}

fn target_group_specs(
    protocol: TargetGroupProtocol,
    target_type: TargetType,
) -> impl Iterator<Item = &'static Spec> {
    let (common, own): (&[Spec], &[&[Spec]]) = if target_type == TargetType::Lambda {
        (&[], &[TARGET_GROUP_LAMBDA])
    } else if protocol == TargetGroupProtocol::Geneve {
        (&[], &[TARGET_GROUP_GENEVE])
    } else if protocol.is_http() {
        (TARGET_GROUP_COMMON, &[TARGET_GROUP_HTTP])
    } else if protocol.takes_datagrams() {
        (TARGET_GROUP_COMMON, &[TARGET_GROUP_FLOWS, TARGET_GROUP_UDP])
    } else {
        (TARGET_GROUP_COMMON, &[TARGET_GROUP_FLOWS, TARGET_GROUP_TCP])
    };
    common.iter().chain(own.iter().copied().flatten())
}

/// The attributes a new target group of `protocol` and `target_type` starts with: as AWS,
/// instance and `alb` targets keep the client's address by default and ip targets over TCP
/// do not.
pub fn target_group_defaults(protocol: TargetGroupProtocol, target_type: TargetType) -> Attributes {
    Attributes::from_defaults(
        target_group_specs(protocol, target_type),
        &|s| match s.key {
            // AWS keeps the client's address but for ip targets over TCP and TLS.
            PRESERVE_CLIENT_IP if target_type != TargetType::Ip => "true",
            _ => s.default,
        },
    )
}

/// Applies `changes` to a load balancer's attributes, all or nothing.
pub fn modify_load_balancer(
    attrs: &Attributes,
    kind: LoadBalancerKind,
    changes: &[(String, String)],
) -> Result<Attributes> {
    let specs: Vec<&Spec> = lb_specs(kind).collect();
    let mut next = attrs.clone();
    for (key, value) in changes {
        if kind == LoadBalancerKind::Application && key == CROSS_ZONE && value != "true" {
            return Err(ModelError::new(
                ErrorCode::InvalidConfigurationRequest,
                "Cross-zone load balancing is always on for Application Load Balancers; \
                 turn it off per target group with load_balancing.cross_zone.enabled",
            ));
        }
        let spec = find(&specs, key, "load balancer")?;
        check(spec, value, attrs.get(key))?;
        next.0.insert(key.clone(), value.clone());
    }
    for logs in ["access_logs", "connection_logs"] {
        let bucket = format!("{logs}.s3.bucket");
        if next.flag(&format!("{logs}.s3.enabled")) && next.get(&bucket).is_none_or(str::is_empty) {
            return Err(ModelError::validation(format!(
                "The value of '{bucket}' cannot be empty"
            )));
        }
    }
    Ok(next)
}

/// Applies `changes` to a target group's attributes, all or nothing.
pub fn modify_target_group(
    attrs: &Attributes,
    (protocol, target_type): (TargetGroupProtocol, TargetType),
    changes: &[(String, String)],
) -> Result<Attributes> {
    let specs: Vec<&Spec> = target_group_specs(protocol, target_type).collect();
    let mut next = attrs.clone();
    for (key, value) in changes {
        let spec = find(&specs, key, "target group")?;
        check(spec, value, attrs.get(key))?;
        next.0.insert(key.clone(), value.clone());
    }
    if target_type == TargetType::Lambda {
        return Ok(next);
    }
    check_health_thresholds(&next, changes)?;
    if protocol.takes_datagrams() && next.get(PRESERVE_CLIENT_IP) != Some("true") {
        return Err(ModelError::validation(format!(
            "'{PRESERVE_CLIENT_IP}' cannot be disabled for {} target groups",
            protocol.as_str()
        )));
    }
    if next.get(FAILOVER_ON_DEREGISTRATION) != next.get(FAILOVER_ON_UNHEALTHY) {
        return Err(ModelError::validation(format!(
            "'{FAILOVER_ON_DEREGISTRATION}' and '{FAILOVER_ON_UNHEALTHY}' must have the same value"
        )));
    }
    if protocol == TargetGroupProtocol::Tls && next.flag("stickiness.enabled") {
        return Err(ModelError::validation(
            "Stickiness is not supported for TLS target groups",
        ));
    }
    if !protocol.is_http() {
        return Ok(next);
    }
    check_stickiness(&next)?;
    let slow_start = next.int("slow_start.duration_seconds").unwrap_or(0) > 0;
    if slow_start && next.get(ALGORITHM) == Some("least_outstanding_requests") {
        return Err(ModelError::new(
            ErrorCode::InvalidConfigurationRequest,
            "Slow start cannot be combined with the least_outstanding_requests algorithm",
        ));
    }
    if next.get(ANOMALY_MITIGATION) == Some("on") && next.get(ALGORITHM) != Some("weighted_random")
    {
        return Err(ModelError::new(
            ErrorCode::InvalidConfigurationRequest,
            format!("'{ANOMALY_MITIGATION}' can be 'on' only with the weighted_random algorithm"),
        ));
    }
    Ok(next)
}

/// AWS's rule across a group's health thresholds ("if you specify thresholds for both
/// actions"): DNS failover comes at or before routing failover, so where a call sets either,
/// and both are set (the DNS count's default, 1, is not a threshold a caller set), the DNS
/// one is at least the routing one of its kind (count, percentage).
fn check_health_thresholds(attrs: &Attributes, changes: &[(String, String)]) -> Result<()> {
    const DNS_COUNT_DEFAULT: &str = "1";
    for unit in ["count", "percentage"] {
        let key =
            |action: &str| format!("target_group_health.{action}.minimum_healthy_targets.{unit}");
        let (dns_key, routing_key) = (key("dns_failover"), key("unhealthy_state_routing"));
        let changed = |key: &str| changes.iter().any(|(k, _)| k == key);
        if !changed(&dns_key) && !changed(&routing_key) {
            continue;
        }
        let dns_set =
            changed(&dns_key) || unit != "count" || attrs.get(&dns_key) != Some(DNS_COUNT_DEFAULT);
        if let (true, Some(dns), Some(routing)) =
            (dns_set, attrs.int(&dns_key), attrs.int(&routing_key))
            && dns < routing
        {
            return Err(ModelError::new(
                ErrorCode::InvalidConfigurationRequest,
                format!(
                    "The DNS failover threshold ({unit} {dns}) must be greater than or equal to \
                     the unhealthy state routing threshold ({unit} {routing})"
                ),
            ));
        }
    }
    Ok(())
}

/// A target group's balancing algorithm.
pub const ALGORITHM: &str = "load_balancing.algorithm.type";
/// `on`: a `weighted_random` group's anomalous targets get less traffic.
pub const ANOMALY_MITIGATION: &str = "load_balancing.algorithm.anomaly_mitigation";
const STICKINESS_TYPE: &str = "stickiness.type";
const APP_COOKIE_NAME: &str = "stickiness.app_cookie.cookie_name";

/// What AWS checks across the stickiness keys of an HTTP target group.
fn check_stickiness(attrs: &Attributes) -> Result<()> {
    let invalid = |message: String| {
        Err(ModelError::new(
            ErrorCode::InvalidConfigurationRequest,
            message,
        ))
    };
    let kind = attrs.get(STICKINESS_TYPE).unwrap_or("lb_cookie");
    if kind == "source_ip" {
        return invalid(
            "Stickiness type 'source_ip' is not supported for target groups with the HTTP \
             protocol"
                .into(),
        );
    }
    let name = attrs.get(APP_COOKIE_NAME).unwrap_or("");
    if ["AWSALB", "AWSALBAPP", "AWSALBTG"]
        .iter()
        .any(|p| name.starts_with(p))
    {
        return invalid(format!(
            "Application cookie name '{name}' cannot start with AWSALB, AWSALBAPP or AWSALBTG"
        ));
    }
    if attrs.flag("stickiness.enabled") && kind == "app_cookie" && name.is_empty() {
        return invalid(
            "You must set an application cookie name to enable stickiness of type 'app_cookie'"
                .into(),
        );
    }
    Ok(())
}

fn find<'a>(specs: &[&'a Spec], key: &str, what: &str) -> Result<&'a Spec> {
    specs.iter().copied().find(|s| s.key == key).ok_or_else(|| {
        ModelError::validation(format!("'{key}' is not a valid {what} attribute key"))
    })
}

fn check(spec: &Spec, value: &str, current: Option<&str>) -> Result<()> {
    let invalid = |why: String| {
        Err(ModelError::validation(format!(
            "Invalid value '{value}' for attribute '{}': {why}",
            spec.key
        )))
    };
    match spec.value {
        Value::Bool if value != "true" && value != "false" => {
            return invalid("must be true or false".into());
        }
        Value::Int(min, max) => match value.parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => {}
            _ => return invalid(format!("must be an integer from {min} to {max}")),
        },
        Value::OneOf(allowed) if !allowed.contains(&value) => {
            return invalid(format!("must be one of {}", allowed.join(", ")));
        }
        Value::OffOr(min, max) if value != "off" => match value.parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => {}
            _ => return invalid(format!("must be off or an integer from {min} to {max}")),
        },
        Value::SlowStart => match value.parse::<u64>() {
            Ok(n) if n == 0 || (30..=900).contains(&n) => {}
            _ => return invalid("must be 0 (off) or from 30 to 900".into()),
        },
        _ => {}
    }
    if !spec.honoured && Some(value) != current {
        return Err(ModelError::new(
            ErrorCode::InvalidConfigurationRequest,
            format!(
                "elbd does not implement attribute '{}' yet; only its current value '{}' is accepted",
                spec.key,
                current.unwrap_or(spec.default)
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
