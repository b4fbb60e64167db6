//! `authenticate-oidc` and `authenticate-cognito` actions: who the identity provider is, and
//! the session the load balancer keeps once a user has logged in there (aws-elb-features.md
//! §4); and `jwt-validation` actions, which check the bearer token a request carries. Either
//! comes first in a rule's actions, before the one that answers.

use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};

/// AWS's defaults.
pub const DEFAULT_SESSION_COOKIE: &str = "AWSELBAuthSessionCookie";
pub const DEFAULT_SCOPE: &str = "openid";
pub const DEFAULT_SESSION_TIMEOUT_S: u32 = 604_800;
/// AWS's limit on `AuthenticationRequestExtraParams`.
const MAX_EXTRA_PARAMS: usize = 10;
/// Authorization request parameters the load balancer sets itself.
const OWN_PARAMS: [&str; 6] = [
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
];

/// An authenticate action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Authenticate {
    pub provider: IdentityProvider,
    pub session: SessionOptions,
}

/// Where users log in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum IdentityProvider {
    Oidc(OidcProvider),
    Cognito(CognitoUserPool),
}

/// `AuthenticateOidcConfig`'s provider: its endpoints (HTTPS) and the client the load balancer
/// is there.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OidcProvider {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub user_info_endpoint: String,
    pub client_id: String,
    /// `None` only in a modify with `UseExistingClientSecret`, until the state fills it in
    /// from the action it replaces; never described back, as on AWS.
    pub client_secret: Option<String>,
}

/// Without the client secret: commands and states are logged.
impl std::fmt::Debug for OidcProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcProvider")
            .field("issuer", &self.issuer)
            .field("authorization_endpoint", &self.authorization_endpoint)
            .field("token_endpoint", &self.token_endpoint)
            .field("user_info_endpoint", &self.user_info_endpoint)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// `AuthenticateCognitoConfig`'s user pool, its app client and its domain. Its endpoints are
/// `[settings] cognito_endpoint`'s, in Cognito's layout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CognitoUserPool {
    pub user_pool_arn: String,
    pub user_pool_client_id: String,
    pub user_pool_domain: String,
}

impl CognitoUserPool {
    /// The pool's id, the last part of its ARN (`us-east-1_AbC123`).
    pub fn pool_id(&self) -> &str {
        self.user_pool_arn.rsplit('/').next().unwrap_or_default()
    }
}

/// What to do with a request that has no valid session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnUnauthenticated {
    /// 401.
    Deny,
    /// Forward it without the user's claims.
    Allow,
    /// Send the user to log in (a redirect to the authorization endpoint).
    #[default]
    Authenticate,
}

impl OnUnauthenticated {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "deny" => Ok(Self::Deny),
            "allow" => Ok(Self::Allow),
            "authenticate" => Ok(Self::Authenticate),
            _ => Err(ModelError::validation(format!(
                "OnUnauthenticatedRequest '{s}' must be one of deny, allow, authenticate"
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deny => "deny",
            Self::Allow => "allow",
            Self::Authenticate => "authenticate",
        }
    }
}

/// The options both kinds of authenticate action share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionOptions {
    /// The session cookies are this name with `-0`, `-1`, ...
    pub cookie_name: String,
    pub scope: String,
    pub timeout_s: u32,
    pub on_unauthenticated: OnUnauthenticated,
    /// Added to the authorization request, in the order given.
    pub extra_params: Vec<(String, String)>,
}

impl Default for SessionOptions {
    fn default() -> Self {
        Self {
            cookie_name: DEFAULT_SESSION_COOKIE.to_owned(),
            scope: DEFAULT_SCOPE.to_owned(),
            timeout_s: DEFAULT_SESSION_TIMEOUT_S,
            on_unauthenticated: OnUnauthenticated::default(),
            extra_params: Vec::new(),
        }
    }
}

