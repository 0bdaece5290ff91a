//! Captures straight to an S3 bucket (a `moto_server` the test starts, with S3's real 5 MiB
//! minimum part): the bucket added and validated through the API with the token read from
//! the bucket, then a capture across the lab. Each node's object, fetched back and opened
//! with tshark, holds exactly that node's packets; its manifest says what the outcome says;
//! the agents keep no file of their own; a large capture is in the bucket part by part while
//! it still runs.

use std::time::Duration;

use edgecap_lab::packet::Packet;
use edgecap_lab::send::Blast;
use edgecap_testkit::http::moto_open_parts;
use serde_json::{Value, json};

use crate::bucket::Bucket;
use crate::capture_common::{
    Scratch, edgecap_tables, markers, root_or_skip, tshark_fields, wait_for,
};
use crate::harness::{Fleet, PORT, ServerOpts};

/// Waits until the capture has ended (neither pending nor running).
pub fn ended(fleet: &Fleet, id: &str, within: Duration) -> Value {
    fleet.wait(id, within, |c| {
        !matches!(
            c["status"].as_str(),
            Some("pending" | "running" | "conversion_running")
        )
    })
}

/// The manifest of node `i`, from the bucket, checked against the node's result.
pub fn check_manifest(b: &Bucket, id: &str, i: usize, result: &Value, object_len: usize) {
    let m: Value = serde_json::from_slice(&b.get(&format!("{id}/edge{i}.json"))).unwrap();
    assert_eq!(m["version"], 1, "{m:#}");
    assert_eq!(m["capture_id"], id);
    assert_eq!(m["node"], format!("edge{i}"));
    assert_eq!(m["object"], format!("{id}/edge{i}.pcapng"));
    assert_eq!(m["format"], "pcapng");
    assert_eq!(m["outcome"], "success", "{m:#}");
    assert!(m["error"].is_null(), "{m:#}");
    assert_eq!(m["packets"], result["packets"], "{m:#}");
    assert_eq!(m["bytes"], result["bytes"], "{m:#}");
    assert_eq!(m["lost"], result["lost"], "{m:#}");
    assert_eq!(m["upload"]["bytes"], object_len, "{m:#}");
    assert_eq!(m["points"][0]["name"], "pre-firewall", "{m:#}");
    assert_eq!(m["points"][0]["packets"], result["packets"], "{m:#}");
    assert_eq!(m["stop_reason"], "time limit reached", "{m:#}");
    assert!(m["filter"].as_str().unwrap().contains("5000"), "{m:#}");
    assert!(m["started"].as_str().unwrap() < m["ended"].as_str().unwrap());
}

#[test]
fn a_capture_across_three_nodes_lands_in_the_bucket_node_by_node() {
    if !root_or_skip() {
        return;
    }
    let bucket = Bucket::s3();
    let fleet = Fleet::new(3, ServerOpts::default());
    let own = fleet.own(&bucket);
    let challenge = format!("edge/{}", own["filename"].as_str().unwrap());
    let id = fleet.create(json!({"destination_conf": bucket.conf(), "time_limit": 4}));
    fleet.wait_rules(&id, &[0, 1, 2]);
    // Different counts per node, so a packet in the wrong object cannot go unnoticed.
    let counts = [5u32, 7, 9];
    for (i, &n) in counts.iter().enumerate() {
        fleet.send(i, 1000 * (i as u32 + 1), n);
    }
    // While they capture, the agents hold no file open but their logs.
    for i in 0..3 {
        assert_eq!(fleet.agent_open_files(i), Vec::<String>::new(), "agent {i}");
    }
    let c = ended(&fleet, &id, Duration::from_secs(30));
    assert_eq!(c["status"], "success", "{c:#}\n{}", fleet.logs());
    assert_eq!(c["packets_captured"], 21);
    let got = Scratch::new("fleet-s3-got");
    let mut expected_keys = vec![challenge];
    for (i, &n) in counts.iter().enumerate() {
        let r = &c["node_results"][i];
        let key = format!("{id}/edge{i}.pcapng");
        assert_eq!(r["status"], "success", "{r}");
        assert_eq!(r["file"], key.as_str());
        let file = bucket.fetch(&key, &got.0);
        let first = 1000 * (i as u32 + 1);
        assert_eq!(markers(&file), (first..first + n).collect::<Vec<_>>());
        let names = tshark_fields(&file, &["frame.interface_name"]);
        assert!(
            names
                .iter()
                .all(|l| l[0] == format!("edge{i}/pre-firewall")),
            "{names:?}"
        );
        let len = std::fs::metadata(&file).unwrap().len() as usize;
        check_manifest(&bucket, &id, i, r, len);
        expected_keys.push(format!("edge/{key}"));
        expected_keys.push(format!("edge/{id}/edge{i}.json"));
        assert!(edgecap_tables(fleet.lab.edge_ns(i)).is_empty());
        assert_eq!(fleet.agent_local_files(i), Vec::<std::path::PathBuf>::new());
    }
    expected_keys.sort();
    assert_eq!(bucket.keys(), expected_keys);
}

