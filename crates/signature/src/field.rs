//! The fields a signature can be made of, and each one as a tcpdump-style primitive.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// One field of a signature, with the value the attack's packets share.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "field", rename_all = "snake_case")]
pub enum Field {
    /// The IP protocol (IPv6: the fixed header's next header).
    Protocol { protocol: u8, ipv6: bool },
    /// The destination address.
    Destination { address: IpAddr },
    /// A source prefix (`prefix_len` 32 or 128: one host).
    SourcePrefix { address: IpAddr, prefix_len: u8 },
    /// The destination port of TCP, UDP or SCTP (`protocol`).
    DestinationPort { protocol: u8, port: u16 },
    /// The source port.
    SourcePort { protocol: u8, port: u16 },
    /// The TTL (IPv4) or hop limit (IPv6).
    Ttl { ttl: u8, ipv6: bool },
    /// The IP length, `lo..=hi`.
    Length { lo: u32, hi: u32 },
    /// The whole TCP flags byte.
    TcpFlags { flags: u8, ipv6: bool },
    /// `size` bytes at `offset` from the start of the IPv4 transport header (`protocol` 6, 17
    /// or 1), past its minimal header: fixed payload bytes.
    Payload {
        protocol: u8,
        offset: u16,
        size: u8,
        /// The bytes, big-endian.
        content: u32,
    },
}

fn proto_name(p: u8) -> &'static str {
    match p {
        6 => "tcp",
        17 => "udp",
        132 => "sctp",
        1 => "icmp",
        _ => "ip",
    }
}

impl Field {
    /// The short name shown in the table and the JSON (`destination`, `dst_port`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            Field::Protocol { .. } => "protocol",
            Field::Destination { .. } => "destination",
            Field::SourcePrefix { .. } => "source_prefix",
            Field::DestinationPort { .. } => "dst_port",
            Field::SourcePort { .. } => "src_port",
            Field::Ttl { .. } => "ttl",
            Field::Length { .. } => "length",
            Field::TcpFlags { .. } => "tcp_flags",
            Field::Payload { .. } => "payload",
        }
    }

    /// Whether the field reads past the minimal headers (a payload field of the filter
    /// language): exact only in a one-rule filter, so it is the first left out otherwise.
    pub fn is_payload(&self) -> bool {
        matches!(
            self,
            Field::Payload { .. } | Field::TcpFlags { ipv6: true, .. }
        )
    }

    /// Whether another field already implies this one (a port implies its protocol).
    pub(crate) fn implied_by(&self, other: &Field) -> bool {
        let Field::Protocol { protocol, .. } = self else {
            return false;
        };
        match other {
            Field::DestinationPort { protocol: p, .. } | Field::SourcePort { protocol: p, .. } => {
                p == protocol
            }
            Field::Payload { protocol: p, .. } => p == protocol,
            Field::TcpFlags { .. } => *protocol == 6,
            _ => false,
        }
    }

    /// The field as a tcpdump-style primitive (edgecap's parser reads it with this meaning).
    pub fn expression(&self) -> String {
        match *self {
            Field::Protocol {
                protocol,
                ipv6: false,
            } => format!("ip proto {protocol}"),
            Field::Protocol {
                protocol,
                ipv6: true,
            } => format!("ip6[6] == {protocol}"),
            Field::Destination { address } => format!("dst host {address}"),
            Field::SourcePrefix {
                address,
                prefix_len,
            } => match prefix_len == if address.is_ipv4() { 32 } else { 128 } {
                true => format!("src host {address}"),
                false => format!("src net {address}/{prefix_len}"),
            },
            Field::DestinationPort { protocol, port } => {
                format!("{} dst port {port}", proto_name(protocol))
            }
            Field::SourcePort { protocol, port } => {
                format!("{} src port {port}", proto_name(protocol))
            }
            Field::Ttl { ttl, ipv6: false } => format!("ip[8] == {ttl}"),
            Field::Ttl { ttl, ipv6: true } => format!("ip6[7] == {ttl}"),
            Field::Length { lo, hi } if lo == hi => format!("len == {lo}"),
            Field::Length { lo, hi } => format!("(len >= {lo} and len <= {hi})"),
            Field::TcpFlags { flags, ipv6: false } => format!("tcp[13] == {flags:#04x}"),
            // libpcap's tcp[] never reads IPv6: the flags of a TCP header right after the
            // fixed header, guarded by its next header.
            Field::TcpFlags { flags, ipv6: true } => {
                format!("(ip6[6] == 6 and ip6[53] == {flags:#04x})")
            }
            Field::Payload {
                protocol,
                offset,
                size,
                content,
            } => format!(
                "{}[{offset}:{size}] == {content:#0width$x}",
                proto_name(protocol),
                width = 2 + 2 * usize::from(size)
            ),
        }
    }
}

/// The value, for people (`198.18.0.1`, `udp 53`, `0x02 (SYN)`, `udp[8:4] 0xdeadbeef`).
impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Field::Protocol { protocol, .. } => {
                write!(f, "{protocol} ({})", proto_name(protocol))
            }
            Field::Destination { address } => write!(f, "{address}"),
            Field::SourcePrefix {
                address,
                prefix_len,
            } => write!(f, "{address}/{prefix_len}"),
            Field::DestinationPort { protocol, port } | Field::SourcePort { protocol, port } => {
                write!(f, "{} {port}", proto_name(protocol))
            }
            Field::Ttl { ttl, .. } => write!(f, "{ttl}"),
            Field::Length { lo, hi } if lo == hi => write!(f, "{lo}"),
            Field::Length { lo, hi } => write!(f, "{lo}-{hi}"),
            Field::TcpFlags { flags, .. } => write!(f, "{flags:#04x} ({})", flag_names(flags)),
            Field::Payload {
                protocol,
                offset,
                size,
                content,
            } => write!(
                f,
                "{}[{offset}:{size}] {content:#0width$x}",
                proto_name(protocol),
                width = 2 + 2 * usize::from(size)
            ),
        }
    }
}

fn flag_names(flags: u8) -> String {
    const NAMES: [&str; 8] = ["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"];
    let set: Vec<&str> = (0..8)
        .filter(|b| flags & (1 << b) != 0)
        .map(|b| NAMES[b])
        .collect();
    match set.is_empty() {
        true => "none".to_owned(),
        false => set.join("|"),
    }
}
