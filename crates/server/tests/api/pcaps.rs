//! The capture endpoints: selection, dispatch, the part lifecycle, stop, download.

use std::time::Duration;

use axum::http::StatusCode;
use edgecap_model::{AccountLimits, AgentMsg, Outcome, ServerMsg};
use serde_json::{Value, json};

use crate::both_databases;
use crate::common::{Backend, Harness, assert_error, assert_field_error};

both_databases!(
    create_selects_by_colo_and_splits_limits,
    nodes_take_names_and_label_selectors,
    list_is_newest_first_and_pages,
    ack_progress_and_done_drive_the_status,
    failed_parts_are_named_in_the_capture_error,
    stop_reaches_every_open_node_and_is_recorded,
    download_is_for_simple_captures_only,
    silent_nodes_fail_with_no_result,
    ids_are_checked,
    every_point_must_exist_on_every_node,
    limits_must_cover_every_node,
    unvalidated_buckets_and_bad_destinations_are_refused,
    account_limits_apply,
    colo_is_accepted_for_colo_name,
);

fn outcome(id: &str, ok: bool, packets: u64) -> Outcome {
    Outcome {
        capture_id: id.to_owned(),
        ok,
        error: (!ok).then(|| "disk full".to_owned()),
        packets,
        bytes: packets * 100,
        lost: 0,
        stop_reason: Some("packet-limit".into()),
        file: Some(format!("{id}/node.pcapng")),
    }
}

fn assigned(msg: ServerMsg) -> edgecap_model::Assignment {
    match msg {
        ServerMsg::Assign { assignment } => assignment,
        other => panic!("expected assign, got {other:?}"),
    }
}

async fn create_selects_by_colo_and_splits_limits(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let mut e0 = h.node("edge0", &[("site", "fra")], &["pre-firewall"]);
    let mut e1 = h.node("edge1", &[("site", "fra")], &["pre-firewall"]);
    let mut e2 = h.node("edge2", &[("site", "ord")], &["pre-firewall"]);
    let body = h.create_body("FRA", json!({"packet_limit": 1001, "byte_limit": 3}));
    let (s, v) = h.call("POST", &h.acc("pcaps"), Some(&body)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["success"], true);
    let c = &v["result"];
    let id = c["id"].as_str().unwrap();
    assert!(edgecap_model::ids::is_id(id));
    assert_eq!(c["status"], "pending");
    assert_eq!(c["type"], "full");
    assert_eq!(c["system"], "magic-transit");
    assert_eq!(c["colo_name"], "FRA");
    assert_eq!(c["packets_captured"], 0);
    assert_eq!(
        c["filter_v1"],
        json!({"protocol": 17, "destination_port": 53})
    );
    let parts = c["node_results"].as_array().unwrap();
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0]["node"], "edge0");
    assert_eq!(parts[0]["packet_limit"], 501);
    assert_eq!(parts[1]["packet_limit"], 500);
    assert_eq!(parts[0]["byte_limit"], 2);
    assert_eq!(parts[1]["byte_limit"], 1);
    assert!(parts.iter().all(|p| p["status"] == "pending"));
    let a0 = assigned(e0.next().await);
    let a1 = assigned(e1.next().await);
    assert_eq!(a0.capture_id, id);
    assert_eq!((a0.packet_limit, a1.packet_limit), (Some(501), Some(500)));
    assert_eq!(a0.destination_conf, h.file_dest());
    assert_eq!(a0.points, ["pre-firewall"]);
    assert_eq!(a0.time_limit, 60.0);
    e2.assert_idle();
    assert_eq!(h.count("captures").await, 1);
    assert_eq!(h.count("capture_nodes").await, 2);
}

