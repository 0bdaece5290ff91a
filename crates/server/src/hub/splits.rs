//! Split epochs (issue 14): the local half of a trigger's `captures_per_hour`
//! ([`edgecap_model::trigger::local_captures`]) is split among the nodes in its scope, and
//! this module keeps that split strict while the nodes in scope change. Pure: the hub reads
//! and writes the rows (db/splits.rs, migration 0017) and calls these.
//!
//! - An **epoch** is one split: each node's share (nodes absent have 0). A new one is
//!   recorded whenever the split the hub computes differs from the latest (a node seen for
//!   the first time, relabelled in or out of scope, forgotten).
//! - A node's **effective share** ([`effective`]) is the minimum of its shares in the last
//!   settled epoch and every later one. Each split adds up to the local half, so minimums
//!   never add up to more; a share that falls applies at once, one that grows waits.
//! - The latest epoch **settles** ([`settles`]) [`SETTLE`] after every node that has a share
//!   in it, in an unsettled one or in the last settled one has heard its effective share as
//!   of that epoch (on a live connection, or at its first hello after the change; a
//!   forgotten node counts as having heard everything when it was forgotten). Then its
//!   shares, increases included, take effect.
//!
//! Why no hour holds more than the local half: an agent starts a capture of its own share
//! only while its captures of the last hour are fewer than the share it holds, so its
//! captures in any hour are at most the share it held at its last start in that hour. Between
//! two settlings every node holds at most its share in the last settled epoch (all it may be
//! sent is a minimum that includes it, and at the settling it had heard one already). An hour
//! that spans a settling at `T` starts after every node heard its effective share of the
//! settling epoch (at most `T - SETTLE`), so a node's last start in it, before or after `T`,
//! is within its share of that epoch. Either way the shares of one split bound the hour.

use std::collections::{BTreeMap, BTreeSet};

/// How long after every node heard the latest split it settles (the budget's hour).
pub const SETTLE: u64 = 3600;

/// One split of a trigger's local captures: positive shares by node name.
pub type Split = BTreeMap<String, u64>;

/// One recorded split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Epoch {
    pub seq: u64,
    /// When it was recorded (server clock, unix seconds).
    pub created: u64,
    pub shares: Split,
    /// When it settled, if it has.
    pub settled: Option<u64>,
}

/// What a node last heard of a trigger's split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heard {
    /// Its effective share as of this epoch.
    pub seq: u64,
    /// When (server clock, unix seconds).
    pub at: u64,
    /// Forgotten at this time: it counts as having heard every epoch then.
    pub gone: Option<u64>,
}

/// Only the positive shares of a split (a share of 0 and no share are the same).
pub fn positive(split: impl IntoIterator<Item = (String, u64)>) -> Split {
    split.into_iter().filter(|(_, s)| *s > 0).collect()
}

/// The epochs that count (`epochs` in `seq` order): the last settled one and every later one
/// (all of them if none settled, which never lasts: the first epoch is settled when made).
fn counted(epochs: &[Epoch]) -> &[Epoch] {
    let from = epochs
        .iter()
        .rposition(|e| e.settled.is_some())
        .unwrap_or(0);
    &epochs[from..]
}

/// A node's effective share: the least of its shares in the epochs that count; 0 without
/// any epoch.
pub fn effective(epochs: &[Epoch], node: &str) -> u64 {
    counted(epochs)
        .iter()
        .map(|e| e.shares.get(node).copied().unwrap_or(0))
        .min()
        .unwrap_or(0)
}

/// The latest epoch's `seq`, if any.
pub fn latest(epochs: &[Epoch]) -> Option<u64> {
    epochs.last().map(|e| e.seq)
}

/// Whether `split` must be recorded as a new epoch: it differs from the latest one, or there
/// is none (the first is recorded settled: nobody held a share of this trigger before).
pub fn changed(epochs: &[Epoch], split: &Split) -> bool {
    epochs.last().is_none_or(|e| &e.shares != split)
}

/// The nodes that must hear the latest split before it settles: a share in any epoch that
/// counts.
pub fn holders(epochs: &[Epoch]) -> BTreeSet<&str> {
    counted(epochs)
        .iter()
        .flat_map(|e| e.shares.iter())
        .filter(|(_, s)| **s > 0)
        .map(|(n, _)| n.as_str())
        .collect()
}

