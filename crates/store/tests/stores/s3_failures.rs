//! Failures are loud: a missing bucket, an unreachable store, refused credentials and denied
//! writes fail at the start, before any byte is accepted; an outage mid-upload fails the
//! upload with what was delivered, and never completes it.

use edgecap_pcap::Format;
use edgecap_store::layout;
use edgecap_store::{Store, StoreError, UploadOptions, UploadSink};
use edgecap_testkit::http::{moto_bucket, moto_user};
use edgecap_testkit::pcapfile::{packet, write_capture};
use edgecap_testkit::servers::{Server, free_port};

use super::s3::{ID, fast, keys, moto_store};

fn start_err(store: &Store) -> String {
    let key = layout::node_file(ID, "edge0", Format::Pcapng).unwrap();
    match UploadSink::start(store, &key, &UploadOptions::default()) {
        Ok(_) => panic!("the upload started"),
        Err(e @ StoreError::Unwritable { .. }) => e.to_string(),
        Err(e) => panic!("expected Unwritable, got {e}"),
    }
}

#[test]
fn a_missing_bucket_fails_at_start_naming_it() {
    let moto = Server::moto();
    let store = moto_store(&moto, "no-such-bucket", "x");
    let msg = start_err(&store);
    assert!(msg.contains("s3://no-such-bucket/x"), "{msg}");
    assert!(msg.contains("does not exist"), "{msg}");
}

#[test]
fn an_unreachable_store_fails_at_start() {
    let port = free_port();
    let url =
        format!("s3://pcaps?endpoint=http://127.0.0.1:{port}&access-key-id=a&secret-access-key=b");
    let store = Store::from_url(&url, &fast(), "destination_conf").unwrap();
    let msg = start_err(&store);
    assert!(msg.contains("could not be reached"), "{msg}");
    let small = super::s3::block_on(store.put_small("ownership-challenge-x.txt", "t"));
    assert!(
        small
            .unwrap_err()
            .to_string()
            .contains("could not be reached")
    );
}

/// A closed port on loopback whose number contains "403" and "404".
fn closed_port_with_status_digits() -> u16 {
    [34403u16, 40304, 14034, 24043, 44030, 40340]
        .into_iter()
        .find(|&p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok())
        .expect("one of the candidate ports is free")
}

#[test]
fn causes_come_from_the_error_not_from_text_holding_the_url() {
    // Connection refused at a port and a bucket that read like HTTP statuses: the cause is
    // the connection, never a denial or a missing bucket.
    let port = closed_port_with_status_digits();
    let url = format!(
        "s3://denied-403-notfound-404?endpoint=http://127.0.0.1:{port}&access-key-id=a&secret-access-key=b"
    );
    let store = Store::from_url(&url, &fast(), "destination_conf").unwrap();
    let msg = start_err(&store);
    assert!(
        msg.contains(&port.to_string()) || msg.contains("403"),
        "{msg}"
    );
    assert!(msg.contains("could not be reached"), "{msg}");
    assert!(
        !msg.contains("access denied") && !msg.contains("does not exist"),
        "{msg}"
    );

    // A real 403 and a real 404 from moto, at a bucket whose name holds the other status.
    let moto = Server::moto();
    let msg = start_err(&moto_store(&moto, "no-bucket-403", "x"));
    assert!(msg.contains("does not exist (HTTP 404)"), "{msg}");
    assert!(!msg.contains("access denied"), "{msg}");
}

#[test]
fn refused_credentials_and_denied_writes_fail_at_start() {
    // Seven unauthenticated requests set the server up; everything after is checked.
    let moto = Server::moto_with_auth(7);
    moto_bucket(moto.port, "guarded");
    let write_all = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#;
    let read_only = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject","s3:ListBucket"],"Resource":"*"}]}"#;
    let (wid, wsecret) = moto_user(moto.port, "writer", write_all);
    let (rid, rsecret) = moto_user(moto.port, "reader", read_only);
    let open = |id: &str, secret: &str| {
        let url = format!(
            "s3://guarded/d?endpoint={}&access-key-id={id}&secret-access-key={}",
            moto.endpoint(),
            percent_encoding::utf8_percent_encode(secret, percent_encoding::NON_ALPHANUMERIC)
        );
        Store::from_url(&url, &fast(), "destination_conf").unwrap()
    };

    // Both are HTTP 403: the hint names the status, not the store's words.
    for (id, secret) in [
        (wid.as_str(), "not-the-secret"),
        (rid.as_str(), rsecret.as_str()),
    ] {
        let msg = start_err(&open(id, secret));
        assert!(msg.contains("access denied (HTTP 403)"), "{msg}");
    }

    // The writer's own keys work, which shows the two refusals were about the keys.
    let store = open(&wid, &wsecret);
    let key = layout::node_file(ID, "edge0", Format::Pcapng).unwrap();
    let sink = UploadSink::start(&store, &key, &UploadOptions::default()).unwrap();
    let (sink, len) = write_capture(sink, "edge0", 100);
    assert_eq!(sink.finish().unwrap().uploaded, len);
    assert_eq!(keys(&store), vec![format!("d/{key}")]);
}