impl Authenticate {
    /// AWS's action type.
    pub fn action_type(&self) -> &'static str {
        match self.provider {
            IdentityProvider::Oidc(_) => "authenticate-oidc",
            IdentityProvider::Cognito(_) => "authenticate-cognito",
        }
    }

    /// The checks that need nothing but the action itself. A missing client secret is the
    /// state's to judge (`UseExistingClientSecret`).
    pub fn validate(&self) -> Result<()> {
        match &self.provider {
            IdentityProvider::Oidc(oidc) => {
                for (name, url) in [
                    ("Issuer", &oidc.issuer),
                    ("AuthorizationEndpoint", &oidc.authorization_endpoint),
                    ("TokenEndpoint", &oidc.token_endpoint),
                    ("UserInfoEndpoint", &oidc.user_info_endpoint),
                ] {
                    https_url(name, url)?;
                }
                visible("ClientId", &oidc.client_id)?;
                // Named, never echoed.
                if let Some(secret) = &oidc.client_secret
                    && (secret.is_empty() || !secret.bytes().all(|b| b.is_ascii_graphic()))
                {
                    return Err(ModelError::validation(
                        "ClientSecret must be printable ASCII without spaces",
                    ));
                }
            }
            IdentityProvider::Cognito(pool) => {
                let arn = &pool.user_pool_arn;
                let parts: Vec<&str> = arn.split(':').collect();
                let well_formed = parts.len() == 6
                    && parts[..3] == ["arn", "aws", "cognito-idp"]
                    && parts[5]
                        .strip_prefix("userpool/")
                        .is_some_and(|id| !id.is_empty() && id.bytes().all(is_pool_id_byte));
                if !well_formed {
                    return Err(ModelError::validation(format!(
                        "UserPoolArn '{arn}' is not a Cognito user pool ARN \
                         (arn:aws:cognito-idp:REGION:ACCOUNT:userpool/POOL_ID)"
                    )));
                }
                visible("UserPoolClientId", &pool.user_pool_client_id)?;
                let domain = &pool.user_pool_domain;
                let ok = !domain.is_empty()
                    && domain.len() <= 253
                    && domain
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
                if !ok {
                    return Err(ModelError::validation(format!(
                        "UserPoolDomain '{domain}' must be a domain prefix or a domain name"
                    )));
                }
            }
        }
        self.session.validate()
    }
}

impl SessionOptions {
    fn validate(&self) -> Result<()> {
        let name = &self.cookie_name;
        // A cookie name is an RFC 6265 token; the shard suffix follows it.
        let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        if name.is_empty() || name.len() > 64 || !name.bytes().all(token) {
            return Err(ModelError::validation(format!(
                "SessionCookieName '{name}' must be 1 to 64 characters a cookie name may hold"
            )));
        }
        // Scope names are separated by spaces.
        let scope = &self.scope;
        if scope
            .split(' ')
            .any(|s| s.is_empty() || !s.bytes().all(|b| b.is_ascii_graphic()))
        {
            return Err(ModelError::validation(format!(
                "Scope '{scope}' must be scope names separated by single spaces"
            )));
        }
        if !(1..=DEFAULT_SESSION_TIMEOUT_S).contains(&self.timeout_s) {
            return Err(ModelError::validation(format!(
                "SessionTimeout {} must be from 1 to {DEFAULT_SESSION_TIMEOUT_S} seconds",
                self.timeout_s
            )));
        }
        if self.extra_params.len() > MAX_EXTRA_PARAMS {
            return Err(ModelError::validation(format!(
                "AuthenticationRequestExtraParams has {} entries; the limit is {MAX_EXTRA_PARAMS}",
                self.extra_params.len()
            )));
        }
        for (i, (key, _)) in self.extra_params.iter().enumerate() {
            if key.is_empty() || OWN_PARAMS.contains(&key.as_str()) {
                return Err(ModelError::validation(format!(
                    "AuthenticationRequestExtraParams cannot set '{key}': the load balancer \
                     sets {} itself",
                    OWN_PARAMS.join(", ")
                )));
            }
            if self.extra_params[..i].iter().any(|(k, _)| k == key) {
                return Err(ModelError::validation(format!(
                    "AuthenticationRequestExtraParams names '{key}' twice"
                )));
            }
        }
        Ok(())
    }
}

/// A `jwt-validation` action: the request's `Authorization: Bearer` token must be a JWT signed
/// RS256 by a key of the JWKS endpoint, of the issuer, unexpired (and not before its `nbf`
/// or `iat`), with the additional claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwtValidation {
    pub jwks_endpoint: String,
    pub issuer: String,
    #[serde(default)]
    pub additional_claims: Vec<AdditionalClaim>,
}

/// A claim the token must have, with one of `values`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdditionalClaim {
    pub format: ClaimFormat,
    pub name: String,
    pub values: Vec<String>,
}

/// How a claim holds its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClaimFormat {
    /// A string, one of the values.
    SingleString,
    /// An array of strings, one of which is one of the values.
    StringArray,
    /// A string of space-separated words (a `scope`), one of which is one of the values.
    SpaceSeparatedValues,
}

