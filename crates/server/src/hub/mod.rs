//! The hub: every connected agent, what is sent to them, and what they report.
//!
//! - this file: the [`Hub`] handle and its in-memory state (live nodes, live progress, nodes
//!   within their grace period);
//! - [`session`]: one agent's connection as the hub sees it (transport-free, so tests can
//!   drive it directly), and reconciliation after a reconnect;
//! - [`socket`]: the WebSocket endpoint that carries a session;
//! - [`writer`]: the single task that writes agent-driven state changes to the database in
//!   batches, so a thousand agents acknowledging at once cost a few transactions;
//! - [`timers`]: grace periods, the overdue-part sweep and the progress flush;
//! - [`revoke`]: revoked nodes cut off at once, also when another process revoked them.
//!
//! The std `Mutex` is never held across an `.await`: every critical section is a few map
//! operations, cheaper than an async lock.

mod firings;
pub mod lookback;
mod relay;
mod replica;
mod revoke;
pub mod scopes;
mod session;
pub mod socket;
pub mod splits;
mod timers;
pub mod triggers;
mod writer;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use edgecap_model::{Assignment, ServerMsg};
use tokio::sync::{mpsc, oneshot, watch};

pub use replica::{LEASE, MERGE_LEASE, RENEW, Replica};
pub use session::Session;
pub use timers::Background;
use writer::Write;

use crate::config::Config;
use crate::credentials::Vault;
use crate::db::Db;
use crate::db::nodes::NodeInfo;

/// Live counters of a running part, as last reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub packets: u64,
    pub bytes: u64,
    pub lost: u64,
}

/// A connected node as the API shows it.
#[derive(Debug, Clone)]
pub struct LiveNode {
    pub info: NodeInfo,
    /// Unix seconds of the last message from the node (for a node on another replica: of
    /// that replica's last lease renewal).
    pub last_seen: f64,
    /// The replica holding the node's session when it is not this one (PostgreSQL).
    pub replica: Option<String>,
    /// What its last heartbeat said of its health.
    pub health: Option<edgecap_model::NodeHealth>,
}

impl LiveNode {
    /// A node as the database remembers it (not connected here), with the features it is
    /// taken to have.
    pub fn remembered(n: edgecap_model::Node, features: Vec<String>) -> Self {
        LiveNode {
            info: NodeInfo {
                name: n.name,
                labels: n.labels,
                points: n.points,
                version: n.version,
                features,
            },
            last_seen: 0.0,
            replica: None,
            health: None,
        }
    }
}

/// A handle on the hub; clones share it.
#[derive(Debug, Clone)]
pub struct Hub {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    db: Db,
    config: Arc<Config>,
    /// Opens the sealed credentials of captures assigned again after a reconnect.
    vault: Arc<Vault>,
    live: Arc<Mutex<Live>>,
    /// To the writer task, bounded by `Config::write_queue`. An agent's report that finds it
    /// full is not queued: its session is closed instead, and the agent, which keeps its
    /// unsent outcomes, reports again on its next connection ([`Hub::write_agent`]). The
    /// server's own changes (timers, departures) wait for room ([`Hub::write`]).
    writes: mpsc::Sender<Write>,
    /// Set when the server shuts down: sessions close, and no node is failed for leaving.
    closing: watch::Sender<bool>,
    /// To the merge task: captures whose parts all succeeded and that asked for `merge`
    /// (at most [`MERGE_QUEUE`]; beyond it a capture waits, `conversion_running`, for the
    /// next start).
    merges: mpsc::Sender<String>,
    /// This process as one of the replicas on a shared database (`replica.rs`).
    replica: Arc<Replica>,
    /// The process's metrics and readiness checks (`crate::metrics`).
    metrics: Arc<crate::metrics::Metrics>,
    /// The agents' traffic rollups, to their own bounded writer (`crate::rollups`).
    rollups: crate::rollups::Rollups,
    /// Look-back queries waiting for their nodes' answers (`lookback.rs`).
    queries: lookback::Registry,
    /// Look-back queries relayed to or from other replicas (`relay.rs`).
    relays: relay::Relays,
    /// Wakes the refresh of the agents' trigger lists (`triggers.rs`).
    triggers_wake: Arc<tokio::sync::Notify>,
}

