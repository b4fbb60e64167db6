//! elbd's local certificate authority. RequestCertificate issues from it at once (there is
//! no domain validation to wait for); clients trust its exported certificate.

use elb_model::Secrets;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use time::OffsetDateTime;

use crate::TlsError;

const CA_NAME: &str = "elbd local certificate authority";
const CA_DAYS: i64 = 3650;
/// ACM's public certificates are valid for 395 days.
const LEAF_DAYS: i64 = 395;

/// A certificate and its key, PEM, with the chain that leads to the CA.
pub struct Issued {
    pub certificate_pem: String,
    pub private_key_pem: String,
    pub chain_pem: String,
}

/// The secrets a new store starts with: a random cookie key, a new CA and a claims key.
pub fn new_secrets(now_ms: u64) -> Result<Secrets, TlsError> {
    let mut key = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut key)
        .map_err(|_| TlsError::new("The system has no randomness to give"))?;
    let (ca_certificate_pem, ca_private_key_pem) = new_authority(now_ms)?;
    Ok(Secrets {
        cookie_key: key.iter().map(|b| format!("{b:02x}")).collect(),
        ca_certificate_pem,
        ca_private_key_pem,
        claims_key_pem: crate::claims_key::new_claims_key()?,
    })
}

/// Makes a new self-signed CA (ECDSA P-256): `(certificate_pem, private_key_pem)`.
pub fn new_authority(now_ms: u64) -> Result<(String, String), TlsError> {
    let key = KeyPair::generate().map_err(err)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, CA_NAME);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    (params.not_before, params.not_after) = validity(now_ms, CA_DAYS)?;
    let cert = params.self_signed(&key).map_err(err)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Issues a server certificate for `names` (the first is the subject's CN; `*.` wildcards
/// allowed) from the CA given as PEM.
pub fn issue(
    ca_certificate_pem: &str,
    ca_private_key_pem: &str,
    names: &[String],
    now_ms: u64,
) -> Result<Issued, TlsError> {
    let first = names
        .first()
        .ok_or_else(|| TlsError::new("A certificate needs at least one name"))?;
    let ca_key = KeyPair::from_pem(ca_private_key_pem).map_err(err)?;
    let issuer = Issuer::from_ca_cert_pem(ca_certificate_pem, ca_key).map_err(err)?;
    let key = KeyPair::generate().map_err(err)?;
    let mut params = CertificateParams::new(names.to_vec())
        .map_err(|e| TlsError::new(format!("Invalid domain name in {names:?}: {e}")))?;
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, first.as_str());
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    (params.not_before, params.not_after) = validity(now_ms, LEAF_DAYS)?;
    let cert = params.signed_by(&key, &issuer).map_err(err)?;
    Ok(Issued {
        certificate_pem: cert.pem(),
        private_key_pem: key.serialize_pem(),
        chain_pem: ca_certificate_pem.to_owned(),
    })
}

/// From an hour ago (clocks differ) to `days` from now.
fn validity(now_ms: u64, days: i64) -> Result<(OffsetDateTime, OffsetDateTime), TlsError> {
    let now = OffsetDateTime::from_unix_timestamp((now_ms / 1000) as i64)
        .map_err(|e| TlsError::new(format!("Bad clock: {e}")))?;
    Ok((
        now - time::Duration::hours(1),
        now + time::Duration::days(days),
    ))
}

fn err(e: rcgen::Error) -> TlsError {
    TlsError::new(format!("Certificate generation failed: {e}"))
}

/// PBKDF2 rounds for exported keys (the count travels in the file, so any reader copes).
const PBKDF2_ROUNDS: u32 = 100_000;

