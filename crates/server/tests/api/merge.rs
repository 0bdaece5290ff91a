//! `merge: true`: when every node has reported its file, the server merges them from the
//! destination back into it, as `<id>/merged.pcapng`; meanwhile the capture is
//! `conversion_running`, then `success` with `merged_file`, or `failed` saying why the merge
//! failed. The nodes here are attached in process; the files they report are put into the
//! destination by the test (a real moto_server, and a local directory), and the merged file
//! is read back with tshark.

use std::time::Duration;

use edgecap_model::{AgentMsg, Outcome};
use edgecap_pcap::{Direction, Format, Interface, Section, Writer};
use edgecap_testkit::http::{moto_bucket, moto_get, moto_keys, moto_put};
use edgecap_testkit::pcapfile::{packet, tshark};
use edgecap_testkit::servers::{Server, TempDir};
use serde_json::{Value, json};

use crate::both_databases;
use crate::common::{Backend, FakeNode, Harness};

both_databases!(
    merged_files_land_beside_the_nodes_files_in_a_bucket,
    merged_files_land_in_a_directory_too,
    a_failed_merge_fails_the_capture_and_says_why,
);

/// Node `i` of `n`: `count` packets whose timestamps interleave with the other nodes', so
/// the merged file alternates between them. UDP destination port `10000 + seq` with
/// `seq = k * n + i`, the packet's place in the merged file.
fn node_file(i: u64, n: u64, count: u64) -> Vec<u8> {
    let iface = Interface::raw(format!("edge{i}/pre-firewall"), 65_535);
    let mut w = Writer::new(Vec::new(), Format::Pcapng, &Section::default(), &[iface]).unwrap();
    for k in 0..count {
        let seq = k * n + i;
        let p = packet(seq);
        let ts = 1_800_000_000_000_000_000 + seq * 1_000;
        w.write_packet(0, ts, &p, p.len() as u32, Direction::Inbound, 0)
            .unwrap();
    }
    w.finish().unwrap()
}

fn done(id: &str, i: usize, packets: u64) -> AgentMsg {
    AgentMsg::Done {
        outcome: Outcome {
            capture_id: id.to_owned(),
            ok: true,
            error: None,
            packets,
            bytes: packets * 1200,
            lost: 0,
            stop_reason: Some("time-limit".into()),
            file: Some(format!("{id}/edge{i}.pcapng")),
        },
    }
}

/// Two nodes, a capture with `merge: true` to `dest`; `put(key, bytes)` puts each node's
/// file where the node would have. The capture once it is over.
async fn capture_and_merge(
    h: &Harness,
    dest: &str,
    counts: [u64; 2],
    put: impl Fn(&str, &[u8]),
) -> Value {
    let nodes: Vec<FakeNode> = (0..2)
        .map(|i| h.node(&format!("edge{i}"), &[("site", "fra")], &["pre-firewall"]))
        .collect();
    let id = h
        .create("fra", json!({"destination_conf": dest, "merge": true}))
        .await;
    for (i, node) in nodes.iter().enumerate() {
        node.session.handle(AgentMsg::Ack {
            capture_id: id.clone(),
        });
        put(
            &format!("{id}/edge{i}.pcapng"),
            &node_file(i as u64, 2, counts[i]),
        );
    }
    nodes[0].session.handle(done(&id, 0, counts[0]));
    let c = h.capture(&id).await;
    assert_eq!(c["status"], "running", "one node is still capturing: {c:#}");
    nodes[1].session.handle(done(&id, 1, counts[1]));
    let c = h
        .wait_for(&id, Duration::from_secs(30), |c| {
            c["status"] != "running" && c["status"] != "conversion_running"
        })
        .await;
    drop(nodes);
    c
}

fn check_merged(file: &std::path::Path, counts: [u64; 2]) {
    let seen = tshark(file);
    assert_eq!(seen.len() as u64, counts[0] + counts[1], "{seen:?}");
    // Time order: seq 0, 1, 2, ... while both nodes have packets, then the longer one's.
    let mut expected: Vec<(String, u16)> = Vec::new();
    for (i, &c) in counts.iter().enumerate() {
        for k in 0..c {
            expected.push((
                format!("edge{i}/pre-firewall"),
                (10_000 + k * 2 + i as u64) as u16,
            ));
        }
    }
    expected.sort_by_key(|(_, port)| *port);
    assert_eq!(seen, expected);
}

