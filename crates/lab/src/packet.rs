//! Crafting raw IP packets (no link header) with correct checksums, and Ethernet framing.
//!
//! ```
//! use std::net::Ipv6Addr;
//! use edgecap_lab::packet::{Packet, TcpFlags, find_marker};
//! let udp = Packet::udp([198, 18, 0, 2], [198, 18, 1, 2], 40000, 53)
//!     .marker(7)
//!     .total_len(200)
//!     .build()?;
//! assert_eq!((udp.len(), find_marker(&udp)), (200, Some(7)));
//! let (src, dst): (Ipv6Addr, Ipv6Addr) = ("2001:db8::2".parse()?, "2001:db8:1::2".parse()?);
//! let syn = Packet::tcp(src, dst, 40000, 443, TcpFlags::SYN).ttl(3).build()?;
//! assert_eq!(syn.len(), 40 + 20);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::net::IpAddr;

use etherparse::{
    IcmpEchoHeader, Icmpv4Header, Icmpv4Type, Icmpv6Header, Icmpv6Type, IpNumber, Ipv4Header,
    Ipv6Header, TcpHeader, UdpHeader,
};

use crate::LabError;

mod flags;
mod frame;
mod port;

pub use flags::TcpFlags;
pub use frame::{MARKER_PREFIX, ethernet, ethertype_of, find_marker, marker};
pub use port::PortPatch;

/// The transport part of a [`Packet`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transport {
    /// A TCP segment with the given flags; sequence/ack numbers and window are settable.
    Tcp {
        /// Source port.
        src_port: u16,
        /// Destination port.
        dst_port: u16,
        /// Flags (SYN, ACK, ...).
        flags: TcpFlags,
        /// Sequence number.
        seq: u32,
        /// Acknowledgment number (sent whatever the ACK flag).
        ack: u32,
        /// Window size.
        window: u16,
    },
    /// A UDP datagram.
    Udp {
        /// Source port.
        src_port: u16,
        /// Destination port.
        dst_port: u16,
    },
    /// An ICMP echo request (ICMPv6 echo request for IPv6 addresses).
    IcmpEcho {
        /// Identifier.
        id: u16,
        /// Sequence number.
        seq: u16,
    },
    /// Any IP protocol number; the payload follows the IP header as is.
    Raw {
        /// IPv4 protocol / IPv6 next header.
        protocol: u8,
    },
}

impl Transport {
    fn header_len(&self) -> usize {
        match self {
            Transport::Tcp { .. } => TcpHeader::MIN_LEN,
            Transport::Udp { .. } | Transport::IcmpEcho { .. } => 8,
            Transport::Raw { .. } => 0,
        }
    }
}

/// A packet to craft: addresses, transport, payload and IP header fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    /// Source address; must be the same family as `dst`.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Transport header.
    pub transport: Transport,
    /// Payload after the transport header.
    pub payload: Vec<u8>,
    /// Pad the payload with zeros so the whole IP packet has this length.
    pub total_len: Option<usize>,
    /// IPv4 TTL or IPv6 hop limit (default 64).
    pub ttl: u8,
    /// IPv4 identification (default 0; ignored for IPv6).
    pub ident: u16,
    /// IPv4 don't-fragment flag (default false; ignored for IPv6).
    pub dont_fragment: bool,
}

impl Packet {
    fn new(src: impl Into<IpAddr>, dst: impl Into<IpAddr>, transport: Transport) -> Self {
        Packet {
            src: src.into(),
            dst: dst.into(),
            transport,
            payload: Vec::new(),
            total_len: None,
            ttl: 64,
            ident: 0,
            dont_fragment: false,
        }
    }

    /// A UDP datagram.
    pub fn udp(src: impl Into<IpAddr>, dst: impl Into<IpAddr>, sport: u16, dport: u16) -> Self {
        let t = Transport::Udp {
            src_port: sport,
            dst_port: dport,
        };
        Packet::new(src, dst, t)
    }

    /// A TCP segment with `flags`, sequence number 1, ack 0, window 65535.
    pub fn tcp(
        src: impl Into<IpAddr>,
        dst: impl Into<IpAddr>,
        sport: u16,
        dport: u16,
        flags: TcpFlags,
    ) -> Self {
        let t = Transport::Tcp {
            src_port: sport,
            dst_port: dport,
            flags,
            seq: 1,
            ack: 0,
            window: 65535,
        };
        Packet::new(src, dst, t)
    }

    /// An ICMP (IPv4) or ICMPv6 (IPv6) echo request.
    pub fn icmp_echo(src: impl Into<IpAddr>, dst: impl Into<IpAddr>, id: u16, seq: u16) -> Self {
        Packet::new(src, dst, Transport::IcmpEcho { id, seq })
    }

    /// A packet of any IP protocol number, the payload right after the IP header.
    pub fn raw(src: impl Into<IpAddr>, dst: impl Into<IpAddr>, protocol: u8) -> Self {
        Packet::new(src, dst, Transport::Raw { protocol })
    }

    /// Sets the payload.
    pub fn payload(mut self, payload: impl Into<Vec<u8>>) -> Self {
        self.payload = payload.into();
        self
    }

    /// Appends [`marker`]`(n)` to the payload.
    pub fn marker(mut self, n: u32) -> Self {
        self.payload.extend_from_slice(&marker(n));
        self
    }

    /// Pads with zeros to this total IP packet length (an error if the packet is longer).
    pub fn total_len(mut self, len: usize) -> Self {
        self.total_len = Some(len);
        self
    }

