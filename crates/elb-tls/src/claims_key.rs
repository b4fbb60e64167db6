//! The key that signs the user claims authenticate actions hand to targets
//! (`x-amzn-oidc-data`, an ES256 JWT), and its public half as ALB publishes it: PEM, under a
//! key id the JWT's header names.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256, PublicKeyData};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};

use crate::TlsError;

/// A new P-256 key, PKCS#8 PEM, for [`elb_model::Secrets::claims_key_pem`].
pub fn new_claims_key() -> Result<String, TlsError> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
        .map_err(|e| TlsError::new(format!("no claims-signing key could be made: {e}")))?;
    Ok(key.serialize_pem())
}

/// The claims key, ready to sign.
pub struct ClaimsKey {
    key: EcdsaKeyPair,
    random: SystemRandom,
    id: String,
    public_pem: String,
}

impl std::fmt::Debug for ClaimsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClaimsKey").field("id", &self.id).finish()
    }
}

impl ClaimsKey {
    pub fn from_pem(pem: &str) -> Result<Self, TlsError> {
        let bad = |e: &dyn std::fmt::Display| TlsError::new(format!("the claims key: {e}"));
        let parsed = KeyPair::from_pem(pem).map_err(|e| bad(&e))?;
        let random = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &parsed.serialize_der(),
            &random,
        )
        .map_err(|e| bad(&e))?;
        // The id is the public key's digest, so a key id names one key for good.
        let public_der = parsed.subject_public_key_info();
        let digest = ring::digest::digest(&ring::digest::SHA256, &public_der);
        let id = digest.as_ref()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(Self {
            key,
            random,
            id,
            public_pem: parsed.public_key_pem(),
        })
    }

    /// The key id: the JWT header's `kid`, and the path `GET /elbd/public-keys/ID` serves.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The public key, PEM (`BEGIN PUBLIC KEY`).
    pub fn public_pem(&self) -> &str {
        &self.public_pem
    }

    /// `header.payload.signature`: the two JSON documents base64url-encoded and signed ES256
    /// (r ‖ s, as JWS has it).
    pub fn sign_jwt(&self, header: &str, payload: &str) -> Result<String, TlsError> {
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let signature = self
            .key
            .sign(&self.random, signing_input.as_bytes())
            .map_err(|_| TlsError::new("the claims could not be signed"))?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.as_ref())
        ))
    }
}

#[cfg(test)]
mod tests {
    use ring::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};

    use super::*;

    #[test]
    fn a_signed_jwt_verifies_with_the_published_key_and_nothing_else_does() {
        let key = ClaimsKey::from_pem(&new_claims_key().unwrap()).unwrap();
        let again = ClaimsKey::from_pem(&new_claims_key().unwrap()).unwrap();
        assert_ne!(key.id(), again.id());
        assert_eq!(key.id().len(), 32);
        assert!(key.public_pem().starts_with("-----BEGIN PUBLIC KEY-----"));
        let jwt = key
            .sign_jwt(r#"{"alg":"ES256"}"#, r#"{"sub":"alice"}"#)
            .unwrap();
        let (input, signature) = jwt.rsplit_once('.').unwrap();
        let signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
        assert_eq!(signature.len(), 64);
        // The uncompressed point is the SubjectPublicKeyInfo's last 65 bytes.
        let point = |k: &ClaimsKey| {
            let body: String = k
                .public_pem()
                .lines()
                .filter(|l| !l.starts_with("-----"))
                .collect();
            let der = base64::engine::general_purpose::STANDARD
                .decode(body)
                .unwrap();
            der[der.len() - 65..].to_vec()
        };
        let verify = |k: &ClaimsKey, input: &str| {
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point(k))
                .verify(input.as_bytes(), &signature)
                .is_ok()
        };
        assert!(verify(&key, input));
        assert!(!verify(&again, input));
        assert!(!verify(&key, &input.replacen('e', "f", 1)));
        let header = input.split('.').next().unwrap();
        assert_eq!(
            URL_SAFE_NO_PAD.decode(header).unwrap(),
            br#"{"alg":"ES256"}"#
        );
    }
}
