//! Lowering and compilation of expressions: the rules for each primitive, and a property test
//! that the compiled rules, run by the nf_tables matcher, select exactly the packets a direct
//! reading of libpcap's semantics selects (`reference`), for random expressions and packets.

use std::net::IpAddr;

use proptest::prelude::*;

use super::*;
use crate::address::Prefix;
use crate::expr::ast::{DirQual, Layer, Primitive};
use crate::ir::{CmpOp, Family};
use crate::{matches, render_nft};

fn rules(text: &str) -> Vec<String> {
    render_nft(&Expression::parse(text).unwrap().compile().unwrap())
}

#[test]
fn protocols_follow_libpcap() {
    assert_eq!(
        rules("tcp"),
        [
            "meta nfproto ipv4 @nh,72,8 == 6",
            "meta nfproto ipv6 @nh,48,8 == 6",
            "meta nfproto ipv6 @nh,48,8 == 44 @nh,320,8 == 6",
        ]
    );
    assert_eq!(rules("icmp"), ["meta nfproto ipv4 @nh,72,8 == 1"]);
    assert_eq!(
        rules("icmp6"),
        [
            "meta nfproto ipv6 @nh,48,8 == 58",
            "meta nfproto ipv6 @nh,48,8 == 44 @nh,320,8 == 58",
        ]
    );
    assert_eq!(rules("ip6 proto 44"), ["meta nfproto ipv6 @nh,48,8 == 44"]);
    assert_eq!(
        rules("not tcp"),
        [
            "meta nfproto ipv4 @nh,72,8 != 6",
            "meta nfproto ipv6 @nh,48,8 != 6 @nh,48,8 != 44",
            "meta nfproto ipv6 @nh,48,8 == 44 @nh,320,8 != 6",
        ]
    );
}

#[test]
fn ports_are_guarded_by_protocol_and_fragment() {
    assert_eq!(
        rules("port 80"),
        [
            "meta nfproto ipv6 @nh,48,8 { 6, 17, 132 } @nh,320,16 == 80",
            "meta nfproto ipv6 @nh,48,8 { 6, 17, 132 } @nh,336,16 == 80",
            "meta nfproto ipv4 @nh,72,8 { 6, 17, 132 } @nh,48,16 & 0x1fff == 0 @th,0,16 == 80",
            "meta nfproto ipv4 @nh,72,8 { 6, 17, 132 } @nh,48,16 & 0x1fff == 0 @th,16,16 == 80",
        ]
    );
    // Not port 80 keeps later fragments, other protocols and IPv6 with other next headers.
    assert_eq!(
        rules("not tcp dst port 80"),
        [
            "meta nfproto ipv6 @nh,48,8 != 6",
            "meta nfproto ipv4 @nh,72,8 != 6",
            "meta nfproto ipv6 @nh,48,8 == 6 @nh,336,16 != 80",
            "meta nfproto ipv4 @nh,72,8 == 6 @nh,48,16 & 0x1fff != 0",
            "meta nfproto ipv4 @nh,72,8 == 6 @nh,48,16 & 0x1fff == 0 @th,16,16 != 80",
        ]
    );
    assert_eq!(
        rules("udp src and dst portrange 1-1023"),
        [
            "meta nfproto ipv6 @nh,48,8 == 17 @nh,320,16 1-1023 @nh,336,16 1-1023",
            "meta nfproto ipv4 @nh,72,8 == 17 @nh,48,16 & 0x1fff == 0 @th,0,16 1-1023 @th,16,16 1-1023",
        ]
    );
}

#[test]
fn hosts_nets_fields_and_lengths() {
    assert_eq!(
        rules("src host 198.18.0.1 and dst net 2001:db8::/32"),
        Vec::<String>::new(),
        "an IPv4 source and an IPv6 destination never meet"
    );
    assert_eq!(
        rules("not net 198.18.0.0/15"),
        [
            "meta nfproto ipv6",
            "meta nfproto ipv4 ip saddr != 198.18.0.0/15 ip daddr != 198.18.0.0/15",
        ]
    );
    assert_eq!(rules("net 0.0.0.0/0"), ["meta nfproto ipv4"]);
    assert_eq!(
        rules("tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn"),
        ["meta nfproto ipv4 @nh,72,8 == 6 @nh,48,16 & 0x1fff == 0 @th,104,8 & 0x12 == 2"]
    );
    assert_eq!(
        rules("icmp6[icmp6type] == icmp6-echo"),
        ["meta nfproto ipv6 @nh,48,8 == 58 @nh,320,8 == 128"]
    );
    assert_eq!(rules("ip[8] < 2"), ["meta nfproto ipv4 @nh,64,8 < 2"]);
    assert_eq!(rules("less 100 and not greater 50"), ["meta length < 50"]);
    assert_eq!(rules("len >= 0"), ["meta length >= 0"]);
}

