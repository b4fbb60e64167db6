//! The AWS-compatible control plane: one HTTP endpoint that serves the elbv2 Query API, the
//! EC2 subset elbd models, the ACM subset (JSON) and IAM's server certificates, over the same
//! [`Store`] and [`Command`]s as the config file.
//!
//! A request travels: SigV4 scope (which service, which region) → [`Params`] (Query decoding)
//! or JSON (ACM) → an operation handler, which reads a snapshot or commits commands with
//! [`Store::update`] (whole or not at all) → XML or JSON. Every failure becomes an AWS error
//! document in one place, [`ApiError::render`].
//!
//! # Layout
//! - [`auth`]: SigV4 scope parsing and, with credentials configured, verification.
//! - [`query`]: the Query protocol's parameters; [`xml`]: its responses.
//! - [`elbv2`], [`ec2`], [`acm`], [`iam`]: the operations.
//! - [`mod@error`]: [`ApiError`] and its rendering.

pub mod acm;
pub mod auth;
mod clock;
pub mod cloudwatch;
pub mod ec2;
pub mod elbv2;
pub mod error;
pub mod iam;
pub mod query;
pub mod xml;

use std::sync::{Arc, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::collections::BTreeMap;

use elb_model::{Command, Context, ModelError, Outcome, Region, Scope, Topology};
use elb_store::{Snapshot, Store};
use tracing::{debug, error};

pub use auth::{Credentials, sign};
pub use error::ApiError;
pub use query::Params;
use xml::Xml;

/// The APIs the endpoint speaks, told apart by the SigV4 credential scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Elbv2,
    Ec2,
    Acm,
    Iam,
    /// CloudWatch's metrics; `json`: the JSON 1.0 protocol, else the Query protocol.
    CloudWatch {
        json: bool,
    },
}

/// What the endpoint serves every request from.
pub struct Api {
    pub store: Arc<Store>,
    pub credentials: Credentials,
    /// What the health checks find, for DescribeTargetHealth.
    pub health: tokio::sync::watch::Receiver<Arc<elb_model::HealthView>>,
    /// What anomaly detection finds, for DescribeTargetHealth's `Include`.
    pub anomalies: tokio::sync::watch::Receiver<Arc<elb_model::AnomalyView>>,
    /// Where `s3://BUCKET/KEY` is read from (`BUCKET/KEY` under it): elbd has no S3.
    pub s3_root: std::path::PathBuf,
    /// Where load balancer logs are put: the attribute change that turns them on puts a test
    /// file first, as AWS does.
    pub log_buckets: Arc<elb_logs::Buckets>,
    /// The account and DNS domain of every region (its `region` is the home region's name).
    pub home: Scope,
    /// Regions whose zones the config file names; any other opens on the loopback rule
    /// ([`Topology::loopback`]).
    pub topologies: BTreeMap<String, Topology>,
    /// The load balancers' metrics by the minute, for the CloudWatch API.
    pub metrics: Arc<std::sync::Mutex<elb_metrics::history::History>>,
}

/// One request: the [`Api`] and the region its signature is scoped to, which every handler
/// reads and changes alone.
pub struct ApiCall<'a> {
    pub api: &'a Api,
    /// The request's Query parameters (none for ACM's JSON): every one must have been read
    /// before anything commits, so that a request refused for one changes nothing.
    pub params: &'a Params,
    pub region: String,
    /// EC2's `DryRun=true`: changes are checked on a copy and answered `DryRunOperation`.
    pub dry_run: bool,
    /// `http://HOST` as the client reached the API, for URLs elbd hands out.
    pub endpoint: String,
}

impl std::ops::Deref for ApiCall<'_> {
    type Target = Api;

    fn deref(&self) -> &Api {
        self.api
    }
}

