//! ELB security policies on rustls. rustls implements TLS 1.2 and 1.3 with AEAD suites only:
//! a policy's TLS 1.0/1.1 versions and its CBC and RSA-key-exchange suites are not offered,
//! and what remains keeps AWS's priority order (the server's order decides, as on ELB).

use elb_model::ssl_policy::SslPolicy;
use rustls::crypto::CryptoProvider;
use rustls::{CipherSuite, SupportedProtocolVersion};

use crate::TlsError;

/// OpenSSL name → the suite, for every suite of AWS's policies that rustls implements.
const SUITES: &[(&str, CipherSuite)] = &[
    (
        "TLS_AES_128_GCM_SHA256",
        CipherSuite::TLS13_AES_128_GCM_SHA256,
    ),
    (
        "TLS_AES_256_GCM_SHA384",
        CipherSuite::TLS13_AES_256_GCM_SHA384,
    ),
    (
        "TLS_CHACHA20_POLY1305_SHA256",
        CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
    ),
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "ECDHE-RSA-AES128-GCM-SHA256",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "ECDHE-RSA-AES256-GCM-SHA384",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    ),
];

/// OpenSSL's name of `suite`, as ELB's access logs name the one a connection negotiated.
pub fn openssl_name(suite: CipherSuite) -> Option<&'static str> {
    SUITES
        .iter()
        .find(|(_, c)| *c == suite)
        .map(|(name, _)| *name)
}

/// What a listener under a policy really offers.
pub struct Offer {
    pub versions: Vec<&'static SupportedProtocolVersion>,
    /// ring's provider with the policy's suites only, in the policy's order.
    pub provider: CryptoProvider,
}

impl Offer {
    /// The OpenSSL names of the suites offered, for the docs and the logs.
    pub fn suite_names(&self) -> Vec<&'static str> {
        self.provider
            .cipher_suites
            .iter()
            .filter_map(|s| openssl_name(s.suite()))
            .collect()
    }
}

/// The versions and suites of `policy` that elbd can offer. Post-quantum policies are refused:
/// ring has no ML-KEM, and offering them without it would silently weaken what was asked for.
pub fn offer(policy: &SslPolicy) -> Result<Offer, TlsError> {
    if policy.post_quantum {
        return Err(TlsError::new(format!(
            "elbd does not offer post-quantum key exchange (X25519MLKEM768); policy '{}' is \
             not available",
            policy.name
        )));
    }
    let mut versions = Vec::new();
    if policy.offers("TLSv1.3") {
        versions.push(&rustls::version::TLS13);
    }
    if policy.offers("TLSv1.2") {
        versions.push(&rustls::version::TLS12);
    }
    let mut provider = rustls::crypto::ring::default_provider();
    let all = std::mem::take(&mut provider.cipher_suites);
    provider.cipher_suites = policy
        .ciphers()
        .filter_map(|name| SUITES.iter().find(|(n, _)| *n == name))
        .filter_map(|(_, suite)| all.iter().find(|s| s.suite() == *suite).copied())
        .collect();
    if versions.is_empty() || provider.cipher_suites.is_empty() {
        return Err(TlsError::new(format!(
            "Policy '{}' offers no TLS version or cipher suite that elbd implements",
            policy.name
        )));
    }
    Ok(Offer { versions, provider })
}

#[cfg(test)]
mod tests {
    use super::*;
    use elb_model::ssl_policy::{DEFAULT_SSL_POLICY, SSL_POLICIES, ssl_policy};

    #[test]
    fn every_classic_policy_offers_something_and_post_quantum_ones_are_refused() {
        for policy in SSL_POLICIES {
            assert_eq!(
                offer(policy).is_err(),
                policy.post_quantum,
                "{}",
                policy.name
            );
        }
        let default = offer(ssl_policy(DEFAULT_SSL_POLICY).unwrap()).unwrap();
        assert_eq!(default.versions, vec![&rustls::version::TLS12]);
        assert_eq!(
            default.suite_names(),
            [
                "ECDHE-ECDSA-AES128-GCM-SHA256",
                "ECDHE-RSA-AES128-GCM-SHA256",
                "ECDHE-ECDSA-AES256-GCM-SHA384",
                "ECDHE-RSA-AES256-GCM-SHA384",
            ]
        );
        let tls13 = offer(ssl_policy("ELBSecurityPolicy-TLS13-1-3-2021-06").unwrap()).unwrap();
        assert_eq!(tls13.versions, vec![&rustls::version::TLS13]);
        assert_eq!(tls13.suite_names().len(), 3);
    }
}
