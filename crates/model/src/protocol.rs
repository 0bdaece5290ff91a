//! The agent protocol: JSON text messages over one WebSocket that the agent opens to
//! `GET /agent/v1/connect` with `Authorization: Bearer <agent token>` (agents dial out, so
//! they work behind NAT). The server never connects to an agent.
//!
//! ```text
//! agent                                   server
//!   | -- hello {name, labels, points, running, finished} -->
//!   | <-- welcome {heartbeat_secs} ------------------------ |   (or refused {reason}, then close)
//!   | <-- assign {assignment} ----------------------------- |
//!   | -- ack {capture_id} --------------------------------> |   (dispatch latency ends here)
//!   | -- progress {capture_id, packets, bytes, lost} -----> |   (at most every PROGRESS_SECS)
//!   | <-- stop {capture_id} ------------------------------- |
//!   | -- done {outcome} ----------------------------------> |
//!   | -- heartbeat {health?} -------------------------------> |   (every heartbeat_secs)
//! ```
//!
//! Reconnects: an agent that loses the connection keeps its captures running, reconnects with
//! backoff, and lists them in `hello.running`; outcomes it could not deliver go in
//! `hello.finished`. The server marks a node's part failed when the node stays away longer
//! than its grace period.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::json::{MAX_JSON_DEPTH, TooDeep, check_depth};

/// How often an agent reports progress of a running capture, at most.
pub const PROGRESS_SECS: f64 = 1.0;

/// The largest message either end accepts: the server's and the agent's WebSocket message
/// and frame limit, and [`AgentMsg::decode`] / [`ServerMsg::decode`]'s. A hello with 256
/// finished outcomes or an assignment with its filter is a few KiB.
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;

/// Captures (each an nftables table) one node runs at once, whatever the accounts: the
/// default of the server's `--max-captures-per-node` and of the agent's `--max-captures`.
pub const DEFAULT_MAX_CAPTURES_PER_NODE: usize = 16;

/// Why a text message is not a protocol message. Both ends read messages only through
/// [`AgentMsg::decode`] and [`ServerMsg::decode`], which apply one size and one depth bound.
#[derive(Debug)]
pub enum DecodeError {
    /// Longer than [`MAX_MESSAGE_BYTES`].
    TooLarge { len: usize },
    /// Nested deeper than [`MAX_JSON_DEPTH`].
    TooDeep(TooDeep),
    /// Not JSON, or not the shape of any message.
    Shape(serde_json::Error),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::TooLarge { len } => write!(
                f,
                "message of {len} bytes, more than the limit of {MAX_MESSAGE_BYTES} bytes"
            ),
            DecodeError::TooDeep(e) => match &e.field {
                Some(field) => write!(f, "message field {field}: {e}"),
                None => write!(f, "message: {e}"),
            },
            DecodeError::Shape(e) => write!(f, "not a protocol message: {e}"),
        }
    }
}

impl std::error::Error for DecodeError {}

fn decode<T: DeserializeOwned>(text: &str) -> Result<T, DecodeError> {
    if text.len() > MAX_MESSAGE_BYTES {
        return Err(DecodeError::TooLarge { len: text.len() });
    }
    check_depth(text.as_bytes(), MAX_JSON_DEPTH).map_err(DecodeError::TooDeep)?;
    serde_json::from_str(text).map_err(DecodeError::Shape)
}

impl AgentMsg {
    /// A message the server received, within [`MAX_MESSAGE_BYTES`] and [`MAX_JSON_DEPTH`].
    pub fn decode(text: &str) -> Result<AgentMsg, DecodeError> {
        decode(text)
    }
}

impl ServerMsg {
    /// A message the agent received, within [`MAX_MESSAGE_BYTES`] and [`MAX_JSON_DEPTH`].
    pub fn decode(text: &str) -> Result<ServerMsg, DecodeError> {
        decode(text)
    }
}

