//! CreateLoadBalancer, DescribeLoadBalancers, DeleteLoadBalancer, DescribeAccountLimits.

use elb_model::state::{CreateLoadBalancer, SourceNatPrefix, SubnetMapping};
use elb_model::{Command, ErrorCode, IpAddressType, LoadBalancerKind, ModelError, Origin, Scheme};

use super::{create_then, page, render, tag_params, tagging};
use crate::ApiCall;
use crate::error::ApiError;
use crate::query::Params;
use crate::xml::Xml;

pub(super) fn create(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    let name = params.required("Name")?.to_owned();
    let kind = match params.one_of("Type", &["application", "network", "gateway"])? {
        Some(t) => LoadBalancerKind::parse(t)?,
        None => LoadBalancerKind::Application,
    };
    let scheme = params
        .one_of("Scheme", &["internet-facing", "internal"])?
        .map(Scheme::parse)
        .transpose()?;
    let ip_address_type = ip_address_type(params)?;
    let (subnet_ids, subnet_mappings) = subnet_params(params)?;
    let ipv6_source_nat = source_nat(params)?;
    let security_groups = Some(params.list("SecurityGroups.member")?).filter(|sgs| !sgs.is_empty());
    let tags = tag_params(params)?;
    // Pools of this account: it has no Outposts and no IPAM, so none exists.
    if let Some(pool) = params.optional("CustomerOwnedIpv4Pool") {
        return Err(no_such_pool("customer-owned IPv4 pool", pool));
    }
    if let Some(pool) = params.optional("IpamPools.Ipv4IpamPoolId") {
        return Err(no_such_pool("IPAM pool", pool));
    }
    let create = Command::CreateLoadBalancer(CreateLoadBalancer {
        name,
        kind,
        scheme,
        ip_address_type,
        ipv6_source_nat,
        subnet_ids,
        subnet_mappings,
        security_groups,
        origin: Origin::Api,
    });
    let (snapshot, arn) =
        create_then(api, create, |arn| tagging(arn, &tags).into_iter().collect())?;
    let state = snapshot.state();
    let mut x = Xml::new();
    x.members("LoadBalancers", [&state.load_balancers[&arn]], |x, lb| {
        render::load_balancer(x, state, lb)
    });
    Ok(x)
}

pub(super) fn describe(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    let arns = params.list("LoadBalancerArns.member")?;
    let names = params.list("Names.member")?;
    let snapshot = api.snapshot();
    let state = snapshot.state();
    let mut found: Vec<_> = state.load_balancers.values().collect();
    if !arns.is_empty() && !names.is_empty() {
        return Err(ApiError::validation(
            "Load balancer names and load balancer ARNs cannot be specified at the same time",
        ));
    }
    if !arns.is_empty() {
        if let Some(missing) = arns.iter().find(|a| !state.load_balancers.contains_key(*a)) {
            return Err(ModelError::new(
                ErrorCode::LoadBalancerNotFound,
                format!("Load balancer '{missing}' not found"),
            )
            .into());
        }
        found.retain(|lb| arns.contains(&lb.arn));
    }
    if !names.is_empty() {
        let missing: Vec<&str> = names
            .iter()
            .filter(|n| state.load_balancer_by_name(n).is_none())
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            let message = format!("Load balancers '[{}]' not found", missing.join(", "));
            return Err(ModelError::new(ErrorCode::LoadBalancerNotFound, message).into());
        }
        found.retain(|lb| names.contains(&lb.name));
    }
    found.sort_by(|a, b| (a.created_ms, &a.arn).cmp(&(b.created_ms, &b.arn)));
    let (found, next) = page(params, found, |lb| &lb.arn)?;
    let mut x = Xml::new();
    x.members("LoadBalancers", found, |x, lb| {
        render::load_balancer(x, state, lb)
    });
    if let Some(next) = next {
        x.leaf("NextMarker", next);
    }
    Ok(x)
}

pub(super) fn delete(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    let arn = params.required("LoadBalancerArn")?.to_owned();
    api.execute(Command::DeleteLoadBalancer { arn })?;
    Ok(Xml::new())
}

/// The region's quotas (AWS's defaults unless raised), the ones elbd enforces among them, in
/// the order of their names.
pub(super) fn account_limits(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    let quotas = api.snapshot().state().quotas;
    let all = [
        (
            "application-load-balancers",
            quotas.load_balancers_of(LoadBalancerKind::Application),
        ),
        (
            "gateway-load-balancers",
            quotas.load_balancers_of(LoadBalancerKind::Gateway),
        ),
        (
            "listeners-per-application-load-balancer",
            quotas.listeners_per_load_balancer,
        ),
        (
            "listeners-per-network-load-balancer",
            quotas.listeners_per_load_balancer,
        ),
        (
            "network-load-balancers",
            quotas.load_balancers_of(LoadBalancerKind::Network),
        ),
        (
            "rules-per-application-load-balancer",
            elb_model::limits::RULES_PER_LOAD_BALANCER,
        ),
        ("target-groups", quotas.target_groups_per_region),
    ];
    let (limits, next) = page(params, all.to_vec(), |(name, _)| name)?;
    let mut x = Xml::new();
    x.members("Limits", limits, |x, (name, max)| {
        x.leaf("Name", name).leaf("Max", max.to_string());
    });
    if let Some(next) = next {
        x.leaf("NextMarker", next);
    }
    Ok(x)
}

