//! Security groups and their ingress rules.

use elb_model::{Command, IngressRule, IngressSource, Region};
use ipnet::IpNet;

use super::filters::Filters;
use super::{create, done, next_token, page, tag_set, tag_specifications, wanted};
use crate::ApiCall;
use crate::error::ApiError;
use crate::query::Params;
use crate::xml::Xml;

pub(super) fn create_group(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    let name = params.required("GroupName")?.to_owned();
    let description = params.required("GroupDescription")?.to_owned();
    let vpc_id = params.optional("VpcId").map(str::to_owned);
    let tags = tag_specifications(params, "security-group")?;
    let command = Command::CreateSecurityGroup {
        name,
        description,
        vpc_id,
    };
    let id = create(api, command, tags)?;
    let snapshot = api.snapshot();
    let mut x = done();
    x.leaf("groupId", &id);
    tag_set(&mut x, snapshot.state(), &id);
    Ok(x)
}

fn group_id(api: &ApiCall<'_>, params: &Params) -> Result<String, ApiError> {
    if let Some(id) = params.optional("GroupId") {
        return Ok(id.to_owned());
    }
    let name = params.required("GroupName")?;
    let snapshot = api.snapshot();
    let state = snapshot.state();
    let vpc = state
        .default_vpc()
        .map(|v| v.id.as_str())
        .unwrap_or_default();
    state
        .security_groups
        .values()
        .find(|g| g.name == name && g.vpc_id == vpc)
        .map(|g| g.id.clone())
        .ok_or_else(|| {
            ApiError::new(
                400,
                "InvalidGroup.NotFound",
                format!("The security group '{name}' does not exist in the default VPC"),
            )
        })
}

pub(super) fn delete(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    let id = group_id(api, params)?;
    api.execute(Command::DeleteSecurityGroup { id })?;
    Ok(done())
}

/// The rules of an Authorize/Revoke call: `IpPermissions.N…`, or the older top-level
/// `IpProtocol`/`FromPort`/`ToPort`/`CidrIp` form the aws cli's `--protocol --port --cidr` sends.
fn rules(params: &Params) -> Result<Vec<IngressRule>, ApiError> {
    let mut rules = Vec::new();
    for p in params.structs("IpPermissions")? {
        let (protocol, from_port, to_port) = protocol_and_ports(&p)?;
        let mut sources: Vec<(IngressSource, Option<String>)> = Vec::new();
        let description = |p: &Params| p.optional("Description").map(str::to_owned);
        for range in p.structs("IpRanges")? {
            let cidr = parse_cidr(range.required("CidrIp")?)?;
            sources.push((IngressSource::Cidr(cidr), description(&range)));
            range.finish()?;
        }
        for range in p.structs("Ipv6Ranges")? {
            let cidr = parse_cidr_ipv6(range.required("CidrIpv6")?)?;
            sources.push((IngressSource::Cidr(cidr), description(&range)));
            range.finish()?;
        }
        for pair in p.structs("Groups")? {
            let group = IngressSource::Group(pair.required("GroupId")?.to_owned());
            sources.push((group, description(&pair)));
            pair.optional("UserId");
            pair.finish()?;
        }
        p.finish()?;
        if sources.is_empty() {
            return Err(ApiError::new(
                400,
                "InvalidParameterValue",
                "A rule needs an IP range or a source group",
            ));
        }
        rules.extend(
            sources
                .into_iter()
                .map(|(source, description)| IngressRule {
                    protocol: protocol.clone(),
                    from_port,
                    to_port,
                    source,
                    description,
                }),
        );
    }
    if let Some(cidr) = params.optional("CidrIp") {
        let (protocol, from_port, to_port) = protocol_and_ports(params)?;
        rules.push(IngressRule {
            protocol,
            from_port,
            to_port,
            source: IngressSource::Cidr(parse_cidr(cidr)?),
            description: None,
        });
    }
    if rules.is_empty() {
        // The default-VPC form grants a named group TCP, UDP and ICMP; elbd has no ICMP rules.
        if params.optional("SourceSecurityGroupName").is_some() {
            return Err(ApiError::validation(
                "Parameter 'SourceSecurityGroupName' is not supported by elbd yet (it grants \
                 ICMP too); name the group in IpPermissions.N.Groups",
            ));
        }
        return Err(ApiError::missing("IpPermissions"));
    }
    Ok(rules)
}

fn protocol_and_ports(p: &Params) -> Result<(String, u16, u16), ApiError> {
    let protocol = match p.required("IpProtocol")? {
        "6" => "tcp",
        "17" => "udp",
        "all" => "-1",
        other => other,
    }
    .to_lowercase();
    let from = p.int("FromPort", -1, 65535)?;
    let to = p.int("ToPort", -1, 65535)?;
    let (from, to) = match (protocol.as_str(), from, to) {
        ("-1", _, _) => (0, 65535),
        (_, Some(from), Some(to)) if from >= 0 && to >= 0 => (from as u16, to as u16),
        _ => {
            return Err(ApiError::new(
                400,
                "InvalidParameterValue",
                "tcp and udp rules need FromPort and ToPort",
            ));
        }
    };
    Ok((protocol, from, to))
}

