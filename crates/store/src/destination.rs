//! `destination_conf` URLs, parsed into a typed [`Destination`] with errors naming the field.
//!
//! | scheme | form | notes |
//! | --- | --- | --- |
//! | S3 | `s3://bucket[/dir]?region=R[&endpoint=URL]` | `endpoint` for S3-compatible stores (path-style); `region` may then be omitted |
//! | R2 | `r2://bucket[/dir]?account-id=ID` | as Cloudflare's format; the endpoint is derived from the account id |
//! | GCS | `gs://bucket[/dir][?endpoint=URL]` | |
//! | Azure | `azure://container[/dir]?account=NAME[&endpoint=URL]` (`az://` too) | `endpoint` is the account URL, e.g. Azurite's `http://127.0.0.1:10000/devstoreaccount1` |
//! | local | `file:///absolute/dir` | a directory on the host that writes |
//!
//! S3 and R2 URLs may carry `access-key-id`, `secret-access-key` and `session-token`, as
//! Cloudflare's R2 form does; they become [`Credentials`] and never appear in the
//! [`Display`](std::fmt::Display) form, which is the canonical, secret-free name of the
//! destination (what ownership records are keyed on).

use std::fmt;
use std::path::{Component, Path, PathBuf};

use percent_encoding::percent_decode_str;

use crate::credentials::{CredentialSource, Credentials, Secret};
use crate::error::StoreError;

/// Which kind of store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    S3,
    R2,
    Gcs,
    Azure,
    File,
}

impl Scheme {
    /// The URL scheme, as written in the canonical form.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::S3 => "s3",
            Scheme::R2 => "r2",
            Scheme::Gcs => "gs",
            Scheme::Azure => "azure",
            Scheme::File => "file",
        }
    }

    /// Whether files go to a cloud bucket (ownership must be proven) rather than a directory.
    pub fn is_bucket(self) -> bool {
        self != Scheme::File
    }
}

/// A parsed, validated destination. Cheap to clone; `Debug` never shows secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub scheme: Scheme,
    /// Bucket (S3, R2, GCS) or container (Azure); empty for `file://`.
    pub bucket: String,
    /// Key prefix inside the bucket, without leading or trailing `/`; may be empty.
    pub prefix: String,
    /// The directory of a `file://` destination.
    pub dir: Option<PathBuf>,
    /// S3 region (`auto` for R2).
    pub region: Option<String>,
    /// Service endpoint for S3-compatible stores, GCS or Azure (emulators, sovereign clouds).
    pub endpoint: Option<String>,
    /// R2 account id or Azure storage account.
    pub account: Option<String>,
    /// Where the credentials come from.
    pub credentials: CredentialSource,
}

/// Query parameters a scheme accepts; secrets are listed so they can be refused elsewhere.
fn allowed(scheme: Scheme) -> &'static [&'static str] {
    match scheme {
        Scheme::S3 => &[
            "region",
            "endpoint",
            "access-key-id",
            "secret-access-key",
            "session-token",
        ],
        Scheme::R2 => &[
            "account-id",
            "access-key-id",
            "secret-access-key",
            "session-token",
        ],
        Scheme::Gcs => &["endpoint"],
        Scheme::Azure => &["account", "endpoint"],
        Scheme::File => &[],
    }
}

const SCHEMES: &str = "s3://, r2://, gs://, azure:// or file:///";