#[test]
fn an_outage_mid_upload_fails_with_what_was_delivered_and_never_completes() {
    let mut moto = Server::moto();
    moto_bucket(moto.port, "outage");
    let store = moto_store(&moto, "outage", "");
    let key = layout::node_file(ID, "edge0", Format::Pcapng).unwrap();
    let opts = UploadOptions {
        stall_timeout: std::time::Duration::from_secs(5),
        ..UploadOptions::default()
    };
    let chunk = opts.chunk_size as u64;
    let mut sink = UploadSink::start(&store, &key, &opts).unwrap();
    let p = packet(1);
    let mut written = 0u64;
    // Two parts' worth reaches the store while it is up.
    while written < 2 * chunk + 1 {
        std::io::Write::write_all(&mut sink, &p).unwrap();
        written += p.len() as u64;
    }
    moto.kill();
    // Then the store is gone: writing goes on until the bounded buffer is full and the sink
    // fails. Bounded: at most the buffer plus the bytes in flight, plus a margin.
    let limit = written + (opts.memory_bound() as u64) * 4;
    let write_error = loop {
        if let Err(e) = std::io::Write::write_all(&mut sink, &p) {
            break e.to_string();
        }
        written += p.len() as u64;
        assert!(
            written < limit,
            "the sink accepted {written} bytes with the store down"
        );
    };
    assert!(write_error.contains(&key), "{write_error}");
    let err = sink.finish().unwrap_err();
    let msg = err.to_string();
    let StoreError::Upload { report, reason, .. } = err else {
        panic!("{msg}")
    };
    assert!(!report.completed, "{msg}");
    assert!(
        reason.contains("a part failed") || reason.contains("took no part"),
        "{msg}"
    );
    // What was delivered is named: whole parts only, fewer bytes than were accepted.
    assert_eq!(report.accepted, written);
    assert_eq!(report.uploaded % chunk, 0, "{report:?}");
    assert!(report.uploaded < report.accepted, "{report:?}");
    assert!(
        msg.contains(&format!("{} bytes accepted", report.accepted)),
        "{msg}"
    );
    // The store is down, so the abort could not be confirmed; the message says so.
    assert!(report.abort_error.is_some() || report.aborted, "{report:?}");
}

#[test]
fn a_quiet_writer_learns_of_a_failed_part_through_the_watch() {
    let mut moto = Server::moto();
    moto_bucket(moto.port, "quiet");
    let store = moto_store(&moto, "quiet", "");
    let key = layout::node_file(ID, "edge0", Format::Pcapng).unwrap();
    let opts = UploadOptions::default();
    let mut sink = UploadSink::start(&store, &key, &opts).unwrap();
    let watch = sink.watch();
    assert_eq!(watch.failure(), None, "nothing has failed yet");
    moto.kill();
    // One full part handed over, then nothing more is written (a capture with no traffic).
    let p = packet(1);
    let mut written = 0u64;
    while written <= opts.chunk_size as u64 {
        std::io::Write::write_all(&mut sink, &p).unwrap();
        written += p.len() as u64;
    }
    // The part fails after its retries; the watch says so without another write. Bounded by
    // the store's retry budget (fast(): a few seconds) plus a margin.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let why = loop {
        if let Some(why) = watch.failure() {
            break why;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the watch never saw the failure"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(why.contains("part"), "{why}");
    let err = sink.finish().unwrap_err().to_string();
    assert!(
        err.contains("no object was created") || err.contains("aborting"),
        "{err}"
    );
}

/// Every request a store answers with 503 is counted as a failed attempt (object_store
/// retries it on its own and reports no count): the count grows by exactly the requests the
/// store saw.
#[test]
fn failed_attempts_are_counted_one_per_request_the_store_refused() {
    use std::io::{Read, Write};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let served = Arc::new(AtomicU64::new(0));
    {
        let served = served.clone();
        std::thread::spawn(move || {
            // Bounded: the retry budget of `fast()` makes a handful of requests.
            for stream in listener.incoming().take(64) {
                let Ok(mut s) = stream else { continue };
                let served = served.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 8192];
                    // One request per connection is enough; answer and close.
                    if s.read(&mut buf).is_ok_and(|n| n > 0) {
                        served.fetch_add(1, Ordering::SeqCst);
                        let _ = s.write_all(
                            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\
                              Connection: close\r\n\r\n",
                        );
                    }
                });
            }
        });
    }
    let url =
        format!("s3://pcaps?endpoint=http://127.0.0.1:{port}&access-key-id=a&secret-access-key=b");
    let store = Store::from_url(&url, &fast(), "destination_conf").unwrap();
    let before = edgecap_store::attempts::failed();
    let r = super::s3::block_on(store.put_small("ownership-challenge-x.txt", "t"));
    assert!(r.is_err(), "a store that answers 503 took the object");
    let requests = served.load(Ordering::SeqCst);
    assert!(requests >= 2, "object_store retried: {requests} requests");
    // Other tests in this binary may count too; ours are at least every request served.
    assert!(edgecap_store::attempts::failed() - before >= requests);
}
