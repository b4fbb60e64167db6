//! The EC2 side of the model: VPCs, subnets in availability zones, security groups, and the
//! topology that seeds the default VPC.

use std::net::{IpAddr, Ipv4Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use crate::state::Tags;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vpc {
    pub id: String,
    /// AWS allows several IPv4 blocks per VPC; the default VPC has one per default subnet.
    pub cidr_blocks: Vec<Ipv4Net>,
    /// Amazon-provided IPv6 blocks (/56s of [`AMAZON_IPV6_POOL`]), none unless asked for.
    #[serde(default)]
    pub ipv6_cidr_blocks: Vec<Ipv6Net>,
    pub is_default: bool,
    /// Where instances launched into it run; recorded and echoed, as nothing runs here.
    #[serde(default)]
    pub instance_tenancy: Tenancy,
    /// DescribeVpcAttribute's switches, recorded and echoed (elbd runs no VPC DNS).
    #[serde(default)]
    pub attributes: VpcAttributes,
    #[serde(default)]
    pub tags: Tags,
}

impl Vpc {
    /// Whether `ip` is in one of the VPC's blocks (in a subnet or not).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(v4) => self.cidr_blocks.iter().any(|c| c.contains(&v4)),
            IpAddr::V6(v6) => self.ipv6_cidr_blocks.iter().any(|c| c.contains(&v6)),
        }
    }
}

/// A VPC's DNS and metrics switches, with AWS's defaults for a VPC one creates (the default
/// VPC has DNS hostnames on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VpcAttributes {
    pub enable_dns_support: bool,
    pub enable_dns_hostnames: bool,
    pub enable_network_address_usage_metrics: bool,
}

impl Default for VpcAttributes {
    fn default() -> Self {
        Self {
            enable_dns_support: true,
            enable_dns_hostnames: false,
            enable_network_address_usage_metrics: false,
        }
    }
}

/// A VPC's `InstanceTenancy` (`host` is refused for VPCs by AWS too).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tenancy {
    #[default]
    Default,
    Dedicated,
}

impl Tenancy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::Dedicated => "dedicated",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subnet {
    pub id: String,
    pub vpc_id: String,
    pub availability_zone: String,
    pub cidr: Ipv4Net,
    /// A /64 of its VPC's IPv6 block, when the subnet has one: what dual-stack load
    /// balancers' nodes take their IPv6 addresses from.
    #[serde(default)]
    pub ipv6_cidr: Option<Ipv6Net>,
    pub default_for_az: bool,
    #[serde(default)]
    pub tags: Tags,
}

impl Subnet {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(v4) => self.cidr.contains(&v4),
            IpAddr::V6(v6) => self.ipv6_cidr.is_some_and(|c| c.contains(&v6)),
        }
    }
}

/// Where Amazon-provided IPv6 blocks come from here: unique local addresses (RFC 4193), a /56
/// per VPC, the first free one of any region.
pub const AMAZON_IPV6_POOL: &str = "fd00:ec2::/32";

/// One ingress rule: a protocol (`-1` = all, `tcp`, `udp`, `icmp`), a port range (ignored
/// for `-1`), and where traffic may come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngressRule {
    pub protocol: String,
    pub from_port: u16,
    pub to_port: u16,
    pub source: IngressSource,
    /// The caller's note, echoed; it is not part of what the rule matches.
    #[serde(default)]
    pub description: Option<String>,
}

impl IngressRule {
    /// Every protocol, everywhere: AWS's egress rule of a new group.
    pub fn allow_all() -> Vec<Self> {
        vec![Self::anywhere(IpNet::V4(Ipv4Net::default()))]
    }

    /// AWS's egress rules of a new group in a VPC with IPv6: to every IPv4 and every IPv6
    /// address.
    pub fn allow_all_dual_stack() -> Vec<Self> {
        vec![
            Self::anywhere(IpNet::V4(Ipv4Net::default())),
            Self::anywhere(IpNet::V6(Ipv6Net::default())),
        ]
    }

    fn anywhere(cidr: IpNet) -> Self {
        Self {
            protocol: "-1".into(),
            from_port: 0,
            to_port: 65535,
            source: IngressSource::Cidr(cidr),
            description: None,
        }
    }

