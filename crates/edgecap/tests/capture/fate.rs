//! `edgecap fate` and `edgecap diff` on captures taken through the lab's real pipeline: a
//! multi-point edgecap capture on the edge node, and captures of the same traffic at the origin
//! written by tcpdump (pcap, Ethernet) and by Wireshark's dumpcap (pcapng). The expected numbers
//! come from what each tool wrote (read back with tshark) and from the pipeline's own drop
//! counters, never from constants.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use edgecap_lab::{Lab, pipeline};

use crate::common::*;
use crate::points::{POINTS, start_at_every_point};

/// Markers of the three flows: passes everything, dropped by the firewall, a flood the
/// mitigation rate-limits.
const NORMAL: std::ops::RangeInclusive<u32> = 1..=30;
const FIREWALLED: std::ops::RangeInclusive<u32> = 101..=120;
const FLOOD: std::ops::RangeInclusive<u32> = 1001..=1400;

fn send_traffic(lab: &Lab) {
    lab.send(0, &udp_packets(lab, NORMAL, 53, None)).unwrap();
    lab.send(
        0,
        &udp_packets(lab, FIREWALLED, pipeline::FIREWALL_UDP_PORT, None),
    )
    .unwrap();
    lab.send(0, &udp_packets(lab, FLOOD, pipeline::FLOOD_PORT, None))
        .unwrap();
}

/// `edgecap fate|diff ... --json --top 0`, parsed.
fn report(args: &[&str]) -> serde_json::Value {
    let mut full: Vec<&str> = args.to_vec();
    full.extend(["--json", "--top", "0"]);
    let out = Command::new(BIN).args(&full).output().unwrap();
    assert!(
        out.status.success(),
        "edgecap {full:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The flow of a report whose name mentions `:<dport>`.
fn flow(flows: &serde_json::Value, dport: u16) -> &serde_json::Value {
    flows
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"].as_str().unwrap().ends_with(&format!(":{dport}")))
        .unwrap_or_else(|| panic!("no flow to port {dport} in {flows}"))
}

/// A packet capture by another tool at the origin's interface, UDP to the test ports only.
/// True once process `pid`'s packet socket in namespace `ns` carries a BPF filter of more
/// than one instruction (libpcap's own reject-all filter, used while it drains the socket, has
/// one), as `ss -0 -b -p` shows it.
fn filter_installed(ns: &str, pid: u32) -> bool {
    let Ok(out) = Command::new("ip")
        .args(["netns", "exec", ns, "ss", "-0", "-b", "-p", "-n"])
        .output()
    else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let owner = format!("pid={pid},");
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if !line.contains(&owner) {
            continue;
        }
        let Some(next) = lines.next() else {
            return false;
        };
        let instructions = next
            .trim()
            .strip_prefix("bpf filter (")
            .and_then(|rest| rest.split(')').next())
            .and_then(|n| n.parse::<u32>().ok());
        if instructions.is_some_and(|n| n > 1) {
            return true;
        }
    }
    false
}

struct OriginCapture {
    child: Child,
}

impl OriginCapture {
    /// `tool` is "tcpdump" (classic pcap) or "dumpcap" (Wireshark's capture engine, pcapng).
    fn start(lab: &Lab, tool: &str, file: &Path) -> Self {
        let iface = lab.origin_if(0);
        let filter = format!(
            "udp and (dst port 53 or dst port {} or dst port {})",
            pipeline::FIREWALL_UDP_PORT,
            pipeline::FLOOD_PORT
        );
        let mut args = vec![
            "netns".to_owned(),
            "exec".into(),
            lab.origin_ns().into(),
            tool.into(),
            "-i".into(),
            iface,
            "-w".into(),
            file.to_str().unwrap().into(),
        ];
        if tool == "tcpdump" {
            args.extend([
                "-Z".into(),
                "root".into(),
                "-U".into(),
                "--immediate-mode".into(),
            ]);
            args.push(filter);
        } else {
            args.extend(["-q".into(), "-f".into(), filter]);
        }
        let mut child = Command::new("ip")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // tcpdump says "listening on", dumpcap "Capturing on", once packets are being captured.
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("listening on") || line.contains("Capturing on") {
                    let _ = tx.send(());
                }
            }
        });
        assert!(
            rx.recv_timeout(Duration::from_secs(20)).is_ok(),
            "{tool} did not start capturing"
        );
        // libpcap may install the capture filter after the tool says it is capturing, and
        // drops what its socket queued before (it drains the socket under a reject-all
        // filter): wait until the socket carries the real filter.
        let pid = child.id();
        assert!(
            wait_for(Duration::from_secs(20), || filter_installed(
                lab.origin_ns(),
                pid
            )),
            "{tool} (pid {pid}) never had its capture filter on its socket"
        );
        OriginCapture { child }
    }

    fn stop(mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-INT", &pid]).status();
        let _ = self.child.wait();
    }
}

