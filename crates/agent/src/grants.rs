//! Asks for captures beyond a node's local share of a trigger's `captures_per_hour`, or for
//! the bytes its local share of `bytes_per_day` does not cover (issue 14), between the triggers' thread and the link: the thread [`Grants::ask`]s, the link
//! sends the ask ([`Grants::take_unsent`]) and hands the server's [`Grant`] back
//! ([`Grants::answer`]), and the thread takes the answers ([`Grants::take_answers`]), waking
//! as soon as one arrives ([`Grants::wait`]).
//!
//! Never granted without the server: an ask while no connection is up is refused at once, a
//! connection that ends refuses every ask still waiting, and an ask unanswered after
//! [`GRANT_TIMEOUT_MS`] is refused. At most [`MAX_PENDING_ASKS`] wait at once (beyond: refused
//! at once). An ask is never kept for a later connection: a grant is worth something only
//! while the anomaly holds.

use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use edgecap_model::firing::{Ask, GRANT_TIMEOUT_MS, Grant, MAX_PENDING_ASKS};
use tokio::sync::Notify;

/// Why an ask was not granted.
pub type Refusal = String;

/// The asks of this node; clones share them.
#[derive(Debug, Clone, Default)]
pub struct Grants {
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    /// Woken when an answer is ready for the triggers' thread.
    answered: Condvar,
    /// Woken when an ask waits to be sent.
    unsent: Notify,
}

#[derive(Debug, Default)]
struct State {
    connected: bool,
    /// Asks not yet written to the connection.
    unsent: Vec<Ask>,
    /// Capture id -> when its ask stops waiting.
    waiting: BTreeMap<String, Instant>,
    /// Answers not yet taken: capture id -> granted (with the bytes granted from the bytes
    /// pool, 0 when none: not asked, or an older server), or why not.
    answers: Vec<(String, Result<u64, Refusal>)>,
}

fn timeout() -> Duration {
    Duration::from_millis(GRANT_TIMEOUT_MS)
}

impl Grants {
    fn state(&self) -> MutexGuard<'_, State> {
        self.shared
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Asks for one capture. `Err`: refused at once (no connection, too many waiting).
    pub fn ask(&self, ask: Ask) -> Result<(), Refusal> {
        {
            let mut st = self.state();
            if !st.connected {
                return Err("not connected to the server to ask for more".into());
            }
            if st.waiting.len() >= MAX_PENDING_ASKS {
                return Err(format!(
                    "{MAX_PENDING_ASKS} asks wait for the server's answer already"
                ));
            }
            st.waiting
                .insert(ask.capture_id.clone(), Instant::now() + timeout());
            st.unsent.push(ask);
        }
        self.shared.unsent.notify_one();
        Ok(())
    }

    /// A connection is up (true) or ended (false: every ask waiting is refused).
    pub fn set_connected(&self, up: bool) {
        let mut st = self.state();
        st.connected = up;
        if !up {
            st.unsent.clear();
            let lost: Vec<String> = std::mem::take(&mut st.waiting).into_keys().collect();
            st.answers.extend(lost.into_iter().map(|id| {
                let why = "the connection to the server ended before it answered".to_owned();
                (id, Err(why))
            }));
            drop(st);
            self.shared.answered.notify_all();
        }
    }

    /// Asks to send now on the live connection.
    pub fn take_unsent(&self) -> Vec<Ask> {
        std::mem::take(&mut self.state().unsent)
    }

    /// Resolves when an ask waits to be sent.
    pub async fn changed(&self) {
        self.shared.unsent.notified().await;
    }

    /// The server's answer; one for an ask not waiting (late, repeated) is ignored.
    pub fn answer(&self, grant: Grant) {
        let mut st = self.state();
        let id = grant.capture_id.to_ascii_lowercase();
        if st.waiting.remove(&id).is_none() {
            tracing::debug!(capture = %id, "grant for no waiting ask ignored");
            return;
        }
        let result = if grant.granted {
            Ok(grant.bytes.unwrap_or(0))
        } else {
            Err(grant.reason.unwrap_or_else(|| "the server refused".into()))
        };
        st.answers.push((id, result));
        drop(st);
        self.shared.answered.notify_all();
    }

