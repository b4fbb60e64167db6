//! The AWS Query protocol's request side: a form-encoded body of `Name=value` pairs, where
//! lists are `Name.member.N` (elbv2) or `Name.N` (EC2) and structures `Name.member.N.Field`.
//!
//! [`Params`] records which parameters a handler read; [`Params::finish`] refuses the rest,
//! so a parameter elbd does not implement is never silently ignored.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use crate::error::ApiError;

/// The largest request body elbd reads; AWS's Query APIs accept far smaller ones.
pub const MAX_BODY: usize = 256 * 1024;

#[derive(Debug, Default)]
pub struct Params {
    values: BTreeMap<String, String>,
    read: RefCell<BTreeSet<String>>,
}

impl Params {
    /// Decodes a form body. Invalid UTF-8 or a repeated name is a malformed request.
    pub fn decode(body: &[u8]) -> Result<Self, ApiError> {
        if std::str::from_utf8(body).is_err() {
            return Err(ApiError::malformed("the request body is not valid UTF-8"));
        }
        let mut values = BTreeMap::new();
        for (name, value) in form_urlencoded::parse(body) {
            if values
                .insert(name.to_string(), value.into_owned())
                .is_some()
            {
                return Err(ApiError::malformed(format!(
                    "parameter '{name}' is given more than once"
                )));
            }
        }
        Ok(Self {
            values,
            read: RefCell::default(),
        })
    }

    fn take(&self, name: &str) -> Option<&str> {
        let value = self.values.get(name)?;
        self.read.borrow_mut().insert(name.to_owned());
        Some(value)
    }

    pub fn optional(&self, name: &str) -> Option<&str> {
        self.take(name)
    }

    pub fn required(&self, name: &str) -> Result<&str, ApiError> {
        self.take(name).ok_or_else(|| ApiError::missing(name))
    }

    /// An optional integer within `min..=max`.
    pub fn int(&self, name: &str, min: i64, max: i64) -> Result<Option<i64>, ApiError> {
        let Some(raw) = self.take(name) else {
            return Ok(None);
        };
        match raw.parse::<i64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
            Ok(_) => Err(ApiError::validation(format!(
                "Value '{raw}' at '{}' failed to satisfy constraint: Member must have value between {min} and {max}",
                lower_first(name)
            ))),
            Err(_) => Err(ApiError::validation(format!(
                "Value '{raw}' at '{}' failed to satisfy constraint: Member must be an integer",
                lower_first(name)
            ))),
        }
    }

    pub fn bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.take(name) {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(raw) => Err(ApiError::validation(format!(
                "Value '{raw}' at '{}' failed to satisfy constraint: Member must be true or false",
                lower_first(name)
            ))),
        }
    }

    /// An optional value from a fixed set, with AWS's validation message.
    pub fn one_of(&self, name: &str, allowed: &[&str]) -> Result<Option<&str>, ApiError> {
        let Some(raw) = self.take(name) else {
            return Ok(None);
        };
        if allowed.contains(&raw) {
            Ok(Some(raw))
        } else {
            Err(ApiError::validation(format!(
                "1 validation error detected: Value '{raw}' at '{}' failed to satisfy constraint: \
                 Member must satisfy enum value set: [{}]",
                lower_first(name),
                allowed.join(", ")
            )))
        }
    }

    /// `prefix.1`, `prefix.2`, … in order; a gap in the numbering is an error.
    pub fn list(&self, prefix: &str) -> Result<Vec<String>, ApiError> {
        let indices = self.indices(prefix, |rest| rest.is_empty())?;
        Ok(indices
            .into_iter()
            .map(|i| {
                self.take(&format!("{prefix}.{i}"))
                    .expect("indexed above")
                    .to_owned()
            })
            .collect())
    }

    /// The structures `prefix.N.Field…`, each as its own [`Params`] over `Field…` names.
    pub fn structs(&self, prefix: &str) -> Result<Vec<Self>, ApiError> {
        let indices = self.indices(prefix, |rest| rest.starts_with('.'))?;
        let mut out = Vec::with_capacity(indices.len());
        for i in indices {
            let head = format!("{prefix}.{i}.");
            let mut values = BTreeMap::new();
            for (name, value) in self.values.range(head.clone()..) {
                let Some(field) = name.strip_prefix(&head) else {
                    break;
                };
                self.read.borrow_mut().insert(name.clone());
                values.insert(field.to_owned(), value.clone());
            }
            out.push(Self {
                values,
                read: RefCell::default(),
            });
        }
        Ok(out)
    }

    /// `prefix.N.Key` / `prefix.N.Value` pairs (tags, attributes); a missing value is empty.
    pub fn key_values(&self, prefix: &str) -> Result<Vec<(String, String)>, ApiError> {
        self.structs(prefix)?
            .into_iter()
            .map(|kv| {
                let pair = (
                    kv.required("Key")?.to_owned(),
                    kv.optional("Value").unwrap_or("").to_owned(),
                );
                kv.finish()?;
                Ok(pair)
            })
            .collect()
    }

    /// The indices N of `prefix.N<rest>` where `rest` passes `shape`, checked to be 1..=n.
    /// An empty list, which botocore sends as `Name=` (elbv2's `Name.member` without the
    /// `.member`), has none.
    fn indices(&self, prefix: &str, shape: impl Fn(&str) -> bool) -> Result<Vec<usize>, ApiError> {
        let bare = prefix.strip_suffix(".member").unwrap_or(prefix);
        if self.values.get(bare).is_some_and(String::is_empty) {
            self.read.borrow_mut().insert(bare.to_owned());
        }
        let head = format!("{prefix}.");
        let mut found = BTreeSet::new();
        for name in self.values.keys() {
            let Some(rest) = name.strip_prefix(&head) else {
                continue;
            };
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            let (index, tail) = rest.split_at(digits);
            if index.is_empty() || !shape(tail) {
                continue;
            }
            match index.parse::<usize>() {
                Ok(n) if n >= 1 && !index.starts_with('0') => found.insert(n),
                _ => {
                    return Err(ApiError::malformed(format!(
                        "'{name}' has an invalid list index"
                    )));
                }
            };
        }
        if let Some(last) = found.last()
            && *last != found.len()
        {
            let gap = (1..=*last).find(|n| !found.contains(n)).unwrap_or(*last);
            return Err(ApiError::malformed(format!(
                "list '{prefix}' has no member {gap}"
            )));
        }
        Ok(found.into_iter().collect())
    }

    /// `Version`, when given, must be the API's.
    pub fn version(&self, api: &str, version: &str) -> Result<(), ApiError> {
        match self.optional("Version") {
            Some(given) if given != version => Err(ApiError::new(
                400,
                "InvalidAction",
                format!("Version '{given}' is not supported; {api} is version {version}"),
            )),
            _ => Ok(()),
        }
    }

    /// Refuses every parameter no handler read: unknown, or known but not implemented.
    pub fn finish(&self) -> Result<(), ApiError> {
        let read = self.read.borrow();
        match self.values.keys().find(|k| !read.contains(*k)) {
            None => Ok(()),
            // Each API words this in its own code (ApiError::render).
            Some(name) => Err(ApiError::new(
                400,
                "UnknownParameter",
                format!("Parameter '{name}' is not recognized, or not supported by elbd yet"),
            )),
        }
    }
}

/// `LoadBalancerArns` → `loadBalancerArns`, as AWS names members in validation messages.
fn lower_first(name: &str) -> String {
    let mut chars = name.chars();
    chars
        .next()
        .map(|c| c.to_lowercase().chain(chars).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