/// The hub's bounded queues and sessions, as `/metrics` reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueDepths {
    pub agents: usize,
    pub writer: usize,
    pub merge: usize,
    pub agent_outbox: usize,
}

#[derive(Debug, Default)]
struct Live {
    nodes: HashMap<String, Connected>,
    /// capture id -> node -> counters not yet known to the database (`dirty`) or known.
    progress: HashMap<String, HashMap<String, (Counters, bool)>>,
    /// Nodes that left while they had unfinished parts: name -> generation of the timer
    /// that will fail those parts unless the node comes back first.
    away: HashMap<String, u64>,
    /// Names of revoked nodes, as last read from the database (`revoke.rs`): refused at
    /// connect, cut off if connected.
    revoked: HashSet<String>,
    next_id: u64,
}

#[derive(Debug)]
struct Connected {
    conn: u64,
    info: NodeInfo,
    last_seen: f64,
    /// To the socket task, at most `Config::agent_outbox` messages (only API actions, assign
    /// and stop, produce them). A session that lets it fill is too slow: the sender is
    /// dropped, which ends the session; the agent reconnects and is reconciled.
    tx: Option<mpsc::Sender<ServerMsg>>,
    /// Captures assigned on this connection and not yet reported done. Two paths assign a
    /// part: `create` (to the nodes it selected) and reconciliation after a hello (to parts
    /// still pending). A node that connects just before a create is seen by both, so
    /// assigning checks and records here, under the lock, and each part is sent once.
    assigned: HashSet<String>,
    /// The agent's health from its last heartbeat that carried one (bounded).
    health: Option<edgecap_model::NodeHealth>,
    /// The `ack` of the last trigger list the agent said it evaluates on this connection
    /// (`AgentMsg::Heard`; agents announcing `FEATURE_TRIGGERS_HEARD`), see triggers.rs.
    triggers_heard: Option<u64>,
}

/// Captures waiting for a merge slot, at most.
const MERGE_QUEUE: usize = 1024;

/// Queues a merge without waiting: a full queue leaves the capture `conversion_running`, and
/// the next start of the server merges it.
fn queue_merge(merges: &mpsc::Sender<String>, capture_id: String) {
    match merges.try_send(capture_id) {
        Ok(()) => {}
        Err(mpsc::error::TrySendError::Full(id)) => tracing::error!(capture = %id,
            "{MERGE_QUEUE} merges are waiting; this one starts at the next server start"),
        Err(mpsc::error::TrySendError::Closed(_)) => {
            tracing::error!("the merge task has stopped; a merge was not started")
        }
    }
}

impl Connected {
    /// Queues a message for the agent; false if its session is gone or too slow (its
    /// outgoing queue full: the session is then ended, see `tx`).
    fn push(&mut self, msg: ServerMsg) -> bool {
        let Some(tx) = &self.tx else {
            return false;
        };
        match tx.try_send(msg) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!(node = %self.info.name, conn = self.conn,
                    "the agent does not read its messages (outgoing queue full); closing its session");
                self.tx = None;
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

impl Hub {
    /// A hub on `db`. Starts the writer task, so it needs a Tokio runtime.
    pub fn new(db: Db, config: Arc<Config>) -> Hub {
        let (writes, rx) = mpsc::channel(config.write_queue.max(1));
        let (merges, merge_rx) = mpsc::channel(MERGE_QUEUE);
        let live = Arc::new(Mutex::new(Live::default()));
        let vault = Arc::new(Vault::new(config.secrets_key.clone()));
        let replica = Arc::new(Replica::new(&db));
        let metrics = Arc::new(crate::metrics::Metrics::new());
        tokio::spawn(writer::run(
            db.clone(),
            live.clone(),
            rx,
            merges.clone(),
            replica.clone(),
            config.result_margin,
            metrics.clone(),
        ));
        tokio::spawn(crate::merge::run(
            db.clone(),
            replica.clone(),
            vault.clone(),
            config.merge_concurrency,
            config.endpoints.clone(),
            merge_rx,
        ));
        let rollups = crate::rollups::Rollups::start(
            db.clone(),
            config.rollup_queue,
            config.rollup_fine_retention,
        );
        Hub {
            shared: Arc::new(Shared {
                rollups,
                db,
                vault,
                merges,
                config,
                live,
                writes,
                closing: watch::channel(false).0,
                replica,
                metrics,
                queries: lookback::Registry::default(),
                relays: relay::Relays::default(),
                triggers_wake: Arc::new(tokio::sync::Notify::new()),
            }),
        }
    }

    fn live(&self) -> MutexGuard<'_, Live> {
        // A panic while holding the lock leaves maps that are still consistent (each
        // critical section is a handful of inserts/removes), so carry on with them.
        self.shared
            .live
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues one of the server's own state changes; when the queue is full it waits for
    /// room on a task of its own (there is one such change per timer or departure, so these
    /// waiting tasks are bounded by the connections and timers).
    fn write(&self, w: Write) {
        match self.shared.writes.try_send(w) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(w)) => {
                let writes = self.shared.writes.clone();
                tokio::spawn(async move {
                    if writes.send(w).await.is_err() {
                        tracing::error!("database writer has stopped; a state change was lost");
                    }
                });
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                tracing::error!("database writer has stopped; a state change was lost");
            }
        }
    }

