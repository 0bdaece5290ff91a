//! Which restricted accounts each node's observer keeps apart: every restricted account with
//! prefixes whose node set takes the node (an empty set takes every node). A poll every
//! [`POLL`] reads the accounts (one small query per table) and sends a connected node
//! `ServerMsg::Accounts` when its list differs from what the node has: an agent starts every
//! connection with none (it forgets the list when it dials), so a node with no restricted
//! account to keep apart is sent nothing. Edits by the operator API, the CLI or another
//! replica reach the agents within about [`POLL`].

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::time::Duration;

use edgecap_model::ServerMsg;
use edgecap_model::protocol::{AccountScope, MAX_OBSERVED_ACCOUNTS};
use tokio::task::JoinHandle;

use super::{Hub, LiveNode};
use crate::api::select::matches_entry;
use crate::db::accounts;

/// How often the restricted accounts are read.
pub const POLL: Duration = Duration::from_secs(2);

/// The accounts `node` observes apart, in account order, at most [`MAX_OBSERVED_ACCOUNTS`].
pub fn for_node(node: &LiveNode, restricted: &[accounts::Scoped]) -> Vec<AccountScope> {
    restricted
        .iter()
        .filter(|a| !a.prefixes.is_empty())
        .filter(|a| a.nodes.is_empty() || a.nodes.iter().any(|e| matches_entry(node, e)))
        .take(MAX_OBSERVED_ACCOUNTS)
        .map(|a| AccountScope {
            id: a.id.clone(),
            prefixes: a.prefixes.clone(),
        })
        .collect()
}

fn digest(list: &[AccountScope]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for a in list {
        a.id.hash(&mut h);
        a.prefixes.hash(&mut h);
    }
    h.finish()
}

pub(super) fn start(hub: &Hub) -> JoinHandle<()> {
    let hub = hub.clone();
    tokio::spawn(async move {
        // Node -> (connection, digest of the list it was sent).
        let mut sent: HashMap<String, (u64, u64)> = HashMap::new();
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let restricted = match accounts::restricted_scopes(hub.db()).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, "reading restricted accounts failed");
                    continue;
                }
            };
            let live = hub.live_connections();
            let names: HashSet<&str> = live.iter().map(|(n, _)| n.info.name.as_str()).collect();
            sent.retain(|name, _| names.contains(name.as_str()));
            for (node, conn) in &live {
                let list = for_node(node, &restricted);
                let d = digest(&list);
                let has = match sent.get(&node.info.name) {
                    Some((c, had)) if c == conn => *had,
                    // A new connection: the agent starts it with no account.
                    _ => digest(&[]),
                };
                if has == d {
                    sent.insert(node.info.name.clone(), (*conn, d));
                    continue;
                }
                if hub.send(&node.info.name, ServerMsg::Accounts { accounts: list }) {
                    sent.insert(node.info.name.clone(), (*conn, d));
                }
            }
        }
    })
}
