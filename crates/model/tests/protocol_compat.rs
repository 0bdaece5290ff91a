//! What the agent protocol guarantees across versions (docs/operations.md, "Upgrades"):
//! an agent and a server of different releases decode each other's messages through
//! [`AgentMsg::decode`] and [`ServerMsg::decode`], the only way either end reads them.
//!
//! - The wire shape of every message of 0.1.0 is pinned below: a later release must still
//!   decode it and keep every field (renaming or removing a field, or making a new one
//!   required, breaks this test).
//! - A field the receiver does not know is ignored (a newer peer's additions).
//! - An `Option` field the sender did not send is `None` (an older peer's omissions): new
//!   fields are added as `Option` or `#[serde(default)]`, never as required ones, which an
//!   older peer's message would lack.
//! - A message type the receiver does not know is a decode error, which both ends log and
//!   ignore once the session is up (server: `hub/socket.rs`; agent: `link.rs`).
//! - A `filter_v1` field an agent does not know makes its part fail, naming the field: a
//!   filter is never silently widened.
//! - Messages added after 0.1.0 are pinned the same way from their release on ([`later_agent_wire`],
//!   [`later_server_wire`]): `ask` and `grant` (issue 14, budgets across nodes). A 0.1.0 peer
//!   reads them as a message type it does not know ([`Release010Agent`], [`Release010Server`]).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is a failed test

use edgecap_model::protocol::{AgentMsg, DecodeError, Outcome, ServerMsg};
use serde_json::{Value, json};

/// Messages as this release sends them, written out by hand: the wire contract.
fn agent_wire() -> Vec<Value> {
    vec![
        json!({"type": "hello", "name": "edge-fra-1", "labels": {"site": "fra1"},
               "points": ["pre-firewall", "egress"], "version": "0.1.0",
               "running": ["0123456789abcdef0123456789abcdef"],
               "finished": [{"capture_id": "00112233445566778899aabbccddeeff", "ok": true,
                             "error": null, "packets": 10, "bytes": 1000, "lost": 0,
                             "stop_reason": "packet-limit", "file": "c/edge-fra-1.pcapng"}]}),
        json!({"type": "heartbeat"}),
        json!({"type": "ack", "capture_id": "0123456789abcdef0123456789abcdef"}),
        json!({"type": "progress", "capture_id": "0123456789abcdef0123456789abcdef",
               "packets": 5, "bytes": 500, "lost": 1}),
        json!({"type": "done", "outcome": {"capture_id": "0123456789abcdef0123456789abcdef",
               "ok": false, "error": "bucket refused writes", "packets": 0, "bytes": 0,
               "lost": 0, "stop_reason": null, "file": null}}),
    ]
}

fn server_wire() -> Vec<Value> {
    vec![
        json!({"type": "welcome", "heartbeat_secs": 2.0}),
        json!({"type": "refused", "reason": "hello.name: bad"}),
        json!({"type": "assign", "assignment": {
            "capture_id": "0123456789abcdef0123456789abcdef",
            "filter_v1": {"protocol": 17, "destination_port": 53}, "filter": "udp",
            "points": ["pre-firewall"], "time_limit": 30.0, "packet_limit": 100,
            "byte_limit": null, "snaplen": 128, "sample_rate": null, "format": "pcapng",
            "destination_conf": "s3://bucket/dir?region=eu-west-1",
            "credentials": {"access_key_id": "AK", "secret_access_key": "SK"}}}),
        json!({"type": "stop", "capture_id": "0123456789abcdef0123456789abcdef"}),
    ]
}

/// Messages added after 0.1.0, as this release sends them: an agent's `ask` beyond its local
/// share of a trigger's `captures_per_hour` (with and without a destination key) and the
/// server's `grant`, granted or refused with its reason.
fn later_agent_wire() -> Vec<Value> {
    vec![
        json!({"type": "ask", "ask": {"trigger_id": "00112233445566778899aabbccddeeff",
               "capture_id": "0123456789abcdef0123456789abcdef", "key": "198.18.0.9",
               "at": 1796602202u64}}),
        json!({"type": "ask", "ask": {"trigger_id": "00112233445566778899aabbccddeeff",
               "capture_id": "0123456789abcdef0123456789abcdef", "key": "2001:db8::9",
               "at": 1796602203u64}}),
        json!({"type": "ask", "ask": {"trigger_id": "00112233445566778899aabbccddeeff",
               "capture_id": "0123456789abcdef0123456789abcdef", "at": 1796602204u64}}),
    ]
}

