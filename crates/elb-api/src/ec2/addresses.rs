//! Elastic IPs: AllocateAddress, DescribeAddresses, ReleaseAddress, AssociateAddress and
//! DisassociateAddress, from the region's pool (`eip_cidr`).

use elb_model::network::{Associated, ElasticIp};
use elb_model::{Command, Region};

use super::filters::Filters;
use super::{create, done, not_built, tag_set, tag_specifications, wanted};
use crate::ApiCall;
use crate::error::ApiError;
use crate::query::Params;
use crate::xml::Xml;

pub(super) fn allocate(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    if params.one_of("Domain", &["vpc", "standard"])? == Some("standard") {
        return Err(not_built("Domain", "EC2-Classic addresses"));
    }
    for (member, what) in [
        ("Address", "recovering a chosen address"),
        ("PublicIpv4Pool", "BYOIP pools"),
        ("CustomerOwnedIpv4Pool", "Outposts pools"),
        ("IpamPoolId", "IPAM pools"),
    ] {
        if params.optional(member).is_some() {
            return Err(not_built(member, what));
        }
    }
    border_group(api, params)?;
    let tags = tag_specifications(params, "elastic-ip")?;
    let id = create(api, Command::AllocateAddress, tags)?;
    let snapshot = api.snapshot();
    let address = &snapshot.state().addresses[&id];
    let mut x = Xml::new();
    x.leaf("publicIp", address.public_ip.to_string())
        .leaf("allocationId", &address.allocation_id)
        .leaf("publicIpv4Pool", "amazon")
        .leaf("networkBorderGroup", &api.region)
        .leaf("domain", "vpc");
    Ok(x)
}

pub(super) fn describe(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    let snapshot = api.snapshot();
    let state = snapshot.state();
    let ids = wanted(
        params,
        "AllocationId",
        |id| state.addresses.contains_key(id),
        "InvalidAllocationID.NotFound",
    )?;
    let ips = wanted(
        params,
        "PublicIp",
        |ip| {
            state
                .addresses
                .values()
                .any(|a| a.public_ip.to_string() == ip)
        },
        "InvalidAddress.NotFound",
    )?;
    let filters = Filters::parse(
        params,
        &[
            "allocation-id",
            "association-id",
            "domain",
            "instance-id",
            "network-border-group",
            "public-ip",
        ],
        true,
    )?;
    let found = state
        .addresses
        .values()
        .filter(|a| ids.is_empty() || ids.contains(&a.allocation_id))
        .filter(|a| ips.is_empty() || ips.contains(&a.public_ip.to_string()))
        .filter(|a| {
            filters.matches(Some(&a.tags), |name| match name {
                "allocation-id" => vec![a.allocation_id.clone()],
                "association-id" => a.association.iter().map(|s| s.id.clone()).collect(),
                "domain" => vec!["vpc".into()],
                "instance-id" => instance(a).into_iter().map(str::to_owned).collect(),
                "network-border-group" => vec![api.region.clone()],
                _ => vec![a.public_ip.to_string()],
            })
        });
    let mut x = Xml::new();
    x.items("addressesSet", found, |x, a| address(x, state, a));
    Ok(x)
}

fn instance(address: &ElasticIp) -> Option<&str> {
    match &address.association.as_ref()?.to {
        Associated::Instance(id) => Some(id),
        Associated::Node(_) => None,
    }
}

fn address(x: &mut Xml, state: &Region, a: &ElasticIp) {
    x.leaf("publicIp", a.public_ip.to_string())
        .leaf("allocationId", &a.allocation_id)
        .leaf("domain", "vpc")
        .leaf("publicIpv4Pool", "amazon")
        .leaf("networkBorderGroup", &state.scope.region);
    if let Some(association) = &a.association {
        x.leaf("associationId", &association.id);
        match &association.to {
            Associated::Instance(id) => {
                x.leaf("instanceId", id);
                if let Some(instance) = state.instances.get(id) {
                    x.leaf("privateIpAddress", instance.private_ip.to_string());
                }
            }
            // A load balancer's address belongs to its node's interface, in the account.
            Associated::Node(node) => {
                x.leaf("networkInterfaceOwnerId", &state.scope.account);
                if let Some(node) = state.nodes.get(node) {
                    x.leaf("privateIpAddress", node.private_ipv4.to_string());
                }
            }
        }
    }
    tag_set(x, state, &a.allocation_id);
}

