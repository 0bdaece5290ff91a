//! Triggers to agents (issue 14): each connected node announcing
//! [`FEATURE_TRIGGERS`](edgecap_model::firing::FEATURE_TRIGGERS) is sent
//! `ServerMsg::Triggers`, the triggers whose scope selects it, when it connects and whenever
//! that list changes.
//!
//! - Selection ([`evaluates`], the one rule, also what a firing is checked against): the
//!   node announces the feature; the scope's `colo_name` and `nodes` take it (as a capture's
//!   selection does, without the errors: a trigger waits for its nodes); it offers every point
//!   of the scope and of the capture; and the trigger's account may capture there (an
//!   unrestricted account anywhere; a restricted one with prefixes only on nodes of its node
//!   set that enforce the tenant boundary, and its prefixes go with the trigger).
//! - Budget ([`node_budget`], [`edgecap_model::trigger::node_share`]): the local halves of
//!   `bytes_per_day` and `captures_per_hour` are split among the nodes that MAY evaluate the
//!   trigger: every node the server knows (`nodes`, every node that ever said hello, connected
//!   or not, on any replica) whose name, labels and points the scope selects and where the
//!   account may capture. A node that disconnects keeps its share (it may still be spending
//!   it), so nobody else's grows: disconnects, reconnects, replicas and restarts change no
//!   share. When the split changes (a node new in scope, relabelled, forgotten), it is
//!   recorded as an epoch and each node is sent its effective shares over the epochs
//!   ([`splits`]): a falling share at once, a growing one once the split settles (an hour
//!   for captures, a day for bytes); each refresh records what every connected node heard
//!   and settles what may settle. A node announcing
//!   [`FEATURE_TRIGGERS_HEARD`] has heard a list only once it answers the list's `ack`
//!   (`AgentMsg::Heard`, which wakes a refresh); an older one when the list is written to
//!   its connection. The other halves of `captures_per_hour` and
//!   `bytes_per_day` are granted on request (hub/firings.rs).
//! - When: a refresh runs at every change this process sees (a hello, a trigger created or
//!   deleted here or, through a `NOTIFY "triggers <id>"`, on another replica) and every
//!   [`POLL`] (a node first seen elsewhere, or relabelled, changes the shares); a node is sent its list
//!   only when it differs from what it was sent on this connection, and always once on a new
//!   connection (an agent keeps its triggers while the server is away, so an empty list
//!   tells it they are gone).
//! - At most [`MAX_AGENT_TRIGGERS`] per node, oldest triggers first; the rest are left out
//!   and logged.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::time::Duration;

use edgecap_model::ServerMsg;
use edgecap_model::firing::{
    AgentTrigger, FEATURE_TRIGGERS, FEATURE_TRIGGERS_HEARD, MAX_AGENT_TRIGGERS,
};
use edgecap_model::trigger::{Budget, Trigger};
use tokio::task::JoinHandle;

use super::splits::{self, Kind, Shares};
use super::{Hub, LiveNode};
use crate::api::select::{matches_colo, matches_entry};
use crate::db;
use crate::db::accounts::Scoped;
use crate::db::splits::Epochs;
use crate::db::triggers::{self, Stored};

/// How often the lists are computed again without a change seen here.
pub const POLL: Duration = Duration::from_secs(2);

/// One node's local share of a trigger's budget when `n` nodes may evaluate it and the node
/// is the `index`-th of them (by name): the model's one rule,
/// [`edgecap_model::trigger::node_share`].
pub fn node_budget(budget: Budget, n: usize, index: usize) -> Budget {
    edgecap_model::trigger::node_share(budget, n, index)
}

/// Whether the scope's selection takes `node` and the node offers every point the trigger
/// watches or captures at.
fn selects(t: &Trigger, node: &LiveNode) -> bool {
    if let Some(colo) = &t.scope.colo_name
        && !matches_colo(node, colo)
    {
        return false;
    }
    if let Some(entries) = &t.scope.nodes
        && !entries.iter().any(|e| matches_entry(node, e))
    {
        return false;
    }
    t.scope
        .points
        .iter()
        .chain(&t.capture.points)
        .all(|p| node.info.points.contains(p))
}

