//! Bucket destinations against a real S3 API server (`moto_server`, started per test): the
//! ownership challenge is written into the bucket and read back from it, validated, and
//! only then can a capture write there; credentials given through the API reach the node's
//! assignment but are never returned, never stored in plaintext; bad input writes nothing to
//! the bucket but the challenge object. A simple capture naming the validated bucket has its
//! file written there by the server.

use axum::http::StatusCode;
use edgecap_model::lookback::RingAnswer;
use edgecap_model::{AgentMsg, ServerMsg};
use edgecap_testkit::http::{moto_bucket, moto_get, moto_keys};
use edgecap_testkit::servers::{Server, free_port};
use serde_json::{Value, json};

use crate::both_databases;
use crate::common::{Backend, Harness, assert_field_error};

both_databases!(
    a_validated_bucket_takes_captures_with_sealed_credentials,
    bad_bucket_input_writes_nothing_but_the_challenge,
);

/// A secret no answer, log or database byte may contain.
const SECRET: &str = "EDGECAP-SECRET-wJalrXUtnFEMI-K7MDENG";

fn conf(moto: &Server, bucket: &str) -> String {
    format!(
        "s3://{bucket}/edge?endpoint={}&region=us-east-1",
        moto.endpoint()
    )
}

fn credentials() -> Value {
    json!({"access_key_id": "AKIDEDGECAPTEST", "secret_access_key": SECRET})
}

async fn post(h: &Harness, path: &str, body: Value) -> (StatusCode, Value) {
    h.call("POST", &h.acc(path), Some(&body.to_string())).await
}