    /// Queues a change an agent reported; false when the queue is full (the caller closes
    /// the session, and the agent reports again when it reconnects).
    fn write_agent(&self, w: Write) -> bool {
        match self.shared.writes.try_send(w) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => false,
            Err(mpsc::error::TrySendError::Closed(_)) => {
                tracing::error!("database writer has stopped; a state change was lost");
                true
            }
        }
    }

    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// The key that seals and opens per-bucket credentials.
    pub fn vault(&self) -> &Vault {
        &self.shared.vault
    }

    /// Connected nodes, sorted by name.
    pub fn live_nodes(&self) -> Vec<LiveNode> {
        let live = self.live();
        let mut nodes: Vec<LiveNode> = live
            .nodes
            .values()
            .map(|c| LiveNode {
                info: c.info.clone(),
                last_seen: c.last_seen,
                replica: None,
                health: c.health.clone(),
            })
            .collect();
        nodes.sort_by(|a, b| a.info.name.cmp(&b.info.name));
        nodes
    }

    /// Connected nodes of the whole fleet, sorted by name: this process's, and on a shared
    /// database (PostgreSQL) those whose session another live replica holds.
    pub async fn fleet_nodes(&self) -> crate::error::Result<Vec<LiveNode>> {
        let mut nodes = self.live_nodes();
        if !self.shared.replica.shared {
            return Ok(nodes);
        }
        let now = crate::clock::unix_now();
        let sessions =
            crate::db::replicas::live_sessions(self.db(), &edgecap_model::ids::rfc3339(now))
                .await?;
        let here: HashSet<String> = nodes.iter().map(|n| n.info.name.clone()).collect();
        for s in sessions {
            if here.contains(&s.info.name) || s.replica == self.shared.replica.id {
                continue;
            }
            nodes.push(LiveNode {
                info: s.info,
                last_seen: now,
                replica: Some(s.replica),
                health: None,
            });
        }
        nodes.sort_by(|a, b| a.info.name.cmp(&b.info.name));
        Ok(nodes)
    }

    /// Connected nodes with their connection numbers (a reconnect gets a new one).
    pub(crate) fn live_connections(&self) -> Vec<(LiveNode, u64)> {
        self.live()
            .nodes
            .values()
            .map(|c| {
                let node = LiveNode {
                    info: c.info.clone(),
                    last_seen: c.last_seen,
                    replica: None,
                    health: c.health.clone(),
                };
                (node, c.conn)
            })
            .collect()
    }

    /// Whether the connected node `node` announced the tenant boundary in its hello.
    pub fn enforces_boundary(&self, node: &str) -> bool {
        self.live()
            .nodes
            .get(node)
            .is_some_and(|c| c.info.enforces_boundary())
    }

    /// Sends a message to a connected node; false if it is not connected.
    pub fn send(&self, node: &str, msg: ServerMsg) -> bool {
        let mut live = self.live();
        match live.nodes.get_mut(node) {
            Some(c) => c.push(msg),
            None => false,
        }
    }

    /// Sends a message to a node only on connection `conn` (an answer meant for it); false if
    /// that connection is gone.
    pub(crate) fn send_on(&self, node: &str, conn: u64, msg: ServerMsg) -> bool {
        let mut live = self.live();
        match live.nodes.get_mut(node) {
            Some(c) if c.conn == conn => c.push(msg),
            _ => false,
        }
    }

    /// Assigns a part to a connected node, once per connection: false if the node is not
    /// connected, true if it was sent now or earlier on this connection.
    pub fn assign(&self, node: &str, assignment: Assignment) -> bool {
        let mut live = self.live();
        let Some(c) = live.nodes.get_mut(node) else {
            return false;
        };
        // A restricted account's capture never goes to an agent that would not bound it
        // (create and reconciliation leave such nodes out first; this is the last guard).
        if assignment.prefixes.is_some() && !c.info.enforces_boundary() {
            tracing::warn!(%node, capture = %assignment.capture_id,
                "not assigning a restricted account's capture to an agent without tenant-boundary");
            return false;
        }
        if !c.assigned.insert(assignment.capture_id.clone()) {
            return true;
        }
        c.push(ServerMsg::Assign { assignment })
    }

    /// Live counters of the running parts of a capture, by node.
    pub fn progress(&self, capture_id: &str) -> HashMap<String, Counters> {
        let live = self.live();
        live.progress
            .get(capture_id)
            .map(|m| m.iter().map(|(n, (c, _))| (n.clone(), *c)).collect())
            .unwrap_or_default()
    }

    /// Waits until every state change queued so far is in the database.
    pub async fn barrier(&self) {
        let (tx, rx) = oneshot::channel();
        if self.shared.writes.send(Write::Barrier(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// Writes live progress to the database now, then waits for it (tests, shutdown).
    pub async fn flush(&self) {
        timers::flush_progress(self);
        self.barrier().await;
    }

    /// Starts the timers: progress flush, overdue sweep, and a grace period for every node
    /// that has unfinished parts but is not connected (after a restart).
    pub async fn start(&self) -> crate::error::Result<Background> {
        timers::start(self).await
    }

    /// Closes every agent session (server shutdown). Nodes are not failed for leaving: the
    /// next server process gives them their grace period.
    pub fn close(&self) {
        self.shared.closing.send_replace(true);
    }

    /// Waits (at most `limit`) until every agent session has ended, after [`Hub::close`]:
    /// upgraded WebSockets outlive the HTTP server's graceful shutdown, and a session that
    /// ends later would queue its last state changes to a writer that is gone.
    pub async fn sessions_ended(&self, limit: std::time::Duration) {
        let until = tokio::time::Instant::now() + limit;
        while !self.live().nodes.is_empty() && tokio::time::Instant::now() < until {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// Queues a merge (the capture is `conversion_running`).
    pub(crate) fn merge(&self, capture_id: String) {
        queue_merge(&self.shared.merges, capture_id);
    }

    fn closing(&self) -> watch::Receiver<bool> {
        self.shared.closing.subscribe()
    }

    fn is_closing(&self) -> bool {
        *self.shared.closing.borrow()
    }

    /// The rollup writer: its counters (`dropped`, `stored`) and `barrier`.
    pub fn rollups(&self) -> &crate::rollups::Rollups {
        &self.shared.rollups
    }

    /// The process's metrics and readiness checks.
    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.shared.metrics
    }

    /// Connected agents and what waits in the hub's queues.
    pub fn queue_depths(&self) -> QueueDepths {
        let depth = |max: usize, free: usize| max.saturating_sub(free);
        let live = self.live();
        QueueDepths {
            agents: live.nodes.len(),
            writer: depth(
                self.shared.writes.max_capacity(),
                self.shared.writes.capacity(),
            ),
            merge: depth(
                self.shared.merges.max_capacity(),
                self.shared.merges.capacity(),
            ),
            agent_outbox: live
                .nodes
                .values()
                .filter_map(|c| c.tx.as_ref())
                .map(|tx| depth(tx.max_capacity(), tx.capacity()))
                .sum(),
        }
    }

    pub(crate) fn db(&self) -> &Db {
        &self.shared.db
    }
}
