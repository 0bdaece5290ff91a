//! Triggers at the edge (issue 14): the agent evaluates the triggers the server sent
//! ([`edgecap_model::ServerMsg::Triggers`]) on its own closed rollup seconds and starts their
//! captures itself, without a round trip, whether or not the server is connected.
//!
//! ```text
//!  observer thread --closed seconds--> Observer::take_fresh (also queued for the link)
//!                                          |
//!  triggers thread (every TICK): per trigger, detect::observe -> Detector::second
//!     Fire    -> narrowed filter (scope AND dst host K AND its dominant protocol)
//!                -> pre-trigger samples from the ring (matching it) -> Assignment
//!                -> ledger.report(fired) -> link::start_with (ledger, cap, worker)
//!     Ask     (beyond the node's local share of captures_per_hour, or bytes beyond its
//!                local share of bytes_per_day) -> grants.rs -> link -> server; granted: as
//!                Fire, its byte limit the local bytes plus the granted ones; refused,
//!                unanswered within 1 s, or no link: Detector::answered,
//!                ledger.report(fired, refused: budget.captures_per_hour or bytes_per_day)
//!     Refused -> ledger.report(fired, refused); Ended -> ledger.report(ended)
//!     a capture it started ended -> Detector::settle(bytes) -> signature thread
//!                -> ledger.report(signed)
//! ```
//!
//! The scope's points and, for a restricted account (`prefixes`), only that account's
//! rollups (a roller inside its `Boundary`) are what detection reads: the rollups cannot
//! apply the scope's `filter`/`filter_v1` exactly, so the scope filter narrows the capture
//! (and selects the pre-trigger samples and the signature's baseline), not the detection.
//!
//! Bounds: at most [`MAX_AGENT_TRIGGERS`] triggers, [`MAX_PRE_TRIGGER_PACKETS`] sampled packets
//! before a capture, [`MAX_SIGNATURE_PACKETS`] packets of at most
//! [`edgecap_signature::PACKET_BYTES_USED`] bytes kept per capture for its signature, and
//! the ledger's [`edgecap_model::firing::MAX_PENDING_REPORTS`] reports while the server is away.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use edgecap_capture::prelude::{Prelude, SampledInterface, SampledPacket, Tap};
use edgecap_filter::ir::Conjunction;
use edgecap_model::firing::{
    AgentTrigger, Ask, Ending, FiredCapture, Firing, MAX_AGENT_TRIGGERS, MAX_SIGNATURE_BYTES,
    Signed,
};
use edgecap_model::protocol::AccountScope;
use edgecap_model::{AgentMsg, Assignment};
use edgecap_observe::Second;
use rand::RngCore;

use crate::detect::{self, Decision, Detector};
use crate::grants::Grants;
use crate::ledger::Ledger;
use crate::observer::ObserverView;
use crate::worker::{Extras, NodeContext};

/// How often the triggers' thread takes the closed seconds.
pub const TICK: Duration = Duration::from_millis(200);

/// The most sampled packets put before a trigger's capture.
pub const MAX_PRE_TRIGGER_PACKETS: usize = 10_000;

/// The most packets (each side) a trigger's signature is computed from.
pub const MAX_SIGNATURE_PACKETS: usize = 20_000;

/// A protocol is the destination's dominant one when at least this share of its samples in
/// the firing run have it (and there are at least [`DOMINANT_MIN_SAMPLES`]).
pub const DOMINANT_SHARE: f64 = 0.9;
pub const DOMINANT_MIN_SAMPLES: usize = 3;

/// At most this many signatures are computed at once (each on a thread of its own).
pub const MAX_SIGNING: usize = 2;

struct Entry {
    at: AgentTrigger,
    detector: Detector,
}

/// The triggers this node evaluates, and its asks for grants; clones share them.
#[derive(Clone, Default)]
pub struct Triggers {
    inner: Arc<Mutex<Vec<Entry>>>,
    grants: Grants,
}

impl std::fmt::Debug for Triggers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Triggers")
            .field("count", &self.len())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Triggers {
    /// Replaces the list with the server's (at most [`MAX_AGENT_TRIGGERS`]; a malformed id is
    /// skipped). A trigger sent again unchanged keeps its detector (runs, baseline, cooldown,
    /// budgets); a changed one starts afresh. Returns the restricted accounts among them, for
    /// [`ObserverView::set_trigger_accounts`] (their own rollups, inside their prefixes).
    pub fn set(&self, list: Vec<AgentTrigger>) -> Vec<AccountScope> {
        let mut entries = lock(&self.inner);
        let mut old = std::mem::take(&mut *entries);
        let mut seen = BTreeSet::new();
        for mut t in list.into_iter().take(MAX_AGENT_TRIGGERS) {
            t.id.make_ascii_lowercase();
            if !edgecap_model::ids::is_id(&t.id) || !seen.insert(t.id.clone()) {
                tracing::warn!(trigger = ?t.id, "trigger with a malformed or repeated id skipped");
                continue;
            }
            let mut detector = match old.iter().position(|e| same(&e.at, &t)) {
                Some(i) => old.swap_remove(i).detector,
                None => {
                    // Afresh (this process never had it, e.g. after a restart): what the
                    // server recorded of its own share in the last hour counts.
                    let mut d = Detector::new(t.trigger.clone());
                    d.seed(&t.spent);
                    d.seed_bytes(&t.spent_bytes);
                    d
                }
            };
            // The node's share of the budget, which changes with the nodes in scope without
            // resetting what was used or the cooldown.
            detector.set_budget(t.budget);
            entries.push(Entry { at: t, detector });
        }
        let mut accounts: Vec<AccountScope> = Vec::new();
        for e in entries.iter() {
            if let Some(p) = &e.at.prefixes
                && !accounts.iter().any(|a| a.id == e.at.account_id)
            {
                accounts.push(AccountScope {
                    id: e.at.account_id.clone(),
                    prefixes: p.clone(),
                });
            }
        }
        crate::metrics::agent().set_triggers(entries.len());
        tracing::info!(
            triggers = entries.len(),
            accounts = accounts.len(),
            "triggers evaluated here"
        );
        accounts
    }

    pub fn len(&self) -> usize {
        lock(&self.inner).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The asks beyond local shares, which the link sends and answers.
    pub fn grants(&self) -> &Grants {
        &self.grants
    }
}

fn same(a: &AgentTrigger, b: &AgentTrigger) -> bool {
    a.id == b.id
        && a.account_id == b.account_id
        && a.trigger == b.trigger
        && a.prefixes == b.prefixes
}

/// A capture a trigger started, until its signature is sent.
struct InFlight {
    capture_id: String,
    trigger_id: String,
    reservation: u64,
    prelude: Option<Arc<Prelude>>,
    tap: Arc<Tap>,
    baseline: Vec<Vec<u8>>,
}

/// A firing beyond the node's local shares, waiting for the server's grant.
struct Asking {
    at: AgentTrigger,
    firing: Firing,
    capture_id: String,
    /// The local bytes held; the capture's limit is these plus the granted ones.
    byte_limit: u64,
    reservation: u64,
    /// What was asked: a capture from the pool, bytes from the bytes pool.
    capture: bool,
    bytes: Option<u64>,
}

/// The triggers' thread.
pub struct Edge {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Edge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Edge").finish_non_exhaustive()
    }
}