impl Destination {
    /// Parses a `destination_conf`; `field` names it in errors (e.g. `destination_conf`).
    pub fn parse(conf: &str, field: &str) -> Result<Destination, StoreError> {
        let conf = conf.trim();
        if conf.chars().any(char::is_control) {
            return Err(StoreError::invalid(field, "contains control characters"));
        }
        let Some((scheme, rest)) = conf.split_once("://") else {
            // Not echoed: a pasted value may hold a secret key.
            return Err(StoreError::invalid(
                field,
                format!("is not a URL (no scheme://); expected {SCHEMES}"),
            ));
        };
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "s3" | "s3a" => Scheme::S3,
            "r2" => Scheme::R2,
            "gs" | "gcs" => Scheme::Gcs,
            "azure" | "az" => Scheme::Azure,
            "file" => Scheme::File,
            other => {
                return Err(StoreError::Unsupported {
                    field: field.to_owned(),
                    reason: format!(
                        "scheme {other:?} is not supported; use {SCHEMES}",
                        other = shorten(other)
                    ),
                });
            }
        };
        if rest.contains('#') {
            return Err(StoreError::invalid(
                field,
                "a fragment ('#') is not allowed",
            ));
        }
        let (location, query) = rest.split_once('?').unwrap_or((rest, ""));
        let params = Params::parse(query, scheme, field)?;
        if scheme == Scheme::File {
            return file(location, field);
        }
        let (bucket, path) = location.split_once('/').unwrap_or((location, ""));
        check_bucket(scheme, bucket, field)?;
        let prefix = check_prefix(path, field)?;
        let mut dest = Destination {
            scheme,
            bucket: bucket.to_owned(),
            prefix,
            dir: None,
            region: None,
            endpoint: None,
            account: None,
            credentials: params.credentials(scheme, field)?,
        };
        if let Some(e) = params.get("endpoint") {
            dest.endpoint = Some(check_endpoint(e, field)?);
        }
        match scheme {
            Scheme::S3 => {
                dest.region = match params.get("region") {
                    Some(r) => Some(check_region(r, field)?),
                    None if dest.endpoint.is_some() => None,
                    None => {
                        return Err(StoreError::invalid(
                            field,
                            "s3:// needs ?region=<the bucket's region>, e.g. \
                             s3://bucket/dir?region=us-east-1",
                        ));
                    }
                };
            }
            Scheme::R2 => {
                let Some(id) = params.get("account-id") else {
                    return Err(StoreError::invalid(
                        field,
                        "r2:// needs ?account-id=<32-hex Cloudflare account id>",
                    ));
                };
                if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(StoreError::invalid(
                        field,
                        format!("account-id {:?} is not a 32-hex account id", shorten(id)),
                    ));
                }
                dest.account = Some(id.to_ascii_lowercase());
                dest.region = Some("auto".to_owned());
            }
            Scheme::Azure => {
                let Some(account) = params.get("account") else {
                    return Err(StoreError::invalid(
                        field,
                        "azure:// needs ?account=<storage account name>",
                    ));
                };
                let ok = (3..=24).contains(&account.len())
                    && account
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
                if !ok {
                    return Err(StoreError::invalid(
                        field,
                        format!(
                            "account {:?} is not a storage account name (3-24 lower-case \
                             letters and digits)",
                            shorten(account)
                        ),
                    ));
                }
                dest.account = Some(account.to_owned());
            }
            Scheme::Gcs | Scheme::File => {}
        }
        Ok(dest)
    }

    /// The same destination with other credentials (e.g. unsealed from the database), after
    /// checking that they fit the scheme.
    pub fn with_credentials(mut self, creds: Credentials, field: &str) -> Result<Self, StoreError> {
        creds.check_scheme(self.scheme, field)?;
        self.credentials = CredentialSource::Explicit(creds);
        Ok(self)
    }

    /// The explicit credentials, if any (to seal them for storage).
    pub fn explicit_credentials(&self) -> Option<&Credentials> {
        match &self.credentials {
            CredentialSource::Explicit(c) => Some(c),
            CredentialSource::Chain => None,
        }
    }

    /// Joins the prefix and a relative key.
    pub fn key(&self, rel: &str) -> String {
        if self.prefix.is_empty() {
            rel.to_owned()
        } else {
            format!("{}/{rel}", self.prefix)
        }
    }
}

