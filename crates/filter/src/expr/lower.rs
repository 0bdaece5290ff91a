//! From the parsed tree to a guarded formula over nftables matches, primitive by primitive,
//! with libpcap's meaning on IP packets (checked against `tcpdump -d` and by the differential
//! test in `crates/edgecap/tests/capture/differential.rs`):
//!
//! | primitive | matches |
//! | --- | --- |
//! | `ip proto P` | IPv4 and `ip[9] == P` |
//! | `ip6 proto P` | IPv6 and (`ip6[6] == P`, or `ip6[6] == 44` and `ip6[40] == P`) |
//! | `proto P`, `tcp`, `udp`, ... | either of those (`icmp`, `igmp`, `vrrp`: IPv4 only; `icmp6`: IPv6) |
//! | `host A`, `net P` | the family of A, and the source or destination address |
//! | `port N` (IPv4) | `ip[9]` in {6, 17, 132} (or the one protocol named), not a later fragment (`ip[6:2] & 0x1fff == 0`), and the port at the header length |
//! | `port N` (IPv6) | `ip6[6]` in {6, 17, 132}, and `ip6[40:2]` / `ip6[42:2]`: no extension header is walked |
//! | `tcp[o:s]`, `udp[..]`, `icmp[..]` | IPv4, the protocol, not a later fragment, the transport bytes |
//! | `icmp6[o:s]` | IPv6, `ip6[6] == 58`, `ip6[40 + o]` |
//! | payload fields (`udp[8:4]`: past the bytes every packet of the layer has) | the same loads; accepted only when the whole expression is one rule holding the load (`Expression::compile`) |
//! | `less N`, `greater N`, `len OP N` | `meta length` |

use crate::expr::ast::{DirQual, Layer, Node, Primitive};
use crate::formula::Formula;
use crate::ir::{Base, CmpOp, Dir, Family, Match, Payload, Test};

const FRAGMENT_HEADER: u32 = 44;
/// The protocols tcpdump's `port` means without a protocol qualifier.
const PORT_PROTOCOLS: [u32; 3] = [6, 17, 132];

pub(crate) fn lower(n: &Node) -> Formula {
    match n {
        // A chain `a or b or c` becomes one list, so its length costs no recursion here or
        // in the expansion.
        Node::And(..) => Formula::And(n.operands().into_iter().map(lower).collect()),
        Node::Or(..) => Formula::Or(n.operands().into_iter().map(lower).collect()),
        Node::Not(a) => Formula::Not(Box::new(lower(a))),
        Node::Prim(p) => primitive(p),
    }
}

fn load(base: Base, offset: u16, size: u8, mask: Option<u32>, test: Test) -> Match {
    Match::Payload(Payload {
        base,
        offset,
        size,
        mask,
        test,
    })
}

fn eq(value: u32) -> Test {
    Test::Cmp {
        op: CmpOp::Eq,
        value,
    }
}

fn nh(offset: u16, size: u8, test: Test) -> Match {
    load(Base::Network, offset, size, None, test)
}

/// `ip[6:2] & 0x1fff == 0`: the first (or only) fragment, the one with the transport header.
fn first_fragment() -> Match {
    load(Base::Network, 6, 2, Some(0x1fff), eq(0))
}

fn v4() -> Match {
    Match::Family(Family::V4)
}

fn v6() -> Match {
    Match::Family(Family::V6)
}

/// The test of one protocol, or of a set of them.
fn proto_test(protos: &[u32]) -> Test {
    match protos {
        [one] => eq(*one),
        many => Test::Set {
            values: many.to_vec(),
            negate: false,
        },
    }
}

/// `ip proto P` / `ip6 proto P` as libpcap compiles them.
fn proto(family: Family, p: u8) -> Formula {
    let p = u32::from(p);
    match family {
        Family::V4 => Formula::Chain(vec![v4(), nh(9, 1, eq(p))]),
        Family::V6 => Formula::Guarded(
            vec![v6()],
            Box::new(Formula::Or(vec![
                Formula::Chain(vec![nh(6, 1, eq(p))]),
                Formula::Chain(vec![nh(6, 1, eq(FRAGMENT_HEADER)), nh(40, 1, eq(p))]),
            ])),
        ),
    }
}

fn families(family: Option<Family>, f: impl Fn(Family) -> Formula) -> Formula {
    match family {
        Some(fam) => f(fam),
        None => Formula::Or(vec![f(Family::V4), f(Family::V6)]),
    }
}

