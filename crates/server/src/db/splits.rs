//! Split epochs and what each node heard of them (migrations 0017 and 0019; the rules are
//! hub/splits.rs). Writes that decide something (a new epoch, a settling) run under the
//! trigger's row lock, so replicas agree; what nodes heard is written with upserts that only
//! move forward.

use std::collections::{BTreeMap, HashMap};

use sqlx::{AnyConnection, Row};

use super::{Db, to_i64, to_u64};
use crate::error::Result;
use crate::hub::splits::{Epoch, Heard, Kind, Shares, Split};

/// Every trigger's epochs, in `seq` order.
pub type Epochs = HashMap<String, Vec<Epoch>>;
/// Every trigger's nodes and what they heard.
pub type HeardBy = HashMap<String, BTreeMap<String, Heard>>;

fn epoch_of(r: &sqlx::any::AnyRow) -> Result<(String, Epoch)> {
    let shares: String = r.try_get("shares")?;
    let shares: Split = serde_json::from_str(&shares).unwrap_or_default();
    // NULL before migration 0019: no bytes share counts in that epoch.
    let bytes: Option<String> = r.try_get("bytes")?;
    let bytes: Split = bytes
        .and_then(|b| serde_json::from_str(&b).ok())
        .unwrap_or_default();
    let settled: Option<i64> = r.try_get("settled")?;
    let bytes_settled: Option<i64> = r.try_get("bytes_settled")?;
    Ok((
        r.try_get("trigger_id")?,
        Epoch {
            seq: to_u64(r.try_get("seq")?),
            created: to_u64(r.try_get("created")?),
            shares,
            bytes,
            settled: settled.map(to_u64),
            bytes_settled: bytes_settled.map(to_u64),
        },
    ))
}

fn heard_of(r: &sqlx::any::AnyRow) -> Result<(String, String, Heard)> {
    let gone: Option<i64> = r.try_get("gone")?;
    Ok((
        r.try_get("trigger_id")?,
        r.try_get("node")?,
        Heard {
            seq: to_u64(r.try_get("seq")?),
            at: to_u64(r.try_get("at")?),
            gone: gone.map(to_u64),
        },
    ))
}

async fn epochs_of(conn: &mut AnyConnection, trigger_id: Option<&str>) -> Result<Epochs> {
    let rows = sqlx::query(
        "SELECT trigger_id, seq, created, shares, settled, bytes, bytes_settled FROM trigger_epochs
         WHERE $1 IS NULL OR trigger_id = $1 ORDER BY trigger_id, seq",
    )
    .bind(trigger_id)
    .fetch_all(conn)
    .await?;
    let mut out: Epochs = HashMap::new();
    for r in &rows {
        let (t, e) = epoch_of(r)?;
        out.entry(t).or_default().push(e);
    }
    Ok(out)
}

async fn heard_of_all(conn: &mut AnyConnection, trigger_id: Option<&str>) -> Result<HeardBy> {
    let rows = sqlx::query(
        "SELECT trigger_id, node, seq, at, gone FROM trigger_heard
         WHERE $1 IS NULL OR trigger_id = $1",
    )
    .bind(trigger_id)
    .fetch_all(conn)
    .await?;
    let mut out: HeardBy = HashMap::new();
    for r in &rows {
        let (t, n, h) = heard_of(r)?;
        out.entry(t).or_default().insert(n, h);
    }
    Ok(out)
}

/// Every trigger's epochs and what its nodes heard.
pub async fn load(db: &Db) -> Result<(Epochs, HeardBy)> {
    let mut conn = db.pool.acquire().await?;
    let epochs = epochs_of(&mut conn, None).await?;
    let heard = heard_of_all(&mut conn, None).await?;
    Ok((epochs, heard))
}

