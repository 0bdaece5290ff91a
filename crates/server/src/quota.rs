//! Quotas: what one account may hold of a shared fleet, and what one node runs at once.
//!
//! Per account ([`Quotas`], the defaults in one place, overridden per account in
//! `account_quotas` by `edgecap admin account quota set`):
//!
//! - **running captures**: captures `pending` or `running` at once;
//! - **captures per hour**: captures created in the last 3600 s (rolling);
//! - **rules per node**: the kernel rules the account's unfinished parts hold on one node,
//!   each capture counting its compiled conjunctions times the hooks of its points
//!   ([`rules_per_node`]);
//! - **bytes per day**: over the last 24 h (rolling), what the account's captures wrote, a
//!   capture still running counting what it may still write (its `byte_limit`, or the
//!   account's `max_byte_limit` without one). A create whose budget exceeds what remains is
//!   refused (never silently cut): the message says how much remains;
//! - **simple requests per minute**: look-back (`type: simple`) requests granted in the last
//!   60 s (rolling); Cloudflare's limit, one, is the default ([`admit_simple`]).
//!
//! Per node, whatever the accounts: at most `Config::max_captures_per_node` unfinished parts
//! (each an nftables table on the node).
//!
//! A create checks and inserts in one transaction that serialises per account ([`create`]):
//! on PostgreSQL the account's row is locked (`SELECT ... FOR UPDATE`) and each selected node
//! by an advisory lock, in name order, so server replicas sharing the database never admit
//! more than a quota; on SQLite the transaction is `BEGIN IMMEDIATE`, which takes the one
//! write lock before the first read. The rules ([`check`], [`check_nodes`]) are pure; the
//! queries gather what they compare.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use edgecap_model::{ApiError, CreateRequest, codes};
use serde::Serialize;
use serde_json::{Value, json};
use sqlx::{AnyConnection, Row};

use crate::db::captures::{self, NewPart, StoredRequest};
use crate::db::{Backend, Db, placeholders, to_i64, to_u64};
use crate::error::{HttpError, Result};

/// The rolling window of "captures per hour".
pub const HOUR_SECS: u64 = 3600;
/// The rolling window of "bytes per day".
pub const DAY_SECS: u64 = 86_400;
/// The rolling window of "simple requests per minute".
pub const MINUTE_SECS: u64 = 60;

/// An account's quotas. `Default` gives the server's defaults (docs/operations.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Quotas {
    /// Captures pending or running at once.
    pub running: u64,
    /// Captures created in the last hour.
    pub per_hour: u64,
    /// Kernel rules the account's running captures hold on one node.
    pub rules_per_node: u64,
    /// Bytes written (or reserved by running captures) in the last 24 hours.
    pub bytes_per_day: u64,
    /// Look-back (`type: simple`) requests granted in the last minute.
    pub simple_per_minute: u64,
}

impl Default for Quotas {
    fn default() -> Self {
        Self {
            running: 5,
            per_hour: 60,
            // Four times the largest filter (edgecap_filter's MAX_RULES, 256) on one hook.
            rules_per_node: 1024,
            bytes_per_day: 10_000_000_000,
            // Cloudflare: "one collect request per minute for sample PCAPs".
            simple_per_minute: 1,
        }
    }
}

/// One account's overrides; `None` keeps the default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Overrides {
    pub running: Option<u64>,
    pub per_hour: Option<u64>,
    pub rules_per_node: Option<u64>,
    pub bytes_per_day: Option<u64>,
    pub simple_per_minute: Option<u64>,
}

impl Quotas {
    /// These quotas with an account's overrides applied.
    pub fn with(self, o: &Overrides) -> Quotas {
        Quotas {
            running: o.running.unwrap_or(self.running),
            per_hour: o.per_hour.unwrap_or(self.per_hour),
            rules_per_node: o.rules_per_node.unwrap_or(self.rules_per_node),
            bytes_per_day: o.bytes_per_day.unwrap_or(self.bytes_per_day),
            simple_per_minute: o.simple_per_minute.unwrap_or(self.simple_per_minute),
        }
    }
}

