//! Trust stores: CA bundles for mutual TLS. AWS reads bundles from S3; elbd has no S3 and
//! reads `s3://BUCKET/KEY` from `<data dir>/s3/BUCKET/KEY` instead.

use elb_model::{Command, Origin, Region, TrustStore};

use super::{create_then, page, tag_params, tagging};
use crate::ApiCall;
use crate::error::ApiError;
use crate::query::Params;
use crate::xml::Xml;

/// The bundle named by `CaCertificatesBundleS3Bucket`/`Key`, checked, with its CA count.
fn bundle(api: &ApiCall<'_>, params: &Params) -> Result<(String, usize), ApiError> {
    let bucket = params.required("CaCertificatesBundleS3Bucket")?;
    let key = params.required("CaCertificatesBundleS3Key")?;
    if params
        .optional("CaCertificatesBundleS3ObjectVersion")
        .is_some()
    {
        return Err(ApiError::validation(
            "elbd's local S3 stand-in has no object versions",
        ));
    }
    let not_found = || {
        ApiError::new(
            400,
            "CaCertificatesBundleNotFound",
            format!(
                "No CA bundle at s3://{bucket}/{key} (elbd reads it from {}/{bucket}/{key})",
                api.s3_root.display()
            ),
        )
    };
    let safe = |part: &str| !part.is_empty() && part.split('/').all(|p| p != ".." && p != ".");
    if !safe(bucket) || !safe(key) || bucket.contains('/') {
        return Err(not_found());
    }
    let pem =
        std::fs::read_to_string(api.s3_root.join(bucket).join(key)).map_err(|_| not_found())?;
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
        .leaf("TotalRevokedEntries", "0");
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
