//! Hostile input: user-supplied endpoints. A real `edgecap server` and agent, with the
//! operator allowing one store (a moto_server on plain http, by port): metadata, loopback,
//! private and plain-http endpoints, and a name that resolves to loopback, are refused with a
//! 400 naming `destination_conf` and the reason, for a bucket and for a capture; nothing is
//! created and nothing is dialled (a listener where such a request would land gets no
//! connection); a custom endpoint without credentials is refused (the processes' own are
//! never sent there); the allowed store takes a capture's file.

use std::net::TcpListener;
use std::time::Duration;

use edgecap_testkit::http::{moto_bucket, moto_get, moto_keys};
use edgecap_testkit::servers::Server;
use reqwest::Method;
use serde_json::{Value, json};

use crate::capture_common::{Scratch, markers, root_or_skip};
use crate::harness::{Fleet, ServerOpts};

/// Asserts a 400 whose first error names `destination_conf` and contains `reason`.
fn refused(s: u16, v: &Value, reason: &str, what: &str) {
    assert_eq!(s, 400, "{what}: {v}");
    assert_eq!(v["success"], false, "{what}: {v}");
    let e = &v["errors"][0];
    assert_eq!(e["source"]["pointer"], "/destination_conf", "{what}: {v}");
    let msg = e["message"].as_str().unwrap_or_default();
    assert!(
        msg.starts_with("destination_conf: ") && msg.contains(reason),
        "{what}: {msg:?} lacks {reason:?}"
    );
}

#[test]
fn endpoints_users_may_not_reach_are_refused_and_the_allowed_store_works() {
    if !root_or_skip() {
        return;
    }
    let moto = Server::moto();
    moto_bucket(moto.port, "pcaps");
    // Where a request that slipped through would land.
    let trap = TcpListener::bind("127.0.0.1:0").unwrap();
    trap.set_nonblocking(true).unwrap();
    let trap_port = trap.local_addr().unwrap().port();
    let opts = ServerOpts {
        allow_endpoints: vec![format!("127.0.0.1:{}", moto.port)],
        ..ServerOpts::default()
    };
    let fleet = Fleet::new(1, opts);
    let keys = json!({"access_key_id": "AKIDHOSTILE", "secret_access_key": "hostile-secret"});
    let cases = [
        (
            "http://169.254.169.254".to_owned(),
            "169.254.169.254 is a cloud metadata address",
        ),
        (
            "https://2852039166".to_owned(),
            "169.254.169.254 is a cloud metadata address",
        ),
        (
            "https://[fd00:ec2::254]".to_owned(),
            "cloud metadata address",
        ),
        (
            "https://127.0.0.1:1".to_owned(),
            "127.0.0.1 is a loopback address",
        ),
        (
            format!("https://127.0.0.1:{trap_port}"),
            "127.0.0.1 is a loopback address",
        ),
        (
            format!("https://localhost:{trap_port}"),
            "endpoint host localhost resolves to",
        ),
        ("https://192.168.0.10".to_owned(), "a private address"),
        (
            "http://s3.example.com".to_owned(),
            "user-supplied endpoints must use https",
        ),
    ];
    for (endpoint, reason) in &cases {
        let conf = format!("s3://pcaps/edge?endpoint={endpoint}&region=us-east-1");
        let (s, v) = fleet.api(
            Method::POST,
            "pcaps/ownership",
            Some(json!({"destination_conf": conf, "credentials": keys})),
        );
        refused(s, &v, reason, &format!("ownership of {endpoint}"));
        let (s, v) = fleet.try_create(json!({"destination_conf": conf}));
        refused(s, &v, reason, &format!("capture to {endpoint}"));
    }
    // The allowed store, but no credentials: the server's and nodes' own are never used.
    let allowed = format!(
        "s3://pcaps/edge?endpoint={}&region=us-east-1",
        moto.endpoint()
    );
    let (s, v) = fleet.api(
        Method::POST,
        "pcaps/ownership",
        Some(json!({"destination_conf": allowed})),
    );
    refused(
        s,
        &v,
        "needs credentials",
        "the allowed store without credentials",
    );
    // Nothing was created, written or dialled; the server still serves.
    let (s, v) = fleet.api(Method::GET, "pcaps/ownership", None);
    assert_eq!(
        (s, v["result"].as_array().map(Vec::len)),
        (200, Some(0)),
        "{v}"
    );
    let (s, v) = fleet.api(Method::GET, "pcaps", None);
    assert_eq!(
        (s, v["result"].as_array().map(Vec::len)),
        (200, Some(0)),
        "{v}"
    );
    assert_eq!(moto_keys(moto.port, "pcaps"), Vec::<String>::new());
    assert!(
        trap.accept().is_err(),
        "a request reached the loopback port"
    );

    // The allowed store with credentials: ownership, then a capture uploaded by the agent.
    let (s, v) = fleet.api(
        Method::POST,
        "pcaps/ownership",
        Some(json!({"destination_conf": allowed, "credentials": keys})),
    );
    assert_eq!(s, 200, "{v}");
    let filename = v["result"]["filename"].as_str().unwrap().to_owned();
    let token =
        String::from_utf8(moto_get(moto.port, "pcaps", &format!("edge/{filename}"))).unwrap();
    let (s, v) = fleet.api(
        Method::POST,
        "pcaps/ownership/validate",
        Some(json!({"destination_conf": allowed, "ownership_challenge": token})),
    );
    assert_eq!(s, 200, "{v}");
    let id = fleet.create(json!({"destination_conf": allowed, "time_limit": 3}));
    fleet.wait_rules(&id, &[0]);
    fleet.send(0, 100, 4);
    let c = fleet.wait(&id, Duration::from_secs(30), |c| {
        !matches!(c["status"].as_str(), Some("pending" | "running"))
    });
    assert_eq!(c["status"], "success", "{c:#}\n{}", fleet.logs());
    let got = Scratch::new("hostile-endpoints");
    let file = got.path("edge0.pcapng");
    std::fs::write(
        &file,
        moto_get(moto.port, "pcaps", &format!("edge/{id}/edge0.pcapng")),
    )
    .unwrap();
    assert_eq!(markers(&file), vec![100, 101, 102, 103]);
    assert!(
        trap.accept().is_err(),
        "a request reached the loopback port"
    );
}
