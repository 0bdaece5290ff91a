//! Split epochs (issue 14): the local halves of a trigger's budget, of `captures_per_hour`
//! ([`edgecap_model::trigger::local_captures`]) and of `bytes_per_day`
//! ([`edgecap_model::trigger::local_bytes`]), are split among the nodes in its scope, and
//! this module keeps those splits strict while the nodes in scope change. Pure: the hub reads
//! and writes the rows (db/splits.rs, migrations 0017 and 0019) and calls these. Both
//! budgets ([`Kind`]) follow the same rules over the same epochs, each with its own settling
//! and its own window ([`Kind::window`]: the budget's hour, or its day).
//!
//! - An **epoch** is one split of both: each node's shares (nodes absent have 0). A new one
//!   is recorded whenever the split the hub computes differs from the latest (a node seen
//!   for the first time, relabelled in or out of scope, forgotten).
//! - A node's **effective share** of a kind ([`effective`]) is the minimum of its shares in
//!   the last epoch settled for that kind and every later one. Each split adds up to the
//!   local half, so minimums never add up to more; a share that falls applies at once, one
//!   that grows waits.
//! - The latest epoch **settles** for a kind ([`settles`]) that kind's window after every
//!   node that has a share of it in it, in an unsettled one or in the last settled one has
//!   heard its effective shares as of that epoch (on a live connection, or at its first hello
//!   after the change; a forgotten node counts as having heard everything when it was
//!   forgotten). Then its shares of that kind, increases included, take effect.
//!
//! Why no window (an hour for captures, a day for bytes) holds more than the local half: an
//! agent spends of its own share only while what it spent in the last window is less than
//! the share it holds (a capture, or a capture's reserved bytes, only if they fit), so what it
//! spends in any window is at most the share it held at its last spending in that window.
//! Between two settlings every node holds at most its share in the last settled epoch (all
//! it may be sent is a minimum that includes it, and at the settling it had heard one
//! already). A window that spans a settling at `T` starts after every node heard its
//! effective share of the settling epoch (at most `T - window`), so a node's last spending in
//! it, before or after `T`, is within its share of that epoch. Either way the shares of one
//! split bound the window.

use std::collections::{BTreeMap, BTreeSet};

/// How long after every node heard the latest split it settles for captures (the budget's
/// hour).
pub const SETTLE: u64 = 3600;

/// How long after every node heard the latest split it settles for bytes (the budget's day).
pub const BYTES_SETTLE: u64 = 24 * 3600;

/// Which local half of the budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `captures_per_hour`.
    Captures,
    /// `bytes_per_day`.
    Bytes,
}

impl Kind {
    pub const ALL: [Kind; 2] = [Kind::Captures, Kind::Bytes];

    /// The budget's window, which is also how long a split waits to settle.
    pub fn window(self) -> u64 {
        match self {
            Kind::Captures => SETTLE,
            Kind::Bytes => BYTES_SETTLE,
        }
    }
}

/// One split of a trigger's local captures or bytes: positive shares by node name.
pub type Split = BTreeMap<String, u64>;

/// One split of both local halves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shares {
    pub captures: Split,
    pub bytes: Split,
}

/// One recorded split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Epoch {
    pub seq: u64,
    /// When it was recorded (server clock, unix seconds).
    pub created: u64,
    /// The split of the local captures.
    pub shares: Split,
    /// The split of the local bytes (empty in epochs recorded before the bytes pool).
    pub bytes: Split,
    /// When it settled for captures, if it has.
    pub settled: Option<u64>,
    /// When it settled for bytes, if it has.
    pub bytes_settled: Option<u64>,
}

impl Epoch {
    pub fn split(&self, kind: Kind) -> &Split {
        match kind {
            Kind::Captures => &self.shares,
            Kind::Bytes => &self.bytes,
        }
    }

    pub fn settled_at(&self, kind: Kind) -> Option<u64> {
        match kind {
            Kind::Captures => self.settled,
            Kind::Bytes => self.bytes_settled,
        }
    }
}

/// What a node last heard of a trigger's split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heard {
    /// Its effective shares as of this epoch.
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

/// The epochs that count for `kind` (`epochs` in `seq` order): the last one settled for it
/// and every later one (all of them if none settled: the first epoch is settled when made,
/// and epochs from before the bytes pool count, with no bytes shares, until a later one
/// settles for bytes).
fn counted(epochs: &[Epoch], kind: Kind) -> &[Epoch] {
    let from = epochs
        .iter()
        .rposition(|e| e.settled_at(kind).is_some())
        .unwrap_or(0);
    &epochs[from..]
}

