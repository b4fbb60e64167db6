//! Trust stores: the CA bundles that listeners in mutual-TLS verify mode check client
//! certificates against, and the mutual-TLS settings of a listener.

use serde::{Deserialize, Serialize};

use crate::state::{Origin, Tags};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustStore {
    /// `arn:aws:elasticloadbalancing:REGION:ACCOUNT:truststore/NAME/HEX16`.
    pub arn: String,
    pub name: String,
    /// The CA certificates, PEM; the caller checked that they parse.
    pub ca_bundle_pem: String,
    pub ca_certificates: usize,
    /// When the bundle last changed, so that listeners rebuild what they verify with.
    pub updated_ms: u64,
    #[serde(default)]
    pub tags: Tags,
    pub origin: Origin,
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
