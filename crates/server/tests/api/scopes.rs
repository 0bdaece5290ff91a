//! Scoped API tokens: each route needs the scope declared beside it (`api::routes!`); a token
//! without it gets 403 naming the scope; expired and revoked tokens get 401; a token makes
//! tokens with at most its own scopes; tokens made without scopes keep today's powers.

use axum::http::StatusCode;
use edgecap_server::auth::{Need, Scope};
use edgecap_server::db::tokens::{self, Kind, Limits};
use serde_json::{Value, json};

use crate::both_databases;
use crate::common::{Backend, Harness, assert_error, assert_field_error};

both_databases!(
    a_read_token_reads_and_cannot_write,
    a_write_token_cannot_read_or_manage_tokens,
    token_scopes_and_expiry_are_checked,
    expired_and_revoked_tokens_are_401,
);

/// A token made through the API by our (default-scoped) token: its secret and the answer.
async fn token(h: &Harness, body: Value) -> (String, Value) {
    let (s, v) = h
        .call("POST", &h.acc("tokens"), Some(&body.to_string()))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    (v["result"]["value"].as_str().unwrap().to_owned(), v)
}

async fn a_read_token_reads_and_cannot_write(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let _n = h.node("edge0", &[("site", "fra")], &["pre-firewall"]);
    let id = h.create("fra", json!({})).await;
    let (read, v) = token(&h, json!({"name": "ro", "scopes": ["read"]})).await;
    assert_eq!(v["result"]["scopes"], json!(["read"]), "{v}");
    // It lists, gets, sees nodes, ownerships and its account.
    for path in [
        h.acc("pcaps"),
        h.acc(&format!("pcaps/{id}")),
        h.acc("nodes"),
        h.acc("pcaps/ownership"),
        "/client/v4/accounts".to_owned(),
    ] {
        let (s, v) = h.call_as(Some(&read), "GET", &path, None).await;
        assert_eq!(s, StatusCode::OK, "{path}: {v}");
    }
    // It cannot create or stop: 403 naming `write`; nothing changed.
    let before = h.count("captures").await;
    let (s, v) = h
        .call_as(
            Some(&read),
            "POST",
            &h.acc("pcaps"),
            Some(&h.create_body("fra", json!({}))),
        )
        .await;
    assert_error(s, StatusCode::FORBIDDEN, &v, 10001, "`write`");
    assert_eq!(h.count("captures").await, before);
    let (s, v) = h
        .call_as(
            Some(&read),
            "PUT",
            &h.acc(&format!("pcaps/{id}/stop")),
            None,
        )
        .await;
    assert_error(s, StatusCode::FORBIDDEN, &v, 10001, "`write`");
    assert_eq!(h.capture(&id).await["status"], "pending");
    // Nor manage tokens.
    let (s, v) = h.call_as(Some(&read), "GET", &h.acc("tokens"), None).await;
    assert_error(s, StatusCode::FORBIDDEN, &v, 10001, "`tokens`");
}