/// Messages from agent to server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AgentMsg {
    Hello {
        /// Unique node name.
        name: String,
        /// e.g. `site=fra1`, `region=eu`, and free-form labels.
        labels: BTreeMap<String, String>,
        /// Capture points this node offers (built-in and configured).
        points: Vec<String>,
        version: String,
        /// Captures still running on this node (after a reconnect).
        running: Vec<String>,
        /// Outcomes not yet delivered (they finished while disconnected).
        finished: Vec<Outcome>,
        /// What this agent can do beyond the first protocol ([`FEATURE_BOUNDARY`], ...).
        /// Absent from older agents, which then have none.
        #[serde(default)]
        features: Vec<String>,
    },
    Heartbeat {
        /// How the agent judges itself (absent from agents before it; a server before it
        /// ignores the field).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        health: Option<NodeHealth>,
    },
    Ack {
        capture_id: String,
    },
    Progress {
        capture_id: String,
        packets: u64,
        bytes: u64,
        lost: u64,
    },
    Done {
        outcome: Outcome,
    },
    /// The observer's closed seconds (per point; oldest first), at most
    /// [`MAX_ROLLUP_SECONDS`] per message. Older servers skip the message.
    Rollups {
        seconds: Vec<edgecap_observe::Second>,
    },
    /// Part of the answer to a [`ServerMsg::Query`].
    Answer {
        answer: crate::lookback::RingAnswer,
    },
    /// A trigger fired (or was refused) on this node ([`crate::firing`]). A started capture's
    /// progress and outcome follow under its `capture_id`.
    Fired {
        firing: crate::firing::Firing,
    },
    /// A key that fired stopped holding.
    Ended {
        ending: crate::firing::Ending,
    },
    /// The attack signature of a trigger's ended capture.
    Signed {
        signed: Box<crate::firing::Signed>,
    },
    /// Beyond its local share of a trigger's `captures_per_hour`: may this capture start?
    /// Answered by [`ServerMsg::Grant`]; older servers ignore it (the ask times out).
    Ask {
        ask: crate::firing::Ask,
    },
    /// The agent evaluates the trigger list whose [`ServerMsg::Triggers`] carried `ack`.
    /// Sent only in answer to a list carrying one, so older servers never see it.
    Heard {
        ack: u64,
    },
}

/// An agent's own health, sent in its heartbeats and shown in the node list.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NodeHealth {
    /// Every check of the agent's `/readyz` passes.
    pub ready: bool,
    /// The failed checks, `name: why` (at most [`NodeHealth::MAX_PROBLEMS`] are kept, each
    /// cut to [`NodeHealth::MAX_PROBLEM_CHARS`]).
    #[serde(default)]
    pub problems: Vec<String>,
}

impl NodeHealth {
    pub const MAX_PROBLEMS: usize = 8;
    pub const MAX_PROBLEM_CHARS: usize = 256;

    /// Held to its bounds (what the server keeps of what an agent said).
    pub fn bounded(mut self) -> NodeHealth {
        self.problems.truncate(Self::MAX_PROBLEMS);
        for p in &mut self.problems {
            if let Some((i, _)) = p.char_indices().nth(Self::MAX_PROBLEM_CHARS) {
                p.truncate(i);
            }
        }
        self
    }
}

/// One second of one point, as agents send it (the observer's rollup, `edgecap-observe`).
pub use edgecap_observe::{Hitter, Second};

/// The most rollup seconds one [`AgentMsg::Rollups`] carries, so a message stays far below
/// [`MAX_MESSAGE_BYTES`] (a second with its heavy hitters is a few KiB of JSON).
pub const MAX_ROLLUP_SECONDS: usize = 60;

/// How a node's part of a capture ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub capture_id: String,
    /// False when the capture could not run or its output could not be written.
    pub ok: bool,
    pub error: Option<String>,
    pub packets: u64,
    pub bytes: u64,
    pub lost: u64,
    /// Why it stopped: time-limit, packet-limit, byte-limit, stopped, output-closed.
    pub stop_reason: Option<String>,
    /// Where the file went (path or object key under the destination).
    pub file: Option<String>,
}

/// Messages from server to agent.
// An assignment is sent once per capture and node and lives only until it is written to the
// socket or handed to a worker; boxing it would save nothing measurable.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    Welcome {
        heartbeat_secs: f64,
    },
    Refused {
        reason: String,
    },
    Assign {
        assignment: Assignment,
    },
    Stop {
        capture_id: String,
    },
    /// The restricted accounts whose traffic this node's observer keeps apart (each its own
    /// rollups, inside its prefixes); replaces the previous list. At most
    /// [`MAX_OBSERVED_ACCOUNTS`]. Older agents skip the message.
    Accounts {
        accounts: Vec<AccountScope>,
    },
    /// A look-back question for the observer's ring; answered by [`AgentMsg::Answer`]s.
    Query {
        query: crate::lookback::RingQuery,
    },
    /// The triggers this node evaluates (at most [`crate::firing::MAX_AGENT_TRIGGERS`]);
    /// replaces the previous list. Only sent to agents announcing
    /// [`crate::firing::FEATURE_TRIGGERS`].
    Triggers {
        triggers: Vec<crate::firing::AgentTrigger>,
        /// Sent only to agents announcing [`crate::firing::FEATURE_TRIGGERS_HEARD`]: the
        /// agent echoes it in [`AgentMsg::Heard`] once it evaluates this list, and only then
        /// does the server count the node as having heard its shares (a list written to a
        /// connection that breaks before the agent reads it is not heard). Older agents
        /// ignore it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ack: Option<u64>,
    },
    /// The answer to an [`AgentMsg::Ask`]. Older agents never ask.
    Grant {
        grant: crate::firing::Grant,
    },
}

