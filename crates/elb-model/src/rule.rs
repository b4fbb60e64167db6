//! Listener rules: conditions on the request and the actions they lead to
//! (aws-elb-features.md §4), with AWS's validation.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::authenticate::{Authenticate, JwtValidation};
use crate::error::{ErrorCode, ModelError, Result};
use crate::state::{Origin, Tags};

/// AWS's per-rule limits on condition values and wildcards.
const MAX_VALUES_PER_RULE: usize = 5;
const MAX_WILDCARDS_PER_RULE: usize = 5;

/// A target group of a forward action, with its weight (0–999).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetGroupWeight {
    pub target_group_arn: String,
    pub weight: u16,
}

/// `RedirectConfig`: components not given keep the request's; `#{protocol}`, `#{host}`,
/// `#{port}`, `#{path}` and `#{query}` are replaced by the request's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Redirect {
    pub protocol: String,
    pub port: String,
    pub host: String,
    pub path: String,
    pub query: String,
    /// 301 or 302.
    pub status_code: u16,
}

/// `FixedResponseConfig`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FixedResponse {
    pub status_code: u16,
    pub content_type: Option<String>,
    pub body: Option<String>,
}

/// What a rule (or a listener's default rule) does with a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Action {
    /// Split requests over target groups by weight.
    Forward {
        target_groups: Vec<TargetGroupWeight>,
        /// Target group stickiness: for how long (seconds) a client stays with the group it
        /// was first sent to (the AWSALBTG cookie); `None` when off.
        #[serde(default)]
        group_stickiness_seconds: Option<u32>,
    },
    Redirect(Redirect),
    FixedResponse(FixedResponse),
    /// Log the user in at an identity provider first: the first of two actions.
    Authenticate(Box<Authenticate>),
    /// Check the request's bearer token first: the first of two actions.
    JwtValidation(Box<JwtValidation>),
}

impl Action {
    /// Forward everything to one target group.
    pub fn forward(target_group_arn: impl Into<String>) -> Self {
        Self::Forward {
            target_groups: vec![TargetGroupWeight {
                target_group_arn: target_group_arn.into(),
                weight: 1,
            }],
            group_stickiness_seconds: None,
        }
    }

    /// Whether the action answers the request (forward, redirect, fixed-response), and so
    /// ends the list.
    pub fn is_terminal(&self) -> bool {
        !matches!(self, Self::Authenticate(_) | Self::JwtValidation(_))
    }

