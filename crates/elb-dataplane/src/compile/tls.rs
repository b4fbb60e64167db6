//! The TLS configurations of HTTPS and TLS listeners, kept across snapshots while what they
//! are made of stays the same.

use std::collections::BTreeMap;
use std::sync::Arc;

use elb_model::ssl_policy::ssl_policy;
use elb_model::{Listener as ModelListener, ListenerTls, Region, ServerCertificate};
use elb_tls::server::{Resumption, Served, SniResolver, server_config};
use elb_tls::{TlsError, material, mtls, policy};

use tracing::error;

use super::{Inputs, Kept, Runtime};

impl Runtime {
    /// The TLS configuration `listener` serves with (`None` for plain listeners), offering
    /// `alpn`. `Err` when it cannot be made, which the API prevents (only a damaged store
    /// gets there): the listener is then not served, and the log says why.
    pub(super) fn listener_tls(
        &mut self,
        inputs: &Inputs<'_>,
        listener: &ModelListener,
        alpn: &[&[u8]],
        used: &mut Kept,
    ) -> Result<Option<Arc<rustls::ServerConfig>>, ()> {
        let Some(tls) = &listener.tls else {
            return Ok(None);
        };
        self.tls_config(inputs.state, inputs.iam, (tls, alpn), used)
            .map(Some)
            .map_err(|e| error!(listener = %listener.arn, error = %e, "listener not served"))
    }

    /// The TLS configuration of an HTTPS or TLS listener offering `alpn` (in the server's
    /// order of preference), rebuilt only when its policy, its certificates or their
    /// material changed.
    fn tls_config(
        &mut self,
        state: &Region,
        iam: &BTreeMap<String, ServerCertificate>,
        (tls, alpn): (&ListenerTls, &[&[u8]]),
        used: &mut Kept,
    ) -> Result<Arc<rustls::ServerConfig>, String> {
        let mut fingerprint = format!("{}|{alpn:?}", tls.ssl_policy);
        let mut client_auth = None;
        if let Some(mutual) = &tls.mutual_authentication {
            let (bundle, crls) = match &mutual.trust_store_arn {
                Some(arn) => {
                    let store = state
                        .trust_stores
                        .get(arn)
                        .ok_or_else(|| format!("trust store {arn} is missing"))?;
                    // Changes to the bundle or the revocation lists move `updated_ms`; the
                    // lists' ids tell apart two changes within one millisecond.
                    let ids: Vec<String> =
                        store.revocations.iter().map(|r| r.id.to_string()).collect();
                    fingerprint.push_str(&format!("|{arn}@{}#{}", store.updated_ms, ids.join(",")));
                    let crls = store.revocations.iter().map(|r| r.crl_pem.as_str());
                    (store.ca_bundle_pem.as_str(), crls.collect())
                }
                None => ("", Vec::new()),
            };
            fingerprint.push_str(&format!(
                "|{}|{}",
                mutual.mode.as_str(),
                mutual.advertise_ca_names
            ));
            client_auth = Some((mutual.mode, bundle, crls, mutual.advertise_ca_names));
        }
        let mut certificates = Vec::new();
        for arn in tls.all_certificate_arns() {
            // ACM certificates are the region's; IAM server certificates the account's.
            let cert = state
                .certificates
                .get(arn)
                .or_else(|| iam.get(arn).map(|s| &s.certificate))
                .ok_or_else(|| format!("certificate {arn} is missing"))?;
            fingerprint.push_str(&format!(
                "|{arn}@{}#{}",
                cert.updated_ms, cert.material.serial
            ));
            certificates.push(cert);
        }
        if let Some(config) = self.kept.tls.get(&fingerprint) {
            used.tls.insert(fingerprint, config.clone());
            return Ok(config.clone());
        }
        let served = certificates
            .iter()
            .map(|c| {
                let m = &c.material;
                Ok(Served {
                    names: c.names().map(str::to_owned).collect(),
                    key: material::certified_key(
                        &m.certificate_pem,
                        &m.private_key_pem,
                        &m.chain_pem,
                    )?,
                    ecdsa: m.key_algorithm.starts_with("EC"),
                })
            })
            .collect::<Result<Vec<Served>, TlsError>>()
            .map_err(|e| e.to_string())?;
        let policy = ssl_policy(&tls.ssl_policy)
            .ok_or_else(|| format!("unknown policy {}", tls.ssl_policy))?;
        let offer = policy::offer(policy).map_err(|e| e.to_string())?;
        let resumption = match &self.resumption {
            Some(r) => r.clone(),
            None => {
                let r = Resumption::new().map_err(|e| e.to_string())?;
                self.resumption.insert(r).clone()
            }
        };
        let resolver = SniResolver::new(&served[0], &served[1..]);
        let client_auth = client_auth
            .map(|(mode, bundle, crls, advertise)| {
                mtls::client_verifier(mode, bundle, &crls, advertise)
            })
            .transpose()
            .map_err(|e| e.to_string())?;
        let config = server_config(offer, resolver, &resumption, alpn, client_auth)
            .map_err(|e| e.to_string())?;
        used.tls.insert(fingerprint, config.clone());
        Ok(config)
    }
}
