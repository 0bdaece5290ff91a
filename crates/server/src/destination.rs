//! `destination_conf` URLs as the API takes them: parsed by `edgecap_store` (the same parser
//! the agents and `edgecap merge` use), with its errors turned into API errors that name the
//! field. The server writes to a destination only small objects (ownership challenges) and,
//! for `merge: true`, the merged file; capture files are written by the agents.

use edgecap_model::codes;
use edgecap_store::{Destination, EndpointPolicy, Store, StoreError, StoreOptions};

use crate::error::HttpError;

/// A store error about a request's input as the API answers it: `Unsupported` (an unknown
/// scheme) is code 1005, other bad input 1001, both naming the field the error names (or
/// `field` when it names none). Anything else (the store refused or could not be reached)
/// is also the caller's to fix, so it is a 400 naming `field` with the reason.
pub fn bad(e: StoreError, field: &str) -> HttpError {
    let named = e.field().unwrap_or(field).to_owned();
    let code = match e {
        StoreError::Unsupported { .. } => codes::UNSUPPORTED,
        _ => codes::INVALID_FIELD,
    };
    // The error's Display starts with its field already ("destination_conf: ..."); the API
    // message puts the field first itself.
    let text = e.to_string();
    let reason = text
        .strip_prefix(&format!("{named}: "))
        .unwrap_or(&text)
        .to_owned();
    HttpError::field_code(code, &named, reason)
}

/// Checks `dest`'s endpoint against the policy, written and resolved (a DNS lookup), whatever
/// its credentials: for a capture, before its bucket's ownership is looked at.
pub async fn check_endpoint(
    endpoints: &EndpointPolicy,
    dest: &Destination,
    field: &str,
) -> Result<(), HttpError> {
    if let Some(dial) = endpoints
        .check_endpoint(dest, field)
        .map_err(|e| bad(e, field))?
    {
        edgecap_store::check_resolved(&store_options(endpoints), &dial, field)
            .await
            .map_err(|e| bad(e, field))?;
    }
    Ok(())
}

/// Parses a `destination_conf` (named `field` in errors).
pub fn parse(conf: &str, field: &str) -> Result<Destination, HttpError> {
    Destination::parse(conf, field).map_err(|e| bad(e, field))
}

/// How the server's own requests behave: they run while an API caller waits, so they fail
/// within seconds rather than ride out an outage; endpoints are checked by `endpoints`.
pub fn store_options(endpoints: &EndpointPolicy) -> StoreOptions {
    StoreOptions {
        preflight_timeout: std::time::Duration::from_secs(10),
        endpoints: endpoints.clone(),
        ..StoreOptions::default()
    }
}

/// The client for `dest`, after the endpoint policy checked its endpoint, its credentials
/// and the addresses the endpoint's host name resolves to (a DNS lookup; no other traffic).
/// Missing credentials, a refused endpoint and a `file://` directory that does not exist
/// on the server are bad input naming `field`.
pub async fn open(
    endpoints: &EndpointPolicy,
    dest: &Destination,
    field: &str,
) -> Result<Store, HttpError> {
    let store = Store::open(dest, &store_options(endpoints), field).map_err(|e| bad(e, field))?;
    store.check_endpoint().await.map_err(|e| bad(e, field))?;
    Ok(store)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(conf: &str) -> (u32, String, String) {
        let e = parse(conf, "destination_conf").unwrap_err();
        let a = &e.errors[0];
        (
            a.code,
            a.message.clone(),
            a.source
                .as_ref()
                .map(|s| s.pointer.clone())
                .unwrap_or_default(),
        )
    }

    #[test]
    fn errors_name_the_field_and_keep_the_code() {
        let d = parse("s3://pcaps/edge?region=us-east-1", "destination_conf").unwrap();
        assert_eq!(d.to_string(), "s3://pcaps/edge?region=us-east-1");
        assert_eq!(
            parse("file:///var/x", "d").unwrap().to_string(),
            "file:///var/x"
        );
        let (code, msg, ptr) = err("ftp://x/y");
        assert_eq!(code, codes::UNSUPPORTED);
        assert!(msg.starts_with("destination_conf: scheme \"ftp\""), "{msg}");
        assert_eq!(ptr, "/destination_conf");
        let (code, msg, _) = err("s3://pcaps");
        assert_eq!(code, codes::INVALID_FIELD);
        assert!(
            msg.starts_with("destination_conf: s3:// needs ?region="),
            "{msg}"
        );
        let (code, msg, _) = err("file://host/x");
        assert_eq!(code, codes::INVALID_FIELD);
        assert!(msg.contains("three slashes"), "{msg}");
        let (_, msg, _) = err("/var/x");
        assert!(msg.contains("not a URL"), "{msg}");
        // Missing credentials name the field too, and never echo a secret.
        let (code, msg, _) =
            err("r2://pcaps?account-id=0123456789abcdef0123456789abcdef&secret-access-key=S3CR3T");
        assert_eq!(code, codes::INVALID_FIELD);
        assert!(
            msg.contains("without access-key-id") && !msg.contains("S3CR3T"),
            "{msg}"
        );
    }

    #[tokio::test]
    async fn a_missing_directory_is_bad_input() {
        let d = parse("file:///nonexistent/edgecap-x", "destination_conf").unwrap();
        let roots = edgecap_store::FileRoots::from_flags(&["/nonexistent".into()], "f").unwrap();
        let policy = EndpointPolicy::default().with_file_roots(roots);
        let e = open(&policy, &d, "destination_conf").await.unwrap_err();
        assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST);
        assert!(e.errors[0].message.contains("not a directory"), "{e:?}");
        // Without a root, refused before the directory is looked at.
        let e = open(&EndpointPolicy::default(), &d, "destination_conf")
            .await
            .unwrap_err();
        assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST);
        assert!(
            e.errors[0].message.contains("no --file-root is configured"),
            "{e:?}"
        );
    }
}
