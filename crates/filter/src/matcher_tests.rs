use std::net::{Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;

use super::*;
use crate::StructuredFilter;

const TCP: u8 = 6;
const UDP: u8 = 17;
const ICMP: u8 = 1;
const ICMPV6: u8 = 58;

fn compiled(
    src: &[&str],
    dst: &[&str],
    sport: &[&str],
    dport: &[&str],
    proto: &[&str],
) -> Vec<Conjunction> {
    StructuredFilter::from_cli(src, dst, sport, dport, proto)
        .unwrap()
        .compile()
        .unwrap()
}

/// The first eight bytes of a UDP/TCP-like header: ports, then filler.
fn ports(src: u16, dst: u16) -> Vec<u8> {
    let mut header = Vec::new();
    header.extend_from_slice(&src.to_be_bytes());
    header.extend_from_slice(&dst.to_be_bytes());
    header.extend_from_slice(&[0, 8, 0, 0]);
    header
}

/// An IPv4 packet; `frag` is the raw flags+offset field.
fn ipv4_frag(proto: u8, src: &str, dst: &str, frag: u16, payload: &[u8]) -> Vec<u8> {
    let total = u16::try_from(20 + payload.len()).unwrap();
    let mut p = vec![0x45, 0];
    p.extend_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&[0, 1]);
    p.extend_from_slice(&frag.to_be_bytes());
    p.extend_from_slice(&[64, proto, 0, 0]);
    p.extend_from_slice(&src.parse::<Ipv4Addr>().unwrap().octets());
    p.extend_from_slice(&dst.parse::<Ipv4Addr>().unwrap().octets());
    p.extend_from_slice(payload);
    p
}

fn ipv4(proto: u8, src: &str, dst: &str, payload: &[u8]) -> Vec<u8> {
    ipv4_frag(proto, src, dst, 0, payload)
}

fn ipv6(next: u8, src: &str, dst: &str, payload: &[u8]) -> Vec<u8> {
    let len = u16::try_from(payload.len()).unwrap();
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&len.to_be_bytes());
    p.extend_from_slice(&[next, 64]);
    p.extend_from_slice(&src.parse::<Ipv6Addr>().unwrap().octets());
    p.extend_from_slice(&dst.parse::<Ipv6Addr>().unwrap().octets());
    p.extend_from_slice(payload);
    p
}

/// An options-style extension header (hop-by-hop, routing, destination options) of 8 bytes.
fn ext8(next: u8) -> Vec<u8> {
    vec![next, 0, 0, 0, 0, 0, 0, 0]
}

