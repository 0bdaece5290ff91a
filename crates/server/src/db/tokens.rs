//! `tokens`: API tokens (one account each) and agent tokens. The secret is shown once, at
//! creation; the table keeps its SHA-256.

use serde::Serialize;
use sqlx::Row;

use super::Db;
use super::accounts::Account;
use crate::error::Result;
use crate::secret;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Api,
    Agent,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Api => "api",
            Kind::Agent => "agent",
        }
    }
}

/// A token as listed (never the secret).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Token {
    pub id: String,
    pub kind: Kind,
    pub account_id: Option<String>,
    pub name: String,
    pub created: String,
}

/// Creates a token and returns it with its secret, which exists nowhere else afterwards.
/// API tokens need an account (checked by the foreign key).
pub async fn create(
    db: &Db,
    kind: Kind,
    account_id: Option<&str>,
    name: &str,
) -> Result<(Token, String)> {
    let prefix = match kind {
        Kind::Api => secret::API_PREFIX,
        Kind::Agent => secret::AGENT_PREFIX,
    };
    let secret_text = secret::new_secret(prefix);
    let token = Token {
        id: secret::new_id(),
        kind,
        account_id: account_id.map(str::to_owned),
        name: name.to_owned(),
        created: crate::clock::now(),
    };
    sqlx::query(
        "INSERT INTO tokens (id, account_id, kind, hash, name, created)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&token.id)
    .bind(token.account_id.clone())
    .bind(kind.as_str())
    .bind(secret::digest(&secret_text))
    .bind(&token.name)
    .bind(&token.created)
    .execute(&db.pool)
    .await?;
    Ok((token, secret_text))
}

/// The account an API token acts for, if `secret` is a live API token.
pub async fn api_account(db: &Db, secret_text: &str) -> Result<Option<Account>> {
    let row = sqlx::query(
        "SELECT a.id, a.name, a.max_time_limit, a.max_packet_limit, a.max_byte_limit, a.created
         FROM tokens t JOIN accounts a ON a.id = t.account_id
         WHERE t.hash = $1 AND t.kind = 'api'",
    )
    .bind(secret::digest(secret_text))
    .fetch_optional(&db.pool)
    .await?;
    row.as_ref().map(Account::from_row).transpose()
}

/// True if `secret` is an agent token.
pub async fn is_agent(db: &Db, secret_text: &str) -> Result<bool> {
    let n: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM tokens WHERE hash = $1 AND kind = 'agent'")
            .bind(secret::digest(secret_text))
            .fetch_one(&db.pool)
            .await?;
    Ok(n > 0)
}

/// Every token, oldest first.
pub async fn list(db: &Db) -> Result<Vec<Token>> {
    let rows =
        sqlx::query("SELECT id, kind, account_id, name, created FROM tokens ORDER BY created, id")
            .fetch_all(&db.pool)
            .await?;
    from_rows(&rows)
}

/// The API tokens of one account, oldest first.
pub async fn list_for_account(db: &Db, account_id: &str) -> Result<Vec<Token>> {
    let rows = sqlx::query(
        "SELECT id, kind, account_id, name, created FROM tokens
         WHERE account_id = $1 AND kind = 'api' ORDER BY created, id",
    )
    .bind(account_id)
    .fetch_all(&db.pool)
    .await?;
    from_rows(&rows)
}

/// Revokes one of an account's API tokens; false if the account has no such token.
pub async fn delete(db: &Db, account_id: &str, id: &str) -> Result<bool> {
    let done = sqlx::query("DELETE FROM tokens WHERE id = $1 AND account_id = $2 AND kind = 'api'")
        .bind(id)
        .bind(account_id)
        .execute(&db.pool)
        .await?;
    Ok(done.rows_affected() > 0)
}

fn from_rows(rows: &[sqlx::any::AnyRow]) -> Result<Vec<Token>> {
    rows.iter()
        .map(|r| {
            let kind: String = r.try_get("kind")?;
            Ok(Token {
                id: r.try_get("id")?,
                kind: if kind == "agent" {
                    Kind::Agent
                } else {
                    Kind::Api
                },
                account_id: r.try_get("account_id")?,
                name: r.try_get("name")?,
                created: r.try_get("created")?,
            })
        })
        .collect()
}
