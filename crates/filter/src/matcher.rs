//! A userspace twin of the kernel's evaluation of compiled rules, for tests (the differential test
//! against libpcap and the kernel) and for filtering packets that are already in user space.
//!
//! It follows nf_tables rather than BPF where the two differ:
//! - `meta l4proto` on IPv6 walks extension headers as `ipv6_find_hdr()` does (hop-by-hop,
//!   routing, fragment, destination options, AH with its own length unit); a header that cannot
//!   be read leaves the packet without a transport protocol, and then neither `meta l4proto N`
//!   nor `meta l4proto != N` matches (nft's "break": the rule is skipped).
//! - `th` ports and every transport-header load need a first fragment (offset 0) and the bytes
//!   they read; network-header loads read the datagram as trimmed to its length field.
//! - A value that cannot be loaded fails the whole rule, even a negated test; later rules are
//!   still tried.
//! - The IPv4 total length and IPv6 payload length trim trailing bytes (link-layer padding), as
//!   the kernel trims the skb. Unlike the kernel's input validation, a packet shorter than its
//!   length field is still evaluated on the bytes present, so packets cut by a snap length match
//!   on whatever their headers show.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::address::{family_of, mask};
use crate::ir::{Base, Conjunction, Dir, Family, Match};

/// Whether any rule matches `ip_packet`, a raw IPv4 or IPv6 packet with no link-layer header.
/// Bytes that are not an IP header match nothing, not even the empty rule. Never panics.
pub fn matches(conjunctions: &[Conjunction], ip_packet: &[u8]) -> bool {
    let Some(packet) = Packet::parse(ip_packet) else {
        return false;
    };
    conjunctions
        .iter()
        .any(|c| c.matches.iter().all(|m| packet.test(m)))
}

/// What the rules can look at, decoded once per packet.
struct Packet<'a> {
    family: Family,
    src: IpAddr,
    dst: IpAddr,
    /// The datagram, trimmed to its length field.
    data: &'a [u8],
    /// `None` where nf_tables finds no transport protocol (`NFT_PKTINFO_L4PROTO` unset).
    transport: Option<Transport>,
    /// The packet's length on the wire as its header states it (`meta len` in the kernel).
    wire_len: u32,
}

#[derive(Clone, Copy)]
struct Transport {
    proto: u8,
    /// Offset of the transport header in `data`.
    offset: usize,
    /// Non-zero for every fragment but the first, which alone carries the transport header.
    fragment_offset: u16,
}

impl<'a> Packet<'a> {
    fn parse(bytes: &'a [u8]) -> Option<Self> {
        match bytes.first()? >> 4 {
            4 => Self::parse_v4(bytes),
            6 => Self::parse_v6(bytes),
            _ => None,
        }
    }

    fn parse_v4(bytes: &'a [u8]) -> Option<Self> {
        let header: &[u8; 20] = bytes.get(..20)?.try_into().ok()?;
        let header_len = usize::from(header[0] & 0x0f) * 4;
        if header_len < 20 || header_len > bytes.len() {
            return None;
        }
        let total_len = usize::from(be16(header, 2));
        // Zero is what GSO packets carry (the kernel then takes the skb length).
        let end = if total_len == 0 {
            bytes.len()
        } else {
            total_len.min(bytes.len())
        };
        // A total length inside the header is corrupt: nf_tables then sets no transport protocol.
        let transport = (total_len == 0 || total_len >= header_len).then(|| Transport {
            proto: header[9],
            offset: header_len,
            fragment_offset: be16(header, 6) & 0x1fff,
        });
        Some(Packet {
            family: Family::V4,
            src: IpAddr::V4(Ipv4Addr::new(
                header[12], header[13], header[14], header[15],
            )),
            dst: IpAddr::V4(Ipv4Addr::new(
                header[16], header[17], header[18], header[19],
            )),
            data: bytes.get(..end.max(header_len))?,
            transport,
            wire_len: if total_len == 0 {
                bytes.len() as u32
            } else {
                total_len as u32
            },
        })
    }

    fn parse_v6(bytes: &'a [u8]) -> Option<Self> {
        let header: &[u8; 40] = bytes.get(..40)?.try_into().ok()?;
        let payload_len = usize::from(be16(header, 4));
        // Zero means a jumbogram, whose length lives in a hop-by-hop option.
        let end = if payload_len == 0 {
            bytes.len()
        } else {
            (40 + payload_len).min(bytes.len())
        };
        let data = bytes.get(..end)?;
        let addr = |at: usize| -> Option<IpAddr> {
            let octets: [u8; 16] = header.get(at..at + 16)?.try_into().ok()?;
            Some(IpAddr::V6(Ipv6Addr::from(octets)))
        };
        Some(Packet {
            family: Family::V6,
            src: addr(8)?,
            dst: addr(24)?,
            data,
            transport: find_transport_v6(data, header[6]),
            wire_len: if payload_len == 0 {
                bytes.len() as u32
            } else {
                40 + payload_len as u32
            },
        })
    }