async fn a_write_token_cannot_read_or_manage_tokens(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let _n = h.node("edge0", &[("site", "fra")], &["pre-firewall"]);
    let (write, _) = token(&h, json!({"name": "ci", "scopes": ["write"]})).await;
    let (s, v) = h
        .call_as(
            Some(&write),
            "POST",
            &h.acc("pcaps"),
            Some(&h.create_body("fra", json!({}))),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = h.call_as(Some(&write), "GET", &h.acc("pcaps"), None).await;
    assert_error(s, StatusCode::FORBIDDEN, &v, 10001, "`read`");
    let body = json!({"name": "x"}).to_string();
    let (s, v) = h
        .call_as(Some(&write), "POST", &h.acc("tokens"), Some(&body))
        .await;
    assert_error(s, StatusCode::FORBIDDEN, &v, 10001, "`tokens`");
    // Node administration is never a default: our token may not revoke nodes.
    let (s, v) = h.call("POST", &h.acc("nodes/edge0/revoke"), None).await;
    assert_error(s, StatusCode::FORBIDDEN, &v, 10001, "`nodes`");
}

async fn token_scopes_and_expiry_are_checked(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let bad = [
        json!({"name": "x", "scopes": ["admin"]}),
        json!({"name": "x", "scopes": "read"}),
        json!({"name": "x", "scopes": []}),
        json!({"name": "x", "scopes": [1]}),
        // Beyond the calling token's own scopes (it has read, write, tokens).
        json!({"name": "x", "scopes": ["read", "nodes"]}),
    ];
    for body in bad {
        let (s, v) = h
            .call("POST", &h.acc("tokens"), Some(&body.to_string()))
            .await;
        assert_field_error(s, &v, 1001, "/scopes");
    }
    for expires in [json!("2001-01-01T00:00:00Z"), json!("tomorrow"), json!(5)] {
        let body = json!({"name": "x", "expires_on": expires}).to_string();
        let (s, v) = h.call("POST", &h.acc("tokens"), Some(&body)).await;
        assert_field_error(s, &v, 1001, "/expires_on");
    }
    assert_eq!(
        h.call("GET", &h.acc("tokens"), None).await.1["result"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "nothing was made"
    );
    // A token made with `tokens` may make tokens, but only with what it holds itself.
    let (admin, _) = token(&h, json!({"name": "a", "scopes": ["tokens", "read"]})).await;
    let body = json!({"name": "w", "scopes": ["write"]}).to_string();
    let (s, v) = h
        .call_as(Some(&admin), "POST", &h.acc("tokens"), Some(&body))
        .await;
    assert_field_error(s, &v, 1001, "/scopes");
    assert!(v.to_string().contains("write"), "{v}");
    let (s, v) = h
        .call_as(
            Some(&admin),
            "POST",
            &h.acc("tokens"),
            Some(r#"{"name": "d"}"#),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["result"]["scopes"], json!(["read", "tokens"]), "{v}");
    // Expiry is listed; the default scopes are today's powers.
    let (_, v) = token(
        &h,
        json!({"name": "e", "expires_on": "2999-01-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(
        v["result"]["expires_on"], "2999-01-01T00:00:00.000000Z",
        "{v}"
    );
    assert_eq!(
        v["result"]["scopes"],
        json!(["read", "write", "tokens"]),
        "{v}"
    );
    let (_, list) = h.call("GET", &h.acc("tokens"), None).await;
    assert!(
        list["result"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "e" && t["expires_on"] == "2999-01-01T00:00:00.000000Z"),
        "{list}"
    );
}

async fn expired_and_revoked_tokens_are_401(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let past = Limits {
        expires_on: Some(edgecap_model::ids::rfc3339(1_000_000_000.0)),
        ..Limits::default()
    };
    let (_, expired) =
        tokens::create_limited(&h.state.db, Kind::Api, Some(&h.account.id), "old", &past)
            .await
            .unwrap();
    let (s, v) = h
        .call_as(Some(&expired), "GET", &h.acc("pcaps"), None)
        .await;
    assert_error(s, StatusCode::UNAUTHORIZED, &v, 10000, "expired");
    let (s, v) = h
        .call_as(Some(&expired), "GET", "/client/v4/accounts", None)
        .await;
    assert_error(s, StatusCode::UNAUTHORIZED, &v, 10000, "expired");
    // Revoked through the API: 401 at once.
    let (secret, v) = token(&h, json!({"name": "gone"})).await;
    let id = v["result"]["id"].as_str().unwrap();
    let (s, _) = h
        .call("DELETE", &h.acc(&format!("tokens/{id}")), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = h.call_as(Some(&secret), "GET", &h.acc("pcaps"), None).await;
    assert_error(
        s,
        StatusCode::UNAUTHORIZED,
        &v,
        10000,
        "not a valid API token",
    );
}

/// Every account route declares a scope (none is open to any token, let alone none), and
/// docs/api.md states each route's scope as the router declares it.
#[test]
fn every_route_declares_its_scope_and_the_docs_agree() {
    let docs =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/api.md")).unwrap();
    for &(method, path, need) in edgecap_server::api::ROUTE_NEEDS {
        if path.starts_with("/client/v4/accounts/{account_id}") {
            assert!(need.scope().is_some(), "{method} {path} declares {need:?}");
        }
        let Some(scope) = need.scope() else {
            continue;
        };
        let short = path
            .strip_prefix("/client/v4/accounts/{account_id}")
            .unwrap_or(path);
        let row = format!("| {} | `", method.to_uppercase());
        let documented = docs.lines().any(|l| {
            l.starts_with(&row)
                && (l.contains(&format!("`{path}`")) || l.contains(&format!("`{short}`")))
                && l.contains(&format!("| `{}` |", scope.as_str()))
        });
        assert!(
            documented,
            "docs/api.md: no row for {method} {path} with `{}`",
            scope.as_str()
        );
    }
    // The OpenAPI document says the same (`x-edgecap-scope`).
    let doc: Value = serde_json::from_str(edgecap_server::api::OPENAPI).unwrap();
    for &(method, path, need) in edgecap_server::api::ROUTE_NEEDS {
        let declared = &doc["paths"][path][method]["x-edgecap-scope"];
        match need.scope() {
            Some(s) => assert_eq!(declared, s.as_str(), "{method} {path}"),
            None => assert!(declared.is_null(), "{method} {path}: {declared}"),
        }
    }
    assert!(Scope::DEFAULT.iter().all(|s| *s != Scope::Nodes));
    assert_eq!(Need::Nodes.scope(), Some(Scope::Nodes));
}
