//! `replicas`, `node_sessions` and `claims` (migration 6): what several server processes on
//! one PostgreSQL share so they behave as one. A replica's lease is renewed every second; a
//! node's session lives as long as the lease of the replica that holds it; a claim gives one
//! replica a piece of work (the timers' sweep, a capture's merge) until its lease passes.

use std::collections::BTreeMap;

use sqlx::{AnyConnection, Row};

use super::Db;
use super::nodes::NodeInfo;
use crate::error::{Error, Result};

/// Records this replica's lease (inserting its row if it is new, or was pruned as dead while
/// this process could not reach the database).
pub async fn renew(db: &Db, id: &str, now: &str, lease_until: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO replicas (id, started, heartbeat, lease_until) VALUES ($1, $2, $2, $3)
         ON CONFLICT (id) DO UPDATE SET heartbeat = $2, lease_until = $3",
    )
    .bind(id)
    .bind(now)
    .bind(lease_until)
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// A replica that stops cleanly: its row, its sessions and its claims go (its agents
/// reconnect elsewhere; another replica takes its work over at once).
pub async fn retire(db: &Db, id: &str) -> Result<()> {
    let mut tx = db.pool.begin().await?;
    sqlx::query("DELETE FROM claims WHERE replica_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM node_sessions WHERE replica_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM replicas WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// A node's session is now on `replica` (it may have been on another one, now dead or not yet
/// aware the node left it).
pub async fn session_open(
    conn: &mut AnyConnection,
    replica: &str,
    conn_id: u64,
    node: &NodeInfo,
    at: &str,
) -> Result<()> {
    let labels = serde_json::to_string(&node.labels).unwrap_or_else(|_| "{}".into());
    let points = serde_json::to_string(&node.points).unwrap_or_else(|_| "[]".into());
    let features = serde_json::to_string(&node.features).unwrap_or_else(|_| "[]".into());
    sqlx::query(
        "INSERT INTO node_sessions (node, replica_id, conn, labels, points, version, features,
             connected, last_seen)
         VALUES ($1, $2, $3, $4, $5, $6, $8, $7, $7)
         ON CONFLICT (node) DO UPDATE SET replica_id = $2, conn = $3, labels = $4, points = $5,
             version = $6, features = $8, connected = $7, last_seen = $7",
    )
    .bind(&node.name)
    .bind(replica)
    .bind(super::to_i64(conn_id))
    .bind(labels)
    .bind(points)
    .bind(&node.version)
    .bind(at)
    .bind(features)
    .execute(conn)
    .await?;
    Ok(())
}

/// The session `conn_id` of `replica` ended; a newer session of the node (here or on another
/// replica) stays.
pub async fn session_close(
    conn: &mut AnyConnection,
    replica: &str,
    conn_id: u64,
    node: &str,
) -> Result<()> {
    sqlx::query("DELETE FROM node_sessions WHERE node = $1 AND replica_id = $2 AND conn = $3")
        .bind(node)
        .bind(replica)
        .bind(super::to_i64(conn_id))
        .execute(conn)
        .await?;
    Ok(())
}

/// A node connected to some live replica.
#[derive(Debug, Clone)]
pub struct RemoteSession {
    pub info: NodeInfo,
    pub replica: String,
    /// The replica's last heartbeat: it vouches for the session until then.
    pub heartbeat: String,
}

/// Every session held by a live replica (lease after `now`).
pub async fn live_sessions(db: &Db, now: &str) -> Result<Vec<RemoteSession>> {
    let rows = sqlx::query(
        "SELECT s.node, s.replica_id, s.labels, s.points, s.version, s.features, r.heartbeat
         FROM node_sessions s JOIN replicas r ON r.id = s.replica_id
         WHERE r.lease_until > $1",
    )
    .bind(now)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            let name: String = r.try_get("node")?;
            let corrupt = |e: serde_json::Error| Error::Corrupt {
                what: format!("node session {name}"),
                reason: e.to_string(),
            };
            let labels: String = r.try_get("labels")?;
            let points: String = r.try_get("points")?;
            let features: String = r.try_get("features")?;
            let labels: BTreeMap<String, String> =
                serde_json::from_str(&labels).map_err(corrupt)?;
            Ok(RemoteSession {
                info: NodeInfo {
                    labels,
                    points: serde_json::from_str(&points).map_err(corrupt)?,
                    version: r.try_get("version")?,
                    features: serde_json::from_str(&features).map_err(corrupt)?,
                    name,
                },
                replica: r.try_get("replica_id")?,
                heartbeat: r.try_get("heartbeat")?,
            })
        })
        .collect()
}

