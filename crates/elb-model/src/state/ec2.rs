//! The EC2 side: VPCs, subnets, security groups, instances, and their tags.

use std::net::{IpAddr, Ipv4Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::{Outcome, Region, Tags};
use crate::alloc;
use crate::error::{ErrorCode, ModelError, Result};
use crate::id::Context;
use crate::load_balancer::LoadBalancer;
use crate::network::{
    AMAZON_IPV6_POOL, Associated, IngressRule, IngressSource, Instance, InstanceOptions,
    InstanceState, SecurityGroup, Subnet, Tenancy, Vpc, VpcAttributes,
};

/// RunInstances: `count` instances in a subnet (the first default subnet when none is
/// given), at `private_ip` (only with a count of 1) or the lowest free addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunInstances {
    pub subnet_id: Option<String>,
    /// `Placement.AvailabilityZone`: the subnet's zone, or the zone whose default subnet to use.
    pub availability_zone: Option<String>,
    pub private_ip: Option<Ipv4Addr>,
    pub count: u32,
    pub security_groups: Vec<String>,
    pub image_id: String,
    pub instance_type: String,
    pub client_token: Option<String>,
    /// Recorded and echoed: there is no machine to log in to, monitor or optimise.
    pub options: InstanceOptions,
}

/// A load balancer's egress, resolved: `None` when it has no security groups (it may go
/// anywhere), else its groups' rules with their destinations.
#[derive(Debug, Clone)]
pub struct Egress(Option<Vec<(IngressRule, Destination)>>);

#[derive(Debug, Clone)]
enum Destination {
    Range(IpNet),
    Members(std::collections::HashSet<Ipv4Addr>),
}

impl Egress {
    /// Whether `protocol` ("tcp" or "udp") to `addr:port` is allowed.
    pub fn allows(&self, protocol: &str, addr: IpAddr, port: u16) -> bool {
        let Some(rules) = &self.0 else {
            return true;
        };
        rules.iter().any(|(rule, to)| {
            rule.covers(protocol, port)
                && match (to, addr) {
                    (Destination::Range(cidr), _) => cidr.contains(&addr),
                    (Destination::Members(members), IpAddr::V4(ip)) => members.contains(&ip),
                    (Destination::Members(_), IpAddr::V6(_)) => false,
                }
        })
    }
}

fn err(code: ErrorCode, message: impl Into<String>) -> ModelError {
    ModelError::new(code, message)
}

impl Region {
    pub(super) fn create_vpc(
        &mut self,
        cidr: Ipv4Net,
        instance_tenancy: Tenancy,
        amazon_ipv6: bool,
        cx: &mut Context<'_>,
    ) -> Result<Outcome> {
        if !(16..=28).contains(&cidr.prefix_len()) {
            return Err(err(
                ErrorCode::InvalidVpcRange,
                format!("The CIDR '{cidr}' is invalid: the prefix must be /16 to /28"),
            ));
        }
        let ipv6_cidr_blocks = match amazon_ipv6 {
            true => vec![self.free_ipv6_block()?],
            false => Vec::new(),
        };
        let id = format!("vpc-{}", cx.hex(17));
        self.vpcs.insert(
            id.clone(),
            Vpc {
                id: id.clone(),
                cidr_blocks: vec![cidr.trunc()],
                ipv6_cidr_blocks,
                is_default: false,
                instance_tenancy,
                attributes: VpcAttributes::default(),
                tags: Tags::new(),
            },
        );
        self.create_security_group("default", "default VPC security group", Some(&id), cx)?;
        Ok(Outcome::Created(id))
    }

    /// The first /56 of [`AMAZON_IPV6_POOL`] that no VPC of any region holds.
    fn free_ipv6_block(&self) -> Result<Ipv6Net> {
        let pool: Ipv6Net = AMAZON_IPV6_POOL.parse().expect("constant CIDR");
        let taken = |block: &Ipv6Net| {
            self.vpcs
                .values()
                .flat_map(|v| &v.ipv6_cidr_blocks)
                .chain(&self.beyond.ipv6_blocks)
                .any(|b| b == block)
        };
        pool.subnets(56)
            .expect("a /32 holds /56s")
            .find(|b| !taken(b))
            .ok_or_else(|| {
                err(
                    ErrorCode::InsufficientFreeAddressesInSubnet,
                    format!("Every /56 of {AMAZON_IPV6_POOL} is taken"),
                )
            })
    }

