//! CreateTargetGroup, DeleteTargetGroup, attributes, and target registration.

use std::net::IpAddr;

use super::{CreateTargetGroup, Outcome, Region, Tags};
use crate::attributes;
use crate::error::{ErrorCode, ModelError, Result};
use crate::id::Context;
use crate::load_balancer::LoadBalancerKind;
use crate::names;
use crate::network::InstanceState;
use crate::target_group::{
    FunctionArn, GENEVE_PORT, HealthCheck, HealthCheckChanges, ProtocolVersion, Registration,
    TargetGroup, TargetGroupProtocol, TargetId, TargetIpAddressType, TargetType,
};

/// A target as RegisterTargets names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetDescription {
    pub id: String,
    /// Defaults to the target group's port.
    pub port: Option<u16>,
    /// Defaults to the zone of the subnet holding the address; `all` for addresses outside
    /// the VPC.
    pub availability_zone: Option<String>,
}

impl Region {
    pub(super) fn create_target_group(
        &mut self,
        c: CreateTargetGroup,
        cx: &mut Context<'_>,
    ) -> Result<Outcome> {
        names::check_target_group_name(&c.name)?;
        let target_type = TargetType::parse_supported(&c.target_type)?;
        let (protocol, port, vpc_id) = if target_type == TargetType::Lambda {
            lambda_group(&c)?
        } else {
            self.network_group(&c, target_type)?
        };
        let ip_address_type = c.ip_address_type.unwrap_or_default();
        check_ip_address_type(target_type, ip_address_type)?;
        if let Some(existing) = self.target_group_by_name(&c.name) {
            let same = existing.protocol == protocol
                && existing.protocol_version == c.protocol_version
                && existing.port == port
                && existing.vpc_id == vpc_id
                && existing.target_type == target_type
                && existing.ip_address_type == ip_address_type;
            return if same {
                Ok(Outcome::Created(existing.arn.clone()))
            } else {
                Err(ModelError::new(
                    ErrorCode::DuplicateTargetGroupName,
                    format!("A target group with the name '{}' already exists", c.name),
                ))
            };
        }
        if self.target_groups.len() >= self.quotas.target_groups_per_region {
            return Err(ModelError::new(
                ErrorCode::TooManyTargetGroups,
                "The quota of target groups per region is reached",
            ));
        }
        let arn = self
            .scope
            .arn(&format!("targetgroup/{}/{}", c.name, cx.hex16()));
        self.target_groups.insert(
            arn.clone(),
            TargetGroup {
                arn: arn.clone(),
                name: c.name,
                protocol,
                protocol_version: c.protocol_version,
                port,
                vpc_id,
                target_type,
                ip_address_type,
                attributes: attributes::target_group_defaults(protocol, target_type),
                health_check: HealthCheck::for_target_group(
                    protocol,
                    c.protocol_version,
                    target_type,
                ),
                targets: Vec::new(),
                tags: Tags::new(),
                origin: c.origin,
            },
        );
        Ok(Outcome::Created(arn))
    }

    /// An instance, ip or `alb` group's protocol, port and VPC (the default VPC's when none
    /// is named).
    fn network_group(
        &self,
        c: &CreateTargetGroup,
        target_type: TargetType,
    ) -> Result<(TargetGroupProtocol, u16, String)> {
        let protocol = c
            .protocol
            .as_deref()
            .ok_or_else(|| ModelError::validation("A protocol must be specified"))?;
        let protocol = TargetGroupProtocol::parse_supported(protocol)?;
        if !protocol.is_http() && c.protocol_version != ProtocolVersion::Http1 {
            return Err(ModelError::validation(format!(
                "A protocol version can only be set for HTTP and HTTPS target groups, not {}",
                protocol.as_str()
            )));
        }
        if target_type == TargetType::Alb && protocol != TargetGroupProtocol::Tcp {
            return Err(ModelError::validation(format!(
                "Target type 'alb' needs the TCP protocol, not {}",
                protocol.as_str()
            )));
        }
        let port = c
            .port
            .ok_or_else(|| ModelError::validation("A port must be specified"))?;
        check_port(port)?;
        if protocol == TargetGroupProtocol::Geneve {
            check_geneve_port(port)?;
        }
        let vpc_id = match &c.vpc_id {
            Some(id) if self.vpcs.contains_key(id) => id.clone(),
            Some(id) => {
                return Err(ModelError::validation(format!(
                    "The VPC ID '{id}' is not found"
                )));
            }
            None => self
                .default_vpc()
                .map(|v| v.id.clone())
                .ok_or_else(|| ModelError::validation("A VPC ID must be specified"))?,
        };
        Ok((protocol, port, vpc_id))
    }

