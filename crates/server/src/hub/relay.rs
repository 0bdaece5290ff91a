//! Look-back queries across replicas (PostgreSQL): a simple capture or a size estimate made
//! through one replica reaches the nodes whose sessions another replica holds.
//!
//! The asking replica writes one row per other replica concerned (`lookback_relays`, the
//! query and the node names) and wakes it (`NOTIFY` "query <id>", `replica.rs`); that replica
//! asks its nodes as for a request of its own (`Hub::ask_here`: the same per-node deadline,
//! chunk checks and bounds), writes their replies into the row (JSON; sealed with the secrets
//! key, context `lookback:<id>`, when they hold samples, which are packet bytes) and wakes
//! the asker ("answered <id>"). The asker waits at most the query's deadline and
//! [`RELAY_SLACK`], then reads and deletes the row in one statement, whether it was woken or
//! not (a lost notification costs the wait, not the answer). Nodes without a reply by then
//! are [`Reply::ReplicaSilent`]: named, with their replica, as not answering.
//!
//! Bounds: at most [`MAX_RELAYS`] relays wait for answers in one process (more: their nodes
//! are answered busy, [`Reply::RelaysBusy`], naming the bound; nothing is written), at most
//! [`MAX_SERVED`] questions of other replicas are answered at once (more: not answered and
//! logged with the bound; the asker names the nodes as not answering at its deadline, and the
//! row goes with its asker's `take` or the sweep); rows live at most their wait and a minute
//! (`expires`, swept by `replicas::sweep`); the replies hold what
//! the query's limits allow (`Hub::ask_here`), the asker cuts each sample again
//! (`crate::samples::bound`) and applies its own total over every node.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use edgecap_model::lookback::RingQuery;
use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use super::Hub;
use super::lookback::{Ask, NodeReply, Reply};
use crate::clock;
use crate::credentials::relay_context;
use crate::db::{relays, replicas};

/// What the asker waits beyond the query's deadline for the other replica's answer: its
/// database round trips and notifications.
pub const RELAY_SLACK: Duration = Duration::from_millis(1500);
/// Relays waiting for their answers at once in one process.
pub const MAX_RELAYS: usize = 1024;
/// Other replicas' questions answered at once by one process.
pub const MAX_SERVED: usize = 256;
/// A row is deleted by the sweep this long after its asker's wait, should the asker die.
const KEEP: Duration = Duration::from_secs(60);

/// The question in a relay row.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Request {
    nodes: Vec<String>,
    query: RingQuery,
    deadline_ms: u64,
    total_limit: u64,
}

/// The relays of this process waiting for their answers (relay id -> wake-up), and the
/// permits for answering other replicas.
#[derive(Debug)]
pub(super) struct Relays {
    waiting: Mutex<HashMap<String, oneshot::Sender<()>>>,
    serving: Arc<Semaphore>,
}

impl Default for Relays {
    fn default() -> Self {
        Relays {
            waiting: Mutex::new(HashMap::new()),
            serving: Arc::new(Semaphore::new(MAX_SERVED)),
        }
    }
}

impl Relays {
    fn waiting(&self) -> std::sync::MutexGuard<'_, HashMap<String, oneshot::Sender<()>>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new relay waiting for its answer (woken through [`Relays::answered`]; no longer
    /// waiting once the [`Waiting`] is dropped); None when [`MAX_RELAYS`] wait already.
    fn wait(&self) -> Option<(Waiting<'_>, oneshot::Receiver<()>)> {
        let id = crate::secret::new_id();
        let (tx, rx) = oneshot::channel();
        let mut waiting = self.waiting();
        if waiting.len() >= MAX_RELAYS {
            return None;
        }
        waiting.insert(id.clone(), tx);
        Some((Waiting { relays: self, id }, rx))
    }

    /// Wakes the relay `id` (its answer was written), if it still waits.
    fn answered(&self, id: &str) {
        if let Some(tx) = self.waiting().remove(id) {
            let _ = tx.send(());
        }
    }

    /// A permit to answer another replica's question, held while answering; None when
    /// [`MAX_SERVED`] are being answered already.
    fn serve(&self) -> Option<OwnedSemaphorePermit> {
        self.serving.clone().try_acquire_owned().ok()
    }
}

/// Removes a relay from the waiting ones when its asker is done (or dropped).
struct Waiting<'a> {
    relays: &'a Relays,
    id: String,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.relays.waiting().remove(&self.id);
    }
}

