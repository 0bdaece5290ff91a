//! Records the golden bytes of `tests/golden/`: runs every case of `tests/golden/cases.rs`
//! through the real kernel path (NFLOG bind, `CaptureTable::install`, traffic, counters,
//! detach, unbind) in a throw-away network namespace under `strace`, and writes what crossed
//! the netlink sockets each way to `tests/golden/<case>.hex`. strace sees the bytes the
//! syscalls carried, so the recording does not trust the code it checks.
//!
//! Needs root and strace; run by hand when the wire format changes on purpose:
//! `cargo run -p edgecap-netfilter --example record_golden`.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use edgecap_netfilter::{CaptureTable, NflogConfig, NflogReader, RuleSpec};

#[path = "../tests/golden/cases.rs"]
mod cases;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let [_, flag, name] = args.as_slice()
        && flag == "--run-case"
    {
        let case = cases::cases().into_iter().find(|c| c.name == name).unwrap();
        run_case(&case);
        return;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    for case in cases::cases() {
        record(&case, &dir);
        eprintln!("recorded {}", case.name);
    }
}

/// Runs `--run-case` for `case` in a fresh namespace under strace and writes its recording.
fn record(case: &cases::Case, dir: &Path) {
    let ns = format!("ecgold{}", std::process::id());
    ip(&["netns", "add", &ns]);
    let setup: Vec<Vec<String>> = [
        vec!["link", "set", "lo", "up"],
        vec!["addr", "add", "198.18.0.1/32", "dev", "lo"],
    ]
    .into_iter()
    .map(|a| a.into_iter().map(String::from).collect())
    .chain(case.devices.chunks(2).map(|pair| {
        [
            "link", "add", pair[0], "type", "veth", "peer", "name", pair[1],
        ]
        .into_iter()
        .map(String::from)
        .collect()
    }))
    .collect();
    for args in &setup {
        let mut full = vec!["-n".to_owned(), ns.clone()];
        full.extend(args.iter().cloned());
        ip(&full.iter().map(String::as_str).collect::<Vec<_>>());
    }
    let trace = std::env::temp_dir().join(format!("{ns}.strace"));
    let exe = std::env::current_exe().unwrap();
    let status = Command::new("ip")
        .args(["netns", "exec", &ns, "strace", "-f", "-qq", "-yy"])
        .args(["-e", "trace=sendto,recvfrom,write"])
        .args(["-e", "write=all", "-e", "read=all", "-o"])
        .arg(&trace)
        .arg(&exe)
        .args(["--run-case", case.name])
        .status()
        .unwrap();
    ip(&["netns", "del", &ns]);
    assert!(status.success(), "case {} failed", case.name);
    let text = std::fs::read_to_string(&trace).unwrap();
    let _ = std::fs::remove_file(&trace);
    let kernel = Command::new("uname").arg("-r").output().unwrap().stdout;
    let mut out = format!(
        "# {}: recorded by examples/record_golden.rs (strace of the kernel path, Linux {})\n\
         # `== step`, then `>` a buffer sent, `<` a buffer received, in hex.\n",
        case.name,
        String::from_utf8_lossy(&kernel).trim()
    );
    out.push_str(&to_golden(&text));
    std::fs::write(dir.join(format!("{}.hex", case.name)), out).unwrap();
}

fn ip(args: &[&str]) {
    let ok = Command::new("ip").args(args).status().unwrap().success();
    assert!(ok, "ip {args:?}");
}

/// Marks the start of a step in the trace: one `write(2)` that strace dumps.
fn step(name: &str) {
    std::io::stderr()
        .write_all(format!("== {name}\n").as_bytes())
        .unwrap();
}

/// The capture of one case, as `CaptureTable` and `NflogReader` run it for edgecap.
fn run_case(case: &cases::Case) {
    step("nflog-bind");
    let mut reader = NflogReader::bind(&NflogConfig::tuned(case.group, case.snaplen)).unwrap();
    step("install");
    let spec = RuleSpec {
        filter: &case.filter,
        group: case.group,
        snaplen: case.snaplen,
        sample_one_in: case.sample_one_in,
        counting: edgecap_netfilter::Counting::Objects,
    };
    let installed = CaptureTable::install(&case.table, &case.points, &spec);
    assert_eq!(installed.is_ok(), case.installs, "{:?}", installed.err());
    let Ok(mut table) = installed else {
        step("end");
        return;
    };
    if case.datagrams > 0 {
        let addr = (cases::TRAFFIC_ADDR, cases::TRAFFIC_PORT);
        let _sink = std::net::UdpSocket::bind(addr).unwrap();
        let src = std::net::UdpSocket::bind((cases::TRAFFIC_ADDR, 0)).unwrap();
        for i in 0..case.datagrams {
            src.send_to(&i.to_be_bytes(), addr).unwrap();
        }
        step("packets");
        let mut seen = 0;
        while seen < case.datagrams as usize {
            assert!(reader.recv(Duration::from_secs(2)).unwrap(), "no batch");
            seen += reader.packets().count();
        }
    }
    step("counters");
    for p in &case.points {
        table.counters(&p.label).unwrap();
    }
    step("detach");
    table.detach().unwrap();
    step("unbind");
    reader.unbind().unwrap();
    step("end");
}

/// The netlink buffers of an strace log (`-yy -e write=all -e read=all`), by step.
fn to_golden(trace: &str) -> String {
    let mut out = String::new();
    let mut lines = trace.lines().peekable();
    while let Some(line) = lines.next() {
        let mut bytes = Vec::new();
        while let Some(dump) = lines.peek().and_then(|l| l.strip_prefix(" | ")) {
            bytes.extend(dump_bytes(dump));
            lines.next();
        }
        // `PID call(FD<annotation>, ...`
        // (strace pads the PID to a fixed width).
        let call = line
            .split_once(' ')
            .map_or(line, |(_, rest)| rest.trim_start());
        if call.starts_with("write(2") {
            if let Some(name) = String::from_utf8_lossy(&bytes).strip_prefix("== ") {
                out.push_str(&format!("== {}\n", name.trim_end()));
            }
        } else if call.contains("<NETLINK:") && !bytes.is_empty() {
            let dir = if call.starts_with("sendto(") {
                '>'
            } else {
                '<'
            };
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            out.push_str(&format!("{dir} {hex}\n"));
        }
    }
    out
}

/// The bytes of one hexdump line: `00000  14 00 .. 00  ascii |`.
fn dump_bytes(dump: &str) -> Vec<u8> {
    let Some((_offset, rest)) = dump.split_once("  ") else {
        return Vec::new();
    };
    // 16 bytes as `xx ` with one extra space in the middle: 49 columns, then the ASCII.
    rest.get(..49)
        .unwrap_or(rest)
        .split_whitespace()
        .filter_map(|h| u8::from_str_radix(h, 16).ok())
        .collect()
}
