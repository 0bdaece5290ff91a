//! The look-back ring: sampled packet headers in memory, bounded by a byte cap, answering for
//! at least its reach (24 h by default, Cloudflare's look-back window) however much traffic
//! arrives.
//!
//! Samples are kept in periods of `period_secs` each. When the ring is over its cap it thins
//! one period: it keeps the half of its samples whose random tag is lowest (a subset of what
//! it kept before, so repeated thinning never biases towards any traffic) and doubles the
//! period's effective sampling rate. The period thinned is the one with the most age per
//! density (age / 2^level), so density falls with age: recent periods stay at the observer's
//! rate, and a day-old one may be at 1 in 64 x 1024. Periods older than the reach are dropped.
//! Every answer says the effective rate of each period it covers.
//!
//! Packet bytes live only here, in memory (nothing is written to disk), and at most
//! [`RingConfig::snaplen`] bytes of each packet are kept.

use std::collections::VecDeque;

/// How big and how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingConfig {
    /// Most bytes the ring holds, its bookkeeping included.
    pub cap_bytes: usize,
    /// How far back it must answer.
    pub reach_secs: u64,
    /// Length of one period, the unit of thinning.
    pub period_secs: u64,
    /// Bytes kept of each packet.
    pub snaplen: usize,
}

/// 128 MiB.
pub const DEFAULT_CAP_BYTES: usize = 128 << 20;
/// Cloudflare's look-back window.
pub const DEFAULT_REACH_SECS: u64 = 24 * 3600;
pub const DEFAULT_PERIOD_SECS: u64 = 60;
pub const DEFAULT_SNAPLEN: usize = 160;

/// Bytes a period costs besides its samples (its header and allocations' slack).
const PERIOD_OVERHEAD: usize = 256;
/// The deepest thinning: 2^24 times the observer's rate.
const MAX_LEVEL: u8 = 24;

impl Default for RingConfig {
    fn default() -> Self {
        RingConfig {
            cap_bytes: DEFAULT_CAP_BYTES,
            reach_secs: DEFAULT_REACH_SECS,
            period_secs: DEFAULT_PERIOD_SECS,
            snaplen: DEFAULT_SNAPLEN,
        }
    }
}

/// A configuration the ring cannot honour; the message names the setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RingConfigError {
    #[error(
        "ring_cap: {cap} bytes cannot hold {periods} periods of look-back; at least {min} bytes"
    )]
    CapTooSmall {
        cap: usize,
        periods: u64,
        min: usize,
    },
    #[error("ring_period: must be 1 to 3600 seconds and at most the reach")]
    Period,
    #[error("ring_snaplen: must be 40 to 65535 bytes")]
    Snaplen,
}

impl RingConfig {
    /// Periods the reach spans (plus the one being filled).
    pub fn periods(&self) -> u64 {
        self.reach_secs.div_ceil(self.period_secs.max(1)) + 1
    }

    /// Refuses settings under which the ring could not keep its reach within its cap: every
    /// period needs room for its bookkeeping and a few samples.
    pub fn check(&self) -> Result<(), RingConfigError> {
        if self.period_secs == 0 || self.period_secs > 3600 || self.period_secs > self.reach_secs {
            return Err(RingConfigError::Period);
        }
        if !(40..=65_535).contains(&self.snaplen) {
            return Err(RingConfigError::Snaplen);
        }
        let per_period = PERIOD_OVERHEAD + 8 * (ENTRY_BYTES + self.snaplen);
        let min = usize::try_from(self.periods())
            .unwrap_or(usize::MAX)
            .saturating_mul(per_period);
        if self.cap_bytes < min {
            return Err(RingConfigError::CapTooSmall {
                cap: self.cap_bytes,
                periods: self.periods(),
                min,
            });
        }
        Ok(())
    }
}

/// What is known of a sampled packet besides its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleMeta {
    /// Unix time in nanoseconds.
    pub ts_ns: u64,
    /// The packet's length on the wire (IP header included), before truncation.
    pub orig_len: u32,
    /// Index of the capture point in the observer's list.
    pub point: u16,
    /// Index of the interface in the observer's list.
    pub iface: u16,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    meta: SampleMeta,
    tag: u32,
    off: u32,
    len: u16,
}

const ENTRY_BYTES: usize = std::mem::size_of::<Entry>();

