//! A listener's TLS server configuration: its policy's versions and suites, its certificates
//! chosen by SNI as ELB chooses (exact name, then wildcard, then the default), ALPN, and
//! session resumption shared across configuration changes.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ClientHello, ProducesTickets, ResolvesServerCert, StoresServerSessions};
use rustls::sign::CertifiedKey;

use crate::TlsError;
use crate::policy::Offer;

/// Resumption state that outlives any one configuration, so that a certificate change does
/// not cost every client a full handshake.
#[derive(Clone)]
pub struct Resumption {
    ticketer: Arc<dyn ProducesTickets>,
    sessions: Arc<dyn StoresServerSessions>,
}

impl Resumption {
    pub fn new() -> Result<Self, TlsError> {
        Ok(Self {
            ticketer: rustls::crypto::ring::Ticketer::new()
                .map_err(|e| TlsError::new(format!("No session ticket key: {e}")))?,
            sessions: rustls::server::ServerSessionMemoryCache::new(16 * 1024),
        })
    }
}

/// A certificate the listener may serve, with the names it is good for.
pub struct Served {
    pub names: Vec<String>,
    pub key: Arc<CertifiedKey>,
    /// ELB prefers an ECDSA certificate when several match a name.
    pub ecdsa: bool,
}

/// Picks a certificate by the client's SNI name.
pub struct SniResolver {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// `*.example.com` stored under `example.com`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Arc<CertifiedKey>,
}

impl SniResolver {
    /// `default` answers clients that send no name or one no certificate has; it also
    /// competes for names like the rest.
    pub fn new(default: &Served, more: &[Served]) -> Self {
        let mut exact: HashMap<String, (bool, Arc<CertifiedKey>)> = HashMap::new();
        let mut wildcard: HashMap<String, (bool, Arc<CertifiedKey>)> = HashMap::new();
        for served in std::iter::once(default).chain(more) {
            for name in &served.names {
                let name = name.to_ascii_lowercase();
                let (map, key) = match name.strip_prefix("*.") {
                    Some(parent) => (&mut wildcard, parent.to_owned()),
                    None => (&mut exact, name),
                };
                // The first certificate for a name keeps it, unless an ECDSA one comes later
                // for a name an RSA one holds.
                let better = map
                    .get(&key)
                    .is_none_or(|(ecdsa, _)| !ecdsa && served.ecdsa);
                if better {
                    map.insert(key, (served.ecdsa, served.key.clone()));
                }
            }
        }
        let strip = |m: HashMap<String, (bool, Arc<CertifiedKey>)>| {
            m.into_iter().map(|(k, (_, v))| (k, v)).collect()
        };
        Self {
            exact: strip(exact),
            wildcard: strip(wildcard),
            default: default.key.clone(),
        }
    }

    pub fn pick(&self, server_name: Option<&str>) -> &Arc<CertifiedKey> {
        let Some(name) = server_name.map(str::to_ascii_lowercase) else {
            return &self.default;
        };
        self.exact
            .get(&name)
            .or_else(|| {
                name.split_once('.')
                    .and_then(|(_, parent)| self.wildcard.get(parent))
            })
            .unwrap_or(&self.default)
    }
}

impl fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SniResolver")
            .field("exact", &self.exact.keys().collect::<Vec<_>>())
            .field("wildcard", &self.wildcard.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.pick(client_hello.server_name()).clone())
    }
}

/// The configuration of one HTTPS or TLS listener, offering `alpn` by ALPN in this order of
/// preference; `client_auth` for mutual TLS. Listeners share `resumption`, but not those with
/// mutual TLS: a resumed session skips the client certificate's verification, so a ticket
/// taken from a listener that verifies nothing (or another trust store) would get past it.
/// They make a full handshake each time.
pub fn server_config(
    offer: Offer,
    resolver: SniResolver,
    resumption: &Resumption,
    alpn: &[&[u8]],
    client_auth: Option<Arc<dyn ClientCertVerifier>>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let builder = ServerConfig::builder_with_provider(Arc::new(offer.provider))
        .with_protocol_versions(&offer.versions)
        .map_err(|e| TlsError::new(format!("Inconsistent security policy: {e}")))?;
    let mutual = client_auth.is_some();
    let builder = match client_auth {
        Some(verifier) => builder.with_client_cert_verifier(verifier),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(Arc::new(resolver));
    config.ignore_client_order = true;
    if mutual {
        config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
    } else {
        config.ticketer = resumption.ticketer.clone();
        config.session_storage = resumption.sessions.clone();
    }
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ca, material};

    fn served(ca: &(String, String), names: &[&str]) -> Served {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let issued = ca::issue(&ca.0, &ca.1, &names, 1_800_000_000_000).unwrap();
        let key =
            material::certified_key(&issued.certificate_pem, &issued.private_key_pem, "").unwrap();
        Served {
            names,
            key,
            ecdsa: true,
        }
    }

    #[test]
    fn sni_prefers_the_exact_name_then_the_wildcard_then_the_default() {
        let ca = ca::new_authority(1_800_000_000_000).unwrap();
        let default = served(&ca, &["default.test"]);
        let api = served(&ca, &["api.example.test"]);
        let wild = served(&ca, &["*.example.test"]);
        let resolver = SniResolver::new(&default, &[wild, api]);
        let pick = |name| resolver.pick(name).cert[0].clone();
        let cert_of = |names: &[&str]| resolver.pick(Some(names[0])).cert[0].clone();
        assert_eq!(
            pick(Some("API.example.test")),
            cert_of(&["api.example.test"])
        );
        assert_ne!(
            pick(Some("www.example.test")),
            pick(Some("api.example.test"))
        );
        assert_eq!(
            pick(Some("www.example.test")),
            pick(Some("img.example.test"))
        );
        assert_eq!(pick(Some("a.b.example.test")), pick(None), "one label only");
        assert_eq!(pick(Some("other.test")), pick(None));
        assert_eq!(pick(Some("default.test")), pick(None));
    }
}
