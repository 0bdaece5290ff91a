//! The signature proof: for three attack shapes mixed with benign traffic, `edgecap signature
//! ATTACK --baseline NORMAL --json` proposes an nftables rule; installed (verbatim) in a table
//! of the lab edge's own, it drops at least 99 % of the replayed flood and under 1 % of the
//! replayed benign traffic, counted with nft counters. The attack file is written from the
//! generator that also makes the packets sent; the baseline is benign traffic of another seed.
//! Also: the command's errors for unreadable and non-pcap files (no root needed).

use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::time::Duration;

use edgecap_lab::Lab;
use edgecap_lab::packet::{Packet, TcpFlags};

use crate::common::*;

const ATTACK: usize = 5000;
const BENIGN: usize = 2000;

/// A deterministic pseudo-random sequence (xorshift).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A spoofed source in 198.18.128.0/17 (the source side of the test network).
    fn source(&mut self) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(0xc612_8000 | (self.next() as u32 & 0x7fff)))
    }

    fn port(&mut self) -> u16 {
        1024 + (self.next() % 64000) as u16
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

#[derive(Debug, Clone, Copy)]
enum Shape {
    /// UDP to port 7777 from random sources and ports, every payload starting with the same
    /// 6 bytes.
    UdpFixedPayload,
    /// TCP SYNs to port 443 from random sources and ports.
    SynFlood,
    /// UDP from one reflector's port 123 to random ports, lengths varying.
    NtpReflection,
}

const REFLECTOR: Ipv4Addr = Ipv4Addr::new(198, 18, 200, 7);
/// A legitimate NTP server the benign traffic gets answers from.
const NTP_SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 5, 5);

fn attack(shape: Shape, victim: IpAddr, rng: &mut Rng) -> Vec<Vec<u8>> {
    (0..ATTACK)
        .map(|i| {
            let p = match shape {
                Shape::UdpFixedPayload => {
                    let mut payload = vec![0xde, 0xad, 0xbe, 0xef, 0xca, 0xfe];
                    payload.extend(rng.bytes(42));
                    Packet::udp(rng.source(), victim, rng.port(), 7777).payload(payload)
                }
                Shape::SynFlood => {
                    Packet::tcp(rng.source(), victim, rng.port(), 443, TcpFlags::SYN)
                }
                Shape::NtpReflection => {
                    let len = 200 + (i % 34) * 8;
                    Packet::udp(REFLECTOR, victim, 123, rng.port()).payload(rng.bytes(len))
                }
            };
            p.build().expect("attack packet")
        })
        .collect()
}

/// Normal traffic to the victim: DNS queries, web sessions (0.5 % of packets are a client's
/// SYN), an application on UDP port 7777, NTP answers from a legitimate server, pings.
fn benign(victim: IpAddr, rng: &mut Rng, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let p = match i % 200 {
                0 => Packet::tcp(rng.source(), victim, rng.port(), 443, TcpFlags::SYN),
                k if k % 5 == 1 => {
                    let len = 20 + (rng.next() % 40) as usize;
                    Packet::udp(rng.source(), victim, rng.port(), 53).payload(rng.bytes(len))
                }
                k if k % 5 == 2 => {
                    let len = (rng.next() % 1200) as usize;
                    Packet::tcp(
                        rng.source(),
                        victim,
                        rng.port(),
                        443,
                        TcpFlags(TcpFlags::ACK.0 | TcpFlags::PSH.0),
                    )
                    .payload(rng.bytes(len))
                }
                k if k % 5 == 3 => {
                    let len = 10 + (rng.next() % 500) as usize;
                    Packet::udp(rng.source(), victim, rng.port(), 7777).payload(rng.bytes(len))
                }
                k if k % 10 == 4 => {
                    Packet::udp(NTP_SERVER, victim, 123, rng.port()).payload(rng.bytes(48))
                }
                k if k % 10 == 9 => Packet::icmp_echo(rng.source(), victim, rng.next() as u16, 1),
                _ => Packet::tcp(rng.source(), victim, rng.port(), 443, TcpFlags::ACK),
            };
            p.build().expect("benign packet")
        })
        .collect()
}

