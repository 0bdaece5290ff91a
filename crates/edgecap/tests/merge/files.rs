//! Input files from three writers, and tshark's view of a file.

use std::path::{Path, PathBuf};
use std::process::Command;

use edgecap_pcap::{Direction, Format, Interface, Section, Writer};
use edgecap_testkit::readers::tshark_fields;

/// A 60-byte IPv4/UDP packet 198.18.0.1 -> 198.18.1.1 to `port`.
pub fn packet(port: u16) -> Vec<u8> {
    let mut p = vec![0u8; 60];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&60u16.to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&[198, 18, 0, 1]);
    p[16..20].copy_from_slice(&[198, 18, 1, 1]);
    p[20..22].copy_from_slice(&7000u16.to_be_bytes());
    p[22..24].copy_from_slice(&port.to_be_bytes());
    p[24..26].copy_from_slice(&40u16.to_be_bytes());
    p
}

/// Base time: 2026-01-01T00:00:00Z in ns.
pub const T0: u64 = 1_767_225_600_000_000_000;

/// An edgecap pcapng with interfaces `<node>/<point>`; packets (interface, µs after T0, port).
pub fn edgecap_file(path: &Path, node: &str, points: &[&str], packets: &[(u32, u64, u16)]) {
    let ifaces: Vec<Interface> = points
        .iter()
        .map(|p| Interface::raw(format!("{node}/{p}"), 65_535))
        .collect();
    let f = std::fs::File::create(path).unwrap();
    let mut w = Writer::new(f, Format::Pcapng, &Section::default(), &ifaces).unwrap();
    for &(i, us, port) in packets {
        let p = packet(port);
        w.write_packet(i, T0 + us * 1000, &p, 60, Direction::Inbound, 0)
            .unwrap();
    }
    w.finish().unwrap();
}

fn tool(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (.ci/run installs it)"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A classic pcap written by tcpdump (libpcap): `tcpdump -r` of an edgecap file.
pub fn tcpdump_file(dir: &Path, name: &str, packets: &[(u64, u16)]) -> PathBuf {
    let src = dir.join(format!("{name}.src.pcapng"));
    let pk: Vec<(u32, u64, u16)> = packets.iter().map(|&(us, p)| (0, us, p)).collect();
    edgecap_file(&src, "tmp", &["p"], &pk);
    let out = dir.join(format!("{name}.pcap"));
    tool(
        Command::new("tcpdump")
            .arg("-r")
            .arg(&src)
            .arg("-w")
            .arg(&out),
    );
    std::fs::remove_file(src).unwrap();
    out
}

/// A pcapng written by wiretap (what dumpcap and tshark use): `editcap -F pcapng` of a pcap.
pub fn wiretap_file(dir: &Path, name: &str, packets: &[(u64, u16)]) -> PathBuf {
    let pcap = tcpdump_file(dir, &format!("{name}.src"), packets);
    let out = dir.join(format!("{name}.pcapng"));
    tool(
        Command::new("editcap")
            .args(["-F", "pcapng"])
            .arg(&pcap)
            .arg(&out),
    );
    std::fs::remove_file(pcap).unwrap();
    out
}

/// What tshark reads: (epoch time as printed, interface name, UDP port) per packet.
pub fn tshark(file: &Path) -> Vec<(String, String, u16)> {
    tshark_fields(
        file,
        &["frame.time_epoch", "frame.interface_name", "udp.dstport"],
    )
    .into_iter()
    .map(|f| (f[0].clone(), f[1].clone(), f[2].parse().unwrap()))
    .collect()
}
