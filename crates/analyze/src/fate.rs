//! `fate`: for a multi-point capture, count each flow's packets per (node, point) and say where
//! they stopped appearing.
//!
//! Packets are matched individually across a node's points by identity (see [`crate::flow`]):
//! each arrival at a point joins the oldest waiting instance of the same identity that has not
//! been seen at that point yet, or starts a new instance. An instance is final once the
//! matching window has passed (capture time) or at the end; its set of points is then tallied
//! per flow. At the end the tallies are read in pipeline order: an instance whose last point is
//! not the node's last point was lost after it; one whose first point is not the first
//! appeared there; one missing at a point between its first and last was missed there
//! (capture loss at that point, or a path that bypasses it).

use std::collections::HashMap;

use edgecap_pcap::read::InterfaceInfo;

use crate::Options;
use crate::fate_report::{self, FateReport};
use crate::flow::{FlowKey, Observation};
use crate::pending::Window;
use crate::points::{self, Position};

/// Points one node may have: instance point sets are 64-bit masks.
pub const MAX_POINTS_PER_NODE: usize = 64;

#[derive(Debug)]
pub(crate) struct PointAcc {
    pub(crate) name: String,
    pub(crate) position: Option<Position>,
    pub(crate) packets: u64,
    pub(crate) non_ip: u64,
}

#[derive(Debug)]
pub(crate) struct NodeAcc {
    /// `None` for the interfaces not named `<node>/<point>`.
    pub(crate) name: Option<String>,
    pub(crate) points: Vec<PointAcc>,
}

#[derive(Debug)]
pub(crate) struct FlowAcc {
    pub(crate) node: usize,
    pub(crate) key: FlowKey,
    /// (point mask, instances) of final instances.
    pub(crate) patterns: Vec<(u64, u64)>,
}

impl FlowAcc {
    fn tally(&mut self, mask: u64) {
        match self.patterns.iter_mut().find(|(m, _)| *m == mask) {
            Some((_, n)) => *n += 1,
            None => self.patterns.push((mask, 1)),
        }
    }
}

/// Streaming fate analysis: feed interfaces and packets in file order, then [`Fate::finish`].
#[derive(Debug)]
pub struct Fate {
    opts: Options,
    nodes: Vec<NodeAcc>,
    /// Reader interface index -> (node, point); `None` past the per-node point limit.
    ifaces: Vec<Option<(usize, usize)>>,
    flow_index: HashMap<(usize, FlowKey), usize>,
    flows: Vec<FlowAcc>,
    /// Key: (flow, identity); value: the instance's point mask.
    pending: Window<(usize, u64), u64>,
    packets: u64,
    non_ip: u64,
    untracked: u64,
    dropped_points: Vec<String>,
}

impl Fate {
    /// An empty analysis.
    pub fn new(opts: Options) -> Self {
        Fate {
            pending: Window::new(opts.window_ns, opts.max_pending),
            opts,
            nodes: Vec::new(),
            ifaces: Vec::new(),
            flow_index: HashMap::new(),
            flows: Vec::new(),
            packets: 0,
            non_ip: 0,
            untracked: 0,
            dropped_points: Vec::new(),
        }
    }

    /// Declares an interface; call for each interface before its first packet (again is fine).
    pub fn interface(&mut self, info: &InterfaceInfo) {
        let index = info.index as usize;
        if index < self.ifaces.len() {
            return;
        }
        let (node_name, point_name) = match points::split(&info.name) {
            Some((n, p)) => (Some(n.to_owned()), p.to_owned()),
            None => (None, info.name.clone()),
        };
        let node = match self.nodes.iter().position(|n| n.name == node_name) {
            Some(i) => i,
            None => {
                self.nodes.push(NodeAcc {
                    name: node_name,
                    points: Vec::new(),
                });
                self.nodes.len() - 1
            }
        };
        let Some(acc) = self.nodes.get_mut(node) else {
            return;
        };
        let point = match acc.points.iter().position(|p| p.name == point_name) {
            Some(p) => Some(p),
            None if acc.points.len() < MAX_POINTS_PER_NODE => {
                acc.points.push(PointAcc {
                    position: points::position(&point_name, info.description.as_deref()),
                    name: point_name,
                    packets: 0,
                    non_ip: 0,
                });
                Some(acc.points.len() - 1)
            }
            None => {
                self.dropped_points.push(info.name.clone());
                None
            }
        };
        self.ifaces.resize(index, None);
        self.ifaces.push(point.map(|p| (node, p)));
    }

    /// One packet on interface `iface` at `ts_ns`; `obs` is `None` for frames without an IP
    /// packet.
    pub fn packet(&mut self, iface: u32, ts_ns: i64, obs: Option<Observation>) {
        self.packets += 1;
        let Some(&Some((node, point))) = self.ifaces.get(iface as usize) else {
            self.untracked += 1;
            return;
        };
        let Some(p) = self
            .nodes
            .get_mut(node)
            .and_then(|n| n.points.get_mut(point))
        else {
            return;
        };
        p.packets += 1;
        let Some(obs) = obs else {
            p.non_ip += 1;
            self.non_ip += 1;
            return;
        };
        let flows = &mut self.flows;
        self.pending
            .advance(ts_ns, |(f, _), mask| tally(flows, f, mask));
        let flow = match self.flow_index.get(&(node, obs.flow.clone())) {
            Some(&f) => f,
            None if self.flows.len() < self.opts.max_flows => {
                self.flow_index
                    .insert((node, obs.flow.clone()), self.flows.len());
                self.flows.push(FlowAcc {
                    node,
                    key: obs.flow,
                    patterns: Vec::new(),
                });
                self.flows.len() - 1
            }
            None => {
                self.untracked += 1;
                return;
            }
        };
        let bit = 1u64 << point;
        let key = (flow, obs.ident);
        match self.pending.find_mut(&key, |mask| mask & bit == 0) {
            Some(mask) => *mask |= bit,
            None => {
                let flows = &mut self.flows;
                self.pending
                    .push(key, ts_ns, bit, |(f, _), mask| tally(flows, f, mask));
            }
        }
    }

    /// The report, flows most affected first.
    pub fn finish(mut self) -> FateReport {
        let flows = &mut self.flows;
        self.pending.drain(|(f, _), mask| tally(flows, f, mask));
        let mut warnings = Vec::new();
        if self.pending.early > 0 {
            warnings.push(format!(
                "{} packets left the matching window early because more than {} were waiting; \
                 they may show as lost",
                self.pending.early, self.opts.max_pending
            ));
        }
        if self.untracked > 0 {
            warnings.push(format!(
                "{} packets were not analysed: more than {} flows, or more than {} points on \
                 one node",
                self.untracked, self.opts.max_flows, MAX_POINTS_PER_NODE
            ));
        }
        for name in &self.dropped_points {
            warnings.push(format!(
                "interface {name:?} ignored: too many points on its node"
            ));
        }
        fate_report::build(
            &self.nodes,
            &self.flows,
            self.packets,
            self.non_ip,
            self.untracked,
            warnings,
        )
    }
}

fn tally(flows: &mut [FlowAcc], flow: usize, mask: u64) {
    if let Some(f) = flows.get_mut(flow) {
        f.tally(mask);
    }
}
