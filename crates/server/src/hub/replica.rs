//! Replicas: several server processes on one PostgreSQL behave as one.
//!
//! - Presence: each process has a replica id and a lease in `replicas`, renewed every
//!   [`RENEW`] for [`LEASE`]; each connected node has a row in `node_sessions` naming its
//!   replica (written by the hub's writer at connect and departure). A session lives as long
//!   as its replica's lease, so node selection on any replica sees the whole fleet.
//! - Dispatch: assignments or stops for nodes whose sessions are elsewhere are one `NOTIFY`
//!   per replica on its channel; the payload is the capture id, and the receiver reads the
//!   work from the database for its own nodes, as a reconnecting node's reconciliation does. A catch-up every [`CATCH_UP`] (and after the `LISTEN` connection is
//!   re-established) assigns whatever a lost notification left pending.
//! - Look-back queries (simple captures, size estimates) for nodes whose sessions are
//!   elsewhere: a row in `lookback_relays` and `NOTIFY` "query <id>" to their replica, which
//!   answers into the row and notifies back "answered <id>" (`relay.rs`).
//! - Claims (`claims`): the timers' sweep (overdue parts, lost nodes, pruning) runs on the one
//!   replica holding the `sweep` claim; each merge runs on the one replica holding
//!   `merge:<capture>`.
//!
//! On SQLite (one process) none of this runs: the hub's memory is the fleet, as before.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use edgecap_model::ServerMsg;
use tokio::task::JoinHandle;

use super::Hub;
use super::writer::Write;
use crate::clock;
use crate::db::{Backend, Db, replicas};
use crate::error::Result;

/// How often a replica renews its lease.
pub const RENEW: Duration = Duration::from_secs(1);
/// How long a lease lasts: a replica silent for this long is dead, and its sessions with it.
pub const LEASE: Duration = Duration::from_secs(5);
/// How often pending parts of this replica's nodes are looked for (notifications lost while
/// the `LISTEN` connection was down).
pub const CATCH_UP: Duration = Duration::from_secs(2);
/// A merge's claim; renewed every third of it while the merge runs.
pub const MERGE_LEASE: Duration = Duration::from_secs(30);
/// The timers' sweep claim (renewed at every sweep).
const SWEEP_LEASE: Duration = Duration::from_secs(5);
/// Dead replicas and expired claims are forgotten this long after their lease.
const PRUNE_AFTER: Duration = Duration::from_secs(300);

/// This process as one of the replicas.
#[derive(Debug)]
pub struct Replica {
    /// Random, new at every start.
    pub id: String,
    /// PostgreSQL: presence, dispatch and the sweep claim go through the database.
    pub shared: bool,
    /// Until when the last renewal holds the lease (None: never renewed, or failing).
    lease: Mutex<Option<Instant>>,
    /// Since when this process holds the sweep claim (stamp), if it does.
    sweeping_since: Mutex<Option<String>>,
}

impl Replica {
    pub fn new(db: &Db) -> Replica {
        Replica {
            id: crate::secret::new_id(),
            shared: db.backend == Backend::Postgres,
            lease: Mutex::new(None),
            sweeping_since: Mutex::new(None),
        }
    }

    /// Whether this replica holds its lease now (always, on SQLite): what `/readyz` asks.
    pub fn lease_held(&self) -> bool {
        !self.shared
            || self
                .lease
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_some_and(|until| Instant::now() < until)
    }

    async fn renew(&self, db: &Db) -> Result<()> {
        let started = Instant::now();
        let result = replicas::renew(db, &self.id, &clock::now(), &clock::after(LEASE)).await;
        if result.is_ok() {
            *self.lease.lock().unwrap_or_else(|p| p.into_inner()) = Some(started + LEASE);
        }
        result
    }

    /// Held once and not renewed in time: the other replicas take this one as dead, so it
    /// must not keep (or take) agents.
    pub fn lease_lost(&self) -> bool {
        self.shared
            && self
                .lease
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_some_and(|until| Instant::now() >= until)
    }
}

/// What a notification asks of a replica: one per replica and capture, whatever the number
/// of its nodes the capture concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Wake {
    /// Assign the capture's pending parts of nodes connected there (read from the database).
    Assign { capture_id: String },
    /// Tell the capture's nodes connected there to stop it.
    Stop { capture_id: String },
    /// Answer a look-back relay (`relay.rs`) for nodes connected there.
    Query { relay_id: String },
    /// The answer to this replica's look-back relay is written.
    Answered { relay_id: String },
    /// A trigger was created or deleted: send the nodes connected there their new lists.
    Triggers { trigger_id: String },
}