    /// AWS's name of the action's type.
    pub fn action_type(&self) -> &'static str {
        match self {
            Self::Forward { .. } => "forward",
            Self::Redirect(_) => "redirect",
            Self::FixedResponse(_) => "fixed-response",
            Self::Authenticate(auth) => auth.action_type(),
            Self::JwtValidation(_) => "jwt-validation",
        }
    }

    pub fn target_group_arns(&self) -> impl Iterator<Item = &str> {
        let groups: &[TargetGroupWeight] = match self {
            Self::Forward { target_groups, .. } => target_groups,
            _ => &[],
        };
        groups.iter().map(|g| g.target_group_arn.as_str())
    }

    /// The checks that need nothing but the action itself.
    pub fn validate(&self) -> Result<()> {
        let invalid = |message: String| {
            Err(ModelError::new(
                ErrorCode::InvalidLoadBalancerAction,
                message,
            ))
        };
        // What the API model's patterns and lengths refuse is the framework's ValidationError.
        let malformed = |message: String| Err(ModelError::validation(message));
        match self {
            Self::Forward {
                target_groups,
                group_stickiness_seconds,
            } => {
                if group_stickiness_seconds.is_some_and(|d| !(1..=604_800).contains(&d)) {
                    return invalid("Stickiness duration must be from 1 to 604800 seconds".into());
                }
                if target_groups.is_empty() || target_groups.len() > 5 {
                    return invalid("A forward action needs 1 to 5 target groups".into());
                }
                if target_groups.iter().any(|g| g.weight > 999) {
                    return invalid("Target group weights must be from 0 to 999".into());
                }
                for (i, g) in target_groups.iter().enumerate() {
                    if target_groups[..i]
                        .iter()
                        .any(|h| h.target_group_arn == g.target_group_arn)
                    {
                        return invalid(format!(
                            "Target group '{}' appears twice in one action",
                            g.target_group_arn
                        ));
                    }
                }
                Ok(())
            }
            Self::Redirect(r) => {
                if r.status_code != 301 && r.status_code != 302 {
                    return malformed(
                        "A redirect's status code must be HTTP_301 or HTTP_302".into(),
                    );
                }
                if !matches!(r.protocol.as_str(), "HTTP" | "HTTPS" | "#{protocol}") {
                    return malformed(format!(
                        "Redirect protocol '{}' must be HTTP, HTTPS or #{{protocol}}",
                        r.protocol
                    ));
                }
                if r.host.is_empty()
                    || r.host.len() > 128
                    || r.path.is_empty()
                    || r.path.len() > 128
                    || r.query.len() > 128
                {
                    return malformed(
                        "Redirect host and path must be 1 to 128 characters, query at most 128"
                            .into(),
                    );
                }
                if !r.path.starts_with('/') {
                    return invalid(format!("Redirect path '{}' must start with '/'", r.path));
                }
                let unchanged = r.protocol == "#{protocol}"
                    && r.port == "#{port}"
                    && r.host == "#{host}"
                    && r.path == "/#{path}";
                if unchanged {
                    return invalid(
                        "A redirect must change at least one of protocol, port, host or path, or it would loop".into(),
                    );
                }
                Ok(())
            }
            Self::FixedResponse(f) => {
                let class = f.status_code / 100;
                if !(200..=599).contains(&f.status_code) || class == 3 {
                    return malformed(format!(
                        "Fixed response status code {} must be 2XX, 4XX or 5XX",
                        f.status_code
                    ));
                }
                const TYPES: [&str; 5] = [
                    "text/plain",
                    "text/css",
                    "text/html",
                    "application/javascript",
                    "application/json",
                ];
                if let Some(t) = &f.content_type
                    && !TYPES.contains(&t.as_str())
                {
                    return invalid(format!(
                        "Fixed response content type '{t}' must be one of {}",
                        TYPES.join(", ")
                    ));
                }
                if f.body.as_ref().is_some_and(|b| b.len() > 1024) {
                    return malformed("A fixed response body is at most 1024 bytes".into());
                }
                Ok(())
            }
            Self::Authenticate(auth) => auth.validate(),
            Self::JwtValidation(jwt) => jwt.validate(),
        }
    }
}

/// One `key=value` of a query-string condition; no key matches the value under any key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryPair {
    pub key: Option<String>,
    pub value: String,
}

/// A rule condition. Within one, the values are alternatives; a rule's conditions must all
/// match. Host, path and header conditions take either wildcard `values` or `regex_values`
/// (AWS's `RegexValues`), not both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "field", rename_all = "kebab-case")]
pub enum Condition {
    HostHeader {
        values: Vec<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        regex_values: Vec<String>,
    },
    PathPattern {
        values: Vec<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        regex_values: Vec<String>,
    },
    HttpHeader {
        name: String,
        values: Vec<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        regex_values: Vec<String>,
    },
    HttpRequestMethod {
        values: Vec<String>,
    },
    QueryString {
        values: Vec<QueryPair>,
    },
    SourceIp {
        values: Vec<IpNet>,
        /// `IpAddressType`, when given: `ipv4` (IPv6, which would be the other, is not
        /// built), echoed as given.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ip_address_type: Option<String>,
    },
}

/// A condition's (or transform's) regular expression as the data plane runs it: searched for
/// anywhere in the text (anchor it with `^` and `$`), case-sensitive unless it says `(?i)`,
/// over bytes. What AWS's dialect lacks is refused: look-around and back-references (which
/// this engine lacks too), possessive quantifiers (`a*+`, which it would read as a repetition
/// of a repetition) and Unicode classes (`\p{L}`, also behind `(?u)`); so are characters other
/// than visible ASCII and spaces, and patterns that compile to more than 64 KiB, whose
/// matching would cost every request: linear in the text, but by the pattern's size.
pub fn condition_regex(pattern: &str) -> std::result::Result<regex::bytes::Regex, String> {
    if let Some(c) = pattern.chars().find(|c| !(' '..='~').contains(c)) {
        return Err(format!("{c:?} is not a visible ASCII character"));
    }
    let ast = regex_syntax::ast::parse::Parser::new()
        .parse(pattern)
        .map_err(|e| e.kind().to_string())?;
    refuse_unsupported(&ast)?;
    regex::bytes::RegexBuilder::new(pattern)
        .unicode(false)
        .size_limit(1 << 16)
        .build()
        .map_err(|e| match e {
            regex::Error::Syntax(why) => why.lines().last().unwrap_or_default().trim().to_owned(),
            other => other.to_string(),
        })
}