    pub(super) fn delete_target_group(&mut self, arn: &str) -> Result<Outcome> {
        self.target_group(arn)?;
        if let Some(lb) = self.load_balancer_of_target_group(arn) {
            return Err(ModelError::new(
                ErrorCode::ResourceInUse,
                format!("Target group '{arn}' is currently in use by a listener of '{lb}'"),
            ));
        }
        self.target_groups.remove(arn);
        Ok(Outcome::Done)
    }

    pub(super) fn modify_target_group(
        &mut self,
        arn: &str,
        changes: &HealthCheckChanges,
    ) -> Result<Outcome> {
        let tg = self.target_group_mut(arn)?;
        let next = tg
            .health_check
            .with((tg.protocol, tg.target_type), changes)?;
        if tg.target_type == TargetType::Alb && next.protocol == "TCP" {
            return Err(ModelError::validation(
                "Target groups of type 'alb' are checked over HTTP or HTTPS",
            ));
        }
        tg.health_check = next;
        Ok(Outcome::Done)
    }

    /// Removes the targets whose deregistration delay has passed.
    pub(super) fn expire_draining(&mut self, now_ms: u64) -> Result<Outcome> {
        for tg in self.target_groups.values_mut() {
            tg.targets
                .retain(|t| t.draining_until_ms.is_none_or(|until| until > now_ms));
        }
        Ok(Outcome::Done)
    }

    pub(super) fn modify_target_group_attributes(
        &mut self,
        arn: &str,
        changes: &[(String, String)],
    ) -> Result<Outcome> {
        let tg = self.target_group_mut(arn)?;
        let next = attributes::modify_target_group(
            &tg.attributes,
            (tg.protocol, tg.target_type),
            changes,
        )?;
        // An application load balancer does not read PROXY headers.
        if tg.target_type == TargetType::Alb && next.flag(attributes::PROXY_PROTOCOL_V2) {
            return Err(ModelError::validation(
                "proxy_protocol_v2.enabled is not supported for target groups of type 'alb'",
            ));
        }
        tg.attributes = next;
        Ok(Outcome::Done)
    }

    pub(super) fn register_targets(
        &mut self,
        arn: &str,
        targets: &[TargetDescription],
    ) -> Result<Outcome> {
        let tg = self.target_group(arn)?;
        let mut added = Vec::with_capacity(targets.len());
        let mut undrained = Vec::new();
        for t in targets {
            if tg.protocol == TargetGroupProtocol::Geneve {
                check_geneve_port(t.port.unwrap_or(tg.port))?;
            }
            // A target registered already is left as it is (a draining one goes back into
            // service), unchecked: the config file registers every target it declares on each
            // load, and an instance stopped since must not refuse the file.
            let id = parse_target_id(tg.target_type, &t.id)?;
            let default_port = if tg.target_type == TargetType::Lambda {
                0
            } else {
                tg.port
            };
            let port = t.port.unwrap_or(default_port);
            if let Some(i) = tg.targets.iter().position(|r| r.id == id && r.port == port) {
                if tg.targets[i].is_draining() {
                    undrained.push(i);
                }
                continue;
            }
            let registration = self.resolve_target(tg, t)?;
            let same = |r: &Registration| r.id == registration.id && r.port == registration.port;
            if !added.iter().any(same) {
                added.push(registration);
            }
        }
        if tg.target_type == TargetType::Alb && tg.targets.len() + added.len() > 1 {
            return Err(ModelError::validation(
                "A target group of type 'alb' has one application load balancer as its target",
            ));
        }
        if tg.target_type == TargetType::Lambda && tg.targets.len() + added.len() > 1 {
            return Err(ModelError::new(
                ErrorCode::TooManyTargets,
                "A target group of type 'lambda' has one function as its target",
            ));
        }
        if tg.targets.len() + added.len() > self.quotas.targets_per_target_group {
            return Err(ModelError::new(
                ErrorCode::TooManyTargets,
                format!(
                    "A target group can have at most {} targets",
                    self.quotas.targets_per_target_group
                ),
            ));
        }
        let tg = self.target_group_mut(arn)?;
        for i in undrained {
            tg.targets[i].draining_until_ms = None;
        }
        tg.targets.extend(added);
        Ok(Outcome::Done)
    }

