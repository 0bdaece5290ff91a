//! User-supplied endpoints (`endpoint=` in `destination_conf`): adding a bucket and creating
//! a capture refuse what the endpoint policy refuses, naming the field and the reason, store
//! nothing and dial nothing; the store the operator allows (a moto_server on plain http)
//! works.

use std::net::TcpListener;

use axum::http::StatusCode;
use edgecap_store::EndpointPolicy;
use edgecap_testkit::http::{moto_bucket, moto_keys};
use edgecap_testkit::servers::Server;
use serde_json::json;

use crate::both_databases;
use crate::common::{Backend, Harness, assert_error, test_config};

both_databases!(refused_endpoints_name_the_field_and_change_nothing);

async fn refused_endpoints_name_the_field_and_change_nothing(b: Backend) {
    let moto = Server::moto();
    moto_bucket(moto.port, "pcaps");
    // The operator allows the moto port only: other loopback ports stay refused.
    let mut config = test_config();
    config.endpoints =
        EndpointPolicy::from_flags(&[format!("127.0.0.1:{}", moto.port)], "test").unwrap();
    let Some(h) = Harness::with_config(b, config).await else {
        return;
    };
    // Where a request that slipped through would land.
    let trap = TcpListener::bind("127.0.0.1:0").unwrap();
    trap.set_nonblocking(true).unwrap();
    let trap_port = trap.local_addr().unwrap().port();
    let keys = "&access-key-id=AK&secret-access-key=SK";
    let cases = [
        (
            "http://169.254.169.254".to_owned(),
            "169.254.169.254 is a cloud metadata address",
        ),
        (
            "https://[::ffff:169.254.169.254]".to_owned(),
            "cloud metadata address",
        ),
        (
            "https://metadata.google.internal".to_owned(),
            "cloud metadata name",
        ),
        (
            format!("https://127.0.0.1:{trap_port}"),
            "127.0.0.1 is a loopback address",
        ),
        (
            format!("http://127.0.0.1:{trap_port}"),
            "127.0.0.1 is a loopback address",
        ),
        (
            format!("https://localhost:{trap_port}"),
            "endpoint host localhost resolves to",
        ),
        (
            "https://10.1.2.3".to_owned(),
            "10.1.2.3 is a private address",
        ),
        (
            "http://s3.example.com".to_owned(),
            "user-supplied endpoints must use https",
        ),
    ];
    for (endpoint, reason) in &cases {
        let conf = format!("s3://pcaps/edge?endpoint={endpoint}{keys}");
        let (s, v) = h
            .call(
                "POST",
                &h.acc("pcaps/ownership"),
                Some(&json!({"destination_conf": conf}).to_string()),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{endpoint}: {v}");
        assert_error(s, StatusCode::BAD_REQUEST, &v, 1001, reason);
        assert_eq!(
            v["errors"][0]["source"]["pointer"], "/destination_conf",
            "{v}"
        );
        // A capture to it is refused for the same reason, before ownership is looked at.
        let body = h.create_body("fra", json!({"destination_conf": conf}));
        let (s, v) = h.call("POST", &h.acc("pcaps"), Some(&body)).await;
        assert_error(s, StatusCode::BAD_REQUEST, &v, 1001, reason);
    }
    // The allowed store without credentials: the server's own are never sent there.
    let allowed = format!("s3://pcaps/edge?endpoint={}", moto.endpoint());
    let (s, v) = h
        .call(
            "POST",
            &h.acc("pcaps/ownership"),
            Some(&json!({"destination_conf": allowed}).to_string()),
        )
        .await;
    assert_error(s, StatusCode::BAD_REQUEST, &v, 1001, "needs credentials");
    // Nothing stored, nothing written, nothing dialled.
    assert_eq!(h.count("ownerships").await, 0);
    assert_eq!(h.count("captures").await, 0);
    assert_eq!(moto_keys(moto.port, "pcaps"), Vec::<String>::new());
    assert!(
        trap.accept().is_err(),
        "a request reached the loopback port"
    );

    // With credentials the allowed store takes the challenge.
    let (s, v) = h
        .call(
            "POST",
            &h.acc("pcaps/ownership"),
            Some(
                &json!({"destination_conf": allowed,
                        "credentials": {"access_key_id": "AK", "secret_access_key": "SK"}})
                .to_string(),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let file = v["result"]["filename"].as_str().unwrap();
    assert_eq!(moto_keys(moto.port, "pcaps"), vec![format!("edge/{file}")]);
}
