//! Reading certificate material: what ACM shows of a certificate, and the check that the key
//! is the certificate's.

use std::sync::Arc;

use elb_model::CertificateMaterial;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
use x509_parser::public_key::PublicKey;

use crate::TlsError;

/// Parses PEM texts into [`CertificateMaterial`], refusing a certificate that does not parse,
/// a key that does not parse or does not match, and a chain that does not parse.
pub fn read(
    certificate_pem: &str,
    private_key_pem: &str,
    chain_pem: &str,
) -> Result<CertificateMaterial, TlsError> {
    let key = certified_key(certificate_pem, private_key_pem, chain_pem)?;
    let der = &key.cert[0];
    let (_, cert) = X509Certificate::from_der(der)
        .map_err(|e| TlsError::new(format!("The certificate is not valid X.509: {e}")))?;
    let names: Vec<String> = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::DNSName(name) => Some((*name).to_owned()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let common_name = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned);
    let domain_name = common_name
        .or_else(|| names.first().cloned())
        .ok_or_else(|| TlsError::new("The certificate names no domain (no CN and no DNS SAN)"))?;
    let validity = cert.validity();
    Ok(CertificateMaterial {
        certificate_pem: certificate_pem.trim().to_owned() + "\n",
        chain_pem: chain_pem.trim().to_owned(),
        private_key_pem: private_key_pem.trim().to_owned() + "\n",
        domain_name,
        subject_alternative_names: names,
        serial: cert.raw_serial_as_string(),
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        key_algorithm: key_algorithm(&cert),
        signature_algorithm: signature_algorithm(
            &cert.signature_algorithm.algorithm.to_id_string(),
        ),
        not_before_ms: millis(validity.not_before.timestamp()),
        not_after_ms: millis(validity.not_after.timestamp()),
    })
}

/// The certificate, chain and key as rustls serves them, after checking the key matches.
pub fn certified_key(
    certificate_pem: &str,
    private_key_pem: &str,
    chain_pem: &str,
) -> Result<Arc<CertifiedKey>, TlsError> {
    let leaf = CertificateDer::pem_slice_iter(certificate_pem.as_bytes())
        .next()
        .ok_or_else(|| TlsError::new("The certificate is not a PEM certificate"))?
        .map_err(|e| TlsError::new(format!("The certificate is not valid PEM: {e}")))?;
    let mut chain = vec![leaf];
    for cert in CertificateDer::pem_slice_iter(chain_pem.as_bytes()) {
        chain.push(
            cert.map_err(|e| {
                TlsError::new(format!("The certificate chain is not valid PEM: {e}"))
            })?,
        );
    }
    let key = PrivateKeyDer::from_pem_slice(private_key_pem.as_bytes())
        .map_err(|e| TlsError::new(format!("The private key is not a PEM private key: {e}")))?;
    let provider = rustls::crypto::ring::default_provider();
    let certified = CertifiedKey::from_der(chain, key, &provider)
        .map_err(|e| TlsError::new(format!("The private key does not fit the certificate: {e}")))?;
    Ok(Arc::new(certified))
}

fn millis(seconds: i64) -> u64 {
    u64::try_from(seconds).unwrap_or(0) * 1000
}

/// ACM's names: `RSA_2048`, `EC_prime256v1`, `EC_secp384r1`, …
fn key_algorithm(cert: &X509Certificate<'_>) -> String {
    match cert.public_key().parsed() {
        Ok(PublicKey::RSA(rsa)) => format!("RSA_{}", rsa.key_size()),
        Ok(PublicKey::EC(ec)) => match ec.key_size() {
            256 => "EC_prime256v1".into(),
            384 => "EC_secp384r1".into(),
            _ => "EC_secp521r1".into(),
        },
        _ => "UNKNOWN".into(),
    }
}

/// ACM's names for the common signature algorithm OIDs.
fn signature_algorithm(oid: &str) -> String {
    match oid {
        "1.2.840.113549.1.1.11" => "SHA256WITHRSA",
        "1.2.840.113549.1.1.12" => "SHA384WITHRSA",
        "1.2.840.113549.1.1.13" => "SHA512WITHRSA",
        "1.2.840.10045.4.3.2" => "SHA256WITHECDSA",
        "1.2.840.10045.4.3.3" => "SHA384WITHECDSA",
        "1.2.840.10045.4.3.4" => "SHA512WITHECDSA",
        other => other,
    }
    .to_owned()
}
