//! Per-second traffic rollups, per capture point, from exact counters and sampled packets.
//!
//! Packet and byte totals of a whole node come from the observer's nftables counters, so they
//! are exact. Everything else (IP versions, protocols, SYN/RST, lengths, heavy hitters) is
//! estimated from the samples, each standing for `one_in` packets. A rollup for an account
//! (a [`Roller`] with a [`Boundary`]) takes only samples inside the account's prefixes, and
//! its totals are estimates too: node counters cannot tell tenants apart.

use std::collections::BTreeMap;
use std::net::IpAddr;

use edgecap_filter::Boundary;
use etherparse::LaxSlicedPacket;

use crate::sketch::{Hitter, SpaceSaving};

/// Upper bounds (inclusive) of the packet-length histogram's buckets, in bytes of the IP
/// packet; the last bucket takes everything longer.
pub const LENGTH_BUCKETS: [u32; 8] = [64, 128, 256, 512, 1024, 1500, 9000, u32::MAX];

/// Keys a heavy-hitter sketch keeps per second and point.
pub const SKETCH_CAPACITY: usize = 64;

/// What the rollups read of a sampled packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Headers {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// The transport protocol (after IPv6 extension headers).
    pub proto: u8,
    /// Ports of TCP, UDP, SCTP and DCCP, in a first (or only) fragment.
    pub ports: Option<(u16, u16)>,
    /// TCP flags byte.
    pub tcp_flags: Option<u8>,
}

const TCP: u8 = 6;
const UDP: u8 = 17;
const ICMP: u8 = 1;
const ICMPV6: u8 = 58;

/// The headers of a raw IP packet, however short the sample; None when it is not IP.
pub fn headers(ip_packet: &[u8]) -> Option<Headers> {
    let sliced = LaxSlicedPacket::from_ip(ip_packet).ok()?;
    let net = sliced.net?;
    let (src, dst) = match &net {
        etherparse::LaxNetSlice::Ipv4(v4) => (
            IpAddr::V4(v4.header().source_addr()),
            IpAddr::V4(v4.header().destination_addr()),
        ),
        etherparse::LaxNetSlice::Ipv6(v6) => (
            IpAddr::V6(v6.header().source_addr()),
            IpAddr::V6(v6.header().destination_addr()),
        ),
        etherparse::LaxNetSlice::Arp(_) => return None,
    };
    let payload = net.ip_payload_ref()?;
    let proto = payload.ip_number.0;
    let t = payload.payload;
    let first = !payload.fragmented || is_first_fragment(ip_packet);
    let ports = (first && matches!(proto, TCP | UDP | 33 | 132) && t.len() >= 4).then(|| {
        (
            u16::from_be_bytes([t[0], t[1]]),
            u16::from_be_bytes([t[2], t[3]]),
        )
    });
    let tcp_flags = (first && proto == TCP && t.len() >= 14).then(|| t[13]);
    Some(Headers {
        src,
        dst,
        proto,
        ports,
        tcp_flags,
    })
}

/// IPv4: fragment offset 0. IPv6 fragments are counted as later ones (rare in samples).
fn is_first_fragment(p: &[u8]) -> bool {
    p.first().is_some_and(|b| b >> 4 == 4)
        && p.len() >= 8
        && u16::from_be_bytes([p[6], p[7]]) & 0x1fff == 0
}