impl Wake {
    fn encode(&self) -> String {
        match self {
            Wake::Assign { capture_id } => format!("assign {capture_id}"),
            Wake::Stop { capture_id } => format!("stop {capture_id}"),
            Wake::Query { relay_id } => format!("query {relay_id}"),
            Wake::Answered { relay_id } => format!("answered {relay_id}"),
            Wake::Triggers { trigger_id } => format!("triggers {trigger_id}"),
        }
    }

    fn decode(s: &str) -> Option<Wake> {
        let (verb, id) = s.split_once(' ')?;
        if !edgecap_model::ids::is_id(id) {
            return None;
        }
        let id = id.to_ascii_lowercase();
        match verb {
            "assign" => Some(Wake::Assign { capture_id: id }),
            "stop" => Some(Wake::Stop { capture_id: id }),
            "query" => Some(Wake::Query { relay_id: id }),
            "answered" => Some(Wake::Answered { relay_id: id }),
            "triggers" => Some(Wake::Triggers { trigger_id: id }),
            _ => None,
        }
    }
}

impl Hub {
    /// Whether this replica holds its lease (always true on SQLite).
    pub fn lease_held(&self) -> bool {
        self.shared.replica.lease_held()
    }

    /// This process's replica id.
    pub fn replica_id(&self) -> &str {
        &self.shared.replica.id
    }

    /// Assigns a capture's parts wherever their nodes are connected: here (once per
    /// connection), or through the replica holding the node's session (`replica`, from the
    /// selection), which is woken once for all its nodes. How many parts were sent or handed
    /// to a replica, and the nodes not sent to from here.
    pub async fn assign_all(
        &self,
        capture_id: &str,
        parts: Vec<(String, Option<String>, edgecap_model::Assignment)>,
    ) -> (usize, Vec<String>) {
        let mut sent = 0;
        let mut not_here = Vec::new();
        let mut elsewhere: BTreeMap<String, usize> = BTreeMap::new();
        for (node, replica, a) in parts {
            if self.assign(&node, a) {
                sent += 1;
                continue;
            }
            if let Some(r) = replica {
                *elsewhere.entry(r).or_default() += 1;
            }
            not_here.push(node);
        }
        let wake = Wake::Assign {
            capture_id: capture_id.to_owned(),
        };
        for (replica, n) in elsewhere {
            if self.wake(&replica, &wake).await {
                sent += n;
            }
        }
        (sent, not_here)
    }

