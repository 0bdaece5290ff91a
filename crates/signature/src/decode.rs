//! What the candidate search looks at in one packet: a few header fields, decoded once with
//! tcpdump's reading of them (the IPv6 fixed header's next header, no extension header walked;
//! ports and TCP flags only in a first fragment). Whether a proposed field holds is decided by
//! the filter crate's matcher on the compiled expression, never here: this only finds values.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use edgecap_filter::expr::ast::MAX_FIELD_REACH;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Family {
    V4,
    V6,
}

#[derive(Debug, Clone)]
pub(crate) struct Decoded<'a> {
    pub family: Family,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// IPv4 protocol; IPv6 fixed header's next header.
    pub proto: u8,
    /// TTL / hop limit.
    pub ttl: u8,
    /// The length the IP header states (tcpdump's `len` on a RAW capture, nft's `meta length`).
    pub len: u32,
    /// Source and destination port: TCP, UDP or SCTP, first fragment, header present.
    pub ports: Option<(u16, u16)>,
    /// Byte 13 of a TCP header that is there.
    pub tcp_flags: Option<u8>,
    /// IPv4 only (libpcap's `tcp[]`/`udp[]`/`icmp[]` never read IPv6): the transport bytes
    /// from the start of its header, at most [`MAX_FIELD_REACH`] of them, in a first fragment
    /// of TCP, UDP or ICMP.
    pub transport: Option<&'a [u8]>,
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// `None` for bytes that are not an IPv4 or IPv6 header.
pub(crate) fn decode(ip: &[u8]) -> Option<Decoded<'_>> {
    match ip.first()? >> 4 {
        4 => v4(ip),
        6 => v6(ip),
        _ => None,
    }
}

fn v4(ip: &[u8]) -> Option<Decoded<'_>> {
    let h = ip.get(..20)?;
    let hl = usize::from(h[0] & 0x0f) * 4;
    if hl < 20 {
        return None;
    }
    let total = usize::from(be16(h, 2)?);
    let end = if total == 0 {
        ip.len()
    } else {
        total.min(ip.len())
    };
    let first_fragment = be16(h, 6)? & 0x1fff == 0;
    let proto = h[9];
    let th = ip.get(hl..end.max(hl)).filter(|_| first_fragment);
    let ports = th
        .filter(|_| matches!(proto, 6 | 17 | 132))
        .and_then(|t| Some((be16(t, 0)?, be16(t, 2)?)));
    let tcp_flags = th.filter(|_| proto == 6).and_then(|t| t.get(13).copied());
    let transport = th
        .filter(|_| matches!(proto, 1 | 6 | 17))
        .map(|t| &t[..t.len().min(usize::from(MAX_FIELD_REACH))]);
    Some(Decoded {
        family: Family::V4,
        src: IpAddr::V4(Ipv4Addr::new(h[12], h[13], h[14], h[15])),
        dst: IpAddr::V4(Ipv4Addr::new(h[16], h[17], h[18], h[19])),
        proto,
        ttl: h[8],
        len: if total == 0 {
            ip.len() as u32
        } else {
            total as u32
        },
        ports,
        tcp_flags,
        transport,
    })
}

fn v6(ip: &[u8]) -> Option<Decoded<'_>> {
    let h = ip.get(..40)?;
    let addr = |at: usize| -> Option<IpAddr> {
        let o: [u8; 16] = h.get(at..at + 16)?.try_into().ok()?;
        Some(IpAddr::V6(Ipv6Addr::from(o)))
    };
    let payload = u32::from(be16(h, 4)?);
    let proto = h[6];
    let ports = matches!(proto, 6 | 17 | 132)
        .then(|| Some((be16(ip, 40)?, be16(ip, 42)?)))
        .flatten();
    let tcp_flags = (proto == 6).then(|| ip.get(53).copied()).flatten();
    Some(Decoded {
        family: Family::V6,
        src: addr(8)?,
        dst: addr(24)?,
        proto,
        ttl: h[7],
        len: if payload == 0 {
            ip.len() as u32
        } else {
            40 + payload
        },
        ports,
        tcp_flags,
        transport: None,
    })
}