impl ApiCall<'_> {
    /// The latest snapshot, seen through this call's region.
    pub fn snapshot(&self) -> RegionSnapshot {
        RegionSnapshot {
            snapshot: self.api.store.snapshot(),
            region: self.region.clone(),
        }
    }

    /// [`Store::update`] on this call's region; with `dry_run`, the change runs on a copy
    /// and, if it would succeed, is answered `DryRunOperation`.
    pub fn update<T>(
        &self,
        mut change: impl FnMut(&mut Region, &mut Context<'_>) -> Result<T, ModelError>,
    ) -> Result<(RegionSnapshot, T), ApiError> {
        self.params.finish()?;
        let mut in_region = |state: &mut elb_model::State, cx: &mut Context<'_>| {
            state.in_region(&self.region, cx, &mut change)
        };
        if self.dry_run {
            self.api.store.try_update(&mut in_region)?;
            return Err(ApiError::dry_run());
        }
        let (snapshot, out) = self.api.store.update(in_region)?;
        let region = self.region.clone();
        Ok((RegionSnapshot { snapshot, region }, out))
    }

    /// What `change` would make of this call's region, once every parameter is read; nothing
    /// is committed.
    pub fn preview<T>(
        &self,
        change: impl FnOnce(&mut Region, &mut Context<'_>) -> Result<T, ModelError>,
    ) -> Result<T, ApiError> {
        self.params.finish()?;
        let region = &self.region;
        Ok(self
            .api
            .store
            .try_update(|state, cx| state.in_region(region, cx, change))?)
    }

    /// [`Store::update`] on the account (IAM, which is global), once every parameter is read.
    pub fn update_account<T>(
        &self,
        change: impl FnMut(&mut elb_model::State, &mut Context<'_>) -> Result<T, ModelError>,
    ) -> Result<(Arc<Snapshot>, T), ApiError> {
        self.params.finish()?;
        Ok(self.api.store.update(change)?)
    }

    /// Applies one command to this call's region.
    pub fn execute(&self, command: Command) -> Result<Outcome, ApiError> {
        self.update(|region, cx| region.apply(command.clone(), cx))
            .map(|(_, out)| out)
    }

    /// Opens the region on its first request, as AWS's regions exist before anyone calls them
    /// (its default VPC's ids must then stay what the first answer said).
    fn open_region(&self) -> Result<(), ApiError> {
        if self
            .api
            .store
            .snapshot()
            .state
            .regions
            .contains_key(&self.region)
        {
            return Ok(());
        }
        let scope = Scope {
            region: self.region.clone(),
            ..self.api.home.clone()
        };
        let configured = &self.api.topologies;
        self.api
            .store
            .update(|state, cx| state.open_region(&scope, configured, cx))?;
        Ok(())
    }
}

/// A snapshot and the region a call reads in it.
pub struct RegionSnapshot {
    snapshot: Arc<Snapshot>,
    region: String,
}

impl RegionSnapshot {
    /// The call's region, which [`ApiCall`] opened before any handler ran (so this does not
    /// panic for a snapshot an `ApiCall` made).
    pub fn state(&self) -> &Region {
        &self.snapshot.state.regions[&self.region]
    }

    /// The installation's secrets, shared by every region.
    pub fn secrets(&self) -> &elb_model::Secrets {
        &self.snapshot.state.secrets
    }
}

/// The API as an axum router (`POST /`), to serve on `--api-listen` or to call in tests.
pub fn router(api: Arc<Api>) -> Router {
    Router::new()
        .route("/", post(handle))
        .route("/elbd/ca.pem", get(ca_certificate))
        .route("/elbd/public-keys/{kid}", get(claims_public_key))
        .route("/elbd/trust-store-content", get(trust_store_content))
        // The body is read, with its own limit, in `handle`, so that a large one still gets an
        // AWS error document.
        .layer(DefaultBodyLimit::disable())
        .with_state(api)
}

async fn handle(
    State(api): State<Arc<Api>>,
    method: Method,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let request_id = request_id();
    // Before the scope is read, the request's own form tells which error format it expects.
    let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok());
    let form = match target {
        Some(t) if t.starts_with(cloudwatch::TARGET_PREFIX) => Service::CloudWatch { json: true },
        Some(_) => Service::Acm,
        None => Service::Elbv2,
    };
    let service = match service_of(&headers) {
        Ok(Service::CloudWatch { .. }) => Service::CloudWatch {
            json: form == (Service::CloudWatch { json: true }),
        },
        Ok(service) => service,
        Err(e) => return e.render(form, &request_id),
    };
    let json_form = matches!(form, Service::Acm | Service::CloudWatch { json: true });
    let json_service = matches!(service, Service::Acm | Service::CloudWatch { json: true });
    if json_form != json_service || (json_form && service != form) {
        let e = ApiError::new(
            400,
            "InvalidAction",
            "ACM requests are JSON with X-Amz-Target; elbv2 and EC2 requests are Query forms",
        );
        return e.render(form, &request_id);
    }
    let Ok(body) = axum::body::to_bytes(body, query::MAX_BODY).await else {
        let e = ApiError::malformed(format!(
            "the request body is larger than {} bytes",
            query::MAX_BODY
        ));
        return e.render(service, &request_id);
    };
    let id = request_id.clone();
    let call = tokio::task::spawn_blocking(move || {
        call(&api, service, method.as_str(), &headers, &body, &id)
    });
    let result = call.await.unwrap_or_else(|e| {
        error!(error = %e, "API handler panicked");
        Err(ApiError::internal("elbd failed to process the request"))
    });
    match result {
        Ok(response) => response,
        Err(e) => {
            debug!(code = %e.code, message = %e.message, "API error");
            e.render(service, &request_id)
        }
    }
}

