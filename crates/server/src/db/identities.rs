//! `node_identities`: which credential a node name is bound to. A node makes its own random
//! credential and presents it at every connect; the first connect with an enrolment token (an
//! agent token) binds the name to the credential's SHA-256. From then on the name is taken
//! only with that credential, and the enrolment token is not needed. A revoked identity keeps
//! the name taken (and its credential refused) until an operator forgets it.

use serde::Serialize;
use sqlx::{Acquire, Row};

use super::Db;
use crate::error::Result;
use crate::secret;

/// An identity as listed (never the credential).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Identity {
    pub name: String,
    pub enrolled: String,
    /// Id of the enrolment token used.
    pub enrolled_with: Option<String>,
    pub revoked: Option<String>,
}

/// Why a node may not connect: 401 (credential or enrolment token not good) or 403 (the name
/// is someone else's), and the message for the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub forbidden: bool,
    pub message: String,
}

fn refuse(forbidden: bool, message: String) -> Refusal {
    Refusal { forbidden, message }
}

/// How a node got in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admitted {
    /// Its credential is the one bound to its name.
    Known,
    /// It was enrolled now (one use of its enrolment token counted).
    Enrolled,
}

/// The reason given to a revoked node and on its failed parts.
pub fn revoked_reason(name: &str) -> String {
    format!("node revoked: the operator revoked node {name}'s credential")
}

/// Checks a node's credential for `name`, enrolling it with `enrolment` (an agent token's
/// secret) if the name is not bound yet. Uses of the enrolment token are counted only when a
/// node is enrolled.
pub async fn admit(
    db: &Db,
    name: &str,
    credential: &str,
    enrolment: Option<&str>,
) -> Result<std::result::Result<Admitted, Refusal>> {
    let hash = secret::digest(credential);
    let rows = sqlx::query(
        "SELECT name, credential_hash, enrolled, revoked FROM node_identities
         WHERE name = $1 OR credential_hash = $2",
    )
    .bind(name)
    .bind(&hash)
    .fetch_all(&db.pool)
    .await?;
    // The name's own row first: a name bound elsewhere says so before anything else.
    let mut rows: Vec<&sqlx::any::AnyRow> = rows.iter().collect();
    rows.sort_by_key(|r| r.try_get::<String, _>("name").ok().as_deref() != Some(name));
    if let Some(r) = rows.first() {
        let (bound_name, bound_hash): (String, String) =
            (r.try_get("name")?, r.try_get("credential_hash")?);
        let revoked: Option<String> = r.try_get("revoked")?;
        let enrolled: String = r.try_get("enrolled")?;
        if bound_name != name {
            return Ok(Err(refuse(
                true,
                format!(
                    "this node credential belongs to node {bound_name:?}, not {name:?}: each \
                     node needs its own state directory (--state-dir)"
                ),
            )));
        }
        if !secret::ct_eq(bound_hash.as_bytes(), hash.as_bytes()) {
            return Ok(Err(refuse(
                true,
                format!(
                    "node name {name:?} is bound to another node credential (enrolled at \
                     {enrolled}{}): a name can only be taken with its own credential; for a \
                     reinstalled node, `edgecap admin node revoke {name}` and `edgecap admin \
                     node forget {name}` free it",
                    if revoked.is_some() {
                        ", now revoked"
                    } else {
                        ""
                    }
                ),
            )));
        }
        if let Some(at) = revoked {
            return Ok(Err(refuse(
                false,
                format!(
                    "{} at {at}; it cannot reconnect (`edgecap admin node forget {name}` frees \
                     the name for a new enrolment)",
                    revoked_reason(name)
                ),
            )));
        }
        return Ok(Ok(Admitted::Known));
    }
    let Some(enrolment) = enrolment else {
        return Ok(Err(refuse(
            false,
            format!(
                "node {name:?} is not enrolled: present an enrolment token (`edgecap agent \
                 --token`, from `edgecap admin agent-token create`) on its first connect"
            ),
        )));
    };
    let token = sqlx::query(
        "SELECT id, expires, max_uses, uses FROM tokens WHERE hash = $1 AND kind = 'agent'",
    )
    .bind(secret::digest(enrolment))
    .fetch_optional(&db.pool)
    .await?;
    let Some(token) = token else {
        return Ok(Err(refuse(
            false,
            "not a valid enrolment token (revoked, or never was one)".into(),
        )));
    };
    let token_id: String = token.try_get("id")?;
    let now = crate::clock::now();
    if let Some(at) = token.try_get::<Option<String>, _>("expires")?
        && at <= now
    {
        return Ok(Err(refuse(
            false,
            format!("the enrolment token expired at {at}"),
        )));
    }
    let used_up = || {
        refuse(
            false,
            "the enrolment token is used up: it enrolled as many nodes as it may (`edgecap \
             admin agent-token create --uses N` makes another)"
                .into(),
        )
    };
    if let Some(max) = token.try_get::<Option<i64>, _>("max_uses")?
        && token.try_get::<i64, _>("uses")? >= max
    {
        return Ok(Err(used_up()));
    }
    let mut conn = db.pool.acquire().await?;
    let mut tx = conn.begin().await?;
    // Writes first, so SQLite takes its write lock at once; each is guarded, so two nodes
    // racing for the last use or for one name cannot both win.
    let counted = sqlx::query(
        "UPDATE tokens SET uses = uses + 1 WHERE id = $1
         AND (max_uses IS NULL OR uses < max_uses) AND (expires IS NULL OR expires > $2)",
    )
    .bind(&token_id)
    .bind(&now)
    .execute(&mut *tx)
    .await?;
    if counted.rows_affected() == 0 {
        return Ok(Err(used_up()));
    }
    let bound = sqlx::query(
        "INSERT INTO node_identities (name, credential_hash, enrolled, enrolled_with)
         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
    )
    .bind(name)
    .bind(&hash)
    .bind(&now)
    .bind(&token_id)
    .execute(&mut *tx)
    .await?;
    if bound.rows_affected() == 0 {
        return Ok(Err(refuse(
            true,
            format!("node name {name:?} was just enrolled by another node credential"),
        )));
    }
    tx.commit().await?;
    tracing::info!(node = %name, token = %token_id, "node enrolled");
    Ok(Ok(Admitted::Enrolled))
}

