//! `jwt-validation` actions' check of a bearer token against the issuer's JSON Web Key Set,
//! as ALB makes it: RS256 only, `iss` and `exp` required, `nbf` and `iat` when present, then
//! the additional claims. Pure: the key set and the time come in.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use elb_model::{AdditionalClaim, ClaimFormat};
use http::{HeaderMap, header};
use ring::signature::{RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents};
use serde_json::{Map, Value};

/// ALB's limits on a key set.
pub const MAX_JWKS_BYTES: usize = 150 * 1024;
const MAX_KEYS: usize = 10;
/// How far a token's `nbf` and `iat` may be ahead of this clock.
const LEEWAY_S: f64 = 60.0;

/// The RSA keys of a JWKS document, by key id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySet {
    keys: Vec<(Option<String>, RsaKey)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct RsaKey {
    n: Vec<u8>,
    e: Vec<u8>,
}

impl KeySet {
    /// A JWKS document of at most 150 KB and 10 keys; its RSA signing keys (others, which
    /// RS256 cannot use, are passed over).
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        if body.len() > MAX_JWKS_BYTES {
            return Err(format!("the key set is over {MAX_JWKS_BYTES} bytes"));
        }
        let document: Map<String, Value> =
            serde_json::from_slice(body).map_err(|_| "the key set is not a JSON object")?;
        let listed = document
            .get("keys")
            .and_then(Value::as_array)
            .ok_or("the key set has no keys")?;
        if listed.len() > MAX_KEYS {
            return Err(format!("the key set has over {MAX_KEYS} keys"));
        }
        let text =
            |key: &Value, name: &str| key.get(name).and_then(Value::as_str).map(str::to_owned);
        let keys = listed
            .iter()
            .filter(|k| text(k, "kty").as_deref() == Some("RSA"))
            .filter(|k| text(k, "use").is_none_or(|u| u == "sig"))
            .filter(|k| text(k, "alg").is_none_or(|a| a == "RS256"))
            .filter_map(|k| {
                // Big-endian, without the leading zeros some encoders add (ring takes none).
                let number = |name| {
                    let bytes = URL_SAFE_NO_PAD.decode(text(k, name)?).ok()?;
                    let first = bytes.iter().position(|b| *b != 0)?;
                    Some(bytes[first..].to_vec())
                };
                Some((
                    text(k, "kid"),
                    RsaKey {
                        n: number("n")?,
                        e: number("e")?,
                    },
                ))
            })
            .collect::<Vec<_>>();
        if keys.is_empty() {
            return Err("the key set has no RSA signing key".to_owned());
        }
        Ok(Self { keys })
    }
}

/// Why a token is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenFailure {
    #[error("the request has no bearer token")]
    Missing,
    #[error("the request has more than one Authorization header")]
    Several,
    #[error("the token is not a JWT")]
    Malformed,
    #[error("the token is signed {0}, not RS256")]
    Algorithm(String),
    /// No key of the set has the token's key id: the set may have changed since it was read.
    #[error("no key of the issuer's key set is '{0}'")]
    UnknownKey(String),
    #[error("the token's signature does not verify")]
    Signature,
    #[error("the token's issuer is not the action's")]
    Issuer,
    #[error("the token has expired, or has no expiry")]
    Expired,
    #[error("the token is not valid yet")]
    NotYet,
    #[error("the token's claim '{0}' is not one the action takes")]
    Claim(String),
}

/// The request's `Authorization: Bearer` token. Two `Authorization` headers are refused:
/// one would be checked and the other might be the one a target reads.
pub fn bearer(headers: &HeaderMap) -> Result<&str, TokenFailure> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let value = values
        .next()
        .and_then(|v| v.to_str().ok())
        .ok_or(TokenFailure::Missing)?;
    if values.next().is_some() {
        return Err(TokenFailure::Several);
    }
    let (scheme, token) = value.split_once(' ').ok_or(TokenFailure::Missing)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(TokenFailure::Missing);
    }
    Ok(token.trim())
}