#[test]
fn combining_with_a_structured_filter() {
    let structured = crate::StructuredFilter::from_cli(&["198.18.0.0/24"], &[], &[], &[], &[])
        .unwrap()
        .compile()
        .unwrap();
    let e = Expression::parse("tcp or ip6").unwrap();
    assert_eq!(
        render_nft(&e.compile_and(&structured).unwrap()),
        ["meta nfproto ipv4 ip saddr 198.18.0.0/24 @nh,72,8 == 6"]
    );
}

#[test]
fn too_many_rules_names_the_expression() {
    let text = "(net 198.18.0.0/24 or net 198.18.1.0/24 or net 198.18.2.0/24 or \
                net 198.18.3.0/24) and (net 198.18.4.0/24 or net 198.18.5.0/24 or \
                net 198.18.6.0/24 or net 198.18.7.0/24) and (port 1 or port 2 or port 3 or \
                port 4 or port 5)";
    let err = Expression::parse(text).unwrap().compile().unwrap_err();
    let ExprError::TooManyRules {
        expression, count, ..
    } = &err
    else {
        panic!("{err}");
    };
    assert_eq!(expression, text);
    assert_eq!(*count, 320);
    assert!(
        err.to_string().contains("more than the limit of 256"),
        "{err}"
    );
}

#[test]
fn payload_fields_are_accepted_in_one_rule_filters_only() {
    for text in [
        "udp[8:4] == 0xdeadbeef",
        "dst host 198.18.1.2 and udp dst port 7777 and udp[8:4] == 0xdeadbeef",
        "tcp dst port 443 and tcp[20] == 0x16",
        "ip6[6] == 6 and ip6[53] == 0x02",
        "ip and udp[8:4] == 1 and len == 100 and udp[12:2] & 0xff00 == 0x100",
        "icmp6[8:4] == 7",
        // The second field is implied by the first and pruned; the rule still loads its bytes.
        "tcp[20:2] == 1 and tcp[20:2] > 0",
    ] {
        let rules = Expression::parse(text).unwrap().compile().unwrap();
        assert_eq!(rules.len(), 1, "{text}");
    }
    for (text, field) in [
        ("udp[8:4] == 1 or tcp", "udp[8:4] == 1"),
        ("not udp[8:4] == 1", "udp[8:4] == 1"),
        ("udp port 53 and udp[8:4] == 1", "udp[8:4] == 1"),
        ("port 53 and tcp[20] == 1", "tcp[20:1] == 1"),
        // One rule, but without the load: tcpdump would still reject a short IPv4 packet
        // when it reaches the field first.
        ("(ip and udp[8:4] == 1) or ip", "udp[8:4] == 1"),
    ] {
        match Expression::parse(text).unwrap().compile() {
            Err(e @ ExprError::PayloadNotExact { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains(field) && msg.contains("one rule"), "{msg}");
            }
            other => panic!("{text}: {other:?}"),
        }
    }
    // Header fields are not payload fields, wherever they are.
    assert!(
        Expression::parse("tcp[13] == 2 or not udp[6:2] == 0")
            .unwrap()
            .compile()
            .is_ok()
    );
}

/// libpcap's meaning, read directly off the packet bytes as its BPF programs do (see
/// `tcpdump -d`), independent of the formula and its expansion: left to right, short-circuit,
/// and a field load past the end of the packet rejects the packet from the whole filter.
fn reference(n: &Node, p: &[u8]) -> bool {
    reference_or_abort(n, p).unwrap_or(false)
}

