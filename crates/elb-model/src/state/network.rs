//! Seeding the default VPC, subnets and security group, and the addresses in use per subnet.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use super::{Outcome, Region, Tags};
use crate::error::Result;
use crate::id::Context;
use crate::network::{
    IngressRule, IngressSource, InstanceState, SecurityGroup, Subnet, Topology, Vpc, VpcAttributes,
};
use crate::node::Node;

impl Region {
    pub(super) fn seed_network(
        &mut self,
        topology: &Topology,
        cx: &mut Context<'_>,
    ) -> Result<Outcome> {
        if self.default_vpc().is_some() {
            return Ok(Outcome::Done);
        }
        topology.validate()?;
        self.eip_pool = topology.eip_cidr;
        let vpc_id = format!("vpc-{}", cx.hex(17));
        for zone in &topology.zones {
            if let Some(pool) = zone.public_cidr {
                self.public_pools.insert(zone.name.clone(), pool);
            }
            let id = format!("subnet-{}", cx.hex(17));
            self.subnets.insert(
                id.clone(),
                Subnet {
                    id,
                    vpc_id: vpc_id.clone(),
                    availability_zone: zone.name.clone(),
                    cidr: zone.cidr,
                    ipv6_cidr: None,
                    default_for_az: true,
                    tags: Tags::new(),
                },
            );
        }
        let sg_id = format!("sg-{}", cx.hex(17));
        self.security_groups.insert(
            sg_id.clone(),
            SecurityGroup {
                id: sg_id,
                name: "default".into(),
                vpc_id: vpc_id.clone(),
                description: "default VPC security group".into(),
                // A documented deviation: AWS's default group admits only its own members;
                // elbd's admits everyone so that the quick start works.
                ingress: vec![IngressRule {
                    protocol: "-1".into(),
                    from_port: 0,
                    to_port: 65535,
                    source: IngressSource::Cidr("0.0.0.0/0".parse().expect("constant CIDR")),
                    description: None,
                }],
                egress: IngressRule::allow_all(),
                tags: Tags::new(),
            },
        );
        self.vpcs.insert(
            vpc_id.clone(),
            Vpc {
                id: vpc_id,
                cidr_blocks: topology.zones.iter().map(|z| z.cidr).collect(),
                ipv6_cidr_blocks: Vec::new(),
                is_default: true,
                instance_tenancy: Default::default(),
                attributes: VpcAttributes {
                    enable_dns_hostnames: true,
                    ..VpcAttributes::default()
                },
                tags: Tags::new(),
            },
        );
        Ok(Outcome::Done)
    }

    /// The subnet of `vpc_id` that holds `ip`.
    pub fn subnet_containing(&self, vpc_id: &str, ip: IpAddr) -> Option<&Subnet> {
        self.subnets
            .values()
            .find(|s| s.vpc_id == vpc_id && s.contains(ip))
    }

    /// Every address of `subnet` taken by a node or a registered target.
    pub(super) fn used_addresses(&self, subnet: &Subnet) -> BTreeSet<Ipv4Addr> {
        let nodes = self
            .nodes
            .values()
            .flat_map(Node::ipv4_addresses)
            .chain(self.beyond.node_addresses.iter().copied())
            .map(IpAddr::V4);
        let targets = self
            .target_groups
            .values()
            .flat_map(|tg| tg.targets.iter().map(|t| t.address));
        let instances = self
            .instances
            .values()
            .filter(|i| i.state != InstanceState::Terminated)
            .map(|i| IpAddr::V4(i.private_ip));
        // The Elastic IP pool may overlap a subnet.
        let elastic = self.addresses.values().map(|a| IpAddr::V4(a.public_ip));
        nodes
            .chain(targets)
            .chain(instances)
            .chain(elastic)
            .filter(|ip| subnet.contains(*ip))
            .filter_map(|ip| match ip {
                IpAddr::V4(v4) => Some(v4),
                IpAddr::V6(_) => None,
            })
            .collect()
    }
}
