//! Results of the capture benchmark: one row per (size, rate, reader), the markdown table,
//! and the target lines. Targets are goals to report honestly; a MISS never fails the run.

use std::fmt::{self, Write};
use std::time::Duration;

use super::reader::ReaderKind;

/// IPv4 (20) + UDP (8) header bytes around the payload.
pub const IP_UDP_HEADERS: usize = 28;

/// Other processes' CPU seconds above which a row is flagged as possibly disturbed.
const NOISY_CPU: f64 = 0.2;

/// A target offered rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rate {
    Pps(u64),
    /// The generator unpaced: as fast as it goes.
    Max,
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rate::Pps(n) => write!(f, "{n}"),
            Rate::Max => f.write_str("max"),
        }
    }
}

/// What the reader itself reported about loss, shown beside the truth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelfReport {
    Edgecap {
        lost: u64,
        overruns: u64,
    },
    /// tcpdump's "packets dropped by kernel": ENOBUFS events, not packets.
    Tcpdump {
        enobufs: Option<u64>,
    },
}

/// One measurement.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Row {
    pub payload: usize,
    pub rate: Rate,
    pub reader: ReaderKind,
    /// How long the generator actually sent (first to last packet).
    pub elapsed: Duration,
    /// Packets counted by the offered rule (the truth every reader is measured against).
    pub offered: u64,
    pub captured: u64,
    pub self_report: SelfReport,
    /// Reader user + system CPU over its whole life.
    pub cpu: Duration,
    /// CPU seconds other people's processes used during the measurement (see `noise`).
    pub foreign_cpu: f64,
    /// Idle share of all CPUs while the generator was sending.
    pub idle_pct: Option<f64>,
}

impl Row {
    pub fn lost(&self) -> u64 {
        self.offered.saturating_sub(self.captured)
    }
    pub fn loss_pct(&self) -> f64 {
        if self.offered == 0 {
            0.0
        } else {
            100.0 * self.lost() as f64 / self.offered as f64
        }
    }
    pub fn achieved_pps(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 {
            self.offered as f64 / s
        } else {
            0.0
        }
    }
    /// CPU microseconds per captured packet (numerically also CPU seconds per million).
    pub fn us_per_pkt(&self) -> Option<f64> {
        (self.captured > 0).then(|| self.cpu.as_secs_f64() * 1e6 / self.captured as f64)
    }
}

fn verdict(pass: bool) -> &'static str {
    if pass { "PASS" } else { "MISS" }
}

fn fmt_us(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.3}"))
}

/// The results table.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| UDP payload (IP packet) | target pps | reader | offered pps | offered | captured \
         | lost | loss % | reader's own loss report | CPU s | CPU µs/pkt (= CPU s/Mpkt) \
         | other processes' CPU s | machine idle % |\n\
         |---|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|\n",
    );
    for r in rows {
        let own = match r.self_report {
            SelfReport::Edgecap { lost, overruns } => format!("lost {lost} ({overruns} ENOBUFS)"),
            SelfReport::Tcpdump { enobufs: Some(n) } => {
                format!("{n} \"dropped by kernel\" (ENOBUFS events)")
            }
            SelfReport::Tcpdump { enobufs: None } => "no statistics line".into(),
        };
        let _ = writeln!(
            out,
            "| {} B ({} B) | {} | {} | {:.0} | {} | {} | {} | {:.3} | {} | {:.3} | {} | {:.2} | {} |",
            r.payload,
            r.payload + IP_UDP_HEADERS,
            r.rate,
            r.reader.label(),
            r.achieved_pps(),
            r.offered,
            r.captured,
            r.lost(),
            r.loss_pct(),
            own,
            r.cpu.as_secs_f64(),
            fmt_us(r.us_per_pkt()),
            r.foreign_cpu,
            r.idle_pct.map_or_else(|| "-".into(), |p| format!("{p:.0}")),
        );
    }
    out
}

/// Aggregate CPU per captured packet of one reader over all rates of one size.
fn aggregate_us(rows: &[Row], payload: usize, reader: ReaderKind) -> Option<f64> {
    let (cpu, pkts) = rows
        .iter()
        .filter(|r| r.payload == payload && r.reader == reader)
        .fold((0.0, 0u64), |(c, p), r| {
            (c + r.cpu.as_secs_f64(), p + r.captured)
        });
    (pkts > 0).then(|| cpu * 1e6 / pkts as f64)
}

fn sizes(rows: &[Row]) -> Vec<usize> {
    let mut s: Vec<usize> = Vec::new();
    for r in rows {
        if !s.contains(&r.payload) {
            s.push(r.payload);
        }
    }
    s
}

