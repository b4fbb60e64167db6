//! VPC endpoint services and Gateway Load Balancer endpoints (PrivateLink): the calls the
//! aws cli and Terraform make to put a gateway load balancer in the path of a VPC's traffic.
//!
//! Endpoint and connection states are spelled as EC2 sends them (`pendingAcceptance`,
//! `available`), service states capitalised (`Available`). Deletes, accepts and rejects
//! answer per item in `unsuccessful`. Interface endpoints, network load balancer services and
//! cross-region services are not built, and are refused by name.

use elb_model::state::{ConnectionAnswer, CreateVpcEndpoint, EndpointServiceChanges};
use elb_model::{Command, EndpointService, ErrorCode, ModelError, Outcome, Region, VpcEndpoint};

use super::filters::Filters;
use super::{create, done, next_token, not_built, page, tag_set, tag_specifications};
use crate::ApiCall;
use crate::clock;
use crate::error::ApiError;
use crate::query::Params;
use crate::xml::Xml;

const GATEWAY_LOAD_BALANCER: &str = "GatewayLoadBalancer";

/// `<unsuccessful>`: the items a bulk call could not do, with EC2's error for each.
fn unsuccessful(outcome: Outcome) -> Xml {
    let items = match outcome {
        Outcome::Unsuccessful(items) => items,
        _ => Vec::new(),
    };
    let mut x = Xml::new();
    x.items("unsuccessful", items, |x, (id, e): (String, ModelError)| {
        x.node("error", |x| {
            x.leaf("code", e.code.as_str()).leaf("message", &e.message);
        })
        .leaf("resourceId", id);
    });
    x
}

/// Only IPv4 is built; `ipv4` is accepted, anything else refused by name.
fn ipv4_only(params: &Params, member: &str) -> Result<(), ApiError> {
    for kind in params.list(member)? {
        match kind.as_str() {
            "ipv4" => {}
            "ipv6" | "dualstack" => return Err(not_built(member, "IPv6 endpoints")),
            other => {
                return Err(ApiError::new(
                    400,
                    "InvalidParameterValue",
                    format!("'{other}' is not a valid {member}: ipv4 or ipv6"),
                ));
            }
        }
    }
    Ok(())
}

/// Members for what is not built: network load balancer (interface) services, private DNS,
/// other regions.
fn refuse_service_members(params: &Params, prefix: &str) -> Result<(), ApiError> {
    for (member, what) in [
        ("NetworkLoadBalancerArn", "interface endpoint services"),
        ("SupportedRegion", "cross-region endpoint services"),
    ] {
        let member = format!("{prefix}{member}");
        if !params.list(&member)?.is_empty() {
            return Err(not_built(&member, what));
        }
    }
    if params.optional("PrivateDnsName").is_some() {
        return Err(not_built(
            "PrivateDnsName",
            "private DNS names of interface endpoints",
        ));
    }
    Ok(())
}

pub(super) fn create_service(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    refuse_service_members(params, "")?;
    ipv4_only(params, "SupportedIpAddressType")?;
    let client_token = params.optional("ClientToken").map(str::to_owned);
    let tags = tag_specifications(params, "vpc-endpoint-service")?;
    let command = Command::CreateVpcEndpointService {
        gateway_load_balancer_arns: params.list("GatewayLoadBalancerArn")?,
        acceptance_required: params.bool("AcceptanceRequired")?.unwrap_or(false),
        client_token: client_token.clone(),
    };
    let id = create(api, command, tags)?;
    let snapshot = api.snapshot();
    let state = snapshot.state();
    let mut x = Xml::new();
    x.node("serviceConfiguration", |x| {
        service_configuration(x, state, &state.endpoint_services[&id]);
    });
    if let Some(token) = client_token {
        x.leaf("clientToken", token);
    }
    Ok(x)
}

/// `<serviceType>`: a list of one struct, as EC2 has it.
fn service_type(x: &mut Xml) {
    x.items("serviceType", [GATEWAY_LOAD_BALANCER], |x, kind| {
        x.leaf("serviceType", kind);
    });
}

/// The zones a service's gateway load balancers have nodes in.
fn zones(state: &Region, service: &EndpointService) -> Vec<String> {
    let mut zones: Vec<String> = service
        .gateway_load_balancer_arns
        .iter()
        .flat_map(|arn| state.nodes_of(arn))
        .map(|n| n.availability_zone.clone())
        .collect();
    zones.sort();
    zones.dedup();
    zones
}