/// `None`: a load ran off the packet (BPF returns 0 at once).
fn reference_or_abort(n: &Node, p: &[u8]) -> Option<bool> {
    Some(match n {
        Node::And(a, b) => reference_or_abort(a, p)? && reference_or_abort(b, p)?,
        Node::Or(a, b) => reference_or_abort(a, p)? || reference_or_abort(b, p)?,
        Node::Not(a) => !reference_or_abort(a, p)?,
        Node::Prim(prim) => return reference_prim(prim, p),
    })
}

fn load(p: &[u8], at: usize, size: u8) -> Option<u32> {
    let b = p.get(at..at + usize::from(size))?;
    Some(b.iter().fold(0, |acc, x| (acc << 8) | u32::from(*x)))
}

fn reference_prim(prim: &Primitive, p: &[u8]) -> Option<bool> {
    if let Primitive::Field {
        layer,
        offset,
        size,
        mask,
        op,
        value,
    } = prim
    {
        let version = p[0] >> 4;
        let (v4, v6) = (version == 4, version == 6);
        let ihl = usize::from(p[0] & 0x0f) * 4;
        let first_frag = v4 && load(p, 6, 2).unwrap() & 0x1fff == 0;
        let at = match layer {
            Layer::Ip if v4 => Some(0),
            Layer::Ip6 if v6 => Some(0),
            Layer::Tcp if v4 && p[9] == 6 && first_frag => Some(ihl),
            Layer::Udp if v4 && p[9] == 17 && first_frag => Some(ihl),
            Layer::Icmp if v4 && p[9] == 1 && first_frag => Some(ihl),
            Layer::Icmp6 if v6 && p[6] == 58 => Some(40),
            _ => None,
        };
        let Some(at) = at else {
            return Some(false);
        };
        let v = load(p, at + usize::from(*offset), *size)?;
        return Some(op.holds(v & mask.unwrap_or(u32::MAX), *value));
    }
    Some(reference_header(prim, p))
}

fn reference_header(prim: &Primitive, p: &[u8]) -> bool {
    let version = p[0] >> 4;
    let v4 = version == 4;
    let v6 = version == 6;
    let ihl = usize::from(p[0] & 0x0f) * 4;
    let first_frag = v4 && load(p, 6, 2).unwrap() & 0x1fff == 0;
    let addr_at = |dir: ast::DirQual, v4: bool, test: &dyn Fn(IpAddr) -> bool| {
        let read = |at: usize| -> IpAddr {
            match v4 {
                true => IpAddr::from(<[u8; 4]>::try_from(&p[at..at + 4]).unwrap()),
                false => IpAddr::from(<[u8; 16]>::try_from(&p[at..at + 16]).unwrap()),
            }
        };
        let (s, d) = if v4 { (12, 16) } else { (8, 24) };
        match dir {
            DirQual::Src => test(read(s)),
            DirQual::Dst => test(read(d)),
            DirQual::Either => test(read(s)) || test(read(d)),
            DirQual::Both => test(read(s)) && test(read(d)),
        }
    };
    match prim {
        Primitive::Family(Family::V4) => v4,
        Primitive::Family(Family::V6) => v6,
        Primitive::Proto { family, proto } => {
            let in4 = v4 && p[9] == *proto;
            let in6 = v6 && (p[6] == *proto || (p[6] == 44 && p[40] == *proto));
            match family {
                Some(Family::V4) => in4,
                Some(Family::V6) => in6,
                None => in4 || in6,
            }
        }
        Primitive::Host { dir, addr } => {
            let fam_ok = if addr.is_ipv4() { v4 } else { v6 };
            fam_ok && addr_at(*dir, addr.is_ipv4(), &|a| a == *addr)
        }
        Primitive::Net { dir, prefix } => {
            let fam_ok = if prefix.family() == Family::V4 {
                v4
            } else {
                v6
            };
            fam_ok && addr_at(*dir, prefix.family() == Family::V4, &|a| prefix.contains(a))
        }
        Primitive::Port {
            proto, dir, lo, hi, ..
        } => {
            let protos: &[u8] = match proto {
                Some(6) => &[6],
                Some(17) => &[17],
                Some(132) => &[132],
                _ => &[6, 17, 132],
            };
            let (ok, base) = match (v4, v6) {
                (true, _) => (protos.contains(&p[9]) && first_frag, ihl),
                (_, true) => (protos.contains(&p[6]), 40),
                _ => (false, 0),
            };
            let port = |off: usize| {
                load(p, base + off, 2)
                    .is_some_and(|v| (u32::from(*lo)..=u32::from(*hi)).contains(&v))
            };
            ok && match dir {
                DirQual::Src => port(0),
                DirQual::Dst => port(2),
                DirQual::Either => port(0) || port(2),
                DirQual::Both => port(0) && port(2),
            }
        }
        Primitive::Field { .. } => unreachable!("fields are read above"),
        Primitive::Len { op, value } => op.holds(p.len() as u32, *value),
    }
}

