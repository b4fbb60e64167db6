//! The EC2 subset elbd models (EC2 Query protocol, version 2016-11-15, `item` lists): VPCs,
//! subnets, availability zones, security groups, instances, Elastic IPs, VPC endpoint services
//! and Gateway Load Balancer endpoints, and their tags.

mod addresses;
mod endpoints;
mod filters;
mod instances;
mod network;
mod security_groups;

use elb_model::state::ConnectionAnswer;
use elb_model::{Command, Outcome, Region};

use crate::ApiCall;
use crate::error::ApiError;
use crate::query::Params;
use crate::xml::Xml;
use filters::Filters;

pub const NAMESPACE: &str = "http://ec2.amazonaws.com/doc/2016-11-15/";

pub fn call(api: &ApiCall<'_>, action: &str, params: &Params) -> Result<Xml, ApiError> {
    params.version("EC2", "2016-11-15")?;
    if params.bool("DryRun")? == Some(true) {
        let dry = ApiCall {
            dry_run: true,
            region: api.region.clone(),
            endpoint: api.endpoint.clone(),
            ..*api
        };
        // A change stops at its update with DryRunOperation; a read that succeeds gets it
        // here. Either way the parameters must all be known, as without DryRun.
        match operation(&dry, action, params) {
            Ok(_) => {}
            Err(e) if e.code == "DryRunOperation" => {}
            Err(e) => return Err(e),
        }
        params.finish()?;
        return Err(ApiError::dry_run());
    }
    operation(api, action, params)
}

fn operation(api: &ApiCall<'_>, action: &str, params: &Params) -> Result<Xml, ApiError> {
    match action {
        "CreateVpc" => network::create_vpc(api, params),
        "DescribeVpcs" => network::describe_vpcs(api, params),
        "DeleteVpc" => network::delete_vpc(api, params),
        "DescribeVpcAttribute" => network::describe_vpc_attribute(api, params),
        "ModifyVpcAttribute" => network::modify_vpc_attribute(api, params),
        "CreateSubnet" => network::create_subnet(api, params),
        "DescribeSubnets" => network::describe_subnets(api, params),
        "DeleteSubnet" => network::delete_subnet(api, params),
        "DescribeAvailabilityZones" => network::describe_zones(api, params),
        "CreateSecurityGroup" => security_groups::create_group(api, params),
        "DescribeSecurityGroups" => security_groups::describe(api, params),
        "DeleteSecurityGroup" => security_groups::delete(api, params),
        "AuthorizeSecurityGroupIngress" => security_groups::authorize(api, params),
        "RevokeSecurityGroupIngress" => security_groups::revoke(api, params),
        "AuthorizeSecurityGroupEgress" => security_groups::authorize_egress(api, params),
        "RevokeSecurityGroupEgress" => security_groups::revoke_egress(api, params),
        "RunInstances" => instances::run(api, params),
        "DescribeInstances" => instances::describe(api, params),
        "StopInstances" => instances::set_state(api, params, elb_model::InstanceState::Stopped),
        "StartInstances" => instances::set_state(api, params, elb_model::InstanceState::Running),
        "TerminateInstances" => {
            instances::set_state(api, params, elb_model::InstanceState::Terminated)
        }
        "AllocateAddress" => addresses::allocate(api, params),
        "DescribeAddresses" => addresses::describe(api, params),
        "ReleaseAddress" => addresses::release(api, params),
        "AssociateAddress" => addresses::associate(api, params),
        "DisassociateAddress" => addresses::disassociate(api, params),
        "CreateVpcEndpointServiceConfiguration" => endpoints::create_service(api, params),
        "DescribeVpcEndpointServiceConfigurations" => {
            endpoints::describe_service_configurations(api, params)
        }
        "ModifyVpcEndpointServiceConfiguration" => endpoints::modify_service(api, params),
        "DeleteVpcEndpointServiceConfigurations" => endpoints::delete_services(api, params),
        "DescribeVpcEndpointServices" => endpoints::describe_services(api, params),
        "DescribeVpcEndpointServicePermissions" => endpoints::describe_permissions(api, params),
        "ModifyVpcEndpointServicePermissions" => endpoints::modify_permissions(api, params),
        "CreateVpcEndpoint" => endpoints::create_endpoint(api, params),
        "DescribeVpcEndpoints" => endpoints::describe_endpoints(api, params),
        "DeleteVpcEndpoints" => endpoints::delete_endpoints(api, params),
        "DescribeVpcEndpointConnections" => endpoints::describe_connections(api, params),
        "AcceptVpcEndpointConnections" => {
            endpoints::answer_connections(api, params, ConnectionAnswer::Accept)
        }
        "RejectVpcEndpointConnections" => {
            endpoints::answer_connections(api, params, ConnectionAnswer::Reject)
        }
        "DescribePrefixLists" => endpoints::describe_prefix_lists(params),
        "CreateTags" => create_tags(api, params),
        "DeleteTags" => delete_tags(api, params),
        "DescribeTags" => describe_tags(api, params),
        unknown => Err(ApiError::new(
            400,
            "InvalidAction",
            format!("The action {unknown} is not valid for this web service."),
        )),
    }
}