/// The direction qualifier over a per-direction match.
fn directions(dir: DirQual, m: impl Fn(Dir) -> Option<Match>) -> Formula {
    let chain = |dirs: &[Dir]| Formula::Chain(dirs.iter().filter_map(|d| m(*d)).collect());
    match dir {
        DirQual::Src => chain(&[Dir::Src]),
        DirQual::Dst => chain(&[Dir::Dst]),
        DirQual::Both => chain(&[Dir::Src, Dir::Dst]),
        DirQual::Either => Formula::Or(vec![chain(&[Dir::Src]), chain(&[Dir::Dst])]),
    }
}

fn primitive(p: &Primitive) -> Formula {
    match p {
        Primitive::Family(f) => Formula::Chain(vec![Match::Family(*f)]),
        Primitive::Proto { family, proto: n } => families(*family, |f| proto(f, *n)),
        Primitive::Host { dir, addr } => {
            let family = crate::address::family_of(*addr);
            let len = crate::address::max_len(*addr);
            address(family, *dir, *addr, len)
        }
        Primitive::Net { dir, prefix } => {
            address(prefix.family(), *dir, prefix.addr(), prefix.prefix_len())
        }
        Primitive::Port {
            proto: only,
            dir,
            lo,
            hi,
            ..
        } => {
            let protos = match only {
                Some(p) => vec![u32::from(*p)],
                None => PORT_PROTOCOLS.to_vec(),
            };
            let test = match lo == hi {
                true => eq(u32::from(*lo)),
                false => Test::Range {
                    lo: u32::from(*lo),
                    hi: u32::from(*hi),
                    negate: false,
                },
            };
            let at = |d: Dir| if d == Dir::Src { 0 } else { 2 };
            let v4_ports = Formula::Guarded(
                vec![v4(), nh(9, 1, proto_test(&protos)), first_fragment()],
                Box::new(directions(*dir, |d| {
                    Some(load(Base::Transport, at(d), 2, None, test.clone()))
                })),
            );
            let v6_ports = Formula::Guarded(
                vec![v6(), nh(6, 1, proto_test(&protos))],
                Box::new(directions(*dir, |d| Some(nh(40 + at(d), 2, test.clone())))),
            );
            Formula::Or(vec![v4_ports, v6_ports])
        }
        Primitive::Field {
            layer,
            offset,
            size,
            mask,
            op,
            value,
        } => {
            let test = Test::Cmp {
                op: *op,
                value: *value,
            };
            let transport = |proto: u32| {
                vec![
                    v4(),
                    nh(9, 1, eq(proto)),
                    first_fragment(),
                    load(Base::Transport, *offset, *size, *mask, test.clone()),
                ]
            };
            Formula::Chain(match layer {
                Layer::Ip => vec![v4(), load(Base::Network, *offset, *size, *mask, test)],
                Layer::Ip6 => vec![v6(), load(Base::Network, *offset, *size, *mask, test)],
                Layer::Tcp => transport(6),
                Layer::Udp => transport(17),
                Layer::Icmp => transport(1),
                Layer::Icmp6 => vec![
                    v6(),
                    nh(6, 1, eq(58)),
                    load(Base::Network, 40 + *offset, *size, *mask, test),
                ],
            })
        }
        Primitive::Len { op, value } => Formula::Chain(vec![Match::Length {
            op: *op,
            value: *value,
        }]),
    }
}

/// The load of a payload field ([`Primitive::is_payload_field`]): the match that reads past
/// the headers every packet has, as [`lower`] puts it in the rules.
pub(crate) fn payload_load(p: &Primitive) -> Option<Match> {
    if !p.is_payload_field() {
        return None;
    }
    match primitive(p) {
        Formula::Chain(ms) => ms.last().cloned(),
        _ => None,
    }
}

/// Every payload field of the tree, in order, each once (walked without recursion deeper
/// than the tree, which the parser bounds).
pub(crate) fn payload_fields(n: &Node) -> Vec<&Primitive> {
    let mut out: Vec<&Primitive> = Vec::new();
    let mut stack = vec![n];
    while let Some(n) = stack.pop() {
        match n {
            Node::And(..) | Node::Or(..) => stack.extend(n.operands()),
            Node::Not(a) => stack.push(a),
            Node::Prim(p) if p.is_payload_field() && !out.contains(&p) => out.push(p),
            Node::Prim(_) => {}
        }
    }
    out
}

/// `host`/`net`: the family, then the address test per direction (a /0 tests nothing).
fn address(family: Family, dir: DirQual, addr: std::net::IpAddr, len: u8) -> Formula {
    Formula::Guarded(
        vec![Match::Family(family)],
        Box::new(directions(dir, |d| {
            (len > 0).then_some(Match::Addr {
                dir: d,
                addr,
                prefix_len: len,
                negate: false,
            })
        })),
    )
}
