use super::*;

const F: &str = "destination_conf";

fn ok(conf: &str) -> Destination {
    Destination::parse(conf, F).unwrap_or_else(|e| panic!("{conf}: {e}"))
}

fn err(conf: &str) -> StoreError {
    match Destination::parse(conf, F) {
        Ok(d) => panic!("{conf} parsed as {d}"),
        Err(e) => e,
    }
}

#[test]
fn the_reference_formats_parse() {
    let s3 = ok("s3://pcaps-bucket/captures/edge?region=us-east-1");
    assert_eq!(s3.scheme, Scheme::S3);
    assert_eq!(s3.bucket, "pcaps-bucket");
    assert_eq!(s3.prefix, "captures/edge");
    assert_eq!(s3.region.as_deref(), Some("us-east-1"));
    assert_eq!(s3.credentials, CredentialSource::Chain);
    assert_eq!(s3.key("a/b.pcapng"), "captures/edge/a/b.pcapng");

    let gs = ok("gs://bucket-test");
    assert_eq!(
        (gs.scheme, gs.bucket.as_str(), gs.prefix.as_str()),
        (Scheme::Gcs, "bucket-test", "")
    );
    assert_eq!(gs.key("x"), "x");

    let r2 = ok(
        "r2://my-bucket/dir?account-id=0123456789ABCDEF0123456789abcdef\
                 &access-key-id=AKID&secret-access-key=s3cr%2Bet/+x",
    );
    assert_eq!(r2.scheme, Scheme::R2);
    assert_eq!(
        r2.account.as_deref(),
        Some("0123456789abcdef0123456789abcdef")
    );
    assert_eq!(r2.region.as_deref(), Some("auto"));
    match r2.explicit_credentials() {
        Some(Credentials::AccessKey {
            access_key_id,
            secret_access_key,
            session_token: None,
        }) => {
            assert_eq!(access_key_id, "AKID");
            // Percent-decoded, but '+' is not a space: AWS secrets contain '+'.
            assert_eq!(secret_access_key.expose(), "s3cr+et/+x");
        }
        other => panic!("{other:?}"),
    }

    let az = ok(
        "azure://pcaps/edge?account=devstoreaccount1&endpoint=http://127.0.0.1:10000/devstoreaccount1",
    );
    assert_eq!(az.scheme, Scheme::Azure);
    assert_eq!(az.account.as_deref(), Some("devstoreaccount1"));
    assert_eq!(
        az.endpoint.as_deref(),
        Some("http://127.0.0.1:10000/devstoreaccount1")
    );
    assert_eq!(ok("az://pcaps?account=acct1").scheme, Scheme::Azure);

    let file = ok("file:///var/lib/edgecap/captures/");
    assert_eq!(
        file.dir.as_deref(),
        Some(Path::new("/var/lib/edgecap/captures"))
    );

    let custom = ok("s3://b1b/d?endpoint=http://127.0.0.1:9000/");
    assert_eq!(custom.region, None);
    assert_eq!(custom.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
}

#[test]
fn the_canonical_form_drops_secrets_and_sorts_options() {
    let r2 = ok(
        "R2://my-bucket/dir/?secret-access-key=TOPSECRET&access-key-id=AKID\
                 &account-id=0123456789abcdef0123456789abcdef",
    );
    let canon = r2.to_string();
    assert_eq!(
        canon,
        "r2://my-bucket/dir?account-id=0123456789abcdef0123456789abcdef"
    );
    assert!(!format!("{r2:?}").contains("TOPSECRET"));
    // The canonical form parses back to the same destination, credentials aside.
    let back = ok(&canon);
    assert_eq!(back.to_string(), canon);
    assert_eq!(back.credentials, CredentialSource::Chain);

    let s3 = ok("s3://b12/x?endpoint=http://127.0.0.1:9000&region=eu-west-1");
    assert_eq!(
        s3.to_string(),
        "s3://b12/x?endpoint=http://127.0.0.1:9000&region=eu-west-1"
    );
    assert_eq!(ok("file:///srv/x").to_string(), "file:///srv/x");
}

#[test]
fn bad_urls_name_the_field_and_the_reason() {
    let cases: &[(&str, &str)] = &[
        ("", "not a URL"),
        ("bucket/dir", "not a URL"),
        ("ftp://x/y", "not supported"),
        ("s3://bucket", "needs ?region="),
        (
            "s3://Bucket?region=us-east-1",
            "bucket name \"Bucket\" is not valid",
        ),
        ("s3://ab?region=us-east-1", "is not valid"),
        ("s3://?region=us-east-1", "no bucket name"),
        (
            "s3://b12/a//b?region=us-east-1",
            "empty, '.' or '..' segment",
        ),
        (
            "s3://b12/../b?region=us-east-1",
            "empty, '.' or '..' segment",
        ),
        ("s3://b12/a%2Fb?region=us-east-1", "may not contain '%'"),
        (
            "s3://b12?region=us-east-1&colour=red",
            "unknown option \"colour\"",
        ),
        ("s3://b12?region=us-east-1&region=eu-west-1", "given twice"),
        ("s3://b12?region=US_EAST", "region \"US_EAST\""),
        ("s3://b12?region=", "option region is empty"),
        ("s3://b12?endpoint=ftp://h", "http:// or https://"),
        (
            "s3://b12?endpoint=http://u:p@h",
            "may not carry credentials",
        ),
        ("s3://b12?endpoint=not a url", "is not a URL"),
        ("s3://b12?region=us-east-1#frag", "fragment"),
        (
            "s3://b12?region=us-east-1&access-key-id=AK",
            "without secret-access-key",
        ),
        (
            "s3://b12?region=us-east-1&secret-access-key=x",
            "without access-key-id",
        ),
        ("r2://b12", "needs ?account-id="),
        ("r2://b12?account-id=123", "not a 32-hex account id"),
        ("gs://b12?region=x", "unknown option \"region\""),
        ("azure://c12", "needs ?account="),
        ("azure://c--12?account=acct1", "container name"),
        ("azure://c12?account=Bad_Name", "storage account name"),
        ("file://host/dir", "three slashes"),
        ("file:///a/../b", "'..'"),
        ("file:///a?x=1", "takes no options"),
        ("s3://b12\n?region=us-east-1", "control characters"),
    ];
    for (conf, want) in cases {
        let e = err(conf);
        let msg = e.to_string();
        assert!(msg.starts_with("destination_conf: "), "{conf:?}: {msg}");
        assert!(msg.contains(want), "{conf:?}: {msg:?} lacks {want:?}");
        assert_eq!(e.field(), Some(F));
    }
    assert!(matches!(err("ftp://x"), StoreError::Unsupported { .. }));
    assert!(matches!(
        err("s3://b12?region=us-east-1&access-key-id=AK"),
        StoreError::MissingCredentials { .. }
    ));
}

#[test]
fn a_pasted_secret_is_not_echoed() {
    let e = err("mybucket?secret-access-key=TOPSECRET").to_string();
    assert!(!e.contains("TOPSECRET"), "{e}");
}

#[test]
fn credentials_must_fit_the_scheme() {
    let creds = Credentials::AzureAccessKey {
        key: Secret::new("a2V5"),
    };
    let e = ok("s3://b12?region=us-east-1")
        .with_credentials(creds.clone(), F)
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("Azure access key credentials do not fit a s3://"),
        "{e}"
    );
    let az = ok("azure://c12?account=acct1")
        .with_credentials(creds, F)
        .unwrap();
    assert!(az.explicit_credentials().is_some());
}

