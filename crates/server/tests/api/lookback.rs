//! Look-back queries through the hub and the size estimate (`POST /pcaps/estimate`): nodes
//! attached in process answer the `query` they are sent with crafted ring answers.

use std::time::Duration;

use axum::http::StatusCode;
use edgecap_model::lookback::{PeriodRate, RingAnswer, RingQuery};
use edgecap_model::{AgentMsg, ServerMsg};
use serde_json::{Value, json};

use crate::both_databases;
use crate::common::{
    Backend, FakeNode, Harness, assert_field_error, call, restricted_account, test_config,
};

both_databases!(
    an_estimate_reports_each_node_and_the_total,
    an_estimate_of_a_restricted_account_carries_its_prefixes,
    a_refused_estimate_asks_no_node,
);

fn config() -> edgecap_server::Config {
    edgecap_server::Config {
        lookback_deadline: Duration::from_millis(500),
        ..test_config()
    }
}

/// The query the node was sent.
async fn query(n: &mut FakeNode) -> RingQuery {
    match n.next().await {
        ServerMsg::Query { query } => query,
        other => panic!("expected a query, got {other:?}"),
    }
}

fn answer(id: &str, matched: u64, one_in: u64, len: u64) -> AgentMsg {
    AgentMsg::Answer {
        answer: RingAnswer {
            query_id: id.into(),
            seq: 0,
            last: true,
            error: None,
            matched,
            est_packets: matched * one_in,
            est_bytes: matched * one_in * len,
            thinned_by: 1.0,
            periods: vec![PeriodRate {
                start: 0,
                end: 60,
                one_in,
            }],
            reach_start: Some(0),
            samples: vec![],
        },
    }
}

fn refusal(id: &str, error: &str) -> AgentMsg {
    AgentMsg::Answer {
        answer: RingAnswer {
            query_id: id.into(),
            seq: 0,
            last: true,
            error: Some(error.into()),
            matched: 0,
            est_packets: 0,
            est_bytes: 0,
            thinned_by: 1.0,
            periods: vec![],
            reach_start: None,
            samples: vec![],
        },
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * b.abs().max(1.0)
}

async fn an_estimate_reports_each_node_and_the_total(b: Backend) {
    let Some(h) = Harness::with_config(b, config()).await else {
        return;
    };
    let mut a = h.node("edge-a", &[("site", "fra")], &["pre-firewall"]);
    let mut bad = h.node("edge-b", &[("site", "fra")], &["pre-firewall"]);
    let mut slow = h.node("edge-c", &[("site", "fra")], &["pre-firewall"]);
    let body = h.create_body(
        "fra",
        json!({"time_limit": 30, "packet_limit": 3000, "filter": "udp dst port 53"}),
    );
    let path = h.acc("pcaps/estimate");
    let call = h.call("POST", &path, Some(&body));
    let nodes = async {
        let qa = query(&mut a).await;
        let qb = query(&mut bad).await;
        let qc = query(&mut slow).await;
        // What a node is asked: the estimate alone, over the last minute, the filter as given.
        assert_eq!(qa.limit, 0);
        assert_eq!(qa.to_ns - qa.from_ns, 60_000_000_000);
        assert_eq!(qa.filter.as_deref(), Some("udp dst port 53"));
        assert_eq!(qa.filter_v1["destination_port"], 53);
        assert_eq!(qa.points, vec!["pre-firewall".to_owned()]);
        assert_eq!(qa.prefixes, None);
        assert_ne!(qa.query_id, qb.query_id);
        // Another node's answer to a's query, and an unknown id: both dropped.
        bad.session.handle(answer(&qa.query_id, 1, 1, 1));
        bad.session
            .handle(answer("0123456789abcdef0123456789abcdef", 1, 1, 1));
        // 600 samples at 1 in 8 of 1,000-byte packets over 60 s: 80 packets/s.
        a.session.handle(answer(&qa.query_id, 600, 8, 1000));
        bad.session.handle(refusal(
            &qb.query_id,
            "points: \"pre-firewall\" is not observed on this node (observed: egress)",
        ));
        drop(qc); // edge-c never answers.
    };
    let ((s, v), ()) = tokio::join!(call, nodes);
    assert_eq!(s, StatusCode::OK, "{v}");
    let r = &v["result"];
    assert_eq!(r["nodes_selected"], 3);
    assert_eq!(r["nodes_answered"], 1);
    let by_node = |name: &str| -> Value {
        r["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["node"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} missing: {v}"))
    };
    let ea = by_node("edge-a");
    assert_eq!(ea["status"], "answered");
    assert!(
        close(ea["packets_per_second"]["expected"].as_f64().unwrap(), 80.0),
        "{ea}"
    );
    // ±1.96/√600 = ±8 %.
    let rel = 1.96 / 600f64.sqrt();
    assert!(close(
        ea["packets_per_second"]["low"].as_f64().unwrap(),
        80.0 * (1.0 - rel)
    ));
    assert!(close(
        ea["packets_per_second"]["high"].as_f64().unwrap(),
        80.0 * (1.0 + rel)
    ));
    assert!(close(
        ea["bytes_per_second"]["expected"].as_f64().unwrap(),
        80_000.0
    ));
    // Its share of 3,000 packets over 3 nodes is 1,000: reached after 12.5 s, before 30 s.
    assert_eq!(ea["ends_by"], "packet_limit");
    assert!(
        close(ea["ends_after_seconds"].as_f64().unwrap(), 12.5),
        "{ea}"
    );
    assert!(
        close(
            ea["file_bytes"]["expected"].as_f64().unwrap(),
            1000.0 * 1032.0
        ),
        "{ea}"
    );
    assert_eq!(ea["sampling"][0]["one_in"], 8);
    assert_eq!(ea["matched_samples"], 600);
    let eb = by_node("edge-b");
    assert_eq!(eb["status"], "failed");
    assert!(
        eb["error"]
            .as_str()
            .unwrap()
            .contains("points: \"pre-firewall\" is not observed"),
        "{eb}"
    );
    let ec = by_node("edge-c");
    assert_eq!(ec["status"], "timed_out");
    assert!(
        ec["error"]
            .as_str()
            .unwrap()
            .contains("did not answer within"),
        "{ec}"
    );
    // The total is the answering node's.
    assert!(close(
        r["total"]["packets_per_second"]["expected"]
            .as_f64()
            .unwrap(),
        80.0
    ));
    assert!(r["confidence"].as_str().unwrap().contains("1.96"));
    // Nothing stored, nothing left waiting.
    assert_eq!(h.count("captures").await, 0);
    assert_eq!(h.state.hub.pending_queries(), 0);
    a.assert_idle();
}

