//! Revoked nodes are cut off at once: disconnected, refused at their next connect, and their
//! unfinished parts failed with the reason. A revocation may come from this process (the
//! operator API, [`Hub::revoked`]) or from anywhere else that writes the database (`edgecap
//! admin node revoke`, another replica): a poll of the revoked names every [`POLL`] (one
//! small query) sees those.

use std::collections::HashSet;
use std::time::Duration;

use edgecap_model::ServerMsg;
use tokio::task::JoinHandle;

use super::Hub;
use super::writer::Write;
use crate::db::{identities, parts};
use crate::error::Result;

/// How often the revoked names are read: a revoked node is cut off within this (plus a
/// query), wherever it was revoked.
pub const POLL: Duration = Duration::from_millis(250);

impl Hub {
    /// `name` was just revoked (its identity row says so): disconnect it if it is connected
    /// here and fail its unfinished parts, now rather than at the next poll.
    pub fn revoked(&self, name: &str) {
        self.live().revoked.insert(name.to_owned());
        self.cut_off(name);
        self.write(Write::FailNode {
            node: name.to_owned(),
            reason: identities::revoked_reason(name),
        });
    }

    /// Ends a node's connection here, telling it why; true if it was connected.
    fn cut_off(&self, name: &str) -> bool {
        // Removing the entry drops the session's sender: the socket task sends what is
        // queued (the refusal) and ends the connection.
        let Some(mut c) = self.live().nodes.remove(name) else {
            return false;
        };
        c.push(ServerMsg::Refused {
            reason: identities::revoked_reason(name),
        });
        tracing::warn!(node = %name, "node revoked: disconnected");
        true
    }
}

pub(super) fn start(hub: &Hub) -> JoinHandle<()> {
    let hub = hub.clone();
    tokio::spawn(async move {
        let mut seen: Option<HashSet<String>> = None;
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match poll(&hub, seen.as_ref()).await {
                Ok(names) => seen = Some(names),
                Err(e) => tracing::error!(error = %e, "reading revoked nodes failed"),
            }
        }
    })
}

/// Reads the revoked names; cuts off those connected here; fails the parts of those newly
/// revoked (at the first poll: of those with unfinished parts).
async fn poll(hub: &Hub, seen: Option<&HashSet<String>>) -> Result<HashSet<String>> {
    let names: HashSet<String> = identities::revoked_names(hub.db())
        .await?
        .into_iter()
        .collect();
    let connected: Vec<String> = {
        let mut live = hub.live();
        live.revoked.clone_from(&names);
        live.nodes
            .keys()
            .filter(|n| names.contains(*n))
            .cloned()
            .collect()
    };
    for name in &connected {
        hub.cut_off(name);
    }
    let fresh: Vec<String> = match seen {
        Some(seen) => names.difference(seen).cloned().collect(),
        None if names.is_empty() => Vec::new(),
        None => parts::nodes_with_open_parts(hub.db())
            .await?
            .into_iter()
            .filter(|n| names.contains(n))
            .collect(),
    };
    for node in fresh {
        hub.write(Write::FailNode {
            reason: identities::revoked_reason(&node),
            node,
        });
    }
    Ok(names)
}
