//! `tokens`: API tokens (one account each, with scopes and an optional expiry) and agent
//! tokens (enrolment tokens: an optional expiry and use count). The secret is shown once, at
//! creation; the table keeps its SHA-256.

use serde::Serialize;
use sqlx::Row;

use super::Db;
use super::accounts::Account;
use crate::auth::Scope;
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
    /// What an API token may do (empty for agent tokens).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<Scope>,
    /// When it stops working (RFC 3339 UTC), if ever.
    pub expires_on: Option<String>,
    /// Agent tokens: how many nodes it may enrol (None: no limit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_uses: Option<u64>,
    /// Agent tokens: how many nodes it enrolled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uses: Option<u64>,
}

/// How a new token is limited. The default: an API token with [`Scope::DEFAULT`], an agent
/// token without limits, neither expiring.
#[derive(Debug, Clone, Default)]
pub struct Limits {
    /// API tokens only; None is [`Scope::DEFAULT`].
    pub scopes: Option<Vec<Scope>>,
    /// RFC 3339 UTC.
    pub expires_on: Option<String>,
    /// Agent tokens only.
    pub max_uses: Option<u64>,
}

/// Creates a token and returns it with its secret, which exists nowhere else afterwards.
/// API tokens need an account (checked by the foreign key).
pub async fn create(
    db: &Db,
    kind: Kind,
    account_id: Option<&str>,
    name: &str,
) -> Result<(Token, String)> {
    create_limited(db, kind, account_id, name, &Limits::default()).await
}

/// [`create`] with scopes, expiry and (agent tokens) a use count.
pub async fn create_limited(
    db: &Db,
    kind: Kind,
    account_id: Option<&str>,
    name: &str,
    limits: &Limits,
) -> Result<(Token, String)> {
    let prefix = match kind {
        Kind::Api => secret::API_PREFIX,
        Kind::Agent => secret::AGENT_PREFIX,
    };
    let secret_text = secret::new_secret(prefix);
    let scopes = match kind {
        Kind::Api => limits
            .scopes
            .clone()
            .unwrap_or_else(|| Scope::DEFAULT.to_vec()),
        Kind::Agent => Vec::new(),
    };
    let token = Token {
        id: secret::new_id(),
        kind,
        account_id: account_id.map(str::to_owned),
        name: name.to_owned(),
        created: crate::clock::now(),
        expires_on: limits.expires_on.clone(),
        max_uses: limits.max_uses.filter(|_| kind == Kind::Agent),
        uses: (kind == Kind::Agent).then_some(0),
        scopes,
    };
    sqlx::query(
        "INSERT INTO tokens (id, account_id, kind, hash, name, created, scopes, expires, max_uses)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&token.id)
    .bind(token.account_id.clone())
    .bind(kind.as_str())
    .bind(secret::digest(&secret_text))
    .bind(&token.name)
    .bind(&token.created)
    .bind((kind == Kind::Api).then(|| Scope::join(&token.scopes)))
    .bind(token.expires_on.clone())
    .bind(token.max_uses.map(super::to_i64))
    .execute(&db.pool)
    .await?;
    Ok((token, secret_text))
}

/// What an API token's secret is worth.
#[derive(Debug, Clone)]
pub enum ApiLookup {
    /// A live token: its account and scopes.
    Valid {
        account: Account,
        scopes: Vec<Scope>,
    },
    /// It was a token, and it expired at this time.
    Expired(String),
    /// No such API token (never was, or revoked).
    Unknown,
}

/// Looks an API token's secret up.
pub async fn api_lookup(db: &Db, secret_text: &str) -> Result<ApiLookup> {
    let row = sqlx::query(
        "SELECT a.id, a.name, a.max_time_limit, a.max_packet_limit, a.max_byte_limit, a.created,
                t.scopes, t.expires
         FROM tokens t JOIN accounts a ON a.id = t.account_id
         WHERE t.hash = $1 AND t.kind = 'api'",
    )
    .bind(secret::digest(secret_text))
    .fetch_optional(&db.pool)
    .await?;
    let Some(row) = row else {
        return Ok(ApiLookup::Unknown);
    };
    let expires: Option<String> = row.try_get("expires")?;
    if let Some(at) = expires
        && at <= crate::clock::now()
    {
        return Ok(ApiLookup::Expired(at));
    }
    let scopes: Option<String> = row.try_get("scopes")?;
    Ok(ApiLookup::Valid {
        account: Account::from_row(&row)?,
        scopes: Scope::parse_stored(scopes.as_deref()),
    })
}

/// The account an API token acts for, if `secret` is a live API token.
pub async fn api_account(db: &Db, secret_text: &str) -> Result<Option<Account>> {
    Ok(match api_lookup(db, secret_text).await? {
        ApiLookup::Valid { account, .. } => Some(account),
        _ => None,
    })
}

/// True if `secret` is an agent token that can still enrol a node (not expired, not used
/// up).
pub async fn is_agent(db: &Db, secret_text: &str) -> Result<bool> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM tokens WHERE hash = $1 AND kind = 'agent'
         AND (expires IS NULL OR expires > $2) AND (max_uses IS NULL OR uses < max_uses)",
    )
    .bind(secret::digest(secret_text))
    .bind(crate::clock::now())
    .fetch_one(&db.pool)
    .await?;
    Ok(n > 0)
}

const COLUMNS: &str = "id, kind, account_id, name, created, scopes, expires, max_uses, uses";

/// Every token, oldest first.
pub async fn list(db: &Db) -> Result<Vec<Token>> {
    let sql = format!("SELECT {COLUMNS} FROM tokens ORDER BY created, id");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(&db.pool)
        .await?;
    from_rows(&rows)
}

/// The API tokens of one account, oldest first.
pub async fn list_for_account(db: &Db, account_id: &str) -> Result<Vec<Token>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM tokens WHERE account_id = $1 AND kind = 'api' ORDER BY created, id"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
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

/// Revokes a token of either kind by id (`edgecap admin`); false if there is none. Nodes an
/// agent token enrolled keep their own credentials.
pub async fn revoke(db: &Db, kind: Kind, id: &str) -> Result<bool> {
    let done = sqlx::query("DELETE FROM tokens WHERE id = $1 AND kind = $2")
        .bind(id)
        .bind(kind.as_str())
        .execute(&db.pool)
        .await?;
    Ok(done.rows_affected() > 0)
}

fn from_rows(rows: &[sqlx::any::AnyRow]) -> Result<Vec<Token>> {
    rows.iter()
        .map(|r| {
            let kind = if r.try_get::<String, _>("kind")? == "agent" {
                Kind::Agent
            } else {
                Kind::Api
            };
            let scopes: Option<String> = r.try_get("scopes")?;
            Ok(Token {
                id: r.try_get("id")?,
                kind,
                account_id: r.try_get("account_id")?,
                name: r.try_get("name")?,
                created: r.try_get("created")?,
                scopes: match kind {
                    Kind::Api => Scope::parse_stored(scopes.as_deref()),
                    Kind::Agent => Vec::new(),
                },
                expires_on: r.try_get("expires")?,
                max_uses: super::opt_u64(r, "max_uses")?,
                uses: match kind {
                    Kind::Agent => Some(super::to_u64(r.try_get("uses")?)),
                    Kind::Api => None,
                },
            })
        })
        .collect()
}
