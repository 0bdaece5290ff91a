use std::net::Ipv4Addr;

use edgecap_filter::Expression;

use super::*;

/// An IPv4 packet: `proto` with `transport` (header and payload) after a 20-byte header.
fn v4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, ttl: u8, transport: &[u8]) -> Vec<u8> {
    let total = 20 + transport.len();
    let mut p = vec![0x45, 0, 0, 0, 0, 1, 0, 0, ttl, proto, 0, 0];
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(transport);
    p
}

fn udp(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    t.extend_from_slice(&[0, 0]);
    t.extend_from_slice(payload);
    v4(src, dst, 17, 64, &t)
}

fn tcp(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, flags: u8, ttl: u8) -> Vec<u8> {
    let mut t = vec![0u8; 20];
    t[0..2].copy_from_slice(&sport.to_be_bytes());
    t[2..4].copy_from_slice(&dport.to_be_bytes());
    t[12] = 5 << 4;
    t[13] = flags;
    v4(src, dst, 6, ttl, &t)
}

/// A deterministic pseudo-random sequence (xorshift), for sources and ports.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn addr(&mut self) -> Ipv4Addr {
        Ipv4Addr::from(0xc612_0000 | (self.next() as u32 & 0x0001_ffff))
    }
}

const VICTIM: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 10);

/// Benign traffic to the victim and elsewhere: DNS queries, web clients' established TCP.
fn benign(rng: &mut Rng, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| match i % 3 {
            0 => udp(
                rng.addr(),
                VICTIM,
                1024 + (rng.next() % 60000) as u16,
                53,
                b"query",
            ),
            1 => tcp(
                rng.addr(),
                VICTIM,
                1024 + (rng.next() % 60000) as u16,
                80,
                0x18,
                64,
            ),
            _ => {
                let len = 10 + (rng.next() % 400) as usize;
                udp(rng.addr(), VICTIM, 5000, 9999, &vec![0x11; len])
            }
        })
        .collect()
}

fn chosen(s: &Signature) -> Vec<&str> {
    s.fields
        .iter()
        .filter(|f| f.chosen)
        .map(|f| f.field.name())
        .collect()
}

fn rules_of(m: &Mitigation) -> Vec<edgecap_filter::ir::Conjunction> {
    Expression::parse(&m.expression)
        .expect("the expression parses")
        .compile()
        .expect("the expression compiles")
}

fn share(rules: &[edgecap_filter::ir::Conjunction], packets: &[Vec<u8>]) -> f64 {
    let n = packets
        .iter()
        .filter(|p| edgecap_filter::matches(rules, p))
        .count();
    n as f64 / packets.len() as f64
}

#[test]
fn a_udp_flood_with_a_fixed_payload_is_singled_out_by_its_payload() {
    let mut rng = Rng(7);
    let attack: Vec<Vec<u8>> = (0..2000)
        .map(|_| {
            let mut payload = vec![0xde, 0xad, 0xbe, 0xef, 0x01, 0x02];
            payload.extend((0..20).map(|_| rng.next() as u8));
            udp(
                rng.addr(),
                VICTIM,
                (rng.next() % 65536) as u16,
                9999,
                &payload,
            )
        })
        .collect();
    let base = benign(&mut rng, 3000);
    let s = signature(&attack, Some(base.as_slice()), &Limits::default());
    assert_eq!(s.attack_packets, 2000);
    assert_eq!(s.baseline_packets, Some(3000));
    let m = s.mitigation.as_ref().expect("a mitigation");
    assert!(
        m.expression.contains("udp[8:4] == 0xdeadbeef"),
        "{}",
        m.expression
    );
    assert!(chosen(&s).contains(&"payload"), "{:?}", chosen(&s));
    // The numbers reported are those of the rule, measured independently here.
    let rules = rules_of(m);
    assert_eq!(rules.len(), 1, "a payload field needs a one-rule filter");
    assert_eq!(m.nft.len(), 1);
    assert!(m.nft[0].contains("@th,64,32") && m.nft[0].ends_with("counter drop"));
    assert_eq!(share(&rules, &attack), 1.0);
    assert_eq!(m.coverage, 1.0);
    assert_eq!(share(&rules, &base), 0.0);
    assert_eq!(m.baseline_hit_rate, Some(0.0));
    // The source port is random: reported, with its low coverage, and not chosen.
    let sport = s
        .fields
        .iter()
        .find(|f| f.field.name() == "src_port")
        .expect("src_port reported");
    assert!(!sport.chosen && sport.coverage < 0.05, "{sport:?}");
}

