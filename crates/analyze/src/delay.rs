//! Delay distributions in bounded memory: exact for the first [`EXACT_SAMPLES`] values, then a
//! log-linear histogram whose buckets are at most 1/2048 of their value wide (HDR-histogram
//! style), so a percentile is within 0.05 % of the true one. Minimum and maximum stay exact.
//! Percentiles use the nearest-rank definition: p50 of 1, 2, 3, 4 is 2.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Values kept exactly before switching to the histogram.
pub const EXACT_SAMPLES: usize = 4096;
/// Values below this are their own bucket; above, 1024 buckets per power of two.
const LINEAR: u64 = 2048;

/// Summary of a delay distribution, in nanoseconds (negative when B's clock is behind A's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DelayStats {
    /// Matched packets.
    pub count: u64,
    /// Smallest delay.
    pub min_ns: i64,
    /// Median.
    pub p50_ns: i64,
    /// 90th percentile.
    pub p90_ns: i64,
    /// 99th percentile.
    pub p99_ns: i64,
    /// Largest delay.
    pub max_ns: i64,
    /// False when percentiles come from the histogram (more than 4096 values).
    pub exact: bool,
}

#[derive(Debug, Default)]
pub(crate) struct Delays {
    exact: Vec<i64>,
    hist: BTreeMap<i64, u64>,
    count: u64,
    min: i64,
    max: i64,
}

impl Delays {
    pub(crate) fn record(&mut self, v: i64) {
        if self.count == 0 {
            (self.min, self.max) = (v, v);
        }
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        self.count += 1;
        if self.hist.is_empty() && self.exact.len() < EXACT_SAMPLES {
            self.exact.push(v);
            return;
        }
        for x in self.exact.drain(..) {
            *self.hist.entry(bucket(x)).or_default() += 1;
        }
        *self.hist.entry(bucket(v)).or_default() += 1;
    }

    pub(crate) fn stats(&self) -> Option<DelayStats> {
        if self.count == 0 {
            return None;
        }
        let exact = self.hist.is_empty();
        let mut sorted = self.exact.clone();
        sorted.sort_unstable();
        let pct = |p: u64| {
            // Nearest rank: the smallest value with at least p% of values at or below it.
            let rank = (self.count * p).div_ceil(100).max(1);
            let v = if exact {
                sorted.get(rank as usize - 1).copied().unwrap_or(self.max)
            } else {
                self.hist_rank(rank)
            };
            v.clamp(self.min, self.max)
        };
        Some(DelayStats {
            count: self.count,
            min_ns: self.min,
            p50_ns: pct(50),
            p90_ns: pct(90),
            p99_ns: pct(99),
            max_ns: self.max,
            exact,
        })
    }

    fn hist_rank(&self, rank: u64) -> i64 {
        let mut seen = 0;
        for (&b, &n) in &self.hist {
            seen += n;
            if seen >= rank {
                return middle(b);
            }
        }
        self.max
    }
}

/// Bucket of a value: sign-symmetric, monotone.
fn bucket(v: i64) -> i64 {
    let b = magnitude_bucket(v.unsigned_abs()) as i64;
    if v < 0 { -b - 1 } else { b }
}

fn magnitude_bucket(u: u64) -> u64 {
    if u < LINEAR {
        return u;
    }
    let shift = 63 - u64::from(u.leading_zeros()) - 10;
    (shift << 10) + (u >> shift)
}

/// The middle of a bucket's range.
fn middle(b: i64) -> i64 {
    if b < 0 {
        return -middle(-b - 1);
    }
    let b = b as u64;
    if b < LINEAR {
        return b as i64;
    }
    let shift = (b >> 10) - 1;
    let mant = b - (shift << 10);
    let low = mant << shift;
    i64::try_from(low + (1u64 << shift) / 2).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles_exact() {
        let mut d = Delays::default();
        for v in [4, 1, 3, 2] {
            d.record(v);
        }
        let s = d.stats().unwrap();
        assert_eq!(
            (s.min_ns, s.p50_ns, s.p90_ns, s.p99_ns, s.max_ns),
            (1, 2, 4, 4, 4)
        );
        assert!(s.exact);
        assert!(Delays::default().stats().is_none());
    }

    #[test]
    fn histogram_is_within_a_twentieth_of_a_percent() {
        let mut d = Delays::default();
        // 1..=100_000 µs: p50 = 50 ms, p90 = 90 ms, p99 = 99 ms.
        for i in 1..=100_000i64 {
            d.record(i * 1000);
        }
        let s = d.stats().unwrap();
        assert!(!s.exact);
        assert_eq!((s.min_ns, s.max_ns, s.count), (1000, 100_000_000, 100_000));
        for (got, want) in [
            (s.p50_ns, 50_000_000),
            (s.p90_ns, 90_000_000),
            (s.p99_ns, 99_000_000),
        ] {
            let err = (got - want).abs() as f64 / want as f64;
            assert!(err < 0.0005, "{got} vs {want}");
        }
    }

    #[test]
    fn buckets_are_monotone_across_signs_and_scales() {
        let values = [
            i64::MIN,
            -5_000_000,
            -2048,
            -2047,
            -1,
            0,
            1,
            2047,
            2048,
            3071,
            3072,
            1 << 40,
            i64::MAX,
        ];
        for w in values.windows(2) {
            assert!(bucket(w[0]) <= bucket(w[1]), "{w:?}");
            let (lo, hi) = (middle(bucket(w[0])), middle(bucket(w[1])));
            assert!(lo <= hi, "{w:?}");
        }
        for v in [5_000_000i64, -5_000_000, 123_456_789] {
            let err = (middle(bucket(v)) - v).abs() as f64 / v.abs() as f64;
            assert!(err <= 1.0 / 2048.0, "{v}");
        }
    }
}
