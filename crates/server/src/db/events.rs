//! `events`, `event_nodes`, `event_firings` (migration 0014, issue 14): anomalies seen by an
//! account's triggers, their nodes, the captures they started or why none. Written by the
//! hub's writer (`hub/firings.rs`, which owns the rules), read by `GET /events`.

use std::collections::HashMap;

use serde_json::{Value, json};
use sqlx::{AnyConnection, Row};

use super::{Db, placeholders, to_i64, to_u64};
use crate::error::{Error, Result};

/// Takes the trigger's row lock (PostgreSQL) or the write lock (SQLite) for the rest of the
/// transaction, so firings of one trigger are joined to events and counted against its
/// budget one at a time, on every replica. False if there is no such trigger.
pub async fn lock_trigger(conn: &mut AnyConnection, trigger_id: &str) -> Result<bool> {
    let done = sqlx::query("UPDATE triggers SET created = created WHERE id = $1")
        .bind(trigger_id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// The event a firing of `trigger_id` for `key` whose run started at `started` joins: the
/// newest one of the same trigger and key that some node still holds (within `open_reach`
/// seconds of its last activity) or that was active at most `window` seconds before.
pub async fn joinable(
    conn: &mut AnyConnection,
    trigger_id: &str,
    key: &str,
    started: u64,
    window: u64,
    open_reach: u64,
) -> Result<Option<String>> {
    let row = sqlx::query(
        "SELECT e.id FROM events e
         WHERE e.trigger_id = $1 AND e.event_key = $2
           AND (e.last_at >= $3
                OR (e.last_at >= $4 AND EXISTS (SELECT 1 FROM event_nodes n
                                               WHERE n.event_id = e.id AND n.ended IS NULL)))
         ORDER BY e.started DESC, e.id DESC LIMIT 1",
    )
    .bind(trigger_id)
    .bind(key)
    .bind(to_i64(started.saturating_sub(window)))
    .bind(to_i64(started.saturating_sub(open_reach)))
    .fetch_optional(conn)
    .await?;
    row.map(|r| r.try_get::<String, _>("id"))
        .transpose()
        .map_err(Into::into)
}

/// A new event.
#[derive(Debug)]
pub struct NewEvent<'a> {
    pub id: &'a str,
    pub account_id: &'a str,
    pub trigger_id: &'a str,
    pub trigger_name: Option<&'a str>,
    pub key: &'a str,
    pub started: u64,
    pub at: u64,
    pub peak: f64,
    pub created: &'a str,
}

pub async fn insert(conn: &mut AnyConnection, e: &NewEvent<'_>) -> Result<()> {
    sqlx::query(
        "INSERT INTO events (id, account_id, trigger_id, trigger_name, event_key, started,
                             last_at, peak, created)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(e.id)
    .bind(e.account_id)
    .bind(e.trigger_id)
    .bind(e.trigger_name.map(str::to_owned))
    .bind(e.key)
    .bind(to_i64(e.started))
    .bind(to_i64(e.at))
    .bind(e.peak)
    .bind(e.created)
    .execute(conn)
    .await?;
    Ok(())
}

/// Widens an event by one node's run: its start, its last activity and its peak.
pub async fn widen(
    conn: &mut AnyConnection,
    id: &str,
    started: u64,
    at: u64,
    peak: f64,
) -> Result<()> {
    sqlx::query(
        "UPDATE events SET
             started = CASE WHEN started > $2 THEN $2 ELSE started END,
             last_at = CASE WHEN last_at < $3 THEN $3 ELSE last_at END,
             peak = CASE WHEN peak < $4 THEN $4 ELSE peak END
         WHERE id = $1",
    )
    .bind(id)
    .bind(to_i64(started))
    .bind(to_i64(at))
    .bind(peak)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records (or widens) a node's run in an event; a node firing again holds again.
pub async fn node_fired(
    conn: &mut AnyConnection,
    id: &str,
    node: &str,
    started: u64,
    peak: f64,
) -> Result<()> {
    let done = sqlx::query(
        "UPDATE event_nodes SET ended = NULL,
             started = CASE WHEN started > $3 THEN $3 ELSE started END,
             peak = CASE WHEN peak < $4 THEN $4 ELSE peak END
         WHERE event_id = $1 AND node = $2",
    )
    .bind(id)
    .bind(node)
    .bind(to_i64(started))
    .bind(peak)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 0 {
        sqlx::query(
            "INSERT INTO event_nodes (event_id, node, started, ended, peak)
             VALUES ($1, $2, $3, NULL, $4)",
        )
        .bind(id)
        .bind(node)
        .bind(to_i64(started))
        .bind(peak)
        .execute(conn)
        .await?;
    }
    Ok(())
}

/// One firing of an event: its capture, or why none.
pub async fn add_firing(
    conn: &mut AnyConnection,
    id: &str,
    trigger_id: &str,
    node: &str,
    at: u64,
    capture_id: Option<&str>,
    refused: Option<&str>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO event_firings (event_id, trigger_id, node, at, capture_id, refused)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(trigger_id)
    .bind(node)
    .bind(to_i64(at))
    .bind(capture_id.map(str::to_owned))
    .bind(refused.map(str::to_owned))
    .execute(conn)
    .await?;
    Ok(())
}

/// Captures the trigger's nodes started of their own local shares since `since` (server
/// clock at receipt): the recorded captures that no grant covers.
pub async fn local_captures_since(
    conn: &mut AnyConnection,
    trigger_id: &str,
    since: u64,
) -> Result<u64> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM event_firings f
         WHERE f.trigger_id = $1 AND f.at > $2 AND f.capture_id IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM trigger_grants g
                           WHERE g.trigger_id = f.trigger_id AND g.capture_id = f.capture_id)",
    )
    .bind(trigger_id)
    .bind(to_i64(since))
    .fetch_one(conn)
    .await?;
    Ok(to_u64(n))
}

