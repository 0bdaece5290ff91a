//! Anomaly triggers (`/pcaps/triggers`, issue 14): stored with every default filled in, read,
//! listed and deleted per account; bad input names its field and stores nothing; a
//! restricted account's scope stays inside its prefixes; a bucket must be validated.

use axum::http::StatusCode;
use edgecap_model::AccountLimits;
use edgecap_model::trigger::{MAX_TRIGGERS_PER_ACCOUNT, validate_trigger};
use edgecap_server::credentials::{self, Vault, trigger_context};
use edgecap_server::db::triggers::{self, Stored};
use edgecap_store::{Credentials, Secret};
use serde_json::{Value, json};

use crate::both_databases;
use crate::common::{Backend, Harness, assert_error, assert_field_error, restricted_account};

both_databases!(
    a_trigger_is_stored_listed_read_and_deleted,
    bad_triggers_name_the_field_and_store_nothing,
    a_restricted_accounts_scope_stays_inside_its_prefixes,
    an_account_holds_a_bounded_number_of_triggers,
    a_triggers_sealed_credentials_are_guarded_and_rotated,
);

fn body(h: &Harness) -> Value {
    json!({
        "name": "udp flood",
        "scope": {"filter_v1": {"protocol": 17}, "colo_name": "fra"},
        "condition": {"metric": "packets_per_second", "per": "destination", "above": 50000},
        "capture": {"time_limit": 30, "packet_limit": 5000, "destination_conf": h.file_dest()},
    })
}

async fn post(h: &Harness, body: &Value) -> (StatusCode, Value) {
    h.call("POST", &h.acc("pcaps/triggers"), Some(&body.to_string()))
        .await
}