/// A classic pcap of LINKTYPE_RAW.
fn write_pcap(path: &std::path::Path, packets: &[Vec<u8>]) {
    let mut out = Vec::new();
    for v in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, 65535, 101] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    for (i, p) in packets.iter().enumerate() {
        for v in [i as u32, 0, p.len() as u32, p.len() as u32] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(p);
    }
    std::fs::write(path, out).expect("write pcap");
}

fn nft_json(lab: &Lab, ns: &str, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["-j", "list"];
    all.extend_from_slice(args);
    let out = lab.run_in(ns, "nft", &all).expect("nft -j list");
    serde_json::from_str(&out).expect("nft json")
}

/// Packets counted by the rules of `chain` (their anonymous counters).
fn rule_counters(lab: &Lab, ns: &str, table: &str, chain: &str) -> u64 {
    let v = nft_json(lab, ns, &["chain", "inet", table, chain]);
    v["nftables"]
        .as_array()
        .expect("nftables array")
        .iter()
        .filter_map(|o| o.get("rule"))
        .flat_map(|r| r["expr"].as_array().cloned().unwrap_or_default())
        .filter_map(|e| e.get("counter").and_then(|c| c["packets"].as_u64()))
        .sum()
}

fn named_counter(lab: &Lab, ns: &str, table: &str, name: &str) -> u64 {
    let v = nft_json(lab, ns, &["counter", "inet", table, name]);
    v["nftables"]
        .as_array()
        .expect("nftables array")
        .iter()
        .find_map(|o| o.get("counter").and_then(|c| c["packets"].as_u64()))
        .expect("counter packets")
}

/// Sends `packets` and returns (arrived at prerouting, dropped by the mitigation), as deltas.
fn replay(lab: &Lab, ns: &str, table: &str, packets: &[Vec<u8>]) -> (u64, u64) {
    let (seen0, dropped0) = (
        named_counter(lab, ns, table, "seen"),
        rule_counters(lab, ns, table, "mitigate"),
    );
    lab.send(0, packets).expect("send");
    let want = seen0 + packets.len() as u64;
    wait_for(Duration::from_secs(10), || {
        named_counter(lab, ns, table, "seen") >= want
    });
    std::thread::sleep(Duration::from_millis(100));
    (
        named_counter(lab, ns, table, "seen") - seen0,
        rule_counters(lab, ns, table, "mitigate") - dropped0,
    )
}