    /// Tells a capture's `nodes` to stop it, wherever they are connected; how many were told
    /// (or their replica was).
    pub async fn stop_all(&self, capture_id: &str, nodes: &[String]) -> usize {
        let mut sent = 0;
        let mut rest = Vec::new();
        for node in nodes {
            let msg = ServerMsg::Stop {
                capture_id: capture_id.to_owned(),
            };
            if self.send(node, msg) {
                sent += 1;
            } else {
                rest.push(node.as_str());
            }
        }
        if rest.is_empty() || !self.shared.replica.shared {
            return sent;
        }
        let sessions = match replicas::live_sessions(self.db(), &clock::now()).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(capture = capture_id, error = %e, "cannot find the nodes' replicas");
                return sent;
            }
        };
        let mut elsewhere: BTreeMap<String, usize> = BTreeMap::new();
        for s in sessions {
            if rest.contains(&s.info.name.as_str()) {
                *elsewhere.entry(s.replica).or_default() += 1;
            }
        }
        let wake = Wake::Stop {
            capture_id: capture_id.to_owned(),
        };
        for (replica, n) in elsewhere {
            if self.wake(&replica, &wake).await {
                sent += n;
            }
        }
        sent
    }

    pub(super) async fn wake(&self, replica: &str, wake: &Wake) -> bool {
        let r = &self.shared.replica;
        if !r.shared || replica == r.id {
            // Not another replica's: a session here that has just ended, whose node's next
            // hello reconciles.
            return false;
        }
        match replicas::notify(self.db(), replica, &wake.encode()).await {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(replica = %replica, error = %e, "cannot notify a replica");
                false
            }
        }
    }

    /// A notification from another replica.
    async fn woken(&self, wake: Wake) -> Result<()> {
        match wake {
            Wake::Assign { capture_id } => {
                for (node, part) in
                    crate::db::parts::open_of_capture(self.db(), &capture_id).await?
                {
                    self.assign_part(&node, part);
                }
            }
            Wake::Stop { capture_id } => {
                for node in crate::db::captures::open_nodes(self.db(), &capture_id).await? {
                    let msg = ServerMsg::Stop {
                        capture_id: capture_id.clone(),
                    };
                    self.send(&node, msg);
                }
            }
            Wake::Query { relay_id } => self.relay_asked(relay_id),
            Wake::Answered { relay_id } => self.relay_answered(&relay_id),
            Wake::Triggers { .. } => self.triggers_dirty(),
        }
        Ok(())
    }

    /// Assigns the node's pending parts if it is connected here (the catch-up): what
    /// reconciliation does for parts never acknowledged.
    async fn assign_pending(&self, node: &str) -> Result<()> {
        if !self.live().nodes.contains_key(node) {
            return Ok(());
        }
        for part in crate::db::parts::open_for_node(self.db(), node).await? {
            self.assign_part(node, part);
        }
        Ok(())
    }

    /// Sends a part its node (connected here) has not been sent on this connection, if it
    /// still waits for one.
    fn assign_part(&self, node: &str, part: crate::db::parts::OpenPart) {
        if part.status != edgecap_model::Status::Pending
            || part.stop_requested
            || self.is_assigned(node, &part.capture_id)
        {
            return;
        }
        let id = part.capture_id.clone();
        let ctx = crate::credentials::capture_context(&id);
        match self.vault().for_agent(part.credentials.as_deref(), &ctx) {
            Ok(credentials) => {
                let mut a = part.assignment;
                a.credentials = credentials;
                self.assign(node, a);
            }
            Err(e) => self.write(Write::Fail {
                capture_id: id,
                node: node.to_owned(),
                reason: format!("the server cannot assign it: {e}"),
                at: clock::now(),
            }),
        }
    }

    /// Connected here and sent this capture on this connection (a node connected elsewhere
    /// counts as sent: it is not ours to assign).
    fn is_assigned(&self, node: &str, capture_id: &str) -> bool {
        self.live()
            .nodes
            .get(node)
            .is_none_or(|c| c.assigned.contains(capture_id))
    }

    /// The pending parts of nodes connected here that this connection has not been sent.
    async fn catch_up(&self) -> Result<()> {
        let pending = crate::db::parts::pending_parts(self.db()).await?;
        let mut nodes: Vec<String> = pending
            .into_iter()
            .filter(|(capture, node)| {
                self.live()
                    .nodes
                    .get(node)
                    .is_some_and(|c| !c.assigned.contains(capture))
            })
            .map(|(_, node)| node)
            .collect();
        nodes.sort();
        nodes.dedup();
        for node in nodes {
            self.assign_pending(&node).await?;
        }
        Ok(())
    }

    /// Whether this replica runs the timers' sweep now (always on SQLite); the stamp since
    /// which it has, for grace periods of nodes it finds lost.
    pub(super) async fn sweep_claim(&self) -> Option<String> {
        let r = &self.shared.replica;
        if !r.shared {
            return Some(String::new());
        }
        let held = replicas::claim(
            self.db(),
            "sweep",
            &r.id,
            &clock::now(),
            &clock::after(SWEEP_LEASE),
        )
        .await
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot claim the sweep");
            false
        });
        let mut since = r.sweeping_since.lock().unwrap_or_else(|p| p.into_inner());
        if !held {
            *since = None;
            return None;
        }
        if since.is_none() {
            tracing::info!(replica = %r.id, "this replica now runs the timers");
        }
        Some(since.get_or_insert_with(clock::now).clone())
    }

    /// The lost-node sweep of a shared database: every node with unfinished parts and no live
    /// session on any replica fails them once it has been away for the grace period (counted
    /// from when it left, its replica's lease ended, or this replica took the sweep over,
    /// whichever is latest).
    pub(super) async fn sweep_lost_nodes(&self, since: &str) -> Result<()> {
        let now = clock::now();
        let grace = self.config().grace;
        let cutoff = edgecap_model::ids::rfc3339(clock::unix_now() - grace.as_secs_f64());
        let human = clock::human(grace);
        for n in replicas::open_nodes(self.db()).await? {
            if self.live().nodes.contains_key(&n.node) {
                continue;
            }
            let mut away = (n.last_seen.clone().unwrap_or_default(), "left");
            if let Some((_, lease)) = &n.session {
                if *lease > now {
                    continue;
                }
                if *lease > away.0 {
                    away = (lease.clone(), "replica");
                }
            }
            if since > away.0.as_str() {
                away = (since.to_owned(), "takeover");
            }
            if away.0 >= cutoff {
                continue;
            }
            let node = n.node;
            let reason = match away.1 {
                "replica" => format!(
                    "node {node} lost its server (a replica that stopped) and did not reconnect \
                     within {human}"
                ),
                "takeover" => format!(
                    "node {node} did not reconnect within {human} after the server restarted"
                ),
                _ => format!("node {node} disconnected and did not return within {human}"),
            };
            tracing::warn!(node = %node, %reason, "grace period over");
            self.write(Write::FailNode { node, reason });
        }
        replicas::prune(
            self.db(),
            &edgecap_model::ids::rfc3339(clock::unix_now() - PRUNE_AFTER.as_secs_f64()),
        )
        .await?;
        Ok(())
    }

    /// Ends every agent session here (the lease is lost: the other replicas count these
    /// nodes as gone, so their agents must reconnect to one of them).
    fn drop_sessions(&self) {
        let mut live = self.live();
        let n = live.nodes.len();
        for c in live.nodes.values_mut() {
            // Dropping the sender ends the session, as for a slow agent.
            c.tx = None;
        }
        if n > 0 {
            tracing::warn!(sessions = n, "lease lost: closing every agent session here");
        }
    }

    /// Stops being a replica (clean shutdown): the row and any session left go.
    pub async fn retire(&self) {
        let r = &self.shared.replica;
        if r.shared
            && let Err(e) = replicas::retire(self.db(), &r.id).await
        {
            tracing::warn!(error = %e, "cannot remove this replica's row");
        }
    }
}

