//! Captures as the API shows them: Cloudflare's full-capture response plus edgecap's optional
//! extensions, and the status values.

use serde::{Deserialize, Serialize};

/// Cloudflare's 8-value status enum. edgecap uses `pending`, `running`, `success` (complete
/// and ready), `failed`, and `conversion_running` while the server merges the nodes' files
/// (`merge: true`); the others are never emitted but parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Unknown,
    Success,
    Pending,
    Running,
    ConversionPending,
    ConversionRunning,
    Complete,
    Failed,
}

impl Status {
    pub fn is_terminal(self) -> bool {
        matches!(self, Status::Success | Status::Complete | Status::Failed)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Unknown => "unknown",
            Status::Success => "success",
            Status::Pending => "pending",
            Status::Running => "running",
            Status::ConversionPending => "conversion_pending",
            Status::ConversionRunning => "conversion_running",
            Status::Complete => "complete",
            Status::Failed => "failed",
        }
    }
    pub fn parse(s: &str) -> Option<Status> {
        serde_json::from_value(serde_json::Value::String(s.to_owned())).ok()
    }
}

/// One node's part of a capture (edgecap extension `node_results`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeResult {
    pub node: String,
    /// `pending` (not yet acknowledged), `running`, `success` or `failed`.
    pub status: Status,
    pub packets: u64,
    pub bytes: u64,
    pub lost: u64,
    /// This node's share of the packet limit (limits are split across nodes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub packet_limit: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub byte_limit: Option<u64>,
    /// Where the node wrote its file (an object key or path under the destination).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<String>,
}

/// A capture as returned by create, get and list (Cloudflare's full response + extensions).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Capture {
    /// 32 lowercase hex digits.
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub system: String,
    pub status: Status,
    /// RFC 3339.
    pub submitted: String,
    pub time_limit: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub packet_limit: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub byte_limit: Option<u64>,
    /// The filter as given (Cloudflare's shape, with edgecap's extensions).
    pub filter_v1: serde_json::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub colo_name: Option<String>,
    pub destination_conf: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    pub packets_captured: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_requested: Option<String>,
    // edgecap extensions: clients of Cloudflare's API ignore them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nodes: Option<Vec<String>>,
    pub points: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snaplen: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample_rate: Option<f64>,
    pub format: String,
    pub bytes_captured: u64,
    pub packets_lost: u64,
    /// `merge: true` asked for the merged timeline.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub merge: bool,
    /// The merged file's key under the destination, once it is complete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_file: Option<String>,
    pub node_results: Vec<NodeResult>,
}

/// A node as the API shows it (`GET /client/v4/accounts/{id}/nodes`, an edgecap resource).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub name: String,
    pub labels: std::collections::BTreeMap<String, String>,
    pub points: Vec<String>,
    pub connected: bool,
    /// RFC 3339.
    pub last_seen: String,
    pub version: String,
    /// The agent's own health from its last heartbeat, while it is connected (agents that
    /// do not report it have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<crate::protocol::NodeHealth>,
}