/// A node's effective share of `kind`: the least of its shares in the epochs that count; 0
/// without any epoch.
pub fn effective(epochs: &[Epoch], node: &str, kind: Kind) -> u64 {
    counted(epochs, kind)
        .iter()
        .map(|e| e.split(kind).get(node).copied().unwrap_or(0))
        .min()
        .unwrap_or(0)
}

/// The latest epoch's `seq`, if any.
pub fn latest(epochs: &[Epoch]) -> Option<u64> {
    epochs.last().map(|e| e.seq)
}

/// Whether `shares` must be recorded as a new epoch: either split differs from the latest
/// one's, or there is none (the first is recorded settled: nobody held a share of this
/// trigger before).
pub fn changed(epochs: &[Epoch], shares: &Shares) -> bool {
    epochs
        .last()
        .is_none_or(|e| e.shares != shares.captures || e.bytes != shares.bytes)
}

/// The nodes that must hear the latest split before it settles for `kind`: a share of it in
/// any epoch that counts for it.
pub fn holders(epochs: &[Epoch], kind: Kind) -> BTreeSet<&str> {
    counted(epochs, kind)
        .iter()
        .flat_map(|e| e.split(kind).iter())
        .filter(|(_, s)| **s > 0)
        .map(|(n, _)| n.as_str())
        .collect()
}

/// The `seq` of the latest epoch if it settles for `kind` at `now`: it is not settled for it
/// yet, and the kind's window has passed since it was made and since every holder heard it
/// (`heard`, by node). A holder that has not heard it keeps it unsettled.
pub fn settles(
    epochs: &[Epoch],
    heard: &BTreeMap<String, Heard>,
    now: u64,
    kind: Kind,
) -> Option<u64> {
    let last = epochs.last()?;
    if last.settled_at(kind).is_some() {
        return None;
    }
    let mut since = last.created;
    for node in holders(epochs, kind) {
        let h = heard.get(node)?;
        let at = match h.gone {
            Some(gone) => gone,
            None if h.seq >= last.seq => h.at,
            None => return None,
        };
        since = since.max(at);
    }
    (now >= since.saturating_add(kind.window())).then_some(last.seq)
}

