//! Trust stores: CA bundles for mutual TLS. AWS reads bundles from S3; elbd has no S3 and
//! reads `s3://BUCKET/KEY` from `<data dir>/s3/BUCKET/KEY` instead.

use elb_model::trust_store::Revocation;
use elb_model::{Command, Origin, Outcome, Region, TrustStore};

use super::{create_then, page, tag_params, tagging};
use crate::ApiCall;
use crate::error::ApiError;
use crate::query::Params;
use crate::xml::Xml;

/// The object `s3://bucket/key` (of `version`, when given) from elbd's S3 stand-in; `None`
/// when there is none.
fn s3_object(api: &ApiCall<'_>, bucket: &str, key: &str, version: Option<&str>) -> Option<Vec<u8>> {
    // The stand-in's buckets are unversioned: their objects' one version is `null`, as S3
    // names it; any other is not there.
    if version.is_some_and(|id| id != "null") {
        return None;
    }
    // Only plain names below the stand-in's root: no absolute key (which `join` would take
    // as the whole path), no `.` or `..`.
    let plain = |part: &str| {
        let path = std::path::Path::new(part);
        !part.is_empty()
            && path
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)))
    };
    if !plain(bucket) || !plain(key) || bucket.contains('/') {
        return None;
    }
    std::fs::read(api.s3_root.join(bucket).join(key)).ok()
}

/// Where elbd reads `s3://bucket/key` (of `version`) from, for messages.
fn stand_in(api: &ApiCall<'_>, bucket: &str, key: &str, version: Option<&str>) -> String {
    let version = match version {
        Some(v) if v != "null" => format!(", version '{v}': its one version is 'null'"),
        _ => String::new(),
    };
    format!(
        "s3://{bucket}/{key} (elbd reads it from {}/{bucket}/{key}{version})",
        api.s3_root.display()
    )
}

/// The bundle named by `CaCertificatesBundleS3Bucket`/`Key`, checked, with its CA count.
fn bundle(api: &ApiCall<'_>, params: &Params) -> Result<(String, usize), ApiError> {
    let bucket = params.required("CaCertificatesBundleS3Bucket")?;
    let key = params.required("CaCertificatesBundleS3Key")?;
    let version = params.optional("CaCertificatesBundleS3ObjectVersion");
    let not_found = || {
        ApiError::new(
            400,
            "CaCertificatesBundleNotFound",
            format!("No CA bundle at {}", stand_in(api, bucket, key, version)),
        )
    };
    let bytes = s3_object(api, bucket, key, version).ok_or_else(not_found)?;
    let pem = String::from_utf8(bytes).map_err(|_| {
        ApiError::new(
            400,
            "InvalidCaCertificatesBundle",
            "The CA bundle is not PEM text",
        )
    })?;
    let count = elb_tls::mtls::read_bundle(&pem)
        .map_err(|e| ApiError::new(400, "InvalidCaCertificatesBundle", e.0))?
        .len();
    Ok((pem, count))
}

fn render(x: &mut Xml, t: &TrustStore) {
    x.leaf("Name", &t.name)
        .leaf("TrustStoreArn", &t.arn)
        .leaf("Status", "ACTIVE")
        .leaf("NumberOfCaCertificates", t.ca_certificates.to_string())
        .leaf("TotalRevokedEntries", t.revoked_entries().to_string());
}

fn only(state: &Region, arn: &str) -> Xml {
    let mut x = Xml::new();
    x.members("TrustStores", [&state.trust_stores[arn]], render);
    x
}

fn trust_store<'a>(state: &'a Region, arn: &str) -> Result<&'a TrustStore, ApiError> {
    state.trust_stores.get(arn).ok_or_else(|| {
        ApiError::new(
            400,
            "TrustStoreNotFound",
            format!("Trust store '{arn}' not found"),
        )
    })
}

pub(super) fn create(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    let name = params.required("Name")?.to_owned();
    let (ca_bundle_pem, ca_certificates) = bundle(api, params)?;
    let tags = tag_params(params)?;
    let create = Command::CreateTrustStore {
        name,
        ca_bundle_pem,
        ca_certificates,
        origin: Origin::Api,
    };
    let (snapshot, arn) =
        create_then(api, create, |arn| tagging(arn, &tags).into_iter().collect())?;
    Ok(only(snapshot.state(), &arn))
}

