use super::*;

const F: &str = "destination_conf";
const KEYS: &str = "&access-key-id=AK&secret-access-key=SK";

fn policy(allow: &[&str]) -> EndpointPolicy {
    let v: Vec<String> = allow.iter().map(|s| (*s).to_owned()).collect();
    EndpointPolicy::from_flags(&v, "--allow-endpoint").unwrap()
}

/// The policy's verdict on `s3://b12?endpoint=<endpoint>` with keys in the URL.
fn verdict(p: &EndpointPolicy, endpoint: &str) -> Result<Option<Dial>, String> {
    let conf = format!("s3://b12/d?endpoint={endpoint}{KEYS}");
    let dest = Destination::parse(&conf, F).map_err(|e| format!("parse: {e}"))?;
    p.check(&dest, F).map_err(|e| e.to_string())
}

#[test]
fn endpoints_are_judged_by_their_address_and_scheme() {
    let strict = EndpointPolicy::default();
    // (endpoint, None = accepted, Some(words the refusal contains))
    let table: &[(&str, Option<&str>)] = &[
        ("https://s3.example.com", None),
        ("https://8.8.8.8", None),
        ("https://[2606:4700::1111]:8443", None),
        ("http://s3.example.com", Some("must use https, not http")),
        ("http://8.8.8.8:9000", Some("must use https")),
        // Metadata, in every spelling the URL parser turns into the same address.
        (
            "http://169.254.169.254",
            Some("169.254.169.254 is a cloud metadata address"),
        ),
        (
            "https://169.254.169.254/latest",
            Some("cloud metadata address, never allowed"),
        ),
        (
            "https://2852039166",
            Some("169.254.169.254 is a cloud metadata"),
        ),
        (
            "https://0xA9FEA9FE",
            Some("169.254.169.254 is a cloud metadata"),
        ),
        (
            "https://0251.0376.0251.0376",
            Some("169.254.169.254 is a cloud metadata"),
        ),
        (
            "https://169.254.43518",
            Some("169.254.169.254 is a cloud metadata"),
        ),
        (
            "https://169.254.169.254.",
            Some("169.254.169.254 is a cloud metadata"),
        ),
        ("https://[::ffff:169.254.169.254]", Some("cloud metadata")),
        ("https://[::ffff:a9fe:a9fe]", Some("cloud metadata")),
        ("https://[fd00:ec2::254]", Some("cloud metadata")),
        ("https://100.100.100.200", Some("cloud metadata")),
        (
            "https://metadata.google.internal",
            Some("metadata.google.internal is a cloud metadata name"),
        ),
        (
            "https://METADATA.google.internal.",
            Some("metadata.google.internal is a cloud metadata name"),
        ),
        ("https://metadata", Some("cloud metadata name")),
        // Other addresses that are not the Internet.
        (
            "https://127.0.0.1:1",
            Some("127.0.0.1 is a loopback address"),
        ),
        ("https://127.1", Some("127.0.0.1 is a loopback address")),
        (
            "https://0x7f000001",
            Some("127.0.0.1 is a loopback address"),
        ),
        ("https://[::1]", Some("::1 is a loopback address")),
        ("https://[::ffff:127.0.0.1]", Some("loopback")),
        ("https://[64:ff9b::7f00:1]", Some("loopback")),
        ("https://[2002:7f00:1::]", Some("loopback")),
        ("https://0.0.0.0", Some("unspecified")),
        ("https://0", Some("unspecified")),
        ("https://[::]", Some("unspecified")),
        ("https://169.254.1.1", Some("link-local")),
        ("https://[fe80::1]", Some("link-local")),
        ("https://10.0.0.5", Some("10.0.0.5 is a private address")),
        ("https://172.16.0.1", Some("private")),
        ("https://192.168.1.1", Some("private")),
        ("https://[fd12:3456::1]", Some("private")),
        ("https://100.64.0.1", Some("shared")),
        ("https://224.0.0.1", Some("multicast")),
        ("https://[ff02::1]", Some("multicast")),
        ("https://255.255.255.255", Some("broadcast")),
        ("https://198.18.0.1", Some("benchmarking")),
        ("https://[2001:db8::1]", Some("documentation")),
        ("https://192.0.2.1", Some("documentation")),
        ("https://240.0.0.1", Some("reserved")),
    ];
    for (endpoint, want) in table {
        let got = verdict(&strict, endpoint);
        match (want, &got) {
            (None, Ok(_)) => {}
            (Some(words), Err(e)) => {
                assert!(
                    e.starts_with("destination_conf: endpoint ") && e.contains(words),
                    "{endpoint}: {e:?} lacks {words:?}"
                );
            }
            _ => panic!("{endpoint}: want {want:?}, got {got:?}"),
        }
    }
    // A name is checked again when it resolves; an address is not.
    assert_eq!(
        verdict(&strict, "https://S3.Example.com.:8443").unwrap(),
        Some(Dial {
            host: "s3.example.com".into(),
            port: 8443
        })
    );
    assert_eq!(verdict(&strict, "https://8.8.8.8").unwrap(), None);
}