/// The allocation `AllocationId` names, or the one at `PublicIp`; both given, they must name
/// the same address.
fn allocation_id(state: &Region, params: &Params) -> Result<String, ApiError> {
    let by_ip = params
        .optional("PublicIp")
        .map(|ip| by_public_ip(state, ip));
    match (params.optional("AllocationId"), by_ip) {
        (Some(id), None) => Ok(id.to_owned()),
        (None, Some(found)) => found,
        (Some(id), Some(found)) if found.as_deref() == Ok(id) => Ok(id.to_owned()),
        (Some(_), Some(_)) => Err(ApiError::new(
            400,
            "InvalidParameterCombination",
            "AllocationId and PublicIp name different addresses",
        )),
        (None, None) => Err(ApiError::missing("AllocationId")),
    }
}

/// The allocation id of the Elastic IP at `ip`.
fn by_public_ip(state: &Region, ip: &str) -> Result<String, ApiError> {
    state
        .addresses
        .values()
        .find(|a| a.public_ip.to_string() == ip)
        .map(|a| a.allocation_id.clone())
        .ok_or_else(|| {
            ApiError::new(
                400,
                "InvalidAddress.NotFound",
                format!("The address '{ip}' does not exist"),
            )
        })
}

/// `NetworkBorderGroup`: a region is its own one border group.
fn border_group(api: &ApiCall<'_>, params: &Params) -> Result<(), ApiError> {
    match params.optional("NetworkBorderGroup") {
        Some(group) if group != api.region => Err(ApiError::new(
            400,
            "InvalidParameterValue",
            format!(
                "NetworkBorderGroup '{group}': the network border group of {0} is {0}",
                api.region
            ),
        )),
        _ => Ok(()),
    }
}

pub(super) fn release(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    border_group(api, params)?;
    let allocation_id = allocation_id(api.snapshot().state(), params)?;
    let command = Command::ReleaseAddress { allocation_id };
    api.update(|state, cx| state.apply(command.clone(), cx))?;
    Ok(done())
}

pub(super) fn associate(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    for (member, what) in [
        ("NetworkInterfaceId", "network interfaces"),
        ("PrivateIpAddress", "secondary private addresses"),
    ] {
        if params.optional(member).is_some() {
            return Err(not_built(member, what));
        }
    }
    let allocation_id = allocation_id(api.snapshot().state(), params)?;
    let instance_id = params.required("InstanceId")?.to_owned();
    let allow_reassociation = params.bool("AllowReassociation")? == Some(true);
    let command = Command::AssociateAddress {
        allocation_id,
        instance_id,
        allow_reassociation,
    };
    let id = create(api, command, Vec::new())?;
    let mut x = Xml::new();
    x.leaf("return", "true").leaf("associationId", id);
    Ok(x)
}

pub(super) fn disassociate(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    let association_id = match (
        params.optional("AssociationId"),
        params.optional("PublicIp"),
    ) {
        (Some(id), _) => id.to_owned(),
        (None, Some(ip)) => {
            let snapshot = api.snapshot();
            let state = snapshot.state();
            let id = by_public_ip(state, ip)?;
            let association = state.addresses.get(&id).and_then(|a| a.association.clone());
            association.map(|a| a.id).ok_or_else(|| {
                ApiError::new(
                    400,
                    "InvalidAssociationID.NotFound",
                    format!("The address '{ip}' is not associated"),
                )
            })?
        }
        (None, None) => return Err(ApiError::missing("AssociationId")),
    };
    let command = Command::DisassociateAddress { association_id };
    api.update(|state, cx| state.apply(command.clone(), cx))?;
    Ok(done())
}