#[test]
fn a_large_capture_is_in_the_bucket_part_by_part_while_it_runs() {
    if !root_or_skip() {
        return;
    }
    let bucket = Bucket::s3();
    let fleet = Fleet::new(1, ServerOpts::default());
    fleet.own(&bucket);
    let id = fleet.create(json!({"destination_conf": bucket.conf(), "time_limit": 300}));
    fleet.wait_rules(&id, &[0]);
    // About 14 MB of 1428-byte packets: two full 5 MiB parts and a tail.
    let template = Packet::udp(
        fleet.lab.src_addr(0, false),
        fleet.lab.origin_addr(0, false),
        40000,
        PORT,
    )
    .marker(1)
    .total_len(1428)
    .build()
    .unwrap();
    let sent = fleet
        .lab
        .blast(
            0,
            &template,
            Blast {
                count: 10_000,
                pps: Some(20_000),
                max_duration: Duration::from_secs(20),
                vary_source_port: false,
            },
        )
        .unwrap();
    assert_eq!(sent.sent, 10_000);
    // The capture still runs, and its first parts are already in the bucket.
    let key = format!("edge/{id}/edge0.pcapng");
    let parts = wait_for(Duration::from_secs(20), || {
        moto_open_parts(bucket.server.port, "pcaps", &key) >= 2
    });
    assert!(parts, "no parts uploaded while capturing\n{}", fleet.logs());
    assert_eq!(fleet.get(&id)["status"], "running");
    assert_eq!(fleet.agent_open_files(0), Vec::<String>::new());
    fleet.stop(&id);
    let c = ended(&fleet, &id, Duration::from_secs(30));
    assert_eq!(c["status"], "success", "{c:#}\n{}", fleet.logs());
    let r = &c["node_results"][0];
    assert_eq!(r["stop_reason"], "stopped");
    let got = Scratch::new("fleet-s3-large");
    let file = bucket.fetch(&format!("{id}/edge0.pcapng"), &got.0);
    let lines = tshark_fields(&file, &["frame.len"]);
    let packets = r["packets"].as_u64().unwrap();
    assert_eq!(lines.len() as u64, packets);
    assert_eq!(packets + r["lost"].as_u64().unwrap(), 10_000, "{r}");
    assert!(lines.iter().all(|l| l[0] == "1428"), "every frame whole");
    let m: Value = serde_json::from_slice(&bucket.get(&format!("{id}/edge0.json"))).unwrap();
    assert_eq!(m["upload"]["parts"], 3, "{m:#}");
    assert_eq!(m["upload"]["chunk_size"], 5 << 20, "{m:#}");
    assert_eq!(
        m["upload"]["bytes"],
        std::fs::metadata(&file).unwrap().len()
    );
    assert_eq!(fleet.agent_local_files(0), Vec::<std::path::PathBuf>::new());
}

#[test]
fn merge_writes_one_timeline_with_an_interface_per_node_and_point() {
    if !root_or_skip() {
        return;
    }
    let bucket = Bucket::s3();
    let fleet = Fleet::new(3, ServerOpts::default());
    fleet.own(&bucket);
    let id = fleet.create(json!({
        "destination_conf": bucket.conf(), "time_limit": 4, "merge": true,
        "points": ["pre-firewall", "egress"],
    }));
    fleet.wait_rules(&id, &[0, 1, 2]);
    // Round-robin over the nodes, so their packets interleave in time.
    let counts = [6u32, 4, 5];
    for k in 0..6u32 {
        for (i, &n) in counts.iter().enumerate() {
            if k < n {
                fleet.send(i, 1000 * (i as u32 + 1) + k, 1);
            }
        }
    }
    let c = ended(&fleet, &id, Duration::from_secs(60));
    assert_eq!(c["status"], "success", "{c:#}\n{}", fleet.logs());
    let merged = format!("{id}/merged.pcapng");
    assert_eq!(c["merged_file"], merged.as_str());
    let got = Scratch::new("fleet-s3-merge");
    let file = bucket.fetch(&merged, &got.0);
    let mut total = 0;
    for (i, &n) in counts.iter().enumerate() {
        let first = 1000 * (i as u32 + 1);
        for point in ["pre-firewall", "egress"] {
            let name = format!("edge{i}/{point}");
            assert_eq!(
                crate::capture_common::markers_at(&file, &name),
                (first..first + n).collect::<Vec<_>>(),
                "{name}"
            );
            total += n as usize;
        }
    }
    let rows = tshark_fields(&file, &["frame.interface_name", "frame.time_epoch"]);
    assert_eq!(rows.len(), total, "nothing but the nodes' packets");
    // One timeline: timestamps never go back (exact nanoseconds, as text s.nnnnnnnnn).
    let ns = |t: &str| {
        let (s, f) = t.split_once('.').unwrap_or((t, "0"));
        s.parse::<u128>().unwrap() * 1_000_000_000
            + format!("{f:0<9}")[..9].parse::<u128>().unwrap()
    };
    let times: Vec<u128> = rows.iter().map(|r| ns(&r[1])).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{rows:?}");
    // And the nodes really interleave in it (not one node's packets after another's).
    let switches = rows
        .windows(2)
        .filter(|w| w[0][0][..5] != w[1][0][..5])
        .count();
    assert!(switches >= 10, "{rows:?}");
    // Merged from the bucket and back into it; the server's disk saw none of it.
    let mut keys = bucket.keys();
    keys.retain(|k| k.ends_with("merged.pcapng"));
    assert_eq!(keys, vec![format!("edge/{merged}")]);
}
