//! Where files go: `destination_conf` URLs. This version writes to local directories
//! (`file:///abs/dir`, shared by server and agents as in `edgecap up`); bucket schemes are
//! recognised and refused as not supported yet. A [`Destination`] writes small objects such
//! as ownership challenges; capture files are written by the agents, never by the server.

use std::path::PathBuf;

use futures_util::future::BoxFuture;

use crate::error::HttpError;

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

/// Checks a `destination_conf` (named `field` in errors) and returns its directory. The
/// rules are the model's, so agents read the URL the same way.
pub fn parse(conf: &str, field: &str) -> Result<PathBuf, HttpError> {
    match edgecap_model::destination::parse(conf) {
        Ok(edgecap_model::destination::Destination::Dir(dir)) => Ok(dir),
        Err(e) => Err(HttpError::field_code(e.code, field, e.reason)),
    }
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
    fn errors_name_the_field_and_keep_the_code() {
        use edgecap_model::codes;
        assert_eq!(
            parse("file:///var/x", "d").unwrap(),
            PathBuf::from("/var/x")
        );
        assert_eq!(err("s3://b?region=us-east-1").0, codes::UNSUPPORTED);
        assert!(
            err("s3://b")
                .1
                .starts_with("destination_conf: s3:// buckets are not supported")
        );
        let (code, msg) = err("file://host/x");
        assert_eq!(code, codes::INVALID_FIELD);
        assert!(msg.starts_with("destination_conf: ") && msg.contains("three slashes"));
        let e = parse("/var/x", "destination_conf").unwrap_err();
        assert_eq!(
            e.errors[0].source.as_ref().unwrap().pointer,
            "/destination_conf"
        );
    }
}
