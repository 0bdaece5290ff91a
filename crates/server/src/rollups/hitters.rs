//! Heavy hitters as stored and merged (pure).
//!
//! A stored list is `{"floor": F, "keys": [[key, count, error], ...]}`: for every listed key
//! `count - error <= true weight <= count`, and any key not listed weighed at most `F`. That
//! is what a space-saving sketch guarantees, and [`Merge`] keeps it when lists of many seconds
//! and nodes are added together, in memory bounded by its capacity (the same semantics as
//! `edgecap_observe::SpaceSaving::merge`, with the floor of truncated lists made explicit).

use std::collections::HashMap;
use std::hash::Hash;

use edgecap_observe::Hitter;
use serde::{Deserialize, Serialize};

/// Keys a merged (minute) list keeps.
pub const STORED_KEYS: usize = 20;

/// Keys a merge holds while it runs.
pub const MERGE_CAPACITY: usize = 1024;

/// A list as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored<K> {
    pub floor: u64,
    pub keys: Vec<(K, u64, u64)>,
}

impl<K> Default for Stored<K> {
    fn default() -> Self {
        Stored {
            floor: 0,
            keys: Vec::new(),
        }
    }
}

impl<K: Clone> Stored<K> {
    /// An agent's list (the top of a sketch): unlisted keys weighed 0 when the listed ones
    /// account for the whole `total` (the list is the whole sketch), else at most the
    /// smallest listed count (the sketch's floor, or a key cut off by the top).
    pub fn from_agent(hitters: &[Hitter<K>], total: Option<u64>) -> Stored<K> {
        let sum: u64 = hitters.iter().map(|h| h.count).sum();
        let exhaustive = hitters.iter().all(|h| h.error == 0) && total.is_some_and(|t| sum >= t);
        let floor = match exhaustive {
            true => 0,
            false => hitters.iter().map(|h| h.count).min().unwrap_or(0),
        };
        Stored {
            floor,
            keys: hitters
                .iter()
                .map(|h| (h.key.clone(), h.count, h.error))
                .collect(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    /// Bound the key had when it entered (the bound of absent keys then).
    base: u64,
    /// Sum of floors seen when it entered.
    floors_at_entry: u64,
    /// Sums over the lists that named it: counts, errors and those lists' floors.
    counts: u64,
    errors: u64,
    floors_listed: u64,
}

/// Adds stored lists together, keeping the bounds true, in at most `capacity` keys.
#[derive(Debug, Clone)]
pub struct Merge<K> {
    capacity: usize,
    entries: HashMap<K, Entry>,
    /// Sum of the floors of every list added.
    floors: u64,
    /// Bound of keys never listed or evicted: `absent + (floors - absent_at)`.
    absent: u64,
    absent_at: u64,
}

impl<K: Hash + Eq + Clone + Ord> Merge<K> {
    pub fn new(capacity: usize) -> Merge<K> {
        Merge {
            capacity: capacity.max(1),
            entries: HashMap::new(),
            floors: 0,
            absent: 0,
            absent_at: 0,
        }
    }

    fn absent_bound(&self) -> u64 {
        self.absent + (self.floors - self.absent_at)
    }

    /// Adds one list (one second or minute of one node and point).
    pub fn add(&mut self, list: &Stored<K>) {
        let absent = self.absent_bound();
        for (key, count, error) in &list.keys {
            let e = self.entries.entry(key.clone()).or_insert(Entry {
                base: absent,
                floors_at_entry: self.floors,
                ..Entry::default()
            });
            e.counts = e.counts.saturating_add(*count);
            e.errors = e.errors.saturating_add(*error);
            e.floors_listed = e.floors_listed.saturating_add(list.floor);
        }
        self.floors = self.floors.saturating_add(list.floor);
        if self.entries.len() > 2 * self.capacity {
            self.shrink(self.capacity);
        }
    }

    fn bounds(&self, e: &Entry) -> (u64, u64) {
        // Lists after its entry that did not name it may each have hidden up to their floor.
        let unlisted = self
            .floors
            .saturating_sub(e.floors_at_entry)
            .saturating_sub(e.floors_listed);
        let count = e.base.saturating_add(e.counts).saturating_add(unlisted);
        let error = e.base.saturating_add(e.errors).saturating_add(unlisted);
        (count, error.min(count))
    }

    /// Keeps the `n` heaviest keys; the others' bound becomes the floor of absent keys.
    fn shrink(&mut self, n: usize) {
        let mut all: Vec<(K, u64)> = self
            .entries
            .iter()
            .map(|(k, e)| (k.clone(), self.bounds(e).0))
            .collect();
        all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let dropped_max = all.get(n).map(|x| x.1).unwrap_or(0);
        for (k, _) in all.into_iter().skip(n) {
            self.entries.remove(&k);
        }
        let bound = self.absent_bound().max(dropped_max);
        self.absent = bound;
        self.absent_at = self.floors;
    }

    /// The `n` heaviest keys with their bounds, heaviest first, and the bound of any other key.
    pub fn top(&self, n: usize) -> Stored<K> {
        let mut all: Vec<(K, u64, u64)> = self
            .entries
            .iter()
            .map(|(k, e)| {
                let (c, err) = self.bounds(e);
                (k.clone(), c, err)
            })
            .collect();
        all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let cut = all.get(n).map(|x| x.1).unwrap_or(0);
        all.truncate(n);
        Stored {
            floor: self.absent_bound().max(cut),
            keys: all,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgecap_observe::SpaceSaving;
    use proptest::prelude::*;

    #[test]
    fn exhaustive_lists_add_exactly() {
        let a = Stored {
            floor: 0,
            keys: vec![(1u16, 5, 0), (2, 3, 0)],
        };
        let b = Stored {
            floor: 0,
            keys: vec![(2u16, 4, 0)],
        };
        let mut m = Merge::new(8);
        m.add(&a);
        m.add(&b);
        let top = m.top(8);
        assert_eq!(top.keys, vec![(2, 7, 0), (1, 5, 0)]);
        assert_eq!(top.floor, 0);
    }

    #[test]
    fn an_agent_list_that_covers_its_total_has_no_floor() {
        let h = |key, count| Hitter {
            key,
            count,
            error: 0,
        };
        assert_eq!(
            Stored::from_agent(&[h(1u16, 6), h(2, 4)], Some(10)).floor,
            0
        );
        assert_eq!(
            Stored::from_agent(&[h(1u16, 6), h(2, 4)], Some(11)).floor,
            4
        );
        assert_eq!(Stored::from_agent(&[h(1u16, 6)], None).floor, 6);
    }

    proptest! {
        /// Streams split into parts, each sketched and cut to its top few, merged: every
        /// listed key's bounds hold the truth and every key not listed weighs at most the floor.
        #[test]
        fn merged_bounds_hold(parts in proptest::collection::vec(
            proptest::collection::vec((0u8..40, 1u64..20), 0..60), 1..12),
            k in 2usize..10, top in 1usize..8, cap in 2usize..12) {
            let mut truth: HashMap<u8, u64> = HashMap::new();
            let mut m = Merge::new(cap);
            for part in &parts {
                let mut s = SpaceSaving::new(k);
                for (key, w) in part {
                    s.add(*key, *w);
                    *truth.entry(*key).or_default() += w;
                }
                m.add(&Stored::from_agent(&s.top(top), Some(s.total())));
            }
            let out = m.top(cap);
            prop_assert!(out.keys.len() <= cap);
            for (key, count, error) in &out.keys {
                let t = truth.get(key).copied().unwrap_or(0);
                prop_assert!(count - error <= t && t <= *count, "{} {} {} truth {}", key, count, error, t);
            }
            for (key, t) in &truth {
                if !out.keys.iter().any(|x| x.0 == *key) {
                    prop_assert!(*t <= out.floor, "{} weighs {} over floor {}", key, t, out.floor);
                }
            }
        }
    }
}
