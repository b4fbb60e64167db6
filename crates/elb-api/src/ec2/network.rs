//! VPCs, subnets and availability zones.

use elb_model::{Command, Region, Subnet, Tenancy, Vpc, VpcAttributes};

use super::filters::Filters;
use super::{create, done, next_token, not_built, page, tag_set, tag_specifications, wanted};
use crate::ApiCall;
use crate::error::ApiError;
use crate::query::Params;
use crate::xml::Xml;

fn cidr(params: &Params) -> Result<ipnet::Ipv4Net, ApiError> {
    let raw = params.required("CidrBlock")?;
    raw.parse().map_err(|_| {
        ApiError::new(
            400,
            "InvalidParameterValue",
            format!("Value ({raw}) for parameter cidrBlock is invalid"),
        )
    })
}

fn vpc(x: &mut Xml, state: &Region, vpc: &Vpc) {
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
        .items(
            "ipv6CidrBlockAssociationSet",
            vpc.ipv6_cidr_blocks.iter().enumerate(),
            |x, (i, cidr)| {
                x.leaf("associationId", format!("{}-ipv6-cidr-{i}", vpc.id))
                    .leaf("ipv6CidrBlock", cidr.to_string())
                    .node("ipv6CidrBlockState", |x| {
                        x.leaf("state", "associated");
                    })
                    .leaf("networkBorderGroup", &state.scope.region)
                    .leaf("ipv6Pool", "Amazon");
            },
        )
        .leaf("instanceTenancy", vpc.instance_tenancy.as_str())
        .leaf("isDefault", vpc.is_default.to_string());
    tag_set(x, state, &vpc.id);
}

pub(super) fn create_vpc(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    let cidr = cidr(params)?;
    let instance_tenancy =
        match params.one_of("InstanceTenancy", &["default", "dedicated", "host"])? {
            None | Some("default") => Tenancy::Default,
            Some("dedicated") => Tenancy::Dedicated,
            Some(_) => {
                return Err(ApiError::new(
                    400,
                    "InvalidParameterValue",
                    "The tenancy value host is not supported for VPCs",
                ));
            }
        };
    let amazon_ipv6 = params.bool("AmazonProvidedIpv6CidrBlock")? == Some(true);
    // Amazon's IPv6 blocks here have one border group: the region.
    if let Some(group) = params.optional("Ipv6CidrBlockNetworkBorderGroup") {
        if !amazon_ipv6 {
            return Err(ApiError::new(
                400,
                "InvalidParameterCombination",
                "Ipv6CidrBlockNetworkBorderGroup is given without AmazonProvidedIpv6CidrBlock",
            ));
        }
        if group != api.region {
            return Err(ApiError::new(
                400,
                "InvalidParameterValue",
                format!("Value ({group}) for parameter ipv6CidrBlockNetworkBorderGroup is invalid"),
            ));
        }
    }
    let tags = tag_specifications(params, "vpc")?;
    let command = Command::CreateVpc {
        cidr,
        instance_tenancy,
        amazon_ipv6,
    };
    let id = create(api, command, tags)?;
    let snapshot = api.snapshot();
    let mut x = Xml::new();
    x.node("vpc", |x| {
        vpc(x, snapshot.state(), &snapshot.state().vpcs[&id])
    });
    Ok(x)
}

pub(super) fn describe_vpcs(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    let snapshot = api.snapshot();
    let state = snapshot.state();
    let ids = wanted(
        params,
        "VpcId",
        |id| state.vpcs.contains_key(id),
        "InvalidVpcID.NotFound",
    )?;
    let filters = Filters::parse(
        params,
        &[
            "vpc-id",
            "cidr",
            "cidr-block-association.cidr-block",
            "ipv6-cidr-block-association.ipv6-cidr-block",
            "is-default",
            "isDefault",
            "state",
            "owner-id",
            "instance-tenancy",
        ],
        true,
    )?;
    let found = state
        .vpcs
        .values()
        .filter(|v| ids.is_empty() || ids.contains(&v.id))
        .filter(|v| {
            filters.matches(Some(&v.tags), |name| match name {
                "vpc-id" => vec![v.id.clone()],
                "cidr" | "cidr-block-association.cidr-block" => {
                    v.cidr_blocks.iter().map(ToString::to_string).collect()
                }
                "ipv6-cidr-block-association.ipv6-cidr-block" => {
                    v.ipv6_cidr_blocks.iter().map(ToString::to_string).collect()
                }
                "is-default" | "isDefault" => vec![v.is_default.to_string()],
                "state" => vec!["available".into()],
                "owner-id" => vec![state.scope.account.clone()],
                _ => vec![v.instance_tenancy.as_str().into()],
            })
        });
    let (found, next) = page(params, found, |v| &v.id)?;
    let mut x = Xml::new();
    x.items("vpcSet", found, |x, v| vpc(x, state, v));
    next_token(&mut x, next);
    Ok(x)
}

/// The three switches by their EC2 names (the `Attribute` value, `EnableX.Value` parameters).
const VPC_ATTRIBUTES: [&str; 3] = [
    "enableDnsSupport",
    "enableDnsHostnames",
    "enableNetworkAddressUsageMetrics",
];