fn later_server_wire() -> Vec<Value> {
    vec![
        json!({"type": "grant", "grant": {"trigger_id": "00112233445566778899aabbccddeeff",
               "capture_id": "0123456789abcdef0123456789abcdef", "granted": true}}),
        json!({"type": "grant", "grant": {"trigger_id": "00112233445566778899aabbccddeeff",
               "capture_id": "0123456789abcdef0123456789abcdef", "granted": false,
               "reason": "budget.captures_per_hour: the trigger's 2 captures an hour beyond \
                          its nodes' own shares were granted"}}),
    ]
}

/// Every message this release pins, 0.1.0's and the later ones.
fn all_agent_wire() -> Vec<Value> {
    agent_wire().into_iter().chain(later_agent_wire()).collect()
}

fn all_server_wire() -> Vec<Value> {
    server_wire()
        .into_iter()
        .chain(later_server_wire())
        .collect()
}

/// True when `later` holds every field of `pinned` with the same value (objects compared
/// field by field, lists item by item): a later release may add fields (and write them out,
/// `[]` or `null` when absent), never drop or change one.
fn keeps(pinned: &Value, later: &Value) -> bool {
    match (pinned, later) {
        (Value::Object(p), Value::Object(l)) => p
            .iter()
            .all(|(k, v)| l.get(k).is_some_and(|lv| keeps(v, lv))),
        (Value::Array(p), Value::Array(l)) => {
            p.len() == l.len() && p.iter().zip(l).all(|(p, l)| keeps(p, l))
        }
        (p, l) => p == l,
    }
}

#[test]
fn this_release_s_messages_decode_and_keep_every_field() {
    for wire in all_agent_wire() {
        let msg = AgentMsg::decode(&wire.to_string()).unwrap_or_else(|e| panic!("{wire}: {e}"));
        let again = serde_json::to_value(&msg).unwrap();
        assert!(keeps(&wire, &again), "{wire}\n{again}");
    }
    for wire in all_server_wire() {
        let msg = ServerMsg::decode(&wire.to_string()).unwrap_or_else(|e| panic!("{wire}: {e}"));
        let again = serde_json::to_value(&msg).unwrap();
        assert!(keeps(&wire, &again), "{wire}\n{again}");
    }
}

/// Adds a field no release has to the message and to every object nested in it.
fn with_unknown_fields(v: &Value) -> Value {
    match v {
        Value::Object(map) => {
            let mut map: serde_json::Map<String, Value> = map
                .iter()
                .map(|(k, v)| {
                    // filter_v1 and credentials are data the receiver checks itself (below).
                    if k == "filter_v1" || k == "credentials" || k == "labels" {
                        (k.clone(), v.clone())
                    } else {
                        (k.clone(), with_unknown_fields(v))
                    }
                })
                .collect();
            map.insert("added_in_a_later_release".into(), json!({"x": [1, 2]}));
            Value::Object(map)
        }
        Value::Array(items) => Value::Array(items.iter().map(with_unknown_fields).collect()),
        other => other.clone(),
    }
}

#[test]
fn a_newer_peer_s_extra_fields_are_ignored() {
    // A newer agent's messages at an older server, and the reverse.
    for wire in all_agent_wire() {
        let newer = with_unknown_fields(&wire);
        let msg = AgentMsg::decode(&newer.to_string()).unwrap_or_else(|e| panic!("{newer}: {e}"));
        let again = serde_json::to_value(&msg).unwrap();
        assert!(keeps(&wire, &again), "{wire}\n{again}");
        assert!(
            !again.to_string().contains("added_in_a_later_release"),
            "{again}"
        );
    }
    for wire in all_server_wire() {
        let newer = with_unknown_fields(&wire);
        let msg = ServerMsg::decode(&newer.to_string()).unwrap_or_else(|e| panic!("{newer}: {e}"));
        let again = serde_json::to_value(&msg).unwrap();
        assert!(keeps(&wire, &again), "{wire}\n{again}");
        assert!(
            !again.to_string().contains("added_in_a_later_release"),
            "{again}"
        );
    }
}