impl Drop for OriginCapture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn fate_reports_where_each_flow_stopped_along_the_pipeline() {
    if !root_or_skip() {
        return;
    }
    let lab = lab();
    let scratch = Scratch::new("fate");
    let (run, file) = start_at_every_point(&lab, &scratch, &["--proto", "udp"]);
    send_traffic(&lab);
    std::thread::sleep(Duration::from_millis(300));
    let done = run.interrupt();
    assert!(done.status.success(), "{}", done.stderr);

    let at = |p: &str| markers_at(&file, &format!("lab-edge0/{p}"));
    let flood_passed = at("post-mitigation")
        .iter()
        .filter(|m| FLOOD.contains(m))
        .count() as u64;
    assert!(flood_passed > 0 && flood_passed < FLOOD.count() as u64);

    let r = report(&["fate", file.to_str().unwrap()]);
    let node = &r["nodes"][0];
    assert_eq!(node["node"], "lab-edge0");
    assert_eq!(node["points"], serde_json::json!(POINTS));
    let per_point: Vec<u64> = POINTS.iter().map(|p| at(p).len() as u64).collect();
    assert_eq!(node["packets"], serde_json::json!(per_point));

    let normal = NORMAL.count() as u64;
    let fw = FIREWALLED.count() as u64;
    let flood = FLOOD.count() as u64;
    let f = flow(&node["flows"], 53);
    assert_eq!(
        f["packets"],
        serde_json::json!([normal, normal, normal, normal])
    );
    assert!(f["lost"].as_array().unwrap().is_empty(), "{f}");

    let f = flow(&node["flows"], pipeline::FIREWALL_UDP_PORT);
    assert_eq!(f["packets"], serde_json::json!([fw, fw, 0, 0]));
    assert_eq!(f["lost"][0]["after"], "post-mitigation");
    assert_eq!(f["lost"][0]["before"], "post-firewall");
    assert_eq!(f["lost"][0]["packets"], fw);
    assert!(
        f["verdict"]
            .as_str()
            .unwrap()
            .contains("dropped between them"),
        "{f}"
    );

    let f = flow(&node["flows"], pipeline::FLOOD_PORT);
    assert_eq!(
        f["packets"],
        serde_json::json!([flood, flood_passed, flood_passed, flood_passed])
    );
    assert_eq!(f["lost"][0]["after"], "pre-firewall");
    assert_eq!(f["lost"][0]["before"], "post-mitigation");
    assert_eq!(f["lost"][0]["packets"], flood - flood_passed);

