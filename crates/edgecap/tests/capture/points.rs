//! Capture points through a real pipeline: each lab edge has a mitigation table (prerouting,
//! mangle) that rate-limits a UDP flood and a firewall (input/forward, filter) that drops some
//! ports. Each point must see exactly what survives up to it.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use edgecap_lab::packet::Packet;
use edgecap_lab::{Lab, pipeline};

use crate::common::*;

/// Packets counted by the first `counter ... drop` rule of a lab pipeline table.
fn dropped_by(lab: &Lab, table: &str) -> u64 {
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            lab.edge_ns(0),
            "nft",
            "list",
            "table",
            "inet",
            table,
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .filter_map(|l| l.split("counter packets ").nth(1))
        .filter_map(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// Every pipeline point of [`POINTS`] on edge 0 as node `lab-edge0`, for traffic from the
/// source (plus `extra` options), into `multi.pcapng` in `scratch`.
pub fn start_at_every_point(lab: &Lab, scratch: &Scratch, extra: &[&str]) -> (Running, PathBuf) {
    let config = scratch.path("agent.toml");
    std::fs::write(&config, pipeline::AGENT_CONFIG).unwrap();
    let out = scratch.path("multi.pcapng");
    let src = lab.src_addr(0, false).to_string();
    let points = POINTS.join(",");
    let mut args = vec![
        "--config",
        config.to_str().unwrap(),
        "--node",
        "lab-edge0",
        "--point",
        &points,
        "--src",
        &src,
        "-w",
        out.to_str().unwrap(),
    ];
    args.extend(extra);
    (start(lab.edge_ns(0), &args), out)
}

/// The points of a lab edge node, in pipeline order.
pub const POINTS: [&str; 4] = ["pre-firewall", "post-mitigation", "post-firewall", "egress"];

#[test]
fn each_point_sees_what_survives_up_to_it() {
    if !root_or_skip() {
        return;
    }
    let lab = lab();
    let scratch = Scratch::new("points");
    let (run, out) = start_at_every_point(&lab, &scratch, &[]);
    // Normal traffic (markers 1-30), traffic the firewall drops (101-120), a flood (1001-1500).
    lab.send(0, &udp_packets(&lab, 1..=30, 53, None)).unwrap();
    lab.send(
        0,
        &udp_packets(&lab, 101..=120, pipeline::FIREWALL_UDP_PORT, None),
    )
    .unwrap();
    lab.send(
        0,
        &udp_packets(&lab, 1001..=1500, pipeline::FLOOD_PORT, None),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let done = run.interrupt();
    assert!(done.status.success(), "{}", done.stderr);
    assert_eq!(done.summary()["lost"], 0);

    let at = |p: &str| markers_at(&out, &format!("lab-edge0/{p}"));
    let normal: Vec<u32> = (1..=30).collect();
    let firewalled: Vec<u32> = (101..=120).collect();
    let flood: Vec<u32> = (1001..=1500).collect();

    // Before the firewall: everything.
    let pre = at("pre-firewall");
    assert_eq!(
        pre,
        [normal.clone(), firewalled.clone(), flood.clone()].concat()
    );

    // After the mitigation: the flood is limited, nothing else is touched.
    let post_mit = at("post-mitigation");
    let flood_passed: Vec<u32> = post_mit.iter().copied().filter(|m| *m > 1000).collect();
    assert_eq!(
        post_mit,
        [normal.clone(), firewalled.clone(), flood_passed.clone()].concat()
    );
    assert!(
        (pipeline::FLOOD_BURST as usize..250).contains(&flood_passed.len()),
        "the mitigation let {} of 500 flood packets through",
        flood_passed.len()
    );
    // Exactly what the mitigation's counter says it dropped is missing.
    assert_eq!(
        dropped_by(&lab, "lab_mitigation"),
        500 - flood_passed.len() as u64
    );

    // After the firewall: the dropped port is gone too.
    let post_fw = at("post-firewall");
    assert_eq!(post_fw, [normal.clone(), flood_passed.clone()].concat());
    assert_eq!(dropped_by(&lab, "lab_firewall"), 20);

    // Leaving toward the origin: the same as after the firewall, marked outbound.
    assert_eq!(at("egress"), post_fw);
    let dirs = tshark_fields(
        &out,
        &["frame.interface_name", "frame.packet_flags_direction"],
    );
    for r in &dirs {
        let dir = u32::from_str_radix(r[1].trim_start_matches("0x"), 16).unwrap();
        let want = if r[0].ends_with("/egress") { 2 } else { 1 };
        assert_eq!(dir, want, "{r:?}");
    }

    // The summary reports every point.
    let s = done.summary();
    let points: Vec<(String, u64)> = s["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["point"].as_str().unwrap().to_owned(),
                p["packets"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        points,
        [
            ("pre-firewall".to_owned(), pre.len() as u64),
            ("post-mitigation".to_owned(), post_mit.len() as u64),
            ("post-firewall".to_owned(), post_fw.len() as u64),
            ("egress".to_owned(), post_fw.len() as u64),
        ]
    );
}

#[test]
fn ingress_sees_everything_on_its_device_only() {
    if !root_or_skip() {
        return;
    }
    let lab = lab();
    let scratch = Scratch::new("ingress");
    let config = scratch.path("agent.toml");
    // Only the device facing the source: reverse traffic from the origin must not appear.
    std::fs::write(
        &config,
        "[points.ingress]\nhook = \"ingress\"\ndevices = [\"from-src\"]\n",
    )
    .unwrap();
    let out = scratch.path("in.pcapng");
    let run = start(
        lab.edge_ns(0),
        &[
            "--config",
            config.to_str().unwrap(),
            "--point",
            "ingress",
            "--proto",
            "udp",
            "--node",
            "n",
            "-w",
            out.to_str().unwrap(),
        ],
    );
    lab.send(
        0,
        &udp_packets(&lab, 1..=10, pipeline::FIREWALL_UDP_PORT, None),
    )
    .unwrap();
    lab.send(0, &udp_packets(&lab, 11..=210, pipeline::FLOOD_PORT, None))
        .unwrap();
    let back: Vec<Vec<u8>> = (501..=505)
        .map(|i| {
            Packet::udp(lab.origin_addr(0, false), lab.src_addr(0, false), 53, 40000)
                .marker(i)
                .build()
                .unwrap()
        })
        .collect();
    lab.send_from(edgecap_lab::Direction::Reverse, 0, &back)
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let done = run.interrupt();
    assert!(done.status.success(), "{}", done.stderr);
    assert_eq!(markers_at(&out, "n/ingress"), (1..=210).collect::<Vec<_>>());
}

#[test]
fn points_that_do_not_exist_here_are_refused_with_nothing_installed() {
    if !root_or_skip() {
        return;
    }
    let lab = lab();
    let scratch = Scratch::new("badpoints");
    let bad_dev = scratch.path("bad-dev.toml");
    std::fs::write(
        &bad_dev,
        "[points.ingress]\nhook = \"ingress\"\ndevices = [\"eth99\"]\n",
    )
    .unwrap();
    let bad_key = scratch.path("bad-key.toml");
    std::fs::write(
        &bad_key,
        "[points.after-nat]\nhook = \"postrouting\"\nprio = 5\n",
    )
    .unwrap();
    let out = scratch.path("x.pcapng");
    let o = out.to_str().unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--point", "post-mitigation", "-w", o],
            "not configured on this node",
        ),
        (
            vec!["--point", "after-lunch", "-w", o],
            "unknown capture point \"after-lunch\"",
        ),
        (vec!["--point", "egress,egress", "-w", o], "listed twice"),
        (
            vec![
                "--config",
                bad_dev.to_str().unwrap(),
                "--point",
                "ingress",
                "-w",
                o,
            ],
            "eth99",
        ),
        (vec!["--config", bad_key.to_str().unwrap(), "-w", o], "prio"),
        (
            vec!["--config", "/nonexistent/agent.toml", "-w", o],
            "does not exist",
        ),
    ];
    for (args, reason) in cases {
        let mut full = vec!["capture"];
        full.extend(&args);
        let r = edgecap_in(lab.edge_ns(0), &full).output().unwrap();
        let err = String::from_utf8_lossy(&r.stderr);
        assert_eq!(r.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(reason), "{args:?}: {err}");
        assert!(edgecap_tables(lab.edge_ns(0)).is_empty(), "{args:?}");
        assert!(!out.exists(), "{args:?}");
    }
}

/// Nanoseconds since the epoch from tshark's `frame.time_epoch` ("1700000000.123456789").
fn epoch_ns(s: &str) -> u64 {
    let (sec, frac) = s.split_once('.').unwrap_or((s, "0"));
    let frac = format!("{frac:0<9}");
    sec.parse::<u64>().unwrap() * 1_000_000_000 + frac[..9].parse::<u64>().unwrap()
}

/// The bound, stated in docs/filters.md and the file, between a packet's time at a point
/// without kernel times (egress, ingress) and its time at pre-firewall.
const ESTIMATE_BOUND_NS: u64 = 20_000_000;

#[test]
fn every_packet_has_its_own_time_in_pipeline_order_and_tcpdump_reads_the_file() {
    if !root_or_skip() {
        return;
    }
    let lab = lab();
    let scratch = Scratch::new("times");
    let config = scratch.path("agent.toml");
    std::fs::write(
        &config,
        format!(
            "{}[points.ingress]\nhook = \"ingress\"\ndevices = [\"from-src\"]\n",
            pipeline::AGENT_CONFIG
        ),
    )
    .unwrap();
    let out = scratch.path("times.pcapng");
    let src = lab.src_addr(0, false).to_string();
    let run = start(
        lab.edge_ns(0),
        &[
            "--config",
            config.to_str().unwrap(),
            "--node",
            "e0",
            "--point",
            "ingress,pre-firewall,post-firewall,egress",
            "--src",
            &src,
            "--proto",
            "udp",
            "-w",
            out.to_str().unwrap(),
        ],
    );
    // Several kernel batches: bursts of 50 with pauses longer than the 10 ms flush timeout.
    for burst in 0..4u32 {
        let first = burst * 50 + 1;
        lab.send(0, &udp_packets(&lab, first..=first + 49, 53, None))
            .unwrap();
        std::thread::sleep(Duration::from_millis(30));
    }
    std::thread::sleep(Duration::from_millis(200));
    let done = run.interrupt();
    assert!(done.status.success(), "{}", done.stderr);
    assert_eq!(done.summary()["lost"], 0);

    // tcpdump (libpcap) opens the four-interface file and shows every packet.
    let t = Command::new("tcpdump")
        .args(["-n", "-r"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        t.status.success(),
        "tcpdump: {}",
        String::from_utf8_lossy(&t.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&t.stdout).lines().count(), 4 * 200);

    // Each interface says how its times were taken.
    let descr = tshark_fields(
        &out,
        &["frame.interface_name", "frame.interface_description"],
    );
    for r in &descr {
        let estimated = r[1].contains("timestamps: estimated by edgecap");
        let kernel = r[1].contains("timestamps: the kernel's");
        let want_estimated = r[0].ends_with("/egress") || r[0].ends_with("/ingress");
        assert!(
            estimated == want_estimated && kernel != want_estimated,
            "{r:?}"
        );
    }

    // Per marker and point, the time tshark reads.
    let rows = tshark_fields(
        &out,
        &["frame.interface_name", "frame.time_epoch", "udp.payload"],
    );
    let points = [
        "e0/ingress",
        "e0/pre-firewall",
        "e0/post-firewall",
        "e0/egress",
    ];
    let mut times = std::collections::BTreeMap::<u32, [Option<u64>; 4]>::new();
    for r in &rows {
        let bytes: Vec<u8> = (0..r[2].len() / 2)
            .map(|i| u8::from_str_radix(&r[2][2 * i..2 * i + 2], 16).unwrap())
            .collect();
        let marker = edgecap_lab::packet::find_marker(&bytes).expect("a marker");
        let at = points
            .iter()
            .position(|p| *p == r[0])
            .expect("a known point");
        let slot = &mut times.entry(marker).or_default()[at];
        assert!(slot.is_none(), "marker {marker} twice at {}", r[0]);
        *slot = Some(epoch_ns(&r[1]));
    }
    assert_eq!(times.len(), 200);
    let mut last_egress = 0;
    for (marker, t) in &times {
        let t: Vec<u64> = t.iter().map(|t| t.expect("seen at every point")).collect();
        // Along the pipeline: ingress, pre-firewall, post-firewall, egress.
        assert!(
            t.windows(2).all(|w| w[0] <= w[1]),
            "marker {marker}: times out of pipeline order {t:?}"
        );
        assert!(
            t[3] - t[1] <= ESTIMATE_BOUND_NS && t[1] - t[0] <= ESTIMATE_BOUND_NS,
            "marker {marker}: {t:?} further apart than {ESTIMATE_BOUND_NS} ns"
        );
        // Every egress packet has a time of its own, in the order they were sent.
        assert!(
            t[3] > last_egress,
            "marker {marker}: egress time not its own"
        );
        last_egress = t[3];
    }
}
