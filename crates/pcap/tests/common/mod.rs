//! Shared fixtures for the integration tests: hand-built IPv4/IPv6 packets, one sample capture
//! written in either format, and access to the external readers (tshark, tcpdump, capinfos).

// Each test binary uses a different subset of these helpers, and in test helpers a failed
// unwrap is simply a failed test (clippy's test exemption only covers #[test] functions).
#![allow(dead_code, clippy::unwrap_used)]

pub mod readback;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use edgecap_pcap::{
    Direction, Format, Interface, InterfaceStats, LINKTYPE_RAW, Section, Writer, orig_len_from_ip,
};

pub const SNAPLEN: u32 = 128;
/// 2023-11-14T22:13:20.123456789Z: the high 32 bits of the nanosecond count are non-zero, so a
/// reader that mixes up high and low words shows a wildly wrong date.
pub const T0: u64 = 1_700_000_000_123_456_789;

pub fn ipv4_udp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, payload: usize) -> Vec<u8> {
    let total = 20 + 8 + payload;
    let mut p = vec![0x45, 0];
    p.extend_from_slice(&(total as u16).to_be_bytes());
    p.extend_from_slice(&[0x12, 0x34, 0x40, 0, 64, 17, 0, 0]);
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    let sum = ipv4_checksum(&p);
    p[10..12].copy_from_slice(&sum.to_be_bytes());
    p.extend_from_slice(&sport.to_be_bytes());
    p.extend_from_slice(&dport.to_be_bytes());
    p.extend_from_slice(&((8 + payload) as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0]); // no UDP checksum, legal over IPv4
    p.extend((0..payload).map(|i| i as u8));
    p
}

fn ipv4_checksum(header: &[u8]) -> u16 {
    let mut sum: u32 = header
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

pub fn ipv6_tcp(src: [u8; 16], dst: [u8; 16], sport: u16, dport: u16, payload: usize) -> Vec<u8> {
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&((20 + payload) as u16).to_be_bytes());
    p.extend_from_slice(&[6, 64]);
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(&sport.to_be_bytes());
    p.extend_from_slice(&dport.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
    p.extend((0..payload).map(|i| (i * 7) as u8));
    p
}

pub fn v6(last: u8) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    a[15] = last;
    a
}

/// One packet as the capture engine would hand it over: already truncated to the snaplen.
#[derive(Debug, Clone)]
pub struct Pkt {
    pub iface: u32,
    pub ts_ns: u64,
    pub data: Vec<u8>,
    pub orig_len: u32,
    pub dir: Direction,
    pub drops: u64,
}

fn pkt(iface: u32, ts_ns: u64, full: Vec<u8>, dir: Direction, drops: u64) -> Pkt {
    let data = full[..full.len().min(SNAPLEN as usize)].to_vec();
    let orig_len = orig_len_from_ip(&data, data.len());
    assert_eq!(
        orig_len as usize,
        full.len(),
        "fixture packets have honest IP lengths"
    );
    Pkt {
        iface,
        ts_ns,
        data,
        orig_len,
        dir,
        drops,
    }
}

pub fn packets() -> Vec<Pkt> {
    vec![
        pkt(
            0,
            T0,
            ipv4_udp([10, 0, 0, 1], [10, 0, 0, 2], 5353, 53, 32),
            Direction::Inbound,
            0,
        ),
        pkt(
            1,
            T0 + 1,
            ipv6_tcp(v6(1), v6(2), 443, 50000, 1440),
            Direction::Outbound,
            3,
        ),
        pkt(
            2,
            T0 + 1_000_000_000,
            ipv4_udp([192, 0, 2, 9], [198, 51, 100, 7], 1, 2, 1472),
            Direction::Unknown,
            0,
        ),
        pkt(
            0,
            T0 + 2_000_000_001,
            ipv6_tcp(v6(3), v6(4), 22, 40000, 3),
            Direction::Inbound,
            1_000_000_000_000,
        ),
        pkt(
            1,
            T0 + 2_000_000_002,
            ipv4_udp([10, 0, 0, 2], [10, 0, 0, 1], 53, 5353, 1),
            Direction::Unknown,
            1,
        ),
    ]
}

pub fn section() -> Section {
    Section {
        user_appl: "edgecap-pcap tests".to_owned(),
        os: Some("Linux 6.18".to_owned()),
        hardware: Some("node-a".to_owned()),
        comment: Some("capture 7f3a: udp port 53 or tcp".to_owned()),
    }
}

pub fn interfaces() -> Vec<Interface> {
    vec![
        Interface {
            name: "node-a/eth0".to_owned(),
            description: Some("uplink".to_owned()),
            filter: Some("meta l4proto { tcp, udp }".to_owned()),
            linktype: LINKTYPE_RAW,
            snaplen: SNAPLEN,
        },
        Interface::raw("node-a/eth1", SNAPLEN),
        Interface::raw("node-b/eth0", SNAPLEN),
    ]
}

pub fn stats(iface: u32) -> InterfaceStats {
    let i = u64::from(iface);
    InterfaceStats {
        start_ns: T0 - 1_000_000_000,
        end_ns: T0 + 3_000_000_000 + i,
        if_recv: Some(100 + i),
        if_drop: if iface == 0 { Some(0) } else { None },
        filter_accept: Some(50 + i),
        os_drop: Some(4 + i),
        usr_deliv: Some(2),
        comment: (iface == 2).then(|| "closed by byte limit".to_owned()),
    }
}

/// Writes the sample capture (all packets, then one ISB per interface in pcapng) into `sink`;
/// returns the sink and the writer's own count of bytes written.
pub fn write_sample<W: std::io::Write>(sink: W, format: Format) -> (W, u64) {
    let ifaces = interfaces();
    // Classic pcap has no per-interface metadata; every interface shares linktype and snaplen.
    let mut w = Writer::new(sink, format, &section(), &ifaces).unwrap();
    for p in packets() {
        let expect = w.record_len(p.iface, p.data.len(), p.dir, p.drops);
        let added = w
            .write_packet(p.iface, p.ts_ns, &p.data, p.orig_len, p.dir, p.drops)
            .unwrap();
        assert_eq!(added, expect);
    }
    for iface in 0..ifaces.len() as u32 {
        w.write_stats(iface, &stats(iface)).unwrap();
    }
    let total = w.bytes_written();
    (w.finish().unwrap(), total)
}

pub fn write_sample_file(name: &str, format: Format) -> PathBuf {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let file = std::fs::File::create(&path).unwrap();
    let (_, total) = write_sample(file, format);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), total);
    path
}

/// The external reader `name`, or None (with a note) when it is not installed. Under CI=true a
/// missing reader fails the test instead: CI must prove the files open in real tools.
pub fn tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{name} is required when CI=true (install tshark / tcpdump / capinfos)"
        );
        eprintln!("note: {name} is not installed; skipping this check");
    }
    found
}

pub fn run(tool: &Path, args: &[&str]) -> String {
    let out: Output = Command::new(tool).args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{} {args:?} failed: {stderr}",
        tool.display()
    );
    String::from_utf8(out.stdout).unwrap()
}
