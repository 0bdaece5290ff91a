//! What the server tells Prometheus and load balancers: its metrics (`GET /metrics`) and its
//! readiness (`GET /readyz`). docs/operations.md "Metrics" lists every metric.
//!
//! Counted where things happen (API requests by route template, dispatch latency); read at
//! scrape time where the state already lives elsewhere (captures by status from the
//! database, so every replica reports the same fleet; agents connected and queue depths from
//! the hub). [`Metrics::add_ready_check`] is the hook for conditions other subsystems own
//! (a replica's lease, say): `/readyz` is 200 only when every check passes.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use edgecap_metrics::prometheus_client::metrics::counter::Counter;
use edgecap_metrics::prometheus_client::metrics::family::Family;
use edgecap_metrics::prometheus_client::metrics::gauge::Gauge;
use edgecap_metrics::prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use edgecap_metrics::prometheus_client::registry::{Registry, Unit};
use edgecap_metrics::{Check, Readiness};

use crate::AppState;

type Labels = Vec<(&'static str, String)>;

/// A readiness condition: resolves to its [`Check`].
pub type ReadyCheck =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Check> + Send>> + Send + Sync + 'static>;

/// The statuses a capture takes here, reported even at 0 so a query never finds a gap.
const STATUSES: &[&str] = &[
    "pending",
    "running",
    "conversion_running",
    "success",
    "failed",
];

/// Longest a database check of `/readyz` waits (a load balancer's probe times out too).
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// Creates waiting for their acknowledgement, at most; beyond it a dispatch is not timed.
const MAX_DISPATCHES: usize = 65_536;
/// A dispatch unacknowledged this long is forgotten when room is needed.
const DISPATCH_FORGET: Duration = Duration::from_secs(600);

/// Unrecorded captures remembered so each is counted once (a finished one's outcome is
/// repeated in every hello of its agent); the oldest are forgotten first.
const MAX_UNRECORDED_REMEMBERED: usize = 1024;

/// The server's registry and its families.
pub struct Metrics {
    registry: Registry,
    api_requests: Family<Labels, Counter>,
    dispatch: Histogram,
    captures: Family<Labels, Gauge>,
    agents: Gauge,
    queues: Family<Labels, Gauge>,
    /// Rollup seconds from agents by outcome (`crate::rollups::Rollups`).
    rollups: Family<Labels, Counter>,
    /// Captures agents reported that the server has no record of ([`Metrics::unrecorded`]).
    unrecorded: Counter,
    /// Their ids, the last [`MAX_UNRECORDED_REMEMBERED`].
    unrecorded_ids: Mutex<std::collections::VecDeque<String>>,
    /// (capture id, node) -> when its create request arrived.
    dispatches: Mutex<HashMap<(String, String), Instant>>,
    checks: Mutex<Vec<ReadyCheck>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("edgecap");
        let api_requests = Family::<Labels, Counter>::default();
        registry.register(
            "api_requests",
            "HTTP requests answered, by method, route template and status code",
            api_requests.clone(),
        );
        // 1 ms .. ~33 s.
        let dispatch = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        registry.register_with_unit(
            "dispatch",
            "Time from a capture's create request to each selected node's acknowledgement",
            Unit::Seconds,
            dispatch.clone(),
        );
        let captures = Family::<Labels, Gauge>::default();
        registry.register(
            "captures",
            "Captures in the database by status (all accounts; every replica reports the same)",
            captures.clone(),
        );
        let agents = Gauge::default();
        registry.register(
            "agents_connected",
            "Agents connected to this server process",
            agents.clone(),
        );
        let queues = Family::<Labels, Gauge>::default();
        registry.register(
            "queue_depth",
            "Items waiting in a bounded queue of this process: writer (agent state changes for \
             the database), merge (captures waiting for a merge slot), agent_outbox (messages \
             to agents, summed over sessions)",
            queues.clone(),
        );
        let rollups = Family::<Labels, Counter>::default();
        registry.register(
            "rollup_seconds",
            "Agents' rollup seconds by outcome: stored, dropped (the rollup queue was full or \
             the database refused the batch), refused (malformed)",
            rollups.clone(),
        );
        let unrecorded = Counter::default();
        registry.register(
            "unrecorded_captures",
            "Captures an agent reported finished that this server has no record of, each \
             counted once: a trigger's capture whose `fired` report the agent dropped (its \
             bounded queue was full while the server was away). Its file is in the trigger's \
             destination; the server logs the capture, node and file, and records nothing",
            unrecorded.clone(),
        );
        Metrics {
            rollups,
            unrecorded,
            unrecorded_ids: Mutex::new(std::collections::VecDeque::new()),
            registry,
            api_requests,
            dispatch,
            captures,
            agents,
            queues,
            dispatches: Mutex::new(HashMap::new()),
            checks: Mutex::new(Vec::new()),
        }
    }

    /// Counts one answered request. `route` is the route's template (never a raw path); a
    /// method outside the standard ones counts as `other`, so no client can grow the family.
    pub fn request(&self, method: &str, route: &str, code: u16) {
        const METHODS: &[&str] = &["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"];
        let method = METHODS.iter().find(|m| **m == method).unwrap_or(&"other");
        self.api_requests
            .get_or_create(&vec![
                ("method", (*method).to_owned()),
                ("route", route.to_owned()),
                ("code", code.to_string()),
            ])
            .inc();
    }

    /// A part of a capture created at `since` was handed to `node`'s session.
    pub fn dispatched(&self, capture_id: &str, node: &str, since: Instant) {
        let mut d = lock(&self.dispatches);
        if d.len() >= MAX_DISPATCHES {
            d.retain(|_, t| t.elapsed() < DISPATCH_FORGET);
            if d.len() >= MAX_DISPATCHES {
                return;
            }
        }
        d.insert((capture_id.to_owned(), node.to_owned()), since);
    }

    /// `node` acknowledged its part of `capture_id`: observes the dispatch latency once.
    pub fn acknowledged(&self, capture_id: &str, node: &str) {
        let since = lock(&self.dispatches).remove(&(capture_id.to_owned(), node.to_owned()));
        if let Some(t) = since {
            self.dispatch.observe(t.elapsed().as_secs_f64());
        }
    }

    /// A dispatch that was not sent after all: it is not timed.
    pub fn forget_dispatch(&self, capture_id: &str, node: &str) {
        lock(&self.dispatches).remove(&(capture_id.to_owned(), node.to_owned()));
    }

    /// An agent reported capture `capture_id` finished and the server has no record of it.
    /// Counts it unless it was counted already (among the last [`MAX_UNRECORDED_REMEMBERED`]);
    /// true when it was counted now.
    pub fn unrecorded(&self, capture_id: &str) -> bool {
        let mut ids = lock(&self.unrecorded_ids);
        if ids.iter().any(|id| id == capture_id) {
            return false;
        }
        if ids.len() >= MAX_UNRECORDED_REMEMBERED {
            ids.pop_front();
        }
        ids.push_back(capture_id.to_owned());
        self.unrecorded.inc();
        true
    }

    /// Adds a readiness condition; `/readyz` runs every one on each request.
    pub fn add_ready_check(&self, check: ReadyCheck) {
        lock(&self.checks).push(check);
    }

    fn ready_checks(&self) -> Vec<ReadyCheck> {
        lock(&self.checks).clone()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// `/metrics`' text: reads the scrape-time values, then renders.
pub async fn render(state: &AppState) -> String {
    let m = state.hub.metrics();
    match state.db.captures_by_status().await {
        Ok(counts) => {
            for s in STATUSES {
                m.captures
                    .get_or_create(&vec![("status", (*s).to_owned())])
                    .set(0);
            }
            for (status, n) in counts {
                m.captures.get_or_create(&vec![("status", status)]).set(n);
            }
        }
        // The last values stay; /readyz says the database is gone.
        Err(e) => tracing::warn!(error = %e, "metrics: counting captures"),
    }
    let q = state.hub.queue_depths();
    m.agents.set(i64::try_from(q.agents).unwrap_or(i64::MAX));
    for (name, depth) in [
        ("writer", q.writer),
        ("merge", q.merge),
        ("agent_outbox", q.agent_outbox),
    ] {
        m.queues
            .get_or_create(&vec![("queue", name.to_owned())])
            .set(i64::try_from(depth).unwrap_or(i64::MAX));
    }
    let r = state.hub.rollups();
    for (outcome, n) in [
        ("stored", r.stored()),
        ("dropped", r.dropped()),
        ("refused", r.refused()),
    ] {
        let c = m
            .rollups
            .get_or_create(&vec![("outcome", outcome.to_owned())]);
        c.inc_by(n.saturating_sub(c.get()));
    }
    edgecap_metrics::render(&m.registry)
}

/// `/readyz`' checks: the database answers a trivial query, its migrations are this build's,
/// and every check added with [`Metrics::add_ready_check`] passes.
pub async fn readiness(state: &AppState) -> Readiness {
    let mut checks = Vec::new();
    match tokio::time::timeout(CHECK_TIMEOUT, state.db.ping()).await {
        Ok(Ok(())) => checks.push(Check::ok("database")),
        Ok(Err(e)) => checks.push(Check::failed("database", format!("no answer: {e}"))),
        Err(_) => checks.push(Check::failed(
            "database",
            format!("no answer within {CHECK_TIMEOUT:?}"),
        )),
    }
    if checks[0].ok {
        match tokio::time::timeout(CHECK_TIMEOUT, state.db.migrations_pending()).await {
            Ok(Ok(0)) => checks.push(Check::ok("migrations")),
            Ok(Ok(n)) => checks.push(Check::failed(
                "migrations",
                format!("{n} migration(s) of this version not applied"),
            )),
            Ok(Err(e)) => checks.push(Check::failed("migrations", format!("cannot read: {e}"))),
            Err(_) => checks.push(Check::failed(
                "migrations",
                format!("no answer within {CHECK_TIMEOUT:?}"),
            )),
        }
    } else {
        checks.push(Check::failed("migrations", "database unreachable"));
    }
    for check in state.hub.metrics().ready_checks() {
        checks.push(check().await);
    }
    Readiness::of(checks)
}

/// The probe a `--metrics-listen` listener serves.
#[derive(Debug, Clone)]
pub struct Probe(pub AppState);

impl edgecap_metrics::Probe for Probe {
    fn metrics(&self) -> impl Future<Output = String> + Send {
        render(&self.0)
    }

    fn readiness(&self) -> impl Future<Output = Readiness> + Send {
        readiness(&self.0)
    }
}