struct Ctx {
    triggers: Triggers,
    observer: ObserverView,
    node: NodeContext,
    ledger: Ledger,
    signing: Arc<std::sync::atomic::AtomicUsize>,
}

impl Edge {
    /// Starts evaluating `triggers` on `observer`'s seconds; captures go through `ledger`.
    pub fn start(
        triggers: Triggers,
        observer: ObserverView,
        node: NodeContext,
        ledger: Ledger,
    ) -> Edge {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let ctx = Ctx {
            triggers,
            observer,
            node,
            ledger,
            signing: Arc::default(),
        };
        let thread = std::thread::Builder::new()
            .name("triggers".into())
            .spawn(move || {
                let mut flight = Vec::new();
                let mut asking = Vec::new();
                let mut next = std::time::Instant::now() + TICK;
                while !flag.load(Ordering::Relaxed) {
                    // Woken early by a grant: its capture starts without waiting for the tick.
                    ctx.triggers
                        .grants
                        .wait(next.saturating_duration_since(std::time::Instant::now()));
                    if flag.load(Ordering::Relaxed) {
                        break;
                    }
                    answers(&ctx, &mut asking, &mut flight);
                    if std::time::Instant::now() >= next {
                        tick(&ctx, &mut asking, &mut flight);
                        answers(&ctx, &mut asking, &mut flight);
                        next = std::time::Instant::now() + TICK;
                    }
                }
            })
            .map_err(|e| tracing::error!(error = %e, "cannot start the triggers' thread"))
            .ok();
        Edge { stop, thread }
    }

    /// Stops evaluating (no capture starts afterwards); running captures are the ledger's.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn now_ns() -> u64 {
    edgecap_capture::run::now_ns()
}

/// One round: the seconds closed since the last, fed in time order to every detector, their
/// decisions acted on; then the captures that ended are settled and signed.
fn tick(ctx: &Ctx, asking: &mut Vec<Asking>, flight: &mut Vec<InFlight>) {
    let fresh = ctx.observer.take_fresh(now_ns() / 1_000_000_000);
    let times: BTreeSet<u64> = fresh.iter().map(|s| s.t).collect();
    // The seconds of each time and roller (None: the node's), grouped once for every trigger.
    let mut by_roller: BTreeMap<(u64, Option<&str>), Vec<&Second>> = BTreeMap::new();
    for s in &fresh {
        by_roller
            .entry((s.t, s.account.as_deref()))
            .or_default()
            .push(s);
    }
    let mut decisions: Vec<(AgentTrigger, Decision)> = Vec::new();
    {
        let mut entries = lock(&ctx.triggers.inner);
        for t in &times {
            for e in entries.iter_mut() {
                // The tenant boundary: a restricted account's trigger reads only its own
                // roller's seconds; any other trigger the node's.
                let account = e.at.prefixes.as_ref().map(|_| e.at.account_id.as_str());
                let seconds = by_roller
                    .get(&(*t, account))
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                let c = &e.at.trigger;
                let o = detect::observe(*t, seconds, c.condition.metric, &c.scope.points);
                for d in e.detector.second(&o) {
                    decisions.push((e.at.clone(), d));
                }
            }
        }
    }
    for (at, d) in decisions {
        act(ctx, &at, d, asking, flight);
    }
    // Captures that ended: give back unused bytes, then sign them.
    let mut i = 0;
    while i < flight.len() {
        let Some(outcome) = ctx.ledger.outcome(&flight[i].capture_id) else {
            i += 1;
            continue;
        };
        let f = flight.swap_remove(i);
        let pre = f.prelude.as_ref().map_or(0, |p| p.data_bytes());
        {
            let mut entries = lock(&ctx.triggers.inner);
            if let Some(e) = entries.iter_mut().find(|e| e.at.id == f.trigger_id) {
                e.detector.settle(f.reservation, outcome.bytes + pre);
            }
        }
        sign(ctx, f);
    }
}