fn service_configuration(x: &mut Xml, state: &Region, s: &EndpointService) {
    service_type(x);
    x.leaf("serviceId", &s.id)
        .leaf("serviceName", &s.name)
        .leaf("serviceState", "Available")
        .text_items("availabilityZoneSet", zones(state, s))
        .leaf("acceptanceRequired", s.acceptance_required.to_string())
        .leaf("managesVpcEndpoints", "false")
        .text_items("gatewayLoadBalancerArnSet", &s.gateway_load_balancer_arns)
        .text_items("supportedIpAddressTypeSet", ["ipv4"]);
    tag_set(x, state, &s.id);
}

pub(super) fn describe_service_configurations(
    api: &ApiCall<'_>,
    params: &Params,
) -> Result<Xml, ApiError> {
    let snapshot = api.snapshot();
    let state = snapshot.state();
    let ids = params.list("ServiceId")?;
    if let Some(missing) = ids
        .iter()
        .find(|id| !state.endpoint_services.contains_key(*id))
    {
        return Err(service_not_found(missing));
    }
    let filters = Filters::parse(
        params,
        &[
            "service-name",
            "service-id",
            "service-state",
            "supported-ip-address-types",
        ],
        true,
    )?;
    let found = state
        .endpoint_services
        .values()
        .filter(|s| ids.is_empty() || ids.contains(&s.id))
        .filter(|s| {
            filters.matches(Some(&s.tags), |name| match name {
                "service-name" => vec![s.name.clone()],
                "service-id" => vec![s.id.clone()],
                "service-state" => vec!["Available".into()],
                _ => vec!["ipv4".into()],
            })
        });
    let (found, next) = page(params, found, |s| &s.id)?;
    let mut x = Xml::new();
    x.items("serviceConfigurationSet", found, |x, s| {
        service_configuration(x, state, s);
    });
    next_token(&mut x, next);
    Ok(x)
}

pub(super) fn modify_service(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    for prefix in ["Add", "Remove"] {
        refuse_service_members(params, prefix)?;
        ipv4_only(params, &format!("{prefix}SupportedIpAddressType"))?;
    }
    if params
        .list("RemoveSupportedIpAddressType")?
        .iter()
        .any(|t| t == "ipv4")
    {
        return Err(ModelError::new(
            ErrorCode::InvalidParameter,
            "An endpoint service must support at least one IP address type; ipv4 is its only one",
        )
        .into());
    }
    if params.bool("RemovePrivateDnsName")? == Some(true) {
        return Err(not_built("RemovePrivateDnsName", "private DNS names"));
    }
    let command = Command::ModifyVpcEndpointService {
        id: params.required("ServiceId")?.to_owned(),
        changes: EndpointServiceChanges {
            acceptance_required: params.bool("AcceptanceRequired")?,
            add_gateway_load_balancer_arns: params.list("AddGatewayLoadBalancerArn")?,
            remove_gateway_load_balancer_arns: params.list("RemoveGatewayLoadBalancerArn")?,
        },
    };
    api.execute(command)?;
    Ok(done())
}

pub(super) fn delete_services(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    let ids = required_list(params, "ServiceId")?;
    Ok(unsuccessful(
        api.execute(Command::DeleteVpcEndpointServices { ids })?,
    ))
}

/// A list member the call cannot do without.
fn required_list(params: &Params, name: &str) -> Result<Vec<String>, ApiError> {
    let list = params.list(name)?;
    if list.is_empty() {
        return Err(ApiError::missing(name));
    }
    Ok(list)
}

fn service_not_found(id: &str) -> ApiError {
    ModelError::new(
        elb_model::ErrorCode::InvalidVpcEndpointServiceIdNotFound,
        format!("The VpcEndpointService Id '{id}' does not exist"),
    )
    .into()
}

