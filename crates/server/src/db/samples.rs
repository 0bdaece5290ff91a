//! `sample_files`: the sealed files of look-back (`type: simple`) captures, with their expiry
//! (`api/simple.rs` writes and reads them; they are never logged).

use sqlx::{AnyConnection, Row};

use super::Db;
use crate::error::Result;

/// A capture's file, sealed, in both formats.
#[derive(Debug, Clone)]
pub struct SealedFiles {
    pub pcapng: String,
    pub pcap: String,
    pub expires: String,
}

/// Stores a capture's sealed files (in the caller's transaction).
pub async fn insert(conn: &mut AnyConnection, capture_id: &str, f: &SealedFiles) -> Result<()> {
    sqlx::query(
        "INSERT INTO sample_files (capture_id, pcapng, pcap, expires) VALUES ($1, $2, $3, $4)",
    )
    .bind(capture_id)
    .bind(&f.pcapng)
    .bind(&f.pcap)
    .bind(&f.expires)
    .execute(conn)
    .await?;
    Ok(())
}

/// A look-back capture with at least one answering node is `success` (its
/// `error_message` still names the nodes that did not answer); `parts::refresh`, whose rule
/// is a full capture's, would have made it `failed`.
pub async fn answered(conn: &mut AnyConnection, capture_id: &str) -> Result<()> {
    sqlx::query("UPDATE captures SET status = 'success' WHERE id = $1")
        .bind(capture_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// A capture's sealed files while they are kept (`expires` after `now`).
pub async fn get(db: &Db, capture_id: &str, now: &str) -> Result<Option<SealedFiles>> {
    let row = sqlx::query(
        "SELECT pcapng, pcap, expires FROM sample_files WHERE capture_id = $1 AND expires > $2",
    )
    .bind(capture_id)
    .bind(now)
    .fetch_optional(&db.pool)
    .await?;
    row.map(|r| {
        Ok(SealedFiles {
            pcapng: r.try_get("pcapng")?,
            pcap: r.try_get("pcap")?,
            expires: r.try_get("expires")?,
        })
    })
    .transpose()
}

/// Deletes the files whose retention has ended; how many.
pub async fn purge(db: &Db, now: &str) -> Result<u64> {
    let r = sqlx::query("DELETE FROM sample_files WHERE expires <= $1")
        .bind(now)
        .execute(&db.pool)
        .await?;
    Ok(r.rows_affected())
}

/// The ids of every stored file, expired or not (a key rotation re-seals them all), read on
/// `conn` (the rotation's transaction).
pub async fn ids(conn: &mut AnyConnection) -> Result<Vec<String>> {
    Ok(
        sqlx::query_scalar("SELECT capture_id FROM sample_files ORDER BY capture_id")
            .fetch_all(conn)
            .await?,
    )
}

/// One capture's sealed files whatever their expiry, `(pcapng, pcap)`, read on `conn`.
pub async fn sealed(
    conn: &mut AnyConnection,
    capture_id: &str,
) -> Result<Option<(String, String)>> {
    let row = sqlx::query("SELECT pcapng, pcap FROM sample_files WHERE capture_id = $1")
        .bind(capture_id)
        .fetch_optional(conn)
        .await?;
    row.map(|r| Ok((r.try_get("pcapng")?, r.try_get("pcap")?)))
        .transpose()
}

/// Replaces one capture's sealed files (a key rotation), on `conn`.
pub async fn replace(
    conn: &mut AnyConnection,
    capture_id: &str,
    pcapng: &str,
    pcap: &str,
) -> Result<()> {
    sqlx::query("UPDATE sample_files SET pcapng = $2, pcap = $3 WHERE capture_id = $1")
        .bind(capture_id)
        .bind(pcapng)
        .bind(pcap)
        .execute(conn)
        .await?;
    Ok(())
}

/// Some stored file, `(capture id, sealed pcapng)`, if there is one (what an interrupted key
/// rotation tries its keys on when no credentials are sealed).
pub async fn any(db: &Db) -> Result<Option<(String, String)>> {
    let row = sqlx::query("SELECT capture_id, pcapng FROM sample_files LIMIT 1")
        .fetch_optional(&db.pool)
        .await?;
    row.map(|r| Ok((r.try_get("capture_id")?, r.try_get("pcapng")?)))
        .transpose()
}
