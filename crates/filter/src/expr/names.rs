//! The words of the language: numbers, tcpdump's named constants, protocol names, and the
//! keywords edgecap refuses, each with the hint shown instead.

/// tcpdump's named constants (its scanner reads them as numbers): header offsets, TCP flags,
/// ICMP and ICMPv6 types. Accepted in field comparisons only.
const CONSTANTS: &[(&str, u32)] = &[
    ("tcpflags", 13),
    ("tcp-fin", 0x01),
    ("tcp-syn", 0x02),
    ("tcp-rst", 0x04),
    ("tcp-push", 0x08),
    ("tcp-ack", 0x10),
    ("tcp-urg", 0x20),
    ("tcp-ece", 0x40),
    ("tcp-cwr", 0x80),
    ("icmptype", 0),
    ("icmpcode", 1),
    ("icmp-echoreply", 0),
    ("icmp-unreach", 3),
    ("icmp-sourcequench", 4),
    ("icmp-redirect", 5),
    ("icmp-echo", 8),
    ("icmp-routeradvert", 9),
    ("icmp-routersolicit", 10),
    ("icmp-timxceed", 11),
    ("icmp-paramprob", 12),
    ("icmp-tstamp", 13),
    ("icmp-tstampreply", 14),
    ("icmp-ireq", 15),
    ("icmp-ireqreply", 16),
    ("icmp-maskreq", 17),
    ("icmp-maskreply", 18),
    ("icmp6type", 0),
    ("icmp6code", 1),
    ("icmp6-destinationunreach", 1),
    ("icmp6-packettoobig", 2),
    ("icmp6-timeexceeded", 3),
    ("icmp6-parameterproblem", 4),
    ("icmp6-echo", 128),
    ("icmp6-echoreply", 129),
    ("icmp6-multicastlistenerquery", 130),
    ("icmp6-multicastlistenerreportv1", 131),
    ("icmp6-multicastlistenerdone", 132),
    ("icmp6-routersolicit", 133),
    ("icmp6-routeradvert", 134),
    ("icmp6-neighborsolicit", 135),
    ("icmp6-neighboradvert", 136),
    ("icmp6-redirect", 137),
    ("icmp6-routerrenum", 138),
    ("icmp6-nodeinformationquery", 139),
    ("icmp6-nodeinformationresponse", 140),
    ("icmp6-ineighbordiscoverysolicit", 141),
    ("icmp6-ineighbordiscoveryadvert", 142),
    ("icmp6-multicastlistenerreportv2", 143),
    ("icmp6-homeagentdiscoveryrequest", 144),
    ("icmp6-homeagentdiscoveryreply", 145),
    ("icmp6-mobileprefixsolicit", 146),
    ("icmp6-mobileprefixadvert", 147),
    ("icmp6-certpathsolicit", 148),
    ("icmp6-certpathadvert", 149),
    ("icmp6-multicastrouteradvert", 151),
    ("icmp6-multicastroutersolicit", 152),
    ("icmp6-multicastrouterterm", 153),
];

pub(crate) fn constant(word: &str) -> Option<u32> {
    CONSTANTS
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(word))
        .map(|&(_, v)| v)
}

/// Protocol names after `proto`, with the numbers of IANA's registry as Debian's
/// `/etc/protocols` (which tcpdump reads) has them: `ipip` is 94 here, unlike iproute2's 4.
const PROTOCOL_NAMES: &[(&str, u8)] = &[
    ("icmp", 1),
    ("igmp", 2),
    ("ipencap", 4),
    ("tcp", 6),
    ("egp", 8),
    ("igrp", 9),
    ("udp", 17),
    ("ipv6", 41),
    ("rsvp", 46),
    ("gre", 47),
    ("esp", 50),
    ("ah", 51),
    ("icmp6", 58),
    ("ipv6-icmp", 58),
    ("ospf", 89),
    ("ipip", 94),
    ("pim", 103),
    ("vrrp", 112),
    ("carp", 112),
    ("l2tp", 115),
    ("sctp", 132),
    ("udplite", 136),
];

