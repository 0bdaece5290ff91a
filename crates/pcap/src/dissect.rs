//! A packet's headers as people read them: the link layer (Ethernet with VLAN tags, Linux
//! cooked v1/v2, raw IP), IPv4, IPv6 with its extension headers, TCP, UDP, ICMP and ICMPv6,
//! each as a named layer of named fields, a tcpdump-like one-line summary, a printable
//! preview of the payload, and a hex dump. For the dashboard's packet view.
//!
//! Pure and total: any bytes yield a [`Dissection`] (a header cut short says so in its
//! layer and ends the decoding), never a panic. The IP packet inside a frame is found by
//! [`crate::read::ip_packet`], the reader's own rule, so the view and the reader agree.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::read::{
    DLT_RAW_12, DLT_RAW_14, Endian, LINKTYPE_ETHERNET, LINKTYPE_IPV4, LINKTYPE_IPV6,
    LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2, LINKTYPE_RAW, ip_packet,
};

/// Most IPv6 extension headers walked before the rest is left undecoded.
pub const MAX_EXTENSION_HEADERS: usize = 8;
/// Most VLAN tags shown.
const MAX_TAGS: usize = 8;
/// Most payload bytes in [`Dissection::payload_preview`].
pub const PREVIEW_BYTES: usize = 48;

/// One header: its name, where it starts in the frame, how long it is, and its fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    pub name: String,
    pub offset: usize,
    pub len: usize,
    pub fields: Vec<(String, String)>,
}

impl Layer {
    fn new(name: impl Into<String>, offset: usize, len: usize) -> Self {
        Layer {
            name: name.into(),
            offset,
            len,
            fields: Vec::new(),
        }
    }

    fn add(&mut self, name: &str, value: impl std::fmt::Display) {
        self.fields.push((name.to_owned(), value.to_string()));
    }
}

/// What a packet is, decoded as far as its bytes go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dissection {
    pub layers: Vec<Layer>,
    pub src: Option<String>,
    pub dst: Option<String>,
    pub src_port: Option<u16>,
    pub dst_port: Option<u16>,
    /// `TCP`, `UDP`, `ICMP`, `ICMPv6`, `IPv4`/`IPv6` (another protocol) or `non-IP`.
    pub protocol: String,
    /// The one-line summary (tcpdump's words where it has them).
    pub info: String,
    /// Up to [`PREVIEW_BYTES`] of the innermost payload, printable ASCII, `.` for the rest.
    pub payload_preview: String,
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn mac(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn ethertype_name(t: u16) -> String {
    match t {
        0x0800 => "IPv4 (0x0800)".into(),
        0x86DD => "IPv6 (0x86dd)".into(),
        0x0806 => "ARP (0x0806)".into(),
        0x8100 => "802.1Q (0x8100)".into(),
        0x88A8 => "802.1ad (0x88a8)".into(),
        0x8864 => "PPPoE session (0x8864)".into(),
        t => format!("0x{t:04x}"),
    }
}

/// The name of an IP protocol number (also IPv6's next header).
pub fn protocol_name(p: u8) -> &'static str {
    match p {
        0 => "IPv6 hop-by-hop options",
        1 => "ICMP",
        2 => "IGMP",
        4 => "IPv4 in IP",
        6 => "TCP",
        17 => "UDP",
        41 => "IPv6 in IP",
        43 => "IPv6 routing",
        44 => "IPv6 fragment",
        47 => "GRE",
        50 => "ESP",
        51 => "AH",
        58 => "ICMPv6",
        59 => "no next header",
        60 => "IPv6 destination options",
        132 => "SCTP",
        _ => "unknown",
    }
}

fn cut(layer: &mut Layer, have: usize, need: usize) {
    layer.add(
        "truncated",
        format!("the header needs {need} bytes, {have} were captured"),
    );
}