fn ip_address_type(params: &Params) -> Result<Option<IpAddressType>, ApiError> {
    let kinds = ["ipv4", "dualstack", "dualstack-without-public-ipv4"];
    Ok(params.one_of("IpAddressType", &kinds)?.map(|t| match t {
        "ipv4" => IpAddressType::Ipv4,
        "dualstack" => IpAddressType::Dualstack,
        _ => IpAddressType::DualstackWithoutPublicIpv4,
    }))
}

/// `EnablePrefixForIpv6SourceNat`.
fn source_nat(params: &Params) -> Result<Option<bool>, ApiError> {
    Ok(params
        .one_of("EnablePrefixForIpv6SourceNat", &["on", "off"])?
        .map(|v| v == "on"))
}

/// `Subnets` and `SubnetMappings`. A mapping's `AllocationId`, `PrivateIPv4Address`,
/// `IPv6Address` and `SourceNatIpv6Prefix` (a /80, or `auto_assigned`) choose a new node's
/// addresses.
fn subnet_params(params: &Params) -> Result<(Vec<String>, Vec<SubnetMapping>), ApiError> {
    let mut subnet_ids = params.list("Subnets.member")?;
    let mut mappings = Vec::new();
    let mapped = params.structs("SubnetMappings.member")?;
    if !subnet_ids.is_empty() && !mapped.is_empty() {
        return Err(ApiError::validation(
            "You must specify either subnets or subnet mappings, but not both",
        ));
    }
    for mapping in mapped {
        let subnet_id = mapping.required("SubnetId")?.to_owned();
        subnet_ids.push(subnet_id.clone());
        let private_ipv4 = mapping
            .optional("PrivateIPv4Address")
            .map(|ip| {
                ip.parse()
                    .map_err(|_| ApiError::validation(format!("'{ip}' is not an IPv4 address")))
            })
            .transpose()?;
        let ipv6 = mapping
            .optional("IPv6Address")
            .map(|ip| {
                ip.parse()
                    .map_err(|_| ApiError::validation(format!("'{ip}' is not an IPv6 address")))
            })
            .transpose()?;
        let source_nat_ipv6_prefix = match mapping.optional("SourceNatIpv6Prefix") {
            None => None,
            Some("auto_assigned") => Some(SourceNatPrefix::AutoAssigned),
            Some(prefix) => Some(SourceNatPrefix::Given(prefix.parse().map_err(|_| {
                ApiError::validation(format!(
                    "'{prefix}' is not an IPv6 prefix or 'auto_assigned'"
                ))
            })?)),
        };
        mappings.push(SubnetMapping {
            subnet_id,
            allocation_id: mapping.optional("AllocationId").map(str::to_owned),
            private_ipv4,
            ipv6,
            source_nat_ipv6_prefix,
        });
        mapping.finish()?;
    }
    Ok((subnet_ids, mappings))
}

pub(super) fn set_subnets(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    let arn = params.required("LoadBalancerArn")?.to_owned();
    let (subnet_ids, subnet_mappings) = subnet_params(params)?;
    let ip_address_type = ip_address_type(params)?;
    let ipv6_source_nat = source_nat(params)?;
    let (snapshot, _) = api.update(|state, cx| {
        state.apply(
            Command::SetSubnets {
                arn: arn.clone(),
                subnet_ids: subnet_ids.clone(),
                subnet_mappings: subnet_mappings.clone(),
                ip_address_type,
                ipv6_source_nat,
            },
            cx,
        )
    })?;
    let state = snapshot.state();
    let lb = &state.load_balancers[&arn];
    let mut x = Xml::new();
    render::availability_zones(&mut x, state, lb);
    x.leaf("IpAddressType", lb.ip_address_type.as_str());
    if lb.kind == LoadBalancerKind::Network {
        x.leaf(
            "EnablePrefixForIpv6SourceNat",
            render::on_off(lb.ipv6_source_nat),
        );
    }
    Ok(x)
}

