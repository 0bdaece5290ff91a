#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::net::IpAddr;

use edgecap_testkit::TestPki;
use edgecap_testkit::servers::TempDir;

use super::*;

fn pki() -> (TempDir, TestPki) {
    let dir = TempDir::new("tls");
    let pki = TestPki::write(&dir.0);
    (dir, pki)
}

fn server_err(cert: &Path, key: &Path) -> TlsError {
    server_config(cert, key).unwrap_err()
}

#[test]
fn a_matching_certificate_and_key_load() {
    let (_d, p) = pki();
    let config = server_config(&p.cert, &p.key).unwrap();
    assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
    client_config(Some(&p.ca)).unwrap();
}

#[test]
fn server_config_errors_name_the_flag_and_the_reason() {
    let (d, p) = pki();
    let missing = d.0.join("missing.pem");
    let e = server_err(&missing, &p.key);
    assert_eq!(e.flag, "--tls-cert");
    assert!(
        e.reason.contains("cannot read") && e.reason.contains("missing.pem"),
        "{e}"
    );

    let e = server_err(&p.cert, &missing);
    assert_eq!(e.flag, "--tls-key");
    assert!(e.reason.contains("cannot read"), "{e}");

    // A key file given as the certificate: PEM, but no certificate in it.
    let e = server_err(&p.key, &p.key);
    assert_eq!(e.flag, "--tls-cert");
    assert!(e.reason.contains("no certificate in it"), "{e}");

    // A certificate given as the key.
    let e = server_err(&p.cert, &p.cert);
    assert_eq!(e.flag, "--tls-key");
    assert!(e.reason.contains("no private key in it"), "{e}");

    // Someone else's key.
    let e = server_err(&p.cert, &p.other_key);
    assert_eq!(e.flag, "--tls-key");
    assert!(e.reason.contains("does not match the certificate"), "{e}");

    // Not PEM at all.
    let junk = d.0.join("junk.pem");
    std::fs::write(&junk, "-----BEGIN CERTIFICATE-----\n!!!!\n").unwrap();
    let e = server_err(&junk, &p.key);
    assert_eq!(e.flag, "--tls-cert");
    assert!(e.reason.contains("not readable PEM"), "{e}");

    // A directory, and a file too large to be a certificate.
    let e = server_err(&d.0, &p.key);
    assert_eq!(e.flag, "--tls-cert");
    let big = d.0.join("big.pem");
    std::fs::write(&big, vec![b'a'; (MAX_PEM_FILE + 1) as usize]).unwrap();
    let e = server_err(&big, &p.key);
    assert!(e.reason.contains("larger than"), "{e}");
    assert_eq!(e.to_string(), format!("--tls-cert: {}", e.reason));
}

#[test]
fn client_config_errors_name_ca() {
    let (d, p) = pki();
    let e = client_config(Some(&d.0.join("nope.pem"))).unwrap_err();
    assert_eq!(e.flag, "--ca");
    assert!(e.reason.contains("cannot read"), "{e}");
    let e = client_config(Some(&p.key)).unwrap_err();
    assert_eq!(e.flag, "--ca");
    assert!(e.reason.contains("no certificate in it"), "{e}");
}

#[test]
fn server_names_are_hosts_and_addresses() {
    assert!(server_name("localhost").is_ok());
    assert!(server_name("127.0.0.1").is_ok());
    assert!(server_name("[::1]").is_ok());
    assert_eq!(server_name("a b").unwrap_err().flag, "--server");
}

#[test]
fn plain_links_only_to_loopback_unless_allowed() {
    let ip = |s: &str| Peer::Addr(s.parse::<IpAddr>().unwrap());
    for loopback in [
        ip("127.0.0.1"),
        ip("127.8.9.1"),
        ip("::1"),
        ip("::ffff:127.0.0.1"),
        Peer::Host("localhost"),
        Peer::Host("LOCALHOST."),
        Peer::Host("127.0.0.1"),
        Peer::Host("[::1]"),
    ] {
        assert_eq!(
            plain_link(loopback, false),
            PlainLink::Loopback,
            "{loopback}"
        );
    }
    for remote in [
        ip("198.18.0.1"),
        ip("::ffff:198.18.0.1"),
        ip("2001:db8::1"),
        ip("0.0.0.0"),
        Peer::Host("edgecap.example"),
        Peer::Host("localhost.example"),
        Peer::Host("[2001:db8::1]"),
    ] {
        assert_eq!(plain_link(remote, false), PlainLink::Refused, "{remote}");
        assert_eq!(plain_link(remote, true), PlainLink::Insecure, "{remote}");
    }
    let why = plain::refused_reason(ip("::ffff:198.18.0.1"));
    assert!(
        why.contains("198.18.0.1") && why.contains("--insecure-plaintext"),
        "{why}"
    );
}

#[test]
fn handshake_errors_say_what_to_do() {
    let e = std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
    );
    let text = explain_handshake(&e);
    assert!(
        text.contains("not trusted") && text.contains("--ca"),
        "{text}"
    );
}