/// Which API a request is for, from its credential scope (checked later, with the body).
fn service_of(headers: &HeaderMap) -> Result<Service, ApiError> {
    let scope = Credentials::default().authenticate("POST", headers, b"", 0)?;
    match scope.service.as_str() {
        "elasticloadbalancing" => Ok(Service::Elbv2),
        "ec2" => Ok(Service::Ec2),
        "acm" => Ok(Service::Acm),
        "iam" => Ok(Service::Iam),
        "monitoring" => Ok(Service::CloudWatch { json: false }),
        other => Err(ApiError::new(
            400,
            "InvalidAction",
            format!(
                "The service '{other}' is not offered by elbd; it serves elasticloadbalancing, \
                 ec2, acm, iam (server certificates) and monitoring (load balancer metrics)"
            ),
        )),
    }
}

/// Blocking: authenticates, decodes and runs one operation.
fn call(
    api: &Api,
    service: Service,
    method: &str,
    headers: &HeaderMap,
    body: &[u8],
    request_id: &str,
) -> Result<Response, ApiError> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let scope = api.credentials.authenticate(method, headers, body, now)?;
    if !elb_model::names::is_region_name(&scope.region) {
        return Err(ApiError::new(
            403,
            "SignatureDoesNotMatch",
            format!(
                "Credential should be scoped to a valid region, not '{}'",
                scope.region
            ),
        ));
    }
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    if service == (Service::CloudWatch { json: true }) {
        let operation = headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .and_then(|t| t.strip_prefix(cloudwatch::TARGET_PREFIX))
            .unwrap_or("");
        let answer = {
            let history = api.metrics.lock().unwrap_or_else(PoisonError::into_inner);
            cloudwatch::call_json(&history, operation, body)?
        };
        return Ok((
            [
                ("content-type", "application/x-amz-json-1.0"),
                ("x-amzn-requestid", request_id),
            ],
            answer.to_string(),
        )
            .into_response());
    }
    let params = if service == Service::Acm {
        Params::default()
    } else {
        Params::decode(body)?
    };
    let api = &ApiCall {
        api,
        params: &params,
        region: scope.region,
        dry_run: false,
        endpoint: format!("http://{host}"),
    };
    if service == Service::Acm {
        api.open_region()?;
        return acm_call(api, headers, body, request_id);
    }
    let action = params
        .optional("Action")
        .ok_or_else(|| {
            ApiError::new(
                400,
                "MissingAction",
                "The request must contain the parameter Action",
            )
        })?
        .to_owned();
    // IAM is global, and metrics are the host's: their requests touch no region.
    if !matches!(service, Service::Iam | Service::CloudWatch { .. }) {
        api.open_region()?;
    }
    let (namespace, result) = match service {
        Service::Elbv2 => (elbv2::NAMESPACE, elbv2::call(api, &action, &params)?),
        Service::Ec2 => (ec2::NAMESPACE, ec2::call(api, &action, &params)?),
        Service::Iam => (iam::NAMESPACE, iam::call(api, &action, &params)?),
        Service::CloudWatch { .. } => {
            let history = api.metrics.lock().unwrap_or_else(PoisonError::into_inner);
            (
                cloudwatch::NAMESPACE,
                cloudwatch::call_query(&history, &action, &params)?,
            )
        }
        Service::Acm => unreachable!("answered above"),
    };
    params.finish()?;
    let mut x = Xml::new();
    x.open_ns(&format!("{action}Response"), namespace);
    match service {
        Service::Elbv2 | Service::Iam | Service::CloudWatch { .. } => {
            x.node(&format!("{action}Result"), |x| x.append(result));
            x.node("ResponseMetadata", |x| {
                x.leaf("RequestId", request_id);
            });
        }
        Service::Ec2 | Service::Acm => {
            x.leaf("requestId", request_id);
            x.append(result);
        }
    }
    x.close(&format!("{action}Response"));
    Ok((
        [
            ("content-type", "text/xml"),
            ("x-amzn-requestid", request_id),
        ],
        x.into_string(),
    )
        .into_response())
}

