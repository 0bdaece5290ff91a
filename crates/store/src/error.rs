//! The crate's single error type. Every variant says what an operator must change: the field
//! of a bad URL, the bucket and object key of a failed request, and for a failed upload what
//! reached the store before it failed.

use crate::upload::UploadReport;

/// What went wrong with a destination, its credentials or a transfer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A value that cannot be used, e.g. a malformed `destination_conf`. `field` names the
    /// request field or option it came from.
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },

    /// A well-formed value edgecap does not support (an unknown scheme).
    #[error("{field}: {reason}")]
    Unsupported { field: String, reason: String },

    /// The destination needs credentials that were neither given nor found on this host.
    #[error("{field}: {reason}")]
    MissingCredentials { field: String, reason: String },

    /// The store refused or could not be reached before anything was uploaded (the check at
    /// capture start). Nothing was written.
    #[error("cannot write to {destination} (object {key}): {reason}")]
    Unwritable {
        destination: String,
        key: String,
        reason: String,
    },

    /// An upload failed after it started. `report` says what was handed to the store; the
    /// incomplete upload was aborted (or, if `report.abort_error` is set, could not be).
    #[error("upload of {key} to {destination} failed: {reason} ({report})")]
    Upload {
        destination: String,
        key: String,
        reason: String,
        report: Box<UploadReport>,
    },

    /// A request for one object failed (small put, get, head).
    #[error("{op} of {key} in {destination} failed: {reason}")]
    Request {
        op: &'static str,
        destination: String,
        key: String,
        reason: String,
    },

    /// The secrets key file or a sealed secret could not be used.
    #[error("{0}")]
    Seal(String),
}

impl StoreError {
    pub(crate) fn invalid(field: &str, reason: impl Into<String>) -> Self {
        StoreError::Invalid {
            field: field.to_owned(),
            reason: reason.into(),
        }
    }

    /// The field a bad-input error names, if it is one (the server answers 400 with it).
    pub fn field(&self) -> Option<&str> {
        match self {
            StoreError::Invalid { field, .. }
            | StoreError::Unsupported { field, .. }
            | StoreError::MissingCredentials { field, .. } => Some(field),
            _ => None,
        }
    }

    /// True for errors caused by the input (the CLI exits 2, the API answers 400).
    pub fn is_bad_input(&self) -> bool {
        self.field().is_some()
    }
}

/// An `object_store` error as one line, without the URL when it may carry a SAS token
/// (object_store already strips those for sensitive requests).
pub(crate) fn describe(e: &object_store::Error) -> String {
    use std::error::Error as _;
    let mut msg = e.to_string();
    let mut src = e.source();
    // object_store's Display already includes the immediate source; walking further adds the
    // root cause (connection refused, DNS) that operators look for.
    while let Some(s) = src {
        let text = s.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        src = s.source();
    }
    msg
}
