//! The OpenAPI document describes exactly the router's routes; health and nodes answer.

use std::collections::BTreeSet;

use axum::http::StatusCode;
use edgecap_model::AgentMsg;
use serde_json::Value;

use crate::both_databases;
use crate::common::{Backend, Harness};

both_databases!(
    every_route_is_documented_and_every_documented_route_exists,
    health_and_nodes,
);

async fn every_route_is_documented_and_every_documented_route_exists(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let (s, doc) = h.call_as(None, "GET", "/openapi.json", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .filter(|k| *k != "parameters")
                .map(move |m| (m.clone(), path.clone()))
        })
        .collect();
    let routed: BTreeSet<(String, String)> = edgecap_server::api::ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(documented, routed, "openapi.json and api::ROUTES differ");
    // Every documented route is served by a handler, not by the fallbacks.
    for (method, path) in &documented {
        let concrete = path
            .replace("{account_id}", &h.account.id)
            .replace("{pcap_id}", "0123456789abcdef0123456789abcdef")
            .replace("{ownership_id}", "0123456789abcdef0123456789abcdef")
            .replace("{token_id}", "0123456789abcdef0123456789abcdef")
            .replace("{trigger_id}", "0123456789abcdef0123456789abcdef")
            .replace("{node_name}", "edge0");
        let (s, v) = h.call(&method.to_uppercase(), &concrete, Some("{}")).await;
        let from_fallback = s == StatusCode::METHOD_NOT_ALLOWED
            || v["errors"][0]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("no route"));
        assert!(!from_fallback, "{method} {path}: {s} {v}");
    }
    // Every schema reference resolves.
    let text = doc.to_string();
    for r in text.split("\"$ref\":\"#/components/").skip(1) {
        let name = r.split('"').next().unwrap();
        let mut node = &doc["components"];
        for part in name.split('/') {
            node = &node[part];
        }
        assert!(!node.is_null(), "dangling $ref {name}");
    }
}

async fn health_and_nodes(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let (s, v) = h.call_as(None, "GET", "/healthz", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["result"]["status"], "ok");
    let e0 = h.node(
        "edge0",
        &[("site", "fra"), ("region", "eu")],
        &["pre-firewall", "egress"],
    );
    let _e1 = h.node("edge1", &[("site", "ord")], &["pre-firewall"]);
    e0.session.handle(AgentMsg::Heartbeat { health: None });
    h.state.hub.barrier().await;
    let (s, v) = h.call("GET", &h.acc("nodes"), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let nodes = v["result"].as_array().unwrap();
    assert_eq!(nodes.len(), 2);
    assert_eq!(nodes[0]["name"], "edge0");
    assert_eq!(nodes[0]["labels"]["region"], "eu");
    assert_eq!(
        nodes[0]["points"],
        serde_json::json!(["pre-firewall", "egress"])
    );
    assert_eq!(nodes[0]["connected"], true);
    assert_eq!(nodes[0]["version"], "test");
    drop(e0);
    h.state.hub.barrier().await;
    let (_, v) = h.call("GET", &h.acc("nodes"), None).await;
    let edge0: &Value = &v["result"][0];
    assert_eq!(edge0["connected"], false);
    assert_eq!(v["result"][1]["connected"], true);
}
