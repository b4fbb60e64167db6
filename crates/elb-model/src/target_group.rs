//! Target groups and the targets registered with them.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::attributes::Attributes;
use crate::error::{ErrorCode, ModelError, Result};
use crate::health::Matcher;
use crate::state::{Origin, Tags};

/// The port GENEVE groups and their appliances use, as AWS's.
pub const GENEVE_PORT: u16 = 6081;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TargetGroupProtocol {
    Http,
    Https,
    Tcp,
    Tls,
    Udp,
    TcpUdp,
    Geneve,
}

impl TargetGroupProtocol {
    /// Parses a protocol name.
    pub fn parse_supported(s: &str) -> Result<Self> {
        let protocol = match s {
            "HTTP" => Self::Http,
            "HTTPS" => Self::Https,
            "TCP" => Self::Tcp,
            "TLS" => Self::Tls,
            "UDP" => Self::Udp,
            "TCP_UDP" => Self::TcpUdp,
            "GENEVE" => Self::Geneve,
            _ => {
                return Err(ModelError::validation(format!(
                    "Invalid target group protocol '{s}'"
                )));
            }
        };
        Ok(protocol)
    }

    /// UDP or TCP_UDP: groups that take datagrams.
    pub fn takes_datagrams(self) -> bool {
        matches!(self, Self::Udp | Self::TcpUdp)
    }

    /// HTTP or HTTPS: what application load balancers forward to.
    pub fn is_http(self) -> bool {
        matches!(self, Self::Http | Self::Https)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "HTTP",
            Self::Https => "HTTPS",
            Self::Tcp => "TCP",
            Self::Tls => "TLS",
            Self::Udp => "UDP",
            Self::TcpUdp => "TCP_UDP",
            Self::Geneve => "GENEVE",
        }
    }
}

/// `ProtocolVersion`: how an HTTP or HTTPS target group's requests reach its targets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ProtocolVersion {
    #[default]
    Http1,
    /// HTTP/2 to targets (prior knowledge in cleartext, ALPN h2 over TLS).
    Http2,
    /// gRPC: HTTP/2 POSTs, trailers passed through.
    Grpc,
}

impl ProtocolVersion {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "HTTP1" => Ok(Self::Http1),
            "HTTP2" => Ok(Self::Http2),
            "GRPC" => Ok(Self::Grpc),
            _ => Err(ModelError::validation(format!(
                "Invalid protocol version '{s}': must be HTTP1, HTTP2 or GRPC"
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http1 => "HTTP1",
            Self::Http2 => "HTTP2",
            Self::Grpc => "GRPC",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetType {
    Instance,
    Ip,
    Lambda,
    Alb,
}

impl TargetType {
    pub fn parse_supported(s: &str) -> Result<Self> {
        match s {
            "ip" => Ok(Self::Ip),
            "instance" => Ok(Self::Instance),
            "alb" => Ok(Self::Alb),
            "lambda" => Ok(Self::Lambda),
            _ => Err(ModelError::validation(format!(
                "Invalid target type '{s}': must be instance, ip, lambda or alb"
            ))),
        }
    }
}

/// The address family of a group's targets: `ipv6` groups take IPv6 addresses (`ip` targets)
/// and forward for dual-stack load balancers only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetIpAddressType {
    #[default]
    Ipv4,
    Ipv6,
}

impl TargetIpAddressType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ipv4 => "ipv4",
            Self::Ipv6 => "ipv6",
        }
    }

    /// Whether `ip` is of this family.
    pub fn fits(self, ip: IpAddr) -> bool {
        ip.is_ipv6() == (self == Self::Ipv6)
    }
}

/// What a registration names: an IP address, an instance by id, an application load
/// balancer of this region by ARN (`alb` target groups), or a Lambda function by ARN
/// (`lambda` groups).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TargetId {
    Ip(IpAddr),
    Instance(String),
    Alb(String),
    /// The node in `zone` of the application load balancer `alb`: what an `Alb` registration
    /// stands for where traffic and health checks go ([`crate::Region::expand`]); never
    /// registered itself.
    AlbNode {
        alb: String,
        zone: String,
    },
    /// A Lambda function by its ARN, as registered (a version or alias included).
    Lambda(String),
}

impl std::fmt::Display for TargetId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Ip(ip) => write!(f, "{ip}"),
            Self::Instance(id) | Self::Alb(id) | Self::Lambda(id) => f.write_str(id),
            Self::AlbNode { alb, zone } => write!(f, "{alb}@{zone}"),
        }
    }
}

/// A registered target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    pub id: TargetId,
    pub port: u16,
    /// The zone of the subnet holding the address, or `all` for addresses outside the VPC.
    pub availability_zone: String,
    /// Where traffic goes: the IP itself, or the instance's private address.
    pub address: IpAddr,
    /// Set by DeregisterTargets: the target drains (no new requests) until then (ms since the
    /// epoch), and is removed after.
    #[serde(default)]
    pub draining_until_ms: Option<u64>,
}

