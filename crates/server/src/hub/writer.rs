//! The single writer of agent-driven state. It drains whatever is queued (up to
//! [`BATCH`] changes), groups the changes by capture, and applies each group in one
//! transaction that ends by recomputing the capture's status. FIFO order is kept per
//! capture, and every part update is guarded by the part's current status, so a late or
//! repeated message (a `done` after the server gave up, a second `fail`) changes nothing.
//! Agents' trigger reports (`firings.rs`) are applied in their place in the queue: the
//! captures' changes queued before one are applied first.
//!
//! A `done` for a capture the database has no record of at all changes nothing: it is a
//! capture an agent started itself whose `fired` report it dropped (its queue of reports is
//! bounded while the server is away). The server cannot tell whose it is, so it logs the
//! capture, node and file and counts it once in `/metrics` (`unrecorded_captures`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use edgecap_model::{Outcome, Status};
use sqlx::Acquire;
use tokio::sync::{mpsc, oneshot};

use super::{Counters, Live, Replica};
use crate::db::nodes::{self, NodeInfo};
use crate::db::{Db, parts, replicas};
use crate::error::Result;

/// Most changes applied per round.
const BATCH: usize = 4096;

#[derive(Debug)]
pub(super) enum Write {
    NodeSeen {
        node: NodeInfo,
        conn: u64,
        at: String,
    },
    NodeGone {
        name: String,
        conn: u64,
        at: String,
    },
    /// A connected node's agent reported a health different from its last.
    NodeHealth {
        name: String,
        health: edgecap_model::NodeHealth,
    },
    Ack {
        capture_id: String,
        node: String,
        at: String,
    },
    Progress {
        capture_id: String,
        node: String,
        counters: Counters,
    },
    Done {
        node: String,
        outcome: Outcome,
        at: String,
    },
    Fail {
        capture_id: String,
        node: String,
        reason: String,
        at: String,
    },
    /// Fail every unfinished part of a node (its grace period ran out).
    FailNode {
        node: String,
        reason: String,
    },
    /// A trigger report of a node (`firings.rs`), connected on `conn` when it sent it.
    Report {
        node: Box<super::LiveNode>,
        conn: u64,
        report: super::firings::Report,
    },
    /// Answered once everything queued before it is applied.
    Barrier(oneshot::Sender<()>),
}

/// A change to one part of one capture.
#[derive(Debug)]
enum PartWrite {
    Ack {
        node: String,
        at: String,
    },
    Progress {
        node: String,
        c: Counters,
    },
    Done {
        node: String,
        outcome: Outcome,
        at: String,
    },
    Fail {
        node: String,
        reason: String,
        at: String,
    },
}

pub(super) async fn run(
    db: Db,
    live: Arc<Mutex<Live>>,
    mut rx: mpsc::Receiver<Write>,
    merges: mpsc::Sender<String>,
    replica: Arc<Replica>,
    result_margin: std::time::Duration,
    metrics: Arc<crate::metrics::Metrics>,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(w) => batch.push(w),
                Err(_) => break,
            }
        }
        let ctx = Ctx {
            db: &db,
            live: &live,
            merges: &merges,
            metrics: &metrics,
        };
        apply(&ctx, batch, &replica, result_margin).await;
    }
}

/// What applying captures' changes needs.
struct Ctx<'a> {
    db: &'a Db,
    live: &'a Mutex<Live>,
    merges: &'a mpsc::Sender<String>,
    metrics: &'a crate::metrics::Metrics,
}

async fn apply(
    ctx: &Ctx<'_>,
    batch: Vec<Write>,
    replica: &Replica,
    result_margin: std::time::Duration,
) {
    let db = ctx.db;
    let mut node_writes = Vec::new();
    let mut by_capture: BTreeMap<String, Vec<PartWrite>> = BTreeMap::new();
    let mut barriers = Vec::new();
    for w in batch {
        match w {
            Write::NodeSeen { .. } | Write::NodeGone { .. } | Write::NodeHealth { .. } => {
                node_writes.push(w)
            }
            Write::Ack {
                capture_id,
                node,
                at,
            } => by_capture
                .entry(capture_id)
                .or_default()
                .push(PartWrite::Ack { node, at }),
            Write::Progress {
                capture_id,
                node,
                counters,
            } => by_capture
                .entry(capture_id)
                .or_default()
                .push(PartWrite::Progress { node, c: counters }),
            Write::Done { node, outcome, at } => by_capture
                .entry(outcome.capture_id.clone())
                .or_default()
                .push(PartWrite::Done { node, outcome, at }),
            Write::Fail {
                capture_id,
                node,
                reason,
                at,
            } => by_capture
                .entry(capture_id)
                .or_default()
                .push(PartWrite::Fail { node, reason, at }),
            Write::FailNode { node, reason } => match open_captures(db, &node).await {
                Ok(ids) => {
                    let at = crate::clock::now();
                    for id in ids {
                        by_capture.entry(id).or_default().push(PartWrite::Fail {
                            node: node.clone(),
                            reason: reason.clone(),
                            at: at.clone(),
                        });
                    }
                }
                Err(e) => {
                    tracing::error!(node = %node, error = %e, "cannot fail a lost node's parts")
                }
            },
            // A trigger report is applied in its place: the captures' changes before it first
            // (a `signed` after its capture's `done` finds the capture done), and a fired
            // capture is recorded before its own progress and outcome, which come after it.
            Write::Report { node, conn, report } => {
                apply_captures(ctx, std::mem::take(&mut by_capture)).await;
                super::firings::apply(db, ctx.live, result_margin, &node, conn, report).await;
            }
            Write::Barrier(tx) => barriers.push(tx),
        }
    }
    if !node_writes.is_empty()
        && let Err(e) = apply_nodes(db, &node_writes, replica).await
    {
        tracing::error!(error = %e, count = node_writes.len(), "cannot record node connections");
    }
    apply_captures(ctx, by_capture).await;
    for b in barriers {
        let _ = b.send(());
    }
}

