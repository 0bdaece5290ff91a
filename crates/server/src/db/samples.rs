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
