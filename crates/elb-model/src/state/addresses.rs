//! Elastic IPs: AllocateAddress, ReleaseAddress, AssociateAddress, DisassociateAddress, and
//! the addresses network load balancers' subnet mappings choose for their nodes.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use super::{Outcome, Region, SubnetMapping, Tags};
use crate::alloc;
use crate::error::{ErrorCode, ModelError, Result};
use crate::id::Context;
use crate::load_balancer::{LoadBalancerKind, Scheme};
use crate::network::{Associated, EipAssociation, ElasticIp, InstanceState};
use crate::node::Node;

/// What a subnet mapping chose for the node of its subnet.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct NodeAddresses<'a> {
    pub(super) private_ipv4: Option<Ipv4Addr>,
    /// The Elastic IP's allocation id.
    pub(super) allocation_id: Option<&'a str>,
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
        let nodes = self.nodes.values().flat_map(Node::addresses);
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
    /// addresses for internal ones (in the subnet, free, not reserved).
    pub(super) fn check_subnet_mappings<'a>(
        &self,
        kind: LoadBalancerKind,
        scheme: Scheme,
        mappings: &'a [SubnetMapping],
    ) -> Result<BTreeMap<&'a str, NodeAddresses<'a>>> {
        let mut chosen = BTreeMap::new();
        for m in mappings {
            if m.allocation_id.is_none() && m.private_ipv4.is_none() {
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
            let addresses = NodeAddresses {
                private_ipv4: m.private_ipv4,
                allocation_id: m.allocation_id.as_deref(),
            };
            chosen.insert(m.subnet_id.as_str(), addresses);
        }
        Ok(chosen)
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