/// Per (trigger, node): when (server clock at receipt) the node started each capture of its
/// own local share since `since`, the recorded captures no grant covers, at most `most` each
/// (the latest).
pub async fn local_captures_by_node(
    db: &Db,
    since: u64,
    most: usize,
) -> Result<HashMap<(String, String), Vec<u64>>> {
    let rows = sqlx::query(
        "SELECT f.trigger_id, f.node, f.at FROM event_firings f
         WHERE f.at > $1 AND f.capture_id IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM trigger_grants g
                           WHERE g.trigger_id = f.trigger_id AND g.capture_id = f.capture_id)
         ORDER BY f.at DESC",
    )
    .bind(to_i64(since))
    .fetch_all(&db.pool)
    .await?;
    let mut out: HashMap<(String, String), Vec<u64>> = HashMap::new();
    for r in &rows {
        let at: i64 = r.try_get("at")?;
        let times = out
            .entry((r.try_get("trigger_id")?, r.try_get("node")?))
            .or_default();
        if times.len() < most {
            times.push(to_u64(at));
        }
    }
    Ok(out)
}

/// Per (trigger, node): when (server clock at receipt) the node started each capture
/// recorded since `since`, with the bytes of its own share it held for it (the capture's byte
/// limit less the bytes the pool granted it; none: left out), at most `most` each (the
/// latest).
pub async fn local_bytes_by_node(
    db: &Db,
    since: u64,
    most: usize,
) -> Result<HashMap<(String, String), Vec<[u64; 2]>>> {
    let rows = sqlx::query(
        "SELECT f.trigger_id, f.node, f.at, p.byte_limit, g.bytes AS granted
         FROM event_firings f
         JOIN capture_nodes p ON p.capture_id = f.capture_id AND p.node = f.node
         LEFT JOIN trigger_byte_grants g
           ON g.trigger_id = f.trigger_id AND g.capture_id = f.capture_id
         WHERE f.at > $1 AND f.capture_id IS NOT NULL
         ORDER BY f.at DESC",
    )
    .bind(to_i64(since))
    .fetch_all(&db.pool)
    .await?;
    let mut out: HashMap<(String, String), Vec<[u64; 2]>> = HashMap::new();
    for r in &rows {
        let at: i64 = r.try_get("at")?;
        let limit: Option<i64> = r.try_get("byte_limit")?;
        let granted: Option<i64> = r.try_get("granted")?;
        let own = to_u64(limit.unwrap_or(0)).saturating_sub(to_u64(granted.unwrap_or(0)));
        if own == 0 {
            continue;
        }
        let held = out
            .entry((r.try_get("trigger_id")?, r.try_get("node")?))
            .or_default();
        if held.len() < most {
            held.push([to_u64(at), own]);
        }
    }
    Ok(out)
}

