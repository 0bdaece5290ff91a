//! The agent's observer: always on while the agent runs (unless the configuration turns it
//! off). One thread in the capture namespace runs the engine's observer
//! ([`edgecap_capture::observe`]); its samples go into the look-back ring and the node's
//! per-second rollups, its counters into the rollups' exact totals. Closed seconds wait in a
//! bounded queue for the link to send.
//!
//! An observer that cannot start (no nf_tables, no free NFLOG group, an unknown point) says so
//! in its [`Status`] and the log, and never holds up captures.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use edgecap_capture::GroupChoice;
use edgecap_capture::config::ObserverConfig;
use edgecap_capture::observe::{Observation, ObservedPacket, ObserverSpec, observe};
use edgecap_filter::Boundary;
use edgecap_model::protocol::{AccountScope, MAX_OBSERVED_ACCOUNTS};
use edgecap_observe::{Ring, Roller, SampleMeta, Second};

use crate::worker::NodeContext;

/// The observer's table in the capture namespace (one per namespace; `flags owner`).
pub const TABLE: &str = "edgecap_observer";

/// Closed seconds kept for the link while it cannot send (10 minutes of one point).
pub const MAX_QUEUED_SECONDS: usize = 600;

/// Heavy hitters kept per second and point.
pub const TOP: usize = 10;

/// How the observer is doing, for logs, the hello and health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Disabled,
    Starting,
    Running { group: u16 },
    Failed(String),
    Stopped,
}

impl Status {
    /// One word or a sentence, as reported.
    pub fn text(&self) -> String {
        match self {
            Status::Disabled => "disabled".into(),
            Status::Starting => "starting".into(),
            Status::Running { group } => format!("running (NFLOG group {group})"),
            Status::Failed(why) => format!("failed: {why}"),
            Status::Stopped => "stopped".into(),
        }
    }
}

struct State {
    ring: Ring,
    node: Roller,
    /// One roller per restricted account the server named, inside its prefixes.
    accounts: Vec<Roller>,
    /// One roller per restricted account a trigger watches (issue 14), inside its prefixes;
    /// their seconds go to the triggers only.
    trigger_accounts: Vec<Roller>,
    points: Vec<String>,
    queue: VecDeque<Second>,
    dropped: u64,
    /// Closed seconds for the triggers: the node's and the trigger accounts' (bounded like
    /// the queue; taken by [`Observer::take_fresh`]).
    fresh: VecDeque<Second>,
}

impl State {
    /// Closes every second before `until`: the node's and the named accounts' go to the
    /// link's queue, the node's and the trigger accounts' to the triggers' (both bounded).
    fn close(&mut self, until: u64) {
        let node = self.node.close(until);
        self.fresh.extend(node.iter().cloned());
        self.queue.extend(node);
        for r in &mut self.accounts {
            self.queue.extend(r.close(until));
        }
        for r in &mut self.trigger_accounts {
            self.fresh.extend(r.close(until));
        }
        while self.queue.len() > MAX_QUEUED_SECONDS {
            self.queue.pop_front();
            self.dropped += 1;
        }
        let fresh_bound = MAX_QUEUED_SECONDS * (1 + self.trigger_accounts.len());
        while self.fresh.len() > fresh_bound {
            self.fresh.pop_front();
        }
    }
}

struct Shared {
    state: Mutex<State>,
    status: Mutex<Status>,
}

/// A running (or failed, or disabled) observer.
pub struct Observer {
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves data that is still consistent enough to read.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

struct Sink(Arc<Shared>);

impl Observation for Sink {
    fn installed(&mut self, group: u16) {
        *lock(&self.0.status) = Status::Running { group };
        crate::metrics::agent().set_observer(None);
    }

    fn sample(&mut self, p: ObservedPacket<'_>) {
        let mut st = lock(&self.0.state);
        let point = u16::try_from(p.point).unwrap_or(u16::MAX);
        let one_in = st.ring.base_one_in();
        st.ring.insert(
            SampleMeta {
                ts_ns: p.ts_ns,
                orig_len: p.orig_len,
                point,
                iface: u16::try_from(p.ifindex).unwrap_or(u16::MAX),
            },
            p.data,
        );
        st.node.sample(p.ts_ns, point, p.orig_len, p.data, one_in);
        for r in &mut st.accounts {
            r.sample(p.ts_ns, point, p.orig_len, p.data, one_in);
        }
        for r in &mut st.trigger_accounts {
            r.sample(p.ts_ns, point, p.orig_len, p.data, one_in);
        }
    }

