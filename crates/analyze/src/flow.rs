//! Flows and packet identity.
//!
//! A **flow** is (IP version, protocol, source address, source port, destination address,
//! destination port). Ports are read for TCP, UDP, UDP-Lite, SCTP and DCCP. ICMP and ICMPv6
//! have no ports; their flows are keyed instead by the ICMP type and, for echo request/reply,
//! the echo identifier (one `ping` run is one flow per direction), otherwise by type and code
//! (so "port unreachable" is a flow of its own). Non-first fragments carry no transport header:
//! they form a flow without ports.
//!
//! A packet's **identity** within its flow is a hash of fields that stay the same from one
//! capture point or hop to the next when no NAT rewrites the packet: the IPv4 identification,
//! fragment field and total length, or the IPv6 payload length and fragment header, and the
//! first [`HASHED_L4_BYTES`] bytes of the transport header and payload. TTL / hop limit, the
//! IPv4 header checksum, DSCP/ECN, the IPv6 flow label and extension headers before the
//! transport header (a routing header changes en route) are left out. Hashing a fixed prefix
//! lets captures with different snaplens still match, as long as each kept that many bytes past
//! the IP header. Translated packets (NAT, MSS clamping) get another identity; that is out of
//! scope, and they show up as missing. Equal identities (an identical retransmission) are not
//! an error: they are matched in time order.

use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

/// Transport bytes hashed into a packet's identity.
pub const HASHED_L4_BYTES: usize = 64;

/// Extension headers walked before giving up on finding the transport header.
const MAX_EXT_HEADERS: usize = 8;

/// The flow a packet belongs to. See the module documentation for how ICMP is keyed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FlowKey {
    /// 4 or 6.
    pub version: u8,
    /// IP protocol number (after IPv6 extension headers).
    pub protocol: u8,
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Source port (TCP, UDP, UDP-Lite, SCTP, DCCP; not for non-first fragments).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src_port: Option<u16>,
    /// Destination port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst_port: Option<u16>,
    /// ICMP or ICMPv6 type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmp_type: Option<u8>,
    /// ICMP code, for types other than echo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmp_code: Option<u8>,
    /// Echo identifier, for echo request and reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmp_id: Option<u16>,
}

/// A packet's flow and its identity within the flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// The flow.
    pub flow: FlowKey,
    /// Hash of the invariant fields (see the module documentation).
    pub ident: u64,
}

/// Flow and identity of an IP packet (as [`edgecap_pcap::read::Packet::ip`] gives it); `None`
/// when it is too short for its IP header.
pub fn inspect(ip: &[u8]) -> Option<Observation> {
    let mut h = DefaultHasher::new();
    let (mut flow, l4, first_fragment) = match ip.first()? >> 4 {
        4 => ipv4(ip, &mut h)?,
        6 => ipv6(ip, &mut h)?,
        _ => return None,
    };
    let mut hashed = [0u8; HASHED_L4_BYTES];
    let n = l4.len().min(HASHED_L4_BYTES);
    hashed[..n].copy_from_slice(&l4[..n]);
    if first_fragment {
        transport(&mut flow, l4);
        if let Some(range) = checksum_range(flow.version, flow.protocol) {
            for b in hashed.iter_mut().take(range.end.min(n)).skip(range.start) {
                *b = 0;
            }
        }
    }
    (flow.protocol, n, hashed).hash(&mut h);
    Some(Observation {
        flow,
        ident: h.finish(),
    })
}

fn be16(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(off..off + 2)?.try_into().ok()?))
}

fn key(version: u8, protocol: u8, src: IpAddr, dst: IpAddr) -> FlowKey {
    FlowKey {
        version,
        protocol,
        src,
        dst,
        src_port: None,
        dst_port: None,
        icmp_type: None,
        icmp_code: None,
        icmp_id: None,
    }
}

/// (flow without ports, transport bytes, whether this is a first fragment or unfragmented).
fn ipv4<'a>(ip: &'a [u8], h: &mut DefaultHasher) -> Option<(FlowKey, &'a [u8], bool)> {
    let ihl = usize::from(ip.first()? & 0x0F) * 4;
    let src: [u8; 4] = ip.get(12..16)?.try_into().ok()?;
    let dst: [u8; 4] = ip.get(16..20)?.try_into().ok()?;
    let l4 = ip.get(ihl.max(20)..)?;
    let (total, id, frag) = (be16(ip, 2)?, be16(ip, 4)?, be16(ip, 6)?);
    (4u8, total, id, frag).hash(h);
    let flow = key(
        4,
        *ip.get(9)?,
        Ipv4Addr::from(src).into(),
        Ipv4Addr::from(dst).into(),
    );
    Some((flow, l4, frag & 0x1FFF == 0))
}

