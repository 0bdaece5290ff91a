//! The packets of the differential test: a few thousand IPv4 and IPv6 packets generated from a
//! seed, covering what filters distinguish: TCP with many flag combinations, UDP, SCTP, ICMP
//! and ICMPv6 of several types, GRE, ESP and other protocols; IPv4 with options, first and
//! later fragments; IPv6 with a fragment header (first and later fragments), hop-by-hop and
//! destination options; ports at and around range edges; addresses on both sides of prefix
//! boundaries inside 198.18.0.0/15 and 2001:db8::/32 only; lengths from the smallest to 1500.
//! Every packet carries the marker of its index + 1 and a description for failure messages.

use std::net::{Ipv4Addr, Ipv6Addr};

use edgecap_lab::packet::{Packet, TcpFlags};

use super::rng::Rng;

/// Addresses the generator's hosts and nets are drawn from too, so selections are not empty.
/// None belongs to a namespace that answers (the source namespace owns 198.18.0.2 and
/// 2001:db8::2, the edge 198.18.0.1 and 198.18.1.1): an answer (an ICMP error, an echo reply)
/// would quote the packet, marker included, and cross the capture point as a new packet.
pub const V4_HOSTS: &[&str] = &[
    "198.18.0.3",
    "198.18.0.77",
    "198.18.1.2",
    "198.18.1.200",
    "198.18.100.5",
    "198.18.127.255",
    "198.18.128.0",
    "198.19.0.1",
    "198.19.255.254",
];
pub const V6_HOSTS: &[&str] = &[
    "2001:db8::3",
    "2001:db8::77",
    "2001:db8:1::2",
    "2001:db8:1::8000",
    "2001:db8:ff::9",
    "2001:db8:7fff::1",
    "2001:db8:8000::1",
    "2001:db8:ffff::fffe",
];
pub const PORTS: &[u16] = &[
    0, 1, 7, 53, 79, 80, 81, 443, 1023, 1024, 5353, 8080, 33434, 49152, 65534, 65535,
];
/// Packet lengths the generator's `less`/`greater`/`len` values come from too.
pub const LENGTHS: &[u32] = &[40, 48, 60, 64, 100, 128, 200, 576, 1000, 1280, 1400, 1500];

const MTU: usize = 1500;

pub struct Corpus {
    pub packets: Vec<Vec<u8>>,
    pub descriptions: Vec<String>,
}

impl Corpus {
    pub fn describe(&self, marker: u32) -> &str {
        self.descriptions
            .get(marker as usize - 1)
            .map_or("?", String::as_str)
    }

    /// The corpus as a classic pcap file of LINKTYPE_RAW (101), which is what tcpdump reads.
    pub fn write_pcap(&self, path: &std::path::Path) {
        let mut out = Vec::new();
        out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        out.extend_from_slice(&2u16.to_le_bytes());
        out.extend_from_slice(&4u16.to_le_bytes());
        out.extend_from_slice(&0i32.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&65535u32.to_le_bytes());
        out.extend_from_slice(&101u32.to_le_bytes());
        for (i, p) in self.packets.iter().enumerate() {
            out.extend_from_slice(&(i as u32).to_le_bytes());
            out.extend_from_slice(&0u32.to_le_bytes());
            out.extend_from_slice(&(p.len() as u32).to_le_bytes());
            out.extend_from_slice(&(p.len() as u32).to_le_bytes());
            out.extend_from_slice(p);
        }
        std::fs::write(path, out).expect("write corpus.pcap");
    }
}

fn v4(s: &str) -> Ipv4Addr {
    s.parse().expect("v4 address")
}

fn v6(s: &str) -> Ipv6Addr {
    s.parse().expect("v6 address")
}

fn port(rng: &mut Rng) -> u16 {
    match rng.chance(75) {
        true => *rng.pick(PORTS),
        false => rng.range(0, 65535) as u16,
    }
}

fn flags(rng: &mut Rng) -> u8 {
    const COMMON: &[u8] = &[
        0x02, 0x12, 0x10, 0x11, 0x04, 0x14, 0x18, 0x01, 0x42, 0xc2, 0x29,
    ];
    match rng.chance(50) {
        true => *rng.pick(COMMON),
        false => rng.range(0, 255) as u8,
    }
}

/// A total length at least `natural`: mostly small, sometimes one of [`LENGTHS`], up to the MTU.
fn length(rng: &mut Rng, natural: usize, max: usize) -> usize {
    let want = match rng.below(10) {
        0..=4 => natural + rng.below(48),
        5 | 6 => natural + rng.below(600),
        7 => rng.range(1000, max as u32) as usize,
        _ => *rng.pick(LENGTHS) as usize,
    };
    want.clamp(natural, max)
}

