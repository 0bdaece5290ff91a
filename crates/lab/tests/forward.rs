//! Crafted traffic sent into a lab arrives forwarded, with exact counts (needs root; fails
//! instead of skipping under CI=true).
// Test helpers may unwrap like the tests themselves (clippy.toml allows it in tests).
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{Tcpdump, lab, nft_load, settled_counter};
use edgecap_lab::packet::{Packet, TcpFlags, find_marker};
use edgecap_lab::{Blast, Direction, Lab, LabSpec};

/// One named counter per kind of packet, in edge `i`'s forward hook.
fn load_forward_counters(lab: &Lab, i: usize) {
    let (o4, o6) = (lab.origin_addr(i, false), lab.origin_addr(i, true));
    let (s4, s6) = (lab.src_addr(i, false), lab.src_addr(i, true));
    let script = format!(
        "table inet count {{
            counter udp4 {{}}
            counter udp6 {{}}
            counter tcp4 {{}}
            counter tcp6 {{}}
            counter icmp4 {{}}
            counter icmp6 {{}}
            counter raw4 {{}}
            counter back {{}}
            counter low_ports {{}}
            counter replies {{}}
            chain count_forward {{
                type filter hook forward priority filter; policy accept;
                ip daddr {o4} udp dport 5000 counter name udp4
                ip6 daddr {o6} udp dport 5000 counter name udp6
                ip daddr {o4} tcp dport 443 tcp flags syn counter name tcp4
                ip6 daddr {o6} tcp dport 443 counter name tcp6
                ip daddr {o4} icmp type echo-request counter name icmp4
                ip6 daddr {o6} icmpv6 type echo-request counter name icmp6
                ip daddr {o4} meta l4proto 253 counter name raw4
                ip daddr {s4} udp sport 5000 counter name back
                ip6 daddr {s6} udp sport 5000 counter name back
                ip daddr {o4} udp dport 9 udp sport 1024-1099 counter name low_ports
                ip daddr {s4} icmp type echo-reply counter name replies
                ip6 daddr {s6} icmpv6 type echo-reply counter name replies
            }}
        }}"
    );
    nft_load(lab, lab.edge_ns(i), &script);
}

