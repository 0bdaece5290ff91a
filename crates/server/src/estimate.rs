//! Size estimates before a capture starts (issue 12 item 5), the arithmetic only: from what
//! each node's ring says matched the filter over a recent window, the expected packets/s,
//! bytes/s, file size, which limit ends the capture and when, with a confidence range.
//! `api/estimate.rs` asks the nodes (`hub/lookback.rs`) and calls here; no I/O.
//!
//! - rates: the packets and bytes the matching samples stand for (each times its period's
//!   1-in-N), over the window the ring covers (`to - max(from, reach_start)`);
//! - captured bytes: `min(bytes, packets × snaplen)` (the agents truncate to the snaplen;
//!   per-packet truncation is approximated by the mean);
//! - file size: captured bytes plus [`RECORD_OVERHEAD`] per packet (a pcapng enhanced
//!   packet block's header and trailer);
//! - the range: 95 % Poisson bounds from `n`, the number of matching samples: `±1.96·√n`
//!   samples, i.e. the rates times `1 ± 1.96/√n`; with no match, from 0 to 3 samples' worth
//!   (the 95 % upper bound for a count of 0), assuming 1,500-byte packets for bytes;
//! - the end: per node, the earliest of the time limit and the time its share of the packet
//!   and byte limits (split as a capture splits them) takes at the expected rate; the
//!   capture ends when its last node does.

use edgecap_model::lookback::PeriodRate;
use edgecap_observe::margin;
use serde::Serialize;

/// Bytes a pcapng file spends per packet besides the packet's bytes.
pub const RECORD_OVERHEAD: u64 = 32;

/// Packet size assumed for the upper bound when nothing matched.
const ASSUMED_PACKET: f64 = 1500.0;

/// What the capture would ask of one node.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    pub time_limit: f64,
    pub packet_limit: Option<u64>,
    pub byte_limit: Option<u64>,
    pub snaplen: u64,
}

/// What a node's ring said about the window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    /// Matching samples.
    pub matched: u64,
    pub est_packets: u64,
    pub est_bytes: u64,
    pub periods: Vec<PeriodRate>,
    /// Seconds of the window the ring covers (at least a fraction above 0).
    pub seconds: f64,
}

/// A value and its 95 % range.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Ranged {
    pub expected: f64,
    pub low: f64,
    pub high: f64,
}

impl Ranged {
    fn scale(self, k: f64) -> Ranged {
        Ranged {
            expected: self.expected * k,
            low: self.low * k,
            high: self.high * k,
        }
    }

    fn add(self, o: Ranged) -> Ranged {
        Ranged {
            expected: self.expected + o.expected,
            low: self.low + o.low,
            high: self.high + o.high,
        }
    }

    const ZERO: Ranged = Ranged {
        expected: 0.0,
        low: 0.0,
        high: 0.0,
    };
}

/// Which limit ends a capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EndsBy {
    TimeLimit,
    PacketLimit,
    ByteLimit,
}

/// The estimate for one node or the total.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Estimate {
    pub packets_per_second: Ranged,
    /// Captured bytes per second (each packet at most the snaplen).
    pub bytes_per_second: Ranged,
    /// The file at the end of the capture (records included).
    pub file_bytes: Ranged,
    pub packets: Ranged,
    /// Which limit ends it at the expected rate, and after how many seconds.
    pub ends_by: EndsBy,
    pub ends_after_seconds: f64,
    /// The samples the estimate rests on.
    pub matched_samples: u64,
}

/// The estimate for one node from what its ring observed, under its share of the limits.
pub fn node(o: &Observed, l: &Limits) -> Estimate {
    let secs = o.seconds.max(1e-3);
    let pps = o.est_packets as f64 / secs;
    let captured = (o.est_bytes as f64).min(o.est_packets as f64 * l.snaplen as f64);
    let bps = captured / secs;
    let (pps, bps) = if o.matched == 0 {
        // Nothing matched: 0 expected, at most 3 samples' worth (95 %).
        let one_in = o.periods.iter().map(|p| p.one_in).max().unwrap_or(1) as f64;
        let hi = margin::NONE_SEEN * one_in / secs;
        (
            Ranged {
                expected: 0.0,
                low: 0.0,
                high: hi,
            },
            Ranged {
                expected: 0.0,
                low: 0.0,
                high: hi * ASSUMED_PACKET.min(l.snaplen as f64),
            },
        )
    } else {
        let rel = margin::relative(o.matched);
        let range = |x: f64| Ranged {
            expected: x,
            low: (x * (1.0 - rel)).max(0.0),
            high: x * (1.0 + rel),
        };
        (range(pps), range(bps))
    };
    // The end at the expected rate.
    let mut ends_by = EndsBy::TimeLimit;
    let mut after = l.time_limit;
    if let Some(p) = l.packet_limit
        && pps.expected > 0.0
        && (p as f64 / pps.expected) < after
    {
        ends_by = EndsBy::PacketLimit;
        after = p as f64 / pps.expected;
    }
    if let Some(b) = l.byte_limit
        && bps.expected > 0.0
        && (b as f64 / bps.expected) < after
    {
        ends_by = EndsBy::ByteLimit;
        after = b as f64 / bps.expected;
    }
    // Packets and bytes captured by then, each bound by the limits.
    let cap = |r: Ranged, limit: Option<u64>| {
        let c = |x: f64| limit.map_or(x, |l| x.min(l as f64));
        Ranged {
            expected: c(r.expected),
            low: c(r.low),
            high: c(r.high),
        }
    };
    // Each bound is taken over the whole time limit, then capped by the limits, so a low
    // rate is not credited with the early end of the expected one.
    let packets = cap(pps.scale(l.time_limit), l.packet_limit);
    let packets = Ranged {
        expected: (pps.expected * after).min(packets.expected),
        ..packets
    };
    let bytes = cap(bps.scale(l.time_limit), l.byte_limit);
    let bytes = Ranged {
        expected: (bps.expected * after).min(bytes.expected),
        ..bytes
    };
    let file_bytes = bytes.add(packets.scale(RECORD_OVERHEAD as f64));
    Estimate {
        packets_per_second: pps,
        bytes_per_second: bps,
        file_bytes,
        packets,
        ends_by,
        ends_after_seconds: after,
        matched_samples: o.matched,
    }
}

