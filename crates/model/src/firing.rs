//! Triggers on the wire (issue 14): what the server sends an agent so it can detect at the
//! edge ([`AgentTrigger`], in [`crate::ServerMsg::Triggers`]) and what the agent reports back
//! when a trigger fires, is refused, ends, or its capture yields a signature ([`Firing`],
//! [`Ending`], [`Signed`]).
//!
//! ```text
//! agent                                   server
//!   | <-- triggers {triggers} ----------------------------- |  (on hello and on every change)
//!   |     ... the agent's own 1 s rollups hold the condition ...
//!   | -- fired {firing} ----------------------------------> |  (capture_id: the agent's own id;
//!   | -- progress / done {capture_id} ----------------------> |   the server records the capture)
//!   | -- ended {ending} ----------------------------------> |
//!   | -- signed {signed} ---------------------------------> |  (once the capture has ended)
//! ```
//!
//! Beyond its local share of `captures_per_hour` ([`AgentTrigger::budget`]) a connected agent
//! asks before it starts a capture:
//!
//! ```text
//!   | -- ask {trigger_id, capture_id, key, at, bytes?, capture?} --> |  decided under the
//!   | <-- grant {trigger_id, capture_id, granted, reason, bytes?} -- |  trigger's row lock
//! ```
//!
//! and starts it only when granted; no answer within [`GRANT_TIMEOUT_MS`], or no connection,
//! is a refusal (`budget.captures_per_hour`, reported in its `fired`). It also asks, with
//! `bytes`, when its local share of `bytes_per_day` does not cover the capture's byte limit
//! (`capture: false` when its local share of captures covers the capture itself); the
//! capture's byte limit is then the local bytes plus the granted `bytes` (refused:
//! `budget.bytes_per_day`). Both messages are new: an older server ignores `ask` (its
//! agents' asks time out: refused), an older agent never asks (it spends its local share
//! only); `bytes` and `capture` are newer still and optional both ways (an older server
//! grants no bytes; an older agent asks for none).
//!
//! The agent starts the capture itself, without a server round trip, and keeps doing so while
//! the server is away; it keeps at most [`MAX_PENDING_REPORTS`] reports to deliver after a
//! reconnect (the oldest are dropped first, and counted). Only agents announcing
//! [`FEATURE_TRIGGERS`] get triggers.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::protocol::SecretJson;
use crate::trigger::{Budget, Trigger};

/// The feature an agent announces in `hello.features` when it evaluates triggers.
pub const FEATURE_TRIGGERS: &str = "triggers";

/// The feature an agent announces in `hello.features` when it answers each trigger list
/// carrying an `ack` with [`crate::AgentMsg::Heard`] once it evaluates that list.
pub const FEATURE_TRIGGERS_HEARD: &str = "triggers-heard";

/// The most triggers one node evaluates (all accounts together); the server sends a node at
/// most this many and says so in its log when it has to leave some out.
pub const MAX_AGENT_TRIGGERS: usize = 256;

/// The most reports (firings, endings, signatures) an agent keeps while the server is away.
pub const MAX_PENDING_REPORTS: usize = 1024;

/// The largest serialized signature an agent sends (bytes of JSON); a bigger one is cut to its
/// best fields.
pub const MAX_SIGNATURE_BYTES: usize = 64 * 1024;

/// How long an agent waits for the server's [`Grant`] before it counts the firing as refused.
pub const GRANT_TIMEOUT_MS: u64 = 1000;

/// The most asks an agent has waiting at once, and a server decides at once for one
/// connection; beyond, an ask is refused at once.
pub const MAX_PENDING_ASKS: usize = 64;

/// An agent beyond its local share of `captures_per_hour`, or whose local share of
/// `bytes_per_day` does not cover the capture's byte limit, asks for one capture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ask {
    pub trigger_id: String,
    /// The capture the agent will start if granted (32 hex digits, made by the agent).
    pub capture_id: String,
    /// The destination that fired (`per: destination`); `None`: the whole scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<IpAddr>,
    /// The second it fired (Unix seconds).
    pub at: u64,
    /// The bytes it asks of the trigger's bytes pool (what its local share of `bytes_per_day`
    /// does not cover of the capture's byte limit); absent: none (and from older agents).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// Whether the capture itself comes from the pool of `captures_per_hour` (true, and from
    /// older agents) or from the node's local share (false: only `bytes` are asked). An
    /// older server ignores it and counts every ask as a capture of its pool.
    #[serde(default = "yes", skip_serializing_if = "is_yes")]
    pub capture: bool,
}

fn yes() -> bool {
    true
}