/// The canonical, secret-free form: scheme, bucket, prefix and sorted non-secret options.
impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(dir) = &self.dir {
            return write!(f, "file://{}", dir.display());
        }
        write!(f, "{}://{}", self.scheme.as_str(), self.bucket)?;
        if !self.prefix.is_empty() {
            write!(f, "/{}", self.prefix)?;
        }
        let mut opts: Vec<(&str, &str)> = Vec::new();
        match self.scheme {
            Scheme::R2 => opts.extend(self.account.as_deref().map(|a| ("account-id", a))),
            Scheme::Azure => opts.extend(self.account.as_deref().map(|a| ("account", a))),
            Scheme::S3 => opts.extend(self.region.as_deref().map(|r| ("region", r))),
            Scheme::Gcs | Scheme::File => {}
        }
        opts.extend(self.endpoint.as_deref().map(|e| ("endpoint", e)));
        opts.sort();
        for (i, (k, v)) in opts.iter().enumerate() {
            let sep = if i == 0 { '?' } else { '&' };
            write!(f, "{sep}{k}={v}")?;
        }
        Ok(())
    }
}

/// Decoded query parameters, each at most once.
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(query: &str, scheme: Scheme, field: &str) -> Result<Params, StoreError> {
        let mut out: Vec<(String, String)> = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let key = k.to_ascii_lowercase().replace('_', "-");
            if !allowed(scheme).contains(&key.as_str()) {
                let list = allowed(scheme).join(", ");
                return Err(StoreError::invalid(
                    field,
                    if list.is_empty() {
                        format!(
                            "{}:// takes no options, got {:?}",
                            scheme.as_str(),
                            shorten(k)
                        )
                    } else {
                        format!(
                            "unknown option {:?} for {}://; known: {list}",
                            shorten(k),
                            scheme.as_str()
                        )
                    },
                ));
            }
            // Percent-decoding without form rules: '+' stays '+', as in AWS secret keys.
            let value = percent_decode_str(v).decode_utf8().map_err(|_| {
                StoreError::invalid(field, format!("option {key} is not valid UTF-8"))
            })?;
            if value.is_empty() {
                return Err(StoreError::invalid(field, format!("option {key} is empty")));
            }
            if out.iter().any(|(k2, _)| *k2 == key) {
                return Err(StoreError::invalid(
                    field,
                    format!("option {key} is given twice"),
                ));
            }
            out.push((key, value.into_owned()));
        }
        Ok(Params(out))
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn credentials(&self, scheme: Scheme, field: &str) -> Result<CredentialSource, StoreError> {
        let id = self.get("access-key-id");
        let secret = self.get("secret-access-key");
        let token = self.get("session-token");
        match (id, secret) {
            (None, None) if token.is_none() => Ok(CredentialSource::Chain),
            (Some(id), Some(secret)) => {
                let creds = Credentials::AccessKey {
                    access_key_id: id.to_owned(),
                    secret_access_key: Secret::new(secret),
                    session_token: token.map(Secret::new),
                };
                creds.check_scheme(scheme, field)?;
                Ok(CredentialSource::Explicit(creds))
            }
            (Some(_), None) => Err(StoreError::MissingCredentials {
                field: field.to_owned(),
                reason: "access-key-id is given without secret-access-key".to_owned(),
            }),
            (None, Some(_)) => Err(StoreError::MissingCredentials {
                field: field.to_owned(),
                reason: "secret-access-key is given without access-key-id".to_owned(),
            }),
            (None, None) => Err(StoreError::MissingCredentials {
                field: field.to_owned(),
                reason: "session-token is given without access-key-id and secret-access-key"
                    .to_owned(),
            }),
        }
    }
}

