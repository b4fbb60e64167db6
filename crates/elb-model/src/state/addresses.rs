//! Elastic IPs: AllocateAddress, ReleaseAddress, AssociateAddress, DisassociateAddress, and
//! the addresses network load balancers' subnet mappings choose for their nodes.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::Ipv6Net;

use super::load_balancers::Addressing;
use super::{Outcome, Region, SourceNatPrefix, SubnetMapping, Tags};
use crate::alloc;
use crate::error::{ErrorCode, ModelError, Result};
use crate::id::Context;
use crate::load_balancer::{IpAddressType, LoadBalancerKind, Scheme};
use crate::network::{Associated, EipAssociation, ElasticIp, InstanceState, Subnet};
use crate::node::Node;

/// What a subnet mapping chose for the node of its subnet.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct NodeAddresses<'a> {
    pub(super) private_ipv4: Option<Ipv4Addr>,
    /// The Elastic IP's allocation id.
    pub(super) allocation_id: Option<&'a str>,
    pub(super) ipv6: Option<Ipv6Addr>,
    pub(super) source_nat_prefix: Option<Ipv6Net>,
}

impl Region {
    pub(super) fn allocate_address(&mut self, cx: &mut Context<'_>) -> Result<Outcome> {
        let pool = self.eip_pool.ok_or_else(|| {
            ModelError::new(
                ErrorCode::AddressLimitExceeded,
                format!(
                    "region {} has no Elastic IP pool (name one with eip_cidr in the config \
                     file's settings)",
                    self.scope.region
                ),
            )
        })?;
        // The pool is the user's to choose: it may overlap subnets, here or in other regions.
        let nodes = self.nodes.values().flat_map(Node::ipv4_addresses);
        let instances = self.instances.values().map(|i| i.private_ip);
        let targets = self.target_groups.values().flat_map(|tg| {
            tg.targets.iter().filter_map(|t| match t.address {
                IpAddr::V4(ip) => Some(ip),
                IpAddr::V6(_) => None,
            })
        });
        let used: BTreeSet<Ipv4Addr> = self
            .addresses
            .values()
            .map(|a| a.public_ip)
            .chain(nodes)
            .chain(self.beyond.node_addresses.iter().copied())
            .chain(instances)
            .chain(targets)
            .collect();
        let public_ip = alloc::lowest_free(pool, &used).ok_or_else(|| {
            ModelError::new(
                ErrorCode::AddressLimitExceeded,
                format!("the Elastic IP pool {pool} is out of addresses"),
            )
        })?;
        let allocation_id = format!("eipalloc-{}", cx.hex(17));
        self.addresses.insert(
            allocation_id.clone(),
            ElasticIp {
                allocation_id: allocation_id.clone(),
                public_ip,
                association: None,
                tags: Tags::new(),
            },
        );
        Ok(Outcome::Created(allocation_id))
    }

    pub(super) fn release_address(&mut self, allocation_id: &str) -> Result<Outcome> {
        let address = self.address(allocation_id)?;
        if let Some(association) = &address.association {
            return Err(in_use(address, &association.to));
        }
        self.addresses.remove(allocation_id);
        Ok(Outcome::Done)
    }

    pub(super) fn associate_address(
        &mut self,
        allocation_id: &str,
        instance_id: &str,
        allow_reassociation: bool,
        cx: &mut Context<'_>,
    ) -> Result<Outcome> {
        match self.instances.get(instance_id).map(|i| i.state) {
            None => {
                return Err(ModelError::new(
                    ErrorCode::InvalidInstanceIdNotFound,
                    format!("The instance ID '{instance_id}' does not exist"),
                ));
            }
            Some(InstanceState::Terminated) => {
                return Err(ModelError::new(
                    ErrorCode::IncorrectInstanceState,
                    format!("The instance '{instance_id}' is terminated"),
                ));
            }
            Some(_) => {}
        }
        let address = self.address(allocation_id)?;
        match address.association.as_ref().map(|a| &a.to) {
            Some(node @ Associated::Node(_)) => return Err(in_use(address, node)),
            Some(Associated::Instance(_)) if !allow_reassociation => {
                return Err(ModelError::new(
                    ErrorCode::ResourceAlreadyAssociated,
                    format!("The address {} is already associated", address.public_ip),
                ));
            }
            _ => {}
        }
        // An instance holds one Elastic IP: the one it had lets go.
        for other in self.addresses.values_mut() {
            if other.association.as_ref().map(|a| &a.to)
                == Some(&Associated::Instance(instance_id.to_owned()))
            {
                other.association = None;
            }
        }
        let id = format!("eipassoc-{}", cx.hex(17));
        let address = self.addresses.get_mut(allocation_id).expect("found above");
        address.association = Some(EipAssociation {
            id: id.clone(),
            to: Associated::Instance(instance_id.to_owned()),
        });
        Ok(Outcome::Created(id))
    }