/// What a trigger's account may do on a node: `None`, nothing; `Some(None)`, anything
/// (unrestricted); `Some(Some(prefixes))`, inside its prefixes. `restricted` is the account's
/// entry among the restricted accounts, if it is one.
fn account_reach(restricted: Option<&Scoped>, node: &LiveNode) -> Option<Option<Vec<String>>> {
    let Some(a) = restricted else {
        return Some(None);
    };
    let in_set = a.nodes.is_empty() || a.nodes.iter().any(|e| matches_entry(node, e));
    (!a.prefixes.is_empty() && in_set && node.info.enforces_boundary())
        .then(|| Some(a.prefixes.clone()))
}

/// Whether `node` may evaluate trigger `t` of an account, whatever its agent announces now:
/// the nodes that share the budget. A superset of those that [`evaluates`] it, so the shares
/// of the nodes that do never add up to more than the budget.
fn may_evaluate(t: &Trigger, restricted: Option<&Scoped>, node: &LiveNode) -> bool {
    selects(t, node)
        && restricted.is_none_or(|a| {
            !a.prefixes.is_empty()
                && (a.nodes.is_empty() || a.nodes.iter().any(|e| matches_entry(node, e)))
        })
}

/// Whether `node` evaluates trigger `t` of an account (`restricted`: its entry among the
/// restricted accounts), and with which prefixes (None inside: unrestricted).
pub fn evaluates(
    t: &Trigger,
    restricted: Option<&Scoped>,
    node: &LiveNode,
) -> Option<Option<Vec<String>>> {
    if !node.info.features.iter().any(|f| f == FEATURE_TRIGGERS) || !selects(t, node) {
        return None;
    }
    account_reach(restricted, node)
}

/// One trigger as one node evaluates it, before the credentials are opened.
#[derive(Debug, Clone)]
pub struct Planned<'a> {
    pub stored: &'a Stored,
    pub budget: Budget,
    pub prefixes: Option<Vec<String>>,
}

/// What [`plan`] computes.
#[derive(Debug, Default)]
pub struct Plan<'a> {
    /// For every node of `fleet` that evaluates some trigger: its triggers (oldest first).
    pub nodes: BTreeMap<String, Vec<Planned<'a>>>,
    /// For every trigger (by id): the split of its local captures and bytes among the nodes
    /// that may evaluate it, positive shares only (hub/splits.rs records it as an epoch when
    /// it changes).
    pub splits: HashMap<String, Shares>,
}

