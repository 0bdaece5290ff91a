//! The matching window: packets waiting to be matched, by key, in arrival order, with a time
//! limit and a size limit. This is what keeps memory bounded by the traffic inside one window
//! (and the number of flows), never by the file size.
//!
//! An entry leaves the window when it is matched (diff), when `window_ns` of capture time has
//! passed since it arrived (the caller then records it as final: unmatched, or seen only where
//! it was seen), when the window holds `cap` entries and a new one arrives (the oldest leaves
//! early; counted in [`Window::early`], and reported), or at the end.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

/// One key's waiting entries, oldest first. The first is inline: most keys have one.
#[derive(Debug)]
struct Slot<V> {
    first: (u64, V),
    rest: VecDeque<(u64, V)>,
}

#[derive(Debug)]
pub(crate) struct Window<K, V> {
    map: HashMap<K, Slot<V>>,
    /// (arrival time, key, sequence) in arrival order; entries already matched stay here until
    /// they reach the front and are found stale.
    order: VecDeque<(i64, K, u64)>,
    next_seq: u64,
    now: i64,
    window_ns: i64,
    cap: usize,
    /// Entries that left before their time because the window was full.
    pub(crate) early: u64,
}

impl<K: Hash + Eq + Copy, V> Window<K, V> {
    pub(crate) fn new(window_ns: i64, cap: usize) -> Self {
        Window {
            map: HashMap::new(),
            order: VecDeque::new(),
            next_seq: 0,
            now: i64::MIN,
            window_ns: window_ns.max(0),
            cap: cap.max(1),
            early: 0,
        }
    }

    /// Moves the clock to `ts` (it never goes back) and hands every entry older than the
    /// window to `expire`.
    pub(crate) fn advance(&mut self, ts: i64, mut expire: impl FnMut(K, V)) {
        self.now = self.now.max(ts);
        let horizon = self.now.saturating_sub(self.window_ns);
        while let Some(&(at, key, seq)) = self.order.front() {
            if at >= horizon {
                break;
            }
            self.order.pop_front();
            if let Some(v) = self.take_if_front(key, seq) {
                expire(key, v);
            }
        }
    }

    /// The oldest waiting entry for `key` for which `pred` holds.
    pub(crate) fn find_mut(&mut self, key: &K, pred: impl Fn(&V) -> bool) -> Option<&mut V> {
        let slot = self.map.get_mut(key)?;
        if pred(&slot.first.1) {
            return Some(&mut slot.first.1);
        }
        slot.rest.iter_mut().map(|(_, v)| v).find(|v| pred(v))
    }

    /// The oldest waiting entry for `key`.
    pub(crate) fn oldest(&self, key: &K) -> Option<&V> {
        self.map.get(key).map(|s| &s.first.1)
    }

    /// Removes and returns the oldest waiting entry for `key`.
    pub(crate) fn pop_oldest(&mut self, key: &K) -> Option<V> {
        let seq = self.map.get(key)?.first.0;
        self.take_if_front(*key, seq)
    }

    /// Adds an entry that arrived at `ts`. When the window is full, the oldest entries leave
    /// early through `expire`.
    pub(crate) fn push(&mut self, key: K, ts: i64, v: V, mut expire: impl FnMut(K, V)) {
        let seq = self.next_seq;
        self.next_seq += 1;
        match self.map.get_mut(&key) {
            Some(slot) => slot.rest.push_back((seq, v)),
            None => {
                self.map.insert(
                    key,
                    Slot {
                        first: (seq, v),
                        rest: VecDeque::new(),
                    },
                );
            }
        }
        self.order.push_back((ts, key, seq));
        while self.order.len() > self.cap {
            let Some((_, key, seq)) = self.order.pop_front() else {
                break;
            };
            if let Some(v) = self.take_if_front(key, seq) {
                self.early += 1;
                expire(key, v);
            }
        }
    }

    /// Hands every remaining entry to `expire`, oldest first.
    pub(crate) fn drain(&mut self, mut expire: impl FnMut(K, V)) {
        while let Some((_, key, seq)) = self.order.pop_front() {
            if let Some(v) = self.take_if_front(key, seq) {
                expire(key, v);
            }
        }
    }

    /// Removes `key`'s oldest entry if it is the one numbered `seq` (otherwise the queue entry
    /// was stale: that entry was matched already).
    fn take_if_front(&mut self, key: K, seq: u64) -> Option<V> {
        let slot = self.map.get_mut(&key)?;
        if slot.first.0 != seq {
            return None;
        }
        match slot.rest.pop_front() {
            Some(next) => Some(std::mem::replace(&mut slot.first, next).1),
            None => self.map.remove(&key).map(|s| s.first.1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Window;

    #[test]
    fn expires_by_time_in_arrival_order_and_skips_matched_entries() {
        let mut w: Window<u8, &str> = Window::new(10, 100);
        let mut out = Vec::new();
        w.push(1, 0, "a0", |_, _| unreachable!());
        w.push(1, 1, "a1", |_, _| unreachable!());
        w.push(2, 2, "b", |_, _| unreachable!());
        assert_eq!(w.pop_oldest(&1), Some("a0"));
        assert_eq!(w.oldest(&1), Some(&"a1"));
        w.advance(12, |k, v| out.push((k, v)));
        assert_eq!(out, vec![(1, "a1")]);
        w.advance(5, |k, v| out.push((k, v)));
        assert_eq!(out.len(), 1, "the clock never goes back");
        w.drain(|k, v| out.push((k, v)));
        assert_eq!(out, vec![(1, "a1"), (2, "b")]);
    }

    #[test]
    fn a_full_window_lets_the_oldest_go_early() {
        let mut w: Window<u8, u8> = Window::new(1_000, 2);
        let mut out = Vec::new();
        for i in 0..4 {
            w.push(i, 0, i, |k, v| out.push((k, v)));
        }
        assert_eq!(out, vec![(0, 0), (1, 1)]);
        assert_eq!(w.early, 2);
        assert!(w.find_mut(&3, |v| *v == 3).is_some());
        assert!(w.find_mut(&3, |v| *v == 4).is_none());
    }
}