#[test]
fn an_older_peer_s_missing_optional_fields_decode_as_none() {
    // An older server's assignment without the later `credentials` (and without any
    // optional value), and an older agent's outcome without its optional fields.
    let assign = json!({"type": "assign", "assignment": {
        "capture_id": "ab", "filter_v1": {}, "points": [], "time_limit": 1.0,
        "format": "pcapng", "destination_conf": "file:///srv/captures"}});
    let Ok(ServerMsg::Assign { assignment }) = ServerMsg::decode(&assign.to_string()) else {
        panic!("{assign}");
    };
    assert_eq!(assignment.credentials, None);
    assert_eq!(assignment.filter, None);
    assert_eq!(assignment.packet_limit, None);
    assert_eq!(assignment.snaplen, None);

    let done = json!({"type": "done", "outcome": {"capture_id": "ab", "ok": true,
                      "packets": 1, "bytes": 60, "lost": 0}});
    let Ok(AgentMsg::Done { outcome }) = AgentMsg::decode(&done.to_string()) else {
        panic!("{done}");
    };
    assert_eq!(
        outcome,
        Outcome {
            capture_id: "ab".into(),
            ok: true,
            error: None,
            packets: 1,
            bytes: 60,
            lost: 0,
            stop_reason: None,
            file: None,
        }
    );
}

#[test]
fn a_required_field_missing_is_refused_so_new_fields_must_be_optional() {
    // Why a release never adds a required field: an older agent's hello would lack it and
    // the server could not read the hello (it closes the connection).
    let mut hello = agent_wire().remove(0);
    hello.as_object_mut().unwrap().remove("finished");
    let e = AgentMsg::decode(&hello.to_string()).unwrap_err();
    assert!(
        matches!(&e, DecodeError::Shape(_)) && e.to_string().contains("finished"),
        "{e}"
    );
}

#[test]
fn a_message_type_from_a_later_release_is_a_decode_error_not_a_crash() {
    let agent = json!({"type": "health", "ok": true});
    let e = AgentMsg::decode(&agent.to_string()).unwrap_err();
    assert!(
        matches!(&e, DecodeError::Shape(_)) && e.to_string().contains("health"),
        "{e}"
    );
    let server = json!({"type": "drain", "capture_id": "ab"});
    let e = ServerMsg::decode(&server.to_string()).unwrap_err();
    assert!(
        matches!(&e, DecodeError::Shape(_)) && e.to_string().contains("drain"),
        "{e}"
    );
}

#[test]
fn a_filter_field_an_older_agent_does_not_know_is_refused_naming_it() {
    // The agent reads `filter_v1` as a RawFilter (plan.rs); a field from a later release
    // fails its part instead of being dropped, which would widen the capture.
    let filter = json!({"protocol": 6, "vlan_id": 100});
    let e = serde_json::from_value::<edgecap_filter::RawFilter>(filter).unwrap_err();
    assert!(e.to_string().contains("vlan_id"), "{e}");
}

#[test]
fn asks_and_grants_are_written_exactly_as_pinned() {
    use edgecap_model::firing::{Ask, Grant};
    // What this release writes, field for field: no more (an absent key or reason is left
    // out, not `null`), no fewer.
    let wire = later_agent_wire();
    let asks = [
        Some("198.18.0.9".parse().unwrap()),
        Some("2001:db8::9".parse().unwrap()),
        None,
    ];
    for (i, (key, wire)) in asks.into_iter().zip(&wire).enumerate() {
        let ask = AgentMsg::Ask {
            ask: Ask {
                trigger_id: "00112233445566778899aabbccddeeff".into(),
                capture_id: "0123456789abcdef0123456789abcdef".into(),
                key,
                at: 1_796_602_202 + i as u64,
                bytes: None,
                capture: true,
            },
        };
        assert_eq!(&serde_json::to_value(&ask).unwrap(), wire);
        assert_eq!(AgentMsg::decode(&wire.to_string()).unwrap(), ask);
    }
    let wire = later_server_wire();
    let grants = [
        (true, None),
        (
            false,
            Some(
                "budget.captures_per_hour: the trigger's 2 captures an hour beyond its nodes' \
                 own shares were granted"
                    .to_owned(),
            ),
        ),
    ];
    for ((granted, reason), wire) in grants.into_iter().zip(&wire) {
        let grant = ServerMsg::Grant {
            grant: Grant {
                trigger_id: "00112233445566778899aabbccddeeff".into(),
                capture_id: "0123456789abcdef0123456789abcdef".into(),
                granted,
                reason,
                bytes: None,
            },
        };
        assert_eq!(&serde_json::to_value(&grant).unwrap(), wire);
        assert_eq!(ServerMsg::decode(&wire.to_string()).unwrap(), grant);
    }
}

