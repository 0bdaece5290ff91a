//! Encryption at rest for per-bucket credentials: a 256-bit key in a file of the server's data
//! directory, and XChaCha20-Poly1305 (RustCrypto) with a random 192-bit nonce per secret.
//!
//! A sealed value is `v1.<hex(nonce || ciphertext+tag)>`. The caller's `context` (say, the
//! ownership id) is authenticated as associated data, so a sealed value copied into another
//! row does not open there. The database alone reveals nothing; the key file alone holds no
//! secret; both are needed.

use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use rand::RngCore;

use crate::credentials::Credentials;
use crate::error::StoreError;

const VERSION: &str = "v1.";
const NONCE_LEN: usize = 24;
const KEY_LEN: usize = 32;

/// The key that seals and opens credentials. `Debug` shows only the file it came from.
pub struct SecretsKey {
    cipher: XChaCha20Poly1305,
    path: PathBuf,
}

impl std::fmt::Debug for SecretsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretsKey")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SecretsKey {
    /// Reads the key at `path`, or creates it (mode 0600, 32 random bytes) when absent. A key
    /// file that others may read is refused rather than used.
    pub fn load_or_create(path: &Path) -> Result<SecretsKey, StoreError> {
        let fail = |what: &str, e: std::io::Error| {
            StoreError::Seal(format!("secrets key {}: {what}: {e}", path.display()))
        };
        let mut key = [0u8; KEY_LEN];
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(mut f) => {
                rand::rng().fill_bytes(&mut key);
                f.write_all(&key)
                    .and_then(|()| f.sync_all())
                    .map_err(|e| fail("cannot write", e))?;
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                let meta = fs::metadata(path).map_err(|e| fail("cannot stat", e))?;
                if meta.permissions().mode() & 0o077 != 0 {
                    return Err(StoreError::Seal(format!(
                        "secrets key {} is readable by group or others (mode {:o}); run \
                         chmod 600 on it",
                        path.display(),
                        meta.permissions().mode() & 0o777
                    )));
                }
                let mut f = fs::File::open(path).map_err(|e| fail("cannot open", e))?;
                let mut buf = Vec::with_capacity(KEY_LEN + 1);
                f.read_to_end(&mut buf)
                    .map_err(|e| fail("cannot read", e))?;
                if buf.len() != KEY_LEN {
                    return Err(StoreError::Seal(format!(
                        "secrets key {} holds {} bytes, expected {KEY_LEN} (corrupt or not a \
                         key file)",
                        path.display(),
                        buf.len()
                    )));
                }
                key.copy_from_slice(&buf);
            }
            Err(e) => return Err(fail("cannot create", e)),
        }
        Ok(SecretsKey {
            cipher: XChaCha20Poly1305::new(&Key::from(key)),
            path: path.to_owned(),
        })
    }

    /// Encrypts `creds`, binding them to `context`.
    pub fn seal(&self, creds: &Credentials, context: &str) -> Result<String, StoreError> {
        self.seal_bytes(creds.to_plain_json().to_string().as_bytes(), context)
    }

    /// Encrypts any bytes (a look-back capture's sample file, say), binding them to `context`;
    /// the same `v1.` form as sealed credentials.
    pub fn seal_bytes(&self, plain: &[u8], context: &str) -> Result<String, StoreError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let ct = self
            .cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plain,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| StoreError::Seal("encryption failed".to_owned()))?;
        let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(format!("{VERSION}{}", hex::encode(out)))
    }

    /// Decrypts what [`SecretsKey::seal`] returned for the same `context`.
    pub fn open(&self, sealed: &str, context: &str) -> Result<Credentials, StoreError> {
        let bad = |why: &str| {
            StoreError::Seal(format!(
                "sealed credentials cannot be opened with {}: {why}",
                self.path.display()
            ))
        };
        let plain = self.decrypt(sealed, context, "sealed credentials")?;
        let value: serde_json::Value =
            serde_json::from_slice(&plain).map_err(|_| bad("not credentials"))?;
        Credentials::from_json(&value, "sealed credentials").map_err(|_| bad("not credentials"))
    }

    /// Decrypts what [`SecretsKey::seal_bytes`] returned for the same `context`.
    pub fn open_bytes(&self, sealed: &str, context: &str) -> Result<Vec<u8>, StoreError> {
        self.decrypt(sealed, context, "sealed data")
    }

    fn decrypt(&self, sealed: &str, context: &str, what: &str) -> Result<Vec<u8>, StoreError> {
        let bad = |why: &str| {
            StoreError::Seal(format!(
                "{what} cannot be opened with {}: {why}",
                self.path.display()
            ))
        };
        let body = sealed
            .strip_prefix(VERSION)
            .ok_or_else(|| bad("unknown format version"))?;
        let raw = hex::decode(body).map_err(|_| bad("not hex"))?;
        if raw.len() < NONCE_LEN + 16 {
            return Err(bad("too short"));
        }
        let (nonce, ct) = raw.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| bad("too short"))?;
        self.cipher
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: ct,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| bad("wrong key, wrong record, or tampered"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::Secret;

    fn tmp() -> PathBuf {
        std::env::temp_dir().join(format!("edgecap-seal-{:016x}", rand::random::<u64>()))
    }

    struct Cleanup(PathBuf);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = fs::remove_file(&self.0);
        }
    }

    fn creds() -> Credentials {
        Credentials::AccessKey {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
            session_token: None,
        }
    }

    #[test]
    fn sealed_credentials_open_only_with_the_key_and_context() {
        let path = tmp();
        let _c = Cleanup(path.clone());
        let key = SecretsKey::load_or_create(&path).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let sealed = key.seal(&creds(), "ownership:1").unwrap();
        assert!(sealed.starts_with("v1."));
        assert!(!sealed.contains("wJalr") && !sealed.contains("AKIDEXAMPLE"));
        // Two seals of the same secret differ (random nonce).
        assert_ne!(sealed, key.seal(&creds(), "ownership:1").unwrap());
        // The same file opens it again, after a "restart".
        let again = SecretsKey::load_or_create(&path).unwrap();
        assert_eq!(again.open(&sealed, "ownership:1").unwrap(), creds());
        // Another record's context, a flipped byte, another key: refused.
        assert!(again.open(&sealed, "ownership:2").is_err());
        let mut tampered = sealed.clone().into_bytes();
        let last = tampered.len() - 1;
        tampered[last] = if tampered[last] == b'0' { b'1' } else { b'0' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert!(again.open(&tampered, "ownership:1").is_err());
        let other_path = tmp();
        let _c2 = Cleanup(other_path.clone());
        let other = SecretsKey::load_or_create(&other_path).unwrap();
        let err = other.open(&sealed, "ownership:1").unwrap_err().to_string();
        assert!(err.contains("cannot be opened"), "{err}");
        // Debug of the key or the credentials shows no secret.
        assert!(!format!("{key:?} {:?}", creds()).contains("wJalr"));
    }

    #[test]
    fn sealed_bytes_open_only_with_the_key_and_context() {
        let path = tmp();
        let _c = Cleanup(path.clone());
        let key = SecretsKey::load_or_create(&path).unwrap();
        let plain = b"payload-marker-0042 and more bytes".to_vec();
        let sealed = key.seal_bytes(&plain, "samples:1").unwrap();
        assert!(!sealed.contains(&hex::encode(b"payload-marker")));
        assert_eq!(key.open_bytes(&sealed, "samples:1").unwrap(), plain);
        assert!(key.open_bytes(&sealed, "samples:2").is_err());
        let other_path = tmp();
        let _c2 = Cleanup(other_path.clone());
        let other = SecretsKey::load_or_create(&other_path).unwrap();
        let err = other
            .open_bytes(&sealed, "samples:1")
            .unwrap_err()
            .to_string();
        assert!(err.contains("sealed data cannot be opened"), "{err}");
    }

    #[test]
    fn a_key_file_others_can_read_is_refused() {
        let path = tmp();
        let _c = Cleanup(path.clone());
        fs::write(&path, [7u8; KEY_LEN]).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = SecretsKey::load_or_create(&path).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        fs::write(&path, [7u8; 5]).unwrap();
        let err = SecretsKey::load_or_create(&path).unwrap_err().to_string();
        assert!(err.contains("holds 5 bytes"), "{err}");
    }
}
