//! The compiled form of a filter: what the netfilter crate turns into nftables expressions.
//!
//! A compiled filter is a disjunction of [`Conjunction`]s (disjunctive normal form). Each
//! conjunction becomes one nftables rule; a packet is logged by the first rule it matches and the
//! rest are skipped, so a packet is never captured twice. Every [`Match`] maps to a fixed, small
//! sequence of nftables expressions (meta / payload / bitwise / cmp), so nothing here is a string
//! that reaches a shell or a parser.

use std::net::IpAddr;

/// Which end of the packet a field refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dir {
    Src,
    Dst,
}

/// IP version of the network header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    V4,
    V6,
}

/// One primitive test on a packet. All tests in a [`Conjunction`] must hold.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Match {
    /// `meta nfproto ipv4|ipv6`: the packet's network protocol.
    Family(Family),
    /// `meta l4proto N` (`!=` when `negate`): the transport protocol, after IPv6 extension headers.
    L4Proto { proto: u8, negate: bool },
    /// `ip saddr 198.18.0.0/15` / `ip6 daddr 2001:db8::/32`: address under a prefix.
    /// `prefix_len` is at most 32 (IPv4) or 128 (IPv6); `addr` has its host bits cleared.
    /// Must be preceded in the same conjunction by `Family` of the address's family.
    Addr {
        dir: Dir,
        addr: IpAddr,
        prefix_len: u8,
        negate: bool,
    },
    /// `th sport|dport lo-hi` (one port when `lo == hi`). Must be preceded in the same
    /// conjunction by an `L4Proto` with `negate == false` naming a protocol with ports
    /// (TCP 6, UDP 17, DCCP 33, SCTP 132), because `th` reads bytes of any transport header.
    Port {
        dir: Dir,
        lo: u16,
        hi: u16,
        negate: bool,
    },
    /// `tcp flags & mask == value` (`!=` when `negate`): byte 13 of the TCP header. Must be
    /// preceded by a non-negated `L4Proto` 6. `(flags & mask) != 0` is
    /// `TcpFlags { mask, value: 0, negate: true }`.
    TcpFlags { mask: u8, value: u8, negate: bool },
    /// `meta len OP value`: the length of the network-layer packet (IP header included), as
    /// tcpdump's `len` is on a RAW-linktype capture. `less N` is `Le`, `greater N` is `Ge`.
    Length { op: LenOp, value: u32 },
}

/// Comparison of [`Match::Length`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LenOp {
    /// `<=` (tcpdump `less`)
    Le,
    /// `>=` (tcpdump `greater`)
    Ge,
    /// `<`
    Lt,
    /// `>`
    Gt,
}

/// A rule: every match must hold. An empty conjunction matches every packet.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Conjunction {
    pub matches: Vec<Match>,
}

/// Protocol numbers that carry 16-bit source and destination ports at offsets 0 and 2.
pub const PORT_PROTOCOLS: [u8; 4] = [6, 17, 33, 132];
