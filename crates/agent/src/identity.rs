//! The node's own credential: made once, at random, in its state directory, and presented at
//! every connect. The server binds the node's name to it at the first connect (with an
//! enrolment token) and keeps only its SHA-256; from then on the name is this node's alone.
//! The file is created atomically (written whole under a temporary name, then linked into
//! place, so two agents starting at once end up with one credential) and readable by its
//! owner only.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rand::RngCore;

use crate::settings::SettingsError;

/// The credential's file in the state directory.
pub const CREDENTIAL_FILE: &str = "node.credential";

/// A node credential (`ecn_...`); never printed.
#[derive(Clone)]
pub struct Credential(String);

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credential([redacted])")
    }
}

impl Credential {
    pub fn secret(&self) -> &str {
        &self.0
    }
}

fn bad(reason: String) -> SettingsError {
    SettingsError {
        setting: "--state-dir".into(),
        reason,
    }
}

/// True if `dir` holds a credential already (the node may be enrolled).
pub fn exists(dir: &Path) -> bool {
    dir.join(CREDENTIAL_FILE).is_file()
}

/// The node's credential from `dir`, made (and the directory, mode 0700) if there is none.
pub fn load_or_create(dir: &Path) -> Result<Credential, SettingsError> {
    let path = dir.join(CREDENTIAL_FILE);
    if path.exists() {
        return load(&path);
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| bad(format!("cannot create {}: {e}", dir.display())))?;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let text: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let secret = format!("{}{text}", edgecap_model::NODE_CREDENTIAL_PREFIX);
    let tmp = dir.join(format!(
        ".{CREDENTIAL_FILE}.{}-{:08x}",
        std::process::id(),
        rand::rng().next_u32()
    ));
    let cannot = |what: &str, p: &Path, e: std::io::Error| {
        bad(format!("cannot {what} {}: {e}", p.display()))
    };
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(format!("{secret}\n").as_bytes())?;
            f.sync_all()
        });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(cannot("write", &tmp, e));
    }
    // A link never replaces a file: if another agent made one meanwhile, that one stands.
    let linked = std::fs::hard_link(&tmp, &path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
            tracing::info!(file = %path.display(), "made this node's credential");
            Ok(Credential(secret))
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => load(&path),
        Err(e) => Err(cannot("create", &path, e)),
    }
}

fn load(path: &Path) -> Result<Credential, SettingsError> {
    let meta =
        std::fs::metadata(path).map_err(|e| bad(format!("cannot read {}: {e}", path.display())))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(bad(format!(
            "{} is open to other users (mode {mode:04o}); it is this node's secret: chmod 600 it",
            path.display()
        )));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| bad(format!("cannot read {}: {e}", path.display())))?;
    let secret = text.trim();
    if !edgecap_model::is_node_credential(secret) {
        return Err(bad(format!(
            "{} does not hold a node credential (ecn_ and 64 hex digits); remove it to make a \
             new one (the node then enrols again, with an enrolment token, under a free name)",
            path.display()
        )));
    }
    Ok(Credential(secret.to_owned()))
}

/// Where the agent keeps its state when not told: `/var/lib/edgecap/agent` for root, else
/// `$XDG_STATE_HOME/edgecap/agent` or `~/.local/state/edgecap/agent`.
pub fn default_state_dir(root: bool) -> PathBuf {
    if root {
        return PathBuf::from("/var/lib/edgecap/agent");
    }
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    env("XDG_STATE_HOME")
        .or_else(|| env("HOME").map(|h| h.join(".local/state")))
        .unwrap_or_else(|| PathBuf::from("."))
        .join("edgecap/agent")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(what: &str) -> PathBuf {
        std::env::temp_dir().join(format!(
            "edgecap-identity-{what}-{}-{:08x}",
            std::process::id(),
            rand::rng().next_u32()
        ))
    }

    #[test]
    fn a_credential_is_made_once_and_kept_private() {
        let dir = scratch("made");
        let a = load_or_create(&dir.join("state")).unwrap();
        assert!(edgecap_model::is_node_credential(a.secret()));
        assert_eq!(format!("{a:?}"), "Credential([redacted])");
        let path = dir.join("state").join(CREDENTIAL_FILE);
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let dmeta = std::fs::metadata(dir.join("state")).unwrap();
        assert_eq!(dmeta.permissions().mode() & 0o777, 0o700);
        // The same one next time; no temporary file left.
        let b = load_or_create(&dir.join("state")).unwrap();
        assert_eq!(a.secret(), b.secret());
        assert_eq!(std::fs::read_dir(dir.join("state")).unwrap().count(), 1);
        // Open to others, or not a credential: refused, naming the flag.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = load_or_create(&dir.join("state")).unwrap_err();
        assert_eq!(e.setting, "--state-dir");
        assert!(e.reason.contains("0644"), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&path, "eca_not_mine\n").unwrap();
        let e = load_or_create(&dir.join("state")).unwrap_err();
        assert!(e.reason.contains("does not hold a node credential"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn agents_starting_together_share_one_credential() {
        let dir = scratch("race");
        let made: Vec<String> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| load_or_create(&dir).unwrap().secret().to_owned()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(made.iter().all(|m| *m == made[0]), "{made:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