#[test]
fn bytes_in_asks_and_grants_are_optional_both_ways() {
    use edgecap_model::firing::{Ask, Grant};
    // This release's ask for bytes only (the node's own share covers the capture itself),
    // and its grant of bytes, field for field.
    let ask_wire = json!({"type": "ask", "ask": {"trigger_id": "00112233445566778899aabbccddeeff",
        "capture_id": "0123456789abcdef0123456789abcdef", "at": 1796602204u64,
        "bytes": 700000u64, "capture": false}});
    let ask = AgentMsg::Ask {
        ask: Ask {
            trigger_id: "00112233445566778899aabbccddeeff".into(),
            capture_id: "0123456789abcdef0123456789abcdef".into(),
            key: None,
            at: 1_796_602_204,
            bytes: Some(700_000),
            capture: false,
        },
    };
    assert_eq!(serde_json::to_value(&ask).unwrap(), ask_wire);
    assert_eq!(AgentMsg::decode(&ask_wire.to_string()).unwrap(), ask);
    let grant_wire = json!({"type": "grant", "grant": {"trigger_id": "00112233445566778899aabbccddeeff",
        "capture_id": "0123456789abcdef0123456789abcdef", "granted": true, "bytes": 500000u64}});
    let grant = ServerMsg::Grant {
        grant: Grant {
            trigger_id: "00112233445566778899aabbccddeeff".into(),
            capture_id: "0123456789abcdef0123456789abcdef".into(),
            granted: true,
            reason: None,
            bytes: Some(500_000),
        },
    };
    assert_eq!(serde_json::to_value(&grant).unwrap(), grant_wire);
    assert_eq!(ServerMsg::decode(&grant_wire.to_string()).unwrap(), grant);
    // An older agent's ask (no bytes, no capture) reads as an ask for a pooled capture and
    // no bytes; an older server's grant (no bytes) as a grant of none.
    for wire in later_agent_wire() {
        match AgentMsg::decode(&wire.to_string()).unwrap() {
            AgentMsg::Ask { ask } => assert_eq!((ask.bytes, ask.capture), (None, true)),
            other => panic!("{other:?}"),
        }
    }
    for wire in later_server_wire() {
        match ServerMsg::decode(&wire.to_string()).unwrap() {
            ServerMsg::Grant { grant } => assert_eq!(grant.bytes, None),
            other => panic!("{other:?}"),
        }
    }
    // An older peer's struct (the fields of the release before) reads the new ones, ignoring
    // what it does not know: its server grants a capture (counted in its pool), its agent
    // starts within its own bytes.
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct OlderAsk {
        trigger_id: String,
        capture_id: String,
        at: u64,
    }
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct OlderGrant {
        trigger_id: String,
        capture_id: String,
        granted: bool,
    }
    let a: OlderAsk = serde_json::from_value(ask_wire["ask"].clone()).unwrap();
    assert_eq!(a.at, 1_796_602_204);
    let g: OlderGrant = serde_json::from_value(grant_wire["grant"].clone()).unwrap();
    assert!(g.granted);
}

#[test]
fn an_ask_or_grant_missing_a_required_field_is_refused_naming_it() {
    // The fields a receiver needs to act are required: an ask without its second or
    // capture, a grant without its answer, is an error naming the field (which the receiver
    // logs and ignores), never a default that grants or starts something.
    for field in ["trigger_id", "capture_id", "at"] {
        let mut ask = later_agent_wire().remove(0);
        ask["ask"].as_object_mut().unwrap().remove(field);
        let e = AgentMsg::decode(&ask.to_string()).unwrap_err();
        assert!(
            matches!(&e, DecodeError::Shape(_)) && e.to_string().contains(field),
            "{field}: {e}"
        );
    }
    for field in ["trigger_id", "capture_id", "granted"] {
        let mut grant = later_server_wire().remove(0);
        grant["grant"].as_object_mut().unwrap().remove(field);
        let e = ServerMsg::decode(&grant.to_string()).unwrap_err();
        assert!(
            matches!(&e, DecodeError::Shape(_)) && e.to_string().contains(field),
            "{field}: {e}"
        );
    }
    // A key that is not an address is refused too (it names the destination the capture is
    // narrowed to).
    let mut ask = later_agent_wire().remove(0);
    ask["ask"]["key"] = json!("not-an-address");
    assert!(AgentMsg::decode(&ask.to_string()).is_err());
}

/// The message types of 0.1.0's agent, as its server's decoder knew them (tagged by `type`;
/// fields not read here).
#[derive(Debug, serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[allow(dead_code)] // only whether it decodes matters
enum Release010Agent {
    Hello {},
    Heartbeat {},
    Ack {},
    Progress {},
    Done {},
}