fn switch<'a>(attributes: &'a mut VpcAttributes, name: &str) -> &'a mut bool {
    match name {
        "enableDnsSupport" => &mut attributes.enable_dns_support,
        "enableDnsHostnames" => &mut attributes.enable_dns_hostnames,
        _ => &mut attributes.enable_network_address_usage_metrics,
    }
}

fn existing_vpc<'a>(state: &'a Region, id: &str) -> Result<&'a Vpc, ApiError> {
    state.vpcs.get(id).ok_or_else(|| {
        ApiError::new(
            400,
            "InvalidVpcID.NotFound",
            format!("The vpc ID '{id}' does not exist"),
        )
    })
}

pub(super) fn describe_vpc_attribute(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    let id = params.required("VpcId")?;
    let name = params
        .one_of("Attribute", &VPC_ATTRIBUTES)?
        .ok_or_else(|| ApiError::missing("Attribute"))?;
    let snapshot = api.snapshot();
    let mut attributes = existing_vpc(snapshot.state(), id)?.attributes;
    let value = *switch(&mut attributes, name);
    let mut x = Xml::new();
    x.leaf("vpcId", id).node(name, |x| {
        x.leaf("value", value.to_string());
    });
    Ok(x)
}

/// One switch per call, as EC2 takes them.
pub(super) fn modify_vpc_attribute(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    let id = params.required("VpcId")?.to_owned();
    let mut given = Vec::new();
    for name in VPC_ATTRIBUTES {
        let mut wire = name.to_owned();
        wire[..1].make_ascii_uppercase();
        if let Some(value) = params.bool(&format!("{wire}.Value"))? {
            given.push((name, value));
        }
    }
    let [(name, value)] = given[..] else {
        return Err(ApiError::new(
            400,
            "InvalidParameterCombination",
            "ModifyVpcAttribute takes exactly one of EnableDnsSupport, EnableDnsHostnames and \
             EnableNetworkAddressUsageMetrics",
        ));
    };
    existing_vpc(api.snapshot().state(), &id)?;
    // Read and written in one commit, so that concurrent calls on other switches stay. (A VPC
    // deleted meanwhile is refused by the command.)
    api.update(|region, cx| {
        let mut attributes = region
            .vpcs
            .get(&id)
            .map(|v| v.attributes)
            .unwrap_or_default();
        *switch(&mut attributes, name) = value;
        let id = id.clone();
        region
            .apply(Command::ModifyVpcAttributes { id, attributes }, cx)
            .map(drop)
    })?;
    Ok(done())
}

pub(super) fn delete_vpc(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    let id = params.required("VpcId")?.to_owned();
    api.execute(Command::DeleteVpc { id })?;
    Ok(done())
}

/// AWS's zone ids: `us-east-1` + zone `a` → `use1-az1`, `ap-northeast-1` → `apne1-…`.
fn zone_id(state: &Region, zone: &str) -> String {
    let short: String = state
        .scope
        .region
        .split('-')
        .enumerate()
        .map(|(i, part)| match i {
            1 => ["north", "south", "east", "west", "central"]
                .iter()
                .fold(part.to_owned(), |acc, word| acc.replace(word, &word[..1])),
            _ => part.to_owned(),
        })
        .collect();
    let position = zone
        .bytes()
        .last()
        .map_or(1, |b| b.saturating_sub(b'a') + 1);
    format!("{short}-az{position}")
}