/// Decodes `frame` of `linktype` (`order`: the file's byte order, which NFLOG and BSD
/// loopback frames use).
pub fn dissect(linktype: u16, frame: &[u8], order: Endian) -> Dissection {
    let mut d = Dissection {
        protocol: "non-IP".into(),
        ..Dissection::default()
    };
    link_layer(&mut d, linktype, frame);
    let Some(ip) = ip_packet(linktype, frame, order) else {
        if d.info.is_empty() {
            d.info = format!("no IP packet in this frame (link type {linktype})");
        }
        d.payload_preview = preview(frame);
        return d;
    };
    // A sub-slice of `frame`: its offset is the distance between the two starts.
    let base = (ip.as_ptr() as usize).saturating_sub(frame.as_ptr() as usize);
    match ip.first().map(|b| b >> 4) {
        Some(4) => ipv4(&mut d, ip, base),
        Some(6) => ipv6(&mut d, ip, base),
        _ => {}
    }
    d
}

fn link_layer(d: &mut Dissection, linktype: u16, frame: &[u8]) {
    match linktype {
        LINKTYPE_ETHERNET => {
            let mut l = Layer::new("Ethernet", 0, 14.min(frame.len()));
            if frame.len() < 14 {
                cut(&mut l, frame.len(), 14);
                d.layers.push(l);
                return;
            }
            l.add("destination", mac(&frame[0..6]));
            l.add("source", mac(&frame[6..12]));
            let mut at = 12;
            let mut tags = 0;
            while let Some(t @ (0x8100 | 0x88A8)) = be16(frame, at) {
                let Some(tci) = be16(frame, at + 2) else {
                    cut(&mut l, frame.len(), at + 4);
                    break;
                };
                l.add(
                    "VLAN tag",
                    format!(
                        "{} id {} priority {}",
                        ethertype_name(t),
                        tci & 0x0fff,
                        tci >> 13
                    ),
                );
                at += 4;
                tags += 1;
                if tags == MAX_TAGS {
                    break;
                }
            }
            if let Some(t) = be16(frame, at) {
                l.add("type", ethertype_name(t));
                if !matches!(t, 0x0800 | 0x86DD) {
                    d.info = format!("Ethernet, {}", ethertype_name(t));
                }
            }
            l.len = (at + 2).min(frame.len());
            d.layers.push(l);
        }
        LINKTYPE_LINUX_SLL2 => {
            let mut l = Layer::new("Linux cooked capture v2", 0, 20.min(frame.len()));
            if frame.len() < 20 {
                cut(&mut l, frame.len(), 20);
            } else {
                l.add("protocol", ethertype_name(be16(frame, 0).unwrap_or(0)));
                l.add("interface index", be32(frame, 4).unwrap_or(0));
                l.add("ARPHRD type", be16(frame, 8).unwrap_or(0));
                l.add("packet type", packet_type(u16::from(frame[10])));
                let n = usize::from(frame[11]).min(8);
                if n > 0 {
                    l.add("link-layer address", mac(&frame[12..12 + n]));
                }
            }
            d.layers.push(l);
        }
        LINKTYPE_LINUX_SLL => {
            let mut l = Layer::new("Linux cooked capture", 0, 16.min(frame.len()));
            if frame.len() < 16 {
                cut(&mut l, frame.len(), 16);
            } else {
                l.add("packet type", packet_type(be16(frame, 0).unwrap_or(0)));
                l.add("ARPHRD type", be16(frame, 2).unwrap_or(0));
                let n = usize::from(be16(frame, 4).unwrap_or(0)).min(8);
                if n > 0 {
                    l.add("link-layer address", mac(&frame[6..6 + n]));
                }
                l.add("protocol", ethertype_name(be16(frame, 14).unwrap_or(0)));
            }
            d.layers.push(l);
        }
        LINKTYPE_RAW | DLT_RAW_12 | DLT_RAW_14 | LINKTYPE_IPV4 | LINKTYPE_IPV6 => {}
        other => {
            let mut l = Layer::new(format!("link type {other}"), 0, 0);
            l.add(
                "decoded",
                "no (the IP packet inside is found and decoded below)",
            );
            d.layers.push(l);
        }
    }
}

fn packet_type(t: u16) -> String {
    match t {
        0 => "to us (0)".into(),
        1 => "broadcast (1)".into(),
        2 => "multicast (2)".into(),
        3 => "to another host (3)".into(),
        4 => "sent by us (4)".into(),
        t => t.to_string(),
    }
}

