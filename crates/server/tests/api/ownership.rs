//! Bucket ownership: the challenge file, validation in constant time, the record's states.

use axum::http::StatusCode;
use serde_json::json;

use crate::both_databases;
use crate::common::{Backend, Harness, assert_error, assert_field_error};

both_databases!(
    add_writes_a_challenge_that_validates,
    a_wrong_token_fails_and_can_be_retried,
    adding_again_rewrites_the_challenge,
    delete_removes_the_record,
    a_file_destination_must_exist_on_the_server,
    file_destinations_outside_the_file_roots_are_refused,
);

async fn add(h: &Harness) -> serde_json::Value {
    let body = json!({"destination_conf": h.file_dest()}).to_string();
    let (s, v) = h.call("POST", &h.acc("pcaps/ownership"), Some(&body)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["result"].clone()
}

fn token_in(h: &Harness, o: &serde_json::Value) -> String {
    std::fs::read_to_string(h.dest.join(o["filename"].as_str().unwrap())).expect("challenge file")
}

async fn validate(h: &Harness, token: &str) -> (StatusCode, serde_json::Value) {
    let body = json!({"destination_conf": h.file_dest(), "ownership_challenge": token});
    h.call(
        "POST",
        &h.acc("pcaps/ownership/validate"),
        Some(&body.to_string()),
    )
    .await
}

async fn add_writes_a_challenge_that_validates(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let o = add(&h).await;
    let id = o["id"].as_str().unwrap();
    assert!(edgecap_model::ids::is_id(id));
    assert_eq!(o["filename"], format!("ownership-challenge-{id}.txt"));
    assert_eq!(o["status"], "pending");
    assert_eq!(o["validated"], "");
    assert_eq!(o["destination_conf"], h.file_dest());
    assert!(o["submitted"].as_str().unwrap().ends_with('Z'));
    let token = token_in(&h, &o);
    assert_eq!(token.len(), 64, "{token}");
    let (_, v) = h.call("GET", &h.acc("pcaps/ownership"), None).await;
    assert_eq!(v["result"], json!([o]));
    // The database keeps no token, only its digest.
    assert_eq!(h.count("ownerships").await, 1);
    let (s, v) = validate(&h, &format!("{token}\n")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["result"]["status"], "success");
    assert_eq!(v["result"]["id"], id);
    assert!(v["result"]["validated"].as_str().unwrap().ends_with('Z'));
    let (_, v) = h.call("GET", &h.acc("pcaps/ownership"), None).await;
    assert_eq!(v["result"][0]["status"], "success");
    // A validated destination cannot be added again.
    let body = json!({"destination_conf": h.file_dest()}).to_string();
    let (s, v) = h.call("POST", &h.acc("pcaps/ownership"), Some(&body)).await;
    assert_error(s, StatusCode::CONFLICT, &v, 1006, "already validated");
    // Another account sees nothing.
    let other = format!("/client/v4/accounts/{}/pcaps/ownership", h.other.id);
    let (_, v) = h.call_as(Some(&h.other_token), "GET", &other, None).await;
    assert_eq!(v["result"], json!([]));
}

async fn a_wrong_token_fails_and_can_be_retried(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let o = add(&h).await;
    let (s, v) = validate(&h, "0000").await;
    assert_field_error(s, &v, 1001, "/ownership_challenge");
    assert!(
        v["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("ownership-challenge-")
    );
    let (_, v) = h.call("GET", &h.acc("pcaps/ownership"), None).await;
    assert_eq!(v["result"][0]["status"], "failed");
    assert_eq!(v["result"][0]["validated"], "");
    let (s, v) = validate(&h, &token_in(&h, &o)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["result"]["status"], "success");
    // Validating a destination never added is a 404.
    let body = json!({"destination_conf": "file:///nowhere", "ownership_challenge": "x"});
    let (s, v) = h
        .call(
            "POST",
            &h.acc("pcaps/ownership/validate"),
            Some(&body.to_string()),
        )
        .await;
    assert_error(s, StatusCode::NOT_FOUND, &v, 1003, "destination_conf");
}

async fn adding_again_rewrites_the_challenge(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let first = add(&h).await;
    let old = token_in(&h, &first);
    let second = add(&h).await;
    assert_eq!(second["id"], first["id"]);
    let new = token_in(&h, &second);
    assert_ne!(old, new);
    let (s, _) = validate(&h, &old).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = validate(&h, &new).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h.count("ownerships").await, 1);
}

async fn delete_removes_the_record(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let o = add(&h).await;
    let path = h.acc(&format!("pcaps/ownership/{}", o["id"].as_str().unwrap()));
    let (s, v) = h.call_as(Some(&h.other_token), "DELETE", &path, None).await;
    assert_error(s, StatusCode::FORBIDDEN, &v, 10001, "");
    let (s, v) = h.call("DELETE", &path, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["success"], true);
    assert!(v["result"].is_null());
    let (s, v) = h.call("DELETE", &path, None).await;
    assert_error(s, StatusCode::NOT_FOUND, &v, 1003, "no ownership");
    let (_, v) = h.call("GET", &h.acc("pcaps/ownership"), None).await;
    assert_eq!(v["result"], json!([]));
}

async fn a_file_destination_must_exist_on_the_server(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let missing = format!("file://{}/missing", h.dest.display());
    let body = json!({"destination_conf": missing}).to_string();
    let (s, v) = h.call("POST", &h.acc("pcaps/ownership"), Some(&body)).await;
    assert_field_error(s, &v, 1001, "/destination_conf");
    assert!(
        v["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("not a directory"),
        "{v}"
    );
    // Access keys do not fit a directory.
    let body = json!({"destination_conf": h.file_dest(),
        "credentials": {"access_key_id": "a", "secret_access_key": "b"}});
    let (s, v) = h
        .call("POST", &h.acc("pcaps/ownership"), Some(&body.to_string()))
        .await;
    assert_field_error(s, &v, 1001, "/credentials");
    assert_eq!(h.count("ownerships").await, 0);
    assert_eq!(std::fs::read_dir(&h.dest).unwrap().count(), 0);
}

/// `--file-root` (the tests' root is the temporary directory): a capture or an ownership
/// challenge naming a directory outside it, by path, by `..` or through a symlink, is 400
/// naming `destination_conf`, and nothing is stored or written.
async fn file_destinations_outside_the_file_roots_are_refused(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let _e = h.node("edge0", &[("site", "fra")], &["pre-firewall"]);
    let link = h.dest.join("link");
    std::os::unix::fs::symlink("/proc", &link).unwrap();
    let escape = format!("file://{}/../../etc", h.dest.display());
    for conf in ["file:///etc", "file:///var/lib", escape.as_str()] {
        let body = h.create_body("fra", json!({"destination_conf": conf}));
        let (s, v) = h.call("POST", &h.acc("pcaps"), Some(&body)).await;
        assert_field_error(s, &v, 1001, "/destination_conf");
        let (s, v) = h
            .call(
                "POST",
                &h.acc("pcaps/ownership"),
                Some(&json!({"destination_conf": conf}).to_string()),
            )
            .await;
        assert_field_error(s, &v, 1001, "/destination_conf");
    }
    let body = h.create_body("fra", json!({"destination_conf": "file:///etc"}));
    let (_, v) = h.call("POST", &h.acc("pcaps"), Some(&body)).await;
    let msg = v["errors"][0]["message"].as_str().unwrap();
    assert!(
        msg.starts_with("destination_conf: file:///etc is outside the directories the operator allows for file destinations (--file-root): "),
        "{v}"
    );
    // A link inside the root that leads outside it: the server resolves it before writing.
    let conf = format!("file://{}", link.display());
    let (s, v) = h
        .call(
            "POST",
            &h.acc("pcaps/ownership"),
            Some(&json!({"destination_conf": conf}).to_string()),
        )
        .await;
    assert_field_error(s, &v, 1001, "/destination_conf");
    assert!(
        v["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("resolves to /proc"),
        "{v}"
    );
    assert_eq!(h.count("captures").await, 0);
    assert_eq!(h.count("ownerships").await, 0);
}