impl Registration {
    /// A key that names this target across snapshots, for runtime state kept beside them.
    pub fn key(&self, target_group_arn: &str) -> String {
        format!("{target_group_arn}#{}:{}", self.id, self.port)
    }

    pub fn is_draining(&self) -> bool {
        self.draining_until_ms.is_some()
    }
}

/// Health-check settings of a target group ([`HealthCheck::for_target_group`] has AWS's
/// defaults per protocol).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheck {
    pub enabled: bool,
    pub protocol: String,
    /// A port number, or `traffic-port` for the target's own port.
    pub port: String,
    pub path: String,
    pub interval_seconds: u16,
    pub timeout_seconds: u16,
    pub healthy_threshold: u16,
    pub unhealthy_threshold: u16,
    /// `HttpCode` of the matcher: `200`, `200,202`, `200-299`; empty for gRPC groups.
    pub http_code: String,
    /// `GrpcCode` of the matcher (gRPC groups only): `12`, `0-99`.
    #[serde(default)]
    pub grpc_code: String,
}

/// The health-check fields ModifyTargetGroup (or a config file) sets; `None` keeps the current.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HealthCheckChanges {
    pub enabled: Option<bool>,
    pub protocol: Option<String>,
    pub port: Option<String>,
    pub path: Option<String>,
    pub interval_seconds: Option<u16>,
    pub timeout_seconds: Option<u16>,
    pub healthy_threshold: Option<u16>,
    pub unhealthy_threshold: Option<u16>,
    pub http_code: Option<String>,
    pub grpc_code: Option<String>,
}

impl HealthCheck {
    /// `self` with `changes` applied, checked against AWS's rules for a target group of
    /// `group`'s protocol and target type.
    pub fn with(
        &self,
        (group, target_type): (TargetGroupProtocol, TargetType),
        changes: &HealthCheckChanges,
    ) -> Result<Self> {
        let mut next = self.merged(changes);
        if target_type == TargetType::Lambda {
            check_lambda_changes(changes)?;
            next.check_ranges(TargetGroupProtocol::Http)?;
            return Ok(next);
        }
        // A group's kind of matcher is fixed by its protocol version.
        let grpc = !self.grpc_code.is_empty();
        if (grpc && changes.http_code.is_some()) || (!grpc && changes.grpc_code.is_some()) {
            return Err(ModelError::validation(if grpc {
                "A GRPC target group's matcher is a GrpcCode, not an HttpCode"
            } else {
                "Only GRPC target groups take a GrpcCode matcher"
            }));
        }
        if next.protocol == "TCP" {
            // AWS refuses what a TCP check cannot use rather than keep it unused; what the
            // group had is set back to the defaults, which a later HTTP check starts from.
            if changes.path.is_some() {
                return Err(ModelError::validation(
                    "Health check path cannot be set for TCP health checks",
                ));
            }
            if changes.http_code.is_some() {
                return Err(ModelError::validation(
                    "Health check matcher cannot be set for TCP health checks",
                ));
            }
            next.path = "/".into();
            next.http_code = NETWORK_MATCHER.into();
        }
        // On an NLB's groups the default timeout follows the check's protocol (HTTP: 6 s,
        // TCP and HTTPS: 10 s) as long as the caller has not set it.
        if !group.is_http()
            && group != TargetGroupProtocol::Geneve
            && changes.timeout_seconds.is_none()
            && self.timeout_seconds == network_timeout(&self.protocol)
        {
            next.timeout_seconds = network_timeout(&next.protocol);
        }
        next.validate(group)?;
        Ok(next)
    }

    /// `self` with what `changes` sets.
    fn merged(&self, changes: &HealthCheckChanges) -> Self {
        Self {
            enabled: changes.enabled.unwrap_or(self.enabled),
            protocol: changes
                .protocol
                .clone()
                .unwrap_or_else(|| self.protocol.clone()),
            port: changes.port.clone().unwrap_or_else(|| self.port.clone()),
            path: changes.path.clone().unwrap_or_else(|| self.path.clone()),
            interval_seconds: changes.interval_seconds.unwrap_or(self.interval_seconds),
            timeout_seconds: changes.timeout_seconds.unwrap_or(self.timeout_seconds),
            healthy_threshold: changes.healthy_threshold.unwrap_or(self.healthy_threshold),
            unhealthy_threshold: changes
                .unhealthy_threshold
                .unwrap_or(self.unhealthy_threshold),
            http_code: changes
                .http_code
                .clone()
                .unwrap_or_else(|| self.http_code.clone()),
            grpc_code: changes
                .grpc_code
                .clone()
                .unwrap_or_else(|| self.grpc_code.clone()),
        }
    }

