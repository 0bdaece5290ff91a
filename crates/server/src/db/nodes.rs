//! `nodes`: every node that ever said hello, with its labels and capture points. Whether a
//! node is connected right now is the hub's knowledge; the column follows it.

use std::collections::BTreeMap;

use edgecap_model::Node;
use sqlx::Row;

use super::Db;
use crate::error::{Error, Result};

/// What a node says about itself in `hello`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub points: Vec<String>,
    pub version: String,
    /// What the agent announced in `hello.features` that this server knows
    /// (`edgecap_model::protocol::FEATURE_BOUNDARY`); others are dropped. Not stored: a
    /// node's features are those of its current connection.
    pub features: Vec<String>,
}

impl NodeInfo {
    /// Whether the agent enforces assignment prefixes (the tenant boundary).
    pub fn enforces_boundary(&self) -> bool {
        self.features
            .iter()
            .any(|f| f == edgecap_model::protocol::FEATURE_BOUNDARY)
    }
}

/// Records a node as connected (insert or update), inside the caller's transaction.
pub async fn seen(conn: &mut sqlx::AnyConnection, node: &NodeInfo, at: &str) -> Result<()> {
    let labels = serde_json::to_string(&node.labels).unwrap_or_else(|_| "{}".into());
    let points = serde_json::to_string(&node.points).unwrap_or_else(|_| "[]".into());
    sqlx::query(
        "INSERT INTO nodes (name, labels, points, version, connected, last_seen)
         VALUES ($1, $2, $3, $4, 1, $5)
         ON CONFLICT (name) DO UPDATE SET labels = $2, points = $3, version = $4,
             connected = 1, last_seen = $5, health = NULL",
    )
    .bind(&node.name)
    .bind(labels)
    .bind(points)
    .bind(&node.version)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records a node as gone.
pub async fn gone(conn: &mut sqlx::AnyConnection, name: &str, at: &str) -> Result<()> {
    sqlx::query("UPDATE nodes SET connected = 0, last_seen = $2, health = NULL WHERE name = $1")
        .bind(name)
        .bind(at)
        .execute(conn)
        .await?;
    Ok(())
}

/// Records the health a connected node's agent reported.
pub async fn set_health(
    conn: &mut sqlx::AnyConnection,
    name: &str,
    health: &edgecap_model::NodeHealth,
) -> Result<()> {
    sqlx::query("UPDATE nodes SET health = $2 WHERE name = $1")
        .bind(name)
        .bind(serde_json::to_string(health).unwrap_or_default())
        .execute(conn)
        .await?;
    Ok(())
}

/// At startup no node is connected to this process yet.
pub async fn reset_connected(db: &Db) -> Result<()> {
    sqlx::query("UPDATE nodes SET connected = 0 WHERE connected <> 0")
        .execute(&db.pool)
        .await?;
    Ok(())
}

pub async fn list(db: &Db) -> Result<Vec<Node>> {
    let rows = sqlx::query(
        "SELECT name, labels, points, version, connected, last_seen, health FROM nodes
         ORDER BY name",
    )
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            let name: String = r.try_get("name")?;
            let corrupt = |e: serde_json::Error| Error::Corrupt {
                what: format!("node {name}"),
                reason: e.to_string(),
            };
            let labels: String = r.try_get("labels")?;
            let points: String = r.try_get("points")?;
            let health: Option<String> = r.try_get("health")?;
            Ok(Node {
                // Written by this server from a bounded value; anything else reads as none.
                health: health.and_then(|h| serde_json::from_str(&h).ok()),
                labels: serde_json::from_str(&labels).map_err(corrupt)?,
                points: serde_json::from_str(&points).map_err(corrupt)?,
                version: r.try_get("version")?,
                connected: r.try_get::<i64, _>("connected")? != 0,
                last_seen: r.try_get("last_seen")?,
                name,
            })
        })
        .collect()
}
