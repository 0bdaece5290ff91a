//! Random expressions over the whole supported grammar, written the way people (and tcpdump)
//! write them: every primitive and qualifier form, `and`/`&&`, `or`/`||`, `not`/`!`, nesting
//! with and without parentheses, qualifier inheritance (`host a or b`), `=` for `==`, named
//! constants, partial and masked networks, escaped protocol names. Values come from the
//! corpus's own pools, so selections are rarely empty. Only syntax tcpdump accepts too.

use super::corpus::{LENGTHS, PORTS, V4_HOSTS, V6_HOSTS};
use super::rng::Rng;

const V4_NETS: &[&str] = &[
    "198.18.0.0/15",
    "198.18.0.0/16",
    "198.19.0.0/16",
    "198.18.0.0/24",
    "198.18.1.0/24",
    "198.18.0.0/17",
    "198.18.128.0/17",
    "198.18.100.0/24",
    "198.18.1.128/25",
    "198.19.255.254/31",
    "198.18",
    "198.19",
    "198",
    "198.18.1",
    "198.18.100",
    "198.18.0.0 mask 255.254.0.0",
    "198.18.128.0 mask 255.255.128.0",
    "198.18 mask 255.255",
    "198.18.1.2",
];
const V6_NETS: &[&str] = &[
    "2001:db8::/32",
    "2001:db8::/48",
    "2001:db8:1::/48",
    "2001:db8::/33",
    "2001:db8:8000::/33",
    "2001:db8:ff::/48",
    "2001:db8::2/127",
    "2001:db8::/126",
    "2001:db8:ffff::/48",
    "2001:db8:1::2",
];
const RANGES: &[(u16, u16)] = &[
    (0, 1023),
    (1, 79),
    (80, 80),
    (81, 1024),
    (1024, 65535),
    (5000, 6000),
    (65534, 65535),
    (33434, 33534),
    (0, 0),
    (53, 443),
];
const DIRS: &[&str] = &[
    "",
    "",
    "src ",
    "dst ",
    "src or dst ",
    "src and dst ",
    "dst or src ",
    "dst and src ",
];
const PROTO_WORDS: &[&str] = &[
    "tcp", "udp", "sctp", "icmp", "icmp6", "igmp", "pim", "vrrp", "ah", "esp", "igrp",
];
const PROTO_VALUES: &[&str] = &[
    "0", "1", "2", "6", "17", "41", "44", "47", "50", "51", "58", "59", "60", "103", "112", "132",
    "\\tcp", "\\udp", "\\icmp", "\\gre", "\\esp", "\\ah", "\\sctp", "\\pim", "0x11",
];
const RELOPS: &[&str] = &["==", "=", "!=", "<", "<=", ">", ">="];

/// One random expression.
pub fn expression(rng: &mut Rng) -> String {
    let depth = 1 + rng.below(4);
    node(rng, depth)
}

/// A payload field (past the minimal headers; corpus payloads start with the marker
/// `EDGECAP-MARK-<n>`, then zeros) ANDed with one or two random primitives, in random order.
/// edgecap accepts it when the whole is one nftables rule and refuses it otherwise.
pub fn payload_and(rng: &mut Rng) -> String {
    const PAYLOAD_FIELDS: &[(&str, u32)] = &[
        ("udp[8:4]", 0x4544_4745),
        ("udp[21]", 0x31),
        ("udp[40]", 0),
        ("tcp[20:4]", 0x4544_4745),
        ("tcp[34]", 0x35),
        ("icmp[8:2]", 0x4544),
        ("ip[44:2]", 0),
        ("ip6[48:4]", 0x4544_4745),
        ("icmp6[8]", 0x45),
    ];
    let (f, v) = *rng.pick(PAYLOAD_FIELDS);
    let v = match rng.chance(30) {
        true => rng.range(0, v.max(1)),
        false => v,
    };
    let mut parts = vec![format!("{f} {} {v}", relop(rng))];
    for _ in 0..1 + rng.below(2) {
        parts.push(primitive(rng));
    }
    let by = rng.below(parts.len());
    parts.rotate_left(by);
    parts.join(" and ")
}

fn node(rng: &mut Rng, depth: usize) -> String {
    if depth == 0 || rng.chance(30) {
        return match rng.chance(25) {
            true => inherited_chain(rng),
            false => primitive(rng),
        };
    }
    match rng.below(9) {
        0..=2 => {
            let op = *rng.pick(&["and", "and", "&&"]);
            binary(rng, depth, op)
        }
        3..=5 => {
            let op = *rng.pick(&["or", "or", "||"]);
            binary(rng, depth, op)
        }
        6 | 7 => {
            let not = *rng.pick(&["not ", "not ", "!"]);
            let inner = node(rng, depth - 1);
            match rng.chance(80) {
                true => format!("{not}({inner})"),
                // Without parentheses `not` takes only the first primitive: a test of
                // precedence, as long as the rest still parses.
                false => format!("{not}{inner}"),
            }
        }
        _ => format!("({})", node(rng, depth - 1)),
    }
}

