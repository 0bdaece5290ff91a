//! Look-back (`type: simple`) captures with a real agent's ring: the file holds only the
//! packets sent in the window that match the filter, each at most 160 bytes with its true
//! length, and opens in tshark. The server keeps that file sealed: neither the packets'
//! leading markers (inside the 160 bytes) nor the markers past byte 160 are anywhere in its
//! data directory in the clear.

use std::process::Command;
use std::time::Duration;

use edgecap_lab::packet::{Packet, find_marker, marker};
use serde_json::{Value, json};

use crate::capture_common::{root_or_skip, wait_for};
use crate::harness::{Fleet, PORT, ServerOpts};

/// Written 200 bytes into the payload: past the 160 bytes a ring keeps.
const DEEP: &[u8] = b"DEEP-LOOKBACK-MARK";

fn observing(ns: &str) -> bool {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "nft", "list", "tables"])
        .output()
        .expect("nft list tables");
    String::from_utf8_lossy(&out.stdout).contains("table inet edgecap_observer")
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn count(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).filter(|w| *w == needle).count()
}

/// Markers `first..first+n` to PORT (matching) and as many to PORT+1 (not), 1,000 bytes
/// each, with the deep marker past byte 160.
fn send(fleet: &Fleet, first: u32, n: u32) {
    let lab = &fleet.lab;
    let mk = |m: u32, port: u16| {
        let mut payload = marker(m);
        payload.resize(200, 0);
        payload.extend_from_slice(DEEP);
        Packet::udp(
            lab.src_addr(0, false),
            lab.origin_addr(0, false),
            40000,
            port,
        )
        .payload(payload)
        .total_len(1000)
        .build()
        .unwrap()
    };
    let mut packets = Vec::new();
    for m in first..first + n {
        packets.push(mk(m, PORT));
        packets.push(mk(m + 10_000, PORT + 1));
    }
    lab.send(0, &packets).expect("send");
}

fn download(fleet: &Fleet, id: &str, accept: &str) -> Vec<u8> {
    let url = format!(
        "{}/client/v4/accounts/{}/pcaps/{id}/download",
        fleet.url, fleet.account
    );
    let resp = reqwest::blocking::Client::new()
        .get(url)
        .bearer_auth(&fleet.token)
        .header("accept", accept)
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    resp.bytes().unwrap().to_vec()
}

#[test]
fn a_simple_capture_holds_the_window_s_matching_packets_and_the_server_keeps_them_sealed() {
    if !root_or_skip() {
        return;
    }
    let dir = crate::capture_common::Scratch::new("lookback-simple");
    let config = dir.path("agent.toml");
    std::fs::write(&config, "[observer]\nsample_one_in = 1\n").unwrap();
    let opts = ServerOpts {
        agent_args: vec!["--config".into(), config.display().to_string()],
        ..ServerOpts::default()
    };
    let mut fleet = Fleet::new(1, opts);
    let ns = fleet.lab.edge_ns(0).to_owned();
    assert!(
        wait_for(Duration::from_secs(10), || observing(&ns)),
        "no observer\n{}",
        fleet.logs()
    );
    std::thread::sleep(Duration::from_millis(300));
    // Markers 1-20 inside the window, 21-40 after it.
    send(&fleet, 1, 20);
    std::thread::sleep(Duration::from_millis(500));
    let offset = now();
    std::thread::sleep(Duration::from_millis(500));
    send(&fleet, 21, 20);
    std::thread::sleep(Duration::from_millis(300));

    let (s, v) = fleet.api(
        reqwest::Method::POST,
        "pcaps",
        Some(json!({
            "type": "simple", "system": "magic-transit", "time_limit": 2, "packet_limit": 1000,
            "offset_time": edgecap_model::ids::rfc3339(offset),
            "filter_v1": {"protocol": 17, "destination_port": PORT},
        })),
    );
    assert_eq!(s, 200, "{v:#}\n{}", fleet.logs());
    let c: &Value = &v["result"];
    assert_eq!(c["status"], "success", "{c:#}");
    assert_eq!(c["packets_captured"], 20, "{c:#}");
    let id = c["id"].as_str().unwrap().to_owned();

    // Both files open in tshark and hold markers 1-20 only, headers only, true lengths.
    for (accept, ext) in [
        ("application/vnd.tcpdump.pcap", "pcap"),
        ("application/x-pcapng", "pcapng"),
    ] {
        let path = dir.path(&format!("lookback.{ext}"));
        std::fs::write(&path, download(&fleet, &id, accept)).unwrap();
        let packets = edgecap_testkit::readers::tshark_packets(&path);
        let markers: Vec<u32> = packets
            .iter()
            .map(|p| {
                assert_eq!((p.cap_len, p.orig_len), (160, 1000), "{ext}");
                assert_eq!(count(&p.data, DEEP), 0, "bytes past 160 in {ext}");
                find_marker(&p.data).unwrap()
            })
            .collect();
        assert_eq!(markers, (1..=20).collect::<Vec<_>>(), "{ext}");
    }

    // The server's data directory: neither marker in the clear (the file is sealed).
    assert!(fleet.server.terminate(Duration::from_secs(10)).is_some());
    let mut all = Vec::new();
    let mut stack = vec![fleet.data.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                all.extend(std::fs::read(&p).unwrap());
            }
        }
    }
    assert!(
        count(&all, id.as_bytes()) > 0,
        "the search sees the database"
    );
    assert_eq!(count(&all, edgecap_lab::packet::MARKER_PREFIX), 0);
    assert_eq!(count(&all, DEEP), 0);
    let log = std::fs::read(&fleet.server.log).unwrap();
    assert_eq!(count(&log, edgecap_lab::packet::MARKER_PREFIX), 0);
}
