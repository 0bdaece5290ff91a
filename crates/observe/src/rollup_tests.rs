use std::net::{Ipv4Addr, Ipv6Addr};

use super::*;

const NS: u64 = 1_000_000_000;
const T: u64 = 1_800_000_000;

fn v4(proto: u8, src: [u8; 4], dst: [u8; 4], transport: &[u8], frag: u16) -> Vec<u8> {
    let total = u16::try_from(20 + transport.len()).unwrap();
    let mut p = vec![0x45, 0];
    p.extend_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&[0, 1]);
    p.extend_from_slice(&frag.to_be_bytes());
    p.extend_from_slice(&[64, proto, 0, 0]);
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(transport);
    p
}

fn tcp(sport: u16, dport: u16, flags: u8, payload: usize) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&[0; 8]);
    t.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    t.resize(20 + payload, 0xab);
    t
}

fn udp(sport: u16, dport: u16, payload: usize) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    let len = u16::try_from(8 + payload).unwrap();
    t.extend_from_slice(&len.to_be_bytes());
    t.extend_from_slice(&[0, 0]);
    t.resize(8 + payload, 0xcd);
    t
}

fn v6_udp(src: &str, dst: &str, dport: u16) -> Vec<u8> {
    let t = udp(40000, dport, 10);
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&u16::try_from(t.len()).unwrap().to_be_bytes());
    p.extend_from_slice(&[17, 64]);
    p.extend_from_slice(&src.parse::<Ipv6Addr>().unwrap().octets());
    p.extend_from_slice(&dst.parse::<Ipv6Addr>().unwrap().octets());
    p.extend_from_slice(&t);
    p
}

#[test]
fn headers_of_truncated_and_fragmented_packets() {
    let syn = v4(
        6,
        [198, 18, 0, 1],
        [198, 18, 1, 2],
        &tcp(40000, 443, 0x02, 1400),
        0,
    );
    let h = headers(&syn[..160]).unwrap();
    assert_eq!(h.src, IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1)));
    assert_eq!(h.dst, IpAddr::V4(Ipv4Addr::new(198, 18, 1, 2)));
    assert_eq!(
        (h.proto, h.ports, h.tcp_flags),
        (6, Some((40000, 443)), Some(0x02))
    );
    let six = headers(&v6_udp("2001:db8::1", "2001:db8:1::2", 53)).unwrap();
    assert_eq!((six.proto, six.ports), (17, Some((40000, 53))));
    // A later fragment has no transport header: no ports.
    let later = v4(17, [198, 18, 0, 1], [198, 18, 1, 2], &[0xee; 40], 185);
    let h = headers(&later).unwrap();
    assert_eq!((h.proto, h.ports), (17, None));
    assert_eq!(headers(&[0x00, 0x01, 0x02]), None);
    assert_eq!(headers(&[]), None);
}

#[test]
fn a_node_second_has_exact_totals_and_estimated_breakdowns() {
    let mut r = Roller::new(vec!["pre-firewall".into()], None, 3);
    r.counters(T, 0, 6400, 5_000_000);
    // 100 samples at 1 in 64: 60 TCP SYNs to 198.18.1.2:443, 40 UDP to 198.18.1.3:53.
    for i in 0..100u64 {
        let p = match i < 60 {
            true => v4(
                6,
                [198, 18, 0, 1],
                [198, 18, 1, 2],
                &tcp(40000, 443, 0x02, 0),
                0,
            ),
            false => v4(
                17,
                [198, 18, 0, 9],
                [198, 18, 1, 3],
                &udp(40000, 53, 1000),
                0,
            ),
        };
        let len = u32::try_from(p.len()).unwrap();
        r.sample(T * NS + i * 1000, 0, len, &p, 64);
    }
    // Still open: nothing closes before its second is over.
    assert!(r.close(T).is_empty());
    let s = r.close(T + 1);
    assert_eq!(s.len(), 1);
    let s = &s[0];
    assert_eq!((s.t, s.point.as_str()), (T, "pre-firewall"));
    assert_eq!((s.packets, s.bytes, s.exact), (6400, 5_000_000, true));
    assert_eq!((s.samples, s.one_in), (100, 64));
    assert_eq!((s.tcp, s.udp, s.icmp, s.other), (60 * 64, 40 * 64, 0, 0));
    assert_eq!((s.syn, s.rst), (60 * 64, 0));
    assert_eq!(s.families, [6400, 0]);
    // 40-byte SYNs in the first bucket, 1028-byte datagrams in the sixth (<= 1500).
    assert_eq!(s.lengths[0], 60 * 64);
    assert_eq!(s.lengths[5], 40 * 64);
    assert_eq!(s.top_dst[0].key, IpAddr::V4(Ipv4Addr::new(198, 18, 1, 2)));
    assert_eq!((s.top_dst[0].count, s.top_dst[0].error), (3840, 0));
    assert_eq!(s.top_dport[0].key, 443);
    assert_eq!(s.top_dport[1].key, 53);
}

#[test]
fn an_accounts_second_holds_only_its_prefixes() {
    let boundary = Boundary::parse(&["198.18.1.2/32"]).unwrap();
    let mut r = Roller::for_account(vec!["pre-firewall".into()], "acct1".into(), boundary, 5);
    r.counters(T, 0, 1_000_000, 1_000_000_000);
    let ours = v4(17, [198, 18, 0, 1], [198, 18, 1, 2], &udp(1, 53, 10), 0);
    let theirs = v4(17, [198, 18, 0, 1], [198, 18, 1, 3], &udp(1, 53, 10), 0);
    for i in 0..10 {
        r.sample(T * NS + i, 0, 38, &ours, 8);
        r.sample(T * NS + i, 0, 38, &theirs, 8);
    }
    let s = &r.close(T + 1)[0];
    assert!(
        !s.exact,
        "an account's totals are estimates, never the node's counters"
    );
    assert_eq!((s.packets, s.bytes), (80, 80 * 38));
    assert_eq!(s.account.as_deref(), Some("acct1"));
    let dsts: Vec<IpAddr> = s.top_dst.iter().map(|h| h.key).collect();
    assert_eq!(dsts, [IpAddr::V4(Ipv4Addr::new(198, 18, 1, 2))]);
}

#[test]
fn open_seconds_are_bounded_and_late_data_is_counted() {
    let mut r = Roller::new(vec!["a".into()], None, 1);
    let p = v4(17, [198, 18, 0, 1], [198, 18, 1, 2], &udp(1, 53, 10), 0);
    for s in 0..100u64 {
        r.sample((T + s) * NS, 0, 38, &p, 1);
    }
    // Data for a second older than every open one is dropped and counted.
    r.sample(T * NS, 0, 38, &p, 1);
    assert_eq!(r.late(), 100 - 2 * MAX_OPEN_SECONDS as u64 + 1);
    let closed = r.close(T + 1000);
    let ts: Vec<u64> = closed.iter().map(|s| s.t).collect();
    let kept = 2 * MAX_OPEN_SECONDS as u64;
    assert_eq!(ts, (T + 100 - kept..T + 100).collect::<Vec<_>>());
}
