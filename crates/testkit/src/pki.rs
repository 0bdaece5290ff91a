//! A test PKI made with `rcgen`, written as PEM files into a directory: a CA, a server
//! certificate it signed for `127.0.0.1`, `::1` and `localhost`, and a second CA that signed
//! nothing the server uses (the "untrusted" one a client may be given by mistake). Fresh keys
//! every time; nothing is ever trusted by the system.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// The PEM files of a test PKI.
#[derive(Debug, Clone)]
pub struct TestPki {
    /// The CA that signed the server certificate (`ca.pem`).
    pub ca: PathBuf,
    /// The server certificate (`server.pem`) for 127.0.0.1, ::1 and localhost.
    pub cert: PathBuf,
    /// Its private key (`server.key`, PKCS#8).
    pub key: PathBuf,
    /// A second CA (`other-ca.pem`) that signed nothing the server presents.
    pub other_ca: PathBuf,
    /// A key that belongs to no certificate here (`other.key`).
    pub other_key: PathBuf,
}

fn ca_params(name: &str) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, name);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p
}

impl TestPki {
    /// Makes the PKI and writes its files into `dir` (created if missing).
    pub fn write(dir: &Path) -> TestPki {
        std::fs::create_dir_all(dir).unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let ca = ca_params("edgecap test CA");
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);

        let server_key = KeyPair::generate().unwrap();
        let mut leaf = CertificateParams::new(vec![
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
            "localhost".to_owned(),
        ])
        .unwrap();
        leaf.distinguished_name
            .push(DnType::CommonName, "edgecap test server");
        leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_cert = leaf.signed_by(&server_key, &issuer).unwrap();

        let other_key = KeyPair::generate().unwrap();
        let other_ca = ca_params("edgecap untrusted test CA")
            .self_signed(&other_key)
            .unwrap();
        let stray = KeyPair::generate().unwrap();

        let pki = TestPki {
            ca: dir.join("ca.pem"),
            cert: dir.join("server.pem"),
            key: dir.join("server.key"),
            other_ca: dir.join("other-ca.pem"),
            other_key: dir.join("other.key"),
        };
        std::fs::write(&pki.ca, ca_cert.pem()).unwrap();
        std::fs::write(&pki.cert, server_cert.pem()).unwrap();
        std::fs::write(&pki.key, server_key.serialize_pem()).unwrap();
        std::fs::write(&pki.other_ca, other_ca.pem()).unwrap();
        std::fs::write(&pki.other_key, stray.serialize_pem()).unwrap();
        pki
    }
}