    pub(super) fn disassociate_address(&mut self, association_id: &str) -> Result<Outcome> {
        let address = self
            .addresses
            .values_mut()
            .find(|a| {
                a.association
                    .as_ref()
                    .is_some_and(|s| s.id == association_id)
            })
            .ok_or_else(|| {
                ModelError::new(
                    ErrorCode::InvalidAssociationIdNotFound,
                    format!("The association ID '{association_id}' does not exist"),
                )
            })?;
        let association = address.association.as_ref().expect("found by it");
        if let Associated::Node(_) = association.to {
            let address = address.clone();
            return Err(in_use(&address, &association.to));
        }
        address.association = None;
        Ok(Outcome::Done)
    }

    /// The addresses each subnet's node gets from `mappings`, checked as AWS does: Elastic
    /// IPs for internet-facing network load balancers (existing, free, one per node), private
    /// addresses for internal ones (in the subnet, free, not reserved), IPv6 addresses for
    /// dual-stack ones (in the subnet's IPv6 block, free, not reserved) and source NAT
    /// prefixes where they are on (a free /80 of that block).
    pub(super) fn check_subnet_mappings<'a>(
        &self,
        kind: LoadBalancerKind,
        (scheme, addressing): (Scheme, Addressing),
        mappings: &'a [SubnetMapping],
    ) -> Result<BTreeMap<&'a str, NodeAddresses<'a>>> {
        let mut chosen = BTreeMap::new();
        for m in mappings {
            let chooses = m.allocation_id.is_some()
                || m.private_ipv4.is_some()
                || m.ipv6.is_some()
                || m.source_nat_ipv6_prefix.is_some();
            if !chooses {
                continue;
            }
            let Some(subnet) = self.subnets.get(&m.subnet_id) else {
                return Err(ModelError::validation(format!(
                    "Subnet mapping '{}' is not one of the load balancer's subnets",
                    m.subnet_id
                )));
            };
            if kind != LoadBalancerKind::Network {
                return Err(ModelError::validation(
                    "Subnet mappings can choose addresses for network load balancers only",
                ));
            }
            if let Some(id) = &m.allocation_id {
                if scheme != Scheme::InternetFacing {
                    return Err(ModelError::validation(
                        "Elastic IP addresses can be assigned to internet-facing load \
                         balancers only",
                    ));
                }
                let address = self.addresses.get(id).ok_or_else(|| {
                    ModelError::new(
                        ErrorCode::AllocationIdNotFound,
                        format!("Elastic IP allocation '{id}' not found"),
                    )
                })?;
                if address.association.is_some() {
                    return Err(ModelError::new(
                        ErrorCode::InvalidConfigurationRequest,
                        format!("Elastic IP allocation '{id}' is already associated"),
                    ));
                }
                let twice = chosen
                    .values()
                    .any(|n: &NodeAddresses<'_>| n.allocation_id == Some(id.as_str()));
                if twice {
                    return Err(ModelError::validation(format!(
                        "Elastic IP allocation '{id}' is given for two subnets"
                    )));
                }
            }
            if let Some(ip) = m.private_ipv4 {
                if scheme != Scheme::Internal {
                    return Err(ModelError::validation(
                        "Private IPv4 addresses can be assigned to internal load balancers only",
                    ));
                }
                if !subnet.cidr.contains(&ip) || alloc::is_reserved(subnet.cidr, ip) {
                    return Err(ModelError::new(
                        ErrorCode::InvalidConfigurationRequest,
                        format!(
                            "The private IPv4 address {ip} is not a usable address of subnet \
                             '{}' ({})",
                            m.subnet_id, subnet.cidr
                        ),
                    ));
                }
                if self.used_addresses(subnet).contains(&ip) {
                    return Err(ModelError::new(
                        ErrorCode::InvalidConfigurationRequest,
                        format!("The private IPv4 address {ip} is already in use"),
                    ));
                }
            }
            if let Some(ip) = m.ipv6 {
                self.check_node_ipv6(subnet, addressing.ip, ip)?;
            }
            if let Some(prefix) = m.source_nat_ipv6_prefix {
                self.check_source_nat_prefix(subnet, addressing, prefix, m.ipv6)?;
            }
            let addresses = NodeAddresses {
                private_ipv4: m.private_ipv4,
                allocation_id: m.allocation_id.as_deref(),
                ipv6: m.ipv6,
                source_nat_prefix: m.source_nat_ipv6_prefix.and_then(SourceNatPrefix::given),
            };
            chosen.insert(m.subnet_id.as_str(), addresses);
        }
        Ok(chosen)
    }

    /// A mapping's `IPv6Address`: for a dual-stack load balancer, a usable address of the
    /// subnet's IPv6 block that no node or target has.
    pub(super) fn check_node_ipv6(
        &self,
        subnet: &Subnet,
        ip_address_type: IpAddressType,
        ip: Ipv6Addr,
    ) -> Result<()> {
        if ip_address_type == IpAddressType::Ipv4 {
            return Err(ModelError::new(
                ErrorCode::InvalidConfigurationRequest,
                format!("The IPv6 address {ip} can be assigned only to a dualstack load balancer"),
            ));
        }
        let usable = subnet
            .ipv6_cidr
            .is_some_and(|c| c.contains(&ip) && !alloc::is_reserved_v6(c, ip));
        if !usable {
            let block = subnet.ipv6_cidr.map_or("none".into(), |c| c.to_string());
            return Err(ModelError::new(
                ErrorCode::InvalidConfigurationRequest,
                format!(
                    "The IPv6 address {ip} is not a usable address of subnet '{}' (IPv6 block: \
                     {block})",
                    subnet.id
                ),
            ));
        }
        let in_prefix = self.source_nat_prefixes().iter().any(|p| p.contains(&ip));
        if in_prefix || self.used_ipv6_addresses().contains(&ip) {
            return Err(ModelError::new(
                ErrorCode::InvalidConfigurationRequest,
                format!("The IPv6 address {ip} is already in use (or in a source NAT prefix)"),
            ));
        }
        Ok(())
    }

    /// A mapping's `SourceNatIpv6Prefix`: where prefixes are on, `auto_assigned` or a /80 of
    /// the subnet's IPv6 block, neither the first nor the last (which hold reserved addresses),
    /// that is no other node's and holds no node's or target's address, nor `own`, the node's.
    pub(super) fn check_source_nat_prefix(
        &self,
        subnet: &Subnet,
        addressing: Addressing,
        prefix: SourceNatPrefix,
        own: Option<Ipv6Addr>,
    ) -> Result<()> {
        let refused = |message: String| {
            Err(ModelError::new(
                ErrorCode::InvalidConfigurationRequest,
                message,
            ))
        };
        if !addressing.source_nat {
            return refused(format!(
                "The source NAT prefix of subnet '{}' needs EnablePrefixForIpv6SourceNat on",
                subnet.id
            ));
        }
        let SourceNatPrefix::Given(prefix) = prefix else {
            return Ok(());
        };
        let usable = subnet.ipv6_cidr.is_some_and(|c| {
            c.contains(&prefix)
                && !prefix.contains(&c.network())
                && !prefix.contains(&c.broadcast())
        });
        if prefix.prefix_len() != 80 || prefix.trunc() != prefix || !usable {
            let block = subnet.ipv6_cidr.map_or("none".into(), |c| c.to_string());
            return refused(format!(
                "The source NAT prefix {prefix} is not a usable /80 of subnet '{}' (IPv6 block: \
                 {block}; its first and last /80s hold reserved addresses)",
                subnet.id
            ));
        }
        let taken = self.source_nat_prefixes().contains(&prefix)
            || self
                .used_ipv6_addresses()
                .iter()
                .chain(&own)
                .any(|ip| prefix.contains(ip));
        if taken {
            return refused(format!(
                "The source NAT prefix {prefix} is already in use, or holds an address in use"
            ));
        }
        Ok(())
    }

    /// The nodes' source NAT prefixes: address space no node address or target may take.
    pub(super) fn source_nat_prefixes(&self) -> Vec<Ipv6Net> {
        self.nodes
            .values()
            .filter_map(|n| n.source_nat_ipv6_prefix)
            .collect()
    }

    /// The IPv6 addresses nodes and targets hold: Amazon-provided blocks are unique to a VPC of
    /// one region, so this region's are all there are.
    pub(super) fn used_ipv6_addresses(&self) -> BTreeSet<Ipv6Addr> {
        let targets = self.target_groups.values().flat_map(|tg| {
            tg.targets.iter().filter_map(|t| match t.address {
                IpAddr::V6(ip) => Some(ip),
                IpAddr::V4(_) => None,
            })
        });
        self.nodes
            .values()
            .filter_map(|n| n.ipv6)
            .chain(targets)
            .collect()
    }

    /// Whether the nodes of `lb_arn` hold the addresses `mappings` choose: a repeated create
    /// names the same ones.
    pub(super) fn holds_mappings(&self, lb_arn: &str, mappings: &[SubnetMapping]) -> bool {
        mappings.iter().all(|m| {
            let node = self.nodes_of(lb_arn).find(|n| n.subnet_id == m.subnet_id);
            node.is_some_and(|n| {
                let eip = self.elastic_ip_of(&n.id).map(|a| a.allocation_id.as_str());
                m.allocation_id.as_deref().is_none_or(|id| eip == Some(id))
                    && m.private_ipv4.is_none_or(|ip| n.private_ipv4 == ip)
                    && m.ipv6.is_none_or(|ip| n.ipv6 == Some(ip))
                    && m.source_nat_ipv6_prefix.is_none_or(|p| match p {
                        SourceNatPrefix::AutoAssigned => n.source_nat_ipv6_prefix.is_some(),
                        SourceNatPrefix::Given(p) => n.source_nat_ipv6_prefix == Some(p),
                    })
            })
        })
    }

    /// Lets go of the Elastic IPs of nodes that no longer exist.
    pub(super) fn release_gone_nodes(&mut self) {
        let nodes = &self.nodes;
        for address in self.addresses.values_mut() {
            let gone = matches!(
                address.association.as_ref().map(|a| &a.to),
                Some(Associated::Node(node)) if !nodes.contains_key(node)
            );
            if gone {
                address.association = None;
            }
        }
    }

    /// The Elastic IP a load balancer node holds, if any.
    pub fn elastic_ip_of(&self, node_id: &str) -> Option<&ElasticIp> {
        self.addresses.values().find(|a| {
            a.association
                .as_ref()
                .is_some_and(|s| s.to == Associated::Node(node_id.to_owned()))
        })
    }

    fn address(&self, allocation_id: &str) -> Result<&ElasticIp> {
        self.addresses.get(allocation_id).ok_or_else(|| {
            ModelError::new(
                ErrorCode::InvalidAllocationIdNotFound,
                format!("The allocation ID '{allocation_id}' does not exist"),
            )
        })
    }
}

fn in_use(address: &ElasticIp, to: &Associated) -> ModelError {
    let holder = match to {
        Associated::Instance(id) => format!("instance {id}"),
        Associated::Node(id) => format!("load balancer node {id}"),
    };
    ModelError::new(
        ErrorCode::InvalidIpAddressInUse,
        format!(
            "The address {} ({}) is in use by {holder}",
            address.public_ip, address.allocation_id
        ),
    )
}