fn prove(shape: Shape, seed: u64) {
    let lab = lab();
    let ns = lab.edge_ns(0).to_owned();
    let victim = lab.origin_addr(0, false);
    let mut rng = Rng(seed);
    let flood = attack(shape, victim, &mut rng);
    let normal = benign(victim, &mut rng, BENIGN);
    let baseline = benign(victim, &mut Rng(seed ^ 0x5eed), BENIGN);

    let scratch = Scratch::new("signature");
    let (attack_file, baseline_file) = (scratch.path("attack.pcap"), scratch.path("normal.pcap"));
    write_pcap(&attack_file, &flood);
    write_pcap(&baseline_file, &baseline);
    let out = Command::new(BIN)
        .arg("signature")
        .arg(&attack_file)
        .arg("--baseline")
        .arg(&baseline_file)
        .arg("--json")
        .output()
        .expect("run edgecap signature");
    assert!(
        out.status.success(),
        "{shape:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sig: serde_json::Value = serde_json::from_slice(&out.stdout).expect("signature JSON");
    let expression = sig["mitigation"]["expression"]
        .as_str()
        .unwrap_or_else(|| panic!("{shape:?}: no mitigation: {sig:#}"));
    let rules: Vec<&str> = sig["mitigation"]["nft"]
        .as_array()
        .expect("nft rules")
        .iter()
        .map(|r| r.as_str().expect("rule text"))
        .collect();
    eprintln!("{shape:?}: {expression}\n  nft: {rules:?}");

    let table = format!("edgecap_sig_{}_{}", std::process::id(), seed);
    let script = format!(
        "table inet {table} {{
    counter seen {{}}
    chain arrive {{ type filter hook prerouting priority -300; policy accept; counter name seen; }}
    chain mitigate {{ type filter hook prerouting priority -200; policy accept;
        {}
    }}
}}
",
        rules.join("\n        ")
    );
    lab.run_in_with_input(&ns, "nft", ["-f", "-"], &script)
        .unwrap_or_else(|e| panic!("{shape:?}: installing\n{script}\n{e}"));

    let (flood_seen, flood_dropped) = replay(&lab, &ns, &table, &flood);
    let (benign_seen, benign_dropped) = replay(&lab, &ns, &table, &normal);
    let _ = lab.run_in(&ns, "nft", ["delete", "table", "inet", &table]);
    eprintln!(
        "{shape:?}: flood {flood_dropped} of {} dropped (arrived {flood_seen}); benign \
         {benign_dropped} of {} (arrived {benign_seen})",
        flood.len(),
        normal.len()
    );
    assert!(
        flood_seen >= flood.len() as u64 && benign_seen >= normal.len() as u64,
        "{shape:?}: not every packet arrived ({flood_seen}, {benign_seen})"
    );
    assert!(
        flood_dropped * 100 >= flood.len() as u64 * 99,
        "{shape:?}: the rule {rules:?} dropped {flood_dropped} of {} flood packets",
        flood.len()
    );
    assert!(
        benign_dropped * 100 < normal.len() as u64,
        "{shape:?}: the rule {rules:?} dropped {benign_dropped} of {} benign packets",
        normal.len()
    );
}

#[test]
fn signature_of_a_udp_flood_with_a_fixed_payload_drops_it() {
    if !root_or_skip() {
        return;
    }
    prove(Shape::UdpFixedPayload, 101);
}

#[test]
fn signature_of_a_syn_flood_from_random_sources_drops_it() {
    if !root_or_skip() {
        return;
    }
    prove(Shape::SynFlood, 202);
}

#[test]
fn signature_of_an_ntp_reflection_flood_drops_it() {
    if !root_or_skip() {
        return;
    }
    prove(Shape::NtpReflection, 303);
}

#[test]
fn signature_refuses_unreadable_and_non_pcap_files() {
    let scratch = Scratch::new("signature-bad");
    let missing = scratch.path("missing.pcap");
    let text = scratch.path("notes.txt");
    std::fs::write(&text, "not a capture\n").expect("write");
    for (file, want) in [(&missing, "cannot open"), (&text, "notes.txt")] {
        let out = Command::new(BIN)
            .arg("signature")
            .arg(file)
            .output()
            .expect("run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(want), "{err}");
    }
    // A readable attack with a bad baseline fails the same way, naming the baseline.
    let good = scratch.path("good.pcap");
    write_pcap(
        &good,
        &[Packet::udp(
            Ipv4Addr::new(198, 18, 0, 1),
            Ipv4Addr::new(198, 18, 0, 2),
            1,
            2,
        )
        .build()
        .expect("packet")],
    );
    let out = Command::new(BIN)
        .arg("signature")
        .arg(&good)
        .arg("--baseline")
        .arg(&text)
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("notes.txt"), "{err}");
    // And the table prints the fields and the proposed rule.
    let out = Command::new(BIN)
        .arg("signature")
        .arg(&good)
        .output()
        .expect("run");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        table.contains("FIELD") && table.contains("COVERAGE"),
        "{table}"
    );
    assert!(
        table.contains("expression: ") && table.contains("counter drop"),
        "{table}"
    );
}
