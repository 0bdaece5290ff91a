//! IP protocol numbers and the names users type for them.

use std::fmt;

use crate::error::FilterError;
use crate::ir::{Family, PORT_PROTOCOLS};

/// An IP protocol number (IPv4 `protocol`, IPv6 next header after extension headers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Protocol(pub u8);

/// Canonical name first, then aliases. Names follow iproute2/nftables usage where it differs from
/// `/etc/protocols`: there `ipip` is 94, but Linux IPIP tunnels (IPPROTO_IPIP) use 4, which is
/// what an edge engineer means. Extension-header numbers (0, 43, 44, 60) are left out on purpose:
/// `meta l4proto` skips those headers, so naming them would promise a match that never happens.
const NAMES: &[(u8, &[&str])] = &[
    (1, &["icmp"]),
    (2, &["igmp"]),
    (4, &["ipip", "ipencap", "ip-in-ip"]),
    (6, &["tcp"]),
    (8, &["egp"]),
    (17, &["udp"]),
    (33, &["dccp"]),
    (41, &["ipv6", "ip6"]),
    (46, &["rsvp"]),
    (47, &["gre"]),
    (50, &["esp", "ipsec-esp"]),
    (51, &["ah", "ipsec-ah"]),
    (58, &["icmpv6", "icmp6", "ipv6-icmp"]),
    (88, &["eigrp"]),
    (89, &["ospf", "ospfigp"]),
    (103, &["pim"]),
    (108, &["ipcomp", "comp"]),
    (112, &["vrrp", "carp"]),
    (115, &["l2tp"]),
    (132, &["sctp"]),
    (136, &["udplite", "udp-lite"]),
    (137, &["mpls-in-ip"]),
];

impl Protocol {
    pub const ICMP: Protocol = Protocol(1);
    pub const TCP: Protocol = Protocol(6);
    pub const UDP: Protocol = Protocol(17);
    pub const ICMPV6: Protocol = Protocol(58);
    pub const SCTP: Protocol = Protocol(132);

    /// What a port filter without a protocol matches, as tcpdump's `port`: tcp, udp and sctp.
    pub const IMPLIED_BY_PORTS: [Protocol; 3] = [Protocol::TCP, Protocol::UDP, Protocol::SCTP];

    /// Looks a name up, ignoring case.
    pub fn from_name(name: &str) -> Option<Self> {
        NAMES
            .iter()
            .find(|(_, names)| names.iter().any(|n| n.eq_ignore_ascii_case(name)))
            .map(|&(number, _)| Protocol(number))
    }

    /// The canonical name, if the protocol has one.
    pub fn name(self) -> Option<&'static str> {
        NAMES
            .iter()
            .find(|(number, _)| *number == self.0)
            .and_then(|(_, names)| names.first().copied())
    }

    /// Whether the transport header starts with 16-bit source and destination ports.
    pub fn has_ports(self) -> bool {
        PORT_PROTOCOLS.contains(&self.0)
    }

    /// The IP version a protocol only exists on: ICMP is IPv4's, ICMPv6 is IPv6's (as tcpdump's
    /// `icmp` means `ip proto 1`). Everything else may ride either.
    pub fn family(self) -> Option<Family> {
        match self {
            Protocol::ICMP => Some(Family::V4),
            Protocol::ICMPV6 => Some(Family::V6),
            _ => None,
        }
    }

    /// Parses a number 0-255 or a name.
    pub(crate) fn parse(text: &str) -> Result<Self, FilterError> {
        let text = text.trim();
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            return text
                .parse::<u8>()
                .map(Protocol)
                .map_err(|_| FilterError::ProtocolOutOfRange {
                    value: text.to_owned(),
                });
        }
        Protocol::from_name(text).ok_or_else(|| FilterError::UnknownProtocol {
            value: text.to_owned(),
        })
    }

    /// A protocol given as a JSON number (Cloudflare's form).
    pub(crate) fn from_number(n: i128) -> Result<Self, FilterError> {
        u8::try_from(n)
            .map(Protocol)
            .map_err(|_| FilterError::ProtocolOutOfRange {
                value: n.to_string(),
            })
    }
}

/// The name when there is one, else the number.
impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "{}", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<u8, String> {
        Protocol::parse(text)
            .map(|p| p.0)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn names_and_numbers() {
        let cases = [
            ("tcp", 6),
            ("TCP", 6),
            ("udp", 17),
            ("icmp", 1),
            ("icmpv6", 58),
            ("icmp6", 58),
            ("ipv6-icmp", 58),
            ("sctp", 132),
            ("dccp", 33),
            ("gre", 47),
            ("esp", 50),
            ("ah", 51),
            ("igmp", 2),
            ("ipip", 4),
            ("ipencap", 4),
            ("ipv6", 41),
            ("ospf", 89),
            ("pim", 103),
            ("vrrp", 112),
            ("0", 0),
            ("255", 255),
            (" 6 ", 6),
        ];
        for (text, number) in cases {
            assert_eq!(parse(text), Ok(number), "{text}");
        }
    }

    #[test]
    fn every_name_round_trips_and_numbers_are_unique() {
        for (number, names) in NAMES {
            for name in *names {
                assert_eq!(Protocol::from_name(name), Some(Protocol(*number)));
            }
            assert_eq!(Protocol(*number).to_string(), names[0]);
            assert_eq!(NAMES.iter().filter(|(n, _)| n == number).count(), 1);
        }
        assert_eq!(Protocol(253).to_string(), "253");
    }

    #[test]
    fn unknown_and_out_of_range() {
        assert_eq!(
            parse("tcpp").unwrap_err(),
            "protocol: unknown protocol \"tcpp\" (use a number 0-255 or a name such as tcp, udp, \
             icmp, icmpv6)"
        );
        assert!(
            parse("")
                .unwrap_err()
                .starts_with("protocol: unknown protocol \"\"")
        );
        assert!(
            parse("-1")
                .unwrap_err()
                .starts_with("protocol: unknown protocol \"-1\"")
        );
        assert_eq!(parse("300").unwrap_err(), "protocol: 300 is outside 0-255");
        assert_eq!(
            Protocol::from_number(-1).unwrap_err().to_string(),
            "protocol: -1 is outside 0-255"
        );
    }

    #[test]
    fn ports_and_families() {
        assert!(Protocol::TCP.has_ports() && Protocol(33).has_ports());
        assert!(!Protocol::ICMP.has_ports() && !Protocol(47).has_ports());
        assert_eq!(Protocol::ICMP.family(), Some(Family::V4));
        assert_eq!(Protocol::ICMPV6.family(), Some(Family::V6));
        assert_eq!(Protocol::TCP.family(), None);
    }
}
