//! `captures` and the reading side of `capture_nodes`: creating a capture with its parts in
//! one transaction, and reading captures back in the API's shape.

use edgecap_model::{Capture, CreateRequest, NodeResult, Status};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Db, opt_u64, placeholders, to_i64, to_u64};
use crate::error::{Error, Result};

/// The static part of a capture: the validated request, kept as JSON in `captures.request`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredRequest {
    pub time_limit: f64,
    pub packet_limit: Option<u64>,
    pub byte_limit: Option<u64>,
    pub filter_v1: serde_json::Value,
    pub filter: Option<String>,
    pub colo_name: Option<String>,
    pub nodes: Option<Vec<String>>,
    pub points: Vec<String>,
    pub snaplen: Option<u32>,
    pub sample_rate: Option<f64>,
    pub format: String,
    pub merge: bool,
    pub destination_conf: String,
    /// The account's prefixes when it is restricted (`crate::tenancy`), kept with the
    /// capture so every (re)assignment carries the boundary it was created under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefixes: Option<Vec<String>>,
    /// `type: simple` (a look-back capture, `api/simple.rs`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub simple: bool,
}

impl From<&CreateRequest> for StoredRequest {
    fn from(r: &CreateRequest) -> Self {
        Self {
            time_limit: r.time_limit,
            packet_limit: r.packet_limit,
            byte_limit: r.byte_limit,
            filter_v1: r.filter_v1.clone(),
            filter: r.filter.clone(),
            colo_name: r.colo_name.clone(),
            nodes: r.nodes.clone(),
            points: r.points.clone(),
            snaplen: r.snaplen,
            sample_rate: r.sample_rate,
            format: r.format.clone(),
            merge: r.merge,
            destination_conf: r.destination_conf.clone(),
            prefixes: None,
            simple: r.simple,
        }
    }
}

/// One node's share of a new capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPart {
    pub node: String,
    pub packet_limit: Option<u64>,
    pub byte_limit: Option<u64>,
}

/// Rows per multi-row INSERT: well under both engines' bound-parameter limits.
const INSERT_CHUNK: usize = 200;

