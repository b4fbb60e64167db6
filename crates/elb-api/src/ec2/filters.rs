//! EC2's `Filter.N.Name` / `Filter.N.Value.M`: a resource is listed when, for every filter,
//! one of its values for that name matches one of the filter's (`*` and `?` are wildcards, as
//! in EC2). `tag:KEY`, `tag-key` and `tag-value` work on every taggable resource; other names
//! are the resource type's, and a name it does not have is refused, naming it.

use std::collections::BTreeMap;

use crate::error::ApiError;
use crate::query::Params;

pub(super) struct Filters(Vec<(String, Vec<String>)>);

impl Filters {
    /// The request's filters, each name checked against `names` (the type's own) and the tag
    /// filters.
    pub(super) fn parse(params: &Params, names: &[&str]) -> Result<Self, ApiError> {
        let mut filters = Vec::new();
        for filter in params.structs("Filter")? {
            let name = filter.required("Name")?.to_owned();
            let known = names.contains(&name.as_str())
                || name.starts_with("tag:")
                || name == "tag-key"
                || name == "tag-value";
            if !known {
                return Err(ApiError::new(
                    400,
                    "InvalidParameterValue",
                    format!(
                        "The filter '{name}' is invalid (elbd supports {} and tag filters)",
                        names.join(", ")
                    ),
                ));
            }
            filters.push((name, filter.list("Value")?));
            filter.finish()?;
        }
        Ok(Self(filters))
    }

    /// Whether a resource with `tags` and the values `field` gives for each filter name passes.
    pub(super) fn matches(
        &self,
        tags: Option<&BTreeMap<String, String>>,
        field: impl Fn(&str) -> Vec<String>,
    ) -> bool {
        let no_tags = BTreeMap::new();
        let tags = tags.unwrap_or(&no_tags);
        self.0.iter().all(|(name, wanted)| {
            let have: Vec<String> = match name.strip_prefix("tag:") {
                Some(key) => tags.get(key).cloned().into_iter().collect(),
                None if name == "tag-key" => tags.keys().cloned().collect(),
                None if name == "tag-value" => tags.values().cloned().collect(),
                None => field(name),
            };
            wanted
                .iter()
                .any(|w| have.iter().any(|h| glob(w.as_bytes(), h.as_bytes())))
        })
    }
}

/// `*` matches any run of characters, `?` any one.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    match (pattern.first(), text.first()) {
        (None, None) => true,
        (Some(b'*'), _) => {
            glob(&pattern[1..], text) || (!text.is_empty() && glob(pattern, &text[1..]))
        }
        (Some(b'?'), Some(_)) => glob(&pattern[1..], &text[1..]),
        (Some(p), Some(t)) if p == t => glob(&pattern[1..], &text[1..]),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn wildcards_as_ec2_takes_them() {
        for (pattern, text, want) in [
            ("vpc-*", "vpc-0a1b", true),
            ("us-east-1?", "us-east-1a", true),
            ("us-east-1?", "us-east-1", false),
            ("*web*", "my-web-sg", true),
            ("web", "web2", false),
            ("", "", true),
        ] {
            assert_eq!(
                glob(pattern.as_bytes(), text.as_bytes()),
                want,
                "{pattern} {text}"
            );
        }
    }
}
