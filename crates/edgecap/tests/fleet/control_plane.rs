//! No packet bytes on the control plane. Captures with payload markers go through a real
//! server to a bucket, merged by the server (`merge: true`: every packet passes through its
//! memory, from the bucket back to it); afterwards every file in the server's data directory (its SQLite
//! database with WAL and shared memory, its secrets key) and, in a second run, a PostgreSQL
//! dump of its database are searched for the markers: none is there, while the bucket's
//! objects hold every one (so the search would find them). The server's TMPDIR is inside its
//! data directory, so the search covers it too. The bucket's secret key is not there either,
//! nor in the server's log. The one kind of packet data the server keeps, the sealed
//! header-only files of look-back (`type: simple`) captures, is searched for the same way in
//! `lookback.rs`: neither the leading markers nor those past byte 160 are there in the clear.

use std::path::Path;
use std::time::Duration;

use serde_json::json;

use crate::bucket::{Bucket, SECRET};
use crate::buckets_s3::ended;
use crate::capture_common::root_or_skip;
use crate::harness::{Fleet, ServerOpts};

/// The marker prefix every test packet's payload carries (`EDGECAP-MARK-<n>`).
const MARK: &[u8] = edgecap_lab::packet::MARKER_PREFIX;

fn count(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).filter(|w| *w == needle).count()
}

/// Every regular file under `dir`, with its bytes.
fn files(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push((p.clone(), std::fs::read(&p).unwrap()));
        }
    }
    out
}

/// A capture of `counts[i]` marked packets through each edge to `bucket`; its id. Checks
/// the markers are in the bucket: the positive control of the search.
fn capture_with_markers(fleet: &Fleet, bucket: &Bucket, counts: &[u32]) -> String {
    fleet.own(bucket);
    let id =
        fleet.create(json!({"destination_conf": bucket.conf(), "time_limit": 4, "merge": true}));
    let edges: Vec<usize> = (0..counts.len()).collect();
    fleet.wait_rules(&id, &edges);
    for (i, &n) in counts.iter().enumerate() {
        fleet.send(i, 100 * (i as u32 + 1), n);
    }
    let c = ended(fleet, &id, Duration::from_secs(30));
    assert_eq!(c["status"], "success", "{c:#}\n{}", fleet.logs());
    for (i, &n) in counts.iter().enumerate() {
        let object = bucket.get(&format!("{id}/edge{i}.pcapng"));
        assert_eq!(
            count(&object, MARK),
            n as usize,
            "markers in edge{i}'s object"
        );
    }
    id
}

fn assert_clean(what: &str, bytes: &[u8]) {
    assert_eq!(count(bytes, MARK), 0, "packet markers in {what}");
    assert_eq!(
        count(bytes, SECRET.as_bytes()),
        0,
        "the bucket's secret in {what}"
    );
}

#[test]
fn the_server_keeps_no_packet_bytes_on_sqlite() {
    if !root_or_skip() {
        return;
    }
    let bucket = Bucket::s3();
    let mut fleet = Fleet::new(2, ServerOpts::default());
    let id = capture_with_markers(&fleet, &bucket, &[6, 8]);
    // A clean stop: every write of the server is on disk (database, WAL) when we look.
    assert!(fleet.server.terminate(Duration::from_secs(10)).is_some());
    let all = files(&fleet.data);
    let names: Vec<String> = all.iter().map(|(p, _)| p.display().to_string()).collect();
    assert!(names.iter().any(|n| n.ends_with("edgecap.db")), "{names:?}");
    // The search sees the database: the capture is recorded there.
    let db: Vec<u8> = all.iter().flat_map(|(_, b)| b.clone()).collect();
    assert!(
        count(&db, id.as_bytes()) > 0,
        "the capture id is not in {names:?}"
    );
    for (p, b) in &all {
        assert_clean(&p.display().to_string(), b);
    }
    assert_clean("the server log", &std::fs::read(&fleet.server.log).unwrap());
    // The agents had the credentials in memory; their logs do not show them.
    for a in &fleet.agents {
        let log = std::fs::read(&a.log).unwrap();
        assert_eq!(
            count(&log, SECRET.as_bytes()),
            0,
            "the secret in {}",
            a.log.display()
        );
    }
}

#[test]
fn the_server_keeps_no_packet_bytes_on_postgresql() {
    if !root_or_skip() {
        return;
    }
    // None only outside CI without PostgreSQL installed (under CI=true that is a failure).
    let Some(pg) = edgecap_testkit::pg::server() else {
        return;
    };
    let url = pg.create_database();
    let bucket = Bucket::s3();
    let opts = ServerOpts {
        database: Some(url.clone()),
        ..ServerOpts::default()
    };
    let mut fleet = Fleet::new(2, opts);
    let id = capture_with_markers(&fleet, &bucket, &[5, 9]);
    assert!(fleet.server.terminate(Duration::from_secs(10)).is_some());
    let dump = pg.dump(&url);
    assert!(
        count(&dump, id.as_bytes()) > 0,
        "the capture is not in the dump"
    );
    assert_clean("the PostgreSQL dump", &dump);
    for (p, b) in files(&fleet.data) {
        assert_clean(&p.display().to_string(), &b);
    }
    assert_clean("the server log", &std::fs::read(&fleet.server.log).unwrap());
}
