//! Look-back queries relayed between replicas (`hub/relay.rs`, migration 0012): the asker's
//! row, the target's answer, read and deleted once.

use sqlx::Row;

use super::{Db, to_i64};
use crate::error::Result;

/// Stores a question for `target`.
pub async fn ask(
    db: &Db,
    id: &str,
    asker: &str,
    target: &str,
    request: &str,
    expires: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO lookback_relays (id, asker, target, request, expires)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(asker)
    .bind(target)
    .bind(request)
    .bind(expires)
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// The question `id` addressed to `target` and not answered yet: its asker and request.
pub async fn request(db: &Db, id: &str, target: &str) -> Result<Option<(String, String)>> {
    let row = sqlx::query(
        "SELECT asker, request FROM lookback_relays
         WHERE id = $1 AND target = $2 AND answer IS NULL",
    )
    .bind(id)
    .bind(target)
    .fetch_optional(&db.pool)
    .await?;
    row.map(|r| Ok((r.try_get("asker")?, r.try_get("request")?)))
        .transpose()
}

/// Stores the answer to `id` (false: the asker has already given up and deleted it).
pub async fn answer(db: &Db, id: &str, answer: &str, sealed: bool) -> Result<bool> {
    let n = sqlx::query(
        "UPDATE lookback_relays SET answer = $2, sealed = $3 WHERE id = $1 AND answer IS NULL",
    )
    .bind(id)
    .bind(answer)
    .bind(to_i64(u64::from(sealed)))
    .execute(&db.pool)
    .await?
    .rows_affected();
    Ok(n > 0)
}

/// Deletes the row of `id` and returns its answer if there was one (and whether sealed), in
/// one statement: an answer stored meanwhile is either returned or not stored at all.
pub async fn take(db: &Db, id: &str) -> Result<Option<(String, bool)>> {
    let row = sqlx::query("DELETE FROM lookback_relays WHERE id = $1 RETURNING answer, sealed")
        .bind(id)
        .fetch_optional(&db.pool)
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let answer: Option<String> = row.try_get("answer")?;
    let sealed: i64 = row.try_get("sealed")?;
    Ok(answer.map(|a| (a, sealed != 0)))
}
