//! What the agent tells Prometheus (`edgecap agent --metrics-listen`) and its server (the
//! health in each heartbeat). docs/operations.md "Metrics" lists every metric.
//!
//! One set per process ([`agent`]): the engine's counters arrive with its progress callback
//! (several times a second, never per packet), so the capture loop takes no lock for them;
//! each tick adds what grew since the last ([`Tally`]), and the end of a capture adds the rest
//! from its summary.
//!
//! Health: ready when the agent holds a connection to its server and a netfilter netlink
//! socket opens in the capture namespace (the first thing every capture needs), checked
//! every [`PROBE_EVERY`] by [`probe_loop`].

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use edgecap_metrics::prometheus_client::metrics::counter::Counter;
use edgecap_metrics::prometheus_client::metrics::family::Family;
use edgecap_metrics::prometheus_client::metrics::gauge::Gauge;
use edgecap_metrics::prometheus_client::registry::{Registry, Unit};
use edgecap_metrics::{Check, Readiness};
use edgecap_model::NodeHealth;

/// How often the netfilter check runs.
pub const PROBE_EVERY: Duration = Duration::from_secs(5);

type Labels = Vec<(&'static str, String)>;

/// The agent's registry, its families and its health.
pub struct AgentMetrics {
    registry: Registry,
    packets: Counter,
    bytes: Counter,
    lost: Counter,
    overruns: Counter,
    upload_bytes: Counter,
    upload_failures: Counter,
    upload_retries: Counter,
    /// `edgecap_store::attempts::failed()` when last added to `upload_retries`.
    retries_seen: AtomicU64,
    running: Gauge,
    finished: Family<Labels, Counter>,
    connected_gauge: Gauge,
    connected: AtomicBool,
    triggers: Gauge,
    firings: Family<Labels, Counter>,
    reports_dropped: Counter,
    /// Why netfilter is not reachable (None: it is, or not yet checked).
    netfilter: Mutex<Option<String>>,
    /// Why the always-on observer is not running (None: running or disabled).
    observer: Mutex<Option<String>>,
}

impl std::fmt::Debug for AgentMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentMetrics").finish_non_exhaustive()
    }
}

static AGENT: LazyLock<AgentMetrics> = LazyLock::new(AgentMetrics::new);

/// This process's agent metrics.
pub fn agent() -> &'static AgentMetrics {
    &AGENT
}

impl AgentMetrics {
    fn new() -> AgentMetrics {
        let mut registry = Registry::with_prefix("edgecap_agent");
        let counter = |r: &mut Registry, name: &str, help: &str, unit: Option<Unit>| {
            let c = Counter::default();
            match unit {
                Some(u) => r.register_with_unit(name, help, u, c.clone()),
                None => r.register(name, help, c.clone()),
            }
            c
        };
        let packets = counter(
            &mut registry,
            "packets",
            "Packets captured into files",
            None,
        );
        let bytes = counter(
            &mut registry,
            "captured",
            "Packet bytes captured into files",
            Some(Unit::Bytes),
        );
        let lost = counter(
            &mut registry,
            "packets_lost",
            "Packets the kernel logged but the agent never received (NFLOG sequence gaps, rule \
             counters)",
            None,
        );
        let overruns = counter(
            &mut registry,
            "overruns",
            "Receive-buffer overrun reports (ENOBUFS) of captures; never a packet count",
            None,
        );
        let upload_bytes = counter(
            &mut registry,
            "upload",
            "Bytes of completed bucket uploads",
            Some(Unit::Bytes),
        );
        let upload_failures = counter(
            &mut registry,
            "upload_failures",
            "Bucket uploads that failed (after their retries) and were aborted",
            None,
        );
        let upload_retries = counter(
            &mut registry,
            "upload_retries",
            "Requests to buckets that failed in a way the store retries (transport error, 5xx, \
             429): each is retried unless its retry budget is spent",
            None,
        );
        let running = Gauge::default();
        registry.register(
            "captures_running",
            "Captures running on this node",
            running.clone(),
        );
        let finished = Family::<Labels, Counter>::default();
        registry.register(
            "captures",
            "Captures finished on this node, by outcome (success, failed)",
            finished.clone(),
        );
        let connected_gauge = Gauge::default();
        registry.register(
            "connected",
            "1 while the agent holds a connection to its server",
            connected_gauge.clone(),
        );
        let triggers = Gauge::default();
        registry.register(
            "triggers",
            "Triggers this node evaluates on its own rollups",
            triggers.clone(),
        );
        let firings = Family::<Labels, Counter>::default();
        registry.register(
            "trigger_firings",
            "Trigger firings on this node, by result (capture, refused, failed)",
            firings.clone(),
        );
        let reports_dropped = counter(
            &mut registry,
            "trigger_reports_dropped",
            "Trigger reports (fired, ended, signed) dropped, oldest first, because more than \
             the bound waited for the server",
            None,
        );
        AgentMetrics {
            registry,
            triggers,
            firings,
            reports_dropped,
            packets,
            bytes,
            lost,
            overruns,
            upload_bytes,
            upload_failures,
            upload_retries,
            retries_seen: AtomicU64::new(0),
            running,
            finished,
            connected_gauge,
            connected: AtomicBool::new(false),
            netfilter: Mutex::new(None),
            observer: Mutex::new(None),
        }
    }