    /// The answers since the last call, with the asks that waited longer than
    /// [`GRANT_TIMEOUT_MS`] at `now` as refusals.
    pub fn take_answers(&self, now: Instant) -> Vec<(String, Result<u64, Refusal>)> {
        let mut st = self.state();
        let late: Vec<String> = st
            .waiting
            .iter()
            .filter(|(_, until)| **until <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in late {
            st.waiting.remove(&id);
            st.unsent.retain(|a| a.capture_id != id);
            st.answers.push((
                id,
                Err(format!(
                    "the server did not answer within {GRANT_TIMEOUT_MS} ms"
                )),
            ));
        }
        std::mem::take(&mut st.answers)
    }

    /// Sleeps up to `d`, less when an answer arrives (or is there already), or when a
    /// waiting ask times out.
    pub fn wait(&self, d: Duration) {
        let st = self.state();
        if !st.answers.is_empty() {
            return;
        }
        let now = Instant::now();
        let d = st
            .waiting
            .values()
            .map(|until| until.saturating_duration_since(now))
            .fold(d, Duration::min);
        let _ = self
            .shared
            .answered
            .wait_timeout_while(st, d, |st| st.answers.is_empty());
    }

    /// Asks waiting for an answer.
    pub fn waiting(&self) -> usize {
        self.state().waiting.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(n: u8) -> Ask {
        Ask {
            trigger_id: "ab".repeat(16),
            capture_id: format!("{n:02x}").repeat(16),
            key: None,
            at: 100,
            bytes: None,
            capture: true,
        }
    }

    fn grant(n: u8, granted: bool) -> Grant {
        Grant {
            trigger_id: "ab".repeat(16),
            capture_id: format!("{n:02X}").repeat(16),
            granted,
            reason: (!granted).then(|| "budget.captures_per_hour: the pool is spent".into()),
            bytes: None,
        }
    }

    #[test]
    fn without_a_connection_an_ask_is_refused_at_once() {
        let g = Grants::default();
        let why = g.ask(ask(1)).unwrap_err();
        assert!(why.contains("not connected"), "{why}");
        assert!(g.take_unsent().is_empty() && g.waiting() == 0);
        // Up, then down: an ask made meanwhile is refused when the connection ends.
        g.set_connected(true);
        g.ask(ask(2)).unwrap();
        assert_eq!(g.take_unsent(), vec![ask(2)]);
        g.set_connected(false);
        let answers = g.take_answers(Instant::now());
        assert_eq!(answers.len(), 1);
        assert!(answers[0].1.as_ref().unwrap_err().contains("connection"));
        assert!(g.ask(ask(3)).is_err());
    }

    #[test]
    fn answers_reach_their_asks_and_others_are_ignored() {
        let g = Grants::default();
        g.set_connected(true);
        g.ask(ask(1)).unwrap();
        g.ask(ask(2)).unwrap();
        assert_eq!(g.take_unsent().len(), 2);
        // Ids are case-insensitive; a grant for no ask, or a second one, changes nothing.
        g.answer(grant(1, true));
        g.answer(grant(1, false));
        g.answer(grant(9, true));
        g.answer(grant(2, false));
        let answers = g.take_answers(Instant::now());
        assert_eq!(answers.len(), 2, "{answers:?}");
        assert_eq!(answers[0], ("01".repeat(16), Ok(0)));
        assert_eq!(answers[1].0, "02".repeat(16));
        assert!(answers[1].1.as_ref().unwrap_err().starts_with("budget."));
        assert_eq!(g.waiting(), 0);
    }

    #[test]
    fn granted_bytes_reach_their_ask() {
        let g = Grants::default();
        g.set_connected(true);
        g.ask(Ask {
            bytes: Some(700_000),
            capture: false,
            ..ask(1)
        })
        .unwrap();
        let sent = g.take_unsent();
        assert_eq!((sent[0].bytes, sent[0].capture), (Some(700_000), false));
        g.answer(Grant {
            bytes: Some(500_000),
            ..grant(1, true)
        });
        assert_eq!(
            g.take_answers(Instant::now()),
            vec![("01".repeat(16), Ok(500_000))]
        );
    }

    #[test]
    fn an_unanswered_ask_is_refused_after_the_timeout_and_asks_are_bounded() {
        let g = Grants::default();
        g.set_connected(true);
        for i in 0..MAX_PENDING_ASKS {
            g.ask(ask(i as u8)).unwrap();
        }
        let why = g.ask(ask(200)).unwrap_err();
        assert!(why.contains("wait"), "{why}");
        // Nothing is late yet; after the timeout every ask is, sent or not.
        assert!(g.take_answers(Instant::now()).is_empty());
        let later = Instant::now() + timeout();
        let answers = g.take_answers(later);
        assert_eq!(answers.len(), MAX_PENDING_ASKS);
        assert!(
            answers
                .iter()
                .all(|(_, r)| r.as_ref().is_err_and(|w| w.contains("did not answer")))
        );
        assert!(g.take_unsent().is_empty() && g.waiting() == 0);
        // A grant arriving after the timeout is ignored.
        g.answer(grant(1, true));
        assert!(g.take_answers(later).is_empty());
    }

    #[test]
    fn the_waiting_thread_wakes_when_an_answer_arrives() {
        let g = Grants::default();
        g.set_connected(true);
        g.ask(ask(1)).unwrap();
        let answering = g.clone();
        let t = std::thread::spawn(move || answering.answer(grant(1, true)));
        // Woken by the answer (or, at the latest, by the ask's timeout): either way it is
        // there to take, granted, well before the timeout would have refused it.
        g.wait(Duration::from_secs(30));
        t.join().unwrap();
        let answers = g.take_answers(Instant::now());
        assert_eq!(answers, vec![("01".repeat(16), Ok(0))]);
    }
}
