//! `triggers`: an account's anomaly triggers (issue 14), each its validated definition as
//! JSON and its bucket's credentials sealed.

use edgecap_model::trigger::Trigger;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::Db;
use crate::error::{Error, Result};

/// A stored trigger.
#[derive(Debug, Clone)]
pub struct Stored {
    pub id: String,
    pub account_id: String,
    pub trigger: Trigger,
    /// Sealed with `trigger:<id>`; None: the agents' own chain (or a directory).
    pub credentials: Option<String>,
    pub created: String,
}

impl Stored {
    /// What the API answers: the definition with its id and creation time.
    pub fn view(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(&self.trigger).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.insert("id".into(), self.id.clone().into());
            o.insert("created".into(), self.created.clone().into());
        }
        v
    }
}

fn from_row(r: &AnyRow) -> Result<Stored> {
    let id: String = r.try_get("id")?;
    let definition: String = r.try_get("definition")?;
    let trigger = serde_json::from_str(&definition).map_err(|e| Error::Corrupt {
        what: format!("trigger {id}"),
        reason: e.to_string(),
    })?;
    Ok(Stored {
        id,
        account_id: r.try_get("account_id")?,
        trigger,
        credentials: r.try_get("credentials")?,
        created: r.try_get("created")?,
    })
}

const COLUMNS: &str = "id, account_id, definition, credentials, created";

/// Inserts `t` unless the account already has `max` triggers (checked in the same statement,
/// so concurrent requests cannot pass it); false when it had.
pub async fn insert(db: &Db, t: &Stored, max: usize) -> Result<bool> {
    let definition = serde_json::to_string(&t.trigger).map_err(|e| Error::Corrupt {
        what: format!("trigger {}", t.id),
        reason: e.to_string(),
    })?;
    let done = sqlx::query(
        "INSERT INTO triggers (id, account_id, definition, credentials, created)
         SELECT $1, $2, $3, $4, $5
         WHERE (SELECT COUNT(*) FROM triggers WHERE account_id = $2) < $6",
    )
    .bind(&t.id)
    .bind(&t.account_id)
    .bind(definition)
    .bind(t.credentials.clone())
    .bind(&t.created)
    .bind(super::to_i64(max as u64))
    .execute(&db.pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The account's triggers, oldest first.
pub async fn list(db: &Db, account_id: &str) -> Result<Vec<Stored>> {
    let sql = format!("SELECT {COLUMNS} FROM triggers WHERE account_id = $1 ORDER BY created, id");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(account_id)
        .fetch_all(&db.pool)
        .await?;
    rows.iter().map(from_row).collect()
}

/// One of the account's triggers.
pub async fn get(db: &Db, account_id: &str, id: &str) -> Result<Option<Stored>> {
    let sql = format!("SELECT {COLUMNS} FROM triggers WHERE account_id = $1 AND id = $2");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(account_id)
        .bind(id)
        .fetch_optional(&db.pool)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Deletes one of the account's triggers, with its grants and split epochs; false if there was none.
pub async fn delete(db: &Db, account_id: &str, id: &str) -> Result<bool> {
    let mut tx = db.pool.begin().await?;
    let done = sqlx::query("DELETE FROM triggers WHERE id = $1 AND account_id = $2")
        .bind(id)
        .bind(account_id)
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() > 0 {
        sqlx::query("DELETE FROM trigger_grants WHERE trigger_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        super::splits::delete(&mut tx, id).await?;
    }
    tx.commit().await?;
    Ok(done.rows_affected() > 0)
}

/// Every account's triggers, oldest first (what the hub sends the agents).
pub async fn list_all(db: &Db) -> Result<Vec<Stored>> {
    let sql = format!("SELECT {COLUMNS} FROM triggers ORDER BY created, id");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(&db.pool)
        .await?;
    rows.iter().map(from_row).collect()
}

/// One trigger by its id, whatever its account (an agent's report names only the trigger).
pub async fn by_id(db: &Db, id: &str) -> Result<Option<Stored>> {
    let sql = format!("SELECT {COLUMNS} FROM triggers WHERE id = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(&db.pool)
        .await?;
    row.as_ref().map(from_row).transpose()
}