/// One account as the observer keeps it: its id and prefixes (`edgecap_filter::Boundary`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountScope {
    pub id: String,
    pub prefixes: Vec<String>,
}

/// The most accounts one node's observer keeps rollups for.
pub const MAX_OBSERVED_ACCOUNTS: usize = 256;

/// One node's part of a capture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assignment {
    pub capture_id: String,
    /// The structured filter (Cloudflare `filter_v1` shape, edgecap extensions allowed).
    pub filter_v1: serde_json::Value,
    /// A tcpdump-style expression, ANDed with `filter_v1`.
    pub filter: Option<String>,
    pub points: Vec<String>,
    pub time_limit: f64,
    /// This node's share of the capture's packet limit.
    pub packet_limit: Option<u64>,
    /// This node's share of the capture's byte limit.
    pub byte_limit: Option<u64>,
    pub snaplen: Option<u32>,
    pub sample_rate: Option<f64>,
    /// `pcapng` or `pcap`.
    pub format: String,
    /// Where to write: the canonical, secret-free `destination_conf` (`s3://..`, `r2://..`,
    /// `gs://..`, `azure://..` or `file:///dir`).
    pub destination_conf: String,
    /// Per-bucket credentials given through the API, in its JSON shape
    /// (`{"access_key_id": .., "secret_access_key": ..}`, ...), for this capture only. Absent:
    /// the node uses its cloud's standard chain. Sent over the agent's authenticated
    /// connection and never logged ([`SecretJson`] does not print).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<SecretJson>,
    /// The account's prefixes (`198.18.1.0/24`, `2001:db8:a::/48`) when the account is
    /// restricted: the agent ANDs "source or destination under one of them" into the rule it
    /// builds (`edgecap_filter::Boundary`), whatever the filter says. Absent: the account is
    /// unrestricted. Only sent to agents announcing [`FEATURE_BOUNDARY`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefixes: Option<Vec<String>>,
}

/// The feature an agent announces in `hello.features` when it enforces
/// [`Assignment::prefixes`]; a server must not send a restricted account's capture to an
/// agent without it.
pub const FEATURE_BOUNDARY: &str = "tenant-boundary";

/// A JSON value holding secrets: serialized as itself (the wire needs it), but `Debug` prints
/// `[redacted]`, so logging a message that carries it shows no secret. Boxed: most
/// assignments carry none, and the message enum stays small.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretJson(Box<serde_json::Value>);

impl SecretJson {
    pub fn new(v: serde_json::Value) -> SecretJson {
        SecretJson(Box::new(v))
    }

    /// The secrets themselves, to build a client with. Do not log them.
    pub fn expose(&self) -> &serde_json::Value {
        &self.0
    }
}

impl std::fmt::Debug for SecretJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Assignment {
    /// The sampling as the engine takes it: keep one packet in N. A `sample_rate` of 0.01 is
    /// one in 100; rates whose inverse is not whole round to the nearest N; 1 (or none) keeps
    /// every packet.
    pub fn sample_one_in(&self) -> Option<u32> {
        let rate = self.sample_rate?;
        if !(rate > 0.0 && rate < 1.0) {
            return None;
        }
        let n = (1.0 / rate).round();
        (n >= 2.0).then(|| n.min(f64::from(u32::MAX)) as u32)
    }
}

/// Header of the WebSocket upgrade naming the node (the name its credential is bound to).
/// The node's own credential is the `Authorization: Bearer` token.
pub const NODE_HEADER: &str = "edgecap-node";
/// Header of the WebSocket upgrade carrying an enrolment token (an agent token), needed only
/// while the node's name is not yet bound to its credential.
pub const ENROLMENT_HEADER: &str = "edgecap-enrolment-token";
/// Prefix of a node's own credential.
pub const NODE_CREDENTIAL_PREFIX: &str = "ecn_";