/// Captures granted from the trigger's pool since `since` (server clock).
pub async fn grants_since(conn: &mut AnyConnection, trigger_id: &str, since: u64) -> Result<u64> {
    let n: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM trigger_grants WHERE trigger_id = $1 AND at > $2")
            .bind(trigger_id)
            .bind(to_i64(since))
            .fetch_one(conn)
            .await?;
    Ok(to_u64(n))
}

/// The node a grant of `capture_id` went to, if the trigger granted it.
pub async fn granted_to(
    conn: &mut AnyConnection,
    trigger_id: &str,
    capture_id: &str,
) -> Result<Option<String>> {
    let node: Option<String> = sqlx::query_scalar(
        "SELECT node FROM trigger_grants WHERE trigger_id = $1 AND capture_id = $2",
    )
    .bind(trigger_id)
    .bind(capture_id)
    .fetch_optional(conn)
    .await?;
    Ok(node)
}

/// Records one capture granted from the trigger's pool, and forgets the trigger's grants
/// from before `forget_before`.
pub async fn grant(
    conn: &mut AnyConnection,
    trigger_id: &str,
    capture_id: &str,
    node: &str,
    at: u64,
    forget_before: u64,
) -> Result<()> {
    sqlx::query("DELETE FROM trigger_grants WHERE trigger_id = $1 AND at < $2")
        .bind(trigger_id)
        .bind(to_i64(forget_before))
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO trigger_grants (trigger_id, capture_id, node, at) VALUES ($1, $2, $3, $4)",
    )
    .bind(trigger_id)
    .bind(capture_id)
    .bind(node)
    .bind(to_i64(at))
    .execute(conn)
    .await?;
    Ok(())
}

/// The bytes the trigger's bytes pool granted after `since` (every replica's grants).
pub async fn byte_grants_since(
    conn: &mut AnyConnection,
    trigger_id: &str,
    since: u64,
) -> Result<u64> {
    let n: i64 = sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(bytes), 0) AS BIGINT) FROM trigger_byte_grants
         WHERE trigger_id = $1 AND at > $2",
    )
    .bind(trigger_id)
    .bind(to_i64(since))
    .fetch_one(conn)
    .await?;
    Ok(to_u64(n))
}

/// The node and bytes of the trigger's bytes grant to `capture_id`, if it made one.
pub async fn bytes_granted_to(
    conn: &mut AnyConnection,
    trigger_id: &str,
    capture_id: &str,
) -> Result<Option<(String, u64)>> {
    let row = sqlx::query(
        "SELECT node, bytes FROM trigger_byte_grants WHERE trigger_id = $1 AND capture_id = $2",
    )
    .bind(trigger_id)
    .bind(capture_id)
    .fetch_optional(conn)
    .await?;
    match row {
        Some(r) => Ok(Some((r.try_get("node")?, to_u64(r.try_get("bytes")?)))),
        None => Ok(None),
    }
}

/// Records `bytes` granted from the trigger's bytes pool to one capture, and forgets the
/// trigger's bytes grants from before `forget_before`.
pub async fn grant_bytes(
    conn: &mut AnyConnection,
    trigger_id: &str,
    capture_id: &str,
    node: &str,
    bytes: u64,
    at: u64,
    forget_before: u64,
) -> Result<()> {
    sqlx::query("DELETE FROM trigger_byte_grants WHERE trigger_id = $1 AND at < $2")
        .bind(trigger_id)
        .bind(to_i64(forget_before))
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO trigger_byte_grants (trigger_id, capture_id, node, at, bytes)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(trigger_id)
    .bind(capture_id)
    .bind(node)
    .bind(to_i64(at))
    .bind(to_i64(bytes))
    .execute(conn)
    .await?;
    Ok(())
}