pub(super) fn set_security_groups(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    let arn = params.required("LoadBalancerArn")?.to_owned();
    let security_groups = params.list("SecurityGroups.member")?;
    let privatelink_inbound_rules = params
        .one_of(
            "EnforceSecurityGroupInboundRulesOnPrivateLinkTraffic",
            &["on", "off"],
        )?
        .map(|v| v == "on");
    let (snapshot, _) = api.update(|state, cx| {
        state.apply(
            Command::SetSecurityGroups {
                arn: arn.clone(),
                security_groups: security_groups.clone(),
                privatelink_inbound_rules,
            },
            cx,
        )
    })?;
    let lb = &snapshot.state().load_balancers[&arn];
    let mut x = Xml::new();
    x.text_members("SecurityGroupIds", &lb.security_groups);
    if let Some(on) = render::privatelink_inbound_rules(lb) {
        x.leaf("EnforceSecurityGroupInboundRulesOnPrivateLinkTraffic", on);
    }
    Ok(x)
}

pub(super) fn set_ip_address_type(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    let arn = params.required("LoadBalancerArn")?.to_owned();
    let ip_address_type =
        ip_address_type(params)?.ok_or_else(|| ApiError::missing("IpAddressType"))?;
    api.execute(Command::SetIpAddressType {
        arn,
        ip_address_type,
    })?;
    let mut x = Xml::new();
    x.leaf("IpAddressType", ip_address_type.as_str());
    Ok(x)
}

/// Refuses an ARN that names no load balancer of this region.
fn existing(api: &ApiCall<'_>, arn: &str) -> Result<(), ApiError> {
    if api.snapshot().state().load_balancers.contains_key(arn) {
        return Ok(());
    }
    Err(ModelError::new(
        ErrorCode::LoadBalancerNotFound,
        format!("Load balancer '{arn}' not found"),
    )
    .into())
}

/// No capacity is ever reserved: a node's capacity is its host's. The answer is AWS's for a
/// load balancer without a reservation.
pub(super) fn describe_capacity_reservation(
    api: &ApiCall<'_>,
    params: &Params,
) -> Result<Xml, ApiError> {
    existing(api, params.required("LoadBalancerArn")?)?;
    let mut x = Xml::new();
    x.members("CapacityReservationState", [(); 0], |_, ()| {});
    Ok(x)
}

/// Resetting (there is nothing to reset) is answered. Reserving gets AWS's answer to an
/// account whose limit of reserved capacity units is 0: elbd provisions no capacity to
/// reserve, as a node's capacity is its host's.
pub(super) fn modify_capacity_reservation(
    api: &ApiCall<'_>,
    params: &Params,
) -> Result<Xml, ApiError> {
    let arn = params.required("LoadBalancerArn")?;
    let units = params.int("MinimumLoadBalancerCapacity.CapacityUnits", 0, i64::MAX)?;
    let reset = params.bool("ResetCapacityReservation")?;
    existing(api, arn)?;
    match (units, reset) {
        (Some(_), Some(true)) => Err(ApiError::validation(
            "MinimumLoadBalancerCapacity and ResetCapacityReservation cannot be given together",
        )),
        (Some(_), _) => Err(ApiError::new(
            400,
            "CapacityUnitsLimitExceeded",
            "You've exceeded the capacity units limit: this account may reserve 0 capacity \
             units (a node's capacity is its host's)",
        )),
        (None, Some(true)) => describe_capacity_reservation(api, params),
        (None, _) => Err(ApiError::validation(
            "Either MinimumLoadBalancerCapacity or ResetCapacityReservation must be specified",
        )),
    }
}

/// AWS's answer to a pool the account does not have.
fn no_such_pool(kind: &str, pool: &str) -> ApiError {
    ApiError::new(
        400,
        "InvalidConfigurationRequest",
        format!("The {kind} '{pool}' does not exist"),
    )
}

/// No IPAM pools exist here: removing the (absent) pool is answered, naming one is refused.
pub(super) fn modify_ip_pools(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    let arn = params.required("LoadBalancerArn")?;
    let pool = params.optional("IpamPools.Ipv4IpamPoolId");
    for removed in params.list("RemoveIpamPools.member")? {
        if removed != "ipv4" {
            return Err(ApiError::validation(format!(
                "Value '{removed}' at 'removeIpamPools' failed to satisfy constraint: Member \
                 must satisfy enum value set: [ipv4]"
            )));
        }
    }
    existing(api, arn)?;
    if let Some(pool) = pool {
        return Err(no_such_pool("IPAM pool", pool));
    }
    Ok(Xml::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_and_subnet_mappings_are_one_or_the_other() {
        let both = "Subnets.member.1=subnet-a&SubnetMappings.member.1.SubnetId=subnet-b";
        let err = subnet_params(&Params::decode(both.as_bytes()).unwrap()).unwrap_err();
        assert!(err.message.contains("not both"), "{}", err.message);
        let mapped = "SubnetMappings.member.1.SubnetId=subnet-b";
        let (ids, mappings) = subnet_params(&Params::decode(mapped.as_bytes()).unwrap()).unwrap();
        assert_eq!((ids, mappings.len()), (vec!["subnet-b".to_owned()], 1));
    }
}
