//! The elbv2 Query API (version 2015-12-01): dispatch, and the XML shapes shared by several
//! operations.

mod actions;
mod attributes;
mod listeners;
mod load_balancers;
mod render;
mod rules;
mod tags;
mod target_groups;
mod trust_stores;

use elb_model::{Command, Outcome};

use crate::error::ApiError;
use crate::query::Params;
use crate::xml::Xml;
use crate::{ApiCall, RegionSnapshot};

pub use trust_stores::content as trust_store_content;

pub const NAMESPACE: &str = "http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/";
const VERSION: &str = "2015-12-01";

/// Runs `action`, one of the model's 51 operations, and returns the content of its
/// `<{Action}Result>`.
pub fn call(api: &ApiCall<'_>, action: &str, params: &Params) -> Result<Xml, ApiError> {
    params.version("elbv2", VERSION)?;
    match action {
        "CreateLoadBalancer" => load_balancers::create(api, params),
        "DescribeLoadBalancers" => load_balancers::describe(api, params),
        "DeleteLoadBalancer" => load_balancers::delete(api, params),
        "SetSubnets" => load_balancers::set_subnets(api, params),
        "SetSecurityGroups" => load_balancers::set_security_groups(api, params),
        "SetIpAddressType" => load_balancers::set_ip_address_type(api, params),
        "DescribeLoadBalancerAttributes" => attributes::describe_load_balancer(api, params),
        "ModifyLoadBalancerAttributes" => attributes::modify_load_balancer(api, params),
        "CreateTargetGroup" => target_groups::create(api, params),
        "DescribeTargetGroups" => target_groups::describe(api, params),
        "ModifyTargetGroup" => target_groups::modify(api, params),
        "DeleteTargetGroup" => target_groups::delete(api, params),
        "RegisterTargets" => target_groups::register(api, params),
        "DeregisterTargets" => target_groups::deregister(api, params),
        "DescribeTargetHealth" => target_groups::describe_health(api, params),
        "DescribeTargetGroupAttributes" => attributes::describe_target_group(api, params),
        "ModifyTargetGroupAttributes" => attributes::modify_target_group(api, params),
        "CreateListener" => listeners::create(api, params),
        "DescribeListeners" => listeners::describe(api, params),
        "ModifyListener" => listeners::modify(api, params),
        "DeleteListener" => listeners::delete(api, params),
        "AddListenerCertificates" => listeners::add_certificates(api, params),
        "RemoveListenerCertificates" => listeners::remove_certificates(api, params),
        "DescribeListenerCertificates" => listeners::describe_certificates(api, params),
        "DescribeSSLPolicies" => listeners::describe_ssl_policies(params),
        "DescribeListenerAttributes" => attributes::describe_listener(api, params),
        "ModifyListenerAttributes" => attributes::modify_listener(api, params),
        "CreateTrustStore" => trust_stores::create(api, params),
        "ModifyTrustStore" => trust_stores::modify(api, params),
        "DeleteTrustStore" => trust_stores::delete(api, params),
        "DescribeTrustStores" => trust_stores::describe(api, params),
        "DescribeTrustStoreAssociations" => trust_stores::describe_associations(api, params),
        "DeleteSharedTrustStoreAssociation" => trust_stores::delete_shared_association(api, params),
        "GetTrustStoreCaCertificatesBundle" => trust_stores::get_ca_bundle(api, params),
        "AddTrustStoreRevocations" => trust_stores::add_revocations(api, params),
        "RemoveTrustStoreRevocations" => trust_stores::remove_revocations(api, params),
        "DescribeTrustStoreRevocations" => trust_stores::describe_revocations(api, params),
        "GetTrustStoreRevocationContent" => trust_stores::get_revocation_content(api, params),
        "DescribeRules" => rules::describe(api, params),
        "CreateRule" => rules::create(api, params),
        "ModifyRule" => rules::modify(api, params),
        "DeleteRule" => rules::delete(api, params),
        "SetRulePriorities" => rules::set_priorities(api, params),
        "AddTags" => tags::add(api, params),
        "RemoveTags" => tags::remove(api, params),
        "DescribeTags" => tags::describe(api, params),
        "DescribeAccountLimits" => load_balancers::account_limits(api, params),
        "DescribeCapacityReservation" => load_balancers::describe_capacity_reservation(api, params),
        "ModifyCapacityReservation" => load_balancers::modify_capacity_reservation(api, params),
        "ModifyIpPools" => load_balancers::modify_ip_pools(api, params),
        "GetResourcePolicy" => get_resource_policy(params),
        unknown => Err(ApiError::new(
            400,
            "InvalidAction",
            format!("The action {unknown} is not valid for this web service."),
        )),
    }
}

/// Resource policies (resources shared with other accounts) are not built: no resource has one.
fn get_resource_policy(params: &Params) -> Result<Xml, ApiError> {
    let arn = params.required("ResourceArn")?;
    Err(ApiError::new(
        400,
        "ResourceNotFound",
        format!("No resource policy is attached to '{arn}'"),
    ))
}

/// One page of `items` after `Marker`, at most `PageSize` long, and the marker of the next.
fn page<T>(
    params: &Params,
    items: Vec<T>,
    key: impl Fn(&T) -> &str,
) -> Result<(Vec<T>, Option<String>), ApiError> {
    let size = params
        .int("PageSize", 1, 400)?
        .map_or(usize::MAX, |n| n as usize);
    let start = match params.optional("Marker") {
        None => 0,
        Some(marker) => items
            .iter()
            .position(|item| key(item) == marker)
            .ok_or_else(|| ApiError::validation(format!("Marker '{marker}' is not valid")))?,
    };
    let mut rest: Vec<T> = items.into_iter().skip(start).collect();
    let next = (rest.len() > size).then(|| key(&rest[size]).to_owned());
    rest.truncate(size);
    Ok((rest, next))
}

/// Runs a create command and the commands `then` derives from the new ARN (settings, tags)
/// as one commit; returns the snapshot after it and the ARN.
fn create_then(
    api: &ApiCall<'_>,
    create: Command,
    then: impl Fn(&str) -> Vec<Command>,
) -> Result<(RegionSnapshot, String), ApiError> {
    api.update(|state, cx| {
        let Outcome::Created(arn) = state.apply(create.clone(), cx)? else {
            unreachable!("create commands report what they created")
        };
        for command in then(&arn) {
            state.apply(command, cx)?;
        }
        Ok(arn)
    })
}

/// The AddTags of a create call's `Tags`, if it has any.
fn tagging(arn: &str, tags: &[(String, String)]) -> Option<Command> {
    (!tags.is_empty()).then(|| Command::AddTags {
        arns: vec![arn.to_owned()],
        tags: tags.to_vec(),
    })
}

/// `<Tags>` of a create call, as (key, value) pairs.
fn tag_params(params: &Params) -> Result<Vec<(String, String)>, ApiError> {
    params.key_values("Tags.member")
}