async fn merged_files_land_beside_the_nodes_files_in_a_bucket(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let moto = Server::moto();
    moto_bucket(moto.port, "pcaps");
    let dest = format!(
        "s3://pcaps/edge?endpoint={}&region=us-east-1",
        moto.endpoint()
    );
    let creds = json!({"access_key_id": "AKIDMERGE", "secret_access_key": "merge-secret"});
    let (s, v) = h
        .call(
            "POST",
            &h.acc("pcaps/ownership"),
            Some(&json!({"destination_conf": dest, "credentials": creds}).to_string()),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let challenge = format!("edge/{}", v["result"]["filename"].as_str().unwrap());
    let token = String::from_utf8(moto_get(moto.port, "pcaps", &challenge)).unwrap();
    let body = json!({"destination_conf": dest, "ownership_challenge": token}).to_string();
    let (s, v) = h
        .call("POST", &h.acc("pcaps/ownership/validate"), Some(&body))
        .await;
    assert_eq!(s, 200, "{v}");
    let counts = [40, 25];
    let c = capture_and_merge(&h, &dest, counts, |key, bytes| {
        moto_put(moto.port, "pcaps", &format!("edge/{key}"), bytes)
    })
    .await;
    assert_eq!(c["status"], "success", "{c:#}");
    let id = c["id"].as_str().unwrap();
    assert_eq!(c["merge"], true);
    assert_eq!(c["merged_file"], format!("{id}/merged.pcapng"));
    let tmp = TempDir::new("merged");
    let file = tmp.0.join("merged.pcapng");
    std::fs::write(
        &file,
        moto_get(moto.port, "pcaps", &format!("edge/{id}/merged.pcapng")),
    )
    .unwrap();
    check_merged(&file, counts);
    let mut keys = vec![
        challenge,
        format!("edge/{id}/edge0.pcapng"),
        format!("edge/{id}/edge1.pcapng"),
        format!("edge/{id}/merged.pcapng"),
    ];
    keys.sort();
    assert_eq!(moto_keys(moto.port, "pcaps"), keys);
}

async fn merged_files_land_in_a_directory_too(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let counts = [3, 7];
    let dir = h.dest.clone();
    let c = capture_and_merge(&h, &h.file_dest(), counts, |key, bytes| {
        let path = dir.join(key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    })
    .await;
    assert_eq!(c["status"], "success", "{c:#}");
    let id = c["id"].as_str().unwrap();
    check_merged(&h.dest.join(id).join("merged.pcapng"), counts);
    // The whole file and nothing staged beside it.
    let mut names: Vec<String> = std::fs::read_dir(h.dest.join(id))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["edge0.pcapng", "edge1.pcapng", "merged.pcapng"]);
}

async fn a_failed_merge_fails_the_capture_and_says_why(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let dir = h.dest.clone();
    // Node 1's "file" is not a capture file.
    let c = capture_and_merge(&h, &h.file_dest(), [3, 3], |key, bytes| {
        let path = dir.join(key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let body = if key.ends_with("edge1.pcapng") {
            b"not a capture".as_slice()
        } else {
            bytes
        };
        std::fs::write(path, body).unwrap();
    })
    .await;
    assert_eq!(c["status"], "failed", "{c:#}");
    let msg = c["error_message"].as_str().unwrap();
    assert!(
        msg.starts_with("merge failed: edge1's file file://"),
        "{msg}"
    );
    assert!(msg.contains("not a pcap or pcapng file"), "{msg}");
    assert!(msg.contains("every node's own file is complete"), "{msg}");
    assert!(c["merged_file"].is_null(), "{c:#}");
    let id = c["id"].as_str().unwrap();
    assert!(!h.dest.join(id).join("merged.pcapng").exists());
    // The nodes' own results are untouched.
    for r in c["node_results"].as_array().unwrap() {
        assert_eq!(r["status"], "success", "{r}");
    }
}