/// A 20-byte TCP header, a 12-byte SCTP common header, an 8-byte UDP header: the first bytes of
/// a transport header as raw bytes, for packets the lab's builder does not make.
fn transport_bytes(proto: u8, sport: u16, dport: u16, flags: u8, rng: &mut Rng) -> Vec<u8> {
    let mut t = Vec::new();
    match proto {
        6 | 17 | 132 => {
            t.extend_from_slice(&sport.to_be_bytes());
            t.extend_from_slice(&dport.to_be_bytes());
            match proto {
                6 => {
                    t.extend_from_slice(&(rng.next_u64() as u32).to_be_bytes());
                    t.extend_from_slice(&0u32.to_be_bytes());
                    t.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
                }
                17 => t.extend_from_slice(&[0, 8, 0, 0]),
                _ => t.extend_from_slice(&[0; 8]),
            }
        }
        1 | 58 => {
            let types: &[u8] = if proto == 1 {
                &[0, 3, 8, 11, 13]
            } else {
                &[1, 3, 128, 129, 135, 136]
            };
            t.extend_from_slice(&[*rng.pick(types), rng.range(0, 3) as u8, 0, 0]);
            t.extend_from_slice(&(rng.next_u64() as u32).to_be_bytes());
        }
        47 => t.extend_from_slice(&[0, 0, 0x08, 0x00]),
        _ => t.extend_from_slice(&(rng.next_u64()).to_be_bytes()),
    }
    t
}