fn binary(rng: &mut Rng, depth: usize, op: &str) -> String {
    let a = node(rng, depth - 1);
    let b = node(rng, depth - 1);
    // Leaving out the parentheses tests tcpdump's left-to-right, equal precedence.
    let wrap = |s: String, rng: &mut Rng| match rng.chance(70) {
        true => format!("({s})"),
        false => s,
    };
    let a = wrap(a, rng);
    let b = wrap(b, rng);
    format!("{a} {op} {b}")
}

fn relop(rng: &mut Rng) -> &'static str {
    rng.pick_str(RELOPS)
}

fn v4_host(rng: &mut Rng) -> &'static str {
    rng.pick_str(V4_HOSTS)
}

fn v6_host(rng: &mut Rng) -> &'static str {
    rng.pick_str(V6_HOSTS)
}

/// `host A` / `net P` / `port N` / `portrange A-B` / `proto P` followed by bare values that
/// inherit its qualifiers: `host a or b and not c`.
fn inherited_chain(rng: &mut Rng) -> String {
    let v6 = rng.chance(40);
    let dir = *rng.pick(DIRS);
    let (head, values): (String, Vec<String>) = match rng.below(5) {
        0 => {
            let pq = if rng.chance(30) {
                if v6 { "ip6 " } else { "ip " }
            } else {
                ""
            };
            let pool = if v6 { V6_HOSTS } else { V4_HOSTS };
            (
                format!("{pq}{dir}host"),
                (0..4).map(|_| rng.pick(pool).to_string()).collect(),
            )
        }
        1 => {
            let pool = if v6 { V6_NETS } else { V4_NETS };
            (
                format!("{dir}net"),
                (0..4).map(|_| rng.pick(pool).to_string()).collect(),
            )
        }
        2 => {
            let pq = *rng.pick(&["", "", "tcp ", "udp ", "sctp "]);
            (
                format!("{pq}{dir}port"),
                (0..4).map(|_| rng.pick(PORTS).to_string()).collect(),
            )
        }
        3 => {
            let pq = *rng.pick(&["", "tcp ", "udp "]);
            (
                format!("{pq}{dir}portrange"),
                (0..4)
                    .map(|_| {
                        let (a, b) = rng.pick(RANGES);
                        format!("{a}-{b}")
                    })
                    .collect(),
            )
        }
        _ => {
            let pq = *rng.pick(&["", "ip ", "ip6 "]);
            (
                format!("{pq}proto"),
                (0..4)
                    .map(|_| {
                        let v = *rng.pick(PROTO_VALUES);
                        v.to_string()
                    })
                    .collect(),
            )
        }
    };
    let n = 1 + rng.below(3);
    let mut rest = values[0].clone();
    for v in &values[1..=n] {
        let op = *rng.pick(&["or", "and", "||", "&&", "or"]);
        let not = if rng.chance(20) { "not " } else { "" };
        rest.push_str(&format!(" {op} {not}{v}"));
    }
    // `host (a or b)`: the values in parentheses right after the qualifiers.
    match rng.chance(20) {
        true => format!("{head} ({rest})"),
        false => format!("{head} {rest}"),
    }
}

fn primitive(rng: &mut Rng) -> String {
    match rng.below(16) {
        0 => rng.pick(&["ip", "ip6"]).to_string(),
        1 | 2 => rng.pick(PROTO_WORDS).to_string(),
        3 => {
            let pq = *rng.pick(&["", "ip ", "ip6 "]);
            format!("{pq}proto {}", rng.pick(PROTO_VALUES))
        }
        4 | 5 => {
            let v6 = rng.chance(40);
            let pq = match (rng.chance(25), v6) {
                (false, _) => "",
                (true, false) => "ip ",
                (true, true) => "ip6 ",
            };
            let dir = *rng.pick(DIRS);
            let a = if v6 { v6_host(rng) } else { v4_host(rng) };
            // `src 198.18.0.2` (no `host`) means the same to tcpdump.
            match !dir.is_empty() && rng.chance(25) {
                true => format!("{pq}{dir}{a}"),
                false => format!("{pq}{dir}host {a}"),
            }
        }
        6 | 7 => {
            let v6 = rng.chance(40);
            let dir = *rng.pick(DIRS);
            let n = if v6 {
                rng.pick(V6_NETS)
            } else {
                rng.pick(V4_NETS)
            };
            let pq = match (rng.chance(20), v6) {
                (false, _) => "",
                (true, false) => "ip ",
                (true, true) => "ip6 ",
            };
            format!("{pq}{dir}net {n}")
        }
        8 | 9 => {
            let pq = *rng.pick(&["", "", "tcp ", "udp ", "sctp "]);
            let dir = *rng.pick(DIRS);
            match rng.chance(65) {
                true => format!("{pq}{dir}port {}", rng.pick(PORTS)),
                false => {
                    let (a, b) = rng.pick(RANGES);
                    format!("{pq}{dir}portrange {a}-{b}")
                }
            }
        }
        10 | 11 => tcp_flags(rng),
        12 => field(rng),
        13 => field(rng),
        14 => match rng.below(3) {
            0 => format!("less {}", rng.pick(LENGTHS)),
            1 => format!("greater {}", rng.pick(LENGTHS)),
            _ => format!("len {} {}", relop(rng), rng.pick(LENGTHS)),
        },
        _ => match rng.below(2) {
            0 => format!(
                "icmp[icmptype] {} {}",
                relop(rng),
                rng.pick(&[
                    "icmp-echo",
                    "icmp-echoreply",
                    "icmp-unreach",
                    "icmp-timxceed",
                    "13"
                ])
            ),
            _ => format!(
                "icmp6[icmp6type] {} {}",
                relop(rng),
                rng.pick(&[
                    "icmp6-echo",
                    "icmp6-echoreply",
                    "icmp6-neighborsolicit",
                    "icmp6-destinationunreach",
                    "3"
                ])
            ),
        },
    }
}