#[derive(Debug)]
struct Period {
    start_s: u64,
    level: u8,
    entries: Vec<Entry>,
    bytes: Vec<u8>,
}

impl Period {
    fn new(start_s: u64) -> Period {
        Period {
            start_s,
            level: 0,
            entries: Vec::new(),
            bytes: Vec::new(),
        }
    }

    fn cost(&self) -> usize {
        PERIOD_OVERHEAD + self.entries.capacity() * ENTRY_BYTES + self.bytes.capacity()
    }

    /// Keeps the samples whose tag is under the next level's threshold, compactly.
    fn thin(&mut self) {
        self.level += 1;
        let keep = threshold(self.level);
        let kept = self.entries.iter().filter(|e| e.tag < keep).count();
        let mut entries = Vec::with_capacity(kept);
        let mut bytes = Vec::with_capacity(
            self.entries
                .iter()
                .filter(|e| e.tag < keep)
                .map(|e| usize::from(e.len))
                .sum(),
        );
        for e in self.entries.iter().filter(|e| e.tag < keep) {
            let data = &self.bytes[e.off as usize..e.off as usize + usize::from(e.len)];
            entries.push(Entry {
                off: u32::try_from(bytes.len()).unwrap_or(u32::MAX),
                ..*e
            });
            bytes.extend_from_slice(data);
        }
        self.entries = entries;
        self.bytes = bytes;
    }
}

/// Samples with a tag below this are kept at `level`.
fn threshold(level: u8) -> u32 {
    match level {
        0 => u32::MAX,
        l => u32::MAX >> l.min(32),
    }
}

/// A period an answer covers and the rate its samples stand for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PeriodRate {
    /// Unix seconds, inclusive.
    pub start: u64,
    /// Unix seconds, exclusive.
    pub end: u64,
    /// Each sample stands for this many packets: the observer's 1-in-N times the thinning.
    pub one_in: u64,
}

/// One sample as the ring answers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample<'a> {
    pub meta: SampleMeta,
    /// The first bytes of the IP packet (at most the snaplen).
    pub data: &'a [u8],
    /// Packets this sample stands for.
    pub one_in: u64,
}

/// The ring. Not thread-safe by itself; the observer owns it behind one lock.
#[derive(Debug)]
pub struct Ring {
    config: RingConfig,
    /// The observer's sampling rate (1 in N) that level 0 stands for.
    base_one_in: u64,
    periods: VecDeque<Period>,
    used: usize,
    rng: u64,
    thinned: u64,
}

impl Ring {
    /// An empty ring; `config` must have passed [`RingConfig::check`].
    pub fn new(config: RingConfig, base_one_in: u64, seed: u64) -> Ring {
        Ring {
            config,
            base_one_in: base_one_in.max(1),
            periods: VecDeque::new(),
            used: 0,
            rng: seed | 1,
            thinned: 0,
        }
    }

    pub fn config(&self) -> &RingConfig {
        &self.config
    }

    /// The observer's rate (1 in N) that unthinned periods stand for.
    pub fn base_one_in(&self) -> u64 {
        self.base_one_in
    }

    /// Bytes held, bookkeeping included; never above the cap after an insert returns.
    pub fn used_bytes(&self) -> usize {
        self.used
    }

    /// Samples held.
    pub fn len(&self) -> usize {
        self.periods.iter().map(|p| p.entries.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.periods.iter().all(|p| p.entries.is_empty())
    }

    /// How many times a period was thinned since the start.
    pub fn thinned(&self) -> u64 {
        self.thinned
    }

    /// The oldest time (unix seconds) the ring answers for; None when empty.
    pub fn reach_start(&self) -> Option<u64> {
        self.periods.front().map(|p| p.start_s)
    }

    fn next_tag(&mut self) -> u32 {
        // xorshift64*: cheap, and good enough to pick which half of a period survives.
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) as u32
    }