/// For every node of `fleet` (connected, on any replica) that evaluates some trigger: its
/// triggers (in the order of `all`, oldest first) with its local share of the budget among
/// the nodes that may evaluate each, `fleet` and `known` together (`known`: every node the
/// server has seen, as it last said hello; a connected node's own hello wins). The shares of
/// `captures_per_hour` here are this split's; what a node is sent is its effective share
/// over the split's epochs ([`splits::effective`]).
pub fn plan<'a>(
    all: &'a [Stored],
    restricted: &[Scoped],
    fleet: &[LiveNode],
    known: &[LiveNode],
) -> Plan<'a> {
    let by_account: HashMap<&str, &Scoped> =
        restricted.iter().map(|a| (a.id.as_str(), a)).collect();
    let mut fleet: Vec<&LiveNode> = fleet.iter().collect();
    fleet.sort_by(|a, b| a.info.name.cmp(&b.info.name));
    fleet.dedup_by(|a, b| a.info.name == b.info.name);
    let live: HashSet<&str> = fleet.iter().map(|n| n.info.name.as_str()).collect();
    let mut sharing: Vec<&LiveNode> = fleet
        .iter()
        .copied()
        .chain(
            known
                .iter()
                .filter(|n| !live.contains(n.info.name.as_str())),
        )
        .collect();
    sharing.sort_by(|a, b| a.info.name.cmp(&b.info.name));
    sharing.dedup_by(|a, b| a.info.name == b.info.name);
    let mut out = Plan::default();
    for stored in all {
        let scoped = by_account.get(stored.account_id.as_str()).copied();
        let shares: Vec<&str> = sharing
            .iter()
            .filter(|n| may_evaluate(&stored.trigger, scoped, n))
            .map(|n| n.info.name.as_str())
            .collect();
        let budget = stored.trigger.budget;
        let of = |f: fn(Budget) -> u64| {
            splits::positive(
                shares
                    .iter()
                    .enumerate()
                    .map(|(i, n)| ((*n).to_owned(), f(node_budget(budget, shares.len(), i)))),
            )
        };
        out.splits.insert(
            stored.id.clone(),
            Shares {
                captures: of(|b| b.captures_per_hour),
                bytes: of(|b| b.bytes_per_day),
            },
        );
        for node in &fleet {
            let Some(prefixes) = evaluates(&stored.trigger, scoped, node) else {
                continue;
            };
            // Every node that evaluates may evaluate; the position is its share's.
            let Ok(i) = shares.binary_search(&node.info.name.as_str()) else {
                continue;
            };
            out.nodes
                .entry(node.info.name.clone())
                .or_default()
                .push(Planned {
                    stored,
                    budget: node_budget(budget, shares.len(), i),
                    prefixes,
                });
        }
    }
    out
}

/// Every node the server has seen (the `nodes` table, shared by the replicas), as it last
/// said hello, for [`plan`]'s shares.
pub async fn known_nodes(db: &crate::db::Db) -> crate::error::Result<Vec<LiveNode>> {
    Ok(crate::db::nodes::list(db)
        .await?
        .into_iter()
        .map(|n| LiveNode::remembered(n, Vec::new()))
        .collect())
}

/// What a list says, but for `spent` and `spent_bytes` (which only an agent evaluating a
/// trigger afresh reads: they change nothing for one that has it, so a change of them alone
/// is not sent).
fn digest(list: &[AgentTrigger]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for t in list {
        let t = AgentTrigger {
            spent: Vec::new(),
            spent_bytes: Vec::new(),
            ..t.clone()
        };
        serde_json::to_string(&t).unwrap_or_default().hash(&mut h);
    }
    h.finish()
}

impl Hub {
    /// The node on connection `conn` evaluates the trigger list sent with `ack`
    /// (`AgentMsg::Heard`): kept for the next refresh, which runs now. A repeated answer
    /// changes nothing and wakes nothing (a refresh reads the database).
    pub(crate) fn triggers_heard(&self, node: &str, conn: u64, ack: u64) {
        let mut live = self.live();
        match live.nodes.get_mut(node) {
            Some(c) if c.conn == conn && c.triggers_heard != Some(ack) => {
                c.triggers_heard = Some(ack)
            }
            _ => return,
        }
        drop(live);
        self.triggers_dirty();
    }

    /// The `ack` of the last list the node on `conn` said it evaluates.
    fn triggers_acked(&self, node: &str, conn: u64) -> Option<u64> {
        let live = self.live();
        live.nodes
            .get(node)
            .filter(|c| c.conn == conn)
            .and_then(|c| c.triggers_heard)
    }

    /// Something that changes the nodes' trigger lists happened in this process: the next
    /// refresh runs now rather than at the next [`POLL`].
    pub(crate) fn triggers_dirty(&self) {
        self.shared.triggers_wake.notify_one();
    }

    /// A trigger was created or deleted: refresh here and on every other live replica
    /// (`NOTIFY "triggers <id>"`).
    pub async fn triggers_changed(&self, trigger_id: &str) {
        self.triggers_dirty();
        if !self.shared.replica.shared {
            return;
        }
        let now = crate::clock::now();
        match crate::db::replicas::live(self.db(), &now).await {
            Ok(ids) => {
                let wake = super::replica::Wake::Triggers {
                    trigger_id: trigger_id.to_owned(),
                };
                for r in ids {
                    self.wake(&r, &wake).await;
                }
            }
            Err(e) => tracing::error!(error = %e,
                "cannot list the replicas to tell them of a trigger change (they see it within {POLL:?})"),
        }
    }

