//! The writing side of `capture_nodes`: the state changes of one node's part, and the
//! capture-wide status and counters that follow from them. Every change runs inside a
//! transaction that first bumps the capture's `revision`, which takes the capture's row lock
//! (PostgreSQL) or the write lock (SQLite) before anything is read, so two replicas or two
//! writers never compute the capture's status from each other's stale parts.

use edgecap_model::{Assignment, Outcome, Status};
use sqlx::{AnyConnection, Row};

use super::{Db, to_i64, to_u64};
use crate::error::Result;
use crate::status::{PartState, aggregate};

/// Locks a capture that is still open. False if it is finished (or unknown): its parts no
/// longer change.
pub async fn lock_open(conn: &mut AnyConnection, capture_id: &str) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE captures SET revision = revision + 1
         WHERE id = $1 AND status IN ('pending', 'running')",
    )
    .bind(capture_id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// pending -> running, when the node acknowledges (or says it runs it after a reconnect).
pub async fn ack(conn: &mut AnyConnection, capture_id: &str, node: &str, at: &str) -> Result<()> {
    sqlx::query(
        "UPDATE capture_nodes SET status = 'running', acked_at = $3
         WHERE capture_id = $1 AND node = $2 AND status = 'pending'",
    )
    .bind(capture_id)
    .bind(node)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Live counters of a running part.
pub async fn progress(
    conn: &mut AnyConnection,
    capture_id: &str,
    node: &str,
    packets: u64,
    bytes: u64,
    lost: u64,
) -> Result<()> {
    sqlx::query(
        "UPDATE capture_nodes SET packets = $3, bytes = $4, lost = $5
         WHERE capture_id = $1 AND node = $2 AND status = 'running'",
    )
    .bind(capture_id)
    .bind(node)
    .bind(to_i64(packets))
    .bind(to_i64(bytes))
    .bind(to_i64(lost))
    .execute(conn)
    .await?;
    Ok(())
}

/// The node's own report of how its part ended.
pub async fn finish(conn: &mut AnyConnection, node: &str, o: &Outcome, at: &str) -> Result<()> {
    let status = if o.ok {
        Status::Success
    } else {
        Status::Failed
    };
    let error = match (&o.error, o.ok) {
        (Some(e), _) => Some(e.clone()),
        (None, false) => Some(format!("node {node} reported a failure without a reason")),
        (None, true) => None,
    };
    sqlx::query(
        "UPDATE capture_nodes SET status = $3, packets = $4, bytes = $5, lost = $6,
             error_message = $7, stop_reason = $8, file = $9, finished_at = $10,
             acked_at = COALESCE(acked_at, $10)
         WHERE capture_id = $1 AND node = $2 AND status IN ('pending', 'running')",
    )
    .bind(&o.capture_id)
    .bind(node)
    .bind(status.as_str())
    .bind(to_i64(o.packets))
    .bind(to_i64(o.bytes))
    .bind(to_i64(o.lost))
    .bind(error)
    .bind(o.stop_reason.clone())
    .bind(o.file.clone())
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// The server gives up on a part (node lost, no result); counters keep their last values.
pub async fn fail(
    conn: &mut AnyConnection,
    capture_id: &str,
    node: &str,
    reason: &str,
    at: &str,
) -> Result<()> {
    sqlx::query(
        "UPDATE capture_nodes SET status = 'failed', error_message = $3, finished_at = $4
         WHERE capture_id = $1 AND node = $2 AND status IN ('pending', 'running')",
    )
    .bind(capture_id)
    .bind(node)
    .bind(reason)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Recomputes the capture's status, error message and sums from its parts. Returns the new
/// status.
pub async fn refresh(conn: &mut AnyConnection, capture_id: &str, at: &str) -> Result<Status> {
    let rows = sqlx::query(
        "SELECT node, status, packets, bytes, lost, error_message FROM capture_nodes
         WHERE capture_id = $1 ORDER BY position",
    )
    .bind(capture_id)
    .fetch_all(&mut *conn)
    .await?;
    let mut parts = Vec::with_capacity(rows.len());
    let (mut packets, mut bytes, mut lost) = (0u64, 0u64, 0u64);
    for r in &rows {
        packets = packets.saturating_add(to_u64(r.try_get("packets")?));
        bytes = bytes.saturating_add(to_u64(r.try_get("bytes")?));
        lost = lost.saturating_add(to_u64(r.try_get("lost")?));
        parts.push((
            r.try_get::<String, _>("node")?,
            super::captures::status_of(r)?,
            r.try_get::<Option<String>, _>("error_message")?,
        ));
    }
    let states: Vec<PartState<'_>> = parts
        .iter()
        .map(|(node, status, error)| PartState {
            node,
            status: *status,
            error: error.as_deref(),
        })
        .collect();
    let (mut status, error) = aggregate(&states);
    if status == Status::Success && wants_merge(conn, capture_id).await? {
        // Every node's file is whole; the merged one is not written yet.
        status = Status::ConversionRunning;
    }
    let terminal = status.is_terminal();
    sqlx::query(
        "UPDATE captures SET status = $2, error_message = $3, packets_captured = $4,
             bytes_captured = $5, packets_lost = $6,
             finished = CASE WHEN $7 = 1 THEN $8 ELSE NULL END
         WHERE id = $1",
    )
    .bind(capture_id)
    .bind(status.as_str())
    .bind(error)
    .bind(to_i64(packets))
    .bind(to_i64(bytes))
    .bind(to_i64(lost))
    .bind(i64::from(terminal))
    .bind(at)
    .execute(&mut *conn)
    .await?;
    Ok(status)
}

/// Whether the capture asked for the merged file.
async fn wants_merge(conn: &mut AnyConnection, capture_id: &str) -> Result<bool> {
    let json: String = sqlx::query_scalar("SELECT request FROM captures WHERE id = $1")
        .bind(capture_id)
        .fetch_one(&mut *conn)
        .await?;
    Ok(super::captures::request_of(capture_id, &json)?.merge)
}

/// A part that has not finished, as a reconnecting node's reconciliation sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenPart {
    pub capture_id: String,
    pub status: Status,
    pub stop_requested: bool,
    /// What to send the node if it must (again) be assigned (without credentials).
    pub assignment: Assignment,
    /// The capture's credentials, sealed with `capture:<id>`.
    pub credentials: Option<String>,
}

/// The unfinished parts of a node, on unfinished captures.
pub async fn open_for_node(db: &Db, node: &str) -> Result<Vec<OpenPart>> {
    let rows = sqlx::query(
        "SELECT p.capture_id, p.status, p.packet_limit, p.byte_limit, c.request, c.stop_requested,
                c.credentials
         FROM capture_nodes p JOIN captures c ON c.id = p.capture_id
         WHERE p.node = $1 AND p.status IN ('pending', 'running')
           AND c.status IN ('pending', 'running')
         ORDER BY c.submitted",
    )
    .bind(node)
    .fetch_all(&db.pool)
    .await?;
    rows.iter().map(open_part).collect()
}

/// The unfinished parts of an unfinished capture: (node, part).
pub async fn open_of_capture(db: &Db, capture_id: &str) -> Result<Vec<(String, OpenPart)>> {
    let rows = sqlx::query(
        "SELECT p.node, p.capture_id, p.status, p.packet_limit, p.byte_limit, c.request,
                c.stop_requested, c.credentials
         FROM capture_nodes p JOIN captures c ON c.id = p.capture_id
         WHERE p.capture_id = $1 AND p.status IN ('pending', 'running')
           AND c.status IN ('pending', 'running')
         ORDER BY p.position",
    )
    .bind(capture_id)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("node")?, open_part(r)?)))
        .collect()
}

