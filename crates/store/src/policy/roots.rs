//! Which local directories a `file://` destination may name: only those under a root the
//! operator configured (`--file-root DIR`). Pure: the lexical rule here; `store.rs` applies
//! [`FileRoots::check_resolved`] to the directory with its symlinks resolved when it opens it,
//! so a link inside a root cannot lead outside it.

use std::path::{Component, Path, PathBuf};

use crate::error::StoreError;

/// The operator's roots for `file://` destinations. Empty: every file destination is refused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileRoots {
    roots: Vec<PathBuf>,
}

impl FileRoots {
    /// The roots of repeated (or comma-separated) `DIR` values of `flag`; each must be an
    /// absolute path without `.` or `..` components. Errors name `flag`.
    pub fn from_flags(values: &[String], flag: &str) -> Result<FileRoots, StoreError> {
        let mut roots = Vec::new();
        for v in values.iter().flat_map(|v| v.split(',')) {
            let v = v.trim();
            if v.is_empty() {
                continue;
            }
            let root = normalise(Path::new(v))
                .map_err(|why| StoreError::invalid(flag, format!("{v:?} {why}")))?;
            if !roots.contains(&root) {
                roots.push(root);
            }
        }
        Ok(FileRoots { roots })
    }

    /// These roots and `more` (for `edgecap up`, which adds its own captures directory).
    pub fn with(mut self, more: &Path) -> Result<FileRoots, StoreError> {
        let root = normalise(more)
            .map_err(|why| StoreError::invalid("--file-root", format!("{more:?} {why}")))?;
        if !self.roots.contains(&root) {
            self.roots.push(root);
        }
        Ok(self)
    }

    /// The roots, as configured.
    pub fn roots(&self) -> &[PathBuf] {
        &self.roots
    }

    /// Checks `dir` as written: absolute, no `..` escape, equal to or under a root. Errors
    /// name `field`.
    pub fn check(&self, dir: &Path, field: &str) -> Result<(), StoreError> {
        let shown = format!("file://{}", dir.display());
        let dir =
            normalise(dir).map_err(|why| StoreError::invalid(field, format!("{shown} {why}")))?;
        self.check_within(&dir, &shown, field)
    }

    /// Checks `resolved`, the directory with its symlinks resolved, against `roots_resolved`,
    /// the roots resolved the same way (a root that does not exist is left out). Errors name
    /// `field` and show `shown` (the directory as the user wrote it).
    pub fn check_resolved(
        &self,
        resolved: &Path,
        roots_resolved: &[PathBuf],
        shown: &Path,
        field: &str,
    ) -> Result<(), StoreError> {
        let shown = format!("file://{}", shown.display());
        let within = roots_resolved.iter().any(|r| resolved.starts_with(r));
        if within {
            return Ok(());
        }
        Err(StoreError::invalid(
            field,
            format!(
                "{shown} resolves to {}, which is outside the directories the operator allows \
                 for file destinations (--file-root): {}",
                resolved.display(),
                self.list()
            ),
        ))
    }

    fn check_within(&self, dir: &Path, shown: &str, field: &str) -> Result<(), StoreError> {
        if self.roots.is_empty() {
            return Err(StoreError::invalid(
                field,
                format!(
                    "{shown} is refused: no --file-root is configured, so this host writes no \
                     file destinations"
                ),
            ));
        }
        if self.roots.iter().any(|r| dir.starts_with(r)) {
            return Ok(());
        }
        Err(StoreError::invalid(
            field,
            format!(
                "{shown} is outside the directories the operator allows for file destinations \
                 (--file-root): {}",
                self.list()
            ),
        ))
    }

    fn list(&self) -> String {
        if self.roots.is_empty() {
            return "none (no --file-root is configured)".to_owned();
        }
        self.roots
            .iter()
            .map(|r| r.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// `path` lexically normalised: absolute, `.` dropped, `..` refused, trailing slashes gone.
fn normalise(path: &Path) -> Result<PathBuf, &'static str> {
    if !path.is_absolute() {
        return Err("is not an absolute path");
    }
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => return Err("may not contain '..' components"),
            Component::CurDir => {}
            c => out.push(c.as_os_str()),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: &str = "destination_conf";

    fn roots(v: &[&str]) -> FileRoots {
        let v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
        FileRoots::from_flags(&v, "--file-root").unwrap()
    }

    fn msg(r: Result<(), StoreError>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn inside_and_equal_to_a_root_pass() {
        let r = roots(&["/srv/captures", "/data/x"]);
        r.check(Path::new("/srv/captures"), F).unwrap();
        r.check(Path::new("/srv/captures/"), F).unwrap();
        r.check(Path::new("/srv/captures/team/a"), F).unwrap();
        r.check(Path::new("/data/x/./y"), F).unwrap();
        // A root written with a trailing slash or commas means the same directory.
        let r = roots(&["/srv/captures/, /data/x"]);
        assert_eq!(
            r.roots(),
            [PathBuf::from("/srv/captures"), PathBuf::from("/data/x")]
        );
        r.check(Path::new("/srv/captures/a"), F).unwrap();
    }

    #[test]
    fn outside_a_root_is_refused_naming_the_field_and_the_roots() {
        let r = roots(&["/srv/captures"]);
        let m = msg(r.check(Path::new("/etc"), F));
        assert!(m.contains("destination_conf"), "{m}");
        assert!(
            m.contains("file:///etc is outside the directories the operator allows"),
            "{m}"
        );
        assert!(m.contains("--file-root): /srv/captures"), "{m}");
        // A sibling sharing the root's prefix is not under it.
        msg(r.check(Path::new("/srv/capturesX"), F));
        msg(r.check(Path::new("/srv"), F));
        msg(r.check(Path::new("/"), F));
    }

    #[test]
    fn dot_dot_escape_and_relative_paths_are_refused() {
        let r = roots(&["/srv/captures"]);
        let m = msg(r.check(Path::new("/srv/captures/../../etc"), F));
        assert!(m.contains("'..'"), "{m}");
        let m = msg(r.check(Path::new("srv/captures"), F));
        assert!(m.contains("not an absolute path"), "{m}");
        let e = FileRoots::from_flags(&["relative/dir".into()], "--file-root").unwrap_err();
        assert!(e.to_string().contains("--file-root"), "{e}");
        FileRoots::from_flags(&["/a/../b".into()], "--file-root").unwrap_err();
    }

    #[test]
    fn no_root_refuses_every_file_destination() {
        let m = msg(FileRoots::default().check(Path::new("/srv/captures"), F));
        assert!(m.contains("no --file-root is configured"), "{m}");
    }

    #[test]
    fn resolved_directory_must_stay_under_a_resolved_root() {
        let r = roots(&["/srv/captures"]);
        let rr = [PathBuf::from("/srv/captures")];
        r.check_resolved(
            Path::new("/srv/captures/a"),
            &rr,
            Path::new("/srv/captures/a"),
            F,
        )
        .unwrap();
        let m = msg(r.check_resolved(Path::new("/etc"), &rr, Path::new("/srv/captures/link"), F));
        assert!(
            m.contains("file:///srv/captures/link resolves to /etc"),
            "{m}"
        );
    }
}
