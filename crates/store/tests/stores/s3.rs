//! S3 through moto_server: multipart uploads with the real 5 MiB part minimum, bounded
//! memory, files read back with tshark, small objects and manifests.

use std::time::Duration;

use edgecap_pcap::Format;
use edgecap_store::layout;
use edgecap_store::manifest::{MANIFEST_VERSION, Manifest, Outcome, UploadCounts};
use edgecap_store::upload::MIN_PART;
use edgecap_store::{ObjectReader, Store, StoreError, StoreOptions, UploadOptions, UploadSink};
use edgecap_testkit::http::moto_bucket;
use edgecap_testkit::pcapfile::{assert_capture, packets_for, write_capture};
use edgecap_testkit::servers::{Server, TempDir};
use futures_util::StreamExt;

pub const ID: &str = "5f0c7a1e9b2d4c3a8e6f1b0d2c4a6e8f";

/// Short retries: the tests kill servers and must not wait minutes.
pub fn fast() -> StoreOptions {
    StoreOptions {
        max_retries: 2,
        retry_timeout: Duration::from_secs(5),
        initial_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(1),
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(30),
        preflight_timeout: Duration::from_secs(3),
        // The tests' stores speak plain http on loopback, and some use the environment's keys.
        ..StoreOptions::operator()
    }
}

pub fn moto_store(moto: &Server, bucket: &str, dir: &str) -> Store {
    let url = format!(
        "s3://{bucket}/{dir}?endpoint={}&access-key-id=test&secret-access-key=test",
        moto.endpoint()
    );
    Store::from_url(&url, &fast(), "destination_conf").unwrap()
}

/// Downloads `key` through the streaming reader into a file.
pub fn fetch(store: &Store, key: &str, dir: &TempDir) -> (std::path::PathBuf, u64) {
    let mut r = ObjectReader::open(store, key).unwrap();
    let path = dir.0.join(key.replace('/', "_"));
    let mut f = std::fs::File::create(&path).unwrap();
    let n = std::io::copy(&mut r, &mut f).unwrap();
    assert_eq!(n, r.size());
    (path, n)
}

pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// Every key in the bucket (under the store's prefix and beyond).
pub fn keys(store: &Store) -> Vec<String> {
    block_on(async {
        let mut out: Vec<String> = store
            .object_store()
            .list(None)
            .map(|m| m.unwrap().location.to_string())
            .collect()
            .await;
        out.sort();
        out
    })
}

#[test]
fn a_capture_streams_to_s3_in_5_mib_parts_and_tshark_reads_it() {
    let moto = Server::moto();
    moto_bucket(moto.port, "pcaps");
    let store = moto_store(&moto, "pcaps", "captures/fleet");
    let key = layout::node_file(ID, "edge0", Format::Pcapng).unwrap();
    let opts = UploadOptions::for_size(None);
    assert_eq!(opts.chunk_size, MIN_PART);
    let sink = UploadSink::start(&store, &key, &opts).unwrap();
    let count = packets_for(12 << 20);
    let (sink, len) = write_capture(sink, "edge0", count);
    assert!(len > 12 << 20);
    // Before the end, the store already holds the full parts (it streams, it does not wait
    // for the last byte); no object is visible yet.
    let object = format!("captures/fleet/{ID}/edge0.pcapng");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while edgecap_testkit::http::moto_open_parts(moto.port, "pcaps", &object) < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the full parts never arrived"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(keys(&store).is_empty());
    let report = sink.finish().unwrap();
    assert!(report.completed, "{report}");
    assert_eq!((report.accepted, report.uploaded), (len, len));
    // Two full 5 MiB parts and the tail.
    assert_eq!(report.parts, len.div_ceil(MIN_PART as u64));
    assert!(report.peak_buffered <= report.memory_bound, "{report:?}");

    assert_eq!(
        keys(&store),
        vec![format!("captures/fleet/{ID}/edge0.pcapng")]
    );
    let dir = TempDir::new("s3");
    let (file, n) = fetch(&store, &key, &dir);
    assert_eq!(n, len);
    assert_capture(&file, "edge0", count);
}

