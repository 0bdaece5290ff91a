//! Real capture files for the uploads (store, server and merge tests): IPv4/UDP packets
//! written by edgecap's own pcapng writer, and what tshark reads back.

use std::io::Write;
use std::path::Path;

use edgecap_pcap::{Direction, Format, Interface, Section, Writer};

use crate::readers::tshark_fields;

/// Bytes of one test packet (IPv4 + UDP + payload).
pub const PACKET_LEN: usize = 1200;

/// An IPv4/UDP packet 198.18.0.1 -> 198.18.1.1, destination port `10000 + (seq % 50000)`,
/// payload starting with `EDGECAP-TEST-<seq>`.
pub fn packet(seq: u64) -> Vec<u8> {
    let mut p = vec![0u8; PACKET_LEN];
    let total = PACKET_LEN as u16;
    p[0] = 0x45;
    p[2..4].copy_from_slice(&total.to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&[198, 18, 0, 1]);
    p[16..20].copy_from_slice(&[198, 18, 1, 1]);
    let sum = ipv4_checksum(&p[..20]);
    p[10..12].copy_from_slice(&sum.to_be_bytes());
    p[20..22].copy_from_slice(&7000u16.to_be_bytes());
    p[22..24].copy_from_slice(&(10_000 + (seq % 50_000) as u16).to_be_bytes());
    p[24..26].copy_from_slice(&(total - 20).to_be_bytes());
    let marker = format!("EDGECAP-TEST-{seq}");
    p[28..28 + marker.len()].copy_from_slice(marker.as_bytes());
    p
}

fn ipv4_checksum(h: &[u8]) -> u16 {
    let mut sum = 0u32;
    for w in h.chunks(2) {
        sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Writes a pcapng of `count` packets (one interface `<node>/pre-firewall`) into `sink`, the
/// way a capture does, and returns the sink and the file's length.
pub fn write_capture<W: Write>(sink: W, node: &str, count: u64) -> (W, u64) {
    let section = Section {
        user_appl: "edgecap-store tests".into(),
        ..Section::default()
    };
    let iface = Interface::raw(format!("{node}/pre-firewall"), 65_535);
    let mut w = Writer::new(sink, Format::Pcapng, &section, &[iface]).unwrap();
    for seq in 0..count {
        let p = packet(seq);
        w.write_packet(
            0,
            1_700_000_000_000_000_000 + seq * 1000,
            &p,
            p.len() as u32,
            Direction::Inbound,
            0,
        )
        .unwrap();
    }
    let len = w.bytes_written();
    (w.finish().unwrap(), len)
}

/// Packets needed for a file of at least `bytes`.
pub fn packets_for(bytes: u64) -> u64 {
    bytes.div_ceil(PACKET_LEN as u64 + 40)
}

/// What tshark reads from `file`: one (interface name, UDP destination port) per packet.
pub fn tshark(file: &Path) -> Vec<(String, u16)> {
    tshark_fields(file, &["frame.interface_name", "udp.dstport"])
        .into_iter()
        .map(|f| {
            (
                f[0].clone(),
                f.get(1).and_then(|p| p.parse().ok()).unwrap_or(0),
            )
        })
        .collect()
}

/// Checks that tshark sees exactly packets 0..count of [`write_capture`] on `node`.
pub fn assert_capture(file: &Path, node: &str, count: u64) {
    let seen = tshark(file);
    assert_eq!(
        seen.len() as u64,
        count,
        "packets tshark read from {}",
        file.display()
    );
    for (seq, (name, port)) in seen.iter().enumerate() {
        assert_eq!(name, &format!("{node}/pre-firewall"));
        assert_eq!(*port, 10_000 + (seq as u64 % 50_000) as u16, "packet {seq}");
    }
}