impl Hub {
    /// Asks `nodes`, whose sessions `replica` holds, through that replica; one reply per
    /// node, in the order given.
    pub(super) async fn relay(&self, replica: &str, nodes: &[String], ask: &Ask) -> Vec<NodeReply> {
        let all = |reply: Reply| -> Vec<NodeReply> {
            nodes
                .iter()
                .map(|n| NodeReply {
                    node: n.clone(),
                    reply: reply.clone(),
                })
                .collect()
        };
        let wait = ask.deadline + RELAY_SLACK;
        if !self.shared.replica.shared {
            return all(Reply::ReplicaSilent(replica.to_owned(), Duration::ZERO));
        }
        let Some((waiting, rx)) = self.shared.relays.wait() else {
            tracing::warn!(%replica, nodes = nodes.len(),
                "{MAX_RELAYS} look-back relays wait for answers; these nodes are answered busy");
            return all(Reply::RelaysBusy);
        };
        let id = waiting.id.clone();
        let request = Request {
            nodes: nodes.to_vec(),
            query: ask.query.clone(),
            deadline_ms: u64::try_from(ask.deadline.as_millis()).unwrap_or(u64::MAX),
            total_limit: ask.total_limit,
        };
        let asked = async {
            let text = serde_json::to_string(&request).map_err(|e| e.to_string())?;
            relays::ask(
                self.db(),
                &id,
                self.replica_id(),
                replica,
                &text,
                &clock::after(wait + KEEP),
            )
            .await
            .map_err(|e| e.to_string())?;
            replicas::notify(self.db(), replica, &format!("query {id}"))
                .await
                .map_err(|e| e.to_string())
        };
        if let Err(e) = asked.await {
            tracing::error!(%replica, error = %e, "cannot relay a look-back query");
            let _ = relays::take(self.db(), &id).await;
            return all(Reply::Failed(format!(
                "its replica {replica} could not be asked: {e}"
            )));
        }
        // Woken by the answer, or at the deadline: either way the row says what came.
        let _ = tokio::time::timeout(wait, rx).await;
        let replies = match relays::take(self.db(), &id).await {
            Ok(Some((text, sealed))) => match self.open_answer(&id, &text, sealed) {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(%replica, error = %e, "unreadable look-back relay answer");
                    return all(Reply::Failed(format!(
                        "the answer of its replica {replica} is unreadable: {e}"
                    )));
                }
            },
            Ok(None) => Vec::new(),
            Err(e) => {
                tracing::error!(%replica, error = %e, "cannot read a look-back relay answer");
                Vec::new()
            }
        };
        let mut by_node: HashMap<String, Reply> =
            replies.into_iter().map(|r| (r.node, r.reply)).collect();
        nodes
            .iter()
            .map(|n| {
                let mut reply = by_node
                    .remove(n)
                    .unwrap_or_else(|| Reply::ReplicaSilent(replica.to_owned(), wait));
                if let Reply::Answered(a) = &mut reply {
                    a.samples
                        .truncate(usize::try_from(ask.query.limit).unwrap_or(usize::MAX));
                    a.samples.iter_mut().for_each(crate::samples::bound);
                }
                NodeReply {
                    node: n.clone(),
                    reply,
                }
            })
            .collect()
    }

    fn open_answer(&self, id: &str, text: &str, sealed: bool) -> Result<Vec<NodeReply>, String> {
        let plain = if sealed {
            self.vault()
                .open_bytes(text, &relay_context(id))
                .map_err(|e| e.to_string())?
        } else {
            text.as_bytes().to_vec()
        };
        serde_json::from_slice(&plain).map_err(|e| e.to_string())
    }

    /// The answer of another replica to a relay of this one has been written.
    pub(super) fn relay_answered(&self, id: &str) {
        self.shared.relays.answered(id);
    }

    /// Another replica asks this one's nodes (relay `id`): answered on a task of its own,
    /// so the notification loop goes on; beyond [`MAX_SERVED`] at once, not answered.
    pub(super) fn relay_asked(&self, id: String) {
        let Some(permit) = self.shared.relays.serve() else {
            tracing::warn!(relay = %id, "{MAX_SERVED} look-back relays are being answered; \
                this one is not (its asker names the nodes as not answering)");
            return;
        };
        let hub = self.clone();
        tokio::spawn(async move {
            if let Err(e) = hub.serve_relay(&id).await {
                tracing::error!(relay = %id, error = %e, "cannot answer a look-back relay");
            }
            drop(permit);
        });
    }

    async fn serve_relay(&self, id: &str) -> Result<(), String> {
        let Some((asker, text)) = relays::request(self.db(), id, self.replica_id())
            .await
            .map_err(|e| e.to_string())?
        else {
            return Ok(());
        };
        let request: Request = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        let ask = Ask {
            query: request.query,
            deadline: Duration::from_millis(request.deadline_ms),
            total_limit: request.total_limit,
        };
        let replies = self.ask_here(&request.nodes, &ask).await;
        let holds_samples = replies
            .iter()
            .any(|r| matches!(&r.reply, Reply::Answered(a) if !a.samples.is_empty()));
        let plain = serde_json::to_vec(&replies).map_err(|e| e.to_string())?;
        let (answer, sealed) = if holds_samples {
            match self.vault().seal_bytes(&plain, &relay_context(id)) {
                Ok(s) => (s, true),
                Err(e) => {
                    // Samples never cross in the clear: the nodes are named as failed.
                    let reasons: Vec<&str> = e.errors.iter().map(|e| e.message.as_str()).collect();
                    let why = format!(
                        "its replica cannot seal the samples for the replica that asked: {}",
                        reasons.join("; ")
                    );
                    let failed: Vec<NodeReply> = replies
                        .into_iter()
                        .map(|r| NodeReply {
                            node: r.node,
                            reply: Reply::Failed(why.clone()),
                        })
                        .collect();
                    (
                        serde_json::to_string(&failed).map_err(|e| e.to_string())?,
                        false,
                    )
                }
            }
        } else {
            (String::from_utf8(plain).map_err(|e| e.to_string())?, false)
        };
        let stored = relays::answer(self.db(), id, &answer, sealed)
            .await
            .map_err(|e| e.to_string())?;
        if stored {
            replicas::notify(self.db(), &asker, &format!("answered {id}"))
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiting_relays_stop_at_max_relays_and_make_room_when_one_ends() {
        let relays = Relays::default();
        let mut held: Vec<_> = (0..MAX_RELAYS)
            .map(|i| relays.wait().unwrap_or_else(|| panic!("relay {i} refused")))
            .collect();
        assert_eq!(relays.waiting().len(), MAX_RELAYS);
        // One more is refused, and changes nothing.
        assert!(relays.wait().is_none());
        assert!(relays.wait().is_none());
        assert_eq!(relays.waiting().len(), MAX_RELAYS);
        // Its nodes are told why, with the bound, as busy.
        let reason = Reply::RelaysBusy.reason("edge3").unwrap();
        assert_eq!(Reply::RelaysBusy.status(), "busy");
        assert!(
            reason.starts_with("node edge3 was not asked")
                && reason.contains(&format!(
                    "{MAX_RELAYS} look-back queries waiting for other replicas"
                )),
            "{reason}"
        );
        // An answered relay is woken; when its asker is done, its place is free again.
        let (w, mut rx) = held.pop().unwrap();
        relays.answered(&w.id);
        assert_eq!(rx.try_recv(), Ok(()));
        assert_eq!(relays.waiting().len(), MAX_RELAYS - 1);
        drop(w);
        let (w, _rx) = relays.wait().expect("room after one answered");
        assert!(relays.wait().is_none());
        // An asker that gives up (dropped unanswered) frees its place too.
        drop(w);
        drop(held.pop());
        assert_eq!(relays.waiting().len(), MAX_RELAYS - 2);
        assert!(relays.wait().is_some());
        drop(held);
        assert!(relays.waiting().is_empty());
    }

    #[test]
    fn answering_other_replicas_stops_at_max_served_and_resumes_when_one_ends() {
        let relays = Relays::default();
        let mut permits: Vec<_> = (0..MAX_SERVED)
            .map(|i| {
                relays
                    .serve()
                    .unwrap_or_else(|| panic!("question {i} refused"))
            })
            .collect();
        assert!(relays.serve().is_none());
        assert!(relays.serve().is_none());
        drop(permits.pop());
        assert!(relays.serve().is_some());
        let again = relays.serve();
        assert!(again.is_some());
        assert!(relays.serve().is_none());
        drop((permits, again));
        assert_eq!(relays.serving.available_permits(), MAX_SERVED);
    }
}