fn file(location: &str, field: &str) -> Result<Destination, StoreError> {
    if !location.starts_with('/') {
        return Err(StoreError::invalid(
            field,
            "a file URL names no host: file:///absolute/directory (three slashes)",
        ));
    }
    if location.contains('%') {
        return Err(StoreError::invalid(
            field,
            "the directory may not contain '%' (write it unencoded)",
        ));
    }
    let path = Path::new(location);
    if path
        .components()
        .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
    {
        return Err(StoreError::invalid(
            field,
            "the directory may not contain '.' or '..' components",
        ));
    }
    let dir: PathBuf = path.components().collect();
    Ok(Destination {
        scheme: Scheme::File,
        bucket: String::new(),
        prefix: String::new(),
        dir: Some(dir),
        region: None,
        endpoint: None,
        account: None,
        credentials: CredentialSource::Chain,
    })
}

fn check_bucket(scheme: Scheme, bucket: &str, field: &str) -> Result<(), StoreError> {
    let (what, max, extra): (&str, usize, &[u8]) = match scheme {
        Scheme::Azure => ("container", 63, b"-"),
        Scheme::Gcs => ("bucket", 222, b"-._"),
        _ => ("bucket", 63, b"-."),
    };
    if bucket.is_empty() {
        return Err(StoreError::invalid(
            field,
            format!("no {what} name: {}://<{what}>/<dir>", scheme.as_str()),
        ));
    }
    let bytes = bucket.as_bytes();
    let charset_ok = bytes
        .iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || extra.contains(b));
    let ends_ok = bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric);
    let doubles = bucket.contains("..") || (scheme == Scheme::Azure && bucket.contains("--"));
    if !(3..=max).contains(&bucket.len()) || !charset_ok || !ends_ok || doubles {
        let chars = String::from_utf8_lossy(extra).into_owned();
        return Err(StoreError::invalid(
            field,
            format!(
                "{what} name {:?} is not valid: 3-{max} lower-case letters, digits and {chars:?}, \
                 starting and ending with a letter or digit",
                shorten(bucket)
            ),
        ));
    }
    Ok(())
}

/// The key prefix: `/`-separated segments, none empty, `.` or `..`; no `%` or `\`.
fn check_prefix(path: &str, field: &str) -> Result<String, StoreError> {
    let path = path.strip_suffix('/').unwrap_or(path);
    if path.is_empty() {
        return Ok(String::new());
    }
    if path.len() > 512 {
        return Err(StoreError::invalid(
            field,
            "the directory is longer than 512 bytes",
        ));
    }
    for seg in path.split('/') {
        if seg.is_empty() || seg == "." || seg == ".." {
            return Err(StoreError::invalid(
                field,
                format!(
                    "directory {:?} has an empty, '.' or '..' segment",
                    shorten(path)
                ),
            ));
        }
        if seg.contains(['%', '\\', '*']) {
            return Err(StoreError::invalid(
                field,
                format!(
                    "directory segment {:?} may not contain '%', '\\' or '*'",
                    shorten(seg)
                ),
            ));
        }
    }
    Ok(path.to_owned())
}

fn check_endpoint(e: &str, field: &str) -> Result<String, StoreError> {
    let bad = |why: &str| StoreError::invalid(field, format!("endpoint {:?} {why}", shorten(e)));
    let url = url::Url::parse(e).map_err(|err| bad(&format!("is not a URL ({err})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("must be an http:// or https:// URL"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("names no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "may not carry credentials; give them as access-key-id/secret-access-key or \
             through the API",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("may not have a query or fragment"));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

fn check_region(r: &str, field: &str) -> Result<String, StoreError> {
    let ok = (1..=32).contains(&r.len())
        && r.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !ok {
        return Err(StoreError::invalid(
            field,
            format!(
                "region {:?} is not a region name (e.g. us-east-1)",
                shorten(r)
            ),
        ));
    }
    Ok(r.to_owned())
}

/// Echoes user input in errors, but never a whole pasted document.
pub(crate) fn shorten(s: &str) -> String {
    const MAX: usize = 80;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

#[cfg(test)]
mod tests;