#[test]
fn a_syn_flood_from_random_sources_is_singled_out_by_its_flags() {
    let mut rng = Rng(11);
    let attack: Vec<Vec<u8>> = (0..3000)
        .map(|_| {
            tcp(
                rng.addr(),
                VICTIM,
                (rng.next() % 65536) as u16,
                80,
                0x02,
                64,
            )
        })
        .collect();
    let base = benign(&mut rng, 3000);
    let s = signature(&attack, Some(base.as_slice()), &Limits::default());
    let m = s.mitigation.as_ref().expect("a mitigation");
    assert!(m.expression.contains("tcp[13] == 0x02"), "{}", m.expression);
    assert!(
        m.expression.contains("dst host 198.19.0.10"),
        "{}",
        m.expression
    );
    let rules = rules_of(m);
    assert_eq!(share(&rules, &attack), 1.0);
    assert_eq!(share(&rules, &base), 0.0);
    // Random sources: no prefix covers the attack.
    let src = s
        .fields
        .iter()
        .find(|f| f.field.name() == "source_prefix")
        .expect("reported");
    assert!(!src.chosen && src.coverage < 0.99, "{src:?}");
}

#[test]
fn a_reflection_flood_is_singled_out_by_its_source_port() {
    let mut rng = Rng(13);
    let reflector = Ipv4Addr::new(198, 18, 7, 7);
    let attack: Vec<Vec<u8>> = (0..2000)
        .map(|i| {
            let len = 400 + (i % 50) * 8;
            udp(
                reflector,
                VICTIM,
                123,
                (rng.next() % 65536) as u16,
                &vec![0x17; len],
            )
        })
        .collect();
    let base = benign(&mut rng, 3000);
    let s = signature(&attack, Some(base.as_slice()), &Limits::default());
    let m = s.mitigation.as_ref().expect("a mitigation");
    let rules = rules_of(m);
    assert_eq!(share(&rules, &attack), 1.0, "{}", m.expression);
    assert_eq!(share(&rules, &base), 0.0, "{}", m.expression);
    let names = chosen(&s);
    assert!(
        names.contains(&"src_port") || names.contains(&"source_prefix"),
        "{names:?}"
    );
}

#[test]
fn without_a_baseline_every_field_the_attack_shares_is_chosen() {
    let mut rng = Rng(17);
    let attack: Vec<Vec<u8>> = (0..500)
        .map(|_| tcp(rng.addr(), VICTIM, 4000, 443, 0x02, 250))
        .collect();
    let s = signature(&attack, None, &Limits::default());
    assert_eq!(s.baseline_packets, None);
    let names = chosen(&s);
    for f in [
        "destination",
        "dst_port",
        "src_port",
        "ttl",
        "length",
        "tcp_flags",
    ] {
        assert!(names.contains(&f), "{f} missing from {names:?}");
    }
    // The protocol is implied by the ports.
    assert!(!names.contains(&"protocol"), "{names:?}");
    let m = s.mitigation.expect("a mitigation");
    assert!(m.expression.contains("ip[8] == 250"), "{}", m.expression);
    assert!(s.fields.iter().all(|f| f.baseline_hit_rate.is_none()));
}

#[test]
fn ipv6_tcp_flags_are_a_payload_field_kept_in_a_one_rule_filter() {
    // An IPv6 SYN flood: the flags are read at ip6[53], a payload field, and the rule stays
    // one rule, so it is kept.
    let v6 = |src: u16| {
        let mut p = vec![0x60, 0, 0, 0, 0, 20, 6, 64];
        p.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        p.push((src & 0xff) as u8);
        p.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        let mut t = vec![0u8; 20];
        t[0..2].copy_from_slice(&src.to_be_bytes());
        t[2..4].copy_from_slice(&443u16.to_be_bytes());
        t[12] = 5 << 4;
        t[13] = 0x02;
        p.extend_from_slice(&t);
        p
    };
    let attack: Vec<Vec<u8>> = (0..300).map(|i| v6(1000 + i)).collect();
    let s = signature(&attack, None, &Limits::default());
    let m = s.mitigation.as_ref().expect("a mitigation");
    assert!(m.expression.contains("ip6[53] == 0x02"), "{}", m.expression);
    assert!(m.dropped.is_empty(), "{:?}", m.dropped);
    assert_eq!(share(&rules_of(m), &attack), 1.0);
}