    /// Deregistered targets drain for `deregistration_delay.timeout_seconds` (no new
    /// requests; open ones finish), then [`Command::ExpireDraining`] removes them. With a delay
    /// of 0 they go at once. A target not registered (with that port) is no error: AWS
    /// "returns successfully" (the API reference), so a retried deregistration is harmless.
    pub(super) fn deregister_targets(
        &mut self,
        arn: &str,
        targets: &[TargetDescription],
        now_ms: u64,
    ) -> Result<Outcome> {
        let tg = self.target_group(arn)?;
        // A function is removed at once (AWS: its requests in flight fail; here they finish).
        let delay_ms = match tg.target_type {
            TargetType::Lambda => 0,
            _ => {
                tg.attributes
                    .int("deregistration_delay.timeout_seconds")
                    .unwrap_or(300)
                    * 1000
            }
        };
        let mut keep = tg.targets.clone();
        for t in targets {
            let id = parse_target_id(tg.target_type, &t.id)?;
            let port = t.port.unwrap_or(tg.port);
            match keep.iter().position(|r| r.id == id && r.port == port) {
                Some(i) if delay_ms == 0 => {
                    keep.remove(i);
                }
                Some(i) => {
                    let until = keep[i].draining_until_ms.unwrap_or(now_ms + delay_ms);
                    keep[i].draining_until_ms = Some(until);
                }
                None => {}
            }
        }
        self.target_group_mut(arn)?.targets = keep;
        Ok(Outcome::Done)
    }

    /// Checks one target against the group and the network, and finds its zone and address.
    fn resolve_target(&self, tg: &TargetGroup, t: &TargetDescription) -> Result<Registration> {
        let id = parse_target_id(tg.target_type, &t.id)?;
        if let TargetId::Lambda(function) = &id {
            return self.resolve_function(function, t);
        }
        let port = t.port.unwrap_or(tg.port);
        check_port(port)?;
        let address = match &id {
            TargetId::Alb(lb_arn) => return self.resolve_alb(tg, lb_arn, port),
            TargetId::AlbNode { .. } => unreachable!("targets are never named by ALB node"),
            TargetId::Lambda(_) => unreachable!("resolved above"),
            TargetId::Ip(address) if !tg.ip_address_type.fits(*address) => {
                return Err(ModelError::validation(format!(
                    "The IP address type of target '{address}' must be the target group's, {}",
                    tg.ip_address_type.as_str()
                )));
            }
            TargetId::Ip(address) => *address,
            TargetId::Instance(instance_id) => {
                let instance = self
                    .instances
                    .get(instance_id)
                    .filter(|i| i.state != InstanceState::Terminated);
                let Some(instance) = instance.filter(|i| i.vpc_id == tg.vpc_id) else {
                    return Err(ModelError::new(
                        ErrorCode::InvalidTarget,
                        format!(
                            "The target '{instance_id}' does not exist, is terminated, or is not in the VPC of the target group"
                        ),
                    ));
                };
                // The API reference: registered instances must be running, and take no zone.
                if instance.state != InstanceState::Running {
                    return Err(ModelError::new(
                        ErrorCode::InvalidTarget,
                        format!(
                            "The following targets are not in a running state and cannot be registered: '{instance_id}'"
                        ),
                    ));
                }
                if t.availability_zone.is_some() {
                    return Err(ModelError::validation(format!(
                        "An availability zone cannot be specified for target '{instance_id}': \
                         targets of type instance are in their instance's zone"
                    )));
                }
                return Ok(Registration {
                    id,
                    port,
                    availability_zone: instance.availability_zone.clone(),
                    address: IpAddr::V4(instance.private_ip),
                    draining_until_ms: None,
                });
            }
        };
        let in_prefix = self.source_nat_prefixes().iter().any(|p| match address {
            IpAddr::V6(ip) => p.contains(&ip),
            IpAddr::V4(_) => false,
        });
        if in_prefix
            || self
                .nodes
                .values()
                .any(|n| n.addresses().any(|a| a == address))
        {
            return Err(ModelError::new(
                ErrorCode::InvalidTarget,
                format!(
                    "The IP address '{address}' cannot be used as a target, as it is in use by a load balancer"
                ),
            ));
        }
        let subnet = self.subnet_containing(&tg.vpc_id, address);
        // `all` is for addresses outside the VPC: one inside must be in a subnet.
        let in_vpc = self
            .vpcs
            .get(&tg.vpc_id)
            .is_some_and(|v| v.contains(address));
        if subnet.is_none() && in_vpc {
            return Err(ModelError::new(
                ErrorCode::InvalidTarget,
                format!(
                    "The IP address '{address}' is in the VPC of the target group but in none \
                     of its subnets, so it has no Availability Zone"
                ),
            ));
        }
        let zone = match (subnet, t.availability_zone.as_deref()) {
            (Some(subnet), None) => subnet.availability_zone.clone(),
            (Some(subnet), Some(az)) if az == subnet.availability_zone => az.to_owned(),
            (None, Some("all")) if !private(address) => {
                return Err(ModelError::new(
                    ErrorCode::InvalidTarget,
                    format!(
                        "The IP address '{address}' is publicly routable: a target outside the \
                         VPC must be in a private range (10.0.0.0/8, 172.16.0.0/12, \
                         192.168.0.0/16, 100.64.0.0/10, fc00::/7, or loopback here)"
                    ),
                ));
            }
            (None, Some("all")) => "all".to_owned(),
            (Some(subnet), Some(az)) => {
                return Err(ModelError::validation(format!(
                    "Target '{address}' is in {}, not in '{az}'",
                    subnet.availability_zone
                )));
            }
            (None, _) => {
                return Err(ModelError::new(
                    ErrorCode::InvalidTarget,
                    format!(
                        "The IP address '{address}' is outside the VPC of the target group; \
                         register it with AvailabilityZone 'all'"
                    ),
                ));
            }
        };
        Ok(Registration {
            id: TargetId::Ip(address),
            port,
            availability_zone: zone,
            address,
            draining_until_ms: None,
        })
    }