fn ipv6<'a>(ip: &'a [u8], h: &mut DefaultHasher) -> Option<(FlowKey, &'a [u8], bool)> {
    let src: [u8; 16] = ip.get(8..24)?.try_into().ok()?;
    let dst: [u8; 16] = ip.get(24..40)?.try_into().ok()?;
    (6u8, be16(ip, 4)?).hash(h);
    let mut next = *ip.get(6)?;
    let mut off = 40usize;
    let mut first_fragment = true;
    for _ in 0..MAX_EXT_HEADERS {
        let (Some(&nh), Some(&len)) = (ip.get(off), ip.get(off + 1)) else {
            break;
        };
        let size = match next {
            // Hop-by-hop, routing, destination options, mobility, HIP, shim6: (len + 1) * 8.
            0 | 43 | 60 | 135 | 139 | 140 => (usize::from(len) + 1) * 8,
            44 => {
                let field = be16(ip, off + 2).unwrap_or(0);
                let id = ip.get(off + 4..off + 8).unwrap_or_default();
                (field, id).hash(h);
                first_fragment = field & 0xFFF8 == 0;
                8
            }
            // Authentication header: (len + 2) * 4.
            51 => (usize::from(len) + 2) * 4,
            _ => break,
        };
        next = nh;
        off += size;
        if !first_fragment {
            break;
        }
    }
    let l4 = ip.get(off..).unwrap_or_default();
    let flow = key(
        6,
        next,
        Ipv6Addr::from(src).into(),
        Ipv6Addr::from(dst).into(),
    );
    Some((flow, l4, first_fragment))
}

fn transport(flow: &mut FlowKey, l4: &[u8]) {
    match (flow.version, flow.protocol) {
        (_, 6 | 17 | 33 | 132 | 136) => {
            flow.src_port = be16(l4, 0);
            flow.dst_port = be16(l4, 2);
        }
        (4, 1) | (6, 58) => {
            let Some(&ty) = l4.first() else { return };
            flow.icmp_type = Some(ty);
            if is_echo(flow.version, ty) {
                flow.icmp_id = be16(l4, 4);
            } else {
                flow.icmp_code = l4.get(1).copied();
            }
        }
        _ => {}
    }
}

/// Where the transport checksum sits: left out of the identity, because a capture taken on the
/// sending host sees it before checksum offload fills it in.
fn checksum_range(version: u8, protocol: u8) -> Option<std::ops::Range<usize>> {
    match (version, protocol) {
        (_, 6) => Some(16..18),
        (_, 17 | 33 | 136) => Some(6..8),
        (_, 132) => Some(8..12),
        (4, 1) | (6, 58) => Some(2..4),
        _ => None,
    }
}

fn is_echo(version: u8, ty: u8) -> bool {
    matches!((version, ty), (4, 0 | 8) | (6, 128 | 129))
}

/// A protocol's usual lower-case name, or `proto N`.
pub fn protocol_name(protocol: u8) -> String {
    let name = match protocol {
        1 => "icmp",
        2 => "igmp",
        4 => "ipip",
        6 => "tcp",
        17 => "udp",
        33 => "dccp",
        41 => "ipv6",
        47 => "gre",
        50 => "esp",
        51 => "ah",
        58 => "icmpv6",
        89 => "ospf",
        103 => "pim",
        112 => "vrrp",
        132 => "sctp",
        136 => "udplite",
        n => return format!("proto {n}"),
    };
    name.to_owned()
}

struct Endpoint<'a>(&'a IpAddr, Option<u16>);

impl fmt::Display for Endpoint<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.0, self.1) {
            (IpAddr::V6(a), Some(p)) => write!(f, "[{a}]:{p}"),
            (a, Some(p)) => write!(f, "{a}:{p}"),
            (a, None) => write!(f, "{a}"),
        }
    }
}

/// `udp 198.18.0.2:40000 > 198.18.1.2:53`, `icmp 198.18.0.2 > 198.18.1.2 echo-request id 7`,
/// `icmp 198.18.1.1 > 198.18.0.2 type 3 code 3`, `tcp [2001:db8::1]:443 > [2001:db8::2]:5000`.
impl fmt::Display for FlowKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} > {}",
            protocol_name(self.protocol),
            Endpoint(&self.src, self.src_port),
            Endpoint(&self.dst, self.dst_port)
        )?;
        match (self.icmp_type, self.icmp_code, self.icmp_id) {
            (Some(ty), _, Some(id)) => {
                let what = if matches!(ty, 8 | 128) {
                    "echo-request"
                } else {
                    "echo-reply"
                };
                write!(f, " {what} id {id}")
            }
            (Some(ty), Some(code), None) => write!(f, " type {ty} code {code}"),
            (Some(ty), None, None) => write!(f, " type {ty}"),
            _ => Ok(()),
        }
    }
}