#[test]
fn hostile_input_is_bounded_and_never_panics() {
    let mut rng = Rng(19);
    // Garbage, truncated headers, IPv4 header lengths past the end, zero lengths.
    let mut junk: Vec<Vec<u8>> = (0..5000)
        .map(|i| {
            let len = (rng.next() % 80) as usize;
            let mut p: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            if let Some(b) = p.first_mut() {
                *b = [0x45, 0x4f, 0x60, 0x00, 0x41][i % 5];
            }
            p
        })
        .collect();
    junk.push(Vec::new());
    let limits = Limits {
        max_packets: 1000,
        ..Limits::default()
    };
    let s = signature(&junk, Some(junk.as_slice()), &limits);
    assert!(s.attack_packets <= 1000);
    assert_eq!(s.attack_packets + s.attack_skipped, junk.len());
    // Nothing at all.
    let empty: Vec<Vec<u8>> = Vec::new();
    let s = signature(&empty, None, &Limits::default());
    assert!(s.mitigation.is_none() && s.note.is_some());
}

#[test]
fn no_rule_when_nothing_is_shared() {
    let mut rng = Rng(23);
    let attack: Vec<Vec<u8>> = (0..400)
        .map(|_| {
            let dst = rng.addr();
            let len = (rng.next() % 600) as usize;
            let mut p = udp(
                rng.addr(),
                dst,
                rng.next() as u16,
                rng.next() as u16,
                &vec![1; len],
            );
            p[8] = rng.next() as u8; // TTL
            p
        })
        .collect();
    // Only the protocol is shared (and a length range, by construction): nothing random may
    // be chosen.
    let s = signature(&attack, None, &Limits::default());
    let names = chosen(&s);
    for f in [
        "destination",
        "src_port",
        "dst_port",
        "ttl",
        "source_prefix",
    ] {
        assert!(!names.contains(&f), "{f} chosen: {names:?}");
    }
}

#[test]
fn packets_cut_to_the_bytes_used_give_the_same_signature() {
    let mut rng = Rng(31);
    let attack: Vec<Vec<u8>> = (0..300)
        .map(|_| {
            let mut payload = vec![0xab; 1400];
            payload[..4].copy_from_slice(&[1, 2, 3, 4]);
            udp(rng.addr(), VICTIM, 53, 4444, &payload)
        })
        .collect();
    let base = benign(&mut rng, 600);
    let cut = |ps: &[Vec<u8>]| -> Vec<Vec<u8>> {
        ps.iter()
            .map(|p| p[..p.len().min(PACKET_BYTES_USED)].to_vec())
            .collect()
    };
    let whole = signature(&attack, Some(base.as_slice()), &Limits::default());
    let (a, b) = (cut(&attack), cut(&base));
    let kept = signature(&a, Some(b.as_slice()), &Limits::default());
    assert_eq!(whole, kept);
    assert!(
        whole
            .fields
            .iter()
            .any(|f| f.field.name() == "length" && f.value == "1428")
    );
}

#[test]
fn the_signature_serialises() {
    let mut rng = Rng(29);
    let attack: Vec<Vec<u8>> = (0..100)
        .map(|_| tcp(rng.addr(), VICTIM, 1, 80, 0x02, 64))
        .collect();
    let s = signature(&attack, None, &Limits::default());
    let json = serde_json::to_value(&s).expect("json");
    assert_eq!(json["attack_packets"], 100);
    assert!(json["fields"][0]["field"].is_string(), "{json}");
    assert!(json["mitigation"]["expression"].is_string(), "{json}");
    let back: Signature = serde_json::from_value(json).expect("round trip");
    assert_eq!(back, s);
}
