//! From a link-layer frame to the IP packet inside it, for the linktypes capture tools write on
//! Linux (and a few from elsewhere). Total: a frame too short for its header, or carrying
//! something other than IPv4/IPv6 (ARP, LLDP, a truncated tag), yields `None`, never a panic.
//!
//! The IP packet is trimmed to the length its own header declares, so Ethernet padding (frames
//! are padded to 60 bytes) is not mistaken for payload. Packets whose declared length is 0 (TSO)
//! or larger than what was captured (snaplen) are returned as captured.

use super::bytes::{Endian, be16, u16_at, u32_at};

/// No link layer: the frame is the IP packet, and the version nibble tells v4 from v6.
pub const LINKTYPE_RAW: u16 = 101;
/// `DLT_RAW` as most systems number it; some writers put the DLT instead of the LINKTYPE.
pub const DLT_RAW_12: u16 = 12;
/// `DLT_RAW` as OpenBSD numbers it.
pub const DLT_RAW_14: u16 = 14;
/// Raw IPv4 only.
pub const LINKTYPE_IPV4: u16 = 228;
/// Raw IPv6 only.
pub const LINKTYPE_IPV6: u16 = 229;
/// Ethernet II, with 802.1Q / 802.1ad (QinQ) tags and PPPoE sessions understood.
pub const LINKTYPE_ETHERNET: u16 = 1;
/// Linux cooked capture v1 (16-byte header).
pub const LINKTYPE_LINUX_SLL: u16 = 113;
/// Linux cooked capture v2 (20-byte header).
pub const LINKTYPE_LINUX_SLL2: u16 = 276;
/// The NFLOG netlink message body.
pub const LINKTYPE_NFLOG: u16 = 239;
/// BSD loopback: a 4-byte address family in the writer's host byte order.
pub const LINKTYPE_NULL: u16 = 0;
/// OpenBSD loopback: a 4-byte address family in network byte order.
pub const LINKTYPE_LOOP: u16 = 108;
/// PPP (RFC 1661), optionally with HDLC-like address and control bytes.
pub const LINKTYPE_PPP: u16 = 9;
/// PPP in HDLC-like framing (RFC 1662).
pub const LINKTYPE_PPP_HDLC: u16 = 50;
/// PPP preceded by one direction byte.
pub const LINKTYPE_PPP_WITH_DIR: u16 = 204;

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86DD;
const ETHERTYPE_PPPOE_SESSION: u16 = 0x8864;
const NFULA_PAYLOAD: u16 = 9;
/// Netlink attribute type bits that are flags, not part of the type.
const NLA_TYPE_MASK: u16 = 0x3FFF;
/// Most VLAN tags we walk through before giving up (a loop guard; real frames have 1 or 2).
const MAX_TAGS: usize = 8;

/// The IP packet inside `frame`, or `None` when the frame holds no IPv4/IPv6 packet.
/// `file_order` is the byte order of the file or section the frame came from, which NFLOG's
/// TLV headers and NULL's family field use.
pub fn ip_packet(linktype: u16, frame: &[u8], file_order: Endian) -> Option<&[u8]> {
    match linktype {
        LINKTYPE_RAW | DLT_RAW_12 | DLT_RAW_14 => trim_ip(frame),
        LINKTYPE_IPV4 => trim_ip(frame).filter(|p| version(p) == Some(4)),
        LINKTYPE_IPV6 => trim_ip(frame).filter(|p| version(p) == Some(6)),
        LINKTYPE_ETHERNET => ethernet(frame),
        LINKTYPE_LINUX_SLL => ethertype_payload(be16(frame, 14)?, frame.get(16..)?),
        LINKTYPE_LINUX_SLL2 => ethertype_payload(be16(frame, 0)?, frame.get(20..)?),
        LINKTYPE_NFLOG => nflog(frame, file_order),
        LINKTYPE_NULL => loopback(frame, true, file_order),
        LINKTYPE_LOOP => loopback(frame, false, file_order),
        LINKTYPE_PPP | LINKTYPE_PPP_HDLC => ppp(frame),
        LINKTYPE_PPP_WITH_DIR => ppp(frame.get(1..)?),
        _ => None,
    }
}

fn version(p: &[u8]) -> Option<u8> {
    p.first().map(|b| b >> 4)
}

