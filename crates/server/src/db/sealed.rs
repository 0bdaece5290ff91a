//! Every sealed secret in the database, whatever its table: what the secrets key guards.
//! The start-up check ([`crate::credentials::check_key`]) counts them and tries one; a key
//! rotation ([`crate::credentials::rotate`]) reads and rewrites them all in one transaction.

use sqlx::{AnyConnection, Row};

use super::Db;
use crate::error::Result;

/// Tables with a sealed `credentials` column, the context prefix each row's secret is
/// sealed with (`<prefix>:<id>`, see [`crate::credentials`]), and the column of its time.
const TABLES: &[(&str, &str, &str)] = &[
    ("captures", "capture", "submitted"),
    ("ownerships", "ownership", "submitted"),
    ("triggers", "trigger", "created"),
];

/// One sealed secret.
#[derive(Debug, Clone)]
pub struct Sealed {
    table: &'static str,
    pub id: String,
    /// The associated data it is sealed with.
    pub context: String,
    pub sealed: String,
}

/// How many sealed secrets the database holds.
pub async fn count(db: &Db) -> Result<i64> {
    let mut n = 0;
    for (table, _, _) in TABLES {
        let sql = format!("SELECT COUNT(*) FROM {table} WHERE credentials IS NOT NULL");
        let c: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(&db.pool)
            .await?;
        n += c;
    }
    Ok(n)
}

/// Some sealed secret, if there is one (the newest capture's, else an ownership's, else a
/// trigger's).
pub async fn any(db: &Db) -> Result<Option<Sealed>> {
    let mut conn = db.pool.acquire().await?;
    for (table, prefix, time) in TABLES {
        let sql = format!(
            "SELECT id, credentials FROM {table} WHERE credentials IS NOT NULL \
             ORDER BY {time} DESC LIMIT 1"
        );
        if let Some(row) = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_optional(&mut *conn)
            .await?
        {
            return Ok(Some(from_row(table, prefix, &row)?));
        }
    }
    Ok(None)
}

fn from_row(table: &'static str, prefix: &str, row: &sqlx::any::AnyRow) -> Result<Sealed> {
    let id: String = row.try_get("id")?;
    Ok(Sealed {
        table,
        context: format!("{prefix}:{id}"),
        id,
        sealed: row.try_get("credentials")?,
    })
}

/// Every sealed secret, read on `conn` (a transaction, for a rotation).
pub async fn all(conn: &mut AnyConnection) -> Result<Vec<Sealed>> {
    let mut out = Vec::new();
    for (table, prefix, _) in TABLES {
        let sql = format!("SELECT id, credentials FROM {table} WHERE credentials IS NOT NULL");
        for row in sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&mut *conn)
            .await?
        {
            out.push(from_row(table, prefix, &row)?);
        }
    }
    Ok(out)
}

/// Replaces one secret's sealed value.
pub async fn replace(conn: &mut AnyConnection, s: &Sealed, sealed: &str) -> Result<()> {
    let sql = format!("UPDATE {} SET credentials = $2 WHERE id = $1", s.table);
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(&s.id)
        .bind(sealed)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