    fn validate(&self, group: TargetGroupProtocol) -> Result<()> {
        if !self.enabled {
            return Err(ModelError::new(
                ErrorCode::InvalidConfigurationRequest,
                "Health checks cannot be disabled for target groups of type instance or ip",
            ));
        }
        match self.protocol.as_str() {
            "HTTP" | "HTTPS" => {}
            "TCP" if group.is_http() => {
                return Err(ModelError::new(
                    ErrorCode::InvalidConfigurationRequest,
                    format!(
                        "TCP health checks are not supported for {} target groups",
                        group.as_str()
                    ),
                ));
            }
            "TCP" => {}
            other => {
                return Err(ModelError::validation(format!(
                    "Invalid health check protocol '{other}'"
                )));
            }
        }
        if self.port != "traffic-port" && !self.port.parse::<u16>().is_ok_and(|p| p > 0) {
            return Err(ModelError::validation(format!(
                "Health check port '{}' must be 'traffic-port' or from 1 to 65535",
                self.port
            )));
        }
        self.check_ranges(group)
    }

    /// The path, timings, thresholds and matcher, in AWS's ranges.
    fn check_ranges(&self, group: TargetGroupProtocol) -> Result<()> {
        let range = |name: &str, value: u16, min: u16, max: u16| {
            if (min..=max).contains(&value) {
                Ok(())
            } else {
                Err(ModelError::validation(format!(
                    "{name} must be from {min} to {max}, not {value}"
                )))
            }
        };
        if !self.path.starts_with('/') || self.path.len() > 1024 {
            return Err(ModelError::validation(
                "Health check path must start with '/' and be at most 1024 characters",
            ));
        }
        range("HealthCheckIntervalSeconds", self.interval_seconds, 5, 300)?;
        range("HealthCheckTimeoutSeconds", self.timeout_seconds, 2, 120)?;
        range("HealthyThresholdCount", self.healthy_threshold, 2, 10)?;
        range("UnhealthyThresholdCount", self.unhealthy_threshold, 2, 10)?;
        // An ALB's groups need the timeout below the interval; an NLB's allow them equal.
        if self.timeout_seconds > self.interval_seconds
            || (group.is_http() && self.timeout_seconds == self.interval_seconds)
        {
            return Err(ModelError::validation(if group.is_http() {
                "Health check timeout must be smaller than the interval"
            } else {
                "Health check timeout must not exceed the interval"
            }));
        }
        self.parse_matcher(group)?;
        Ok(())
    }

    /// HTTP codes 200-499 on an ALB's groups, 200-599 on an NLB's, 200-399 on a GWLB's
    /// (AWS's ranges).
    fn parse_matcher(&self, group: TargetGroupProtocol) -> Result<Matcher> {
        if !self.grpc_code.is_empty() {
            Matcher::parse_grpc(&self.grpc_code)
        } else if group == TargetGroupProtocol::Geneve {
            Matcher::parse_gateway(&self.http_code)
        } else if group.is_http() {
            Matcher::parse(&self.http_code)
        } else {
            Matcher::parse_network(&self.http_code)
        }
    }

    /// The port to probe a target registered on `traffic_port` on.
    pub fn port_for(&self, traffic_port: u16) -> u16 {
        self.port.parse().unwrap_or(traffic_port)
    }

    /// The status codes (HTTP, or gRPC for gRPC groups) a passing check answers with.
    pub fn matcher(&self) -> Matcher {
        // Validated when set, in the widest range of any group.
        self.parse_matcher(TargetGroupProtocol::Tcp)
            .expect("validated when set")
    }
}

impl HealthCheck {
    /// AWS's defaults for a target group: an ALB's checks speak the traffic's protocol; gRPC
    /// groups call `/AWS.ALB/healthcheck` and accept gRPC status 12 (unimplemented). An
    /// NLB's groups are checked by TCP connect, every 30 s with a 10 s timeout, except that
    /// an application load balancer as a target is checked with `GET /` over HTTP. A
    /// GWLB's appliances are checked by TCP connect to port 80 every 10 s, timeout 5 s.
    pub fn for_target_group(
        protocol: TargetGroupProtocol,
        version: ProtocolVersion,
        target_type: TargetType,
    ) -> Self {
        if target_type == TargetType::Lambda {
            // AWS's: off, and every 35 s with a 30 s timeout when turned on.
            return Self {
                enabled: false,
                interval_seconds: 35,
                timeout_seconds: 30,
                ..Self::default()
            };
        }
        if target_type == TargetType::Alb {
            return Self {
                protocol: "HTTP".into(),
                timeout_seconds: network_timeout("HTTP"),
                http_code: NETWORK_MATCHER.into(),
                ..Self::default()
            };
        }
        if protocol == TargetGroupProtocol::Geneve {
            // Appliances are checked apart from the GENEVE traffic, on port 80 by default.
            return Self {
                protocol: "TCP".into(),
                port: GENEVE_CHECK_PORT.into(),
                interval_seconds: 10,
                http_code: NETWORK_MATCHER.into(),
                ..Self::default()
            };
        }
        if !protocol.is_http() {
            return Self {
                protocol: "TCP".into(),
                timeout_seconds: network_timeout("TCP"),
                http_code: NETWORK_MATCHER.into(),
                ..Self::default()
            };
        }
        let defaults = Self {
            protocol: protocol.as_str().into(),
            ..Self::default()
        };
        match version {
            ProtocolVersion::Grpc => Self {
                path: "/AWS.ALB/healthcheck".into(),
                http_code: String::new(),
                grpc_code: "12".into(),
                ..defaults
            },
            _ => defaults,
        }
    }
}