    /// How many triggers this node evaluates.
    pub fn set_triggers(&self, n: usize) {
        self.triggers.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// A trigger fired: `result` is `capture`, `refused` or `failed`.
    pub fn firing(&self, result: &str) {
        self.firings
            .get_or_create(&vec![("result", result.to_owned())])
            .inc();
    }

    /// A trigger report waiting for the server was dropped.
    pub fn report_dropped(&self) {
        self.reports_dropped.inc();
    }

    /// The metrics as OpenMetrics text.
    pub fn render(&self) -> String {
        let now = edgecap_store::attempts::failed();
        let before = self.retries_seen.swap(now, Ordering::Relaxed);
        self.upload_retries.inc_by(now.saturating_sub(before));
        edgecap_metrics::render(&self.registry)
    }

    /// A capture thread started.
    pub fn capture_started(&self) {
        self.running.inc();
    }

    /// A capture thread ended with this outcome.
    pub fn capture_ended(&self, ok: bool) {
        self.running.dec();
        let outcome = if ok { "success" } else { "failed" };
        self.finished
            .get_or_create(&vec![("outcome", outcome.to_owned())])
            .inc();
    }

    /// A bucket upload completed with `bytes`, or failed.
    pub fn upload(&self, result: Result<u64, ()>) {
        match result {
            Ok(bytes) => {
                self.upload_bytes.inc_by(bytes);
            }
            Err(()) => {
                self.upload_failures.inc();
            }
        }
    }

    /// The connection to the server came up or went down.
    pub fn set_connected(&self, up: bool) {
        self.connected.store(up, Ordering::Relaxed);
        self.connected_gauge.set(i64::from(up));
    }

    fn set_netfilter(&self, problem: Option<String>) {
        *self.netfilter.lock().unwrap_or_else(|p| p.into_inner()) = problem;
    }

    /// The observer's state: None when it runs (or is disabled), else why not.
    pub fn set_observer(&self, problem: Option<String>) {
        *self.observer.lock().unwrap_or_else(|p| p.into_inner()) = problem;
    }

    /// `/readyz`' checks.
    pub fn readiness(&self) -> Readiness {
        let server = if self.connected.load(Ordering::Relaxed) {
            Check::ok("server")
        } else {
            Check::failed("server", "not connected to its server")
        };
        let nf = match &*self.netfilter.lock().unwrap_or_else(|p| p.into_inner()) {
            None => Check::ok("nftables"),
            Some(why) => Check::failed("nftables", why.clone()),
        };
        let observer = match &*self.observer.lock().unwrap_or_else(|p| p.into_inner()) {
            None => Check::ok("observer"),
            Some(why) => Check::failed("observer", why.clone()),
        };
        Readiness::of(vec![server, nf, observer])
    }

    /// The health sent in heartbeats: the checks that failed, as `name: why`.
    pub fn health(&self) -> NodeHealth {
        let r = self.readiness();
        NodeHealth {
            ready: r.ready,
            problems: r
                .checks
                .iter()
                .filter(|c| !c.ok)
                .map(|c| format!("{}: {}", c.name, c.detail.as_deref().unwrap_or("failed")))
                .collect(),
        }
    }
}

/// One capture's counters as last added to the totals.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    packets: u64,
    bytes: u64,
    lost: u64,
    overruns: u64,
}