async fn a_trigger_is_stored_listed_read_and_deleted(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let (s, v) = post(&h, &body(&h)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["success"], true);
    let t = v["result"].clone();
    let id = t["id"].as_str().unwrap().to_owned();
    assert!(edgecap_model::ids::is_id(&id), "{id}");
    assert!(t["created"].as_str().unwrap().ends_with('Z'), "{t}");
    assert_eq!(t["name"], "udp flood");
    assert_eq!(t["scope"]["colo_name"], "fra");
    assert_eq!(t["scope"]["points"], json!(["pre-firewall"]));
    assert_eq!(t["condition"]["metric"], "packets_per_second");
    assert_eq!(t["condition"]["per"], "destination");
    assert_eq!(t["condition"]["above"], 50000.0);
    // Defaults are filled in and shown.
    assert_eq!(t["condition"]["sustained_seconds"], 3);
    assert_eq!(t["capture"]["pre_trigger_seconds"], 10);
    assert_eq!(t["capture"]["format"], "pcapng");
    assert_eq!(t["capture"]["destination_conf"], h.file_dest());
    assert_eq!(t["cooldown_seconds"], 300);
    assert_eq!(
        t["budget"],
        json!({"captures_per_hour": 4, "bytes_per_day": 10_000_000_000u64})
    );
    assert_eq!(h.count("triggers").await, 1);

    let (s, v) = h.call("GET", &h.acc("pcaps/triggers"), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["result"], json!([t]));
    let one = h.acc(&format!("pcaps/triggers/{id}"));
    let (s, v) = h.call("GET", &one, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["result"], t);

    // Another account sees none of it and cannot delete it.
    let other = format!("/client/v4/accounts/{}/pcaps/triggers", h.other.id);
    let (s, v) = h.call_as(Some(&h.other_token), "GET", &other, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["result"], json!([]));
    let other_one = format!("{other}/{id}");
    let (s, v) = h
        .call_as(Some(&h.other_token), "GET", &other_one, None)
        .await;
    assert_error(s, StatusCode::NOT_FOUND, &v, 1003, "no trigger");
    let (s, v) = h
        .call_as(Some(&h.other_token), "DELETE", &other_one, None)
        .await;
    assert_error(s, StatusCode::NOT_FOUND, &v, 1003, "no trigger");
    // Nor through our path with its own token.
    let (s, _) = h
        .call_as(Some(&h.other_token), "GET", &h.acc("pcaps/triggers"), None)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(h.count("triggers").await, 1);

    let (s, v) = h.call("DELETE", &one, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(v["result"].is_null(), "{v}");
    let (s, v) = h.call("GET", &one, None).await;
    assert_error(s, StatusCode::NOT_FOUND, &v, 1003, "no trigger");
    let (s, v) = h.call("DELETE", &one, None).await;
    assert_error(s, StatusCode::NOT_FOUND, &v, 1003, "no trigger");
    let (s, v) = h.call("GET", &h.acc("pcaps/triggers/nothex"), None).await;
    assert_field_error(s, &v, 1001, "/trigger_id");
    assert_eq!(h.count("triggers").await, 0);
}

async fn bad_triggers_name_the_field_and_store_nothing(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let cases: Vec<(&str, Value, &str)> = vec![
        ("/condition/above", json!(-1), "/condition/above"),
        (
            "/condition/metric",
            json!("flows_per_second"),
            "/condition/metric",
        ),
        (
            "/condition/sustained_seconds",
            json!(3600),
            "/condition/sustained_seconds",
        ),
        (
            "/budget",
            json!({"captures_per_hour": 0}),
            "/budget/captures_per_hour",
        ),
        (
            "/budget",
            json!({"bytes_per_day": 0}),
            "/budget/bytes_per_day",
        ),
        (
            "/capture/pre_trigger_seconds",
            json!(100000),
            "/capture/pre_trigger_seconds",
        ),
        ("/capture/time_limit", json!(100000), "/capture/time_limit"),
        ("/scope/filter", json!("udp port"), "/scope/filter"),
        // A bucket this account has not validated.
        (
            "/capture/destination_conf",
            json!("s3://pcaps/edge?region=us-east-1"),
            "/capture/destination_conf",
        ),
        // A directory outside the operator's file roots.
        (
            "/capture/destination_conf",
            json!("file:///etc"),
            "/capture/destination_conf",
        ),
    ];
    for (at, value, pointer) in cases {
        let mut b = body(&h);
        let (parent, key) = at.rsplit_once('/').unwrap();
        let p = if parent.is_empty() {
            &mut b
        } else {
            b.pointer_mut(parent).unwrap()
        };
        p[key] = value;
        let (s, v) = post(&h, &b).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{at}: {v}");
        assert_field_error(s, &v, 1001, pointer);
        let dotted = pointer.trim_start_matches('/').replace('/', ".");
        assert!(
            v["errors"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["message"].as_str().unwrap().starts_with(&dotted)),
            "the message names {dotted}: {v}"
        );
    }
    let (s, v) = h
        .call("POST", &h.acc("pcaps/triggers"), Some("[1, 2]"))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(h.count("triggers").await, 0);
    let (_, v) = h.call("GET", &h.acc("pcaps/triggers"), None).await;
    assert_eq!(v["result"], json!([]));
}

async fn a_restricted_accounts_scope_stays_inside_its_prefixes(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let (acc, token) = restricted_account(&h.state, "tenant", &["198.51.100.0/24"], &[]).await;
    let path = format!("/client/v4/accounts/{}/pcaps/triggers", acc.id);
    let mut outside = body(&h);
    // Neither end inside the prefixes: it can never match the account's traffic.
    outside["scope"]["filter_v1"] =
        json!({"source_address": "203.0.113.5", "destination_address": "203.0.113.6"});
    let (s, v) = h
        .call_as(Some(&token), "POST", &path, Some(&outside.to_string()))
        .await;
    assert_field_error(s, &v, 1001, "/scope/filter_v1");
    assert!(
        v["errors"][0]["message"]
            .as_str()
            .unwrap()
            .starts_with("scope.filter_v1: "),
        "{v}"
    );
    assert!(v.to_string().contains("can never match"), "{v}");
    assert_eq!(h.count("triggers").await, 0);
    let mut inside = body(&h);
    inside["scope"]["filter_v1"] = json!({"destination_address": "198.51.100.7"});
    let (s, v) = h
        .call_as(Some(&token), "POST", &path, Some(&inside.to_string()))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, v) = h.call_as(Some(&token), "GET", &path, None).await;
    assert_eq!(v["result"].as_array().unwrap().len(), 1);
    // The unrestricted account of the harness does not see it.
    let (_, v) = h.call("GET", &h.acc("pcaps/triggers"), None).await;
    assert_eq!(v["result"], json!([]));
}

