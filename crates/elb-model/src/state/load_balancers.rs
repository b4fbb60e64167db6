//! CreateLoadBalancer, DeleteLoadBalancer, activation and attributes.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv6Addr;

use super::addresses::NodeAddresses;
use super::{CreateLoadBalancer, Outcome, Region, SourceNatPrefix, SubnetMapping, Tags, listeners};
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
use crate::target_group::{TargetId, TargetIpAddressType};

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
        let addressing = Addressing {
            ip: c.ip_address_type.unwrap_or(IpAddressType::Ipv4),
            source_nat: c.ipv6_source_nat.unwrap_or(false),
        };
        check_addressing(c.kind, scheme, addressing)?;
        let subnets = self.check_subnets(&c.subnet_ids, c.kind)?;
        self.check_ipv6_blocks(addressing.ip, &c.subnet_ids)?;
        let vpc_id = subnets[0].1.clone();
        let security_groups =
            self.check_security_groups(c.kind, c.security_groups.as_deref(), &vpc_id)?;

        if let Some(existing) = self.load_balancer_by_name(&c.name) {
            let same = existing.kind == c.kind
                && existing.scheme == scheme
                && existing.ip_address_type == addressing.ip
                && existing.ipv6_source_nat == addressing.source_nat
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
        let mapped =
            self.check_subnet_mappings(c.kind, (scheme, addressing), &c.subnet_mappings)?;
        let quota = self.quotas.load_balancers_of(c.kind);
        let of_kind = self.load_balancers.values().filter(|lb| lb.kind == c.kind);
        if of_kind.count() >= quota {
            return Err(ModelError::new(
                ErrorCode::TooManyLoadBalancers,
                format!(
                    "The quota of {quota} {} load balancers per region is reached",
                    c.kind.as_str()
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
            self.add_node(&arn, (scheme, addressing), subnet_id, chosen, cx)?;
        }
        self.load_balancers.insert(
            arn.clone(),
            LoadBalancer {
                arn: arn.clone(),
                name: c.name,
                kind: c.kind,
                scheme,
                ip_address_type: addressing.ip,
                ipv6_source_nat: addressing.source_nat,
                vpc_id,
                subnet_ids: c.subnet_ids,
                created_with_security_groups: !security_groups.is_empty(),
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

    /// A dual-stack load balancer's subnets each have an IPv6 block.
    fn check_ipv6_blocks(
        &self,
        ip_address_type: IpAddressType,
        subnet_ids: &[String],
    ) -> Result<()> {
        if ip_address_type == IpAddressType::Ipv4 {
            return Ok(());
        }
        match subnet_ids
            .iter()
            .find(|id| self.subnets.get(*id).is_some_and(|s| s.ipv6_cidr.is_none()))
        {
            Some(id) => Err(ModelError::new(
                ErrorCode::InvalidSubnet,
                format!(
                    "Subnet '{id}' has no IPv6 CIDR block: a {} load balancer needs one in \
                     each of its subnets",
                    ip_address_type.as_str()
                ),
            )),
            None => Ok(()),
        }
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
    /// for internet-facing load balancers with public IPv4, the highest free address of the
    /// zone's public pool, and for dual-stack ones the highest free one of the IPv6 block.
    fn add_node(
        &mut self,
        lb_arn: &str,
        (scheme, addressing): (Scheme, Addressing),
        subnet_id: &str,
        chosen: NodeAddresses<'_>,
        cx: &mut Context<'_>,
    ) -> Result<()> {
        let subnet = &self.subnets[subnet_id];
        let ip = match chosen.private_ipv4 {
            Some(ip) => ip,
            None => alloc::highest_free(subnet.cidr, &self.used_addresses(subnet))
                .ok_or_else(|| exhausted(&format!("subnet '{subnet_id}'")))?,
        };
        let node_id = format!("node-{}", cx.hex(17));
        let elastic = chosen.allocation_id.map(|id| &self.addresses[id]);
        let public_ipv4 = match elastic {
            Some(a) => Some(a.public_ip),
            None if has_public_ipv4(scheme, addressing.ip) => {
                self.free_public_ipv4(&subnet.availability_zone)?
            }
            None => None,
        };
        let ipv6 = match (addressing.ip, chosen.ipv6) {
            (IpAddressType::Ipv4, _) => None,
            (_, Some(ip)) => Some(ip),
            _ => Some(self.free_node_ipv6(subnet_id, chosen.source_nat_prefix)?),
        };
        let source_nat_ipv6_prefix = match (addressing.source_nat, chosen.source_nat_prefix) {
            (false, _) => None,
            (true, Some(prefix)) => Some(prefix),
            (true, None) => Some(self.free_source_nat_prefix(subnet_id, ipv6)?),
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
            ipv6,
            public_ipv4,
            source_nat_ipv6_prefix,
            placement: Placement::default(),
        };
        self.nodes.insert(node.id.clone(), node);
        Ok(())
    }

    /// The highest free address of `zone`'s public pool, if the zone has one. A pool may lie
    /// in a subnet someone made, here or in another region.
    fn free_public_ipv4(&self, zone: &str) -> Result<Option<std::net::Ipv4Addr>> {
        let Some(pool) = self.public_pools.get(zone) else {
            return Ok(None);
        };
        let used = self
            .nodes
            .values()
            .flat_map(Node::ipv4_addresses)
            .chain(self.beyond.node_addresses.iter().copied())
            .chain(self.addresses.values().map(|a| a.public_ip))
            .collect();
        alloc::highest_free(*pool, &used)
            .map(Some)
            .ok_or_else(|| exhausted(&format!("public pool {pool} of {zone}")))
    }

    /// The lowest /80 of the subnet's IPv6 block past the first that holds no node's or
    /// target's address (nor `own`, the address of the node it is for) and is no node's
    /// source NAT prefix.
    fn free_source_nat_prefix(
        &self,
        subnet_id: &str,
        own: Option<Ipv6Addr>,
    ) -> Result<ipnet::Ipv6Net> {
        let block = self.subnets[subnet_id]
            .ipv6_cidr
            .expect("dual-stack subnets are checked to have an IPv6 block");
        let mut used = self.used_ipv6_addresses();
        used.extend(own);
        alloc::lowest_free_prefix(
            block,
            SOURCE_NAT_PREFIX_LEN,
            &self.source_nat_prefixes(),
            &used,
        )
        .ok_or_else(|| exhausted(&format!("IPv6 block of subnet '{subnet_id}'")))
    }

    /// The highest free address of the subnet's IPv6 block (checked to exist) outside every
    /// source NAT prefix, the nodes' and `own`, the one the node it is for takes.
    fn free_node_ipv6(&self, subnet_id: &str, own: Option<ipnet::Ipv6Net>) -> Result<Ipv6Addr> {
        let block = self.subnets[subnet_id]
            .ipv6_cidr
            .expect("dual-stack subnets are checked to have an IPv6 block");
        let mut prefixes = self.source_nat_prefixes();
        prefixes.extend(own);
        alloc::highest_free_v6(block, &self.used_ipv6_addresses(), &prefixes)
            .ok_or_else(|| exhausted(&format!("IPv6 block of subnet '{subnet_id}'")))
    }

    /// SetIpAddressType: the nodes take IPv6 addresses (dual-stack) or give them up (ipv4,
    /// once source NAT prefixes are off), and give up their public IPv4 addresses
    /// (`dualstack-without-public-ipv4`) or take them again. An Elastic IP a node holds stays
    /// with it.
    pub(super) fn set_ip_address_type(
        &mut self,
        arn: &str,
        ip_address_type: IpAddressType,
    ) -> Result<Outcome> {
        let lb = self.load_balancers.get(arn).ok_or_else(|| not_found(arn))?;
        let subnet_ids = lb.subnet_ids.clone();
        let addressing = Addressing {
            ip: ip_address_type,
            source_nat: lb.ipv6_source_nat,
        };
        self.check_addressing_change(arn, addressing, &subnet_ids)?;
        self.readdress_nodes(arn, addressing, &BTreeMap::new())?;
        Ok(Outcome::Done)
    }

    /// Whether `arn` may be addressed so in `subnet_ids`: the addressing fits the load
    /// balancer, the subnets have IPv6 blocks if dual-stack, no listener forwards to IPv6
    /// targets if ipv4, and a UDP one has source NAT prefixes if dual-stack.
    fn check_addressing_change(
        &self,
        arn: &str,
        addressing: Addressing,
        subnet_ids: &[String],
    ) -> Result<()> {
        let lb = &self.load_balancers[arn];
        check_addressing(lb.kind, lb.scheme, addressing)?;
        self.check_ipv6_blocks(addressing.ip, subnet_ids)?;
        if addressing.ip == IpAddressType::Ipv4
            && let Some(tg) = self
                .target_groups_of(arn)
                .find(|tg| tg.ip_address_type == TargetIpAddressType::Ipv6)
        {
            return Err(ModelError::new(
                ErrorCode::InvalidConfigurationRequest,
                format!(
                    "Load balancer '{arn}' forwards to target group '{}', which has IPv6 targets: \
                     it stays dualstack",
                    tg.name
                ),
            ));
        }
        self.listeners_of(arn)
            .try_for_each(|l| listeners::check_datagrams(addressing, l.protocol))
    }

    /// Addresses the nodes of `arn` and the load balancer as `addressing` says: IPv6
    /// addresses and source NAT prefixes (`chosen` by subnet, or the highest free ones) or
    /// none, public IPv4 addresses or none. What a node has and keeps, it keeps.
    fn readdress_nodes(
        &mut self,
        arn: &str,
        addressing: Addressing,
        chosen: &BTreeMap<String, NodeAddresses<'_>>,
    ) -> Result<()> {
        let scheme = self.load_balancers[arn].scheme;
        let nodes: Vec<String> = self.nodes_of(arn).map(|n| n.id.clone()).collect();
        for id in nodes {
            let node = &self.nodes[&id];
            let choice = chosen.get(&node.subnet_id).copied().unwrap_or_default();
            let ipv6 = match (addressing.ip, node.ipv6, choice.ipv6) {
                (IpAddressType::Ipv4, ..) => None,
                (_, Some(kept), _) | (_, None, Some(kept)) => Some(kept),
                _ => Some(self.free_node_ipv6(&node.subnet_id, choice.source_nat_prefix)?),
            };
            let prefix = match (addressing.source_nat, node.source_nat_ipv6_prefix) {
                (false, _) => None,
                (true, Some(kept)) => Some(kept),
                (true, None) => match choice.source_nat_prefix {
                    Some(prefix) => Some(prefix),
                    None => Some(self.free_source_nat_prefix(&node.subnet_id, ipv6)?),
                },
            };
            let public_ipv4 = match (self.elastic_ip_of(&id), node.public_ipv4) {
                (Some(eip), _) => Some(eip.public_ip),
                _ if !has_public_ipv4(scheme, addressing.ip) => None,
                (None, Some(kept)) => Some(kept),
                (None, None) => self.free_public_ipv4(&node.availability_zone)?,
            };
            let node = self.nodes.get_mut(&id).expect("listed above");
            (node.ipv6, node.source_nat_ipv6_prefix, node.public_ipv4) =
                (ipv6, prefix, public_ipv4);
        }
        let lb = self
            .load_balancers
            .get_mut(arn)
            .expect("checked by the caller");
        (lb.ip_address_type, lb.ipv6_source_nat) = (addressing.ip, addressing.source_nat);
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

    /// SetSubnets: nodes are made for zones added and removed for zones dropped; with an
    /// address type or source NAT switch, the load balancer becomes so in the same change (a
    /// kept zone's node may then take the IPv6 address and prefix its mapping names).
    pub(super) fn set_subnets(
        &mut self,
        arn: &str,
        subnet_ids: Vec<String>,
        mappings: &[SubnetMapping],
        (ip_address_type, source_nat): (Option<IpAddressType>, Option<bool>),
        cx: &mut Context<'_>,
    ) -> Result<Outcome> {
        let lb = self.load_balancers.get(arn).ok_or_else(|| not_found(arn))?;
        let checked = self.check_subnets(&subnet_ids, lb.kind)?;
        let (kind, scheme) = (lb.kind, lb.scheme);
        let ip = ip_address_type.unwrap_or(lb.ip_address_type);
        let addressing = Addressing {
            ip,
            source_nat: source_nat.unwrap_or(lb.ipv6_source_nat),
        };
        if checked[0].1 != lb.vpc_id {
            return Err(ModelError::new(
                ErrorCode::InvalidConfigurationRequest,
                format!(
                    "The subnets must be in the VPC of the load balancer, '{}'",
                    lb.vpc_id
                ),
            ));
        }
        self.check_addressing_change(arn, addressing, &subnet_ids)?;
        let (kept, added): (Vec<SubnetMapping>, Vec<SubnetMapping>) = mappings
            .iter()
            .cloned()
            .partition(|m| self.nodes_of(arn).any(|n| n.subnet_id == m.subnet_id));
        let kept = self.check_kept_mappings(arn, addressing, &kept)?;
        self.nodes
            .retain(|_, n| n.load_balancer_arn != arn || subnet_ids.contains(&n.subnet_id));
        // The addresses of the nodes that went are free for the new ones.
        self.release_gone_nodes();
        let chosen = self.check_subnet_mappings(kind, (scheme, addressing), &added)?;
        for subnet_id in &subnet_ids {
            if !self.nodes_of(arn).any(|n| &n.subnet_id == subnet_id) {
                let addresses = chosen.get(subnet_id.as_str()).copied().unwrap_or_default();
                self.add_node(arn, (scheme, addressing), subnet_id, addresses, cx)?;
            }
        }
        self.readdress_nodes(arn, addressing, &kept)?;
        self.load_balancers
            .get_mut(arn)
            .expect("checked above")
            .subnet_ids = subnet_ids;
        Ok(Outcome::Done)
    }

    /// A kept zone's node keeps its addresses: a mapping may repeat them, not change them, but
    /// it may name the IPv6 address or source NAT prefix of a node that has none yet. Returns
    /// those, by subnet.
    fn check_kept_mappings(
        &self,
        arn: &str,
        addressing: Addressing,
        kept: &[SubnetMapping],
    ) -> Result<BTreeMap<String, NodeAddresses<'static>>> {
        let mut gained = BTreeMap::new();
        for m in kept {
            let node = self
                .nodes_of(arn)
                .find(|n| n.subnet_id == m.subnet_id)
                .expect("kept mappings name a node's subnet");
            let new_ipv6 = m.ipv6.filter(|_| node.ipv6.is_none());
            let new_prefix = m
                .source_nat_ipv6_prefix
                .filter(|_| node.source_nat_ipv6_prefix.is_none());
            let lb = &self.load_balancers[arn];
            if (new_ipv6.is_some() || new_prefix.is_some()) && lb.kind != LoadBalancerKind::Network
            {
                return Err(ModelError::validation(
                    "Subnet mappings can choose addresses for network load balancers only",
                ));
            }
            let rest = SubnetMapping {
                ipv6: m.ipv6.filter(|_| new_ipv6.is_none()),
                source_nat_ipv6_prefix: m.source_nat_ipv6_prefix.filter(|_| new_prefix.is_none()),
                ..m.clone()
            };
            if !self.holds_mappings(arn, std::slice::from_ref(&rest)) {
                return Err(ModelError::validation(format!(
                    "The node in subnet '{}' keeps its addresses: a subnet mapping cannot change \
                     them",
                    m.subnet_id
                )));
            }
            let subnet = &self.subnets[&m.subnet_id];
            if let Some(ip) = new_ipv6 {
                self.check_node_ipv6(subnet, addressing.ip, ip)?;
            }
            if let Some(prefix) = new_prefix {
                let own = new_ipv6.or(node.ipv6);
                self.check_source_nat_prefix(subnet, addressing, prefix, own)?;
            }
            let choice = NodeAddresses {
                ipv6: new_ipv6,
                source_nat_prefix: new_prefix.and_then(SourceNatPrefix::given),
                ..NodeAddresses::default()
            };
            gained.insert(m.subnet_id.clone(), choice);
        }
        Ok(gained)
    }

    /// SetSecurityGroups. As on AWS, a network load balancer created without security
    /// groups cannot be given some later (one created with them can lose them all and have
    /// them back), and only network load balancers take
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
        if !lb.takes_security_groups() {
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
        // A record older than the flag has it from the groups it had, before they go.
        lb.created_with_security_groups |= !lb.security_groups.is_empty();
        lb.security_groups = checked;
        if let Some(on) = privatelink_inbound_rules {
            lb.privatelink_inbound_rules = on;
        }
        Ok(Outcome::Done)
    }

    pub(super) fn activate_load_balancer(
        &mut self,
        arn: &str,
        impaired: bool,
        reason: Option<String>,
    ) -> Result<Outcome> {
        // Reported by the host that bound its listeners: one deleted meanwhile is left be.
        let Some(lb) = self.load_balancers.get_mut(arn) else {
            return Ok(Outcome::Done);
        };
        if lb.state != LoadBalancerState::Failed {
            lb.state = match impaired {
                true => LoadBalancerState::ActiveImpaired,
                false => LoadBalancerState::Active,
            };
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

/// How a load balancer's nodes are addressed: its address type, and whether they have IPv6
/// source NAT prefixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Addressing {
    pub(super) ip: IpAddressType,
    pub(super) source_nat: bool,
}

impl Addressing {
    pub(super) fn of(lb: &LoadBalancer) -> Self {
        Self {
            ip: lb.ip_address_type,
            source_nat: lb.ipv6_source_nat,
        }
    }
}

/// The length of a source NAT prefix, as AWS assigns them.
const SOURCE_NAT_PREFIX_LEN: u8 = 80;

/// Which types take which addressing: dual-stack is built for application and network load
/// balancers, `dualstack-without-public-ipv4` is for internet-facing application ones, and
/// source NAT prefixes for dual-stack network ones (as AWS has it).
fn check_addressing(kind: LoadBalancerKind, scheme: Scheme, addressing: Addressing) -> Result<()> {
    let refused = |message: String| {
        Err(ModelError::new(
            ErrorCode::InvalidConfigurationRequest,
            message,
        ))
    };
    let ip_address_type = addressing.ip;
    if addressing.source_nat
        && (kind != LoadBalancerKind::Network || ip_address_type == IpAddressType::Ipv4)
    {
        return refused(
            "EnablePrefixForIpv6SourceNat is on only for dualstack network load balancers (turn \
             it off with SetSubnets before making one ipv4)"
                .into(),
        );
    }
    match (kind, scheme, ip_address_type) {
        (_, _, IpAddressType::Ipv4) => Ok(()),
        (LoadBalancerKind::Gateway, ..) => refused(format!(
            "IpAddressType '{}': elbd has no IPv6 for gateway load balancers yet",
            ip_address_type.as_str()
        )),
        (LoadBalancerKind::Application, Scheme::InternetFacing, _)
        | (_, _, IpAddressType::Dualstack) => Ok(()),
        _ => refused(
            "IpAddressType 'dualstack-without-public-ipv4' is for internet-facing application \
             load balancers"
                .into(),
        ),
    }
}

/// Whether a node of a load balancer of this scheme and address type has a public IPv4
/// address.
fn has_public_ipv4(scheme: Scheme, ip_address_type: IpAddressType) -> bool {
    scheme == Scheme::InternetFacing && ip_address_type != IpAddressType::DualstackWithoutPublicIpv4
}

fn exhausted(range: &str) -> ModelError {
    ModelError::new(
        ErrorCode::InvalidSubnet,
        format!("The {range} is out of available addresses"),
    )
}

pub(super) fn not_found(arn: &str) -> ModelError {
    ModelError::new(
        ErrorCode::LoadBalancerNotFound,
        format!("Load balancer '{arn}' not found"),
    )
}