#[test]
fn urls_with_userinfo_are_refused_before_the_policy() {
    // The parser refuses credentials in an endpoint, so `user@host` cannot hide the host.
    for e in [
        "https://s3.example.com@169.254.169.254",
        "https://x:y@s3.example.com",
    ] {
        let err = verdict(&EndpointPolicy::default(), e).unwrap_err();
        assert!(err.contains("may not carry credentials"), "{e}: {err}");
    }
}

#[test]
fn the_operator_allows_hosts_ports_and_plain_http() {
    let p = policy(&["127.0.0.1:9000", "minio.internal", "[fd00::5]:443,10.0.0.5"]);
    assert!(verdict(&p, "http://127.0.0.1:9000").is_ok());
    // Another port of an allowed address is not allowed.
    let e = verdict(&p, "https://127.0.0.1:1").unwrap_err();
    assert!(
        e.contains("127.0.0.1 is a loopback address") && e.contains("--allow-endpoint 127.0.0.1:1"),
        "{e}"
    );
    // IPv4-mapped spelling of an allowed address is the same address.
    assert!(verdict(&p, "http://[::ffff:127.0.0.1]:9000").is_ok());
    // A name without a port: any port, plain http, and nothing to check when it resolves.
    assert_eq!(verdict(&p, "http://minio.internal:9000").unwrap(), None);
    assert_eq!(verdict(&p, "http://MINIO.internal.").unwrap(), None);
    assert!(verdict(&p, "https://[fd00::5]").is_ok());
    assert!(verdict(&p, "https://[fd00::5]:8443").is_err());
    assert!(verdict(&p, "http://10.0.0.5:1234").is_ok());
    // Plain http elsewhere is still refused.
    assert!(verdict(&p, "http://s3.example.com").is_err());
}

#[test]
fn metadata_is_never_allowed() {
    for bad in [
        "169.254.169.254",
        "169.254.169.254:80",
        "[fd00:ec2::254]:80",
        "metadata.google.internal",
        "Metadata.Google.Internal.",
    ] {
        let e = AllowedEndpoint::parse(bad, "--allow-endpoint").unwrap_err();
        assert!(
            e.to_string().starts_with("--allow-endpoint: ")
                && e.to_string().contains("never allowed"),
            "{bad}: {e}"
        );
    }
    // Allowing the whole link-local neighbour does not allow the metadata address by name.
    let p = policy(&["169.254.1.1"]);
    assert!(verdict(&p, "http://169.254.169.254").is_err());
}

#[test]
fn allowlist_entries_are_checked_naming_the_flag() {
    for (bad, words) in [
        ("", "is empty"),
        ("http://minio:9000", "is not a host"),
        ("minio:0", "no valid port"),
        ("minio:99999", "no valid port"),
        ("fd00::5:9000:x", "[v6]:PORT"),
        ("[fd00::5", "no ']'"),
        ("[fd00::5]x", "text after ']'"),
        ("a b", "not a host name"),
    ] {
        let e = AllowedEndpoint::parse(bad, "--allow-endpoint")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("--allow-endpoint: ") && e.contains(words),
            "{bad:?}: {e}"
        );
    }
    let shown: Vec<String> = policy(&["Minio.Internal.:9000", "::1", "[::1]:80", "10.0.0.5"])
        .allowed()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        shown,
        ["minio.internal:9000", "::1", "[::1]:80", "10.0.0.5"]
    );
}