/// Checks `token` as the action `(issuer, claims)` asks, with the keys of `keys`, at `now_s`.
pub fn verify(
    token: &str,
    keys: &KeySet,
    (issuer, claims): (&str, &[AdditionalClaim]),
    now_s: u64,
) -> Result<(), TokenFailure> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenFailure::Malformed);
    };
    let json = |part: &str| -> Result<Map<String, Value>, TokenFailure> {
        let bytes = URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| TokenFailure::Malformed)?;
        serde_json::from_slice(&bytes).map_err(|_| TokenFailure::Malformed)
    };
    let head = json(header)?;
    let alg = head.get("alg").and_then(Value::as_str).unwrap_or("none");
    if alg != "RS256" {
        return Err(TokenFailure::Algorithm(alg.to_owned()));
    }
    // Extensions that must be understood: elbd understands none (RFC 7515 4.1.11).
    if head.contains_key("crit") {
        return Err(TokenFailure::Malformed);
    }
    let kid = head.get("kid").and_then(Value::as_str);
    // A token without a key id is taken only from a set of one key: one verification.
    let key = match kid {
        Some(kid) => keys.keys.iter().find(|(id, _)| id.as_deref() == Some(kid)),
        None => match keys.keys.as_slice() {
            [only] => Some(only),
            _ => None,
        },
    }
    .map(|(_, key)| key)
    .ok_or_else(|| TokenFailure::UnknownKey(kid.unwrap_or("-").to_owned()))?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| TokenFailure::Malformed)?;
    let signed = &token[..header.len() + 1 + payload.len()];
    let components = RsaPublicKeyComponents {
        n: &key.n,
        e: &key.e,
    };
    let verified = signature.len() == key.n.len()
        && components
            .verify(&RSA_PKCS1_2048_8192_SHA256, signed.as_bytes(), &signature)
            .is_ok();
    if !verified {
        return Err(TokenFailure::Signature);
    }
    let body = json(payload)?;
    if body.get("iss").and_then(Value::as_str) != Some(issuer) {
        return Err(TokenFailure::Issuer);
    }
    let time = |name: &str| body.get(name).and_then(Value::as_f64);
    let now = now_s as f64;
    if time("exp").is_none_or(|exp| exp <= now) {
        return Err(TokenFailure::Expired);
    }
    if ["nbf", "iat"]
        .iter()
        .any(|name| time(name).is_some_and(|t| t > now + LEEWAY_S))
    {
        return Err(TokenFailure::NotYet);
    }
    for claim in claims {
        if !holds(body.get(&claim.name), claim) {
            return Err(TokenFailure::Claim(claim.name.clone()));
        }
    }
    Ok(())
}

/// Whether an unverified token claims `issuer` and an expiry ahead: only such a token is
/// worth reading the issuer's key set again for.
pub fn plausible(token: &str, issuer: &str, now_s: u64) -> bool {
    let claims = token
        .split('.')
        .nth(1)
        .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
        .and_then(|json| serde_json::from_slice::<Map<String, Value>>(&json).ok());
    claims.is_some_and(|c| {
        c.get("iss").and_then(Value::as_str) == Some(issuer)
            && c.get("exp")
                .and_then(Value::as_f64)
                .is_some_and(|exp| exp > now_s as f64)
    })
}