/// Every identity, by name.
pub async fn list(db: &Db) -> Result<Vec<Identity>> {
    let rows = sqlx::query(
        "SELECT name, enrolled, enrolled_with, revoked FROM node_identities ORDER BY name",
    )
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Identity {
                name: r.try_get("name")?,
                enrolled: r.try_get("enrolled")?,
                enrolled_with: r.try_get("enrolled_with")?,
                revoked: r.try_get("revoked")?,
            })
        })
        .collect()
}

/// One identity.
pub async fn get(db: &Db, name: &str) -> Result<Option<Identity>> {
    Ok(list(db).await?.into_iter().find(|i| i.name == name))
}

/// Revokes a node's credential: None if no node of that name is enrolled, else the time it
/// was revoked (now, or earlier if it already was).
pub async fn revoke(db: &Db, name: &str) -> Result<Option<String>> {
    sqlx::query("UPDATE node_identities SET revoked = $2 WHERE name = $1 AND revoked IS NULL")
        .bind(name)
        .bind(crate::clock::now())
        .execute(&db.pool)
        .await?;
    Ok(get(db, name).await?.and_then(|i| i.revoked))
}

/// What [`forget`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forgot {
    Done,
    NoSuchNode,
    NotRevoked,
}

/// Removes a revoked identity, freeing its name for a new enrolment, and the node with it:
/// its `nodes` row goes (it no longer takes a share of any trigger's budget), and it counts
/// as having heard every trigger's split now (db/splits.rs: the others' shares grow an hour
/// later). Revoked, it cannot connect again with that identity; an agent that still runs
/// cut off from every server may spend its old shares until it reaches one, which refuses it
/// and makes it exit (docs/operations.md: stop the agent before forgetting its node).
pub async fn forget(db: &Db, name: &str) -> Result<Forgot> {
    let mut tx = db.pool.begin().await?;
    let done = sqlx::query("DELETE FROM node_identities WHERE name = $1 AND revoked IS NOT NULL")
        .bind(name)
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() > 0 {
        sqlx::query("DELETE FROM nodes WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        let now = crate::clock::unix_now().max(0.0) as u64;
        super::splits::forgotten(&mut tx, name, now).await?;
    }
    tx.commit().await?;
    Ok(if done.rows_affected() > 0 {
        Forgot::Done
    } else if get(db, name).await?.is_some() {
        Forgot::NotRevoked
    } else {
        Forgot::NoSuchNode
    })
}

/// The names of revoked nodes (the hub polls this to cut them off, whoever revoked them).
pub async fn revoked_names(db: &Db) -> Result<Vec<String>> {
    let rows = sqlx::query("SELECT name FROM node_identities WHERE revoked IS NOT NULL")
        .fetch_all(&db.pool)
        .await?;
    rows.iter()
        .map(|r| Ok(r.try_get("name")?))
        .collect::<Result<_>>()
}
