//! The EC2 subset elbd models (Query protocol, version 2016-11-15, `item` lists): the default
//! VPC, its subnets, availability zones and security groups.

use elb_model::State;

use crate::Api;
use crate::error::ApiError;
use crate::query::Params;
use crate::xml::Xml;

pub const NAMESPACE: &str = "http://ec2.amazonaws.com/doc/2016-11-15/";

/// The EC2 operations the issue names; those not built yet answer `UnsupportedOperation`.
const OPERATIONS: [&str; 19] = [
    "CreateVpc",
    "DescribeVpcs",
    "DeleteVpc",
    "CreateSubnet",
    "DescribeSubnets",
    "DeleteSubnet",
    "DescribeAvailabilityZones",
    "CreateSecurityGroup",
    "DescribeSecurityGroups",
    "AuthorizeSecurityGroupIngress",
    "RevokeSecurityGroupIngress",
    "DeleteSecurityGroup",
    "RunInstances",
    "DescribeInstances",
    "StopInstances",
    "StartInstances",
    "TerminateInstances",
    "CreateTags",
    "DescribeTags",
];

pub fn call(api: &Api, action: &str, params: &Params) -> Result<Xml, ApiError> {
    params.optional("Version");
    let snapshot = api.store.snapshot();
    let state = &snapshot.state;
    match action {
        "DescribeVpcs" => describe_vpcs(state, params),
        "DescribeSubnets" => describe_subnets(state, params),
        "DescribeAvailabilityZones" => describe_zones(state, params),
        "DescribeSecurityGroups" => describe_security_groups(state, params),
        known if OPERATIONS.contains(&known) => Err(ApiError::new(
            400,
            "UnsupportedOperation",
            format!("elbd does not implement {known} yet"),
        )),
        unknown => Err(ApiError::new(
            400,
            "InvalidAction",
            format!("The action {unknown} is not valid for this web service."),
        )),
    }
}

/// The ids asked for with `{prefix}.N`, checked to exist.
fn wanted(
    params: &Params,
    prefix: &str,
    exists: impl Fn(&str) -> bool,
    code: &str,
) -> Result<Vec<String>, ApiError> {
    let ids = params.list(prefix)?;
    if let Some(missing) = ids.iter().find(|id| !exists(id)) {
        return Err(ApiError::new(
            400,
            code,
            format!("The ID '{missing}' does not exist"),
        ));
    }
    Ok(ids)
}

/// Filters are not built yet; refuse them rather than answer unfiltered.
fn no_filters(params: &Params) -> Result<(), ApiError> {
    if params.structs("Filter")?.is_empty() {
        Ok(())
    } else {
        Err(ApiError::new(
            400,
            "InvalidParameterValue",
            "elbd does not support Filter yet",
        ))
    }
}

fn describe_vpcs(state: &State, params: &Params) -> Result<Xml, ApiError> {
    let ids = wanted(
        params,
        "VpcId",
        |id| state.vpcs.contains_key(id),
        "InvalidVpcID.NotFound",
    )?;
    no_filters(params)?;
    let mut x = Xml::new();
    x.items(
        "vpcSet",
        state
            .vpcs
            .values()
            .filter(|v| ids.is_empty() || ids.contains(&v.id)),
        |x, vpc| {
            let first = vpc
                .cidr_blocks
                .first()
                .map(ToString::to_string)
                .unwrap_or_default();
            x.leaf("vpcId", &vpc.id)
                .leaf("ownerId", &state.scope.account)
                .leaf("state", "available")
                .leaf("cidrBlock", first)
                .items(
                    "cidrBlockAssociationSet",
                    vpc.cidr_blocks.iter().enumerate(),
                    |x, (i, cidr)| {
                        x.leaf("associationId", format!("{}-cidr-{i}", vpc.id))
                            .leaf("cidrBlock", cidr.to_string())
                            .node("cidrBlockState", |x| {
                                x.leaf("state", "associated");
                            });
                    },
                )
                .leaf("instanceTenancy", "default")
                .leaf("isDefault", vpc.is_default.to_string());
        },
    );
    Ok(x)
}