pub(super) fn modify(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    let arn = params.required("TrustStoreArn")?.to_owned();
    let (ca_bundle_pem, ca_certificates) = bundle(api, params)?;
    // The revocation lists must still verify under the new bundle, or handshakes would refuse
    // every client of their CAs.
    for r in &trust_store(api.snapshot().state(), &arn)?.revocations {
        elb_tls::mtls::read_crl(r.crl_pem.as_bytes(), &ca_bundle_pem).map_err(|e| {
            ApiError::new(
                400,
                "InvalidCaCertificatesBundle",
                format!("Revocation list {} would no longer apply: {}", r.id, e.0),
            )
        })?;
    }
    let command = Command::ModifyTrustStore {
        arn: arn.clone(),
        ca_bundle_pem,
        ca_certificates,
    };
    let (snapshot, _) = api.update(|state, cx| state.apply(command.clone(), cx))?;
    Ok(only(snapshot.state(), &arn))
}

pub(super) fn delete(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    let arn = params.required("TrustStoreArn")?.to_owned();
    api.execute(Command::DeleteTrustStore { arn })?;
    Ok(Xml::new())
}

pub(super) fn describe(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    let arns = params.list("TrustStoreArns.member")?;
    let names = params.list("Names.member")?;
    let snapshot = api.snapshot();
    let state = snapshot.state();
    for arn in &arns {
        trust_store(state, arn)?;
    }
    if let Some(missing) = names
        .iter()
        .find(|n| !state.trust_stores.values().any(|t| &t.name == *n))
    {
        return Err(ApiError::new(
            400,
            "TrustStoreNotFound",
            format!("Trust store '{missing}' not found"),
        ));
    }
    let found: Vec<&TrustStore> = state
        .trust_stores
        .values()
        .filter(|t| arns.is_empty() || arns.contains(&t.arn))
        .filter(|t| names.is_empty() || names.contains(&t.name))
        .collect();
    let (found, next) = page(params, found, |t| &t.arn)?;
    let mut x = Xml::new();
    x.members("TrustStores", found, render);
    if let Some(next) = next {
        x.leaf("NextMarker", next);
    }
    Ok(x)
}

/// The load balancers whose listeners verify clients with the trust store.
pub(super) fn describe_associations(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    let arn = params.required("TrustStoreArn")?;
    let snapshot = api.snapshot();
    let state = snapshot.state();
    trust_store(state, arn)?;
    let mut resources: Vec<&str> = state
        .trust_store_users(arn)
        .map(|l| state.listeners[l].load_balancer_arn.as_str())
        .collect();
    resources.sort_unstable();
    resources.dedup();
    let (resources, next) = page(params, resources, |r| r)?;
    let mut x = Xml::new();
    x.members("TrustStoreAssociations", resources, |x, r| {
        x.leaf("ResourceArn", r);
    });
    if let Some(next) = next {
        x.leaf("NextMarker", next);
    }
    Ok(x)
}

/// `RevocationContents.member.N`: CRLs (PEM or DER) from elbd's S3 stand-in.
pub(super) fn add_revocations(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    let arn = params.required("TrustStoreArn")?.to_owned();
    let bundle = trust_store(api.snapshot().state(), &arn)?
        .ca_bundle_pem
        .clone();
    let mut crls = Vec::new();
    for content in params.structs("RevocationContents.member")? {
        content.one_of("RevocationType", &["CRL"])?;
        let bucket = content.required("S3Bucket")?;
        let key = content.required("S3Key")?;
        let version = content.optional("S3ObjectVersion");
        let bytes = s3_object(api, bucket, key, version).ok_or_else(|| {
            ApiError::new(
                400,
                "RevocationContentNotFound",
                format!(
                    "No revocation file at {}",
                    stand_in(api, bucket, key, version)
                ),
            )
        })?;
        let crl = elb_tls::mtls::read_crl(&bytes, &bundle)
            .map_err(|e| ApiError::new(400, "InvalidRevocationContent", e.0))?;
        content.finish()?;
        crls.push(Revocation {
            id: 0,
            crl_pem: crl.pem,
            revoked_entries: crl.revoked,
            issuer: crl.issuer,
        });
    }
    let command = Command::AddTrustStoreRevocations {
        arn: arn.clone(),
        crls,
    };
    let (snapshot, outcome) = api.update(|state, cx| state.apply(command.clone(), cx))?;
    let Outcome::CreatedAll(ids) = outcome else {
        return Err(ApiError::internal("AddTrustStoreRevocations added nothing"));
    };
    let store = &snapshot.state().trust_stores[&arn];
    let added = store
        .revocations
        .iter()
        .filter(|r| ids.contains(&r.id.to_string()));
    let mut x = Xml::new();
    x.members("TrustStoreRevocations", added, |x, r| {
        revocation(x, store, r)
    });
    Ok(x)
}

