//! Tokens: 401 without a valid API token, 403 on another account's path, agent tokens only on
//! the agent socket.

use axum::http::StatusCode;

use crate::both_databases;
use crate::common::{Backend, Harness, assert_error};

both_databases!(
    missing_or_invalid_tokens_are_401,
    other_accounts_are_403,
    agent_tokens_do_not_open_the_api,
    the_agent_socket_takes_only_agent_tokens,
);

async fn missing_or_invalid_tokens_are_401(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let path = h.acc("pcaps");
    let body = h.create_body("fra", serde_json::json!({}));
    for token in [None, Some("ecp_0000"), Some(""), Some("not-a-token")] {
        for (method, body) in [("GET", None), ("POST", Some(body.as_str()))] {
            let (s, v) = h.call_as(token, method, &path, body).await;
            assert_error(s, StatusCode::UNAUTHORIZED, &v, 10000, "");
        }
    }
    let (s, v) = h.call_as(None, "GET", &path, None).await;
    assert_error(
        s,
        StatusCode::UNAUTHORIZED,
        &v,
        10000,
        "Authorization: Bearer",
    );
    // 401 comes before any look at the body or the id.
    let (s, v) = h.call_as(None, "POST", &path, Some("{broken")).await;
    assert_error(s, StatusCode::UNAUTHORIZED, &v, 10000, "");
    let (s, v) = h.call_as(None, "GET", &h.acc("pcaps/xyz"), None).await;
    assert_error(s, StatusCode::UNAUTHORIZED, &v, 10000, "");
    assert_eq!(h.count("captures").await, 0);
}

async fn other_accounts_are_403(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let body = h.create_body("fra", serde_json::json!({}));
    for rest in ["pcaps", "pcaps/ownership", "nodes"] {
        let (s, v) = h
            .call_as(Some(&h.other_token), "GET", &h.acc(rest), None)
            .await;
        assert_error(
            s,
            StatusCode::FORBIDDEN,
            &v,
            10001,
            "may not act on that account",
        );
    }
    let (s, v) = h
        .call_as(Some(&h.other_token), "POST", &h.acc("pcaps"), Some(&body))
        .await;
    assert_error(s, StatusCode::FORBIDDEN, &v, 10001, "");
    let unknown = "/client/v4/accounts/0123456789abcdef0123456789abcdef/pcaps";
    let (s, v) = h.call("GET", unknown, None).await;
    assert_error(s, StatusCode::FORBIDDEN, &v, 10001, "");
    // Account ids are case-insensitive hex.
    let upper = format!("/client/v4/accounts/{}/pcaps", h.account.id.to_uppercase());
    let (s, v) = h.call("GET", &upper, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

async fn agent_tokens_do_not_open_the_api(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let (s, v) = h
        .call_as(Some(&h.agent_token), "GET", &h.acc("pcaps"), None)
        .await;
    assert_error(
        s,
        StatusCode::UNAUTHORIZED,
        &v,
        10000,
        "not a valid API token",
    );
}

async fn the_agent_socket_takes_only_agent_tokens(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let path = "/agent/v1/connect";
    for token in [None, Some(h.token.as_str()), Some("eca_nope")] {
        let (s, v) = h.call_as(token, "GET", path, None).await;
        assert_error(s, StatusCode::UNAUTHORIZED, &v, 10000, "");
    }
    // Agent tokens are enrolment tokens, not what an agent authenticates with.
    let (s, v) = h.call_as(Some(&h.agent_token), "GET", path, None).await;
    assert_error(
        s,
        StatusCode::UNAUTHORIZED,
        &v,
        10000,
        "not a node credential",
    );
    // A node credential without a WebSocket upgrade: refused, and nothing enrolled.
    let credential = format!("ecn_{}", "ab".repeat(32));
    let (s, v) = h.call_as(Some(&credential), "GET", path, None).await;
    assert!(s.is_client_error(), "{s} {v}");
    assert!(
        v["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("WebSocket"),
        "{v}"
    );
    assert_eq!(h.count("node_identities").await, 0);
}
