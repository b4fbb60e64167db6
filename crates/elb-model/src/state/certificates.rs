//! ACM certificates, the certificates of HTTPS listeners, and the store's own secrets.

use super::{ImportCertificate, Outcome, Region, Tags};
use crate::certificate::{Certificate, CertificateKind};
use crate::error::{ErrorCode, ModelError, Result};
use crate::id::Context;
use crate::listener::{AlpnPolicy, ListenerProtocol, ListenerTls};
use crate::ssl_policy::{DEFAULT_SSL_POLICY, ssl_policy};
use crate::trust_store::MutualAuthentication;

/// AWS's quota of certificates per listener besides the default one.
const MAX_LISTENER_CERTIFICATES: usize = 25;

impl Region {
    pub(super) fn import_certificate(
        &mut self,
        c: ImportCertificate,
        cx: &mut Context<'_>,
    ) -> Result<Outcome> {
        if let Some(arn) = c.arn {
            // A re-import replaces the material; the ARN, tags and the listeners using it stay.
            let cert = self.certificate_mut(&arn)?;
            if cert.kind != c.kind {
                return Err(ModelError::validation(format!(
                    "Certificate '{arn}' was not imported; only imported certificates can be \
                     re-imported"
                )));
            }
            if cert.revoked.is_some() {
                return Err(ModelError::validation(format!(
                    "Certificate '{arn}' is revoked"
                )));
            }
            cert.material = c.material;
            cert.updated_ms = cx.now_ms;
            return Ok(Outcome::Created(arn));
        }
        if let Some(token) = &c.idempotency_token
            && let Some(same) = self.certificates.values().find(|cert| {
                cert.idempotency_token.as_ref() == Some(token)
                    && cert.material.domain_name == c.material.domain_name
            })
        {
            return Ok(Outcome::Created(same.arn.clone()));
        }
        let uuid = cx.uuid();
        let arn = self
            .scope
            .service_arn("acm", &format!("certificate/{uuid}"));
        self.certificates.insert(
            arn.clone(),
            Certificate {
                arn: arn.clone(),
                kind: c.kind,
                material: c.material,
                created_ms: cx.now_ms,
                updated_ms: cx.now_ms,
                idempotency_token: c.idempotency_token,
                options: c.options,
                validation: c.validation,
                exported: false,
                revoked: None,
                tags: Tags::new(),
                origin: c.origin,
            },
        );
        if !c.tags.is_empty() {
            self.add_tags(std::slice::from_ref(&arn), &c.tags)?;
        }
        Ok(Outcome::Created(arn))
    }

    pub(super) fn update_certificate_options(
        &mut self,
        arn: &str,
        transparency_logging: Option<bool>,
        export: Option<bool>,
    ) -> Result<Outcome> {
        let cert = self.certificate_mut(arn)?;
        // AWS: "You cannot update the value of Export after the certificate is created."
        if export.is_some_and(|e| e != cert.options.export) {
            return Err(ModelError::validation(format!(
                "Options.Export of certificate '{arn}' is set when it is requested and cannot \
                 change"
            )));
        }
        if let Some(logging) = transparency_logging {
            cert.options.transparency_logging = logging;
        }
        if let Some(export) = export {
            cert.options.export = export;
        }
        Ok(Outcome::Done)
    }

    pub(super) fn export_certificate(&mut self, arn: &str, cx: &Context<'_>) -> Result<Outcome> {
        let cert = self.certificate_mut(arn)?;
        let exportable = cert.kind == CertificateKind::AmazonIssued && cert.options.export;
        if !exportable {
            return Err(ModelError::validation(format!(
                "Certificate '{arn}' is not exportable: only certificates requested with \
                 Options.Export ENABLED are"
            )));
        }
        if cert.revoked.is_some() || cert.material.not_after_ms < cx.now_ms {
            return Err(ModelError::new(
                ErrorCode::InvalidState,
                format!("Certificate '{arn}' is not ISSUED"),
            ));
        }
        cert.exported = true;
        Ok(Outcome::Done)
    }

    pub(super) fn revoke_certificate(
        &mut self,
        arn: &str,
        reason: String,
        cx: &Context<'_>,
    ) -> Result<Outcome> {
        if let Some(user) = self.certificate_users(arn).next() {
            return Err(ModelError::new(
                ErrorCode::ResourceInUse,
                format!("Certificate '{arn}' is in use by listener '{user}'"),
            ));
        }
        let cert = self.certificate_mut(arn)?;
        if !cert.exported || cert.revoked.is_some() {
            return Err(ModelError::new(
                ErrorCode::InvalidState,
                format!("Certificate '{arn}' can be revoked once, after it has been exported"),
            ));
        }
        cert.revoked = Some((cx.now_ms, reason));
        Ok(Outcome::Done)
    }

    pub(super) fn delete_certificate(&mut self, arn: &str) -> Result<Outcome> {
        self.certificate(arn)?;
        if let Some(user) = self.certificate_users(arn).next() {
            return Err(ModelError::new(
                ErrorCode::ResourceInUse,
                format!("Certificate '{arn}' is in use by listener '{user}'"),
            ));
        }
        self.certificates.remove(arn);
        Ok(Outcome::Done)
    }

    /// The ARNs of the listeners that present certificate `arn`.
    pub fn certificate_users<'a>(&'a self, arn: &'a str) -> impl Iterator<Item = &'a str> {
        self.listeners
            .values()
            .filter(move |l| {
                l.tls
                    .as_ref()
                    .is_some_and(|t| t.all_certificate_arns().any(|c| c == arn))
            })
            .map(|l| l.arn.as_str())
    }

