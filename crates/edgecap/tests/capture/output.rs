//! Output formats and streaming: pcapng and pcap files, `-w -` into tshark, and what the file
//! says about the capture.

use std::process::{Command, Stdio};
use std::time::Duration;

use edgecap_lab::packet::Packet;

use crate::common::*;

#[test]
fn streams_to_stdout_into_tshark() {
    if !root_or_skip() {
        return;
    }
    let lab = lab();
    let packets: Vec<Vec<u8>> = (1..=25)
        .map(|i| {
            Packet::udp(lab.src_addr(0, true), lab.origin_addr(0, true), 40000, 53)
                .marker(i)
                .build()
                .unwrap()
        })
        .collect();
    let mut run = start(
        lab.edge_ns(0),
        &["--proto", "udp", "--packets", "25", "-w", "-"],
    );
    let stdout = run.child.stdout.take().unwrap();
    let tshark = Command::new("tshark")
        .args([
            "-r",
            "-",
            "-T",
            "fields",
            "-e",
            "ipv6.src",
            "-e",
            "udp.dstport",
        ])
        .stdin(Stdio::from(stdout))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    lab.send(0, &packets).unwrap();
    let done = run.wait(Duration::from_secs(10));
    assert!(done.status.success(), "{}", done.stderr);
    let out = tshark.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 25, "{text}");
    assert!(lines.iter().all(|l| *l == "2001:db8::2\t53"), "{text}");
}

#[test]
fn pcap_format_opens_in_tcpdump_with_nanoseconds() {
    if !root_or_skip() {
        return;
    }
    let lab = lab();
    let scratch = Scratch::new("pcapfmt");
    let out = scratch.path("x.pcap");
    let run = start(
        lab.edge_ns(0),
        &[
            "--format",
            "pcap",
            "--proto",
            "tcp",
            "--packets",
            "3",
            "-w",
            out.to_str().unwrap(),
        ],
    );
    let packets: Vec<Vec<u8>> = (1..=3)
        .map(|i| {
            Packet::tcp(
                lab.src_addr(0, false),
                lab.origin_addr(0, false),
                5000,
                443,
                edgecap_lab::packet::TcpFlags::SYN,
            )
            .marker(i)
            .build()
            .unwrap()
        })
        .collect();
    lab.send(0, &packets).unwrap();
    let done = run.wait(Duration::from_secs(10));
    assert!(done.status.success(), "{}", done.stderr);
    let td = Command::new("tcpdump")
        .args(["--nano", "-n", "-r"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        td.status.success(),
        "tcpdump: {}",
        String::from_utf8_lossy(&td.stderr)
    );
    let text = String::from_utf8_lossy(&td.stdout);
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(
        text.lines()
            .all(|l| l.contains("198.18.0.2.5000 > 198.18.1.2.443: Flags [S]")),
        "{text}"
    );
    // Nanosecond timestamps: nine fractional digits.
    let ts = text
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    assert_eq!(ts.split('.').nth(1).map(str::len), Some(9), "{ts}");
}

#[test]
fn pcapng_names_node_and_point_and_records_the_filter() {
    if !root_or_skip() {
        return;
    }
    let lab = lab();
    let scratch = Scratch::new("meta");
    let out = scratch.path("m.pcapng");
    let run = start(
        lab.edge_ns(0),
        &[
            "--node",
            "edge-test-1",
            "--point",
            "post-firewall",
            "--proto",
            "udp",
            "--dport",
            "53",
            "--packets",
            "2",
            "-w",
            out.to_str().unwrap(),
        ],
    );
    let packets: Vec<Vec<u8>> = (1..=2)
        .map(|i| {
            Packet::udp(lab.src_addr(0, false), lab.origin_addr(0, false), 40000, 53)
                .marker(i)
                .build()
                .unwrap()
        })
        .collect();
    lab.send(0, &packets).unwrap();
    let done = run.wait(Duration::from_secs(10));
    assert!(done.status.success(), "{}", done.stderr);
    let rows = tshark_fields(
        &out,
        &["frame.interface_name", "frame.packet_flags_direction"],
    );
    assert_eq!(rows.len(), 2);
    for r in &rows {
        assert_eq!(r[0], "edge-test-1/post-firewall");
        let dir = u32::from_str_radix(r[1].trim_start_matches("0x"), 16).unwrap();
        assert_eq!(dir, 1, "inbound direction flag");
    }
    let ci = Command::new("capinfos").arg(&out).output().unwrap();
    let text = String::from_utf8_lossy(&ci.stdout);
    assert!(
        text.contains("udp"),
        "the filter is recorded in the file: {text}"
    );
}

#[test]
fn a_live_reader_sees_packets_while_the_capture_runs() {
    if !root_or_skip() {
        return;
    }
    use std::io::BufRead;
    let lab = lab();
    let mut run = start(lab.edge_ns(0), &["--proto", "udp", "-w", "-"]);
    let stdout = run.child.stdout.take().unwrap();
    let mut tshark = Command::new("tshark")
        .args(["-l", "-r", "-", "-T", "fields", "-e", "udp.dstport"])
        .stdin(Stdio::from(stdout))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let packets: Vec<Vec<u8>> = (1..=5)
        .map(|i| {
            Packet::udp(
                lab.src_addr(0, false),
                lab.origin_addr(0, false),
                40000,
                5000 + i as u16,
            )
            .marker(i)
            .build()
            .unwrap()
        })
        .collect();
    lab.send(0, &packets).unwrap();
    // Read five lines while edgecap is still running (it has no limit).
    let (tx, rx) = std::sync::mpsc::channel();
    let out = tshark.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().take(5) {
            let _ = tx.send(line.unwrap());
        }
    });
    let mut seen = Vec::new();
    while seen.len() < 5 {
        match rx.recv_timeout(Duration::from_secs(5)) {
            Ok(l) => seen.push(l),
            Err(_) => panic!(
                "only {} of 5 packets reached the live reader: {seen:?}",
                seen.len()
            ),
        }
    }
    assert!(
        run.child.try_wait().unwrap().is_none(),
        "the capture must still be running"
    );
    assert_eq!(seen, ["5001", "5002", "5003", "5004", "5005"]);
    let done = run.interrupt();
    assert!(done.status.success(), "{}", done.stderr);
    let _ = tshark.wait();
}

#[test]
fn a_reader_that_goes_away_stops_the_capture_cleanly() {
    if !root_or_skip() {
        return;
    }
    let lab = lab();
    let mut run = start(lab.edge_ns(0), &["--proto", "udp", "-w", "-"]);
    // Like `| head -c 200`: read a little, then close the pipe.
    let mut stdout = run.child.stdout.take().unwrap();
    let packets: Vec<Vec<u8>> = (1..=50)
        .map(|i| {
            Packet::udp(lab.src_addr(0, false), lab.origin_addr(0, false), 40000, 9)
                .marker(i)
                .total_len(500)
                .build()
                .unwrap()
        })
        .collect();
    lab.send(0, &packets).unwrap();
    let mut buf = [0u8; 200];
    std::io::Read::read_exact(&mut stdout, &mut buf).unwrap();
    drop(stdout);
    lab.send(0, &packets).unwrap();
    let done = run.wait(Duration::from_secs(5));
    assert!(done.status.success(), "{}", done.stderr);
    assert_eq!(done.summary()["stop_reason"], "output-closed");
    assert!(edgecap_tables(lab.edge_ns(0)).is_empty());
}