impl Tally {
    /// The engine's running totals of this capture: adds what grew since the last call.
    pub fn advance(&mut self, p: &edgecap_capture::Progress) {
        self.add(p.packets, p.bytes, p.lost, p.overruns);
    }

    /// The capture's summary: the rest of its counters.
    pub fn finish(&mut self, s: &edgecap_capture::Summary) {
        self.add(s.packets, s.bytes, s.lost, s.overruns);
    }

    fn add(&mut self, packets: u64, bytes: u64, lost: u64, overruns: u64) {
        let m = agent();
        m.packets.inc_by(packets.saturating_sub(self.packets));
        m.bytes.inc_by(bytes.saturating_sub(self.bytes));
        m.lost.inc_by(lost.saturating_sub(self.lost));
        m.overruns.inc_by(overruns.saturating_sub(self.overruns));
        self.packets = self.packets.max(packets);
        self.bytes = self.bytes.max(bytes);
        self.lost = self.lost.max(lost);
        self.overruns = self.overruns.max(overruns);
    }
}

/// Checks every [`PROBE_EVERY`] that a netfilter netlink socket opens in the capture
/// namespace `netns` (or the agent's own); runs until the task is aborted.
pub async fn probe_loop(netns: Option<String>) {
    loop {
        let ns = netns.clone();
        let problem = tokio::task::spawn_blocking(move || netfilter_problem(ns.as_deref()))
            .await
            .unwrap_or_else(|e| Some(format!("the check did not finish: {e}")));
        agent().set_netfilter(problem);
        tokio::time::sleep(PROBE_EVERY).await;
    }
}

fn netfilter_problem(netns: Option<&str>) -> Option<String> {
    let open = || {
        edgecap_netfilter::socket::NlSocket::open()
            .map(drop)
            .map_err(|e| format!("no netfilter netlink socket: {e}"))
    };
    let r = match netns {
        None => open(),
        Some(ns) => edgecap_netns::run(ns, open)
            .map_err(|e| format!("cannot enter network namespace {ns}: {e}"))
            .and_then(|r| r),
    };
    r.err()
}

/// The probe the metrics listener serves.
#[derive(Debug, Clone, Copy)]
pub struct Probe;

impl edgecap_metrics::Probe for Probe {
    async fn metrics(&self) -> String {
        agent().render()
    }

    async fn readiness(&self) -> Readiness {
        agent().readiness()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tally_adds_only_what_grew() {
        let before = agent().packets.get();
        let mut t = Tally::default();
        t.add(10, 1000, 0, 0);
        t.add(10, 1000, 0, 0);
        t.add(25, 2500, 1, 2);
        // Other tests of this binary may count at once; ours added exactly 25.
        assert!(agent().packets.get() >= before + 25);
        assert_eq!((t.packets, t.bytes, t.lost, t.overruns), (25, 2500, 1, 2));
        let text = agent().render();
        assert!(text.contains("edgecap_agent_packets_total "), "{text}");
        assert!(
            text.contains("edgecap_agent_captured_bytes_total "),
            "{text}"
        );
    }
}
