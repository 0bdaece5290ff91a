//! The compiled form of a filter: what the netfilter crate turns into nftables expressions.
//!
//! A compiled filter is a disjunction of [`Conjunction`]s (disjunctive normal form). Each
//! conjunction becomes one nftables rule; a packet is logged by the first rule it matches and the
//! rest are skipped, so a packet is never captured twice. Every [`Match`] maps to a fixed, small
//! sequence of nftables expressions (meta / payload / bitwise / cmp / range / lookup in an
//! anonymous set), so nothing here is a string that reaches a shell or a parser.
//!
//! A match that loads header bytes means something only under its guards (the family for a
//! network-header load; protocol and "not a later fragment" for a transport-header load). The
//! compilers put the guards in the same conjunction, ahead of what they guard, and negate a
//! guarded test only together with its guards ([`Match::negated`] is the bare complement).

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
    Length { op: CmpOp, value: u32 },
    /// Raw header bytes, tested: `@nh,72,8 6`, `@nh,48,16 & 0x1fff != 0`, `@th,0,16 1-1023`,
    /// `@nh,72,8 { 6, 17, 132 }`. What tcpdump's `ip[9]`, `tcp[13] & 2` and the guards of its
    /// `port` and `proto` primitives compile to. A network-header load reads bytes of whatever
    /// IP header the packet has, so it must be preceded by the `Family` whose header it means.
    Payload(Payload),
}

/// An ordered comparison (`cmp` in nf_tables), of [`Match::Length`] and [`Test::Cmp`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CmpOp {
    Eq,
    Ne,
    /// `<`
    Lt,
    /// `<=` (tcpdump `less`)
    Le,
    /// `>`
    Gt,
    /// `>=` (tcpdump `greater`)
    Ge,
}

impl CmpOp {
    /// The comparison that holds exactly where this one does not.
    pub fn negated(self) -> CmpOp {
        match self {
            CmpOp::Eq => CmpOp::Ne,
            CmpOp::Ne => CmpOp::Eq,
            CmpOp::Lt => CmpOp::Ge,
            CmpOp::Le => CmpOp::Gt,
            CmpOp::Gt => CmpOp::Le,
            CmpOp::Ge => CmpOp::Lt,
        }
    }

    /// nft's spelling.
    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }

    pub fn holds(self, left: u32, right: u32) -> bool {
        match self {
            CmpOp::Eq => left == right,
            CmpOp::Ne => left != right,
            CmpOp::Lt => left < right,
            CmpOp::Le => left <= right,
            CmpOp::Gt => left > right,
            CmpOp::Ge => left >= right,
        }
    }
}

/// Where a [`Payload`] offset counts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Base {
    /// The IP header (`@nh`).
    Network,
    /// The transport header (`@th`): in IPv4 at the header length, in IPv6 after the extension
    /// headers nf_tables walks; absent (the load fails) in every fragment but the first.
    Transport,
}

/// `size` bytes at `offset` from `base`, big-endian, masked with `mask` when given, then tested.
/// `size` is 1, 2 or 4; `mask` and every value of `test` fit in `size` bytes. A load past the
/// end of the packet fails the rule, negated tests included.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Payload {
    pub base: Base,
    pub offset: u16,
    pub size: u8,
    pub mask: Option<u32>,
    pub test: Test,
}

/// What a [`Payload`] value must satisfy.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Test {
    Cmp {
        op: CmpOp,
        value: u32,
    },
    /// `lo-hi`, inclusive (`!=` when `negate`).
    Range {
        lo: u32,
        hi: u32,
        negate: bool,
    },
    /// One of `values` (sorted, without repeats; an anonymous nftables set), or none when
    /// `negate`.
    Set {
        values: Vec<u32>,
        negate: bool,
    },
}

impl Test {
    /// The test that holds exactly where this one does not (on a value that could be loaded).
    pub fn negated(&self) -> Test {
        match self {
            Test::Cmp { op, value } => Test::Cmp {
                op: op.negated(),
                value: *value,
            },
            Test::Range { lo, hi, negate } => Test::Range {
                lo: *lo,
                hi: *hi,
                negate: !negate,
            },
            Test::Set { values, negate } => Test::Set {
                values: values.clone(),
                negate: !negate,
            },
        }
    }

