//! Structured filters through the real kernel: a corpus of crafted packets crosses the lab's
//! edge node, and the file holds exactly the packets each filter selects.

use std::net::IpAddr;
use std::time::Duration;

use edgecap_lab::Lab;
use edgecap_lab::packet::{Packet, TcpFlags};

use crate::common::*;

/// What a test needs to know about each corpus packet to state its expectation.
#[derive(Debug, Clone)]
struct Sent {
    marker: u32,
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    sport: Option<u16>,
    dport: Option<u16>,
}

fn corpus(lab: &Lab) -> (Vec<Vec<u8>>, Vec<Sent>) {
    let s4 = lab.src_addr(0, false);
    let d4 = lab.origin_addr(0, false);
    let s6 = lab.src_addr(0, true);
    let d6 = lab.origin_addr(0, true);
    let other4: IpAddr = "198.18.100.5".parse().unwrap();
    let near4: IpAddr = "198.18.0.77".parse().unwrap();
    let other6: IpAddr = "2001:db8:ff::9".parse().unwrap();
    let mut packets = Vec::new();
    let mut sent = Vec::new();
    let mut add =
        |p: Packet, src: IpAddr, dst: IpAddr, proto: u8, sport: Option<u16>, dport: Option<u16>| {
            let marker = sent.len() as u32 + 1;
            packets.push(p.marker(marker).build().expect("build packet"));
            sent.push(Sent {
                marker,
                src,
                dst,
                proto,
                sport,
                dport,
            });
        };
    for (src, dst) in [(s4, d4), (s6, d6), (near4, d4), (other4, d4), (other6, d6)] {
        add(
            Packet::udp(src, dst, 40000, 53),
            src,
            dst,
            17,
            Some(40000),
            Some(53),
        );
        add(
            Packet::udp(src, dst, 5353, 5353),
            src,
            dst,
            17,
            Some(5353),
            Some(5353),
        );
        add(
            Packet::tcp(src, dst, 41000, 443, TcpFlags::SYN),
            src,
            dst,
            6,
            Some(41000),
            Some(443),
        );
        add(
            Packet::tcp(src, dst, 41001, 80, TcpFlags::ACK),
            src,
            dst,
            6,
            Some(41001),
            Some(80),
        );
        add(
            Packet::udp(src, dst, 33000, 65535),
            src,
            dst,
            17,
            Some(33000),
            Some(65535),
        );
        add(
            Packet::icmp_echo(src, dst, 7, 1),
            src,
            dst,
            if src.is_ipv4() { 1 } else { 58 },
            None,
            None,
        );
        if src.is_ipv4() {
            add(Packet::raw(src, dst, 47), src, dst, 47, None, None);
        }
    }
    (packets, sent)
}

fn in_prefix(a: IpAddr, net: &str) -> bool {
    let (addr, len) = net.split_once('/').unwrap();
    let addr: IpAddr = addr.parse().unwrap();
    let len: u32 = len.parse().unwrap();
    match (a, addr) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let m = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            u32::from(a) & m == u32::from(n) & m
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let m = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            u128::from(a) & m == u128::from(n) & m
        }
        _ => false,
    }
}

/// Captures the corpus once with `args` and returns the markers in the file.
fn capture_corpus(
    lab: &Lab,
    packets: &[Vec<u8>],
    args: &[&str],
    scratch: &Scratch,
    tag: &str,
) -> Vec<u32> {
    let out = scratch.path(&format!("{tag}.pcapng"));
    let mut full: Vec<&str> = args.to_vec();
    let out_s = out.to_str().unwrap().to_owned();
    full.extend(["-w", &out_s]);
    let run = start(lab.edge_ns(0), &full);
    lab.send(0, packets).expect("send corpus");
    // Let the kernel's 10 ms batch timer flush, then stop the way a user does.
    std::thread::sleep(Duration::from_millis(300));
    let done = run.interrupt();
    assert!(
        done.status.success(),
        "{tag}: capture failed: {}",
        done.stderr
    );
    let s = done.summary();
    assert_eq!(s["lost"], 0, "{tag}: {}", done.stderr);
    assert_eq!(s["stop_reason"], "stopped");
    markers(&out)
}