/// Refuses, anywhere in `ast`, a repetition of a repetition (a possessive quantifier in
/// AWS's dialect) and the Unicode flag.
fn refuse_unsupported(ast: &regex_syntax::ast::Ast) -> std::result::Result<(), String> {
    use regex_syntax::ast::{Ast, Flag, FlagsItemKind, GroupKind};
    let unicode = |flags: &regex_syntax::ast::Flags| {
        // A flag after `-` is turned off.
        let mut negated = false;
        flags.items.iter().any(|item| match item.kind {
            FlagsItemKind::Negation => {
                negated = true;
                false
            }
            FlagsItemKind::Flag(Flag::Unicode) => !negated,
            FlagsItemKind::Flag(_) => false,
        })
    };
    match ast {
        Ast::Repetition(rep) => {
            if matches!(*rep.ast, Ast::Repetition(_)) {
                return Err("possessive quantifiers are not supported".into());
            }
            refuse_unsupported(&rep.ast)
        }
        Ast::Flags(set) if unicode(&set.flags) => Err("the Unicode flag is not supported".into()),
        Ast::Group(group) => {
            if let GroupKind::NonCapturing(flags) = &group.kind
                && unicode(flags)
            {
                return Err("the Unicode flag is not supported".into());
            }
            refuse_unsupported(&group.ast)
        }
        Ast::Alternation(alt) => alt.asts.iter().try_for_each(refuse_unsupported),
        Ast::Concat(concat) => concat.asts.iter().try_for_each(refuse_unsupported),
        _ => Ok(()),
    }
}

