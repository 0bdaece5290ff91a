//! The parsed expression: primitives with their qualifiers resolved (inherited qualifiers made
//! explicit), joined by `and`, `or` and `not`. Displays as canonical tcpdump syntax that both
//! edgecap and tcpdump parse to the same meaning.

use std::fmt;
use std::net::IpAddr;

use crate::address::Prefix;
use crate::ir::{CmpOp, Family};

/// A node of the expression tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Not(Box<Node>),
    Prim(Primitive),
}

/// Which address or port of a packet a primitive looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirQual {
    /// `src`
    Src,
    /// `dst`
    Dst,
    /// no qualifier, or `src or dst`: either end
    Either,
    /// `src and dst`: both ends
    Both,
}

/// The header a field comparison (`tcp[13] & 2 != 0`) reads from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    /// `ip[..]`: the IPv4 header.
    Ip,
    /// `ip6[..]`: the IPv6 fixed header.
    Ip6,
    /// `tcp[..]`, `udp[..]`, `icmp[..]`: the transport header of an IPv4 packet that is not a
    /// later fragment (tcpdump's `tcp[]` never reads IPv6).
    Tcp,
    Udp,
    Icmp,
    /// `icmp6[..]`: an ICMPv6 header right after the IPv6 fixed header.
    Icmp6,
}

impl Layer {
    pub fn name(self) -> &'static str {
        match self {
            Layer::Ip => "ip",
            Layer::Ip6 => "ip6",
            Layer::Tcp => "tcp",
            Layer::Udp => "udp",
            Layer::Icmp => "icmp",
            Layer::Icmp6 => "icmp6",
        }
    }

    /// How many bytes every well-formed packet of the layer has (the fixed IP headers, the
    /// minimal transport headers): a field within them never runs off such a packet. A field
    /// reaching further (a payload field, `udp[8:4]`) is accepted only where a packet too
    /// short for it fails the filter in nftables as in libpcap (see [`Expression::compile`](
    /// crate::Expression::compile)), and never past [`MAX_FIELD_REACH`].
    pub fn max_len(self) -> u16 {
        match self {
            Layer::Ip | Layer::Tcp => 20,
            Layer::Ip6 => 40,
            Layer::Udp | Layer::Icmp | Layer::Icmp6 => 8,
        }
    }
}

/// The farthest byte (exclusive) a field may read from the start of its header: `udp[252:4]`
/// is the last 4-byte field. Attack signatures need the first bytes of a payload; far loads
/// only add ways for tcpdump's whole-filter rejection and nftables' per-rule failure to differ.
pub const MAX_FIELD_REACH: u16 = 256;

/// One test of tcpdump's language, with tcpdump's meaning on IP packets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Primitive {
    /// `ip`, `ip6`
    Family(Family),
    /// `proto N` (`family: None`: IPv4 or IPv6), `ip proto N`, `ip6 proto N`; also what `tcp`,
    /// `udp`, `icmp`... mean. On IPv6 the protocol is the fixed header's next header, or the
    /// next header of a fragment header right after it.
    Proto { family: Option<Family>, proto: u8 },
    /// `host A`, with a direction; the family is the address's.
    Host { dir: DirQual, addr: IpAddr },
    /// `net P`
    Net { dir: DirQual, prefix: Prefix },
    /// `port N` (`lo == hi`, `range: false`) or `portrange lo-hi`, of tcp/udp/sctp when `proto`
    /// is `None`, else of that protocol.
    Port {
        proto: Option<u8>,
        dir: DirQual,
        lo: u16,
        hi: u16,
        range: bool,
    },
    /// `LAYER[offset:size] & mask OP value`
    Field {
        layer: Layer,
        offset: u16,
        size: u8,
        mask: Option<u32>,
        op: CmpOp,
        value: u32,
    },
    /// `less N` (`Le`), `greater N` (`Ge`), `len OP N`: the IP packet's length.
    Len { op: CmpOp, value: u32 },
}

/// The protocols tcpdump has a keyword for, and what the keyword means.
pub(crate) const PROTO_KEYWORDS: &[(&str, Option<Family>, u8)] = &[
    ("tcp", None, 6),
    ("udp", None, 17),
    ("sctp", None, 132),
    ("icmp", Some(Family::V4), 1),
    ("icmp6", Some(Family::V6), 58),
    ("igmp", Some(Family::V4), 2),
    ("igrp", Some(Family::V4), 9),
    ("pim", None, 103),
    ("vrrp", Some(Family::V4), 112),
    ("ah", None, 51),
    ("esp", None, 50),
];