fn ipv4(d: &mut Dissection, p: &[u8], base: usize) {
    d.protocol = "IPv4".into();
    let mut l = Layer::new("IPv4", base, 20.min(p.len()));
    if p.len() < 20 {
        cut(&mut l, p.len(), 20);
        d.layers.push(l);
        d.info = "IPv4, header cut short".into();
        return;
    }
    let ihl = usize::from(p[0] & 0x0f) * 4;
    let total = usize::from(be16(p, 2).unwrap_or(0));
    let flags_frag = be16(p, 6).unwrap_or(0);
    let frag = flags_frag & 0x1fff;
    let more = flags_frag & 0x2000 != 0;
    let (src, dst) = (
        Ipv4Addr::new(p[12], p[13], p[14], p[15]),
        Ipv4Addr::new(p[16], p[17], p[18], p[19]),
    );
    l.len = ihl.clamp(20, p.len());
    l.add("version", 4);
    l.add("header length", format!("{ihl} bytes"));
    l.add("DSCP", p[1] >> 2);
    l.add("ECN", p[1] & 3);
    l.add("total length", total);
    l.add(
        "identification",
        format!("0x{:04x}", be16(p, 4).unwrap_or(0)),
    );
    let mut flags = Vec::new();
    if flags_frag & 0x4000 != 0 {
        flags.push("DF");
    }
    if more {
        flags.push("MF");
    }
    l.add(
        "flags",
        if flags.is_empty() {
            "none".into()
        } else {
            flags.join(" ")
        },
    );
    l.add("fragment offset", format!("{} bytes", u32::from(frag) * 8));
    l.add("TTL", p[8]);
    l.add("protocol", format!("{} ({})", protocol_name(p[9]), p[9]));
    l.add(
        "header checksum",
        format!("0x{:04x}", be16(p, 10).unwrap_or(0)),
    );
    l.add("source", src);
    l.add("destination", dst);
    if ihl > 20 {
        l.add("options", format!("{} bytes", ihl - 20));
    }
    d.src = Some(src.to_string());
    d.dst = Some(dst.to_string());
    if ihl < 20 || ihl > p.len() {
        cut(&mut l, p.len(), ihl.max(20));
        d.layers.push(l);
        d.info = format!("IPv4 {src} > {dst}, bad header length {ihl}");
        return;
    }
    d.layers.push(l);
    let end = if total >= ihl && total <= p.len() {
        total
    } else {
        p.len()
    };
    let payload = &p[ihl..end];
    if frag != 0 {
        d.info = format!(
            "{} fragment at offset {}, length {}",
            protocol_name(p[9]),
            u32::from(frag) * 8,
            payload.len()
        );
        d.payload_preview = preview(payload);
        return;
    }
    transport(d, p[9], payload, base + ihl, false);
}

