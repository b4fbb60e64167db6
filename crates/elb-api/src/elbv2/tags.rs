//! AddTags, RemoveTags, DescribeTags.

use elb_model::Command;

use super::tag_params;
use crate::ApiCall;
use crate::error::ApiError;
use crate::query::Params;
use crate::xml::Xml;

fn arns(params: &Params) -> Result<Vec<String>, ApiError> {
    let arns = params.list("ResourceArns.member")?;
    if arns.is_empty() {
        return Err(ApiError::missing("ResourceArns"));
    }
    Ok(arns)
}

pub(super) fn add(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    let arns = arns(params)?;
    let tags = tag_params(params)?;
    if tags.is_empty() {
        return Err(ApiError::missing("Tags"));
    }
    api.execute(Command::AddTags { arns, tags })?;
    Ok(Xml::new())
}

pub(super) fn remove(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    let arns = arns(params)?;
    let keys = params.list("TagKeys.member")?;
    if keys.is_empty() {
        return Err(ApiError::missing("TagKeys"));
    }
    api.execute(Command::RemoveTags { arns, keys })?;
    Ok(Xml::new())
}

pub(super) fn describe(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    /// How many resources one call may describe (the API reference).
    const MAX: usize = 20;
    let arns = arns(params)?;
    if arns.len() > MAX {
        return Err(ApiError::validation(format!(
            "You can specify up to {MAX} resources in a single call, not {}",
            arns.len()
        )));
    }
    let snapshot = api.snapshot();
    let state = snapshot.state();
    let described = arns
        .iter()
        .map(|arn| Ok((arn, state.tags(arn)?)))
        .collect::<Result<Vec<_>, elb_model::ModelError>>()?;
    let mut x = Xml::new();
    x.members("TagDescriptions", described, |x, (arn, tags)| {
        x.leaf("ResourceArn", arn);
        x.members("Tags", tags.iter(), |x, (key, value)| {
            x.leaf("Key", key).leaf("Value", value);
        });
    });
    Ok(x)
}