#[test]
fn each_filter_captures_exactly_the_matching_packets() {
    if !root_or_skip() {
        return;
    }
    let lab = lab();
    let scratch = Scratch::new("filters");
    let (packets, sent) = corpus(&lab);
    let ports = |p: &Sent| matches!(p.proto, 6 | 17 | 132);
    type Pred = Box<dyn Fn(&Sent) -> bool>;
    let cases: Vec<(&str, Vec<&str>, Pred)> = vec![
        // Not an empty filter: the kernel's own IPv6 chatter on fresh links (MLD, router
        // solicitations from fe80::/::) would be captured too, correctly, but unpredictably.
        (
            "all-lab-sources",
            vec!["--src", "198.18.0.0/15,2001:db8::/32"],
            Box::new(|_| true),
        ),
        ("udp", vec!["--proto", "udp"], Box::new(|p| p.proto == 17)),
        (
            "tcp-443",
            vec!["--proto", "tcp", "--dport", "443"],
            Box::new(|p| p.proto == 6 && p.dport == Some(443)),
        ),
        (
            "dport-53-any-proto",
            vec!["--dport", "53"],
            Box::new(move |p| ports(p) && p.dport == Some(53)),
        ),
        (
            "v4-prefix",
            vec!["--src", "198.18.0.0/24"],
            Box::new(|p| in_prefix(p.src, "198.18.0.0/24")),
        ),
        (
            "v6-prefix-icmpv6",
            vec!["--src", "2001:db8::/32", "--proto", "icmpv6"],
            Box::new(|p| p.src.is_ipv6() && p.proto == 58),
        ),
        (
            "icmp-v4-only",
            vec!["--proto", "icmp"],
            Box::new(|p| p.proto == 1),
        ),
        (
            "proto-number",
            vec!["--proto", "47"],
            Box::new(|p| p.proto == 47),
        ),
        (
            "port-range",
            vec!["--dport", "1-100"],
            Box::new(move |p| ports(p) && p.dport.is_some_and(|d| (1..=100).contains(&d))),
        ),
        (
            "edge-port",
            vec!["--dport", "65535", "--proto", "udp"],
            Box::new(|p| p.proto == 17 && p.dport == Some(65535)),
        ),
        (
            "src-list",
            vec!["--src", "198.18.0.77,198.18.100.5"],
            Box::new(|p| p.src.to_string() == "198.18.0.77" || p.src.to_string() == "198.18.100.5"),
        ),
        (
            "mixed-family-list",
            vec![
                "--src",
                "198.18.100.5",
                "--src",
                "2001:db8:ff::9",
                "--proto",
                "tcp",
            ],
            Box::new(|p| {
                p.proto == 6
                    && (p.src.to_string() == "198.18.100.5"
                        || p.src.to_string() == "2001:db8:ff::9")
            }),
        ),
        (
            "dst-and-sport",
            vec!["--dst", "198.18.1.2", "--sport", "40000"],
            Box::new(move |p| {
                ports(p) && p.dst.to_string() == "198.18.1.2" && p.sport == Some(40000)
            }),
        ),
        (
            "v6-host",
            vec![
                "--dst",
                "2001:db8:1::2",
                "--proto",
                "udp",
                "--sport",
                "5353",
            ],
            Box::new(|p| {
                p.dst.to_string() == "2001:db8:1::2" && p.proto == 17 && p.sport == Some(5353)
            }),
        ),
        // tcpdump-style expressions, alone and ANDed with the options.
        (
            "expr-udp-dst-53",
            vec!["--filter", "udp and dst port 53"],
            Box::new(|p| p.proto == 17 && p.dport == Some(53)),
        ),
        (
            "expr-and-options",
            vec![
                "--src",
                "198.18.0.0/15,2001:db8::/32",
                "--filter",
                "not (icmp or icmp6) and not port 5353",
            ],
            Box::new(move |p| {
                !matches!(p.proto, 1 | 58)
                    && !(ports(p) && (p.sport == Some(5353) || p.dport == Some(5353)))
            }),
        ),
        (
            "expr-syn-only",
            vec!["--filter", "tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn"],
            // tcpdump's tcp[] reads IPv4 only; the corpus sends SYN to 443, ACK to 80.
            Box::new(|p| p.src.is_ipv4() && p.proto == 6 && p.dport == Some(443)),
        ),
        (
            "expr-inherited-host",
            vec!["--filter", "src host 198.18.100.5 or 2001:db8:ff::9"],
            Box::new(|p| {
                p.src.to_string() == "198.18.100.5" || p.src.to_string() == "2001:db8:ff::9"
            }),
        ),
        (
            "expr-partial-net-and-proto-name",
            vec!["--filter", "src net 198.18.100 and proto \\gre"],
            Box::new(|p| p.proto == 47 && in_prefix(p.src, "198.18.100.0/24")),
        ),
        (
            "expr-and-proto-option",
            vec![
                "--proto",
                "udp",
                "--filter",
                "portrange 5000-6000 or dst port 65535",
            ],
            Box::new(|p| {
                p.proto == 17
                    && (p.sport.is_some_and(|s| (5000..=6000).contains(&s))
                        || p.dport
                            .is_some_and(|d| (5000..=6000).contains(&d) || d == 65535))
            }),
        ),
    ];
    for (tag, args, pred) in &cases {
        let want: Vec<u32> = sent.iter().filter(|p| pred(p)).map(|p| p.marker).collect();
        assert!(
            !want.is_empty(),
            "{tag}: the corpus has no matching packet; the case proves nothing"
        );
        let got = capture_corpus(&lab, &packets, args, &scratch, tag);
        assert_eq!(
            got, want,
            "{tag} ({args:?}): captured markers differ from the expected ones"
        );
    }
}