#[test]
fn moto_enforces_the_5_mib_minimum_and_a_refused_upload_is_never_success() {
    let moto = Server::moto();
    moto_bucket(moto.port, "small-parts");
    let store = moto_store(&moto, "small-parts", "");
    let key = layout::node_file(ID, "edge1", Format::Pcapng).unwrap();
    // 1 MiB parts: every part but the last is below S3's minimum.
    let opts = UploadOptions {
        chunk_size: 1 << 20,
        ..UploadOptions::default()
    };
    let sink = UploadSink::start(&store, &key, &opts).unwrap();
    let (sink, len) = write_capture(sink, "edge1", packets_for(3 << 20));
    let err = sink.finish().unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("EntityTooSmall"), "{msg}");
    assert!(msg.contains(&key), "{msg}");
    let StoreError::Upload { report, .. } = err else {
        panic!("{msg}")
    };
    assert!(!report.completed);
    assert_eq!(report.accepted, len);
    // No object appeared, as moto itself lists it, and the refused upload was aborted (its
    // parts are not left behind), as the preflight's was.
    assert!(keys(&store).is_empty());
    assert!(edgecap_testkit::http::moto_keys(moto.port, "small-parts").is_empty());
    assert_eq!(
        edgecap_testkit::http::moto_open_uploads(moto.port, "small-parts"),
        Vec::<String>::new()
    );
    assert!(report.aborted, "{report:?}");
}

#[test]
fn upload_memory_stays_within_its_bound_whatever_the_object_size() {
    let moto = Server::moto();
    moto_bucket(moto.port, "bounded");
    let store = moto_store(&moto, "bounded", "d");
    let key = layout::node_file(ID, "edge2", Format::Pcapng).unwrap();
    let opts = UploadOptions {
        buffer_chunks: 2,
        concurrency: 1,
        ..UploadOptions::default()
    };
    let bound = opts.memory_bound() as u64;
    let sink = UploadSink::start(&store, &key, &opts).unwrap();
    // Four times the bound goes through.
    let (sink, len) = write_capture(sink, "edge2", packets_for(4 * bound));
    let report = sink.finish().unwrap();
    assert!(report.completed);
    assert_eq!(report.uploaded, len);
    assert_eq!(report.memory_bound, bound);
    // The sink's own accounting: at least the chunk being filled, never more than the bound.
    assert!(report.peak_buffered >= MIN_PART as u64, "{report:?}");
    assert!(report.peak_buffered <= bound, "{report:?}");
    assert_eq!(block_on(store.size(&key)).unwrap(), len);
}

#[test]
fn challenges_and_manifests_are_small_objects_under_the_prefix() {
    let moto = Server::moto();
    moto_bucket(moto.port, "owned");
    let store = moto_store(&moto, "owned", "pcaps");
    let challenge = layout::ownership_challenge("9883874ecac311ec8475433579a6bf5f").unwrap();
    block_on(store.put_small(&challenge, "token-1234")).unwrap();
    assert_eq!(
        keys(&store),
        vec!["pcaps/ownership-challenge-9883874ecac311ec8475433579a6bf5f.txt".to_owned()]
    );
    assert_eq!(
        &block_on(store.get_small(&challenge, 1024)).unwrap()[..],
        b"token-1234"
    );
    // The same bytes, as moto serves them to any S3 client; and what another client put
    // there reads back through the store.
    let key = format!("pcaps/{challenge}");
    assert_eq!(
        edgecap_testkit::http::moto_get(moto.port, "owned", &key),
        b"token-1234"
    );
    edgecap_testkit::http::moto_put(moto.port, "owned", "pcaps/other.txt", b"from elsewhere");
    assert_eq!(
        &block_on(store.get_small("other.txt", 64)).unwrap()[..],
        b"from elsewhere"
    );
    let big = block_on(store.get_small(&challenge, 4)).unwrap_err();
    assert!(big.to_string().contains("more than 4"), "{big}");

    let m = Manifest {
        version: MANIFEST_VERSION,
        capture_id: ID.into(),
        node: "edge0".into(),
        object: layout::node_file(ID, "edge0", Format::Pcapng).unwrap(),
        format: "pcapng".into(),
        outcome: Outcome::Success,
        error: None,
        filter: "udp".into(),
        points: vec![],
        packets: 0,
        bytes: 0,
        lost: 0,
        started: "2026-01-01T00:00:00.000000Z".into(),
        ended: "2026-01-01T00:00:01.000000Z".into(),
        duration_ms: 1000,
        stop_reason: "time limit reached".into(),
        upload: UploadCounts {
            bytes: 0,
            parts: 1,
            chunk_size: MIN_PART as u64,
        },
        writer: "edgecap test".into(),
    };
    let mkey = layout::node_manifest(ID, "edge0").unwrap();
    block_on(store.put_small(&mkey, m.to_json())).unwrap();
    let back = Manifest::from_json(&block_on(store.get_small(&mkey, 1 << 20)).unwrap()).unwrap();
    assert_eq!(back, m);
}