/// A PKCS#8 private key (PEM) encrypted with `passphrase` as ACM's ExportCertificate hands it
/// out: `ENCRYPTED PRIVATE KEY`, PBES2 with PBKDF2-HMAC-SHA256 and AES-256-CBC (OpenSSL's
/// default scheme, so `openssl pkey -passin` reads it).
pub fn encrypt_private_key(pem: &str, passphrase: &[u8]) -> Result<String, TlsError> {
    use pkcs8::der::pem::LineEnding;
    use pkcs8::der::{Decode, SecretDocument};
    use ring::rand::SecureRandom;

    let (label, der) = SecretDocument::from_pem(pem)
        .map_err(|e| TlsError::new(format!("The private key is not PEM: {e}")))?;
    if label != "PRIVATE KEY" {
        return Err(TlsError::new(format!(
            "The private key is {label}, not PKCS#8"
        )));
    }
    let info = pkcs8::PrivateKeyInfo::from_der(der.as_bytes())
        .map_err(|e| TlsError::new(format!("The private key is not PKCS#8: {e}")))?;
    let (mut salt, mut iv) = ([0u8; 16], [0u8; 16]);
    let rng = ring::rand::SystemRandom::new();
    rng.fill(&mut salt)
        .and_then(|()| rng.fill(&mut iv))
        .map_err(|_| TlsError::new("no randomness for the key's encryption"))?;
    let scheme =
        pkcs8::pkcs5::pbes2::Parameters::pbkdf2_sha256_aes256cbc(PBKDF2_ROUNDS, &salt, &iv)
            .map_err(|e| TlsError::new(format!("Cannot encrypt the private key: {e}")))?;
    info.encrypt_with_params(scheme, passphrase)
        .and_then(|doc| Ok(doc.to_pem("ENCRYPTED PRIVATE KEY", LineEnding::LF)?))
        .map(|pem| pem.to_string())
        .map_err(|e| TlsError::new(format!("Cannot encrypt the private key: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::material;

    #[test]
    fn issued_certificates_name_what_was_asked_and_chain_to_the_authority() {
        let now = 1_800_000_000_000;
        let (ca_cert, ca_key) = new_authority(now).unwrap();
        let names = vec!["api.example.test".to_owned(), "*.example.test".to_owned()];
        let issued = issue(&ca_cert, &ca_key, &names, now).unwrap();
        let m = material::read(
            &issued.certificate_pem,
            &issued.private_key_pem,
            &issued.chain_pem,
        )
        .unwrap();
        assert_eq!(m.domain_name, "api.example.test");
        assert_eq!(m.subject_alternative_names, names);
        assert_eq!(m.issuer, format!("CN={CA_NAME}"));
        assert_eq!(m.key_algorithm, "EC_prime256v1");
        assert_eq!(m.signature_algorithm, "SHA256WITHECDSA");
        assert_eq!(
            m.not_after_ms - m.not_before_ms,
            (LEAF_DAYS * 24 + 1) as u64 * 3_600_000
        );
        // A key that is not the certificate's is refused.
        let other = issue(&ca_cert, &ca_key, &names, now).unwrap();
        let mismatch = material::read(&issued.certificate_pem, &other.private_key_pem, "");
        assert!(mismatch.unwrap_err().0.contains("does not fit"));
        assert!(material::read("not pem", &issued.private_key_pem, "").is_err());
    }

    #[test]
    fn exported_keys_open_with_their_passphrase_only() {
        use pkcs8::der::SecretDocument;

        let now = 1_800_000_000_000;
        let (ca_cert, ca_key) = new_authority(now).unwrap();
        let issued = issue(&ca_cert, &ca_key, &["x.test".to_owned()], now).unwrap();
        let encrypted = encrypt_private_key(&issued.private_key_pem, b"s3cret").unwrap();
        assert!(encrypted.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----\n"));
        let (_, doc) = SecretDocument::from_pem(&encrypted).unwrap();
        let info = pkcs8::EncryptedPrivateKeyInfo::try_from(doc.as_bytes()).unwrap();
        let plain = info.decrypt(b"s3cret").unwrap();
        let (_, original) = SecretDocument::from_pem(&issued.private_key_pem).unwrap();
        assert_eq!(plain.as_bytes(), original.as_bytes());
        assert!(info.decrypt(b"wrong").is_err());
    }
}