fn subnet(x: &mut Xml, state: &Region, s: &Subnet) {
    x.leaf("subnetId", &s.id)
        .leaf(
            "subnetArn",
            state.scope.service_arn("ec2", &format!("subnet/{}", s.id)),
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
        .leaf("availabilityZoneId", zone_id(state, &s.availability_zone))
        .leaf("defaultForAz", s.default_for_az.to_string())
        .leaf("mapPublicIpOnLaunch", "false")
        .leaf("assignIpv6AddressOnCreation", "false")
        .items("ipv6CidrBlockAssociationSet", &s.ipv6_cidr, |x, cidr| {
            x.leaf("associationId", format!("{}-ipv6-cidr", s.id))
                .leaf("ipv6CidrBlock", cidr.to_string())
                .node("ipv6CidrBlockState", |x| {
                    x.leaf("state", "associated");
                });
        })
        .leaf("ipv6Native", "false");
    tag_set(x, state, &s.id);
}

pub(super) fn create_subnet(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    let vpc_id = params.required("VpcId")?.to_owned();
    let cidr = cidr(params)?;
    let snapshot = api.snapshot();
    let state = snapshot.state();
    let by_id = params.optional("AvailabilityZoneId").map(|id| {
        zones(state)
            .into_iter()
            .find(|z| zone_id(state, z) == id)
            .ok_or_else(|| {
                ApiError::new(
                    400,
                    "InvalidParameterValue",
                    format!("Value ({id}) for parameter availabilityZoneId is invalid"),
                )
            })
    });
    let by_id = by_id.transpose()?;
    let availability_zone = match (params.optional("AvailabilityZone"), by_id) {
        (Some(zone), Some(other)) if zone != other => {
            return Err(ApiError::new(
                400,
                "InvalidParameterCombination",
                format!("AvailabilityZone {zone} and AvailabilityZoneId name different zones"),
            ));
        }
        (Some(zone), _) => zone.to_owned(),
        (None, Some(zone)) => zone,
        (None, None) => zones(state).into_iter().next().unwrap_or_default(),
    };
    if params.bool("Ipv6Native")? == Some(true) {
        return Err(not_built("Ipv6Native", "IPv6-only subnets"));
    }
    let ipv6_cidr = params
        .optional("Ipv6CidrBlock")
        .map(|raw| {
            raw.parse().map_err(|_| {
                ApiError::new(
                    400,
                    "InvalidParameterValue",
                    format!("Value ({raw}) for parameter ipv6CidrBlock is invalid"),
                )
            })
        })
        .transpose()?;
    let tags = tag_specifications(params, "subnet")?;
    let command = Command::CreateSubnet {
        vpc_id,
        cidr,
        ipv6_cidr,
        availability_zone,
    };
    let id = create(api, command, tags)?;
    let snapshot = api.snapshot();
    let mut x = Xml::new();
    x.node("subnet", |x| {
        subnet(x, snapshot.state(), &snapshot.state().subnets[&id])
    });
    Ok(x)
}

pub(super) fn describe_subnets(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    let snapshot = api.snapshot();
    let state = snapshot.state();
    let ids = wanted(
        params,
        "SubnetId",
        |id| state.subnets.contains_key(id),
        "InvalidSubnetID.NotFound",
    )?;
    let filters = Filters::parse(
        params,
        &[
            "subnet-id",
            "vpc-id",
            "availability-zone",
            "availabilityZone",
            "availability-zone-id",
            "cidr-block",
            "cidr",
            "cidrBlock",
            "ipv6-cidr-block-association.ipv6-cidr-block",
            "default-for-az",
            "defaultForAz",
            "state",
            "owner-id",
        ],
        true,
    )?;
    let found = state
        .subnets
        .values()
        .filter(|s| ids.is_empty() || ids.contains(&s.id))
        .filter(|s| {
            filters.matches(Some(&s.tags), |name| {
                vec![match name {
                    "subnet-id" => s.id.clone(),
                    "vpc-id" => s.vpc_id.clone(),
                    "availability-zone" | "availabilityZone" => s.availability_zone.clone(),
                    "availability-zone-id" => zone_id(state, &s.availability_zone),
                    "cidr-block" | "cidr" | "cidrBlock" => s.cidr.to_string(),
                    "ipv6-cidr-block-association.ipv6-cidr-block" => {
                        s.ipv6_cidr.map(|c| c.to_string()).unwrap_or_default()
                    }
                    "default-for-az" | "defaultForAz" => s.default_for_az.to_string(),
                    "state" => "available".into(),
                    _ => state.scope.account.clone(),
                }]
            })
        });
    let (found, next) = page(params, found, |s| &s.id)?;
    let mut x = Xml::new();
    next_token(&mut x, next);
    x.items("subnetSet", found, |x, s| {
        subnet(x, state, s);
    });
    Ok(x)
}

pub(super) fn delete_subnet(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    let id = params.required("SubnetId")?.to_owned();
    api.execute(Command::DeleteSubnet { id })?;
    Ok(done())
}

fn zones(state: &Region) -> Vec<String> {
    let mut zones: Vec<String> = state
        .subnets
        .values()
        .map(|s| s.availability_zone.clone())
        .collect();
    zones.sort();
    zones.dedup();
    zones
}

pub(super) fn describe_zones(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    let snapshot = api.snapshot();
    let state = snapshot.state();
    let all = zones(state);
    let names = wanted(
        params,
        "ZoneName",
        |z| all.iter().any(|a| a == z),
        "InvalidParameterValue",
    )?;
    let ids = wanted(
        params,
        "ZoneId",
        |id| all.iter().any(|z| zone_id(state, z) == id),
        "InvalidParameterValue",
    )?;
    params.bool("AllAvailabilityZones")?;
    let filters = Filters::parse(
        params,
        &["zone-name", "zone-id", "region-name", "state", "zone-type"],
        false,
    )?;
    let found = all
        .iter()
        .filter(|z| names.is_empty() || names.contains(z))
        .filter(|z| ids.is_empty() || ids.contains(&zone_id(state, z)))
        .filter(|z| {
            filters.matches(None, |name| {
                vec![match name {
                    "zone-name" => (*z).clone(),
                    "zone-id" => zone_id(state, z),
                    "region-name" => state.scope.region.clone(),
                    "state" => "available".into(),
                    _ => "availability-zone".into(),
                }]
            })
        });
    let mut x = Xml::new();
    x.items("availabilityZoneInfo", found, |x, zone| {
        x.leaf("zoneName", zone)
            .leaf("zoneId", zone_id(state, zone))
            .leaf("zoneState", "available")
            .leaf("regionName", &state.scope.region)
            .leaf("zoneType", "availability-zone")
            .leaf("optInStatus", "opt-in-not-required")
            .node("messageSet", |_| {});
    });
    Ok(x)
}