/// Moves a trigger's grants (captures and bytes) `secs` into the past, as if that long had
/// passed since (tests: a day is not waited for).
pub async fn backdate_grants(db: &Db, trigger_id: &str, secs: u64) -> Result<()> {
    let mut tx = db.pool.begin().await?;
    for table in ["trigger_grants", "trigger_byte_grants"] {
        let sql = format!("UPDATE {table} SET at = at - $2 WHERE trigger_id = $1");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(trigger_id)
            .bind(to_i64(secs))
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Whether a capture id is taken (by any capture of any account).
pub async fn capture_exists(conn: &mut AnyConnection, capture_id: &str) -> Result<bool> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM captures WHERE id = $1")
        .bind(capture_id)
        .fetch_one(conn)
        .await?;
    Ok(n > 0)
}

/// A node's run stopped holding: the newest event of the trigger and key that the node is
/// part of records its end and peak. False if there is none.
pub async fn node_ended(
    conn: &mut AnyConnection,
    trigger_id: &str,
    key: &str,
    node: &str,
    ended: u64,
    peak: f64,
) -> Result<bool> {
    let row = sqlx::query(
        "SELECT e.id, e.started FROM events e JOIN event_nodes n ON n.event_id = e.id
         WHERE e.trigger_id = $1 AND e.event_key = $2 AND n.node = $3
         ORDER BY e.started DESC, e.id DESC LIMIT 1",
    )
    .bind(trigger_id)
    .bind(key)
    .bind(node)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(false) };
    let id: String = row.try_get("id")?;
    let started: i64 = row.try_get("started")?;
    sqlx::query(
        "UPDATE event_nodes SET ended = $3,
             peak = CASE WHEN peak < $4 THEN $4 ELSE peak END
         WHERE event_id = $1 AND node = $2",
    )
    .bind(&id)
    .bind(node)
    .bind(to_i64(ended))
    .bind(peak)
    .execute(&mut *conn)
    .await?;
    // The event's own start widens nothing: only its last activity and peak move.
    widen(conn, &id, to_u64(started), ended, peak).await?;
    Ok(true)
}

/// Stores the signature of the event whose firing on `node` started `capture_id`; false if
/// there is none.
pub async fn set_signature(
    conn: &mut AnyConnection,
    trigger_id: &str,
    node: &str,
    capture_id: &str,
    signature: &str,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE events SET signature = $4 WHERE id IN (
             SELECT event_id FROM event_firings
             WHERE trigger_id = $1 AND node = $2 AND capture_id = $3)",
    )
    .bind(trigger_id)
    .bind(node)
    .bind(capture_id)
    .bind(signature)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Events deleted per statement by [`prune`] (each id a bound parameter).
const PRUNE_CHUNK: usize = 500;

/// Deletes the account's events that started before `before` and those beyond its `keep`
/// newest, with their nodes and firings (the captures stay: they are the account's). Which
/// events go is decided once, by one query, and the same ids are deleted from each table.
pub async fn prune(
    conn: &mut AnyConnection,
    account_id: &str,
    before: u64,
    keep: u64,
) -> Result<()> {
    let doomed: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM events WHERE account_id = $1 AND (started < $2 OR id NOT IN (
             SELECT id FROM events WHERE account_id = $1
             ORDER BY started DESC, id DESC LIMIT $3))",
    )
    .bind(account_id)
    .bind(to_i64(before))
    .bind(to_i64(keep))
    .fetch_all(&mut *conn)
    .await?;
    for ids in doomed.chunks(PRUNE_CHUNK) {
        for (table, column) in [
            ("event_nodes", "event_id"),
            ("event_firings", "event_id"),
            ("events", "id"),
        ] {
            let sql = format!(
                "DELETE FROM {table} WHERE {column} IN ({})",
                placeholders(1, ids.len())
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for id in ids {
                q = q.bind(id.as_str());
            }
            q.execute(&mut *conn).await?;
        }
    }
    Ok(())
}