    fn test(&self, m: &Match) -> bool {
        match *m {
            Match::Family(f) => self.family == f,
            Match::L4Proto { proto, negate } => {
                self.transport.is_some_and(|t| (t.proto == proto) != negate)
            }
            Match::Addr {
                dir,
                addr,
                prefix_len,
                negate,
            } => {
                let ours = match dir {
                    Dir::Src => self.src,
                    Dir::Dst => self.dst,
                };
                // Another family's address is a load nft cannot do (it guards `ip saddr` with
                // the nfproto), so it fails even when negated.
                family_of(addr) == self.family
                    && (mask(ours, prefix_len) == mask(addr, prefix_len)) != negate
            }
            Match::Port {
                dir,
                lo,
                hi,
                negate,
            } => self
                .port(dir)
                .is_some_and(|p| (lo..=hi).contains(&p) != negate),
            Match::TcpFlags {
                mask,
                value,
                negate,
            } => self
                .tcp_flags()
                .is_some_and(|f| (f & mask == value) != negate),
            Match::Length { op, value } => op.holds(self.wire_len, value),
            Match::Payload(ref p) => {
                let start = match p.base {
                    Base::Network => Some(0),
                    Base::Transport => self
                        .transport
                        .filter(|t| t.fragment_offset == 0)
                        .map(|t| t.offset),
                };
                start
                    .and_then(|s| s.checked_add(usize::from(p.offset)))
                    .and_then(|at| p.load(self.data, at))
                    .is_some_and(|v| p.test.holds(v))
            }
        }
    }

    /// Byte 13 of a TCP header that is present (first fragment, long enough).
    fn tcp_flags(&self) -> Option<u8> {
        let t = self.transport?;
        if t.proto != 6 || t.fragment_offset != 0 {
            return None;
        }
        self.data.get(t.offset.checked_add(13)?).copied()
    }

    /// `th sport` / `th dport`: bytes 0-1 / 2-3 of whatever transport header is there.
    fn port(&self, dir: Dir) -> Option<u16> {
        let t = self.transport?;
        if t.fragment_offset != 0 {
            return None;
        }
        let at = t.offset.checked_add(if dir == Dir::Src { 0 } else { 2 })?;
        let bytes = self.data.get(at..at.checked_add(2)?)?;
        Some(u16::from_be_bytes([bytes[0], bytes[1]]))
    }
}

const HOP_BY_HOP: u8 = 0;
const ROUTING: u8 = 43;
const FRAGMENT: u8 = 44;
const AH: u8 = 51;
const NO_NEXT_HEADER: u8 = 59;
const DEST_OPTS: u8 = 60;

/// The kernel's `ipv6_ext_hdr()`; note it counts "no next header" as one.
fn is_extension(next: u8) -> bool {
    matches!(
        next,
        HOP_BY_HOP | ROUTING | FRAGMENT | AH | NO_NEXT_HEADER | DEST_OPTS
    )
}

/// `ipv6_find_hdr(skb, &thoff, -1, &fragoff, NULL)` as nf_tables calls it.
fn find_transport_v6(data: &[u8], first: u8) -> Option<Transport> {
    let mut next = first;
    let mut offset = 40usize;
    while is_extension(next) && next != NO_NEXT_HEADER {
        let header = data.get(offset..offset.checked_add(2)?)?;
        let header_len = match next {
            // The kernel reads the 4-byte fixed part of a routing header before moving on.
            ROUTING => data
                .get(offset..offset + 4)
                .map(|_| (usize::from(header[1]) + 1) * 8)?,
            FRAGMENT => {
                let raw = data.get(offset + 2..offset + 4)?;
                let fragment_offset = u16::from_be_bytes([raw[0], raw[1]]) & !0x7;
                if fragment_offset != 0 {
                    // A later fragment: its next header is the answer if it is a protocol; an
                    // extension header there is an error (-ENOENT), not something to walk.
                    let proto = header[0];
                    return (!is_extension(proto) || proto == NO_NEXT_HEADER).then_some(
                        Transport {
                            proto,
                            offset,
                            fragment_offset,
                        },
                    );
                }
                8
            }
            AH => (usize::from(header[1]) + 2) * 4,
            _ => (usize::from(header[1]) + 1) * 8,
        };
        next = header[0];
        offset += header_len;
    }
    // nf_tables refuses transport offsets that do not fit its u16.
    (offset <= usize::from(u16::MAX)).then_some(Transport {
        proto: next,
        offset,
        fragment_offset: 0,
    })
}

fn be16(bytes: &[u8], at: usize) -> u16 {
    match bytes.get(at..at + 2) {
        Some(&[hi, lo]) => u16::from_be_bytes([hi, lo]),
        _ => 0,
    }
}

#[cfg(test)]
#[path = "matcher_tests.rs"]
mod tests;
