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
}