/// `<return>true</return>`, the answer of EC2's commands that create nothing.
fn done() -> Xml {
    let mut x = Xml::new();
    x.leaf("return", "true");
    x
}

/// Runs one create command, and tags what it made, in one commit; returns the new id.
fn create(
    api: &ApiCall<'_>,
    command: Command,
    tags: Vec<(String, String)>,
) -> Result<String, ApiError> {
    match create_tagged(api, command, tags)? {
        Outcome::Created(id) => Ok(id),
        other => Err(ApiError::internal(format!(
            "expected one created resource, got {other:?}"
        ))),
    }
}

/// Runs a create command and tags everything it made, in one commit.
fn create_tagged(
    api: &ApiCall<'_>,
    command: Command,
    tags: Vec<(String, String)>,
) -> Result<Outcome, ApiError> {
    let (_, outcome) = api.update(|region, cx| {
        let outcome = region.apply(command.clone(), cx)?;
        let ids = match &outcome {
            Outcome::Created(id) => vec![id.clone()],
            Outcome::CreatedAll(ids) => ids.clone(),
            Outcome::Done | Outcome::Unsuccessful(_) => vec![],
        };
        if !tags.is_empty() {
            let tags = tags.clone();
            region.apply(Command::CreateEc2Tags { ids, tags }, cx)?;
        }
        Ok(outcome)
    })?;
    Ok(outcome)
}

/// The tags of `TagSpecification.N` for `resource_type`, the only type the call creates.
fn tag_specifications(
    params: &Params,
    resource_type: &str,
) -> Result<Vec<(String, String)>, ApiError> {
    let mut tags = Vec::new();
    for spec in params.structs("TagSpecification")? {
        let kind = spec.required("ResourceType")?;
        if kind != resource_type {
            return Err(ApiError::new(
                400,
                "InvalidParameterValue",
                format!("'{kind}' is not a valid taggable resource type for this operation"),
            ));
        }
        tags.extend(spec.key_values("Tag")?);
        spec.finish()?;
    }
    Ok(tags)
}

/// One page of `items` from `NextToken` on, at most `MaxResults` (5–1000) long, and the token of
/// the next: the key of its first item, as items are in key order.
fn page<'a, T>(
    params: &Params,
    items: impl Iterator<Item = &'a T>,
    key: impl Fn(&T) -> &str,
) -> Result<(Vec<&'a T>, Option<String>), ApiError> {
    let size = params
        .int("MaxResults", 5, 1000)?
        .map_or(usize::MAX, |n| n as usize);
    let mut rest: Vec<&T> = match params.optional("NextToken") {
        None => items.collect(),
        Some(token) => items.skip_while(|item| key(item) < token).collect(),
    };
    let next = rest.get(size).map(|item| key(item).to_owned());
    rest.truncate(size);
    Ok((rest, next))
}

