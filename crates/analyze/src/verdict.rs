//! The one-sentence fate of a flow, e.g. "42 packets of udp 198.18.0.2:40000 >
//! 198.18.1.2:53 seen at pre-firewall, 0 at post-firewall: dropped between them". Clauses in
//! order: losses between consecutive points, packets that appeared after the first point,
//! packets missed at a point in between; only the first clause names the flow.

use crate::fate_report::FlowFate;

/// "1 packet", "3 packets".
fn packets(n: u64) -> String {
    if n == 1 {
        "1 packet".to_owned()
    } else {
        format!("{n} packets")
    }
}

/// The fate sentence. Only its first clause names the flow.
pub(crate) fn verdict(f: &FlowFate, names: &[String], total: u64) -> String {
    let mut parts: Vec<String> = Vec::new();
    let of = |parts: &Vec<String>| {
        if parts.is_empty() {
            format!(" of {}", f.name)
        } else {
            String::new()
        }
    };
    let seen_at = |p: &str| {
        names
            .iter()
            .position(|n| n == p)
            .and_then(|i| f.packets.get(i).copied())
            .unwrap_or(0)
    };
    for l in &f.lost {
        let s = if seen_at(&l.before) == 0 && l.packets == l.of {
            format!(
                "{}{} seen at {}, 0 at {}: dropped between them",
                packets(l.of),
                of(&parts),
                l.after,
                l.before
            )
        } else {
            let noun = if l.of == 1 { "packet" } else { "packets" };
            format!(
                "{} of {} {noun}{} lost between {} and {}",
                l.packets,
                l.of,
                of(&parts),
                l.after,
                l.before
            )
        };
        parts.push(s);
    }
    for a in &f.appeared {
        let s = format!(
            "{}{} first seen at {} (not at earlier points)",
            packets(a.packets),
            of(&parts),
            a.point
        );
        parts.push(s);
    }
    for m in &f.missed {
        let s = format!(
            "{}{} not seen at {} but seen before and after it",
            packets(m.packets),
            of(&parts),
            m.point
        );
        parts.push(s);
    }
    if parts.is_empty() {
        return match names {
            [only] => format!(
                "{}{} seen at {only} (the only point)",
                packets(total),
                of(&parts)
            ),
            _ => format!("{}{} seen at every point", packets(total), of(&parts)),
        };
    }
    parts.join("; ")
}
