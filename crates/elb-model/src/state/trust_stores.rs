//! CreateTrustStore, ModifyTrustStore, DeleteTrustStore, and the mutual-TLS settings of
//! listeners that use them.

use super::{Outcome, Region, Tags};
use crate::error::{ErrorCode, ModelError, Result};
use crate::id::Context;
use crate::listener::ListenerProtocol;
use crate::trust_store::{
    MAX_IDENTITY_FILTERS, MAX_REVOKED_ENTRIES, MtlsMode, MutualAuthentication, Revocation,
    TrustStore,
};

impl Region {
    pub(super) fn create_trust_store(
        &mut self,
        name: String,
        ca_bundle_pem: String,
        ca_certificates: usize,
        origin: super::Origin,
        cx: &mut Context<'_>,
    ) -> Result<Outcome> {
        let valid = !name.is_empty()
            && name.len() <= 32
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !name.starts_with('-')
            && !name.ends_with('-');
        if !valid {
            return Err(ModelError::validation(format!(
                "Trust store name '{name}' must be 1 to 32 letters, digits and hyphens, not \
                 starting or ending with a hyphen"
            )));
        }
        if self.trust_stores.values().any(|t| t.name == name) {
            return Err(ModelError::new(
                ErrorCode::DuplicateTrustStoreName,
                format!("A trust store named '{name}' already exists"),
            ));
        }
        let arn = self.scope.arn(&format!("truststore/{name}/{}", cx.hex16()));
        self.trust_stores.insert(
            arn.clone(),
            TrustStore {
                arn: arn.clone(),
                name,
                ca_bundle_pem,
                ca_certificates,
                updated_ms: cx.now_ms,
                revocations: Vec::new(),
                next_revocation_id: 1,
                tags: Tags::new(),
                origin,
            },
        );
        Ok(Outcome::Created(arn))
    }

    pub(super) fn modify_trust_store(
        &mut self,
        arn: &str,
        ca_bundle_pem: String,
        ca_certificates: usize,
        cx: &mut Context<'_>,
    ) -> Result<Outcome> {
        let store = self.trust_store_mut(arn)?;
        store.ca_bundle_pem = ca_bundle_pem;
        store.ca_certificates = ca_certificates;
        store.updated_ms = cx.now_ms;
        Ok(Outcome::Done)
    }

    /// Adds CRLs and reports their ids. One list per issuer: handshakes consult only the
    /// first list of a certificate's issuer, so a second would be silently ignored.
    pub(super) fn add_trust_store_revocations(
        &mut self,
        arn: &str,
        crls: Vec<Revocation>,
        cx: &mut Context<'_>,
    ) -> Result<Outcome> {
        let store = self.trust_store_mut(arn)?;
        let total = store.revoked_entries() + crls.iter().map(|c| c.revoked_entries).sum::<usize>();
        if total > MAX_REVOKED_ENTRIES {
            return Err(ModelError::new(
                ErrorCode::TooManyTrustStoreRevocationEntries,
                format!(
                    "Trust store '{arn}' would name {total} revoked certificates; the limit is \
                     {MAX_REVOKED_ENTRIES}"
                ),
            ));
        }
        for (i, crl) in crls.iter().enumerate() {
            let earlier = store
                .revocations
                .iter()
                .map(|r| (&r.issuer, r.id.to_string()));
            let given = crls[..i]
                .iter()
                .map(|r| (&r.issuer, "given with it".to_owned()));
            if let Some((_, which)) = earlier
                .chain(given)
                .find(|(issuer, _)| **issuer == crl.issuer)
            {
                return Err(ModelError::new(
                    ErrorCode::InvalidRevocationContent,
                    format!(
                        "Trust store '{arn}' already has a revocation list of {} ({which}); \
                         remove it first, as one list per CA is consulted",
                        crl.issuer
                    ),
                ));
            }
        }
        let mut ids = Vec::with_capacity(crls.len());
        for crl in crls {
            let id = store.next_revocation_id;
            store.next_revocation_id += 1;
            store.revocations.push(Revocation { id, ..crl });
            ids.push(id.to_string());
        }
        store.updated_ms = cx.now_ms;
        Ok(Outcome::CreatedAll(ids))
    }

