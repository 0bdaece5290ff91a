use std::net::IpAddr;

use super::*;
use crate::ir::PORT_PROTOCOLS;
use crate::render_nft;

fn filter(
    src: &[&str],
    dst: &[&str],
    sport: &[&str],
    dport: &[&str],
    proto: &[&str],
) -> StructuredFilter {
    StructuredFilter::from_cli(src, dst, sport, dport, proto).unwrap()
}

fn compile_err(
    src: &[&str],
    dst: &[&str],
    sport: &[&str],
    dport: &[&str],
    proto: &[&str],
) -> FilterError {
    StructuredFilter::from_cli(src, dst, sport, dport, proto).unwrap_err()
}

fn rules(f: &StructuredFilter) -> Vec<String> {
    let compiled = f.compile().unwrap();
    check_invariants(&compiled);
    render_nft(&compiled)
}

/// What the netfilter encoder relies on: matches in order family, protocol, addresses, ports;
/// an address after a family of its own kind; a port after a positive port-carrying protocol.
fn check_invariants(compiled: &[Conjunction]) {
    let rank = |m: &Match| match m {
        Match::Family(_) => 0,
        Match::L4Proto { .. } => 1,
        Match::Addr { .. } => 2,
        Match::Port { .. } => 3,
        Match::TcpFlags { .. } => 4,
        Match::Length { .. } => 5,
        Match::Payload(_) => 6,
    };
    for conj in compiled {
        assert!(
            conj.matches.windows(2).all(|w| rank(&w[0]) <= rank(&w[1])),
            "{conj:?}"
        );
        for (i, m) in conj.matches.iter().enumerate() {
            let before = &conj.matches[..i];
            match m {
                Match::Addr {
                    addr, prefix_len, ..
                } => {
                    let family = crate::address::family_of(*addr);
                    assert!(before.contains(&Match::Family(family)), "{conj:?}");
                    assert_eq!(crate::address::mask(*addr, *prefix_len), *addr);
                    assert!(*prefix_len <= crate::address::max_len(*addr));
                }
                Match::Port { .. } => assert!(
                    before
                        .iter()
                        .any(|b| matches!(b, Match::L4Proto { proto, negate: false }
                        if PORT_PROTOCOLS.contains(proto))),
                    "{conj:?}"
                ),
                _ => {}
            }
        }
    }
}

#[test]
fn empty_filter_is_one_empty_rule() {
    assert_eq!(
        StructuredFilter::default().compile().unwrap(),
        [Conjunction::default()]
    );
}

#[test]
fn cloudflare_filter_is_one_rule() {
    let f = filter(&["1.2.3.4"], &["5.6.7.8"], &["123"], &["80"], &["6"]);
    assert_eq!(
        rules(&f),
        [
            "meta nfproto ipv4 meta l4proto 6 ip saddr 1.2.3.4 ip daddr 5.6.7.8 th sport 123 th dport 80"
        ]
    );
    let compiled = f.compile().unwrap();
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    assert_eq!(
        compiled[0].matches,
        [
            Match::Family(Family::V4),
            Match::L4Proto {
                proto: 6,
                negate: false
            },
            Match::Addr {
                dir: Dir::Src,
                addr: ip("1.2.3.4"),
                prefix_len: 32,
                negate: false
            },
            Match::Addr {
                dir: Dir::Dst,
                addr: ip("5.6.7.8"),
                prefix_len: 32,
                negate: false
            },
            Match::Port {
                dir: Dir::Src,
                lo: 123,
                hi: 123,
                negate: false
            },
            Match::Port {
                dir: Dir::Dst,
                lo: 80,
                hi: 80,
                negate: false
            },
        ]
    );
}

#[test]
fn ports_without_protocol_mean_tcp_udp_sctp() {
    assert_eq!(
        rules(&filter(&[], &[], &[], &["53"], &[])),
        [
            "meta l4proto 6 th dport 53",
            "meta l4proto 17 th dport 53",
            "meta l4proto 132 th dport 53",
        ]
    );
}

#[test]
fn ports_with_protocols_that_carry_them() {
    assert_eq!(
        rules(&filter(&[], &[], &["1024-65535"], &[], &["udp", "dccp"])),
        [
            "meta l4proto 17 th sport 1024-65535",
            "meta l4proto 33 th sport 1024-65535"
        ]
    );
    let err = compile_err(&[], &[], &[], &["53"], &["tcp", "icmp"]);
    assert_eq!(
        err.to_string(),
        "destination_port: protocol icmp has no ports"
    );
    assert_eq!(err.field(), "destination_port");
    let err = compile_err(&[], &[], &["53"], &["53"], &["253"]);
    assert_eq!(err.to_string(), "source_port: protocol 253 has no ports");
}

#[test]
fn icmp_implies_its_ip_version() {
    assert_eq!(
        rules(&filter(&[], &[], &[], &[], &["icmp"])),
        ["meta nfproto ipv4 meta l4proto 1"]
    );
    assert_eq!(
        rules(&filter(&[], &[], &[], &[], &["icmpv6"])),
        ["meta nfproto ipv6 meta l4proto 58"]
    );
    assert_eq!(
        rules(&filter(
            &["10.0.0.0/8", "fd00::/8"],
            &[],
            &[],
            &[],
            &["icmp", "icmpv6"]
        )),
        [
            "meta nfproto ipv4 meta l4proto 1 ip saddr 10.0.0.0/8",
            "meta nfproto ipv6 meta l4proto 58 ip6 saddr fd00::/8",
        ]
    );
}