/// One second of one point.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Second {
    /// Unix second.
    pub t: u64,
    pub point: String,
    /// The account whose traffic (inside its prefixes) this is; None: the whole node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    pub packets: u64,
    pub bytes: u64,
    /// True when `packets` and `bytes` are the counters' (a whole node); false when they are
    /// estimated from samples (an account's share).
    pub exact: bool,
    /// Samples taken in this second, and the most packets one stood for.
    pub samples: u64,
    pub one_in: u64,
    /// Estimated packets per IP version: `[IPv4, IPv6]`.
    pub families: [u64; 2],
    /// Estimated packets per protocol: TCP, UDP, ICMP (v4 and v6), other.
    pub tcp: u64,
    pub udp: u64,
    pub icmp: u64,
    pub other: u64,
    /// Estimated TCP segments with SYN (without ACK) and with RST.
    pub syn: u64,
    pub rst: u64,
    /// Estimated packets per [`LENGTH_BUCKETS`] bucket.
    pub lengths: [u64; 8],
    pub top_dst: Vec<Hitter<IpAddr>>,
    pub top_src: Vec<Hitter<IpAddr>>,
    pub top_dport: Vec<Hitter<u16>>,
}

#[derive(Debug, Clone)]
struct Acc {
    packets: u64,
    bytes: u64,
    counted: bool,
    samples: u64,
    est_packets: u64,
    est_bytes: u64,
    one_in: u64,
    families: [u64; 2],
    tcp: u64,
    udp: u64,
    icmp: u64,
    other: u64,
    syn: u64,
    rst: u64,
    lengths: [u64; 8],
    dst: SpaceSaving<IpAddr>,
    src: SpaceSaving<IpAddr>,
    dport: SpaceSaving<u16>,
}

impl Acc {
    fn new() -> Acc {
        Acc {
            packets: 0,
            bytes: 0,
            counted: false,
            samples: 0,
            est_packets: 0,
            est_bytes: 0,
            one_in: 0,
            families: [0; 2],
            tcp: 0,
            udp: 0,
            icmp: 0,
            other: 0,
            syn: 0,
            rst: 0,
            lengths: [0; 8],
            dst: SpaceSaving::new(SKETCH_CAPACITY),
            src: SpaceSaving::new(SKETCH_CAPACITY),
            dport: SpaceSaving::new(SKETCH_CAPACITY),
        }
    }
}

/// Builds [`Second`]s for a node (no boundary) or for one account (its [`Boundary`]).
#[derive(Debug)]
pub struct Roller {
    points: Vec<String>,
    account: Option<String>,
    boundary: Option<Boundary>,
    top: usize,
    open: BTreeMap<(u64, u16), Acc>,
    closed: std::collections::VecDeque<Second>,
    late: u64,
}

/// Seconds (per point) a roller keeps open before it closes the oldest on its own; data for
/// a second older than every open one is then dropped and counted, never held without bound.
pub const MAX_OPEN_SECONDS: usize = 16;

impl Roller {
    /// A roller over `points` (names by index) for the whole node, keeping the `top`
    /// heaviest keys per second.
    pub fn new(points: Vec<String>, boundary: Option<Boundary>, top: usize) -> Roller {
        Roller {
            points,
            account: None,
            boundary,
            top: top.min(SKETCH_CAPACITY),
            open: BTreeMap::new(),
            closed: std::collections::VecDeque::new(),
            late: 0,
        }
    }

    /// A roller for `account`'s traffic, inside its `boundary`.
    pub fn for_account(
        points: Vec<String>,
        account: String,
        boundary: Boundary,
        top: usize,
    ) -> Roller {
        Roller {
            account: Some(account),
            ..Roller::new(points, Some(boundary), top)
        }
    }

    pub fn account(&self) -> Option<&str> {
        self.account.as_deref()
    }

    pub fn boundary(&self) -> Option<&Boundary> {
        self.boundary.as_ref()
    }

    fn acc(&mut self, t: u64, point: u16) -> Option<&mut Acc> {
        let key = (t, point);
        let max_open = MAX_OPEN_SECONDS * self.points.len().max(1);
        if !self.open.contains_key(&key) && self.open.len() >= max_open {
            let oldest = *self.open.keys().next().expect("a full map has keys");
            if key < oldest {
                self.late += 1;
                return None;
            }
            // Close the oldest early; what the caller has not collected is bounded too.
            let a = self.open.remove(&oldest).expect("listed");
            let second = self.finish(oldest, a);
            if self.closed.len() >= max_open {
                self.closed.pop_front();
                self.late += 1;
            }
            self.closed.push_back(second);
        }
        Some(self.open.entry(key).or_insert_with(Acc::new))
    }

