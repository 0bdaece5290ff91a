use super::*;
use crate::expr::ast::Layer;

fn show(text: &str) -> String {
    parse(text)
        .map(|n| n.to_string())
        .unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// (position, token, message fragment) of the error `text` gives.
fn fails(text: &str) -> (usize, String, String) {
    let e = parse(text).unwrap_err();
    (e.position, e.token.clone(), e.to_string())
}

#[test]
fn primitives_and_their_qualifiers() {
    let cases = [
        ("host 198.18.0.1", "host 198.18.0.1"),
        ("src host 198.18.0.1", "src host 198.18.0.1"),
        ("dst 2001:db8::1", "dst host 2001:db8::1"),
        ("ip host 198.18.0.1", "host 198.18.0.1"),
        ("ip6 src host 2001:db8::1", "src host 2001:db8::1"),
        ("src or dst host 198.18.0.1", "host 198.18.0.1"),
        ("dst or src net 198.18.0.0/15", "net 198.18.0.0/15"),
        (
            "src and dst net 198.18.0.0/15",
            "src and dst net 198.18.0.0/15",
        ),
        ("dst and src port 80", "src and dst port 80"),
        ("net 198.18", "net 198.18.0.0/16"),
        ("net 198", "net 198.0.0.0/8"),
        ("net 198.18.7", "net 198.18.7.0/24"),
        ("net 198.18.0.1", "net 198.18.0.1/32"),
        ("net 198.18/15", "net 198.18.0.0/15"),
        ("net 198.18.0.0 mask 255.254.0.0", "net 198.18.0.0/15"),
        ("net 198.18 mask 255.254", "net 198.18.0.0/15"),
        ("net 2001:db8::/32", "net 2001:db8::/32"),
        ("ip6 net 2001:db8::", "net 2001:db8::/128"),
        ("net 0.0.0.0/0", "net 0.0.0.0/0"),
        ("port 0", "port 0"),
        ("port 65535", "port 65535"),
        ("port 0x50", "port 80"),
        ("tcp port 80", "tcp port 80"),
        ("udp src port 53", "udp src port 53"),
        ("sctp dst portrange 1-1023", "sctp dst portrange 1-1023"),
        ("portrange 7-7", "portrange 7-7"),
        ("tcp", "tcp"),
        ("icmp6", "icmp6"),
        (
            "igmp or pim or vrrp or ah or esp or igrp",
            "igmp or pim or vrrp or ah or esp or igrp",
        ),
        ("proto 47", "proto 47"),
        ("ip proto 6", "ip proto 6"),
        ("ip proto \\tcp", "ip proto 6"),
        ("ip proto tcp", "ip proto 6"),
        ("ip6 proto \\ipv6-icmp", "icmp6"),
        ("proto \\gre", "proto 47"),
        ("proto ipip", "proto 94"),
        ("proto 17", "udp"),
        ("ip6 proto 58", "icmp6"),
        ("ip proto 1", "icmp"),
        ("ip6 proto 1", "ip6 proto 1"),
        ("less 100", "less 100"),
        ("greater 1500", "greater 1500"),
        ("len != 64", "len != 64"),
        ("len = 64", "len == 64"),
        ("ip", "ip"),
        ("ip6", "ip6"),
    ];
    for (text, want) in cases {
        assert_eq!(show(text), want, "{text}");
    }
}

#[test]
fn fields_and_named_constants() {
    let cases = [
        (
            "tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn",
            "tcp[13:1] & 0x12 == 2",
        ),
        ("tcp[13] & 2 != 0", "tcp[13:1] & 0x2 != 0"),
        ("tcp[13] = 18", "tcp[13:1] == 18"),
        ("tcp[13] > 3", "tcp[13:1] > 3"),
        ("tcp[12:2] & 0xf0 >= 0x50", "tcp[12:2] & 0xf0 >= 80"),
        ("ip[6:2] & 0x1fff != 0", "ip[6:2] & 0x1fff != 0"),
        ("ip[9] == 6", "ip[9:1] == 6"),
        ("ip6[6] == 17", "ip6[6:1] == 17"),
        (
            "ip6[0:4] & 0xfff00000 == 0x60000000",
            "ip6[0:4] & 0xfff00000 == 1610612736",
        ),
        ("udp[0:2] <= 1023", "udp[0:2] <= 1023"),
        ("icmp[icmptype] == icmp-echo", "icmp[0:1] == 8"),
        ("icmp6[icmp6type] != icmp6-echoreply", "icmp6[0:1] != 129"),
        ("tcp[13] & 2 & 3 == 2", "tcp[13:1] & 0x2 == 2"),
        ("tcp[13] & 0xff == (2|16) & 18", "tcp[13:1] & 0xff == 18"),
    ];
    for (text, want) in cases {
        assert_eq!(show(text), want, "{text}");
    }
    let Ok(Node::Prim(Primitive::Field { layer, .. })) = parse("udp[4:2] > 8") else {
        panic!("not a field");
    };
    assert_eq!(layer, Layer::Udp);
}

#[test]
fn precedence_is_tcpdumps_and_or_equal_left_to_right() {
    assert_eq!(show("tcp or udp and less 100"), "(tcp or udp) and less 100");
    assert_eq!(show("ip && !tcp || udp"), "(ip and not tcp) or udp");
    assert_eq!(show("not tcp and not udp"), "not tcp and not udp");
    assert_eq!(show("!(tcp or udp)"), "not (tcp or udp)");
    assert_eq!(show("tcp and (udp or icmp)"), "tcp and (udp or icmp)");
    assert_eq!(show("((tcp))"), "tcp");
    assert_eq!(show("not not ip"), "not not ip");
}

#[test]
fn bare_values_inherit_the_last_qualifiers() {
    let cases = [
        (
            "host 198.18.0.1 or 198.18.0.2",
            "host 198.18.0.1 or host 198.18.0.2",
        ),
        ("tcp port 80 or 443", "tcp port 80 or tcp port 443"),
        (
            "src net 198.18.0.0/16 and not 198.18.1.0/24",
            "src net 198.18.0.0/16 and not src net 198.18.1.0/24",
        ),
        (
            "not host 198.18.0.1 or 198.18.0.2",
            "not host 198.18.0.1 or host 198.18.0.2",
        ),
        (
            "host 198.18.0.1 or (198.18.0.2 or 198.18.0.3)",
            "host 198.18.0.1 or (host 198.18.0.2 or host 198.18.0.3)",
        ),
        (
            "host (198.18.0.1 or 198.18.0.2)",
            "host 198.18.0.1 or host 198.18.0.2",
        ),
        ("ip proto 6 or 17", "ip proto 6 or ip proto 17"),
        (
            "udp portrange 1-10 or 20-30",
            "udp portrange 1-10 or udp portrange 20-30",
        ),
        (
            "port 53 and src host 198.18.0.1 or 198.18.0.2",
            "(port 53 and src host 198.18.0.1) or src host 198.18.0.2",
        ),
        // A new head replaces every qualifier: `dst port 443` is not `tcp dst port 443`.
        (
            "tcp src port 80 or dst port 443 or 8443",
            "tcp src port 80 or dst port 443 or dst port 8443",
        ),
    ];
    for (text, want) in cases {
        assert_eq!(show(text), want, "{text}");
    }
}

#[test]
fn values_without_qualifiers_to_inherit_are_refused() {
    // tcpdump refuses each of these too.
    for (text, pos, token) in [
        ("198.18.0.1", 1, "198.18.0.1"),
        ("tcp or 198.18.0.2", 8, "198.18.0.2"),
        ("(host 198.18.0.1) or 198.18.0.2", 22, "198.18.0.2"),
        ("less 5 or 7", 11, "7"),
        ("tcp[13] == 2 or 3", 17, "3"),
    ] {
        let (p, t, msg) = fails(text);
        assert_eq!((p, t.as_str()), (pos, token), "{text}: {msg}");
        assert!(msg.contains("needs a qualifier"), "{text}: {msg}");
    }
}

#[test]
fn errors_point_at_the_token_and_give_a_hint() {
    let cases: &[(&str, usize, &str, &str)] = &[
        ("ether host 02:00:00:00:00:01", 1, "ether", "IP layer"),
        ("tcp and arp", 9, "arp", "IP layer"),
        ("vlan 100", 1, "vlan", "IP layer"),
        ("tcp[13] + 1 > 3", 9, "+", "supported comparisons"),
        ("tcp[13] >> 1 > 3", 9, ">>", "supported comparisons"),
        ("tcp[13] & 2 | 4 == 6", 13, "|", "supported comparisons"),
        // tcpdump reads this as (tcp[13] & 0x40) | 0x80 != 0, true for every TCP packet.
        (
            "tcp[tcpflags] & tcp-ece|tcp-cwr != 0",
            24,
            "|",
            "supported comparisons",
        ),
        ("tcp[13] & 2", 12, "", "expected a comparison"),
        ("(tcp[13] & 2) != 0", 13, ")", "expected a comparison"),
        ("tcp[tcp[12]] == 0", 5, "tcp", "constant byte offset"),
        ("tcp[13:3] == 0", 8, "3", "1, 2 or 4"),
        ("tcp[253:4] == 0", 5, "253", "past byte 256"),
        ("udp[256] == 0", 5, "256", "past byte 256"),
        ("ip[70000:2] == 0", 4, "70000", "past byte 256"),
        ("ip[9] == 300", 10, "300", "does not fit"),
        ("ip[9] & 0x100 == 0", 9, "0x100", "wider than"),
        ("tcp[13] == tcp-bogus", 12, "tcp-bogus", "unknown constant"),
        ("sctp[0] == 0", 1, "sctp", "not supported"),
        (
            "host 10.1",
            6,
            "10.1",
            "tcpdump reads host 10.1 as a network",
        ),
        ("host 5", 6, "5", "0.0.0.5"),
        ("host example.com", 6, "example.com", "not resolved"),
        ("host 198.18.0.0/16", 16, "/", "needs net"),
        ("src 198.18.0.0/16", 15, "/", "needs net"),
        ("host 198.18.0.300", 6, "198.18.0.300", "above 255"),
        ("host 198.018.0.1", 6, "198.018.0.1", "leading zero"),
        ("host 2001:db8:::1", 6, "2001:db8:::1", "IPv6"),
        ("ip host 2001:db8::1", 9, "2001:db8::1", "IPv4"),
        ("ip6 host 198.18.0.1", 10, "198.18.0.1", "IPv6"),
        ("tcp host 198.18.0.1", 10, "198.18.0.1", "tcp and host"),
        ("net 198.18.0.1/15", 5, "198.18.0.1", "net 198.18.0.0/15"),
        (
            "net 198.18.0.0 mask 255.0.255.0",
            21,
            "255.0.255.0",
            "contiguous",
        ),
        ("net 2001:db8:: mask ffff::", 16, "mask", "/LEN"),
        ("net 10/8", 5, "10", "dotted"),
        ("net 0", 5, "0", "dotted"),
        ("net 256", 5, "256", "above 255"),
        ("net 198.18.0.0/33", 16, "33", "longer than 32"),
        ("net 2001:db8::/129", 16, "129", "longer than 128"),
        ("port 70000", 6, "70000", "outside 0-65535"),
        ("port 010", 6, "010", "octal"),
        ("port http", 6, "http", "not looked up"),
        ("ip port 80", 9, "80", "ip has no ports"),
        ("icmp port 80", 11, "80", "icmp has no ports"),
        (
            "portrange 2000-1000",
            11,
            "2000-1000",
            "portrange 1000-2000",
        ),
        ("portrange 80", 11, "80", "portrange 1024-65535"),
        ("portrange 1-70000", 11, "1-70000", "outside"),
        ("proto 256", 7, "256", "outside 0-255"),
        ("proto bogus", 7, "bogus", "unknown protocol"),
        ("tcp proto 6", 11, "6", "tcp proto is not valid"),
        ("src proto 6", 5, "proto", "do not apply to proto"),
        ("ip6 protochain 6", 5, "protochain", "ip6 proto N"),
        ("ip broadcast", 4, "broadcast", "224.0.0.0/4"),
        ("inbound", 1, "inbound", "--point"),
        ("tcp port 80 443", 13, "443", "join primitives"),
        ("tcp)", 4, ")", "no matching ("),
        ("(tcp or udp", 12, "", "close the ( at character 1"),
        ("tcp and", 8, "", "ends where a primitive"),
        ("and tcp", 1, "and", "before this operator"),
        ("", 1, "", "empty"),
        ("   ", 1, "", "empty"),
        ("hots 198.18.0.1", 1, "hots", "unknown word"),
        ("port 80 and é", 13, "é", "cannot appear"),
        ("less", 5, "", "packet length"),
        ("greater -1", 9, "-", "packet length"),
        ("net 198.18.0.0 mask", 20, "", "dotted mask"),
        ("proto \\", 7, "\\", "backslash"),
        ("mask 255.0.0.0", 1, "mask", "must follow a network"),
    ];
    for &(text, pos, token, fragment) in cases {
        let (p, t, msg) = fails(text);
        assert_eq!((p, t.as_str()), (pos, token), "{text}: {msg}");
        assert!(msg.contains(fragment), "{text}: {msg:?} lacks {fragment:?}");
        let e = parse(text).unwrap_err();
        assert!(
            e.hint.is_some() || msg.contains(':'),
            "{text}: no hint and no reason: {msg}"
        );
    }
}

#[test]
fn messages_read_well() {
    assert_eq!(
        parse("ether host 1").unwrap_err().to_string(),
        "at character 1 (\"ether\"): ether is not supported; hint: edgecap captures at the IP \
         layer (nftables hands it IPv4 and IPv6 packets), so link-layer filters such as ether, \
         arp and vlan have nothing to match"
    );
    assert_eq!(
        parse("tcp and").unwrap_err().to_string(),
        "at character 8 (end of expression): the expression ends where a primitive was \
         expected; hint: complete it, e.g. ... and port 80"
    );
}

#[test]
fn keywords_ignore_case_and_constants_accept_hex() {
    assert_eq!(show("TCP AND Port 80"), "tcp and port 80");
    assert_eq!(show("tcp[13] & 0X12 == 0x02"), "tcp[13:1] & 0x12 == 2");
}
