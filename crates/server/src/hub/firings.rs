//! What agents report about their triggers (issue 14), recorded by the hub's writer in the
//! order they arrived (before the captures' own changes of the same batch, so a capture is
//! recorded before its progress and outcome):
//!
//! - `fired` with a capture: checked (ids, times and rates in range, the trigger exists, its
//!   scope and account take this node ([`super::triggers::evaluates`]), the capture within
//!   the trigger's template ([`check_capture`])), then, under the trigger's row lock, joined
//!   to an event and recorded as a capture (type `full`, this node's one part running, so
//!   `GET /pcaps/{id}`, progress and done work as for any capture). A report that fails a
//!   check changes nothing (its capture, if any, is stopped) and is logged.
//! - `ask` ([`ask`]): a node beyond its local share of `captures_per_hour` asks for one
//!   capture; under the trigger's row lock, granted while fewer than the trigger's pool
//!   ([`edgecap_model::trigger::pooled_captures`]) were granted in the last hour (rows in
//!   `trigger_grants`, every replica's), refused otherwise; the agent starts the capture only
//!   when granted. The last guard, at `fired`: a capture no grant covers is one of a node's
//!   local shares, and when the trigger's nodes recorded as many of those in the last hour as
//!   the shares add up to, it is stopped and the event records the refusal (agents keep their
//!   shares, so this does not happen in the normal path).
//! - `fired` refused by the agent (cooldown, its budget share): the event records why.
//! - `ended`: the node's run in its newest event of that trigger and key ends.
//! - `signed`: the event whose firing started that capture on this node keeps the signature.
//!
//! Events: a firing joins the newest event of the same trigger and key (destination, or the
//! whole scope) that a node still holds, or that was active at most [`EVENT_WINDOW`] seconds
//! before the firing's run started; otherwise it starts one. An account keeps its events for
//! [`EVENT_RETENTION`] seconds, at most [`MAX_EVENTS_PER_ACCOUNT`] (the oldest go first,
//! pruned when an event is made).

use std::sync::Mutex;
use std::time::Duration;

use edgecap_model::ServerMsg;
use edgecap_model::firing::{
    Ask, Ending, FiredCapture, Firing, Grant, MAX_SIGNATURE_BYTES, Signed,
};
use edgecap_model::ids::is_id;
use edgecap_model::trigger::{MAX_THRESHOLD, Trigger};
use serde_json::json;

use super::{Live, LiveNode};
use crate::db::captures::{self, NewPart, StoredRequest};
use crate::db::{Db, events, parts, triggers};
use crate::error::Result;

/// Firings of one trigger and key this close (seconds) to an event's last activity join it.
pub const EVENT_WINDOW: u64 = 60;
/// An event some node still holds takes firings for this long after its last activity (a
/// node that never reported its end does not keep it open for ever).
pub const OPEN_REACH: u64 = 24 * 3600;
/// How long an account keeps its events (30 days).
pub const EVENT_RETENTION: u64 = 30 * 24 * 3600;
/// Most events an account keeps.
pub const MAX_EVENTS_PER_ACCOUNT: u64 = 10_000;
/// Reports about seconds older than this (or later than [`MAX_AHEAD`] from now) are refused:
/// an agent keeps its reports only so long while the server is away.
pub const MAX_REPORT_AGE: u64 = 7 * 24 * 3600;
/// How far ahead of the server's clock an agent's seconds may be.
pub const MAX_AHEAD: u64 = 300;
/// A grant is counted in the trigger's pool for this long (server clock), and forgotten after
/// twice as long.
pub const GRANT_HOUR: u64 = 3600;
/// The last guard at `fired` applies to reports that arrive within this many seconds of
/// their firing second: a later one comes after an outage, from an agent that spent its own
/// share while the server was away (its capture has run; it is recorded).
pub const GUARD_REACH: u64 = 60;
/// Most characters of a refusal's reason that are kept.
const MAX_REASON_CHARS: usize = 256;

