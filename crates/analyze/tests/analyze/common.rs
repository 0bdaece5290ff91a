//! Packet and capture builders.

use edgecap_analyze::{DiffReport, FateReport, Options};
use edgecap_pcap::read::Reader;
use edgecap_pcap::{Direction, Format, Interface, Section, Writer};

/// Base timestamp: 2023-11-14T22:13:20Z.
pub const T0: u64 = 1_700_000_000_000_000_000;

/// An IPv4 packet with a valid header checksum; `proto` 17 (UDP) or 6 (TCP) get a header
/// with ports; `id` is the IP identification.
pub fn v4(
    proto: u8,
    src: [u8; 4],
    dst: [u8; 4],
    ports: (u16, u16),
    id: u16,
    payload: &[u8],
) -> Vec<u8> {
    let l4 = l4(proto, ports, payload);
    let total = (20 + l4.len()) as u16;
    let mut p = vec![0x45, 0];
    p.extend_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&[0x40, 0, 64, proto, 0, 0]);
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    let sum = checksum(&p);
    p[10..12].copy_from_slice(&sum.to_be_bytes());
    p.extend_from_slice(&l4);
    p
}

/// An IPv6 packet from 2001:db8::`src` to 2001:db8::`dst`.
pub fn v6(proto: u8, src: u8, dst: u8, ports: (u16, u16), payload: &[u8]) -> Vec<u8> {
    let l4 = l4(proto, ports, payload);
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&(l4.len() as u16).to_be_bytes());
    p.extend_from_slice(&[proto, 64]);
    for last in [src, dst] {
        p.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        p.extend_from_slice(&[0; 11]);
        p.push(last);
    }
    p.extend_from_slice(&l4);
    p
}

fn l4(proto: u8, (sport, dport): (u16, u16), payload: &[u8]) -> Vec<u8> {
    let mut l4 = Vec::new();
    match proto {
        17 => {
            l4.extend_from_slice(&sport.to_be_bytes());
            l4.extend_from_slice(&dport.to_be_bytes());
            l4.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
            l4.extend_from_slice(&[0x12, 0x34]);
        }
        6 => {
            l4.extend_from_slice(&sport.to_be_bytes());
            l4.extend_from_slice(&dport.to_be_bytes());
            l4.extend_from_slice(&[
                0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xFF, 0xFF, 0xAB, 0xCD, 0, 0,
            ]);
        }
        _ => {}
    }
    l4.extend_from_slice(payload);
    l4
}

fn checksum(b: &[u8]) -> u16 {
    let mut s: u32 = b
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while s > 0xFFFF {
        s = (s & 0xFFFF) + (s >> 16);
    }
    !(s as u16)
}

/// Sets the TTL / hop limit (and fixes the IPv4 header checksum), as a router would.
pub fn hop(p: &mut [u8], ttl: u8) {
    if p[0] >> 4 == 4 {
        p[8] = ttl;
        p[10..12].copy_from_slice(&[0, 0]);
        let sum = checksum(&p[..20]);
        p[10..12].copy_from_slice(&sum.to_be_bytes());
    } else {
        p[7] = ttl;
    }
}

pub const SRC: [u8; 4] = [198, 18, 0, 2];
pub const DST: [u8; 4] = [198, 18, 1, 2];

/// A UDP packet of flow `198.18.0.2:sport > 198.18.1.2:dport`, distinguished by `id`.
pub fn udp(sport: u16, dport: u16, id: u16) -> Vec<u8> {
    v4(17, SRC, DST, (sport, dport), id, &id.to_be_bytes())
}

/// A pcapng file with RAW interfaces named `names`, packets as (interface, ts, bytes).
pub fn pcapng(names: &[&str], packets: &[(u32, u64, Vec<u8>)]) -> Vec<u8> {
    let ifaces: Vec<Interface> = names.iter().map(|n| Interface::raw(*n, 0)).collect();
    write(Format::Pcapng, &ifaces, packets)
}

/// Like [`pcapng`] with interface descriptions.
pub fn pcapng_described(ifaces: &[(&str, &str)], packets: &[(u32, u64, Vec<u8>)]) -> Vec<u8> {
    let ifaces: Vec<Interface> = ifaces
        .iter()
        .map(|(n, d)| Interface {
            description: Some((*d).to_owned()),
            ..Interface::raw(*n, 0)
        })
        .collect();
    write(Format::Pcapng, &ifaces, packets)
}

/// A classic pcap file (one RAW interface).
pub fn pcap(packets: &[(u64, Vec<u8>)]) -> Vec<u8> {
    let p: Vec<_> = packets.iter().map(|(t, b)| (0, *t, b.clone())).collect();
    write(Format::Pcap, &[Interface::raw("x", 0)], &p)
}

fn write(format: Format, ifaces: &[Interface], packets: &[(u32, u64, Vec<u8>)]) -> Vec<u8> {
    let mut w = Writer::new(Vec::new(), format, &Section::default(), ifaces).unwrap();
    for (i, ts, data) in packets {
        w.write_packet(*i, *ts, data, 0, Direction::Unknown, 0)
            .unwrap();
    }
    w.finish().unwrap()
}

pub fn fate(bytes: &[u8]) -> FateReport {
    fate_with(bytes, Options::default())
}

pub fn fate_with(bytes: &[u8], opts: Options) -> FateReport {
    let mut r = Reader::new(bytes).unwrap();
    let (report, err) = edgecap_analyze::run_fate(&mut r, opts);
    assert!(err.is_none(), "{err:?}");
    report
}

pub fn diff(a: &[u8], b: &[u8]) -> DiffReport {
    diff_with(a, b, Options::default())
}

pub fn diff_with(a: &[u8], b: &[u8], opts: Options) -> DiffReport {
    let mut ra = Reader::new(a).unwrap();
    let mut rb = Reader::new(b).unwrap();
    let (report, err) = edgecap_analyze::run_diff(&mut ra, &mut rb, ("a", "b"), opts);
    assert!(err.is_none(), "{err:?}");
    report
}