    fn totals(&mut self, t: u64, point: usize, packets: u64, bytes: u64) {
        let mut st = lock(&self.0.state);
        let point = u16::try_from(point).unwrap_or(u16::MAX);
        st.node.counters(t, point, packets, bytes);
    }
}

impl Observer {
    /// Starts the observer for `node` as its configuration says; never fails (see
    /// [`Observer::status`]).
    pub fn start(node: &NodeContext) -> Observer {
        let config: &ObserverConfig = &node.config.observer;
        let seed = u64::from(std::process::id()) ^ edgecap_capture::run::now_ns();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                ring: Ring::new(config.ring, u64::from(config.sample_one_in), seed),
                node: Roller::new(config.points.clone(), None, TOP),
                accounts: Vec::new(),
                trigger_accounts: Vec::new(),
                points: config.points.clone(),
                queue: VecDeque::new(),
                dropped: 0,
                fresh: VecDeque::new(),
            }),
            status: Mutex::new(match config.enabled {
                true => Status::Starting,
                false => Status::Disabled,
            }),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let mut observer = Observer {
            shared: shared.clone(),
            stop: stop.clone(),
            thread: None,
        };
        if !config.enabled {
            tracing::info!("observer disabled by the configuration");
            return observer;
        }
        let node = node.clone();
        let started = std::thread::Builder::new()
            .name("observer".into())
            .spawn(move || {
                let result = run(&node, &shared, &stop);
                let status = match result {
                    Ok(()) => Status::Stopped,
                    Err(why) => {
                        tracing::error!(error = %why, "observer failed; captures are not affected");
                        crate::metrics::agent().set_observer(Some(why.clone()));
                        Status::Failed(why)
                    }
                };
                *lock(&shared.status) = status;
            });
        match started {
            Ok(t) => observer.thread = Some(t),
            Err(e) => {
                *lock(&observer.shared.status) =
                    Status::Failed(format!("cannot start its thread: {e}"))
            }
        }
        observer
    }

    pub fn status(&self) -> Status {
        lock(&self.shared.status).clone()
    }

    /// Closes every second whose counters have been read (those before the last whole
    /// second before `now_s`) and returns what waits to be sent, oldest first.
    pub fn take_seconds(&self, now_s: u64) -> Vec<Second> {
        let mut st = lock(&self.shared.state);
        st.close(now_s.saturating_sub(1));
        st.queue.drain(..).collect()
    }

    /// Keeps rollups apart for these accounts from now on (the server's list replaces the
    /// previous one; an account whose prefixes did not change keeps its open seconds).
    /// Entries past [`MAX_OBSERVED_ACCOUNTS`] or with prefixes that do not parse are skipped
    /// and logged.
    pub fn set_accounts(&self, accounts: &[AccountScope]) {
        let mut st = lock(&self.shared.state);
        let old = std::mem::take(&mut st.accounts);
        let next = rollers_for(old, accounts, &st.points, "account's");
        if accounts.len() > MAX_OBSERVED_ACCOUNTS {
            tracing::warn!(
                accounts = accounts.len(),
                kept = MAX_OBSERVED_ACCOUNTS,
                "more accounts than the observer keeps apart"
            );
        }
        let ids: Vec<&str> = next.iter().filter_map(Roller::account).collect();
        tracing::info!(accounts = ids.len(), ids = %ids.join(","), "observer keeps accounts apart");
        st.accounts = next;
    }

    /// Closes seconds as [`Observer::take_seconds`] does and returns those closed since the
    /// last call for the triggers: the node's (account `None`) and those of the accounts set
    /// by [`ObserverView::set_trigger_accounts`]. The link's queue keeps its own copies.
    pub fn take_fresh(&self, now_s: u64) -> Vec<Second> {
        self.view().take_fresh(now_s)
    }

    /// Gives seconds the link could not send back, to be sent first next time.
    pub fn requeue(&self, seconds: Vec<Second>) {
        let mut st = lock(&self.shared.state);
        for s in seconds.into_iter().rev() {
            st.queue.push_front(s);
        }
        while st.queue.len() > MAX_QUEUED_SECONDS {
            st.queue.pop_front();
            st.dropped += 1;
        }
    }

    /// Reads the look-back ring.
    pub fn with_ring<R>(&self, f: impl FnOnce(&Ring) -> R) -> R {
        self.view().with_ring(f)
    }

    /// A handle that reads the ring and the status from another thread.
    pub fn view(&self) -> ObserverView {
        ObserverView {
            shared: self.shared.clone(),
        }
    }

    /// Stops the thread; its table goes with it.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads an [`Observer`]'s ring and status; cheap to clone, usable from any thread.