pub(crate) fn protocol(word: &str) -> Option<u8> {
    PROTOCOL_NAMES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(word))
        .map(|&(_, v)| v)
}

const LINK_LAYER: &str = "edgecap captures at the IP layer (nftables hands it IPv4 and IPv6 \
    packets), so link-layer filters such as ether, arp and vlan have nothing to match";
const INTERFACE: &str = "choose where to capture with --point (and the interfaces of the ingress \
    point in the agent configuration) instead";

/// tcpdump keywords edgecap does not support, and why.
pub(crate) fn unsupported(word: &str) -> Option<&'static str> {
    let hint = match word {
        "ether" | "arp" | "rarp" | "vlan" | "mpls" | "pppoed" | "pppoes" | "geneve" | "llc"
        | "stp" | "ipx" | "netbeui" | "atalk" | "aarp" | "decnet" | "iso" | "esis" | "es-is"
        | "isis" | "is-is" | "clnp" | "lat" | "mopdl" | "moprc" | "sca" | "wlan" | "fddi"
        | "tr" | "link" | "ppp" | "slip" | "lane" | "oamf4" | "oamf4ec" | "oamf4sc" | "oam"
        | "metac" | "bcc" | "sc" | "ilmic" | "metaconnect" | "connectmsg" | "vpi" | "vci"
        | "radio" | "type" | "subtype" | "ra" | "ta" | "addr1" | "addr2" | "addr3" | "addr4"
        | "l1" | "l2" | "iih" | "lsp" | "snp" | "csnp" | "psnp" | "hdlc" | "atm" => LINK_LAYER,
        "broadcast" | "multicast" => {
            "broadcast and multicast need the link-layer header or the interface's netmask; \
             match the addresses instead, e.g. dst net 224.0.0.0/4 or dst net ff00::/8"
        }
        "gateway" => "gateway needs link-layer addresses and host name lookups; use host",
        "inbound" | "outbound" | "ifname" | "on" | "dir" => INTERFACE,
        "rulenum" | "reason" | "rset" | "ruleset" | "srnr" | "subrulenum" | "action" => {
            "pflog fields do not exist on Linux"
        }
        "protochain" => {
            "edgecap does not walk IPv6 extension headers the way protochain does; use \
             ip6 proto N (the next header of the fixed header, or of one fragment header)"
        }
        "sctp[" | "igmp[" => "supported fields: ip[], ip6[], tcp[], udp[], icmp[], icmp6[]",
        _ => return None,
    };
    Some(hint)
}

/// The number `text` spells (decimal, or hex with `0x`), or why it is not one.
pub(crate) fn number(text: &str) -> Result<u32, &'static str> {
    let (digits, radix) = match text.get(..2) {
        Some("0x") | Some("0X") => (&text[2..], 16),
        _ => (text, 10),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return Err("not a number");
    }
    if radix == 10 && digits.len() > 1 && digits.starts_with('0') {
        // tcpdump reads `010` as octal 8; refusing is kinder than either reading.
        return Err("a number with a leading zero (tcpdump reads it as octal)");
    }
    u32::from_str_radix(digits, radix).map_err(|_| "too large")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(number("0"), Ok(0));
        assert_eq!(number("80"), Ok(80));
        assert_eq!(number("0x1fff"), Ok(0x1fff));
        assert_eq!(number("4294967295"), Ok(u32::MAX));
        assert!(number("4294967296").is_err());
        assert!(number("010").unwrap_err().contains("octal"));
        for bad in ["", "0x", "1a", "-1", "+1", "1.5", "0xg"] {
            assert!(number(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names() {
        assert_eq!(constant("tcp-syn"), Some(2));
        assert_eq!(constant("TCP-ACK"), Some(16));
        assert_eq!(constant("icmp6-echo"), Some(128));
        assert_eq!(protocol("ipip"), Some(94));
        assert_eq!(protocol("gre"), Some(47));
        assert_eq!(protocol("bogus"), None);
        assert!(unsupported("ether").unwrap().contains("IP layer"));
        assert!(unsupported("host").is_none());
    }
}
