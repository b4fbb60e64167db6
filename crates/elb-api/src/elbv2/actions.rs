//! Actions and conditions: decoding them from Query parameters and writing them as XML.

use elb_model::{
    Action, AdditionalClaim, Authenticate, ClaimFormat, CognitoUserPool, Condition, FixedResponse,
    IdentityProvider, JwtValidation, OidcProvider, OnUnauthenticated, QueryPair, Redirect, Rewrite,
    SessionOptions, TargetGroupWeight, Transform,
};

use crate::error::ApiError;
use crate::query::Params;
use crate::xml::Xml;

/// `PREFIX.member.N`: forward (to one group, or weighted over up to five), redirect, or
/// fixed-response, after an authenticate-oidc, authenticate-cognito or jwt-validation
/// action; sorted by `Order`, which several actions must each have, and returned with the
/// orders given.
pub(super) fn action_params(
    params: &Params,
    prefix: &str,
) -> Result<(Vec<Action>, Vec<u16>), ApiError> {
    let mut actions = Vec::new();
    for a in params.structs(prefix)? {
        let order = a.int("Order", 1, 50_000)?.map(|o| o as u16);
        let action = match a.required("Type")? {
            "forward" => forward(&a)?,
            "redirect" => redirect(&a)?,
            "fixed-response" => fixed(&a)?,
            "authenticate-oidc" => authenticate(&a, oidc(&a)?)?,
            "authenticate-cognito" => authenticate(&a, cognito(&a)?)?,
            "jwt-validation" => jwt_validation(&a)?,
            other => {
                return Err(ApiError::validation(format!(
                    "Action type '{other}' must be one of forward, redirect, fixed-response, \
                     authenticate-oidc, authenticate-cognito, jwt-validation"
                )));
            }
        };
        a.finish()?;
        actions.push((order, action));
    }
    match actions.as_slice() {
        [] => return Err(ApiError::missing(prefix.trim_end_matches(".member"))),
        [_] => {}
        several => {
            let mut orders: Vec<Option<u16>> = several.iter().map(|(o, _)| *o).collect();
            orders.sort_unstable();
            if orders.contains(&None) || orders.windows(2).any(|w| w[0] == w[1]) {
                return Err(ApiError::validation(
                    "Each action must have its own Order when a rule has more than one",
                ));
            }
            actions.sort_by_key(|(order, _)| *order);
        }
    }
    Ok(actions
        .into_iter()
        .map(|(order, action)| (action, order))
        .fold(
            (Vec::new(), Vec::new()),
            |(mut actions, mut orders), (a, o)| {
                actions.push(a);
                orders.extend(o);
                (actions, orders)
            },
        ))
}

fn jwt_validation(a: &Params) -> Result<Action, ApiError> {
    let mut additional_claims = Vec::new();
    for claim in a.structs("JwtValidationConfig.AdditionalClaims.member")? {
        additional_claims.push(AdditionalClaim {
            format: ClaimFormat::parse(claim.required("Format")?)?,
            name: claim.required("Name")?.to_owned(),
            values: claim.list("Values.member")?,
        });
        claim.finish()?;
    }
    Ok(Action::JwtValidation(Box::new(JwtValidation {
        jwks_endpoint: a.required("JwtValidationConfig.JwksEndpoint")?.to_owned(),
        issuer: a.required("JwtValidationConfig.Issuer")?.to_owned(),
        additional_claims,
    })))
}

fn oidc(a: &Params) -> Result<IdentityProvider, ApiError> {
    let text = |name: &str| -> Result<String, ApiError> {
        Ok(a.required(&format!("AuthenticateOidcConfig.{name}"))?
            .to_owned())
    };
    let use_existing = a.bool("AuthenticateOidcConfig.UseExistingClientSecret")? == Some(true);
    let client_secret = a
        .optional("AuthenticateOidcConfig.ClientSecret")
        .map(str::to_owned);
    if client_secret.is_none() && !use_existing {
        return Err(ApiError::validation(
            "A ClientSecret must be specified unless UseExistingClientSecret is true",
        ));
    }
    Ok(IdentityProvider::Oidc(OidcProvider {
        issuer: text("Issuer")?,
        authorization_endpoint: text("AuthorizationEndpoint")?,
        token_endpoint: text("TokenEndpoint")?,
        user_info_endpoint: text("UserInfoEndpoint")?,
        client_id: text("ClientId")?,
        // A secret given wins over keeping the old one.
        client_secret,
    }))
}

