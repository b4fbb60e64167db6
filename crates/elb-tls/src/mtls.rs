//! Mutual TLS as ALB does it: in verify mode the client chain must lead to a trust store CA;
//! in passthrough mode any chain (or none) is taken as it is. What targets learn of the
//! client certificate travels in `X-Amzn-Mtls-Clientcert*` headers.

use std::sync::Arc;

use elb_model::{CertificateIdentity, MtlsMode};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use x509_parser::extensions::GeneralName;
use x509_parser::oid_registry;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::revocation_list::CertificateRevocationList;

use crate::TlsError;

/// The CA certificates of a PEM bundle; at least one, each valid X.509.
pub fn read_bundle(pem: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::new(format!("The CA bundle is not valid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(TlsError::new("The CA bundle holds no certificate"));
    }
    for (i, cert) in certs.iter().enumerate() {
        X509Certificate::from_der(cert).map_err(|e| {
            TlsError::new(format!(
                "Certificate {} of the CA bundle is not X.509: {e}",
                i + 1
            ))
        })?;
    }
    Ok(certs)
}

/// A revocation list a trust store can verify with.
pub struct Crl {
    pub pem: String,
    /// How many certificates it revokes.
    pub revoked: usize,
    /// Its issuer, RFC 2253.
    pub issuer: String,
}

/// A revocation list as it was stored in S3 (PEM or DER), checked the way handshakes will use
/// it: one CRL that the verifier takes (v2, no delta or unknown critical extension), signed by
/// a CA of the trust store's `bundle_pem` that may sign CRLs. Without these checks one bad list
/// would leave every listener of the trust store unable to verify anyone.
pub fn read_crl(bytes: &[u8], bundle_pem: &str) -> Result<Crl, TlsError> {
    let der = match CertificateRevocationListDer::from_pem_slice(bytes) {
        Ok(der) => der,
        Err(_) => CertificateRevocationListDer::from(bytes.to_vec()),
    };
    let (rest, crl) = CertificateRevocationList::from_der(&der)
        .map_err(|e| TlsError::new(format!("The revocation file is not an X.509 CRL: {e}")))?;
    if !rest.is_empty() {
        return Err(TlsError::new("The revocation file holds more than one CRL"));
    }
    // Only what the handshake's verifier checks: a list it cannot verify would refuse every
    // client of its CA.
    let usable = [
        oid_registry::OID_PKCS1_SHA256WITHRSA,
        oid_registry::OID_PKCS1_SHA384WITHRSA,
        oid_registry::OID_PKCS1_SHA512WITHRSA,
        oid_registry::OID_PKCS1_RSASSAPSS,
        oid_registry::OID_SIG_ECDSA_WITH_SHA256,
        oid_registry::OID_SIG_ECDSA_WITH_SHA384,
        oid_registry::OID_SIG_ED25519,
    ];
    if !usable.contains(&crl.signature_algorithm.algorithm) {
        return Err(TlsError::new(format!(
            "The revocation list uses an incorrect algorithm ({}); sign it with SHA-256 or \
             better",
            crl.signature_algorithm.algorithm
        )));
    }
    let bundle = read_bundle(bundle_pem)?;
    let signer = bundle.iter().find_map(|ca| {
        let (_, ca) = X509Certificate::from_der(ca).ok()?;
        let named = ca.subject().as_raw() == crl.issuer().as_raw();
        (named && crl.verify_signature(ca.public_key()).is_ok()).then_some(ca)
    });
    let Some(signer) = signer else {
        return Err(TlsError::new(format!(
            "The revocation list of {} is not signed by a CA of this trust store",
            rfc2253(crl.issuer())
        )));
    };
    if let Ok(Some(usage)) = signer.key_usage()
        && !usage.value.crl_sign()
    {
        return Err(TlsError::new(format!(
            "CA {} may not sign revocation lists (its key usage lacks cRLSign)",
            rfc2253(signer.subject())
        )));
    }
    let b64 = base64_lines(der.as_ref());
    let pem = format!("-----BEGIN X509 CRL-----\n{b64}-----END X509 CRL-----\n");
    client_verifier(MtlsMode::Verify, bundle_pem, &[&pem], false)
        .map_err(|e| TlsError::new(format!("The revocation list cannot be used: {}", e.0)))?;
    Ok(Crl {
        pem,
        revoked: crl.iter_revoked_certificates().count(),
        issuer: rfc2253(crl.issuer()),
    })
}

/// How a listener asks for and checks client certificates: `crl_pems` are the trust store's
/// revocation lists (verify mode), which refuse the client certificates they name.
pub fn client_verifier(
    mode: MtlsMode,
    bundle_pem: &str,
    crl_pems: &[&str],
    advertise_ca_names: bool,
) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    match mode {
        MtlsMode::Passthrough => Ok(Arc::new(Passthrough(
            provider.signature_verification_algorithms,
        ))),
        MtlsMode::Verify => {
            let mut roots = RootCertStore::empty();
            for cert in read_bundle(bundle_pem)? {
                roots
                    .add(cert)
                    .map_err(|e| TlsError::new(format!("Unusable CA certificate: {e}")))?;
            }
            let crls = crl_pems
                .iter()
                .map(|pem| CertificateRevocationListDer::from_pem_slice(pem.as_bytes()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| TlsError::new(format!("Unusable revocation list: {e}")))?;
            // Only the client's own certificate is looked up, and one no list speaks of
            // passes: CAs without a list are not refused for it.
            let mut builder = WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                .with_crls(crls)
                .only_check_end_entity_revocation()
                .allow_unknown_revocation_status();
            if !advertise_ca_names {
                builder = builder.clear_root_hint_subjects();
            }
            builder
                .build()
                .map_err(|e| TlsError::new(format!("Cannot verify with this trust store: {e}")))
        }
    }
}

/// Asks for a certificate, takes whatever chain comes (or none), and only checks that the
/// client holds the key of the certificate it sent.
#[derive(Debug)]
struct Passthrough(WebPkiSupportedAlgorithms);

impl ClientCertVerifier for Passthrough {
    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// What identity filters read of a client certificate (DER): its subject's common names and
/// organizational units, its DNS and URI subject alternative names. Empty for one that does
/// not parse.
pub fn identity(leaf: &CertificateDer<'_>) -> CertificateIdentity {
    let Ok((_, cert)) = X509Certificate::from_der(leaf) else {
        return CertificateIdentity::default();
    };
    let text =
        |attr: &x509_parser::x509::AttributeTypeAndValue<'_>| attr.as_str().ok().map(str::to_owned);
    let mut identity = CertificateIdentity {
        subject_cn: cert.subject().iter_common_name().filter_map(text).collect(),
        subject_ou: cert
            .subject()
            .iter_organizational_unit()
            .filter_map(text)
            .collect(),
        ..CertificateIdentity::default()
    };
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(dns) => identity.san_dns.push((*dns).to_owned()),
                GeneralName::URI(uri) => identity.san_uri.push((*uri).to_owned()),
                _ => {}
            }
        }
    }
    identity
}