/// One ACM operation: `X-Amz-Target: CertificateManager.<Op>`, a JSON body, a JSON answer.
fn acm_call(
    api: &ApiCall<'_>,
    headers: &HeaderMap,
    body: &[u8],
    request_id: &str,
) -> Result<Response, ApiError> {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let operation = target.strip_prefix("CertificateManager.").ok_or_else(|| {
        ApiError::new(
            400,
            "UnknownOperationException",
            format!("X-Amz-Target '{target}' is not a CertificateManager operation"),
        )
    })?;
    let answer = acm::call(api, operation, body)?;
    Ok((
        [
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amzn-requestid", request_id),
        ],
        answer.to_string(),
    )
        .into_response())
}

/// `GET /elbd/ca.pem`: the certificate of the CA that RequestCertificate issues from, for
/// clients to trust. It is public; no signature is asked.
async fn ca_certificate(State(api): State<Arc<Api>>) -> Response {
    let pem = api
        .store
        .snapshot()
        .state
        .secrets
        .ca_certificate_pem
        .clone();
    if pem.is_empty() {
        return (axum::http::StatusCode::NOT_FOUND, "no local CA yet\n").into_response();
    }
    ([("content-type", "application/x-pem-file")], pem).into_response()
}

/// `GET /elbd/public-keys/KID`: the public key (PEM) that verifies the `x-amzn-oidc-data`
/// JWTs whose `kid` is KID, as ALB publishes its keys. Public, as ALB's are.
async fn claims_public_key(State(api): State<Arc<Api>>, Path(kid): Path<String>) -> Response {
    let pem = api.store.snapshot().state.secrets.claims_key_pem.clone();
    match elb_tls::claims_key::ClaimsKey::from_pem(&pem) {
        Ok(key) if key.id() == kid => (
            [("content-type", "application/x-pem-file")],
            key.public_pem().to_owned(),
        )
            .into_response(),
        _ => (axum::http::StatusCode::NOT_FOUND, "no such key\n").into_response(),
    }
}

/// `GET /elbd/trust-store-content?arn=ARN[&revocation=ID]`: a trust store's CA bundle or one
/// of its revocation lists, where GetTrustStoreCaCertificatesBundle and
/// GetTrustStoreRevocationContent point (AWS points to S3). Certificates and CRLs are public;
/// no signature is asked.
async fn trust_store_content(State(api): State<Arc<Api>>, uri: axum::http::Uri) -> Response {
    let query: BTreeMap<String, String> =
        form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let revocation = match query.get("revocation").map(|id| id.parse::<u64>()) {
        None => None,
        Some(Ok(id)) => Some(id),
        Some(Err(_)) => {
            return (
                axum::http::StatusCode::BAD_REQUEST,
                "revocation: not a number\n",
            )
                .into_response();
        }
    };
    let arn = query.get("arn").map_or("", String::as_str);
    match elbv2::trust_store_content(&api.store.snapshot().state, arn, revocation) {
        Some(pem) => ([("content-type", "application/x-pem-file")], pem).into_response(),
        None => (
            axum::http::StatusCode::NOT_FOUND,
            "no such trust store content\n",
        )
            .into_response(),
    }
}

/// A request id in AWS's UUID form.
fn request_id() -> String {
    elb_model::id::uuid_text(fastrand::u128(..))
}