    /// Whether the rule covers `protocol` ("tcp" or "udp") to `port`.
    pub fn covers(&self, protocol: &str, port: u16) -> bool {
        self.protocol == "-1"
            || (self.protocol == protocol && (self.from_port..=self.to_port).contains(&port))
    }

    /// Whether the two admit the same traffic (descriptions aside), as EC2 finds duplicates
    /// and the rule a revoke names.
    pub fn same_permission(&self, other: &Self) -> bool {
        (&self.protocol, self.from_port, self.to_port, &self.source)
            == (
                &other.protocol,
                other.from_port,
                other.to_port,
                &other.source,
            )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum IngressSource {
    /// An IPv4 or IPv6 range (`IpRanges`, `Ipv6Ranges`).
    Cidr(IpNet),
    /// Members of a security group: instances and LB nodes that carry it.
    Group(String),
}

/// An EC2 instance as elbd models it: a record with a private address in a subnet. No machine
/// is started; an instance target routes to `private_ip` while the instance is running.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    pub id: String,
    pub subnet_id: String,
    pub vpc_id: String,
    pub availability_zone: String,
    pub private_ip: Ipv4Addr,
    /// As given to RunInstances; nothing boots from it.
    pub image_id: String,
    pub instance_type: String,
    pub state: InstanceState,
    pub security_groups: Vec<String>,
    pub launched_ms: u64,
    /// RunInstances' idempotency token: a retried call returns the same instances.
    #[serde(default)]
    pub client_token: Option<String>,
    #[serde(default)]
    pub options: InstanceOptions,
    #[serde(default)]
    pub tags: Tags,
}

/// RunInstances' settings that have no effect without a machine, kept to be echoed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceOptions {
    pub key_name: Option<String>,
    /// `Placement.Tenancy`; the VPC's when not given.
    pub tenancy: Option<Tenancy>,
    pub monitoring: bool,
    pub ebs_optimized: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InstanceState {
    Running,
    Stopped,
    Terminated,
}

impl InstanceState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Stopped => "stopped",
            Self::Terminated => "terminated",
        }
    }

    /// EC2's numeric state code.
    pub fn code(self) -> u8 {
        match self {
            Self::Running => 16,
            Self::Stopped => 80,
            Self::Terminated => 48,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityGroup {
    pub id: String,
    pub name: String,
    pub vpc_id: String,
    pub description: String,
    pub ingress: Vec<IngressRule>,
    /// Where members may connect to (a rule's `source` is then its destination). A new group
    /// may connect anywhere, as AWS's.
    #[serde(default = "IngressRule::allow_all")]
    pub egress: Vec<IngressRule>,
    #[serde(default)]
    pub tags: Tags,
}

/// One availability zone of the seed topology and the CIDR of its default subnet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZoneSpec {
    pub name: String,
    pub cidr: Ipv4Net,
    /// Where internet-facing nodes in this zone get their public address (the one DNS answers
    /// with); none: they answer with their private address.
    #[serde(default)]
    pub public_cidr: Option<Ipv4Net>,
}

/// The network elbd creates on first start: a default VPC with one default subnet per zone,
/// and the pool Elastic IPs come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topology {
    pub zones: Vec<ZoneSpec>,
    /// Where AllocateAddress takes addresses; none: the region has no Elastic IPs.
    #[serde(default)]
    pub eip_cidr: Option<Ipv4Net>,
}

/// The Elastic IP pool of the home region unless the file names one.
pub const DEFAULT_EIP_CIDR: Ipv4Net = match Ipv4Net::new(Ipv4Addr::new(127, 100, 0, 0), 16) {
    Ok(net) => net,
    Err(_) => panic!("a /16"),
};

/// An Elastic IP address (EC2's AllocateAddress), from the region's pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ElasticIp {
    /// `eipalloc-` followed by 17 hex digits.
    pub allocation_id: String,
    pub public_ip: Ipv4Addr,
    pub association: Option<EipAssociation>,
    #[serde(default)]
    pub tags: Tags,
}