/// Hooks a point installs chains at, as far as the server knows without the node: the
/// built-in table of `edgecap_capture::points` (`post-firewall`: input and forward, 2; the
/// others 1). `ingress` has one hook per device of the node, and a point a node configures
/// itself has one hook (or one per device at ingress); the server counts 1 for each, a
/// documented lower bound, which the per-node capture cap backs.
pub fn hooks_of(point: &str) -> u64 {
    match point {
        "post-firewall" => 2,
        _ => 1,
    }
}

/// The rules a capture holds on each of its nodes: its filter's compiled conjunctions (as
/// `validate_create` composed them, and limited to the account's `prefixes` as the agent
/// will, `edgecap_filter::Boundary`) times the hooks of its points.
pub fn rules_per_node(req: &CreateRequest, prefixes: Option<&[String]>) -> u64 {
    let conjunctions =
        edgecap_filter::request::compose(&req.filter_v1_parsed, req.filter.as_deref())
            .map(|c| match prefixes.map(edgecap_filter::Boundary::parse) {
                Some(Ok(b)) => b.apply(&c.rules).map_or(c.rules.len(), |r| r.len()),
                _ => c.rules.len(),
            })
            .map(|n| n.max(1) as u64)
            .unwrap_or(1);
    let hooks: u64 = req.points.iter().map(|p| hooks_of(p)).sum();
    conjunctions.saturating_mul(hooks.max(1))
}

/// What a new capture asks of the quotas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ask {
    /// [`rules_per_node`].
    pub rules: u64,
    /// Its byte budget: `byte_limit`, or the account's `max_byte_limit`.
    pub bytes: u64,
    /// Whether `bytes` is the request's `byte_limit` (else the account's maximum).
    pub byte_limit_given: bool,
}

impl Ask {
    pub fn of(req: &CreateRequest, max_byte_limit: u64, prefixes: Option<&[String]>) -> Ask {
        Ask {
            rules: rules_per_node(req, prefixes),
            bytes: req.byte_limit.unwrap_or(max_byte_limit),
            byte_limit_given: req.byte_limit.is_some(),
        }
    }
}

/// An account's current use, as the quotas count it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    pub running: u64,
    pub last_hour: u64,
    /// Seconds until enough of the last hour's captures leave the window for one more.
    pub hour_frees_in: Option<u64>,
    /// Rules the account holds on each selected node that holds any.
    pub rules_on: BTreeMap<String, u64>,
    pub bytes_today: u64,
    /// Seconds until the oldest capture counted in the last 24 hours leaves the window.
    pub day_frees_in: Option<u64>,
}

/// One exceeded limit: the envelope's error and, where waiting helps by itself, how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: u32,
    pub message: String,
    pub retry_after: Option<u64>,
}

fn quota_refusal(message: String, retry_after: Option<u64>) -> Refusal {
    Refusal {
        code: codes::QUOTA_EXCEEDED,
        message,
        retry_after,
    }
}

/// The account quotas a new capture would exceed, each with its limit and the current use.
pub fn check(q: &Quotas, u: &Usage, ask: &Ask) -> Vec<Refusal> {
    let mut out = Vec::new();
    if u.running >= q.running {
        out.push(quota_refusal(
            format!(
                "running captures: {} of {} in use; stop one or wait for one to finish",
                u.running, q.running
            ),
            None,
        ));
    }
    if u.last_hour >= q.per_hour {
        out.push(quota_refusal(
            format!(
                "captures per hour: {} of {} created in the last hour",
                u.last_hour, q.per_hour
            ),
            u.hour_frees_in,
        ));
    }
    if ask.rules > q.rules_per_node {
        out.push(quota_refusal(
            format!(
                "rules per node: this capture alone needs {} on each node (its filter's rules \
                 times the hooks of its points), more than the {} allowed",
                ask.rules, q.rules_per_node
            ),
            None,
        ));
    } else {
        for (node, held) in &u.rules_on {
            if held.saturating_add(ask.rules) > q.rules_per_node {
                out.push(quota_refusal(
                    format!(
                        "rules per node: {held} of {} in use on node {node}; this capture needs \
                         {} more (its filter's rules times the hooks of its points)",
                        q.rules_per_node, ask.rules
                    ),
                    None,
                ));
            }
        }
    }
    if u.bytes_today.saturating_add(ask.bytes) > q.bytes_per_day {
        let remain = q.bytes_per_day.saturating_sub(u.bytes_today);
        let asked = if ask.byte_limit_given {
            format!("its byte_limit of {}", ask.bytes)
        } else {
            format!(
                "without a byte_limit it may write the account's maximum, {}",
                ask.bytes
            )
        };
        out.push(quota_refusal(
            format!(
                "bytes per day: {} of {} used in the last 24 hours; this capture ({asked}) \
                 needs more than the {remain} that remain: set byte_limit to at most {remain}",
                u.bytes_today, q.bytes_per_day
            ),
            u.day_frees_in,
        ));
    }
    out
}

