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