    /// Records each trigger's split as a new epoch when it changed and settles the epochs
    /// whose hour (captures) or day (bytes) has passed (under each trigger's row lock: every replica agrees); the
    /// epochs as they are then. A failure leaves the epochs as they were (still strict: a
    /// node absent from them has no share) and is logged.
    async fn sync_splits(&self, plan: &Plan<'_>) -> crate::error::Result<Epochs> {
        let db = self.db();
        let now = crate::clock::unix_now().max(0.0) as u64;
        let (epochs, heard) = db::splits::load(db).await?;
        let mut changed = false;
        if epochs.keys().any(|t| !plan.splits.contains_key(t)) {
            db::splits::prune(db).await?;
        }
        for (id, split) in &plan.splits {
            let had = epochs.get(id).map(Vec::as_slice).unwrap_or_default();
            let result = if splits::changed(had, split) {
                // Read again whether this one or another replica's was recorded.
                changed = true;
                db::splits::record(db, id, splits::latest(had), split, now).await
            } else {
                let heard = heard.get(id).cloned().unwrap_or_default();
                let mut settled = Ok(false);
                for kind in Kind::ALL {
                    if splits::settles(had, &heard, now, kind).is_some() {
                        settled = db::splits::settle(db, id, kind, now).await;
                        break;
                    }
                }
                settled
            };
            match result {
                Ok(done) => changed |= done,
                Err(e) => tracing::error!(trigger = %id, error = %e,
                    "cannot record or settle the trigger's split; its shares stay as they were"),
            }
        }
        if changed {
            return Ok(db::splits::load(db).await?.0);
        }
        Ok(epochs)
    }

    /// The lists of this process's connected nodes that evaluate triggers, as they should
    /// be now (credentials opened; each node's share of `captures_per_hour` its effective
    /// share over the trigger's epochs). Nodes with none are absent.
    async fn trigger_lists(&self) -> crate::error::Result<Refresh> {
        let all = triggers::list_all(self.db()).await?;
        let restricted = crate::db::accounts::restricted_scopes(self.db()).await?;
        let fleet = self.fleet_nodes().await?;
        let known = known_nodes(self.db()).await?;
        let plan = plan(&all, &restricted, &fleet, &known);
        let epochs = self.sync_splits(&plan).await?;
        let now = crate::clock::unix_now().max(0.0) as u64;
        let mut spent = db::events::local_captures_by_node(
            self.db(),
            now.saturating_sub(splits::SETTLE),
            edgecap_model::firing::MAX_SPENT,
        )
        .await?;
        let mut spent_bytes = db::events::local_bytes_by_node(
            self.db(),
            now.saturating_sub(splits::BYTES_SETTLE),
            edgecap_model::firing::MAX_SPENT_BYTES,
        )
        .await?;
        let none = Vec::new();
        let mut out = Refresh::default();
        for stored in &all {
            let e = epochs.get(&stored.id).unwrap_or(&none);
            let holders = Kind::ALL
                .iter()
                .flat_map(|k| splits::holders(e, *k))
                .map(str::to_owned)
                .collect();
            out.splits
                .insert(stored.id.clone(), (splits::latest(e).unwrap_or(0), holders));
        }
        let here: HashSet<String> = self.live_nodes().into_iter().map(|n| n.info.name).collect();
        // Each trigger's credentials are opened once per refresh, whatever its nodes.
        let mut opened: HashMap<&str, Option<Option<edgecap_model::SecretJson>>> = HashMap::new();
        for (node, planned) in plan.nodes {
            if !here.contains(&node) {
                continue;
            }
            if planned.len() > MAX_AGENT_TRIGGERS {
                tracing::warn!(%node, triggers = planned.len(),
                    "more triggers select this node than an agent evaluates ({MAX_AGENT_TRIGGERS}); \
                     the newest are left out");
            }
            let mut list = Vec::new();
            for p in planned.into_iter().take(MAX_AGENT_TRIGGERS) {
                let credentials = opened.entry(p.stored.id.as_str()).or_insert_with(|| {
                    let ctx = crate::credentials::trigger_context(&p.stored.id);
                    self.vault()
                        .for_agent(p.stored.credentials.as_deref(), &ctx)
                        .map_err(|e| {
                            tracing::error!(trigger = %p.stored.id, error = %e,
                            "cannot open the trigger's credentials; not sent to the agents")
                        })
                        .ok()
                });
                if let Some(credentials) = credentials {
                    let e = epochs.get(&p.stored.id).unwrap_or(&none);
                    let budget = Budget {
                        captures_per_hour: splits::effective(e, &node, Kind::Captures),
                        bytes_per_day: splits::effective(e, &node, Kind::Bytes),
                    };
                    list.push(AgentTrigger {
                        id: p.stored.id.clone(),
                        account_id: p.stored.account_id.clone(),
                        trigger: p.stored.trigger.clone(),
                        budget,
                        credentials: credentials.clone(),
                        prefixes: p.prefixes,
                        spent: spent
                            .remove(&(p.stored.id.clone(), node.clone()))
                            .unwrap_or_default(),
                        spent_bytes: spent_bytes
                            .remove(&(p.stored.id.clone(), node.clone()))
                            .unwrap_or_default(),
                    });
                }
            }
            out.lists.insert(node, list);
        }
        Ok(out)
    }
}

