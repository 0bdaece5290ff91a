//! `ownerships`: bucket ownership challenges (Cloudflare's `/pcaps/ownership`), keyed on the
//! destination's canonical, secret-free form. The challenge token itself lives only in the
//! bucket; the row keeps its SHA-256, and the bucket's credentials only sealed.

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::Db;
use crate::error::Result;

/// Cloudflare's ownership object. `validated` is `""` until validation succeeds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Ownership {
    pub id: String,
    pub destination_conf: String,
    pub filename: String,
    /// `pending`, `success` or `failed`.
    pub status: String,
    pub submitted: String,
    pub validated: String,
}

/// A row with its token digest and sealed credentials.
#[derive(Debug, Clone)]
pub struct Stored {
    pub ownership: Ownership,
    pub token_hash: String,
    /// Credentials given on add, sealed with `ownership:<id>`; None: the writers' own chain.
    pub credentials: Option<String>,
}

fn from_row(r: &AnyRow) -> Result<Stored> {
    Ok(Stored {
        ownership: Ownership {
            id: r.try_get("id")?,
            destination_conf: r.try_get("destination_conf")?,
            filename: r.try_get("filename")?,
            status: r.try_get("status")?,
            submitted: r.try_get("submitted")?,
            validated: r
                .try_get::<Option<String>, _>("validated")?
                .unwrap_or_default(),
        },
        token_hash: r.try_get("token_hash")?,
        credentials: r.try_get("credentials")?,
    })
}

const COLUMNS: &str =
    "id, destination_conf, filename, status, submitted, validated, token_hash, credentials";

pub async fn list(db: &Db, account_id: &str) -> Result<Vec<Ownership>> {
    let sql =
        format!("SELECT {COLUMNS} FROM ownerships WHERE account_id = $1 ORDER BY submitted, id");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(account_id)
        .fetch_all(&db.pool)
        .await?;
    rows.iter().map(|r| Ok(from_row(r)?.ownership)).collect()
}

pub async fn by_destination(db: &Db, account_id: &str, dest: &str) -> Result<Option<Stored>> {
    let sql =
        format!("SELECT {COLUMNS} FROM ownerships WHERE account_id = $1 AND destination_conf = $2");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(account_id)
        .bind(dest)
        .fetch_optional(&db.pool)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Inserts a new challenge, or replaces the token (and credentials) of an existing
/// unvalidated one (same id). `credentials` is already sealed.
pub async fn upsert_pending(
    db: &Db,
    account_id: &str,
    o: &Ownership,
    token_hash: &str,
    credentials: Option<&str>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO ownerships
             (id, account_id, destination_conf, filename, token_hash, status, submitted,
              credentials)
         VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7)
         ON CONFLICT (id) DO UPDATE SET token_hash = $5, status = 'pending', submitted = $6,
             validated = NULL, credentials = $7",
    )
    .bind(&o.id)
    .bind(account_id)
    .bind(&o.destination_conf)
    .bind(&o.filename)
    .bind(token_hash)
    .bind(&o.submitted)
    .bind(credentials.map(str::to_owned))
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// Sets the outcome of a validation attempt.
pub async fn set_status(db: &Db, id: &str, status: &str, validated: Option<&str>) -> Result<()> {
    sqlx::query("UPDATE ownerships SET status = $2, validated = $3 WHERE id = $1")
        .bind(id)
        .bind(status)
        .bind(validated.map(str::to_owned))
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// Deletes one of the account's records; false if there was none.
pub async fn delete(db: &Db, account_id: &str, id: &str) -> Result<bool> {
    let done = sqlx::query("DELETE FROM ownerships WHERE id = $1 AND account_id = $2")
        .bind(id)
        .bind(account_id)
        .execute(&db.pool)
        .await?;
    Ok(done.rows_affected() > 0)
}