/// Applies the changes of each capture, one transaction per capture.
async fn apply_captures(ctx: &Ctx<'_>, by_capture: BTreeMap<String, Vec<PartWrite>>) {
    let db = ctx.db;
    // BTreeMap order: captures are always locked in the same order, so two replicas' writers
    // cannot deadlock each other on PostgreSQL.
    for (capture_id, writes) in by_capture {
        let mut result = apply_capture(db, &capture_id, &writes).await;
        if let Err(e) = &result {
            tracing::warn!(capture = %capture_id, error = %e, "state change failed; retrying once");
            result = apply_capture(db, &capture_id, &writes).await;
        }
        match result {
            Ok(status) => {
                // No part will change again (finished, merging, or no longer open).
                let done = !matches!(status, Status::Pending | Status::Running);
                if status == Status::ConversionRunning {
                    super::queue_merge(ctx.merges, capture_id.clone());
                }
                if status == Status::Unknown {
                    unrecorded(ctx, &capture_id, &writes).await;
                }
                forget(ctx.live, &capture_id, &writes, done)
            }
            Err(e) => tracing::error!(capture = %capture_id, error = %e, changes = writes.len(),
                "cannot record agent reports"),
        }
    }
}

/// After changes to a capture that is not open: when it is a `done` for a capture the
/// database has no record of (see the module's documentation), logs it and counts it once.
async fn unrecorded(ctx: &Ctx<'_>, capture_id: &str, writes: &[PartWrite]) {
    let Some((node, outcome)) = writes.iter().find_map(|w| match w {
        PartWrite::Done { node, outcome, .. } => Some((node, outcome)),
        _ => None,
    }) else {
        return;
    };
    let exists = async {
        let mut conn = ctx.db.pool.acquire().await?;
        crate::db::events::capture_exists(&mut conn, capture_id).await
    }
    .await;
    match exists {
        Ok(true) => {}
        Ok(false) => {
            if ctx.metrics.unrecorded(capture_id) {
                tracing::warn!(node = %node, capture = %capture_id, ok = outcome.ok,
                    packets = outcome.packets, bytes = outcome.bytes,
                    file = outcome.file.as_deref().unwrap_or("-"),
                    "a capture this server has no record of finished (a trigger's capture whose \
                     fired report the agent dropped?); nothing recorded");
            }
        }
        Err(e) => tracing::warn!(capture = %capture_id, error = %e,
            "cannot check whether a finished capture is recorded"),
    }
}

async fn open_captures(db: &Db, node: &str) -> Result<Vec<String>> {
    let mut conn = db.pool.acquire().await?;
    parts::open_captures_of(&mut conn, node).await
}

/// Records connections and departures; on a shared database also which replica holds each
/// node's session (`node_sessions`), so the other replicas select and reach it.
async fn apply_nodes(db: &Db, writes: &[Write], replica: &Replica) -> Result<()> {
    let mut conn = db.pool.acquire().await?;
    let mut tx = conn.begin().await?;
    for w in writes {
        match w {
            Write::NodeSeen { node, conn, at } => {
                nodes::seen(&mut tx, node, at).await?;
                if replica.shared {
                    replicas::session_open(&mut tx, &replica.id, *conn, node, at).await?;
                }
            }
            Write::NodeGone { name, conn, at } => {
                nodes::gone(&mut tx, name, at).await?;
                if replica.shared {
                    replicas::session_close(&mut tx, &replica.id, *conn, name).await?;
                }
            }
            Write::NodeHealth { name, health } => nodes::set_health(&mut tx, name, health).await?,
            _ => {}
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Applies one capture's changes; the capture's status afterwards (for a capture that was
/// no longer open, `Unknown`: it has finished or is merging, and this changed nothing).
async fn apply_capture(db: &Db, capture_id: &str, writes: &[PartWrite]) -> Result<Status> {
    let _turn = db.write_turn().await;
    let mut tx = db.pool.begin().await?;
    if !parts::lock_open(&mut tx, capture_id).await? {
        tx.rollback().await?;
        return Ok(Status::Unknown);
    }
    for w in writes {
        match w {
            PartWrite::Ack { node, at } => parts::ack(&mut tx, capture_id, node, at).await?,
            PartWrite::Progress { node, c } => {
                parts::progress(&mut tx, capture_id, node, c.packets, c.bytes, c.lost).await?
            }
            PartWrite::Done { node, outcome, at } => {
                parts::finish(&mut tx, node, outcome, at).await?
            }
            PartWrite::Fail { node, reason, at } => {
                parts::fail(&mut tx, capture_id, node, reason, at).await?
            }
        }
    }
    let status = parts::refresh(&mut tx, capture_id, &crate::clock::now()).await?;
    tx.commit().await?;
    if status.is_terminal() || status == Status::ConversionRunning {
        tracing::info!(capture = %capture_id, status = status.as_str(), "capture finished");
    }
    Ok(status)
}

/// Drops live progress that the database now holds for good.
fn forget(live: &Mutex<Live>, capture_id: &str, writes: &[PartWrite], terminal: bool) {
    let mut live = live.lock().unwrap_or_else(|p| p.into_inner());
    if terminal {
        live.progress.remove(capture_id);
        return;
    }
    if let Some(nodes) = live.progress.get_mut(capture_id) {
        for w in writes {
            if let PartWrite::Done { node, .. } | PartWrite::Fail { node, .. } = w {
                nodes.remove(node);
            }
        }
    }
}
