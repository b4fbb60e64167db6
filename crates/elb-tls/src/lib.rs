//! Certificates and TLS for elbd, shared by the API (which imports and issues certificates)
//! and the data plane (which serves them).
//!
//! # Layout
//! - [`material`]: PEM certificate + key + chain → the facts ACM shows, checking they belong
//!   together.
//! - [`ca`]: elbd's local certificate authority, which RequestCertificate issues from.
//! - [`claims_key`]: the key that signs the user claims authenticate actions forward.
//! - [`policy`]: ELB security policies mapped onto rustls versions and cipher suites.
//! - [`server`]: a listener's rustls `ServerConfig`, with certificates chosen by SNI.
//! - [`client`]: TLS towards targets, which ELB does not verify.
//! - [`mtls`]: client certificates: trust store bundles, verification, headers for targets.

pub mod ca;
pub mod claims_key;
pub mod client;
pub mod material;
pub mod mtls;
pub mod policy;
pub mod server;

/// Why certificate material or a TLS setting was refused; the message names what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(pub String);

impl TlsError {
    fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// Installs ring as the process's rustls crypto provider (idempotent).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
