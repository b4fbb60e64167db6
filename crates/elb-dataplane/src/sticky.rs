//! Sticky sessions as ALB keeps them: cookies it sets and reads back. `AWSALB` (and
//! `AWSALBCORS`) name a target for `lb_cookie` stickiness, `AWSALBAPP-0` does the same for
//! `app_cookie` stickiness, and `AWSALBTG` (and `AWSALBTGCORS`) name the target group of a
//! weighted forward. Values are opaque and tamper-proof: AES-256-GCM under a key kept in the
//! store, over the group, the target and the time of issue (which bounds the stickiness
//! duration; the cookie itself lives 7 days, as AWS's do).

use std::net::SocketAddr;
use std::time::{Duration, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::{HeaderMap, HeaderValue, header};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

pub const LB_COOKIE: &str = "AWSALB";
pub const LB_COOKIE_CORS: &str = "AWSALBCORS";
pub const APP_COOKIE: &str = "AWSALBAPP-0";
pub const GROUP_COOKIE: &str = "AWSALBTG";
pub const GROUP_COOKIE_CORS: &str = "AWSALBTGCORS";
/// AWS shards the application cookie into four; elbd's values fit the first, and the others
/// are cleared as AWS clears unused ones.
const APP_COOKIE_SPARE_SHARDS: [&str; 3] = ["AWSALBAPP-1", "AWSALBAPP-2", "AWSALBAPP-3"];
/// AWS's cookies expire a week after each response, whatever the stickiness duration.
const COOKIE_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

/// A target group's `stickiness.*` attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stickiness {
    Off,
    LbCookie { duration_s: u64 },
    AppCookie { name: String, duration_s: u64 },
}

/// What a sticky cookie says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    /// The target group's id (the last part of its ARN).
    pub group: String,
    /// The target, for target stickiness; `None` in a group cookie.
    pub target: Option<SocketAddr>,
    pub issued_s: u64,
}

impl Ticket {
    pub fn fresh(&self, now_s: u64, duration_s: u64) -> bool {
        self.issued_s <= now_s && now_s - self.issued_s <= duration_s
    }

    fn encode(&self) -> String {
        let target = self
            .target
            .map_or_else(|| "-".to_owned(), |t| t.to_string());
        format!("1|{}|{target}|{}", self.group, self.issued_s)
    }

    fn decode(text: &str) -> Option<Self> {
        let mut parts = text.split('|');
        let (Some("1"), Some(group), Some(target), Some(issued), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return None;
        };
        Some(Self {
            group: group.to_owned(),
            target: match target {
                "-" => None,
                t => Some(t.parse().ok()?),
            },
            issued_s: issued.parse().ok()?,
        })
    }
}

/// Seals and opens cookie values.
pub struct CookieSealer {
    key: LessSafeKey,
    random: SystemRandom,
}

impl CookieSealer {
    /// From the store's 32-byte key in hex; `None` if it is not one.
    pub fn from_hex(hex: &str) -> Option<Self> {
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
            .collect::<Option<_>>()?;
        let key = UnboundKey::new(&AES_256_GCM, &bytes).ok()?;
        Some(Self {
            key: LessSafeKey::new(key),
            random: SystemRandom::new(),
        })
    }

    /// `base64(nonce ‖ ciphertext ‖ tag)`; a fresh random nonce each time.
    pub fn seal(&self, ticket: &Ticket) -> Option<String> {
        self.seal_for(b"", ticket.encode().as_bytes())
    }

    /// The ticket in `value`, or `None` for anything not sealed by this key, altered or
    /// malformed: the caller then picks afresh, without an error.
    pub fn open(&self, value: &str) -> Option<Ticket> {
        Ticket::decode(std::str::from_utf8(&self.open_for(b"", value)?).ok()?)
    }

    /// Seals `data` for one `purpose` (authenticated, not encrypted, with it): a value sealed
    /// for one purpose does not open for another, so a stickiness cookie is never a session.
    pub fn seal_for(&self, purpose: &[u8], data: &[u8]) -> Option<String> {
        let mut nonce = [0u8; NONCE_LEN];
        self.random.fill(&mut nonce).ok()?;
        let mut data = data.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(purpose),
                &mut data,
            )
            .ok()?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        Some(STANDARD.encode(out))
    }

    /// What [`CookieSealer::seal_for`] sealed for `purpose`, or `None`.
    pub fn open_for(&self, purpose: &[u8], value: &str) -> Option<Vec<u8>> {
        let raw = STANDARD.decode(value).ok()?;
        if raw.len() < NONCE_LEN {
            return None;
        }
        let (nonce, sealed) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut sealed = sealed.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(purpose), &mut sealed)
            .ok()?;
        Some(plain.to_vec())
    }
}

