//! Trust stores: the CA bundles that listeners in mutual-TLS verify mode check client
//! certificates against, and the mutual-TLS settings of a listener.

use serde::{Deserialize, Serialize};

use crate::error::{ErrorCode, ModelError, Result};
use crate::state::{Origin, Tags};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustStore {
    /// `arn:aws:elasticloadbalancing:REGION:ACCOUNT:truststore/NAME/HEX16`.
    pub arn: String,
    pub name: String,
    /// The CA certificates, PEM; the caller checked that they parse.
    pub ca_bundle_pem: String,
    pub ca_certificates: usize,
    /// When the bundle or the revocations last changed, so that listeners rebuild what they
    /// verify with.
    pub updated_ms: u64,
    /// Certificate revocation lists, by id (AddTrustStoreRevocations).
    #[serde(default)]
    pub revocations: Vec<Revocation>,
    /// The id the next revocation list gets (ids are never reused).
    #[serde(default = "first_revocation_id")]
    pub next_revocation_id: u64,
    #[serde(default)]
    pub tags: Tags,
    pub origin: Origin,
}

/// The most revoked certificates a trust store's lists may name together.
pub const MAX_REVOKED_ENTRIES: usize = 500_000;

fn first_revocation_id() -> u64 {
    1
}

/// A certificate revocation list a trust store verifies with: client certificates it names
/// are refused in verify mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    pub id: u64,
    /// The CRL, PEM; the caller checked it as handshakes will use it.
    pub crl_pem: String,
    pub revoked_entries: usize,
    /// The CA that issued it, RFC 2253.
    #[serde(default)]
    pub issuer: String,
}

impl TrustStore {
    /// `TotalRevokedEntries`.
    pub fn revoked_entries(&self) -> usize {
        self.revocations.iter().map(|r| r.revoked_entries).sum()
    }

    pub fn revocation(&self, id: u64) -> Result<&Revocation> {
        self.revocations.iter().find(|r| r.id == id).ok_or_else(|| {
            ModelError::new(
                ErrorCode::RevocationIdNotFound,
                format!(
                    "Revocation ID '{id}' not found in trust store '{}'",
                    self.arn
                ),
            )
        })
    }
}

/// `MutualAuthentication.Mode` other than `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MtlsMode {
    /// The client chain is checked against a trust store; its facts go to targets in headers.
    Verify,
    /// The client chain, if any, is forwarded unchecked in `X-Amzn-Mtls-Clientcert`.
    Passthrough,
}

impl MtlsMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Verify => "verify",
            Self::Passthrough => "passthrough",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MutualAuthentication {
    pub mode: MtlsMode,
    /// Verify mode only.
    pub trust_store_arn: Option<String>,
    /// `AdvertiseTrustStoreCaNames`: send the trust store's CA names in the handshake.
    #[serde(default)]
    pub advertise_ca_names: bool,
    /// `ClientCertificateIdentityFilters` (network load balancers, verify mode): when any,
    /// a verified client certificate is admitted only if one of them matches it.
    #[serde(default)]
    pub identity_filters: Vec<IdentityFilter>,
}

/// The most identity filters a listener takes, as AWS allows.
pub const MAX_IDENTITY_FILTERS: usize = 100;

/// One of `ClientCertificateIdentityFilters`: its action is always `accept`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityFilter {
    pub field: IdentityField,
    /// `prefix` rather than `exact`.
    pub prefix: bool,
    pub value: String,
}

/// The client certificate field an identity filter matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum IdentityField {
    SubjectCn,
    SubjectOu,
    SanDns,
    SanUri,
}

impl IdentityField {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "subject-cn" => Ok(Self::SubjectCn),
            "subject-ou" => Ok(Self::SubjectOu),
            "san-dns" => Ok(Self::SanDns),
            "san-uri" => Ok(Self::SanUri),
            _ => Err(ModelError::validation(format!(
                "Invalid client certificate identity filter field '{s}': must be subject-cn, \
                 subject-ou, san-dns or san-uri"
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::SubjectCn => "subject-cn",
            Self::SubjectOu => "subject-ou",
            Self::SanDns => "san-dns",
            Self::SanUri => "san-uri",
        }
    }
}

/// What identity filters match in a client certificate: each field's values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertificateIdentity {
    pub subject_cn: Vec<String>,
    pub subject_ou: Vec<String>,
    pub san_dns: Vec<String>,
    pub san_uri: Vec<String>,
}

impl IdentityFilter {
    /// Checks the value as AWS does: 1–256 printable ASCII characters; a `san-uri` value
    /// begins with a letter, has only letters, digits, `+`, `-` and `.` before its first
    /// colon, and has one when matched exactly.
    pub fn check(&self) -> Result<()> {
        let v = &self.value;
        let invalid = |why: &str| {
            Err(ModelError::validation(format!(
                "Client certificate identity filter value '{v}' {why}"
            )))
        };
        if v.is_empty() || v.len() > 256 || !v.bytes().all(|b| (b' '..=b'~').contains(&b)) {
            return invalid("must be 1 to 256 printable ASCII characters");
        }
        if self.field != IdentityField::SanUri {
            return Ok(());
        }
        let scheme = v.split(':').next().unwrap_or_default();
        let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
        if !scheme_ok {
            return invalid(
                "must begin with a letter and have only letters, digits, '+', '-' and '.' before its first colon",
            );
        }
        if !self.prefix && !v.contains(':') {
            return invalid("must contain a colon to be matched exactly");
        }
        Ok(())
    }

