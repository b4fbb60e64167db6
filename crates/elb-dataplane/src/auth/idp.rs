//! The load balancer's calls to identity providers: the code (or a refresh token) for tokens
//! at the token endpoint, then the user's claims at the user-info endpoint; and issuers' key
//! sets, kept for `jwt-validation`. HTTPS only, verified against the machine's roots and
//! `[settings] oidc_ca_file`; each call has ALB's 5 seconds.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::{Method, Request, Uri, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::jwt::KeySet;
use super::key_sets::KeySets;
use super::{AuthFailure, Cognito, Login};

/// ALB gives each endpoint 5 seconds.
const TIMEOUT: Duration = Duration::from_secs(5);
/// More than any token response or claims ALB takes, and as much as a key set.
const MAX_BODY: usize = super::jwt::MAX_JWKS_BYTES;

/// What every authenticate action on this host shares: the HTTPS client towards providers
/// and Cognito's settings.
pub struct Providers {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    pub cognito: Option<Cognito>,
    key_sets: KeySets,
}

impl std::fmt::Debug for Providers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Providers")
            .field("cognito", &self.cognito.as_ref().map(|c| &c.endpoint))
            .finish_non_exhaustive()
    }
}

impl Providers {
    /// Trusting the machine's roots and the CA certificates of `extra_roots_pem`.
    pub fn new(
        extra_roots_pem: Option<&str>,
        cognito: Option<Cognito>,
    ) -> Result<Arc<Self>, String> {
        let config =
            elb_tls::client::provider_config(extra_roots_pem).map_err(|e| e.to_string())?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(TIMEOUT));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_only()
            .enable_http1()
            .wrap_connector(http);
        Ok(Arc::new(Self {
            client: Client::builder(TokioExecutor::new()).build(connector),
            cognito,
            key_sets: KeySets::default(),
        }))
    }

    /// The code for the tokens: the token endpoint's body, once it answers 200.
    pub async fn exchange(
        &self,
        login: &Login,
        code: &str,
        redirect_uri: &str,
    ) -> Result<Bytes, AuthFailure> {
        let grant = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
        ];
        self.token(login, &grant).await
    }

    /// A refresh token for new tokens (RFC 6749 6): the token endpoint's body, once it
    /// answers 200.
    pub async fn refresh(&self, login: &Login, refresh_token: &str) -> Result<Bytes, AuthFailure> {
        let grant = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ];
        self.token(login, &grant).await
    }

    async fn token(&self, login: &Login, grant: &[(&str, &str)]) -> Result<Bytes, AuthFailure> {
        let request = token_request(login, grant)?;
        let (status, body) = self.call(request).await.map_err(|e| match e {
            Call::Timeout => AuthFailure::TokenTimeout,
            Call::TooLarge => AuthFailure::TokenResponseTooLarge,
            Call::Failed(why) => AuthFailure::TokenConnection(why),
        })?;
        if status != 200 {
            let why = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
            return Err(AuthFailure::InvalidGrant(format!("{status}: {why}")));
        }
        Ok(body)
    }

    /// The user's claims, asked with the access token.
    pub async fn user_info(&self, login: &Login, access_token: &str) -> Result<Bytes, AuthFailure> {
        let request = Request::builder()
            .uri(login.user_info_endpoint.clone())
            .header(header::AUTHORIZATION, format!("Bearer {access_token}"))
            .header(header::ACCEPT, "application/json")
            .body(Full::default())
            .map_err(|e| AuthFailure::UserInfoConnection(e.to_string()))?;
        let (status, body) = self.call(request).await.map_err(|e| match e {
            Call::Timeout => AuthFailure::UserInfoTimeout,
            Call::TooLarge => AuthFailure::ClaimsTooLarge,
            Call::Failed(why) => AuthFailure::UserInfoConnection(why),
        })?;
        if status != 200 {
            return Err(AuthFailure::InvalidUserInfo(format!("status {status}")));
        }
        Ok(body)
    }

    /// The key set at `endpoint` (named `name`), kept or read now ([`KeySets::get`]).
    pub async fn key_set(
        &self,
        endpoint: &Uri,
        name: &str,
        lacking_key: bool,
    ) -> Result<Arc<KeySet>, AuthFailure> {
        let read = || self.read_key_set(endpoint);
        self.key_sets
            .get(name, lacking_key, read)
            .await
            .map_err(AuthFailure::KeySet)
    }

    async fn read_key_set(&self, endpoint: &Uri) -> Result<KeySet, String> {
        let request = Request::builder()
            .uri(endpoint.clone())
            .header(header::ACCEPT, "application/json")
            .body(Full::default())
            .map_err(|e| e.to_string())?;
        match self.call(request).await {
            Ok((200, body)) => KeySet::parse(&body),
            Ok((status, _)) => Err(format!("{endpoint} answered {status}")),
            Err(Call::Timeout) => Err(format!("{endpoint} did not answer in time")),
            Err(Call::TooLarge) => Err(format!("{endpoint}'s key set is too large")),
            Err(Call::Failed(why)) => Err(why),
        }
    }

    async fn call(&self, request: Request<Full<Bytes>>) -> Result<(u16, Bytes), Call> {
        let uri: Uri = request.uri().clone();
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| Call::Failed(format!("{uri}: {e}")))?;
            let status = response.status().as_u16();
            let body = Limited::new(response.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|e| match e.is::<http_body_util::LengthLimitError>() {
                    true => Call::TooLarge,
                    false => Call::Failed(format!("{uri}: {e}")),
                })?
                .to_bytes();
            Ok((status, body))
        };
        tokio::time::timeout(TIMEOUT, exchange)
            .await
            .unwrap_or(Err(Call::Timeout))
    }
}

/// The token request for `grant`, the client authenticated as the action has it.
fn token_request(
    login: &Login,
    grant: &[(&str, &str)],
) -> Result<Request<Full<Bytes>>, AuthFailure> {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.extend_pairs(grant);
    let mut request = Request::builder()
        .method(Method::POST)
        .uri(login.token_endpoint.clone())
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::ACCEPT, "application/json");
    match &login.client_secret {
        // client_secret_basic, which every provider takes (RFC 6749 2.3.1): each part
        // form-encoded first.
        Some(secret) => {
            let encode =
                |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            let basic = STANDARD.encode(format!("{}:{}", encode(&login.client_id), encode(secret)));
            request = request.header(header::AUTHORIZATION, format!("Basic {basic}"));
        }
        // A public client names itself.
        None => {
            form.append_pair("client_id", &login.client_id);
        }
    }
    let body = form.finish();
    request
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| AuthFailure::TokenConnection(e.to_string()))
}

enum Call {
    Timeout,
    /// A body over [`MAX_BODY`].
    TooLarge,
    Failed(String),
}