impl ClaimFormat {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "single-string" => Ok(Self::SingleString),
            "string-array" => Ok(Self::StringArray),
            "space-separated-values" => Ok(Self::SpaceSeparatedValues),
            _ => Err(ModelError::validation(format!(
                "Claim format '{s}' must be one of single-string, string-array, \
                 space-separated-values"
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::SingleString => "single-string",
            Self::StringArray => "string-array",
            Self::SpaceSeparatedValues => "space-separated-values",
        }
    }
}

/// AWS's limits.
const MAX_URL: usize = 256;
const MAX_CLAIMS: usize = 10;
const MAX_CLAIM_VALUES: usize = 10;
/// The claims every validation checks, which may not be asked for again.
const CHECKED_CLAIMS: [&str; 4] = ["exp", "iss", "nbf", "iat"];

impl JwtValidation {
    pub fn validate(&self) -> Result<()> {
        https_url("JwksEndpoint", &self.jwks_endpoint)?;
        for (name, value) in [
            ("JwksEndpoint", &self.jwks_endpoint),
            ("Issuer", &self.issuer),
        ] {
            if value.is_empty() || value.len() > MAX_URL {
                return Err(ModelError::validation(format!(
                    "{name} must be 1 to {MAX_URL} characters"
                )));
            }
        }
        if self.additional_claims.len() > MAX_CLAIMS {
            return Err(ModelError::validation(format!(
                "AdditionalClaims has {} claims; the limit is {MAX_CLAIMS}",
                self.additional_claims.len()
            )));
        }
        for (i, claim) in self.additional_claims.iter().enumerate() {
            let name = &claim.name;
            if name.is_empty() || CHECKED_CLAIMS.contains(&name.as_str()) {
                return Err(ModelError::validation(format!(
                    "Claim '{name}' cannot be an additional claim: {} are always checked",
                    CHECKED_CLAIMS.join(", ")
                )));
            }
            if self.additional_claims[..i].iter().any(|c| &c.name == name) {
                return Err(ModelError::validation(format!(
                    "Claim '{name}' is named twice"
                )));
            }
            let values = &claim.values;
            let well_formed = !values.is_empty()
                && values.len() <= MAX_CLAIM_VALUES
                && values.iter().all(|v| !v.is_empty() && v.len() <= MAX_URL)
                && (claim.format != ClaimFormat::SpaceSeparatedValues
                    || values.iter().all(|v| !v.contains(' ')));
            if !well_formed {
                return Err(ModelError::validation(format!(
                    "Claim '{name}' needs 1 to {MAX_CLAIM_VALUES} values of 1 to {MAX_URL} \
                     characters (without spaces for space-separated-values)"
                )));
            }
        }
        Ok(())
    }
}

fn https_url(name: &str, url: &str) -> Result<()> {
    let authority = url
        .strip_prefix("https://")
        .map(|rest| rest.split(['/', '?', '#']).next().unwrap_or_default());
    // The load balancer appends its query: a fragment would swallow it.
    let ok = authority.is_some_and(|a| !a.is_empty() && !a.contains('@'))
        && url.bytes().all(|b| b.is_ascii_graphic() && b != b'#');
    if !ok {
        return Err(ModelError::validation(format!(
            "{name} '{url}' must be an https:// URL with a host and no fragment"
        )));
    }
    Ok(())
}

fn visible(name: &str, value: &str) -> Result<()> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ModelError::validation(format!(
            "{name} must be printable ASCII without spaces, not '{value}'"
        )));
    }
    Ok(())
}

fn is_pool_id_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oidc() -> Authenticate {
        Authenticate {
            provider: IdentityProvider::Oidc(OidcProvider {
                issuer: "https://idp.example".into(),
                authorization_endpoint: "https://idp.example/auth".into(),
                token_endpoint: "https://idp.example/token".into(),
                user_info_endpoint: "https://idp.example/me".into(),
                client_id: "elbd".into(),
                client_secret: Some("s3cret".into()),
            }),
            session: SessionOptions::default(),
        }
    }

    #[test]
    fn endpoints_are_https_and_options_in_range() {
        assert!(oidc().validate().is_ok());
        let mut plain = oidc();
        if let IdentityProvider::Oidc(p) = &mut plain.provider {
            p.token_endpoint = "http://idp.example/token".into();
        }
        let refused = plain.validate().unwrap_err();
        assert!(refused.message.contains("TokenEndpoint"), "{refused}");
        let mut long = oidc();
        long.session.timeout_s = 604_801;
        assert!(long.validate().is_err());
        let mut own = oidc();
        own.session.extra_params = vec![("state".into(), "x".into())];
        assert!(own.validate().is_err());
        let mut scopes = oidc();
        scopes.session.scope = "openid email".into();
        assert!(scopes.validate().is_ok());
        let mut cookie = oidc();
        cookie.session.cookie_name = "a;b".into();
        assert!(cookie.validate().is_err());
    }

    #[test]
    fn cognito_pools_are_named_by_arn() {
        let pool = |arn: &str| Authenticate {
            provider: IdentityProvider::Cognito(CognitoUserPool {
                user_pool_arn: arn.into(),
                user_pool_client_id: "client".into(),
                user_pool_domain: "my-app".into(),
            }),
            session: SessionOptions::default(),
        };
        let good = pool("arn:aws:cognito-idp:us-east-1:123456789012:userpool/us-east-1_AbC");
        assert!(good.validate().is_ok());
        let IdentityProvider::Cognito(p) = &good.provider else {
            unreachable!()
        };
        assert_eq!(p.pool_id(), "us-east-1_AbC");
        assert!(pool("arn:aws:s3:::bucket").validate().is_err());
    }
}