fn is_yes(b: &bool) -> bool {
    *b
}

/// The server's answer to an [`Ask`]: granted (counted in the trigger's pools) or not, and
/// why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Grant {
    pub trigger_id: String,
    pub capture_id: String,
    pub granted: bool,
    /// Why not (`budget.captures_per_hour: ...` or `budget.bytes_per_day: ...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The bytes granted from the bytes pool (at most those asked; counted there for a day
    /// whatever the capture writes). Absent: none (and from older servers, which have no
    /// bytes pool).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
}

/// One trigger as one node evaluates it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentTrigger {
    /// The trigger's id (32 hex digits).
    pub id: String,
    pub account_id: String,
    /// The trigger as validated; `capture.destination_conf` is the canonical, secret-free form.
    pub trigger: Trigger,
    /// This node's local share of the trigger's budget ([`crate::trigger::node_share`]):
    /// half of `bytes_per_day` and half of `captures_per_hour` divided among the nodes in
    /// scope that the server knows (connected or not), so that together they never exceed
    /// those halves (each share, while that split changes, the least over the splits that
    /// may still be spent: a new node's is 0 for the first hour, for bytes the first day).
    /// The node spends it without asking; beyond it it asks the pools ([`Ask`]). Servers
    /// before the bytes pool send a share of the whole `bytes_per_day`.
    pub budget: Budget,
    /// Per-bucket credentials for the capture's destination (as in an assignment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<SecretJson>,
    /// The account's prefixes when it is restricted: the trigger sees only that traffic (its
    /// rollups are the account's), and its capture's rule is bounded to them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefixes: Option<Vec<String>>,
    /// When (unix seconds, the server's clock when it recorded them) this node started the
    /// captures of its own share of `captures_per_hour` the server recorded in the last hour,
    /// at most [`MAX_SPENT`]. An agent that starts evaluating the trigger afresh (after a
    /// restart it has forgotten its own) counts them against its share. Absent from servers
    /// before it: empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub spent: Vec<u64>,
    /// The bytes of its own share of `bytes_per_day` this node held for the captures the
    /// server recorded in the last day: `[when, bytes]` (unix seconds, the server's clock when
    /// it recorded them; bytes: the capture's byte limit less what the bytes pool granted
    /// it), at most [`MAX_SPENT_BYTES`], the latest. An agent that starts evaluating the
    /// trigger afresh counts them against its bytes share. Absent from servers before it:
    /// empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub spent_bytes: Vec<[u64; 2]>,
}

/// Most entries of [`AgentTrigger::spent_bytes`]: a day of captures at the largest
/// `captures_per_hour`.
pub const MAX_SPENT_BYTES: usize = 24 * MAX_SPENT;

/// Most entries of [`AgentTrigger::spent`]: the largest `captures_per_hour`.
pub const MAX_SPENT: usize = crate::trigger::MAX_CAPTURES_PER_HOUR as usize;

/// A trigger's condition held long enough on this node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Firing {
    pub trigger_id: String,
    /// The capture the agent started (32 hex digits, made by the agent); `None` when it was
    /// refused (`refused` says why).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture_id: Option<String>,
    /// The destination that fired (`per: destination`); `None`: the whole scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<IpAddr>,
    /// First second (Unix seconds) of the run of holding seconds, and the second it fired.
    pub started: u64,
    pub at: u64,
    /// The metric in the firing second and the highest in the run (per second).
    pub value: f64,
    pub peak: f64,
    /// `cooldown`, `budget.captures_per_hour`, `budget.bytes_per_day`, or why the capture
    /// could not start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
    /// The capture as started (narrowed to what fired), so the server can record it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture: Option<FiredCapture>,
}

/// The capture an agent started for a firing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FiredCapture {
    /// The narrowed tcpdump-style filter the rule matches (the scope's, ANDed with what fired).
    pub filter: String,
    pub points: Vec<String>,
    pub time_limit: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packet_limit: Option<u64>,
    pub byte_limit: u64,
    pub format: String,
    /// Sampled packets from the ring put before the live ones, on `<node>/<point>/sampled`.
    pub pre_trigger_packets: u64,
}

/// A key that fired (or was refused) stopped holding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ending {
    pub trigger_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<IpAddr>,
    pub started: u64,
    /// The last holding second.
    pub ended: u64,
    pub peak: f64,
}

