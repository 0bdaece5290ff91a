//! One agent's connection as the hub sees it: registration (one live connection per node
//! name), the messages it sends, reconciliation after a (re)connect, and what its departure
//! starts. Nothing here knows about WebSockets.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use edgecap_model::{AgentMsg, Outcome, ServerMsg, Status};
use tokio::sync::{mpsc, watch};

use super::writer::Write;
use super::{Connected, Counters, Hub, timers};
use crate::clock;
use crate::db::nodes::NodeInfo;
use crate::db::parts;
use crate::error::Result;

/// A registered agent connection. Dropping it disconnects the node.
#[derive(Debug)]
pub struct Session {
    hub: Hub,
    name: String,
    conn: u64,
    /// Set when a report found the writer's queue full: the session must end (the agent
    /// keeps what it could not deliver and reports it again on its next connection).
    overloaded: AtomicBool,
    /// Asks for grants being decided for this connection (at most
    /// [`edgecap_model::firing::MAX_PENDING_ASKS`]; beyond, refused at once).
    asking: Arc<AtomicUsize>,
}

impl Hub {
    /// Registers a node that said hello. Refused (with the reason to send the agent) if a node
    /// of that name is already connected. The receiver yields what to send the agent.
    pub fn connect(&self, info: NodeInfo) -> Result<(Session, mpsc::Receiver<ServerMsg>), String> {
        if self.is_closing() {
            return Err("the server is shutting down".into());
        }
        if self.shared.replica.lease_lost() {
            return Err(
                "this server replica cannot reach its database (lease lost); connect to                  another"
                    .into(),
            );
        }
        if self.shared.writes.capacity() == 0 {
            return Err(
                "the server is busy (its database writer is behind); try again later".into(),
            );
        }
        let (tx, rx) = mpsc::channel(self.config().agent_outbox.max(1));
        let name = info.name.clone();
        let conn = {
            let mut live = self.live();
            // A revocation that landed between the credential check and now; or a name
            // forgotten since the last poll, which the next connect finds free.
            if live.revoked.contains(&name) {
                return Err(format!(
                    "node {name} is on this server's list of revoked nodes; connect again to \
                     have its credential checked"
                ));
            }
            if live.nodes.contains_key(&name) {
                return Err(format!(
                    "a node named {name:?} is already connected; node names must be unique"
                ));
            }
            live.next_id += 1;
            let conn = live.next_id;
            live.away.remove(&name);
            live.nodes.insert(
                name.clone(),
                Connected {
                    conn,
                    info: info.clone(),
                    last_seen: clock::unix_now(),
                    tx: Some(tx),
                    assigned: HashSet::new(),
                    health: None,
                    triggers_heard: None,
                },
            );
            conn
        };
        self.write(Write::NodeSeen {
            node: info,
            conn,
            at: clock::now(),
        });
        tracing::info!(node = %name, conn, "agent connected");
        // Its triggers (and, on replicas, the others' shares) are sent by the next refresh.
        self.triggers_dirty();
        Ok((
            Session {
                hub: self.clone(),
                name,
                conn,
                overloaded: AtomicBool::new(false),
                asking: Arc::default(),
            },
            rx,
        ))
    }
}

impl Session {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Becomes true when the server shuts down.
    pub fn closing(&self) -> watch::Receiver<bool> {
        self.hub.closing()
    }

    /// Brings the database and the node into agreement after `hello`:
    /// outcomes the node could not deliver are recorded; parts it still runs stay running;
    /// running parts it no longer knows failed ("node restarted and lost the capture");
    /// parts it never acknowledged are assigned again (or failed, if a stop came meanwhile);
    /// captures it runs that are over (or unknown) are stopped.
    pub async fn reconcile(&self, running: Vec<String>, finished: Vec<Outcome>) -> Result<()> {
        let at = clock::now();
        for outcome in finished {
            self.done(outcome);
        }
        self.hub.barrier().await;
        let open = parts::open_for_node(self.hub.db(), &self.name).await?;
        let running: HashSet<String> = running.into_iter().collect();
        let mut known = HashSet::new();
        for part in open {
            known.insert(part.capture_id.clone());
            let id = part.capture_id.clone();
            if running.contains(&id) {
                // Running here: its progress is taken, and it is not assigned again.
                self.mark_assigned(&id);
                if part.status == Status::Pending {
                    self.report(Write::Ack {
                        capture_id: id,
                        node: self.name.clone(),
                        at: at.clone(),
                    });
                }
            } else if part.status == Status::Running {
                self.fail(id, "node restarted and lost the capture".into());
            } else if part.stop_requested {
                self.fail(
                    id,
                    format!(
                        "never started: the capture was stopped before node {} acknowledged it",
                        self.name
                    ),
                );
            } else if part.assignment.prefixes.is_some() && !self.hub.enforces_boundary(&self.name)
            {
                // A restricted account's part on an agent that came back without the
                // boundary (downgraded): never sent, failed saying why.
                self.fail(id, crate::tenancy::no_boundary_reason(&self.name));
            } else {
                let ctx = crate::credentials::capture_context(&id);
                match self
                    .hub
                    .vault()
                    .for_agent(part.credentials.as_deref(), &ctx)
                {
                    Ok(credentials) => {
                        let mut a = part.assignment;
                        a.credentials = credentials;
                        self.hub.assign(&self.name, a);
                    }
                    // The key file changed under the database: say so on the part, loudly.
                    Err(e) => self.fail(id, format!("the server cannot assign it: {e}")),
                }
            }
        }
        for id in running.difference(&known) {
            tracing::info!(node = %self.name, capture = %id, "stopping a capture that is over (or that this server has no record of)");
            self.hub.send(
                &self.name,
                ServerMsg::Stop {
                    capture_id: id.clone(),
                },
            );
        }
        Ok(())
    }

