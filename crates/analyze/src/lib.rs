//! Where packets stopped: per-flow fate across the capture points of a multi-point capture,
//! and a packet-level diff of two captures taken at different places. Pure: reads only the
//! [`edgecap_pcap::read::Reader`]s it is handed, writes nothing; memory is bounded by the
//! number of flows and the packets inside one matching window, never by file size.
//!
//! Modules:
//! - [`flow`]: [`FlowKey`] (version, protocol, addresses, ports or ICMP type/id) and a
//!   packet's identity, the hash of fields no router changes ([`inspect`]).
//! - `points`: `<node>/<point>` interface names and the pipeline order of points.
//! - `pending`: the matching window (time and size limits) shared by both analyses.
//! - `delay`: delay distributions, exact up to 4096 values, then a 0.05 % histogram.
//! - [`fate`] / `fate_report`: [`Fate`], the streaming per-point analysis, and its
//!   [`FateReport`].
//! - [`diff`] / `diff_report`: [`Diff`], the streaming A-to-B matcher, and its [`DiffReport`].
//! - `drive`: [`fate()`](crate::run_fate) and [`diff()`](crate::run_diff) over readers.
//! - `verdict`: the fate sentence of a flow.
//! - `render`: the text forms ([`fate_text`], [`diff_text`]).

mod delay;
pub mod diff;
mod diff_report;
mod drive;
pub mod fate;
mod fate_report;
pub mod flow;
mod pending;
mod points;
mod render;
mod verdict;

pub use delay::{DelayStats, EXACT_SAMPLES};
pub use diff::{Diff, Side};
pub use diff_report::{DiffReport, FlowDiff, SideSummary};
pub use drive::{diff as run_diff, fate as run_fate};
pub use fate::{Fate, MAX_POINTS_PER_NODE};
pub use fate_report::{AtPoint, FateReport, FlowFate, Lost, NodeFate};
pub use flow::{FlowKey, Observation, inspect};
pub use render::{diff_text, duration, fate_text};

/// Default matching window: 10 s of capture time.
pub const DEFAULT_WINDOW_NS: i64 = 10_000_000_000;
/// Default limit of packets waiting for a match (about 100 MB at worst).
pub const DEFAULT_MAX_PENDING: usize = 1 << 20;
/// Default limit of flows tracked; packets of further flows are counted, not analysed.
pub const DEFAULT_MAX_FLOWS: usize = 1_000_000;

/// Limits shared by both analyses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// How long (capture time) a packet waits for its match at the next point or in the
    /// other file before it counts as missing.
    pub window_ns: i64,
    /// Most packets waiting at once; beyond, the oldest stop waiting early (reported).
    pub max_pending: usize,
    /// Most flows tracked; beyond, packets of new flows are only counted (reported).
    pub max_flows: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            window_ns: DEFAULT_WINDOW_NS,
            max_pending: DEFAULT_MAX_PENDING,
            max_flows: DEFAULT_MAX_FLOWS,
        }
    }
}