/// The capture's total over the nodes' estimates: rates and sizes add up, bounds too (a
/// conservative range); it ends when its last node does. None without any estimate.
pub fn total(nodes: &[&Estimate]) -> Option<Estimate> {
    let last = nodes
        .iter()
        .max_by(|a, b| a.ends_after_seconds.total_cmp(&b.ends_after_seconds))?;
    let sum = |f: fn(&Estimate) -> Ranged| nodes.iter().fold(Ranged::ZERO, |acc, e| acc.add(f(e)));
    Some(Estimate {
        packets_per_second: sum(|e| e.packets_per_second),
        bytes_per_second: sum(|e| e.bytes_per_second),
        file_bytes: sum(|e| e.file_bytes),
        packets: sum(|e| e.packets),
        ends_by: last.ends_by,
        ends_after_seconds: last.ends_after_seconds,
        matched_samples: nodes.iter().map(|e| e.matched_samples).sum(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observed(matched: u64, one_in: u64, len: u64, seconds: f64) -> Observed {
        Observed {
            matched,
            est_packets: matched * one_in,
            est_bytes: matched * one_in * len,
            periods: vec![PeriodRate {
                start: 0,
                end: 60,
                one_in,
            }],
            seconds,
        }
    }

    const LIMITS: Limits = Limits {
        time_limit: 30.0,
        packet_limit: None,
        byte_limit: None,
        snaplen: 65_531,
    };

    #[test]
    fn rates_come_from_the_samples_times_their_rate_over_the_window() {
        // 100 samples at 1 in 8 over 10 s: 80 packets/s of 1,000 bytes.
        let e = node(&observed(100, 8, 1000, 10.0), &LIMITS);
        assert_eq!(e.packets_per_second.expected, 80.0);
        assert_eq!(e.bytes_per_second.expected, 80_000.0);
        assert_eq!(e.ends_by, EndsBy::TimeLimit);
        assert_eq!(e.ends_after_seconds, 30.0);
        assert_eq!(e.packets.expected, 2400.0);
        assert_eq!(e.file_bytes.expected, 2400.0 * 1032.0);
        // ±1.96/√100 = ±19.6 %.
        assert!((e.packets_per_second.low - 80.0 * 0.804).abs() < 1e-9);
        assert!((e.packets_per_second.high - 80.0 * 1.196).abs() < 1e-9);
    }

    #[test]
    fn the_snaplen_truncates_the_captured_bytes() {
        let l = Limits {
            snaplen: 100,
            ..LIMITS
        };
        let e = node(&observed(100, 1, 1000, 10.0), &l);
        assert_eq!(e.bytes_per_second.expected, 1000.0);
        assert_eq!(e.file_bytes.expected, 300.0 * 132.0);
    }

    #[test]
    fn the_earliest_limit_ends_the_capture() {
        let l = Limits {
            packet_limit: Some(100),
            byte_limit: Some(1_000_000),
            ..LIMITS
        };
        // 10 packets/s: the packet limit after 10 s.
        let e = node(&observed(100, 1, 1000, 10.0), &l);
        assert_eq!(
            (e.ends_by, e.ends_after_seconds),
            (EndsBy::PacketLimit, 10.0)
        );
        assert_eq!(e.packets.expected, 100.0);
        assert_eq!(e.packets.high, 100.0, "never more than the limit");
        // 100 packets/s of 1,000 bytes: 100 packets after 1 s, 1 MB only after 10 s.
        let e = node(&observed(1000, 1, 1000, 10.0), &l);
        assert_eq!(
            (e.ends_by, e.ends_after_seconds),
            (EndsBy::PacketLimit, 1.0)
        );
        let l = Limits {
            byte_limit: Some(50_000),
            ..LIMITS
        };
        let e = node(&observed(1000, 1, 1000, 10.0), &l);
        assert_eq!((e.ends_by, e.ends_after_seconds), (EndsBy::ByteLimit, 0.5));
    }

    #[test]
    fn nothing_matched_gives_zero_with_an_upper_bound() {
        let e = node(&observed(0, 64, 0, 60.0), &LIMITS);
        assert_eq!(e.packets_per_second.expected, 0.0);
        assert_eq!(e.packets_per_second.high, 3.0 * 64.0 / 60.0);
        assert_eq!(e.ends_by, EndsBy::TimeLimit);
    }

    #[test]
    fn the_total_adds_nodes_and_ends_with_the_last() {
        let l = Limits {
            packet_limit: Some(100),
            ..LIMITS
        };
        let a = node(&observed(1000, 1, 100, 10.0), &l);
        let b = node(&observed(10, 1, 100, 10.0), &l);
        let t = total(&[&a, &b]).unwrap();
        assert_eq!(t.packets_per_second.expected, 101.0);
        assert_eq!((t.ends_by, t.ends_after_seconds), (EndsBy::TimeLimit, 30.0));
        assert_eq!(t.matched_samples, 1010);
        assert_eq!(total(&[]), None);
    }
}