#[test]
fn api_credentials_json_is_checked_field_by_field() {
    use serde_json::json;
    let f = "credentials";
    let ak = Credentials::from_json(
        &json!({"access_key_id": "AK", "secret_access_key": "SK", "session_token": "T"}),
        f,
    )
    .unwrap();
    assert_eq!(ak.kind(), "access key");
    let e = Credentials::from_json(&json!({"access_key_id": "AK"}), f).unwrap_err();
    assert_eq!(e.field(), Some("credentials.secret_access_key"));
    let e = Credentials::from_json(&json!({"acess_key_id": "AK"}), f).unwrap_err();
    assert_eq!(e.field(), Some("credentials.acess_key_id"));
    let e = Credentials::from_json(&json!({}), f).unwrap_err();
    assert!(matches!(e, StoreError::MissingCredentials { .. }));
    let e =
        Credentials::from_json(&json!({"azure_sas": "x", "azure_access_key": "y"}), f).unwrap_err();
    assert!(e.to_string().contains("one kind"));
    let e = Credentials::from_json(&json!({"service_account_key": {"x": 1}}), f).unwrap_err();
    assert_eq!(e.field(), Some("credentials.service_account_key"));
    let sa = Credentials::from_json(
        &json!({"service_account_key": {"client_email": "a@b", "private_key": "k"}}),
        f,
    )
    .unwrap();
    assert_eq!(sa.kind(), "GCS service account");
    let sas = Credentials::from_json(&json!({"azure_sas": "?sv=1&sig=2"}), f).unwrap();
    match sas {
        Credentials::AzureSas { token } => assert_eq!(token.expose(), "sv=1&sig=2"),
        other => panic!("{other:?}"),
    }
    assert!(!format!("{ak:?}").contains("SK"));
    // The hand-off form reads back as the same credentials, for every kind.
    for c in [&ak, &sa] {
        assert_eq!(&Credentials::from_json(&c.expose_json(), f).unwrap(), c);
    }
}
