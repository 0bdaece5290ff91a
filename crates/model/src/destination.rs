//! `destination_conf` URLs: where a capture's files go. Shared by the server (which checks a
//! request before storing it) and the agent (which opens the node's file there), so both read
//! a URL the same way.
//!
//! This version writes to local directories, `file:///absolute/dir`; bucket schemes are
//! recognised and refused as not supported yet (they arrive with bucket uploads).

use std::path::{Component, Path, PathBuf};

use crate::envelope::codes;

/// A parsed destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// A directory on the node (and, for ownership challenges, on the server).
    Dir(PathBuf),
}

/// Why a `destination_conf` cannot be used; `code` is the API error code to answer with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestinationError {
    pub code: u32,
    pub reason: String,
}

impl std::fmt::Display for DestinationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for DestinationError {}

/// Bucket schemes that a later version writes to.
const LATER: &[&str] = &["s3", "gs", "r2", "azure", "az", "abfs", "abfss"];

fn invalid(reason: impl Into<String>) -> DestinationError {
    DestinationError {
        code: codes::INVALID_FIELD,
        reason: reason.into(),
    }
}

/// Reads a `destination_conf`.
pub fn parse(conf: &str) -> Result<Destination, DestinationError> {
    let conf = conf.trim();
    let Some((scheme, rest)) = conf.split_once("://") else {
        return Err(invalid(format!(
            "{conf:?} is not a URL; use file:///absolute/directory"
        )));
    };
    let scheme = scheme.to_ascii_lowercase();
    if LATER.contains(&scheme.as_str()) {
        return Err(DestinationError {
            code: codes::UNSUPPORTED,
            reason: format!(
                "{scheme}:// buckets are not supported yet; use file:///absolute/directory"
            ),
        });
    }
    if scheme != "file" {
        return Err(invalid(format!(
            "unknown scheme {scheme}://; use file:///absolute/directory"
        )));
    }
    if !rest.starts_with('/') {
        return Err(invalid(
            "a file URL names no host: file:///absolute/directory (three slashes)",
        ));
    }
    if rest.contains(['?', '#', '%']) || rest.chars().any(char::is_control) {
        return Err(invalid(
            "the directory may not contain '?', '#', '%' or control characters",
        ));
    }
    let path = Path::new(rest);
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(invalid("the directory may not contain '..'"));
    }
    Ok(Destination::Dir(path.to_path_buf()))
}

/// The key of a node's file under the destination: `<capture_id>/<node>.<format>`. Node names
/// are plain (see [`crate::protocol::check_hello`]), so the key is one safe path segment each.
pub fn node_file_key(capture_id: &str, node: &str, format: &str) -> String {
    format!("{capture_id}/{node}.{format}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(conf: &str) -> DestinationError {
        parse(conf).unwrap_err()
    }

    #[test]
    fn file_urls_and_bucket_schemes() {
        assert_eq!(
            parse("file:///var/x").unwrap(),
            Destination::Dir(PathBuf::from("/var/x"))
        );
        assert_eq!(err("s3://b?region=us-east-1").code, codes::UNSUPPORTED);
        assert_eq!(err("R2://b").code, codes::UNSUPPORTED);
        assert!(
            err("s3://b")
                .reason
                .starts_with("s3:// buckets are not supported")
        );
        assert_eq!(err("ftp://x").code, codes::INVALID_FIELD);
        assert!(err("file://host/x").reason.contains("three slashes"));
        assert!(err("file:///a/../b").reason.contains(".."));
        assert!(err("/var/x").reason.contains("not a URL"));
        assert_eq!(
            node_file_key("ab", "edge0", "pcapng"),
            "ab/edge0.pcapng".to_owned()
        );
    }
}