/// What an Elastic IP is associated with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EipAssociation {
    /// `eipassoc-` followed by 17 hex digits.
    pub id: String,
    pub to: Associated,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Associated {
    /// An instance (AssociateAddress): a record, so nothing answers on the address.
    Instance(String),
    /// A network load balancer's node (a subnet mapping's `AllocationId`), by node id: the
    /// node listens on it and DNS answers with it.
    Node(String),
}

impl Default for Topology {
    /// us-east-1a/b/c on 127.1/16, 127.2/16 and 127.3/16: loopback ranges that bind on any
    /// Linux machine with no setup.
    fn default() -> Self {
        Self::loopback("us-east-1", 0).expect("slot 0 exists")
    }
}

impl Topology {
    /// The most loopback layouts [`Topology::loopback`] has.
    pub const LOOPBACK_SLOTS: u8 = 31;

    /// Zones `REGION`a/b/c on loopback /16s, by slot: slot 0 is today's us-east-1 layout
    /// (127.1–3, public 127.101–103); slot k ≥ 1 takes 127.(10+3(k−1)+j) and public
    /// 127.(110+3(k−1)+j) for zone j, so slots 1–30 fill 127.10–99 and 127.110–199. None beyond.
    pub fn loopback(region: &str, slot: u8) -> Option<Self> {
        let (private, public) = match slot {
            0 => (1, 101),
            k if k < Self::LOOPBACK_SLOTS => (10 + 3 * (k - 1), 110 + 3 * (k - 1)),
            _ => return None,
        };
        let zones = (0..3u8)
            .map(|j| ZoneSpec {
                name: format!("{region}{}", char::from(b'a' + j)),
                cidr: Ipv4Net::new(Ipv4Addr::new(127, private + j, 0, 0), 16).expect("/16"),
                public_cidr: Some(
                    Ipv4Net::new(Ipv4Addr::new(127, public + j, 0, 0), 16).expect("/16"),
                ),
            })
            .collect();
        // Slots 1-30 take 127.201-230, beyond every zone range above.
        let eip = if slot == 0 { 100 } else { 200 + slot };
        let eip_cidr = Some(Ipv4Net::new(Ipv4Addr::new(127, eip, 0, 0), 16).expect("/16"));
        Some(Self { zones, eip_cidr })
    }

    /// Every range of the topology: private, public and Elastic IPs.
    pub fn ranges(&self) -> impl Iterator<Item = Ipv4Net> + '_ {
        self.zones
            .iter()
            .flat_map(|z| std::iter::once(z.cidr).chain(z.public_cidr))
            .chain(self.eip_cidr)
    }

    /// Zone names unique, CIDRs (private and public) disjoint, at least one zone.
    pub fn validate(&self) -> Result<()> {
        if self.zones.is_empty() {
            return Err(ModelError::validation(
                "the topology needs at least one zone",
            ));
        }
        for (i, a) in self.zones.iter().enumerate() {
            if a.cidr.prefix_len() > 28 {
                return Err(ModelError::validation(format!(
                    "zone {}: subnet {} is smaller than /28, AWS's minimum",
                    a.name, a.cidr
                )));
            }
            if self.zones[i + 1..].iter().any(|b| b.name == a.name) {
                return Err(ModelError::validation(format!(
                    "zone {} is listed twice",
                    a.name
                )));
            }
        }
        let ranges: Vec<(String, Ipv4Net)> = self
            .zones
            .iter()
            .flat_map(|z| {
                std::iter::once(z.cidr)
                    .chain(z.public_cidr)
                    .map(move |c| (format!("zone {}", z.name), c))
            })
            .chain(self.eip_cidr.map(|c| ("the Elastic IP pool".to_owned(), c)))
            .collect();
        for (i, (a_name, a)) in ranges.iter().enumerate() {
            for (b_name, b) in &ranges[i + 1..] {
                if a.contains(&b.network()) || b.contains(&a.network()) {
                    return Err(ModelError::validation(format!(
                        "{a_name} and {b_name}: the ranges {a} and {b} overlap"
                    )));
                }
            }
        }
        Ok(())
    }
}
