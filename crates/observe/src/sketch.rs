//! Heavy hitters in bounded memory: the space-saving algorithm (Metwally, Agrawal, El Abbadi).
//!
//! A sketch of capacity `k` keeps at most `k` keys with a count and an error each. A key not
//! kept replaces the smallest one and inherits its count as its error, so for every kept key
//! `count - error <= true count <= count`, and any key whose true weight is above
//! `total / k` is kept. Weights are already scaled by the sampling rate when they come from
//! samples, so the counts estimate real packets.

use std::collections::HashMap;
use std::hash::Hash;

/// One heavy hitter: its estimated weight and how much of that may be overcount.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Hitter<K> {
    pub key: K,
    /// An upper bound of the key's true weight.
    pub count: u64,
    /// `count - error` is a lower bound of the key's true weight.
    pub error: u64,
}

/// A space-saving sketch of at most `capacity` keys.
#[derive(Debug, Clone)]
pub struct SpaceSaving<K> {
    capacity: usize,
    entries: HashMap<K, (u64, u64)>,
    total: u64,
}

impl<K: Hash + Eq + Clone + Ord> SpaceSaving<K> {
    /// A sketch of at most `capacity` keys (at least 1).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        SpaceSaving {
            capacity,
            entries: HashMap::with_capacity(capacity),
            total: 0,
        }
    }

    /// Adds `weight` to `key`.
    pub fn add(&mut self, key: K, weight: u64) {
        self.total = self.total.saturating_add(weight);
        if let Some((count, _)) = self.entries.get_mut(&key) {
            *count = count.saturating_add(weight);
            return;
        }
        if self.entries.len() < self.capacity {
            self.entries.insert(key, (weight, 0));
            return;
        }
        // The smallest kept key gives its place and its count, as this key's error.
        let floor = self.evict_smallest();
        self.entries
            .insert(key, (floor.saturating_add(weight), floor));
    }

    /// Adds `other` (another node's or second's sketch of the same kind): every key's bounds
    /// stay true of the two streams together, and the result keeps this sketch's capacity.
    pub fn merge(&mut self, other: &SpaceSaving<K>) {
        let total = self.total.saturating_add(other.total);
        // A key `other` does not keep may have weighed up to its smallest count there.
        let other_floor = match other.entries.len() >= other.capacity {
            true => other.entries.values().map(|e| e.0).min().unwrap_or(0),
            false => 0,
        };
        if other_floor > 0 {
            for (k, e) in self.entries.iter_mut() {
                if !other.entries.contains_key(k) {
                    e.0 = e.0.saturating_add(other_floor);
                    e.1 = e.1.saturating_add(other_floor);
                }
            }
        }
        let mut keys: Vec<&K> = other.entries.keys().collect();
        keys.sort();
        for k in keys {
            let (count, error) = other.entries[k];
            if let Some(e) = self.entries.get_mut(k) {
                e.0 = e.0.saturating_add(count);
                e.1 = e.1.saturating_add(error);
            } else if self.entries.len() < self.capacity {
                // Never full yet, so never evicted: the key weighed nothing here.
                self.entries.insert(k.clone(), (count, error));
            } else {
                let floor = self.evict_smallest();
                self.entries.insert(
                    k.clone(),
                    (floor.saturating_add(count), floor.saturating_add(error)),
                );
            }
        }
        self.total = total;
    }

    /// Removes the smallest kept key (ties: the smallest key, so runs repeat); its count.
    fn evict_smallest(&mut self) -> u64 {
        let (victim, floor) = self
            .entries
            .iter()
            .min_by(|a, b| a.1.0.cmp(&b.1.0).then_with(|| a.0.cmp(b.0)))
            .map(|(k, (c, _))| (k.clone(), *c))
            .expect("a full sketch has entries");
        self.entries.remove(&victim);
        floor
    }

    /// The total weight seen, kept or not.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The `n` heaviest keys, heaviest first (ties by key).
    pub fn top(&self, n: usize) -> Vec<Hitter<K>> {
        let mut all: Vec<Hitter<K>> = self
            .entries
            .iter()
            .map(|(k, (count, error))| Hitter {
                key: k.clone(),
                count: *count,
                error: *error,
            })
            .collect();
        all.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
        all.truncate(n);
        all
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn exact_while_under_capacity() {
        let mut s = SpaceSaving::new(4);
        for (k, w) in [(1u32, 5u64), (2, 3), (1, 2), (3, 1)] {
            s.add(k, w);
        }
        let top = s.top(2);
        assert_eq!(
            top[0],
            Hitter {
                key: 1,
                count: 7,
                error: 0
            }
        );
        assert_eq!(
            top[1],
            Hitter {
                key: 2,
                count: 3,
                error: 0
            }
        );
        assert_eq!(s.total(), 11);
    }

    #[test]
    fn a_heavy_key_among_many_light_ones_is_found() {
        let mut s = SpaceSaving::new(8);
        for i in 0..10_000u32 {
            s.add(i % 1000 + 1, 1);
            if i % 4 == 0 {
                s.add(0, 1);
            }
        }
        let top = s.top(1);
        assert_eq!(top[0].key, 0);
        assert!(top[0].count - top[0].error <= 2500 && 2500 <= top[0].count);
    }

    proptest! {
        /// The guarantees, for any stream: bounds hold for every kept key, every key heavier
        /// than total/k is kept, and the sketch never holds more than k keys.
        #[test]
        fn bounds_hold(stream in proptest::collection::vec((0u8..40, 1u64..20), 0..400), k in 1usize..12) {
            let mut s = SpaceSaving::new(k);
            let mut truth: HashMap<u8, u64> = HashMap::new();
            for (key, w) in &stream {
                s.add(*key, *w);
                *truth.entry(*key).or_default() += w;
            }
            prop_assert!(s.len() <= k);
            let total: u64 = truth.values().sum();
            prop_assert_eq!(s.total(), total);
            for h in s.top(k) {
                let t = truth[&h.key];
                prop_assert!(h.count - h.error <= t && t <= h.count, "{:?} truth {}", h, t);
            }
            let kept: Vec<u8> = s.top(k).into_iter().map(|h| h.key).collect();
            for (key, t) in &truth {
                if *t * k as u64 > total {
                    prop_assert!(kept.contains(key), "{} with {} of {} not kept", key, t, total);
                }
            }
        }

        /// Two halves merged bound the whole stream's weights as one sketch does.
        #[test]
        fn merged_bounds_hold(a in proptest::collection::vec((0u8..30, 1u64..20), 0..200),
                              b in proptest::collection::vec((0u8..30, 1u64..20), 0..200)) {
            let k = 8;
            let (mut x, mut y) = (SpaceSaving::new(k), SpaceSaving::new(k));
            let mut truth: HashMap<u8, u64> = HashMap::new();
            for (key, w) in &a { x.add(*key, *w); *truth.entry(*key).or_default() += w; }
            for (key, w) in &b { y.add(*key, *w); *truth.entry(*key).or_default() += w; }
            x.merge(&y);
            prop_assert!(x.len() <= k);
            prop_assert_eq!(x.total(), truth.values().sum::<u64>());
            for h in x.top(k) {
                let t = truth[&h.key];
                prop_assert!(h.count - h.error <= t && t <= h.count, "{:?} truth {}", h, t);
            }
        }
    }
}
