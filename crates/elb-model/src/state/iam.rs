//! IAM server certificates: account-wide, so they live on the [`State`], not in a region.

use super::{Origin, State, Tags};
use crate::certificate::{
    Certificate, CertificateKind, CertificateMaterial, CertificateOptions, ServerCertificate,
};
use crate::error::{ErrorCode, ModelError, Result};
use crate::id::{Context, Scope};

/// UploadServerCertificate's input, the material checked by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadServerCertificate {
    /// The account (and its partition) the certificate belongs to.
    pub home: Scope,
    pub name: String,
    /// `/` or `/a/b/`.
    pub path: String,
    pub material: CertificateMaterial,
    pub tags: Vec<(String, String)>,
}

/// IAM's rules for names: 1–128 of letters, digits and `+=,.@_-`.
fn check_name(name: &str) -> Result<()> {
    let valid = (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b));
    if valid {
        Ok(())
    } else {
        Err(ModelError::validation(format!(
            "Server certificate name '{name}' must be 1 to 128 letters, digits and +=,.@_-"
        )))
    }
}

/// IAM's rules for paths: `/`, or `/…/` of printable ASCII, at most 512 characters.
fn check_path(path: &str) -> Result<()> {
    let valid = path.len() <= 512
        && path.starts_with('/')
        && path.ends_with('/')
        && path.bytes().all(|b| (0x21..=0x7e).contains(&b));
    if valid {
        Ok(())
    } else {
        Err(ModelError::validation(format!(
            "Path '{path}' must begin and end with '/' and hold printable ASCII only"
        )))
    }
}

fn no_such_entity(name: &str) -> ModelError {
    ModelError::new(
        ErrorCode::NoSuchEntity,
        format!("The Server Certificate with name {name} cannot be found."),
    )
}

impl State {
    pub fn server_certificate(&self, name: &str) -> Result<&ServerCertificate> {
        self.server_certificates
            .values()
            .find(|s| s.name == name)
            .ok_or_else(|| no_such_entity(name))
    }

    /// Returns the new certificate's ARN.
    pub fn upload_server_certificate(
        &mut self,
        upload: UploadServerCertificate,
        cx: &mut Context<'_>,
    ) -> Result<String> {
        check_name(&upload.name)?;
        check_path(&upload.path)?;
        if self.server_certificate(&upload.name).is_ok() {
            return Err(ModelError::new(
                ErrorCode::EntityAlreadyExists,
                format!(
                    "The Server Certificate with name {} already exists.",
                    upload.name
                ),
            ));
        }
        let arn = format!(
            "arn:{}:iam::{}:server-certificate{}{}",
            upload.home.partition(),
            upload.home.account,
            upload.path,
            upload.name
        );
        let certificate = Certificate {
            arn: arn.clone(),
            kind: CertificateKind::Imported,
            material: upload.material,
            created_ms: cx.now_ms,
            updated_ms: cx.now_ms,
            idempotency_token: None,
            options: CertificateOptions::default(),
            validation: Default::default(),
            exported: false,
            revoked: None,
            tags: upload.tags.into_iter().collect::<Tags>(),
            origin: Origin::Api,
        };
        let server = ServerCertificate {
            id: format!("ASCA{}", cx.hex(17).to_uppercase()),
            name: upload.name,
            path: upload.path,
            certificate,
        };
        self.server_certificates.insert(arn.clone(), server);
        Ok(arn)
    }

    /// Refused while a listener of any region presents it.
    pub fn delete_server_certificate(&mut self, name: &str) -> Result<()> {
        let arn = self.server_certificate(name)?.certificate.arn.clone();
        let user = self
            .regions
            .values()
            .find_map(|r| r.certificate_users(&arn).next());
        if let Some(user) = user {
            return Err(ModelError::new(
                ErrorCode::DeleteConflict,
                format!("Certificate: {name} is currently in use by {user}."),
            ));
        }
        self.server_certificates.remove(&arn);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::SequentialIds;

    fn upload(name: &str, path: &str) -> UploadServerCertificate {
        UploadServerCertificate {
            home: Scope::default(),
            name: name.into(),
            path: path.into(),
            material: CertificateMaterial::default(),
            tags: vec![],
        }
    }

    #[test]
    fn names_and_paths_follow_iam_and_names_are_unique() {
        let mut state = State::default();
        let mut ids = SequentialIds::default();
        let mut cx = Context {
            ids: &mut ids,
            now_ms: 0,
        };
        let arn = state
            .upload_server_certificate(upload("site", "/web/"), &mut cx)
            .unwrap();
        assert_eq!(arn, "arn:aws:iam::123456789012:server-certificate/web/site");
        assert!(
            state
                .server_certificate("site")
                .unwrap()
                .id
                .starts_with("ASCA")
        );
        let twice = state.upload_server_certificate(upload("site", "/"), &mut cx);
        assert_eq!(twice.unwrap_err().code, ErrorCode::EntityAlreadyExists);
        for (name, path) in [("", "/"), ("a b", "/"), ("ok", "web/"), ("ok", "/web")] {
            let bad = state.upload_server_certificate(upload(name, path), &mut cx);
            assert_eq!(
                bad.unwrap_err().code,
                ErrorCode::ValidationError,
                "{name} {path}"
            );
        }
        state.delete_server_certificate("site").unwrap();
        let gone = state.delete_server_certificate("site").unwrap_err();
        assert_eq!(gone.code, ErrorCode::NoSuchEntity);
    }
}