/// The server's answers to asks (and asks refused by the link or the timeout): a granted
/// capture starts, a refused one is reported as a firing refused by the hourly budget.
fn answers(ctx: &Ctx, asking: &mut Vec<Asking>, flight: &mut Vec<InFlight>) {
    // Always taken, even with nothing asked here: an answer left behind would end every
    // wait at once.
    for (capture_id, result) in ctx.triggers.grants.take_answers(std::time::Instant::now()) {
        let Some(i) = asking.iter().position(|a| a.capture_id == capture_id) else {
            continue;
        };
        let a = asking.swap_remove(i);
        // The capture's byte limit: the local bytes and the granted ones, never more than
        // was asked (an older server grants none: the local bytes alone, if any).
        let result = result.and_then(|granted| {
            granted_limit(a.byte_limit, a.bytes, granted)
                .ok_or_else(|| "the server granted no bytes".to_owned())
        });
        {
            let mut entries = lock(&ctx.triggers.inner);
            if let Some(e) = entries.iter_mut().find(|e| e.at.id == a.at.id) {
                e.detector.answered(a.reservation, result.is_ok());
            }
        }
        match result {
            Ok(byte_limit) => {
                tracing::info!(trigger = %a.at.id, capture = %capture_id, byte_limit,
                    "grant received");
                start(
                    ctx,
                    &a.at,
                    a.firing,
                    capture_id,
                    byte_limit,
                    a.reservation,
                    flight,
                );
            }
            Err(why) => refuse_ask(ctx, &a, &why),
        }
    }
}

/// The byte limit of a granted capture: its `local` bytes and the `granted` ones, never more
/// than were `asked`; `None` when that is nothing (an older server grants no bytes).
fn granted_limit(local: u64, asked: Option<u64>, granted: u64) -> Option<u64> {
    let limit = local.saturating_add(granted.min(asked.unwrap_or(0)));
    (limit > 0).then_some(limit)
}

/// A firing beyond the local shares that may not start: reported with the budget's name
/// (the hourly one when the capture itself was asked for, else the daily bytes).
fn refuse_ask(ctx: &Ctx, a: &Asking, why: &str) {
    let at = &a.at;
    // The server's own reasons name the budget already.
    let reason =
        if why.starts_with("budget.captures_per_hour") || why.starts_with("budget.bytes_per_day") {
            why.to_owned()
        } else if a.capture {
            format!(
                "budget.captures_per_hour: beyond this node's share ({} an hour) and {why}",
                at.budget.captures_per_hour
            )
        } else {
            format!(
                "budget.bytes_per_day: this node's own bytes ({} left of its share of {} a day) do \
             not cover the capture's byte limit and {why}",
                a.byte_limit, at.budget.bytes_per_day
            )
        };
    let firing = a.firing.clone();
    tracing::info!(trigger = %at.id, %reason, "trigger held; capture refused");
    crate::metrics::agent().firing("refused");
    let firing = Firing {
        refused: Some(reason),
        ..firing
    };
    ctx.ledger.report(AgentMsg::Fired { firing }, None);
}

/// Starts the capture of a firing (local or granted), or reports why it could not start.
fn start(
    ctx: &Ctx,
    at: &AgentTrigger,
    firing: Firing,
    capture_id: String,
    byte_limit: u64,
    reservation: u64,
    flight: &mut Vec<InFlight>,
) {
    match fire(ctx, at, firing, capture_id, byte_limit, reservation) {
        Ok(f) => flight.push(f),
        Err((firing, why)) => {
            tracing::warn!(trigger = %at.id, reason = %why, "trigger fired; no capture");
            crate::metrics::agent().firing("failed");
            let mut entries = lock(&ctx.triggers.inner);
            if let Some(e) = entries.iter_mut().find(|e| e.at.id == at.id) {
                e.detector.settle(reservation, 0);
            }
            drop(entries);
            let refused = Firing {
                refused: Some(why),
                ..*firing
            };
            ctx.ledger.report(AgentMsg::Fired { firing: refused }, None);
        }
    }
}

fn act(
    ctx: &Ctx,
    at: &AgentTrigger,
    d: Decision,
    asking: &mut Vec<Asking>,
    flight: &mut Vec<InFlight>,
) {
    match d {
        Decision::Fire {
            key,
            started,
            at: t,
            value,
            peak,
            byte_limit,
            reservation,
        } => {
            let firing = Firing {
                trigger_id: at.id.clone(),
                capture_id: None,
                key,
                started,
                at: t,
                value,
                peak,
                refused: None,
                capture: None,
            };
            start(
                ctx,
                at,
                firing,
                new_capture_id(),
                byte_limit,
                reservation,
                flight,
            );
        }
        Decision::Ask {
            key,
            started,
            at: t,
            value,
            peak,
            byte_limit,
            reservation,
            bytes,
            capture,
        } => {
            let firing = Firing {
                trigger_id: at.id.clone(),
                capture_id: None,
                key,
                started,
                at: t,
                value,
                peak,
                refused: None,
                capture: None,
            };
            let capture_id = new_capture_id();
            let ask = Ask {
                trigger_id: at.id.clone(),
                capture_id: capture_id.clone(),
                key,
                at: t,
                bytes,
                capture,
            };
            let a = Asking {
                at: at.clone(),
                firing,
                capture_id: capture_id.clone(),
                byte_limit,
                reservation,
                capture,
                bytes,
            };
            match ctx.triggers.grants.ask(ask) {
                Ok(()) => {
                    tracing::info!(trigger = %at.id, capture = %capture_id, pooled_capture = capture,
                        ?bytes, "beyond the node's shares: asking the server");
                    asking.push(a);
                }
                Err(why) => {
                    let mut entries = lock(&ctx.triggers.inner);
                    if let Some(e) = entries.iter_mut().find(|e| e.at.id == at.id) {
                        e.detector.answered(reservation, false);
                    }
                    drop(entries);
                    refuse_ask(ctx, &a, &why);
                }
            }
        }
        Decision::Refused {
            key,
            started,
            at: t,
            peak,
            why,
        } => {
            tracing::info!(trigger = %at.id, reason = why.text(), "trigger held; capture refused");
            crate::metrics::agent().firing("refused");
            let firing = Firing {
                trigger_id: at.id.clone(),
                capture_id: None,
                key,
                started,
                at: t,
                value: peak,
                peak,
                refused: Some(why.text().into()),
                capture: None,
            };
            ctx.ledger.report(AgentMsg::Fired { firing }, None);
        }
        Decision::Ended {
            key,
            started,
            ended,
            peak,
        } => {
            tracing::info!(trigger = %at.id, started, ended, "trigger's anomaly ended");
            let ending = Ending {
                trigger_id: at.id.clone(),
                key,
                started,
                ended,
                peak,
            };
            ctx.ledger.report(AgentMsg::Ended { ending }, None);
        }
    }
}