fn cognito(a: &Params) -> Result<IdentityProvider, ApiError> {
    let text = |name: &str| -> Result<String, ApiError> {
        Ok(a.required(&format!("AuthenticateCognitoConfig.{name}"))?
            .to_owned())
    };
    Ok(IdentityProvider::Cognito(CognitoUserPool {
        user_pool_arn: text("UserPoolArn")?,
        user_pool_client_id: text("UserPoolClientId")?,
        user_pool_domain: text("UserPoolDomain")?,
    }))
}

/// The session options both configs share, under the provider's config.
fn authenticate(a: &Params, provider: IdentityProvider) -> Result<Action, ApiError> {
    let config = match provider {
        IdentityProvider::Oidc(_) => "AuthenticateOidcConfig",
        IdentityProvider::Cognito(_) => "AuthenticateCognitoConfig",
    };
    let name = |field: &str| format!("{config}.{field}");
    let defaults = SessionOptions::default();
    let mut extra_params = Vec::new();
    for entry in a.structs(&name("AuthenticationRequestExtraParams.entry"))? {
        extra_params.push((
            entry.required("key")?.to_owned(),
            entry.optional("value").unwrap_or_default().to_owned(),
        ));
        entry.finish()?;
    }
    let session = SessionOptions {
        cookie_name: a
            .optional(&name("SessionCookieName"))
            .map_or(defaults.cookie_name, str::to_owned),
        scope: a
            .optional(&name("Scope"))
            .map_or(defaults.scope, str::to_owned),
        timeout_s: a
            .int(&name("SessionTimeout"), 1, i64::from(u32::MAX))?
            .map_or(defaults.timeout_s, |t| t as u32),
        on_unauthenticated: match a.optional(&name("OnUnauthenticatedRequest")) {
            Some(given) => OnUnauthenticated::parse(given)?,
            None => defaults.on_unauthenticated,
        },
        extra_params,
    };
    Ok(Action::Authenticate(Box::new(Authenticate {
        provider,
        session,
    })))
}

fn forward(a: &Params) -> Result<Action, ApiError> {
    let mut target_groups = Vec::new();
    for group in a.structs("ForwardConfig.TargetGroups.member")? {
        target_groups.push(TargetGroupWeight {
            target_group_arn: group.required("TargetGroupArn")?.to_owned(),
            weight: group.int("Weight", 0, 999)?.map_or(1, |w| w as u16),
        });
        group.finish()?;
    }
    if let Some(arn) = a.optional("TargetGroupArn") {
        // Both forms: ForwardConfig must then name exactly that one group.
        let same = target_groups.is_empty()
            || (target_groups.len() == 1 && target_groups[0].target_group_arn == arn);
        if !same {
            return Err(ApiError::validation(
                "TargetGroupArn and ForwardConfig name different target groups",
            ));
        }
        if target_groups.is_empty() {
            return Ok(Action::forward(arn));
        }
    }
    let sticky = a.bool("ForwardConfig.TargetGroupStickinessConfig.Enabled")? == Some(true);
    let duration = a.int(
        "ForwardConfig.TargetGroupStickinessConfig.DurationSeconds",
        1,
        604_800,
    )?;
    if target_groups.is_empty() {
        return Err(ApiError::missing("TargetGroupArn"));
    }
    Ok(Action::Forward {
        target_groups,
        // AWS's default duration is an hour.
        group_stickiness_seconds: sticky.then(|| duration.map_or(3600, |d| d as u32)),
    })
}

fn redirect(a: &Params) -> Result<Action, ApiError> {
    let status = a.one_of("RedirectConfig.StatusCode", &["HTTP_301", "HTTP_302"])?;
    let text = |name: &str, default: &str| a.optional(name).unwrap_or(default).to_owned();
    Ok(Action::Redirect(Redirect {
        protocol: text("RedirectConfig.Protocol", "#{protocol}"),
        port: text("RedirectConfig.Port", "#{port}"),
        host: text("RedirectConfig.Host", "#{host}"),
        path: text("RedirectConfig.Path", "/#{path}"),
        query: text("RedirectConfig.Query", "#{query}"),
        status_code: match status.ok_or_else(|| ApiError::missing("RedirectConfig.StatusCode"))? {
            "HTTP_301" => 301,
            _ => 302,
        },
    }))
}