    /// ModifyVpcAttribute: one switch at a time, as EC2 takes them. DNS hostnames need DNS
    /// support, as AWS requires.
    pub(super) fn modify_vpc_attributes(
        &mut self,
        id: &str,
        attributes: VpcAttributes,
    ) -> Result<Outcome> {
        self.vpc(id)?;
        if attributes.enable_dns_hostnames && !attributes.enable_dns_support {
            return Err(err(
                ErrorCode::InvalidParameterValue,
                "DNS hostnames need DNS support: enable DNS support first",
            ));
        }
        self.vpcs.get_mut(id).expect("checked above").attributes = attributes;
        Ok(Outcome::Done)
    }

    pub(super) fn delete_vpc(&mut self, id: &str) -> Result<Outcome> {
        let vpc = self.vpc(id)?;
        let in_use = self.subnets.values().any(|s| s.vpc_id == id)
            || self
                .security_groups
                .values()
                .any(|g| g.vpc_id == id && g.name != "default")
            || self.target_groups.values().any(|t| t.vpc_id == id);
        if vpc.is_default || in_use {
            return Err(err(
                ErrorCode::DependencyViolation,
                format!("The vpc '{id}' has dependencies and cannot be deleted"),
            ));
        }
        self.security_groups.retain(|_, g| g.vpc_id != id);
        self.vpcs.remove(id);
        Ok(Outcome::Done)
    }

    pub(super) fn create_subnet(
        &mut self,
        vpc_id: &str,
        cidr: Ipv4Net,
        ipv6_cidr: Option<Ipv6Net>,
        zone: &str,
        cx: &mut Context<'_>,
    ) -> Result<Outcome> {
        let vpc = self.vpc(vpc_id)?;
        if !vpc.cidr_blocks.iter().any(|b| b.contains(&cidr))
            || !(16..=28).contains(&cidr.prefix_len())
        {
            return Err(err(
                ErrorCode::InvalidSubnetRange,
                format!("The CIDR '{cidr}' is invalid for VPC '{vpc_id}'"),
            ));
        }
        if let Some(other) = self
            .subnets
            .values()
            .find(|s| s.vpc_id == vpc_id && (s.cidr.contains(&cidr) || cidr.contains(&s.cidr)))
        {
            return Err(err(
                ErrorCode::InvalidSubnetConflict,
                format!(
                    "The CIDR '{cidr}' conflicts with subnet '{}' ({})",
                    other.id, other.cidr
                ),
            ));
        }
        if let Some(block) = ipv6_cidr {
            self.check_ipv6_subnet(vpc_id, block)?;
        }
        if !self.subnets.values().any(|s| s.availability_zone == zone) {
            return Err(err(
                ErrorCode::InvalidParameterValue,
                format!("Value ({zone}) for parameter availabilityZone is invalid"),
            ));
        }
        let id = format!("subnet-{}", cx.hex(17));
        self.subnets.insert(
            id.clone(),
            Subnet {
                id: id.clone(),
                vpc_id: vpc_id.to_owned(),
                availability_zone: zone.to_owned(),
                cidr: cidr.trunc(),
                ipv6_cidr,
                default_for_az: false,
                tags: Tags::new(),
            },
        );
        Ok(Outcome::Created(id))
    }

    /// A subnet's IPv6 block: a /64 of one of its VPC's blocks that no other subnet has.
    fn check_ipv6_subnet(&self, vpc_id: &str, block: Ipv6Net) -> Result<()> {
        let vpc = self.vpc(vpc_id)?;
        if block.prefix_len() != 64 || block.trunc() != block {
            return Err(err(
                ErrorCode::InvalidSubnetRange,
                format!("The IPv6 CIDR '{block}' is invalid: a subnet's IPv6 block is a /64"),
            ));
        }
        if !vpc.ipv6_cidr_blocks.iter().any(|b| b.contains(&block)) {
            let held = match &vpc.ipv6_cidr_blocks[..] {
                [] => "none".to_owned(),
                blocks => blocks
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
            };
            return Err(err(
                ErrorCode::InvalidSubnetRange,
                format!(
                    "The IPv6 CIDR '{block}' is not within the IPv6 blocks of VPC '{vpc_id}' \
                     ({held})"
                ),
            ));
        }
        if let Some(other) = self
            .subnets
            .values()
            .find(|s| s.vpc_id == vpc_id && s.ipv6_cidr == Some(block))
        {
            return Err(err(
                ErrorCode::InvalidSubnetConflict,
                format!(
                    "The IPv6 CIDR '{block}' conflicts with subnet '{}'",
                    other.id
                ),
            ));
        }
        Ok(())
    }