/// `<nextToken>` when there is a next page.
fn next_token(x: &mut Xml, next: Option<String>) {
    if let Some(token) = next {
        x.leaf("nextToken", token);
    }
}

/// A member whose effect elbd does not build, refused by name.
fn not_built(member: &str, feature: &str) -> ApiError {
    ApiError::new(
        400,
        "InvalidParameterValue",
        format!("Parameter '{member}' asks for {feature}, which elbd does not support yet"),
    )
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

/// `<tagSet>` of an EC2 resource.
fn tag_set(x: &mut Xml, state: &Region, id: &str) {
    let tags = state.ec2_tags_of(id).into_iter().flatten();
    x.items("tagSet", tags, |x, (key, value)| {
        x.leaf("key", key).leaf("value", value);
    });
}

fn tag_params(params: &Params) -> Result<Vec<(String, String)>, ApiError> {
    params.key_values("Tag")
}

fn create_tags(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    let ids = params.list("ResourceId")?;
    let tags = tag_params(params)?;
    api.execute(Command::CreateEc2Tags { ids, tags })?;
    Ok(done())
}

fn delete_tags(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    let ids = params.list("ResourceId")?;
    let mut tags = Vec::new();
    for tag in params.structs("Tag")? {
        // A missing Value deletes the key whatever its value; a given one (even empty) only
        // when it matches.
        let value = tag.optional("Value").map(str::to_owned);
        tags.push((tag.required("Key")?.to_owned(), value));
        tag.finish()?;
    }
    api.execute(Command::DeleteEc2Tags { ids, tags })?;
    Ok(done())
}

/// DescribeTags, filtered by `resource-id`, `resource-type`, `key` and `value`, paged.
fn describe_tags(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    let filters = Filters::parse(
        params,
        &["resource-id", "resource-type", "key", "value"],
        true,
    )?;
    let snapshot = api.snapshot();
    let state = snapshot.state();
    let ids = state
        .vpcs
        .keys()
        .chain(state.subnets.keys())
        .chain(state.security_groups.keys())
        .chain(state.instances.keys())
        .chain(state.addresses.keys())
        .chain(state.endpoint_services.keys())
        .chain(state.vpc_endpoints.keys());
    let mut rows = Vec::new();
    for id in ids {
        let kind = match id.split('-').next() {
            _ if id.starts_with("vpce-svc-") => "vpc-endpoint-service",
            Some("vpce") => "vpc-endpoint",
            Some("vpc") => "vpc",
            Some("subnet") => "subnet",
            Some("sg") => "security-group",
            Some("eipalloc") => "elastic-ip",
            _ => "instance",
        };
        for (key, value) in state.ec2_tags_of(id).into_iter().flatten() {
            let row = [id.as_str(), kind, key.as_str(), value.as_str()];
            let pass = filters.matches(state.ec2_tags_of(id), |name| {
                let column = ["resource-id", "resource-type", "key", "value"]
                    .iter()
                    .position(|c| *c == name)
                    .expect("parsed names only");
                vec![row[column].to_owned()]
            });
            if pass {
                rows.push(row);
            }
        }
    }
    // In (resource, key) order, which a page token (`resource/key`) continues from.
    rows.sort_unstable();
    let keyed: Vec<(String, [&str; 4])> = rows
        .into_iter()
        .map(|row| (format!("{}/{}", row[0], row[2]), row))
        .collect();
    let (rows, next) = page(params, keyed.iter(), |(key, _)| key)?;
    let mut x = Xml::new();
    next_token(&mut x, next);
    x.items("tagSet", rows, |x, (_, [id, kind, key, value])| {
        x.leaf("resourceId", id)
            .leaf("resourceType", kind)
            .leaf("key", key)
            .leaf("value", value);
    });
    Ok(x)
}
