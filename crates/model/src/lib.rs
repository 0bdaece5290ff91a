//! edgecap's wire contract, shared by server, agent and CLI. Pure: no I/O.
//!
//! - [`envelope`]: the Cloudflare v4 envelope `{result, success, errors, messages}`, error codes.
//! - [`capture`]: captures, statuses, per-node results and nodes as the API returns them.
//! - [`request`]: validation of `POST /pcaps` bodies with field-named errors.
//! - [`protocol`]: the agent <-> server messages and how limits are split across nodes.
//! - [`trigger`]: anomaly triggers (`POST /pcaps/triggers`) validated with field-named errors.
//! - [`ids`]: 32-hex ids and RFC 3339 timestamps.
//! - [`json`]: the nesting bound on JSON from the network ([`json::MAX_JSON_DEPTH`]), checked
//!   before parsing by the server's bodies and both ends of the agent protocol.

pub mod capture;
pub mod envelope;
pub mod firing;
pub mod ids;
pub mod json;
pub mod lookback;
pub mod protocol;
pub mod request;
pub mod trigger;

pub use capture::{Capture, Node, NodeResult, Status};
pub use envelope::{ApiError, ApiMessage, Envelope, ErrorSource, codes};
pub use protocol::{
    AgentMsg, Assignment, DecodeError, ENROLMENT_HEADER, MAX_MESSAGE_BYTES, NODE_CREDENTIAL_PREFIX,
    NODE_HEADER, NodeHealth, Outcome, SecretJson, ServerMsg, check_hello, is_node_credential,
    split_limit,
};
pub use request::{AccountLimits, CreateRequest, validate_create};
