//! Where files go: `destination_conf` URLs. This version writes to local directories
//! (`file:///abs/dir`, shared by server and agents as in `edgecap up`); bucket schemes are
//! recognised and refused as not supported yet. A [`Destination`] writes small objects such
//! as ownership challenges; capture files are written by the agents, never by the server.

use std::path::{Component, Path, PathBuf};

use futures_util::future::BoxFuture;

use crate::error::HttpError;
use edgecap_model::codes;

/// Somewhere the server can put a small object.
pub trait Destination: Send + Sync + std::fmt::Debug {
    /// Writes `body` as `name` under the destination, replacing any object of that name.
    fn put<'a>(&'a self, name: &'a str, body: Vec<u8>) -> BoxFuture<'a, std::io::Result<()>>;
}

/// A local directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDestination {
    pub dir: PathBuf,
}

impl Destination for FileDestination {
    fn put<'a>(&'a self, name: &'a str, body: Vec<u8>) -> BoxFuture<'a, std::io::Result<()>> {
        let dir = self.dir.clone();
        let name = name.to_owned();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                // Write beside, then rename: a reader never sees half a file.
                let tmp = dir.join(format!(".{name}.tmp"));
                std::fs::write(&tmp, &body)?;
                std::fs::rename(&tmp, dir.join(&name))
            })
            .await
            .map_err(std::io::Error::other)?
        })
    }
}

/// Bucket schemes that a later version writes to.
const LATER: &[&str] = &["s3", "gs", "r2", "azure", "az", "abfs", "abfss"];

/// Checks a `destination_conf` (named `field` in errors) and returns its directory.
pub fn parse(conf: &str, field: &str) -> Result<PathBuf, HttpError> {
    let conf = conf.trim();
    let Some((scheme, rest)) = conf.split_once("://") else {
        return Err(HttpError::field(
            field,
            format!("{conf:?} is not a URL; use file:///absolute/directory"),
        ));
    };
    let scheme = scheme.to_ascii_lowercase();
    if LATER.contains(&scheme.as_str()) {
        return Err(HttpError::field_code(
            codes::UNSUPPORTED,
            field,
            format!("{scheme}:// buckets are not supported yet; use file:///absolute/directory"),
        ));
    }
    if scheme != "file" {
        return Err(HttpError::field(
            field,
            format!("unknown scheme {scheme}://; use file:///absolute/directory"),
        ));
    }
    if !rest.starts_with('/') {
        return Err(HttpError::field(
            field,
            "a file URL names no host: file:///absolute/directory (three slashes)",
        ));
    }
    if rest.contains(['?', '#', '%']) || rest.chars().any(char::is_control) {
        return Err(HttpError::field(
            field,
            "the directory may not contain '?', '#', '%' or control characters",
        ));
    }
    let path = Path::new(rest);
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(HttpError::field(
            field,
            "the directory may not contain '..'",
        ));
    }
    Ok(path.to_path_buf())
}

/// A destination the server itself writes to (ownership challenges): the directory must
/// exist here.
pub fn open(conf: &str, field: &str) -> Result<FileDestination, HttpError> {
    let dir = parse(conf, field)?;
    if !dir.is_dir() {
        return Err(HttpError::field(
            field,
            format!("{} is not a directory on the server", dir.display()),
        ));
    }
    Ok(FileDestination { dir })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(conf: &str) -> (u32, String) {
        let e = parse(conf, "destination_conf").unwrap_err();
        (e.errors[0].code, e.errors[0].message.clone())
    }

    #[test]
    fn file_urls_and_bucket_schemes() {
        assert_eq!(
            parse("file:///var/x", "d").unwrap(),
            PathBuf::from("/var/x")
        );
        assert_eq!(err("s3://b?region=us-east-1").0, codes::UNSUPPORTED);
        assert_eq!(err("R2://b").0, codes::UNSUPPORTED);
        assert!(
            err("s3://b")
                .1
                .starts_with("destination_conf: s3:// buckets are not supported")
        );
        assert_eq!(err("ftp://x").0, codes::INVALID_FIELD);
        assert!(err("file://host/x").1.contains("three slashes"));
        assert!(err("file:///a/../b").1.contains(".."));
        assert!(err("/var/x").1.contains("not a URL"));
    }
}