/// What one refresh computed.
#[derive(Debug, Default)]
struct Refresh {
    /// The lists of this process's connected nodes that evaluate triggers.
    lists: HashMap<String, Vec<AgentTrigger>>,
    /// Per trigger: the latest epoch the shares were computed at, and the nodes that must
    /// hear it before it settles.
    splits: HashMap<String, (u64, BTreeSet<String>)>,
}

/// What a connection was last told of the splits it must hear: trigger -> (epoch, the
/// shares it holds, None: the trigger is not in its list).
type Told = HashMap<String, (u64, Option<Budget>)>;

/// What `node` (on connection `conn`, holding `list`) hears of the splits now: a row for
/// every trigger whose latest epoch it must hear and has not been recorded hearing on this
/// connection with what it holds now. `told`: what was recorded on `conn` before (None: a
/// new connection, everything counts as sent now).
fn hearings(
    node: &str,
    list: &[AgentTrigger],
    splits: &HashMap<String, (u64, BTreeSet<String>)>,
    told: Option<&Told>,
    now: u64,
) -> Vec<db::splits::Hearing> {
    let holds: HashMap<&str, Budget> = list.iter().map(|t| (t.id.as_str(), t.budget)).collect();
    let mut out = Vec::new();
    for (id, (seq, holders)) in splits {
        if !holders.contains(node) {
            continue;
        }
        let value = holds.get(id.as_str()).copied();
        let sent = match told.and_then(|t| t.get(id)) {
            // New here (a new connection, or a holder of a new epoch): conservatively heard
            // now.
            None => true,
            Some((_, v)) if *v != value => true,
            Some((s, _)) if s < seq => false,
            Some(_) => continue,
        };
        out.push(db::splits::Hearing {
            trigger_id: id.clone(),
            node: node.to_owned(),
            seq: *seq,
            at: now,
            sent,
        });
    }
    out
}