/// Whether the token's `value` of a claim has one of the action's values, in its format.
fn holds(value: Option<&Value>, claim: &AdditionalClaim) -> bool {
    let wanted = |v: &str| claim.values.iter().any(|w| w == v);
    match (claim.format, value) {
        (ClaimFormat::SingleString, Some(Value::String(s))) => wanted(s),
        (ClaimFormat::StringArray, Some(Value::Array(items))) => {
            items.iter().filter_map(Value::as_str).any(wanted)
        }
        (ClaimFormat::SpaceSeparatedValues, Some(Value::String(s))) => s.split(' ').any(wanted),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;
    use ring::rand::SystemRandom;
    use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};

    use super::*;

    /// A fresh 2048-bit RSA key (PKCS#1 DER) from openssl: ring makes none.
    fn key() -> RsaKeyPair {
        let der = std::process::Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
            ])
            .args(["-outform", "DER"])
            .output()
            .unwrap()
            .stdout;
        RsaKeyPair::from_der(&der).unwrap()
    }

    fn jwks(key: &RsaKeyPair, kid: &str) -> KeySet {
        let public: RsaPublicKeyComponents<Vec<u8>> = key.public().into();
        let n = URL_SAFE_NO_PAD.encode(&public.n);
        let e = URL_SAFE_NO_PAD.encode(&public.e);
        let doc = format!(
            r#"{{"keys":[{{"kty":"EC","kid":"ec"}},{{"kty":"RSA","kid":"{kid}","n":"{n}","e":"{e}","use":"sig"}}]}}"#
        );
        KeySet::parse(doc.as_bytes()).unwrap()
    }

    fn sign(key: &RsaKeyPair, header: &str, payload: &str) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let mut signature = vec![0; key.public().modulus_len()];
        key.sign(
            &RSA_PKCS1_SHA256,
            &SystemRandom::new(),
            input.as_bytes(),
            &mut signature,
        )
        .unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    fn scope(values: &[&str]) -> AdditionalClaim {
        AdditionalClaim {
            format: ClaimFormat::SpaceSeparatedValues,
            name: "scope".into(),
            values: values.iter().map(|v| (*v).to_owned()).collect(),
        }
    }

    #[test]
    fn tokens_verify_with_the_issuers_key_claims_and_time() {
        let (signer, stranger) = (key(), key());
        let keys = jwks(&signer, "k1");
        let header = r#"{"alg":"RS256","kid":"k1"}"#;
        let payload = r#"{"iss":"https://idp","exp":200,"nbf":100,"scope":"read write"}"#;
        let token = sign(&signer, header, payload);
        let action = ("https://idp", &[scope(&["write", "admin"])][..]);
        assert_eq!(verify(&token, &keys, action, 150), Ok(()));
        assert_eq!(
            verify(&token, &keys, action, 200),
            Err(TokenFailure::Expired)
        );
        assert_eq!(verify(&token, &keys, action, 30), Err(TokenFailure::NotYet));
        let narrower = ("https://idp", &[scope(&["admin"])][..]);
        assert_eq!(
            verify(&token, &keys, narrower, 150),
            Err(TokenFailure::Claim("scope".into()))
        );
        assert_eq!(
            verify(&token, &keys, ("https://other", &[]), 150),
            Err(TokenFailure::Issuer)
        );
        let forged = sign(&stranger, header, payload);
        assert_eq!(
            verify(&forged, &keys, action, 150),
            Err(TokenFailure::Signature)
        );
        let unnamed = sign(&signer, r#"{"alg":"RS256"}"#, payload);
        assert_eq!(
            verify(&unnamed, &keys, action, 150),
            Ok(()),
            "the set's one key"
        );
        let critical = sign(
            &signer,
            r#"{"alg":"RS256","kid":"k1","crit":["x"]}"#,
            payload,
        );
        assert_eq!(
            verify(&critical, &keys, action, 150),
            Err(TokenFailure::Malformed)
        );
        assert!(plausible(&token, "https://idp", 150));
        assert!(!plausible(&token, "https://idp", 200), "expired");
        assert!(!plausible(&token, "https://other", 150));
        let rotated = sign(&signer, r#"{"alg":"RS256","kid":"k2"}"#, payload);
        assert_eq!(
            verify(&rotated, &keys, action, 150),
            Err(TokenFailure::UnknownKey("k2".into()))
        );
        let unsigned = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
            URL_SAFE_NO_PAD.encode(payload)
        );
        assert_eq!(
            verify(&unsigned, &keys, action, 150),
            Err(TokenFailure::Algorithm("none".into()))
        );
        assert_eq!(
            verify("a.b", &keys, action, 150),
            Err(TokenFailure::Malformed)
        );
    }

    #[test]
    fn claims_match_in_their_format_and_bearer_tokens_are_found() {
        let claim = |format, values: &[&str]| AdditionalClaim {
            format,
            name: "c".into(),
            values: values.iter().map(|v| (*v).to_owned()).collect(),
        };
        let value: Value = serde_json::json!(["a", "b"]);
        assert!(holds(
            Some(&value),
            &claim(ClaimFormat::StringArray, &["b"])
        ));
        assert!(!holds(
            Some(&value),
            &claim(ClaimFormat::SingleString, &["b"])
        ));
        let single = Value::from("b");
        assert!(holds(
            Some(&single),
            &claim(ClaimFormat::SingleString, &["a", "b"])
        ));
        assert!(!holds(None, &claim(ClaimFormat::SingleString, &["b"])));

        let mut headers = HeaderMap::new();
        assert_eq!(bearer(&headers), Err(TokenFailure::Missing));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer t.o.k"),
        );
        assert_eq!(bearer(&headers), Ok("t.o.k"));
        headers.append(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer x.y.z"),
        );
        assert_eq!(bearer(&headers), Err(TokenFailure::Several));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic dTpw"),
        );
        assert_eq!(bearer(&headers), Err(TokenFailure::Missing));
    }

    #[test]
    fn key_sets_are_bounded() {
        let many = format!(r#"{{"keys":[{}]}}"#, [r#"{"kty":"RSA"}"#; 11].join(","));
        assert!(KeySet::parse(many.as_bytes()).is_err());
        assert!(KeySet::parse(&vec![b' '; MAX_JWKS_BYTES + 1]).is_err());
        assert!(KeySet::parse(b"[]").is_err());
        assert!(
            KeySet::parse(br#"{"keys":[{"kty":"EC","kid":"e"}]}"#).is_err(),
            "no RSA key"
        );
        let padded = KeySet::parse(br#"{"keys":[{"kty":"RSA","n":"AAEC","e":"AQAB"}]}"#).unwrap();
        assert_eq!(padded.keys[0].1.n, [1, 2], "leading zeros dropped");
    }
}