async fn nodes_take_names_and_label_selectors(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let _e0 = h.node("edge0", &[("site", "fra")], &["pre-firewall"]);
    let _e1 = h.node(
        "edge1",
        &[("site", "fra"), ("role", "gw")],
        &["pre-firewall"],
    );
    let _e2 = h.node("edge2", &[("site", "ord")], &["pre-firewall"]);
    let body = h.create_body(
        "",
        json!({"colo_name": null, "nodes": ["edge2", "site=fra"]}),
    );
    let (s, v) = h.call("POST", &h.acc("pcaps"), Some(&body)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["result"]["node_results"].as_array().unwrap().len(), 3);
    assert_eq!(v["result"]["nodes"], json!(["edge2", "site=fra"]));
    // colo_name and nodes narrow each other.
    let body = h.create_body("fra", json!({"nodes": ["role=gw"]}));
    let (s, v) = h.call("POST", &h.acc("pcaps"), Some(&body)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let names: Vec<&str> = v["result"]["node_results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["node"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["edge1"]);
    let body = h.create_body("ord", json!({"nodes": ["role=gw"]}));
    let (s, v) = h.call("POST", &h.acc("pcaps"), Some(&body)).await;
    assert_field_error(s, &v, 1004, "/nodes");
    // Each entry must match something: a typo is not silently dropped.
    let body = h.create_body("", json!({"colo_name": null, "nodes": ["edge0", "egde1"]}));
    let (s, v) = h.call("POST", &h.acc("pcaps"), Some(&body)).await;
    assert_field_error(s, &v, 1004, "/nodes/1");
    assert!(
        v["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("\"egde1\""),
        "{v}"
    );
    let (s, v) = h
        .call(
            "POST",
            &h.acc("pcaps"),
            Some(&h.create_body("lax", json!({}))),
        )
        .await;
    assert_field_error(s, &v, 1004, "/colo_name");
    let msg = v["errors"][0]["message"].as_str().unwrap();
    assert!(
        msg.contains("connected: edge0, edge1, edge2; sites: fra, ord"),
        "{msg}"
    );
    assert_eq!(h.count("captures").await, 2);
}

async fn list_is_newest_first_and_pages(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let _e0 = h.node("edge0", &[("site", "fra")], &["pre-firewall"]);
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(h.create("fra", json!({})).await);
    }
    let (s, v) = h.call("GET", &h.acc("pcaps"), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let listed: Vec<&str> = v["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    let newest_first: Vec<&str> = ids.iter().rev().map(String::as_str).collect();
    assert_eq!(listed, newest_first);
    assert_eq!(v["result_info"]["total_count"], 3);
    assert_eq!(v["result_info"]["per_page"], 50);
    let (_, v) = h.call("GET", &h.acc("pcaps?per_page=2&page=2"), None).await;
    assert_eq!(v["result"].as_array().unwrap().len(), 1);
    assert_eq!(v["result"][0]["id"], ids[0]);
    assert_eq!(v["result_info"]["count"], 1);
    let (_, v) = h
        .call("GET", &h.acc(&format!("pcaps/{}", ids[1])), None)
        .await;
    assert_eq!(v["result"]["id"], ids[1]);
    assert_eq!(v["result"]["node_results"][0]["node"], "edge0");
    // Another account sees none of them.
    let other = format!("/client/v4/accounts/{}/pcaps", h.other.id);
    let (_, v) = h.call_as(Some(&h.other_token), "GET", &other, None).await;
    assert_eq!(v["result"], json!([]));
    let (s, _) = h
        .call_as(
            Some(&h.other_token),
            "GET",
            &format!("{other}/{}", ids[0]),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

async fn ack_progress_and_done_drive_the_status(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let mut e0 = h.node("edge0", &[("site", "fra")], &["pre-firewall"]);
    let mut e1 = h.node("edge1", &[("site", "fra")], &["pre-firewall"]);
    let id = h.create("fra", json!({"packet_limit": 10})).await;
    let _ = (e0.next().await, e1.next().await);
    e0.session.handle(AgentMsg::Ack {
        capture_id: id.clone(),
    });
    let c = h.capture(&id).await;
    assert_eq!(c["status"], "running");
    assert_eq!(c["node_results"][0]["status"], "running");
    assert_eq!(c["node_results"][1]["status"], "pending");
    e1.session.handle(AgentMsg::Ack {
        capture_id: id.clone(),
    });
    e0.session.handle(AgentMsg::Progress {
        capture_id: id.clone(),
        packets: 3,
        bytes: 300,
        lost: 1,
    });
    // Live progress shows at once, before it is written.
    let (_, v) = h.call("GET", &h.acc(&format!("pcaps/{id}")), None).await;
    assert_eq!(v["result"]["packets_captured"], 3, "{v}");
    assert_eq!(v["result"]["bytes_captured"], 300);
    assert_eq!(v["result"]["packets_lost"], 1);
    h.state.hub.flush().await;
    let c = h.capture(&id).await;
    assert_eq!(c["node_results"][0]["packets"], 3);
    e0.session.handle(AgentMsg::Done {
        outcome: outcome(&id, true, 5),
    });
    let c = h.capture(&id).await;
    assert_eq!(c["status"], "running");
    assert_eq!(c["node_results"][0]["status"], "success");
    assert_eq!(c["node_results"][0]["stop_reason"], "packet-limit");
    assert_eq!(c["node_results"][0]["file"], format!("{id}/node.pcapng"));
    e1.session.handle(AgentMsg::Done {
        outcome: outcome(&id, true, 5),
    });
    let c = h.capture(&id).await;
    assert_eq!(c["status"], "success");
    assert_eq!(c["packets_captured"], 10);
    assert_eq!(c["bytes_captured"], 1000);
    assert!(c.get("error_message").is_none(), "{c}");
    // A late or repeated report changes nothing.
    e1.session.handle(AgentMsg::Done {
        outcome: outcome(&id, false, 99),
    });
    let c = h.capture(&id).await;
    assert_eq!(c["status"], "success");
    assert_eq!(c["packets_captured"], 10);
}

async fn failed_parts_are_named_in_the_capture_error(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let e0 = h.node("edge0", &[("site", "fra")], &["pre-firewall"]);
    let e1 = h.node("edge1", &[("site", "fra")], &["pre-firewall"]);
    let id = h.create("fra", json!({})).await;
    e0.session.handle(AgentMsg::Done {
        outcome: outcome(&id, true, 4),
    });
    e1.session.handle(AgentMsg::Done {
        outcome: outcome(&id, false, 2),
    });
    let c = h.capture(&id).await;
    assert_eq!(c["status"], "failed");
    assert_eq!(
        c["error_message"],
        "failed on 1 of 2 nodes: edge1: disk full"
    );
    assert_eq!(c["node_results"][1]["error_message"], "disk full");
    assert_eq!(c["packets_captured"], 6);
}

async fn stop_reaches_every_open_node_and_is_recorded(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let mut e0 = h.node("edge0", &[("site", "fra")], &["pre-firewall"]);
    let mut e1 = h.node("edge1", &[("site", "fra")], &["pre-firewall"]);
    let id = h.create("fra", json!({})).await;
    let _ = (e0.next().await, e1.next().await);
    e0.session.handle(AgentMsg::Ack {
        capture_id: id.clone(),
    });
    let stop = h.acc(&format!("pcaps/{id}/stop"));
    let (s, v) = h.call("PUT", &stop, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v,
        json!({"result": null, "success": true, "errors": [], "messages": []})
    );
    for e in [&mut e0, &mut e1] {
        assert_eq!(
            e.next().await,
            ServerMsg::Stop {
                capture_id: id.clone()
            }
        );
    }
    let c = h.capture(&id).await;
    let first = c["stop_requested"].as_str().unwrap().to_owned();
    // Stopping again is harmless and keeps the first time.
    let (s, _) = h.call("PUT", &stop, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h.capture(&id).await["stop_requested"], first.as_str());
    let mut o = outcome(&id, true, 1);
    o.stop_reason = Some("stopped".into());
    e0.session.handle(AgentMsg::Done { outcome: o.clone() });
    e1.session.handle(AgentMsg::Done { outcome: o });
    let c = h.capture(&id).await;
    assert_eq!(c["status"], "success");
    assert_eq!(c["node_results"][1]["stop_reason"], "stopped");
    let (s, v) = h.call("PUT", &stop, None).await;
    assert_error(
        s,
        StatusCode::CONFLICT,
        &v,
        1006,
        "already finished (success)",
    );
}

async fn download_is_for_simple_captures_only(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let _e0 = h.node("edge0", &[("site", "fra")], &["pre-firewall"]);
    let id = h.create("fra", json!({})).await;
    let (s, v) = h
        .call("GET", &h.acc(&format!("pcaps/{id}/download")), None)
        .await;
    assert_error(s, StatusCode::BAD_REQUEST, &v, 1005, "only simple captures");
    assert!(
        v["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains(&h.file_dest())
    );
    let missing = "0123456789abcdef0123456789abcdef";
    let (s, v) = h
        .call("GET", &h.acc(&format!("pcaps/{missing}/download")), None)
        .await;
    assert_error(s, StatusCode::NOT_FOUND, &v, 1003, missing);
}

async fn silent_nodes_fail_with_no_result(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let _timers = h.state.hub.start().await.unwrap();
    let e0 = h.node("edge0", &[("site", "fra")], &["pre-firewall"]);
    let _e1 = h.node("edge1", &[("site", "fra")], &["pre-firewall"]);
    let id = h.create("fra", json!({"time_limit": 1})).await;
    e0.session.handle(AgentMsg::Done {
        outcome: outcome(&id, true, 1),
    });
    // time_limit 1 s + result margin 2 s.
    let c = h
        .wait_for(&id, Duration::from_secs(8), |c| c["status"] == "failed")
        .await;
    assert_eq!(c["status"], "failed", "{c}");
    assert_eq!(c["node_results"][0]["status"], "success");
    let msg = c["node_results"][1]["error_message"].as_str().unwrap();
    assert!(msg.starts_with("no result from node edge1"), "{msg}");
    assert!(
        c["error_message"]
            .as_str()
            .unwrap()
            .contains("edge1: no result from node edge1")
    );
}

async fn ids_are_checked(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    for path in [
        "pcaps/xyz",
        "pcaps/xyz/stop",
        "pcaps/0123456789abcdef0123456789abcdeg",
    ] {
        let method = if path.ends_with("stop") { "PUT" } else { "GET" };
        let (s, v) = h.call(method, &h.acc(path), None).await;
        assert_field_error(s, &v, 1001, "/pcap_id");
    }
    let missing = "0123456789ABCDEF0123456789ABCDEF";
    for (method, path) in [
        ("GET", format!("pcaps/{missing}")),
        ("PUT", format!("pcaps/{missing}/stop")),
    ] {
        let (s, v) = h.call(method, &h.acc(&path), None).await;
        assert_error(s, StatusCode::NOT_FOUND, &v, 1003, "no capture");
    }
}

async fn every_point_must_exist_on_every_node(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let mut e0 = h.node("edge0", &[("site", "fra")], &["pre-firewall"]);
    let _e1 = h.node("edge1", &[("site", "fra")], &["pre-firewall", "egress"]);
    let body = h.create_body("fra", json!({"points": ["pre-firewall", "egress"]}));
    let (s, v) = h.call("POST", &h.acc("pcaps"), Some(&body)).await;
    assert_field_error(s, &v, 1004, "/points/1");
    let msg = v["errors"][0]["message"].as_str().unwrap();
    assert!(
        msg.contains("node edge0 has no capture point \"egress\""),
        "{msg}"
    );
    assert_eq!(v["errors"].as_array().unwrap().len(), 1);
    assert_eq!(h.count("captures").await, 0);
    e0.assert_idle();
    let body = h.create_body("edge1", json!({"points": ["egress"]}));
    let (s, v) = h.call("POST", &h.acc("pcaps"), Some(&body)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["result"]["points"], json!(["egress"]));
}

async fn limits_must_cover_every_node(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let mut e0 = h.node("edge0", &[("site", "fra")], &["pre-firewall"]);
    let _e1 = h.node("edge1", &[("site", "fra")], &["pre-firewall"]);
    let body = h.create_body("fra", json!({"packet_limit": 1, "byte_limit": 1}));
    let (s, v) = h.call("POST", &h.acc("pcaps"), Some(&body)).await;
    assert_field_error(s, &v, 1001, "/packet_limit");
    assert_field_error(s, &v, 1001, "/byte_limit");
    assert!(
        v["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("2 selected nodes")
    );
    assert_eq!(h.count("captures").await, 0);
    e0.assert_idle();
}

async fn unvalidated_buckets_and_bad_destinations_are_refused(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let mut e0 = h.node("edge0", &[("site", "fra")], &["pre-firewall"]);
    for dest in [
        "s3://pcaps-bucket?region=us-east-1",
        "gs://bucket",
        "r2://pcaps?account-id=0123456789abcdef0123456789abcdef",
        "azure://pcaps?account=acme",
    ] {
        let body = h.create_body("fra", json!({"destination_conf": dest}));
        let (s, v) = h.call("POST", &h.acc("pcaps"), Some(&body)).await;
        assert_field_error(s, &v, 1001, "/destination_conf");
        let msg = v["errors"][0]["message"].as_str().unwrap();
        assert!(msg.contains("is not a validated bucket"), "{msg}");
    }
    let body = h.create_body("fra", json!({"destination_conf": "ftp://x/y"}));
    let (s, v) = h.call("POST", &h.acc("pcaps"), Some(&body)).await;
    assert_field_error(s, &v, 1005, "/destination_conf");
    for dest in [
        "file://host/dir",
        "relative/dir",
        "s3://Bad_Bucket?region=x",
    ] {
        let body = h.create_body("fra", json!({"destination_conf": dest}));
        let (s, v) = h.call("POST", &h.acc("pcaps"), Some(&body)).await;
        assert_field_error(s, &v, 1001, "/destination_conf");
    }
    assert_eq!(h.count("captures").await, 0);
    e0.assert_idle();
}

async fn account_limits_apply(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let _e0 = h.node("edge0", &[("site", "fra")], &["pre-firewall"]);
    let (s, v) = h
        .call(
            "POST",
            &h.acc("pcaps"),
            Some(&h.create_body("fra", json!({"time_limit": 3600}))),
        )
        .await;
    assert_field_error(s, &v, 1001, "/time_limit");
    assert!(
        v["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("outside 1-300")
    );
    let limits = AccountLimits {
        max_time_limit: 86_400.0,
        max_packet_limit: 1_000_000,
        ..AccountLimits::default()
    };
    let (big, token) = crate::common::account(&h.state, "big", limits).await;
    let body = h.create_body("fra", json!({"time_limit": 3600, "packet_limit": 500000}));
    let path = format!("/client/v4/accounts/{}/pcaps", big.id);
    let (s, v) = h.call_as(Some(&token), "POST", &path, Some(&body)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["result"]["time_limit"], 3600.0);
}

async fn colo_is_accepted_for_colo_name(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let _e0 = h.node("ord02", &[("colo", "ORD")], &["pre-firewall"]);
    let body = h.create_body("", json!({"colo_name": null, "colo": "ord"}));
    let (s, v) = h.call("POST", &h.acc("pcaps"), Some(&body)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["result"]["colo_name"], "ord");
    let body = h.create_body("", json!({"colo_name": null, "colo": "sea"}));
    let (s, v) = h.call("POST", &h.acc("pcaps"), Some(&body)).await;
    assert_field_error(s, &v, 1004, "/colo");
    let _: Value = v;
}
