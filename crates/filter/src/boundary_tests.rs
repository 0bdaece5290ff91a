use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;

use super::*;
use crate::{Expression, StructuredFilter, matches};

// Two tenants sharing an edge: A owns 198.18.1.0/24 and 2001:db8:a::/48, B owns 198.18.2.0/24.
fn a() -> Boundary {
    Boundary::parse(&["198.18.1.0/24", "2001:db8:a::/48"]).unwrap()
}

fn udp4(src: &str, dst: &str) -> Vec<u8> {
    let mut p = vec![0x45, 0, 0, 28, 0, 1, 0, 0, 64, 17, 0, 0];
    p.extend_from_slice(&src.parse::<Ipv4Addr>().unwrap().octets());
    p.extend_from_slice(&dst.parse::<Ipv4Addr>().unwrap().octets());
    p.extend_from_slice(&[0x13, 0x88, 0, 53, 0, 8, 0, 0]);
    p
}

fn udp6(src: &str, dst: &str) -> Vec<u8> {
    let mut p = vec![0x60, 0, 0, 0, 0, 8, 17, 64];
    p.extend_from_slice(&src.parse::<Ipv6Addr>().unwrap().octets());
    p.extend_from_slice(&dst.parse::<Ipv6Addr>().unwrap().octets());
    p.extend_from_slice(&[0x13, 0x88, 0, 53, 0, 8, 0, 0]);
    p
}

fn expr(text: &str) -> Vec<Conjunction> {
    Expression::parse(text).unwrap().compile().unwrap()
}

fn everything() -> Vec<Conjunction> {
    StructuredFilter::default().compile().unwrap()
}

#[test]
fn prefixes_are_normalised() {
    let b = Boundary::parse(&[
        "2001:db8:a::/48",
        "198.18.1.0/24",
        "198.18.1.128/25",
        "198.18.1.0/24",
        "198.18.9.9",
    ])
    .unwrap();
    assert_eq!(
        b.to_strings(),
        ["198.18.1.0/24", "198.18.9.9/32", "2001:db8:a::/48"]
    );
    assert_eq!(
        b.to_string(),
        "198.18.1.0/24, 198.18.9.9/32, 2001:db8:a::/48"
    );
    // What is stored and sent parses back to the same boundary.
    assert_eq!(Boundary::parse(&b.to_strings()).unwrap(), b);
}

#[test]
fn bad_prefixes_are_refused_naming_the_item() {
    let err = |items: &[&str]| Boundary::parse(items).unwrap_err().to_string();
    assert_eq!(err(&[]), "at least one prefix is needed");
    assert_eq!(
        err(&["198.18.1.0/24", "nonsense"]),
        "item 1: \"nonsense\" is not an IPv4 or IPv6 address or prefix"
    );
    assert_eq!(
        err(&["198.18.1.1/24"]),
        "item 0: 198.18.1.1/24 has bits set past /24; did you mean 198.18.1.0/24?"
    );
    assert_eq!(
        err(&["198.18.1.0/33"]),
        "item 0: /33 is longer than an IPv4 address"
    );
    assert!(err(&["198.18.1.0/+8"]).contains("is not an IPv4 or IPv6"));
    assert!(err(&["198.18.1.0/"]).contains("is not an IPv4 or IPv6"));
    let many: Vec<String> = (0..=MAX_PREFIXES)
        .map(|i| format!("198.18.{i}.0/24"))
        .collect();
    assert_eq!(
        Boundary::parse(&many).unwrap_err(),
        BoundaryError::TooMany {
            count: MAX_PREFIXES + 1
        }
    );
}

#[test]
fn an_empty_filter_becomes_the_accounts_traffic_only() {
    let rules = a().apply(&everything()).unwrap();
    // Source and destination for each prefix.
    assert_eq!(rules.len(), 4);
    assert!(matches(&rules, &udp4("198.18.1.7", "198.18.200.1")));
    assert!(matches(&rules, &udp4("198.18.200.1", "198.18.1.7")));
    assert!(matches(&rules, &udp6("2001:db8:a::1", "2001:db8:ff::1")));
    assert!(!matches(&rules, &udp4("198.18.2.7", "198.18.200.1")));
    assert!(!matches(&rules, &udp6("2001:db8:b::1", "2001:db8:ff::1")));
}

#[test]
fn a_filter_only_inside_another_tenant_can_never_match() {
    let b_only = expr("src net 198.18.2.0/24 and dst net 198.18.2.0/24");
    assert_eq!(
        a().apply(&b_only),
        Err(BoundaryError::NeverMatches {
            prefixes: "198.18.1.0/24, 2001:db8:a::/48".into()
        })
    );
    // IPv6 only, against an IPv4-only account.
    let v4 = Boundary::parse(&["198.18.1.0/24"]).unwrap();
    assert!(matches!(
        v4.apply(&expr("ip6")),
        Err(BoundaryError::NeverMatches { .. })
    ));
}

#[test]
fn an_overlapping_filter_keeps_only_the_accounts_part() {
    // Wider than the account: the /15 holds both tenants.
    let rules = a().apply(&expr("udp and net 198.18.0.0/15")).unwrap();
    assert!(matches(&rules, &udp4("198.18.1.7", "198.18.2.7")));
    assert!(!matches(&rules, &udp4("198.18.2.7", "198.18.2.8")));
    // Naming the other tenant's prefix as one end keeps traffic between the two.
    let rules = a().apply(&expr("dst net 198.18.2.0/24")).unwrap();
    assert!(matches(&rules, &udp4("198.18.1.7", "198.18.2.7")));
    assert!(!matches(&rules, &udp4("198.18.200.1", "198.18.2.7")));
}

#[test]
fn too_many_rules_after_the_boundary_are_refused() {
    let ports: Vec<String> = (1..=60).map(|p| format!("port {p}")).collect();
    let wide = expr(&format!("udp and ({})", ports.join(" or ")));
    let many = Boundary::parse(&["198.18.1.0/24", "198.18.3.0/24"]).unwrap();
    assert!(matches!(
        many.apply(&wide),
        Err(BoundaryError::TooManyRules { .. })
    ));
}

fn v4() -> impl Strategy<Value = Ipv4Addr> {
    // Around both tenants' prefixes, so every case is hit.
    (1u8..4, any::<u8>()).prop_map(|(c, d)| Ipv4Addr::new(198, 18, c, d))
}

proptest! {
    /// The kernel rules and the address test agree, for every filter-free packet.
    #[test]
    fn the_rules_and_the_address_test_agree(src in v4(), dst in v4()) {
        let b = a();
        let packet = udp4(&src.to_string(), &dst.to_string());
        prop_assert_eq!(
            b.admits(&packet),
            b.admits_addrs(IpAddr::V4(src), IpAddr::V4(dst))
        );
        let bounded = b.apply(&expr("udp")).unwrap();
        prop_assert_eq!(matches(&bounded, &packet), b.admits(&packet));
    }
}