fn ipv6(d: &mut Dissection, p: &[u8], base: usize) {
    d.protocol = "IPv6".into();
    let mut l = Layer::new("IPv6", base, 40.min(p.len()));
    if p.len() < 40 {
        cut(&mut l, p.len(), 40);
        d.layers.push(l);
        d.info = "IPv6, header cut short".into();
        return;
    }
    let word = be32(p, 0).unwrap_or(0);
    let addr = |at: usize| {
        let b: [u8; 16] = p[at..at + 16].try_into().unwrap_or([0; 16]);
        Ipv6Addr::from(b)
    };
    let (src, dst) = (addr(8), addr(24));
    l.add("version", 6);
    l.add("traffic class", format!("0x{:02x}", (word >> 20) & 0xff));
    l.add("flow label", format!("0x{:05x}", word & 0xfffff));
    let payload_len = usize::from(be16(p, 4).unwrap_or(0));
    l.add("payload length", payload_len);
    l.add("next header", format!("{} ({})", protocol_name(p[6]), p[6]));
    l.add("hop limit", p[7]);
    l.add("source", src);
    l.add("destination", dst);
    d.layers.push(l);
    d.src = Some(src.to_string());
    d.dst = Some(dst.to_string());
    let end = if payload_len > 0 && 40 + payload_len <= p.len() {
        40 + payload_len
    } else {
        p.len()
    };
    let mut next = p[6];
    let mut at = 40;
    for _ in 0..MAX_EXTENSION_HEADERS {
        let rest = &p[at..end];
        match next {
            0 | 43 | 60 | 51 => {
                let mut e = Layer::new(protocol_name(next), base + at, 8.min(rest.len()));
                if rest.len() < 8 {
                    cut(&mut e, rest.len(), 8);
                    d.layers.push(e);
                    d.info = format!("IPv6 {src} > {dst}, {} cut short", protocol_name(next));
                    return;
                }
                // AH counts its length in 4-byte units (minus 2), the others in 8-byte units
                // (minus 1).
                let len = if next == 51 {
                    (usize::from(rest[1]) + 2) * 4
                } else {
                    (usize::from(rest[1]) + 1) * 8
                };
                e.len = len.min(rest.len());
                e.add(
                    "next header",
                    format!("{} ({})", protocol_name(rest[0]), rest[0]),
                );
                e.add("length", format!("{len} bytes"));
                if len > rest.len() {
                    cut(&mut e, rest.len(), len);
                    d.layers.push(e);
                    return;
                }
                d.layers.push(e);
                next = rest[0];
                at += len;
            }
            44 => {
                let mut e = Layer::new("IPv6 fragment", base + at, 8.min(rest.len()));
                if rest.len() < 8 {
                    cut(&mut e, rest.len(), 8);
                    d.layers.push(e);
                    return;
                }
                let off = be16(rest, 2).unwrap_or(0);
                e.add(
                    "next header",
                    format!("{} ({})", protocol_name(rest[0]), rest[0]),
                );
                e.add(
                    "fragment offset",
                    format!("{} bytes", u32::from(off >> 3) * 8),
                );
                e.add("more fragments", off & 1 == 1);
                e.add(
                    "identification",
                    format!("0x{:08x}", be32(rest, 4).unwrap_or(0)),
                );
                d.layers.push(e);
                next = rest[0];
                at += 8;
                if off >> 3 != 0 {
                    d.info = format!(
                        "{} fragment at offset {}, length {}",
                        protocol_name(next),
                        u32::from(off >> 3) * 8,
                        end - at
                    );
                    d.payload_preview = preview(&p[at..end]);
                    return;
                }
            }
            _ => {
                transport(d, next, rest, base + at, true);
                return;
            }
        }
    }
    d.info = format!(
        "IPv6 {src} > {dst}, more than {MAX_EXTENSION_HEADERS} extension headers (not decoded)"
    );
}

fn transport(d: &mut Dissection, proto: u8, p: &[u8], base: usize, v6: bool) {
    match proto {
        6 => tcp(d, p, base),
        17 => udp(d, p, base),
        1 if !v6 => icmp(d, p, base, false),
        58 if v6 => icmp(d, p, base, true),
        other => {
            d.info = format!("{} ({other}), length {}", protocol_name(other), p.len());
            d.payload_preview = preview(p);
        }
    }
}

fn tcp(d: &mut Dissection, p: &[u8], base: usize) {
    d.protocol = "TCP".into();
    let mut l = Layer::new("TCP", base, 20.min(p.len()));
    if p.len() < 20 {
        cut(&mut l, p.len(), 20);
        d.layers.push(l);
        d.info = "TCP, header cut short".into();
        return;
    }
    let (sport, dport) = (be16(p, 0).unwrap_or(0), be16(p, 2).unwrap_or(0));
    let (seq, ack) = (be32(p, 4).unwrap_or(0), be32(p, 8).unwrap_or(0));
    let off = usize::from(p[12] >> 4) * 4;
    let flags = u16::from(p[12] & 1) << 8 | u16::from(p[13]);
    let win = be16(p, 14).unwrap_or(0);
    d.src_port = Some(sport);
    d.dst_port = Some(dport);
    l.add("source port", sport);
    l.add("destination port", dport);
    l.add("sequence number", seq);
    l.add("acknowledgment number", ack);
    l.add("header length", format!("{off} bytes"));
    l.add("flags", format!("0x{flags:03x} [{}]", tcp_flags(flags)));
    l.add("window", win);
    l.add("checksum", format!("0x{:04x}", be16(p, 16).unwrap_or(0)));
    l.add("urgent pointer", be16(p, 18).unwrap_or(0));
    if off > 20 {
        l.add("options", format!("{} bytes", off - 20));
    }
    let hdr = off.clamp(20, p.len());
    l.len = hdr;
    if off < 20 || off > p.len() {
        cut(&mut l, p.len(), off.max(20));
    }
    d.layers.push(l);
    let payload = &p[hdr..];
    let mut info = format!(
        "TCP {sport} > {dport}: Flags [{}], seq {seq}",
        tcp_flags(flags)
    );
    if flags & 0x10 != 0 {
        let _ = write!(info, ", ack {ack}");
    }
    let _ = write!(info, ", win {win}, length {}", payload.len());
    d.info = info;
    d.payload_preview = preview(payload);
}

