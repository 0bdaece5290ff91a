//! The sampling error of estimates scaled from samples: one owner for the estimate API
//! (`POST /pcaps/estimate`) and the heavy hitters' bounds (`/traffic/top`).
//!
//! When each packet is sampled independently with probability `1/N` and `n` samples are seen,
//! the count they stand for is `n * N`; `n` is (nearly) Poisson, so the count's standard error
//! is `N * sqrt(n)`, and `n * N ± Z95 * N * sqrt(n)` covers the truth about 95 % of the time
//! (the normal approximation: good from a few tens of samples up; below that it is
//! optimistic, and callers with no samples at all use [`NONE_SEEN`] instead).

/// The normal quantile of a two-sided 95 % interval.
pub const Z95: f64 = 1.96;

/// With no sample seen, the count is below this many samples' worth (95 %: `e^-3 < 5 %`).
pub const NONE_SEEN: f64 = 3.0;

/// The relative half-width of a 95 % interval around an estimate from `samples` samples.
pub fn relative(samples: u64) -> f64 {
    Z95 / (samples.max(1) as f64).sqrt()
}

/// The half-width of a 95 % interval around `scaled`, a count estimated from samples taken
/// one in `one_in` (so it stands for `scaled / one_in` samples). Exact counts (`one_in` of 1
/// or 0, every packet seen) have none.
pub fn of_scaled(scaled: u64, one_in: u64) -> u64 {
    if one_in <= 1 || scaled == 0 {
        return 0;
    }
    // N * Z * sqrt(n) with n = scaled / N, i.e. Z * sqrt(scaled * N).
    (Z95 * (scaled as f64 * one_in as f64).sqrt()).ceil() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_counts_have_no_sampling_error() {
        assert_eq!(of_scaled(12_345, 1), 0);
        assert_eq!(of_scaled(12_345, 0), 0);
        assert_eq!(of_scaled(0, 64), 0);
    }

    #[test]
    fn the_two_forms_agree() {
        // 400 samples at 1 in 64 stand for 25,600 packets: ±1.96 * 64 * 20.
        assert_eq!(of_scaled(25_600, 64), (1.96f64 * 64.0 * 20.0).ceil() as u64);
        let rel = relative(400);
        assert!((rel * 25_600.0 - 1.96 * 64.0 * 20.0).abs() < 1e-6);
    }

    /// Sampling a known stream many times (a fixed seed): the interval around the scaled
    /// estimate holds the truth in about 95 % of the trials, not much less.
    #[test]
    fn the_interval_covers_the_truth_about_95_percent_of_the_time() {
        let (truth, one_in, trials) = (20_000u64, 64u64, 400);
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            // xorshift64*: a fixed, reproducible stream.
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            state.wrapping_mul(0x2545_f491_4f6c_dd1d)
        };
        let mut covered = 0;
        for _ in 0..trials {
            let n = (0..truth).filter(|_| next() % one_in == 0).count() as u64;
            let scaled = n * one_in;
            let m = of_scaled(scaled, one_in);
            if scaled.saturating_sub(m) <= truth && truth <= scaled + m {
                covered += 1;
            }
        }
        let share = f64::from(covered) / f64::from(trials);
        assert!(share >= 0.92, "covered {covered} of {trials}");
        assert!(
            share < 1.0,
            "an interval that never misses is too wide: {covered} of {trials}"
        );
    }
}