#[test]
fn a_custom_endpoint_never_gets_the_hosts_credentials() {
    let strict = policy(&["127.0.0.1"]);
    let chain = Destination::parse("s3://b12/d?endpoint=http://127.0.0.1:9000", F).unwrap();
    let e = strict.check(&chain, F).unwrap_err();
    assert!(e.is_bad_input(), "{e}");
    let text = e.to_string();
    assert!(
        text.starts_with("destination_conf: endpoint \"http://127.0.0.1:9000\" needs credentials")
            && text.contains("never sent to a user-supplied endpoint"),
        "{text}"
    );
    // With keys given, or without a custom endpoint (the cloud's own), the chain is fine.
    let keys = format!("s3://b12/d?endpoint=http://127.0.0.1:9000{KEYS}");
    assert!(
        strict
            .check(&Destination::parse(&keys, F).unwrap(), F)
            .is_ok()
    );
    let aws = Destination::parse("s3://b12/d?region=us-east-1", F).unwrap();
    assert_eq!(strict.check(&aws, F).unwrap(), None);
    let azure = Destination::parse(
        "azure://pcaps?account=devstoreaccount1&endpoint=https://blob.example.com/x",
        F,
    )
    .unwrap();
    assert!(
        strict
            .check(&azure, F)
            .unwrap_err()
            .to_string()
            .contains("needs credentials")
    );
    // The operator's own URLs are not checked.
    assert_eq!(EndpointPolicy::operator().check(&chain, F).unwrap(), None);
}

#[test]
fn resolved_addresses_are_checked_too() {
    let strict = policy(&["10.0.0.7:443"]);
    let dial = Dial {
        host: "store.example.com".into(),
        port: 443,
    };
    let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
    assert!(
        strict
            .check_addresses(&dial, &[ip("8.8.8.8"), ip("2606:4700::1")])
            .is_ok()
    );
    for (addrs, words) in [
        (
            vec![ip("8.8.8.8"), ip("169.254.169.254")],
            "resolves to 169.254.169.254, a cloud metadata address, never allowed",
        ),
        (
            vec![ip("127.0.0.1")],
            "resolves to 127.0.0.1, a loopback address",
        ),
        (vec![ip("::ffff:10.1.2.3")], "a private address"),
        (vec![], "resolves to no address"),
    ] {
        let e = strict.check_addresses(&dial, &addrs).unwrap_err();
        assert!(
            e.starts_with("endpoint host store.example.com ") && e.contains(words),
            "{e}"
        );
    }
    // An allowed address may be resolved to, on its port only.
    assert!(strict.check_addresses(&dial, &[ip("10.0.0.7")]).is_ok());
    let other_port = Dial {
        port: 9000,
        ..dial.clone()
    };
    assert!(
        strict
            .check_addresses(&other_port, &[ip("10.0.0.7")])
            .is_err()
    );
    // An allowed name resolves where it likes.
    let named = policy(&["store.example.com"]);
    assert!(named.check_addresses(&dial, &[ip("127.0.0.1")]).is_ok());
}

#[test]
fn public_addresses_pass() {
    for ip in [
        "1.1.1.1",
        "52.216.0.1",
        "172.32.0.1",
        "100.128.0.1",
        "2600::1",
        "::ffff:8.8.8.8",
    ] {
        let ip: IpAddr = ip.parse().unwrap();
        assert_eq!(refusal(ip), None, "{ip}");
    }
}

#[test]
fn a_service_account_key_cannot_bring_its_own_endpoint() {
    let key = serde_json::json!({"service_account_key": {
        "client_email": "a@b", "private_key": "k", "gcs_base_url": "http://169.254.169.254"}});
    let e = crate::Credentials::from_json(&key, "credentials").unwrap_err();
    assert_eq!(
        e.field(),
        Some("credentials.service_account_key.gcs_base_url")
    );
}