#[test]
fn conflicting_versions_are_dropped_or_refused() {
    assert_eq!(
        rules(&filter(
            &["10.0.0.0/8", "fd00::/8"],
            &["192.0.2.1"],
            &[],
            &[],
            &[]
        )),
        ["meta nfproto ipv4 ip saddr 10.0.0.0/8 ip daddr 192.0.2.1"]
    );
    let err = compile_err(&["10.0.0.0/8"], &["fd00::1"], &[], &[], &[]);
    assert_eq!(
        err.to_string(),
        "source_address and destination_address have no IP version in common"
    );
    assert_eq!(
        err.fields(),
        [Field::SourceAddress, Field::DestinationAddress]
    );
    assert_eq!(
        compile_err(&[], &["10.0.0.1"], &[], &[], &["icmpv6"]).fields(),
        [Field::DestinationAddress, Field::Protocol]
    );
}

#[test]
fn expansion_is_the_cross_product_of_compatible_values() {
    let src = ["10.0.0.0/8", "192.168.0.0/16", "2001:db8::/32", "fd00::/8"];
    let f = filter(&src, &[], &[], &["53", "853"], &[]);
    assert_eq!(f.compile().unwrap().len(), 4 * 3 * 2);
    // Only the IPv4 sources pair with an IPv4 destination.
    let f = filter(
        &src,
        &["192.0.2.1", "192.0.2.2", "192.0.2.3"],
        &[],
        &[],
        &["tcp", "icmp"],
    );
    assert_eq!(f.compile().unwrap().len(), 2 * 3 * 2);
    check_invariants(&f.compile().unwrap());
}

#[test]
fn rule_limit_counts_only_rules_that_survive() {
    let v4: Vec<String> = (0..200).map(|i| format!("10.0.{i}.0/24")).collect();
    let v6: Vec<String> = (0..200).map(|i| format!("2001:db8:{i:x}::/48")).collect();
    let src: Vec<&str> = v4.iter().chain(&v6).map(String::as_str).collect();
    let f = filter(&src, &["192.0.2.1"], &[], &[], &["tcp"]);
    assert_eq!(f.compile().unwrap().len(), 200);
}

#[test]
fn rule_limit() {
    let ports: Vec<String> = (1..=256).map(|p| p.to_string()).collect();
    let ports: Vec<&str> = ports.iter().map(String::as_str).collect();
    assert_eq!(
        filter(&[], &[], &[], &ports, &["tcp"])
            .compile()
            .unwrap()
            .len(),
        MAX_RULES
    );

    let err = compile_err(&[], &[], &[], &ports, &["tcp", "udp"]);
    assert_eq!(
        err.to_string(),
        "destination_port and protocol expand to 512 rules, more than the limit of 256 \
         (use prefixes or port ranges instead of long lists)"
    );
    assert_eq!(err.fields(), [Field::DestinationPort, Field::Protocol]);
    let err = compile_err(&[], &[], &[], &ports[..86], &[]);
    assert_eq!(
        err.to_string(),
        "destination_port expands to 258 rules, more than the limit of 256 (use prefixes or \
         port ranges instead of long lists; ports without a protocol need one rule each for tcp, \
         udp and sctp)"
    );
    assert_eq!(err.field(), "destination_port");
}

#[test]
fn huge_lists_are_refused_without_expanding() {
    let f = StructuredFilter {
        source_address: (0..20_000u32)
            .map(|i| Prefix::host(IpAddr::from(std::net::Ipv4Addr::from(i))))
            .collect(),
        destination_port: (0..=u16::MAX).map(PortRange::single).collect(),
        source_port: (0..=u16::MAX).map(PortRange::single).collect(),
        ..Default::default()
    };
    let Err(FilterError::TooManyRules {
        count,
        fields,
        implied_protocols,
    }) = f.compile()
    else {
        panic!("expected TooManyRules");
    };
    assert_eq!(count, 20_000 * 65_536 * 65_536 * 3);
    assert_eq!(
        fields,
        [
            Field::SourceAddress,
            Field::SourcePort,
            Field::DestinationPort
        ]
    );
    assert!(implied_protocols);
}

#[test]
fn repeats_give_one_rule_and_output_is_deterministic() {
    let p = PortRange::single(53);
    let f = StructuredFilter {
        destination_port: vec![p, p, PortRange::new(53, 53).unwrap()],
        protocol: vec![Protocol::UDP, Protocol(17)],
        ..Default::default()
    };
    assert_eq!(rules(&f), ["meta l4proto 17 th dport 53"]);
    let f = filter(
        &["10.0.0.0/8", "fd00::/8", "192.0.2.0/24"],
        &[],
        &["1-2", "3"],
        &["4"],
        &[],
    );
    assert_eq!(f.compile().unwrap(), f.compile().unwrap());
    assert_eq!(f.compile().unwrap().len(), 3 * 3 * 2);
}
