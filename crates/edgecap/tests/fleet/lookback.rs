//! Look-back (`type: simple`) captures with a real agent's ring: the file holds only the
//! packets sent in the window that match the filter, each at most 160 bytes with its true
//! length, and opens in tshark. The server keeps that file sealed: neither the packets'
//! leading markers (inside the 160 bytes) nor the markers past byte 160 are anywhere in its
//! data directory in the clear.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use edgecap_lab::packet::{Packet, find_marker, marker};
use serde_json::{Value, json};

use crate::capture_common::{BIN, Scratch, root_or_skip, wait_for};
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

    // The same window through the CLI (the account's rate raised from Cloudflare's one simple
    // request per minute): `-w FILE`, `-w - | tshark -r -`, and `edgecap download`.
    cli_look_back(&fleet, &dir, offset);

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

/// `edgecap <args>` against the fleet's server as its account, none of the user's settings.
fn cli(fleet: &Fleet, dir: &Scratch, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    for k in [
        "EDGECAP_SERVER",
        "EDGECAP_TOKEN",
        "EDGECAP_ACCOUNT",
        "EDGECAP_CA",
    ] {
        cmd.env_remove(k);
    }
    cmd.env("XDG_CONFIG_HOME", dir.path("xdg"))
        .args(args)
        .args(["--server", &fleet.url, "--token", &fleet.token])
        .args(["--account", &fleet.account]);
    cmd
}

fn ok(out: &Output, what: &str) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{what}: {}: {err}", out.status);
    err
}

/// Markers of a file as tshark reads it: each 160 bytes of 1,000, none past byte 160.
fn file_markers(path: &std::path::Path) -> Vec<u32> {
    edgecap_testkit::readers::tshark_packets(path)
        .iter()
        .map(|p| {
            assert_eq!((p.cap_len, p.orig_len), (160, 1000), "{}", path.display());
            assert_eq!(count(&p.data, DEEP), 0, "bytes past 160");
            find_marker(&p.data).unwrap()
        })
        .collect()
}

