//! Time-driven work: a node's grace period after it leaves, the sweep that fails parts whose
//! results never came, and the periodic flush of live progress.

use tokio::task::JoinHandle;

use super::Hub;
use super::writer::Write;
use crate::clock;
use crate::db::{nodes, parts};
use crate::error::Result;

/// The running timer tasks; dropping this stops them.
#[derive(Debug)]
pub struct Background {
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Background {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

pub(super) async fn start(hub: &Hub) -> Result<Background> {
    // This process has no connections yet; nodes that had unfinished parts get one grace
    // period, from now, to come back and say how those parts went.
    // On a shared database the other replicas' nodes stay as their writers left them.
    if !hub.shared.replica.shared {
        nodes::reset_connected(hub.db()).await?;
    }
    let mut tasks = super::replica::start(hub).await?;
    // On a shared database (replicas) the sweep's holder gives lost nodes their grace
    // period, from when it took the sweep over: a starting replica fails nothing of nodes
    // connected to another live replica.
    let open = if hub.shared.replica.shared {
        Vec::new()
    } else {
        parts::nodes_with_open_parts(hub.db()).await?
    };
    for node in open {
        let generation = {
            let mut live = hub.live();
            if live.nodes.contains_key(&node) {
                continue;
            }
            live.next_id += 1;
            let generation = live.next_id;
            live.away.insert(node.clone(), generation);
            generation
        };
        let reason = format!(
            "node {node} did not reconnect within {} after the server restarted",
            clock::human(hub.config().grace)
        );
        grace(hub, node, generation, reason);
    }
    // Merges a stopped process left unfinished start again (the merged object is written
    // whole or not at all, so nothing partial is left to clean up).
    let waiting = if hub.shared.replica.shared {
        // Not those another live replica is merging.
        crate::merge::unclaimed(hub.db()).await?
    } else {
        crate::merge::pending(hub.db()).await?
    };
    for id in waiting {
        tracing::info!(capture = %id, "merging again after a restart");
        hub.merge(id);
    }
    let flusher = {
        let hub = hub.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(hub.config().progress_flush);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                flush_progress(&hub);
            }
        })
    };
    let sweeper = {
        let hub = hub.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(hub.config().sweep);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut ticks = 0u64;
            loop {
                tick.tick().await;
                ticks += 1;
                // Exactly one replica sweeps (always this one on SQLite).
                let Some(since) = hub.sweep_claim().await else {
                    continue;
                };
                if let Err(e) = sweep(&hub).await {
                    tracing::error!(error = %e, "overdue sweep failed");
                }
                // Look-back capture files past their retention (api/simple.rs), every 60 sweeps.
                if ticks % 60 == 1 {
                    match crate::db::samples::purge(hub.db(), &clock::now()).await {
                        Ok(0) => {}
                        Ok(n) => {
                            tracing::info!(files = n, "look-back files past retention deleted")
                        }
                        Err(e) => tracing::error!(error = %e, "look-back file purge failed"),
                    }
                }
                if hub.shared.replica.shared {
                    if let Err(e) = hub.sweep_lost_nodes(&since).await {
                        tracing::error!(error = %e, "lost-node sweep failed");
                    }
                    // Merges whose replica died (their claim expired) start again here.
                    if ticks % 10 == 1 {
                        match crate::merge::unclaimed(hub.db()).await {
                            Ok(ids) => ids.into_iter().for_each(|id| hub.merge(id)),
                            Err(e) => tracing::error!(error = %e, "cannot list waiting merges"),
                        }
                    }
                }
            }
        })
    };
    tasks.extend([
        flusher,
        sweeper,
        super::revoke::start(hub),
        super::scopes::start(hub),
        super::triggers::start(hub),
    ]);
    Ok(Background { tasks })
}

/// After the grace period, fails the node's unfinished parts unless it came back (or left
/// again, which starts a newer timer) meanwhile.
pub(super) fn grace(hub: &Hub, node: String, generation: u64, reason: String) {
    let hub = hub.clone();
    tokio::spawn(async move {
        tokio::time::sleep(hub.config().grace).await;
        if hub.is_closing() {
            return;
        }
        {
            let mut live = hub.live();
            if live.away.get(&node) != Some(&generation) || live.nodes.contains_key(&node) {
                return;
            }
            live.away.remove(&node);
        }
        tracing::warn!(node = %node, %reason, "grace period over");
        hub.write(Write::FailNode { node, reason });
    });
}

/// Queues every progress report the database has not seen.
pub(super) fn flush_progress(hub: &Hub) {
    let mut dirty = Vec::new();
    {
        let mut live = hub.live();
        for (capture_id, nodes) in live.progress.iter_mut() {
            for (node, (counters, is_dirty)) in nodes.iter_mut() {
                if *is_dirty {
                    *is_dirty = false;
                    dirty.push((capture_id.clone(), node.clone(), *counters));
                }
            }
        }
    }
    for (capture_id, node, counters) in dirty {
        hub.write(Write::Progress {
            capture_id,
            node,
            counters,
        });
    }
}

/// Fails the parts of open captures whose deadline (time limit or stop, plus the result
/// margin) has passed without a result.
async fn sweep(hub: &Hub) -> Result<()> {
    let now = clock::now();
    let overdue = parts::overdue(hub.db(), &now).await?;
    if overdue.is_empty() {
        return Ok(());
    }
    let margin = clock::human(hub.config().result_margin);
    for (capture_id, node) in overdue {
        hub.write(Write::Fail {
            reason: format!(
                "no result from node {node}: nothing reported within {margin} after the \
                 capture's time limit or stop"
            ),
            capture_id,
            node,
            at: now.clone(),
        });
    }
    // The next sweep must see these applied, or it would queue them again.
    hub.barrier().await;
    Ok(())
}