impl Condition {
    /// The field name as AWS spells it.
    pub fn field(&self) -> &'static str {
        match self {
            Self::HostHeader { .. } => "host-header",
            Self::PathPattern { .. } => "path-pattern",
            Self::HttpHeader { .. } => "http-header",
            Self::HttpRequestMethod { .. } => "http-request-method",
            Self::QueryString { .. } => "query-string",
            Self::SourceIp { .. } => "source-ip",
        }
    }

    /// The regular expressions of a host, path or header condition.
    pub fn regex_values(&self) -> &[String] {
        match self {
            Self::HostHeader { regex_values, .. }
            | Self::PathPattern { regex_values, .. }
            | Self::HttpHeader { regex_values, .. } => regex_values,
            _ => &[],
        }
    }

    fn value_count(&self) -> usize {
        let plain = match self {
            Self::HostHeader { values, .. }
            | Self::PathPattern { values, .. }
            | Self::HttpHeader { values, .. }
            | Self::HttpRequestMethod { values } => values.len(),
            Self::QueryString { values } => values.len(),
            Self::SourceIp { values, .. } => values.len(),
        };
        plain + self.regex_values().len()
    }

    fn wildcards(&self) -> usize {
        let count = |s: &str| s.chars().filter(|c| *c == '*' || *c == '?').count();
        match self {
            Self::HostHeader { values, .. }
            | Self::PathPattern { values, .. }
            | Self::HttpHeader { values, .. } => values.iter().map(|v| count(v)).sum(),
            Self::QueryString { values } => values
                .iter()
                .map(|p| count(&p.value) + p.key.as_deref().map_or(0, count))
                .sum(),
            _ => 0,
        }
    }

    fn validate(&self) -> Result<()> {
        let bad = |why: String| {
            Err(ModelError::validation(format!(
                "Condition '{}': {why}",
                self.field()
            )))
        };
        if self.value_count() == 0 {
            return bad("needs at least one value".into());
        }
        let regexes = self.regex_values();
        if !regexes.is_empty() && self.value_count() != regexes.len() {
            return bad("takes Values or RegexValues, not both".into());
        }
        for pattern in regexes {
            if pattern.is_empty() || pattern.len() > 128 {
                return bad(format!(
                    "regular expression '{pattern}' must be 1 to 128 characters"
                ));
            }
            if let Err(why) = condition_regex(pattern) {
                return bad(format!(
                    "regular expression '{pattern}' is not one this engine runs: {why}"
                ));
            }
        }
        let visible = |s: &str| s.bytes().all(|b| (0x21..0x7f).contains(&b));
        match self {
            Self::HostHeader { values, .. } => {
                for v in values {
                    let ok = v
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-.*?".contains(&b));
                    if !ok || v.is_empty() || v.len() > 128 {
                        return bad(format!("'{v}' must be 1 to 128 of A-Z a-z 0-9 - . * ?"));
                    }
                }
            }
            Self::PathPattern { values, .. } => {
                for v in values {
                    let ok = v
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"_-.$/~\"'@:+&*?".contains(&b));
                    if !ok || v.is_empty() || v.len() > 128 {
                        return bad(format!(
                            "'{v}' must be 1 to 128 of A-Z a-z 0-9 _ - . $ / ~ \" ' @ : + & * ?"
                        ));
                    }
                }
            }
            Self::HttpHeader { name, values, .. } => {
                let name_ok = !name.is_empty()
                    && name.len() <= 40
                    && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
                if !name_ok || name.eq_ignore_ascii_case("host") {
                    return bad(format!(
                        "header name '{name}' must be 1 to 40 of A-Z a-z 0-9 -, and not Host"
                    ));
                }
                if let Some(v) = values
                    .iter()
                    .find(|v| v.is_empty() || v.len() > 128 || !visible(v))
                {
                    return bad(format!(
                        "value '{v}' must be 1 to 128 visible ASCII characters"
                    ));
                }
            }
            Self::HttpRequestMethod { values } => {
                for v in values {
                    if v.is_empty()
                        || v.len() > 40
                        || !v
                            .bytes()
                            .all(|b| b.is_ascii_uppercase() || b == b'_' || b == b'-')
                    {
                        return bad(format!("method '{v}' must be 1 to 40 of A-Z _ -"));
                    }
                }
            }
            Self::QueryString { values } => {
                for p in values {
                    let strings = std::iter::once(p.value.as_str()).chain(p.key.as_deref());
                    if let Some(s) = strings
                        .into_iter()
                        .find(|s| s.is_empty() || s.len() > 128 || !visible(s))
                    {
                        return bad(format!("'{s}' must be 1 to 128 visible ASCII characters"));
                    }
                }
            }
            Self::SourceIp {
                values,
                ip_address_type,
            } => {
                // The address type names the family of every CIDR in Values.
                let ipv6 = match ip_address_type.as_deref() {
                    None => None,
                    Some("ipv4") => Some(false),
                    Some("ipv6") => Some(true),
                    Some(other) => {
                        return bad(format!("IpAddressType '{other}' must be ipv4 or ipv6"));
                    }
                };
                if let Some(ipv6) = ipv6
                    && values.iter().any(|n| matches!(n, IpNet::V6(_)) != ipv6)
                {
                    let family = if ipv6 {
                        "ipv6 takes IPv6"
                    } else {
                        "ipv4 takes IPv4"
                    };
                    return bad(format!("IpAddressType {family} CIDRs only"));
                }
                if values.iter().any(|n| n.to_string() == "255.255.255.255/32") {
                    return bad("255.255.255.255/32 is not allowed".into());
                }
            }
        }
        Ok(())
    }
}

/// Checks a rule's conditions: at most one of each field but `http-header` and
/// `query-string`, at most 5 values and 5 wildcards in all.
pub fn validate_conditions(conditions: &[Condition]) -> Result<()> {
    if conditions.is_empty() {
        return Err(ModelError::validation(
            "A rule needs at least one condition",
        ));
    }
    for (i, c) in conditions.iter().enumerate() {
        c.validate()?;
        let repeatable = matches!(
            c,
            Condition::HttpHeader { .. } | Condition::QueryString { .. }
        );
        if !repeatable && conditions[..i].iter().any(|d| d.field() == c.field()) {
            return Err(ModelError::validation(format!(
                "A rule can have only one '{}' condition",
                c.field()
            )));
        }
    }
    let values: usize = conditions.iter().map(Condition::value_count).sum();
    if values > MAX_VALUES_PER_RULE {
        return Err(ModelError::validation(format!(
            "A rule can have at most {MAX_VALUES_PER_RULE} condition values, not {values}"
        )));
    }
    let wildcards: usize = conditions.iter().map(Condition::wildcards).sum();
    if wildcards > MAX_WILDCARDS_PER_RULE {
        return Err(ModelError::validation(format!(
            "A rule can have at most {MAX_WILDCARDS_PER_RULE} wildcards, not {wildcards}"
        )));
    }
    Ok(())
}