    pub fn holds(&self, v: u32) -> bool {
        match self {
            Test::Cmp { op, value } => op.holds(v, *value),
            Test::Range { lo, hi, negate } => (*lo..=*hi).contains(&v) != *negate,
            Test::Set { values, negate } => values.binary_search(&v).is_ok() != *negate,
        }
    }
}

impl Payload {
    /// The loaded value: `size` big-endian bytes of `bytes` at `at` (the base's start plus
    /// `offset`), masked. `None` when the bytes are not all there.
    pub fn load(&self, bytes: &[u8], at: usize) -> Option<u32> {
        let raw = bytes.get(at..at.checked_add(usize::from(self.size))?)?;
        let v = raw.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b));
        Some(self.mask.map_or(v, |m| v & m))
    }
}

impl Match {
    /// The match that holds exactly where this one does not, on a packet where its value can be
    /// loaded (`Family` on our IPv4-or-IPv6 hooks, every other match under its guards).
    pub fn negated(&self) -> Match {
        match self {
            Match::Family(Family::V4) => Match::Family(Family::V6),
            Match::Family(Family::V6) => Match::Family(Family::V4),
            Match::L4Proto { proto, negate } => Match::L4Proto {
                proto: *proto,
                negate: !negate,
            },
            Match::Addr {
                dir,
                addr,
                prefix_len,
                negate,
            } => Match::Addr {
                dir: *dir,
                addr: *addr,
                prefix_len: *prefix_len,
                negate: !negate,
            },
            Match::Port {
                dir,
                lo,
                hi,
                negate,
            } => Match::Port {
                dir: *dir,
                lo: *lo,
                hi: *hi,
                negate: !negate,
            },
            Match::TcpFlags {
                mask,
                value,
                negate,
            } => Match::TcpFlags {
                mask: *mask,
                value: *value,
                negate: !negate,
            },
            Match::Length { op, value } => Match::Length {
                op: op.negated(),
                value: *value,
            },
            Match::Payload(p) => Match::Payload(Payload {
                test: p.test.negated(),
                ..p.clone()
            }),
        }
    }
}

/// A rule: every match must hold. An empty conjunction matches every packet.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Conjunction {
    pub matches: Vec<Match>,
}

impl Conjunction {
    /// Whether a load of this rule reads past the headers its guards promise every packet
    /// has (20 bytes of IPv4, 40 of IPv6 (48 after a next header of TCP, UDP, ICMPv6, SCTP or
    /// a fragment header), 20 of TCP, 8 of any other transport): a payload field such as
    /// tcpdump's `udp[8:4]`, which could read link-layer padding where the skb is not yet
    /// trimmed to the IP length.
    pub fn reads_payload(&self) -> bool {
        let tests_byte = |at: u16, ok: fn(u32) -> bool| {
            self.matches.iter().any(|m| match m {
                Match::Payload(Payload {
                    base: Base::Network,
                    offset,
                    size: 1,
                    mask: None,
                    test,
                }) if *offset == at => match test {
                    Test::Cmp {
                        op: CmpOp::Eq,
                        value,
                    } => ok(*value),
                    Test::Set {
                        values,
                        negate: false,
                    } => values.iter().all(|v| ok(*v)),
                    _ => false,
                },
                _ => false,
            })
        };
        let tcp = tests_byte(9, |v| v == 6);
        let v6 = self.matches.contains(&Match::Family(Family::V6));
        let v6_next = tests_byte(6, |v| matches!(v, 6 | 17 | 44 | 58 | 132));
        self.matches.iter().any(|m| {
            let Match::Payload(p) = m else {
                return false;
            };
            let end = usize::from(p.offset) + usize::from(p.size);
            let promised = match p.base {
                Base::Transport if tcp => 20,
                Base::Transport => 8,
                Base::Network if v6 && v6_next => 48,
                Base::Network if v6 => 40,
                Base::Network => 20,
            };
            end > promised
        })
    }
}

/// Protocol numbers that carry 16-bit source and destination ports at offsets 0 and 2.
pub const PORT_PROTOCOLS: [u8; 4] = [6, 17, 33, 132];