async fn a_validated_bucket_takes_captures_with_sealed_credentials(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let moto = Server::moto();
    moto_bucket(moto.port, "pcaps");
    let dest = conf(&moto, "pcaps");
    let (s, v) = post(
        &h,
        "pcaps/ownership",
        json!({"destination_conf": dest, "credentials": credentials()}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let o = &v["result"];
    let id = o["id"].as_str().unwrap();
    assert_eq!(o["status"], "pending");
    assert_eq!(o["filename"], format!("ownership-challenge-{id}.txt"));
    // The canonical form: sorted options, no secrets.
    let canonical = format!(
        "s3://pcaps/edge?endpoint={}&region=us-east-1",
        moto.endpoint()
    );
    assert_eq!(o["destination_conf"], canonical);
    assert!(!v.to_string().contains(SECRET), "{v}");

    // The challenge is in the bucket, under the destination's directory, and nothing else.
    let key = format!("edge/ownership-challenge-{id}.txt");
    assert_eq!(moto_keys(moto.port, "pcaps"), vec![key.clone()]);
    let token = String::from_utf8(moto_get(moto.port, "pcaps", &key)).unwrap();
    assert_eq!(token.len(), 64, "{token}");

    // Not validated yet: no capture may write there.
    let mut e0 = h.node("edge0", &[("site", "fra")], &["pre-firewall"]);
    let create = h.create_body("fra", json!({"destination_conf": dest}));
    let (s, v) = h.call("POST", &h.acc("pcaps"), Some(&create)).await;
    assert_field_error(s, &v, 1001, "/destination_conf");
    assert!(v.to_string().contains("is pending"), "{v}");
    e0.assert_idle();

    // Validated with the token read from the bucket (any equivalent spelling of the URL).
    let (s, v) = post(
        &h,
        "pcaps/ownership/validate",
        json!({"destination_conf": canonical, "ownership_challenge": token}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["result"]["status"], "success");

    let (s, v) = h.call("POST", &h.acc("pcaps"), Some(&create)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let capture = v["result"]["id"].as_str().unwrap().to_owned();
    assert_eq!(v["result"]["destination_conf"], canonical);
    let a = match e0.next().await {
        ServerMsg::Assign { assignment } => assignment,
        other => panic!("expected an assignment, got {other:?}"),
    };
    assert_eq!(a.destination_conf, canonical);
    // The node gets the bucket's credentials for this capture, and only it.
    assert_eq!(
        a.credentials.as_ref().map(|c| c.expose()),
        Some(&credentials())
    );
    assert!(!format!("{a:?}").contains(SECRET));
    // A node that reconnects before acknowledging is assigned again, with the credentials
    // opened from the capture's sealed copy.
    drop(e0);
    let mut e0 = h.node("edge0", &[("site", "fra")], &["pre-firewall"]);
    e0.session.reconcile(vec![], vec![]).await.unwrap();
    match e0.next().await {
        ServerMsg::Assign { assignment } => {
            assert_eq!(assignment.capture_id, capture);
            assert_eq!(
                assignment.credentials.as_ref().map(|c| c.expose()),
                Some(&credentials())
            );
        }
        other => panic!("expected the assignment again, got {other:?}"),
    }

    // Nothing the API answers, and no byte the database keeps, holds the secret; the
    // database does hold the destination (so a search there finds what is there).
    let (_, got) = h
        .call("GET", &h.acc(&format!("pcaps/{capture}")), None)
        .await;
    let (_, listed) = h.call("GET", &h.acc("pcaps"), None).await;
    let (_, owned) = h.call("GET", &h.acc("pcaps/ownership"), None).await;
    for answer in [&got, &listed, &owned] {
        assert!(!answer.to_string().contains(SECRET), "{answer}");
    }
    let bytes = h.database_bytes().await;
    let has = |needle: &str| bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
    assert!(has(&canonical), "the search cannot see the database");
    assert!(!has(SECRET), "the secret is in the database in plaintext");
    assert!(
        !has("AKIDEDGECAPTEST"),
        "the key id is in the database in plaintext"
    );
    // The server wrote nothing else into the bucket.
    assert_eq!(moto_keys(moto.port, "pcaps"), vec![key.clone()]);

    // A simple capture naming the validated bucket: the server writes its file there with
    // the bucket's sealed credentials, at the merged file's key, and keeps no copy.
    let body = json!({"type": "simple", "system": "magic-transit", "time_limit": 60,
        "packet_limit": 10, "destination_conf": dest})
    .to_string();
    let path = h.acc("pcaps");
    let create = h.call("POST", &path, Some(&body));
    let node = async {
        loop {
            if let ServerMsg::Query { query } = e0.next().await {
                e0.session.handle(AgentMsg::Answer {
                    answer: RingAnswer {
                        query_id: query.query_id,
                        seq: 0,
                        last: true,
                        error: None,
                        matched: 0,
                        est_packets: 0,
                        est_bytes: 0,
                        thinned_by: 1.0,
                        periods: vec![],
                        reach_start: None,
                        samples: vec![],
                    },
                });
                return;
            }
        }
    };
    let ((s, v), ()) = tokio::join!(create, node);
    assert_eq!(s, StatusCode::OK, "{v}");
    let simple = v["result"]["id"].as_str().unwrap();
    assert_eq!(v["result"]["status"], "success", "{v:#}");
    let file = format!("edge/{simple}/merged.pcapng");
    assert_eq!(moto_keys(moto.port, "pcaps"), vec![file.clone(), key]);
    let written = moto_get(moto.port, "pcaps", &file);
    assert_eq!(written[..4], [0x0a, 0x0d, 0x0d, 0x0a], "a pcapng file");
    assert_eq!(h.count("sample_files").await, 0);
}

async fn bad_bucket_input_writes_nothing_but_the_challenge(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let moto = Server::moto();
    moto_bucket(moto.port, "pcaps");
    let dest = conf(&moto, "pcaps");
    let unreachable = format!("s3://pcaps?endpoint=http://127.0.0.1:{}", free_port());
    let r2 = "r2://pcaps?account-id=0123456789abcdef0123456789abcdef";
    let cases = [
        // Malformed, unsupported, and credentials missing or of the wrong kind.
        (
            json!({"destination_conf": "s3://Bad_Name?region=us-east-1"}),
            1001,
            "/destination_conf",
        ),
        (
            json!({"destination_conf": "s3://pcaps?regoin=us-east-1"}),
            1001,
            "/destination_conf",
        ),
        (
            json!({"destination_conf": "ftp://pcaps/x"}),
            1005,
            "/destination_conf",
        ),
        (
            json!({"destination_conf": format!("{r2}&access-key-id=AK")}),
            1001,
            "/destination_conf",
        ),
        (
            json!({"destination_conf": dest, "credentials": {}}),
            1001,
            "/credentials",
        ),
        (
            json!({"destination_conf": dest, "credentials": {"access_key_id": "AK"}}),
            1001,
            "/credentials/secret_access_key",
        ),
        (
            json!({"destination_conf": dest, "credentials": {"azure_sas": "sv=1"}}),
            1001,
            "/credentials",
        ),
        (
            json!({"destination_conf": format!("{dest}&access-key-id=a&secret-access-key=b"),
                   "credentials": credentials()}),
            1001,
            "/credentials",
        ),
        // GCS: what can be checked without a server (docs/storage.md, the GCS gap).
        (
            json!({"destination_conf": "gs://pcaps/edge",
                   "credentials": {"service_account_key": {"client_email": "a@b"}}}),
            1001,
            "/credentials/service_account_key",
        ),
        (
            json!({"destination_conf": "gs://pcaps/edge", "credentials": credentials()}),
            1001,
            "/credentials",
        ),
        (
            json!({"destination_conf": "gs://Pcaps"}),
            1001,
            "/destination_conf",
        ),
        // A store that cannot be reached: the challenge cannot be written.
        (
            json!({"destination_conf": unreachable, "credentials": credentials()}),
            1001,
            "/destination_conf",
        ),
    ];
    for (body, code, pointer) in cases {
        let (s, v) = post(&h, "pcaps/ownership", body.clone()).await;
        assert_field_error(s, &v, code, pointer);
        assert!(!v.to_string().contains(SECRET), "{v}");
    }
    assert_eq!(h.count("ownerships").await, 0);
    assert_eq!(moto_keys(moto.port, "pcaps"), Vec::<String>::new());

    // A valid add writes its challenge; a wrong token is refused naming the field.
    let (s, v) = post(
        &h,
        "pcaps/ownership",
        json!({"destination_conf": dest, "credentials": credentials()}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let challenge = format!("edge/{}", v["result"]["filename"].as_str().unwrap());
    let (s, v) = post(
        &h,
        "pcaps/ownership/validate",
        json!({"destination_conf": dest, "ownership_challenge": "not-the-token"}),
    )
    .await;
    assert_field_error(s, &v, 1001, "/ownership_challenge");
    // A capture to the unvalidated bucket is refused, and nothing is created or sent.
    let mut e0 = h.node("edge0", &[("site", "fra")], &["pre-firewall"]);
    let create = h.create_body("fra", json!({"destination_conf": dest}));
    let (s, v) = h.call("POST", &h.acc("pcaps"), Some(&create)).await;
    assert_field_error(s, &v, 1001, "/destination_conf");
    assert!(v.to_string().contains("is failed"), "{v}");
    assert_eq!(h.count("captures").await, 0);
    e0.assert_idle();
    assert_eq!(moto_keys(moto.port, "pcaps"), vec![challenge]);
}