/// The scope's rules (its `filter_v1` ANDed with `expression`, inside the account's
/// prefixes) and their text (without the prefixes): the request rules every capture obeys.
fn rules(
    at: &AgentTrigger,
    expression: Option<&str>,
) -> Result<(Vec<Conjunction>, String), String> {
    let filter_v1 = match &at.trigger.scope.filter_v1 {
        serde_json::Value::Null => serde_json::json!({}),
        v => v.clone(),
    };
    let raw: edgecap_filter::RawFilter =
        serde_json::from_value(filter_v1).map_err(|e| format!("scope.filter_v1: {e}"))?;
    let structured = raw.validate().map_err(|e| format!("scope.filter_v1.{e}"))?;
    let composed = edgecap_filter::request::compose(&structured, expression)
        .map_err(|e| format!("scope.filter: {e}"))?;
    let rules = match &at.prefixes {
        None => composed.rules,
        Some(p) => {
            let b = edgecap_filter::Boundary::parse(p).map_err(|e| format!("prefixes: {e}"))?;
            b.apply(&composed.rules)
                .map_err(|e| format!("scope.filter: {e}"))?
        }
    };
    Ok((rules, composed.text))
}

/// The scope's expression narrowed to what fired: the destination and, when one clearly
/// dominates its samples, its protocol.
fn narrowed(scope: Option<&str>, key: Option<IpAddr>, proto: Option<&str>) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    if let Some(s) = scope.filter(|s| !s.trim().is_empty()) {
        parts.push(format!("({s})"));
    }
    if let Some(k) = key {
        parts.push(format!("dst host {k}"));
    }
    if let Some(p) = proto {
        parts.push(p.to_owned());
    }
    (!parts.is_empty()).then(|| parts.join(" and "))
}

/// The tcpdump name of a protocol number a filter can narrow to.
fn proto_name(p: u8, v6: bool) -> Option<&'static str> {
    match (p, v6) {
        (6, _) => Some("tcp"),
        (17, _) => Some("udp"),
        (1, false) => Some("icmp"),
        (58, true) => Some("icmp6"),
        _ => None,
    }
}

/// The protocol most samples to `key` in `[from_ns, to_ns)` at `points` have, when it is
/// clear (at least [`DOMINANT_SHARE`] of at least [`DOMINANT_MIN_SAMPLES`]).
fn dominant(
    observer: &ObserverView,
    key: IpAddr,
    from_ns: u64,
    to_ns: u64,
    points: &[u16],
) -> Option<&'static str> {
    let mut counts: std::collections::BTreeMap<u8, usize> = Default::default();
    let mut n = 0usize;
    observer.with_ring(|ring| {
        for s in ring.samples(from_ns, to_ns) {
            if !points.contains(&s.meta.point) {
                continue;
            }
            if let Some(h) = edgecap_observe::rollup::headers(s.data)
                && h.dst == key
            {
                *counts.entry(h.proto).or_default() += 1;
                n += 1;
            }
        }
    });
    let (p, c) = counts.into_iter().max_by_key(|(_, c)| *c)?;
    (n >= DOMINANT_MIN_SAMPLES && c as f64 >= DOMINANT_SHARE * n as f64)
        .then(|| proto_name(p, key.is_ipv6()))
        .flatten()
}

