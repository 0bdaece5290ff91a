//! The observer's engine: always-on, cheap observation of a node's traffic between captures.
//!
//! One owned table, like a capture's (`flags owner`: nothing stays behind if the process
//! dies), matching every IP packet at the observer's points: per point a counter of everything
//! that passed (exact packets and bytes) and a random sample, one packet in N (`meta
//! random` below 2^32 / N), logged with a short snaplen to an NFLOG group of the observer's own and read by
//! the same reader as captures. Its rule runs on every packet, so it is kept to three
//! expressions before the sampling rejects a packet: an anonymous counter in the rule
//! ([`Counting::InRule`]: one call fewer per packet than a named counter object, which the
//! observer does not need as it never detaches its chains), `meta random` and its compare
//! (both called directly by nf_tables, no function pointer). Nothing is written to a file: each sample goes to an
//! [`Observation`] (the agent's look-back ring and rollups), and every second the counters'
//! growth per point.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use edgecap_filter::StructuredFilter;
use edgecap_netfilter::{CaptureTable, Counting, RuleSpec};

use crate::batch::{point_index, point_label};
use crate::error::CaptureError;
use crate::points::PointDef;
use crate::run::{bind_group, now_ns, point_rules};
use crate::spec::GroupChoice;

/// One packet in this many is sampled, by default.
pub const DEFAULT_ONE_IN: u32 = 64;
/// Bytes kept of each sampled packet: headers, not payloads.
pub const OBSERVER_SNAPLEN: u32 = 160;
const TICK: Duration = Duration::from_millis(50);

/// What the observer watches.
#[derive(Debug, Clone)]
pub struct ObserverSpec {
    /// The owned table's name (`edgecap_obs_...`).
    pub table: String,
    pub points: Vec<PointDef>,
    /// Sample one packet in this many (1: every packet).
    pub one_in: u32,
    pub snaplen: u32,
    pub group: GroupChoice,
    pub socket_buffer: Option<usize>,
}

/// A sampled packet.
#[derive(Debug, Clone, Copy)]
pub struct ObservedPacket<'a> {
    /// Unix time in nanoseconds (the kernel's, or the read time where it gives none).
    pub ts_ns: u64,
    /// Index of the point in [`ObserverSpec::points`].
    pub point: usize,
    /// The interface it came in on (or went out of), by index; 0 when unknown.
    pub ifindex: u32,
    /// Its length on the wire, from the IP header.
    pub orig_len: u32,
    /// Its first bytes (at most the snaplen).
    pub data: &'a [u8],
}

/// Where observations go.
pub trait Observation {
    /// The table is installed and samples go to `group`.
    fn installed(&mut self, _group: u16) {}
    /// One sampled packet.
    fn sample(&mut self, packet: ObservedPacket<'_>);
    /// Packets and bytes that crossed `point` during unix second `t` (the counters are read
    /// just after each second ends, so this is their growth since the previous read).
    fn totals(&mut self, t: u64, point: usize, packets: u64, bytes: u64);
}

/// What the observer did, when it stops.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ObserverStats {
    pub group: u16,
    pub samples: u64,
    /// Samples the kernel logged that never reached us (sequence gaps).
    pub lost: u64,
    /// Receive-buffer overruns.
    pub overruns: u64,
}

/// Runs the observer until `stop` is set. The group is bound before the table is installed,
/// so a busy group leaves the ruleset untouched; the table goes when this returns (or the
/// process dies).
pub fn observe(
    spec: &ObserverSpec,
    sink: &mut impl Observation,
    stop: &AtomicBool,
) -> Result<ObserverStats, CaptureError> {
    let snaplen = spec.snaplen.min(edgecap_netfilter::nflog::MAX_SNAPLEN);
    let mut reader = bind_group(spec.group, snaplen, spec.socket_buffer)?;
    let group = reader.group();
    // Every IP packet: the empty structured filter.
    let every = StructuredFilter::default()
        .compile()
        .map_err(|e| CaptureError::Observer(e.to_string()))?;
    let rules = RuleSpec {
        filter: &every,
        group,
        snaplen,
        // The counters are exact only when the rule samples (`seen` before the random compare).
        sample_one_in: Some(spec.one_in.max(1)),
        counting: Counting::InRule,
    };
    let mut table = CaptureTable::install(&spec.table, &point_rules(&spec.points), &rules)?;
    tracing::info!(table = %spec.table, group, one_in = spec.one_in, "observer installed");
    sink.installed(group);

    let mut stats = ObserverStats {
        group,
        ..ObserverStats::default()
    };
    let mut next_seq: u32 = 0;
    let mut last = vec![(0u64, 0u64); spec.points.len()];
    // Read just after each wall-clock second ends, so totals and samples of one second meet.
    let mut next_read = Instant::now() + until_next_second();
    let result = loop {
        if stop.load(Ordering::Relaxed) {
            break Ok(());
        }
        match reader.recv(TICK) {
            Ok(true) => {
                let now = now_ns();
                for p in reader.packets() {
                    if let Some(seq) = p.seq {
                        let gap = seq.wrapping_sub(next_seq);
                        if gap < 1 << 31 {
                            stats.lost += u64::from(gap);
                        }
                        next_seq = seq.wrapping_add(1);
                    }
                    let Some(point) = p
                        .prefix
                        .and_then(point_index)
                        .filter(|&i| i < spec.points.len())
                    else {
                        continue;
                    };
                    stats.samples += 1;
                    sink.sample(ObservedPacket {
                        ts_ns: p.timestamp_ns.unwrap_or(now),
                        point,
                        ifindex: p.indev.or(p.outdev).unwrap_or(0),
                        orig_len: edgecap_pcap::orig_len_from_ip(p.payload, p.payload.len()),
                        data: p.payload,
                    });
                }
            }
            Ok(false) => {}
            Err(e) => break Err(CaptureError::from(e)),
        }
        if Instant::now() >= next_read {
            next_read = Instant::now() + until_next_second();
            if let Err(e) = read_totals(&mut table, &mut last, sink) {
                break Err(e);
            }
        }
    };
    stats.overruns = reader.stats().enobufs;
    // The last partial second still counts.
    let tail = read_totals(&mut table, &mut last, sink);
    table.remove()?;
    result.and(tail)?;
    Ok(stats)
}

/// Time until a little after the next whole unix second.
fn until_next_second() -> Duration {
    let into = now_ns() % 1_000_000_000;
    Duration::from_nanos(1_000_000_000 - into) + Duration::from_millis(5)
}

fn read_totals(
    table: &mut CaptureTable,
    last: &mut [(u64, u64)],
    sink: &mut impl Observation,
) -> Result<(), CaptureError> {
    // Just after a second ended: the growth belongs to it.
    let t = (now_ns() / 1_000_000_000).saturating_sub(1);
    for (i, prev) in last.iter_mut().enumerate() {
        let c = table.counters(&point_label(i))?;
        let (packets, bytes) = (
            c.matched - prev.0.min(c.matched),
            c.matched_bytes.saturating_sub(prev.1),
        );
        *prev = (c.matched, c.matched_bytes);
        sink.totals(t, i, packets, bytes);
    }
    Ok(())
}