fn cli_look_back(fleet: &Fleet, dir: &Scratch, offset: f64) {
    let shown = fleet.admin(&[
        "account",
        "quota",
        "set",
        &fleet.account,
        "--simple-per-minute",
        "10",
    ]);
    assert!(shown.contains("simple per minute"), "{shown}");
    let at = edgecap_model::ids::rfc3339(offset);
    let port = PORT.to_string();
    let window = [
        "capture",
        "--look-back",
        "2s",
        "--at",
        at.as_str(),
        "--proto",
        "udp",
        "--dport",
        port.as_str(),
    ];

    // -w FILE: the window's matching markers, the nodes that answered on stderr.
    let file = dir.path("cli.pcapng");
    let out = cli(fleet, dir, &window)
        .args(["--json", "-w", file.to_str().unwrap()])
        .output()
        .unwrap();
    let err = ok(&out, "capture --look-back -w FILE");
    let c: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(c["type"], "simple", "{c:#}");
    assert_eq!(c["status"], "success", "{c:#}");
    assert_eq!(c["packets_captured"], 20, "{c:#}");
    assert!(!err.contains("missing"), "{err}");
    assert_eq!(file_markers(&file), (1..=20).collect::<Vec<_>>());
    let id = c["id"].as_str().unwrap();
    let node = c["node_results"][0]["node"].as_str().unwrap();

    // -w - into tshark -r -: the nodes on stderr, the packets through the pipe.
    let mut child = cli(fleet, dir, &window)
        .args(["--format", "pcap", "-w", "-"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let tshark = Command::new("tshark")
        .args(["-n", "-r", "-", "-T", "fields", "-e", "frame.len"])
        .args(["-e", "frame.cap_len"])
        .stdin(Stdio::from(child.stdout.take().unwrap()))
        .output()
        .unwrap();
    let err = ok(
        &child.wait_with_output().unwrap(),
        "capture --look-back -w -",
    );
    assert!(
        err.contains("20 packets from 1 of 1 nodes") && err.contains(&format!("answered: {node}")),
        "{err}"
    );
    assert!(tshark.status.success(), "{tshark:?}");
    let lines = String::from_utf8(tshark.stdout).unwrap();
    assert_eq!(lines.lines().collect::<Vec<_>>(), vec!["1000\t160"; 20]);

    // edgecap download: the first capture's file again, as classic pcap.
    let again = dir.path("again.pcap");
    let out = cli(fleet, dir, &["download", id, "--format", "pcap"])
        .args(["-w", again.to_str().unwrap()])
        .output()
        .unwrap();
    ok(&out, "download");
    // Classic pcap (micro- or nanosecond magic), not pcapng's section header.
    let magic = std::fs::read(&again).unwrap()[..4].to_vec();
    assert!(
        [[0xd4, 0xc3, 0xb2, 0xa1], [0x4d, 0x3c, 0xb2, 0xa1]]
            .contains(&magic[..].try_into().unwrap()),
        "{magic:x?}"
    );
    assert_eq!(file_markers(&again), (1..=20).collect::<Vec<_>>());

    // The server's refusals name the flag typed (exit 2), and leave no file.
    let refused = dir.path("refused.pcapng");
    for (flags, named) in [
        (&["--look-back", "10m"][..], "--look-back (time_limit): "),
        (
            &["--look-back", "1m", "--at", "2099-01-01T00:00:00Z"][..],
            "--at (offset_time): ",
        ),
    ] {
        let out = cli(fleet, dir, &[&["capture"], flags].concat())
            .args(["-w", refused.to_str().unwrap()])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {err}");
        assert!(err.contains(named), "{flags:?}: {err}");
        assert!(!refused.exists(), "{flags:?}");
    }

    // A full capture's download is refused (exit 2) saying where its files are; no file.
    let full = fleet.create(json!({"time_limit": 1}));
    let none = dir.path("full.pcapng");
    let out = cli(
        fleet,
        dir,
        &["download", &full, "-w", none.to_str().unwrap()],
    )
    .output()
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("full capture whose files are in its destination_conf"),
        "{err}"
    );
    assert!(!none.exists());
}

#[test]
fn the_cli_names_a_node_killed_before_a_look_back_as_missing_and_writes_the_others_file() {
    if !root_or_skip() {
        return;
    }
    let dir = crate::capture_common::Scratch::new("lookback-missing");
    let config = dir.path("agent.toml");
    std::fs::write(&config, "[observer]\nsample_one_in = 1\n").unwrap();
    let opts = ServerOpts {
        agent_args: vec!["--config".into(), config.display().to_string()],
        ..ServerOpts::default()
    };
    let mut fleet = Fleet::new(2, opts);
    for i in 0..2 {
        let ns = fleet.lab.edge_ns(i).to_owned();
        assert!(
            wait_for(Duration::from_secs(10), || observing(&ns)),
            "no observer on edge {i}\n{}",
            fleet.logs()
        );
    }
    std::thread::sleep(Duration::from_millis(300));
    send(&fleet, 1, 5);
    std::thread::sleep(Duration::from_millis(300));
    fleet.agents[1].kill();
    assert!(
        wait_for(Duration::from_secs(10), || fleet
            .nodes()
            .iter()
            .any(|n| n["name"] == "edge1" && n["connected"] == false)),
        "edge1 still connected\n{}",
        fleet.logs()
    );

    let file = dir.path("partial.pcapng");
    let port = PORT.to_string();
    let out = cli(&fleet, &dir, &["capture", "--look-back", "30s"])
        .args(["--proto", "udp", "--dport", &port])
        .args(["-w", file.to_str().unwrap()])
        .output()
        .unwrap();
    let err = ok(&out, "capture --look-back with a node down");
    assert!(
        err.contains("5 packets from 1 of 2 nodes") && err.contains("answered: edge0 (5 packets)"),
        "{err}"
    );
    assert!(err.contains("missing: edge1 ("), "{err}");
    assert_eq!(file_markers(&file), (1..=5).collect::<Vec<_>>());
}
