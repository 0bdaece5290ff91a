//! Every class of bad input gets a 4xx envelope naming the field and the reason, and nothing
//! is created or dispatched.

use axum::http::StatusCode;
use serde_json::json;

use crate::both_databases;
use crate::common::{Backend, Harness, assert_error, assert_field_error};

both_databases!(
    create_bodies_are_refused_with_the_field_named,
    malformed_bodies_are_refused,
    oversized_bodies_are_413,
    ownership_bodies_are_checked,
    query_parameters_are_checked,
    unknown_routes_and_methods_answer_in_the_envelope,
    deep_bodies_are_refused_naming_the_field_and_the_limit,
);

async fn create_bodies_are_refused_with_the_field_named(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let mut e0 = h.node("edge0", &[("site", "fra")], &["pre-firewall"]);
    let cases = [
        (json!({"colour": "red"}), 1001, "/colour"),
        (json!({"time_limit": "60"}), 1001, "/time_limit"),
        (json!({"time_limit": 0}), 1001, "/time_limit"),
        (json!({"time_limit": 301}), 1001, "/time_limit"),
        (json!({"time_limit": null}), 1001, "/time_limit"),
        (json!({"packet_limit": 10001}), 1001, "/packet_limit"),
        (json!({"packet_limit": 2.5}), 1001, "/packet_limit"),
        (json!({"byte_limit": -1}), 1001, "/byte_limit"),
        (json!({"byte_limit": 1e10}), 1001, "/byte_limit"),
        (json!({"type": "partial"}), 1001, "/type"),
        // A simple capture needs its packet_limit.
        (json!({"type": "simple"}), 1001, "/packet_limit"),
        (json!({"system": "magic-wan"}), 1001, "/system"),
        (
            json!({"filter_v1": {"source_port": 70000}}),
            1001,
            "/filter_v1/source_port",
        ),
        (
            json!({"filter_v1": {"source_address": "1.2.3"}}),
            1001,
            "/filter_v1/source_address",
        ),
        (json!({"filter_v1": "tcp"}), 1001, "/filter_v1"),
        (json!({"colo_name": 7}), 1001, "/colo_name"),
        (json!({"colo_name": null}), 1001, "/colo_name"),
        (json!({"destination_conf": ""}), 1001, "/destination_conf"),
        (json!({"destination_conf": null}), 1001, "/destination_conf"),
        (json!({"nodes": "edge0"}), 1001, "/nodes"),
        (json!({"nodes": [1]}), 1001, "/nodes/0"),
        (json!({"points": []}), 1001, "/points"),
        (json!({"snaplen": 65532}), 1001, "/snaplen"),
        (json!({"sample_rate": 2}), 1001, "/sample_rate"),
        (json!({"format": "erf"}), 1001, "/format"),
        (json!({"merge": "yes"}), 1001, "/merge"),
        (json!({"filter": "tcp port"}), 1001, "/filter"),
        (json!({"filter": "host 198.18.0.1 and"}), 1001, "/filter"),
        (json!({"filter": 80}), 1001, "/filter"),
        // A length test is not exact at ingress (link-layer padding): refused, as the CLI
        // and the agents refuse it.
        (
            json!({"points": ["ingress"], "filter": "udp and less 100"}),
            1001,
            "/filter",
        ),
        (
            json!({"offset_time": "2026-01-01T00:00:00Z"}),
            1001,
            "/offset_time",
        ),
    ];
    for (extra, code, pointer) in cases {
        let body = h.create_body("fra", extra.clone());
        let (s, v) = h.call("POST", &h.acc("pcaps"), Some(&body)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{extra}: {v}");
        assert_field_error(s, &v, code, pointer);
        let field = pointer.trim_start_matches('/').replace('/', ".");
        assert!(
            v["errors"].as_array().unwrap().iter().any(|e| e["message"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{field}: "))),
            "message must name {field}: {v}"
        );
    }
    // Several problems are reported together.
    let body = h.create_body("fra", json!({"time_limit": 0, "packet_limit": 0, "x": 1}));
    let (s, v) = h.call("POST", &h.acc("pcaps"), Some(&body)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["errors"].as_array().unwrap().len(), 3, "{v}");
    assert_eq!(h.count("captures").await, 0);
    assert_eq!(h.count("capture_nodes").await, 0);
    e0.assert_idle();
}

async fn malformed_bodies_are_refused(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let mut e0 = h.node("edge0", &[("site", "fra")], &["pre-firewall"]);
    let cases = [
        ("{\"type\": \"full\",", "not valid JSON"),
        ("{'type': 'full'}", "not valid JSON"),
        ("[1, 2]", "must be a JSON object, not an array"),
        ("\"full\"", "must be a JSON object, not a string"),
        ("42", "must be a JSON object, not a number"),
        ("null", "must be a JSON object, not null"),
        ("", "is empty"),
        ("   ", "is empty"),
        ("{} {}", "not valid JSON"),
    ];
    for path in ["pcaps", "pcaps/ownership", "pcaps/ownership/validate"] {
        for (body, text) in cases {
            let (s, v) = h.call("POST", &h.acc(path), Some(body)).await;
            assert_error(s, StatusCode::BAD_REQUEST, &v, 1002, text);
            assert!(
                v["errors"][0]["message"]
                    .as_str()
                    .unwrap()
                    .starts_with("request body: ")
            );
        }
    }
    assert_eq!(h.count("captures").await, 0);
    assert_eq!(h.count("ownerships").await, 0);
    e0.assert_idle();
}

async fn oversized_bodies_are_413(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let mut e0 = h.node("edge0", &[("site", "fra")], &["pre-firewall"]);
    let big = h.create_body("fra", json!({"filter": "x".repeat(70 * 1024)}));
    let (s, v) = h.call("POST", &h.acc("pcaps"), Some(&big)).await;
    assert_error(
        s,
        StatusCode::PAYLOAD_TOO_LARGE,
        &v,
        1002,
        "larger than the limit of 65536",
    );
    let (s, v) = h.call("POST", &h.acc("pcaps/ownership"), Some(&big)).await;
    assert_error(
        s,
        StatusCode::PAYLOAD_TOO_LARGE,
        &v,
        1002,
        "larger than the limit",
    );
    // Just under the limit is read (and then judged on its fields).
    let fits = h.create_body("fra", json!({"filter": "x".repeat(60 * 1024), "colour": 1}));
    let (s, v) = h.call("POST", &h.acc("pcaps"), Some(&fits)).await;
    assert_field_error(s, &v, 1001, "/colour");
    assert_eq!(h.count("captures").await, 0);
    e0.assert_idle();
}

async fn ownership_bodies_are_checked(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let dest = h.file_dest();
    let cases = [
        ("pcaps/ownership", json!({}), "/destination_conf"),
        (
            "pcaps/ownership",
            json!({"destination_conf": 5}),
            "/destination_conf",
        ),
        (
            "pcaps/ownership",
            json!({"destination_conf": dest, "bucket": "x"}),
            "/bucket",
        ),
        (
            "pcaps/ownership/validate",
            json!({"destination_conf": dest}),
            "/ownership_challenge",
        ),
        (
            "pcaps/ownership/validate",
            json!({"destination_conf": dest, "ownership_challenge": ["x"]}),
            "/ownership_challenge",
        ),
        (
            "pcaps/ownership/validate",
            json!({"ownership_challenge": "x"}),
            "/destination_conf",
        ),
    ];
    for (path, body, pointer) in cases {
        let (s, v) = h.call("POST", &h.acc(path), Some(&body.to_string())).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {v}");
        assert_field_error(s, &v, 1001, pointer);
    }
    let (s, v) = h.call("DELETE", &h.acc("pcaps/ownership/nope"), None).await;
    assert_field_error(s, &v, 1001, "/ownership_id");
    assert_eq!(h.count("ownerships").await, 0);
    assert_eq!(std::fs::read_dir(&h.dest).unwrap().count(), 0);
}

async fn query_parameters_are_checked(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    for (q, pointer) in [
        ("per_page=0", "/per_page"),
        ("per_page=1001", "/per_page"),
        ("page=abc", "/page"),
        ("page=-1", "/page"),
        ("page=1&page=2", "/page"),
        ("sort=asc", "/sort"),
    ] {
        let (s, v) = h.call("GET", &h.acc(&format!("pcaps?{q}")), None).await;
        assert_field_error(s, &v, 1001, pointer);
    }
    let (s, v) = h
        .call("GET", &h.acc("pcaps?page=1&per_page=1000"), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

async fn unknown_routes_and_methods_answer_in_the_envelope(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let (s, v) = h.call("GET", &h.acc("captures"), None).await;
    assert_error(s, StatusCode::NOT_FOUND, &v, 1003, "no route for GET");
    let (s, v) = h.call("DELETE", &h.acc("pcaps"), None).await;
    assert_error(
        s,
        StatusCode::METHOD_NOT_ALLOWED,
        &v,
        1003,
        "does not take DELETE",
    );
    // (`/` is the dashboard.)
    let (s, v) = h.call("GET", "/no/such/route", None).await;
    assert_error(s, StatusCode::NOT_FOUND, &v, 1003, "no route");
}

/// Nesting beyond `MAX_JSON_DEPTH` (32) anywhere in a body, and a filter beyond its limits:
/// 400 naming the field and the limit, on every endpoint that reads a body; nothing created.
async fn deep_bodies_are_refused_naming_the_field_and_the_limit(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let mut e0 = h.node("edge0", &[("site", "fra")], &["pre-firewall"]);
    let deep = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
    let limit = "nested deeper than the limit of 32 levels of objects and arrays";
    for path in ["pcaps", "pcaps/ownership", "pcaps/ownership/validate"] {
        // Far beyond serde_json's own limit (128), and just beyond ours.
        for n in [20_000, 33] {
            let body = format!("{{\"colo_name\": \"fra\", \"filter_v1\": {}}}", deep(n - 1));
            let (s, v) = h.call("POST", &h.acc(path), Some(&body)).await;
            assert_field_error(s, &v, 1001, "/filter_v1");
            assert_eq!(
                v["errors"][0]["message"],
                format!("filter_v1: {limit}"),
                "{v}"
            );
            let (s, v) = h.call("POST", &h.acc(path), Some(&deep(n))).await;
            assert_error(
                s,
                StatusCode::BAD_REQUEST,
                &v,
                1002,
                &format!("request body: {limit}"),
            );
        }
    }
    // 32 levels are read (and judged on their fields).
    let body = h.create_body("fra", json!({"colour": 1}));
    let body = format!("{}, \"x\": {}}}", &body[..body.len() - 1], deep(31));
    let (s, v) = h.call("POST", &h.acc("pcaps"), Some(&body)).await;
    assert_field_error(s, &v, 1001, "/x");
    assert!(!v.to_string().contains("nested deeper"), "{v}");
    // The filter expression has its own bounds, named the same way.
    let nested = format!("{}udp{}", "(".repeat(9_000), ")".repeat(9_000));
    let body = h.create_body("fra", json!({ "filter": nested }));
    let (s, v) = h.call("POST", &h.acc("pcaps"), Some(&body)).await;
    assert_field_error(s, &v, 1001, "/filter");
    assert_error(
        s,
        StatusCode::BAD_REQUEST,
        &v,
        1001,
        "more than the limit of 8192 bytes",
    );
    let nested = format!("{}udp{}", "(".repeat(65), ")".repeat(65));
    let body = h.create_body("fra", json!({ "filter": nested }));
    let (s, v) = h.call("POST", &h.acc("pcaps"), Some(&body)).await;
    assert_error(
        s,
        StatusCode::BAD_REQUEST,
        &v,
        1001,
        "deeper than the limit of 64 levels",
    );
    assert_eq!(h.count("captures").await, 0);
    assert_eq!(h.count("ownerships").await, 0);
    e0.assert_idle();
}
