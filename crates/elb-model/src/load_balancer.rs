//! Load balancers: their type, scheme, addressing, subnets and lifecycle state.

use serde::{Deserialize, Serialize};

use crate::attributes::Attributes;
use crate::error::{ModelError, Result};
use crate::state::{Origin, Tags};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LoadBalancerKind {
    Application,
    Network,
    Gateway,
}

impl LoadBalancerKind {
    /// The type segment of ARNs: `app`, `net`, `gwy`.
    pub fn arn_segment(self) -> &'static str {
        match self {
            Self::Application => "app",
            Self::Network => "net",
            Self::Gateway => "gwy",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Application => "application",
            Self::Network => "network",
            Self::Gateway => "gateway",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "application" => Ok(Self::Application),
            "network" => Ok(Self::Network),
            "gateway" => Ok(Self::Gateway),
            _ => Err(ModelError::validation(format!(
                "Invalid load balancer type '{s}': must be application, network or gateway"
            ))),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Scheme {
    #[serde(rename = "internet-facing")]
    InternetFacing,
    #[serde(rename = "internal")]
    Internal,
}

impl Scheme {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "internet-facing" => Ok(Self::InternetFacing),
            "internal" => Ok(Self::Internal),
            _ => Err(ModelError::new(
                crate::ErrorCode::InvalidScheme,
                format!("Invalid scheme '{s}': must be internet-facing or internal"),
            )),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IpAddressType {
    Ipv4,
    Dualstack,
    DualstackWithoutPublicIpv4,
}

impl IpAddressType {
    /// AWS's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ipv4 => "ipv4",
            Self::Dualstack => "dualstack",
            Self::DualstackWithoutPublicIpv4 => "dualstack-without-public-ipv4",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadBalancerState {
    /// Created; its nodes are not serving yet.
    Provisioning,
    /// Every node has bound its listeners.
    Active,
    /// Some listener could not be bound (the reason says which); it is retried.
    ActiveImpaired,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadBalancer {
    pub arn: String,
    pub name: String,
    pub kind: LoadBalancerKind,
    pub scheme: Scheme,
    pub ip_address_type: IpAddressType,
    pub vpc_id: String,
    /// One per enabled availability zone; each has a node.
    pub subnet_ids: Vec<String>,
    pub security_groups: Vec<String>,
    /// Created with security groups: a network load balancer may then have them changed (or
    /// removed, and given again) at any time; one created without never takes any. (Absent
    /// from records written before it was kept: [`LoadBalancer::takes_security_groups`]
    /// reads those by the groups they have.)
    #[serde(default)]
    pub created_with_security_groups: bool,
    /// `EnforceSecurityGroupInboundRulesOnPrivateLinkTraffic` of a network load balancer
    /// with security groups (AWS's default: on). Recorded and echoed: elbd serves network
    /// load balancers over no PrivateLink, so it decides nothing here.
    #[serde(default = "on")]
    pub privatelink_inbound_rules: bool,
    /// `EnablePrefixForIpv6SourceNat` of a dual-stack network load balancer: each node has a
    /// /80 of its subnet's IPv6 block that its flows to IPv6 targets leave from (UDP
    /// listeners need it, as on AWS).
    #[serde(default)]
    pub ipv6_source_nat: bool,
    pub state: LoadBalancerState,
    /// AWS's `State.Reason`: why the state is what it is, when there is something to say.
    #[serde(default)]
    pub state_reason: Option<String>,
    pub dns_name: String,
    pub created_ms: u64,
    pub attributes: Attributes,
    #[serde(default)]
    pub tags: Tags,
    pub origin: Origin,
}

impl LoadBalancer {
    /// Whether SetSecurityGroups may give it security groups (AWS: not a network load
    /// balancer created without any).
    pub fn takes_security_groups(&self) -> bool {
        self.kind != LoadBalancerKind::Network
            || self.created_with_security_groups
            || !self.security_groups.is_empty()
    }

    /// `app/NAME/HEX16`, the id CloudWatch and listener ARNs use.
    pub fn resource_id(&self) -> &str {
        self.arn
            .split_once(":loadbalancer/")
            .map_or(self.arn.as_str(), |(_, id)| id)
    }

    /// Whether this LB's nodes may send to every AZ (ALB: always; NLB, GWLB: the attribute).
    pub fn cross_zone(&self) -> bool {
        self.kind == LoadBalancerKind::Application
            || self.attributes.flag("load_balancing.cross_zone.enabled")
    }
}

fn on() -> bool {
    true
}