const FLAG_NAMES: &[&str] = &[
    "tcp-fin", "tcp-syn", "tcp-rst", "tcp-push", "tcp-ack", "tcp-urg", "tcp-ece", "tcp-cwr",
];

fn flag_set(rng: &mut Rng) -> (String, u32) {
    let n = 1 + rng.below(3);
    let mut names = Vec::new();
    let mut v = 0;
    for _ in 0..n {
        let i = rng.below(FLAG_NAMES.len());
        if v & (1 << i) == 0 {
            v |= 1 << i;
            names.push(FLAG_NAMES[i]);
        }
    }
    match names.len() {
        1 => (names[0].to_string(), v),
        _ => (format!("({})", names.join("|")), v),
    }
}

fn tcp_flags(rng: &mut Rng) -> String {
    let off = *rng.pick(&["tcpflags", "13"]);
    let (mask, mask_v) = flag_set(rng);
    match rng.below(5) {
        0 => format!("tcp[{off}] & {mask} != 0"),
        1 => format!("tcp[{off}] & {mask} == 0"),
        2 => {
            // A value within the mask: exactly these of the masked flags.
            let (value, value_v) = flag_set(rng);
            match value_v & !mask_v == 0 {
                true => format!("tcp[{off}] & {mask} == {value}"),
                false => format!("tcp[{off}] & {mask} = {mask}"),
            }
        }
        3 => format!("tcp[{off}] {} {:#x}", relop(rng), rng.range(0, 255)),
        _ => format!(
            "tcp[{off}] == {}",
            rng.pick(&[
                "tcp-syn",
                "tcp-ack",
                "tcp-syn|tcp-ack",
                "0x18",
                "tcp-rst",
                "(tcp-fin|tcp-ack)"
            ])
        ),
    }
}

fn field(rng: &mut Rng) -> String {
    // (field, the largest value it holds)
    const FIELDS: &[(&str, u32)] = &[
        ("ip[6:2] & 0x1fff", 0x1fff),
        ("ip[6:2] & 0x2000", 0x2000),
        ("ip[6] & 0x40", 0x40),
        ("ip[0] & 0x0f", 15),
        ("ip[2:2]", 1500),
        ("ip[8]", 255),
        ("ip[9]", 255),
        ("ip[12:4]", 0xffff_ffff),
        ("ip[16:2]", 0xffff),
        ("ip6[4:2]", 1500),
        ("ip6[6]", 255),
        ("ip6[7]", 255),
        ("ip6[24:4] & 0xffffff00", 0xffff_ff00),
        ("ip6[0:4] & 0xfff00000", 0xfff0_0000),
        ("tcp[0:2]", 0xffff),
        ("tcp[2:2]", 0xffff),
        ("tcp[12] & 0xf0", 0xf0),
        ("tcp[14:2]", 0xffff),
        ("udp[0:2]", 0xffff),
        ("udp[2:2]", 0xffff),
        ("udp[4:2]", 1500),
        ("icmp[1]", 255),
    ];
    let (f, max) = *rng.pick(FIELDS);
    let value = match rng.below(4) {
        0 => 0,
        1 => max,
        _ => match f {
            "ip[9]" | "ip6[6]" => *rng.pick(&[6u32, 17, 44, 58, 132, 47, 1, 0, 60]),
            "ip[12:4]" => u32::from(
                rng.pick(V4_HOSTS)
                    .parse::<std::net::Ipv4Addr>()
                    .expect("v4"),
            ),
            "ip[2:2]" | "ip6[4:2]" | "udp[4:2]" => *rng.pick(LENGTHS),
            "tcp[0:2]" | "tcp[2:2]" | "udp[0:2]" | "udp[2:2]" => u32::from(*rng.pick(PORTS)),
            _ => rng.range(0, max),
        },
    };
    // The mask bounds what the value may be in edgecap (tcpdump would just never match).
    let value = value.min(max);
    format!("{f} {} {value}", relop(rng))
}