/// The value of the first request cookie called `name`.
pub fn request_cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

/// Whether a response sets the cookie `name`.
pub fn response_sets(headers: &HeaderMap, name: &str) -> bool {
    headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split_once('='))
        .any(|(n, _)| n.trim() == name)
}

/// Appends `Set-Cookie: NAME=VALUE; Expires=…; Path=/`, and the CORS twin (same value,
/// `SameSite=None; Secure`) when one is named.
pub fn set(headers: &mut HeaderMap, name: &str, cors: Option<&str>, value: &str, now_s: u64) {
    let expires =
        httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(now_s) + COOKIE_LIFETIME);
    let mut add = |text: String| {
        if let Ok(v) = HeaderValue::try_from(text) {
            headers.append(header::SET_COOKIE, v);
        }
    };
    add(format!("{name}={value}; Expires={expires}; Path=/"));
    if let Some(cors) = cors {
        add(format!(
            "{cors}={value}; Expires={expires}; Path=/; SameSite=None; Secure"
        ));
    }
}

/// `AWSALBAPP-0` with the value, and the unused shards cleared.
pub fn set_app(headers: &mut HeaderMap, value: &str, now_s: u64) {
    set(headers, APP_COOKIE, None, value, now_s);
    for shard in APP_COOKIE_SPARE_SHARDS {
        set(headers, shard, None, "_remove_", now_s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer() -> CookieSealer {
        CookieSealer::from_hex(&"ab".repeat(32)).unwrap()
    }

    #[test]
    fn tickets_round_trip_and_tampering_is_refused() {
        let s = sealer();
        let ticket = Ticket {
            group: "0123456789abcdef".into(),
            target: Some("127.0.0.1:9001".parse().unwrap()),
            issued_s: 1_800_000_000,
        };
        let value = s.seal(&ticket).unwrap();
        assert_ne!(value, s.seal(&ticket).unwrap(), "fresh nonce each time");
        assert_eq!(s.open(&value), Some(ticket.clone()));
        let mut raw = STANDARD.decode(&value).unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        assert_eq!(s.open(&STANDARD.encode(raw)), None);
        assert_eq!(s.open("not base64!"), None);
        assert_eq!(s.open(""), None);
        let other = CookieSealer::from_hex(&"cd".repeat(32)).unwrap();
        assert_eq!(other.open(&value), None);
        let session = s.seal_for(b"session", b"alice").unwrap();
        assert_eq!(
            s.open_for(b"session", &session).as_deref(),
            Some(&b"alice"[..])
        );
        assert_eq!(
            s.open_for(b"state", &session),
            None,
            "sealed for another purpose"
        );
        assert_eq!(s.open_for(b"session", &value), None);
        assert!(ticket.fresh(1_800_000_060, 60));
        assert!(!ticket.fresh(1_800_000_061, 60));
    }

    #[test]
    fn cookies_are_found_among_others_and_set_as_aws_sets_them() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; AWSALB=xyz=="),
        );
        headers.append(header::COOKIE, HeaderValue::from_static("AWSALBTG=tg"));
        assert_eq!(request_cookie(&headers, LB_COOKIE), Some("xyz=="));
        assert_eq!(request_cookie(&headers, GROUP_COOKIE), Some("tg"));
        assert_eq!(request_cookie(&headers, "AWSALBCORS"), None);

        let mut out = HeaderMap::new();
        set(&mut out, LB_COOKIE, Some(LB_COOKIE_CORS), "v", 0);
        let set: Vec<&str> = out
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(
            set,
            [
                "AWSALB=v; Expires=Thu, 08 Jan 1970 00:00:00 GMT; Path=/",
                "AWSALBCORS=v; Expires=Thu, 08 Jan 1970 00:00:00 GMT; Path=/; SameSite=None; Secure",
            ]
        );
        assert!(response_sets(&out, "AWSALBCORS"));
        assert!(!response_sets(&out, "AWSALBTG"));
    }
}
