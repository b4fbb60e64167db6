//! ELB security policies: which TLS versions and cipher suites a listener offers. The names,
//! versions and OpenSSL cipher names are AWS's; DescribeSSLPolicies answers from this table
//! and the data plane maps it onto what its TLS library implements.

/// The policy an HTTPS listener gets when the API call names none, as AWS.
pub const DEFAULT_SSL_POLICY: &str = "ELBSecurityPolicy-2016-08";

#[derive(Debug, PartialEq, Eq)]
pub struct SslPolicy {
    pub name: &'static str,
    /// `TLSv1`, `TLSv1.1`, `TLSv1.2`, `TLSv1.3`.
    pub protocols: &'static [&'static str],
    /// The TLS 1.0-1.2 suites by OpenSSL name, in AWS's order; the TLS 1.3 suites come first
    /// when the policy offers TLS 1.3 (see [`SslPolicy::ciphers`]).
    legacy_ciphers: &'static [&'static str],
    /// Whether the policy offers post-quantum hybrid key exchange (X25519MLKEM768).
    pub post_quantum: bool,
}

impl SslPolicy {
    pub fn offers(&self, protocol: &str) -> bool {
        self.protocols.contains(&protocol)
    }

    /// Every suite by OpenSSL name, in AWS's priority order (priority = index + 1).
    pub fn ciphers(&self) -> impl Iterator<Item = &'static str> + use<> {
        let tls13 = if self.offers("TLSv1.3") { TLS13 } else { &[] };
        tls13.iter().chain(self.legacy_ciphers).copied()
    }
}

const TLS13: &[&str] = &[
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
];

/// The 2016 set: forward-secret GCM and CBC suites, then RSA key exchange.
const CLASSIC: &[&str] = &[
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES128-SHA256",
    "ECDHE-RSA-AES128-SHA256",
    "ECDHE-ECDSA-AES128-SHA",
    "ECDHE-RSA-AES128-SHA",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-AES256-SHA384",
    "ECDHE-RSA-AES256-SHA384",
    "ECDHE-RSA-AES256-SHA",
    "ECDHE-ECDSA-AES256-SHA",
    "AES128-GCM-SHA256",
    "AES128-SHA256",
    "AES128-SHA",
    "AES256-GCM-SHA384",
    "AES256-SHA256",
    "AES256-SHA",
];

/// Forward-secret only, GCM and SHA-2 CBC.
const FORWARD_SECRET: &[&str] = &[
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES128-SHA256",
    "ECDHE-RSA-AES128-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-AES256-SHA384",
    "ECDHE-RSA-AES256-SHA384",
];

/// Forward-secret GCM only ("Res", restricted).
const RESTRICTED: &[&str] = &[
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
];

const TLS_1_2_2017: &[&str] = &[
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES128-SHA256",
    "ECDHE-RSA-AES128-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-AES256-SHA384",
    "ECDHE-RSA-AES256-SHA384",
    "AES128-GCM-SHA256",
    "AES128-SHA256",
    "AES256-GCM-SHA384",
    "AES256-SHA256",
];

const V10_12: &[&str] = &["TLSv1", "TLSv1.1", "TLSv1.2"];
const V10_13: &[&str] = &["TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"];
const V11_12: &[&str] = &["TLSv1.1", "TLSv1.2"];
const V11_13: &[&str] = &["TLSv1.1", "TLSv1.2", "TLSv1.3"];
const V12: &[&str] = &["TLSv1.2"];
const V12_13: &[&str] = &["TLSv1.2", "TLSv1.3"];
const V13: &[&str] = &["TLSv1.3"];

const fn policy(
    name: &'static str,
    protocols: &'static [&'static str],
    legacy_ciphers: &'static [&'static str],
) -> SslPolicy {
    SslPolicy {
        name,
        protocols,
        legacy_ciphers,
        post_quantum: false,
    }
}

const fn pq(
    name: &'static str,
    protocols: &'static [&'static str],
    legacy_ciphers: &'static [&'static str],
) -> SslPolicy {
    SslPolicy {
        post_quantum: true,
        ..policy(name, protocols, legacy_ciphers)
    }
}

/// Every policy elbd knows, newest families first as DescribeSSLPolicies lists them.
pub static SSL_POLICIES: &[SslPolicy] = &[
    policy("ELBSecurityPolicy-TLS13-1-3-2021-06", V13, &[]),
    policy(
        "ELBSecurityPolicy-TLS13-1-2-2021-06",
        V12_13,
        FORWARD_SECRET,
    ),
    policy(
        "ELBSecurityPolicy-TLS13-1-2-Res-2021-06",
        V12_13,
        RESTRICTED,
    ),
    policy("ELBSecurityPolicy-TLS13-1-2-Ext1-2021-06", V12_13, CLASSIC),
    policy("ELBSecurityPolicy-TLS13-1-2-Ext2-2021-06", V12_13, CLASSIC),
    policy("ELBSecurityPolicy-TLS13-1-1-2021-06", V11_13, CLASSIC),
    policy("ELBSecurityPolicy-TLS13-1-0-2021-06", V10_13, CLASSIC),
    pq("ELBSecurityPolicy-TLS13-1-3-PQ-2025-09", V13, &[]),
    pq(
        "ELBSecurityPolicy-TLS13-1-2-PQ-2025-09",
        V12_13,
        FORWARD_SECRET,
    ),
    pq(
        "ELBSecurityPolicy-TLS13-1-2-Res-PQ-2025-09",
        V12_13,
        RESTRICTED,
    ),
    policy("ELBSecurityPolicy-FS-1-2-Res-2020-10", V12, RESTRICTED),
    policy("ELBSecurityPolicy-TLS-1-2-Ext-2018-06", V12, CLASSIC),
    policy("ELBSecurityPolicy-TLS-1-2-2017-01", V12, TLS_1_2_2017),
    policy("ELBSecurityPolicy-TLS-1-1-2017-01", V11_12, CLASSIC),
    policy(DEFAULT_SSL_POLICY, V10_12, CLASSIC),
];

pub fn ssl_policy(name: &str) -> Option<&'static SslPolicy> {
    SSL_POLICIES.iter().find(|p| p.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_every_policy_offers_a_protocol_and_a_cipher() {
        for (i, p) in SSL_POLICIES.iter().enumerate() {
            assert!(
                SSL_POLICIES[..i].iter().all(|q| q.name != p.name),
                "{}",
                p.name
            );
            assert!(
                !p.protocols.is_empty() && p.ciphers().count() > 0,
                "{}",
                p.name
            );
            // Legacy suites belong exactly to policies offering a version below 1.3.
            assert_eq!(
                p.legacy_ciphers.is_empty(),
                p.protocols == V13,
                "{}",
                p.name
            );
        }
        assert_eq!(
            ssl_policy(DEFAULT_SSL_POLICY).unwrap().ciphers().count(),
            18
        );
        let tls13 = ssl_policy("ELBSecurityPolicy-TLS13-1-2-2021-06").unwrap();
        assert_eq!(tls13.ciphers().next(), Some("TLS_AES_128_GCM_SHA256"));
        assert_eq!(tls13.ciphers().count(), 11);
    }
}