/// The first epoch still needed: the earliest of the last settled one of each kind (`None`:
/// some kind has none settled, every epoch is needed). Those before it may be deleted.
pub fn kept_from(epochs: &[Epoch]) -> Option<u64> {
    Kind::ALL
        .iter()
        .map(|k| {
            epochs
                .iter()
                .rev()
                .find(|e| e.settled_at(*k).is_some())
                .map(|e| e.seq)
        })
        .try_fold(u64::MAX, |m, s| s.map(|s| m.min(s)))
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
            bytes: split(s),
            settled,
            bytes_settled: settled,
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
            ["a", "b", "c"].map(|n| effective(&epochs, n, Kind::Captures)),
            [2, 1, 0],
            "b falls at once, c waits"
        );
        // a and b heard at 1001, c at 1500: settles at 1500 + 1 h, not before.
        let mut h = BTreeMap::from([
            ("a".to_owned(), heard(2, 1001)),
            ("b".to_owned(), heard(2, 1001)),
        ]);
        assert_eq!(
            settles(&epochs, &h, 10_000, Kind::Captures),
            None,
            "c has not heard"
        );
        h.insert("c".into(), heard(2, 1500));
        assert_eq!(
            settles(&epochs, &h, 1500 + SETTLE - 1, Kind::Captures),
            None
        );
        assert_eq!(settles(&epochs, &h, 1500 + SETTLE, Kind::Captures), Some(2));
        epochs[1].settled = Some(1500 + SETTLE);
        assert_eq!(
            ["a", "b", "c"].map(|n| effective(&epochs, n, Kind::Captures)),
            [2, 1, 1]
        );
        assert_eq!(
            settles(&epochs, &h, 1_000_000, Kind::Captures),
            None,
            "settled already"
        );
    }

    #[test]
    fn a_node_leaving_grows_nobody_until_it_heard_and_an_hour_passed() {
        let epochs = vec![
            epoch(1, 0, &[("a", 1), ("b", 1), ("c", 1)], Some(0)),
            epoch(2, 100, &[("a", 2), ("b", 1)], None),
        ];
        assert_eq!(
            ["a", "b", "c"].map(|n| effective(&epochs, n, Kind::Captures)),
            [1, 1, 0]
        );
        // c, which left the scope, holds its old share until it hears: it must hear too.
        let mut h = BTreeMap::from([
            ("a".to_owned(), heard(2, 100)),
            ("b".to_owned(), heard(2, 100)),
            ("c".to_owned(), heard(1, 50)),
        ]);
        assert_eq!(settles(&epochs, &h, 100_000, Kind::Captures), None);
        // Forgotten at 200: counted as heard then.
        h.get_mut("c").unwrap().gone = Some(200);
        assert_eq!(settles(&epochs, &h, 200 + SETTLE - 1, Kind::Captures), None);
        assert_eq!(settles(&epochs, &h, 200 + SETTLE, Kind::Captures), Some(2));
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
                    bytes: Split::new(),
                    settled: (i == 0).then_some(0),
                    bytes_settled: None,
                })
                .collect();
            let sum: u64 = names
                .iter()
                .map(|n| effective(&epochs, n, Kind::Captures))
                .sum();
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
        assert_eq!(
            ["a", "b", "c"].map(|n| effective(&epochs, n, Kind::Captures)),
            [1, 0, 0]
        );
        let h = BTreeMap::from([
            ("a".to_owned(), heard(3, 20)),
            ("b".to_owned(), heard(2, 10)),
            ("c".to_owned(), heard(3, 20)),
        ]);
        // b had a share in an unsettled epoch and heard only epoch 2.
        assert_eq!(settles(&epochs, &h, 100_000, Kind::Captures), None);
        let both = |s: &[(&str, u64)]| Shares {
            captures: split(s),
            bytes: split(s),
        };
        assert!(!changed(&epochs, &both(&[("a", 1), ("c", 1)])));
        assert!(changed(&epochs, &both(&[("a", 2)])));
        assert!(changed(&[], &both(&[])));
        // A change of the bytes split alone is a change too.
        assert!(changed(
            &epochs,
            &Shares {
                captures: split(&[("a", 1), ("c", 1)]),
                bytes: split(&[("a", 2)]),
            }
        ));
    }

    #[test]
    fn bytes_settle_a_day_after_everyone_heard_and_captures_after_an_hour() {
        // Two nodes, then c joins: captures 2/2 -> 2/1/1, bytes 500/500 -> 334/333/333.
        let mut epochs = vec![
            Epoch {
                seq: 1,
                created: 0,
                shares: split(&[("a", 2), ("b", 2)]),
                bytes: split(&[("a", 500), ("b", 500)]),
                settled: Some(0),
                bytes_settled: Some(0),
            },
            Epoch {
                seq: 2,
                created: 1000,
                shares: split(&[("a", 2), ("b", 1), ("c", 1)]),
                bytes: split(&[("a", 334), ("b", 333), ("c", 333)]),
                settled: None,
                bytes_settled: None,
            },
        ];
        let bytes = |e: &[Epoch]| ["a", "b", "c"].map(|n| effective(e, n, Kind::Bytes));
        assert_eq!(bytes(&epochs), [334, 333, 0], "falls at once, c waits");
        let h = BTreeMap::from([
            ("a".to_owned(), heard(2, 1001)),
            ("b".to_owned(), heard(2, 1001)),
            ("c".to_owned(), heard(2, 1500)),
        ]);
        assert_eq!(settles(&epochs, &h, 1500 + SETTLE, Kind::Captures), Some(2));
        assert_eq!(settles(&epochs, &h, 1500 + SETTLE, Kind::Bytes), None);
        assert_eq!(
            settles(&epochs, &h, 1500 + BYTES_SETTLE - 1, Kind::Bytes),
            None
        );
        // Settled for captures only: epoch 1 is still needed for the bytes.
        epochs[1].settled = Some(1500 + SETTLE);
        assert_eq!(kept_from(&epochs), Some(1));
        assert_eq!(effective(&epochs, "c", Kind::Captures), 1);
        assert_eq!(bytes(&epochs), [334, 333, 0]);
        assert_eq!(
            settles(&epochs, &h, 1500 + BYTES_SETTLE, Kind::Bytes),
            Some(2)
        );
        epochs[1].bytes_settled = Some(1500 + BYTES_SETTLE);
        assert_eq!(kept_from(&epochs), Some(2));
        assert_eq!(bytes(&epochs), [334, 333, 333]);
        // Epochs from before the bytes pool (no bytes split, never settled for bytes): no
        // bytes share counts until a later epoch settles for bytes.
        let old = vec![
            Epoch {
                seq: 1,
                created: 0,
                shares: split(&[("a", 1)]),
                bytes: Split::new(),
                settled: Some(0),
                bytes_settled: None,
            },
            Epoch {
                seq: 2,
                created: 10,
                shares: split(&[("a", 1)]),
                bytes: split(&[("a", 500)]),
                settled: None,
                bytes_settled: None,
            },
        ];
        assert_eq!(effective(&old, "a", Kind::Bytes), 0);
        assert_eq!(effective(&old, "a", Kind::Captures), 1);
        assert_eq!(kept_from(&old), None);
    }
}
