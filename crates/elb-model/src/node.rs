//! A load balancer node: the LB's presence in one availability zone, with its own addresses.

use std::net::{Ipv4Addr, Ipv6Addr};

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
    pub ipv6: Option<Ipv6Addr>,
    /// The address DNS answers with for internet-facing LBs, once public pools exist.
    pub public_ipv4: Option<Ipv4Addr>,
    pub placement: Placement,
}

impl Node {
    /// Every address the node listens on: private, then public.
    pub fn addresses(&self) -> impl Iterator<Item = Ipv4Addr> {
        std::iter::once(self.private_ipv4).chain(self.public_ipv4)
    }
}
