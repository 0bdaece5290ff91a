//! `accounts`: who owns captures, and each account's maxima.

use edgecap_model::AccountLimits;
use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Db, to_i64, to_u64};
use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Account {
    pub id: String,
    pub name: String,
    pub max_time_limit: f64,
    pub max_packet_limit: u64,
    pub max_byte_limit: u64,
    pub created: String,
}

impl Account {
    pub fn limits(&self) -> AccountLimits {
        AccountLimits {
            max_time_limit: self.max_time_limit,
            max_packet_limit: self.max_packet_limit,
            max_byte_limit: self.max_byte_limit,
        }
    }

    pub(crate) fn from_row(row: &AnyRow) -> Result<Account> {
        Ok(Account {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            max_time_limit: row.try_get::<i64, _>("max_time_limit")? as f64,
            max_packet_limit: to_u64(row.try_get("max_packet_limit")?),
            max_byte_limit: to_u64(row.try_get("max_byte_limit")?),
            created: row.try_get("created")?,
        })
    }
}

/// Creates an account with the given maxima (whole seconds for the time limit).
pub async fn create(db: &Db, name: &str, limits: &AccountLimits) -> Result<Account> {
    let account = Account {
        id: crate::secret::new_id(),
        name: name.to_owned(),
        max_time_limit: limits.max_time_limit.floor(),
        max_packet_limit: limits.max_packet_limit,
        max_byte_limit: limits.max_byte_limit,
        created: crate::clock::now(),
    };
    sqlx::query(
        "INSERT INTO accounts (id, name, max_time_limit, max_packet_limit, max_byte_limit, created)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&account.id)
    .bind(&account.name)
    .bind(account.max_time_limit as i64)
    .bind(to_i64(account.max_packet_limit))
    .bind(to_i64(account.max_byte_limit))
    .bind(&account.created)
    .execute(&db.pool)
    .await?;
    Ok(account)
}

pub async fn list(db: &Db) -> Result<Vec<Account>> {
    let rows = sqlx::query(
        "SELECT a.id, a.name, a.max_time_limit, a.max_packet_limit, a.max_byte_limit, a.created
         FROM accounts a ORDER BY a.created, a.id",
    )
    .fetch_all(&db.pool)
    .await?;
    rows.iter().map(Account::from_row).collect()
}

pub async fn get(db: &Db, id: &str) -> Result<Account> {
    let row = sqlx::query(
        "SELECT a.id, a.name, a.max_time_limit, a.max_packet_limit, a.max_byte_limit, a.created
         FROM accounts a WHERE a.id = $1",
    )
    .bind(id)
    .fetch_optional(&db.pool)
    .await?;
    match row {
        Some(row) => Account::from_row(&row),
        None => Err(Error::NoAccount(id.to_owned())),
    }
}