/// The `seq` of the latest epoch if it settles at `now`: it is not settled yet, and [`SETTLE`]
/// has passed since it was made and since every holder heard it (`heard`, by node). A holder
/// that has not heard it keeps it unsettled.
pub fn settles(epochs: &[Epoch], heard: &BTreeMap<String, Heard>, now: u64) -> Option<u64> {
    let last = epochs.last()?;
    if last.settled.is_some() {
        return None;
    }
    let mut since = last.created;
    for node in holders(epochs) {
        let h = heard.get(node)?;
        let at = match h.gone {
            Some(gone) => gone,
            None if h.seq >= last.seq => h.at,
            None => return None,
        };
        since = since.max(at);
    }
    (now >= since.saturating_add(SETTLE)).then_some(last.seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(s: &[(&str, u64)]) -> Split {
        positive(s.iter().map(|(n, v)| ((*n).to_owned(), *v)))
    }

    fn epoch(seq: u64, created: u64, s: &[(&str, u64)], settled: Option<u64>) -> Epoch {
        Epoch {
            seq,
            created,
            shares: split(s),
            settled,
        }
    }

    fn heard(seq: u64, at: u64) -> Heard {
        Heard {
            seq,
            at,
            gone: None,
        }
    }

    #[test]
    fn a_node_joining_takes_nothing_until_the_split_settles_and_the_others_fall_at_once() {
        // Two nodes with 2 each; c joins: 2, 1, 1.
        let mut epochs = vec![
            epoch(1, 0, &[("a", 2), ("b", 2)], Some(0)),
            epoch(2, 1000, &[("a", 2), ("b", 1), ("c", 1)], None),
        ];
        assert_eq!(
            ["a", "b", "c"].map(|n| effective(&epochs, n)),
            [2, 1, 0],
            "b falls at once, c waits"
        );
        // a and b heard at 1001, c at 1500: settles at 1500 + 1 h, not before.
        let mut h = BTreeMap::from([
            ("a".to_owned(), heard(2, 1001)),
            ("b".to_owned(), heard(2, 1001)),
        ]);
        assert_eq!(settles(&epochs, &h, 10_000), None, "c has not heard");
        h.insert("c".into(), heard(2, 1500));
        assert_eq!(settles(&epochs, &h, 1500 + SETTLE - 1), None);
        assert_eq!(settles(&epochs, &h, 1500 + SETTLE), Some(2));
        epochs[1].settled = Some(1500 + SETTLE);
        assert_eq!(["a", "b", "c"].map(|n| effective(&epochs, n)), [2, 1, 1]);
        assert_eq!(settles(&epochs, &h, 1_000_000), None, "settled already");
    }

    #[test]
    fn a_node_leaving_grows_nobody_until_it_heard_and_an_hour_passed() {
        let epochs = vec![
            epoch(1, 0, &[("a", 1), ("b", 1), ("c", 1)], Some(0)),
            epoch(2, 100, &[("a", 2), ("b", 1)], None),
        ];
        assert_eq!(["a", "b", "c"].map(|n| effective(&epochs, n)), [1, 1, 0]);
        // c, which left the scope, holds its old share until it hears: it must hear too.
        let mut h = BTreeMap::from([
            ("a".to_owned(), heard(2, 100)),
            ("b".to_owned(), heard(2, 100)),
            ("c".to_owned(), heard(1, 50)),
        ]);
        assert_eq!(settles(&epochs, &h, 100_000), None);
        // Forgotten at 200: counted as heard then.
        h.get_mut("c").unwrap().gone = Some(200);
        assert_eq!(settles(&epochs, &h, 200 + SETTLE - 1), None);
        assert_eq!(settles(&epochs, &h, 200 + SETTLE), Some(2));
    }

    #[test]
    fn minimums_over_any_epochs_never_add_up_to_more_than_one_split() {
        // Every split of 5 among up to 4 of 5 nodes, three epochs after a settled one.
        let names = ["a", "b", "c", "d", "e"];
        let splits: Vec<Split> = (0..40u64)
            .map(|k| {
                let n = 1 + (k % 4) as usize;
                let start = (k / 4 % 5) as usize;
                positive((0..n).map(|i| {
                    let node = names[(start + i) % 5].to_owned();
                    (node, edgecap_model::protocol::split_limit(5, n, i))
                }))
            })
            .collect();
        for w in splits.windows(4) {
            let epochs: Vec<Epoch> = w
                .iter()
                .enumerate()
                .map(|(i, s)| Epoch {
                    seq: i as u64 + 1,
                    created: i as u64,
                    shares: s.clone(),
                    settled: (i == 0).then_some(0),
                })
                .collect();
            let sum: u64 = names.iter().map(|n| effective(&epochs, n)).sum();
            assert!(sum <= 5, "{w:?}: {sum}");
            for s in w {
                assert_eq!(s.values().sum::<u64>(), 5);
            }
        }
    }

    #[test]
    fn a_later_change_before_settling_needs_everyone_to_hear_it() {
        let epochs = vec![
            epoch(1, 0, &[("a", 2)], Some(0)),
            epoch(2, 10, &[("a", 1), ("b", 1)], None),
            epoch(3, 20, &[("a", 1), ("c", 1)], None),
        ];
        assert_eq!(["a", "b", "c"].map(|n| effective(&epochs, n)), [1, 0, 0]);
        let h = BTreeMap::from([
            ("a".to_owned(), heard(3, 20)),
            ("b".to_owned(), heard(2, 10)),
            ("c".to_owned(), heard(3, 20)),
        ]);
        // b had a share in an unsettled epoch and heard only epoch 2.
        assert_eq!(settles(&epochs, &h, 100_000), None);
        assert!(!changed(&epochs, &split(&[("a", 1), ("c", 1)])));
        assert!(changed(&epochs, &split(&[("a", 2)])));
        assert!(changed(&[], &split(&[])));
    }
}
