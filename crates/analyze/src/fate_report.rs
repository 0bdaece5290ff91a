//! What `fate` reports: per node, its points in pipeline order and, per flow, the packets seen
//! at each point, where they stopped, and a sentence saying so.

use serde::{Deserialize, Serialize};

use crate::fate::{FlowAcc, NodeAcc};
use crate::flow::FlowKey;
use crate::points;
use crate::verdict::verdict;

/// The whole analysis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FateReport {
    /// Packets read.
    pub packets: u64,
    /// Frames without an IPv4/IPv6 packet (counted per point, in no flow).
    pub non_ip_packets: u64,
    /// Packets not analysed (flow or point limits; see `warnings`).
    pub untracked_packets: u64,
    /// One entry per node, in order of first appearance in the file.
    pub nodes: Vec<NodeFate>,
    /// Anything that makes the numbers less than exact.
    pub warnings: Vec<String>,
    /// Set when reading stopped early: the counts cover the packets before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One node's points and flows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeFate {
    /// The `<node>` of `<node>/<point>`; `None` for interfaces not named that way.
    pub node: Option<String>,
    /// Set when the point order is a guess (interfaces not named `<node>/<point>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Points in pipeline order.
    pub points: Vec<String>,
    /// Packets per point (all frames, IP or not), aligned with `points`.
    pub packets: Vec<u64>,
    /// Flows seen on this node; `flows` may hold fewer after `--top`.
    pub flows_total: usize,
    /// Flows, most affected first.
    pub flows: Vec<FlowFate>,
}

/// One flow on one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowFate {
    /// The flow.
    pub flow: FlowKey,
    /// The flow in words, e.g. `udp 198.18.0.2:40000 > 198.18.1.2:53`.
    pub name: String,
    /// Packets seen per point, aligned with the node's `points`.
    pub packets: Vec<u64>,
    /// Packets last seen at `after` and never at `before`, the next point.
    pub lost: Vec<Lost>,
    /// Packets first seen at a point other than the first.
    pub appeared: Vec<AtPoint>,
    /// Packets seen before and after a point but not at it.
    pub missed: Vec<AtPoint>,
    /// Lost plus missed packets: the sort key.
    pub affected: u64,
    /// The fate in one sentence.
    pub verdict: String,
}

/// Packets that stopped between two consecutive points.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lost {
    /// Last point they were seen at.
    pub after: String,
    /// The next point, where they were not.
    pub before: String,
    /// How many.
    pub packets: u64,
    /// Packets seen at `after`.
    pub of: u64,
}

/// A count at one point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AtPoint {
    /// The point.
    pub point: String,
    /// How many packets.
    pub packets: u64,
}

impl FateReport {
    /// Keeps the `top` most affected flows of each node (0 keeps all).
    pub fn limit(&mut self, top: usize) {
        if top > 0 {
            for n in &mut self.nodes {
                n.flows.truncate(top);
            }
        }
    }
}

pub(crate) const UNNAMED_NOTE: &str = "interfaces are not named <node>/<point>: each interface is \
                                       treated as a point, in file order";

pub(crate) fn build(
    nodes: &[NodeAcc],
    flows: &[FlowAcc],
    packets: u64,
    non_ip: u64,
    untracked: u64,
    warnings: Vec<String>,
) -> FateReport {
    let mut out = Vec::with_capacity(nodes.len());
    for (ni, node) in nodes.iter().enumerate() {
        let positions: Vec<_> = node.points.iter().map(|p| p.position).collect();
        let order = points::order(&positions);
        let mut rank = vec![0usize; order.len()];
        for (r, &p) in order.iter().enumerate() {
            if let Some(slot) = rank.get_mut(p) {
                *slot = r;
            }
        }
        let names: Vec<String> = order
            .iter()
            .filter_map(|&p| node.points.get(p).map(|x| x.name.clone()))
            .collect();
        let mut node_flows: Vec<FlowFate> = flows
            .iter()
            .filter(|f| f.node == ni)
            .map(|f| flow_fate(f, &rank, &names))
            .collect();
        node_flows.sort_by(|a, b| {
            let total = |f: &FlowFate| f.packets.iter().copied().max().unwrap_or(0);
            (b.affected, total(b))
                .cmp(&(a.affected, total(a)))
                .then_with(|| a.name.cmp(&b.name))
        });
        out.push(NodeFate {
            node: node.name.clone(),
            note: node.name.is_none().then(|| UNNAMED_NOTE.to_owned()),
            packets: order
                .iter()
                .filter_map(|&p| node.points.get(p).map(|x| x.packets))
                .collect(),
            points: names,
            flows_total: node_flows.len(),
            flows: node_flows,
        });
    }
    FateReport {
        packets,
        non_ip_packets: non_ip,
        untracked_packets: untracked,
        nodes: out,
        warnings,
        error: None,
    }
}

fn flow_fate(f: &FlowAcc, rank: &[usize], names: &[String]) -> FlowFate {
    let n = names.len();
    let (mut seen, mut lost, mut appeared, mut missed) =
        (vec![0u64; n], vec![0u64; n], vec![0u64; n], vec![0u64; n]);
    for &(mask, count) in &f.patterns {
        let mut ranks: Vec<usize> = (0..64)
            .filter(|b| mask & (1u64 << b) != 0)
            .filter_map(|b| rank.get(b).copied())
            .collect();
        ranks.sort_unstable();
        let (Some(&first), Some(&last)) = (ranks.first(), ranks.last()) else {
            continue;
        };
        for &r in &ranks {
            add(&mut seen, r, count);
        }
        if last + 1 < n {
            add(&mut lost, last, count);
        }
        if first > 0 {
            add(&mut appeared, first, count);
        }
        for r in first + 1..last {
            if ranks.binary_search(&r).is_err() {
                add(&mut missed, r, count);
            }
        }
    }
    let name = f.key.to_string();
    let at = |v: &[u64]| -> Vec<AtPoint> {
        v.iter()
            .zip(names)
            .filter(|(c, _)| **c > 0)
            .map(|(&packets, point)| AtPoint {
                point: point.clone(),
                packets,
            })
            .collect()
    };
    let lost_list: Vec<Lost> = (0..n.saturating_sub(1))
        .filter(|&i| lost.get(i).is_some_and(|&c| c > 0))
        .map(|i| Lost {
            after: names.get(i).cloned().unwrap_or_default(),
            before: names.get(i + 1).cloned().unwrap_or_default(),
            packets: lost.get(i).copied().unwrap_or(0),
            of: seen.get(i).copied().unwrap_or(0),
        })
        .collect();
    let mut ff = FlowFate {
        flow: f.key.clone(),
        packets: seen,
        affected: lost.iter().sum::<u64>() + missed.iter().sum::<u64>(),
        lost: lost_list,
        appeared: at(&appeared),
        missed: at(&missed),
        verdict: String::new(),
        name,
    };
    ff.verdict = verdict(&ff, names, f.patterns.iter().map(|(_, c)| c).sum());
    ff
}

fn add(v: &mut [u64], i: usize, n: u64) {
    if let Some(x) = v.get_mut(i) {
        *x += n;
    }
}