pub(super) fn start(hub: &Hub) -> JoinHandle<()> {
    let hub = hub.clone();
    tokio::spawn(async move {
        // Node -> (connection, digest of the list it was sent).
        let mut sent: HashMap<String, (u64, u64)> = HashMap::new();
        // Node -> (connection, what it was recorded hearing on it).
        let mut told: HashMap<String, (u64, Told)> = HashMap::new();
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let wake = hub.shared.triggers_wake.clone();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = wake.notified() => {}
            }
            let refresh = match hub.trigger_lists().await {
                Ok(l) => l,
                Err(e) => {
                    tracing::error!(error = %e, "reading the triggers failed");
                    continue;
                }
            };
            let live = hub.live_connections();
            let names: HashSet<&str> = live.iter().map(|(n, _)| n.info.name.as_str()).collect();
            sent.retain(|name, _| names.contains(name.as_str()));
            told.retain(|name, _| names.contains(name.as_str()));
            let now = crate::clock::unix_now().max(0.0) as u64;
            let mut heard = Vec::new();
            for (node, conn) in &live {
                let name = &node.info.name;
                // A node whose agent does not evaluate triggers holds none: it hears that
                // when it connects.
                let list = if node.info.features.iter().any(|f| f == FEATURE_TRIGGERS) {
                    let list = refresh.lists.get(name).cloned().unwrap_or_default();
                    let d = digest(&list);
                    // An agent that acknowledges has heard a list once it says so; an older
                    // one when the list is written to its connection.
                    let acks = node
                        .info
                        .features
                        .iter()
                        .any(|f| f == FEATURE_TRIGGERS_HEARD);
                    if !matches!(sent.get(name), Some((c, had)) if c == conn && *had == d) {
                        let count = list.len();
                        if !hub.send(
                            name,
                            ServerMsg::Triggers {
                                triggers: list.clone(),
                                ack: acks.then_some(d),
                            },
                        ) {
                            continue;
                        }
                        tracing::debug!(node = %name, triggers = count, "triggers sent");
                        sent.insert(name.clone(), (*conn, d));
                    }
                    if acks && hub.triggers_acked(name, *conn) != Some(d) {
                        // Not heard yet: recorded when its `heard` arrives (which wakes this).
                        continue;
                    }
                    list
                } else {
                    Vec::new()
                };
                let before = told.get(name).filter(|(c, _)| c == conn).map(|(_, t)| t);
                let rows = hearings(name, &list, &refresh.splits, before, now);
                if !rows.is_empty() {
                    let holds: HashMap<&str, Budget> =
                        list.iter().map(|t| (t.id.as_str(), t.budget)).collect();
                    heard.push((name.clone(), *conn, rows, {
                        let mut t = before.cloned().unwrap_or_default();
                        for (id, (seq, _)) in &refresh.splits {
                            t.insert(id.clone(), (*seq, holds.get(id.as_str()).copied()));
                        }
                        t
                    }));
                }
            }
            if heard.is_empty() {
                continue;
            }
            let rows: Vec<db::splits::Hearing> = heard
                .iter()
                .flat_map(|(_, _, r, _)| r.iter().cloned())
                .collect();
            match db::splits::hear(hub.db(), &rows).await {
                Ok(()) => {
                    for (name, conn, _, t) in heard {
                        told.insert(name, (conn, t));
                    }
                }
                // Not recorded: asked again at the next refresh (the epochs wait).
                Err(e) => tracing::error!(error = %e, "cannot record what the nodes heard"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_shares_add_up_to_the_budget_and_never_more() {
        for total in [1u64, 2, 7, 1000, 10_000_000_000, u64::MAX] {
            for n in 1..=13usize {
                let b = Budget {
                    captures_per_hour: 4,
                    bytes_per_day: total,
                };
                let shares: Vec<Budget> = (0..n).map(|i| node_budget(b, n, i)).collect();
                let sum: u128 = shares.iter().map(|s| u128::from(s.bytes_per_day)).sum();
                assert_eq!(
                    sum,
                    u128::from(edgecap_model::trigger::local_bytes(total)),
                    "half of {total} over {n} nodes"
                );
                let (lo, hi) = (
                    shares.iter().map(|s| s.bytes_per_day).min().unwrap(),
                    shares.iter().map(|s| s.bytes_per_day).max().unwrap(),
                );
                assert!(hi - lo <= 1, "even shares: {shares:?}");
                let captures: u64 = shares.iter().map(|s| s.captures_per_hour).sum();
                assert_eq!(captures, 2, "half of 4 is the nodes' own");
            }
        }
    }
}
