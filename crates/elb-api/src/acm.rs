//! The ACM subset (JSON 1.1 protocol, `X-Amz-Target: CertificateManager.<Op>`): import,
//! request (issued at once by elbd's local CA), describe, list, get, delete, tags, options,
//! export, renew, revoke and the account's expiry-event setting.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use elb_model::state::ImportCertificate;
use elb_model::{
    Certificate, CertificateKind, CertificateOptions, Command, ErrorCode, ModelError, Origin,
    Region, Validation,
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::ApiCall;
use crate::error::ApiError;

/// RevokeCertificate's reasons.
const REVOCATION_REASONS: &[&str] = &[
    "UNSPECIFIED",
    "KEY_COMPROMISE",
    "CA_COMPROMISE",
    "AFFILIATION_CHANGED",
    "SUPERSEDED",
    "CESSATION_OF_OPERATION",
    "CERTIFICATE_HOLD",
    "REMOVE_FROM_CRL",
    "PRIVILEGE_WITHDRAWN",
    "A_A_COMPROMISE",
];

/// The key types ListCertificates shows when the request names none. AWS shows RSA only;
/// elbd issues EC_prime256v1 keys, so those are shown too.
const DEFAULT_KEY_TYPES: &[&str] = &["RSA_1024", "RSA_2048", "EC_prime256v1"];

pub fn call(api: &ApiCall<'_>, operation: &str, body: &[u8]) -> Result<Value, ApiError> {
    let input = if body.is_empty() { b"{}" } else { body };
    dispatch(api, operation, input).map_err(|e| in_acm_terms(e, api.snapshot().state()))
}

fn dispatch(api: &ApiCall<'_>, operation: &str, input: &[u8]) -> Result<Value, ApiError> {
    match operation {
        "ImportCertificate" => import(api, parse(input)?),
        "RequestCertificate" => request(api, parse(input)?),
        "DescribeCertificate" => describe(api, &parse::<ArnInput>(input)?),
        "ListCertificates" => list(api, parse(input)?),
        "GetCertificate" => get(api, &parse::<ArnInput>(input)?),
        "DeleteCertificate" => {
            let input: ArnInput = parse(input)?;
            api.execute(Command::DeleteCertificate {
                arn: input.certificate_arn,
            })?;
            Ok(json!({}))
        }
        "AddTagsToCertificate" => {
            let input: TagsInput = parse(input)?;
            let tags = input
                .tags
                .into_iter()
                .map(|t| (t.key, t.value.unwrap_or_default()));
            api.execute(Command::AddTags {
                arns: vec![input.certificate_arn],
                tags: tags.collect(),
            })?;
            Ok(json!({}))
        }
        "RemoveTagsFromCertificate" => remove_tags(api, parse(input)?),
        "ListTagsForCertificate" => {
            let input: ArnInput = parse(input)?;
            let snapshot = api.snapshot();
            let tags = snapshot.state().tags(&input.certificate_arn)?;
            let tags: Vec<Value> = tags
                .iter()
                .map(|(k, v)| json!({"Key": k, "Value": v}))
                .collect();
            Ok(json!({ "Tags": tags }))
        }
        "UpdateCertificateOptions" => {
            let input: UpdateOptionsInput = parse(input)?;
            let (transparency_logging, export) = input.options.switches()?;
            api.execute(Command::UpdateCertificateOptions {
                arn: input.certificate_arn,
                transparency_logging,
                export,
            })?;
            Ok(json!({}))
        }
        "ExportCertificate" => export(api, parse(input)?),
        "RenewCertificate" => renew(api, &parse::<ArnInput>(input)?),
        "RevokeCertificate" => {
            let input: RevokeInput = parse(input)?;
            if !REVOCATION_REASONS.contains(&input.revocation_reason.as_str()) {
                return Err(ApiError::new(
                    400,
                    "ValidationException",
                    format!(
                        "RevocationReason '{}' is not one of {}",
                        input.revocation_reason,
                        REVOCATION_REASONS.join(", ")
                    ),
                ));
            }
            let arn = input.certificate_arn;
            api.execute(Command::RevokeCertificate {
                arn: arn.clone(),
                reason: input.revocation_reason,
            })?;
            Ok(json!({ "CertificateArn": arn }))
        }
        "ResendValidationEmail" => {
            let input: ResendInput = parse(input)?;
            let snapshot = api.snapshot();
            let c = certificate(snapshot.state(), &input.certificate_arn)?;
            let _ = (&input.domain, &input.validation_domain);
            Err(ApiError::new(
                400,
                "InvalidStateException",
                format!(
                    "Certificate {} is {}; validation emails are sent only while a certificate \
                     is PENDING_VALIDATION",
                    c.arn,
                    status(c)
                ),
            ))
        }
        "GetAccountConfiguration" => {
            parse::<serde_json::Map<String, Value>>(input)?
                .is_empty()
                .then_some(())
                .ok_or_else(|| {
                    ApiError::new(
                        400,
                        "SerializationException",
                        "GetAccountConfiguration takes no input",
                    )
                })?;
            let days = api.snapshot().state().acm_expiry_days.unwrap_or(45);
            Ok(json!({ "ExpiryEvents": { "DaysBeforeExpiry": days } }))
        }
        "PutAccountConfiguration" => {
            let input: PutConfigurationInput = parse(input)?;
            let _ = input.idempotency_token;
            if let Some(days) = input.expiry_events.and_then(|e| e.days_before_expiry) {
                if !(1..=45).contains(&days) {
                    return Err(ApiError::new(
                        400,
                        "ValidationException",
                        format!("DaysBeforeExpiry {days} is not between 1 and 45"),
                    ));
                }
                api.execute(Command::PutAcmExpiryDays { days: days as u16 })?;
            }
            Ok(json!({}))
        }
        unknown => Err(ApiError::new(
            400,
            "UnknownOperationException",
            format!("elbd's ACM has no operation {unknown}"),
        )),
    }
}

/// The model speaks elbv2's codes; ACM has its own names and messages for the same errors.
fn in_acm_terms(e: ApiError, state: &Region) -> ApiError {
    let account = &state.scope.account;
    let arn_in = |m: &str| m.split('\'').nth(1).unwrap_or("").to_owned();
    match e.code.as_str() {
        "CertificateNotFound" => ApiError::new(
            400,
            "ResourceNotFoundException",
            format!(
                "Could not find certificate {} in account {account}.",
                arn_in(&e.message)
            ),
        ),
        "ResourceInUse" => ApiError::new(
            400,
            "ResourceInUseException",
            format!(
                "Certificate {} in account {account} is in use.",
                arn_in(&e.message)
            ),
        ),
        "TooManyTags" => ApiError::new(400, "TooManyTagsException", e.message),
        "DuplicateTagKeys" => ApiError::new(400, "InvalidTagException", e.message),
        "ValidationError" => ApiError::new(400, "ValidationException", e.message),
        _ => e,
    }
}

fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            400,
            "SerializationException",
            format!("The request body is not what this operation takes: {e}"),
        )
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct ArnInput {
    certificate_arn: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct Tag {
    key: String,
    value: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct TagsInput {
    certificate_arn: String,
    tags: Vec<Tag>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct ImportInput {
    certificate_arn: Option<String>,
    /// Base64 of the PEM text (botocore sends blobs so).
    certificate: String,
    private_key: String,
    certificate_chain: Option<String>,
    #[serde(default)]
    tags: Vec<Tag>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct RequestInput {
    domain_name: String,
    #[serde(default)]
    subject_alternative_names: Vec<String>,
    validation_method: Option<String>,
    idempotency_token: Option<String>,
    key_algorithm: Option<String>,
    #[serde(default)]
    tags: Vec<Tag>,
    /// Recorded and echoed: the local CA validates every name at once.
    #[serde(default)]
    domain_validation_options: Vec<ValidationOption>,
    options: Option<OptionsInput>,
    certificate_authority_arn: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct ValidationOption {
    domain_name: String,
    validation_domain: String,
}

/// ACM's `Options`: `ENABLED` or `DISABLED` each.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct OptionsInput {
    certificate_transparency_logging_preference: Option<String>,
    export: Option<String>,
}

impl OptionsInput {
    /// The two switches as given (`None` when left out).
    fn switches(&self) -> Result<(Option<bool>, Option<bool>), ApiError> {
        let switch = |name: &str, value: &Option<String>| match value.as_deref() {
            None => Ok(None),
            Some("ENABLED") => Ok(Some(true)),
            Some("DISABLED") => Ok(Some(false)),
            Some(other) => Err(ApiError::new(
                400,
                "ValidationException",
                format!("Options.{name} '{other}' is not ENABLED or DISABLED"),
            )),
        };
        Ok((
            switch(
                "CertificateTransparencyLoggingPreference",
                &self.certificate_transparency_logging_preference,
            )?,
            switch("Export", &self.export)?,
        ))
    }

    fn apply(&self, mut options: CertificateOptions) -> Result<CertificateOptions, ApiError> {
        let (logging, export) = self.switches()?;
        options.transparency_logging = logging.unwrap_or(options.transparency_logging);
        options.export = export.unwrap_or(options.export);
        Ok(options)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct UpdateOptionsInput {
    certificate_arn: String,
    options: OptionsInput,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct ExportInput {
    certificate_arn: String,
    /// Base64, as botocore sends blobs.
    passphrase: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct RevokeInput {
    certificate_arn: String,
    revocation_reason: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct ResendInput {
    certificate_arn: String,
    domain: String,
    validation_domain: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct PutConfigurationInput {
    expiry_events: Option<ExpiryEvents>,
    idempotency_token: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct ExpiryEvents {
    days_before_expiry: Option<i64>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct ListInput {
    #[serde(default)]
    certificate_statuses: Vec<String>,
    includes: Option<Includes>,
    next_token: Option<String>,
    max_items: Option<usize>,
    sort_by: Option<String>,
    sort_order: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Includes {
    #[serde(default)]
    key_types: Vec<String>,
    #[serde(default)]
    extended_key_usage: Vec<String>,
    #[serde(default)]
    key_usage: Vec<String>,
}

fn pem_blob(name: &str, b64: &str) -> Result<String, ApiError> {
    let bytes = STANDARD.decode(b64.trim()).map_err(|_| {
        ApiError::new(
            400,
            "ValidationException",
            format!("{name} is not base64 (the aws cli sends it so with fileb://)"),
        )
    })?;
    String::from_utf8(bytes).map_err(|_| {
        ApiError::new(
            400,
            "ValidationException",
            format!("{name} is not PEM text"),
        )
    })
}

fn invalid_parameter(message: impl Into<String>) -> ApiError {
    ApiError::new(400, "InvalidParameterException", message)
}

fn import(api: &ApiCall<'_>, input: ImportInput) -> Result<Value, ApiError> {
    let certificate = pem_blob("Certificate", &input.certificate)?;
    let key = pem_blob("PrivateKey", &input.private_key)?;
    let chain = match &input.certificate_chain {
        Some(chain) => pem_blob("CertificateChain", chain)?,
        None => String::new(),
    };
    if certificate.matches("-----BEGIN CERTIFICATE-----").count() > 1 {
        return Err(ApiError::new(
            400,
            "ValidationException",
            "The certificate field contains more than one certificate. You can specify only \
             one certificate in this field.",
        ));
    }
    let material =
        elb_tls::material::read(&certificate, &key, &chain).map_err(|e| invalid_parameter(e.0))?;
    let now_ms = crate::clock::now_ms();
    if now_ms < material.not_before_ms || now_ms > material.not_after_ms {
        return Err(ApiError::new(
            400,
            "ValidationException",
            "The certificate is not valid now (outside NotBefore..NotAfter).",
        ));
    }
    let arn = create(
        api,
        ImportCertificate {
            arn: input.certificate_arn,
            kind: CertificateKind::Imported,
            material,
            idempotency_token: None,
            options: CertificateOptions::default(),
            validation: Validation::default(),
            tags: tags(input.tags),
            origin: Origin::Api,
        },
    )?;
    Ok(json!({ "CertificateArn": arn }))
}

fn request(api: &ApiCall<'_>, input: RequestInput) -> Result<Value, ApiError> {
    if input.certificate_authority_arn.is_some() {
        return Err(invalid_parameter(
            "elbd has no private certificate authorities; leave out CertificateAuthorityArn",
        ));
    }
    if let Some(method) = &input.validation_method
        && !["DNS", "EMAIL", "HTTP"].contains(&method.as_str())
    {
        return Err(invalid_parameter(format!(
            "ValidationMethod '{method}' is not one of DNS, EMAIL, HTTP"
        )));
    }
    if let Some(algorithm) = input.key_algorithm.as_deref()
        && algorithm != "EC_prime256v1"
    {
        return Err(ApiError::new(
            400,
            "ValidationException",
            format!("elbd's local CA issues EC_prime256v1 keys only, not {algorithm}"),
        ));
    }
    // Validation is done at once by the local CA; how it was asked for is recorded and
    // echoed, as are the options.
    let validation = Validation {
        method: input.validation_method.clone(),
        domains: input
            .domain_validation_options
            .iter()
            .map(|o| (o.domain_name.clone(), o.validation_domain.clone()))
            .collect(),
    };
    let options = match &input.options {
        Some(o) => o.apply(CertificateOptions::default())?,
        None => CertificateOptions::default(),
    };
    let mut names = vec![input.domain_name.clone()];
    for name in input.subject_alternative_names {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    let material = issue(api, &names)?;
    let arn = create(
        api,
        ImportCertificate {
            arn: None,
            kind: CertificateKind::AmazonIssued,
            material,
            idempotency_token: input.idempotency_token,
            options,
            validation,
            tags: tags(input.tags),
            origin: Origin::Api,
        },
    )?;
    Ok(json!({ "CertificateArn": arn }))
}

/// A new certificate for `names` from elbd's local CA, read as material.
fn issue(api: &ApiCall<'_>, names: &[String]) -> Result<elb_model::CertificateMaterial, ApiError> {
    let snapshot = api.snapshot();
    let secrets = snapshot.secrets();
    if secrets.ca_certificate_pem.is_empty() {
        return Err(ApiError::internal("elbd's local CA is not set up"));
    }
    let issued = elb_tls::ca::issue(
        &secrets.ca_certificate_pem,
        &secrets.ca_private_key_pem,
        names,
        crate::clock::now_ms(),
    )
    .map_err(|e| invalid_parameter(e.0))?;
    elb_tls::material::read(
        &issued.certificate_pem,
        &issued.private_key_pem,
        &issued.chain_pem,
    )
    .map_err(|e| ApiError::internal(e.0))
}

fn tags(tags: Vec<Tag>) -> Vec<(String, String)> {
    tags.into_iter()
        .map(|t| (t.key, t.value.unwrap_or_default()))
        .collect()
}

fn create(api: &ApiCall<'_>, import: ImportCertificate) -> Result<String, ApiError> {
    match api.execute(Command::ImportCertificate(import))? {
        elb_model::Outcome::Created(arn) => Ok(arn),
        other => unreachable!("ImportCertificate creates, got {other:?}"),
    }
}

fn certificate<'a>(state: &'a Region, arn: &str) -> Result<&'a Certificate, ApiError> {
    state.certificates.get(arn).ok_or_else(|| {
        ModelError::new(
            ErrorCode::CertificateNotFound,
            format!("Certificate '{arn}' not found"),
        )
        .into()
    })
}

fn status(c: &Certificate) -> &'static str {
    if c.revoked.is_some() {
        "REVOKED"
    } else if crate::clock::now_ms() > c.material.not_after_ms {
        "EXPIRED"
    } else {
        "ISSUED"
    }
}

fn enabled(on: bool) -> &'static str {
    if on { "ENABLED" } else { "DISABLED" }
}

/// Requested certificates renew (RenewCertificate re-issues them); imported ones do not.
fn renewal_eligibility(c: &Certificate) -> &'static str {
    match c.kind {
        CertificateKind::AmazonIssued if c.revoked.is_none() => "ELIGIBLE",
        _ => "INELIGIBLE",
    }
}

fn seconds(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

/// ACM's request enum (`EC_prime256v1`) is written with a hyphen in its answers.
fn key_algorithm_out(c: &Certificate) -> String {
    c.material.key_algorithm.replacen('_', "-", 1)
}

/// The load balancers whose listeners present the certificate (ACM's `InUseBy`).
fn in_use_by(state: &Region, arn: &str) -> Vec<String> {
    let mut lbs: Vec<String> = state
        .certificate_users(arn)
        .map(|l| state.listeners[l].load_balancer_arn.clone())
        .collect();
    lbs.dedup();
    lbs
}

fn describe(api: &ApiCall<'_>, input: &ArnInput) -> Result<Value, ApiError> {
    let snapshot = api.snapshot();
    let c = certificate(snapshot.state(), &input.certificate_arn)?;
    let m = &c.material;
    let mut detail = json!({
        "CertificateArn": c.arn,
        "DomainName": m.domain_name,
        "SubjectAlternativeNames": m.subject_alternative_names,
        "Serial": m.serial,
        "Subject": m.subject,
        "Issuer": m.issuer,
        "CreatedAt": seconds(c.created_ms),
        "Status": status(c),
        "NotBefore": seconds(m.not_before_ms),
        "NotAfter": seconds(m.not_after_ms),
        "KeyAlgorithm": key_algorithm_out(c),
        "SignatureAlgorithm": m.signature_algorithm,
        "InUseBy": in_use_by(snapshot.state(), &c.arn),
        "Type": c.kind.as_str(),
        "KeyUsages": [{"Name": "DIGITAL_SIGNATURE"}, {"Name": "KEY_ENCIPHERMENT"}],
        "ExtendedKeyUsages": [{"Name": "TLS_WEB_SERVER_AUTHENTICATION", "OID": "1.3.6.1.5.5.7.3.1"}],
        "RenewalEligibility": renewal_eligibility(c),
        "Options": {
            "CertificateTransparencyLoggingPreference": enabled(c.options.transparency_logging),
            "Export": enabled(c.options.export),
        },
    });
    if let Some((at_ms, reason)) = &c.revoked {
        detail["RevokedAt"] = json!(seconds(*at_ms));
        detail["RevocationReason"] = json!(reason);
    }
    if c.kind == CertificateKind::AmazonIssued {
        // Every name was validated when the local CA issued the certificate.
        let mut names: Vec<&str> = Vec::new();
        for name in c.names() {
            if !names.contains(&name) {
                names.push(name);
            }
        }
        let options: Vec<Value> = names
            .into_iter()
            .map(|name| {
                let domain = c.validation.domains.get(name).map_or(name, String::as_str);
                let mut option = json!({
                    "DomainName": name,
                    "ValidationDomain": domain,
                    "ValidationStatus": "SUCCESS",
                });
                if let Some(method) = &c.validation.method {
                    option["ValidationMethod"] = json!(method);
                }
                option
            })
            .collect();
        detail["DomainValidationOptions"] = json!(options);
    }
    let at = match c.kind {
        CertificateKind::Imported => "ImportedAt",
        CertificateKind::AmazonIssued => "IssuedAt",
    };
    detail[at] = json!(seconds(c.updated_ms));
    Ok(json!({ "Certificate": detail }))
}

fn list(api: &ApiCall<'_>, input: ListInput) -> Result<Value, ApiError> {
    let snapshot = api.snapshot();
    let state = snapshot.state();
    let includes = input.includes.unwrap_or_default();
    let key_types: Vec<String> = if includes.key_types.is_empty() {
        DEFAULT_KEY_TYPES.iter().map(|k| (*k).to_owned()).collect()
    } else {
        includes.key_types
    };
    // Every certificate here is a TLS server certificate with these usages.
    let usable = |wanted: &[String], has: &[&str]| {
        wanted.is_empty()
            || wanted
                .iter()
                .any(|w| w == "ANY" || has.contains(&w.as_str()))
    };
    if !usable(
        &includes.extended_key_usage,
        &["TLS_WEB_SERVER_AUTHENTICATION"],
    ) || !usable(
        &includes.key_usage,
        &["DIGITAL_SIGNATURE", "KEY_ENCIPHERMENT"],
    ) {
        return Ok(json!({ "CertificateSummaryList": [] }));
    }
    let mut found: Vec<&Certificate> = state
        .certificates
        .values()
        .filter(|c| key_types.contains(&c.material.key_algorithm))
        .filter(|c| {
            input.certificate_statuses.is_empty()
                || input.certificate_statuses.iter().any(|s| s == status(c))
        })
        .collect();
    if let Some(by) = input.sort_by.as_deref().filter(|b| *b != "CREATED_AT") {
        return Err(ApiError::new(
            400,
            "ValidationException",
            format!("SortBy '{by}' is not CREATED_AT"),
        ));
    }
    found.sort_by_key(|c| (c.created_ms, c.arn.clone()));
    if input.sort_order.as_deref() == Some("DESCENDING") {
        found.reverse();
    }
    let start = match &input.next_token {
        None => 0,
        Some(token) => found
            .iter()
            .position(|c| &c.arn == token)
            .ok_or_else(|| ApiError::new(400, "InvalidArgsException", "NextToken is not valid"))?,
    };
    let size = input.max_items.unwrap_or(1000).clamp(1, 1000);
    let page: Vec<&Certificate> = found.iter().skip(start).take(size).copied().collect();
    let next = found.get(start + size).map(|c| c.arn.clone());
    let summaries: Vec<Value> = page
        .iter()
        .map(|c| {
            let mut summary = json!({
                "CertificateArn": c.arn,
                "DomainName": c.material.domain_name,
                "SubjectAlternativeNameSummaries": c.material.subject_alternative_names,
                "HasAdditionalSubjectAlternativeNames": false,
                "Status": status(c),
                "Type": c.kind.as_str(),
                "KeyAlgorithm": key_algorithm_out(c),
                "KeyUsages": ["DIGITAL_SIGNATURE", "KEY_ENCIPHERMENT"],
                "ExtendedKeyUsages": ["TLS_WEB_SERVER_AUTHENTICATION"],
                "InUse": state.certificate_users(&c.arn).next().is_some(),
                "RenewalEligibility": renewal_eligibility(c),
                "NotBefore": seconds(c.material.not_before_ms),
                "NotAfter": seconds(c.material.not_after_ms),
                "CreatedAt": seconds(c.created_ms),
                "Exported": c.exported,
                "ExportOption": enabled(c.options.export),
            });
            if let Some((at_ms, _)) = &c.revoked {
                summary["RevokedAt"] = json!(seconds(*at_ms));
            }
            summary
        })
        .collect();
    let mut out = json!({ "CertificateSummaryList": summaries });
    if let Some(next) = next {
        out["NextToken"] = json!(next);
    }
    Ok(out)
}

/// The certificate, its chain and its key encrypted with the passphrase, for a certificate
/// requested with `Options.Export=ENABLED`.
fn export(api: &ApiCall<'_>, input: ExportInput) -> Result<Value, ApiError> {
    let passphrase = STANDARD
        .decode(input.passphrase.trim())
        .map_err(|_| ApiError::new(400, "ValidationException", "Passphrase is not base64"))?;
    if !(4..=128).contains(&passphrase.len()) {
        return Err(ApiError::new(
            400,
            "ValidationException",
            "Passphrase must be 4 to 128 bytes",
        ));
    }
    // The key is encrypted before the export is recorded, so a failure records nothing; the
    // command then checks that the certificate may be exported.
    let arn = input.certificate_arn;
    let snapshot = api.snapshot();
    let m = &certificate(snapshot.state(), &arn)?.material;
    let key = elb_tls::ca::encrypt_private_key(&m.private_key_pem, &passphrase)
        .map_err(|e| ApiError::internal(e.0))?;
    api.execute(Command::ExportCertificate { arn: arn.clone() })?;
    Ok(json!({
        "Certificate": m.certificate_pem,
        "CertificateChain": m.chain_pem,
        "PrivateKey": key,
    }))
}

/// Re-issues a requested certificate from the local CA for the same names, in place (same
/// ARN; listeners serve it from the next handshake).
fn renew(api: &ApiCall<'_>, input: &ArnInput) -> Result<Value, ApiError> {
    let snapshot = api.snapshot();
    let c = certificate(snapshot.state(), &input.certificate_arn)?;
    if renewal_eligibility(c) != "ELIGIBLE" {
        return Err(ApiError::new(
            400,
            "ValidationException",
            format!(
                "Certificate {} is not eligible for renewal: only requested, unrevoked \
                 certificates are",
                c.arn
            ),
        ));
    }
    let names: Vec<String> = c.names().map(str::to_owned).collect();
    let material = issue(api, &names)?;
    api.execute(Command::ImportCertificate(ImportCertificate {
        arn: Some(c.arn.clone()),
        kind: CertificateKind::AmazonIssued,
        material,
        idempotency_token: None,
        options: c.options,
        validation: c.validation.clone(),
        tags: Vec::new(),
        origin: c.origin,
    }))?;
    Ok(json!({}))
}

fn get(api: &ApiCall<'_>, input: &ArnInput) -> Result<Value, ApiError> {
    let snapshot = api.snapshot();
    let c = certificate(snapshot.state(), &input.certificate_arn)?;
    let mut out = json!({ "Certificate": c.material.certificate_pem });
    if !c.material.chain_pem.is_empty() {
        out["CertificateChain"] = json!(c.material.chain_pem);
    }
    Ok(out)
}

/// A tag given with a value is removed only if the value matches; without one, whatever it is.
fn remove_tags(api: &ApiCall<'_>, input: TagsInput) -> Result<Value, ApiError> {
    let arn = input.certificate_arn;
    api.update(|state, cx| {
        let current = state.tags(&arn)?.clone();
        let keys: Vec<String> = input
            .tags
            .iter()
            .filter(|t| match &t.value {
                Some(v) => current.get(&t.key) == Some(v),
                None => true,
            })
            .map(|t| t.key.clone())
            .collect();
        state.apply(
            Command::RemoveTags {
                arns: vec![arn.clone()],
                keys,
            },
            cx,
        )
    })?;
    Ok(json!({}))
}
