//! `GET /client/v4/accounts` and the account's API tokens: list without secrets, create with
//! the secret shown once, revoke, and bad input.

use axum::http::StatusCode;
use serde_json::json;

use crate::both_databases;
use crate::common::{Backend, Harness, assert_error, assert_field_error};

both_databases!(
    a_token_learns_its_account,
    tokens_are_created_listed_and_revoked,
    token_bodies_and_ids_are_checked,
);

async fn a_token_learns_its_account(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let (s, v) = h.call("GET", "/client/v4/accounts", None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let list = v["result"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{v}");
    assert_eq!(list[0]["id"], h.account.id.as_str());
    assert_eq!(list[0]["name"], "acme");
    assert_eq!(list[0]["settings"]["max_packet_limit"], 10_000);
    let (s, v) = h
        .call_as(Some(&h.other_token), "GET", "/client/v4/accounts", None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["result"][0]["id"], h.other.id.as_str());
    for token in [None, Some(h.agent_token.as_str())] {
        let (s, v) = h.call_as(token, "GET", "/client/v4/accounts", None).await;
        assert_error(s, StatusCode::UNAUTHORIZED, &v, 10000, "");
    }
}

async fn tokens_are_created_listed_and_revoked(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let (s, v) = h
        .call("POST", &h.acc("tokens"), Some(r#"{"name": "ci"}"#))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let secret = v["result"]["value"].as_str().unwrap().to_owned();
    let id = v["result"]["id"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("ecp_"), "{v}");
    assert_eq!(v["result"]["name"], "ci");
    // The new token works, on this account only.
    let (s, _) = h.call_as(Some(&secret), "GET", &h.acc("pcaps"), None).await;
    assert_eq!(s, StatusCode::OK);
    let other = format!("/client/v4/accounts/{}/pcaps", h.other.id);
    let (s, _) = h.call_as(Some(&secret), "GET", &other, None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // Listed without secrets; the other account's tokens are not listed.
    let (s, v) = h.call("GET", &h.acc("tokens"), None).await;
    assert_eq!(s, StatusCode::OK);
    let list = v["result"].as_array().unwrap();
    assert_eq!(list.len(), 2, "{v}");
    assert!(!v.to_string().contains(&secret), "{v}");
    assert!(
        list.iter()
            .all(|t| t["account_id"] == h.account.id.as_str())
    );
    // Revoked: it stops working at once.
    let (s, v) = h
        .call("DELETE", &h.acc(&format!("tokens/{id}")), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = h.call_as(Some(&secret), "GET", &h.acc("pcaps"), None).await;
    assert_error(
        s,
        StatusCode::UNAUTHORIZED,
        &v,
        10000,
        "not a valid API token",
    );
    let (s, v) = h
        .call("DELETE", &h.acc(&format!("tokens/{id}")), None)
        .await;
    assert_error(s, StatusCode::NOT_FOUND, &v, 1003, "no API token");
    // Another account cannot revoke ours.
    let (_, v) = h.call("GET", &h.acc("tokens"), None).await;
    let ours = v["result"][0]["id"].as_str().unwrap().to_owned();
    let theirs = format!("/client/v4/accounts/{}/tokens/{ours}", h.other.id);
    let (s, v) = h
        .call_as(Some(&h.other_token), "DELETE", &theirs, None)
        .await;
    assert_error(s, StatusCode::NOT_FOUND, &v, 1003, "no API token");
    let (s, _) = h.call("GET", &h.acc("pcaps"), None).await;
    assert_eq!(s, StatusCode::OK);
}

async fn token_bodies_and_ids_are_checked(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let before = h.count("tokens").await;
    for (body, code, pointer) in [
        (json!({}), 1001, "/name"),
        (json!({"name": ""}), 1001, "/name"),
        (json!({"name": 7}), 1001, "/name"),
        (json!({"name": "x".repeat(65)}), 1001, "/name"),
        (json!({"name": "ci", "scope": "all"}), 1001, "/scope"),
    ] {
        let (s, v) = h
            .call("POST", &h.acc("tokens"), Some(&body.to_string()))
            .await;
        assert_field_error(s, &v, code, pointer);
    }
    let (s, v) = h.call("POST", &h.acc("tokens"), Some("{nope")).await;
    assert_error(s, StatusCode::BAD_REQUEST, &v, 1002, "not valid JSON");
    let (s, v) = h.call("DELETE", &h.acc("tokens/xyz"), None).await;
    assert_field_error(s, &v, 1001, "/token_id");
    assert_eq!(h.count("tokens").await, before);
}
