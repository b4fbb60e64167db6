//! AddTags and RemoveTags, on any taggable resource named by ARN.

use std::collections::BTreeSet;

use super::{
    Outcome, Region, Tags, certificates, listeners, load_balancers, target_groups, trust_stores,
};
use crate::error::{ErrorCode, ModelError, Result};

/// AWS's quota of tags per resource.
const MAX_TAGS: usize = 50;

impl Region {
    pub(super) fn add_tags(
        &mut self,
        arns: &[String],
        tags: &[(String, String)],
    ) -> Result<Outcome> {
        let mut seen = BTreeSet::new();
        for (key, value) in tags {
            if !seen.insert(key.as_str()) {
                return Err(ModelError::new(
                    ErrorCode::DuplicateTagKeys,
                    format!("Tag key '{key}' is given more than once"),
                ));
            }
            if key.is_empty() || key.chars().count() > 128 || value.chars().count() > 256 {
                return Err(ModelError::validation(format!(
                    "Tag '{key}': keys are 1 to 128 characters and values at most 256"
                )));
            }
            if key.starts_with("aws:") {
                return Err(ModelError::validation(format!(
                    "Tag key '{key}': the aws: prefix is reserved"
                )));
            }
        }
        for arn in arns {
            let current = self.tags_mut(arn)?;
            let mut next = current.clone();
            next.extend(tags.iter().cloned());
            if next.len() > MAX_TAGS {
                return Err(ModelError::new(
                    ErrorCode::TooManyTags,
                    format!(
                        "A resource can have at most {MAX_TAGS} tags; '{arn}' would have {}",
                        next.len()
                    ),
                ));
            }
            *current = next;
        }
        Ok(Outcome::Done)
    }

    pub(super) fn remove_tags(&mut self, arns: &[String], keys: &[String]) -> Result<Outcome> {
        for arn in arns {
            let tags = self.tags_mut(arn)?;
            for key in keys {
                tags.remove(key);
            }
        }
        Ok(Outcome::Done)
    }

    /// The tags of the resource `arn` names, whatever its type.
    pub fn tags(&self, arn: &str) -> Result<&Tags> {
        if let Some(lb) = self.load_balancers.get(arn) {
            return Ok(&lb.tags);
        }
        if let Some(tg) = self.target_groups.get(arn) {
            return Ok(&tg.tags);
        }
        if let Some(l) = self.listeners.get(arn) {
            return Ok(&l.tags);
        }
        if let Some(r) = self.rules.get(arn) {
            return Ok(&r.tags);
        }
        if let Some(c) = self.certificates.get(arn) {
            return Ok(&c.tags);
        }
        if let Some(t) = self.trust_stores.get(arn) {
            return Ok(&t.tags);
        }
        Err(not_found(arn))
    }

    fn tags_mut(&mut self, arn: &str) -> Result<&mut Tags> {
        if let Some(lb) = self.load_balancers.get_mut(arn) {
            return Ok(&mut lb.tags);
        }
        if let Some(tg) = self.target_groups.get_mut(arn) {
            return Ok(&mut tg.tags);
        }
        if let Some(l) = self.listeners.get_mut(arn) {
            return Ok(&mut l.tags);
        }
        if let Some(r) = self.rules.get_mut(arn) {
            return Ok(&mut r.tags);
        }
        if let Some(c) = self.certificates.get_mut(arn) {
            return Ok(&mut c.tags);
        }
        if let Some(t) = self.trust_stores.get_mut(arn) {
            return Ok(&mut t.tags);
        }
        Err(not_found(arn))
    }
}

/// The not-found error for the resource type the ARN names.
fn not_found(arn: &str) -> ModelError {
    if arn.contains(":targetgroup/") {
        target_groups::not_found(arn)
    } else if arn.contains(":listener/") {
        listeners::not_found(arn)
    } else if arn.contains(":truststore/") {
        trust_stores::not_found(arn)
    } else if arn.split(':').nth(2) == Some("acm") {
        certificates::not_found(arn)
    } else if arn.contains(":listener-rule/") {
        ModelError::new(ErrorCode::RuleNotFound, format!("Rule '{arn}' not found"))
    } else {
        load_balancers::not_found(arn)
    }
}