fn new_capture_id() -> String {
    let mut b = [0u8; 16];
    rand::rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Starts the capture of a firing; `Err`: the firing and why no capture started.
fn fire(
    ctx: &Ctx,
    at: &AgentTrigger,
    mut firing: Firing,
    capture_id: String,
    byte_limit: u64,
    reservation: u64,
) -> Result<InFlight, (Box<Firing>, String)> {
    let fail = |firing: Firing, why: String| Err((Box::new(firing), why));
    if ctx.ledger.running().len() >= ctx.node.max_captures {
        return fail(
            firing,
            format!(
                "this node runs at most {} captures at once (edgecap agent --max-captures)",
                ctx.node.max_captures
            ),
        );
    }
    let trigger = &at.trigger;
    let (scope_rules, scope_text) = match rules(at, trigger.scope.filter.as_deref()) {
        Ok(r) => r,
        Err(why) => return fail(firing, why),
    };
    let observed = ctx.observer.points();
    let wanted: Vec<&String> = trigger
        .scope
        .points
        .iter()
        .chain(&trigger.capture.points)
        .collect();
    let points: Vec<u16> = observed
        .iter()
        .enumerate()
        .filter(|(_, p)| wanted.contains(p))
        .filter_map(|(i, _)| u16::try_from(i).ok())
        .collect();
    const NS: u64 = 1_000_000_000;
    // The firing second and the one before (at most): enough samples, a short hold on the
    // ring however long the run.
    let proto = firing.key.and_then(|k| {
        dominant(
            &ctx.observer,
            k,
            firing.started.max(firing.at.saturating_sub(1)) * NS,
            (firing.at + 1) * NS,
            &points,
        )
    });
    // Narrowed through the same composition the server's validation uses; if the narrowing
    // cannot be composed (it always should), the scope's own filter is kept.
    let mut expression = narrowed(trigger.scope.filter.as_deref(), firing.key, proto);
    let (capture_rules, capture_text) = match rules(at, expression.as_deref()) {
        Ok(r) => r,
        Err(why) => {
            tracing::warn!(trigger = %at.id, reason = %why, "narrowed filter refused; the scope's kept");
            expression = trigger.scope.filter.clone();
            (scope_rules.clone(), scope_text)
        }
    };
    // The ring's samples before the firing: those matching the capture's filter go first in
    // the file; the scope's others are the signature's baseline.
    let pre = trigger.capture.pre_trigger_seconds;
    let to_ns = now_ns();
    let from_ns = (firing.at + 1).saturating_sub(pre) * NS;
    let names = &observed;
    let (before, baseline) = if pre == 0 || points.is_empty() {
        (Vec::new(), Vec::new())
    } else {
        ctx.observer.with_ring(|ring| {
            let before = edgecap_observe::select(
                ring,
                from_ns,
                to_ns,
                &points,
                |d| edgecap_filter::matches(&capture_rules, d),
                MAX_PRE_TRIGGER_PACKETS,
            );
            let baseline = edgecap_observe::select(
                ring,
                from_ns,
                to_ns,
                &points,
                |d| {
                    edgecap_filter::matches(&scope_rules, d)
                        && !edgecap_filter::matches(&capture_rules, d)
                },
                MAX_SIGNATURE_PACKETS,
            );
            (before.samples, baseline.samples)
        })
    };
    let pcapng = edgecap_pcap::Format::from_name(&trigger.capture.format)
        == Some(edgecap_pcap::Format::Pcapng);
    // The sampled packets count against the byte limit: at most half of it.
    let mut prelude = Prelude::default();
    let snaplen = trigger
        .capture
        .snaplen
        .map_or(edgecap_capture::DEFAULT_SNAPLEN, |s| {
            s.min(edgecap_capture::MAX_SNAPLEN)
        });
    if pcapng {
        let mut used = 0u64;
        for mut s in before {
            // No more of a sample than the capture keeps of a live packet.
            s.data
                .truncate(usize::try_from(snaplen).unwrap_or(usize::MAX));
            let len = s.data.len() as u64;
            if used + len > byte_limit / 2 {
                break;
            }
            used += len;
            let name = names
                .get(usize::from(s.meta.point))
                .cloned()
                .unwrap_or_default();
            let interface = match prelude.interfaces.iter().position(|i| i.point == name) {
                Some(i) => i,
                None => {
                    prelude.interfaces.push(SampledInterface {
                        point: name,
                        one_in: 0,
                        note: String::new(),
                    });
                    prelude.interfaces.len() - 1
                }
            };
            let iface = &mut prelude.interfaces[interface];
            iface.one_in = iface.one_in.max(s.one_in);
            prelude.packets.push(SampledPacket {
                interface,
                ts_ns: s.meta.ts_ns,
                orig_len: s.meta.orig_len,
                ifindex: u32::from(s.meta.iface),
                data: s.data,
            });
        }
        let n = prelude.packets.len();
        for i in &mut prelude.interfaces {
            i.note = format!(
                "the edgecap observer's samples of the {pre} s before trigger {} fired at {}, \
                 matching the capture's filter ({n} packets, their first bytes only); the live \
                 capture's packets are on {}/{}",
                at.id, firing.at, ctx.node.name, i.point
            );
        }
    }
    let pre_bytes = prelude.data_bytes();
    let pre_packets = prelude.packets.len() as u64;
    let prelude = (pre_packets > 0).then(|| Arc::new(prelude));
    let tap = Arc::new(Tap::new(
        MAX_SIGNATURE_PACKETS,
        edgecap_signature::PACKET_BYTES_USED,
    ));
    let assignment = Assignment {
        capture_id: capture_id.clone(),
        filter_v1: trigger.scope.filter_v1.clone(),
        filter: expression,
        points: trigger.capture.points.clone(),
        time_limit: trigger.capture.time_limit,
        packet_limit: trigger.capture.packet_limit,
        byte_limit: Some(byte_limit.saturating_sub(pre_bytes).max(1)),
        snaplen: trigger.capture.snaplen,
        sample_rate: None,
        format: trigger.capture.format.clone(),
        destination_conf: trigger.capture.destination_conf.clone(),
        credentials: at.credentials.clone(),
        prefixes: at.prefixes.clone(),
    };
    firing.capture_id = Some(capture_id.clone());
    firing.capture = Some(FiredCapture {
        filter: capture_text,
        points: trigger.capture.points.clone(),
        time_limit: trigger.capture.time_limit,
        packet_limit: trigger.capture.packet_limit,
        byte_limit,
        format: trigger.capture.format.clone(),
        pre_trigger_packets: pre_packets,
    });
    tracing::info!(trigger = %at.id, capture = %capture_id, key = ?firing.key,
        pre_trigger = pre_packets, "trigger fired; capture starting");
    crate::metrics::agent().firing("capture");
    // The report first: the server hears of the capture before its progress or outcome.
    ctx.ledger
        .report(AgentMsg::Fired { firing }, Some(&capture_id));
    let extras = Extras {
        prelude: prelude.clone(),
        tap: Some(tap.clone()),
    };
    // Failing here (the cap reached meanwhile) records a failed outcome after the report.
    let _ = crate::link::start_with(&ctx.node, assignment, extras, &ctx.ledger);
    Ok(InFlight {
        capture_id,
        trigger_id: at.id.clone(),
        reservation,
        prelude,
        tap,
        baseline: baseline.into_iter().map(|t| t.data).collect(),
    })
}

/// Computes the signature of an ended capture on a thread of its own (at most
/// [`MAX_SIGNING`] at once; beyond that it is skipped and logged) and reports it.
fn sign(ctx: &Ctx, f: InFlight) {
    let mut attack = f.tap.take();
    if attack.is_empty()
        && let Some(p) = &f.prelude
    {
        attack = p.packets.iter().map(|k| k.data.clone()).collect();
    }
    if attack.is_empty() {
        return;
    }
    if ctx.signing.fetch_add(1, Ordering::Relaxed) >= MAX_SIGNING {
        ctx.signing.fetch_sub(1, Ordering::Relaxed);
        tracing::warn!(capture = %f.capture_id, "signature skipped: {MAX_SIGNING} being computed");
        return;
    }
    /// Gives the slot back however the thread ends.
    struct Slot(Arc<std::sync::atomic::AtomicUsize>);
    impl Drop for Slot {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::Relaxed);
        }
    }
    let (ledger, slot) = (ctx.ledger.clone(), Slot(ctx.signing.clone()));
    let spawned = std::thread::Builder::new()
        .name("signature".into())
        .spawn(move || {
            let _slot = slot;
            let limits = edgecap_signature::Limits {
                max_packets: MAX_SIGNATURE_PACKETS,
                ..edgecap_signature::Limits::default()
            };
            let baseline = (!f.baseline.is_empty()).then_some(f.baseline.as_slice());
            let signature = edgecap_signature::signature(&attack, baseline, &limits);
            let signed = cut(Signed {
                trigger_id: f.trigger_id,
                capture_id: f.capture_id,
                signature,
            });
            ledger.report(
                AgentMsg::Signed {
                    signed: Box::new(signed),
                },
                None,
            );
        });
    // A thread that could not start dropped its slot with the closure.
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start a signature thread");
    }
}

