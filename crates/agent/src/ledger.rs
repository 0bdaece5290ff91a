//! What this node is doing and what it still has to tell the server. Capture threads write
//! here (progress, outcomes); the connection task reads it (what to send, what to say in
//! `hello`). It outlives connections: a capture keeps running while the server is away, and
//! its outcome waits here.
//!
//! Outcomes are kept after they were sent, up to [`RECENT`] of them, and repeated in every
//! `hello`: a `done` written just before a connection broke may never have been read, and the
//! server ignores an outcome for a part that is already finished, so repeating is safe.
//!
//! The std `Mutex` is never held across an `.await`; every critical section is a few map
//! operations.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use edgecap_model::firing::MAX_PENDING_REPORTS;
use edgecap_model::{AgentMsg, Outcome};
use tokio::sync::Notify;

/// Outcomes remembered for repeating in `hello`.
pub const RECENT: usize = 256;

/// Counters of a running capture.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub packets: u64,
    pub bytes: u64,
    pub lost: u64,
}

/// A handle on the ledger; clones share it.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    /// Woken when there is something to send.
    changed: Notify,
}

#[derive(Debug, Default)]
struct State {
    running: BTreeMap<String, Running>,
    /// Outcomes not yet written to a connection, oldest first.
    unsent: VecDeque<Outcome>,
    /// The last [`RECENT`] outcomes, sent or not, oldest first.
    recent: VecDeque<Outcome>,
    /// Trigger reports (fired, ended, signed) not yet written to a connection, oldest first,
    /// at most [`MAX_PENDING_REPORTS`].
    reports: VecDeque<AgentMsg>,
    /// Captures the agent started itself whose `fired` report has not been sent: the server
    /// hears of them (hello, progress, done) only after it.
    unannounced: BTreeSet<String>,
}

#[derive(Debug)]
struct Running {
    stop: Arc<AtomicBool>,
    /// The latest counters, until they are sent.
    progress: Option<Counters>,
}

/// What [`Ledger::begin`] found.
#[derive(Debug, Clone)]
pub enum Begin {
    /// Recorded as running; start it with this stop flag.
    New(Arc<AtomicBool>),
    /// Already running here (a repeated assignment).
    Running,
    /// Already finished here; this is how.
    Finished(Outcome),
}

impl Ledger {
    fn state(&self) -> MutexGuard<'_, State> {
        // Each critical section leaves the maps consistent, so a panic elsewhere while holding
        // the lock leaves usable state.
        self.shared
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records a capture as running, unless it runs or ran here already.
    pub fn begin(&self, capture_id: &str) -> Begin {
        let mut st = self.state();
        if st.running.contains_key(capture_id) {
            return Begin::Running;
        }
        if let Some(o) = st.recent.iter().find(|o| o.capture_id == capture_id) {
            return Begin::Finished(o.clone());
        }
        let stop = Arc::new(AtomicBool::new(false));
        st.running.insert(
            capture_id.to_owned(),
            Running {
                stop: stop.clone(),
                progress: None,
            },
        );
        Begin::New(stop)
    }

    /// New counters of a running capture.
    pub fn progress(&self, capture_id: &str, c: Counters) {
        if let Some(r) = self.state().running.get_mut(capture_id) {
            r.progress = Some(c);
        }
        self.shared.changed.notify_one();
    }

    /// A capture ended (or never started): record how, to send it.
    pub fn finish(&self, outcome: Outcome) {
        {
            let mut st = self.state();
            st.running.remove(&outcome.capture_id);
            st.recent.retain(|o| o.capture_id != outcome.capture_id);
            if st.recent.len() >= RECENT {
                st.recent.pop_front();
            }
            st.recent.push_back(outcome.clone());
            st.unsent.push_back(outcome);
        }
        self.shared.changed.notify_one();
    }

