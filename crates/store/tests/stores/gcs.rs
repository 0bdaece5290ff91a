//! GCS: no emulator here implements the XML multipart API object_store uploads with (see
//! docs/storage.md), so no test can show a GCS server accepting a capture. What is tested:
//! the URL, the client's configuration from an explicit service-account key, and the
//! requests it sends, captured by a local recorder that answers like a bucket refusing
//! writes: the multipart upload is started with `POST /<bucket>/<prefix>/<key>?uploads`
//! carrying a bearer token signed with the key, and the refusal fails the start.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use edgecap_pcap::Format;
use edgecap_store::{
    Credentials, Destination, Scheme, Store, StoreError, UploadOptions, UploadSink, layout,
};
use edgecap_testkit::servers::TempDir;

use super::s3::{ID, fast};

/// Records request heads and answers each with a GCS-style 403.
struct Recorder {
    port: u16,
    seen: Arc<Mutex<Vec<String>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Recorder {
    fn start() -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (seen2, stop2) = (Arc::clone(&seen), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            while !stop2.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < deadline {
                let Ok((mut s, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                s.set_nonblocking(false).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && s.read(&mut byte).unwrap_or(0) == 1 {
                    head.push(byte[0]);
                }
                seen2
                    .lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&head).into_owned());
                let body = "<?xml version='1.0' encoding='UTF-8'?><Error><Code>AccessDenied</Code>\
                            <Message>Access denied.</Message></Error>";
                let _ = write!(
                    s,
                    "HTTP/1.1 403 Forbidden\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Recorder {
            port,
            seen,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A service-account key with a fresh RSA key (openssl), as the GCS console issues them.
fn service_account_key(dir: &TempDir) -> serde_json::Value {
    let pem = dir.0.join("key.pem");
    let out = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&pem)
        .output()
        .expect("openssl is installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::json!({
        "type": "service_account",
        "client_email": "edgecap-test@example-project.iam.gserviceaccount.com",
        "private_key_id": "0123456789abcdef",
        "private_key": std::fs::read_to_string(&pem).unwrap(),
    })
}

#[test]
fn gcs_urls_configure_a_client_that_starts_xml_multipart_uploads() {
    let dir = TempDir::new("gcs");
    let rec = Recorder::start();
    let url = format!(
        "gs://edgecap-bucket/fleet/a?endpoint=http://127.0.0.1:{}",
        rec.port
    );
    let dest = Destination::parse(&url, "destination_conf").unwrap();
    assert_eq!(dest.scheme, Scheme::Gcs);
    let creds = Credentials::from_json(
        &serde_json::json!({ "service_account_key": service_account_key(&dir) }),
        "credentials",
    )
    .unwrap();
    let dest = dest.with_credentials(creds, "credentials").unwrap();
    let store = Store::open(&dest, &fast(), "destination_conf").unwrap();

    let key = layout::node_file(ID, "edge6", Format::Pcapng).unwrap();
    let e = UploadSink::start(&store, &key, &UploadOptions::default()).unwrap_err();
    assert!(matches!(e, StoreError::Unwritable { .. }), "{e}");
    assert!(e.to_string().contains("access denied (HTTP 403)"), "{e}");

    let seen = rec.seen.lock().unwrap().clone();
    let first = seen.first().expect("the client sent a request");
    let line = first.lines().next().unwrap();
    let target = line.split(' ').nth(1).unwrap();
    let (path, query) = target.split_once('?').unwrap();
    // object_store encodes the object name as one segment ('/' as %2F), which GCS decodes.
    let path = percent_encoding::percent_decode_str(path)
        .decode_utf8()
        .unwrap();
    assert!(line.starts_with("POST "), "{first}");
    assert_eq!(path, format!("/edgecap-bucket/fleet/a/{key}"), "{first}");
    assert!(query.starts_with("uploads"), "{first}");
    let auth = first
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("authorization:"))
        .unwrap_or_else(|| panic!("no Authorization header in {first}"));
    // A self-signed JWT: three base64url parts, the header naming RS256.
    let token = auth.split_once("Bearer ").unwrap().1.trim();
    assert_eq!(token.split('.').count(), 3, "{auth}");
    use base64::Engine as _;
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.split('.').next().unwrap())
        .unwrap();
    assert!(String::from_utf8_lossy(&header).contains("RS256"), "{auth}");
}

#[test]
fn a_service_account_key_that_is_not_one_is_refused_naming_the_field() {
    let e = Credentials::from_json(
        &serde_json::json!({ "service_account_key": { "client_email": "a@b" } }),
        "credentials",
    )
    .unwrap_err();
    assert_eq!(e.field(), Some("credentials.service_account_key"));
    // Well-formed JSON whose key is not a PEM: the client cannot be configured.
    let creds = Credentials::from_json(
        &serde_json::json!({ "service_account_key": { "client_email": "a@b", "private_key": "nope" } }),
        "credentials",
    )
    .unwrap();
    let dest = Destination::parse("gs://edgecap-bucket", "destination_conf")
        .unwrap()
        .with_credentials(creds, "credentials")
        .unwrap();
    let e = Store::open(&dest, &fast(), "destination_conf").unwrap_err();
    assert_eq!(e.field(), Some("destination_conf"), "{e}");
}