async fn an_account_holds_a_bounded_number_of_triggers(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let b = body(&h);
    for _ in 0..MAX_TRIGGERS_PER_ACCOUNT {
        let (s, v) = post(&h, &b).await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    let (s, v) = post(&h, &b).await;
    assert_error(s, StatusCode::CONFLICT, &v, 1006, "delete one first");
    assert_eq!(h.count("triggers").await, MAX_TRIGGERS_PER_ACCOUNT as i64);
    // The other account's own allowance is untouched.
    let other = format!("/client/v4/accounts/{}/pcaps/triggers", h.other.id);
    let (s, v) = h
        .call_as(Some(&h.other_token), "POST", &other, Some(&b.to_string()))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

/// A trigger's sealed credentials count as the database's secrets: no new key is made over
/// them, another key is refused, and a rotation re-seals them.
async fn a_triggers_sealed_credentials_are_guarded_and_rotated(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let key = h._tmp.0.join("secrets.key");
    let creds = Credentials::AccessKey {
        access_key_id: "AKIDTRIGGER".into(),
        secret_access_key: Secret::new("sealed-trigger-secret"),
        session_token: None,
    };
    let id = edgecap_server::secret::new_id();
    let sealed = h
        .state
        .hub
        .vault()
        .seal(&creds, &trigger_context(&id))
        .unwrap();
    let (trigger, _) = validate_trigger(&body(&h), &AccountLimits::default()).unwrap();
    let stored = Stored {
        id: id.clone(),
        account_id: h.account.id.clone(),
        trigger,
        credentials: Some(sealed.clone()),
        created: "2026-01-01T00:00:00Z".into(),
    };
    assert!(triggers::insert(&h.state.db, &stored, 1).await.unwrap());
    // The account's limit (1 here) holds in the insert itself.
    let second = Stored {
        id: edgecap_server::secret::new_id(),
        ..stored.clone()
    };
    assert!(!triggers::insert(&h.state.db, &second, 1).await.unwrap());

    let missing = h._tmp.0.join("elsewhere.key");
    let err = credentials::check_key(&Vault::new(Some(missing.clone())), &h.state.db)
        .await
        .unwrap_err();
    assert!(err.contains("holds 1 sealed credential"), "{err}");
    assert!(!missing.exists());
    let other = h._tmp.0.join("other.key");
    Vault::new(Some(other.clone())).check().unwrap();
    let err = credentials::check_key(&Vault::new(Some(other)), &h.state.db)
        .await
        .unwrap_err();
    assert!(err.contains("not the key they were sealed with"), "{err}");

    let done = credentials::rotate(&h.state.db, &key).await.unwrap();
    assert!(done.contains("re-sealed 1 secret(s)"), "{done}");
    let after = triggers::get(&h.state.db, &h.account.id, &id)
        .await
        .unwrap()
        .unwrap()
        .credentials
        .unwrap();
    assert_ne!(after, sealed);
    assert_eq!(
        Vault::new(Some(key))
            .open(&after, &trigger_context(&id))
            .unwrap(),
        creds
    );
    // The API shows neither the secret nor its sealed form.
    let (s, v) = h.call("GET", &h.acc("pcaps/triggers"), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["result"][0]["id"], id);
    let text = v.to_string();
    assert!(
        !text.contains("sealed-trigger-secret") && !text.contains(&after),
        "{v}"
    );
}
