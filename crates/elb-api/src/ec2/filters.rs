//! EC2's `Filter.N.Name` / `Filter.N.Value.M`: a resource is listed when, for every filter,
//! one of its values for that name matches one of the filter's (`*` and `?` are wildcards, as
//! in EC2). `tag:KEY`, `tag-key` and `tag-value` work on every taggable resource; other names
//! are the resource type's, and a name it does not have is refused, naming it.

use std::collections::BTreeMap;

use crate::error::ApiError;
use crate::query::Params;

pub(super) struct Filters(Vec<(String, Vec<String>)>);

impl Filters {
    /// The request's filters, each name checked against `names` (the type's own) and, for a
    /// taggable type, the tag filters.
    pub(super) fn parse(params: &Params, names: &[&str], taggable: bool) -> Result<Self, ApiError> {
        let mut filters = Vec::new();
        for filter in params.structs("Filter")? {
            let name = filter.required("Name")?.to_owned();
            let tag = name.starts_with("tag:") || name == "tag-key" || name == "tag-value";
            let known = names.contains(&name.as_str()) || (taggable && tag);
            if !known {
                return Err(ApiError::new(
                    400,
                    "InvalidParameterValue",
                    format!(
                        "The filter '{name}' is invalid (elbd supports {}{})",
                        names.join(", "),
                        if taggable { " and tag filters" } else { "" }
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
            wanted.iter().any(|w| have.iter().any(|h| glob(w, h)))
        })
    }
}

/// `*` matches any run of characters, `?` any one. Iterative, remembering the last `*` and
/// where it resumed, so a pattern of many stars costs O(pattern × text), not exponential time.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut i, mut j) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while j < t.len() {
        if i < p.len() && (p[i] == '?' || p[i] == t[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some((i, j));
            i += 1;
        } else if let Some((si, sj)) = star {
            // Let the last star take one more character, and retry from there.
            star = Some((si, sj + 1));
            i = si + 1;
            j = sj + 1;
        } else {
            return false;
        }
    }
    p[i..].iter().all(|c| *c == '*')
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
            ("*", "", true),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "aXbY", false),
            ("?", "é", true),
        ] {
            assert_eq!(glob(pattern, text), want, "{pattern} {text}");
        }
        // Many stars against a long miss end at once rather than backtracking forever.
        let pattern = "*a".repeat(40) + "b";
        assert!(!glob(&pattern, &"a".repeat(2000)));
    }
}