    /// Removes CRLs by id, all or none.
    pub(super) fn remove_trust_store_revocations(
        &mut self,
        arn: &str,
        ids: &[u64],
        cx: &mut Context<'_>,
    ) -> Result<Outcome> {
        let store = self.trust_store_mut(arn)?;
        for id in ids {
            store.revocation(*id)?;
        }
        store.revocations.retain(|r| !ids.contains(&r.id));
        store.updated_ms = cx.now_ms;
        Ok(Outcome::Done)
    }

    fn trust_store_mut(&mut self, arn: &str) -> Result<&mut TrustStore> {
        self.trust_stores.get_mut(arn).ok_or_else(|| not_found(arn))
    }

    pub(super) fn delete_trust_store(&mut self, arn: &str) -> Result<Outcome> {
        self.trust_stores.get(arn).ok_or_else(|| not_found(arn))?;
        if let Some(user) = self.trust_store_users(arn).next() {
            return Err(ModelError::new(
                ErrorCode::TrustStoreInUse,
                format!("Trust store '{arn}' is in use by listener '{user}'"),
            ));
        }
        self.trust_stores.remove(arn);
        Ok(Outcome::Done)
    }

    /// The ARNs of the listeners that verify clients with trust store `arn`.
    pub fn trust_store_users<'a>(&'a self, arn: &'a str) -> impl Iterator<Item = &'a str> {
        self.listeners
            .values()
            .filter(move |l| {
                l.tls
                    .as_ref()
                    .and_then(|t| t.mutual_authentication.as_ref())
                    .and_then(|m| m.trust_store_arn.as_deref())
                    == Some(arn)
            })
            .map(|l| l.arn.as_str())
    }

    /// Mutual TLS on a listener of `protocol`: HTTPS listeners verify or pass the chain
    /// through; TLS listeners (network load balancers) only verify, and only they take
    /// identity filters, as AWS's. Verify mode needs a trust store that exists; passthrough
    /// takes none.
    pub(super) fn check_mutual_authentication(
        &self,
        protocol: ListenerProtocol,
        mutual: Option<&MutualAuthentication>,
    ) -> Result<()> {
        let Some(mutual) = mutual else {
            return Ok(());
        };
        let filters = &mutual.identity_filters;
        if protocol == ListenerProtocol::Tls && mutual.mode == MtlsMode::Passthrough {
            return Err(ModelError::validation(
                "The mutual authentication mode of a TLS listener must be off or verify",
            ));
        }
        if !filters.is_empty() && protocol != ListenerProtocol::Tls {
            return Err(ModelError::validation(
                "Client certificate identity filters apply to TLS listeners of network load \
                 balancers only",
            ));
        }
        if !filters.is_empty() && mutual.mode != MtlsMode::Verify {
            return Err(ModelError::validation(
                "Client certificate identity filters can be specified only in verify mode",
            ));
        }
        if filters.len() > MAX_IDENTITY_FILTERS {
            return Err(ModelError::validation(format!(
                "A listener can have at most {MAX_IDENTITY_FILTERS} client certificate identity \
                 filters"
            )));
        }
        for filter in filters {
            filter.check()?;
        }
        match (mutual.mode, &mutual.trust_store_arn) {
            (MtlsMode::Verify, None) => Err(ModelError::validation(
                "Mutual authentication in verify mode needs a trust store",
            )),
            (MtlsMode::Verify, Some(arn)) if !self.trust_stores.contains_key(arn) => {
                Err(not_found(arn))
            }
            (MtlsMode::Passthrough, Some(_)) => Err(ModelError::validation(
                "A trust store applies to verify mode only, not passthrough",
            )),
            _ => Ok(()),
        }
    }
}

pub(super) fn not_found(arn: &str) -> ModelError {
    ModelError::new(
        ErrorCode::TrustStoreNotFound,
        format!("Trust store '{arn}' not found"),
    )
}