/// Renews the lease once (so sessions are valid from the first connect), then starts the
/// renewal, the `LISTEN` loop and the catch-up. Nothing on SQLite.
pub(super) async fn start(hub: &Hub) -> Result<Vec<JoinHandle<()>>> {
    let r = &hub.shared.replica;
    if !r.shared {
        return Ok(Vec::new());
    }
    // The lease has a connection of its own: a pool busy with rollups or slow queries must
    // not make this replica miss its renewals (and drop its agents as "lease lost").
    let lease_db = hub.db().dedicated(1).await?;
    r.renew(&lease_db).await?;
    tracing::info!(replica = %r.id, "replica registered");
    // `/readyz`: a replica without its lease is dead to the others.
    let replica = r.clone();
    hub.metrics().add_ready_check(std::sync::Arc::new(
        move || -> std::pin::Pin<Box<dyn Future<Output = edgecap_metrics::Check> + Send>> {
            let held = replica.lease_held();
            Box::pin(async move {
                if held {
                    edgecap_metrics::Check::ok("lease")
                } else {
                    edgecap_metrics::Check::failed(
                        "lease",
                        "this replica has not renewed its lease in the database in time",
                    )
                }
            })
        },
    ));
    let renewer = {
        let hub = hub.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(RENEW);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = hub.shared.replica.renew(&lease_db).await {
                    tracing::error!(error = %e, "cannot renew this replica's lease");
                    if hub.shared.replica.lease_lost() {
                        hub.drop_sessions();
                    }
                }
            }
        })
    };
    let listener = {
        let hub = hub.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = listen(&hub).await {
                    tracing::error!(error = %e, "replica notifications: listening failed");
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    };
    let catch_up = {
        let hub = hub.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(CATCH_UP);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = hub.catch_up().await {
                    tracing::error!(error = %e, "catching up on pending parts failed");
                }
            }
        })
    };
    Ok(vec![renewer, listener, catch_up])
}

/// `LISTEN`s on this replica's channel and acts on each notification; returns on an error.
async fn listen(hub: &Hub) -> Result<()> {
    let mut l = sqlx::postgres::PgListener::connect(&hub.db().url.0).await?;
    l.listen(&replicas::channel(&hub.shared.replica.id)).await?;
    // Whatever was sent before this connection listened.
    hub.catch_up().await?;
    loop {
        match l.try_recv().await? {
            Some(n) => match Wake::decode(n.payload()) {
                Some(wake) => hub.woken(wake).await?,
                None => tracing::warn!(payload = n.payload(), "unknown replica notification"),
            },
            // The connection was lost and made again: notifications may be lost.
            None => hub.catch_up().await?,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Wake;

    #[test]
    fn wakes_round_trip_and_junk_is_refused() {
        let id = "0123456789abcdef0123456789abcdef";
        for w in [
            Wake::Assign {
                capture_id: id.into(),
            },
            Wake::Stop {
                capture_id: id.into(),
            },
            Wake::Query {
                relay_id: id.into(),
            },
            Wake::Answered {
                relay_id: id.into(),
            },
            Wake::Triggers {
                trigger_id: id.into(),
            },
        ] {
            assert_eq!(Wake::decode(&w.encode()), Some(w));
        }
        let two = format!("stop {id} {id}");
        let fly = format!("fly {id}");
        for junk in ["", "assign", "assign edge0", "stop x", &two, &fly] {
            assert_eq!(Wake::decode(junk), None, "{junk:?}");
        }
    }
}
