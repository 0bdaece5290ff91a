//! The budget shared by the sink and its upload task: how many chunks are handed over and not
//! yet uploaded, the bytes held, what the store confirmed, and the first failure. A std
//! `Mutex` + `Condvar`, because the writer side is a plain thread that must wait with a
//! timeout, and the task side only ever holds the lock for a few instructions.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
pub(crate) struct State {
    /// Chunks handed to the task and not yet joined (queued or in flight).
    pub(crate) used: usize,
    /// Bytes of buffers alive in the pipeline (the sink's chunk included).
    pub(crate) held: u64,
    pub(crate) peak: u64,
    /// Bytes and parts the store confirmed.
    pub(crate) uploaded: u64,
    pub(crate) parts: u64,
    /// The first failure; every later write repeats it.
    pub(crate) failed: Option<String>,
}

#[derive(Debug)]
pub(crate) struct Slots {
    state: Mutex<State>,
    changed: Condvar,
    capacity: usize,
}

impl Slots {
    pub(crate) fn new(capacity: usize) -> Self {
        Slots {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            capacity,
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock leaves plain counters behind; they stay usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a slot for a chunk about to be handed over, waiting up to `timeout` for one.
    /// Fails at once once the upload has failed, and fails the upload on timeout.
    pub(crate) fn acquire(&self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let mut st = self.lock();
        loop {
            if let Some(why) = &st.failed {
                return Err(why.clone());
            }
            if st.used < self.capacity {
                st.used += 1;
                return Ok(());
            }
            let now = Instant::now();
            if now >= deadline {
                let why = format!(
                    "the store took no part for {:.0?} while the upload buffer was full \
                     ({} chunks waiting)",
                    timeout, st.used
                );
                st.failed = Some(why.clone());
                self.changed.notify_all();
                return Err(why);
            }
            st = self
                .changed
                .wait_timeout(st, deadline - now)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }

    /// Accounts a newly allocated buffer of `bytes`.
    pub(crate) fn hold(&self, bytes: u64) {
        let mut st = self.lock();
        st.held += bytes;
        st.peak = st.peak.max(st.held);
    }

    /// A part of `bytes` was confirmed: its slot and buffer are free.
    pub(crate) fn confirmed(&self, bytes: u64, frees_slot: bool) {
        let mut st = self.lock();
        if frees_slot {
            st.used = st.used.saturating_sub(1);
        }
        st.held = st.held.saturating_sub(bytes);
        st.uploaded += bytes;
        st.parts += 1;
        self.changed.notify_all();
    }

    /// Records the first failure and wakes a waiting writer.
    pub(crate) fn fail(&self, why: String) {
        let mut st = self.lock();
        if st.failed.is_none() {
            st.failed = Some(why);
        }
        self.changed.notify_all();
    }

    pub(crate) fn failure(&self) -> Option<String> {
        self.lock().failed.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_full_budget_waits_then_fails_loudly() {
        let s = Slots::new(1);
        s.acquire(Duration::from_millis(1)).unwrap();
        let err = s.acquire(Duration::from_millis(20)).unwrap_err();
        assert!(err.contains("took no part"), "{err}");
        // Failed for good: even a freed slot does not revive it.
        s.confirmed(10, true);
        assert_eq!(s.acquire(Duration::from_millis(1)).unwrap_err(), err);
    }

    #[test]
    fn a_confirmed_part_wakes_the_writer() {
        let s = Arc::new(Slots::new(1));
        s.acquire(Duration::from_millis(1)).unwrap();
        let s2 = Arc::clone(&s);
        let t = std::thread::spawn(move || s2.acquire(Duration::from_secs(30)));
        std::thread::sleep(Duration::from_millis(20));
        s.confirmed(5, true);
        assert!(t.join().unwrap().is_ok());
        let st = s.lock();
        assert_eq!((st.used, st.parts, st.uploaded), (1, 1, 5));
    }

    #[test]
    fn peak_tracks_the_most_held() {
        let s = Slots::new(2);
        s.hold(10);
        s.hold(10);
        s.confirmed(10, false);
        s.hold(5);
        let st = s.lock();
        assert_eq!((st.held, st.peak), (15, 20));
    }
}