    /// Adds a sample: its first `snaplen` bytes are kept. Samples older than the reach are
    /// ignored. Afterwards the ring is within its cap again.
    pub fn insert(&mut self, meta: SampleMeta, packet: &[u8]) {
        let secs = meta.ts_ns / 1_000_000_000;
        let start = secs - secs % self.config.period_secs;
        let newest = self.periods.back().map_or(start, |p| p.start_s.max(start));
        if start + self.config.reach_secs + self.config.period_secs <= newest {
            return;
        }
        let idx = match self.periods.binary_search_by_key(&start, |p| p.start_s) {
            Ok(i) => i,
            Err(i) => {
                self.periods.insert(i, Period::new(start));
                self.used += PERIOD_OVERHEAD;
                i
            }
        };
        let tag = self.next_tag();
        let period = &mut self.periods[idx];
        if tag < threshold(period.level) {
            let data = &packet[..packet.len().min(self.config.snaplen)];
            let before = period.cost();
            grow(&mut period.entries, 1);
            grow(&mut period.bytes, data.len());
            period.entries.push(Entry {
                meta,
                tag,
                off: u32::try_from(period.bytes.len()).unwrap_or(u32::MAX),
                len: u16::try_from(data.len()).unwrap_or(u16::MAX),
            });
            period.bytes.extend_from_slice(data);
            self.used = self.used - before + period.cost();
        }
        self.expire();
        while self.used > self.config.cap_bytes && self.thin_one() {}
    }

    /// Drops periods wholly older than the reach.
    fn expire(&mut self) {
        let Some(newest) = self.periods.back().map(|p| p.start_s) else {
            return;
        };
        while let Some(front) = self.periods.front() {
            if front.start_s + self.config.reach_secs + self.config.period_secs > newest {
                break;
            }
            self.used -= front.cost();
            self.periods.pop_front();
        }
    }

    /// Thins the period with the most age per density; false when none can be thinned.
    fn thin_one(&mut self) -> bool {
        let Some(newest) = self.periods.back().map(|p| p.start_s) else {
            return false;
        };
        let period = self.config.period_secs;
        let victim = self
            .periods
            .iter()
            .enumerate()
            .filter(|(_, p)| p.level < MAX_LEVEL && !p.entries.is_empty())
            // age / 2^level, compared without division; ties go to the older period.
            .max_by(|(ia, a), (ib, b)| {
                let score =
                    |p: &Period| u128::from(newest - p.start_s + period) << (MAX_LEVEL - p.level);
                score(a).cmp(&score(b)).then(ib.cmp(ia))
            })
            .map(|(i, _)| i);
        let Some(i) = victim else {
            // Nothing left to thin (a cap below what `check` asks): give up the oldest.
            return match self.periods.pop_front() {
                Some(p) => {
                    self.used -= p.cost();
                    true
                }
                None => false,
            };
        };
        let p = &mut self.periods[i];
        let before = p.cost();
        p.thin();
        self.used = self.used - before + p.cost();
        self.thinned += 1;
        true
    }

    /// The periods overlapping `[from_s, to_s)` with their effective rates, oldest first.
    pub fn periods(&self, from_s: u64, to_s: u64) -> Vec<PeriodRate> {
        self.periods
            .iter()
            .filter(|p| p.start_s < to_s && p.start_s + self.config.period_secs > from_s)
            .map(|p| PeriodRate {
                start: p.start_s,
                end: p.start_s + self.config.period_secs,
                one_in: self.base_one_in << p.level,
            })
            .collect()
    }

    /// Samples with `from_ns <= ts < to_ns`, oldest period first (in arrival order within a
    /// period).
    pub fn samples(&self, from_ns: u64, to_ns: u64) -> impl Iterator<Item = Sample<'_>> + '_ {
        let period_ns = self.config.period_secs * 1_000_000_000;
        self.periods
            .iter()
            .filter(move |p| {
                let start = p.start_s * 1_000_000_000;
                start < to_ns && start + period_ns > from_ns
            })
            .flat_map(move |p| {
                let one_in = self.base_one_in << p.level;
                p.entries
                    .iter()
                    .filter(move |e| (from_ns..to_ns).contains(&e.meta.ts_ns))
                    .map(move |e| Sample {
                        meta: e.meta,
                        data: &p.bytes[e.off as usize..e.off as usize + usize::from(e.len)],
                        one_in,
                    })
            })
    }
}

/// Reserves room for `extra` more items in steps of an eighth, so the slack an allocation
/// leaves is small and counted.
fn grow<T>(v: &mut Vec<T>, extra: usize) {
    if v.capacity() - v.len() >= extra {
        return;
    }
    let step = (v.len() / 8).max(extra).max(64);
    v.reserve_exact(step);
}

#[cfg(test)]
#[path = "ring_tests.rs"]
mod tests;