/// A function's checks are an event to the path, judged by its status code: there is no
/// protocol, port or gRPC matcher to set.
fn check_lambda_changes(changes: &HealthCheckChanges) -> Result<()> {
    let unsettable = [
        ("protocol", changes.protocol.is_some()),
        ("port", changes.port.is_some()),
        ("gRPC matcher", changes.grpc_code.is_some()),
    ];
    match unsettable.iter().find(|(_, set)| *set) {
        Some((name, _)) => Err(ModelError::validation(format!(
            "A health check {name} cannot be set for target groups with target type 'lambda'"
        ))),
        None => Ok(()),
    }
}

/// Where a GENEVE group's appliances are checked unless set.
const GENEVE_CHECK_PORT: &str = "80";

/// The matcher of an NLB group's checks unless set.
const NETWORK_MATCHER: &str = "200-399";

/// AWS's default timeout of an NLB group's check of `protocol`.
fn network_timeout(protocol: &str) -> u16 {
    if protocol == "HTTP" { 6 } else { 10 }
}

impl Default for HealthCheck {
    fn default() -> Self {
        Self {
            enabled: true,
            protocol: "HTTP".into(),
            port: "traffic-port".into(),
            path: "/".into(),
            interval_seconds: 30,
            timeout_seconds: 5,
            healthy_threshold: 5,
            unhealthy_threshold: 2,
            http_code: "200".into(),
            grpc_code: String::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetGroup {
    pub arn: String,
    pub name: String,
    pub protocol: TargetGroupProtocol,
    #[serde(default)]
    pub protocol_version: ProtocolVersion,
    pub port: u16,
    pub vpc_id: String,
    pub target_type: TargetType,
    #[serde(default)]
    pub ip_address_type: TargetIpAddressType,
    pub attributes: Attributes,
    #[serde(default)]
    pub health_check: HealthCheck,
    pub targets: Vec<Registration>,
    #[serde(default)]
    pub tags: Tags,
    pub origin: Origin,
}

impl TargetGroup {
    /// The target group's cross-zone setting resolved against its load balancer's.
    pub fn cross_zone(&self, load_balancer_cross_zone: bool) -> bool {
        match self.attributes.get("load_balancing.cross_zone.enabled") {
            Some("true") => true,
            Some("false") => false,
            _ => load_balancer_cross_zone,
        }
    }
}

/// A Lambda function as a `lambda` group's target names it:
/// `arn:aws:lambda:REGION:ACCOUNT:function:NAME`, with a version or alias after a last `:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionArn {
    pub region: String,
    pub account: String,
    pub name: String,
    pub qualifier: Option<String>,
}

impl FunctionArn {
    /// Parses a function ARN as Lambda's API patterns have it: names of letters, digits,
    /// hyphens and underscores (1–64), qualifiers of those and `$` (1–128).
    pub fn parse(arn: &str) -> Result<Self> {
        let invalid = || ModelError::validation(format!("'{arn}' is not a Lambda function ARN"));
        let mut parts = arn.split(':');
        let (Some("arn"), Some(_partition), Some("lambda"), Some(region), Some(account)) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(invalid());
        };
        let (Some("function"), Some(name)) = (parts.next(), parts.next()) else {
            return Err(invalid());
        };
        let qualifier = parts.next();
        let word = |s: &str, max: usize, extra: &[u8]| {
            (1..=max).contains(&s.len())
                && s.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || extra.contains(&b)
                })
        };
        let valid = parts.next().is_none()
            && crate::names::is_region_name(region)
            && account.len() == 12
            && account.bytes().all(|b| b.is_ascii_digit())
            && word(name, 64, b"")
            && qualifier.is_none_or(|q| word(q, 128, b"$"));
        if !valid {
            return Err(invalid());
        }
        Ok(Self {
            region: region.to_owned(),
            account: account.to_owned(),
            name: name.to_owned(),
            qualifier: qualifier.map(str::to_owned),
        })
    }
}