/// Records `split` (both local halves) as the trigger's next epoch if its latest is still
/// `latest` (None: it has none, and this first one is settled at once for both: no node held
/// a share of it before). False when the trigger is gone or another replica recorded one
/// first (the next refresh looks again).
pub async fn record(
    db: &Db,
    trigger_id: &str,
    latest: Option<u64>,
    split: &Shares,
    now: u64,
) -> Result<bool> {
    let mut tx = db.pool.begin().await?;
    if !super::events::lock_trigger(&mut tx, trigger_id).await? {
        tx.rollback().await?;
        return Ok(false);
    }
    let found: Option<i64> =
        sqlx::query_scalar("SELECT MAX(seq) FROM trigger_epochs WHERE trigger_id = $1")
            .bind(trigger_id)
            .fetch_one(&mut *tx)
            .await?;
    if found.map(to_u64) != latest {
        tx.rollback().await?;
        return Ok(false);
    }
    let seq = latest.map_or(1, |s| s + 1);
    let shares = serde_json::to_string(&split.captures).unwrap_or_else(|_| "{}".into());
    let bytes = serde_json::to_string(&split.bytes).unwrap_or_else(|_| "{}".into());
    sqlx::query(
        "INSERT INTO trigger_epochs (trigger_id, seq, created, shares, settled, bytes, bytes_settled)
         VALUES ($1, $2, $3, $4, $5, $6, $5)",
    )
    .bind(trigger_id)
    .bind(to_i64(seq))
    .bind(to_i64(now))
    .bind(shares)
    .bind(latest.is_none().then_some(to_i64(now)))
    .bind(bytes)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// Settles the trigger's latest epoch for `kind` if it settles at `now` (checked again under
/// the trigger's lock, on what every replica wrote) and deletes the epochs neither kind needs
/// any more ([`crate::hub::splits::kept_from`]). True if it settled.
pub async fn settle(db: &Db, trigger_id: &str, kind: Kind, now: u64) -> Result<bool> {
    let mut tx = db.pool.begin().await?;
    if !super::events::lock_trigger(&mut tx, trigger_id).await? {
        tx.rollback().await?;
        return Ok(false);
    }
    let epochs = epochs_of(&mut tx, Some(trigger_id))
        .await?
        .remove(trigger_id)
        .unwrap_or_default();
    let heard = heard_of_all(&mut tx, Some(trigger_id))
        .await?
        .remove(trigger_id)
        .unwrap_or_default();
    let Some(seq) = crate::hub::splits::settles(&epochs, &heard, now, kind) else {
        tx.rollback().await?;
        return Ok(false);
    };
    let sql = match kind {
        Kind::Captures => {
            "UPDATE trigger_epochs SET settled = $3
             WHERE trigger_id = $1 AND seq = $2 AND settled IS NULL"
        }
        Kind::Bytes => {
            "UPDATE trigger_epochs SET bytes_settled = $3
             WHERE trigger_id = $1 AND seq = $2 AND bytes_settled IS NULL"
        }
    };
    sqlx::query(sql)
        .bind(trigger_id)
        .bind(to_i64(seq))
        .bind(to_i64(now))
        .execute(&mut *tx)
        .await?;
    let mut after = epochs;
    if let Some(e) = after.iter_mut().find(|e| e.seq == seq) {
        match kind {
            Kind::Captures => e.settled = Some(now),
            Kind::Bytes => e.bytes_settled = Some(now),
        }
    }
    if let Some(from) = crate::hub::splits::kept_from(&after) {
        sqlx::query("DELETE FROM trigger_epochs WHERE trigger_id = $1 AND seq < $2")
            .bind(trigger_id)
            .bind(to_i64(from))
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(true)
}

/// A node heard its effective share of a trigger as of epoch `seq` at `at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hearing {
    pub trigger_id: String,
    pub node: String,
    pub seq: u64,
    pub at: u64,
    /// It was sent something (a new connection, or a changed share): the time moves to `at`
    /// even for the same epoch. Otherwise only a later epoch is recorded (it holds what it
    /// was sent before, unchanged).
    pub sent: bool,
}

/// Records what nodes heard, in one transaction; never moves a node back to an older epoch.
pub async fn hear(db: &Db, rows: &[Hearing]) -> Result<()> {
    let mut tx = db.pool.begin().await?;
    for h in rows {
        let sql = if h.sent {
            "INSERT INTO trigger_heard (trigger_id, node, seq, at, gone) VALUES ($1, $2, $3, $4, NULL)
             ON CONFLICT (trigger_id, node) DO UPDATE SET seq = $3, at = $4, gone = NULL
             WHERE trigger_heard.seq <= $3"
        } else {
            "INSERT INTO trigger_heard (trigger_id, node, seq, at, gone) VALUES ($1, $2, $3, $4, NULL)
             ON CONFLICT (trigger_id, node) DO UPDATE SET seq = $3, at = $4, gone = NULL
             WHERE trigger_heard.seq < $3"
        };
        sqlx::query(sql)
            .bind(&h.trigger_id)
            .bind(&h.node)
            .bind(to_i64(h.seq))
            .bind(to_i64(h.at))
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// `node` was forgotten at `at` (its identity gone, so it cannot connect again with it): it
/// counts as having heard every split of every trigger then.
pub async fn forgotten(conn: &mut AnyConnection, node: &str, at: u64) -> Result<()> {
    sqlx::query(
        "INSERT INTO trigger_heard (trigger_id, node, seq, at, gone)
         SELECT id, $1, 0, $2, $2 FROM triggers WHERE true
         ON CONFLICT (trigger_id, node) DO UPDATE SET gone = $2",
    )
    .bind(node)
    .bind(to_i64(at))
    .execute(conn)
    .await?;
    Ok(())
}

/// Deletes a trigger's epochs and what its nodes heard (the trigger is deleted).
pub async fn delete(conn: &mut AnyConnection, trigger_id: &str) -> Result<()> {
    sqlx::query("DELETE FROM trigger_epochs WHERE trigger_id = $1")
        .bind(trigger_id)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM trigger_heard WHERE trigger_id = $1")
        .bind(trigger_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Deletes the rows of triggers that no longer exist (an account deleted with its triggers).
pub async fn prune(db: &Db) -> Result<()> {
    let mut tx = db.pool.begin().await?;
    sqlx::query("DELETE FROM trigger_epochs WHERE trigger_id NOT IN (SELECT id FROM triggers)")
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM trigger_heard WHERE trigger_id NOT IN (SELECT id FROM triggers)")
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Moves a trigger's split times `secs` into the past, as if that long had passed since
/// (tests: an hour is not waited for).
pub async fn backdate(db: &Db, trigger_id: &str, secs: u64) -> Result<()> {
    let mut tx = db.pool.begin().await?;
    sqlx::query(
        "UPDATE trigger_epochs SET created = created - $2, settled = settled - $2,
         bytes_settled = bytes_settled - $2 WHERE trigger_id = $1",
    )
    .bind(trigger_id)
    .bind(to_i64(secs))
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE trigger_heard SET at = at - $2, gone = gone - $2 WHERE trigger_id = $1")
        .bind(trigger_id)
        .bind(to_i64(secs))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}