/// The headers a target gets about the client's chain (leaf first): the whole chain in
/// passthrough mode; serial, issuer, subject, validity and leaf in verify mode.
pub fn client_headers(mode: MtlsMode, chain: &[CertificateDer<'_>]) -> Vec<(&'static str, String)> {
    let Some(leaf) = chain.first() else {
        return Vec::new();
    };
    match mode {
        MtlsMode::Passthrough => {
            let all: String = chain.iter().map(|c| url_pem(c)).collect();
            vec![("x-amzn-mtls-clientcert", all)]
        }
        MtlsMode::Verify => {
            let Ok((_, cert)) = X509Certificate::from_der(leaf) else {
                return Vec::new();
            };
            let validity = cert.validity();
            let iso = |t: x509_parser::time::ASN1Time| {
                let t = t.to_datetime();
                format!(
                    "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
                    t.year(),
                    u8::from(t.month()),
                    t.day(),
                    t.hour(),
                    t.minute(),
                    t.second()
                )
            };
            vec![
                (
                    "x-amzn-mtls-clientcert-serial-number",
                    cert.raw_serial_as_string().replace(':', "").to_uppercase(),
                ),
                ("x-amzn-mtls-clientcert-issuer", rfc2253(cert.issuer())),
                ("x-amzn-mtls-clientcert-subject", rfc2253(cert.subject())),
                (
                    "x-amzn-mtls-clientcert-validity",
                    format!(
                        "NotBefore={};NotAfter={}",
                        iso(validity.not_before),
                        iso(validity.not_after)
                    ),
                ),
                ("x-amzn-mtls-clientcert-leaf", url_pem(leaf)),
            ]
        }
    }
}

/// A distinguished name most specific part first, comma-separated (RFC 2253).
fn rfc2253(name: &x509_parser::x509::X509Name<'_>) -> String {
    let text = name.to_string();
    let mut parts: Vec<&str> = text.split(", ").collect();
    parts.reverse();
    parts.join(",")
}

/// PEM, URL-encoded as ALB sends it (`%20` for spaces, `%0A` for newlines, `%3D` for `=`).
fn url_pem(der: &CertificateDer<'_>) -> String {
    let b64 = base64_lines(der.as_ref());
    let pem = format!("-----BEGIN CERTIFICATE-----\n{b64}-----END CERTIFICATE-----\n");
    let mut out = String::with_capacity(pem.len() * 2);
    for b in pem.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'+' | b'/' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn base64_lines(bytes: &[u8]) -> String {
    use base64::Engine;
    let text = base64::engine::general_purpose::STANDARD.encode(bytes);
    let mut out = String::with_capacity(text.len() + text.len() / 64 + 1);
    for line in text.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca;

    #[test]
    fn verify_mode_headers_describe_the_leaf_as_alb_does() {
        let (ca_pem, ca_key) = ca::new_authority(1_800_000_000_000).unwrap();
        let issued =
            ca::issue(&ca_pem, &ca_key, &["client.test".into()], 1_800_000_000_000).unwrap();
        let chain: Vec<CertificateDer<'static>> =
            vec![CertificateDer::from_pem_slice(issued.certificate_pem.as_bytes()).unwrap()];
        let headers: std::collections::BTreeMap<_, _> = client_headers(MtlsMode::Verify, &chain)
            .into_iter()
            .collect();
        assert_eq!(headers["x-amzn-mtls-clientcert-subject"], "CN=client.test");
        assert_eq!(
            headers["x-amzn-mtls-clientcert-issuer"],
            "CN=elbd local certificate authority"
        );
        let serial = &headers["x-amzn-mtls-clientcert-serial-number"];
        assert!(
            serial
                .bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase()),
            "{serial}"
        );
        assert!(
            headers["x-amzn-mtls-clientcert-validity"].starts_with("NotBefore=2027-01-15T"),
            "{}",
            headers["x-amzn-mtls-clientcert-validity"]
        );
        let leaf = &headers["x-amzn-mtls-clientcert-leaf"];
        assert!(
            leaf.starts_with("-----BEGIN%20CERTIFICATE-----%0A"),
            "{leaf}"
        );
        assert!(!leaf.contains('=') && !leaf.contains('\n'));
        let passthrough = client_headers(MtlsMode::Passthrough, &chain);
        assert_eq!(passthrough, vec![("x-amzn-mtls-clientcert", leaf.clone())]);
        assert!(read_bundle(&ca_pem).is_ok());
        assert!(read_bundle("").is_err());
    }
}