/// A well-formed IP packet from a small world of addresses, ports and protocols.
fn packet() -> impl Strategy<Value = Vec<u8>> {
    let v4_addrs = prop::sample::select(vec![
        [198, 18, 0, 1],
        [198, 18, 0, 2],
        [198, 18, 1, 2],
        [198, 19, 255, 255],
        [198, 18, 128, 0],
    ]);
    let v6_addrs = prop::sample::select(vec![
        "2001:db8::1",
        "2001:db8:1::2",
        "2001:db8:ffff::1",
        "2001:db8::",
    ]);
    let ports = prop::sample::select(vec![0u16, 53, 80, 443, 1023, 1024, 65535]);
    let v4 = (
        v4_addrs.clone(),
        v4_addrs,
        prop::sample::select(vec![1u8, 2, 6, 17, 47, 132]),
        any::<bool>(),
        prop::sample::select(vec![0u16, 0x2000, 185]),
        ports.clone(),
        ports.clone(),
        any::<u8>(),
        0usize..40,
    )
        .prop_map(|(s, d, proto, options, frag, sp, dp, flags, pad)| {
            let ihl = if options { 6 } else { 5 };
            let mut p = vec![
                0x40 | ihl,
                0,
                0,
                0,
                0,
                0,
                (frag >> 8) as u8,
                frag as u8,
                64,
                proto,
                0,
                0,
            ];
            p.extend_from_slice(&s);
            p.extend_from_slice(&d);
            if options {
                p.extend_from_slice(&[1, 1, 1, 0]);
            }
            p.extend(transport(proto, sp, dp, flags));
            p.resize(p.len() + pad, 0);
            let len = p.len() as u16;
            p[2..4].copy_from_slice(&len.to_be_bytes());
            p
        });
    let v6 = (
        v6_addrs.clone(),
        v6_addrs,
        prop::sample::select(vec![6u8, 17, 58, 132, 47, 44, 0]),
        prop::sample::select(vec![6u8, 17, 58]),
        ports.clone(),
        ports,
        any::<u8>(),
        0usize..40,
    )
        .prop_map(|(s, d, next, inner, sp, dp, flags, pad)| {
            let mut p = vec![0x60, 0, 0, 0, 0, 0, next, 64];
            p.extend_from_slice(&s.parse::<std::net::Ipv6Addr>().unwrap().octets());
            p.extend_from_slice(&d.parse::<std::net::Ipv6Addr>().unwrap().octets());
            let proto = match next {
                44 => {
                    p.extend_from_slice(&[inner, 0, 0, 0, 0, 0, 0, 1]);
                    inner
                }
                0 => {
                    p.extend_from_slice(&[inner, 0, 1, 4, 0, 0, 0, 0]);
                    inner
                }
                n => n,
            };
            p.extend(transport(proto, sp, dp, flags));
            p.resize(p.len() + pad, 0);
            let len = (p.len() - 40) as u16;
            p[4..6].copy_from_slice(&len.to_be_bytes());
            p
        });
    prop_oneof![v4, v6]
}

fn transport(proto: u8, sp: u16, dp: u16, flags: u8) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&sp.to_be_bytes());
    t.extend_from_slice(&dp.to_be_bytes());
    let len = match proto {
        6 => 20,
        _ => 8,
    };
    t.resize(len, 0);
    if proto == 6 {
        t[12] = 0x50;
        t[13] = flags;
    }
    if proto == 1 || proto == 58 {
        t[0] = flags & 0x81;
    }
    t
}

