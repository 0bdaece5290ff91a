//! `/metrics` counts what happened, by route template and code; `/readyz` follows the
//! database; `/healthz` only says the process serves.

use axum::http::StatusCode;
use edgecap_model::AgentMsg;
use serde_json::json;

use crate::both_databases;
use crate::common::{Backend, Harness};

both_databases!(
    metrics_count_requests_dispatches_and_captures,
    readyz_follows_the_database,
    a_nodes_health_is_listed_bounded_while_it_is_connected,
);

/// The value of the sample `name{labels}` (labels as rendered, in order), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

async fn scrape(h: &Harness) -> String {
    let (s, v) = h.call_as(None, "GET", "/metrics", None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v.as_str().expect("text").to_owned()
}

async fn metrics_count_requests_dispatches_and_captures(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let mut e0 = h.node("edge0", &[("site", "fra")], &["pre-firewall"]);
    let body = h.create_body("FRA", json!({}));
    let (s, v) = h.call("POST", &h.acc("pcaps"), Some(&body)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let id = v["result"]["id"].as_str().unwrap().to_owned();
    let _ = e0.next().await;
    e0.session.handle(AgentMsg::Ack {
        capture_id: id.clone(),
    });
    h.state.hub.barrier().await;
    let (s, _) = h.call("GET", &h.acc(&format!("pcaps/{id}")), None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = h
        .call(
            "GET",
            &h.acc("pcaps/ffffffffffffffffffffffffffffffff"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = h.call("GET", "/no/such/path", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = h.call("BREW", "/no/such/path", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    let text = scrape(&h).await;
    let get = "edgecap_api_requests_total{method=\"GET\",route=\"/client/v4/accounts/{account_id}/pcaps/{pcap_id}\"";
    assert_eq!(
        sample(&text, &format!("{get},code=\"200\"}}")),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, &format!("{get},code=\"404\"}}")),
        Some(1.0),
        "{text}"
    );
    let post = "edgecap_api_requests_total{method=\"POST\",route=\"/client/v4/accounts/{account_id}/pcaps\",code=\"200\"}";
    assert_eq!(sample(&text, post), Some(1.0), "{text}");
    let unmatched = "edgecap_api_requests_total{method=\"GET\",route=\"unmatched\",code=\"404\"}";
    assert_eq!(sample(&text, unmatched), Some(1.0), "{text}");
    // A made-up method is `other`: clients cannot add label values.
    let other = "edgecap_api_requests_total{method=\"other\",route=\"unmatched\",code=\"404\"}";
    assert_eq!(sample(&text, other), Some(1.0), "{text}");
    assert!(!text.contains("BREW"), "{text}");
    // No raw id ever becomes a label value.
    assert!(!text.contains(&id), "{text}");
    assert!(!text.contains(&h.account.id), "{text}");
    assert_eq!(
        sample(&text, "edgecap_dispatch_seconds_count"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "edgecap_agents_connected"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "edgecap_captures{status=\"running\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "edgecap_captures{status=\"success\"}"),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "edgecap_queue_depth{queue=\"writer\"}"),
        Some(0.0),
        "{text}"
    );
    assert!(text.ends_with("# EOF\n"), "{text}");
    // The scrape itself is counted by the next one.
    let text = scrape(&h).await;
    let scraped = "edgecap_api_requests_total{method=\"GET\",route=\"/metrics\",code=\"200\"}";
    assert_eq!(sample(&text, scraped), Some(1.0), "{text}");
}

async fn readyz_follows_the_database(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let (s, v) = h.call_as(None, "GET", "/readyz", None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["success"], true);
    assert_eq!(v["result"]["ready"], true);
    let names: Vec<&str> = v["result"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["database", "migrations"]);
    // A check another subsystem adds (a replica's lease, say) counts like the database.
    h.state
        .hub
        .metrics()
        .add_ready_check(std::sync::Arc::new(|| {
            Box::pin(async { edgecap_metrics::Check::failed("lease", "held by another replica") })
        }));
    let (s, v) = h.call_as(None, "GET", "/readyz", None).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["errors"][0]["message"], "lease: held by another replica");
    // The database gone: not ready, saying so; alive all the same.
    h.state.db.close().await;
    let (s, v) = h.call_as(None, "GET", "/readyz", None).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["success"], false);
    assert_eq!(v["result"]["ready"], false);
    let first = v["errors"][0]["message"].as_str().unwrap();
    assert!(first.starts_with("database: no answer"), "{v}");
    let (s, v) = h.call_as(None, "GET", "/healthz", None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["result"]["status"], "ok");
}

async fn a_nodes_health_is_listed_bounded_while_it_is_connected(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let e0 = h.node("edge0", &[("site", "fra")], &["pre-firewall"]);
    let _e1 = h.node("edge1", &[("site", "fra")], &["pre-firewall"]);
    // An agent that reports no health (older) has none listed.
    e0.session.handle(AgentMsg::Heartbeat { health: None });
    h.state.hub.barrier().await;
    let (_, v) = h.call("GET", &h.acc("nodes"), None).await;
    assert!(v["result"][0].get("health").is_none(), "{v}");
    // A hostile agent's problems are kept to their bounds.
    e0.session.handle(AgentMsg::Heartbeat {
        health: Some(edgecap_model::NodeHealth {
            ready: false,
            problems: vec!["x".repeat(10_000); 100],
        }),
    });
    h.state.hub.barrier().await;
    let (_, v) = h.call("GET", &h.acc("nodes"), None).await;
    let health = &v["result"][0]["health"];
    assert_eq!(health["ready"], false, "{v}");
    let problems = health["problems"].as_array().unwrap();
    assert_eq!(problems.len(), edgecap_model::NodeHealth::MAX_PROBLEMS);
    assert_eq!(
        problems[0].as_str().unwrap().len(),
        edgecap_model::NodeHealth::MAX_PROBLEM_CHARS
    );
    // The database holds it too (what `edgecap admin node list` reads).
    let stored = edgecap_server::db::nodes::list(&h.state.db).await.unwrap();
    assert_eq!(stored[0].health.as_ref().map(|h| h.ready), Some(false));
    assert_eq!(stored[1].health, None);
    // Gone, the node has no health any more.
    drop(e0);
    h.state.hub.barrier().await;
    let stored = edgecap_server::db::nodes::list(&h.state.db).await.unwrap();
    assert_eq!(stored[0].health, None);
    let (_, v) = h.call("GET", &h.acc("nodes"), None).await;
    assert!(v["result"][0].get("health").is_none(), "{v}");
}
