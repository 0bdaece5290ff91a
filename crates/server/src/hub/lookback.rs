//! Look-back queries fanned out to the nodes' observer rings (issues 12, 13): each selected
//! node connected to this replica is sent a [`ServerMsg::Query`] with a fresh `query_id`; its
//! [`RingAnswer`] chunks come back through [`Hub::answer`] (called by the session, never
//! blocking it) into a bounded channel of the asking task, which gathers them until the last
//! chunk or the per-node deadline. Nodes whose sessions another replica holds (PostgreSQL)
//! are asked through that replica, which asks them the same way (`relay.rs`).
//!
//! Bounds: at most [`MAX_PENDING`] node queries wait for answers at once (more are answered
//! "busy" without being sent); each query's channel holds the chunks its limit allows and two
//! more, and chunks past that, for unknown ids or from another node are dropped; the samples
//! gathered over all nodes of one fan-out are at most its `total_limit`, each cut to 160 bytes
//! (`crate::samples::bound`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use edgecap_model::ServerMsg;
use edgecap_model::lookback::{PeriodRate, RingAnswer, RingQuery, SAMPLES_PER_ANSWER, WireSample};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::{Hub, LiveNode};

/// Node queries waiting for their answers at once, over every fan-out of this process.
pub const MAX_PENDING: usize = 16_384;

/// What one node said, or why it said nothing (also the form replicas relay, `relay.rs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Reply {
    Answered(Answered),
    /// The node answered with an error (its text names the field at fault).
    Failed(String),
    /// No last chunk within the deadline.
    TimedOut(Duration),
    /// Not connected (any more) when the query was sent, or its session too slow to take it.
    NotConnected,
    /// Connected to another replica (named), which did not answer for it within the wait.
    ReplicaSilent(String, Duration),
    /// This server has [`MAX_PENDING`] queries waiting already.
    Busy,
    /// Connected to another replica, and this server has [`super::relay::MAX_RELAYS`] relays
    /// waiting for other replicas' answers already (never relayed itself: the asker makes it).
    RelaysBusy,
}

impl Reply {
    /// A short word for the API (`answered`, `failed`, ...).
    pub fn status(&self) -> &'static str {
        match self {
            Reply::Answered(_) => "answered",
            Reply::Failed(_) => "failed",
            Reply::TimedOut(_) => "timed_out",
            Reply::NotConnected => "not_connected",
            Reply::ReplicaSilent(..) => "timed_out",
            Reply::Busy | Reply::RelaysBusy => "busy",
        }
    }

    /// Why there is no answer (None when answered).
    pub fn reason(&self, node: &str) -> Option<String> {
        match self {
            Reply::Answered(_) => None,
            Reply::Failed(e) => Some(format!("node {node} could not answer: {e}")),
            Reply::TimedOut(d) => Some(format!(
                "node {node} did not answer within {}",
                crate::clock::human(*d)
            )),
            Reply::NotConnected => Some(format!("node {node} is not connected")),
            Reply::ReplicaSilent(r, d) => Some(format!(
                "node {node} is connected to replica {r}, which did not answer for it within {}",
                crate::clock::human(*d)
            )),
            Reply::Busy => Some(format!(
                "node {node} was not asked: this server has {MAX_PENDING} look-back queries \
                 waiting; try again"
            )),
            Reply::RelaysBusy => Some(format!(
                "node {node} was not asked: it is connected to another replica, and this server \
                 has {} look-back queries waiting for other replicas' answers; try again",
                super::relay::MAX_RELAYS
            )),
        }
    }
}

/// A node's whole answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Answered {
    pub matched: u64,
    pub est_packets: u64,
    pub est_bytes: u64,
    pub thinned_by: f64,
    pub periods: Vec<PeriodRate>,
    /// Unix seconds of the oldest second the ring answers for.
    pub reach_start: Option<u64>,
    pub samples: Vec<WireSample>,
    /// Samples the node sent past this fan-out's `total_limit`, not kept.
    pub dropped: u64,
}

/// One node's reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeReply {
    pub node: String,
    pub reply: Reply,
}

/// The window, filter and limit asked of every node; `query_id` is set per node.
#[derive(Debug, Clone)]
pub struct Ask {
    pub query: RingQuery,
    /// Longest wait for a node's last chunk.
    pub deadline: Duration,
    /// Samples kept over all nodes, at most.
    pub total_limit: u64,
}

/// The pending node queries: query id -> (node, the asking task's channel).
#[derive(Debug, Default)]
pub(super) struct Registry {
    pending: Mutex<HashMap<String, (String, mpsc::Sender<RingAnswer>)>>,
}

impl Registry {
    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, (String, mpsc::Sender<RingAnswer>)>> {
        self.pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Removes a query id from the registry when its asker is done (or dropped).
struct Pending<'a> {
    registry: &'a Registry,
    id: String,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.id);
    }
}