/// What `GET /events` filters by.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Events that started at or after (unix seconds).
    pub since: Option<u64>,
    /// Events that started before.
    pub until: Option<u64>,
    pub trigger_id: Option<String>,
}

fn rfc(t: i64) -> String {
    edgecap_model::ids::rfc3339(t as f64)
}

/// A page of the account's events, newest first, and how many match in all; read in one
/// [`Db::begin_read`] transaction, so the count, the page and each event's nodes and firings
/// are of one moment.
pub async fn list(
    db: &Db,
    account_id: &str,
    f: &Filter,
    offset: u64,
    limit: u64,
) -> Result<(Vec<Value>, u64)> {
    let mut cond = String::from("account_id = $1");
    let mut n = 1;
    let mut binds: Vec<Bind> = vec![Bind::Text(account_id.to_owned())];
    if let Some(s) = f.since {
        n += 1;
        cond.push_str(&format!(" AND started >= ${n}"));
        binds.push(Bind::Int(to_i64(s)));
    }
    if let Some(u) = f.until {
        n += 1;
        cond.push_str(&format!(" AND started < ${n}"));
        binds.push(Bind::Int(to_i64(u)));
    }
    if let Some(t) = &f.trigger_id {
        n += 1;
        cond.push_str(&format!(" AND trigger_id = ${n}"));
        binds.push(Bind::Text(t.clone()));
    }
    let count_sql = format!("SELECT COUNT(*) FROM events WHERE {cond}");
    let mut q = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(count_sql));
    for b in &binds {
        q = match b {
            Bind::Text(s) => q.bind(s.clone()),
            Bind::Int(i) => q.bind(*i),
        };
    }
    let mut tx = db.begin_read().await?;
    let total = q.fetch_one(&mut *tx).await?;
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE {cond}
         ORDER BY started DESC, id DESC LIMIT ${} OFFSET ${}",
        n + 1,
        n + 2
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for b in &binds {
        q = match b {
            Bind::Text(s) => q.bind(s.clone()),
            Bind::Int(i) => q.bind(*i),
        };
    }
    let rows = q
        .bind(to_i64(limit))
        .bind(to_i64(offset))
        .fetch_all(&mut *tx)
        .await?;
    let events = views(&mut tx, &rows).await?;
    tx.commit().await?;
    Ok((events, to_u64(total)))
}

enum Bind {
    Text(String),
    Int(i64),
}

const EVENT_COLUMNS: &str = "id, trigger_id, trigger_name, event_key, started, last_at, peak, \
                             signature, created";

/// One of the account's events (None: none, or another account's), read in one
/// [`Db::begin_read`] transaction with its nodes and firings.
pub async fn get(db: &Db, account_id: &str, id: &str) -> Result<Option<Value>> {
    let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE id = $1 AND account_id = $2");
    let mut tx = db.begin_read().await?;
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(account_id)
        .fetch_all(&mut *tx)
        .await?;
    let event = views(&mut tx, &rows).await?.pop();
    tx.commit().await?;
    Ok(event)
}