/// tcpdump's flag letters: S F R P U E W, `.` for ACK; `none` without any.
fn tcp_flags(f: u16) -> String {
    let mut s = String::new();
    for (bit, c) in [
        (0x02, 'S'),
        (0x01, 'F'),
        (0x04, 'R'),
        (0x08, 'P'),
        (0x20, 'U'),
        (0x40, 'E'),
        (0x80, 'W'),
        (0x10, '.'),
    ] {
        if f & bit != 0 {
            s.push(c);
        }
    }
    if s.is_empty() { "none".into() } else { s }
}

fn udp(d: &mut Dissection, p: &[u8], base: usize) {
    d.protocol = "UDP".into();
    let mut l = Layer::new("UDP", base, 8.min(p.len()));
    if p.len() < 8 {
        cut(&mut l, p.len(), 8);
        d.layers.push(l);
        d.info = "UDP, header cut short".into();
        return;
    }
    let (sport, dport) = (be16(p, 0).unwrap_or(0), be16(p, 2).unwrap_or(0));
    let len = be16(p, 4).unwrap_or(0);
    d.src_port = Some(sport);
    d.dst_port = Some(dport);
    l.add("source port", sport);
    l.add("destination port", dport);
    l.add("length", len);
    l.add("checksum", format!("0x{:04x}", be16(p, 6).unwrap_or(0)));
    d.layers.push(l);
    let payload = &p[8..];
    d.info = format!(
        "UDP {sport} > {dport}, length {}",
        usize::from(len).saturating_sub(8)
    );
    d.payload_preview = preview(payload);
}

fn icmp(d: &mut Dissection, p: &[u8], base: usize, v6: bool) {
    let name = if v6 { "ICMPv6" } else { "ICMP" };
    d.protocol = name.into();
    let mut l = Layer::new(name, base, 4.min(p.len()));
    if p.len() < 4 {
        cut(&mut l, p.len(), 4);
        d.layers.push(l);
        d.info = format!("{name}, header cut short");
        return;
    }
    let (t, code) = (p[0], p[1]);
    let what = icmp_type(t, v6);
    l.add("type", format!("{what} ({t})"));
    l.add("code", code);
    l.add("checksum", format!("0x{:04x}", be16(p, 2).unwrap_or(0)));
    let echo = if v6 {
        matches!(t, 128 | 129)
    } else {
        matches!(t, 0 | 8)
    };
    let mut info = format!("{name} {what}");
    let mut hdr = 4;
    if echo && p.len() >= 8 {
        let (id, seq) = (be16(p, 4).unwrap_or(0), be16(p, 6).unwrap_or(0));
        l.add("identifier", id);
        l.add("sequence number", seq);
        let _ = write!(info, ", id {id}, seq {seq}");
        hdr = 8;
    } else if code != 0 {
        let _ = write!(info, " code {code}");
    }
    l.len = hdr;
    d.layers.push(l);
    let _ = write!(info, ", length {}", p.len());
    d.info = info;
    d.payload_preview = preview(&p[hdr..]);
}