impl Hub {
    /// Asks each of `nodes` (the selection, with their replicas) the question, concurrently:
    /// those connected here directly, the others through their replicas (`relay.rs`); returns
    /// their replies in the order given, the samples over all of them within `total_limit`.
    pub async fn ask(&self, nodes: &[LiveNode], ask: &Ask) -> Vec<NodeReply> {
        let me = self.replica_id().to_owned();
        let mut here = Vec::new();
        let mut elsewhere: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for n in nodes {
            match &n.replica {
                Some(r) if *r != me => elsewhere
                    .entry(r.clone())
                    .or_default()
                    .push(n.info.name.clone()),
                _ => here.push(n.info.name.clone()),
            }
        }
        let budget = Mutex::new(0u64);
        let relayed = futures_util::future::join_all(
            elsewhere
                .iter()
                .map(|(replica, names)| self.relay(replica, names, ask)),
        );
        let (local, relayed) = tokio::join!(self.ask_with(&here, ask, &budget), relayed);
        let mut by_node: HashMap<String, Reply> =
            local.into_iter().map(|r| (r.node, r.reply)).collect();
        for mut r in relayed.into_iter().flatten() {
            if let Reply::Answered(a) = &mut r.reply {
                // The other replica kept its nodes within the total; here it is shared.
                let offered = a.samples.len() as u64;
                let take = {
                    let mut used = budget.lock().unwrap_or_else(|p| p.into_inner());
                    let take = offered.min(ask.total_limit.saturating_sub(*used));
                    *used += take;
                    take
                };
                a.samples
                    .truncate(usize::try_from(take).unwrap_or(usize::MAX));
                a.dropped += offered - take;
            }
            by_node.insert(r.node, r.reply);
        }
        nodes
            .iter()
            .map(|n| NodeReply {
                node: n.info.name.clone(),
                reply: by_node.remove(&n.info.name).unwrap_or(Reply::NotConnected),
            })
            .collect()
    }

    /// Asks `nodes`, as connected to this replica (one not connected here is
    /// [`Reply::NotConnected`]), in the order given: what another replica's relay gets.
    pub(super) async fn ask_here(&self, nodes: &[String], ask: &Ask) -> Vec<NodeReply> {
        self.ask_with(nodes, ask, &Mutex::new(0)).await
    }

    async fn ask_with(&self, nodes: &[String], ask: &Ask, budget: &Mutex<u64>) -> Vec<NodeReply> {
        let futures = nodes.iter().map(|n| async move {
            NodeReply {
                node: n.clone(),
                reply: self.ask_one(n, ask, budget).await,
            }
        });
        futures_util::future::join_all(futures).await
    }

    async fn ask_one(&self, node: &str, ask: &Ask, budget: &Mutex<u64>) -> Reply {
        let registry = &self.shared.queries;
        let id = crate::secret::new_id();
        let chunks = usize::try_from(ask.query.limit)
            .unwrap_or(usize::MAX)
            .div_ceil(SAMPLES_PER_ANSWER)
            .saturating_add(2)
            .min(1024);
        let (tx, mut rx) = mpsc::channel(chunks);
        {
            let mut pending = registry.lock();
            if pending.len() >= MAX_PENDING {
                return Reply::Busy;
            }
            pending.insert(id.clone(), (node.to_owned(), tx));
        }
        let _pending = Pending {
            registry,
            id: id.clone(),
        };
        let mut query = ask.query.clone();
        query.query_id = id;
        if !self.send(node, ServerMsg::Query { query }) {
            return Reply::NotConnected;
        }
        let mut answered = Answered {
            thinned_by: 1.0,
            ..Answered::default()
        };
        let gather = async {
            let mut next_seq = 0u32;
            while let Some(chunk) = rx.recv().await {
                if let Some(e) = chunk.error {
                    return Some(Reply::Failed(bounded_text(&e)));
                }
                if chunk.seq != next_seq {
                    return Some(Reply::Failed(format!(
                        "answer chunk {} arrived where {next_seq} was expected (chunks lost)",
                        chunk.seq
                    )));
                }
                next_seq = next_seq.saturating_add(1);
                if chunk.seq == 0 {
                    answered.matched = chunk.matched;
                    answered.est_packets = chunk.est_packets;
                    answered.est_bytes = chunk.est_bytes;
                    answered.thinned_by = chunk.thinned_by;
                    answered.periods = chunk.periods;
                    answered.reach_start = chunk.reach_start;
                }
                let room_here = ask
                    .query
                    .limit
                    .saturating_sub(answered.samples.len() as u64);
                let offered = chunk.samples.len() as u64;
                let take = {
                    let mut left = budget.lock().unwrap_or_else(|p| p.into_inner());
                    let room = room_here.min(ask.total_limit.saturating_sub(*left));
                    let take = offered.min(room);
                    *left += take;
                    take
                };
                answered.dropped += offered - take;
                answered
                    .samples
                    .extend(chunk.samples.into_iter().take(take as usize).map(|mut s| {
                        crate::samples::bound(&mut s);
                        s
                    }));
                if chunk.last {
                    return None;
                }
            }
            Some(Reply::NotConnected)
        };
        match tokio::time::timeout(ask.deadline, gather).await {
            Err(_) => Reply::TimedOut(ask.deadline),
            Ok(Some(reply)) => reply,
            Ok(None) => Reply::Answered(answered),
        }
    }

    /// An answer chunk from `node`: handed to the query that asked it, without waiting. A
    /// chunk for an unknown id, from another node, or that finds its query's channel full is
    /// dropped (the asker then times out or sees the gap).
    pub(super) fn answer(&self, node: &str, answer: RingAnswer) {
        let pending = self.shared.queries.lock();
        let Some((asked, tx)) = pending.get(&answer.query_id.to_ascii_lowercase()) else {
            tracing::debug!(%node, query = %answer.query_id, "answer to no pending query dropped");
            return;
        };
        if asked != node {
            tracing::warn!(%node, query = %answer.query_id, "answer from a node that was not asked dropped");
            return;
        }
        if tx.try_send(answer).is_err() {
            tracing::debug!(%node, "answer chunk dropped: its query's channel is full or gone");
        }
    }

    /// Node queries waiting for answers now (for tests and metrics).
    pub fn pending_queries(&self) -> usize {
        self.shared.queries.lock().len()
    }
}

/// An agent's error text, bounded for the API.
fn bounded_text(s: &str) -> String {
    const MAX: usize = 500;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}