/// One rewrite (AWS's `RewriteConfig`): the first match of `regex` ([`condition_regex`]'s
/// dialect) is replaced by `replace`, where `$1`, `${1}` and `${name}` stand for capture
/// groups. Text the regex does not match is left as it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rewrite {
    pub regex: String,
    pub replace: String,
}

/// A rewrite of the requests a rule forwards (AWS's `RuleTransform`), of the Host header or
/// of the URL (path and query): its rewrites apply in order. The rule's conditions saw the
/// request as it came.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Transform {
    HostHeaderRewrite { rewrites: Vec<Rewrite> },
    UrlRewrite { rewrites: Vec<Rewrite> },
}

impl Transform {
    /// The type as AWS spells it.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::HostHeaderRewrite { .. } => "host-header-rewrite",
            Self::UrlRewrite { .. } => "url-rewrite",
        }
    }

    pub fn rewrites(&self) -> &[Rewrite] {
        match self {
            Self::HostHeaderRewrite { rewrites } | Self::UrlRewrite { rewrites } => rewrites,
        }
    }
}

/// Checks a rule's transforms: at most one of each type, each with a rewrite or more, each
/// regular expression one the engine runs, regular expressions and replacements at most
/// 1,024 characters.
pub fn validate_transforms(transforms: &[Transform]) -> Result<()> {
    for (i, t) in transforms.iter().enumerate() {
        let bad = |why: String| {
            Err(ModelError::validation(format!(
                "Transform '{}': {why}",
                t.kind()
            )))
        };
        if transforms[..i].iter().any(|u| u.kind() == t.kind()) {
            return bad("a rule can have only one of this type".into());
        }
        if t.rewrites().is_empty() {
            return bad("needs a rewrite".into());
        }
        for Rewrite { regex, replace } in t.rewrites() {
            if regex.is_empty() || regex.len() > 1024 || replace.len() > 1024 {
                return bad(
                    "a regular expression must be 1 to 1024 characters and a replacement at \
                     most 1024"
                        .into(),
                );
            }
            // Nothing a URL or a Host could carry, nor what XML cannot.
            if let Some(c) = replace.chars().find(|c| !('!'..='~').contains(c)) {
                return bad(format!(
                    "replacement '{replace}': {c:?} is not a visible ASCII character"
                ));
            }
            let compiled = condition_regex(regex).map_err(|why| {
                ModelError::validation(format!(
                    "Transform '{}': regular expression '{regex}' is not one this engine runs: \
                     {why}",
                    t.kind()
                ))
            })?;
            let groups = compiled.captures_len();
            for group in group_references(replace) {
                let known = match group.parse::<usize>() {
                    Ok(n) => n < groups,
                    Err(_) => compiled.capture_names().flatten().any(|name| name == group),
                };
                if !known {
                    return bad(format!(
                        "replacement '{replace}' names group '{group}', which '{regex}' has not"
                    ));
                }
            }
        }
    }
    Ok(())
}

/// The groups a replacement names: `$1` (the digits alone, as AWS writes them: `$1a` is
/// group 1 then `a`), `${1}`, `${name}`; `$$` is a dollar sign.
fn group_references(replace: &str) -> Vec<&str> {
    let mut groups = Vec::new();
    let mut rest = replace;
    while let Some(at) = rest.find('$') {
        let after = &rest[at + 1..];
        let (group, next) = if let Some(braced) = after.strip_prefix('{') {
            match braced.find('}') {
                Some(end) => (Some(&braced[..end]), &braced[end + 1..]),
                None => (None, braced),
            }
        } else if let Some(dollar) = after.strip_prefix('$') {
            (None, dollar)
        } else {
            let digits = after.len() - after.trim_start_matches(|c: char| c.is_ascii_digit()).len();
            (
                Some(&after[..digits]).filter(|d| !d.is_empty()),
                &after[digits..],
            )
        };
        groups.extend(group);
        rest = next;
    }
    groups
}