/// Inserts a capture (status pending) and its parts, all or nothing. `credentials` is
/// sealed (with `capture:<id>`); the request itself holds none.
#[allow(clippy::too_many_arguments)] // one row's columns; a struct would only rename them
pub async fn insert(
    db: &Db,
    id: &str,
    account_id: &str,
    request: &StoredRequest,
    parts: &[NewPart],
    submitted: &str,
    deadline: &str,
    credentials: Option<&str>,
) -> Result<()> {
    let mut tx = db.pool.begin().await?;
    insert_in(
        &mut tx,
        id,
        account_id,
        request,
        parts,
        submitted,
        deadline,
        credentials,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// [`insert`] inside the caller's transaction (`quota::create` checks the quotas in it).
#[allow(clippy::too_many_arguments)] // as insert
pub(crate) async fn insert_in(
    tx: &mut sqlx::AnyConnection,
    id: &str,
    account_id: &str,
    request: &StoredRequest,
    parts: &[NewPart],
    submitted: &str,
    deadline: &str,
    credentials: Option<&str>,
) -> Result<()> {
    let json = serde_json::to_string(request).map_err(|e| Error::Corrupt {
        what: format!("capture {id} request"),
        reason: e.to_string(),
    })?;
    sqlx::query(
        "INSERT INTO captures (id, account_id, request, status, submitted, deadline, credentials)
         VALUES ($1, $2, $3, 'pending', $4, $5, $6)",
    )
    .bind(id)
    .bind(account_id)
    .bind(json)
    .bind(submitted)
    .bind(deadline)
    .bind(credentials.map(str::to_owned))
    .execute(&mut *tx)
    .await?;
    for (chunk_no, chunk) in parts.chunks(INSERT_CHUNK).enumerate() {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| format!("($1, {}, 'pending')", placeholders(2 + i * 4, 4)))
            .collect();
        let sql = format!(
            "INSERT INTO capture_nodes (capture_id, node, position, packet_limit, byte_limit, \
             status) VALUES {}",
            values.join(", ")
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id);
        for (i, p) in chunk.iter().enumerate() {
            q = q
                .bind(p.node.clone())
                .bind((chunk_no * INSERT_CHUNK + i) as i64)
                .bind(p.packet_limit.map(to_i64))
                .bind(p.byte_limit.map(to_i64));
        }
        q.execute(&mut *tx).await?;
    }
    Ok(())
}

const CAPTURE_COLUMNS: &str = "id, request, status, submitted, stop_requested, error_message, \
                               packets_captured, bytes_captured, packets_lost, merged_file";

/// One capture of the account, or None (also when it belongs to another account).
pub async fn get(db: &Db, account_id: &str, id: &str) -> Result<Option<Capture>> {
    let sql = format!("SELECT {CAPTURE_COLUMNS} FROM captures WHERE id = $1 AND account_id = $2");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(account_id)
        .fetch_optional(&db.pool)
        .await?;
    let Some(row) = row else { return Ok(None) };
    let mut parts = parts_of(db, &[id.to_owned()]).await?;
    Ok(Some(from_row(
        &row,
        parts.pop().map(|p| p.1).unwrap_or_default(),
    )?))
}

/// A page of the account's captures, newest first, and how many there are in all.
pub async fn list(
    db: &Db,
    account_id: &str,
    offset: u64,
    limit: u64,
) -> Result<(Vec<Capture>, u64)> {
    let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM captures WHERE account_id = $1")
        .bind(account_id)
        .fetch_one(&db.pool)
        .await?;
    let sql = format!(
        "SELECT {CAPTURE_COLUMNS} FROM captures WHERE account_id = $1
         ORDER BY submitted DESC, id DESC LIMIT $2 OFFSET $3"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(account_id)
        .bind(to_i64(limit))
        .bind(to_i64(offset))
        .fetch_all(&db.pool)
        .await?;
    let ids: Vec<String> = rows
        .iter()
        .map(|r| r.try_get("id"))
        .collect::<Result<_, _>>()?;
    let mut parts: std::collections::HashMap<String, Vec<NodeResult>> =
        parts_of(db, &ids).await?.into_iter().collect();
    let captures = rows
        .iter()
        .zip(&ids)
        .map(|(row, id)| from_row(row, parts.remove(id).unwrap_or_default()))
        .collect::<Result<_>>()?;
    Ok((captures, to_u64(total)))
}

/// The parts of some captures, in node order, grouped by capture.
async fn parts_of(db: &Db, ids: &[String]) -> Result<Vec<(String, Vec<NodeResult>)>> {
    if ids.is_empty() {
        return Ok(vec![]);
    }
    let sql = format!(
        "SELECT capture_id, node, status, packets, bytes, lost, packet_limit, byte_limit, file,
                error_message, stop_reason
         FROM capture_nodes WHERE capture_id IN ({}) ORDER BY capture_id, position",
        placeholders(1, ids.len())
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for id in ids {
        q = q.bind(id.clone());
    }
    let mut out: Vec<(String, Vec<NodeResult>)> = Vec::new();
    for row in q.fetch_all(&db.pool).await? {
        let capture_id: String = row.try_get("capture_id")?;
        let result = NodeResult {
            node: row.try_get("node")?,
            status: status_of(&row)?,
            packets: to_u64(row.try_get("packets")?),
            bytes: to_u64(row.try_get("bytes")?),
            lost: to_u64(row.try_get("lost")?),
            packet_limit: opt_u64(&row, "packet_limit")?,
            byte_limit: opt_u64(&row, "byte_limit")?,
            file: row.try_get("file")?,
            error_message: row.try_get("error_message")?,
            stop_reason: row.try_get("stop_reason")?,
        };
        match out.last_mut() {
            Some((id, list)) if *id == capture_id => list.push(result),
            _ => out.push((capture_id, vec![result])),
        }
    }
    Ok(out)
}

pub(crate) fn status_of(row: &AnyRow) -> Result<Status> {
    let s: String = row.try_get("status")?;
    Status::parse(&s).ok_or_else(|| Error::Corrupt {
        what: "status".into(),
        reason: format!("unknown value {s:?}"),
    })
}

pub(crate) fn request_of(id: &str, json: &str) -> Result<StoredRequest> {
    serde_json::from_str(json).map_err(|e| Error::Corrupt {
        what: format!("capture {id} request"),
        reason: e.to_string(),
    })
}

fn from_row(row: &AnyRow, node_results: Vec<NodeResult>) -> Result<Capture> {
    let id: String = row.try_get("id")?;
    let json: String = row.try_get("request")?;
    let r = request_of(&id, &json)?;
    Ok(Capture {
        kind: if r.simple { "simple" } else { "full" }.into(),
        system: "magic-transit".into(),
        status: status_of(row)?,
        submitted: row.try_get("submitted")?,
        time_limit: r.time_limit,
        packet_limit: r.packet_limit,
        byte_limit: r.byte_limit,
        filter_v1: r.filter_v1,
        colo_name: r.colo_name,
        destination_conf: r.destination_conf,
        error_message: row.try_get("error_message")?,
        packets_captured: to_u64(row.try_get("packets_captured")?),
        stop_requested: row.try_get("stop_requested")?,
        filter: r.filter,
        nodes: r.nodes,
        points: r.points,
        snaplen: r.snaplen,
        sample_rate: r.sample_rate,
        format: r.format,
        bytes_captured: to_u64(row.try_get("bytes_captured")?),
        packets_lost: to_u64(row.try_get("packets_lost")?),
        merge: r.merge,
        merged_file: row.try_get("merged_file")?,
        node_results,
        id,
    })
}

/// Records a stop request (the first one's time is kept) and pulls the deadline for late
/// results in to `deadline` if that is sooner. Returns the capture's status, or None if the
/// account has no such capture.
pub async fn request_stop(
    db: &Db,
    account_id: &str,
    id: &str,
    at: &str,
    deadline: &str,
) -> Result<Option<Status>> {
    let row = sqlx::query("SELECT status FROM captures WHERE id = $1 AND account_id = $2")
        .bind(id)
        .bind(account_id)
        .fetch_optional(&db.pool)
        .await?;
    let Some(row) = row else { return Ok(None) };
    let status = status_of(&row)?;
    if !status.is_terminal() {
        sqlx::query(
            "UPDATE captures SET stop_requested = COALESCE(stop_requested, $2),
                 deadline = CASE WHEN deadline > $3 THEN $3 ELSE deadline END
             WHERE id = $1",
        )
        .bind(id)
        .bind(at)
        .bind(deadline)
        .execute(&db.pool)
        .await?;
    }
    Ok(Some(status))
}

/// Nodes whose part of the capture has not finished.
pub async fn open_nodes(db: &Db, id: &str) -> Result<Vec<String>> {
    let rows = sqlx::query_scalar(
        "SELECT node FROM capture_nodes WHERE capture_id = $1 AND status IN ('pending', 'running')
         ORDER BY position",
    )
    .bind(id)
    .fetch_all(&db.pool)
    .await?;
    Ok(rows)
}