/// The refusal of a simple request when `granted` (the times, Unix seconds, of the requests
/// granted in the last minute, oldest first) already reach the limit; `None` admits it.
pub fn check_simple(q: &Quotas, granted: &[f64], now: f64) -> Option<Refusal> {
    let used = granted.len() as u64;
    if used < q.simple_per_minute {
        return None;
    }
    // One more fits when all but simple_per_minute - 1 of them have left the minute.
    let nth = usize::try_from(used - q.simple_per_minute).unwrap_or(usize::MAX);
    let retry_after = granted
        .get(nth)
        .map(|t| (t + MINUTE_SECS as f64 - now).ceil().max(1.0) as u64)
        .unwrap_or(MINUTE_SECS);
    let noun = if q.simple_per_minute == 1 {
        "request"
    } else {
        "requests"
    };
    Some(quota_refusal(
        format!(
            "simple requests per minute: {used} of {} granted in the last minute; this account \
             may send {} simple (look-back) {noun} per minute; retry in {retry_after} s",
            q.simple_per_minute, q.simple_per_minute
        ),
        Some(retry_after),
    ))
}

/// Admits one simple request of the account, or refuses it (429 naming the limit, with
/// `Retry-After`) storing nothing: the check of the last minute's granted requests and the
/// insert of this one are one transaction serialised per account (as [`create`]'s), so a
/// burst through any number of replicas gets exactly the limit. The rows of requests older
/// than the minute are deleted on the way.
pub async fn admit_simple(db: &Db, account_id: &str) -> Result<(), HttpError> {
    let (_turn, mut tx) = db.begin_write().await?;
    if db.backend == Backend::Postgres {
        sqlx::query("SELECT id FROM accounts WHERE id = $1 FOR UPDATE")
            .bind(account_id)
            .fetch_optional(&mut *tx)
            .await?;
    }
    let quotas = Quotas::default().with(&overrides_in(&mut tx, account_id).await?);
    let now = crate::clock::unix_now();
    let since = edgecap_model::ids::rfc3339(now - MINUTE_SECS as f64);
    sqlx::query("DELETE FROM simple_requests WHERE account_id = $1 AND at <= $2")
        .bind(account_id)
        .bind(&since)
        .execute(&mut *tx)
        .await?;
    let granted = simple_granted_in(&mut tx, account_id, &since).await?;
    if let Some(r) = check_simple(&quotas, &granted, now) {
        tx.rollback().await?;
        return Err(refused(vec![r]));
    }
    sqlx::query("INSERT INTO simple_requests (id, account_id, at) VALUES ($1, $2, $3)")
        .bind(crate::secret::new_id())
        .bind(account_id)
        .bind(edgecap_model::ids::rfc3339(now))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// When (Unix seconds) the account's simple requests after `since` were granted, oldest first.
async fn simple_granted_in(
    conn: &mut AnyConnection,
    account_id: &str,
    since: &str,
) -> Result<Vec<f64>> {
    let stamps: Vec<String> = sqlx::query_scalar(
        "SELECT at FROM simple_requests WHERE account_id = $1 AND at > $2 ORDER BY at",
    )
    .bind(account_id)
    .bind(since)
    .fetch_all(&mut *conn)
    .await?;
    Ok(stamps
        .iter()
        .filter_map(|s| edgecap_model::ids::parse_rfc3339(s))
        .collect())
}

/// The selected nodes already running `cap` captures (unfinished parts of any account).
pub fn check_nodes(cap: usize, open: &BTreeMap<String, u64>) -> Vec<Refusal> {
    open.iter()
        .filter(|(_, n)| **n >= cap as u64)
        .map(|(node, n)| Refusal {
            code: codes::NODE_FULL,
            message: format!(
                "captures per node: node {node} runs {n} of {cap} captures, the server's cap per \
                 node (--max-captures-per-node); wait for one to finish or select other nodes"
            ),
            retry_after: None,
        })
        .collect()
}

/// 429 with every refusal; `Retry-After` the longest wait among them that has one.
pub fn refused(refusals: Vec<Refusal>) -> HttpError {
    let retry = refusals.iter().filter_map(|r| r.retry_after).max();
    let errors = refusals
        .into_iter()
        .map(|r| ApiError::new(r.code, r.message))
        .collect();
    HttpError::new(StatusCode::TOO_MANY_REQUESTS, errors).with_retry_after(retry)
}

/// A capture to insert once the quotas admit it (the arguments of `captures::insert`).
#[derive(Debug)]
pub struct NewCapture<'a> {
    pub id: &'a str,
    pub account_id: &'a str,
    /// The account's `max_byte_limit`, a capture's budget without a byte limit.
    pub max_byte_limit: u64,
    pub request: &'a StoredRequest,
    pub parts: &'a [NewPart],
    pub submitted: &'a str,
    pub deadline: &'a str,
    pub credentials: Option<&'a str>,
}