/// `s` within [`MAX_SIGNATURE_BYTES`] of JSON: the least useful fields (not chosen, last)
/// go first.
fn cut(mut s: Signed) -> Signed {
    let size = |s: &Signed| serde_json::to_string(s).map_or(usize::MAX, |t| t.len());
    while size(&s) > MAX_SIGNATURE_BYTES && !s.signature.fields.is_empty() {
        let i = s
            .signature
            .fields
            .iter()
            .rposition(|f| !f.chosen)
            .unwrap_or(s.signature.fields.len() - 1);
        s.signature.fields.remove(i);
        s.signature.note = Some("fields cut to fit the report's size bound".into());
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgecap_model::trigger::Budget;

    fn agent_trigger(id: &str, above: f64, prefixes: Option<&str>) -> AgentTrigger {
        let body = serde_json::json!({
            "scope": {"colo_name": "fra"},
            "condition": {"metric": "packets_per_second", "above": above, "sustained_seconds": 2},
            "capture": {"time_limit": 5, "byte_limit": 1000, "destination_conf": "file:///x"},
            "cooldown_seconds": 0,
        });
        let (t, _) = edgecap_model::trigger::validate_trigger(
            &body,
            &edgecap_model::request::AccountLimits::default(),
        )
        .unwrap();
        AgentTrigger {
            id: id.into(),
            account_id: format!("a{}", &id[..1]),
            trigger: t,
            budget: Budget {
                captures_per_hour: 4,
                bytes_per_day: 1 << 30,
            },
            credentials: None,
            prefixes: prefixes.map(|p| vec![p.into()]),
            spent: Vec::new(),
            spent_bytes: Vec::new(),
        }
    }

    /// Feeds second `t` with `v` to the trigger `id`; whether it fired.
    fn feed(ts: &Triggers, id: &str, t: u64, v: f64) -> bool {
        let mut entries = lock(&ts.inner);
        let e = entries.iter_mut().find(|e| e.at.id == id).unwrap();
        let o = detect::Observation {
            t,
            scope: v,
            destinations: vec![],
        };
        e.detector
            .second(&o)
            .iter()
            .any(|d| matches!(d, Decision::Fire { .. }))
    }

    #[test]
    fn a_trigger_sent_again_unchanged_keeps_its_state_and_a_changed_one_starts_afresh() {
        let (a, b) = ("a".repeat(32), "b".repeat(32));
        let ts = Triggers::default();
        ts.set(vec![
            agent_trigger(&a, 100.0, None),
            agent_trigger(&b, 100.0, None),
        ]);
        assert!(!feed(&ts, &a, 10, 500.0) && !feed(&ts, &b, 10, 500.0));
        // The server sends the list again (a reconnect): a is unchanged, b's threshold moved.
        ts.set(vec![
            agent_trigger(&a, 100.0, None),
            agent_trigger(&b, 200.0, None),
        ]);
        assert!(feed(&ts, &a, 11, 500.0), "a kept its first holding second");
        assert!(!feed(&ts, &b, 11, 500.0), "b started afresh");
        assert!(feed(&ts, &b, 12, 500.0));
    }

    /// Feeds second `t` with `v` to the trigger `id`; its decisions.
    fn decide(ts: &Triggers, id: &str, t: u64, v: f64) -> Vec<Decision> {
        let mut entries = lock(&ts.inner);
        let e = entries.iter_mut().find(|e| e.at.id == id).unwrap();
        let o = detect::Observation {
            t,
            scope: v,
            destinations: vec![],
        };
        e.detector.second(&o)
    }

    #[test]
    fn the_nodes_share_is_spent_locally_then_it_asks_and_the_share_may_change_without_a_reset() {
        let a = "a".repeat(32);
        let mut t = agent_trigger(&a, 100.0, None);
        t.budget.captures_per_hour = 1;
        let ts = Triggers::default();
        ts.set(vec![t.clone()]);
        // What each run of two holding seconds and a quiet one decided: F a capture of the
        // share, A an ask beyond it.
        let run = |from: u64| -> String {
            [500.0, 500.0, 50.0]
                .iter()
                .enumerate()
                .flat_map(|(i, v)| decide(&ts, &a, from + i as u64, *v))
                .filter_map(|d| match d {
                    Decision::Fire { .. } => Some('F'),
                    Decision::Ask { .. } => Some('A'),
                    _ => None,
                })
                .collect()
        };
        // The node's one capture an hour starts at once; the next run asks.
        assert_eq!(run(10), "F");
        assert_eq!(run(13), "A");
        // A larger share takes effect; what was used stays counted (1 of 2, then 2 of 2).
        t.budget.captures_per_hour = 2;
        ts.set(vec![t]);
        assert_eq!(run(16), "F");
        assert_eq!(run(19), "A");
    }

    /// A context for the triggers' thread without an observer (disabled) or a server, on a
    /// node that may run no capture (`--max-captures 0`): a firing that gets as far as
    /// starting its capture reports the node's cap.
    fn ctx(ts: &Triggers) -> Ctx {
        let mut config = edgecap_capture::Config::default();
        config.observer.enabled = false;
        let node = NodeContext {
            name: "edge0".into(),
            config,
            netns: None,
            upload: Default::default(),
            max_captures: 0,
        };
        let observer = crate::observer::Observer::start(&node);
        Ctx {
            triggers: ts.clone(),
            observer: observer.view(),
            node,
            ledger: Ledger::default(),
            signing: Arc::default(),
        }
    }

    /// The `fired` reports waiting in the ledger: (capture id, refused).
    fn reports(ctx: &Ctx) -> Vec<(Option<String>, Option<String>)> {
        ctx.ledger
            .outbox()
            .into_iter()
            .filter_map(|m| match m {
                AgentMsg::Fired { firing } => Some((firing.capture_id, firing.refused)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn beyond_its_share_a_node_starts_a_capture_only_with_a_grant() {
        let a = "a".repeat(32);
        let mut t = agent_trigger(&a, 100.0, None);
        t.budget.captures_per_hour = 0;
        let ts = Triggers::default();
        ts.set(vec![t]);
        let ctx = ctx(&ts);
        let (mut asking, mut flight) = (Vec::new(), Vec::new());
        let mut second = 100;
        // Each flood: two holding seconds (the second asks) and a quiet one.
        let mut flood = |asking: &mut Vec<Asking>, flight: &mut Vec<InFlight>| {
            for v in [500.0, 500.0, 50.0] {
                let at = lock(&ts.inner)[0].at.clone();
                for d in decide(&ts, &a, second, v) {
                    act(&ctx, &at, d, asking, flight);
                }
                second += 1;
            }
        };
        let budget_refusals = |r: &[(Option<String>, Option<String>)]| -> Vec<String> {
            r.iter()
                .map(|(c, why)| {
                    assert!(c.is_none(), "{r:?}");
                    let why = why.clone().unwrap();
                    assert!(why.starts_with("budget.captures_per_hour"), "{why}");
                    why
                })
                .collect()
        };
        // No connection: refused at once, nothing waits, no capture.
        flood(&mut asking, &mut flight);
        let why = budget_refusals(&reports(&ctx));
        assert_eq!(why.len(), 1);
        assert!(why[0].contains("not connected"), "{why:?}");
        assert!(asking.is_empty() && flight.is_empty() && ctx.ledger.running().is_empty());
        // Connected, but the server never answers: refused once the wait is over.
        ts.grants().set_connected(true);
        flood(&mut asking, &mut flight);
        assert_eq!(ts.grants().take_unsent().len(), 1);
        assert_eq!(asking.len(), 1);
        assert!(
            reports(&ctx).is_empty(),
            "nothing is reported before the answer"
        );
        ts.grants().wait(Duration::from_millis(
            2 * edgecap_model::firing::GRANT_TIMEOUT_MS,
        ));
        answers(&ctx, &mut asking, &mut flight);
        let why = budget_refusals(&reports(&ctx));
        assert!(
            why.len() == 1 && why[0].contains("did not answer"),
            "{why:?}"
        );
        // The server refuses: its reason is the report's.
        flood(&mut asking, &mut flight);
        let asked = ts.grants().take_unsent();
        let server = "budget.captures_per_hour: the pool is spent";
        ts.grants().answer(edgecap_model::firing::Grant {
            trigger_id: a.clone(),
            capture_id: asked[0].capture_id.clone(),
            granted: false,
            reason: Some(server.into()),
            bytes: None,
        });
        answers(&ctx, &mut asking, &mut flight);
        assert_eq!(budget_refusals(&reports(&ctx)), [server]);
        // The connection ends while an ask waits: refused.
        flood(&mut asking, &mut flight);
        ts.grants().set_connected(false);
        answers(&ctx, &mut asking, &mut flight);
        let why = budget_refusals(&reports(&ctx));
        assert!(why.len() == 1 && why[0].contains("connection"), "{why:?}");
        // Granted: the capture starts (here the node's cap of 0 stops it, and says so),
        // under the id the grant named.
        ts.grants().set_connected(true);
        flood(&mut asking, &mut flight);
        let asked = ts.grants().take_unsent();
        ts.grants().answer(edgecap_model::firing::Grant {
            trigger_id: a.clone(),
            capture_id: asked[0].capture_id.clone(),
            granted: true,
            reason: None,
            bytes: None,
        });
        answers(&ctx, &mut asking, &mut flight);
        let r = reports(&ctx);
        assert_eq!(r.len(), 1, "{r:?}");
        assert!(
            r[0].1.as_deref().unwrap().contains("--max-captures"),
            "{r:?}"
        );
        assert!(asking.is_empty());
        assert_eq!(lock(&ts.inner)[0].detector.asking(), 0);
    }

    #[test]
    fn when_its_local_bytes_are_short_a_node_asks_for_bytes_and_starts_only_with_them() {
        let a = "a".repeat(32);
        let mut t = agent_trigger(&a, 100.0, None);
        // Its own share of captures covers the capture, but only 300 of the 1000 bytes.
        t.budget = Budget {
            captures_per_hour: 4,
            bytes_per_day: 300,
        };
        let ts = Triggers::default();
        ts.set(vec![t]);
        let ctx = ctx(&ts);
        let (mut asking, mut flight) = (Vec::new(), Vec::new());
        let mut second = 100;
        let mut flood = |asking: &mut Vec<Asking>, flight: &mut Vec<InFlight>| {
            for v in [500.0, 500.0, 50.0] {
                let at = lock(&ts.inner)[0].at.clone();
                for d in decide(&ts, &a, second, v) {
                    act(&ctx, &at, d, asking, flight);
                }
                second += 1;
            }
        };
        // Not connected: refused at once, named by the daily budget.
        flood(&mut asking, &mut flight);
        let r = reports(&ctx);
        assert_eq!(r.len(), 1, "{r:?}");
        let why = r[0].1.clone().unwrap();
        assert!(
            why.starts_with("budget.bytes_per_day") && why.contains("not connected"),
            "{why}"
        );
        // Connected: the ask is for the 700 bytes only, not for a capture of the pool.
        ts.grants().set_connected(true);
        flood(&mut asking, &mut flight);
        let asked = ts.grants().take_unsent();
        assert_eq!(asked.len(), 1);
        assert_eq!((asked[0].bytes, asked[0].capture), (Some(700), false));
        // The server refuses with its reason (the pool is spent): reported as is.
        let server = "budget.bytes_per_day: the pool is spent";
        ts.grants().answer(edgecap_model::firing::Grant {
            trigger_id: a.clone(),
            capture_id: asked[0].capture_id.clone(),
            granted: false,
            reason: Some(server.into()),
            bytes: None,
        });
        answers(&ctx, &mut asking, &mut flight);
        let r = reports(&ctx);
        assert_eq!(r, [(None, Some(server.to_owned()))]);
        // Granted 500 of the 700: the capture starts (the node's cap of 0 stops it here).
        flood(&mut asking, &mut flight);
        let asked = ts.grants().take_unsent();
        ts.grants().answer(edgecap_model::firing::Grant {
            trigger_id: a.clone(),
            capture_id: asked[0].capture_id.clone(),
            granted: true,
            reason: None,
            bytes: Some(500),
        });
        answers(&ctx, &mut asking, &mut flight);
        let r = reports(&ctx);
        assert!(
            r.len() == 1 && r[0].1.as_deref().unwrap().contains("--max-captures"),
            "{r:?}"
        );
        assert!(asking.is_empty());
        // Its limit: the local bytes and the granted ones, never more than asked; nothing
        // at all is no capture.
        assert_eq!(granted_limit(300, Some(700), 500), Some(800));
        assert_eq!(granted_limit(300, Some(700), 9000), Some(1000));
        assert_eq!(granted_limit(300, None, 0), Some(300));
        assert_eq!(granted_limit(0, Some(700), 0), None);
    }

    #[test]
    fn the_list_is_bounded_ids_checked_and_restricted_accounts_named() {
        let ts = Triggers::default();
        let mut list: Vec<AgentTrigger> = (0..MAX_AGENT_TRIGGERS + 10)
            .map(|i| agent_trigger(&format!("{i:032x}"), 1.0, None))
            .collect();
        list[0] = agent_trigger("not an id", 1.0, None);
        list[1] = agent_trigger(&"c".repeat(32), 1.0, Some("198.18.0.0/24"));
        list[2] = agent_trigger(&"C".repeat(32), 1.0, None);
        let accounts = ts.set(list);
        // The bad id and the repeated one (ids are case-insensitive) are skipped.
        assert_eq!(ts.len(), MAX_AGENT_TRIGGERS - 2);
        assert_eq!(
            accounts,
            vec![AccountScope {
                id: "ac".into(),
                prefixes: vec!["198.18.0.0/24".into()],
            }]
        );
        assert!(ts.set(vec![]).is_empty() && ts.is_empty());
    }

    #[test]
    fn the_narrowed_filter_keeps_the_scope_and_adds_what_fired() {
        let k: IpAddr = "198.18.0.9".parse().unwrap();
        assert_eq!(
            narrowed(Some("udp port 53"), Some(k), Some("udp")).as_deref(),
            Some("(udp port 53) and dst host 198.18.0.9 and udp")
        );
        assert_eq!(
            narrowed(None, Some(k), None).as_deref(),
            Some("dst host 198.18.0.9")
        );
        assert_eq!(narrowed(Some(" "), None, None), None);
        assert_eq!(proto_name(58, true), Some("icmp6"));
        assert_eq!(proto_name(1, true), None);
        assert_eq!(proto_name(47, false), None);
    }

    #[test]
    fn a_signature_too_big_loses_its_least_useful_fields() {
        let attack: Vec<Vec<u8>> = (0..50u8)
            .map(|i| {
                let mut p = vec![0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 198, 18, 1, i];
                p.extend_from_slice(&[198, 18, 0, 9, 0, 53, 0, 53, 0, 8, 0, 0]);
                p
            })
            .collect();
        let sig = edgecap_signature::signature(&attack, None, &Default::default());
        let mut s = Signed {
            trigger_id: "ab".repeat(16),
            capture_id: "cd".repeat(16),
            signature: sig,
        };
        let n = s.signature.fields.len();
        assert!(n > 1, "{:?}", s.signature);
        // Inflate it past the bound.
        s.signature.fields[n - 1].value = "x".repeat(MAX_SIGNATURE_BYTES);
        let cut = cut(s);
        assert!(serde_json::to_string(&cut).unwrap().len() <= MAX_SIGNATURE_BYTES);
        assert!(cut.signature.fields.len() < n);
    }
}
