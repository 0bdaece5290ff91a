//! The Cloudflare v4 response envelope: `{result, success, errors, messages}`.

use serde::{Deserialize, Serialize};

/// Every JSON response of the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<T> {
    pub result: Option<T>,
    pub success: bool,
    pub errors: Vec<ApiError>,
    pub messages: Vec<ApiMessage>,
}

impl<T> Envelope<T> {
    pub fn ok(result: T) -> Self {
        Self {
            result: Some(result),
            success: true,
            errors: vec![],
            messages: vec![],
        }
    }
    pub fn err(errors: Vec<ApiError>) -> Self {
        Self {
            result: None,
            success: false,
            errors,
            messages: vec![],
        }
    }
}

/// One error. `source.pointer` is a JSON pointer to the offending field of the request body
/// (e.g. `/filter_v1/source_port`), so a client can highlight it; `message` names it too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    pub code: u32,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<ErrorSource>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorSource {
    pub pointer: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiMessage {
    pub code: u32,
    pub message: String,
}

/// Error codes. Cloudflare uses numeric codes without a published list for this API; ours are
/// stable and documented here.
pub mod codes {
    /// A field is missing, of the wrong type, out of range, or unknown.
    pub const INVALID_FIELD: u32 = 1001;
    /// The body is not JSON, not an object, or too large.
    pub const INVALID_BODY: u32 = 1002;
    /// No such capture, ownership or node.
    pub const NOT_FOUND: u32 = 1003;
    /// The node selection matches no node, or a selected node lacks a requested point.
    pub const NO_NODES: u32 = 1004;
    /// The feature exists in the API but not (yet) in this server.
    pub const UNSUPPORTED: u32 = 1005;
    /// The operation does not apply in the capture's current state.
    pub const CONFLICT: u32 = 1006;
    /// Missing or malformed `Authorization: Bearer` token.
    pub const UNAUTHENTICATED: u32 = 10000;
    /// A valid token that may not act on this account.
    pub const FORBIDDEN: u32 = 10001;
    /// Something failed on the server.
    pub const INTERNAL: u32 = 10002;
    /// The request did not finish within the server's request timeout (HTTP 503).
    pub const TIMEOUT: u32 = 10003;
    /// The account's tenancy does not allow it (HTTP 403): a restricted account without
    /// prefixes, or nodes outside its node set (the message names them and the fix).
    pub const OUTSIDE_TENANCY: u32 = 10010;
    /// Too many requests, or too many failed logins from the address (HTTP 429, with
    /// `Retry-After`); Cloudflare's code for "Please wait and consider throttling your
    /// request speed".
    pub const RATE_LIMITED: u32 = 971;
    /// An account quota (running captures, captures per hour, rules per node, bytes per
    /// day) would be exceeded (HTTP 429; `Retry-After` when waiting helps by itself).
    pub const QUOTA_EXCEEDED: u32 = 1020;
    /// A selected node already runs as many captures as the server allows per node
    /// (`--max-captures-per-node`, HTTP 429).
    pub const NODE_FULL: u32 = 1021;
}

impl ApiError {
    /// An error about one field, named in the message and pointed at by `source`.
    pub fn field(path: &str, reason: impl std::fmt::Display) -> Self {
        Self {
            code: codes::INVALID_FIELD,
            message: format!("{path}: {reason}"),
            source: Some(ErrorSource {
                pointer: format!("/{}", path.replace('.', "/")),
            }),
        }
    }
    pub fn new(code: u32, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            source: None,
        }
    }
}