/// The events of `rows` as the API shows them, with their nodes, captures (status and file
/// from the capture's part) and refusals, read on `conn` (the caller's read transaction).
async fn views(conn: &mut AnyConnection, rows: &[sqlx::any::AnyRow]) -> Result<Vec<Value>> {
    if rows.is_empty() {
        return Ok(vec![]);
    }
    let ids: Vec<String> = rows
        .iter()
        .map(|r| r.try_get("id"))
        .collect::<Result<_, _>>()?;
    let mut nodes: std::collections::HashMap<String, Vec<(Value, Option<i64>)>> =
        Default::default();
    let sql = format!(
        "SELECT event_id, node, started, ended, peak FROM event_nodes
         WHERE event_id IN ({}) ORDER BY event_id, node",
        placeholders(1, ids.len())
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for id in &ids {
        q = q.bind(id.clone());
    }
    for r in q.fetch_all(&mut *conn).await? {
        let ended: Option<i64> = r.try_get("ended")?;
        let v = json!({
            "node": r.try_get::<String, _>("node")?,
            "started": rfc(r.try_get("started")?),
            "ended": ended.map(rfc),
            "peak": r.try_get::<f64, _>("peak")?,
        });
        nodes
            .entry(r.try_get("event_id")?)
            .or_default()
            .push((v, ended));
    }
    let mut captures: std::collections::HashMap<String, Vec<Value>> = Default::default();
    let mut refused: std::collections::HashMap<String, Vec<Value>> = Default::default();
    let sql = format!(
        "SELECT f.event_id, f.node, f.at, f.capture_id, f.refused, p.status, p.packets, p.bytes,
                p.file, p.error_message
         FROM event_firings f
         LEFT JOIN capture_nodes p ON p.capture_id = f.capture_id AND p.node = f.node
         WHERE f.event_id IN ({}) ORDER BY f.event_id, f.at, f.node",
        placeholders(1, ids.len())
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for id in &ids {
        q = q.bind(id.clone());
    }
    for r in q.fetch_all(&mut *conn).await? {
        let event: String = r.try_get("event_id")?;
        let at = rfc(r.try_get("at")?);
        let node: String = r.try_get("node")?;
        match r.try_get::<Option<String>, _>("capture_id")? {
            Some(capture) => captures.entry(event).or_default().push(json!({
                "id": capture,
                "node": node,
                "at": at,
                "status": r.try_get::<Option<String>, _>("status")?,
                "packets": r.try_get::<Option<i64>, _>("packets")?.map(to_u64),
                "bytes": r.try_get::<Option<i64>, _>("bytes")?.map(to_u64),
                "file": r.try_get::<Option<String>, _>("file")?,
                "error_message": r.try_get::<Option<String>, _>("error_message")?,
            })),
            None => refused.entry(event).or_default().push(json!({
                "node": node,
                "at": at,
                "reason": r.try_get::<Option<String>, _>("refused")?,
            })),
        }
    }
    rows.iter()
        .map(|r| {
            let id: String = r.try_get("id")?;
            let key: String = r.try_get("event_key")?;
            let its_nodes = nodes.remove(&id).unwrap_or_default();
            // The event ends when every node's run has ended: at the last of them.
            let ended = if its_nodes.is_empty() || its_nodes.iter().any(|(_, e)| e.is_none()) {
                None
            } else {
                its_nodes.iter().filter_map(|(_, e)| *e).max().map(rfc)
            };
            let signature = match r.try_get::<Option<String>, _>("signature")? {
                Some(s) => Some(
                    serde_json::from_str::<Value>(&s).map_err(|e| Error::Corrupt {
                        what: format!("event {id} signature"),
                        reason: e.to_string(),
                    })?,
                ),
                None => None,
            };
            let refusals = refused.remove(&id).unwrap_or_default();
            Ok(json!({
                "id": id,
                "trigger_id": r.try_get::<String, _>("trigger_id")?,
                "trigger_name": r.try_get::<Option<String>, _>("trigger_name")?,
                "key": if key.is_empty() { Value::Null } else { Value::String(key) },
                "started": rfc(r.try_get("started")?),
                "ended": ended,
                "peak": r.try_get::<f64, _>("peak")?,
                "nodes": its_nodes.into_iter().map(|(v, _)| v).collect::<Vec<_>>(),
                "captures": captures.remove(&id).unwrap_or_default(),
                "refused": !refusals.is_empty(),
                "refusals": refusals,
                "signature": signature,
                "created": r.try_get::<String, _>("created")?,
            }))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database of its own in a temporary directory, removed by the caller.
    async fn scratch(what: &str) -> (Db, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "edgecap-events-{what}-{}-{}",
            std::process::id(),
            crate::secret::new_id()
        ));
        let db = Db::connect(&format!("sqlite://{}/e.db", dir.display()))
            .await
            .unwrap();
        (db, dir)
    }

    fn event<'a>(id: &'a str, account_id: &'a str, started: u64) -> NewEvent<'a> {
        NewEvent {
            id,
            account_id,
            trigger_id: "t",
            trigger_name: None,
            key: "",
            started,
            at: started,
            peak: 1.0,
            created: "x",
        }
    }

    /// A node's end moves its event's last activity and peak up, never its start, and never
    /// back down.
    #[tokio::test]
    async fn a_nodes_end_widens_its_event_forward_only() {
        let (db, dir) = scratch("ended").await;
        let limits = edgecap_model::AccountLimits::default();
        let a = crate::db::accounts::create(&db, "a", &limits)
            .await
            .unwrap();
        let id = crate::secret::new_id();
        let mut tx = db.pool.begin().await.unwrap();
        insert(&mut tx, &event(&id, &a.id, 1000)).await.unwrap();
        node_fired(&mut tx, &id, "edge0", 1000, 1.0).await.unwrap();
        assert!(
            !node_ended(&mut tx, "t", "", "edge9", 1050, 5.0)
                .await
                .unwrap()
        );
        assert!(
            node_ended(&mut tx, "t", "", "edge0", 1050, 5.0)
                .await
                .unwrap()
        );
        assert!(
            node_ended(&mut tx, "t", "", "edge0", 1040, 2.0)
                .await
                .unwrap()
        );
        tx.commit().await.unwrap();
        let row: (i64, i64, f64) =
            sqlx::query_as("SELECT started, last_at, peak FROM events WHERE id = $1")
                .bind(&id)
                .fetch_one(&db.pool)
                .await
                .unwrap();
        assert_eq!(row, (1000, 1050, 5.0));
        let e = get(&db, &a.id, &id).await.unwrap().unwrap();
        assert_eq!(e["nodes"][0]["peak"], 5.0);
        assert_eq!(e["ended"], rfc(1040), "the node's run ended last at 1040");
        db.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Retention: events older than the cut-off and beyond the newest `keep` go, with their
    /// nodes and firings; another account's stay; more than one statement's worth of ids
    /// goes too.
    #[tokio::test]
    async fn prune_keeps_the_newest_within_the_retention() {
        let (db, dir) = scratch("prune").await;
        let limits = edgecap_model::AccountLimits::default();
        let a = crate::db::accounts::create(&db, "a", &limits)
            .await
            .unwrap();
        let b = crate::db::accounts::create(&db, "b", &limits)
            .await
            .unwrap();
        let c = crate::db::accounts::create(&db, "c", &limits)
            .await
            .unwrap();
        let mut tx = db.pool.begin().await.unwrap();
        let many = PRUNE_CHUNK as u64 + 2;
        for (account, n) in [(&a.id, 6u64), (&b.id, 2), (&c.id, many)] {
            for i in 0..n {
                let id = crate::secret::new_id();
                insert(&mut tx, &event(&id, account, 1000 + i))
                    .await
                    .unwrap();
                node_fired(&mut tx, &id, "edge0", 1000 + i, 1.0)
                    .await
                    .unwrap();
                add_firing(&mut tx, &id, "t", "edge0", 1000 + i, None, Some("r"))
                    .await
                    .unwrap();
            }
        }
        // Started before 1001: gone; of the rest, the 3 newest stay.
        prune(&mut tx, &a.id, 1001, 3).await.unwrap();
        // Only the newest stays.
        prune(&mut tx, &c.id, 0, 1).await.unwrap();
        tx.commit().await.unwrap();
        let started = |account: String| {
            let db = db.clone();
            async move {
                sqlx::query_scalar::<_, i64>(
                    "SELECT started FROM events WHERE account_id = $1 ORDER BY started",
                )
                .bind(account)
                .fetch_all(&db.pool)
                .await
                .unwrap()
            }
        };
        assert_eq!(started(a.id.clone()).await, [1003, 1004, 1005]);
        assert_eq!(started(c.id.clone()).await, [1000 + many as i64 - 1]);
        let (_, total) = list(&db, &b.id, &Filter::default(), 0, 10).await.unwrap();
        assert_eq!(total, 2);
        for table in ["event_nodes", "event_firings"] {
            assert_eq!(
                super::super::count_rows(&db, table).await.unwrap(),
                6,
                "{table}"
            );
        }
        db.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}
