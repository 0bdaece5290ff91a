//! `diff`: packets of capture A matched to packets of capture B by identity (see
//! [`crate::flow`]), in time order, to count per flow what went missing between the two places
//! and how long the matched packets took.
//!
//! The two captures are read together, merged by timestamp, so memory holds only the packets
//! waiting for a match inside the window (plus one entry per flow). A packet of one side is
//! matched with the oldest waiting packet of the other side with the same flow and identity;
//! without one it waits. When the window has passed (capture time, both files) it is final:
//! "missing from B" for an A packet, "only in B" for a B packet. Duplicates (equal identities)
//! therefore match first with first, second with second. Both captures must share a clock to
//! within the window; delays are B's timestamp minus A's, negative when B's clock is behind.

use std::collections::HashMap;

use crate::Options;
use crate::delay::Delays;
use crate::diff_report::{self, DiffReport};
use crate::flow::{FlowKey, Observation};
use crate::pending::Window;

/// Which capture a packet comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The first file (e.g. the edge node).
    A,
    /// The second file (e.g. the origin).
    B,
}

#[derive(Debug, Default)]
pub(crate) struct FlowAcc {
    pub(crate) in_a: u64,
    pub(crate) in_b: u64,
    pub(crate) matched: u64,
    pub(crate) missing_from_b: u64,
    pub(crate) only_in_b: u64,
    pub(crate) delays: Delays,
}

#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct SideAcc {
    pub(crate) packets: u64,
    pub(crate) non_ip: u64,
}

#[derive(Debug, Clone, Copy)]
struct Waiting {
    side: Side,
    ts: i64,
}

/// Streaming comparison: feed packets of both sides in (roughly) time order, then
/// [`Diff::finish`].
#[derive(Debug)]
pub struct Diff {
    opts: Options,
    flow_index: HashMap<FlowKey, usize>,
    pub(crate) keys: Vec<FlowKey>,
    pub(crate) flows: Vec<FlowAcc>,
    pending: Window<(usize, u64), Waiting>,
    pub(crate) a: SideAcc,
    pub(crate) b: SideAcc,
    pub(crate) overall: Delays,
    pub(crate) untracked: u64,
}

impl Diff {
    /// An empty comparison.
    pub fn new(opts: Options) -> Self {
        Diff {
            pending: Window::new(opts.window_ns, opts.max_pending),
            opts,
            flow_index: HashMap::new(),
            keys: Vec::new(),
            flows: Vec::new(),
            a: SideAcc::default(),
            b: SideAcc::default(),
            overall: Delays::default(),
            untracked: 0,
        }
    }

    /// One packet of `side` at `ts_ns`; `obs` is `None` for frames without an IP packet.
    pub fn packet(&mut self, side: Side, ts_ns: i64, obs: Option<Observation>) {
        let acc = match side {
            Side::A => &mut self.a,
            Side::B => &mut self.b,
        };
        acc.packets += 1;
        let Some(obs) = obs else {
            acc.non_ip += 1;
            return;
        };
        let flows = &mut self.flows;
        self.pending.advance(ts_ns, |(f, _), w| expire(flows, f, w));
        let flow = match self.flow_index.get(&obs.flow) {
            Some(&f) => f,
            None if self.flows.len() < self.opts.max_flows => {
                self.flow_index.insert(obs.flow.clone(), self.flows.len());
                self.keys.push(obs.flow);
                self.flows.push(FlowAcc::default());
                self.flows.len() - 1
            }
            None => {
                self.untracked += 1;
                return;
            }
        };
        let Some(acc) = self.flows.get_mut(flow) else {
            return;
        };
        match side {
            Side::A => acc.in_a += 1,
            Side::B => acc.in_b += 1,
        }
        let key = (flow, obs.ident);
        let other_waits = self.pending.oldest(&key).is_some_and(|w| w.side != side);
        if other_waits {
            if let Some(w) = self.pending.pop_oldest(&key) {
                let delay = match side {
                    Side::B => ts_ns.saturating_sub(w.ts),
                    Side::A => w.ts.saturating_sub(ts_ns),
                };
                acc.matched += 1;
                acc.delays.record(delay);
                self.overall.record(delay);
            }
        } else {
            let flows = &mut self.flows;
            let w = Waiting { side, ts: ts_ns };
            self.pending
                .push(key, ts_ns, w, |(f, _), w| expire(flows, f, w));
        }
    }

    /// The report, flows most affected first. `a_name` and `b_name` label the two sides.
    pub fn finish(mut self, a_name: &str, b_name: &str) -> DiffReport {
        let flows = &mut self.flows;
        self.pending.drain(|(f, _), w| expire(flows, f, w));
        let mut warnings = Vec::new();
        if self.pending.early > 0 {
            warnings.push(format!(
                "{} packets left the matching window early because more than {} were waiting; \
                 their matches, if any, count as missing",
                self.pending.early, self.opts.max_pending
            ));
        }
        if self.untracked > 0 {
            warnings.push(format!(
                "{} packets were not compared: more than {} flows",
                self.untracked, self.opts.max_flows
            ));
        }
        diff_report::build(&self, a_name, b_name, self.opts.window_ns, warnings)
    }
}

fn expire(flows: &mut [FlowAcc], flow: usize, w: Waiting) {
    if let Some(f) = flows.get_mut(flow) {
        match w.side {
            Side::A => f.missing_from_b += 1,
            Side::B => f.only_in_b += 1,
        }
    }
}