pub(super) fn describe_services(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    if !params.list("ServiceRegion")?.is_empty() {
        return Err(not_built("ServiceRegion", "cross-region endpoint services"));
    }
    let snapshot = api.snapshot();
    let state = snapshot.state();
    let names = params.list("ServiceName")?;
    if let Some(missing) = names
        .iter()
        .find(|n| !state.endpoint_services.values().any(|s| s.name == **n))
    {
        return Err(ModelError::new(
            elb_model::ErrorCode::InvalidServiceName,
            format!("The Vpc Endpoint Service '{missing}' does not exist"),
        )
        .into());
    }
    let filters = Filters::parse(
        params,
        &[
            "service-name",
            "service-type",
            "owner",
            "supported-ip-address-types",
        ],
        true,
    )?;
    let mut found: Vec<&EndpointService> = state
        .endpoint_services
        .values()
        .filter(|s| names.is_empty() || names.contains(&s.name))
        .filter(|s| {
            filters.matches(Some(&s.tags), |name| match name {
                "service-name" => vec![s.name.clone()],
                "service-type" => vec![GATEWAY_LOAD_BALANCER.into()],
                "owner" => vec![state.scope.account.clone()],
                _ => vec!["ipv4".into()],
            })
        })
        .collect();
    found.sort_by(|a, b| a.name.cmp(&b.name));
    let (found, next) = page(params, found.into_iter(), |s| &s.name)?;
    let mut x = Xml::new();
    x.text_items("serviceNameSet", found.iter().map(|s| &s.name));
    x.items("serviceDetailSet", &found, |x, s| {
        x.leaf("serviceName", &s.name).leaf("serviceId", &s.id);
        service_type(x);
        x.text_items("availabilityZoneSet", zones(state, s))
            .leaf("owner", &state.scope.account)
            .leaf("vpcEndpointPolicySupported", "false")
            .leaf("acceptanceRequired", s.acceptance_required.to_string())
            .leaf("managesVpcEndpoints", "false")
            .text_items("supportedIpAddressTypeSet", ["ipv4"]);
        tag_set(x, state, &s.id);
    });
    next_token(&mut x, next);
    Ok(x)
}

pub(super) fn create_endpoint(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    match params.optional("VpcEndpointType").unwrap_or("Gateway") {
        GATEWAY_LOAD_BALANCER => {}
        "Interface" | "Gateway" | "Resource" | "ServiceNetwork" | "Tunnel" => {
            return Err(not_built(
                "VpcEndpointType",
                "endpoints other than GatewayLoadBalancer",
            ));
        }
        other => {
            return Err(ApiError::new(
                400,
                "InvalidVpcEndpointType",
                format!("The VPC endpoint type '{other}' is not valid"),
            ));
        }
    }
    let invalid =
        |message: &str| ApiError::from(ModelError::new(ErrorCode::InvalidParameter, message));
    if !params.list("RouteTableId")?.is_empty() {
        return Err(invalid(
            "Route table IDs are only supported for Gateway type VPC Endpoint.",
        ));
    }
    if !params.list("SecurityGroupId")?.is_empty() {
        return Err(invalid(
            "Security groups are not supported for GatewayLoadBalancer type VPC Endpoints.",
        ));
    }
    if params.optional("PolicyDocument").is_some() {
        return Err(invalid(
            "Policies are not supported for GatewayLoadBalancer type VPC Endpoints.",
        ));
    }
    if params.bool("PrivateDnsEnabled")? == Some(true) {
        return Err(invalid(
            "Private DNS is not supported for GatewayLoadBalancer type VPC Endpoints.",
        ));
    }
    if !params.structs("SubnetConfiguration")?.is_empty() {
        return Err(not_built(
            "SubnetConfiguration",
            "chosen endpoint addresses",
        ));
    }
    for member in [
        "ServiceNetworkArn",
        "ResourceConfigurationArn",
        "ServiceRegion",
    ] {
        if params.optional(member).is_some() {
            return Err(not_built(member, "service networks and resource endpoints"));
        }
    }
    if params.optional("DnsOptions.DnsRecordIpType").is_some() {
        return Err(not_built("DnsOptions", "endpoint DNS records"));
    }
    match params.one_of("IpAddressType", &["ipv4", "dualstack", "ipv6"])? {
        None | Some("ipv4") => {}
        Some(_) => return Err(not_built("IpAddressType", "IPv6 endpoints")),
    }
    let client_token = params.optional("ClientToken").map(str::to_owned);
    let tags = tag_specifications(params, "vpc-endpoint")?;
    let command = Command::CreateVpcEndpoint(CreateVpcEndpoint {
        service_name: params
            .optional("ServiceName")
            .ok_or_else(|| invalid("A service name must be specified"))?
            .to_owned(),
        vpc_id: params.required("VpcId")?.to_owned(),
        subnet_ids: params.list("SubnetId")?,
        client_token: client_token.clone(),
    });
    let id = create(api, command, tags)?;
    let snapshot = api.snapshot();
    let state = snapshot.state();
    let mut x = Xml::new();
    x.node("vpcEndpoint", |x| {
        endpoint(x, state, &state.vpc_endpoints[&id]);
    });
    if let Some(token) = client_token {
        x.leaf("clientToken", token);
    }
    Ok(x)
}

