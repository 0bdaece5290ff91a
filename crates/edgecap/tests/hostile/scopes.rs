//! Hostile input: scoped API tokens against a real server. A read token lists and gets but
//! cannot create (403 naming `write`, nothing created); an expired one is refused (401).

use std::time::Duration;

use serde_json::{Value, json};

use crate::capture_common::root_or_skip;
use crate::harness::{Fleet, ServerOpts};

/// One API call with `token`: (status, envelope).
fn call(
    fleet: &Fleet,
    token: &str,
    method: reqwest::Method,
    rest: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let url = format!("{}/client/v4/accounts/{}/{rest}", fleet.url, fleet.account);
    let mut req = http.request(method, url).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().unwrap();
    (resp.status().as_u16(), resp.json().unwrap())
}

#[test]
fn a_read_token_cannot_create_but_can_list_and_get() {
    if !root_or_skip() {
        return;
    }
    let fleet = Fleet::new(1, ServerOpts::default());
    let id = fleet.create(json!({"time_limit": 5}));
    let read = fleet.admin(&[
        "token",
        "create",
        "--account",
        &fleet.account,
        "--scopes",
        "read",
    ]);
    let body = json!({
        "type": "full", "system": "magic-transit", "time_limit": 5, "nodes": ["site=lab"],
        "destination_conf": format!("file://{}", fleet.dest.display()),
        "filter_v1": {"protocol": 17},
    });
    let (s, v) = call(&fleet, &read, reqwest::Method::POST, "pcaps", Some(body));
    assert_eq!(s, 403, "{v}");
    assert_eq!(v["success"], false);
    let msg = v["errors"][0]["message"].as_str().unwrap_or("");
    assert!(msg.contains("`write`"), "{v}");
    let (s, v) = call(
        &fleet,
        &read,
        reqwest::Method::PUT,
        &format!("pcaps/{id}/stop"),
        None,
    );
    assert_eq!(s, 403, "{v}");
    // It reads: the list holds only the one capture made with the full token.
    let (s, v) = call(&fleet, &read, reqwest::Method::GET, "pcaps", None);
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["result"].as_array().map(Vec::len), Some(1), "{v}");
    let (s, v) = call(
        &fleet,
        &read,
        reqwest::Method::GET,
        &format!("pcaps/{id}"),
        None,
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["result"]["id"], id.as_str());
    // An expired token is refused outright.
    let short = fleet.admin(&[
        "token",
        "create",
        "--account",
        &fleet.account,
        "--expires",
        "1s",
    ]);
    std::thread::sleep(Duration::from_millis(1500));
    let (s, v) = call(&fleet, &short, reqwest::Method::GET, "pcaps", None);
    assert_eq!(s, 401, "{v}");
    assert!(v.to_string().contains("expired"), "{v}");
}