    fn target_group(&self, arn: &str) -> Result<&TargetGroup> {
        self.target_groups.get(arn).ok_or_else(|| not_found(arn))
    }

    fn target_group_mut(&mut self, arn: &str) -> Result<&mut TargetGroup> {
        self.target_groups
            .get_mut(arn)
            .ok_or_else(|| not_found(arn))
    }
}

impl Region {
    /// An application load balancer as the one target of an `alb` group: of this region and
    /// the group's VPC, with a listener on the group's port, which is the target's. Its nodes
    /// are where traffic goes ([`Region::expand`]).
    fn resolve_alb(&self, tg: &TargetGroup, lb_arn: &str, port: u16) -> Result<Registration> {
        if port != tg.port {
            return Err(ModelError::validation(format!(
                "An application load balancer is registered on its target group's port, {}",
                tg.port
            )));
        }
        let lb = self
            .load_balancers
            .get(lb_arn)
            .filter(|lb| lb.kind == LoadBalancerKind::Application)
            .ok_or_else(|| {
                ModelError::new(
                    ErrorCode::InvalidTarget,
                    format!("The target '{lb_arn}' is not an application load balancer here"),
                )
            })?;
        if lb.vpc_id != tg.vpc_id {
            return Err(ModelError::new(
                ErrorCode::InvalidTarget,
                format!("The load balancer '{lb_arn}' is not in the VPC of the target group"),
            ));
        }
        if !self.listeners_of(lb_arn).any(|l| l.port == port) {
            return Err(ModelError::new(
                ErrorCode::InvalidTarget,
                format!("The load balancer '{lb_arn}' has no listener on port {port}"),
            ));
        }
        Ok(Registration {
            id: TargetId::Alb(lb_arn.to_owned()),
            port,
            availability_zone: "all".into(),
            address: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            draining_until_ms: None,
        })
    }
}

impl Region {
    /// A Lambda function as the one target of a `lambda` group: of this region and account,
    /// as AWS requires, registered without a port, in every zone.
    fn resolve_function(&self, arn: &str, t: &TargetDescription) -> Result<Registration> {
        let function = FunctionArn::parse(arn)?;
        if function.region != self.scope.region || function.account != self.scope.account {
            return Err(ModelError::new(
                ErrorCode::InvalidTarget,
                format!("The function '{arn}' is not in this target group's account and region"),
            ));
        }
        if t.port.is_some() {
            return Err(ModelError::validation(
                "A port cannot be specified for Lambda function targets",
            ));
        }
        if t.availability_zone.as_deref().is_some_and(|az| az != "all") {
            return Err(ModelError::validation(
                "The Availability Zone of a Lambda function target can only be 'all'",
            ));
        }
        Ok(Registration {
            id: TargetId::Lambda(arn.to_owned()),
            port: 0,
            availability_zone: "all".into(),
            address: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            draining_until_ms: None,
        })
    }
}

