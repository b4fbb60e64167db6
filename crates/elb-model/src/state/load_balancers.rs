//! CreateLoadBalancer, DeleteLoadBalancer, activation and attributes.

use std::collections::BTreeSet;

use super::addresses::NodeAddresses;
use super::{CreateLoadBalancer, Outcome, Region, SubnetMapping, Tags};
use crate::alloc;
use crate::attributes;
use crate::error::{ErrorCode, ModelError, Result};
use crate::id::Context;
use crate::limits;
use crate::load_balancer::{
    IpAddressType, LoadBalancer, LoadBalancerKind, LoadBalancerState, Scheme,
};
use crate::names;
use crate::network::{Associated, EipAssociation};
use crate::node::{Node, Placement};
use crate::target_group::TargetId;

impl Region {
    pub(super) fn create_load_balancer(
        &mut self,
        c: CreateLoadBalancer,
        cx: &mut Context<'_>,
    ) -> Result<Outcome> {
        names::check_load_balancer_name(&c.name)?;
        if c.kind == LoadBalancerKind::Gateway && c.scheme.is_some() {
            return Err(ModelError::validation(
                "A scheme cannot be specified for gateway load balancers",
            ));
        }
        // A gateway has no scheme; its nodes have private addresses only, as internal ones.
        let scheme = c.scheme.unwrap_or(match c.kind {
            LoadBalancerKind::Gateway => Scheme::Internal,
            _ => Scheme::InternetFacing,
        });
        let ip_address_type = c.ip_address_type.unwrap_or(IpAddressType::Ipv4);
        if ip_address_type != IpAddressType::Ipv4 {
            return Err(ModelError::new(
                ErrorCode::InvalidConfigurationRequest,
                "elbd supports only the ipv4 IP address type so far",
            ));
        }
        let subnets = self.check_subnets(&c.subnet_ids, c.kind)?;
        let vpc_id = subnets[0].1.clone();
        let security_groups =
            self.check_security_groups(c.kind, c.security_groups.as_deref(), &vpc_id)?;

        if let Some(existing) = self.load_balancer_by_name(&c.name) {
            let same = existing.kind == c.kind
                && existing.scheme == scheme
                && existing.subnet_ids == c.subnet_ids
                && existing.security_groups == security_groups
                && self.holds_mappings(&existing.arn, &c.subnet_mappings);
            return if same {
                Ok(Outcome::Created(existing.arn.clone()))
            } else {
                Err(ModelError::new(
                    ErrorCode::DuplicateLoadBalancerName,
                    format!("A load balancer with the name '{}' already exists", c.name),
                ))
            };
        }
        let mapped = self.check_subnet_mappings(c.kind, scheme, &c.subnet_mappings)?;
        if self.load_balancers.len() >= self.quotas.load_balancers_per_region {
            return Err(ModelError::new(
                ErrorCode::TooManyLoadBalancers,
                format!(
                    "The quota of {} load balancers per region is reached",
                    self.quotas.load_balancers_per_region
                ),
            ));
        }

        let arn = self.scope.arn(&format!(
            "loadbalancer/{}/{}/{}",
            c.kind.arn_segment(),
            c.name,
            cx.hex16()
        ));
        let (region, domain) = (&self.scope.region, &self.scope.dns_domain);
        let dns_name = match c.kind {
            LoadBalancerKind::Application => names::alb_dns_name(
                scheme == Scheme::Internal,
                &c.name,
                cx.dns_digits(),
                region,
                domain,
            ),
            _ => names::nlb_dns_name(&c.name, &cx.hex16(), region, domain),
        };
        for (subnet_id, _) in &subnets {
            let chosen = mapped.get(subnet_id.as_str()).copied().unwrap_or_default();
            self.add_node(&arn, scheme, subnet_id, chosen, cx)?;
        }
        self.load_balancers.insert(
            arn.clone(),
            LoadBalancer {
                arn: arn.clone(),
                name: c.name,
                kind: c.kind,
                scheme,
                ip_address_type,
                vpc_id,
                subnet_ids: c.subnet_ids,
                security_groups,
                privatelink_inbound_rules: true,
                state: LoadBalancerState::Provisioning,
                state_reason: None,
                dns_name,
                created_ms: cx.now_ms,
                attributes: attributes::load_balancer_defaults(c.kind, scheme),
                tags: Tags::new(),
                origin: c.origin,
            },
        );
        Ok(Outcome::Created(arn))
    }