fn ipv4_checksum(p: &mut [u8]) {
    let ihl = usize::from(p[0] & 0x0f) * 4;
    p[10] = 0;
    p[11] = 0;
    let mut sum: u32 = p[..ihl]
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    p[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
}

/// Inserts `words` 4-byte words of IPv4 options (NOPs, then end of list) after the header.
fn add_options(p: &mut Vec<u8>, words: usize) {
    let opts: Vec<u8> = (0..words * 4)
        .map(|i| if i + 1 == words * 4 { 0 } else { 1 })
        .collect();
    p.splice(20..20, opts);
    p[0] = 0x40 | (5 + words as u8);
    let len = p.len() as u16;
    p[2..4].copy_from_slice(&len.to_be_bytes());
    ipv4_checksum(p);
}

fn set_fragment(p: &mut [u8], offset_words: u16, more: bool) {
    let v = (u16::from(more) << 13) | (offset_words & 0x1fff) | (u16::from(p[6] & 0x40 != 0) << 14);
    p[6..8].copy_from_slice(&v.to_be_bytes());
    ipv4_checksum(p);
}

/// Generates `n` packets from `seed`.
pub fn generate(seed: u64, n: usize) -> Corpus {
    let mut rng = Rng::new(seed);
    let mut packets = Vec::with_capacity(n);
    let mut descriptions = Vec::with_capacity(n);
    for i in 0..n {
        let marker = i as u32 + 1;
        let (p, d) = match rng.below(2) {
            0 => ipv4(&mut rng, marker),
            _ => ipv6(&mut rng, marker),
        };
        assert!(p.len() <= MTU, "{d}: {} bytes", p.len());
        packets.push(p);
        descriptions.push(d);
    }
    Corpus {
        packets,
        descriptions,
    }
}

fn ipv4(rng: &mut Rng, marker: u32) -> (Vec<u8>, String) {
    let src = v4(rng.pick_str(V4_HOSTS));
    let dst = v4(rng.pick_str(V4_HOSTS));
    let (sp, dp, fl) = (port(rng), port(rng), flags(rng));
    let proto = *rng.pick(&[6u8, 6, 6, 17, 17, 132, 1, 1, 47, 50, 2, 112, 103, 51, 0]);
    let options = match rng.below(5) {
        0 => 1 + rng.below(2),
        _ => 0,
    };
    let max = MTU - options * 4;
    let mut desc = format!("IPv4 {src} > {dst} proto {proto}");
    let p = match proto {
        6 | 17 if rng.chance(70) => {
            let base = match proto {
                6 => Packet::tcp(src, dst, sp, dp, TcpFlags(fl)),
                _ => Packet::udp(src, dst, sp, dp),
            }
            .marker(marker);
            let natural = base.build().expect("packet").len();
            base.total_len(length(rng, natural, max)).build()
        }
        1 if rng.chance(50) => {
            let base = Packet::icmp_echo(src, dst, rng.range(0, 65535) as u16, 1).marker(marker);
            let natural = base.build().expect("packet").len();
            desc.push_str(" echo");
            base.total_len(length(rng, natural, max)).build()
        }
        _ => {
            let t = transport_bytes(proto, sp, dp, fl, rng);
            if proto == 1 {
                desc.push_str(&format!(" type {} code {}", t[0], t[1]));
            }
            let base = Packet::raw(src, dst, proto).payload(t).marker(marker);
            let natural = base.build().expect("packet").len();
            base.total_len(length(rng, natural, max)).build()
        }
    };
    let mut p = p.expect("build IPv4 packet");
    if matches!(proto, 6 | 17 | 132) {
        desc.push_str(&format!(" ports {sp} > {dp}"));
    }
    if proto == 6 {
        desc.push_str(&format!(" flags {fl:#04x}"));
    }
    if rng.chance(10) {
        p[6] |= 0x40;
        ipv4_checksum(&mut p);
        desc.push_str(" DF");
    }
    if options > 0 {
        add_options(&mut p, options);
        desc.push_str(&format!(" +{}B options", options * 4));
    }
    match rng.below(10) {
        0 => {
            set_fragment(&mut p, 0, true);
            desc.push_str(" first fragment (MF)");
        }
        1 | 2 => {
            let off = rng.range(1, 185) as u16;
            let more = rng.chance(50);
            set_fragment(&mut p, off, more);
            desc.push_str(&format!(
                " later fragment, offset {}{}",
                off * 8,
                if more { " MF" } else { "" }
            ));
        }
        _ => {}
    }
    desc.push_str(&format!(", {} bytes", p.len()));
    (p, desc)
}

fn ipv6(rng: &mut Rng, marker: u32) -> (Vec<u8>, String) {
    let src = v6(rng.pick_str(V6_HOSTS));
    let dst = v6(rng.pick_str(V6_HOSTS));
    let (sp, dp, fl) = (port(rng), port(rng), flags(rng));
    let proto = *rng.pick(&[6u8, 6, 17, 17, 132, 58, 58, 47, 50, 59, 103]);
    let mut desc = format!("IPv6 {src} > {dst}");
    // The extension headers before the transport header, each (next header, bytes).
    let chain: Vec<(u8, Vec<u8>, &str)> = match rng.below(10) {
        0 | 1 => vec![(
            44,
            vec![0, 0, 0, 1, 0, 0, 0, 7],
            "fragment header (first, M)",
        )],
        2 => {
            let off = (rng.range(1, 180) as u16) << 3;
            let more = u16::from(rng.chance(50));
            let b = (off | more).to_be_bytes();
            vec![(
                44,
                vec![0, 0, b[0], b[1], 0, 0, 0, 9],
                "fragment header (later)",
            )]
        }
        3 => vec![(0, vec![0, 0, 1, 4, 0, 0, 0, 0], "hop-by-hop")],
        4 => vec![(60, vec![0, 0, 1, 4, 0, 0, 0, 0], "destination options")],
        _ => vec![],
    };
    let later_fragment = chain.iter().any(|(_, _, d)| d.contains("later"));
    let p = if chain.is_empty() && matches!(proto, 6 | 17) && rng.chance(70) {
        let base = match proto {
            6 => Packet::tcp(src, dst, sp, dp, TcpFlags(fl)),
            _ => Packet::udp(src, dst, sp, dp),
        }
        .marker(marker);
        let natural = base.build().expect("packet").len();
        base.total_len(length(rng, natural, MTU)).build()
    } else if chain.is_empty() && proto == 58 && rng.chance(50) {
        desc.push_str(" echo");
        let base = Packet::icmp_echo(src, dst, 9, 1).marker(marker);
        let natural = base.build().expect("packet").len();
        base.total_len(length(rng, natural, MTU)).build()
    } else {
        let mut payload = Vec::new();
        let mut first = proto;
        for (i, (next, bytes, what)) in chain.iter().enumerate() {
            if i == 0 {
                first = *next;
            }
            let mut b = bytes.clone();
            b[0] = chain.get(i + 1).map_or(proto, |c| c.0);
            payload.extend_from_slice(&b);
            desc.push_str(&format!(" {what}"));
        }
        match later_fragment {
            // A later fragment carries the middle of a datagram, not a transport header.
            true => payload.extend((0..16).map(|_| rng.range(0, 255) as u8)),
            false => payload.extend(transport_bytes(proto, sp, dp, fl, rng)),
        }
        if proto == 58 && !later_fragment {
            let t = &payload[payload.len() - 8..];
            desc.push_str(&format!(" type {} code {}", t[0], t[1]));
        }
        let base = Packet::raw(src, dst, first).payload(payload).marker(marker);
        let natural = base.build().expect("packet").len();
        base.total_len(length(rng, natural, MTU)).build()
    };
    let p = p.expect("build IPv6 packet");
    desc.push_str(&format!(" next header {proto}"));
    if matches!(proto, 6 | 17 | 132) && !later_fragment {
        desc.push_str(&format!(" ports {sp} > {dp}"));
    }
    if proto == 6 && !later_fragment {
        desc.push_str(&format!(" flags {fl:#04x}"));
    }
    desc.push_str(&format!(", {} bytes", p.len()));
    (p, desc)
}