/// A fragment header; `offset` in 8-byte units.
fn frag6(next: u8, offset: u16, more: bool) -> Vec<u8> {
    let field = (offset << 3) | u16::from(more);
    let mut h = vec![next, 0];
    h.extend_from_slice(&field.to_be_bytes());
    h.extend_from_slice(&[0, 0, 0, 1]);
    h
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

#[test]
fn ipv4_udp_by_prefix_protocol_and_port() {
    let rules = compiled(&["198.18.0.0/24"], &[], &[], &["53"], &["udp"]);
    assert!(matches(
        &rules,
        &ipv4(UDP, "198.18.0.9", "192.0.2.1", &ports(40000, 53))
    ));
    assert!(!matches(
        &rules,
        &ipv4(UDP, "198.18.1.9", "192.0.2.1", &ports(40000, 53))
    ));
    assert!(!matches(
        &rules,
        &ipv4(UDP, "198.18.0.9", "192.0.2.1", &ports(53, 54))
    ));
    assert!(!matches(
        &rules,
        &ipv4(TCP, "198.18.0.9", "192.0.2.1", &ports(40000, 53))
    ));
}

#[test]
fn ports_without_protocol_match_tcp_and_udp_but_not_icmp() {
    let rules = compiled(&[], &[], &[], &["2048"], &[]);
    assert!(matches(
        &rules,
        &ipv4(TCP, "10.0.0.1", "10.0.0.2", &ports(1, 2048))
    ));
    assert!(matches(&rules, &ipv6(UDP, "::1", "::2", &ports(1, 2048))));
    // An echo request's checksum bytes would read as port 2048 through `th dport` alone.
    assert!(!matches(
        &rules,
        &ipv4(ICMP, "10.0.0.1", "10.0.0.2", &ports(0x0800, 2048))
    ));
}

#[test]
fn icmp_and_icmpv6_keep_to_their_versions() {
    let icmp = compiled(&[], &[], &[], &[], &["icmp"]);
    let icmpv6 = compiled(&[], &[], &[], &[], &["icmpv6"]);
    let v4 = ipv4(ICMP, "10.0.0.1", "10.0.0.2", &[8, 0, 0, 0]);
    let v6 = ipv6(ICMPV6, "fe80::1", "ff02::1", &[135, 0, 0, 0]);
    let v6_proto_1 = ipv6(ICMP, "fe80::1", "ff02::1", &[8, 0, 0, 0]);
    assert!(matches(&icmp, &v4) && !matches(&icmp, &v6) && !matches(&icmp, &v6_proto_1));
    assert!(matches(&icmpv6, &v6) && !matches(&icmpv6, &v4));
}

#[test]
fn addresses_match_their_family_only() {
    let rules = compiled(&["1.2.3.4"], &[], &[], &[], &[]);
    assert!(matches(&rules, &ipv4(TCP, "1.2.3.4", "5.6.7.8", &[])));
    assert!(!matches(&rules, &ipv6(TCP, "::ffff:1.2.3.4", "::1", &[])));
    let rules = compiled(&[], &["2001:db8::/32"], &[], &[], &[]);
    assert!(matches(&rules, &ipv6(UDP, "::1", "2001:db8:ffff::1", &[])));
    assert!(!matches(&rules, &ipv6(UDP, "::1", "2001:db9::1", &[])));
}

#[test]
fn empty_filter_matches_every_ip_packet_and_nothing_else() {
    let all = compiled(&[], &[], &[], &[], &[]);
    assert!(matches(&all, &ipv4(47, "10.0.0.1", "10.0.0.2", &[])));
    assert!(matches(&all, &ipv6(59, "::1", "::2", &[])));
    for junk in [
        &[][..],
        &[0x45],
        &[0x45; 19],
        &[0x60; 39],
        &[0x00; 60],
        &[0x50; 60],
    ] {
        assert!(!matches(&all, junk));
    }
    let mut bad_ihl = ipv4(TCP, "10.0.0.1", "10.0.0.2", &[]);
    bad_ihl[0] = 0x44;
    assert!(!matches(&all, &bad_ihl));
    let mut long_ihl = ipv4(TCP, "10.0.0.1", "10.0.0.2", &[]);
    long_ihl[0] = 0x46;
    assert!(!matches(&all, &long_ihl));
    assert!(!matches(&[], &ipv4(TCP, "10.0.0.1", "10.0.0.2", &[])));
}

#[test]
fn ipv4_options_move_the_transport_header() {
    let rules = compiled(&[], &[], &["7"], &[], &["udp"]);
    let mut p = ipv4(
        UDP,
        "10.0.0.1",
        "10.0.0.2",
        &cat(&[&[1, 1, 1, 0], &ports(7, 9)]),
    );
    p[0] = 0x46;
    assert!(matches(&rules, &p));
}

#[test]
fn ipv4_fragments_have_ports_only_in_the_first() {
    let ports_rule = compiled(&[], &[], &[], &["53"], &["udp"]);
    let proto_rule = compiled(&[], &[], &[], &[], &["udp"]);
    let first = ipv4_frag(UDP, "10.0.0.1", "10.0.0.2", 0x2000, &ports(1, 53));
    let later = ipv4_frag(UDP, "10.0.0.1", "10.0.0.2", 0x2000 | 185, &ports(1, 53));
    let last = ipv4_frag(UDP, "10.0.0.1", "10.0.0.2", 185, &ports(1, 53));
    assert!(matches(&ports_rule, &first));
    assert!(!matches(&ports_rule, &later) && !matches(&ports_rule, &last));
    assert!(matches(&proto_rule, &later) && matches(&proto_rule, &last));
}

#[test]
fn ipv6_extension_headers_are_skipped() {
    let rules = compiled(&[], &[], &[], &["443"], &["tcp"]);
    let tcp = ports(50000, 443);
    let hop_dest = ipv6(0, "::1", "::2", &cat(&[&ext8(60), &ext8(TCP), &tcp]));
    assert!(matches(&rules, &hop_dest));
    let routing = ipv6(43, "::1", "::2", &cat(&[&ext8(TCP), &tcp]));
    assert!(matches(&rules, &routing));
    // AH counts its length in 4-byte words minus two: payload length 4 means 24 bytes.
    let mut ah = vec![TCP, 4, 0, 0];
    ah.resize(24, 0);
    assert!(matches(&rules, &ipv6(51, "::1", "::2", &cat(&[&ah, &tcp]))));
    // A longer options header: hdr_ext_len 1 means 16 bytes.
    let mut dest16 = vec![TCP, 1];
    dest16.resize(16, 0);
    assert!(matches(
        &rules,
        &ipv6(60, "::1", "::2", &cat(&[&dest16, &tcp]))
    ));
    // In IPv4, AH is the protocol: nothing is skipped.
    let ah_rule = compiled(&[], &[], &[], &[], &["ah"]);
    assert!(matches(
        &ah_rule,
        &ipv4(51, "10.0.0.1", "10.0.0.2", &cat(&[&ah, &tcp]))
    ));
    assert!(!matches(
        &ah_rule,
        &ipv6(51, "::1", "::2", &cat(&[&ah, &tcp]))
    ));
}

#[test]
fn ipv6_fragments() {
    let ports_rule = compiled(&[], &[], &[], &["53"], &["udp"]);
    let proto_rule = compiled(&[], &[], &[], &[], &["udp"]);
    let udp = ports(1, 53);
    let first = ipv6(44, "::1", "::2", &cat(&[&frag6(UDP, 0, true), &udp]));
    let later = ipv6(44, "::1", "::2", &cat(&[&frag6(UDP, 100, true), &udp]));
    assert!(matches(&ports_rule, &first) && matches(&proto_rule, &first));
    assert!(!matches(&ports_rule, &later) && matches(&proto_rule, &later));
    // A later fragment naming an extension header has no transport protocol for nf_tables.
    let odd = ipv6(
        44,
        "::1",
        "::2",
        &cat(&[&frag6(60, 100, false), &ext8(UDP), &udp]),
    );
    let any_proto = vec![Conjunction {
        matches: vec![Match::L4Proto {
            proto: UDP,
            negate: true,
        }],
    }];
    assert!(!matches(&proto_rule, &odd) && !matches(&any_proto, &odd));
}

#[test]
fn no_next_header_is_a_protocol() {
    let rule = vec![Conjunction {
        matches: vec![Match::L4Proto {
            proto: 59,
            negate: false,
        }],
    }];
    assert!(matches(&rule, &ipv6(0, "::1", "::2", &ext8(59))));
}

#[test]
fn truncated_and_padded_packets() {
    let ports_rule = compiled(&[], &[], &[], &["53"], &["udp"]);
    let proto_rule = compiled(&[], &[], &[], &[], &["udp"]);
    // Cut after the IP header (a snap length): the protocol is known, the ports are not.
    let full = ipv4(UDP, "10.0.0.1", "10.0.0.2", &ports(1, 53));
    assert!(matches(&ports_rule, &full));
    assert!(matches(&proto_rule, &full[..20]) && !matches(&ports_rule, &full[..20]));
    assert!(!matches(&ports_rule, &full[..23]) && matches(&ports_rule, &full[..24]));
    // Two bytes of transport, then link-layer padding that must not be read as a port.
    let mut padded = ipv4(UDP, "10.0.0.1", "10.0.0.2", &[0, 1]);
    padded.extend_from_slice(&[0, 53, 0, 0]);
    assert!(!matches(&ports_rule, &padded));
    // IPv6 cut inside an extension header: no transport protocol at all.
    let v6 = ipv6(0, "::1", "::2", &cat(&[&ext8(UDP), &ports(1, 53)]));
    assert!(matches(&ports_rule, &v6));
    assert!(!matches(&proto_rule, &v6[..41]));
    // A total length shorter than the header: no transport protocol either.
    let mut corrupt = full.clone();
    corrupt[2..4].copy_from_slice(&10u16.to_be_bytes());
    assert!(!matches(&proto_rule, &corrupt));
}

#[test]
fn failed_loads_fail_negated_tests_too() {
    let not_dns = vec![Conjunction {
        matches: vec![
            Match::L4Proto {
                proto: UDP,
                negate: false,
            },
            Match::Port {
                dir: Dir::Dst,
                lo: 53,
                hi: 53,
                negate: true,
            },
        ],
    }];
    assert!(matches(
        &not_dns,
        &ipv4(UDP, "10.0.0.1", "10.0.0.2", &ports(1, 54))
    ));
    assert!(!matches(
        &not_dns,
        &ipv4(UDP, "10.0.0.1", "10.0.0.2", &ports(1, 53))
    ));
    assert!(!matches(&not_dns, &ipv4(UDP, "10.0.0.1", "10.0.0.2", &[])));
    let not_v4_net = vec![Conjunction {
        matches: vec![Match::Addr {
            dir: Dir::Src,
            addr: "10.0.0.0".parse().unwrap(),
            prefix_len: 8,
            negate: true,
        }],
    }];
    assert!(matches(
        &not_v4_net,
        &ipv4(TCP, "11.0.0.1", "10.0.0.2", &[])
    ));
    assert!(!matches(
        &not_v4_net,
        &ipv4(TCP, "10.9.0.1", "10.0.0.2", &[])
    ));
    assert!(!matches(&not_v4_net, &ipv6(TCP, "::1", "::2", &[])));
}

fn payload(
    base: crate::ir::Base,
    offset: u16,
    size: u8,
    mask: Option<u32>,
    test: crate::ir::Test,
) -> Match {
    Match::Payload(crate::ir::Payload {
        base,
        offset,
        size,
        mask,
        test,
    })
}

fn one(matches: Vec<Match>) -> Vec<Conjunction> {
    vec![Conjunction { matches }]
}

#[test]
fn payload_loads_compare_masked_big_endian_values() {
    use crate::ir::{Base, CmpOp, Test};
    let cmp = |op, value| Test::Cmp { op, value };
    let p = ipv4_frag(UDP, "10.0.0.1", "10.0.0.2", 0x2000 | 0x40, &ports(4660, 53));
    // ip[6:2] & 0x1fff == 0x40 (offset 512), ip[6:2] & 0x2000 != 0 (more fragments).
    assert!(matches(
        &one(vec![payload(
            Base::Network,
            6,
            2,
            Some(0x1fff),
            cmp(CmpOp::Eq, 0x40)
        )]),
        &p
    ));
    assert!(matches(
        &one(vec![payload(
            Base::Network,
            6,
            2,
            Some(0x2000),
            cmp(CmpOp::Ne, 0)
        )]),
        &p
    ));
    // ip[12:4] is the source address as a big-endian number.
    assert!(matches(
        &one(vec![payload(
            Base::Network,
            12,
            4,
            None,
            cmp(CmpOp::Eq, 0x0a00_0001)
        )]),
        &p
    ));
    for (op, v, want) in [
        (CmpOp::Lt, 18, true),
        (CmpOp::Lt, 17, false),
        (CmpOp::Le, 17, true),
        (CmpOp::Gt, 16, true),
        (CmpOp::Ge, 18, false),
        (CmpOp::Ne, 17, false),
    ] {
        assert_eq!(
            matches(
                &one(vec![payload(Base::Network, 9, 1, None, cmp(op, v))]),
                &p
            ),
            want,
            "{op:?} {v}"
        );
    }
    let set = |values: &[u32], negate| Test::Set {
        values: values.to_vec(),
        negate,
    };
    assert!(matches(
        &one(vec![payload(
            Base::Network,
            9,
            1,
            None,
            set(&[6, 17, 132], false)
        )]),
        &p
    ));
    assert!(!matches(
        &one(vec![payload(
            Base::Network,
            9,
            1,
            None,
            set(&[6, 17, 132], true)
        )]),
        &p
    ));
    let range = |lo, hi, negate| Test::Range { lo, hi, negate };
    let first = ipv4(UDP, "10.0.0.1", "10.0.0.2", &ports(4660, 53));
    assert!(matches(
        &one(vec![payload(
            Base::Transport,
            2,
            2,
            None,
            range(1, 53, false)
        )]),
        &first
    ));
    assert!(!matches(
        &one(vec![payload(
            Base::Transport,
            2,
            2,
            None,
            range(1, 53, true)
        )]),
        &first
    ));
    // A later fragment has no transport header: the load fails, negated or not.
    assert!(!matches(
        &one(vec![payload(
            Base::Transport,
            2,
            2,
            None,
            range(1, 53, true)
        )]),
        &p
    ));
    assert!(!matches(
        &one(vec![payload(
            Base::Transport,
            2,
            2,
            None,
            range(1, 53, false)
        )]),
        &p
    ));
}

#[test]
fn payload_loads_past_the_packet_fail_even_negated() {
    use crate::ir::{Base, CmpOp, Test};
    let short = ipv6(UDP, "2001:db8::1", "2001:db8::2", &[0, 53]);
    for op in [CmpOp::Eq, CmpOp::Ne] {
        let rule = one(vec![payload(
            Base::Network,
            40,
            4,
            None,
            Test::Cmp { op, value: 7 },
        )]);
        assert!(!matches(&rule, &short), "{op:?}");
    }
    // The IPv6 payload length trims trailing bytes: they are not loadable.
    let mut padded = ipv6(UDP, "2001:db8::1", "2001:db8::2", &ports(1, 2));
    padded.extend_from_slice(&[9; 8]);
    let rule = one(vec![payload(
        Base::Network,
        48,
        1,
        None,
        Test::Cmp {
            op: CmpOp::Ne,
            value: 0,
        },
    )]);
    assert!(!matches(&rule, &padded));
    // `meta length` is the length the header states.
    let len = |op, value| one(vec![Match::Length { op, value }]);
    assert!(matches(&len(CmpOp::Eq, 48), &padded));
    assert!(matches(&len(CmpOp::Ne, 56), &padded));
}

fn some_rules() -> Vec<Vec<Conjunction>> {
    vec![
        compiled(&[], &[], &[], &[], &[]),
        compiled(
            &["10.0.0.0/8", "2001:db8::/32"],
            &[],
            &["1-1000"],
            &["53"],
            &[],
        ),
        compiled(&[], &[], &[], &[], &["icmp", "icmpv6", "gre", "ah"]),
    ]
}

proptest! {
    #[test]
    fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        for rules in some_rules() {
            let _ = matches(&rules, &bytes);
        }
    }

    #[test]
    fn never_panics_on_ip_like_bytes(
        version in prop_oneof![Just(0x45u8), Just(0x46), Just(0x4f), Just(0x60)],
        next in prop_oneof![Just(0u8), Just(43), Just(44), Just(51), Just(59), Just(60), any::<u8>()],
        rest in proptest::collection::vec(any::<u8>(), 0..160),
    ) {
        let mut bytes = vec![version];
        bytes.extend_from_slice(&rest);
        // Put an extension header in the next-header (IPv6) or protocol (IPv4) slot.
        if let Some(b) = bytes.get_mut(if version == 0x60 { 6 } else { 9 }) {
            *b = next;
        }
        for rules in some_rules() {
            let _ = matches(&rules, &bytes);
        }
    }
}
