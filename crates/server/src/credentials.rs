//! Per-bucket credentials given through the API, sealed at rest.
//!
//! The database holds only what [`edgecap_store::SecretsKey::seal`] returns
//! (XChaCha20-Poly1305, the row's id as associated data); the key is a file beside the
//! database (`<data dir>/secrets.key`, or `edgecap server --secrets-key`), so the database
//! alone reveals nothing. Plaintext exists only in memory: when the server writes a challenge
//! with them, and in the assignment an agent receives for one capture. Nothing here logs a
//! credential: [`Credentials`] and [`edgecap_model::SecretJson`] print `[redacted]`.
//!
//! Contexts: an ownership record's credentials are sealed with `ownership:<id>`, a capture's
//! with `capture:<id>`.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use edgecap_model::SecretJson;
use edgecap_store::{Credentials, SecretsKey};

use crate::error::{Error, HttpError};

/// The key, loaded on first use from the configured file (created there if missing).
#[derive(Debug, Default)]
pub struct Vault {
    path: Option<PathBuf>,
    key: OnceLock<Result<Arc<SecretsKey>, String>>,
}

impl Vault {
    /// A vault whose key lives at `path`; `None` refuses credentials given through the API.
    pub fn new(path: Option<PathBuf>) -> Vault {
        Vault {
            path,
            key: OnceLock::new(),
        }
    }

    /// Loads (or creates) the key now, so a bad key file stops the server at start.
    pub fn check(&self) -> Result<(), String> {
        match &self.path {
            Some(_) => self.key().map(|_| ()),
            None => Ok(()),
        }
    }

    fn key(&self) -> Result<Arc<SecretsKey>, String> {
        let Some(path) = &self.path else {
            return Err(
                "this server has no secrets key file (edgecap server --secrets-key)".into(),
            );
        };
        self.key
            .get_or_init(|| {
                SecretsKey::load_or_create(path)
                    .map(Arc::new)
                    .map_err(|e| e.to_string())
            })
            .clone()
    }

    /// Seals `creds` for the record named by `context`.
    pub fn seal(&self, creds: &Credentials, context: &str) -> Result<String, HttpError> {
        let key = self.key().map_err(|reason| Error::Corrupt {
            what: "secrets key".into(),
            reason,
        })?;
        key.seal(creds, context).map_err(|e| {
            HttpError::from(Error::Corrupt {
                what: "sealed credentials".into(),
                reason: e.to_string(),
            })
        })
    }

    /// Opens what [`Vault::seal`] returned for `context`.
    pub fn open(&self, sealed: &str, context: &str) -> Result<Credentials, Error> {
        let key = self.key().map_err(|reason| Error::Corrupt {
            what: "secrets key".into(),
            reason,
        })?;
        key.open(sealed, context).map_err(|e| Error::Corrupt {
            what: format!("credentials of {context}"),
            reason: e.to_string(),
        })
    }

    /// Opens sealed credentials into the assignment's hand-off form.
    pub fn for_agent(
        &self,
        sealed: Option<&str>,
        context: &str,
    ) -> Result<Option<SecretJson>, Error> {
        sealed
            .map(|s| {
                self.open(s, context)
                    .map(|c| SecretJson::new(c.expose_json()))
            })
            .transpose()
    }
}

/// The context an ownership record's credentials are sealed with.
pub fn ownership_context(id: &str) -> String {
    format!("ownership:{id}")
}

/// The context a capture's credentials are sealed with.
pub fn capture_context(id: &str) -> String {
    format!("capture:{id}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgecap_store::Secret;

    #[test]
    fn sealed_credentials_open_for_their_record_only() {
        let dir = std::env::temp_dir().join(format!("edgecap-vault-{}", crate::secret::new_id()));
        std::fs::create_dir_all(&dir).unwrap();
        let vault = Vault::new(Some(dir.join("secrets.key")));
        vault.check().unwrap();
        let creds = Credentials::AccessKey {
            access_key_id: "AKID".into(),
            secret_access_key: Secret::new("S3CR3T"),
            session_token: None,
        };
        let sealed = vault.seal(&creds, &capture_context("a")).unwrap();
        assert!(!sealed.contains("S3CR3T") && !sealed.contains("AKID"));
        assert_eq!(vault.open(&sealed, &capture_context("a")).unwrap(), creds);
        assert!(vault.open(&sealed, &capture_context("b")).is_err());
        let handed = vault
            .for_agent(Some(&sealed), &capture_context("a"))
            .unwrap()
            .unwrap();
        assert_eq!(handed.expose()["secret_access_key"], "S3CR3T");
        assert_eq!(format!("{handed:?}"), "[redacted]");
        assert!(Vault::new(None).seal(&creds, "x").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