/// `replace` in the regex crate's syntax, read as AWS documents it: `$1a` (which the crate
/// would take for a group named `1a`) is group 1 then `a`, and a `$` that names no group is
/// itself.
pub fn expanded_replacement(replace: &str) -> String {
    let mut out = String::with_capacity(replace.len() + 4);
    let mut rest = replace;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let digits = after.len() - after.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        rest = if after.starts_with('{') {
            out.push('$');
            after
        } else if let Some(dollar) = after.strip_prefix('$') {
            out.push_str("$$");
            dollar
        } else if digits > 0 {
            out.push_str("${");
            out.push_str(&after[..digits]);
            out.push('}');
            &after[digits..]
        } else {
            out.push_str("$$");
            after
        };
    }
    out.push_str(rest);
    out
}

/// Reads a list of action orders, or the one order (or none) stores kept before rules could
/// have two actions.
pub(crate) fn action_orders<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Vec<u16>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Orders {
        One(Option<u16>),
        Many(Vec<u16>),
    }
    Ok(match Orders::deserialize(d)? {
        Orders::One(order) => order.into_iter().collect(),
        Orders::Many(orders) => orders,
    })
}

/// A listener rule with a priority (1–50000, unique per listener).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    pub arn: String,
    pub listener_arn: String,
    pub priority: u16,
    pub conditions: Vec<Condition>,
    pub actions: Vec<Action>,
    /// Rewrites of the requests it forwards: at most one of each type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transforms: Vec<Transform>,
    /// The `Order` of each action, as [`Listener::default_action_orders`].
    ///
    /// [`Listener::default_action_orders`]: crate::Listener::default_action_orders
    #[serde(default, alias = "action_order", deserialize_with = "action_orders")]
    pub action_orders: Vec<u16>,
    #[serde(default)]
    pub tags: Tags,
    pub origin: Origin,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(v: &[&str]) -> Condition {
        Condition::HostHeader {
            values: v.iter().map(|s| s.to_string()).collect(),
            regex_values: Vec::new(),
        }
    }

    #[test]
    fn regex_values_are_checked_as_the_engine_runs_them() {
        let regex = |v: &[&str]| Condition::PathPattern {
            values: Vec::new(),
            regex_values: v.iter().map(|s| s.to_string()).collect(),
        };
        assert!(validate_conditions(&[regex(&["^/api/v[0-9]+/", "(?i)\\.png$"])]).is_ok());
        assert!(
            validate_conditions(&[regex(&["(?-u:a)\\++", "(a+)+"])]).is_ok(),
            "Unicode off, a literal + repeated, a repeated group"
        );
        for bad in [
            "(",
            "a(?=b)",
            "(a)\\1",
            "\\p{L}",
            "(?u)\\w",
            "(?i:(?u:a))",
            "a*+",
            "\u{1}",
            "([a-z]{1,100}){1,100}",
            "",
        ] {
            assert!(validate_conditions(&[regex(&[bad])]).is_err(), "{bad}");
        }
        assert!(validate_conditions(&[regex(&[&"a".repeat(129)])]).is_err());
        let both = Condition::HostHeader {
            values: vec!["a.example.com".into()],
            regex_values: vec!["^b".into()],
        };
        assert!(validate_conditions(&[both]).is_err(), "values and regexes");
        let six: Vec<String> = (0..6).map(|i| format!("^/{i}")).collect();
        let six: Vec<&str> = six.iter().map(String::as_str).collect();
        assert!(validate_conditions(&[regex(&six)]).is_err(), "six values");
    }

    #[test]
    fn condition_limits() {
        assert!(validate_conditions(&[host(&["*.example.com"])]).is_ok());
        assert!(validate_conditions(&[]).is_err());
        assert!(
            validate_conditions(&[host(&["a.com"]), host(&["b.com"])]).is_err(),
            "two host conditions"
        );
        assert!(
            validate_conditions(&[host(&[
                "a.com", "b.com", "c.com", "d.com", "e.com", "f.com"
            ])])
            .is_err()
        );
        assert!(
            validate_conditions(&[host(&["***.com", "???.com"])]).is_err(),
            "six wildcards"
        );
        assert!(validate_conditions(&[host(&["bad host"])]).is_err());
        let header = |name: &str| Condition::HttpHeader {
            name: name.into(),
            values: vec!["x".into()],
            regex_values: Vec::new(),
        };
        assert!(validate_conditions(&[header("User-Agent"), header("X-Env")]).is_ok());
        assert!(validate_conditions(&[header("Host")]).is_err());
        let method = Condition::HttpRequestMethod {
            values: vec!["get".into()],
        };
        assert!(
            validate_conditions(&[method]).is_err(),
            "methods are upper case"
        );
    }

    #[test]
    fn source_ip_conditions_name_the_family_of_their_cidrs() {
        let source = |kind: Option<&str>, cidr: &str| Condition::SourceIp {
            values: vec![cidr.parse().unwrap()],
            ip_address_type: kind.map(str::to_owned),
        };
        assert!(validate_conditions(&[source(None, "10.0.0.0/8")]).is_ok());
        assert!(validate_conditions(&[source(Some("ipv4"), "10.0.0.0/8")]).is_ok());
        assert!(validate_conditions(&[source(Some("ipv4"), "2001:db8::/32")]).is_err());
        assert!(validate_conditions(&[source(Some("ipv6"), "2001:db8::/32")]).is_ok());
        assert!(validate_conditions(&[source(Some("ipv6"), "10.0.0.0/8")]).is_err());
        assert!(validate_conditions(&[source(Some("ipv5"), "10.0.0.0/8")]).is_err());
    }

    #[test]
    fn transforms_are_one_of_each_type_with_runnable_regexes() {
        let rewrite = |regex: &str| Rewrite {
            regex: regex.into(),
            replace: "/$1".into(),
        };
        let url = |regexes: &[&str]| Transform::UrlRewrite {
            rewrites: regexes.iter().map(|r| rewrite(r)).collect(),
        };
        let host = Transform::HostHeaderRewrite {
            rewrites: vec![rewrite("^(.+)\\.example\\.com$")],
        };
        assert!(validate_transforms(&[url(&["^/api/(.*)$"]), host.clone()]).is_ok());
        assert!(
            validate_transforms(&[url(&["^/a"]), url(&["^/b"])]).is_err(),
            "two of a type"
        );
        assert!(validate_transforms(&[url(&[])]).is_err(), "no rewrite");
        assert!(
            validate_transforms(&[url(&["(?<=a)b"])]).is_err(),
            "look-behind"
        );
        assert!(validate_transforms(&[url(&[&"a".repeat(1025)])]).is_err());
        let with = |regex: &str, replace: &str| {
            validate_transforms(&[Transform::UrlRewrite {
                rewrites: vec![Rewrite {
                    regex: regex.into(),
                    replace: replace.into(),
                }],
            }])
        };
        assert!(with("^/(?<rest>.*)$", "/v2/${rest}$1$$").is_ok());
        assert!(with("^/(.*)$", "/$2").is_err(), "no group 2");
        assert!(with("^/(.*)$", "/${name}").is_err(), "no group named so");
        assert!(with("^/(.*)$", "/a b").is_err(), "a space");
        assert!(with("^/(.*)$", "/\u{1}").is_err(), "a control character");
        assert_eq!(
            expanded_replacement("/$1v2/$$/${x}/$y$"),
            "/${1}v2/$$/${x}/$$y$$"
        );
    }

    #[test]
    fn action_checks() {
        assert!(Action::forward("tg").validate().is_ok());
        let redirect = |protocol: &str, path: &str, code| {
            Action::Redirect(Redirect {
                protocol: protocol.into(),
                port: "#{port}".into(),
                host: "#{host}".into(),
                path: path.into(),
                query: "#{query}".into(),
                status_code: code,
            })
        };
        assert!(redirect("HTTPS", "/#{path}", 301).validate().is_ok());
        assert!(
            redirect("#{protocol}", "/#{path}", 301).validate().is_err(),
            "a redirect loop"
        );
        assert!(redirect("HTTPS", "/#{path}", 307).validate().is_err());
        let fixed = |code, t: &str| {
            Action::FixedResponse(FixedResponse {
                status_code: code,
                content_type: Some(t.into()),
                body: None,
            })
        };
        assert!(fixed(503, "text/plain").validate().is_ok());
        assert!(fixed(302, "text/plain").validate().is_err());
        assert!(fixed(200, "image/png").validate().is_err());
    }
}
