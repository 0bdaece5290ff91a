//! Human-readable reports: aligned columns (flow left, numbers right), most affected flows
//! first, the fate or the delays spelled out.

use std::fmt::Write as _;

use crate::delay::DelayStats;
use crate::diff_report::DiffReport;
use crate::fate_report::FateReport;

/// Lines of a table: rows of cells, or free text under a row.
enum Line {
    Row(Vec<String>),
    Text(String),
}

/// Renders rows with the first column left-aligned and the rest right-aligned, two spaces
/// apart, each line starting with `indent`.
fn table(lines: &[Line], indent: &str) -> String {
    let mut widths: Vec<usize> = Vec::new();
    for line in lines {
        if let Line::Row(cells) = line {
            for (i, c) in cells.iter().enumerate() {
                let w = c.chars().count();
                match widths.get_mut(i) {
                    Some(x) => *x = (*x).max(w),
                    None => widths.push(w),
                }
            }
        }
    }
    let mut out = String::new();
    for line in lines {
        match line {
            Line::Row(cells) => {
                let mut s = indent.to_owned();
                for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
                    if i == 0 {
                        let _ = write!(s, "{c:<w$}");
                    } else {
                        let _ = write!(s, "  {c:>w$}");
                    }
                }
                out.push_str(s.trim_end());
            }
            Line::Text(t) => {
                out.push_str(indent);
                out.push_str("  ");
                out.push_str(t);
            }
        }
        out.push('\n');
    }
    out
}

/// `850ns`, `12.3µs`, `1.50ms`, `2.000s`, with a minus sign when negative.
pub fn duration(ns: i64) -> String {
    let sign = if ns < 0 { "-" } else { "" };
    let a = ns.unsigned_abs();
    let f = a as f64;
    if a < 1_000 {
        format!("{sign}{a}ns")
    } else if a < 1_000_000 {
        format!("{sign}{:.1}µs", f / 1e3)
    } else if a < 1_000_000_000 {
        format!("{sign}{:.2}ms", f / 1e6)
    } else {
        format!("{sign}{:.3}s", f / 1e9)
    }
}

fn more(shown: usize, total: usize) -> Option<String> {
    (total > shown).then(|| {
        format!(
            "({} more flows not shown; --top 0 shows all)",
            total - shown
        )
    })
}

fn notes(out: &mut String, warnings: &[String], error: Option<&String>) {
    for w in warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    if let Some(e) = error {
        let _ = writeln!(out, "incomplete: {e}");
    }
}

/// The fate report as text; `file` names the capture in the first line.
pub fn fate_text(r: &FateReport, file: &str) -> String {
    let flows: usize = r.nodes.iter().map(|n| n.flows_total).sum();
    let mut out = format!(
        "{file}: {} packets, {} flows on {} node(s)",
        r.packets,
        flows,
        r.nodes.len()
    );
    if r.non_ip_packets > 0 {
        let _ = write!(out, ", {} not IP", r.non_ip_packets);
    }
    out.push('\n');
    notes(&mut out, &r.warnings, r.error.as_ref());
    for n in &r.nodes {
        out.push('\n');
        match &n.node {
            Some(name) => {
                let _ = writeln!(out, "node {name}: {}", n.points.join(" > "));
            }
            None => {
                let _ = writeln!(out, "points: {}", n.points.join(" > "));
            }
        }
        if let Some(note) = &n.note {
            let _ = writeln!(out, "  ({note})");
        }
        let mut lines = vec![Line::Row(
            std::iter::once("FLOW".to_owned())
                .chain(n.points.iter().map(|p| p.to_uppercase()))
                .collect(),
        )];
        for f in &n.flows {
            let mut row = vec![f.name.clone()];
            row.extend(f.packets.iter().map(u64::to_string));
            lines.push(Line::Row(row));
            let short = f.verdict.replacen(&format!(" of {}", f.name), "", 1);
            lines.push(Line::Text(short));
        }
        let mut totals = vec!["all packets".to_owned()];
        totals.extend(n.packets.iter().map(u64::to_string));
        lines.push(Line::Row(totals));
        if let Some(m) = more(n.flows.len(), n.flows_total) {
            lines.push(Line::Text(m));
        }
        out.push_str(&table(&lines, "  "));
    }
    out
}

fn delay_cells(d: Option<&DelayStats>) -> Vec<String> {
    match d {
        Some(d) => [d.min_ns, d.p50_ns, d.p90_ns, d.p99_ns, d.max_ns]
            .into_iter()
            .map(duration)
            .collect(),
        None => vec!["-".to_owned(); 5],
    }
}

/// The diff report as text.
pub fn diff_text(r: &DiffReport) -> String {
    let mut out = String::new();
    for (tag, s) in [("A", &r.a), ("B", &r.b)] {
        let _ = write!(
            out,
            "{tag} {}: {} packets, {} flows",
            s.file, s.packets, s.flows
        );
        if s.non_ip_packets > 0 {
            let _ = write!(out, ", {} not IP", s.non_ip_packets);
        }
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "matched {}, missing from B {}, only in B {} (window {})",
        r.matched,
        r.missing_from_b,
        r.only_in_b,
        duration(r.window_ns)
    );
    match &r.delay {
        Some(d) => {
            let _ = writeln!(
                out,
                "delay B-A over {} packets: min {}, p50 {}, p90 {}, p99 {}, max {}{}",
                d.count,
                duration(d.min_ns),
                duration(d.p50_ns),
                duration(d.p90_ns),
                duration(d.p99_ns),
                duration(d.max_ns),
                if d.exact {
                    ""
                } else {
                    " (percentiles within 0.05%)"
                }
            );
        }
        None => out.push_str("delay B-A: no packet matched\n"),
    }
    notes(&mut out, &r.warnings, r.error.as_ref());
    if r.flows.is_empty() {
        return out;
    }
    out.push('\n');
    let head = [
        "FLOW",
        "IN A",
        "IN B",
        "MISSING FROM B",
        "ONLY IN B",
        "MIN",
        "P50",
        "P90",
        "P99",
        "MAX",
    ];
    let mut lines = vec![Line::Row(head.iter().map(|h| (*h).to_owned()).collect())];
    for f in &r.flows {
        let mut row = vec![
            f.name.clone(),
            f.in_a.to_string(),
            f.in_b.to_string(),
            f.missing_from_b.to_string(),
            f.only_in_b.to_string(),
        ];
        row.extend(delay_cells(f.delay.as_ref()));
        lines.push(Line::Row(row));
    }
    if let Some(m) = more(r.flows.len(), r.flows_total) {
        lines.push(Line::Text(m));
    }
    out.push_str(&table(&lines, ""));
    out
}