/// The attack signature of a trigger's capture (`edgecap-signature`), sent once it ended;
/// the baseline is the ring's samples from before the trigger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signed {
    pub trigger_id: String,
    pub capture_id: String,
    pub signature: edgecap_signature::Signature,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AgentMsg, ServerMsg};

    #[test]
    fn reports_round_trip_and_older_servers_see_unknown_types() {
        let f = AgentMsg::Fired {
            firing: Firing {
                trigger_id: "ab".repeat(16),
                capture_id: Some("cd".repeat(16)),
                key: Some("198.18.0.9".parse().unwrap()),
                started: 100,
                at: 103,
                value: 5000.0,
                peak: 6000.0,
                refused: None,
                capture: Some(FiredCapture {
                    filter: "dst host 198.18.0.9 and udp".into(),
                    points: vec!["pre-firewall".into()],
                    time_limit: 30.0,
                    packet_limit: None,
                    byte_limit: 1 << 20,
                    format: "pcapng".into(),
                    pre_trigger_packets: 12,
                }),
            },
        };
        let text = serde_json::to_string(&f).unwrap();
        assert!(text.contains("\"type\":\"fired\""), "{text}");
        assert_eq!(AgentMsg::decode(&text).unwrap(), f);
        let e = AgentMsg::Ended {
            ending: Ending {
                trigger_id: "ab".repeat(16),
                key: None,
                started: 100,
                ended: 140,
                peak: 6000.0,
            },
        };
        let text = serde_json::to_string(&e).unwrap();
        assert!(text.contains("\"type\":\"ended\""), "{text}");
        assert_eq!(AgentMsg::decode(&text).unwrap(), e);
        let t = ServerMsg::Triggers {
            triggers: vec![],
            ack: None,
        };
        let text = serde_json::to_string(&t).unwrap();
        assert_eq!(text, r#"{"type":"triggers","triggers":[]}"#);
        assert_eq!(ServerMsg::decode(&text).unwrap(), t);
        // To agents announcing FEATURE_TRIGGERS_HEARD, a list carries an ack, echoed back.
        let t = ServerMsg::Triggers {
            triggers: vec![],
            ack: Some(u64::MAX),
        };
        let text = serde_json::to_string(&t).unwrap();
        assert_eq!(
            text,
            r#"{"type":"triggers","triggers":[],"ack":18446744073709551615}"#
        );
        assert_eq!(ServerMsg::decode(&text).unwrap(), t);
        let h = AgentMsg::Heard { ack: u64::MAX };
        let text = serde_json::to_string(&h).unwrap();
        assert_eq!(text, r#"{"type":"heard","ack":18446744073709551615}"#);
        assert_eq!(AgentMsg::decode(&text).unwrap(), h);
    }

    #[test]
    fn asks_and_grants_round_trip_and_older_peers_see_unknown_types() {
        let a = AgentMsg::Ask {
            ask: Ask {
                trigger_id: "ab".repeat(16),
                capture_id: "cd".repeat(16),
                key: Some("2001:db8::9".parse().unwrap()),
                at: 103,
                bytes: None,
                capture: true,
            },
        };
        let text = serde_json::to_string(&a).unwrap();
        assert!(text.contains("\"type\":\"ask\""), "{text}");
        assert_eq!(AgentMsg::decode(&text).unwrap(), a);
        // The whole-scope key is left out, and read back as None.
        let scope = r#"{"type":"ask","ask":{"trigger_id":"ab","capture_id":"cd","at":5}}"#;
        match AgentMsg::decode(scope).unwrap() {
            AgentMsg::Ask { ask } => assert_eq!((ask.key, ask.at), (None, 5)),
            other => panic!("{other:?}"),
        }
        for granted in [true, false] {
            let g = ServerMsg::Grant {
                grant: Grant {
                    trigger_id: "ab".repeat(16),
                    capture_id: "cd".repeat(16),
                    granted,
                    reason: (!granted).then(|| "budget.captures_per_hour: spent".into()),
                    bytes: None,
                },
            };
            let text = serde_json::to_string(&g).unwrap();
            assert!(text.contains("\"type\":\"grant\""), "{text}");
            assert_eq!(text.contains("reason"), !granted, "{text}");
            assert_eq!(ServerMsg::decode(&text).unwrap(), g);
        }
        // An older peer's enum has no such type: a decode error, which both ends log and
        // ignore (tests/protocol_compat.rs); the agent's ask then times out as a refusal.
        #[derive(Debug, serde::Deserialize)]
        #[serde(tag = "type", rename_all = "snake_case")]
        #[allow(dead_code)]
        enum Older {
            Heartbeat {},
        }
        assert!(serde_json::from_str::<Older>(&text).is_err());
        assert!(serde_json::from_str::<Older>(scope).is_err());
    }
}