    pub(super) fn delete_subnet(&mut self, id: &str) -> Result<Outcome> {
        self.subnet(id)?;
        let in_use = self.nodes.values().any(|n| n.subnet_id == id)
            || self
                .instances
                .values()
                .any(|i| i.subnet_id == id && i.state != InstanceState::Terminated)
            || self.vpc_endpoints.values().any(|e| e.subnet_id == id);
        if in_use {
            return Err(err(
                ErrorCode::DependencyViolation,
                format!("The subnet '{id}' has dependencies and cannot be deleted"),
            ));
        }
        self.subnets.remove(id);
        Ok(Outcome::Done)
    }

    pub(super) fn create_security_group(
        &mut self,
        name: &str,
        description: &str,
        vpc_id: Option<&str>,
        cx: &mut Context<'_>,
    ) -> Result<Outcome> {
        let vpc_id = match vpc_id {
            Some(id) => self.vpc(id)?.id.clone(),
            None => self
                .default_vpc()
                .map(|v| v.id.clone())
                .ok_or_else(|| err(ErrorCode::InvalidVpcIdNotFound, "There is no default VPC"))?,
        };
        if name.is_empty() || name.len() > 255 || name.starts_with("sg-") {
            return Err(err(
                ErrorCode::InvalidParameterValue,
                format!("Invalid security group name '{name}'"),
            ));
        }
        if self
            .security_groups
            .values()
            .any(|g| g.vpc_id == vpc_id && g.name == name)
        {
            return Err(err(
                ErrorCode::InvalidGroupDuplicate,
                format!("The security group '{name}' already exists for VPC '{vpc_id}'"),
            ));
        }
        let id = format!("sg-{}", cx.hex(17));
        let egress = match self.vpcs[&vpc_id].ipv6_cidr_blocks.is_empty() {
            true => IngressRule::allow_all(),
            false => IngressRule::allow_all_dual_stack(),
        };
        self.security_groups.insert(
            id.clone(),
            SecurityGroup {
                id: id.clone(),
                name: name.to_owned(),
                vpc_id,
                description: description.to_owned(),
                ingress: Vec::new(),
                egress,
                tags: Tags::new(),
            },
        );
        Ok(Outcome::Created(id))
    }

    pub(super) fn delete_security_group(&mut self, id: &str) -> Result<Outcome> {
        let group = self.security_group(id)?;
        if group.name == "default" {
            return Err(err(
                ErrorCode::CannotDelete,
                format!("The security group '{id}' is a default group and cannot be deleted"),
            ));
        }
        let referenced = self
            .load_balancers
            .values()
            .any(|lb| lb.security_groups.iter().any(|g| g == id))
            || self.instances.values().any(|i| {
                i.state != InstanceState::Terminated && i.security_groups.iter().any(|g| g == id)
            })
            || self.security_groups.values().any(|g| {
                g.id != id
                    && g.ingress
                        .iter()
                        .chain(&g.egress)
                        .any(|r| r.source == IngressSource::Group(id.to_owned()))
            });
        if referenced {
            return Err(err(
                ErrorCode::DependencyViolation,
                format!("resource {id} has a dependent object"),
            ));
        }
        self.security_groups.remove(id);
        Ok(Outcome::Done)
    }

    /// Adds ingress (or, `egress`, egress) rules; one the group has already is refused.
    pub(super) fn authorize(
        &mut self,
        id: &str,
        rules: &[IngressRule],
        egress: bool,
    ) -> Result<Outcome> {
        for rule in rules {
            check_rule(rule)?;
            if let IngressSource::Group(source) = &rule.source {
                self.security_group(source)?;
            }
        }
        let group = self.security_group_mut(id)?;
        let list = if egress {
            &mut group.egress
        } else {
            &mut group.ingress
        };
        for rule in rules {
            if list.iter().any(|r| r.same_permission(rule)) {
                return Err(err(
                    ErrorCode::InvalidPermissionDuplicate,
                    format!(
                        "the specified rule \"{}\" already exists",
                        describe_rule(rule)
                    ),
                ));
            }
            list.push(rule.clone());
        }
        Ok(Outcome::Done)
    }