/// `p` if it starts with a plausible IPv4/IPv6 header, cut to its declared length.
pub(crate) fn trim_ip(p: &[u8]) -> Option<&[u8]> {
    match version(p)? {
        4 => {
            let ihl = usize::from(p.first()? & 0x0F) * 4;
            if ihl < 20 || p.len() < ihl {
                return None;
            }
            let total = usize::from(be16(p, 2)?);
            Some(if total >= ihl && total < p.len() {
                p.get(..total)?
            } else {
                p
            })
        }
        6 => {
            if p.len() < 40 {
                return None;
            }
            let payload = usize::from(be16(p, 4)?);
            let total = 40 + payload;
            Some(if payload > 0 && total < p.len() {
                p.get(..total)?
            } else {
                p
            })
        }
        _ => None,
    }
}

fn ethernet(frame: &[u8]) -> Option<&[u8]> {
    let mut ethertype = be16(frame, 12)?;
    let mut rest = frame.get(14..)?;
    for _ in 0..MAX_TAGS {
        match ethertype {
            // 802.1Q, 802.1ad (QinQ outer) and the pre-standard 0x9100: TCI, then the next type.
            0x8100 | 0x88A8 | 0x9100 => {
                ethertype = be16(rest, 2)?;
                rest = rest.get(4..)?;
            }
            _ => return ethertype_payload(ethertype, rest),
        }
    }
    None
}

fn ethertype_payload(ethertype: u16, rest: &[u8]) -> Option<&[u8]> {
    match ethertype {
        ETHERTYPE_IPV4 => trim_ip(rest).filter(|p| version(p) == Some(4)),
        ETHERTYPE_IPV6 => trim_ip(rest).filter(|p| version(p) == Some(6)),
        // PPPoE session: version/type, code, session id, length, then a PPP protocol field.
        ETHERTYPE_PPPOE_SESSION => ppp_protocol(rest.get(6..)?),
        _ => None,
    }
}

/// PPP: optional `FF 03` (address, control), then a 1- or 2-byte protocol field.
fn ppp(frame: &[u8]) -> Option<&[u8]> {
    let rest = match frame {
        [0xFF, 0x03, rest @ ..] => rest,
        _ => frame,
    };
    ppp_protocol(rest)
}

fn ppp_protocol(rest: &[u8]) -> Option<&[u8]> {
    // Protocol-field compression: an odd first byte is a 1-byte protocol.
    let (protocol, payload) = match rest {
        [p, payload @ ..] if p & 1 == 1 => (u16::from(*p), payload),
        [hi, lo, payload @ ..] => (u16::from_be_bytes([*hi, *lo]), payload),
        _ => return None,
    };
    match protocol {
        0x0021 => trim_ip(payload).filter(|p| version(p) == Some(4)),
        0x0057 => trim_ip(payload).filter(|p| version(p) == Some(6)),
        _ => None,
    }
}

/// NULL and LOOP: a 4-byte address family, then the packet. NULL's family is in the writing
/// host's order, which is not always the file's, so both orders are tried.
fn loopback(frame: &[u8], host_order: bool, file_order: Endian) -> Option<&[u8]> {
    let family = if host_order {
        let native = u32_at(frame, 0, file_order)?;
        let swapped = native.swap_bytes();
        if is_af(native) { native } else { swapped }
    } else {
        u32_at(frame, 0, Endian::Big)?
    };
    let want = match family {
        2 => 4,
        // AF_INET6 on Linux, the BSDs, Darwin, Windows.
        10 | 24 | 28 | 30 | 23 => 6,
        _ => return None,
    };
    trim_ip(frame.get(4..)?).filter(|p| version(p) == Some(want))
}

fn is_af(v: u32) -> bool {
    matches!(v, 2 | 10 | 23 | 24 | 28 | 30)
}

/// NFLOG: a 4-byte `nfgenmsg` (family, version, resource id), then TLVs whose length and type
/// are in the file's byte order and padded to 4 bytes; the packet is the `NFULA_PAYLOAD` value.
fn nflog(frame: &[u8], order: Endian) -> Option<&[u8]> {
    let family = *frame.first()?;
    let mut off = 4usize;
    while off + 4 <= frame.len() {
        let len = usize::from(u16_at(frame, off, order)?);
        let kind = u16_at(frame, off + 2, order)? & NLA_TYPE_MASK;
        if len < 4 {
            return None;
        }
        let value = frame.get(off + 4..off.checked_add(len)?)?;
        if kind == NFULA_PAYLOAD {
            let ip = trim_ip(value)?;
            return match (family, version(ip)) {
                // AF_INET = 2, AF_INET6 = 10; other families (bridge) still hold IP when the
                // version nibble says so.
                (2, Some(4)) | (10, Some(6)) => Some(ip),
                (2 | 10, _) => None,
                _ => Some(ip),
            };
        }
        off = off.checked_add(len.checked_add(3)? & !3)?;
    }
    None
}