    /// Asks a running capture to stop; false if it does not run here.
    pub fn stop(&self, capture_id: &str) -> bool {
        match self.state().running.get(capture_id) {
            Some(r) => {
                r.stop.store(true, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    /// Asks every running capture to stop; how many there were.
    pub fn stop_all(&self) -> usize {
        let st = self.state();
        for r in st.running.values() {
            r.stop.store(true, Ordering::Relaxed);
        }
        st.running.len()
    }

    /// Ids of the running captures.
    pub fn running(&self) -> Vec<String> {
        self.state().running.keys().cloned().collect()
    }

    pub fn is_idle(&self) -> bool {
        self.state().running.is_empty()
    }

    /// A trigger report to send (oldest first); when [`MAX_PENDING_REPORTS`] wait already,
    /// the oldest is dropped (and counted). `announces`: the capture a `fired` report starts,
    /// which the server hears nothing else of before the report.
    pub fn report(&self, msg: AgentMsg, announces: Option<&str>) {
        {
            let mut st = self.state();
            if let Some(id) = announces {
                st.unannounced.insert(id.to_owned());
            }
            while st.reports.len() >= MAX_PENDING_REPORTS {
                if let Some(AgentMsg::Fired { firing }) = st.reports.pop_front()
                    && let Some(id) = &firing.capture_id
                {
                    st.unannounced.remove(id);
                }
                crate::metrics::agent().report_dropped();
            }
            st.reports.push_back(msg);
        }
        self.shared.changed.notify_one();
    }

    /// Trigger reports waiting to be sent.
    pub fn pending_reports(&self) -> usize {
        self.state().reports.len()
    }

    /// The outcome of a capture that finished here (among the last [`RECENT`]).
    pub fn outcome(&self, capture_id: &str) -> Option<Outcome> {
        self.state()
            .recent
            .iter()
            .find(|o| o.capture_id == capture_id)
            .cloned()
    }

    /// For a new connection's `hello`: the running captures and the recent outcomes. Nothing
    /// is left unsent afterwards, since the hello carries it all, except what is about
    /// captures whose `fired` report waits: their outcomes follow the report.
    pub fn for_hello(&self) -> (Vec<String>, Vec<Outcome>) {
        let mut st = self.state();
        let st = &mut *st;
        let unannounced = &st.unannounced;
        st.unsent.retain(|o| unannounced.contains(&o.capture_id));
        for r in st.running.values_mut() {
            r.progress = None;
        }
        (
            st.running
                .keys()
                .filter(|id| !unannounced.contains(*id))
                .cloned()
                .collect(),
            st.recent
                .iter()
                .filter(|o| !unannounced.contains(&o.capture_id))
                .cloned()
                .collect(),
        )
    }

    /// Messages to send now on a live connection: trigger reports first (a `fired` before
    /// anything about its capture), then outcomes, then the latest counters of each running
    /// capture that changed.
    pub fn outbox(&self) -> Vec<AgentMsg> {
        let mut st = self.state();
        let mut out: Vec<AgentMsg> = st.reports.drain(..).collect();
        st.unannounced.clear();
        out.extend(
            st.unsent
                .drain(..)
                .map(|outcome| AgentMsg::Done { outcome }),
        );
        for (id, r) in st.running.iter_mut() {
            if let Some(c) = r.progress.take() {
                out.push(AgentMsg::Progress {
                    capture_id: id.clone(),
                    packets: c.packets,
                    bytes: c.bytes,
                    lost: c.lost,
                });
            }
        }
        out
    }

    /// Resolves when something was recorded since the last call (or the last `outbox`).
    pub async fn changed(&self) {
        self.shared.changed.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(id: &str, packets: u64) -> Outcome {
        Outcome {
            capture_id: id.into(),
            ok: true,
            error: None,
            packets,
            bytes: 0,
            lost: 0,
            stop_reason: Some("time-limit".into()),
            file: None,
        }
    }

    #[test]
    fn a_capture_runs_once_and_its_outcome_is_sent_once_but_kept() {
        let l = Ledger::default();
        let stop = match l.begin("a") {
            Begin::New(s) => s,
            other => panic!("{other:?}"),
        };
        assert!(matches!(l.begin("a"), Begin::Running));
        assert!(l.stop("a") && stop.load(Ordering::Relaxed));
        assert!(!l.stop("b"));
        l.progress(
            "a",
            Counters {
                packets: 3,
                ..Counters::default()
            },
        );
        assert!(matches!(
            &l.outbox()[..],
            [AgentMsg::Progress { packets: 3, .. }]
        ));
        assert!(l.outbox().is_empty(), "progress is sent once");
        l.finish(outcome("a", 5));
        assert!(l.is_idle());
        assert!(matches!(&l.outbox()[..], [AgentMsg::Done { .. }]));
        assert!(l.outbox().is_empty());
        assert!(matches!(l.begin("a"), Begin::Finished(o) if o == outcome("a", 5)));
        // Every hello repeats it.
        assert_eq!(l.for_hello(), (vec![], vec![outcome("a", 5)]));
        assert_eq!(l.for_hello().1.len(), 1);
    }

    fn fired(id: &str) -> AgentMsg {
        AgentMsg::Fired {
            firing: edgecap_model::firing::Firing {
                trigger_id: "t".into(),
                capture_id: Some(id.into()),
                key: None,
                started: 1,
                at: 2,
                value: 3.0,
                peak: 3.0,
                refused: None,
                capture: None,
            },
        }
    }

    #[test]
    fn a_fired_report_goes_before_anything_about_its_capture_even_across_a_hello() {
        let l = Ledger::default();
        // Fired while the server was away; the capture ran and ended meanwhile.
        l.report(fired("trig"), Some("trig"));
        assert!(matches!(l.begin("trig"), Begin::New(_)));
        assert!(matches!(l.begin("other"), Begin::New(_)));
        l.finish(outcome("trig", 7));
        // The hello leaves it out; its report and then its outcome follow.
        let (running, finished) = l.for_hello();
        assert_eq!(running, ["other"]);
        assert!(finished.is_empty());
        let out = l.outbox();
        assert!(matches!(&out[0], AgentMsg::Fired { .. }), "{out:?}");
        assert!(
            matches!(&out[1], AgentMsg::Done { outcome } if outcome.capture_id == "trig"),
            "{out:?}"
        );
        // Announced: the next hello carries it as any other.
        assert_eq!(l.for_hello().1, vec![outcome("trig", 7)]);
    }

    #[test]
    fn reports_waiting_for_the_server_are_bounded_oldest_dropped() {
        let l = Ledger::default();
        for i in 0..MAX_PENDING_REPORTS + 5 {
            l.report(fired(&format!("c{i}")), Some(&format!("c{i}")));
        }
        assert_eq!(l.pending_reports(), MAX_PENDING_REPORTS);
        let out = l.outbox();
        assert!(matches!(&out[0], AgentMsg::Fired { firing }
            if firing.capture_id.as_deref() == Some("c5")));
        // The dropped ones' captures are no longer held back from the hello.
        assert!(matches!(l.begin("c0"), Begin::New(_)));
        assert_eq!(l.for_hello().0, ["c0"]);
    }

    #[test]
    fn a_hello_carries_what_was_unsent_and_recent_is_bounded() {
        let l = Ledger::default();
        for i in 0..(RECENT + 10) {
            let id = format!("c{i}");
            assert!(matches!(l.begin(&id), Begin::New(_)));
            l.finish(outcome(&id, i as u64));
        }
        let _ = l.begin("live");
        let (running, recent) = l.for_hello();
        assert_eq!(running, ["live"]);
        assert_eq!(recent.len(), RECENT);
        assert_eq!(recent[0].capture_id, "c10");
        assert!(
            l.outbox().is_empty(),
            "the hello carried the unsent outcomes"
        );
        assert_eq!(l.stop_all(), 1);
    }
}