    /// Removes ingress (or egress) rules, each of which must exist.
    pub(super) fn revoke(
        &mut self,
        id: &str,
        rules: &[IngressRule],
        egress: bool,
    ) -> Result<Outcome> {
        let group = self.security_group_mut(id)?;
        let list = if egress {
            &mut group.egress
        } else {
            &mut group.ingress
        };
        for rule in rules {
            let before = list.len();
            list.retain(|r| !r.same_permission(rule));
            if list.len() == before {
                return Err(err(
                    ErrorCode::InvalidPermissionNotFound,
                    format!(
                        "The specified rule \"{}\" does not exist in this security group",
                        describe_rule(rule)
                    ),
                ));
            }
        }
        Ok(Outcome::Done)
    }

    /// The addresses that carry security group `group`: running instances and load balancer
    /// nodes.
    pub fn security_group_members<'a>(
        &'a self,
        group: &'a str,
    ) -> impl Iterator<Item = Ipv4Addr> + 'a {
        let has = move |groups: &[String]| groups.iter().any(|g| g == group);
        let instances = self
            .instances
            .values()
            .filter(move |i| i.state == InstanceState::Running && has(&i.security_groups))
            .map(|i| i.private_ip);
        let nodes = self
            .nodes
            .values()
            .filter(move |n| {
                self.load_balancers
                    .get(&n.load_balancer_arn)
                    .is_some_and(|lb| has(&lb.security_groups))
            })
            .map(|n| n.private_ipv4);
        instances.chain(nodes)
    }

    /// Where `lb`'s nodes may open TCP connections under its security groups' egress rules,
    /// resolved once (group members included) so that many targets can be asked cheaply.
    pub fn egress(&self, lb: &LoadBalancer) -> Egress {
        if lb.security_groups.is_empty() {
            return Egress(None);
        }
        let rules = lb
            .security_groups
            .iter()
            .filter_map(|id| self.security_groups.get(id))
            .flat_map(|g| &g.egress)
            .map(|r| {
                let to = match &r.source {
                    IngressSource::Cidr(cidr) => Destination::Range(*cidr),
                    IngressSource::Group(group) => {
                        Destination::Members(self.security_group_members(group).collect())
                    }
                };
                (r.clone(), to)
            })
            .collect();
        Egress(Some(rules))
    }

    pub(super) fn run_instances(
        &mut self,
        run: &RunInstances,
        cx: &mut Context<'_>,
    ) -> Result<Outcome> {
        if let Some(token) = &run.client_token {
            let earlier: Vec<String> = self
                .instances
                .values()
                .filter(|i| i.client_token.as_ref() == Some(token))
                .map(|i| i.id.clone())
                .collect();
            if !earlier.is_empty() {
                return Ok(Outcome::CreatedAll(earlier));
            }
        }
        if run.count == 0 || run.count > 100 || (run.private_ip.is_some() && run.count > 1) {
            return Err(err(
                ErrorCode::InvalidParameterValue,
                "Count must be 1 to 100, and 1 when a private IP address is given",
            ));
        }
        let subnet = match &run.subnet_id {
            Some(id) => self.subnet(id)?.clone(),
            None => {
                let mut defaults: Vec<&Subnet> = self
                    .subnets
                    .values()
                    .filter(|s| s.default_for_az)
                    .filter(|s| {
                        run.availability_zone
                            .as_ref()
                            .is_none_or(|z| *z == s.availability_zone)
                    })
                    .collect();
                defaults.sort_by(|a, b| a.availability_zone.cmp(&b.availability_zone));
                (*defaults
                    .first()
                    .ok_or_else(|| match &run.availability_zone {
                        Some(zone) => err(
                            ErrorCode::InvalidParameterValue,
                            format!("Invalid availability zone: [{zone}]"),
                        ),
                        None => err(
                            ErrorCode::InvalidSubnetIdNotFound,
                            "There is no default subnet",
                        ),
                    })?)
                .clone()
            }
        };
        if let Some(zone) = &run.availability_zone
            && *zone != subnet.availability_zone
        {
            return Err(err(
                ErrorCode::InvalidParameterValue,
                format!(
                    "Placement.AvailabilityZone {zone} is not the zone of subnet '{}'",
                    subnet.id
                ),
            ));
        }
        for g in &run.security_groups {
            if self.security_group(g)?.vpc_id != subnet.vpc_id {
                return Err(err(
                    ErrorCode::InvalidParameterValue,
                    format!(
                        "Security group '{g}' is not in the VPC of subnet '{}'",
                        subnet.id
                    ),
                ));
            }
        }
        let groups = if run.security_groups.is_empty() {
            self.security_groups
                .values()
                .filter(|g| g.vpc_id == subnet.vpc_id && g.name == "default")
                .map(|g| g.id.clone())
                .collect()
        } else {
            run.security_groups.clone()
        };
        let mut ids = Vec::new();
        for _ in 0..run.count {
            let used = self.used_addresses(&subnet);
            let ip = match run.private_ip {
                Some(ip)
                    if !subnet.contains(IpAddr::V4(ip)) || alloc::is_reserved(subnet.cidr, ip) =>
                {
                    return Err(err(
                        ErrorCode::InvalidParameterValue,
                        format!(
                            "Address {ip} does not fall within the usable range of subnet '{}' ({})",
                            subnet.id, subnet.cidr
                        ),
                    ));
                }
                Some(ip) if used.contains(&ip) => {
                    return Err(err(
                        ErrorCode::InvalidIpAddressInUse,
                        format!("Address {ip} is in use."),
                    ));
                }
                Some(ip) => ip,
                None => alloc::lowest_free(subnet.cidr, &used).ok_or_else(|| {
                    err(
                        ErrorCode::InsufficientFreeAddressesInSubnet,
                        format!(
                            "There are not enough free addresses in subnet '{}'",
                            subnet.id
                        ),
                    )
                })?,
            };
            let id = format!("i-{}", cx.hex(17));
            self.instances.insert(
                id.clone(),
                Instance {
                    id: id.clone(),
                    subnet_id: subnet.id.clone(),
                    vpc_id: subnet.vpc_id.clone(),
                    availability_zone: subnet.availability_zone.clone(),
                    private_ip: ip,
                    image_id: run.image_id.clone(),
                    instance_type: run.instance_type.clone(),
                    state: InstanceState::Running,
                    security_groups: groups.clone(),
                    launched_ms: cx.now_ms,
                    client_token: run.client_token.clone(),
                    options: run.options.clone(),
                    tags: Tags::new(),
                },
            );
            ids.push(id);
        }
        Ok(Outcome::CreatedAll(ids))
    }

    /// Stop, start or terminate. Terminated instances leave every target group, as on AWS,
    /// and cannot be started again.
    pub(super) fn set_instance_state(
        &mut self,
        ids: &[String],
        to: InstanceState,
    ) -> Result<Outcome> {
        for id in ids {
            let instance = self.instance(id)?;
            if instance.state == InstanceState::Terminated && to != InstanceState::Terminated {
                return Err(err(
                    ErrorCode::IncorrectInstanceState,
                    format!(
                        "The instance '{id}' is not in a state from which it can be started or stopped"
                    ),
                ));
            }
        }
        for id in ids {
            self.instances.get_mut(id).expect("checked above").state = to;
            if to == InstanceState::Terminated {
                for tg in self.target_groups.values_mut() {
                    tg.targets.retain(|t| t.id.to_string() != *id);
                }
                // A terminated instance lets go of its Elastic IP, as on EC2.
                let held = Some(Associated::Instance(id.clone()));
                for address in self.addresses.values_mut() {
                    if address.association.as_ref().map(|a| a.to.clone()) == held {
                        address.association = None;
                    }
                }
            }
        }
        Ok(Outcome::Done)
    }

    /// EC2 CreateTags / DeleteTags on VPCs, subnets, security groups and instances. `keys`
    /// of `None` adds `tags`; otherwise removes those keys.
    pub(super) fn ec2_tags(
        &mut self,
        ids: &[String],
        tags: &[(String, String)],
    ) -> Result<Outcome> {
        for id in ids {
            self.ec2_tags_mut(id)?.extend(tags.iter().cloned());
        }
        Ok(Outcome::Done)
    }

    pub(super) fn delete_ec2_tags(
        &mut self,
        ids: &[String],
        tags: &[(String, Option<String>)],
    ) -> Result<Outcome> {
        for id in ids {
            let resource = self.ec2_tags_mut(id)?;
            if tags.is_empty() {
                resource.clear();
            }
            for (key, value) in tags {
                if value.is_none() || resource.get(key) == value.as_ref() {
                    resource.remove(key);
                }
            }
        }
        Ok(Outcome::Done)
    }

    /// The tags of the EC2 resource `id` names.
    pub fn ec2_tags_of(&self, id: &str) -> Option<&Tags> {
        let tags = if id.starts_with("vpc-") {
            &self.vpcs.get(id)?.tags
        } else if id.starts_with("subnet-") {
            &self.subnets.get(id)?.tags
        } else if id.starts_with("sg-") {
            &self.security_groups.get(id)?.tags
        } else if id.starts_with("eipalloc-") {
            &self.addresses.get(id)?.tags
        } else if id.starts_with("vpce-svc-") {
            &self.endpoint_services.get(id)?.tags
        } else if id.starts_with("vpce-") {
            &self.vpc_endpoints.get(id)?.tags
        } else {
            &self.instances.get(id)?.tags
        };
        Some(tags)
    }

    fn ec2_tags_mut(&mut self, id: &str) -> Result<&mut Tags> {
        let missing = || {
            err(
                ErrorCode::InvalidParameterValue,
                format!("The resource ID '{id}' does not exist"),
            )
        };
        let tags = if id.starts_with("vpc-") {
            &mut self.vpcs.get_mut(id).ok_or_else(missing)?.tags
        } else if id.starts_with("subnet-") {
            &mut self.subnets.get_mut(id).ok_or_else(missing)?.tags
        } else if id.starts_with("sg-") {
            &mut self.security_groups.get_mut(id).ok_or_else(missing)?.tags
        } else if id.starts_with("eipalloc-") {
            &mut self.addresses.get_mut(id).ok_or_else(missing)?.tags
        } else if id.starts_with("vpce-svc-") {
            &mut self.endpoint_services.get_mut(id).ok_or_else(missing)?.tags
        } else if id.starts_with("vpce-") {
            &mut self.vpc_endpoints.get_mut(id).ok_or_else(missing)?.tags
        } else {
            &mut self.instances.get_mut(id).ok_or_else(missing)?.tags
        };
        Ok(tags)
    }

    fn vpc(&self, id: &str) -> Result<&Vpc> {
        self.vpcs.get(id).ok_or_else(|| {
            err(
                ErrorCode::InvalidVpcIdNotFound,
                format!("The vpc ID '{id}' does not exist"),
            )
        })
    }

    fn subnet(&self, id: &str) -> Result<&Subnet> {
        self.subnets.get(id).ok_or_else(|| {
            err(
                ErrorCode::InvalidSubnetIdNotFound,
                format!("The subnet ID '{id}' does not exist"),
            )
        })
    }

    fn security_group(&self, id: &str) -> Result<&SecurityGroup> {
        self.security_groups.get(id).ok_or_else(|| {
            err(
                ErrorCode::InvalidGroupNotFound,
                format!("The security group '{id}' does not exist"),
            )
        })
    }

    fn security_group_mut(&mut self, id: &str) -> Result<&mut SecurityGroup> {
        self.security_groups.get_mut(id).ok_or_else(|| {
            err(
                ErrorCode::InvalidGroupNotFound,
                format!("The security group '{id}' does not exist"),
            )
        })
    }

    pub(super) fn instance(&self, id: &str) -> Result<&Instance> {
        self.instances.get(id).ok_or_else(|| {
            err(
                ErrorCode::InvalidInstanceIdNotFound,
                format!("The instance ID '{id}' does not exist"),
            )
        })
    }
}

fn check_rule(rule: &IngressRule) -> Result<()> {
    match rule.protocol.as_str() {
        "-1" => Ok(()),
        "tcp" | "udp" if rule.from_port <= rule.to_port => Ok(()),
        "tcp" | "udp" => Err(err(
            ErrorCode::InvalidParameterValue,
            format!("Invalid port range {}-{}", rule.from_port, rule.to_port),
        )),
        other => Err(err(
            ErrorCode::InvalidParameterValue,
            format!("Invalid IP protocol '{other}': elbd supports tcp, udp and -1"),
        )),
    }
}

fn describe_rule(rule: &IngressRule) -> String {
    let source = match &rule.source {
        IngressSource::Cidr(c) => c.to_string(),
        IngressSource::Group(g) => g.clone(),
    };
    format!(
        "peer: {source}, {}, from port: {}, to port: {}, ALLOW",
        rule.protocol.to_uppercase(),
        rule.from_port,
        rule.to_port
    )
}
