//! Crafted packets: lengths, header fields and checksums, checked with an independent
//! one's-complement sum (no root needed).
// Test helpers may unwrap like the tests themselves (clippy.toml allows it in tests).
#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use edgecap_lab::packet::{Packet, PortPatch, TcpFlags, ethernet, find_marker, marker};

const S4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const D4: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 2);
const S6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);
const D6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 2);

fn sum(data: &[u8]) -> u32 {
    data.chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum()
}

fn fold(mut s: u32) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// True when the transport checksum (with pseudo-header; none for ICMPv4) verifies.
fn l4_ok(p: &[u8]) -> bool {
    let (hl, proto, src, dst) = if p[0] >> 4 == 4 {
        (usize::from(p[0] & 15) * 4, p[9], &p[12..16], &p[16..20])
    } else {
        (40, p[6], &p[8..24], &p[24..40])
    };
    let l4 = &p[hl..];
    let pseudo = proto != 1;
    let mut s = sum(l4);
    if pseudo {
        s += sum(src) + sum(dst) + u32::from(proto) + l4.len() as u32;
    }
    fold(s) == 0xffff
}

fn ipv4_header_ok(p: &[u8]) -> bool {
    fold(sum(&p[..20])) == 0xffff
}

#[test]
fn every_kind_has_correct_lengths_and_checksums() {
    let all: Vec<(Packet, u8)> = vec![
        (Packet::udp(S4, D4, 1234, 53), 17),
        (Packet::udp(S6, D6, 1234, 53), 17),
        (
            Packet::tcp(S4, D4, 1234, 80, TcpFlags::SYN | TcpFlags::ACK),
            6,
        ),
        (Packet::tcp(S6, D6, 1234, 80, TcpFlags::RST), 6),
        (Packet::icmp_echo(S4, D4, 7, 1), 1),
        (Packet::icmp_echo(S6, D6, 7, 1), 58),
        (Packet::raw(S4, D4, 47), 47),
        (Packet::raw(S6, D6, 132), 132),
    ];
    for (i, (p, proto)) in all.into_iter().enumerate() {
        for len in [None, Some(300), Some(1500)] {
            let mut p = p.clone().marker(i as u32).ttl(9).ident(0x1234);
            if let Some(len) = len {
                p = p.total_len(len);
            }
            let b = p.build().unwrap();
            if let Some(len) = len {
                assert_eq!(b.len(), len);
            }
            assert_eq!(find_marker(&b), Some(i as u32));
            if b[0] >> 4 == 4 {
                assert_eq!(usize::from(u16::from_be_bytes([b[2], b[3]])), b.len());
                assert_eq!((b[8], b[9]), (9, proto));
                assert_eq!(u16::from_be_bytes([b[4], b[5]]), 0x1234);
                assert!(ipv4_header_ok(&b), "ipv4 header checksum of {p:?}");
            } else {
                assert_eq!(usize::from(u16::from_be_bytes([b[4], b[5]])), b.len() - 40);
                assert_eq!((b[7], b[6]), (9, proto));
            }
            if proto != 47 && proto != 132 {
                assert!(l4_ok(&b), "transport checksum of {p:?} len {len:?}");
            }
        }
    }
}

#[test]
fn tcp_flags_and_icmp_types_are_on_the_wire() {
    let b = Packet::tcp(S4, D4, 1, 2, TcpFlags::SYN | TcpFlags::FIN | TcpFlags::URG)
        .tcp_numbers(100, 200)
        .build()
        .unwrap();
    assert_eq!(b[20 + 13], 0x01 | 0x02 | 0x20);
    assert_eq!(&b[24..28], &100u32.to_be_bytes());
    assert_eq!(&b[28..32], &200u32.to_be_bytes());
    assert_eq!(Packet::icmp_echo(S4, D4, 1, 1).build().unwrap()[20], 8);
    assert_eq!(Packet::icmp_echo(S6, D6, 1, 1).build().unwrap()[40], 128);
}

#[test]
fn bad_inputs_are_errors() {
    let mixed = Packet::udp(IpAddr::V4(S4), IpAddr::V6(D6), 1, 2).build();
    assert!(
        mixed
            .unwrap_err()
            .to_string()
            .contains("different IP versions")
    );
    let short = Packet::udp(S4, D4, 1, 2)
        .payload(vec![0; 100])
        .total_len(50)
        .build();
    assert!(short.unwrap_err().to_string().contains("shorter"));
    assert!(Packet::udp(S4, D4, 1, 2).total_len(70000).build().is_err());
    assert!(PortPatch::locate(&Packet::icmp_echo(S4, D4, 1, 1).build().unwrap()).is_err());
}

#[test]
fn marker_and_ethernet() {
    assert_eq!(marker(42), b"EDGECAP-MARK-42".to_vec());
    assert_eq!(find_marker(b"xxEDGECAP-MARK-4294967295yy"), Some(u32::MAX));
    assert_eq!(find_marker(b"EDGECAP-MARK-"), None);
    let ip = Packet::udp(S6, D6, 1, 2).build().unwrap();
    let f = ethernet([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2], &ip);
    assert_eq!(&f[..6], &[2, 0, 0, 0, 0, 1]);
    assert_eq!(&f[6..12], &[2, 0, 0, 0, 0, 2]);
    assert_eq!(&f[12..14], &[0x86, 0xdd]);
    assert_eq!(&f[14..], &ip[..]);
    let ip4 = Packet::udp(S4, D4, 1, 2).build().unwrap();
    assert_eq!(&ethernet([0; 6], [0; 6], &ip4)[12..14], &[0x08, 0x00]);
}

#[test]
fn port_patch_matches_a_fresh_build() {
    let kinds = [
        Packet::udp(S4, D4, 1000, 53).marker(1),
        Packet::udp(S6, D6, 1000, 53).marker(2).total_len(333),
        Packet::tcp(S4, D4, 1000, 80, TcpFlags::SYN).marker(3),
        Packet::tcp(S6, D6, 1000, 80, TcpFlags::ACK).marker(4),
    ];
    for p in kinds {
        let mut b = p.build().unwrap();
        let patch = PortPatch::locate(&b).unwrap();
        for port in [1024u16, 1, 65535, 40000, 1000] {
            patch.apply(&mut b, port);
            let mut fresh = p.clone();
            match &mut fresh.transport {
                edgecap_lab::packet::Transport::Udp { src_port, .. }
                | edgecap_lab::packet::Transport::Tcp { src_port, .. } => *src_port = port,
                _ => unreachable!(),
            }
            let want = fresh.build().unwrap();
            assert!(l4_ok(&b), "checksum after patching to {port}");
            // One's complement has two zeros (0x0000/0xffff); compare everything else exactly.
            let hl = if b[0] >> 4 == 4 { 20 } else { 40 };
            assert_eq!(&b[..hl + 4], &want[..hl + 4]);
        }
    }
}