async fn an_estimate_of_a_restricted_account_carries_its_prefixes(b: Backend) {
    let Some(h) = Harness::with_config(b, config()).await else {
        return;
    };
    let (acct, token) =
        restricted_account(&h.state, "tenant", &["198.51.100.0/24"], &["edge-a"]).await;
    let mut a = h.node("edge-a", &[("site", "fra")], &["pre-firewall"]);
    let mut other = h.node("edge-b", &[("site", "fra")], &["pre-firewall"]);
    let body = h.create_body(
        "fra",
        // An estimate needs no destination.
        json!({"filter_v1": {"destination_address": "198.51.100.7"}, "destination_conf": null}),
    );
    let path = format!("/client/v4/accounts/{}/pcaps/estimate", acct.id);
    let req = call(&h.state, Some(&token), "POST", &path, Some(&body));
    let node = async {
        let q = query(&mut a).await;
        assert_eq!(q.prefixes, Some(vec!["198.51.100.0/24".to_owned()]));
        a.session.handle(answer(&q.query_id, 0, 64, 0));
    };
    let ((s, v), ()) = tokio::join!(req, node);
    assert_eq!(s, StatusCode::OK, "{v}");
    // Only its node was asked; nothing matched: 0 expected, at most 3 samples' worth.
    assert_eq!(v["result"]["nodes"].as_array().unwrap().len(), 1, "{v}");
    let e = &v["result"]["nodes"][0];
    assert_eq!(e["packets_per_second"]["expected"], 0.0);
    assert!(
        close(
            e["packets_per_second"]["high"].as_f64().unwrap(),
            3.0 * 64.0 / 60.0
        ),
        "{e}"
    );
    other.assert_idle();
}

async fn a_refused_estimate_asks_no_node(b: Backend) {
    let Some(h) = Harness::with_config(b, config()).await else {
        return;
    };
    let mut a = h.node("edge-a", &[("site", "fra")], &["pre-firewall"]);
    let body = h.create_body("fra", json!({"time_limit": 0}));
    let (s, v) = h.call("POST", &h.acc("pcaps/estimate"), Some(&body)).await;
    assert_field_error(s, &v, 1001, "/time_limit");
    let body = h.create_body("fra", json!({"points": ["nowhere"]}));
    let (s, v) = h.call("POST", &h.acc("pcaps/estimate"), Some(&body)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(v.to_string().contains("points.0"), "{v}");
    tokio::time::sleep(Duration::from_millis(50)).await;
    a.assert_idle();
}