/// Takes (or keeps) the claim `name` for `replica` until `lease_until`; true if it holds it.
/// Free claims, expired ones and its own are taken; one held by another replica is not.
pub async fn claim(
    db: &Db,
    name: &str,
    replica: &str,
    now: &str,
    lease_until: &str,
) -> Result<bool> {
    let done = sqlx::query(
        "INSERT INTO claims (name, replica_id, lease_until) VALUES ($1, $2, $4)
         ON CONFLICT (name) DO UPDATE SET replica_id = $2, lease_until = $4
         WHERE claims.replica_id = $2 OR claims.lease_until < $3",
    )
    .bind(name)
    .bind(replica)
    .bind(now)
    .bind(lease_until)
    .execute(&db.pool)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Takes the claim `name` only if it is free or expired (not even from this replica: a
/// second take of work already under way here is refused); true if taken.
pub async fn take(
    db: &Db,
    name: &str,
    replica: &str,
    now: &str,
    lease_until: &str,
) -> Result<bool> {
    let done = sqlx::query(
        "INSERT INTO claims (name, replica_id, lease_until) VALUES ($1, $2, $4)
         ON CONFLICT (name) DO UPDATE SET replica_id = $2, lease_until = $4
         WHERE claims.lease_until < $3",
    )
    .bind(name)
    .bind(replica)
    .bind(now)
    .bind(lease_until)
    .execute(&db.pool)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Gives a claim up (its work is done).
pub async fn release(db: &Db, name: &str, replica: &str) -> Result<()> {
    sqlx::query("DELETE FROM claims WHERE name = $1 AND replica_id = $2")
        .bind(name)
        .bind(replica)
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// A node with unfinished parts, as the sweep of lost nodes sees it.
#[derive(Debug, Clone)]
pub struct OpenNode {
    pub node: String,
    /// When the node was last connected or left (the `nodes` row).
    pub last_seen: Option<String>,
    /// The replica of its session row, and that replica's lease, if it has one.
    pub session: Option<(String, String)>,
}

/// Every node with unfinished parts of open captures, with its session (if any).
pub async fn open_nodes(db: &Db) -> Result<Vec<OpenNode>> {
    let rows = sqlx::query(
        "SELECT o.node, n.last_seen, s.replica_id, r.lease_until
         FROM (SELECT DISTINCT p.node FROM capture_nodes p
               JOIN captures c ON c.id = p.capture_id
               WHERE p.status IN ('pending', 'running')
                 AND c.status IN ('pending', 'running')) o
         LEFT JOIN nodes n ON n.name = o.node
         LEFT JOIN node_sessions s ON s.node = o.node
         LEFT JOIN replicas r ON r.id = s.replica_id",
    )
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            let replica: Option<String> = r.try_get("replica_id")?;
            let lease: Option<String> = r.try_get("lease_until")?;
            Ok(OpenNode {
                node: r.try_get("node")?,
                last_seen: r.try_get("last_seen")?,
                session: replica.map(|rep| (rep, lease.unwrap_or_default())),
            })
        })
        .collect()
}

/// Forgets replicas whose lease passed before `before`, their sessions, and claims that
/// expired before it.
pub async fn prune(db: &Db, before: &str) -> Result<()> {
    let mut tx = db.pool.begin().await?;
    sqlx::query(
        "DELETE FROM node_sessions WHERE replica_id IN
             (SELECT id FROM replicas WHERE lease_until < $1)",
    )
    .bind(before)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM replicas WHERE lease_until < $1")
        .bind(before)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM claims WHERE lease_until < $1")
        .bind(before)
        .execute(&mut *tx)
        .await?;
    // Look-back relays whose asker never read them (it died).
    sqlx::query("DELETE FROM lookback_relays WHERE expires < $1")
        .bind(before)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// The ids of every live replica (lease after `now`), this one included.
pub async fn live(db: &Db, now: &str) -> Result<Vec<String>> {
    Ok(
        sqlx::query_scalar("SELECT id FROM replicas WHERE lease_until > $1 ORDER BY id")
            .bind(now)
            .fetch_all(&db.pool)
            .await?,
    )
}

/// Wakes `replica` (its `LISTEN` channel) with `payload`.
pub async fn notify(db: &Db, replica: &str, payload: &str) -> Result<()> {
    // pg_notify returns void, which the `any` driver does not decode: count its one row.
    let _: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM (SELECT pg_notify($1, $2)) AS n")
        .bind(channel(replica))
        .bind(payload)
        .fetch_one(&db.pool)
        .await?;
    Ok(())
}

/// The `LISTEN` channel of a replica (its id is 32 hex digits: a valid identifier with the
/// prefix).
pub fn channel(replica: &str) -> String {
    format!("edgecap_replica_{replica}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Claims: one holder at a time; the holder renews, others wait for the lease to pass;
    /// `take` refuses even its own live claim; released claims are free.
    #[tokio::test]
    async fn a_claim_has_one_holder_until_its_lease_passes() {
        let dir = std::env::temp_dir().join(format!(
            "edgecap-claims-{}-{}",
            std::process::id(),
            crate::secret::new_id()
        ));
        let db = Db::connect(&format!("sqlite://{}/c.db", dir.display()))
            .await
            .unwrap();
        let (t0, t1, t2, t3) = (
            "2026-01-01T00:00:00.000000Z",
            "2026-01-01T00:00:01.000000Z",
            "2026-01-01T00:00:05.000000Z",
            "2026-01-01T00:00:06.000000Z",
        );
        assert!(claim(&db, "sweep", "a", t0, t2).await.unwrap());
        assert!(!claim(&db, "sweep", "b", t1, t3).await.unwrap());
        assert!(claim(&db, "sweep", "a", t1, t3).await.unwrap());
        // a's lease runs to t3: b gets it only after.
        assert!(!take(&db, "sweep", "b", t2, t3).await.unwrap());
        assert!(
            take(&db, "sweep", "b", "2026-01-01T00:00:07.000000Z", t3)
                .await
                .unwrap()
        );
        assert!(take(&db, "merge:x", "a", t0, t2).await.unwrap());
        assert!(!take(&db, "merge:x", "a", t1, t2).await.unwrap());
        release(&db, "merge:x", "a").await.unwrap();
        assert!(take(&db, "merge:x", "b", t1, t2).await.unwrap());
        db.close().await;
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
