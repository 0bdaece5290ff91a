//! `accounts`: who owns captures, each account's maxima, and its tenancy (unrestricted or
//! not, prefixes, node set; the rules are `crate::tenancy`'s).

use edgecap_model::AccountLimits;
use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Db, to_i64, to_u64};
use crate::error::{Error, Result};
use crate::tenancy::Tenancy;

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

/// Creates an account with the given maxima (whole seconds for the time limit), unrestricted
/// (the single-tenant case: `edgecap up`, tests); [`create_with_tenancy`] for a shared fleet.
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

/// Creates an account with its tenancy (`crate::tenancy`); if the tenancy cannot be stored,
/// the account is removed again.
pub async fn create_with_tenancy(
    db: &Db,
    name: &str,
    limits: &AccountLimits,
    tenancy: &Tenancy,
) -> Result<Account> {
    let account = create(db, name, limits).await?;
    if let Err(e) = set_tenancy(db, &account.id, tenancy).await {
        // Not half-created: an account without its restriction must not stay.
        let _ = sqlx::query("DELETE FROM accounts WHERE id = $1")
            .bind(&account.id)
            .execute(&db.pool)
            .await;
        return Err(e);
    }
    Ok(account)
}

/// The account's tenancy: whether it is unrestricted, its prefixes and its node set.
pub async fn tenancy(db: &Db, id: &str) -> Result<Tenancy> {
    let flag: Option<i64> = sqlx::query_scalar("SELECT unrestricted FROM accounts WHERE id = $1")
        .bind(id)
        .fetch_optional(&db.pool)
        .await?;
    let Some(flag) = flag else {
        return Err(Error::NoAccount(id.to_owned()));
    };
    let prefixes: Vec<String> = sqlx::query_scalar(
        "SELECT prefix FROM account_prefixes WHERE account_id = $1 ORDER BY prefix",
    )
    .bind(id)
    .fetch_all(&db.pool)
    .await?;
    let nodes: Vec<String> = sqlx::query_scalar(
        "SELECT selector FROM account_nodes WHERE account_id = $1 ORDER BY selector",
    )
    .bind(id)
    .fetch_all(&db.pool)
    .await?;
    // Stored in Boundary's order is not text order: normalise again (cheap, and one owner).
    let prefixes =
        crate::tenancy::parse_prefixes(&prefixes, "prefixes").map_err(|e| Error::Corrupt {
            what: format!("account {id} prefixes"),
            reason: e.to_string(),
        })?;
    Ok(Tenancy {
        unrestricted: flag != 0,
        prefixes,
        nodes,
    })
}

/// A restricted account as node observers keep it apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scoped {
    pub id: String,
    pub prefixes: Vec<String>,
    pub nodes: Vec<String>,
}

/// Every restricted account with its prefixes and node set, in id order (three queries,
/// whatever the number of accounts).
pub async fn restricted_scopes(db: &Db) -> Result<Vec<Scoped>> {
    let ids: Vec<String> =
        sqlx::query_scalar("SELECT id FROM accounts WHERE unrestricted = 0 ORDER BY id")
            .fetch_all(&db.pool)
            .await?;
    let mut by_id: std::collections::BTreeMap<String, Scoped> = ids
        .into_iter()
        .map(|id| {
            let s = Scoped {
                id: id.clone(),
                prefixes: Vec::new(),
                nodes: Vec::new(),
            };
            (id, s)
        })
        .collect();
    let prefixes: Vec<(String, String)> = sqlx::query_as(
        "SELECT p.account_id, p.prefix FROM account_prefixes p
         JOIN accounts a ON a.id = p.account_id WHERE a.unrestricted = 0
         ORDER BY p.account_id, p.prefix",
    )
    .fetch_all(&db.pool)
    .await?;
    for (id, p) in prefixes {
        if let Some(s) = by_id.get_mut(&id) {
            s.prefixes.push(p);
        }
    }
    let nodes: Vec<(String, String)> = sqlx::query_as(
        "SELECT n.account_id, n.selector FROM account_nodes n
         JOIN accounts a ON a.id = n.account_id WHERE a.unrestricted = 0
         ORDER BY n.account_id, n.selector",
    )
    .fetch_all(&db.pool)
    .await?;
    for (id, n) in nodes {
        if let Some(s) = by_id.get_mut(&id) {
            s.nodes.push(n);
        }
    }
    Ok(by_id.into_values().collect())
}

/// Replaces the account's tenancy in one transaction. `tenancy` comes from
/// `crate::tenancy` (validated, normalised). False if there is no such account.
pub async fn set_tenancy(db: &Db, id: &str, tenancy: &Tenancy) -> Result<bool> {
    let mut tx = db.pool.begin().await?;
    let changed = sqlx::query("UPDATE accounts SET unrestricted = $1 WHERE id = $2")
        .bind(i64::from(tenancy.unrestricted))
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if changed == 0 {
        return Ok(false);
    }
    for table in ["account_prefixes", "account_nodes"] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE account_id = $1"
        )))
        .bind(id)
        .execute(&mut *tx)
        .await?;
    }
    for p in &tenancy.prefixes {
        sqlx::query("INSERT INTO account_prefixes (account_id, prefix) VALUES ($1, $2)")
            .bind(id)
            .bind(p)
            .execute(&mut *tx)
            .await?;
    }
    for n in &tenancy.nodes {
        sqlx::query("INSERT INTO account_nodes (account_id, selector) VALUES ($1, $2)")
            .bind(id)
            .bind(n)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(true)
}
