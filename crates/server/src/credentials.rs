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

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use edgecap_model::SecretJson;
use edgecap_store::{Credentials, SecretsKey};

use crate::db::{Db, samples, sealed};
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

    /// Seals any bytes (a look-back capture's file) for the record named by `context`.
    pub fn seal_bytes(&self, plain: &[u8], context: &str) -> Result<String, HttpError> {
        let key = self.key().map_err(|reason| Error::Corrupt {
            what: "secrets key".into(),
            reason,
        })?;
        key.seal_bytes(plain, context).map_err(|e| {
            HttpError::from(Error::Corrupt {
                what: "sealed file".into(),
                reason: e.to_string(),
            })
        })
    }

    /// Opens what [`Vault::seal_bytes`] returned for `context`.
    pub fn open_bytes(&self, sealed: &str, context: &str) -> Result<Vec<u8>, Error> {
        let key = self.key().map_err(|reason| Error::Corrupt {
            what: "secrets key".into(),
            reason,
        })?;
        key.open_bytes(sealed, context).map_err(|e| Error::Corrupt {
            what: format!("the file of {context}"),
            reason: e.to_string(),
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

/// The start-up check of the secrets key against the database: a key file is created only
/// when the database holds no sealed secret (a new key could not open them: refused, saying
/// what to do), and an existing key must open the database's newest sealed secret.
pub async fn check_key(vault: &Vault, db: &Db) -> Result<(), String> {
    let Some(path) = &vault.path else {
        return Ok(());
    };
    let failed = |e: Error| format!("reading the sealed credentials: {e}");
    if !path.exists() {
        let n = sealed::count(db).await.map_err(failed)?;
        if n > 0 {
            return Err(format!(
                "{} does not exist, but the database holds {n} sealed credential(s) that only \
                 the key they were sealed with opens; a new key would not. Restore the key \
                 file from where it was (a backup of the data directory, another replica) or \
                 give its path with --secrets-key; to give those credentials up instead, \
                 delete the captures, ownerships and triggers that hold them",
                path.display()
            ));
        }
        vault.check()?;
        tracing::info!(path = %path.display(), "created a new secrets key");
        return Ok(());
    }
    vault.check()?;
    if let Some(s) = sealed::any(db).await.map_err(failed)? {
        vault.open(&s.sealed, &s.context).map_err(|_| {
            format!(
                "{} does not open the sealed credentials in the database ({}): it is not the \
                 key they were sealed with. Give the right key file with --secrets-key",
                path.display(),
                s.context
            )
        })?;
    }
    Ok(())
}

/// Where a rotation writes the new key before it takes the old one's place.
pub fn pending_key_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".new");
    PathBuf::from(p)
}

/// Re-seals every sealed secret under a new key and puts the new key in `path`'s place;
/// says what it did. Atomic: the new key is written beside the old one
/// (`<path>.new`, mode 0600, synced), every secret is re-sealed in one database
/// transaction, and only after it commits is the new file renamed over the old. A failure
/// before the commit leaves the old key and every secret as they were (and removes the new
/// file); a crash between the commit and the rename leaves `<path>.new`, which the next
/// rotation (or a look at the error) puts in place. Run it with every server on the database
/// stopped: a running server keeps sealing with the key it loaded.
pub async fn rotate(db: &Db, path: &Path) -> Result<String, String> {
    if !path.exists() {
        return Err(format!(
            "{} does not exist: there is no key to rotate (the server creates one at its first \
             start)",
            path.display()
        ));
    }
    let old = SecretsKey::load_or_create(path).map_err(|e| e.to_string())?;
    let pending = pending_key_path(path);
    if pending.exists()
        && let Some(done) = finish_interrupted(db, &old, path, &pending).await?
    {
        return Ok(done);
    }
    let new = SecretsKey::load_or_create(&pending).map_err(|e| e.to_string())?;
    let resealed = match reseal(db, &old, &new).await {
        Ok(n) => n,
        Err(e) => {
            let _ = std::fs::remove_file(&pending);
            return Err(format!("{e}; nothing changed, the old key is still in use"));
        }
    };
    std::fs::rename(&pending, path).map_err(|e| {
        format!(
            "the secrets are re-sealed under {}, but it could not replace {}: {e}; move it \
             there before starting the server",
            pending.display(),
            path.display()
        )
    })?;
    if let Some(dir) = path.parent()
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(format!(
        "re-sealed {resealed} secret(s) under a new key in {}",
        path.display()
    ))
}

async fn reseal(db: &Db, old: &SecretsKey, new: &SecretsKey) -> Result<usize, String> {
    let failed = |e: sqlx::Error| format!("database: {e}");
    let mut tx = db.pool.begin().await.map_err(failed)?;
    let all = sealed::all(&mut tx).await.map_err(|e| e.to_string())?;
    for s in &all {
        let creds = old
            .open(&s.sealed, &s.context)
            .map_err(|e| format!("the credentials of {}: {e}", s.context))?;
        let again = new
            .seal(&creds, &s.context)
            .map_err(|e| format!("sealing {}: {e}", s.context))?;
        sealed::replace(&mut tx, s, &again)
            .await
            .map_err(|e| e.to_string())?;
    }
    // The look-back captures' files are sealed with the same key: re-sealed in the same
    // transaction, one capture at a time, or a rotation would make them unreadable.
    let files = samples::ids(&mut tx).await.map_err(|e| e.to_string())?;
    for id in &files {
        let Some((pcapng, pcap)) = samples::sealed(&mut tx, id)
            .await
            .map_err(|e| e.to_string())?
        else {
            continue;
        };
        let ctx = samples_context(id);
        let mut again = Vec::with_capacity(2);
        for file in [&pcapng, &pcap] {
            let plain = old
                .open_bytes(file, &ctx)
                .map_err(|e| format!("the file of look-back capture {id}: {e}"))?;
            again.push(
                new.seal_bytes(&plain, &ctx)
                    .map_err(|e| format!("sealing {ctx}: {e}"))?,
            );
        }
        samples::replace(&mut tx, id, &again[0], &again[1])
            .await
            .map_err(|e| e.to_string())?;
    }
    tx.commit().await.map_err(failed)?;
    Ok(all.len() + files.len())
}

/// A `<path>.new` from an earlier rotation: if the database's secrets (or, with none, its
/// look-back files) open with it (and not with the old key), that rotation committed and only the rename is missing: done now,
/// `Some(what happened)`. If they open with the old key (or there are none), it failed
/// before the commit: the file is removed and `None` lets a fresh rotation go ahead.
async fn finish_interrupted(
    db: &Db,
    old: &SecretsKey,
    path: &Path,
    pending: &Path,
) -> Result<Option<String>, String> {
    let new = SecretsKey::load_or_create(pending).map_err(|e| e.to_string())?;
    // A sealed secret, else a look-back file: whichever key decrypts it sealed it.
    let sample = match sealed::any(db).await.map_err(|e| e.to_string())? {
        Some(s) => Some((s.sealed, s.context)),
        None => samples::any(db)
            .await
            .map_err(|e| e.to_string())?
            .map(|(id, file)| (file, samples_context(&id))),
    };
    let Some((sealed, context)) = sample else {
        let _ = std::fs::remove_file(pending);
        return Ok(None);
    };
    if old.open_bytes(&sealed, &context).is_ok() {
        let _ = std::fs::remove_file(pending);
        return Ok(None);
    }
    if new.open_bytes(&sealed, &context).is_ok() {
        std::fs::rename(pending, path).map_err(|e| {
            format!(
                "cannot move {} to {}: {e}",
                pending.display(),
                path.display()
            )
        })?;
        return Ok(Some(format!(
            "finished an earlier rotation: the secrets were re-sealed under {} but it had \
             not replaced the key; it is now {}",
            pending.display(),
            path.display()
        )));
    }
    Err(format!(
        "the database's secrets ({}) open with neither {} nor {}",
        context,
        path.display(),
        pending.display()
    ))
}

/// The context an ownership record's credentials are sealed with.
pub fn ownership_context(id: &str) -> String {
    format!("ownership:{id}")
}

/// The context a look-back capture's file is sealed with.
pub fn samples_context(id: &str) -> String {
    format!("samples:{id}")
}

/// The context a look-back answer crossing replicas is sealed with (`hub/relay.rs`).
pub fn relay_context(id: &str) -> String {
    format!("lookback:{id}")
}

/// The context a trigger's credentials are sealed with.
pub fn trigger_context(id: &str) -> String {
    format!("trigger:{id}")
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