#[derive(Clone)]
pub struct ObserverView {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ObserverView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObserverView")
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

impl ObserverView {
    pub fn status(&self) -> Status {
        lock(&self.shared.status).clone()
    }

    /// Reads the look-back ring (holding it: samples wait meanwhile, so be quick).
    pub fn with_ring<R>(&self, f: impl FnOnce(&Ring) -> R) -> R {
        f(&lock(&self.shared.state).ring)
    }

    /// See [`Observer::take_fresh`].
    pub fn take_fresh(&self, now_s: u64) -> Vec<Second> {
        let mut st = lock(&self.shared.state);
        st.close(now_s.saturating_sub(1));
        st.fresh.drain(..).collect()
    }

    /// The restricted accounts triggers watch (at most [`MAX_OBSERVED_ACCOUNTS`]): each gets
    /// rollups of its own, inside its prefixes, for the triggers only. An account whose
    /// prefixes did not change keeps its open seconds; prefixes that do not parse are skipped
    /// (that account's triggers then see nothing: fail closed).
    pub fn set_trigger_accounts(&self, accounts: &[AccountScope]) {
        let mut st = lock(&self.shared.state);
        let old = std::mem::take(&mut st.trigger_accounts);
        st.trigger_accounts = rollers_for(old, accounts, &st.points, "a trigger's");
    }

    /// The observer's point names, by index in its samples.
    pub fn points(&self) -> Vec<String> {
        lock(&self.shared.state).points.clone()
    }
}

/// One roller per account (at most [`MAX_OBSERVED_ACCOUNTS`]), keeping the rollers of `old`
/// whose account and boundary are unchanged (their current second goes on) and starting the
/// others; an account whose prefixes do not parse is skipped and logged (`whose` names it).
fn rollers_for(
    mut old: Vec<Roller>,
    accounts: &[AccountScope],
    points: &[String],
    whose: &str,
) -> Vec<Roller> {
    let mut next = Vec::new();
    for a in accounts.iter().take(MAX_OBSERVED_ACCOUNTS) {
        let boundary = match Boundary::parse(&a.prefixes) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(account = %a.id, error = %e, "{whose} prefixes skipped");
                continue;
            }
        };
        let same = old
            .iter()
            .position(|r| r.account() == Some(&a.id) && r.boundary() == Some(&boundary));
        next.push(match same {
            Some(i) => old.swap_remove(i),
            None => Roller::for_account(points.to_vec(), a.id.clone(), boundary, TOP),
        });
    }
    next
}

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observer")
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn run(node: &NodeContext, shared: &Arc<Shared>, stop: &AtomicBool) -> Result<(), String> {
    let config = &node.config.observer;
    let work = || -> Result<(), String> {
        let devices = edgecap_capture::points::local_devices();
        let points = edgecap_capture::points::resolve(&config.points, &node.config, &devices)
            .map_err(|e| format!("observer.points: {e}"))?;
        let spec = ObserverSpec {
            table: TABLE.into(),
            points,
            one_in: config.sample_one_in,
            snaplen: u32::try_from(config.ring.snaplen).unwrap_or(160),
            group: GroupChoice::Auto,
            socket_buffer: None,
        };
        let mut sink = Sink(shared.clone());
        let stats = observe(&spec, &mut sink, stop).map_err(|e| e.to_string())?;
        tracing::info!(
            samples = stats.samples,
            lost = stats.lost,
            overruns = stats.overruns,
            "observer stopped"
        );
        Ok(())
    };
    match &node.netns {
        None => work(),
        Some(ns) => edgecap_netns::run(ns, work)
            .map_err(|e| format!("cannot enter network namespace {ns}: {e}"))?,
    }
}