fn revocation(x: &mut Xml, store: &TrustStore, r: &Revocation) {
    x.leaf("TrustStoreArn", &store.arn)
        .leaf("RevocationId", r.id.to_string())
        .leaf("RevocationType", "CRL")
        .leaf("NumberOfRevokedEntries", r.revoked_entries.to_string());
}

/// `RevocationIds.member.N`, as numbers.
fn revocation_ids(params: &Params) -> Result<Vec<u64>, ApiError> {
    params
        .list("RevocationIds.member")?
        .iter()
        .map(|id| {
            id.parse()
                .map_err(|_| ApiError::validation(format!("Revocation ID '{id}' is not a number")))
        })
        .collect()
}

pub(super) fn remove_revocations(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    let arn = params.required("TrustStoreArn")?.to_owned();
    let ids = revocation_ids(params)?;
    if ids.is_empty() {
        return Err(ApiError::missing("RevocationIds"));
    }
    api.execute(Command::RemoveTrustStoreRevocations { arn, ids })?;
    Ok(Xml::new())
}

pub(super) fn describe_revocations(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    let arn = params.required("TrustStoreArn")?;
    let ids = revocation_ids(params)?;
    let snapshot = api.snapshot();
    let store = trust_store(snapshot.state(), arn)?;
    for id in &ids {
        store.revocation(*id)?;
    }
    let found: Vec<&Revocation> = store
        .revocations
        .iter()
        .filter(|r| ids.is_empty() || ids.contains(&r.id))
        .collect();
    let keys: Vec<String> = found.iter().map(|r| r.id.to_string()).collect();
    let (found, next) = page(params, found.into_iter().zip(&keys).collect(), |(_, k)| k)?;
    let mut x = Xml::new();
    x.members("TrustStoreRevocations", found, |x, (r, _)| {
        revocation(x, store, r)
    });
    if let Some(next) = next {
        x.leaf("NextMarker", next);
    }
    Ok(x)
}

/// Where the trust store's CA bundle can be fetched: elbd serves it at
/// `/elbd/trust-store-content` (AWS answers with a pre-signed S3 URL).
pub(super) fn get_ca_bundle(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    let arn = params.required("TrustStoreArn")?;
    trust_store(api.snapshot().state(), arn)?;
    let mut x = Xml::new();
    x.leaf("Location", content_location(api, arn, None));
    Ok(x)
}

pub(super) fn get_revocation_content(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    let arn = params.required("TrustStoreArn")?;
    let id = params
        .int("RevocationId", 0, i64::MAX)?
        .ok_or_else(|| ApiError::missing("RevocationId"))? as u64;
    trust_store(api.snapshot().state(), arn)?.revocation(id)?;
    let mut x = Xml::new();
    x.leaf("Location", content_location(api, arn, Some(id)));
    Ok(x)
}

fn content_location(api: &ApiCall<'_>, arn: &str, revocation: Option<u64>) -> String {
    let mut url = format!("{}/elbd/trust-store-content?", api.endpoint);
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair("arn", arn);
    if let Some(id) = revocation {
        query.append_pair("revocation", &id.to_string());
    }
    url.push_str(&query.finish());
    url
}

/// The content `/elbd/trust-store-content` serves: the bundle, or one revocation list, as PEM.
pub fn content(state: &elb_model::State, arn: &str, revocation: Option<u64>) -> Option<String> {
    let region = arn.split(':').nth(3)?;
    let store = state.region(region)?.trust_stores.get(arn)?;
    match revocation {
        None => Some(store.ca_bundle_pem.clone()),
        Some(id) => Some(store.revocation(id).ok()?.crl_pem.clone()),
    }
}

/// Sharing trust stores across accounts is not built, so an association to delete is never a
/// shared one: an own load balancer's is refused as AWS refuses it, any other is not found.
pub(super) fn delete_shared_association(
    api: &ApiCall<'_>,
    params: &Params,
) -> Result<Xml, ApiError> {
    let arn = params.required("TrustStoreArn")?;
    let resource = params.required("ResourceArn")?;
    let snapshot = api.snapshot();
    let state = snapshot.state();
    trust_store(state, arn)?;
    if state.load_balancers.contains_key(resource) {
        return Err(ApiError::new(
            400,
            "DeleteAssociationSameAccount",
            format!(
                "'{resource}' is in the trust store's own account; remove the trust store from \
                 its listeners with ModifyListener"
            ),
        ));
    }
    Err(ApiError::new(
        400,
        "AssociationNotFound",
        format!("Trust store '{arn}' has no shared association with '{resource}'"),
    ))
}