fn fixed(a: &Params) -> Result<Action, ApiError> {
    let status = a.required("FixedResponseConfig.StatusCode")?;
    let well_formed = status.len() == 3
        && status.bytes().all(|b| b.is_ascii_digit())
        && matches!(status.as_bytes()[0], b'2' | b'4' | b'5');
    if !well_formed {
        return Err(ApiError::validation(format!(
            "1 validation error detected: Value '{status}' at 'fixedResponseConfig.statusCode' \
             failed to satisfy constraint: Member must satisfy regular expression pattern: \
             ^(2|4|5)\\d\\d$"
        )));
    }
    let status_code = status.parse().expect("three digits");
    Ok(Action::FixedResponse(FixedResponse {
        status_code,
        content_type: a
            .optional("FixedResponseConfig.ContentType")
            .map(str::to_owned),
        body: a
            .optional("FixedResponseConfig.MessageBody")
            .map(str::to_owned),
    }))
}

/// `Conditions.member.N`, in the `*Config` form or the legacy `Values` one (host-header and
/// path-pattern only, as AWS allows).
pub(super) fn condition_params(params: &Params) -> Result<Vec<Condition>, ApiError> {
    let mut conditions = Vec::new();
    for c in params.structs("Conditions.member")? {
        let field = c.required("Field")?.to_owned();
        let legacy = c.list("Values.member")?;
        let legacy_regex = c.list("RegexValues.member")?;
        // The config's list and the legacy one beside it make one.
        let with = |config: &str, list: &str, legacy: &[String]| -> Result<Vec<String>, ApiError> {
            let mut values = c.list(&format!("{config}.{list}.member"))?;
            values.extend(legacy.iter().cloned());
            Ok(values)
        };
        let host_or_path = matches!(field.as_str(), "host-header" | "path-pattern");
        if host_or_path && legacy.len() > 1 {
            return Err(ApiError::validation(format!(
                "A '{field}' condition field contains too many values; the limit is '1'"
            )));
        }
        let condition = match field.as_str() {
            "host-header" => Condition::HostHeader {
                values: with("HostHeaderConfig", "Values", &legacy)?,
                regex_values: with("HostHeaderConfig", "RegexValues", &legacy_regex)?,
            },
            "path-pattern" => Condition::PathPattern {
                values: with("PathPatternConfig", "Values", &legacy)?,
                regex_values: with("PathPatternConfig", "RegexValues", &legacy_regex)?,
            },
            // The legacy RegexValues serve http-header too, as botocore's model says.
            "http-header" if legacy.is_empty() => Condition::HttpHeader {
                name: c.required("HttpHeaderConfig.HttpHeaderName")?.to_owned(),
                values: c.list("HttpHeaderConfig.Values.member")?,
                regex_values: with("HttpHeaderConfig", "RegexValues", &legacy_regex)?,
            },
            other if !legacy.is_empty() || !legacy_regex.is_empty() => {
                let given = if legacy.is_empty() {
                    "RegexValues"
                } else {
                    "Values"
                };
                return Err(ApiError::validation(format!(
                    "The '{given}' field is not compatible with '{other}'"
                )));
            }
            "http-request-method" => Condition::HttpRequestMethod {
                values: c.list("HttpRequestMethodConfig.Values.member")?,
            },
            "query-string" => Condition::QueryString {
                values: c
                    .structs("QueryStringConfig.Values.member")?
                    .into_iter()
                    .map(|p| {
                        let pair = QueryPair {
                            key: p.optional("Key").map(str::to_owned),
                            value: p.required("Value")?.to_owned(),
                        };
                        p.finish()?;
                        Ok(pair)
                    })
                    .collect::<Result<_, ApiError>>()?,
            },
            "source-ip" => Condition::SourceIp {
                values: c
                    .list("SourceIpConfig.Values.member")?
                    .iter()
                    .map(|v| {
                        v.parse()
                            .map_err(|_| ApiError::validation(format!("'{v}' is not a CIDR")))
                    })
                    .collect::<Result<_, _>>()?,
                ip_address_type: c
                    .optional("SourceIpConfig.IpAddressType")
                    .map(str::to_owned),
            },
            other => {
                return Err(ApiError::validation(format!(
                    "Condition field '{other}' must be one of host-header, path-pattern, http-header, \
                     http-request-method, query-string, source-ip"
                )));
            }
        };
        c.finish()?;
        conditions.push(condition);
    }
    Ok(conditions)
}

