use super::*;

const NS: u64 = 1_000_000_000;
const T0: u64 = 1_800_000_000;

/// A fake packet of `len` bytes whose first 8 bytes are `marker`.
fn packet(marker: u64, len: usize) -> Vec<u8> {
    let mut p = vec![0u8; len];
    p[..8].copy_from_slice(&marker.to_be_bytes());
    p
}

fn meta(ts_ns: u64, orig_len: u32) -> SampleMeta {
    SampleMeta {
        ts_ns,
        orig_len,
        point: 0,
        iface: 1,
    }
}

fn marker(data: &[u8]) -> u64 {
    u64::from_be_bytes(data[..8].try_into().unwrap())
}

#[test]
fn a_window_holds_only_its_samples_truncated_with_original_lengths() {
    let mut ring = Ring::new(RingConfig::default(), 64, 7);
    // One sample every 100 ms for 10 minutes, marker = its index.
    for i in 0..6000u64 {
        ring.insert(meta(T0 * NS + i * NS / 10, 1400), &packet(i, 1400));
    }
    let from = (T0 + 125) * NS;
    let to = (T0 + 185) * NS;
    let got: Vec<Sample<'_>> = ring.samples(from, to).collect();
    let markers: Vec<u64> = got.iter().map(|s| marker(s.data)).collect();
    assert_eq!(markers, (1250..1850).collect::<Vec<_>>());
    assert!(
        got.iter()
            .all(|s| s.data.len() == 160 && s.meta.orig_len == 1400)
    );
    assert!(got.iter().all(|s| s.one_in == 64));
    // Two periods touch the window: [120, 180) and [180, 240).
    let periods = ring.periods(T0 + 125, T0 + 185);
    assert_eq!(
        periods,
        [
            PeriodRate {
                start: T0 + 120,
                end: T0 + 180,
                one_in: 64
            },
            PeriodRate {
                start: T0 + 180,
                end: T0 + 240,
                one_in: 64
            },
        ]
    );
}

#[test]
fn thinning_keeps_a_subset_and_doubles_the_rate() {
    let config = RingConfig {
        cap_bytes: 200_000,
        reach_secs: 600,
        period_secs: 60,
        snaplen: 160,
    };
    config.check().unwrap();
    let mut ring = Ring::new(config, 1, 3);
    let mut seen_before: Option<Vec<u64>> = None;
    let mut levels = Vec::new();
    for i in 0..3000u64 {
        // All in the first period, so it alone is thinned.
        ring.insert(meta(T0 * NS + i * 1000, 100), &packet(i, 100));
        let now: Vec<u64> = ring.samples(0, u64::MAX).map(|s| marker(s.data)).collect();
        let rate = ring.periods(0, u64::MAX)[0].one_in;
        if levels.last() != Some(&rate) {
            if let Some(before) = &seen_before {
                // Everything kept after a thinning was kept before it (or is new).
                assert!(
                    now.iter().all(|m| before.contains(m) || *m == i),
                    "rate {rate}"
                );
            }
            levels.push(rate);
        }
        seen_before = Some(now);
        assert!(ring.used_bytes() <= 200_000);
    }
    assert!(levels.len() >= 3, "{levels:?}");
    assert!(levels.windows(2).all(|w| w[1] == 2 * w[0]), "{levels:?}");
    // The survivors still estimate the period's traffic.
    let estimate = ring.len() as u64 * ring.periods(0, u64::MAX)[0].one_in;
    assert!((2000..4500).contains(&estimate), "{estimate} for 3000");
}

/// A day of samples at 20 per second into a 4 MiB ring: it never exceeds its cap, still
/// answers for the whole day, its density falls with age, and each period's samples times
/// its stated rate estimate that period's traffic.
#[test]
fn a_day_of_samples_fits_the_cap_and_the_whole_day_is_answered() {
    let config = RingConfig {
        cap_bytes: 4 << 20,
        ..RingConfig::default()
    };
    config.check().unwrap();
    let mut ring = Ring::new(config, 64, 11);
    let per_sec = 20u64;
    let day = 24 * 3600u64;
    let mut max_used = 0;
    for s in 0..day {
        for k in 0..per_sec {
            let ts = (T0 + s) * NS + k * NS / per_sec;
            ring.insert(meta(ts, 200), &packet(s * per_sec + k, 200));
        }
        max_used = max_used.max(ring.used_bytes());
    }
    assert!(max_used <= 4 << 20, "{max_used}");
    // The whole day is there (the first period starts at or before T0).
    assert!(ring.reach_start().unwrap() <= T0);
    let periods = ring.periods(0, u64::MAX);
    assert!(periods.len() as u64 >= day / 60);
    let newest = periods.last().unwrap();
    let oldest_hour = &periods[..60];
    let newest_hour = &periods[periods.len() - 60..];
    assert_eq!(
        newest.one_in, 64,
        "the newest period is at the observer's rate"
    );
    let mean = |ps: &[PeriodRate]| ps.iter().map(|p| p.one_in).sum::<u64>() / ps.len() as u64;
    assert!(
        mean(oldest_hour) > 4 * mean(newest_hour),
        "density must fall with age: oldest hour 1 in {}, newest 1 in {}",
        mean(oldest_hour),
        mean(newest_hour)
    );
    // Per hour, samples x rate estimate what was inserted (20/s stands for 20*64 packets/s).
    for hour in 0..24u64 {
        let (from, to) = (T0 + hour * 3600, T0 + (hour + 1) * 3600);
        let estimate: u64 = ring.samples(from * NS, to * NS).map(|s| s.one_in).sum();
        let truth = 3600 * per_sec * 64;
        let ratio = estimate as f64 / truth as f64;
        assert!((0.8..1.2).contains(&ratio), "hour {hour}: {ratio}");
    }
}

#[test]
fn samples_older_than_the_reach_go() {
    let config = RingConfig {
        cap_bytes: 1 << 20,
        reach_secs: 600,
        period_secs: 60,
        snaplen: 160,
    };
    let mut ring = Ring::new(config, 1, 5);
    ring.insert(meta(T0 * NS, 100), &packet(1, 100));
    ring.insert(meta((T0 + 700) * NS, 100), &packet(2, 100));
    let all: Vec<u64> = ring.samples(0, u64::MAX).map(|s| marker(s.data)).collect();
    assert_eq!(all, [2]);
    // Late samples from before the reach are ignored.
    ring.insert(meta((T0 + 10) * NS, 100), &packet(3, 100));
    let all: Vec<u64> = ring.samples(0, u64::MAX).map(|s| marker(s.data)).collect();
    assert_eq!(all, [2]);
    assert_eq!(ring.reach_start(), Some(T0 + 660));
}

#[test]
fn settings_that_cannot_keep_the_reach_are_refused() {
    let small = RingConfig {
        cap_bytes: 100_000,
        ..RingConfig::default()
    };
    let e = small.check().unwrap_err().to_string();
    assert!(
        e.starts_with("ring_cap: 100000 bytes cannot hold 1441 periods"),
        "{e}"
    );
    let bad_period = RingConfig {
        period_secs: 0,
        ..RingConfig::default()
    };
    assert_eq!(bad_period.check(), Err(RingConfigError::Period));
    RingConfig::default().check().unwrap();
}
