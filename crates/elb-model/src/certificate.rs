//! ACM certificates: a certificate, its private key and chain, as imported or as issued by
//! elbd's local certificate authority, with the facts read from it at import.

use serde::{Deserialize, Serialize};

use crate::state::{Origin, Tags};

/// `Type` in ACM's answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CertificateKind {
    /// Brought in with ImportCertificate (or a PEM pair in the config file).
    Imported,
    /// Issued by RequestCertificate; here by elbd's own CA, so ISSUED at once.
    AmazonIssued,
}

impl CertificateKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Imported => "IMPORTED",
            Self::AmazonIssued => "AMAZON_ISSUED",
        }
    }
}

/// PEM texts and what was read from them. Parsing X.509 is I/O-free but not this crate's
/// business: the caller parses and checks the key matches, and the model keeps the result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateMaterial {
    pub certificate_pem: String,
    /// Intermediate certificates, PEM, possibly empty.
    pub chain_pem: String,
    pub private_key_pem: String,
    /// The subject's common name, or the first DNS name when it has none.
    pub domain_name: String,
    /// DNS names from the subjectAltName extension.
    pub subject_alternative_names: Vec<String>,
    /// Colon-separated lowercase hex, as ACM shows it.
    pub serial: String,
    pub subject: String,
    pub issuer: String,
    /// `RSA_2048`, `EC_prime256v1`, … as ACM names them.
    pub key_algorithm: String,
    pub signature_algorithm: String,
    pub not_before_ms: u64,
    pub not_after_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Certificate {
    /// `arn:aws:acm:REGION:ACCOUNT:certificate/UUID`.
    pub arn: String,
    pub kind: CertificateKind,
    pub material: CertificateMaterial,
    pub created_ms: u64,
    /// When the current material arrived (import, re-import or issue).
    pub updated_ms: u64,
    /// RequestCertificate's IdempotencyToken: a repeat with the same token and domain gets
    /// this certificate again.
    #[serde(default)]
    pub idempotency_token: Option<String>,
    #[serde(default)]
    pub options: CertificateOptions,
    /// RequestCertificate's validation: the method and, per name, the domain validated, as
    /// asked (the local CA issues at once, so every name is validated).
    #[serde(default)]
    pub validation: Validation,
    /// Whether ExportCertificate has handed out the private key (only those can be revoked).
    #[serde(default)]
    pub exported: bool,
    /// RevokeCertificate's record: when, and AWS's reason code.
    #[serde(default)]
    pub revoked: Option<(u64, String)>,
    #[serde(default)]
    pub tags: Tags,
    pub origin: Origin,
}

/// An IAM server certificate (UploadServerCertificate): account-wide, with IAM's name, path and
/// id; `certificate` holds its material under its IAM ARN
/// (`arn:aws:iam::ACCOUNT:server-certificate/PATH/NAME`), as listeners present it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerCertificate {
    pub name: String,
    pub path: String,
    /// `ASCA…`, 21 characters.
    pub id: String,
    pub certificate: Certificate,
}

/// How a requested certificate's names were validated.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Validation {
    pub method: Option<String>,
    /// Name → the domain its validation used (`ValidationDomain`), when given.
    pub domains: std::collections::BTreeMap<String, String>,
}

/// ACM's `Options`: recorded and echoed (there is no transparency log here), and whether
/// the private key may be exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateOptions {
    pub transparency_logging: bool,
    pub export: bool,
}

impl Default for CertificateOptions {
    /// AWS's defaults: logging `ENABLED`, export `DISABLED`.
    fn default() -> Self {
        Self {
            transparency_logging: true,
            export: false,
        }
    }
}

impl Certificate {
    /// Every DNS name the certificate is good for: the domain name and the alternative names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.material.domain_name.as_str()).chain(
            self.material
                .subject_alternative_names
                .iter()
                .map(String::as_str),
        )
    }
}

/// Secrets elbd makes once and keeps in the store, so that every node and every restart
/// agrees on them: the key of the cookies it seals (stickiness, login sessions), the local
/// certificate authority, and the key that signs the user claims of authenticate actions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Secrets {
    /// 32 random bytes, hex.
    pub cookie_key: String,
    pub ca_certificate_pem: String,
    pub ca_private_key_pem: String,
    /// An ECDSA P-256 key, PKCS#8 PEM: signs `x-amzn-oidc-data`. Stores made before
    /// authenticate actions lack it until the next start adds it.
    #[serde(default)]
    pub claims_key_pem: String,
}

impl Secrets {
    pub fn is_empty(&self) -> bool {
        self.cookie_key.is_empty()
    }

    /// Whether some secret is still to be made.
    pub fn incomplete(&self) -> bool {
        self.is_empty() || self.claims_key_pem.is_empty()
    }
}