/// The target lines: (a) edgecap loss at the highest rate reached, (b) CPU ratio to the best
/// tcpdump configuration, (c) zero loss for 1400-byte packets while writing the file
/// (`files` false means the readers wrote to /dev/null, which (c) says).
pub fn targets(rows: &[Row], files: bool) -> String {
    let mut out = String::new();
    let edgecap = |p: usize| {
        rows.iter()
            .filter(move |r| r.payload == p && r.reader == ReaderKind::Edgecap)
    };
    for p in sizes(rows) {
        if let Some(top) = edgecap(p).max_by(|a, b| a.achieved_pps().total_cmp(&b.achieved_pps())) {
            let _ = writeln!(
                out,
                "- (a) {}: edgecap loss at the highest offered rate ({p} B payload, {:.0} pps, target {}): \
                 {} of {} lost ({:.3} %) (target: 0)",
                verdict(top.lost() == 0),
                top.achieved_pps(),
                top.rate,
                top.lost(),
                top.offered,
                top.loss_pct()
            );
        }
    }
    for p in sizes(rows) {
        let best = [ReaderKind::Tcpdump, ReaderKind::TcpdumpBig]
            .into_iter()
            .filter_map(|k| aggregate_us(rows, p, k).map(|us| (k, us)))
            .min_by(|a, b| a.1.total_cmp(&b.1));
        let (Some(ours), Some((kind, theirs))) = (aggregate_us(rows, p, ReaderKind::Edgecap), best)
        else {
            continue;
        };
        let ratio = ours / theirs;
        let mut per_rate = Vec::new();
        for e in edgecap(p) {
            let t = rows
                .iter()
                .filter(|r| r.payload == p && r.rate == e.rate && r.reader.is_tcpdump())
                .filter_map(Row::us_per_pkt)
                .min_by(f64::total_cmp);
            if let (Some(us), Some(t)) = (e.us_per_pkt(), t) {
                per_rate.push(format!("{}: {:.2}", e.rate, us / t));
            }
        }
        let _ = writeln!(
            out,
            "- (b) {}: CPU per captured packet, {p} B payload: edgecap {ours:.3} µs vs {} {theirs:.3} µs \
             (the cheaper tcpdump configuration, all rates pooled) = ratio {ratio:.3} ({}) \
             (target ≤ 1/3). Per rate, vs the cheaper tcpdump at that rate: {}",
            verdict(ratio <= 1.0 / 3.0),
            kind.label(),
            if ratio < 1.0 {
                format!("1/{:.1} of tcpdump's CPU", 1.0 / ratio)
            } else {
                format!("{ratio:.1}× tcpdump's CPU")
            },
            per_rate.join(", ")
        );
    }
    let big: Vec<&Row> = rows
        .iter()
        .filter(|r| r.payload == 1400 && r.reader == ReaderKind::Edgecap)
        .collect();
    if !big.is_empty() {
        let lost: u64 = big.iter().map(|r| r.lost()).sum();
        let offered: u64 = big.iter().map(|r| r.offered).sum();
        let _ = writeln!(
            out,
            "- (c) {}: 1400 B payload, edgecap writing {}: {lost} of {offered} lost over {} runs (target: 0)",
            verdict(lost == 0),
            if files {
                "the file"
            } else {
                "to /dev/null, NOT a file"
            },
            big.len()
        );
    }
    let noisy: Vec<String> = rows
        .iter()
        .filter(|r| r.foreign_cpu > NOISY_CPU)
        .map(|r| {
            format!(
                "{} {} B @ {} ({:.2} s)",
                r.reader.label(),
                r.payload,
                r.rate,
                r.foreign_cpu
            )
        })
        .collect();
    if !noisy.is_empty() {
        let _ = writeln!(
            out,
            "- note: other processes used more than {NOISY_CPU} CPU-s during {} rows, which may \
             have taken CPU from the generator or the reader: {}",
            noisy.len(),
            noisy.join("; ")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(
        payload: usize,
        rate: Rate,
        reader: ReaderKind,
        offered: u64,
        captured: u64,
        cpu_ms: u64,
    ) -> Row {
        Row {
            payload,
            rate,
            reader,
            elapsed: Duration::from_secs(1),
            offered,
            captured,
            self_report: SelfReport::Tcpdump { enobufs: Some(0) },
            cpu: Duration::from_millis(cpu_ms),
            foreign_cpu: 0.0,
            idle_pct: None,
        }
    }

    #[test]
    fn loss_and_cpu_per_packet() {
        let r = row(64, Rate::Pps(1000), ReaderKind::Edgecap, 1000, 990, 10);
        assert_eq!(r.lost(), 10);
        assert!((r.loss_pct() - 1.0).abs() < 1e-9);
        assert!((r.us_per_pkt().unwrap_or(0.0) - 10_000.0 / 990.0).abs() < 1e-6);
        assert_eq!(
            row(64, Rate::Max, ReaderKind::Tcpdump, 5, 0, 1).us_per_pkt(),
            None
        );
    }

    #[test]
    fn verdicts_follow_the_numbers() {
        let rows = [
            row(1400, Rate::Pps(100), ReaderKind::Edgecap, 100, 100, 1),
            row(1400, Rate::Pps(100), ReaderKind::Tcpdump, 100, 90, 9),
            row(1400, Rate::Pps(100), ReaderKind::TcpdumpBig, 100, 100, 10),
            row(1400, Rate::Max, ReaderKind::Edgecap, 500, 499, 5),
            row(1400, Rate::Max, ReaderKind::Tcpdump, 400, 300, 30),
            row(1400, Rate::Max, ReaderKind::TcpdumpBig, 450, 450, 45),
        ];
        let mut rows = rows;
        rows[1].foreign_cpu = 0.5;
        let t = targets(&rows, true);
        assert!(
            t.contains("during 1 rows") && t.contains("tcpdump 1400 B @ 100"),
            "{t}"
        );
        assert!(t.contains("- (a) MISS"), "{t}");
        assert!(t.contains("- (b) PASS"), "{t}");
        assert!(t.contains("- (c) MISS"), "{t}");
        assert!(t.contains("max: 0.10"), "{t}");
        assert_eq!(table(&rows).lines().count(), 2 + rows.len());
    }

    #[test]
    fn zero_loss_passes() {
        let rows = [row(1400, Rate::Max, ReaderKind::Edgecap, 500, 500, 5)];
        let t = targets(&rows, true);
        assert!(t.contains("- (a) PASS") && t.contains("- (c) PASS"), "{t}");
        assert!(!t.contains("(b)"), "no tcpdump rows, no ratio: {t}");
    }
}