    pub(super) fn add_listener_certificates(
        &mut self,
        listener_arn: &str,
        arns: &[String],
    ) -> Result<Outcome> {
        for arn in arns {
            self.servable_certificate(arn)?;
        }
        let listener = self.listener_mut(listener_arn)?;
        let tls = listener.tls.as_mut().ok_or_else(|| not_tls(listener_arn))?;
        for arn in arns {
            if *arn != tls.default_certificate_arn && !tls.certificate_arns.contains(arn) {
                tls.certificate_arns.push(arn.clone());
            }
        }
        if tls.certificate_arns.len() > MAX_LISTENER_CERTIFICATES {
            return Err(ModelError::new(
                ErrorCode::TooManyCertificates,
                format!(
                    "A listener can have at most {MAX_LISTENER_CERTIFICATES} certificates \
                     besides its default one"
                ),
            ));
        }
        Ok(Outcome::Done)
    }

    pub(super) fn remove_listener_certificates(
        &mut self,
        listener_arn: &str,
        arns: &[String],
    ) -> Result<Outcome> {
        let listener = self.listener_mut(listener_arn)?;
        let tls = listener.tls.as_mut().ok_or_else(|| not_tls(listener_arn))?;
        if arns.contains(&tls.default_certificate_arn) {
            return Err(ModelError::new(
                ErrorCode::OperationNotPermitted,
                "The default certificate cannot be removed; change it with ModifyListener",
            ));
        }
        tls.certificate_arns.retain(|a| !arns.contains(a));
        Ok(Outcome::Done)
    }

    /// The TLS settings a listener of `protocol` gets from a policy name and a certificate
    /// list: `None` for plain protocols, which must name neither. ALPN policies are for TLS
    /// listeners.
    pub(super) fn listener_tls(
        &self,
        protocol: ListenerProtocol,
        ssl_policy_name: Option<&str>,
        certificate_arns: &[String],
        (mutual_authentication, alpn_policy): (Option<MutualAuthentication>, Option<AlpnPolicy>),
    ) -> Result<Option<ListenerTls>> {
        if !protocol.is_tls() {
            if ssl_policy_name.is_some()
                || !certificate_arns.is_empty()
                || mutual_authentication.is_some()
                || alpn_policy.is_some()
            {
                return Err(ModelError::validation(format!(
                    "A {} listener cannot have an SSL policy, certificates, mutual \
                     authentication or an ALPN policy",
                    protocol.as_str()
                )));
            }
            return Ok(None);
        }
        if protocol == ListenerProtocol::Https && alpn_policy.is_some() {
            return Err(ModelError::validation(
                "ALPN policies apply to TLS listeners only",
            ));
        }
        self.check_mutual_authentication(protocol, mutual_authentication.as_ref())?;
        let name = ssl_policy_name.unwrap_or(DEFAULT_SSL_POLICY);
        let policy = ssl_policy(name).ok_or_else(|| {
            ModelError::new(
                ErrorCode::SslPolicyNotFound,
                format!("SSL policy '{name}' not found"),
            )
        })?;
        if policy.post_quantum {
            return Err(ModelError::new(
                ErrorCode::InvalidConfigurationRequest,
                format!(
                    "elbd does not offer post-quantum key exchange (X25519MLKEM768) yet; \
                     choose a policy without -PQ- instead of '{name}'"
                ),
            ));
        }
        let [default] = certificate_arns else {
            return Err(if certificate_arns.is_empty() {
                ModelError::validation(format!(
                    "A certificate must be specified for {} listeners",
                    protocol.as_str()
                ))
            } else {
                ModelError::new(
                    ErrorCode::TooManyCertificates,
                    "Exactly one default certificate can be given; add more with \
                     AddListenerCertificates",
                )
            });
        };
        self.servable_certificate(default)?;
        Ok(Some(ListenerTls {
            ssl_policy: name.to_owned(),
            default_certificate_arn: default.clone(),
            certificate_arns: Vec::new(),
            mutual_authentication,
            alpn_policy: alpn_policy.unwrap_or_default(),
        }))
    }

    pub(super) fn certificate(&self, arn: &str) -> Result<&Certificate> {
        self.certificates.get(arn).ok_or_else(|| not_found(arn))
    }

    /// A certificate a listener may present: the account's IAM server certificate, or an ACM
    /// one of this region that exists and is not revoked.
    fn servable_certificate(&self, arn: &str) -> Result<()> {
        if self.beyond.server_certificates.contains(arn) {
            return Ok(());
        }
        if self.certificate(arn)?.revoked.is_some() {
            return Err(ModelError::validation(format!(
                "Certificate '{arn}' is revoked and cannot be served"
            )));
        }
        Ok(())
    }

    fn certificate_mut(&mut self, arn: &str) -> Result<&mut Certificate> {
        self.certificates.get_mut(arn).ok_or_else(|| not_found(arn))
    }
}

pub(super) fn not_found(arn: &str) -> ModelError {
    ModelError::new(
        ErrorCode::CertificateNotFound,
        format!("Certificate '{arn}' not found"),
    )
}

fn not_tls(listener_arn: &str) -> ModelError {
    ModelError::validation(format!(
        "Listener '{listener_arn}' is not an HTTPS or TLS listener"
    ))
}
