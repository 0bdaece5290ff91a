//! Spread and paired comparisons of interleaved benchmark runs, as pure functions.
//!
//! On a shared machine single runs of one mode spread more than the effect being measured,
//! so a benchmark that alternates modes compares each run with its neighbour of the other
//! mode (the same round, seconds apart, under the same background load) and reports the
//! median of those per-round ratios with a distribution-free confidence interval: the
//! interval says whether a cost is distinguishable from noise, which a ratio of two medians
//! cannot.

/// Smallest, median and largest of some values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    pub min: f64,
    pub median: f64,
    pub max: f64,
}

/// The spread of `v` (NaNs sorted last, as `f64::total_cmp` does); `None` when empty.
pub fn spread(v: &[f64]) -> Option<Spread> {
    let s = sorted(v);
    Some(Spread {
        min: *s.first()?,
        median: median_of_sorted(&s)?,
        max: *s.last()?,
    })
}

/// The median of `v`: the middle value, or the mean of the two middle ones.
pub fn median(v: &[f64]) -> Option<f64> {
    median_of_sorted(&sorted(v))
}

fn sorted(v: &[f64]) -> Vec<f64> {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s
}

fn median_of_sorted(s: &[f64]) -> Option<f64> {
    let n = s.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(s[n / 2]),
        _ => Some((s[n / 2 - 1] + s[n / 2]) / 2.0),
    }
}

/// A confidence interval of the median with at least 95 % coverage, from order statistics
/// (no assumption about the distribution): with the values sorted, `[x(k), x(n+1-k)]` for the
/// largest `k` whose two tails, each the chance that at most `k - 1` of `n` values fall
/// below the median (binomial, one half), sum to at most 5 %. `None` below 6 values, where
/// even `[min, max]` covers less than 95 %.
pub fn median_interval(v: &[f64]) -> Option<(f64, f64)> {
    let s = sorted(v);
    let n = s.len();
    let mut k = 0;
    // tail = P(X <= k) for X ~ Binomial(n, 1/2), grown one term at a time.
    let mut term = 0.5f64.powi(i32::try_from(n).ok()?);
    let mut tail = term;
    while k < n / 2 && 2.0 * tail <= 0.05 {
        k += 1;
        term *= (n - k + 1) as f64 / k as f64;
        tail += term;
    }
    // k order statistics can be cut from each end.
    (k > 0).then(|| (s[k - 1], s[n - k]))
}

/// What a round's paired comparison says about a cost and a goal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The whole interval is below the goal.
    Met,
    /// The whole interval is above it.
    NotMet,
    /// The interval holds the goal: the runs cannot tell.
    Unsettled,
    /// Too few rounds for an interval.
    TooFew,
}

impl Verdict {
    /// A cost (`interval`, in the goal's unit) against a goal that it stays under.
    pub fn of(interval: Option<(f64, f64)>, goal: f64) -> Verdict {
        match interval {
            None => Verdict::TooFew,
            Some((_, hi)) if hi < goal => Verdict::Met,
            Some((lo, _)) if lo > goal => Verdict::NotMet,
            Some(_) => Verdict::Unsettled,
        }
    }

    pub fn text(self) -> &'static str {
        match self {
            Verdict::Met => "met (the whole 95 % interval is below the goal)",
            Verdict::NotMet => "not met (the whole 95 % interval is above the goal)",
            Verdict::Unsettled => "not settled (the 95 % interval holds the goal)",
            Verdict::TooFew => "not settled (at least 6 rounds are needed for an interval)",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_and_median_of_odd_and_even_counts() {
        assert_eq!(spread(&[]), None);
        assert_eq!(median(&[]), None);
        assert_eq!(
            spread(&[3.0, 1.0, 2.0]),
            Some(Spread {
                min: 1.0,
                median: 2.0,
                max: 3.0
            })
        );
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
    }

    /// The order statistics of the usual tables (e.g. Conover, "Practical nonparametric
    /// statistics", the sign test's confidence interval): none below 6, the extremes from 6
    /// to 8, the second from each end at 9 to 11, the third at 12 to 14.
    #[test]
    fn median_interval_cuts_what_the_binomial_allows() {
        let values = |n: usize| (1..=n).map(|i| i as f64).collect::<Vec<_>>();
        for n in 0..6 {
            assert_eq!(median_interval(&values(n)), None, "n = {n}");
        }
        for (n, k) in [(6, 1), (8, 1), (9, 2), (11, 2), (12, 3), (14, 3), (20, 6)] {
            assert_eq!(
                median_interval(&values(n)),
                Some((k as f64, (n + 1 - k) as f64)),
                "n = {n}"
            );
        }
        // Unsorted input is sorted first.
        assert_eq!(
            median_interval(&[5.0, -1.0, 2.0, 9.0, 0.0, 3.0]),
            Some((-1.0, 9.0))
        );
    }

    #[test]
    fn verdicts_need_the_whole_interval_on_one_side() {
        assert_eq!(Verdict::of(Some((-1.0, 2.9)), 3.0), Verdict::Met);
        assert_eq!(Verdict::of(Some((3.1, 5.0)), 3.0), Verdict::NotMet);
        assert_eq!(Verdict::of(Some((1.0, 4.0)), 3.0), Verdict::Unsettled);
        assert_eq!(Verdict::of(None, 3.0), Verdict::TooFew);
    }
}