fn endpoint(x: &mut Xml, state: &Region, e: &VpcEndpoint) {
    x.leaf("vpcEndpointId", &e.id)
        .leaf("vpcEndpointType", GATEWAY_LOAD_BALANCER)
        .leaf("vpcId", &e.vpc_id)
        .leaf("serviceName", &e.service_name)
        .leaf("state", e.state.as_str())
        .text_items("subnetIdSet", [&e.subnet_id])
        .leaf("ipAddressType", "ipv4")
        .leaf("privateDnsEnabled", "false")
        .leaf("requesterManaged", "false")
        .leaf("creationTimestamp", clock::iso8601(e.created_ms))
        .leaf("ownerId", &state.scope.account);
    if let Some(message) = &e.last_error {
        x.node("lastError", |x| {
            x.leaf("message", message)
                .leaf("code", "InterfaceCreationFailed");
        });
    }
    tag_set(x, state, &e.id);
}

pub(super) fn describe_endpoints(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    let snapshot = api.snapshot();
    let state = snapshot.state();
    let ids = params.list("VpcEndpointId")?;
    if let Some(missing) = ids.iter().find(|id| !state.vpc_endpoints.contains_key(*id)) {
        return Err(ModelError::new(
            elb_model::ErrorCode::InvalidVpcEndpointIdNotFound,
            format!("The VpcEndpoint Id '{missing}' does not exist"),
        )
        .into());
    }
    let filters = Filters::parse(
        params,
        &[
            "ip-address-type",
            "service-name",
            "vpc-id",
            "vpc-endpoint-id",
            "vpc-endpoint-state",
            "vpc-endpoint-type",
        ],
        true,
    )?;
    let found = state
        .vpc_endpoints
        .values()
        .filter(|e| ids.is_empty() || ids.contains(&e.id))
        .filter(|e| {
            filters.matches(Some(&e.tags), |name| match name {
                "ip-address-type" => vec!["ipv4".into()],
                "service-name" => vec![e.service_name.clone()],
                "vpc-id" => vec![e.vpc_id.clone()],
                "vpc-endpoint-id" => vec![e.id.clone()],
                "vpc-endpoint-state" => vec![e.state.as_str().to_owned()],
                _ => vec![GATEWAY_LOAD_BALANCER.into()],
            })
        });
    let (found, next) = page(params, found, |e| &e.id)?;
    let mut x = Xml::new();
    x.items("vpcEndpointSet", found, |x, e| endpoint(x, state, e));
    next_token(&mut x, next);
    Ok(x)
}

pub(super) fn delete_endpoints(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    let ids = required_list(params, "VpcEndpointId")?;
    Ok(unsuccessful(
        api.execute(Command::DeleteVpcEndpoints { ids })?,
    ))
}

pub(super) fn describe_connections(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    let snapshot = api.snapshot();
    let state = snapshot.state();
    let filters = Filters::parse(
        params,
        &[
            "ip-address-type",
            "service-id",
            "vpc-endpoint-owner",
            "vpc-endpoint-state",
            "vpc-endpoint-id",
        ],
        false,
    )?;
    let found = state.vpc_endpoints.values().filter(|e| {
        filters.matches(None, |name| match name {
            "ip-address-type" => vec!["ipv4".into()],
            "service-id" => vec![e.service_id.clone()],
            "vpc-endpoint-owner" => vec![state.scope.account.clone()],
            "vpc-endpoint-state" => vec![e.state.as_str().to_owned()],
            _ => vec![e.id.clone()],
        })
    });
    let (found, next) = page(params, found, |e| &e.id)?;
    let mut x = Xml::new();
    x.items("vpcEndpointConnectionSet", found, |x, e| {
        // A rejected or failed endpoint outlives its service, which then offers nothing.
        let offered = state
            .endpoint_services
            .get(&e.service_id)
            .map_or(&[][..], |s| &s.gateway_load_balancer_arns[..]);
        x.leaf("serviceId", &e.service_id)
            .leaf("vpcEndpointId", &e.id)
            .leaf("vpcEndpointOwner", &state.scope.account)
            .leaf("vpcEndpointState", e.state.as_str())
            .leaf("creationTimestamp", clock::iso8601(e.created_ms))
            .text_items("gatewayLoadBalancerArnSet", offered)
            .leaf("ipAddressType", "ipv4")
            .leaf(
                "vpcEndpointConnectionId",
                format!("vpce-con-{}", &e.id["vpce-".len()..]),
            );
    });
    next_token(&mut x, next);
    Ok(x)
}

