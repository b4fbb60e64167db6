//! Describe/Modify of load balancer, target group and listener attributes.

use elb_logs::PutError;
use elb_model::attributes::{ACCESS_LOGS, ACCESS_LOGS_BUCKET, ACCESS_LOGS_PREFIX};
use elb_model::{Attributes, Command, ErrorCode, LoadBalancer, ModelError};

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

/// Where a load balancer's access logs go while they are on: (bucket, prefix).
fn log_destination(lb: &LoadBalancer) -> Option<(String, String)> {
    let a = &lb.attributes;
    let text = |key| a.get(key).unwrap_or_default().to_owned();
    a.flag(ACCESS_LOGS)
        .then(|| (text(ACCESS_LOGS_BUCKET), text(ACCESS_LOGS_PREFIX)))
}

pub(super) fn modify_load_balancer(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    let arn = params.required("LoadBalancerArn")?.to_owned();
    let command = Command::ModifyLoadBalancerAttributes {
        arn: arn.clone(),
        changes: changes(params)?,
    };
    // Turning logs on, or sending them elsewhere, puts the test file first.
    let (before, after) = api.preview(|state, cx| {
        let before = state.load_balancers.get(&arn).and_then(log_destination);
        state.apply(command.clone(), cx)?;
        Ok((before, log_destination(&state.load_balancers[&arn])))
    })?;
    let tested = match after {
        Some(destination) if before.as_ref() != Some(&destination) => {
            write_test_file(api, &arn, &destination)?;
            Some(destination)
        }
        _ => None,
    };
    let (snapshot, _) = api.update(|state, cx| {
        let before = state.load_balancers.get(&arn).and_then(log_destination);
        state.apply(command.clone(), cx)?;
        let after = log_destination(&state.load_balancers[&arn]);
        // Another call may have changed the attributes since: a destination this one turns
        // on must be the one it tested.
        if after.is_some() && after != before && after != tested {
            return Err(ModelError::new(
                ErrorCode::InvalidConfigurationRequest,
                "The access log bucket changed while it was being checked; try again",
            ));
        }
        Ok(())
    })?;
    Ok(render(&snapshot.state().load_balancers[&arn].attributes))
}

/// Puts AWS's `ELBAccessLogTestFile` in the bucket that access logs are turned on for: a
/// bucket that does not take it refuses the change, as AWS's bucket policy check does.
fn write_test_file(
    api: &ApiCall<'_>,
    arn: &str,
    (bucket, prefix): &(String, String),
) -> Result<(), ApiError> {
    let account = api.snapshot().state().scope.account.clone();
    let key = elb_logs::test_file_key(prefix, &account);
    let name = arn.rsplit_once(":loadbalancer/").map_or("", |(_, n)| n);
    let body = elb_logs::test_file_body(name, std::time::SystemTime::now());
    // Handlers run on the blocking pool: waiting here holds no runtime thread.
    let put = api.log_buckets.put(bucket, &key, body.into_bytes());
    tokio::runtime::Handle::current()
        .block_on(put)
        .map_err(|e| match e {
            PutError::NoSuchBucket(_) | PutError::Refused(_) => {
                tracing::info!(bucket, error = %e, "access log bucket refused the test file");
                ApiError::from(ModelError::new(
                    ErrorCode::InvalidConfigurationRequest,
                    format!("Access Denied for bucket: {bucket}. Please check S3bucket permission"),
                ))
            }
            PutError::Unreachable(_) | PutError::Io(_) => ApiError::new(
                503,
                "ServiceUnavailable",
                format!("The access log bucket '{bucket}' could not be checked: {e}"),
            ),
        })
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