    /// Subnets exist, share one VPC, cover distinct zones, enough of them for the type.
    /// Returns (subnet id, vpc id) pairs in the order given.
    fn check_subnets(
        &self,
        ids: &[String],
        kind: LoadBalancerKind,
    ) -> Result<Vec<(String, String)>> {
        let mut zones = BTreeSet::new();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let subnet = self.subnets.get(id).ok_or_else(|| {
                ModelError::new(
                    ErrorCode::SubnetNotFound,
                    format!("The subnet ID '{id}' is not valid"),
                )
            })?;
            if !zones.insert(subnet.availability_zone.as_str()) {
                return Err(ModelError::new(
                    ErrorCode::InvalidConfigurationRequest,
                    format!(
                        "You can specify only one subnet per Availability Zone; {} is given twice",
                        subnet.availability_zone
                    ),
                ));
            }
            if let Some((_, vpc)) = out.first()
                && *vpc != subnet.vpc_id
            {
                return Err(ModelError::new(
                    ErrorCode::InvalidConfigurationRequest,
                    "All subnets must belong to the same VPC",
                ));
            }
            out.push((id.clone(), subnet.vpc_id.clone()));
        }
        let min = if kind == LoadBalancerKind::Application {
            limits::MIN_ALB_ZONES
        } else {
            1
        };
        if zones.len() < min {
            return Err(ModelError::validation(format!(
                "At least {min} subnets in different Availability Zones must be specified"
            )));
        }
        Ok(out)
    }

    fn check_security_groups(
        &self,
        kind: LoadBalancerKind,
        given: Option<&[String]>,
        vpc_id: &str,
    ) -> Result<Vec<String>> {
        match (kind, given) {
            (LoadBalancerKind::Gateway, Some(_)) => Err(ModelError::validation(
                "Security groups are not supported for gateway load balancers",
            )),
            (LoadBalancerKind::Application, None) => Ok(self
                .security_groups
                .values()
                .filter(|sg| sg.vpc_id == vpc_id && sg.name == "default")
                .map(|sg| sg.id.clone())
                .collect()),
            (_, None) => Ok(Vec::new()),
            (_, Some(ids)) => {
                for id in ids {
                    match self.security_groups.get(id) {
                        Some(sg) if sg.vpc_id == vpc_id => {}
                        _ => {
                            return Err(ModelError::new(
                                ErrorCode::InvalidSecurityGroup,
                                format!("Security group '{id}' does not exist in VPC '{vpc_id}'"),
                            ));
                        }
                    }
                }
                Ok(ids.to_vec())
            }
        }
    }

    /// Makes the node of `lb_arn` in `subnet_id`, with the addresses `chosen` (checked by
    /// [`Region::check_subnet_mappings`]) or else the highest free address of the subnet and,
    /// for internet-facing load balancers, the highest free address of the zone's public pool.
    fn add_node(
        &mut self,
        lb_arn: &str,
        scheme: Scheme,
        subnet_id: &str,
        chosen: NodeAddresses<'_>,
        cx: &mut Context<'_>,
    ) -> Result<()> {
        let subnet = &self.subnets[subnet_id];
        let exhausted = |range: &str| {
            ModelError::new(
                ErrorCode::InvalidSubnet,
                format!("The {range} is out of available addresses"),
            )
        };
        let ip = match chosen.private_ipv4 {
            Some(ip) => ip,
            None => alloc::highest_free(subnet.cidr, &self.used_addresses(subnet))
                .ok_or_else(|| exhausted(&format!("subnet '{subnet_id}'")))?,
        };
        let node_id = format!("node-{}", cx.hex(17));
        let elastic = chosen.allocation_id.map(|id| &self.addresses[id]);
        let public_ipv4 = match self.public_pools.get(&subnet.availability_zone) {
            _ if elastic.is_some() => elastic.map(|a| a.public_ip),
            Some(pool) if scheme == Scheme::InternetFacing => {
                // A pool may lie in a subnet someone made, here or in another region.
                let used = self
                    .nodes
                    .values()
                    .flat_map(Node::addresses)
                    .chain(self.beyond.node_addresses.iter().copied())
                    .chain(self.addresses.values().map(|a| a.public_ip))
                    .collect();
                let public = alloc::highest_free(*pool, &used).ok_or_else(|| {
                    exhausted(&format!(
                        "public pool {pool} of {}",
                        subnet.availability_zone
                    ))
                })?;
                Some(public)
            }
            _ => None,
        };
        if let Some(id) = chosen.allocation_id {
            let association = EipAssociation {
                id: format!("eipassoc-{}", cx.hex(17)),
                to: Associated::Node(node_id.clone()),
            };
            self.addresses.get_mut(id).expect("checked").association = Some(association);
        }
        let node = Node {
            id: node_id,
            load_balancer_arn: lb_arn.to_owned(),
            availability_zone: subnet.availability_zone.clone(),
            subnet_id: subnet_id.to_owned(),
            private_ipv4: ip,
            ipv6: None,
            public_ipv4,
            placement: Placement::default(),
        };
        self.nodes.insert(node.id.clone(), node);
        Ok(())
    }

    /// Deleting a load balancer that does not exist succeeds, as on AWS.
    pub(super) fn delete_load_balancer(&mut self, arn: &str) -> Result<Outcome> {
        let Some(lb) = self.load_balancers.get(arn) else {
            return Ok(Outcome::Done);
        };
        let as_target = TargetId::Alb(arn.to_owned());
        if let Some(tg) = self.target_groups.values().find(|tg| {
            tg.targets
                .iter()
                .any(|r| r.id == as_target && !r.is_draining())
        }) {
            return Err(ModelError::new(
                ErrorCode::ResourceInUse,
                format!(
                    "Load balancer '{arn}' is a target of target group '{}'; deregister it first",
                    tg.arn
                ),
            ));
        }
        if let Some(service) = self
            .endpoint_services
            .values()
            .find(|s| s.gateway_load_balancer_arns.iter().any(|a| a == arn))
        {
            return Err(ModelError::new(
                ErrorCode::ResourceInUse,
                format!(
                    "Load balancer '{arn}' is offered by endpoint service '{}'; remove it from \
                     the service first",
                    service.id
                ),
            ));
        }
        if lb.attributes.flag("deletion_protection.enabled") {
            return Err(ModelError::new(
                ErrorCode::OperationNotPermitted,
                format!(
                    "Load balancer '{arn}' cannot be deleted because deletion protection is enabled"
                ),
            ));
        }
        self.load_balancers.remove(arn);
        let listeners: Vec<String> = self.listeners_of(arn).map(|l| l.arn.clone()).collect();
        self.rules
            .retain(|_, r| !listeners.contains(&r.listener_arn));
        self.listeners.retain(|_, l| l.load_balancer_arn != arn);
        self.nodes.retain(|_, n| n.load_balancer_arn != arn);
        self.release_gone_nodes();
        Ok(Outcome::Done)
    }

    /// SetSubnets: nodes are made for zones added and removed for zones dropped.
    pub(super) fn set_subnets(
        &mut self,
        arn: &str,
        subnet_ids: Vec<String>,
        mappings: &[SubnetMapping],
        cx: &mut Context<'_>,
    ) -> Result<Outcome> {
        let lb = self.load_balancers.get(arn).ok_or_else(|| not_found(arn))?;
        let checked = self.check_subnets(&subnet_ids, lb.kind)?;
        let (kind, scheme) = (lb.kind, lb.scheme);
        // A kept zone's node keeps its addresses: a mapping may repeat them, not change them.
        let (kept, added): (Vec<SubnetMapping>, Vec<SubnetMapping>) = mappings
            .iter()
            .cloned()
            .partition(|m| self.nodes_of(arn).any(|n| n.subnet_id == m.subnet_id));
        if let Some(m) = kept
            .iter()
            .find(|m| !self.holds_mappings(arn, std::slice::from_ref(m)))
        {
            return Err(ModelError::validation(format!(
                "The node in subnet '{}' keeps its addresses: a subnet mapping cannot change them",
                m.subnet_id
            )));
        }
        if checked[0].1 != lb.vpc_id {
            return Err(ModelError::new(
                ErrorCode::InvalidConfigurationRequest,
                format!(
                    "The subnets must be in the VPC of the load balancer, '{}'",
                    lb.vpc_id
                ),
            ));
        }
        self.nodes
            .retain(|_, n| n.load_balancer_arn != arn || subnet_ids.contains(&n.subnet_id));
        // The addresses of the nodes that went are free for the new ones.
        self.release_gone_nodes();
        let chosen = self.check_subnet_mappings(kind, scheme, &added)?;
        for subnet_id in &subnet_ids {
            if !self.nodes_of(arn).any(|n| &n.subnet_id == subnet_id) {
                let addresses = chosen.get(subnet_id.as_str()).copied().unwrap_or_default();
                self.add_node(arn, scheme, subnet_id, addresses, cx)?;
            }
        }
        self.load_balancers
            .get_mut(arn)
            .expect("checked above")
            .subnet_ids = subnet_ids;
        Ok(Outcome::Done)
    }

    /// SetSecurityGroups. As on AWS, a network load balancer created without security
    /// groups cannot be given some later, and only network load balancers take
    /// `EnforceSecurityGroupInboundRulesOnPrivateLinkTraffic`.
    pub(super) fn set_security_groups(
        &mut self,
        arn: &str,
        groups: &[String],
        privatelink_inbound_rules: Option<bool>,
    ) -> Result<Outcome> {
        let lb = self.load_balancers.get(arn).ok_or_else(|| not_found(arn))?;
        if privatelink_inbound_rules.is_some() && lb.kind != LoadBalancerKind::Network {
            return Err(ModelError::validation(
                "EnforceSecurityGroupInboundRulesOnPrivateLinkTraffic applies to network load \
                 balancers only",
            ));
        }
        if lb.kind == LoadBalancerKind::Network && lb.security_groups.is_empty() {
            return Err(ModelError::new(
                ErrorCode::InvalidConfigurationRequest,
                "A network load balancer created without security groups cannot have them added",
            ));
        }
        if lb.kind == LoadBalancerKind::Application && groups.is_empty() {
            return Err(ModelError::validation(
                "An application load balancer needs at least one security group",
            ));
        }
        let checked = self.check_security_groups(lb.kind, Some(groups), &lb.vpc_id.clone())?;
        let lb = self.load_balancers.get_mut(arn).expect("checked above");
        lb.security_groups = checked;
        if let Some(on) = privatelink_inbound_rules {
            lb.privatelink_inbound_rules = on;
        }
        Ok(Outcome::Done)
    }

    pub(super) fn activate_load_balancer(
        &mut self,
        arn: &str,
        reason: Option<String>,
    ) -> Result<Outcome> {
        // Reported by the host that bound its listeners: one deleted meanwhile is left be.
        let Some(lb) = self.load_balancers.get_mut(arn) else {
            return Ok(Outcome::Done);
        };
        if matches!(
            lb.state,
            LoadBalancerState::Provisioning | LoadBalancerState::Active
        ) {
            lb.state = LoadBalancerState::Active;
            lb.state_reason = reason;
        }
        Ok(Outcome::Done)
    }

    pub(super) fn modify_load_balancer_attributes(
        &mut self,
        arn: &str,
        changes: &[(String, String)],
    ) -> Result<Outcome> {
        let lb = self.load_balancer_mut(arn)?;
        lb.attributes = attributes::modify_load_balancer(&lb.attributes, lb.kind, changes)?;
        Ok(Outcome::Done)
    }

    fn load_balancer_mut(&mut self, arn: &str) -> Result<&mut LoadBalancer> {
        self.load_balancers
            .get_mut(arn)
            .ok_or_else(|| not_found(arn))
    }
}

pub(super) fn not_found(arn: &str) -> ModelError {
    ModelError::new(
        ErrorCode::LoadBalancerNotFound,
        format!("Load balancer '{arn}' not found"),
    )
}
