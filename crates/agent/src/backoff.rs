//! How long to wait before dialling the server again: doubling from [`Backoff::FIRST`] up to
//! [`Backoff::MAX`], each delay shortened by up to a fifth at random, so a fleet that lost its
//! server at one moment does not come back at one moment.

use std::time::Duration;

/// Reconnect delays of one agent.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { next: Self::FIRST }
    }
}

impl Backoff {
    /// The first delay after a connection is lost.
    pub const FIRST: Duration = Duration::from_millis(200);
    /// The longest delay: how long a restarted server waits for a node at most, plus dialling.
    pub const MAX: Duration = Duration::from_secs(5);

    /// The delay before the next attempt (and the one after it doubles).
    pub fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        base.mul_f64(1.0 - rand::random::<f64>() / 5.0)
    }

    /// After a connection got as far as `welcome`: start again from the first delay.
    pub fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_and_reset() {
        let mut b = Backoff::default();
        let mut bases = Vec::new();
        for _ in 0..8 {
            let d = b.next_delay();
            bases.push(d);
        }
        // Each delay is its base shortened by at most a fifth.
        let expect = [200u64, 400, 800, 1600, 3200, 5000, 5000, 5000];
        for (d, base) in bases.iter().zip(expect) {
            let base = Duration::from_millis(base);
            assert!(*d <= base && *d >= base.mul_f64(0.8), "{d:?} vs {base:?}");
        }
        b.reset();
        assert!(b.next_delay() <= Backoff::FIRST);
    }
}