fn dir() -> impl Strategy<Value = DirQual> {
    prop::sample::select(vec![
        DirQual::Src,
        DirQual::Dst,
        DirQual::Either,
        DirQual::Both,
    ])
}

fn op() -> impl Strategy<Value = CmpOp> {
    prop::sample::select(vec![
        CmpOp::Eq,
        CmpOp::Ne,
        CmpOp::Lt,
        CmpOp::Le,
        CmpOp::Gt,
        CmpOp::Ge,
    ])
}

fn primitive() -> impl Strategy<Value = Primitive> {
    let addr = prop::sample::select(vec![
        "198.18.0.1",
        "198.18.1.2",
        "198.19.255.255",
        "2001:db8::1",
        "2001:db8:1::2",
    ])
    .prop_map(|a| a.parse::<IpAddr>().unwrap());
    let prefix = prop::sample::select(vec![
        ("198.18.0.0", 15u8),
        ("198.18.0.0", 24),
        ("198.18.128.0", 17),
        ("198.18.0.2", 32),
        ("0.0.0.0", 0),
        ("2001:db8::", 32),
        ("2001:db8:1::", 48),
        ("2001:db8::", 127),
    ])
    .prop_map(|(a, l)| Prefix::new(a.parse().unwrap(), l).unwrap());
    let port = prop::sample::select(vec![0u16, 53, 80, 443, 1023, 1024, 65535]);
    let proto = prop::sample::select(vec![None, Some(6u8), Some(17), Some(132)]);
    prop_oneof![
        prop::sample::select(vec![Family::V4, Family::V6]).prop_map(Primitive::Family),
        (
            prop::sample::select(vec![None, Some(Family::V4), Some(Family::V6)]),
            prop::sample::select(vec![1u8, 2, 6, 17, 44, 47, 58, 132])
        )
            .prop_map(|(family, proto)| Primitive::Proto { family, proto }),
        (dir(), addr).prop_map(|(dir, addr)| Primitive::Host { dir, addr }),
        (dir(), prefix).prop_map(|(dir, prefix)| Primitive::Net { dir, prefix }),
        (proto, dir(), port.clone(), port).prop_map(|(proto, dir, a, b)| Primitive::Port {
            proto,
            dir,
            lo: a.min(b),
            hi: a.max(b),
            range: a != b,
        }),
        (
            prop::sample::select(vec![
                (Layer::Ip, 6u16, 2u8),
                (Layer::Ip, 9, 1),
                (Layer::Ip, 16, 4),
                (Layer::Ip6, 6, 1),
                (Layer::Ip6, 36, 4),
                (Layer::Tcp, 13, 1),
                (Layer::Tcp, 2, 2),
                (Layer::Udp, 0, 2),
                (Layer::Icmp, 0, 1),
                (Layer::Icmp6, 0, 1),
                // Payload fields: past the minimal headers, short in some packets.
                (Layer::Udp, 8, 4),
                (Layer::Udp, 30, 1),
                (Layer::Tcp, 20, 2),
                (Layer::Ip, 24, 4),
                (Layer::Ip6, 44, 4),
                (Layer::Icmp6, 8, 2),
            ]),
            any::<bool>(),
            op(),
            any::<u32>()
        )
            .prop_map(|((layer, offset, size), masked, op, v)| {
                let max = u32::MAX >> (32 - 8 * u32::from(size));
                Primitive::Field {
                    layer,
                    offset,
                    size,
                    mask: masked.then_some(v.rotate_left(7) & max),
                    op,
                    value: v & max & if v % 3 == 0 { 0x3 } else { max },
                }
            }),
        (op(), 20u32..120).prop_map(|(op, value)| Primitive::Len { op, value }),
    ]
}

