//! What `diff` reports: totals per side, matched and missing packets per flow, and the delay
//! distribution of matched packets, overall and per flow.

use serde::{Deserialize, Serialize};

use crate::delay::DelayStats;
use crate::diff::Diff;
use crate::flow::FlowKey;

/// The whole comparison.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffReport {
    /// The first capture.
    pub a: SideSummary,
    /// The second capture.
    pub b: SideSummary,
    /// Packets of A found in B.
    pub matched: u64,
    /// Packets of A not found in B.
    pub missing_from_b: u64,
    /// Packets of B not found in A.
    pub only_in_b: u64,
    /// Delay B - A over all matched packets.
    pub delay: Option<DelayStats>,
    /// How far apart in time two packets may be and still match.
    pub window_ns: i64,
    /// Flows in either capture; `flows` may hold fewer after `--top`.
    pub flows_total: usize,
    /// Flows, most affected (missing + only in B) first.
    pub flows: Vec<FlowDiff>,
    /// Anything that makes the numbers less than exact.
    pub warnings: Vec<String>,
    /// Set when reading stopped early: the counts cover the packets before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One capture's totals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SideSummary {
    /// The file, as named on the command line.
    pub file: String,
    /// Packets read.
    pub packets: u64,
    /// Frames without an IPv4/IPv6 packet (not compared).
    pub non_ip_packets: u64,
    /// Flows with at least one packet in this capture.
    pub flows: usize,
}

/// One flow in both captures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowDiff {
    /// The flow.
    pub flow: FlowKey,
    /// The flow in words.
    pub name: String,
    /// Packets in A.
    pub in_a: u64,
    /// Packets in B.
    pub in_b: u64,
    /// Packets of A found in B.
    pub matched: u64,
    /// Packets of A not found in B.
    pub missing_from_b: u64,
    /// Packets of B not found in A.
    pub only_in_b: u64,
    /// Delay B - A of the matched packets.
    pub delay: Option<DelayStats>,
}

impl DiffReport {
    /// Keeps the `top` most affected flows (0 keeps all).
    pub fn limit(&mut self, top: usize) {
        if top > 0 {
            self.flows.truncate(top);
        }
    }
}

pub(crate) fn build(
    d: &Diff,
    a_name: &str,
    b_name: &str,
    window_ns: i64,
    warnings: Vec<String>,
) -> DiffReport {
    let mut flows: Vec<FlowDiff> = d
        .keys
        .iter()
        .zip(&d.flows)
        .map(|(k, f)| FlowDiff {
            flow: k.clone(),
            name: k.to_string(),
            in_a: f.in_a,
            in_b: f.in_b,
            matched: f.matched,
            missing_from_b: f.missing_from_b,
            only_in_b: f.only_in_b,
            delay: f.delays.stats(),
        })
        .collect();
    flows.sort_by(|x, y| {
        let key = |f: &FlowDiff| (f.missing_from_b + f.only_in_b, f.in_a + f.in_b);
        key(y).cmp(&key(x)).then_with(|| x.name.cmp(&y.name))
    });
    let sum = |g: fn(&FlowDiff) -> u64| flows.iter().map(g).sum::<u64>();
    let side = |file: &str, acc: crate::diff::SideAcc, has: fn(&FlowDiff) -> bool| SideSummary {
        file: file.to_owned(),
        packets: acc.packets,
        non_ip_packets: acc.non_ip,
        flows: flows.iter().filter(|f| has(f)).count(),
    };
    DiffReport {
        a: side(a_name, d.a, |f| f.in_a > 0),
        b: side(b_name, d.b, |f| f.in_b > 0),
        matched: sum(|f| f.matched),
        missing_from_b: sum(|f| f.missing_from_b),
        only_in_b: sum(|f| f.only_in_b),
        delay: d.overall.stats(),
        window_ns,
        flows_total: flows.len(),
        flows,
        warnings,
        error: None,
    }
}