/// True for a node credential: [`NODE_CREDENTIAL_PREFIX`] and 64 lowercase hex digits.
pub fn is_node_credential(s: &str) -> bool {
    s.strip_prefix(NODE_CREDENTIAL_PREFIX).is_some_and(|h| {
        h.len() == 64
            && h.bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
    })
}

/// Checks what a node says about itself in `hello`. Names, labels and points end up in API
/// answers, selectors and file names, so they are kept plain. The server refuses a hello that
/// fails this; the agent checks its own settings with it before it dials.
pub fn check_hello(
    name: &str,
    labels: &BTreeMap<String, String>,
    points: &[String],
    version: &str,
) -> Result<(), String> {
    let plain = |s: &str, max: usize| {
        !s.is_empty()
            && s.len() <= max
            && s.bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"._-/:".contains(&c))
    };
    // A name is one segment of an object key (`<capture_id>/<node>.pcapng`), so it is plain,
    // does not start with '.', and is not `merged` (the merged file's name).
    if !plain(name, 63) || name.contains(['/', ':']) || name.starts_with('.') {
        return Err(format!(
            "hello.name: {name:?} must be 1-63 characters of letters, digits, '.', '_', '-', \
             not starting with '.'"
        ));
    }
    if name == "merged" {
        return Err("hello.name: \"merged\" is reserved for the merged file's name".into());
    }
    if labels.len() > 64 {
        return Err("hello.labels: at most 64 labels".into());
    }
    for (k, v) in labels {
        if !plain(k, 63) || v.len() > 256 || v.chars().any(char::is_control) {
            return Err(format!(
                "hello.labels: {k:?}={v:?}: keys are 1-63 of letters, digits and ._-/:, values \
                 at most 256 printable characters"
            ));
        }
    }
    if points.len() > 64 || points.iter().any(|p| !plain(p, 64)) {
        return Err("hello.points: at most 64 names of 1-64 plain characters".into());
    }
    if version.len() > 64 || version.chars().any(char::is_control) {
        return Err("hello.version: at most 64 printable characters".into());
    }
    Ok(())
}