/// The message types of 0.1.0's server, as its agent's decoder knew them.
#[derive(Debug, serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[allow(dead_code)]
enum Release010Server {
    Welcome {},
    Refused {},
    Assign {},
    Stop {},
}

#[test]
fn a_0_1_0_peer_reads_asks_and_grants_as_unknown_types() {
    // The stand-ins know every message of 0.1.0 (so what they refuse, they refuse for its
    // type) ...
    for wire in agent_wire() {
        serde_json::from_value::<Release010Agent>(wire.clone())
            .unwrap_or_else(|e| panic!("{wire}: {e}"));
    }
    for wire in server_wire() {
        serde_json::from_value::<Release010Server>(wire.clone())
            .unwrap_or_else(|e| panic!("{wire}: {e}"));
    }
    // ... and an ask at a 0.1.0 server, or a grant at a 0.1.0 agent, is a message of an
    // unknown type: logged and ignored there (the ask then times out at the agent, which
    // counts it as refused; a 0.1.0 agent never asks).
    for wire in later_agent_wire() {
        let e = serde_json::from_value::<Release010Agent>(wire.clone()).unwrap_err();
        assert!(e.to_string().contains("unknown variant `ask`"), "{e}");
    }
    for wire in later_server_wire() {
        let e = serde_json::from_value::<Release010Server>(wire.clone()).unwrap_err();
        assert!(e.to_string().contains("unknown variant `grant`"), "{e}");
    }
}

/// `spent` (the captures of a node's own share the server recorded in the last hour, for an
/// agent that evaluates a trigger afresh) was added to a trigger of `triggers` after the
/// message: a list from an older server, without it, decodes with none; this release writes
/// it only when there is something, so an older agent reads the same shape as before, and a
/// list that has it keeps it.
#[test]
fn a_trigger_s_spent_captures_are_optional_both_ways() {
    use edgecap_model::firing::AgentTrigger;
    use edgecap_model::trigger::{Budget, validate_trigger};
    let body = json!({
        "scope": {"colo_name": "fra"},
        "condition": {"metric": "packets_per_second", "above": 1000},
        "capture": {"time_limit": 30, "destination_conf": "file:///srv/captures"},
        "budget": {"captures_per_hour": 4},
    });
    let (trigger, _) = validate_trigger(&body, &Default::default()).unwrap();
    let t = AgentTrigger {
        id: "00112233445566778899aabbccddeeff".into(),
        account_id: "a1".into(),
        trigger,
        budget: Budget {
            captures_per_hour: 1,
            bytes_per_day: 1000,
        },
        credentials: None,
        prefixes: None,
        spent: Vec::new(),
        spent_bytes: Vec::new(),
    };
    let older = serde_json::to_value(ServerMsg::Triggers {
        triggers: vec![t.clone()],
        ack: None,
    })
    .unwrap();
    assert!(older["triggers"][0].get("spent").is_none(), "{older}");
    assert!(older["triggers"][0].get("spent_bytes").is_none(), "{older}");
    let Ok(ServerMsg::Triggers { triggers, .. }) = ServerMsg::decode(&older.to_string()) else {
        panic!("{older}");
    };
    assert_eq!(triggers, vec![t.clone()]);
    let mut later = older.clone();
    later["triggers"][0]["spent"] = json!([1796602202u64, 1796602500u64]);
    let Ok(ServerMsg::Triggers { triggers, .. }) = ServerMsg::decode(&later.to_string()) else {
        panic!("{later}");
    };
    assert_eq!(triggers[0].spent, [1796602202, 1796602500]);
    let again = serde_json::to_value(ServerMsg::Triggers {
        triggers,
        ack: None,
    })
    .unwrap();
    assert!(keeps(&later, &again), "{later}\n{again}");
    // The bytes a node held of its own share, as [when, bytes] pairs.
    let mut bytes = later.clone();
    bytes["triggers"][0]["spent_bytes"] = json!([[1796602202u64, 400u64]]);
    let Ok(ServerMsg::Triggers { triggers, .. }) = ServerMsg::decode(&bytes.to_string()) else {
        panic!("{bytes}");
    };
    assert_eq!(triggers[0].spent_bytes, [[1796602202, 400]]);
    let again = serde_json::to_value(ServerMsg::Triggers {
        triggers,
        ack: None,
    })
    .unwrap();
    assert!(keeps(&bytes, &again), "{bytes}\n{again}");
}