fn mix(lab: &Lab, i: usize) -> (Vec<Vec<u8>>, Vec<(&'static str, u64)>) {
    let a = |v6| (lab.src_addr(i, v6), lab.origin_addr(i, v6));
    let (s4, o4) = a(false);
    let (s6, o6) = a(true);
    let mut packets = Vec::new();
    let mut n = 0u32;
    let mut add = |p: Packet, times: usize| {
        for _ in 0..times {
            n += 1;
            packets.push(p.clone().marker(n).build().unwrap());
        }
    };
    add(Packet::udp(s4, o4, 40000, 5000), 3);
    add(Packet::udp(s6, o6, 40000, 5000).total_len(1200), 4);
    add(Packet::tcp(s4, o4, 40001, 443, TcpFlags::SYN).ident(77), 5);
    add(
        Packet::tcp(s6, o6, 40001, 443, TcpFlags::SYN | TcpFlags::ACK),
        2,
    );
    add(Packet::icmp_echo(s4, o4, 1, 1).total_len(1500), 6);
    add(Packet::icmp_echo(s6, o6, 1, 1), 7);
    add(Packet::raw(s4, o4, 253), 1);
    let want = vec![
        ("udp4", 3),
        ("udp6", 4),
        ("tcp4", 5),
        ("tcp6", 2),
        ("icmp4", 6),
        ("icmp6", 7),
        ("raw4", 1),
    ];
    (packets, want)
}

#[test]
fn crafted_ipv4_and_ipv6_packets_are_forwarded_exactly() {
    let Some(lab) = lab(&LabSpec::default(), "forwarded_exactly") else {
        return;
    };
    load_forward_counters(&lab, 0);
    let (packets, want) = mix(&lab, 0);
    let total = packets.len();
    let filter = format!(
        "host {} or host {}",
        lab.origin_addr(0, false),
        lab.origin_addr(0, true)
    );
    let dump = Tcpdump::start(
        &lab,
        lab.edge_ns(0),
        lab.edge_if_origin_side(),
        total,
        &filter,
    );
    let report = lab.send(0, &packets).unwrap();
    assert_eq!(report.sent, total);
    for (name, n) in want {
        assert_eq!(
            settled_counter(&lab, lab.edge_ns(0), "count", name, n),
            n,
            "{name}"
        );
    }
    let frames = dump.finish();
    assert_eq!(
        frames.len(),
        total,
        "frames seen leaving the edge toward the origin"
    );
    let mut marks = BTreeSet::new();
    for f in &frames {
        assert_eq!(&f[..6], &lab.origin_mac(0), "next hop is the origin");
        assert_eq!(&f[6..12], &lab.edge_mac_origin_side(0));
        let ttl = if f[14] >> 4 == 4 {
            f[14 + 8]
        } else {
            f[14 + 7]
        };
        assert_eq!(ttl, 63, "forwarded packets lose one TTL/hop");
        marks.insert(find_marker(f).unwrap());
    }
    assert_eq!(marks, (1..=total as u32).collect::<BTreeSet<_>>());
}

#[test]
fn reverse_direction_reaches_the_source() {
    let Some(lab) = lab(&LabSpec::default(), "reverse_direction") else {
        return;
    };
    load_forward_counters(&lab, 0);
    let packets: Vec<Vec<u8>> = [false, true]
        .into_iter()
        .flat_map(|v6| {
            let (o, s) = (lab.origin_addr(0, v6), lab.src_addr(0, v6));
            (0..5).map(move |n| Packet::udp(o, s, 5000, 40000).marker(n).build().unwrap())
        })
        .collect();
    let dump = Tcpdump::start(
        &lab,
        lab.src_ns(),
        &lab.src_if(0),
        10,
        "udp and src port 5000",
    );
    let report = lab.send_from(Direction::Reverse, 0, &packets).unwrap();
    assert_eq!(report.sent, 10);
    assert_eq!(
        settled_counter(&lab, lab.edge_ns(0), "count", "back", 10),
        10
    );
    let frames = dump.finish();
    assert_eq!(frames.len(), 10);
    assert!(frames.iter().all(|f| f[..6] == lab.src_mac(0)));
}

#[test]
fn three_edges_each_forward_only_their_own_traffic() {
    let Some(lab) = lab(&LabSpec::with_edges(3), "three_edges") else {
        return;
    };
    for i in 0..3 {
        load_forward_counters(&lab, i);
    }
    for i in 0..3 {
        let (s, o) = (lab.src_addr(i, false), lab.origin_addr(i, false));
        let p: Vec<Vec<u8>> = (0..=i as u32)
            .map(|n| Packet::udp(s, o, 1, 5000).marker(n).build().unwrap())
            .collect();
        lab.send(i, &p).unwrap();
    }
    for i in 0..3 {
        let n = i as u64 + 1;
        assert_eq!(
            settled_counter(&lab, lab.edge_ns(i), "count", "udp4", n),
            n,
            "edge {i}"
        );
    }
    assert!(lab.send(3, &[]).is_err(), "no edge 3");
}

#[test]
fn blast_sends_exactly_count_and_varies_ports() {
    let Some(lab) = lab(&LabSpec::default(), "blast_count") else {
        return;
    };
    load_forward_counters(&lab, 0);
    let (s, o) = (lab.src_addr(0, false), lab.origin_addr(0, false));
    let template = Packet::udp(s, o, 1, 9).total_len(64).build().unwrap();
    let count = 5000;
    let blast = Blast {
        count,
        pps: None,
        max_duration: Duration::from_secs(20),
        vary_source_port: true,
    };
    let report = lab.blast(0, &template, blast).unwrap();
    assert_eq!(report.sent, count);
    eprintln!(
        "blast: {} packets in {:?} ({:.0} pps, {} backoffs)",
        report.sent,
        report.elapsed,
        report.pps(),
        report.backoffs
    );
    // Ports cycle from 1024: 1024..=1099 appear exactly once in the first 5000 packets.
    assert_eq!(
        settled_counter(&lab, lab.edge_ns(0), "count", "low_ports", 76),
        76
    );
}

#[test]
fn blast_stops_at_max_duration_and_paces() {
    let Some(lab) = lab(&LabSpec::default(), "blast_duration") else {
        return;
    };
    let (s, o) = (lab.src_addr(0, true), lab.origin_addr(0, true));
    let template: Vec<u8> = Packet::tcp(s, o, 1, 80, TcpFlags::SYN).build().unwrap();
    let report = lab
        .blast(
            0,
            &template,
            Blast {
                count: u64::MAX,
                pps: Some(2000),
                max_duration: Duration::from_millis(300),
                vary_source_port: false,
            },
        )
        .unwrap();
    assert!(report.elapsed < Duration::from_secs(2), "{report:?}");
    assert!(
        (450..=700).contains(&report.sent),
        "~600 packets at 2000 pps: {report:?}"
    );
    let paced = lab
        .blast(
            0,
            &template,
            Blast {
                count: 100,
                pps: Some(500),
                max_duration: Duration::from_secs(10),
                vary_source_port: true,
            },
        )
        .unwrap();
    assert_eq!(paced.sent, 100);
    assert!(paced.elapsed >= Duration::from_millis(190), "{paced:?}");
    assert!(paced.elapsed < Duration::from_secs(2), "{paced:?}");
}

#[test]
fn bad_send_inputs_are_errors() {
    let Some(lab) = lab(&LabSpec::default(), "bad_send_inputs") else {
        return;
    };
    assert!(lab.send(0, &[vec![0x00; 20]]).is_err(), "not IP");
    assert!(lab.send(1, &[]).is_err(), "no edge 1");
    let icmp = Packet::icmp_echo(lab.src_addr(0, false), lab.origin_addr(0, false), 1, 1)
        .build()
        .unwrap();
    let vary = Blast {
        count: 1,
        pps: None,
        max_duration: Duration::from_secs(1),
        vary_source_port: true,
    };
    assert!(lab.blast(0, &icmp, vary).is_err(), "ICMP has no port");
    let zero = Blast {
        pps: Some(0),
        vary_source_port: false,
        ..vary
    };
    assert!(lab.blast(0, &icmp, zero).is_err());
}

/// Echo requests to the origin: a silent origin never answers, an answering one does.
fn echo_replies(silent_origin: bool) -> Option<u64> {
    let spec = LabSpec {
        silent_origin,
        ..LabSpec::default()
    };
    let lab = lab(&spec, "echo_replies")?;
    load_forward_counters(&lab, 0);
    let pings: Vec<Vec<u8>> = [false, true]
        .into_iter()
        .flat_map(|v6| {
            let (s, o) = (lab.src_addr(0, v6), lab.origin_addr(0, v6));
            (0..4).map(move |n| Packet::icmp_echo(s, o, 9, n).build().unwrap())
        })
        .collect();
    lab.send(0, &pings).unwrap();
    // The requests went through; replies would come right after them (or within 5 s).
    assert_eq!(
        settled_counter(&lab, lab.edge_ns(0), "count", "icmp4", 4),
        4
    );
    assert_eq!(
        settled_counter(&lab, lab.edge_ns(0), "count", "icmp6", 4),
        4
    );
    let want = if silent_origin { 0 } else { 8 };
    if want == 0 {
        std::thread::sleep(Duration::from_millis(300));
    }
    Some(settled_counter(
        &lab,
        lab.edge_ns(0),
        "count",
        "replies",
        want,
    ))
}

#[test]
fn silent_origin_never_answers_and_answering_origin_does() {
    let Some(silent) = echo_replies(true) else {
        return;
    };
    assert_eq!(silent, 0, "a silent origin sent echo replies");
    assert_eq!(
        echo_replies(false),
        Some(8),
        "an answering origin replies to every echo"
    );
}