/// `Order` only when the caller gave them, as AWS echoes them.
pub(super) fn render_actions(x: &mut Xml, tag: &str, actions: &[Action], orders: &[u16]) {
    x.members(tag, actions.iter().enumerate(), |x, (i, action)| {
        match action {
            Action::Forward {
                target_groups,
                group_stickiness_seconds,
            } => {
                x.leaf("Type", "forward");
                if let [only] = target_groups.as_slice() {
                    x.leaf("TargetGroupArn", &only.target_group_arn);
                }
                x.node("ForwardConfig", |x| {
                    x.members("TargetGroups", target_groups, |x, g| {
                        x.leaf("TargetGroupArn", &g.target_group_arn)
                            .leaf("Weight", g.weight.to_string());
                    });
                    x.node("TargetGroupStickinessConfig", |x| {
                        x.leaf("Enabled", group_stickiness_seconds.is_some().to_string());
                        if let Some(seconds) = group_stickiness_seconds {
                            x.leaf("DurationSeconds", seconds.to_string());
                        }
                    });
                });
            }
            Action::Redirect(r) => {
                x.leaf("Type", "redirect").node("RedirectConfig", |x| {
                    x.leaf("Protocol", &r.protocol)
                        .leaf("Port", &r.port)
                        .leaf("Host", &r.host)
                        .leaf("Path", &r.path)
                        .leaf("Query", &r.query)
                        .leaf("StatusCode", format!("HTTP_{}", r.status_code));
                });
            }
            Action::FixedResponse(f) => {
                x.leaf("Type", "fixed-response")
                    .node("FixedResponseConfig", |x| {
                        x.leaf("StatusCode", f.status_code.to_string());
                        if let Some(t) = &f.content_type {
                            x.leaf("ContentType", t);
                        }
                        if let Some(b) = &f.body {
                            x.leaf("MessageBody", b);
                        }
                    });
            }
            Action::Authenticate(auth) => render_authenticate(x, auth),
            Action::JwtValidation(jwt) => {
                x.leaf("Type", "jwt-validation")
                    .node("JwtValidationConfig", |x| {
                        x.leaf("JwksEndpoint", &jwt.jwks_endpoint)
                            .leaf("Issuer", &jwt.issuer);
                        if !jwt.additional_claims.is_empty() {
                            x.members("AdditionalClaims", &jwt.additional_claims, |x, c| {
                                x.leaf("Format", c.format.as_str()).leaf("Name", &c.name);
                                x.text_members("Values", &c.values);
                            });
                        }
                    });
            }
        }
        if let Some(order) = orders.get(i) {
            x.leaf("Order", order.to_string());
        }
    });
}

/// An authenticate action as AWS describes it: everything but the client secret.
fn render_authenticate(x: &mut Xml, auth: &Authenticate) {
    x.leaf("Type", auth.action_type());
    let session = |x: &mut Xml| {
        let s = &auth.session;
        x.leaf("SessionCookieName", &s.cookie_name)
            .leaf("Scope", &s.scope)
            .leaf("SessionTimeout", s.timeout_s.to_string());
        if !s.extra_params.is_empty() {
            x.node("AuthenticationRequestExtraParams", |x| {
                for (key, value) in &s.extra_params {
                    x.node("entry", |x| {
                        x.leaf("key", key).leaf("value", value);
                    });
                }
            });
        }
        x.leaf("OnUnauthenticatedRequest", s.on_unauthenticated.as_str());
    };
    match &auth.provider {
        IdentityProvider::Oidc(oidc) => {
            x.node("AuthenticateOidcConfig", |x| {
                x.leaf("Issuer", &oidc.issuer)
                    .leaf("AuthorizationEndpoint", &oidc.authorization_endpoint)
                    .leaf("TokenEndpoint", &oidc.token_endpoint)
                    .leaf("UserInfoEndpoint", &oidc.user_info_endpoint)
                    .leaf("ClientId", &oidc.client_id);
                session(x);
            });
        }
        IdentityProvider::Cognito(pool) => {
            x.node("AuthenticateCognitoConfig", |x| {
                x.leaf("UserPoolArn", &pool.user_pool_arn)
                    .leaf("UserPoolClientId", &pool.user_pool_client_id)
                    .leaf("UserPoolDomain", &pool.user_pool_domain);
                session(x);
            });
        }
    }
}