fn open_part(r: &sqlx::any::AnyRow) -> Result<OpenPart> {
    let capture_id: String = r.try_get("capture_id")?;
    let request: String = r.try_get("request")?;
    let req = super::captures::request_of(&capture_id, &request)?;
    Ok(OpenPart {
        status: super::captures::status_of(r)?,
        stop_requested: r.try_get::<Option<String>, _>("stop_requested")?.is_some(),
        credentials: r.try_get("credentials")?,
        assignment: assignment(
            &capture_id,
            &req,
            super::opt_u64(r, "packet_limit")?,
            super::opt_u64(r, "byte_limit")?,
        ),
        capture_id,
    })
}

/// What a node is told to do for its part; the caller adds the credentials, unsealed.
pub fn assignment(
    capture_id: &str,
    r: &super::captures::StoredRequest,
    packet_limit: Option<u64>,
    byte_limit: Option<u64>,
) -> Assignment {
    Assignment {
        capture_id: capture_id.to_owned(),
        filter_v1: r.filter_v1.clone(),
        filter: r.filter.clone(),
        points: r.points.clone(),
        time_limit: r.time_limit,
        packet_limit,
        byte_limit,
        snaplen: r.snaplen,
        sample_rate: r.sample_rate,
        format: r.format.clone(),
        destination_conf: r.destination_conf.clone(),
        credentials: None,
        prefixes: r.prefixes.clone(),
    }
}

/// Unfinished parts of open captures whose deadline has passed.
pub async fn overdue(db: &Db, now: &str) -> Result<Vec<(String, String)>> {
    let rows = sqlx::query(
        "SELECT p.capture_id, p.node FROM captures c
         JOIN capture_nodes p ON p.capture_id = c.id
         WHERE c.status IN ('pending', 'running') AND c.deadline < $1
           AND p.status IN ('pending', 'running')",
    )
    .bind(now)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("capture_id")?, r.try_get("node")?)))
        .collect()
}

/// Captures in which a node has an unfinished part.
pub async fn open_captures_of(conn: &mut AnyConnection, node: &str) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT DISTINCT p.capture_id FROM capture_nodes p JOIN captures c ON c.id = p.capture_id
         WHERE p.node = $1 AND p.status IN ('pending', 'running')
           AND c.status IN ('pending', 'running')",
    )
    .bind(node)
    .fetch_all(conn)
    .await?)
}

/// Nodes with unfinished parts (at startup, each gets a grace period to come back).
pub async fn nodes_with_open_parts(db: &Db) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT DISTINCT p.node FROM capture_nodes p JOIN captures c ON c.id = p.capture_id
         WHERE p.status IN ('pending', 'running') AND c.status IN ('pending', 'running')",
    )
    .fetch_all(&db.pool)
    .await?)
}

/// Parts still waiting for their node's acknowledgement, of open captures not being stopped:
/// (capture, node).
pub async fn pending_parts(db: &Db) -> Result<Vec<(String, String)>> {
    let rows = sqlx::query(
        "SELECT p.capture_id, p.node FROM capture_nodes p JOIN captures c ON c.id = p.capture_id
         WHERE p.status = 'pending' AND c.status IN ('pending', 'running')
           AND c.stop_requested IS NULL",
    )
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("capture_id")?, r.try_get("node")?)))
        .collect()
}