/// A trigger report of one node, as the writer takes it.
#[derive(Debug)]
pub(super) enum Report {
    Fired(Firing),
    Ended(Ending),
    Signed(Box<Signed>),
}

/// Whether a capture an agent started for trigger `t` stays within its template: points
/// among the template's, limits not above its (nor its bytes above the day's budget), the
/// same format, a filter that parses.
pub fn check_capture(t: &Trigger, c: &FiredCapture) -> std::result::Result<(), String> {
    let tpl = &t.capture;
    if c.points.is_empty() || c.points.iter().any(|p| !tpl.points.contains(p)) {
        return Err(format!(
            "capture.points: {:?} are not among the trigger's ({})",
            c.points,
            tpl.points.join(", ")
        ));
    }
    if !(c.time_limit.is_finite() && c.time_limit > 0.0 && c.time_limit <= tpl.time_limit) {
        return Err(format!(
            "capture.time_limit: {} is not within (0, {}]",
            c.time_limit, tpl.time_limit
        ));
    }
    if let Some(max) = tpl.packet_limit
        && c.packet_limit.is_none_or(|p| p == 0 || p > max)
    {
        return Err(format!(
            "capture.packet_limit: {:?} is not within [1, {max}]",
            c.packet_limit
        ));
    }
    let max_bytes = tpl
        .byte_limit
        .unwrap_or(u64::MAX)
        .min(t.budget.bytes_per_day);
    if c.byte_limit == 0 || c.byte_limit > max_bytes {
        return Err(format!(
            "capture.byte_limit: {} is not within [1, {max_bytes}]",
            c.byte_limit
        ));
    }
    if c.format != tpl.format {
        return Err(format!(
            "capture.format: {:?} is not the trigger's {:?}",
            c.format, tpl.format
        ));
    }
    edgecap_filter::Expression::parse(&c.filter).map_err(|e| format!("capture.filter: {e}"))?;
    Ok(())
}

/// A run of seconds `[started, last]` an agent reports, in range of the server's clock.
fn check_run(started: u64, last: u64, now: u64) -> std::result::Result<(), String> {
    if started > last {
        return Err(format!("started {started} is after {last}"));
    }
    if last > now.saturating_add(MAX_AHEAD) || started < now.saturating_sub(MAX_REPORT_AGE) {
        return Err(format!(
            "seconds {started}..{last} are not within {MAX_REPORT_AGE} s before and {MAX_AHEAD} s \
             after the server's clock ({now})"
        ));
    }
    Ok(())
}

fn check_rate(what: &str, v: f64) -> std::result::Result<(), String> {
    if v.is_finite() && (0.0..=MAX_THRESHOLD).contains(&v) {
        Ok(())
    } else {
        Err(format!("{what} {v} is not within [0, {MAX_THRESHOLD}]"))
    }
}

fn reason(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control())
        .take(MAX_REASON_CHARS)
        .collect()
}

/// Sends `stop` to a node connected here on connection `conn`, and forgets the capture on it.
fn stop(live: &Mutex<Live>, node: &str, conn: u64, capture_id: &str) {
    let mut live = live.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(c) = live.nodes.get_mut(node)
        && c.conn == conn
    {
        c.assigned.remove(capture_id);
        c.push(ServerMsg::Stop {
            capture_id: capture_id.to_owned(),
        });
    }
}

