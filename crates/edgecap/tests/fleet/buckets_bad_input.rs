//! Bad bucket input through a real server and the real client: a malformed `destination_conf`,
//! an unsupported scheme, missing credentials, a wrong challenge token and a capture to a
//! bucket that is not validated are refused naming the field (the client exits 2), nothing is
//! created, and nothing but the challenge object is ever in the bucket.

use std::process::Command;

use serde_json::json;

use crate::bucket::{Bucket, SECRET};
use crate::capture_common::{BIN, root_or_skip};
use crate::harness::{Fleet, ServerOpts};

#[test]
fn bad_bucket_input_is_refused_by_field_and_writes_only_the_challenge() {
    if !root_or_skip() {
        return;
    }
    let bucket = Bucket::s3();
    let fleet = Fleet::new(1, ServerOpts::default());
    let add =
        |body: serde_json::Value| fleet.api(reqwest::Method::POST, "pcaps/ownership", Some(body));
    let field = |v: &serde_json::Value| v["errors"][0]["source"]["pointer"].clone();
    // The server's environment has no cloud credentials (the harness removes them), so an
    // R2 bucket without keys anywhere has none.
    let r2 = "r2://pcaps?account-id=0123456789abcdef0123456789abcdef";
    for (body, code, pointer) in [
        (
            json!({"destination_conf": "s3://pc?region=us-east-1"}),
            1001,
            "/destination_conf",
        ),
        (
            json!({"destination_conf": "gcs:/pcaps"}),
            1001,
            "/destination_conf",
        ),
        (
            json!({"destination_conf": "ftp://pcaps/edge"}),
            1005,
            "/destination_conf",
        ),
        (json!({"destination_conf": r2}), 1001, "/destination_conf"),
        (
            json!({"destination_conf": bucket.conf(), "credentials": {"secret_access_key": SECRET}}),
            1001,
            "/credentials/access_key_id",
        ),
    ] {
        let (s, v) = add(body.clone());
        assert_eq!(s, 400, "{body}: {v}");
        assert_eq!(v["errors"][0]["code"], code, "{body}: {v}");
        assert_eq!(field(&v), pointer, "{body}: {v}");
        assert!(!v.to_string().contains(SECRET), "{v}");
    }
    let (s, v) = add(json!({"destination_conf": r2}));
    assert!(
        s == 400 && v.to_string().contains("has no credentials"),
        "{v}"
    );
    let (_, v) = fleet.api(reqwest::Method::GET, "pcaps/ownership", None);
    assert_eq!(v["result"], json!([]));
    assert_eq!(
        bucket.keys(),
        Vec::<String>::new(),
        "refused adds wrote nothing"
    );

    // Added, but validated with the wrong token.
    let (s, v) =
        add(json!({"destination_conf": bucket.conf(), "credentials": bucket.credentials()}));
    assert_eq!(s, 200, "{v}");
    let challenge = format!("edge/{}", v["result"]["filename"].as_str().unwrap());
    let (s, v) = fleet.api(
        reqwest::Method::POST,
        "pcaps/ownership/validate",
        Some(json!({"destination_conf": bucket.conf(), "ownership_challenge": "guess"})),
    );
    assert_eq!(s, 400, "{v}");
    assert_eq!(field(&v), "/ownership_challenge");

    // A capture to it from the client: exit 2, naming the field.
    let out = Command::new(BIN)
        .args(["capture", "--server", &fleet.url, "--token", &fleet.token])
        .args(["--nodes", "edge0", "--proto", "udp", "--time", "5s"])
        .args(["--destination", &bucket.conf()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("destination_conf: ") && err.contains("is failed"),
        "{err}"
    );
    let (_, v) = fleet.api(reqwest::Method::GET, "pcaps", None);
    assert_eq!(v["result"], json!([]), "nothing was created");
    assert_eq!(bucket.keys(), vec![challenge]);
}