/// Checks the account's quotas and the nodes' cap and inserts the capture, in one transaction
/// serialised per account and per node; on refusal nothing is stored (429).
pub async fn create(
    db: &Db,
    req: &CreateRequest,
    max_per_node: usize,
    c: NewCapture<'_>,
) -> Result<(), HttpError> {
    let ask = Ask::of(req, c.max_byte_limit, c.request.prefixes.as_deref());
    let mut nodes: Vec<String> = c.parts.iter().map(|p| p.node.clone()).collect();
    nodes.sort();
    nodes.dedup();
    let (_turn, mut tx) = db.begin_write().await?;
    if db.backend == Backend::Postgres {
        sqlx::query("SELECT id FROM accounts WHERE id = $1 FOR UPDATE")
            .bind(c.account_id)
            .fetch_optional(&mut *tx)
            .await?;
        for node in &nodes {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(node_lock_key(node))
                .execute(&mut *tx)
                .await?;
        }
    }
    let quotas = Quotas::default().with(&overrides_in(&mut tx, c.account_id).await?);
    let now = crate::clock::unix_now();
    let usage = usage_in(&mut tx, c.account_id, &nodes, &quotas, now).await?;
    let mut refusals = check(&quotas, &usage, &ask);
    refusals.extend(check_nodes(
        max_per_node,
        &open_parts_in(&mut tx, &nodes).await?,
    ));
    if !refusals.is_empty() {
        tx.rollback().await?;
        return Err(refused(refusals));
    }
    captures::insert_in(
        &mut tx,
        c.id,
        c.account_id,
        c.request,
        c.parts,
        c.submitted,
        c.deadline,
        c.credentials,
    )
    .await?;
    sqlx::query("UPDATE captures SET rules = $2, quota_bytes = $3 WHERE id = $1")
        .bind(c.id)
        .bind(to_i64(ask.rules))
        .bind(to_i64(ask.bytes))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// A PostgreSQL advisory lock key per node name (the first 8 bytes of a digest).
fn node_lock_key(node: &str) -> i64 {
    use sha2::Digest;
    let d = sha2::Sha256::digest(format!("edgecap-node-quota:{node}").as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    i64::from_be_bytes(b)
}

/// The account's overrides (none stored: all `None`).
pub async fn overrides(db: &Db, account_id: &str) -> Result<Overrides> {
    let mut conn = db.pool.acquire().await?;
    overrides_in(&mut conn, account_id).await
}

async fn overrides_in(conn: &mut AnyConnection, account_id: &str) -> Result<Overrides> {
    let row = sqlx::query(
        "SELECT running, per_hour, rules_per_node, bytes_per_day, simple_per_minute
         FROM account_quotas WHERE account_id = $1",
    )
    .bind(account_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(Overrides::default());
    };
    let get = |col: &str| -> Result<Option<u64>> { crate::db::opt_u64(&row, col) };
    Ok(Overrides {
        running: get("running")?,
        per_hour: get("per_hour")?,
        rules_per_node: get("rules_per_node")?,
        bytes_per_day: get("bytes_per_day")?,
        simple_per_minute: get("simple_per_minute")?,
    })
}

/// Changes to an account's overrides: each `Some(None)` back to the default, `Some(Some(n))`
/// set to `n`, `None` unchanged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Changes {
    pub running: Option<Option<u64>>,
    pub per_hour: Option<Option<u64>>,
    pub rules_per_node: Option<Option<u64>>,
    pub bytes_per_day: Option<Option<u64>>,
    pub simple_per_minute: Option<Option<u64>>,
}

impl Changes {
    /// Whether nothing changes.
    pub fn is_empty(&self) -> bool {
        *self == Changes::default()
    }
}

/// Sets some of an account's overrides.
pub async fn set(db: &Db, account_id: &str, c: Changes) -> Result<Overrides> {
    crate::db::accounts::get(db, account_id).await?;
    let (_turn, mut tx) = db.begin_write().await?;
    let old = overrides_in(&mut tx, account_id).await?;
    let new = Overrides {
        running: c.running.unwrap_or(old.running),
        per_hour: c.per_hour.unwrap_or(old.per_hour),
        rules_per_node: c.rules_per_node.unwrap_or(old.rules_per_node),
        bytes_per_day: c.bytes_per_day.unwrap_or(old.bytes_per_day),
        simple_per_minute: c.simple_per_minute.unwrap_or(old.simple_per_minute),
    };
    sqlx::query("DELETE FROM account_quotas WHERE account_id = $1")
        .bind(account_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO account_quotas
             (account_id, running, per_hour, rules_per_node, bytes_per_day, simple_per_minute)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(account_id)
    .bind(new.running.map(to_i64))
    .bind(new.per_hour.map(to_i64))
    .bind(new.rules_per_node.map(to_i64))
    .bind(new.bytes_per_day.map(to_i64))
    .bind(new.simple_per_minute.map(to_i64))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(new)
}

const OPEN: &str = "('pending', 'running')";

/// The account's use; rules only on `nodes` (every node where it holds any when empty).
async fn usage_in(
    conn: &mut AnyConnection,
    account_id: &str,
    nodes: &[String],
    q: &Quotas,
    now: f64,
) -> Result<Usage> {
    let since = |secs: u64| edgecap_model::ids::rfc3339(now - secs as f64);
    let frees_in = |stamp: Option<String>, window: u64| {
        stamp
            .and_then(|s| edgecap_model::ids::parse_rfc3339(&s))
            .map(|t| (t + window as f64 - now).ceil().max(1.0) as u64)
    };
    let running: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM captures WHERE account_id = $1 AND status IN {OPEN}"
    )))
    .bind(account_id)
    .fetch_one(&mut *conn)
    .await?;
    let hour_start = since(HOUR_SECS);
    let last_hour: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM captures WHERE account_id = $1 AND submitted > $2",
    )
    .bind(account_id)
    .bind(&hour_start)
    .fetch_one(&mut *conn)
    .await?;
    // One more fits when all but per_hour - 1 of them have left the window.
    let hour_frees_in = if to_u64(last_hour) >= q.per_hour {
        let nth: Option<String> = sqlx::query_scalar(
            "SELECT submitted FROM captures WHERE account_id = $1 AND submitted > $2
             ORDER BY submitted LIMIT 1 OFFSET $3",
        )
        .bind(account_id)
        .bind(&hour_start)
        .bind(to_i64(to_u64(last_hour) - q.per_hour))
        .fetch_optional(&mut *conn)
        .await?;
        frees_in(nth, HOUR_SECS)
    } else {
        None
    };
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT CAST(COALESCE(SUM(CASE WHEN status IN {OPEN} AND quota_bytes > bytes_captured
                    THEN quota_bytes ELSE bytes_captured END), 0) AS BIGINT) AS bytes,
                MIN(submitted) AS oldest
         FROM captures WHERE account_id = $1 AND submitted > $2"
    )))
    .bind(account_id)
    .bind(since(DAY_SECS))
    .fetch_one(&mut *conn)
    .await?;
    let bytes_today = to_u64(row.try_get("bytes")?);
    let oldest: Option<String> = row.try_get("oldest")?;
    Ok(Usage {
        running: to_u64(running),
        last_hour: to_u64(last_hour),
        hour_frees_in,
        rules_on: rules_in(conn, account_id, nodes).await?,
        bytes_today,
        day_frees_in: frees_in(oldest, DAY_SECS),
    })
}

