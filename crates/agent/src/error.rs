//! Why a capture could not run or its file could not be delivered. Each error keeps what
//! caused it as its `source`; its `Display` is the text the server is sent as the part's
//! `error_message` (and the manifest's `error`), so it names the assignment's field at fault.

use std::io;
use std::path::PathBuf;

use edgecap_capture::{CaptureError, RequestError, RequestField};
use edgecap_store::StoreError;

/// An assignment this node cannot honour exactly ([`crate::plan`]).
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("capture_id: {0:?} is not a capture id (32 hex digits)")]
    CaptureId(String),
    /// `filter_v1` is not the structured filter's JSON shape.
    #[error("filter_v1: {0}")]
    FilterShape(#[source] serde_json::Error),
    /// A `filter_v1` field is invalid (its message starts with the field's name).
    #[error("filter_v1.{0}")]
    Filter(#[source] edgecap_filter::FilterError),
    #[error("points: {0}")]
    Points(#[source] edgecap_capture::points::PointError),
    #[error("time_limit: {0} is not a positive number of seconds")]
    TimeLimit(f64),
    /// The account's prefixes in the assignment do not form a boundary.
    #[error("prefixes: {0}")]
    Prefixes(#[source] edgecap_filter::BoundaryError),
    /// What the request rules refuse (the same rules as `edgecap capture`'s).
    #[error("{}", request_message(.0))]
    Request(#[source] RequestError),
}

/// The refusal, named by the assignment's field.
fn request_message(e: &RequestError) -> String {
    match e.field() {
        // The filter crate's message starts with the field (`source_port: ...`).
        RequestField::Structured(_) => format!("filter_v1.{e}"),
        RequestField::Expression => format!("filter: {e}"),
        RequestField::Snaplen => format!("snaplen: {e}"),
        RequestField::Format => format!("format: {e}"),
        // The filter, limited to the account's prefixes.
        RequestField::Boundary => format!("filter: {e}"),
    }
}

/// A node's file that cannot be opened, written or completed ([`crate::output`]).
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The destination, its credentials, a key, or a request to the store (its message names
    /// the field or the object).
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("destination_conf: {} is not a directory on node {node}", .dir.display())]
    NotADirectory { dir: PathBuf, node: String },
    #[error("destination_conf: cannot {what} {}: {source}", .path.display())]
    Open {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("destination_conf: {} exists and is not a regular file", .0.display())]
    NotARegularFile(PathBuf),
    /// Some bytes never reached the disk, or the rename into place failed.
    #[error("destination_conf: writing {}: {source}", .path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("the {0} is already finished")]
    AlreadyFinished(&'static str),
    /// The upload failed while the capture ran; it was aborted. `report` is what the store
    /// had confirmed.
    #[error(
        "upload of {name} failed mid-capture: {source} ({report}; {dropped} more bytes were \
         written after the failure and dropped)"
    )]
    FailedMidCapture {
        name: String,
        source: io::Error,
        report: Box<edgecap_store::UploadReport>,
        dropped: u64,
    },
    /// Completing the upload failed for another reason than a part's upload.
    #[error("upload of {name}: {source}")]
    Complete { name: String, source: StoreError },
    #[error("cannot start a runtime for the manifest: {0}")]
    Runtime(#[source] io::Error),
}

/// Why one capture ended without a file ([`crate::worker`]).
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Output(#[from] OutputError),
    #[error("network namespace {ns}: {source}")]
    Netns {
        ns: String,
        source: edgecap_netns::NetnsError,
    },
    #[error("{}", engine_message(.0))]
    Engine(#[source] CaptureError),
}

fn engine_message(e: &CaptureError) -> String {
    match e {
        CaptureError::OutputClosed(_) => "the output was closed before the capture ended".into(),
        other => other.to_string(),
    }
}