/// AcceptVpcEndpointConnections and RejectVpcEndpointConnections.
pub(super) fn answer_connections(
    api: &ApiCall<'_>,
    params: &Params,
    answer: ConnectionAnswer,
) -> Result<Xml, ApiError> {
    if !params.list("TransitGatewayAttachmentId")?.is_empty() {
        return Err(not_built("TransitGatewayAttachmentId", "transit gateways"));
    }
    let endpoint_ids = required_list(params, "VpcEndpointId")?;
    let command = Command::AnswerVpcEndpointConnections {
        service_id: params.required("ServiceId")?.to_owned(),
        endpoint_ids,
        answer,
    };
    Ok(unsuccessful(api.execute(command)?))
}

pub(super) fn describe_permissions(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    let snapshot = api.snapshot();
    let state = snapshot.state();
    let id = params.required("ServiceId")?;
    let service = state
        .endpoint_services
        .get(id)
        .ok_or_else(|| service_not_found(id))?;
    let filters = Filters::parse(
        params,
        &["principal", "principal-type", "permission-type"],
        false,
    )?;
    let found: Vec<(&String, &String)> = service
        .allowed_principals
        .iter()
        .filter(|(principal, _)| {
            filters.matches(None, |name| match name {
                "principal" => vec![(*principal).clone()],
                "principal-type" => vec![principal_type(principal).into()],
                _ => vec!["vpc-endpoint".into()],
            })
        })
        .collect();
    let (found, next) = page(params, found.iter(), |(principal, _)| principal)?;
    let mut x = Xml::new();
    x.items("allowedPrincipals", found, |x, (principal, permission)| {
        x.leaf("principalType", principal_type(principal))
            .leaf("principal", principal.as_str())
            .leaf("servicePermissionId", permission.as_str())
            .leaf("serviceId", &service.id)
            .leaf("permissionType", "vpc-endpoint");
    });
    next_token(&mut x, next);
    Ok(x)
}

/// EC2's kind of principal, read off its ARN (`*` is everyone).
fn principal_type(principal: &str) -> &'static str {
    if principal == "*" {
        "All"
    } else if principal.contains(":role/") {
        "Role"
    } else if principal.contains(":user/") {
        "User"
    } else if principal.contains(":root") {
        "Account"
    } else if principal.contains("organizations") {
        "OrganizationUnit"
    } else {
        "Service"
    }
}

pub(super) fn modify_permissions(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    if params.one_of(
        "PermissionType",
        &["vpc-endpoint", "transit-gateway-attachment"],
    )? == Some("transit-gateway-attachment")
    {
        return Err(not_built("PermissionType", "transit gateway attachments"));
    }
    let id = params.required("ServiceId")?.to_owned();
    let add = params.list("AddAllowedPrincipals")?;
    let command = Command::ModifyVpcEndpointServicePermissions {
        id: id.clone(),
        add: add.clone(),
        remove: params.list("RemoveAllowedPrincipals")?,
    };
    let (snapshot, _) = api.update(|region, cx| region.apply(command.clone(), cx))?;
    let service = &snapshot.state().endpoint_services[&id];
    let mut x = Xml::new();
    x.items("addedPrincipalSet", &add, |x, principal| {
        x.leaf("principalType", principal_type(principal))
            .leaf("principal", principal)
            .leaf(
                "servicePermissionId",
                &service.allowed_principals[principal],
            )
            .leaf("serviceId", &id);
    });
    x.leaf("return", "true");
    Ok(x)
}

/// DescribePrefixLists: AWS's managed prefix lists name its own services' ranges, which
/// elbd has none of, so every answer is empty (Terraform reads it for every endpoint).
pub(super) fn describe_prefix_lists(params: &Params) -> Result<Xml, ApiError> {
    params.list("PrefixListId")?;
    Filters::parse(params, &["prefix-list-id", "prefix-list-name"], false)?;
    params.int("MaxResults", 5, 1000)?;
    params.optional("NextToken");
    let mut x = Xml::new();
    x.items("prefixListSet", std::iter::empty::<()>(), |_, ()| {});
    Ok(x)
}
