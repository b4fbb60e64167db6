//! The IAM subset: server certificates (Upload, Get, List, Delete), which HTTPS listeners may
//! present by their `arn:aws:iam::ACCOUNT:server-certificate/…` ARN, as AWS allows. IAM is
//! global: the certificates are the account's, whatever region a request is signed for.

use elb_model::ServerCertificate;
use elb_model::state::UploadServerCertificate;

use crate::ApiCall;
use crate::clock;
use crate::error::ApiError;
use crate::query::Params;
use crate::xml::Xml;

pub const NAMESPACE: &str = "https://iam.amazonaws.com/doc/2010-05-08/";
const VERSION: &str = "2010-05-08";

/// Runs `action` and returns the content of its `<{Action}Result>`.
pub fn call(api: &ApiCall<'_>, action: &str, params: &Params) -> Result<Xml, ApiError> {
    params.version("IAM", VERSION)?;
    match action {
        "UploadServerCertificate" => upload(api, params),
        "GetServerCertificate" => get(api, params),
        "ListServerCertificates" => list(api, params),
        "DeleteServerCertificate" => {
            let name = params.required("ServerCertificateName")?.to_owned();
            api.update_account(|state, _| state.delete_server_certificate(&name))
                .map_err(in_iam_terms)?;
            Ok(Xml::new())
        }
        other => Err(ApiError::new(
            400,
            "InvalidAction",
            format!(
                "elbd's IAM serves server certificates only; {other} is not one of its operations"
            ),
        )),
    }
}

/// IAM answers a missing entity with 404 and a conflict with 409.
fn in_iam_terms(e: ApiError) -> ApiError {
    let status = match e.code.as_str() {
        "NoSuchEntity" => 404,
        "EntityAlreadyExists" | "DeleteConflict" => 409,
        _ => e.status,
    };
    ApiError { status, ..e }
}

fn upload(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    let name = params.required("ServerCertificateName")?.to_owned();
    let body = params.required("CertificateBody")?;
    let key = params.required("PrivateKey")?;
    let chain = params.optional("CertificateChain").unwrap_or("");
    let path = params.optional("Path").unwrap_or("/").to_owned();
    let tags = params.key_values("Tags.member")?;
    let material = elb_tls::material::read(body, key, chain).map_err(|e| {
        let code = if e.0.contains("does not fit") {
            "KeyPairMismatch"
        } else {
            "MalformedCertificate"
        };
        ApiError::new(400, code, e.0)
    })?;
    let upload = UploadServerCertificate {
        home: api.home.clone(),
        name,
        path,
        material,
        tags,
    };
    let (snapshot, arn) = api
        .update_account(|state, cx| state.upload_server_certificate(upload.clone(), cx))
        .map_err(in_iam_terms)?;
    let server = &snapshot.state.server_certificates[&arn];
    let mut x = Xml::new();
    x.node("ServerCertificateMetadata", |x| metadata(x, server));
    tags_of(&mut x, server);
    Ok(x)
}

fn get(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    let name = params.required("ServerCertificateName")?;
    let snapshot = api.api.store.snapshot();
    let server = snapshot
        .state
        .server_certificate(name)
        .map_err(|e| in_iam_terms(e.into()))?;
    let m = &server.certificate.material;
    let mut x = Xml::new();
    x.node("ServerCertificate", |x| {
        x.node("ServerCertificateMetadata", |x| metadata(x, server))
            .leaf("CertificateBody", &m.certificate_pem);
        if !m.chain_pem.is_empty() {
            x.leaf("CertificateChain", &m.chain_pem);
        }
        tags_of(x, server);
    });
    Ok(x)
}

/// In name order, from `Marker` (a name) on, at most `MaxItems` (1–1000, default 100).
fn list(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    let prefix = params.optional("PathPrefix").unwrap_or("/");
    let size = params.int("MaxItems", 1, 1000)?.unwrap_or(100) as usize;
    let marker = params.optional("Marker");
    let snapshot = api.api.store.snapshot();
    let mut found: Vec<&ServerCertificate> = snapshot
        .state
        .server_certificates
        .values()
        .filter(|s| s.path.starts_with(prefix))
        .filter(|s| marker.is_none_or(|m| s.name.as_str() >= m))
        .collect();
    found.sort_by(|a, b| a.name.cmp(&b.name));
    let next = found.get(size).map(|s| s.name.clone());
    found.truncate(size);
    let mut x = Xml::new();
    x.members("ServerCertificateMetadataList", found, metadata);
    x.leaf("IsTruncated", next.is_some().to_string());
    if let Some(next) = next {
        x.leaf("Marker", next);
    }
    Ok(x)
}

fn metadata(x: &mut Xml, s: &ServerCertificate) {
    x.leaf("Path", &s.path)
        .leaf("ServerCertificateName", &s.name)
        .leaf("ServerCertificateId", &s.id)
        .leaf("Arn", &s.certificate.arn)
        .leaf("UploadDate", clock::iso8601(s.certificate.created_ms))
        .leaf(
            "Expiration",
            clock::iso8601(s.certificate.material.not_after_ms),
        );
}

fn tags_of(x: &mut Xml, s: &ServerCertificate) {
    if !s.certificate.tags.is_empty() {
        x.members("Tags", &s.certificate.tags, |x, (k, v)| {
            x.leaf("Key", k).leaf("Value", v);
        });
    }
}