    /// Samples and seconds dropped because they came too late or were never collected.
    pub fn late(&self) -> u64 {
        self.late
    }

    /// The counters' exact packets and bytes of `point` during second `t`. Ignored for an
    /// account's roller, whose totals come from its samples.
    pub fn counters(&mut self, t: u64, point: u16, packets: u64, bytes: u64) {
        if self.boundary.is_some() {
            return;
        }
        if let Some(a) = self.acc(t, point) {
            a.packets += packets;
            a.bytes += bytes;
            a.counted = true;
        }
    }

    /// One sampled packet of `point` at `ts_ns`, `orig_len` bytes long, standing for
    /// `one_in` packets. Samples outside the boundary (or not IP) are not counted.
    pub fn sample(&mut self, ts_ns: u64, point: u16, orig_len: u32, data: &[u8], one_in: u64) {
        let Some(h) = headers(data) else { return };
        if let Some(b) = &self.boundary
            && !b.admits_addrs(h.src, h.dst)
        {
            return;
        }
        let Some(a) = self.acc(ts_ns / 1_000_000_000, point) else {
            return;
        };
        let w = one_in.max(1);
        a.samples += 1;
        a.one_in = a.one_in.max(w);
        a.est_packets += w;
        a.est_bytes += w * u64::from(orig_len);
        a.families[usize::from(h.dst.is_ipv6())] += w;
        match h.proto {
            TCP => a.tcp += w,
            UDP => a.udp += w,
            ICMP | ICMPV6 => a.icmp += w,
            _ => a.other += w,
        }
        if let Some(f) = h.tcp_flags {
            // SYN without ACK: connection attempts; RST: refusals and resets.
            a.syn += w * u64::from(f & 0x12 == 0x02);
            a.rst += w * u64::from(f & 0x04 != 0);
        }
        let bucket = LENGTH_BUCKETS
            .iter()
            .position(|b| orig_len <= *b)
            .unwrap_or(LENGTH_BUCKETS.len() - 1);
        a.lengths[bucket] += w;
        a.dst.add(h.dst, w);
        a.src.add(h.src, w);
        if let Some((_, dport)) = h.ports {
            a.dport.add(dport, w);
        }
    }

    /// Closes every second before `until` (unix seconds), oldest first, after any closed
    /// early because too many were open (of those, the newest are kept).
    pub fn close(&mut self, until: u64) -> Vec<Second> {
        let mut out: Vec<Second> = std::mem::take(&mut self.closed).into();
        let closing: Vec<(u64, u16)> = self
            .open
            .keys()
            .take_while(|(t, _)| *t < until)
            .copied()
            .collect();
        for key in closing {
            let a = self.open.remove(&key).expect("listed");
            out.push(self.finish(key, a));
        }
        out
    }

    fn finish(&self, (t, point): (u64, u16), a: Acc) -> Second {
        let (packets, bytes, exact) = match a.counted {
            true => (a.packets, a.bytes, true),
            false => (a.est_packets, a.est_bytes, false),
        };
        Second {
            t,
            point: self
                .points
                .get(usize::from(point))
                .cloned()
                .unwrap_or_else(|| format!("point{point}")),
            account: self.account.clone(),
            packets,
            bytes,
            exact,
            samples: a.samples,
            one_in: a.one_in,
            families: a.families,
            tcp: a.tcp,
            udp: a.udp,
            icmp: a.icmp,
            other: a.other,
            syn: a.syn,
            rst: a.rst,
            lengths: a.lengths,
            top_dst: a.dst.top(self.top),
            top_src: a.src.top(self.top),
            top_dport: a.dport.top(self.top),
        }
    }
}

#[cfg(test)]
#[path = "rollup_tests.rs"]
mod tests;
