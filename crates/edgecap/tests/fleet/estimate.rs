//! Size estimates (`edgecap capture --estimate`, `POST /pcaps/estimate`) from a real agent's
//! look-back ring, checked against a real capture of the same filter under the same traffic.

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use edgecap_lab::packet::Packet;
use serde_json::{Value, json};

use crate::capture_common::{root_or_skip, wait_for};
use crate::harness::{Fleet, PORT, ServerOpts, edgecap};

fn observing(ns: &str) -> bool {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "nft", "list", "tables"])
        .output()
        .expect("nft list tables");
    String::from_utf8_lossy(&out.stdout).contains("table inet edgecap_observer")
}

/// Matching packets per round (UDP to PORT, 600 bytes) among the others (UDP to two other
/// ports, 200 bytes): 20 of 400, 5 %.
const MATCHING: u32 = 20;
const OTHERS: u32 = 380;
const ROUND: Duration = Duration::from_millis(100);

fn round(fleet: &Fleet, n: u32) -> Vec<Vec<u8>> {
    let lab = &fleet.lab;
    let mk = |port: u16, len: usize, marker: u32| {
        Packet::udp(
            lab.src_addr(0, false),
            lab.origin_addr(0, false),
            40000,
            port,
        )
        .marker(marker)
        .total_len(len)
        .build()
        .unwrap()
    };
    let mut packets = Vec::new();
    for i in 0..MATCHING + OTHERS {
        let marker = n * 1000 + i;
        packets.push(if i % 20 == 0 {
            mk(PORT, 600, marker)
        } else {
            mk(PORT + 1 + (i % 2) as u16, 200, marker)
        });
    }
    packets
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn an_estimate_is_within_a_quarter_of_the_capture_it_foresees() {
    if !root_or_skip() {
        return;
    }
    let dir = crate::capture_common::Scratch::new("estimate");
    let config = dir.path("agent.toml");
    std::fs::write(&config, "[observer]\nsample_one_in = 4\n").unwrap();
    let opts = ServerOpts {
        agent_args: vec!["--config".into(), config.display().to_string()],
        server_args: vec!["--estimate-window".into(), "5s".into()],
        ..ServerOpts::default()
    };
    let fleet = Fleet::new(1, opts);
    let ns = fleet.lab.edge_ns(0).to_owned();
    assert!(
        wait_for(Duration::from_secs(10), || observing(&ns)),
        "no observer\n{}",
        fleet.logs()
    );
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        // Steady traffic, 4,000 packets/s, for at most 40 s.
        let sender = s.spawn(|| {
            let start = Instant::now();
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) && start.elapsed() < Duration::from_secs(40) {
                fleet.lab.send(0, &round(&fleet, n)).expect("send");
                n += 1;
                let next = start + ROUND * n;
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
            }
            n
        });
        // A full estimate window of traffic first.
        std::thread::sleep(Duration::from_secs(6));
        let out = edgecap(&[
            "capture",
            "--server",
            &fleet.url,
            "--token",
            &fleet.token,
            "--nodes",
            "site=lab",
            "--filter",
            &format!("udp dst port {PORT}"),
            "--time",
            "5s",
            "--estimate",
            "--json",
        ]);
        let est: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
        assert_eq!(est["nodes"][0]["status"], "answered", "{est:#}");
        let total = &est["total"];
        assert_eq!(total["ends_by"], "time_limit", "{est:#}");
        // 200 matching packets/s, sampled 1 in 4, over 5 s: about 250 samples.
        assert!(f(&total["matched_samples"]) > 100.0, "{est:#}");
        assert_eq!(est["nodes"][0]["sampling"][0]["one_in"], 4, "{est:#}");

        // The capture it foresees, under the same traffic.
        let id = fleet.create(json!({"time_limit": 5}));
        let c = fleet.wait(&id, Duration::from_secs(30), |c| {
            c["status"] == "success" || c["status"] == "failed"
        });
        stop.store(true, Ordering::Relaxed);
        let rounds = sender.join().unwrap();
        assert_eq!(c["status"], "success", "{c:#}\n{}", fleet.logs());
        let file = std::fs::metadata(fleet.file(&id, 0)).unwrap().len() as f64;
        let packets = f(&c["packets_captured"]);
        assert!(packets > 0.0, "{c:#}");
        let within = |what: &str, est: f64, real: f64| {
            eprintln!("{what}: estimated {est:.0}, captured {real:.0}");
            let off = (est - real).abs() / real;
            assert!(
                off <= 0.25,
                "{what}: estimated {est:.0}, really {real:.0} ({:.0} % off); {rounds} rounds\n{}",
                off * 100.0,
                serde_json::to_string_pretty(&total).unwrap()
            );
        };
        within("packets", f(&total["packets"]["expected"]), packets);
        within("file bytes", f(&total["file_bytes"]["expected"]), file);
        // The range holds what was captured.
        assert!(f(&total["packets"]["low"]) <= packets * 1.25, "{total:#}");
        assert!(f(&total["packets"]["high"]) >= packets * 0.75, "{total:#}");
    });
}
