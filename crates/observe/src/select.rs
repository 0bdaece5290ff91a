//! Answering a look-back question from the ring: which samples of a window match a filter,
//! how much traffic they stand for, and (when more match than may be returned) which are kept.

use crate::ring::{PeriodRate, Ring, SampleMeta};

/// A sample taken out of the ring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taken {
    pub meta: SampleMeta,
    pub data: Vec<u8>,
    /// Packets it stood for in the ring (the observer's rate times its period's thinning).
    pub one_in: u64,
}

/// What matched in a window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selection {
    /// At most the limit, in time order (arrival order within a period).
    pub samples: Vec<Taken>,
    /// Samples that matched, kept or not.
    pub matched: u64,
    /// Packets and bytes the matching samples stand for (each times its rate).
    pub est_packets: u64,
    pub est_bytes: u64,
    /// The periods the window covers, with their rates.
    pub periods: Vec<PeriodRate>,
    /// When more matched than the limit: each kept sample stands for this many matching
    /// samples (`matched / kept`); 1.0 otherwise.
    pub thinned_by: f64,
}

/// The samples with `from_ns <= ts < to_ns` at one of `points` (all when empty) for which
/// `matches` holds. When more than `limit` match, `limit` of them are kept evenly spread over
/// the matches (every k-th, so the whole window stays represented) and [`Selection::thinned_by`]
/// says by how much. Estimates always count every match.
pub fn select(
    ring: &Ring,
    from_ns: u64,
    to_ns: u64,
    points: &[u16],
    matches: impl Fn(&[u8]) -> bool,
    limit: usize,
) -> Selection {
    let mut hits: Vec<(SampleMeta, &[u8], u64)> = Vec::new();
    let mut sel = Selection {
        periods: ring.periods(from_ns / 1_000_000_000, to_ns.div_ceil(1_000_000_000)),
        thinned_by: 1.0,
        ..Selection::default()
    };
    for s in ring.samples(from_ns, to_ns) {
        if !points.is_empty() && !points.contains(&s.meta.point) {
            continue;
        }
        if !matches(s.data) {
            continue;
        }
        sel.matched += 1;
        sel.est_packets += s.one_in;
        sel.est_bytes += s.one_in * u64::from(s.meta.orig_len);
        hits.push((s.meta, s.data, s.one_in));
    }
    let n = hits.len();
    let keep = n.min(limit);
    if keep < n {
        sel.thinned_by = n as f64 / keep.max(1) as f64;
    }
    sel.samples = (0..keep)
        .map(|i| {
            // Evenly spread: the i-th of `keep` equal slices of the matches.
            let (meta, data, one_in) = hits[i * n / keep];
            Taken {
                meta,
                data: data.to_vec(),
                one_in,
            }
        })
        .collect();
    sel
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring::RingConfig;

    const NS: u64 = 1_000_000_000;
    const T0: u64 = 1_800_000_000;

    fn ring() -> Ring {
        let mut r = Ring::new(RingConfig::default(), 4, 9);
        // 1000 samples over 100 s; byte 0 is the point, bytes 1-4 the index.
        for i in 0..1000u32 {
            let mut data = vec![u8::from(i % 2 == 0)];
            data.extend_from_slice(&i.to_be_bytes());
            data.resize(100, 0);
            let meta = SampleMeta {
                ts_ns: T0 * NS + u64::from(i) * NS / 10,
                orig_len: 1000,
                point: u16::from(i % 2 == 0),
                iface: 0,
            };
            r.insert(meta, &data);
        }
        r
    }

    fn index(t: &Taken) -> u32 {
        u32::from_be_bytes(t.data[1..5].try_into().unwrap())
    }

    #[test]
    fn a_window_point_and_filter_select_and_estimate() {
        let r = ring();
        // 10 s from T0+20 at point 1 (even indices), indices divisible by 4.
        let sel = select(
            &r,
            (T0 + 20) * NS,
            (T0 + 30) * NS,
            &[1],
            |d| d[4] % 4 == 0,
            1000,
        );
        let got: Vec<u32> = sel.samples.iter().map(index).collect();
        assert_eq!(got, (200..300).filter(|i| i % 4 == 0).collect::<Vec<_>>());
        assert_eq!(sel.matched, 25);
        assert_eq!((sel.est_packets, sel.est_bytes), (100, 100_000));
        assert_eq!(sel.thinned_by, 1.0);
        assert_eq!(sel.periods.len(), 1);
        assert_eq!(sel.periods[0].one_in, 4);
    }

    #[test]
    fn over_the_limit_the_kept_samples_span_the_window() {
        let r = ring();
        let sel = select(&r, 0, u64::MAX, &[], |_| true, 10);
        let got: Vec<u32> = sel.samples.iter().map(index).collect();
        assert_eq!(got, (0..10).map(|i| i * 100).collect::<Vec<_>>());
        assert_eq!(sel.matched, 1000);
        assert_eq!(sel.est_packets, 4000, "estimates count every match");
        assert_eq!(sel.thinned_by, 100.0);
        assert!(select(&r, 0, u64::MAX, &[], |_| true, 0).samples.is_empty());
    }
}