/// Applies one report of `node` (connected on `conn` when it sent it).
pub(super) async fn apply(
    db: &Db,
    live: &Mutex<Live>,
    result_margin: Duration,
    node: &LiveNode,
    conn: u64,
    report: Report,
) {
    let name = node.info.name.as_str();
    let now = crate::clock::unix_now().max(0.0) as u64;
    let outcome = match report {
        Report::Fired(f) => {
            let capture = f
                .capture_id
                .as_deref()
                .filter(|id| is_id(id))
                .map(str::to_ascii_lowercase);
            let refused_by_agent = f.refused.is_some();
            match fired(db, node, f, capture.as_deref(), now, result_margin).await {
                Ok(Fired::Recorded) => {
                    // Refused by the agent yet naming a capture: it is not recorded, so it
                    // must not run.
                    if refused_by_agent && let Some(id) = &capture {
                        stop(live, name, conn, id);
                    }
                    Ok(())
                }
                Ok(Fired::Refused(why)) => {
                    if let Some(id) = &capture {
                        stop(live, name, conn, id);
                    }
                    Err(why)
                }
                Ok(Fired::OverBudget) => {
                    if let Some(id) = &capture {
                        stop(live, name, conn, id);
                    }
                    Ok(())
                }
                Err(e) => {
                    tracing::error!(node = %name, error = %e, "cannot record a firing");
                    Ok(())
                }
            }
        }
        Report::Ended(e) => ended(db, name, e, now).await,
        Report::Signed(s) => signed(db, name, *s).await,
    };
    if let Err(why) = outcome {
        tracing::warn!(node = %name, reason = %why, "trigger report refused; nothing recorded");
    }
}

enum Fired {
    Recorded,
    /// Checks failed: nothing recorded (why).
    Refused(String),
    /// Recorded as refused by the hourly budget: the capture must stop.
    OverBudget,
}

/// The trigger `trigger_id` (lowercase) as `node` may evaluate it, with the account's
/// prefixes (None: unrestricted); `Err`: why not.
async fn evaluated_by(
    db: &Db,
    node: &LiveNode,
    trigger_id: &str,
) -> Result<std::result::Result<(triggers::Stored, Option<Vec<String>>), String>> {
    let Some(stored) = triggers::by_id(db, trigger_id).await? else {
        return Ok(Err(format!("trigger_id: no trigger {trigger_id}")));
    };
    let tenancy = crate::db::accounts::tenancy(db, &stored.account_id).await?;
    let scoped = (!tenancy.unrestricted).then(|| crate::db::accounts::Scoped {
        id: stored.account_id.clone(),
        prefixes: tenancy.prefixes.clone(),
        nodes: tenancy.nodes.clone(),
    });
    match super::triggers::evaluates(&stored.trigger, scoped.as_ref(), node) {
        Some(prefixes) => Ok(Ok((stored, prefixes))),
        None => Ok(Err(format!(
            "trigger {trigger_id}: its scope or its account does not take node {}",
            node.info.name
        ))),
    }
}

/// Decides an ask of `node` under the trigger's row lock: one capture from the trigger's
/// captures pool (unless `capture` is false: the node's own share covers it) and the
/// `bytes` asked from its bytes pool (as many as are left of the last day, if worth a
/// capture: [`edgecap_model::trigger::grant_bytes`]); both or neither. Every refusal names
/// the budget first (`budget.captures_per_hour` or `budget.bytes_per_day`), so the agent's
/// report of it counts as a budget refusal in the event. Granted bytes stay counted for a
/// day, whatever the capture writes.
pub(super) async fn ask(db: &Db, node: &LiveNode, a: &Ask) -> Grant {
    let now = crate::clock::unix_now().max(0.0) as u64;
    let capture_id = a.capture_id.to_ascii_lowercase();
    let result = decide(db, node, a, &capture_id, now).await;
    let name = node.info.name.as_str();
    let (granted, reason, bytes) = match result {
        Ok(Ok(bytes)) => {
            if a.capture {
                tracing::info!(node = %name, trigger = %a.trigger_id, capture = %capture_id,
                    ?bytes, "capture granted from the trigger's pool");
            } else {
                tracing::info!(node = %name, trigger = %a.trigger_id, capture = %capture_id,
                    ?bytes, "bytes granted from the trigger's bytes pool");
            }
            (true, None, bytes)
        }
        Ok(Err(why)) => {
            tracing::info!(node = %name, trigger = %a.trigger_id, reason = %why, "ask refused");
            (false, Some(why), None)
        }
        Err(e) => {
            tracing::error!(node = %name, error = %e, "cannot decide an ask");
            let budget = if a.capture {
                "budget.captures_per_hour"
            } else {
                "budget.bytes_per_day"
            };
            let why = format!("{budget}: the server could not decide (database error)");
            (false, Some(why), None)
        }
    };
    Grant {
        trigger_id: a.trigger_id.clone(),
        capture_id: a.capture_id.clone(),
        granted,
        reason: reason.map(|r| self::reason(&r)),
        bytes,
    }
}