    /// Sets the IPv4 TTL / IPv6 hop limit.
    pub fn ttl(mut self, ttl: u8) -> Self {
        self.ttl = ttl;
        self
    }

    /// Sets the IPv4 identification.
    pub fn ident(mut self, ident: u16) -> Self {
        self.ident = ident;
        self
    }

    /// Sets the IPv4 don't-fragment flag.
    pub fn dont_fragment(mut self, df: bool) -> Self {
        self.dont_fragment = df;
        self
    }

    /// Sets the TCP sequence and acknowledgment numbers (no effect on other transports).
    pub fn tcp_numbers(mut self, seq_number: u32, ack_number: u32) -> Self {
        if let Transport::Tcp { seq, ack, .. } = &mut self.transport {
            *seq = seq_number;
            *ack = ack_number;
        }
        self
    }

    /// Serialises the IP packet with correct IP and transport checksums.
    pub fn build(&self) -> Result<Vec<u8>, LabError> {
        let ip_len = match (self.src, self.dst) {
            (IpAddr::V4(_), IpAddr::V4(_)) => Ipv4Header::MIN_LEN,
            (IpAddr::V6(_), IpAddr::V6(_)) => Ipv6Header::LEN,
            _ => return Err(err("source and destination are of different IP versions")),
        };
        let mut payload = self.payload.clone();
        let natural = ip_len + self.transport.header_len() + payload.len();
        if let Some(total) = self.total_len {
            if total < natural {
                return Err(err(format!(
                    "total length {total} is shorter than the packet's {natural} bytes"
                )));
            }
            payload.resize(total - ip_len - self.transport.header_len(), 0);
        }
        let l4_len = self.transport.header_len() + payload.len();
        if ip_len + l4_len > usize::from(u16::MAX) {
            return Err(err(format!("{} bytes exceed 65535", ip_len + l4_len)));
        }
        let mut out = Vec::with_capacity(ip_len + l4_len);
        match (self.src, self.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                let mut ip =
                    Ipv4Header::new(0, self.ttl, self.protocol(false), s.octets(), d.octets())
                        .map_err(|e| err(e.to_string()))?;
                ip.set_payload_len(l4_len).map_err(|e| err(e.to_string()))?;
                ip.identification = self.ident;
                ip.dont_fragment = self.dont_fragment;
                ip.header_checksum = ip.calc_header_checksum();
                out.extend_from_slice(&ip.to_bytes());
                self.write_l4(&mut out, &payload, L3::V4(&ip))?;
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                let mut ip = Ipv6Header {
                    next_header: self.protocol(true),
                    hop_limit: self.ttl,
                    source: s.octets(),
                    destination: d.octets(),
                    ..Default::default()
                };
                ip.set_payload_length(l4_len)
                    .map_err(|e| err(e.to_string()))?;
                out.extend_from_slice(&ip.to_bytes());
                self.write_l4(&mut out, &payload, L3::V6(&ip))?;
            }
            _ => return Err(err("source and destination are of different IP versions")),
        }
        Ok(out)
    }

    fn protocol(&self, v6: bool) -> IpNumber {
        match self.transport {
            Transport::Tcp { .. } => IpNumber::TCP,
            Transport::Udp { .. } => IpNumber::UDP,
            Transport::IcmpEcho { .. } if v6 => IpNumber::IPV6_ICMP,
            Transport::IcmpEcho { .. } => IpNumber::ICMP,
            Transport::Raw { protocol } => IpNumber(protocol),
        }
    }

    fn write_l4(&self, out: &mut Vec<u8>, payload: &[u8], l3: L3<'_>) -> Result<(), LabError> {
        let e = |x: etherparse::err::ValueTooBigError<usize>| err(x.to_string());
        match self.transport {
            Transport::Tcp {
                src_port,
                dst_port,
                flags,
                seq,
                ack,
                window,
            } => {
                let mut tcp = TcpHeader::new(src_port, dst_port, seq, window);
                flags.apply(&mut tcp);
                tcp.acknowledgment_number = ack;
                tcp.checksum = match l3 {
                    L3::V4(ip) => tcp.calc_checksum_ipv4(ip, payload).map_err(e)?,
                    L3::V6(ip) => tcp.calc_checksum_ipv6(ip, payload).map_err(e)?,
                };
                out.extend_from_slice(&tcp.to_bytes());
            }
            Transport::Udp { src_port, dst_port } => {
                let udp = match l3 {
                    L3::V4(ip) => UdpHeader::with_ipv4_checksum(src_port, dst_port, ip, payload),
                    L3::V6(ip) => UdpHeader::with_ipv6_checksum(src_port, dst_port, ip, payload),
                }
                .map_err(e)?;
                out.extend_from_slice(&udp.to_bytes());
            }
            Transport::IcmpEcho { id, seq } => match l3 {
                L3::V4(_) => {
                    let t = Icmpv4Type::EchoRequest(IcmpEchoHeader { id, seq });
                    out.extend_from_slice(&Icmpv4Header::with_checksum(t, payload).to_bytes());
                }
                L3::V6(ip) => {
                    let t = Icmpv6Type::EchoRequest(IcmpEchoHeader { id, seq });
                    let h = Icmpv6Header::with_checksum(t, ip.source, ip.destination, payload)
                        .map_err(e)?;
                    out.extend_from_slice(&h.to_bytes());
                }
            },
            Transport::Raw { .. } => {}
        }
        out.extend_from_slice(payload);
        Ok(())
    }
}

enum L3<'a> {
    V4(&'a Ipv4Header),
    V6(&'a Ipv6Header),
}

fn err(reason: impl Into<String>) -> LabError {
    LabError::Packet(reason.into())
}
