//! Failures are loud. A bucket that cannot be reached, or that refuses the node's writes,
//! fails the node's part at once with an error_message, before any rule is installed. An
//! outage mid-capture (the store killed while the capture streams) ends the part failed,
//! saying what the capture took and that none of it is in the bucket, never success; the
//! agent keeps no local copy.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use edgecap_lab::packet::Packet;
use edgecap_lab::send::Blast;
use edgecap_testkit::http::{moto_bucket, moto_open_parts, moto_user};
use edgecap_testkit::servers::Server;
use serde_json::{Value, json};

use crate::bucket::Bucket;
use crate::buckets_s3::ended;
use crate::capture_common::{edgecap_tables, root_or_skip, wait_for};
use crate::harness::{Fleet, PORT, ServerOpts};

/// Watches edge `i` for any edgecap table until dropped; true if one ever appeared.
struct RuleWatch {
    seen: Arc<AtomicBool>,
    done: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RuleWatch {
    fn new(ns: &str) -> RuleWatch {
        let (seen, done) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let (s, d, ns) = (seen.clone(), done.clone(), ns.to_owned());
        let thread = std::thread::spawn(move || {
            while !d.load(Ordering::Relaxed) {
                if !edgecap_tables(&ns).is_empty() {
                    s.store(true, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        RuleWatch {
            seen,
            done,
            thread: Some(thread),
        }
    }

    fn seen(mut self) -> bool {
        self.done.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.seen.load(Ordering::Relaxed)
    }
}

impl Drop for RuleWatch {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The one part's result once it failed; the capture had a long time limit, so a failure
/// within `within` is the start check's, not the limit's.
fn failed_part(fleet: &Fleet, id: &str, within: Duration) -> Value {
    let c = ended(fleet, id, within);
    assert_eq!(c["status"], "failed", "{c:#}");
    let r = c["node_results"][0].clone();
    assert_eq!(r["status"], "failed", "{r}");
    r
}

#[test]
fn an_unreachable_bucket_fails_the_part_at_once_and_installs_nothing() {
    if !root_or_skip() {
        return;
    }
    let mut bucket = Bucket::s3();
    let fleet = Fleet::new(1, ServerOpts::default());
    fleet.own(&bucket);
    bucket.server.kill();
    let watch = RuleWatch::new(fleet.lab.edge_ns(0));
    let id = fleet.create(json!({"destination_conf": bucket.conf(), "time_limit": 300}));
    let r = failed_part(&fleet, &id, Duration::from_secs(60));
    let msg = r["error_message"].as_str().unwrap();
    assert!(msg.contains("cannot write to s3://pcaps/edge"), "{msg}");
    assert!(msg.contains("could not be reached"), "{msg}");
    assert_eq!(r["packets"], 0);
    assert!(!watch.seen(), "a capture rule was installed");
    assert_eq!(fleet.agent_local_files(0), Vec::<std::path::PathBuf>::new());
}

#[test]
fn denied_writes_fail_the_part_at_once_and_write_nothing() {
    if !root_or_skip() {
        return;
    }
    // moto checking credentials after the 7 requests that set it up.
    let moto = Server::moto_with_auth(7);
    moto_bucket(moto.port, "guarded");
    let all = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#;
    let read = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject","s3:ListBucket"],"Resource":"*"}]}"#;
    let (wid, wsecret) = moto_user(moto.port, "writer", all);
    let (rid, rsecret) = moto_user(moto.port, "reader", read);
    let fleet = Fleet::new(1, ServerOpts::default());
    let conf = format!(
        "s3://guarded/edge?endpoint={}&region=us-east-1",
        moto.endpoint()
    );
    let (s, v) = fleet.api(
        reqwest::Method::POST,
        "pcaps/ownership",
        Some(json!({"destination_conf": conf,
            "credentials": {"access_key_id": wid, "secret_access_key": wsecret}})),
    );
    assert_eq!(s, 200, "{v}");
    let challenge = v["result"]["filename"].as_str().unwrap().to_owned();
    // The writer's keys read the token back (as the user would with their own tools).
    let writer = edgecap_store::Store::open(
        &edgecap_store::Destination::parse(&conf, "t")
            .unwrap()
            .with_credentials(
                edgecap_store::Credentials::from_json(
                    &json!({"access_key_id": wid, "secret_access_key": wsecret}),
                    "t",
                )
                .unwrap(),
                "t",
            )
            .unwrap(),
        &edgecap_store::StoreOptions::operator(),
        "t",
    )
    .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let token = rt.block_on(writer.get_small(&challenge, 1024)).unwrap();
    let (s, v) = fleet.api(
        reqwest::Method::POST,
        "pcaps/ownership/validate",
        Some(json!({"destination_conf": conf,
            "ownership_challenge": String::from_utf8_lossy(&token)})),
    );
    assert_eq!(s, 200, "{v}");
    // The capture brings read-only keys in its URL (they win over the bucket's).
    let secret =
        percent_encoding::utf8_percent_encode(&rsecret, percent_encoding::NON_ALPHANUMERIC);
    let read_only = format!("{conf}&access-key-id={rid}&secret-access-key={secret}");
    let watch = RuleWatch::new(fleet.lab.edge_ns(0));
    let id = fleet.create(json!({"destination_conf": read_only, "time_limit": 300}));
    assert!(
        !fleet.get(&id).to_string().contains(&rsecret),
        "a secret in the answer"
    );
    let r = failed_part(&fleet, &id, Duration::from_secs(60));
    let msg = r["error_message"].as_str().unwrap();
    assert!(msg.contains("access denied (HTTP 403)"), "{msg}");
    assert!(!watch.seen(), "a capture rule was installed");
    // Only the challenge is in the bucket.
    let keys: Vec<String> = rt.block_on(async {
        use futures_util::StreamExt;
        writer
            .object_store()
            .list(None)
            .map(|m| m.unwrap().location.to_string())
            .collect()
            .await
    });
    assert_eq!(keys, vec![format!("edge/{challenge}")]);
}

#[test]
fn an_outage_mid_capture_fails_the_part_with_what_it_took_and_leaves_nothing() {
    if !root_or_skip() {
        return;
    }
    let mut bucket = Bucket::s3();
    let opts = ServerOpts {
        agent_args: [
            "--upload-retry-timeout",
            "3s",
            "--upload-stall-timeout",
            "5s",
        ]
        .map(str::to_owned)
        .to_vec(),
        ..ServerOpts::default()
    };
    let fleet = Fleet::new(1, opts);
    fleet.own(&bucket);
    let id = fleet.create(json!({"destination_conf": bucket.conf(), "time_limit": 300}));
    fleet.wait_rules(&id, &[0]);
    let template = Packet::udp(
        fleet.lab.src_addr(0, false),
        fleet.lab.origin_addr(0, false),
        40000,
        PORT,
    )
    .marker(7)
    .total_len(1428)
    .build()
    .unwrap();
    let blast = Blast {
        count: 8_000,
        pps: Some(20_000),
        max_duration: Duration::from_secs(20),
        vary_source_port: false,
    };
    fleet.lab.blast(0, &template, blast).unwrap();
    // A part is in the bucket: the upload is under way when the store goes.
    let key = format!("edge/{id}/edge0.pcapng");
    assert!(
        wait_for(Duration::from_secs(20), || moto_open_parts(
            bucket.server.port,
            "pcaps",
            &key
        ) >= 1),
        "no part was uploaded\n{}",
        fleet.logs()
    );
    bucket.server.kill();
    fleet.lab.blast(0, &template, blast).unwrap();
    let r = failed_part(&fleet, &id, Duration::from_secs(90));
    let msg = r["error_message"].as_str().unwrap();
    assert!(msg.contains("failed"), "{msg}");
    assert!(msg.contains("confirmed by the store"), "{msg}");
    assert!(
        msg.contains("none of them delivered: no file is at"),
        "{msg}"
    );
    assert!(r["file"].is_null(), "{r}");
    // What the capture took is counted, and named in the message.
    let packets = r["packets"].as_u64().unwrap();
    assert!(packets > 0, "{r}");
    assert!(
        msg.contains(&format!("the capture took {packets} packets")),
        "{msg}"
    );
    assert!(edgecap_tables(fleet.lab.edge_ns(0)).is_empty());
    assert_eq!(fleet.agent_local_files(0), Vec::<std::path::PathBuf>::new());
}