fn node() -> impl Strategy<Value = Node> {
    primitive()
        .prop_map(Node::Prim)
        .prop_recursive(4, 16, 2, |inner| {
            prop_oneof![
                (inner.clone(), inner.clone())
                    .prop_map(|(a, b)| Node::And(Box::new(a), Box::new(b))),
                (inner.clone(), inner.clone())
                    .prop_map(|(a, b)| Node::Or(Box::new(a), Box::new(b))),
                inner.prop_map(|a| Node::Not(Box::new(a))),
            ]
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// The compiled rules select what libpcap's semantics select, packet by packet.
    #[test]
    fn compiled_rules_match_like_libpcap(
        n in node(),
        packets in proptest::collection::vec(packet(), 24),
    ) {
        let e = Expression { text: n.to_string(), root: n };
        match e.compile() {
            Ok(rules) => {
                for p in &packets {
                    prop_assert_eq!(
                        matches(&rules, p),
                        reference(&e.root, p),
                        "{} on {:02x?}\nrules: {:#?}", e, p, render_nft(&rules)
                    );
                }
            }
            Err(ExprError::TooManyRules { .. } | ExprError::PayloadNotExact { .. }) => {}
            Err(other) => prop_assert!(false, "{}: {}", e, other),
        }
    }

    /// Payload fields ANDed with other tests: where edgecap accepts them (one rule), short
    /// packets included, the rules select what libpcap selects.
    #[test]
    fn payload_fields_in_one_rule_match_like_libpcap(
        others in proptest::collection::vec(primitive(), 0..3),
        field in prop::sample::select(vec![
            (Layer::Udp, 8u16, 4u8, 0u32),
            (Layer::Udp, 12, 1, 0),
            (Layer::Tcp, 20, 2, 0),
            (Layer::Tcp, 40, 1, 0),
            (Layer::Ip, 24, 1, 0),
            (Layer::Ip6, 48, 4, 0),
            (Layer::Icmp, 8, 4, 0),
        ]),
        op in op(),
        packets in proptest::collection::vec(packet(), 24),
    ) {
        let (layer, offset, size, value) = field;
        let mut n = Node::Prim(Primitive::Field { layer, offset, size, mask: None, op, value });
        for o in others {
            n = Node::And(Box::new(Node::Prim(o)), Box::new(n));
        }
        let e = Expression { text: n.to_string(), root: n };
        match e.compile() {
            Ok(rules) => {
                prop_assert!(rules.len() <= 1, "{}: {} rules", e, rules.len());
                for p in &packets {
                    prop_assert_eq!(
                        matches(&rules, p),
                        reference(&e.root, p),
                        "{} on {:02x?}\nrules: {:#?}", e, p, render_nft(&rules)
                    );
                }
            }
            Err(ExprError::PayloadNotExact { rules, .. }) => prop_assert!(rules > 1),
            Err(other) => prop_assert!(false, "{}: {}", e, other),
        }
    }

    /// What an expression displays as parses back to the same tree.
    #[test]
    fn display_round_trips(n in node()) {
        let text = n.to_string();
        let back = Expression::parse(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        prop_assert_eq!(back.root(), &n, "{}", text);
    }

    /// The parser and compiler return, never panic, whatever the text.
    #[test]
    fn parsing_is_total_on_any_text(text in "\\PC{0,60}") {
        if let Ok(e) = Expression::parse(&text) {
            let _ = e.compile();
        }
    }

    /// ... including text made of the language's own words, where deeper paths are reached.
    #[test]
    fn parsing_is_total_on_token_soup(words in proptest::collection::vec(prop::sample::select(vec![
        "host", "net", "port", "portrange", "proto", "src", "dst", "and", "or", "not", "!", "&&",
        "||", "(", ")", "[", "]", ":", "&", "|", "==", "!=", "<", ">=", "=", "-", "+", "/", "\\",
        "ip", "ip6", "tcp", "udp", "icmp", "icmp6", "less", "greater", "len", "mask", "tcpflags",
        "tcp-syn", "0", "13", "2", "80", "65535", "1-2", "198.18.0.1", "198.18", "255.255.0.0",
        "2001:db8::", "::", "0x1fff", "300", "ether", "protochain", "\\tcp", "010", "4294967296",
    ]), 0..14)) {
        let text = words.join(" ");
        if let Ok(e) = Expression::parse(&text) {
            let _ = e.compile();
            prop_assert!(Expression::parse(&e.to_string()).is_ok(), "{} -> {}", text, e);
        }
        let glued = words.concat();
        if let Ok(e) = Expression::parse(&glued) {
            let _ = e.compile();
        }
    }
}