/// A bytes grant is counted in the trigger's bytes pool for this long (server clock), and
/// forgotten after twice as long.
pub const GRANT_DAY: u64 = 24 * 3600;

async fn decide(
    db: &Db,
    node: &LiveNode,
    a: &Ask,
    capture_id: &str,
    now: u64,
) -> Result<std::result::Result<Option<u64>, String>> {
    let budget = if a.capture {
        "budget.captures_per_hour"
    } else {
        "budget.bytes_per_day"
    };
    let refuse = |s: String| Ok(Err(format!("{budget}: {s}")));
    let refuse_bytes = |s: String| Ok(Err(format!("budget.bytes_per_day: {s}")));
    if !is_id(&a.trigger_id) || !is_id(capture_id) {
        return refuse("trigger_id and capture_id must be ids".into());
    }
    let asked = a.bytes.filter(|b| *b > 0);
    if !a.capture && asked.is_none() {
        return refuse_bytes("bytes: an ask without a capture must ask for bytes".into());
    }
    if let Err(e) = check_run(a.at, a.at, now) {
        return refuse(e);
    }
    let trigger_id = a.trigger_id.to_ascii_lowercase();
    let stored = match evaluated_by(db, node, &trigger_id).await? {
        Ok((stored, _)) => stored,
        Err(why) => return refuse(why),
    };
    let per_day = stored.trigger.budget.bytes_per_day;
    let most = edgecap_model::trigger::wanted_bytes(stored.trigger.capture.byte_limit, per_day, 0);
    if let Some(b) = asked
        && b > most
    {
        return refuse_bytes(format!(
            "bytes: {b} is more than a capture of this trigger may write ({most})"
        ));
    }
    let name = node.info.name.as_str();
    let mut tx = db.pool.begin().await?;
    if !events::lock_trigger(&mut tx, &trigger_id).await? {
        tx.rollback().await?;
        return refuse(format!("trigger_id: no trigger {trigger_id}"));
    }
    // The same ask again (a repeated message): the same answer, counted once.
    let had = events::granted_to(&mut tx, &trigger_id, capture_id).await?;
    let had_bytes = events::bytes_granted_to(&mut tx, &trigger_id, capture_id).await?;
    if had.is_some() || had_bytes.is_some() {
        tx.rollback().await?;
        let mine = had.as_deref().is_none_or(|n| n == name)
            && had_bytes.as_ref().is_none_or(|(n, _)| n == name);
        if mine {
            return Ok(Ok(had_bytes.map(|(_, b)| b)));
        }
        return refuse(format!("capture_id: {capture_id} is taken"));
    }
    if events::capture_exists(&mut tx, capture_id).await? {
        tx.rollback().await?;
        return refuse(format!("capture_id: {capture_id} is taken"));
    }
    if a.capture {
        let per_hour = stored.trigger.budget.captures_per_hour;
        let pool = edgecap_model::trigger::pooled_captures(per_hour);
        let granted =
            events::grants_since(&mut tx, &trigger_id, now.saturating_sub(GRANT_HOUR)).await?;
        if granted >= pool {
            tx.rollback().await?;
            return Ok(Err(format!(
                "budget.captures_per_hour: the trigger's {pool} captures an hour beyond its \
                 nodes' own shares were granted in the last hour (its budget is {per_hour}; \
                 the nodes' shares hold the other {})",
                per_hour - pool
            )));
        }
    }
    let mut bytes = None;
    if let Some(asked) = asked {
        let pool = edgecap_model::trigger::pooled_bytes(per_day);
        let spent =
            events::byte_grants_since(&mut tx, &trigger_id, now.saturating_sub(GRANT_DAY)).await?;
        let left = pool.saturating_sub(spent);
        let Some(g) = edgecap_model::trigger::grant_bytes(asked, left) else {
            tx.rollback().await?;
            return refuse_bytes(format!(
                "the trigger's pool of {pool} bytes a day beyond its nodes' own shares has \
                 {left} left of the last day, too few for this capture's {asked} (its budget \
                 is {per_day}; the nodes' shares hold the other {})",
                per_day - pool
            ));
        };
        events::grant_bytes(
            &mut tx,
            &trigger_id,
            capture_id,
            name,
            g,
            now,
            now.saturating_sub(2 * GRANT_DAY),
        )
        .await?;
        bytes = Some(g);
    }
    if a.capture {
        events::grant(
            &mut tx,
            &trigger_id,
            capture_id,
            name,
            now,
            now.saturating_sub(2 * GRANT_HOUR),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Ok(bytes))
}

async fn fired(
    db: &Db,
    node: &LiveNode,
    f: Firing,
    capture_id: Option<&str>,
    now: u64,
    result_margin: Duration,
) -> Result<Fired> {
    let refuse = |s: String| Ok(Fired::Refused(s));
    if !is_id(&f.trigger_id) {
        return refuse("trigger_id: not an id".into());
    }
    if f.capture_id.is_some() && capture_id.is_none() {
        return refuse("capture_id: not an id".into());
    }
    if let Err(e) = check_run(f.started, f.at, now)
        .and_then(|()| check_rate("value", f.value))
        .and_then(|()| check_rate("peak", f.peak))
    {
        return refuse(e);
    }
    let trigger_id = f.trigger_id.to_ascii_lowercase();
    let (stored, prefixes) = match evaluated_by(db, node, &trigger_id).await? {
        Ok(found) => found,
        Err(why) => return refuse(why),
    };
    let capture = match (&f.refused, &f.capture, capture_id) {
        (None, Some(c), Some(id)) => {
            if let Err(e) = check_capture(&stored.trigger, c) {
                return refuse(e);
            }
            Some((c, id))
        }
        (None, _, _) => return refuse("a firing with neither a capture nor a refusal".into()),
        // Refused by the agent: a capture it names anyway is stopped.
        (Some(_), _, _) => None,
    };
    let name = node.info.name.as_str();
    let key = f.key.map(|k| k.to_string()).unwrap_or_default();
    let peak = f.peak.max(f.value);
    let mut tx = db.pool.begin().await?;
    if !events::lock_trigger(&mut tx, &trigger_id).await? {
        tx.rollback().await?;
        return refuse(format!("trigger_id: no trigger {trigger_id}"));
    }
    if let Some((_, id)) = capture
        && events::capture_exists(&mut tx, id).await?
    {
        tx.rollback().await?;
        return refuse(format!("capture_id: {id} is taken"));
    }
    let event = match events::joinable(
        &mut tx,
        &trigger_id,
        &key,
        f.started,
        EVENT_WINDOW,
        OPEN_REACH,
    )
    .await?
    {
        Some(id) => id,
        None => {
            let id = crate::secret::new_id();
            events::insert(
                &mut tx,
                &events::NewEvent {
                    id: &id,
                    account_id: &stored.account_id,
                    trigger_id: &trigger_id,
                    trigger_name: stored.trigger.name.as_deref(),
                    key: &key,
                    started: f.started,
                    at: f.at,
                    peak,
                    created: &crate::clock::now(),
                },
            )
            .await?;
            events::prune(
                &mut tx,
                &stored.account_id,
                now.saturating_sub(EVENT_RETENTION),
                MAX_EVENTS_PER_ACCOUNT,
            )
            .await?;
            id
        }
    };
    events::widen(&mut tx, &event, f.started, f.at, peak).await?;
    events::node_fired(&mut tx, &event, name, f.started, peak).await?;
    let mut result = Fired::Recorded;
    match capture {
        None => {
            let why = reason(f.refused.as_deref().unwrap_or("refused"));
            events::add_firing(&mut tx, &event, &trigger_id, name, now, None, Some(&why)).await?;
        }
        Some((c, id)) => {
            // Granted to this node: the pool counted it. Otherwise it is one of the nodes'
            // local shares: the last guard (agents keep their shares; a report long after its
            // firing comes after an outage, its capture has run).
            let granted = events::granted_to(&mut tx, &trigger_id, id).await?;
            let per_hour = stored.trigger.budget.captures_per_hour;
            let shares = edgecap_model::trigger::local_captures(per_hour);
            let guarded = granted.as_deref() != Some(name) && f.at + GUARD_REACH >= now;
            let taken = if guarded {
                events::local_captures_since(&mut tx, &trigger_id, now.saturating_sub(3600)).await?
            } else {
                0
            };
            if guarded && taken >= shares {
                let why = format!(
                    "budget.captures_per_hour: the trigger's nodes started {taken} captures of \
                     their own shares in the last hour, the shares add up to {shares} (its \
                     budget is {per_hour}); capture {id} was stopped"
                );
                events::add_firing(&mut tx, &event, &trigger_id, name, now, None, Some(&why))
                    .await?;
                result = Fired::OverBudget;
            } else {
                record_capture(&mut tx, &stored, c, id, name, prefixes, result_margin).await?;
                events::add_firing(&mut tx, &event, &trigger_id, name, now, Some(id), None).await?;
            }
        }
    }
    tx.commit().await?;
    match &result {
        Fired::OverBudget => tracing::warn!(node = %name, trigger = %trigger_id, %event,
            "firing beyond the trigger's hourly budget: capture stopped"),
        _ => tracing::info!(node = %name, trigger = %trigger_id, %event, capture = ?capture_id,
            "trigger fired"),
    }
    Ok(result)
}

/// The capture a firing started, as any capture: this node's one part, running.
async fn record_capture(
    tx: &mut sqlx::AnyConnection,
    stored: &triggers::Stored,
    c: &FiredCapture,
    id: &str,
    node: &str,
    prefixes: Option<Vec<String>>,
    result_margin: Duration,
) -> Result<()> {
    let request = StoredRequest {
        time_limit: c.time_limit,
        packet_limit: c.packet_limit,
        byte_limit: Some(c.byte_limit),
        filter_v1: json!({}),
        filter: Some(c.filter.clone()),
        colo_name: None,
        nodes: Some(vec![node.to_owned()]),
        points: c.points.clone(),
        snaplen: stored.trigger.capture.snaplen,
        sample_rate: None,
        format: c.format.clone(),
        merge: false,
        destination_conf: stored.trigger.capture.destination_conf.clone(),
        prefixes,
        simple: false,
    };
    let part = NewPart {
        node: node.to_owned(),
        packet_limit: c.packet_limit,
        byte_limit: Some(c.byte_limit),
    };
    let at = crate::clock::now();
    let deadline = crate::clock::after(Duration::from_secs_f64(c.time_limit) + result_margin);
    captures::insert_in(
        tx,
        id,
        &stored.account_id,
        &request,
        &[part],
        &at,
        &deadline,
        None,
    )
    .await?;
    parts::ack(tx, id, node, &at).await?;
    parts::refresh(tx, id, &at).await?;
    Ok(())
}

async fn ended(db: &Db, node: &str, e: Ending, now: u64) -> std::result::Result<(), String> {
    if !is_id(&e.trigger_id) {
        return Err("ended: trigger_id: not an id".into());
    }
    check_run(e.started, e.ended, now)
        .and_then(|()| check_rate("peak", e.peak))
        .map_err(|r| format!("ended: {r}"))?;
    let key = e.key.map(|k| k.to_string()).unwrap_or_default();
    let trigger_id = e.trigger_id.to_ascii_lowercase();
    let result = async {
        let mut tx = db.pool.begin().await?;
        // The trigger's lock if it still exists (a deleted trigger's events still end).
        events::lock_trigger(&mut tx, &trigger_id).await?;
        let found = events::node_ended(&mut tx, &trigger_id, &key, node, e.ended, e.peak).await?;
        tx.commit().await?;
        Ok::<bool, crate::error::Error>(found)
    }
    .await;
    match result {
        Ok(true) => Ok(()),
        Ok(false) => Err(format!(
            "ended: node {node} is in no event of trigger {trigger_id} for {key:?}"
        )),
        Err(err) => Err(format!("ended: {err}")),
    }
}

async fn signed(db: &Db, node: &str, s: Signed) -> std::result::Result<(), String> {
    if !is_id(&s.trigger_id) || !is_id(&s.capture_id) {
        return Err("signed: trigger_id and capture_id must be ids".into());
    }
    let text = serde_json::to_string(&s.signature).map_err(|e| format!("signed: {e}"))?;
    if text.len() > MAX_SIGNATURE_BYTES {
        return Err(format!(
            "signed: a signature of {} bytes, more than {MAX_SIGNATURE_BYTES}",
            text.len()
        ));
    }
    let trigger_id = s.trigger_id.to_ascii_lowercase();
    let capture_id = s.capture_id.to_ascii_lowercase();
    let mut conn = db.pool.acquire().await.map_err(|e| e.to_string())?;
    match events::set_signature(&mut conn, &trigger_id, node, &capture_id, &text).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(format!(
            "signed: no event of trigger {trigger_id} started capture {capture_id} on node {node}"
        )),
        Err(e) => Err(format!("signed: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trigger() -> Trigger {
        let body = json!({
            "scope": {"filter_v1": {"protocol": 17}, "colo_name": "fra"},
            "condition": {"metric": "packets_per_second", "per": "destination", "above": 1000},
            "capture": {"time_limit": 30, "packet_limit": 5000, "byte_limit": 40000,
                        "points": ["pre-firewall", "egress"], "destination_conf": "file:///tmp/x"},
            "budget": {"bytes_per_day": 50000},
        });
        edgecap_model::trigger::validate_trigger(&body, &Default::default())
            .unwrap()
            .0
    }

    fn capture() -> FiredCapture {
        FiredCapture {
            filter: "dst host 198.18.0.9 and udp".into(),
            points: vec!["pre-firewall".into()],
            time_limit: 30.0,
            packet_limit: Some(5000),
            byte_limit: 40000,
            format: "pcapng".into(),
            pre_trigger_packets: 3,
        }
    }

    #[test]
    fn a_capture_within_the_template_passes_and_anything_beyond_it_is_named() {
        let t = trigger();
        assert_eq!(check_capture(&t, &capture()), Ok(()));
        type Change = fn(&mut FiredCapture);
        let cases: Vec<(&str, Change)> = vec![
            ("capture.points", |c| c.points = vec!["ingress".into()]),
            ("capture.points", |c| c.points.clear()),
            ("capture.time_limit", |c| c.time_limit = 31.0),
            ("capture.time_limit", |c| c.time_limit = f64::NAN),
            ("capture.packet_limit", |c| c.packet_limit = None),
            ("capture.packet_limit", |c| c.packet_limit = Some(5001)),
            ("capture.byte_limit", |c| c.byte_limit = 40001),
            ("capture.byte_limit", |c| c.byte_limit = 0),
            ("capture.format", |c| c.format = "pcap".into()),
            ("capture.filter", |c| c.filter = "udp port".into()),
        ];
        for (field, change) in cases {
            let mut c = capture();
            change(&mut c);
            let err = check_capture(&t, &c).unwrap_err();
            assert!(err.starts_with(field), "{field}: {err}");
        }
    }

    #[test]
    fn runs_out_of_the_clocks_range_are_refused() {
        let now = 1_800_000_000;
        assert!(check_run(now - 10, now - 5, now).is_ok());
        assert!(check_run(now - 5, now - 10, now).is_err());
        assert!(check_run(now, now + MAX_AHEAD + 1, now).is_err());
        assert!(check_run(0, now, now).is_err());
        assert!(check_run(u64::MAX, u64::MAX, now).is_err());
        assert!(check_rate("peak", 1e300).is_err() && check_rate("peak", -1.0).is_err());
        assert!(check_rate("peak", 5000.0).is_ok());
    }
}