impl fmt::Display for DirQual {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DirQual::Src => "src ",
            DirQual::Dst => "dst ",
            DirQual::Either => "",
            DirQual::Both => "src and dst ",
        })
    }
}

impl fmt::Display for Primitive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Primitive::Family(Family::V4) => f.write_str("ip"),
            Primitive::Family(Family::V6) => f.write_str("ip6"),
            Primitive::Proto { family, proto } => {
                let keyword = PROTO_KEYWORDS
                    .iter()
                    .find(|(_, fam, p)| fam == family && p == proto);
                match (keyword, family) {
                    (Some((name, _, _)), _) => f.write_str(name),
                    (None, None) => write!(f, "proto {proto}"),
                    (None, Some(Family::V4)) => write!(f, "ip proto {proto}"),
                    (None, Some(Family::V6)) => write!(f, "ip6 proto {proto}"),
                }
            }
            Primitive::Host { dir, addr } => write!(f, "{dir}host {addr}"),
            Primitive::Net { dir, prefix } => {
                write!(f, "{dir}net {}/{}", prefix.addr(), prefix.prefix_len())
            }
            Primitive::Port {
                proto,
                dir,
                lo,
                hi,
                range,
            } => {
                match proto {
                    Some(6) => f.write_str("tcp ")?,
                    Some(17) => f.write_str("udp ")?,
                    Some(132) => f.write_str("sctp ")?,
                    _ => {}
                }
                match range {
                    true => write!(f, "{dir}portrange {lo}-{hi}"),
                    false => write!(f, "{dir}port {lo}"),
                }
            }
            Primitive::Field {
                layer,
                offset,
                size,
                mask,
                op,
                value,
            } => {
                write!(f, "{}[{offset}:{size}]", layer.name())?;
                if let Some(m) = mask {
                    write!(f, " & {m:#x}")?;
                }
                write!(f, " {} {value}", op.symbol())
            }
            Primitive::Len {
                op: CmpOp::Le,
                value,
            } => write!(f, "less {value}"),
            Primitive::Len {
                op: CmpOp::Ge,
                value,
            } => write!(f, "greater {value}"),
            Primitive::Len { op, value } => write!(f, "len {} {value}", op.symbol()),
        }
    }
}

impl Primitive {
    /// Whether this is a field reading past the bytes every packet of its layer has
    /// ([`Layer::max_len`]): `udp[8:4]`, `tcp[20:2]`, `ip[24]`.
    pub fn is_payload_field(&self) -> bool {
        match self {
            Primitive::Field {
                layer,
                offset,
                size,
                ..
            } => offset + u16::from(*size) > layer.max_len(),
            _ => false,
        }
    }
}

impl Node {
    /// The operands of a chain of one operator, in order: `a`, `b`, `c` for `a or b or c`
    /// (which the parser nests to the left), found without recursion; the node itself when it
    /// is no `and`/`or`. Walkers go through this, so a long list costs them no stack.
    pub fn operands(&self) -> Vec<&Node> {
        let mut out = Vec::new();
        let mut cur = self;
        while let (Node::And(..), Node::And(a, b)) | (Node::Or(..), Node::Or(a, b)) = (self, cur) {
            out.push(&**b);
            cur = a;
        }
        out.push(cur);
        out.reverse();
        out
    }
}

/// Fully parenthesized where `and` and `or` mix (tcpdump gives them the same precedence, left
/// to right, which few readers remember); a chain of one operator reads left to right without
/// parentheses (`a or b or c`), so a long list keeps its text flat and parses back within the
/// nesting limit.
impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let operand = |f: &mut fmt::Formatter<'_>, n: &Node| match n {
            Node::And(..) | Node::Or(..) => write!(f, "({n})"),
            _ => write!(f, "{n}"),
        };
        match self {
            Node::And(..) | Node::Or(..) => {
                let op = match self {
                    Node::And(..) => " and ",
                    _ => " or ",
                };
                for (i, n) in self.operands().into_iter().enumerate() {
                    if i > 0 {
                        f.write_str(op)?;
                    }
                    operand(f, n)?;
                }
                Ok(())
            }
            Node::Not(n) => {
                f.write_str("not ")?;
                operand(f, n)
            }
            Node::Prim(p) => write!(f, "{p}"),
        }
    }
}