/// Splits a capture-wide limit across `n` nodes so the parts never add up to more than the
/// whole: every node gets `limit / n`, and the first `limit % n` nodes one more. A node whose
/// share is 0 gets no assignment (the server refuses a limit smaller than the node count).
pub fn split_limit(limit: u64, n: usize, index: usize) -> u64 {
    let n = n.max(1) as u64;
    limit / n + u64::from((index as u64) < limit % n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Old and new agents and servers read each other's heartbeats.
    #[test]
    fn heartbeats_with_and_without_health_interoperate() {
        // An old agent's heartbeat, to a new server.
        let old = AgentMsg::decode(r#"{"type": "heartbeat"}"#).unwrap();
        assert_eq!(old, AgentMsg::Heartbeat { health: None });
        // A new agent's heartbeat, to an old server (whose heartbeat had no fields).
        #[derive(Debug, PartialEq, Deserialize)]
        #[serde(tag = "type", rename_all = "snake_case")]
        enum OldAgentMsg {
            Heartbeat,
        }
        let new = AgentMsg::Heartbeat {
            health: Some(NodeHealth {
                ready: false,
                problems: vec!["nftables: no netfilter netlink socket".into()],
            }),
        };
        let text = serde_json::to_string(&new).unwrap();
        assert_eq!(
            serde_json::from_str::<OldAgentMsg>(&text).unwrap(),
            OldAgentMsg::Heartbeat
        );
        assert_eq!(AgentMsg::decode(&text).unwrap(), new);
        let none = serde_json::to_string(&AgentMsg::Heartbeat { health: None }).unwrap();
        assert_eq!(none, r#"{"type":"heartbeat"}"#);
        let long = NodeHealth {
            ready: false,
            problems: vec!["é".repeat(1000); 20],
        }
        .bounded();
        assert_eq!(long.problems.len(), NodeHealth::MAX_PROBLEMS);
        assert_eq!(
            long.problems[0].chars().count(),
            NodeHealth::MAX_PROBLEM_CHARS
        );
    }

    #[test]
    fn decoding_bounds_size_and_depth() {
        let ok = r#"{"type": "ack", "capture_id": "ab"}"#;
        assert!(matches!(AgentMsg::decode(ok), Ok(AgentMsg::Ack { .. })));
        let deep = format!(
            r#"{{"type": "assign", "assignment": {{"filter_v1": {}1{}}}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        let e = ServerMsg::decode(&deep).unwrap_err();
        assert_eq!(
            e.to_string(),
            "message field assignment: nested deeper than the limit of 32 levels of objects \
             and arrays"
        );
        let big = format!(
            r#"{{"type": "ack", "capture_id": "{}"}}"#,
            "a".repeat(MAX_MESSAGE_BYTES)
        );
        assert!(matches!(
            AgentMsg::decode(&big),
            Err(DecodeError::TooLarge { .. })
        ));
        assert!(matches!(AgentMsg::decode("[]"), Err(DecodeError::Shape(_))));
    }

    #[test]
    fn limit_shares_add_up_exactly() {
        for (limit, n) in [(10u64, 3usize), (1000, 7), (5, 5), (10_000, 1000), (1, 1)] {
            let total: u64 = (0..n).map(|i| split_limit(limit, n, i)).sum();
            assert_eq!(total, limit, "{limit} over {n}");
            let shares: Vec<u64> = (0..n).map(|i| split_limit(limit, n, i)).collect();
            assert!(shares.iter().max().unwrap() - shares.iter().min().unwrap() <= 1);
        }
    }

    #[test]
    fn sample_rates_become_one_in_n() {
        let mut a = Assignment {
            capture_id: "ab".into(),
            filter_v1: serde_json::json!({}),
            filter: None,
            points: vec!["pre-firewall".into()],
            time_limit: 1.0,
            packet_limit: None,
            byte_limit: None,
            snaplen: None,
            sample_rate: None,
            format: "pcapng".into(),
            destination_conf: "file:///x".into(),
            credentials: None,
            prefixes: None,
        };
        let mut one_in = |r: Option<f64>| {
            a.sample_rate = r;
            a.sample_one_in()
        };
        assert_eq!(one_in(None), None);
        assert_eq!(one_in(Some(1.0)), None);
        assert_eq!(one_in(Some(0.01)), Some(100));
        assert_eq!(one_in(Some(0.3)), Some(3));
        assert_eq!(one_in(Some(0.7)), None, "rounds to 1 in 1: every packet");
    }

    #[test]
    fn hello_fields_are_checked() {
        let none = BTreeMap::new();
        let ok = |name: &str| check_hello(name, &none, &[], "1");
        assert!(ok("edge-1.fra").is_ok());
        for bad in ["", "a b", "a/b", "..", ".x", "merged", &"x".repeat(64)] {
            assert!(ok(bad).is_err(), "{bad:?}");
        }
        let labels = BTreeMap::from([("site".to_owned(), "fra1".to_owned())]);
        assert!(check_hello("n", &labels, &["pre-firewall".into()], "0.1").is_ok());
        let bad = BTreeMap::from([("a=b".to_owned(), "x".to_owned())]);
        assert!(check_hello("n", &bad, &[], "0.1").is_err());
    }

    #[test]
    fn messages_round_trip_with_a_type_tag() {
        let m = AgentMsg::Progress {
            capture_id: "ab".into(),
            packets: 1,
            bytes: 2,
            lost: 0,
        };
        let text = serde_json::to_string(&m).unwrap();
        assert!(text.starts_with("{\"type\":\"progress\""), "{text}");
        assert_eq!(serde_json::from_str::<AgentMsg>(&text).unwrap(), m);
        let s = ServerMsg::Stop {
            capture_id: "ab".into(),
        };
        assert_eq!(
            serde_json::from_str::<ServerMsg>(&serde_json::to_string(&s).unwrap()).unwrap(),
            s
        );
    }

    #[test]
    fn credentials_cross_the_wire_but_never_print() {
        let secret = serde_json::json!({"access_key_id": "AK", "secret_access_key": "S3CR3T"});
        let mut a: Assignment = serde_json::from_value(serde_json::json!({
            "capture_id": "ab", "filter_v1": {}, "filter": null, "points": [],
            "time_limit": 1.0, "packet_limit": null, "byte_limit": null, "snaplen": null,
            "sample_rate": null, "format": "pcapng", "destination_conf": "s3://b?region=r"
        }))
        .unwrap();
        assert_eq!(a.credentials, None, "older servers send none");
        assert!(!serde_json::to_string(&a).unwrap().contains("credentials"));
        a.credentials = Some(SecretJson::new(secret.clone()));
        let msg = ServerMsg::Assign { assignment: a };
        let wire = serde_json::to_string(&msg).unwrap();
        assert!(wire.contains("S3CR3T"), "the agent needs them: {wire}");
        assert_eq!(serde_json::from_str::<ServerMsg>(&wire).unwrap(), msg);
        assert!(!format!("{msg:?}").contains("S3CR3T"), "{msg:?}");
    }
}