fn icmp_type(t: u8, v6: bool) -> &'static str {
    match (v6, t) {
        (false, 0) => "echo reply",
        (false, 3) => "destination unreachable",
        (false, 5) => "redirect",
        (false, 8) => "echo request",
        (false, 11) => "time exceeded",
        (false, 12) => "parameter problem",
        (true, 1) => "destination unreachable",
        (true, 2) => "packet too big",
        (true, 3) => "time exceeded",
        (true, 4) => "parameter problem",
        (true, 128) => "echo request",
        (true, 129) => "echo reply",
        (true, 133) => "router solicitation",
        (true, 134) => "router advertisement",
        (true, 135) => "neighbor solicitation",
        (true, 136) => "neighbor advertisement",
        _ => "type",
    }
}

/// Up to [`PREVIEW_BYTES`] of `payload` as printable ASCII, `.` for other bytes.
pub fn preview(payload: &[u8]) -> String {
    payload
        .iter()
        .take(PREVIEW_BYTES)
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                char::from(b)
            } else {
                '.'
            }
        })
        .collect()
}

/// A hex dump of `data`, 16 bytes a line: offset, the bytes in hex, and as ASCII.
pub fn hex_dump(data: &[u8]) -> Vec<String> {
    data.chunks(16)
        .enumerate()
        .map(|(i, chunk)| {
            let mut line = format!("{:04x}  ", i * 16);
            for (j, b) in chunk.iter().enumerate() {
                let _ = write!(line, "{b:02x} ");
                if j == 7 {
                    line.push(' ');
                }
            }
            let pad = 16 - chunk.len();
            line.push_str(&"   ".repeat(pad));
            if chunk.len() <= 8 {
                line.push(' ');
            }
            line.push(' ');
            line.push_str(&preview(chunk));
            line
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipv4_udp(payload: &[u8]) -> Vec<u8> {
        let total = 28 + payload.len();
        let mut p = vec![
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0x12,
            0x34,
            0x40,
            0,
            64,
            17,
            0,
            0,
            198,
            18,
            0,
            1,
            198,
            19,
            0,
            2,
        ];
        let ulen = 8 + payload.len();
        p.extend_from_slice(&[0x9c, 0x40, 0x00, 0x35, (ulen >> 8) as u8, ulen as u8, 0, 0]);
        p.extend_from_slice(payload);
        p
    }

    fn field<'a>(d: &'a Dissection, layer: &str, name: &str) -> &'a str {
        let l = d.layers.iter().find(|l| l.name == layer).expect(layer);
        &l.fields.iter().find(|(n, _)| n == name).expect(name).1
    }

    #[test]
    fn raw_ipv4_udp_is_decoded_with_its_payload() {
        let p = ipv4_udp(b"MARK-0001\x00");
        let d = dissect(LINKTYPE_RAW, &p, Endian::Little);
        assert_eq!(d.protocol, "UDP");
        assert_eq!(d.src.as_deref(), Some("198.18.0.1"));
        assert_eq!(d.dst.as_deref(), Some("198.19.0.2"));
        assert_eq!((d.src_port, d.dst_port), (Some(40000), Some(53)));
        assert_eq!(d.info, "UDP 40000 > 53, length 10");
        assert_eq!(d.payload_preview, "MARK-0001.");
        assert_eq!(field(&d, "IPv4", "flags"), "DF");
        assert_eq!(field(&d, "IPv4", "TTL"), "64");
        assert_eq!(field(&d, "IPv4", "protocol"), "UDP (17)");
        assert_eq!(field(&d, "UDP", "length"), "18");
        let udp = d.layers.iter().find(|l| l.name == "UDP").unwrap();
        assert_eq!((udp.offset, udp.len), (20, 8));
    }

    #[test]
    fn ethernet_with_a_vlan_tag_and_tcp_flags() {
        let mut f = vec![
            2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x81, 0x00, 0x20, 0x0a, 0x08, 0x00,
        ];
        let mut ip = vec![
            0x45, 0, 0, 44, 0, 0, 0, 0, 64, 6, 0, 0, 198, 18, 0, 1, 198, 19, 0, 2,
        ];
        // SYN+ACK, 4 bytes of options, data offset 6.
        ip.extend_from_slice(&[
            0x04, 0xd2, 0x00, 0x50, 0, 0, 0, 7, 0, 0, 0, 9, 0x60, 0x12, 0xff, 0xff, 0, 0, 0, 0, 2,
            4, 5, 0xb4,
        ]);
        f.extend_from_slice(&ip);
        let d = dissect(LINKTYPE_ETHERNET, &f, Endian::Little);
        assert_eq!(field(&d, "Ethernet", "source"), "02:00:00:00:00:02");
        assert_eq!(
            field(&d, "Ethernet", "VLAN tag"),
            "802.1Q (0x8100) id 10 priority 1"
        );
        assert_eq!(field(&d, "Ethernet", "type"), "IPv4 (0x0800)");
        assert_eq!(
            d.info,
            "TCP 1234 > 80: Flags [S.], seq 7, ack 9, win 65535, length 0"
        );
        assert_eq!(field(&d, "TCP", "options"), "4 bytes");
        let ipl = d.layers.iter().find(|l| l.name == "IPv4").unwrap();
        assert_eq!(ipl.offset, 18, "after the tagged Ethernet header");
    }

    #[test]
    fn ipv6_extension_headers_and_icmpv6_echo() {
        let mut p = vec![0x60, 0, 0, 0, 0, 16, 0, 64];
        p.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        p.extend_from_slice(&[0; 11]);
        p.push(1);
        p.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        p.extend_from_slice(&[0; 11]);
        p.push(2);
        // Hop-by-hop (8 bytes) then ICMPv6 echo request id 7 seq 1.
        p.extend_from_slice(&[58, 0, 1, 4, 0, 0, 0, 0]);
        p.extend_from_slice(&[128, 0, 0, 0, 0, 7, 0, 1]);
        let d = dissect(LINKTYPE_RAW, &p, Endian::Little);
        assert_eq!(d.src.as_deref(), Some("2001:db8::1"));
        assert_eq!(d.protocol, "ICMPv6");
        assert_eq!(d.info, "ICMPv6 echo request, id 7, seq 1, length 8");
        let names: Vec<&str> = d.layers.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["IPv6", "IPv6 hop-by-hop options", "ICMPv6"]);
    }

    #[test]
    fn cut_and_hostile_bytes_are_named_never_a_panic() {
        let p = ipv4_udp(b"x");
        for n in 0..p.len() {
            let d = dissect(LINKTYPE_RAW, &p[..n], Endian::Little);
            assert!(!d.info.is_empty(), "{n}: {d:?}");
        }
        let d = dissect(LINKTYPE_RAW, &p[..24], Endian::Little);
        assert_eq!(
            field(&d, "UDP", "truncated"),
            "the header needs 8 bytes, 4 were captured"
        );
        // Every byte string of a few lengths, on every link type decoded here.
        let mut seed = 7u32;
        for len in [0, 1, 13, 14, 19, 20, 39, 40, 47, 60, 100] {
            for _ in 0..200 {
                let bytes: Vec<u8> = (0..len)
                    .map(|_| {
                        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                        (seed >> 16) as u8
                    })
                    .collect();
                for lt in [
                    LINKTYPE_RAW,
                    LINKTYPE_ETHERNET,
                    LINKTYPE_LINUX_SLL2,
                    113,
                    0,
                    239,
                ] {
                    let _ = dissect(lt, &bytes, Endian::Little);
                    let _ = hex_dump(&bytes);
                }
            }
        }
    }

    #[test]
    fn arp_is_named_and_not_ip() {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0x08, 0x06]);
        f.extend_from_slice(&[0; 28]);
        let d = dissect(LINKTYPE_ETHERNET, &f, Endian::Little);
        assert_eq!(d.protocol, "non-IP");
        assert_eq!(d.info, "Ethernet, ARP (0x0806)");
    }

    #[test]
    fn hex_dump_lines() {
        let data: Vec<u8> = (0x40..0x40 + 20).collect();
        let lines = hex_dump(&data);
        assert_eq!(lines.len(), 2);
        assert_eq!(
            lines[0],
            "0000  40 41 42 43 44 45 46 47  48 49 4a 4b 4c 4d 4e 4f  @ABCDEFGHIJKLMNO"
        );
        assert_eq!(lines[1].len(), lines[0].len() - 12);
        assert!(lines[1].starts_with("0010  50 51 52 53 "), "{}", lines[1]);
        assert!(lines[1].ends_with("  PQRS"), "{}", lines[1]);
    }
}
