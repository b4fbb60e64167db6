//! What runs before a rule's answering action: authenticate actions (`authenticate-oidc`,
//! `authenticate-cognito`), ALB's login flow through an OpenID Connect provider, and
//! `jwt-validation` actions, a check of the request's bearer token.
//!
//! - [`flow`]: the authorization request, the state it carries through the provider, the
//!   checks of the token endpoint's answer, and the claims JWT targets get (pure).
//! - [`session`]: the session a login leaves, sealed into cookies (pure).
//! - [`jwt`]: a bearer token checked against a key set (pure); [`key_sets`]: issuers' sets,
//!   kept and read again as ALB does.
//! - [`idp`]: the calls to providers: token, user-info and key-set endpoints.
//!
//! The request side (when to redirect, the `/oauth2/idpresponse` callback, the headers to
//! targets, the token check) is `l7::authenticate`.

pub mod flow;
pub mod idp;
pub mod jwt;
pub mod key_sets;
pub mod session;

use std::collections::HashMap;
use std::sync::Arc;

use elb_model::{AdditionalClaim, Authenticate, IdentityProvider, JwtValidation, SessionOptions};
use http::{StatusCode, Uri};

pub use idp::Providers;

/// `[settings] cognito_endpoint`: where `authenticate-cognito` actions find Cognito, in its
/// layout, and the secrets of its app clients (Cognito's API, which ALB asks, is not here).
#[derive(Clone, Default)]
pub struct Cognito {
    /// `https://HOST[:PORT]`: `/oauth2/authorize`, `/oauth2/token`, `/oauth2/userInfo`
    /// under it, and the issuer `ENDPOINT/POOL_ID`.
    pub endpoint: String,
    /// App client id → secret.
    pub client_secrets: HashMap<String, String>,
}

impl std::fmt::Debug for Cognito {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cognito")
            .field("endpoint", &self.endpoint)
            .field("clients", &self.client_secrets.keys())
            .finish()
    }
}

/// A rule's first action, compiled: it runs before the one that answers.
#[derive(Debug)]
pub enum Guard {
    Login(Box<Login>),
    Token(TokenCheck),
}

/// A `jwt-validation` action compiled for the request path.
#[derive(Debug)]
pub struct TokenCheck {
    pub jwks_endpoint: Uri,
    /// The endpoint as written: its set's name in the cache.
    pub jwks_name: String,
    pub issuer: String,
    pub claims: Vec<AdditionalClaim>,
    /// Why requests fail (a 500) rather than reach the key set.
    pub unusable: Option<String>,
}

impl TokenCheck {
    pub fn compile(jwt: &JwtValidation) -> Arc<Guard> {
        let (jwks_endpoint, unusable) = match jwt.jwks_endpoint.parse::<Uri>() {
            Ok(uri) => (uri, None),
            Err(e) => (
                Uri::default(),
                Some(format!("'{}' is not a URL: {e}", jwt.jwks_endpoint)),
            ),
        };
        Arc::new(Guard::Token(Self {
            jwks_endpoint,
            jwks_name: jwt.jwks_endpoint.clone(),
            issuer: jwt.issuer.clone(),
            claims: jwt.additional_claims.clone(),
            unusable,
        }))
    }
}

/// An authenticate action compiled for the request path.
pub struct Login {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: Uri,
    pub user_info_endpoint: Uri,
    pub client_id: String,
    pub client_secret: Option<String>,
    pub session: SessionOptions,
    /// The load balancer's ARN, the claims JWT's `signer`.
    pub signer: String,
    /// Why requests that need the provider fail (a 500) rather than reach it: a Cognito
    /// action without `cognito_endpoint`, an endpoint that is not a URL.
    pub unusable: Option<String>,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("signer", &self.signer)
            .field("unusable", &self.unusable)
            .finish_non_exhaustive()
    }
}

impl Login {
    /// `auth` as the request path runs it, with `cognito` resolving Cognito's endpoints.
    pub fn compile(auth: &Authenticate, signer: &str, cognito: Option<&Cognito>) -> Arc<Guard> {
        Arc::new(Guard::Login(Box::new(Self::new(auth, signer, cognito))))
    }