    // The text form says the same thing a person reads.
    let out = Command::new(BIN)
        .args(["fate", file.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let row = format!(
        "udp {}:40000 > {}:{}",
        lab.src_addr(0, false),
        lab.origin_addr(0, false),
        pipeline::FIREWALL_UDP_PORT
    );
    let verdict =
        format!("{fw} packets seen at post-mitigation, 0 at post-firewall: dropped between them");
    let at_row = text
        .find(&row)
        .unwrap_or_else(|| panic!("no row {row:?} in {text}"));
    assert!(text[at_row..].contains(&verdict), "{text}");
}

/// The edge's pre-firewall capture against what reached the origin, as tcpdump and dumpcap
/// wrote it there: the firewalled flow and the flood's excess are missing, every other packet
/// is matched with a plausible delay.
#[test]
fn diff_matches_an_edge_capture_with_other_tools_files_at_the_origin() {
    if !root_or_skip() {
        return;
    }
    let lab = lab();
    let scratch = Scratch::new("diff");
    let edge = scratch.path("edge.pcapng");
    let by_tcpdump = scratch.path("origin.pcap");
    let by_dumpcap = scratch.path("origin.pcapng");
    let tcpdump = OriginCapture::start(&lab, "tcpdump", &by_tcpdump);
    let dumpcap = OriginCapture::start(&lab, "dumpcap", &by_dumpcap);
    let run = start(
        lab.edge_ns(0),
        &[
            "--proto",
            "udp",
            "--src",
            &lab.src_addr(0, false).to_string(),
            "-w",
            edge.to_str().unwrap(),
        ],
    );
    send_traffic(&lab);
    // libpcap hands packets over a ring block at a time; a block not yet handed over when the
    // tool stops is never read. Both tools' block timeouts are under a second.
    std::thread::sleep(Duration::from_millis(1500));
    let done = run.interrupt();
    assert!(done.status.success(), "{}", done.stderr);
    tcpdump.stop();
    dumpcap.stop();

    let at_edge = markers(&edge);
    assert_eq!(
        at_edge.len(),
        NORMAL.count() + FIREWALLED.count() + FLOOD.count()
    );
    for origin in [&by_tcpdump, &by_dumpcap] {
        let arrived = markers(origin);
        let flood_arrived = arrived.iter().filter(|m| FLOOD.contains(m)).count() as u64;
        assert!(
            arrived.iter().all(|m| !FIREWALLED.contains(m)),
            "{}: firewalled packets reached the origin",
            origin.display()
        );
        let r = report(&["diff", edge.to_str().unwrap(), origin.to_str().unwrap()]);
        let expect_matched = NORMAL.count() as u64 + flood_arrived;
        assert_eq!(r["matched"], expect_matched, "{}: {r}", origin.display());
        assert_eq!(
            r["missing_from_b"],
            at_edge.len() as u64 - expect_matched,
            "{}",
            origin.display()
        );
        assert_eq!(r["only_in_b"], 0, "{}", origin.display());
        assert_eq!(r["b"]["packets"], arrived.len() as u64);

        let f = flow(&r["flows"], 53);
        assert_eq!(
            (&f["in_a"], &f["in_b"], &f["missing_from_b"]),
            (&NORMAL.count().into(), &NORMAL.count().into(), &0.into())
        );
        let f = flow(&r["flows"], pipeline::FIREWALL_UDP_PORT);
        assert_eq!(f["missing_from_b"], FIREWALLED.count() as u64);
        assert_eq!(f["in_b"], 0);
        let f = flow(&r["flows"], pipeline::FLOOD_PORT);
        assert_eq!(f["missing_from_b"], FLOOD.count() as u64 - flood_arrived);

        // B is later than A: the origin sees each packet after the edge logged it.
        let d = &r["delay"];
        assert!(d["min_ns"].as_i64().unwrap() >= 0, "{d}");
        assert!(
            d["max_ns"].as_i64().unwrap() < 1_000_000_000,
            "a delay of a second or more between two namespaces means a mismatch: {d}"
        );
    }
}

#[test]
fn fate_and_diff_refuse_files_that_are_not_captures() {
    let scratch = Scratch::new("fatebad");
    let text = scratch.path("notes.txt");
    std::fs::write(&text, "this is not a capture\n").unwrap();
    let missing = scratch.path("missing.pcap");
    let cases: Vec<Vec<&str>> = vec![
        vec!["fate", text.to_str().unwrap()],
        vec!["fate", missing.to_str().unwrap()],
        vec!["diff", text.to_str().unwrap(), text.to_str().unwrap()],
        vec!["diff", missing.to_str().unwrap(), text.to_str().unwrap()],
        vec!["diff", "-", "-"],
        vec!["fate", text.to_str().unwrap(), "--window", "soon"],
    ];
    for args in cases {
        let out = Command::new(BIN).args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        let named = args[1..].iter().any(|a| a.len() > 1 && err.contains(a))
            || err.contains("--window")
            || err.contains("standard input");
        assert!(
            named,
            "{args:?}: the message names no file or option: {err}"
        );
        assert!(out.stdout.is_empty(), "{args:?}: printed a report");
    }
}