fn parse_target_id(target_type: TargetType, id: &str) -> Result<TargetId> {
    match target_type {
        TargetType::Alb if id.contains(":loadbalancer/app/") => Ok(TargetId::Alb(id.to_owned())),
        TargetType::Alb => Err(ModelError::validation(format!(
            "The target ID '{id}' is not an application load balancer's ARN"
        ))),
        TargetType::Lambda => Ok(TargetId::Lambda(id.to_owned())),
        TargetType::Ip => id.parse().map(TargetId::Ip).map_err(|_| {
            ModelError::validation(format!("The target ID '{id}' is not a valid IP address"))
        }),
        _ if id.starts_with("i-") => Ok(TargetId::Instance(id.to_owned())),
        _ => Err(ModelError::validation(format!(
            "The target ID '{id}' is not a valid instance ID"
        ))),
    }
}

/// A `lambda` group takes no protocol, port or VPC, as AWS's. It keeps HTTP and port 0
/// in their place (its function takes HTTP requests as events); neither is ever shown.
fn lambda_group(c: &CreateTargetGroup) -> Result<(TargetGroupProtocol, u16, String)> {
    let given = [
        ("Protocol", c.protocol.is_some()),
        ("Port", c.port.is_some()),
        ("VPC ID", c.vpc_id.is_some()),
        (
            "Protocol version",
            c.protocol_version != ProtocolVersion::Http1,
        ),
    ];
    if let Some((name, _)) = given.iter().find(|(_, given)| *given) {
        return Err(ModelError::validation(format!(
            "{name} cannot be specified for target groups with target type 'lambda'"
        )));
    }
    Ok((TargetGroupProtocol::Http, 0, String::new()))
}

/// `ipv6` groups are of `ip` targets: this host's instances have IPv4 addresses only, and
/// functions and load balancers have no address family to choose.
fn check_ip_address_type(
    target_type: TargetType,
    ip_address_type: TargetIpAddressType,
) -> Result<()> {
    match (target_type, ip_address_type) {
        (_, TargetIpAddressType::Ipv4) | (TargetType::Ip, _) => Ok(()),
        (TargetType::Instance, _) => Err(ModelError::new(
            ErrorCode::InvalidConfigurationRequest,
            "IpAddressType 'ipv6' with instance targets: elbd's instances have no IPv6 \
             addresses; register their addresses in an ip group",
        )),
        (TargetType::Lambda | TargetType::Alb, _) => Err(ModelError::validation(
            "The IP address type of a lambda or alb target group can only be ipv4",
        )),
    }
}

pub(super) fn check_port(port: u16) -> Result<()> {
    if port == 0 {
        return Err(ModelError::validation("Port must be between 1 and 65535"));
    }
    Ok(())
}

/// Appliances take GENEVE on AWS's port only. (They are instances or addresses: `alb`
/// targets need TCP groups, and `lambda` groups have no protocol.)
fn check_geneve_port(port: u16) -> Result<()> {
    if port != GENEVE_PORT {
        return Err(ModelError::validation(format!(
            "GENEVE target groups and their targets use port {GENEVE_PORT}, not {port}"
        )));
    }
    Ok(())
}

pub(super) fn not_found(arn: &str) -> ModelError {
    ModelError::new(
        ErrorCode::TargetGroupNotFound,
        format!("Target group '{arn}' not found"),
    )
}

/// Whether an address outside every VPC may still be a target: AWS takes private ranges
/// (RFC 1918, RFC 6598's shared space, IPv6 unique-local) and no publicly routable address;
/// loopback is this host's own.
fn private(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(ip) => {
            let shared = ip.octets()[0] == 100 && (64..128).contains(&ip.octets()[1]);
            ip.is_private() || ip.is_loopback() || shared
        }
        IpAddr::V6(ip) => ip.is_loopback() || ip.is_unique_local(),
    }
}
