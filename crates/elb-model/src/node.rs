//! A load balancer node: the LB's presence in one availability zone, with its own addresses.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::Ipv6Net;
use serde::{Deserialize, Serialize};

/// Where a node runs. Empty host and namespace mean "this elbd process, root namespace";
/// multi-host deployments fill them in so each host binds only its own nodes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    pub host: String,
    pub netns: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// `node-` followed by 17 hex digits; stable for the life of the node.
    pub id: String,
    pub load_balancer_arn: String,
    pub availability_zone: String,
    pub subnet_id: String,
    /// From the subnet, allocated from the top of its range.
    pub private_ipv4: Ipv4Addr,
    /// From the subnet's IPv6 block, for dual-stack load balancers.
    pub ipv6: Option<Ipv6Addr>,
    /// The address DNS answers with for internet-facing LBs, once public pools exist.
    pub public_ipv4: Option<Ipv4Addr>,
    /// A /80 of the subnet's IPv6 block (`EnablePrefixForIpv6SourceNat`).
    #[serde(default)]
    pub source_nat_ipv6_prefix: Option<Ipv6Net>,
    pub placement: Placement,
}

impl Node {
    /// Every address the node listens on: private, public, then IPv6.
    pub fn addresses(&self) -> impl Iterator<Item = IpAddr> {
        self.ipv4_addresses()
            .map(IpAddr::V4)
            .chain(self.ipv6.map(IpAddr::V6))
    }

    /// Where the node connects to targets from: for IPv6 ones, the first address of its
    /// source NAT prefix if it has one, else its IPv6 address (a dual-stack node's;
    /// forwarding to IPv6 targets needs one); for IPv4 ones its private address.
    pub fn source(&self, to_ipv6: bool) -> IpAddr {
        let nat = self
            .source_nat_ipv6_prefix
            .map(|p| Ipv6Addr::from(u128::from(p.network()) + 1));
        match nat.or(self.ipv6) {
            Some(ipv6) if to_ipv6 => IpAddr::V6(ipv6),
            _ => IpAddr::V4(self.private_ipv4),
        }
    }

    /// The node's IPv4 addresses: private, then public.
    pub fn ipv4_addresses(&self) -> impl Iterator<Item = Ipv4Addr> {
        std::iter::once(self.private_ipv4).chain(self.public_ipv4)
    }
}
