//! TLS for edgecap's links, on rustls with the ring provider (the workspace's choice).
//!
//! - [`server_config`]: `edgecap server --tls-cert FILE --tls-key FILE`, a PEM certificate
//!   chain and its private key loaded into a rustls server configuration; every error names
//!   the flag and the reason (missing file, no certificate in it, a key that does not match).
//! - [`client_config`]: how agents and the CLI verify a server: the system's trust store, or
//!   only the CA certificates of `--ca FILE` when one is given.
//! - [`plain`]: the one rule saying when a link may stay unencrypted (loopback, or the
//!   operator's `--insecure-plaintext`); the agent and the server both ask it.
//!
//! Files are read whole and bounded ([`MAX_PEM_FILE`]); nothing here touches the network.

pub mod plain;

use std::path::Path;
use std::sync::Arc;

pub use plain::{Peer, PlainLink, plain_link};
pub use rustls;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// Largest certificate, key or CA file read (a chain or a bundle of roots is far smaller).
pub const MAX_PEM_FILE: u64 = 4 << 20;

/// The ALPN protocol both sides offer: the API and the agents' WebSocket are HTTP/1.1.
const HTTP11: &[u8] = b"http/1.1";

/// A TLS setting that cannot work: the flag (`--tls-cert`, `--tls-key`, `--ca`) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{flag}: {reason}")]
pub struct TlsError {
    pub flag: &'static str,
    pub reason: String,
}

fn bad(flag: &'static str, reason: impl Into<String>) -> TlsError {
    TlsError {
        flag,
        reason: reason.into(),
    }
}

/// The crypto provider every edgecap TLS configuration uses.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads a PEM file, bounded; errors name the flag and the path.
fn read_pem(flag: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    use std::io::Read;
    let file = std::fs::File::open(path)
        .map_err(|e| bad(flag, format!("cannot read {}: {e}", path.display())))?;
    let mut bytes = Vec::new();
    file.take(MAX_PEM_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| bad(flag, format!("cannot read {}: {e}", path.display())))?;
    if bytes.len() as u64 > MAX_PEM_FILE {
        return Err(bad(
            flag,
            format!(
                "{} is larger than {} MiB: not a PEM certificate or key file",
                path.display(),
                MAX_PEM_FILE >> 20
            ),
        ));
    }
    Ok(bytes)
}

/// Every certificate of a PEM file, in order; none is an error.
fn read_certs(flag: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read_pem(flag, path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, pem::Error>>()
        .map_err(|e| bad(flag, format!("{}: not readable PEM: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(bad(
            flag,
            format!(
                "{}: no certificate in it (expected PEM \"-----BEGIN CERTIFICATE-----\" blocks)",
                path.display()
            ),
        ));
    }
    Ok(certs)
}

/// The server side: the certificate chain of `cert` (leaf first, then intermediates) and the
/// private key of `key` (PKCS#8, PKCS#1 or SEC1 PEM), which must belong to the leaf.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = read_certs("--tls-cert", cert)?;
    let key_pem = read_pem("--tls-key", key)?;
    let private = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| match e {
        pem::Error::NoItemsFound => bad(
            "--tls-key",
            format!(
                "{}: no private key in it (expected a PEM \"PRIVATE KEY\", \"RSA PRIVATE KEY\" \
                 or \"EC PRIVATE KEY\" block)",
                key.display()
            ),
        ),
        e => bad(
            "--tls-key",
            format!("{}: not readable PEM: {e}", key.display()),
        ),
    })?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| bad("--tls-cert", e.to_string()))?
        .with_no_client_auth();
    let mut config = builder
        .with_single_cert(chain, private)
        .map_err(|e| match e {
            rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => bad(
                "--tls-key",
                format!(
                    "{}: does not match the certificate of --tls-cert {}",
                    key.display(),
                    cert.display()
                ),
            ),
            rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown) => bad(
                "--tls-cert",
                format!("{}: the first certificate cannot be read", cert.display()),
            ),
            e => bad("--tls-key", format!("{}: {e}", key.display())),
        })?;
    config.alpn_protocols = vec![HTTP11.to_vec()];
    Ok(Arc::new(config))
}

/// Where a client's trust comes from: `--ca FILE` when given (its certificates only), else
/// the system's trust store.
pub fn client_config(ca: Option<&Path>) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    match ca {
        Some(path) => {
            for (i, cert) in read_certs("--ca", path)?.into_iter().enumerate() {
                roots.add(cert).map_err(|e| {
                    bad(
                        "--ca",
                        format!(
                            "{}: certificate {} is not usable as a trust anchor: {e}",
                            path.display(),
                            i + 1
                        ),
                    )
                })?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _ignored) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                let why = found
                    .errors
                    .first()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default();
                return Err(bad(
                    "--ca",
                    format!(
                        "no system root certificates found{why}; give the server's CA with \
                         --ca FILE"
                    ),
                ));
            }
        }
    }
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| bad("--ca", e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![HTTP11.to_vec()];
    Ok(Arc::new(config))
}

/// The name a client checks the server's certificate against: the URL's host, a DNS name or
/// an IP address (IPv6 with or without brackets).
pub fn server_name(host: &str) -> Result<ServerName<'static>, TlsError> {
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    ServerName::try_from(host.to_owned()).map_err(|e| {
        bad(
            "--server",
            format!("{host:?} is not a host name for TLS: {e}"),
        )
    })
}

/// A one-line explanation of a failed TLS handshake, saying what to do when the server's
/// certificate is not trusted.
pub fn explain_handshake(e: &std::io::Error) -> String {
    let tls = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match tls {
        Some(rustls::Error::InvalidCertificate(c)) => format!(
            "the server's certificate is not trusted ({c:?}): give the CA that signed it with \
             --ca FILE (env EDGECAP_CA), or check --server's host name"
        ),
        Some(other) => format!("TLS handshake failed: {other}"),
        None => format!("TLS handshake failed: {e}"),
    }
}

#[cfg(test)]
mod tests;