/// Rules the account's unfinished parts hold, per node (only `nodes`, unless empty).
async fn rules_in(
    conn: &mut AnyConnection,
    account_id: &str,
    nodes: &[String],
) -> Result<BTreeMap<String, u64>> {
    let only = match nodes.is_empty() {
        true => String::new(),
        false => format!("AND n.node IN ({})", placeholders(2, nodes.len())),
    };
    let sql = format!(
        "SELECT n.node AS node, CAST(SUM(c.rules) AS BIGINT) AS rules
         FROM capture_nodes n JOIN captures c ON c.id = n.capture_id
         WHERE c.account_id = $1 AND n.status IN {OPEN} {only}
         GROUP BY n.node"
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(account_id.to_owned());
    for n in nodes {
        q = q.bind(n.clone());
    }
    let mut out = BTreeMap::new();
    for row in q.fetch_all(&mut *conn).await? {
        out.insert(row.try_get("node")?, to_u64(row.try_get("rules")?));
    }
    Ok(out)
}

/// Unfinished parts of any account on each of `nodes` that has some.
async fn open_parts_in(
    conn: &mut AnyConnection,
    nodes: &[String],
) -> Result<BTreeMap<String, u64>> {
    if nodes.is_empty() {
        return Ok(BTreeMap::new());
    }
    let sql = format!(
        "SELECT node, COUNT(*) AS n FROM capture_nodes
         WHERE status IN {OPEN} AND node IN ({}) GROUP BY node",
        placeholders(1, nodes.len())
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for n in nodes {
        q = q.bind(n.clone());
    }
    let mut out = BTreeMap::new();
    for row in q.fetch_all(&mut *conn).await? {
        out.insert(row.try_get("node")?, to_u64(row.try_get("n")?));
    }
    Ok(out)
}

/// Each quota of the account with its limit and current use, and whether the limit is the
/// account's own or the default: `GET /accounts/{id}/quotas`, `edgecap admin account quota
/// show`, and whatever else shows an account.
pub async fn view(db: &Db, account_id: &str) -> Result<Value> {
    let o = overrides(db, account_id).await?;
    let q = Quotas::default().with(&o);
    let mut conn = db.pool.acquire().await?;
    let now = crate::clock::unix_now();
    let u = usage_in(&mut conn, account_id, &[], &q, now).await?;
    let minute = edgecap_model::ids::rfc3339(now - MINUTE_SECS as f64);
    let simple = simple_granted_in(&mut conn, account_id, &minute).await?;
    let source = |v: Option<u64>| if v.is_some() { "account" } else { "default" };
    Ok(json!({
        "running_captures": {
            "limit": q.running, "used": u.running, "source": source(o.running),
        },
        "captures_per_hour": {
            "limit": q.per_hour, "used": u.last_hour, "source": source(o.per_hour),
            "window_seconds": HOUR_SECS,
        },
        "rules_per_node": {
            "limit": q.rules_per_node,
            "used": u.rules_on.values().copied().max().unwrap_or(0),
            "by_node": u.rules_on,
            "source": source(o.rules_per_node),
        },
        "bytes_per_day": {
            "limit": q.bytes_per_day, "used": u.bytes_today, "source": source(o.bytes_per_day),
            "window_seconds": DAY_SECS,
        },
        "simple_requests_per_minute": {
            "limit": q.simple_per_minute, "used": simple.len(),
            "source": source(o.simple_per_minute), "window_seconds": MINUTE_SECS,
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(rules: u64, bytes: u64) -> Ask {
        Ask {
            rules,
            bytes,
            byte_limit_given: true,
        }
    }

    #[test]
    fn each_limit_is_named_with_its_value_and_use() {
        let q = Quotas {
            running: 5,
            per_hour: 10,
            rules_per_node: 8,
            bytes_per_day: 1000,
            simple_per_minute: 1,
        };
        let u = Usage {
            running: 5,
            last_hour: 10,
            hour_frees_in: Some(42),
            rules_on: [("n1".to_owned(), 6)].into(),
            bytes_today: 900,
            day_frees_in: Some(7),
        };
        let r = check(&q, &u, &ask(3, 200));
        let text: Vec<&str> = r.iter().map(|r| r.message.as_str()).collect();
        assert_eq!(r.len(), 4, "{text:?}");
        assert!(text[0].starts_with("running captures: 5 of 5 in use"));
        assert!(text[1].starts_with("captures per hour: 10 of 10"));
        assert!(text[2].contains("rules per node: 6 of 8 in use on node n1"));
        assert!(text[3].contains("bytes per day: 900 of 1000") && text[3].contains("at most 100"));
        assert!(r.iter().all(|r| r.code == codes::QUOTA_EXCEEDED));
        assert_eq!(
            r.iter().map(|r| r.retry_after).collect::<Vec<_>>(),
            [None, Some(42), None, Some(7)]
        );
        // Exactly at the limit is allowed.
        let u = Usage {
            running: 4,
            last_hour: 9,
            rules_on: [("n1".to_owned(), 5)].into(),
            bytes_today: 800,
            ..Usage::default()
        };
        assert!(check(&q, &u, &ask(3, 200)).is_empty());
        assert_eq!(check(&q, &Usage::default(), &ask(9, 1)).len(), 1);
    }

    #[test]
    fn simple_requests_are_counted_over_a_rolling_minute() {
        let one = Quotas::default();
        assert_eq!(
            one.simple_per_minute, 1,
            "Cloudflare's limit is the default"
        );
        assert_eq!(check_simple(&one, &[], 1000.0), None);
        let r = check_simple(&one, &[990.0], 1000.0).unwrap();
        assert_eq!(r.code, codes::QUOTA_EXCEEDED);
        assert!(
            r.message
                .starts_with("simple requests per minute: 1 of 1 granted in the last minute"),
            "{}",
            r.message
        );
        // The one granted at 990 leaves the minute at 1050.
        assert_eq!(r.retry_after, Some(50));
        let three = Quotas {
            simple_per_minute: 3,
            ..Quotas::default()
        };
        assert_eq!(check_simple(&three, &[950.0, 990.0], 1000.0), None);
        // Three granted: one more fits when the oldest has left.
        let r = check_simple(&three, &[950.0, 960.0, 990.0], 1000.0).unwrap();
        assert_eq!(r.retry_after, Some(10));
        let none = Quotas {
            simple_per_minute: 0,
            ..Quotas::default()
        };
        assert!(check_simple(&none, &[], 1000.0).is_some());
    }

    #[test]
    fn the_node_cap_names_the_node_and_the_cap() {
        let open = [("a".to_owned(), 3), ("b".to_owned(), 2)].into();
        let r = check_nodes(3, &open);
        assert_eq!(r.len(), 1);
        assert!(
            r[0].message.contains("node a runs 3 of 3"),
            "{}",
            r[0].message
        );
        assert_eq!(r[0].code, codes::NODE_FULL);
    }

    #[test]
    fn overrides_replace_single_defaults() {
        let q = Quotas::default().with(&Overrides {
            per_hour: Some(3),
            ..Overrides::default()
        });
        assert_eq!(q.per_hour, 3);
        assert_eq!(q.running, Quotas::default().running);
    }

    #[test]
    fn rules_are_conjunctions_times_hooks() {
        let body = json!({"type": "full", "system": "magic-transit", "time_limit": 5,
            "colo_name": "x", "destination_conf": "file:///tmp/x",
            "filter": "udp port 53 or tcp port 80",
            "points": ["pre-firewall", "post-firewall"]});
        let req = edgecap_model::validate_create(&body, &Default::default()).unwrap();
        // Two conjunctions (or more, as the expression's DNF has them) on three hooks.
        let conj = edgecap_filter::request::compose(&req.filter_v1_parsed, req.filter.as_deref())
            .unwrap()
            .rules
            .len() as u64;
        assert!(conj >= 2);
        assert_eq!(rules_per_node(&req, None), conj * 3);
        // Limited to an account's prefixes as the agent will: more rules than the filter's.
        let prefixes = ["198.18.1.0/24".to_owned(), "198.18.2.0/24".to_owned()];
        let composed =
            edgecap_filter::request::compose(&req.filter_v1_parsed, req.filter.as_deref()).unwrap();
        let bounded = edgecap_filter::Boundary::parse(&prefixes)
            .unwrap()
            .apply(&composed.rules)
            .unwrap()
            .len() as u64;
        assert!(bounded > conj, "{bounded} rules bounded, {conj} without");
        assert_eq!(rules_per_node(&req, Some(&prefixes)), bounded * 3);
    }
}