    fn new(auth: &Authenticate, signer: &str, cognito: Option<&Cognito>) -> Self {
        let mut unusable = None;
        let mut uri = |url: &str| {
            url.parse::<Uri>().unwrap_or_else(|e| {
                unusable.get_or_insert(format!("'{url}' is not a URL: {e}"));
                Uri::default()
            })
        };
        let (issuer, authorization, token, user_info, client_id, client_secret) =
            match &auth.provider {
                IdentityProvider::Oidc(oidc) => (
                    oidc.issuer.clone(),
                    oidc.authorization_endpoint.clone(),
                    uri(&oidc.token_endpoint),
                    uri(&oidc.user_info_endpoint),
                    oidc.client_id.clone(),
                    oidc.client_secret.clone(),
                ),
                IdentityProvider::Cognito(pool) => {
                    let client_id = pool.user_pool_client_id.clone();
                    let Some(cognito) = cognito else {
                        return Self {
                            issuer: String::new(),
                            authorization_endpoint: String::new(),
                            token_endpoint: Uri::default(),
                            user_info_endpoint: Uri::default(),
                            client_id,
                            client_secret: None,
                            session: auth.session.clone(),
                            signer: signer.to_owned(),
                            unusable: Some(
                                "authenticate-cognito needs [settings] cognito_endpoint".into(),
                            ),
                        };
                    };
                    let base = cognito.endpoint.trim_end_matches('/');
                    (
                        format!("{base}/{}", pool.pool_id()),
                        format!("{base}/oauth2/authorize"),
                        uri(&format!("{base}/oauth2/token")),
                        uri(&format!("{base}/oauth2/userInfo")),
                        client_id.clone(),
                        cognito.client_secrets.get(&client_id).cloned(),
                    )
                }
            };
        Self {
            issuer,
            authorization_endpoint: authorization,
            token_endpoint: token,
            user_info_endpoint: user_info,
            client_id,
            client_secret,
            session: auth.session.clone(),
            signer: signer.to_owned(),
            unusable,
        }
    }
}

/// Why a login failed, with ALB's status and access-log reason code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    #[error("the request has no valid session and the action denies it")]
    Unauthenticated,
    #[error("the callback has no state")]
    MissingState,
    #[error("the callback's state is not one this load balancer gave, or it expired")]
    InvalidState,
    #[error("the callback has no code")]
    MissingCode,
    #[error("the identity provider answered the login with an error: {0}")]
    Provider(String),
    #[error("the token endpoint refused the code or refresh token: {0}")]
    InvalidGrant(String),
    #[error("the token endpoint's answer is not a token response: {0}")]
    InvalidTokenResponse(String),
    #[error("the ID token does not hold: {0}")]
    InvalidIdToken(String),
    #[error("the token endpoint could not be reached: {0}")]
    TokenConnection(String),
    #[error("the token endpoint did not answer in time")]
    TokenTimeout,
    #[error("the token endpoint's answer is too large")]
    TokenResponseTooLarge,
    #[error("the user-info endpoint could not be reached: {0}")]
    UserInfoConnection(String),
    #[error("the user-info endpoint did not answer in time")]
    UserInfoTimeout,
    #[error("the user-info endpoint's answer is not the user's claims: {0}")]
    InvalidUserInfo(String),
    #[error("the user's claims are over 11 KB, or too many for cookies")]
    ClaimsTooLarge,
    #[error("the action cannot run: {0}")]
    Unusable(String),
    #[error("the bearer token is refused: {0}")]
    Token(jwt::TokenFailure),
    #[error("the issuer's key set cannot be had: {0}")]
    KeySet(String),
}

impl AuthFailure {
    pub fn status(&self) -> StatusCode {
        match self {
            // ALB's: the provider's error is a 561.
            Self::Provider(_) => StatusCode::from_u16(561).expect("561 is a valid status code"),
            Self::TokenConnection(_)
            | Self::TokenTimeout
            | Self::TokenResponseTooLarge
            | Self::UserInfoConnection(_)
            | Self::UserInfoTimeout
            | Self::Unusable(_)
            | Self::KeySet(_) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::UNAUTHORIZED,
        }
    }

    /// ALB's `error_reason` where it has one (`Auth…`); a denial and the provider's own
    /// error have none.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthenticated => "Unauthenticated",
            Self::MissingState => "AuthMissingStateParam",
            Self::InvalidState => "AuthInvalidStateParam",
            Self::MissingCode => "AuthMissingCodeParam",
            Self::Provider(_) => "IdentityProviderError",
            Self::InvalidGrant(_) => "AuthInvalidGrantError",
            Self::InvalidTokenResponse(_) => "AuthInvalidTokenResponse",
            Self::InvalidIdToken(_) => "AuthInvalidIdToken",
            Self::TokenConnection(_) => "AuthTokenEpRequestConnectionError",
            Self::TokenTimeout => "AuthTokenEpRequestTimeout",
            Self::TokenResponseTooLarge => "AuthTokenEpResponseSizeExceeded",
            Self::UserInfoConnection(_) => "AuthUserinfoEpRequestConnectionError",
            Self::UserInfoTimeout => "AuthUserinfoEpRequestTimeout",
            Self::InvalidUserInfo(_) => "AuthInvalidUserinfoResponse",
            Self::ClaimsTooLarge => "AuthUserinfoResponseSizeExceeded",
            Self::Unusable(_) => "AuthUnhandledException",
            // ALB's codes for these are not published.
            Self::Token(_) => "InvalidToken",
            Self::KeySet(_) => "KeySetUnavailable",
        }
    }
}