    /// Why this session must end, if it must: a report found the writer's queue full.
    pub fn overloaded(&self) -> Option<&'static str> {
        self.overloaded
            .load(Ordering::Relaxed)
            .then_some("the server is busy (its database writer is behind); reconnect later")
    }

    /// Queues a state change the agent reported, or marks the session overloaded.
    fn report(&self, w: Write) {
        if !self.hub.write_agent(w) && !self.overloaded.swap(true, Ordering::Relaxed) {
            tracing::warn!(node = %self.name, conn = self.conn,
                "writer queue full; closing the session (the agent reports again on reconnect)");
        }
    }

    /// Records a capture as running on this connection (so `assign` does not send it again
    /// and its progress is kept).
    fn mark_assigned(&self, capture_id: &str) {
        let mut live = self.hub.live();
        if let Some(c) = live.nodes.get_mut(&self.name)
            && c.conn == self.conn
        {
            c.assigned.insert(capture_id.to_owned());
        }
    }

    /// Takes one message from the agent. Never blocks: state changes are queued for the
    /// writer (see [`Session::overloaded`]), progress stays in memory until the next flush,
    /// and only for captures this connection runs, so the progress table is bounded by the
    /// node's open parts.
    pub fn handle(&self, msg: AgentMsg) {
        self.touch();
        match msg {
            AgentMsg::Heartbeat { health: Some(h) } => {
                let h = h.bounded();
                let changed = {
                    let live = self.hub.live();
                    live.nodes
                        .get(&self.name)
                        .is_some_and(|c| c.conn == self.conn && c.health.as_ref() != Some(&h))
                };
                // Written only when it changes; a full writer queue leaves it to the next
                // heartbeat.
                if changed
                    && self.hub.write_agent(Write::NodeHealth {
                        name: self.name.clone(),
                        health: h.clone(),
                    })
                {
                    let mut live = self.hub.live();
                    if let Some(c) = live.nodes.get_mut(&self.name)
                        && c.conn == self.conn
                    {
                        c.health = Some(h);
                    }
                }
            }
            AgentMsg::Heartbeat { health: None } => {}
            AgentMsg::Hello { .. } => {
                tracing::warn!(node = %self.name, "second hello on one connection ignored");
            }
            AgentMsg::Ack { capture_id } => {
                if edgecap_model::ids::is_id(&capture_id) {
                    let capture_id = capture_id.to_ascii_lowercase();
                    self.hub.metrics().acknowledged(&capture_id, &self.name);
                    self.report(Write::Ack {
                        capture_id,
                        node: self.name.clone(),
                        at: clock::now(),
                    });
                }
            }
            AgentMsg::Progress {
                capture_id,
                packets,
                bytes,
                lost,
            } => {
                if edgecap_model::ids::is_id(&capture_id) {
                    let capture_id = capture_id.to_ascii_lowercase();
                    let mut live = self.hub.live();
                    let ours = live
                        .nodes
                        .get(&self.name)
                        .is_some_and(|c| c.conn == self.conn && c.assigned.contains(&capture_id));
                    if !ours {
                        return;
                    }
                    live.progress.entry(capture_id).or_default().insert(
                        self.name.clone(),
                        (
                            Counters {
                                packets,
                                bytes,
                                lost,
                            },
                            true,
                        ),
                    );
                }
            }
            AgentMsg::Done { outcome } => self.done(outcome),
            // To the look-back query that asked (hub/lookback.rs), never waiting.
            AgentMsg::Answer { answer } => self.hub.answer(&self.name, answer),
            // To the rollup writer's bounded queue; never waits (crate::rollups::store).
            AgentMsg::Rollups { seconds } => self.hub.rollups().offer(&self.name, seconds),
            // Trigger reports (issue 14), recorded by the writer in order (firings.rs).
            AgentMsg::Fired { firing } => {
                // The capture it started is this connection's: its progress is kept (the
                // writer forgets it again if the firing is refused).
                if let Some(id) = &firing.capture_id
                    && firing.refused.is_none()
                    && edgecap_model::ids::is_id(id)
                {
                    self.mark_assigned(&id.to_ascii_lowercase());
                }
                self.trigger_report(super::firings::Report::Fired(firing));
            }
            AgentMsg::Ended { ending } => {
                self.trigger_report(super::firings::Report::Ended(ending))
            }
            AgentMsg::Signed { signed } => {
                self.trigger_report(super::firings::Report::Signed(signed))
            }
            // Decided at once, not by the writer: the agent waits for the answer (at most
            // GRANT_TIMEOUT_MS) before it starts the capture.
            AgentMsg::Ask { ask } => self.ask(ask),
            // The trigger list with this ack is in force on the node (triggers.rs records
            // the hearing at its next refresh, woken now).
            AgentMsg::Heard { ack } => self.hub.triggers_heard(&self.name, self.conn, ack),
        }
    }

    /// What the node said of itself on this connection; None once it is gone.
    fn live_node(&self) -> Option<super::LiveNode> {
        let live = self.hub.live();
        match live.nodes.get(&self.name) {
            Some(c) if c.conn == self.conn => Some(super::LiveNode {
                info: c.info.clone(),
                last_seen: c.last_seen,
                replica: None,
                health: None,
            }),
            _ => None,
        }
    }

    /// An ask beyond the node's local shares of a trigger's budget, decided on a task
    /// of its own (hub/firings.rs) and answered on this connection only.
    fn ask(&self, ask: edgecap_model::firing::Ask) {
        use edgecap_model::firing::{Grant, MAX_PENDING_ASKS};
        let Some(node) = self.live_node() else {
            return;
        };
        let (hub, name, conn) = (self.hub.clone(), self.name.clone(), self.conn);
        if self.asking.fetch_add(1, Ordering::SeqCst) >= MAX_PENDING_ASKS {
            self.asking.fetch_sub(1, Ordering::SeqCst);
            let grant = Grant {
                trigger_id: ask.trigger_id,
                capture_id: ask.capture_id,
                granted: false,
                reason: Some(format!(
                    "{}: this node has {MAX_PENDING_ASKS} asks being decided already",
                    if ask.capture {
                        "budget.captures_per_hour"
                    } else {
                        "budget.bytes_per_day"
                    }
                )),
                bytes: None,
            };
            hub.send_on(&name, conn, ServerMsg::Grant { grant });
            return;
        }
        let asking = self.asking.clone();
        tokio::spawn(async move {
            let grant = super::firings::ask(hub.db(), &node, &ask).await;
            asking.fetch_sub(1, Ordering::SeqCst);
            hub.send_on(&name, conn, ServerMsg::Grant { grant });
        });
    }

    /// Queues a trigger report with what the node said of itself on this connection.
    fn trigger_report(&self, report: super::firings::Report) {
        let Some(node) = self.live_node() else {
            return;
        };
        self.report(Write::Report {
            node: Box::new(node),
            conn: self.conn,
            report,
        });
    }

    fn done(&self, mut outcome: Outcome) {
        if !edgecap_model::ids::is_id(&outcome.capture_id) {
            return;
        }
        outcome.capture_id.make_ascii_lowercase();
        {
            let mut live = self.hub.live();
            if let Some(c) = live.nodes.get_mut(&self.name)
                && c.conn == self.conn
            {
                c.assigned.remove(&outcome.capture_id);
            }
        }
        tracing::info!(node = %self.name, capture = %outcome.capture_id, ok = outcome.ok,
            packets = outcome.packets, "part finished");
        self.report(Write::Done {
            node: self.name.clone(),
            outcome,
            at: clock::now(),
        });
    }

    fn fail(&self, capture_id: String, reason: String) {
        tracing::warn!(node = %self.name, capture = %capture_id, %reason, "part failed");
        self.hub.write(Write::Fail {
            capture_id,
            node: self.name.clone(),
            reason,
            at: clock::now(),
        });
    }

    fn touch(&self) {
        let mut live = self.hub.live();
        if let Some(c) = live.nodes.get_mut(&self.name)
            && c.conn == self.conn
        {
            c.last_seen = clock::unix_now();
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let generation = {
            let mut live = self.hub.live();
            if live
                .nodes
                .get(&self.name)
                .is_some_and(|c| c.conn == self.conn)
            {
                live.nodes.remove(&self.name);
            }
            live.next_id += 1;
            let generation = live.next_id;
            live.away.insert(self.name.clone(), generation);
            generation
        };
        self.hub.write(Write::NodeGone {
            name: self.name.clone(),
            conn: self.conn,
            at: clock::now(),
        });
        tracing::info!(node = %self.name, conn = self.conn, "agent disconnected");
        // The shares of the triggers it evaluated go to the nodes left.
        self.hub.triggers_dirty();
        // On a shared database the replica holding the sweep claim times lost nodes out
        // (`replica.rs`), whichever replica they left.
        if !self.hub.is_closing() && !self.hub.shared.replica.shared {
            let reason = format!(
                "node {} disconnected and did not return within {}",
                self.name,
                clock::human(self.hub.config().grace)
            );
            timers::grace(&self.hub, self.name.clone(), generation, reason);
        }
    }
}