pub(super) fn render_conditions(x: &mut Xml, conditions: &[Condition]) {
    x.members("Conditions", conditions, |x, c| {
        x.leaf("Field", c.field());
        match c {
            Condition::HostHeader {
                values,
                regex_values,
            } => {
                render_patterns(x, values, regex_values);
                x.node("HostHeaderConfig", |x| {
                    render_patterns(x, values, regex_values)
                });
            }
            Condition::PathPattern {
                values,
                regex_values,
            } => {
                render_patterns(x, values, regex_values);
                x.node("PathPatternConfig", |x| {
                    render_patterns(x, values, regex_values)
                });
            }
            Condition::HttpHeader {
                name,
                values,
                regex_values,
            } => {
                x.node("HttpHeaderConfig", |x| {
                    x.leaf("HttpHeaderName", name);
                    render_patterns(x, values, regex_values);
                });
            }
            Condition::HttpRequestMethod { values } => {
                x.node("HttpRequestMethodConfig", |x| {
                    x.text_members("Values", values);
                });
            }
            Condition::QueryString { values } => {
                x.node("QueryStringConfig", |x| {
                    x.members("Values", values, |x, p| {
                        if let Some(k) = &p.key {
                            x.leaf("Key", k);
                        }
                        x.leaf("Value", &p.value);
                    });
                });
            }
            Condition::SourceIp {
                values,
                ip_address_type,
            } => {
                x.node("SourceIpConfig", |x| {
                    x.text_members("Values", values.iter().map(ToString::to_string));
                    if let Some(kind) = ip_address_type {
                        x.leaf("IpAddressType", kind);
                    }
                });
            }
        }
    });
}

/// A host, path or header condition's wildcard values or regular expressions, whichever it has.
fn render_patterns(x: &mut Xml, values: &[String], regex_values: &[String]) {
    if regex_values.is_empty() {
        x.text_members("Values", values);
    } else {
        x.text_members("RegexValues", regex_values);
    }
}

/// `Transforms.member.N`: a host header rewrite and a URL rewrite, each a list of `Regex` and
/// `Replace` pairs in its own config.
pub(super) fn transform_params(params: &Params) -> Result<Vec<Transform>, ApiError> {
    let mut transforms = Vec::new();
    for t in params.structs("Transforms.member")? {
        let kind = t.required("Type")?;
        let config = match kind {
            "host-header-rewrite" => "HostHeaderRewriteConfig",
            "url-rewrite" => "UrlRewriteConfig",
            other => {
                return Err(ApiError::validation(format!(
                    "Transform type '{other}' must be one of host-header-rewrite, url-rewrite"
                )));
            }
        };
        let rewrites = t
            .structs(&format!("{config}.Rewrites.member"))?
            .into_iter()
            .map(|r| {
                let rewrite = Rewrite {
                    regex: r.required("Regex")?.to_owned(),
                    replace: r.required("Replace")?.to_owned(),
                };
                r.finish()?;
                Ok(rewrite)
            })
            .collect::<Result<Vec<_>, ApiError>>()?;
        // A config of the other type is left unread, and refused by name.
        t.finish()?;
        transforms.push(match kind {
            "host-header-rewrite" => Transform::HostHeaderRewrite { rewrites },
            _ => Transform::UrlRewrite { rewrites },
        });
    }
    Ok(transforms)
}

pub(super) fn render_transforms(x: &mut Xml, transforms: &[Transform]) {
    if transforms.is_empty() {
        return;
    }
    x.members("Transforms", transforms, |x, t| {
        x.leaf("Type", t.kind());
        let config = match t {
            Transform::HostHeaderRewrite { .. } => "HostHeaderRewriteConfig",
            Transform::UrlRewrite { .. } => "UrlRewriteConfig",
        };
        x.node(config, |x| {
            x.members("Rewrites", t.rewrites(), |x, r| {
                x.leaf("Regex", &r.regex).leaf("Replace", &r.replace);
            });
        });
    });
}
