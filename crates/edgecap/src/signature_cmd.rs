//! `edgecap signature FILE [--baseline FILE] [--json]`: the fields that single out the attack in
//! a capture, and a proposed rule to drop it.
//!
//! ```text
//! $ edgecap signature flood.pcapng --baseline normal.pcapng
//! attack flood.pcapng: 20000 packets; baseline normal.pcapng: 6000 packets
//!
//! FIELD          VALUE                 COVERAGE  BASELINE  CHOSEN
//! destination    198.18.1.2              100.0%     66.7%  yes
//! payload        udp[8:4] 0xdeadbeef     100.0%      0.0%  yes
//! ...
//!
//! expression: dst host 198.18.1.2 and udp[8:4] == 0xdeadbeef
//! nft rule:   meta nfproto ipv4 ip daddr 198.18.1.2 ... @th,64,32 == 3735928559 counter drop
//! the rule matches 100.0% of the attack and 0.0% of the baseline
//! ```
//!
//! FILE and the baseline are pcap or pcapng files from any tool (one of them may be `-`,
//! standard input); their IP packets are read (at most the first 100,000 of each, the rest
//! counted). The computation is `edgecap_signature::signature`; `--json` prints its
//! `Signature`. The rule goes into a filter chain (`nft add rule inet T C <rule>`); the
//! expression works with `edgecap capture --filter` and tcpdump, to look at what it keeps.
//!
//! Exit status: 0 on success (with or without a proposed rule); 2 when a file cannot be
//! opened or is not pcap/pcapng (the message names the file and the reason), or both are `-`;
//! 1 when reading fails part-way.

use std::path::{Path, PathBuf};

use clap::Args;
use edgecap_signature::{Limits, PACKET_BYTES_USED, Signature};

use crate::exit::Failure;
use crate::fate_cmd::{display, json, open, print};

/// Arguments of `edgecap signature`.
#[derive(Debug, Args)]
pub struct SignatureArgs {
    /// The attack's capture (pcap or pcapng), or - for standard input.
    pub file: PathBuf,
    /// Normal traffic to measure each field's hit rate on (pcap or pcapng, or -).
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,
    #[arg(long, help = crate::out::JSON_HELP)]
    pub json: bool,
}

/// The IP packets of a capture, at most `max` (more are counted), and how many frames had
/// no IP packet.
struct Packets {
    ip: Vec<Vec<u8>>,
    /// Frames past `max`, or without an IP packet.
    skipped: usize,
}

fn read(path: &Path, max: usize) -> Result<Packets, Failure> {
    let name = display(path);
    let mut reader = open(path)?;
    let mut out = Packets {
        ip: Vec::new(),
        skipped: 0,
    };
    loop {
        match reader.next_packet() {
            Ok(Some(p)) => match p.ip {
                // The signature reads no further: memory stays bounded on any file.
                Some(ip) if out.ip.len() < max => {
                    out.ip.push(ip[..ip.len().min(PACKET_BYTES_USED)].to_vec())
                }
                _ => out.skipped += 1,
            },
            Ok(None) => return Ok(out),
            Err(e) => return Err(Failure::runtime(format!("{name}: {e}"))),
        }
    }
}

pub fn run(a: &SignatureArgs) -> Result<(), Failure> {
    if a.file.as_os_str() == "-" && a.baseline.as_ref().is_some_and(|b| b.as_os_str() == "-") {
        return Err(Failure::usage(
            "FILE and --baseline are both standard input; at most one of them can be -",
        ));
    }
    let limits = Limits::default();
    let attack = read(&a.file, limits.max_packets)?;
    let baseline = a
        .baseline
        .as_ref()
        .map(|b| read(b, limits.max_packets))
        .transpose()?;
    let mut sig = edgecap_signature::signature(
        &attack.ip,
        baseline.as_ref().map(|b| b.ip.as_slice()),
        &limits,
    );
    // Frames the reader found no IP packet in count as skipped too.
    sig.attack_skipped += attack.skipped;
    let text = match a.json {
        true => json(&sig)?,
        false => table(&sig, &display(&a.file), a.baseline.as_deref().map(display)),
    };
    print(&text)
}

fn percent(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

fn table(s: &Signature, file: &str, baseline: Option<String>) -> String {
    let mut out = format!("attack {file}: {} packets", s.attack_packets);
    if s.attack_skipped > 0 {
        out.push_str(&format!(
            " ({} skipped: not IP, or past the first {})",
            s.attack_skipped,
            Limits::default().max_packets
        ));
    }
    if let (Some(name), Some(n)) = (&baseline, s.baseline_packets) {
        out.push_str(&format!("; baseline {name}: {n} packets"));
    }
    out.push_str("\n\n");
    let rows: Vec<[String; 5]> = s
        .fields
        .iter()
        .map(|f| {
            [
                f.field.name().to_owned(),
                f.value.clone(),
                percent(f.coverage),
                f.baseline_hit_rate.map_or("-".to_owned(), percent),
                if f.chosen { "yes" } else { "" }.to_owned(),
            ]
        })
        .collect();
    let head = ["FIELD", "VALUE", "COVERAGE", "BASELINE", "CHOSEN"];
    let width = |i: usize| {
        rows.iter()
            .map(|r| r[i].chars().count())
            .chain([head[i].len()])
            .max()
            .unwrap_or(0)
    };
    let w: Vec<usize> = (0..5).map(width).collect();
    let line = |r: [&str; 5]| {
        let text = format!(
            "{:<w0$}  {:<w1$}  {:>w2$}  {:>w3$}  {}",
            r[0],
            r[1],
            r[2],
            r[3],
            r[4],
            w0 = w[0],
            w1 = w[1],
            w2 = w[2],
            w3 = w[3]
        );
        format!("{}\n", text.trim_end())
    };
    out.push_str(&line(head));
    for r in &rows {
        out.push_str(&line([&r[0], &r[1], &r[2], &r[3], &r[4]]));
    }
    out.push('\n');
    match &s.mitigation {
        Some(m) => {
            out.push_str(&format!("expression: {}\n", m.expression));
            for (i, r) in m.nft.iter().enumerate() {
                let label = if i == 0 { "nft rule:  " } else { "           " };
                out.push_str(&format!("{label} {r}\n"));
            }
            out.push_str(&format!(
                "the rule matches {} of the attack",
                percent(m.coverage)
            ));
            if let Some(b) = m.baseline_hit_rate {
                out.push_str(&format!(" and {} of the baseline", percent(b)));
            }
            out.push('\n');
            for d in &m.dropped {
                out.push_str(&format!("left out: {d}\n"));
            }
        }
        None => out.push_str("no rule proposed\n"),
    }
    if let Some(n) = &s.note {
        out.push_str(&format!("note: {n}\n"));
    }
    out
}
