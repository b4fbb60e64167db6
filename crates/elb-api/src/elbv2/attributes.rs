//! Describe/Modify of load balancer, target group and listener attributes.

use elb_logs::{LogKind, PutError};
use elb_model::{Attributes, Command, ErrorCode, LoadBalancer, ModelError, Region};

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

/// A load balancer's attribute changes: at most 20 in one call (the model's bound, which
/// target groups and listeners do not have).
fn load_balancer_changes(params: &Params) -> Result<Vec<(String, String)>, ApiError> {
    const MAX: usize = 20;
    let changes = changes(params)?;
    if changes.len() > MAX {
        return Err(ApiError::validation(format!(
            "1 validation error detected: Value of {} attributes at 'attributes' failed to \
             satisfy constraint: Member must have length less than or equal to {MAX}",
            changes.len()
        )));
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

/// Where a load balancer's logs go, of each kind that is on: (bucket, prefix).
fn log_destinations(lb: &LoadBalancer) -> Vec<(LogKind, String, String)> {
    let a = &lb.attributes;
    LogKind::ALL
        .into_iter()
        .filter(|kind| a.flag(&format!("{}.s3.enabled", kind.attributes())))
        .map(|kind| {
            let text = |name| {
                let key = format!("{}.s3.{name}", kind.attributes());
                a.get(&key).unwrap_or_default().to_owned()
            };
            (kind, text("bucket"), text("prefix"))
        })
        .collect()
}

pub(super) fn modify_load_balancer(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    let arn = params.required("LoadBalancerArn")?.to_owned();
    let command = Command::ModifyLoadBalancerAttributes {
        arn: arn.clone(),
        changes: load_balancer_changes(params)?,
    };
    let destinations = |state: &Region| {
        state
            .load_balancers
            .get(&arn)
            .map(log_destinations)
            .unwrap_or_default()
    };
    // Turning logs on, or sending them elsewhere, puts the test file first.
    let (before, after) = api.preview(|state, cx| {
        let before = destinations(state);
        state.apply(command.clone(), cx)?;
        Ok((before, destinations(state)))
    })?;
    let tested: Vec<_> = after
        .into_iter()
        .filter(|destination| !before.contains(destination))
        .collect();
    for (_, bucket, prefix) in &tested {
        write_test_file(api, &arn, bucket, prefix)?;
    }
    let (snapshot, _) = api.update(|state, cx| {
        let before = destinations(state);
        state.apply(command.clone(), cx)?;
        // Another call may have changed the attributes since: a destination this one turns
        // on must be one it tested.
        let untested = destinations(state)
            .into_iter()
            .any(|d| !before.contains(&d) && !tested.contains(&d));
        if untested {
            return Err(ModelError::new(
                ErrorCode::InvalidConfigurationRequest,
                "The log bucket changed while it was being checked; try again",
            ));
        }
        Ok(())
    })?;
    Ok(render(&snapshot.state().load_balancers[&arn].attributes))
}

/// Puts AWS's `ELBAccessLogTestFile` in a bucket that logs are turned on for (connection
/// logs too: AWS does not document another name): a bucket that does not take it refuses the
/// change, as AWS's bucket policy check does.
fn write_test_file(
    api: &ApiCall<'_>,
    arn: &str,
    bucket: &str,
    prefix: &str,
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
                tracing::info!(bucket, error = %e, "log bucket refused the test file");
                ApiError::from(ModelError::new(
                    ErrorCode::InvalidConfigurationRequest,
                    format!("Access Denied for bucket: {bucket}. Please check S3bucket permission"),
                ))
            }
            PutError::Unreachable(_) | PutError::Io(_) => ApiError::new(
                503,
                "ServiceUnavailable",
                format!("The log bucket '{bucket}' could not be checked: {e}"),
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
