//! `dashboard_sessions`: the dashboard's login sessions (migration 0013). A session is a
//! random secret given to the browser once, in a cookie; the table keeps its SHA-256 and the
//! id of the API token it was opened with, so it acts with that token's account and scopes,
//! and ends with the token (deleted, revoked or expired) or at its own expiry.

use std::time::Duration;

use sqlx::Row;

use super::Db;
use super::accounts::Account;
use super::tokens::ApiLookup;
use crate::auth::Scope;
use crate::error::Result;
use crate::secret;

/// Prefix of session secrets (never an API token: `ecp_`).
pub const SESSION_PREFIX: &str = "ecs_";

/// Live sessions one API token may hold: a new login beyond them ends the oldest, so logging
/// in again and again cannot grow the table.
pub const MAX_SESSIONS_PER_TOKEN: i64 = 32;

/// Opens a session for the API token `token_secret`, for at most `ttl` and never past the
/// token's expiry: the session's secret, or why not (the token is unknown or expired). Expired
/// sessions are deleted on the way, so the table stays as small as the live sessions, and a
/// token keeps at most [`MAX_SESSIONS_PER_TOKEN`] of them (the oldest end first). One write
/// transaction for all of it: on SQLite a login then waits for the write lock once (behind
/// the rollup writer's batches), not three times.
pub async fn open(
    db: &Db,
    token_secret: &str,
    ttl: Duration,
) -> Result<std::result::Result<String, String>> {
    let now = crate::clock::now();
    let (_turn, mut tx) = db.begin_write().await?;
    sqlx::query("DELETE FROM dashboard_sessions WHERE expires <= $1")
        .bind(&now)
        .execute(&mut *tx)
        .await?;
    let row = sqlx::query("SELECT id, expires FROM tokens WHERE hash = $1 AND kind = 'api'")
        .bind(secret::digest(token_secret))
        .fetch_optional(&mut *tx)
        .await?;
    let Some(row) = row else {
        tx.commit().await?;
        return Ok(Err("not a valid API token".into()));
    };
    let token_id: String = row.try_get("id")?;
    let token_expires: Option<String> = row.try_get("expires")?;
    if let Some(at) = &token_expires
        && *at <= now
    {
        tx.commit().await?;
        return Ok(Err(format!("this API token expired at {at}")));
    }
    let mut expires = crate::clock::after(ttl);
    if let Some(at) = token_expires
        && at < expires
    {
        expires = at;
    }
    let session = secret::new_secret(SESSION_PREFIX);
    sqlx::query(
        "INSERT INTO dashboard_sessions (hash, token_id, created, expires)
         VALUES ($1, $2, $3, $4)",
    )
    .bind(secret::digest(&session))
    .bind(&token_id)
    .bind(&now)
    .bind(&expires)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "DELETE FROM dashboard_sessions WHERE token_id = $1 AND hash NOT IN (
           SELECT hash FROM dashboard_sessions WHERE token_id = $1
           ORDER BY created DESC, hash DESC LIMIT $2)",
    )
    .bind(&token_id)
    .bind(MAX_SESSIONS_PER_TOKEN)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Ok(session))
}

/// What a session's secret is worth: as [`super::tokens::api_lookup`] for its token, and
/// `Expired` when the session itself has expired.
pub async fn lookup(db: &Db, session: &str) -> Result<ApiLookup> {
    let row = sqlx::query(
        "SELECT a.id, a.name, a.max_time_limit, a.max_packet_limit, a.max_byte_limit, a.created,
                t.scopes, t.expires, s.expires AS session_expires
         FROM dashboard_sessions s JOIN tokens t ON t.id = s.token_id
              JOIN accounts a ON a.id = t.account_id
         WHERE s.hash = $1 AND t.kind = 'api'",
    )
    .bind(secret::digest(session))
    .fetch_optional(&db.pool)
    .await?;
    let Some(row) = row else {
        return Ok(ApiLookup::Unknown);
    };
    let now = crate::clock::now();
    let session_expires: String = row.try_get("session_expires")?;
    if session_expires <= now {
        return Ok(ApiLookup::Expired(session_expires));
    }
    let expires: Option<String> = row.try_get("expires")?;
    if let Some(at) = expires
        && at <= now
    {
        return Ok(ApiLookup::Expired(at));
    }
    let scopes: Option<String> = row.try_get("scopes")?;
    Ok(ApiLookup::Valid {
        account: Account::from_row(&row)?,
        scopes: Scope::parse_stored(scopes.as_deref()),
    })
}

/// Ends a session (logout); false if there was none.
pub async fn close(db: &Db, session: &str) -> Result<bool> {
    let done = sqlx::query("DELETE FROM dashboard_sessions WHERE hash = $1")
        .bind(secret::digest(session))
        .execute(&db.pool)
        .await?;
    Ok(done.rows_affected() > 0)
}
