//! Describe/Modify of load balancer, target group and listener attributes.

use elb_model::{Attributes, Command, ErrorCode, ModelError};

use crate::ApiCall;
use crate::error::ApiError;
use crate::query::Params;
use crate::xml::Xml;

fn render(attributes: &Attributes) -> Xml {
    let mut x = Xml::new();
    x.members("Attributes", attributes.iter(), |x, (key, value)| {
        x.leaf("Key", key).leaf("Value", value);
    });
    x
}

fn changes(params: &Params) -> Result<Vec<(String, String)>, ApiError> {
    let changes = params.key_values("Attributes.member")?;
    if changes.is_empty() {
        return Err(ApiError::missing("Attributes"));
    }
    Ok(changes)
}

pub(super) fn describe_load_balancer(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    let arn = params.required("LoadBalancerArn")?;
    let snapshot = api.snapshot();
    let lb = snapshot.state().load_balancers.get(arn).ok_or_else(|| {
        ModelError::new(
            ErrorCode::LoadBalancerNotFound,
            format!("Load balancer '{arn}' not found"),
        )
    })?;
    Ok(render(&lb.attributes))
}

pub(super) fn modify_load_balancer(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    let arn = params.required("LoadBalancerArn")?.to_owned();
    let changes = changes(params)?;
    let (snapshot, _) = api.update(|state, cx| {
        state.apply(
            Command::ModifyLoadBalancerAttributes {
                arn: arn.clone(),
                changes: changes.clone(),
            },
            cx,
        )
    })?;
    Ok(render(&snapshot.state().load_balancers[&arn].attributes))
}

pub(super) fn describe_target_group(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    let arn = params.required("TargetGroupArn")?;
    let snapshot = api.snapshot();
    let tg = snapshot.state().target_groups.get(arn).ok_or_else(|| {
        ModelError::new(
            ErrorCode::TargetGroupNotFound,
            format!("Target group '{arn}' not found"),
        )
    })?;
    Ok(render(&tg.attributes))
}

pub(super) fn modify_target_group(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    let arn = params.required("TargetGroupArn")?.to_owned();
    let changes = changes(params)?;
    let (snapshot, _) = api.update(|state, cx| {
        state.apply(
            Command::ModifyTargetGroupAttributes {
                arn: arn.clone(),
                changes: changes.clone(),
            },
            cx,
        )
    })?;
    Ok(render(&snapshot.state().target_groups[&arn].attributes))
}

pub(super) fn describe_listener(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    let arn = params.required("ListenerArn")?;
    let snapshot = api.snapshot();
    let listener = snapshot.state().listeners.get(arn).ok_or_else(|| {
        ModelError::new(
            ErrorCode::ListenerNotFound,
            format!("Listener '{arn}' not found"),
        )
    })?;
    Ok(render(&listener.attributes))
}

pub(super) fn modify_listener(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    let arn = params.required("ListenerArn")?.to_owned();
    let changes = changes(params)?;
    let (snapshot, _) = api.update(|state, cx| {
        state.apply(
            Command::ModifyListenerAttributes {
                arn: arn.clone(),
                changes: changes.clone(),
            },
            cx,
        )
    })?;
    Ok(render(&snapshot.state().listeners[&arn].attributes))
}