    /// Whether any of the certificate's values of the filter's field matches: names case
    /// aside; a URI's scheme and host case aside, the rest as written.
    pub fn matches(&self, identity: &CertificateIdentity) -> bool {
        let (values, fold): (&[String], fn(&str) -> String) = match self.field {
            IdentityField::SubjectCn => (&identity.subject_cn, str::to_ascii_lowercase),
            IdentityField::SubjectOu => (&identity.subject_ou, str::to_ascii_lowercase),
            IdentityField::SanDns => (&identity.san_dns, str::to_ascii_lowercase),
            IdentityField::SanUri => (&identity.san_uri, fold_uri),
        };
        let wanted = fold(&self.value);
        values.iter().map(|v| fold(v)).any(|v| {
            if self.prefix {
                v.starts_with(&wanted)
            } else {
                v == wanted
            }
        })
    }
}

/// Whether `filters` admit a certificate of `identity`: any matches, or there are none.
pub fn admits(filters: &[IdentityFilter], identity: &CertificateIdentity) -> bool {
    filters.is_empty() || filters.iter().any(|f| f.matches(identity))
}

/// A URI with its scheme and host lower-cased (`SPIFFE://Example.COM/W` → `spiffe://example.com/W`):
/// the scheme runs to the first `:`, and an authority after `//` to the first `/`, `?` or `#`.
fn fold_uri(uri: &str) -> String {
    let Some(colon) = uri.find(':') else {
        return uri.to_owned();
    };
    let after = &uri[colon + 1..];
    let head_end = match after.strip_prefix("//") {
        Some(authority) => {
            let end = authority.find(['/', '?', '#']).unwrap_or(authority.len());
            colon + 3 + end
        }
        None => colon,
    };
    let (head, rest) = uri.split_at(head_end);
    format!("{}{rest}", head.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(field: IdentityField, prefix: bool, value: &str) -> IdentityFilter {
        IdentityFilter {
            field,
            prefix,
            value: value.into(),
        }
    }

    #[test]
    fn filters_match_their_field_case_as_aws_says() {
        let identity = CertificateIdentity {
            subject_cn: vec!["Client.Example.com".into()],
            subject_ou: vec!["Payments".into()],
            san_dns: vec!["a.example.com".into(), "b.example.com".into()],
            san_uri: vec!["spiffe://Example.com/Workload/x".into()],
        };
        use IdentityField::*;
        assert!(filter(SubjectCn, false, "client.example.COM").matches(&identity));
        assert!(!filter(SubjectCn, false, "client").matches(&identity));
        assert!(filter(SubjectCn, true, "client.").matches(&identity));
        assert!(filter(SubjectOu, false, "payments").matches(&identity));
        assert!(filter(SanDns, false, "b.example.com").matches(&identity));
        assert!(filter(SanUri, false, "SPIFFE://example.COM/Workload/x").matches(&identity));
        assert!(!filter(SanUri, false, "spiffe://example.com/workload/x").matches(&identity));
        assert!(filter(SanUri, true, "spiffe://example.com/Workload/").matches(&identity));
        assert!(!filter(SanDns, false, "c.example.com").matches(&identity));
        assert_eq!(
            fold_uri("HTTPS://Host.Example?Q=A"),
            "https://host.example?Q=A"
        );
        assert_eq!(fold_uri("URN:X://Y"), "urn:X://Y");
        assert_eq!(fold_uri("Mailto:User@Example"), "mailto:User@Example");
        assert!(admits(&[], &identity));
        let other = [filter(SubjectCn, false, "other")];
        assert!(!admits(&other, &identity));
        assert!(!admits(&other, &CertificateIdentity::default()));
    }

    #[test]
    fn values_are_checked_as_aws_checks_them() {
        use IdentityField::*;
        assert!(filter(SubjectCn, false, "anything goes").check().is_ok());
        assert!(filter(SubjectCn, false, "").check().is_err());
        assert!(filter(SubjectCn, false, &"x".repeat(257)).check().is_err());
        assert!(filter(SubjectCn, false, "tab\there").check().is_err());
        assert!(
            filter(SanUri, false, "spiffe://example.com/workload")
                .check()
                .is_ok()
        );
        assert!(filter(SanUri, false, "spiffe").check().is_err());
        assert!(filter(SanUri, true, "spiffe").check().is_ok());
        assert!(filter(SanUri, true, "1abc:x").check().is_err());
        assert!(filter(SanUri, true, "a_b:x").check().is_err());
    }
}