fn parse_cidr(raw: &str) -> Result<IpNet, ApiError> {
    raw.parse()
        .map(|c: ipnet::Ipv4Net| IpNet::V4(c.trunc()))
        .map_err(|_| {
            ApiError::new(
                400,
                "InvalidParameterValue",
                format!("CIDR block {raw} is malformed"),
            )
        })
}

fn parse_cidr_ipv6(raw: &str) -> Result<IpNet, ApiError> {
    raw.parse()
        .map(|c: ipnet::Ipv6Net| IpNet::V6(c.trunc()))
        .map_err(|_| {
            ApiError::new(
                400,
                "InvalidParameterValue",
                format!("IPv6 CIDR block {raw} is malformed"),
            )
        })
}

pub(super) fn authorize(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    let group_id = group_id(api, params)?;
    let rules = rules(params)?;
    api.execute(Command::AuthorizeIngress { group_id, rules })?;
    Ok(done())
}

pub(super) fn revoke(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    let group_id = group_id(api, params)?;
    let rules = rules(params)?;
    api.execute(Command::RevokeIngress { group_id, rules })?;
    Ok(done())
}

/// Egress rules come in `IpPermissions` only: EC2 documents the older top-level form as not
/// supported for egress.
fn egress_rules(params: &Params) -> Result<Vec<IngressRule>, ApiError> {
    for legacy in [
        "CidrIp",
        "IpProtocol",
        "FromPort",
        "ToPort",
        "SourceSecurityGroupName",
    ] {
        if params.optional(legacy).is_some() {
            return Err(ApiError::new(
                400,
                "InvalidParameterCombination",
                format!(
                    "Parameter '{legacy}' is not supported for egress rules; use IpPermissions"
                ),
            ));
        }
    }
    rules(params)
}

/// Egress rules bound the load balancers' nodes that carry the group: a target they do not
/// allow is not reached (its health checks time out, and no request goes to it).
pub(super) fn authorize_egress(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    let group_id = params.required("GroupId")?.to_owned();
    let rules = egress_rules(params)?;
    api.execute(Command::AuthorizeEgress { group_id, rules })?;
    Ok(done())
}

pub(super) fn revoke_egress(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    let group_id = params.required("GroupId")?.to_owned();
    let rules = egress_rules(params)?;
    api.execute(Command::RevokeEgress { group_id, rules })?;
    Ok(done())
}

fn permission(x: &mut Xml, state: &Region, rule: &IngressRule) {
    x.leaf("ipProtocol", &rule.protocol);
    if rule.protocol != "-1" {
        x.leaf("fromPort", rule.from_port.to_string())
            .leaf("toPort", rule.to_port.to_string());
    }
    let (groups, ranges, ipv6_ranges): (Vec<_>, Vec<_>, Vec<_>) = match &rule.source {
        IngressSource::Group(g) => (vec![g], vec![], vec![]),
        IngressSource::Cidr(c @ IpNet::V4(_)) => (vec![], vec![c], vec![]),
        IngressSource::Cidr(c @ IpNet::V6(_)) => (vec![], vec![], vec![c]),
    };
    let description = |x: &mut Xml| {
        if let Some(d) = &rule.description {
            x.leaf("description", d);
        }
    };
    x.items("groups", groups, |x, g| {
        x.leaf("userId", &state.scope.account).leaf("groupId", g);
        description(x);
    });
    x.items("ipRanges", ranges, |x, cidr| {
        x.leaf("cidrIp", cidr.to_string());
        description(x);
    });
    x.items("ipv6Ranges", ipv6_ranges, |x, cidr| {
        x.leaf("cidrIpv6", cidr.to_string());
        description(x);
    });
}

pub(super) fn describe(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    let snapshot = api.snapshot();
    let state = snapshot.state();
    let ids = wanted(
        params,
        "GroupId",
        |id| state.security_groups.contains_key(id),
        "InvalidGroup.NotFound",
    )?;
    let names = params.list("GroupName")?;
    let filters = Filters::parse(
        params,
        &[
            "group-id",
            "group-name",
            "vpc-id",
            "description",
            "owner-id",
        ],
        true,
    )?;
    let groups = state
        .security_groups
        .values()
        .filter(|g| ids.is_empty() || ids.contains(&g.id))
        .filter(|g| names.is_empty() || names.contains(&g.name))
        .filter(|g| {
            filters.matches(Some(&g.tags), |name| {
                vec![match name {
                    "group-id" => g.id.clone(),
                    "group-name" => g.name.clone(),
                    "vpc-id" => g.vpc_id.clone(),
                    "description" => g.description.clone(),
                    _ => state.scope.account.clone(),
                }]
            })
        });
    let (groups, next) = page(params, groups, |g| &g.id)?;
    let mut x = Xml::new();
    next_token(&mut x, next);
    x.items("securityGroupInfo", groups, |x, g| {
        x.leaf("ownerId", &state.scope.account)
            .leaf("groupId", &g.id)
            .leaf("groupName", &g.name)
            .leaf("groupDescription", &g.description)
            .leaf("vpcId", &g.vpc_id)
            .items("ipPermissions", &g.ingress, |x, rule| {
                permission(x, state, rule)
            })
            .items("ipPermissionsEgress", &g.egress, |x, rule| {
                permission(x, state, rule)
            });
        tag_set(x, state, &g.id);
    });
    Ok(x)
}