fn describe_subnets(state: &State, params: &Params) -> Result<Xml, ApiError> {
    let ids = wanted(
        params,
        "SubnetId",
        |id| state.subnets.contains_key(id),
        "InvalidSubnetID.NotFound",
    )?;
    no_filters(params)?;
    let mut x = Xml::new();
    x.items(
        "subnetSet",
        state
            .subnets
            .values()
            .filter(|s| ids.is_empty() || ids.contains(&s.id)),
        |x, s| {
            let zone_id = zone_id(state, &s.availability_zone);
            x.leaf("subnetId", &s.id)
                .leaf(
                    "subnetArn",
                    format!(
                        "arn:aws:ec2:{}:{}:subnet/{}",
                        state.scope.region, state.scope.account, s.id
                    ),
                )
                .leaf("state", "available")
                .leaf("ownerId", &state.scope.account)
                .leaf("vpcId", &s.vpc_id)
                .leaf("cidrBlock", s.cidr.to_string())
                .leaf(
                    "availableIpAddressCount",
                    s.cidr.hosts().count().saturating_sub(4).to_string(),
                )
                .leaf("availabilityZone", &s.availability_zone)
                .leaf("availabilityZoneId", zone_id)
                .leaf("defaultForAz", s.default_for_az.to_string())
                .leaf("mapPublicIpOnLaunch", "false");
        },
    );
    Ok(x)
}

/// `use1-az1`-style zone ids: the region's initials and the zone's position.
fn zone_id(state: &State, zone: &str) -> String {
    let initials: String = state
        .scope
        .region
        .split('-')
        .map(|p| &p[..1])
        .collect::<String>();
    let digit = state.scope.region.rsplit('-').next().unwrap_or("1");
    let position = zone
        .bytes()
        .last()
        .map_or(1, |b| b.saturating_sub(b'a') + 1);
    format!("{initials}{digit}-az{position}")
}

fn zones(state: &State) -> Vec<String> {
    let mut zones: Vec<String> = state
        .subnets
        .values()
        .map(|s| s.availability_zone.clone())
        .collect();
    zones.sort();
    zones.dedup();
    zones
}

fn describe_zones(state: &State, params: &Params) -> Result<Xml, ApiError> {
    let all = zones(state);
    let names = wanted(
        params,
        "ZoneName",
        |z| all.iter().any(|a| a == z),
        "InvalidParameterValue",
    )?;
    params.bool("AllAvailabilityZones")?;
    no_filters(params)?;
    let mut x = Xml::new();
    x.items(
        "availabilityZoneInfo",
        all.iter().filter(|z| names.is_empty() || names.contains(z)),
        |x, zone| {
            x.leaf("zoneName", zone)
                .leaf("zoneId", zone_id(state, zone))
                .leaf("zoneState", "available")
                .leaf("regionName", &state.scope.region)
                .leaf("zoneType", "availability-zone")
                .leaf("optInStatus", "opt-in-not-required")
                .node("messageSet", |_| {});
        },
    );
    Ok(x)
}

fn describe_security_groups(state: &State, params: &Params) -> Result<Xml, ApiError> {
    let ids = wanted(
        params,
        "GroupId",
        |id| state.security_groups.contains_key(id),
        "InvalidGroup.NotFound",
    )?;
    let names = params.list("GroupName")?;
    no_filters(params)?;
    let groups = state
        .security_groups
        .values()
        .filter(|g| ids.is_empty() || ids.contains(&g.id))
        .filter(|g| names.is_empty() || names.contains(&g.name));
    let mut x = Xml::new();
    x.items("securityGroupInfo", groups, |x, g| {
        x.leaf("ownerId", &state.scope.account)
            .leaf("groupId", &g.id)
            .leaf("groupName", &g.name)
            .leaf("groupDescription", &g.description)
            .leaf("vpcId", &g.vpc_id)
            .items("ipPermissions", &g.ingress, |x, rule| {
                x.leaf("ipProtocol", &rule.protocol);
                if rule.protocol != "-1" {
                    x.leaf("fromPort", rule.from_port.to_string())
                        .leaf("toPort", rule.to_port.to_string());
                }
                x.node("groups", |_| {})
                    .items("ipRanges", [rule.cidr], |x, cidr| {
                        x.leaf("cidrIp", cidr.to_string());
                    });
            })
            .node("ipPermissionsEgress", |_| {});
    });
    Ok(x)
}
