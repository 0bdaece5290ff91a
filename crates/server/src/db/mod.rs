//! The database: one connection pool through sqlx's `any` driver, so the same runtime queries
//! (with `$1` placeholders) run on SQLite and PostgreSQL, and one set of migrations valid on
//! both. Each submodule holds the queries of one table.

pub mod accounts;
pub mod captures;
pub mod events;
pub mod identities;
mod migrate;
pub mod nodes;
pub mod ownership;
pub mod parts;
pub mod relays;
pub mod replicas;
pub mod rollups;
pub mod samples;
pub mod sealed;
pub mod sessions;
pub mod splits;
pub mod tokens;
pub mod triggers;

use std::sync::Once;
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor, Row};

use crate::error::{Error, Result};

/// Connections of a SQLite pool: the writers that may wait for the lock at once, and room
/// for the API's readers beside them.
const SQLITE_CONNECTIONS: u32 = 16;

/// Which engine is behind the pool (the few places that differ ask this).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A cheap-to-clone handle on the pool.
#[derive(Debug, Clone)]
pub struct Db {
    pub(crate) pool: AnyPool,
    pub backend: Backend,
    /// The URL it was opened with (a replica's `LISTEN` connection opens its own).
    pub(crate) url: DbUrl,
    /// This process's turns at SQLite's one write lock ([`Db::write_turn`]).
    write_turns: std::sync::Arc<tokio::sync::Mutex<()>>,
}

/// A turn at the write lock (SQLite; `None` on PostgreSQL): held until the transaction ends.
pub type WriteTurn = Option<tokio::sync::OwnedMutexGuard<()>>;

/// A database URL, which may hold a password: never printed.
#[derive(Clone)]
pub(crate) struct DbUrl(pub(crate) String);

impl std::fmt::Debug for DbUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[database url]")
    }
}

impl Db {
    /// Connects to `sqlite:///path/file.db` (created, with its directory, if missing) or
    /// `postgres://user@host:port/db`, and brings the schema up to date.
    pub async fn connect(url: &str) -> Result<Db> {
        static DRIVERS: Once = Once::new();
        DRIVERS.call_once(sqlx::any::install_default_drivers);
        let bad = |reason: &str| Error::DatabaseUrl {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let (backend, url) = if url.starts_with("sqlite:") {
            (Backend::Sqlite, prepare_sqlite(url)?)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, url.to_owned())
        } else {
            return Err(bad("use sqlite:///path/to/file.db or postgres://..."));
        };
        let options = match backend {
            // SQLite takes one writer at a time, and every connection waits for the lock
            // rather than failing at once; a writer waiting holds its connection. In WAL mode
            // readers run beside the writer, so the pool leaves room for them beside the
            // writers that may wait at once (the hub's writer, the rollup writer, the rollup
            // jobs, sessions): with 4, a page's requests queued behind those waiters.
            Backend::Sqlite => AnyPoolOptions::new()
                .max_connections(SQLITE_CONNECTIONS)
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        conn.execute("PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 10000")
                            .await?;
                        Ok(())
                    })
                }),
            Backend::Postgres => AnyPoolOptions::new().max_connections(8),
        };
        let pool = options
            .acquire_timeout(Duration::from_secs(30))
            .connect(&url)
            .await?;
        if backend == Backend::Sqlite {
            // WAL lets readers (API requests) run beside the writer. It is persistent, so
            // once per open is enough.
            pool.execute("PRAGMA journal_mode = WAL").await?;
        }
        let db = Db {
            pool,
            backend,
            url: DbUrl(url.clone()),
            write_turns: Default::default(),
        };
        migrate::run(&db).await?;
        Ok(db)
    }

    /// Another handle on the same database with a pool of its own of at most `connections`
    /// (no migrations: the schema is this one's). For work that must not wait behind the
    /// shared pool, such as a replica's lease renewal while rollups or queries hold every
    /// shared connection.
    pub async fn dedicated(&self, connections: u32) -> Result<Db> {
        let pool = AnyPoolOptions::new()
            .max_connections(connections.max(1))
            .acquire_timeout(Duration::from_secs(30))
            .connect(&self.url.0)
            .await?;
        Ok(Db {
            pool,
            backend: self.backend,
            url: self.url.clone(),
            write_turns: self.write_turns.clone(),
        })
    }

    /// A trivial query, for `/healthz`.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Migrations of this build not recorded as applied (0: the schema is ready).
    pub async fn migrations_pending(&self) -> Result<usize> {
        migrate::pending(self).await
    }

    /// Captures per status, every account (for `/metrics`).
    pub async fn captures_by_status(&self) -> Result<Vec<(String, i64)>> {
        Ok(
            sqlx::query_as("SELECT status, COUNT(*) FROM captures GROUP BY status")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// A transaction that reads, then writes. On SQLite it takes the write lock first (`BEGIN
    /// IMMEDIATE`, waiting up to the busy timeout): two such transactions never both read
    /// before either writes, and none fails upgrading its read lock while another writes.
    /// (`quota.rs`'s check-and-insert; on PostgreSQL its row and advisory locks serialise.)
    /// It comes with this process's turn at the write lock ([`Db::write_turn`]): keep the
    /// turn until the transaction has ended.
    pub async fn begin_write(&self) -> Result<(WriteTurn, sqlx::Transaction<'static, sqlx::Any>)> {
        let turn = self.write_turn().await;
        let tx = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        };
        Ok((turn, tx))
    }

    /// Waits for this process's turn to write (SQLite; PostgreSQL locks rows, not the
    /// database, so there it is `None` at once). SQLite has one write lock, and a writer that
    /// finds it taken sleeps and polls (its busy timeout): a writer that commits and begins
    /// again at once, like the rollup writer with a thousand agents' seconds, holds it nearly
    /// all the time, and a login's one session write waited behind it for seconds. The big
    /// writers (the rollup writer, the downsampling job, the hub's capture writer and
    /// [`Db::begin_write`]) take a turn first, in the order they asked (a fair queue), so a
    /// write waits for the transactions ahead of it, not for luck. Hold it until the
    /// transaction ends; never ask for a second turn while holding one.
    pub async fn write_turn(&self) -> WriteTurn {
        match self.backend {
            Backend::Sqlite => Some(self.write_turns.clone().lock_owned().await),
            Backend::Postgres => None,
        }
    }

    /// A read transaction: every statement in it sees the database as of its first read,
    /// so what several statements read together (a row and its children, a count and a
    /// page) is never half of a concurrent write. PostgreSQL: `REPEATABLE READ READ ONLY`
    /// (one snapshot for the transaction); SQLite: a deferred transaction, whose first read
    /// takes a snapshot of the WAL that it keeps until it ends, beside the writer. End it
    /// with `commit` (or drop it).
    pub async fn begin_read(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN DEFERRED").await?,
            Backend::Postgres => {
                self.pool
                    .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    .await?
            }
        })
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Adds `mode=rwc` so the file is created, and creates its directory.
fn prepare_sqlite(url: &str) -> Result<String> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or_default();
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return Err(Error::DatabaseUrl {
            url: url.to_owned(),
            reason: "give a file, e.g. sqlite:///var/lib/edgecap/edgecap.db (an in-memory \
                     database would lose every capture at exit)"
                .into(),
        });
    }
    if let Some(dir) = std::path::Path::new(path).parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            what: format!("creating database directory {}", dir.display()),
            source,
        })?;
    }
    Ok(if rest.contains("mode=") {
        url.to_owned()
    } else if rest.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    })
}

/// Tables of the schema, for [`count_rows`].
pub const TABLES: &[&str] = &[
    "accounts",
    "tokens",
    "nodes",
    "captures",
    "capture_nodes",
    "ownerships",
    "node_identities",
    "account_quotas",
    "replicas",
    "node_sessions",
    "claims",
    "rollup_seconds",
    "rollup_minutes",
    "rollup_fresh",
    "rollup_hours",
    "rollup_fresh_top",
    "sample_files",
    "simple_requests",
    "lookback_relays",
    "dashboard_sessions",
    "triggers",
    "events",
    "event_nodes",
    "event_firings",
    "trigger_grants",
    "trigger_epochs",
    "trigger_heard",
    "trigger_byte_grants",
];

/// Rows in one of [`TABLES`] (tests and diagnostics).
pub async fn count_rows(db: &Db, table: &str) -> Result<i64> {
    let Some(table) = TABLES.iter().find(|t| **t == table) else {
        return Err(Error::Corrupt {
            what: "table name".into(),
            reason: format!("{table:?} is not one of {TABLES:?}"),
        });
    };
    let sql = format!("SELECT COUNT(*) FROM {table}");
    Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_one(&db.pool)
        .await?)
}

/// Counters are u64 in the API and BIGINT in SQL.
pub(crate) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(crate) fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

pub(crate) fn opt_u64(row: &AnyRow, col: &str) -> Result<Option<u64>> {
    Ok(row.try_get::<Option<i64>, _>(col)?.map(to_u64))
}

/// `$from, $from+1, ...` for an `IN (...)` list of `n` values.
pub(crate) fn placeholders(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_get_create_mode() {
        let dir = std::env::temp_dir().join(format!("edgecap-db-url-{}", std::process::id()));
        let url = format!("sqlite://{}/x.db", dir.display());
        assert_eq!(prepare_sqlite(&url).unwrap(), format!("{url}?mode=rwc"));
        assert!(dir.is_dir());
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(prepare_sqlite("sqlite::memory:").is_err());
        assert_eq!(placeholders(2, 3), "$2, $3, $4");
    }

    /// On SQLite a write transaction comes with this process's turn to write and keeps it
    /// until it ends: a writer asking meanwhile waits in line instead of polling SQLite's lock
    /// (the rollup writer's batches, a login); turns are served in the order asked.
    #[tokio::test]
    async fn a_write_transaction_holds_the_turn_and_turns_come_in_order() {
        let dir = std::env::temp_dir().join(format!("edgecap-db-turn-{}", std::process::id()));
        let db = Db::connect(&format!("sqlite://{}/t.db", dir.display()))
            .await
            .unwrap();
        let (turn, mut tx) = db.begin_write().await.unwrap();
        assert!(turn.is_some(), "SQLite writes take turns");
        let order = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut waiting = Vec::new();
        for i in 0..3 {
            let (db, order) = (db.clone(), order.clone());
            waiting.push(tokio::spawn(async move {
                let _turn = db.write_turn().await;
                order.lock().unwrap().push(i);
            }));
            // Each asks before the next one does.
            for _ in 0..20 {
                tokio::task::yield_now().await;
            }
        }
        sqlx::query("DELETE FROM dashboard_sessions")
            .execute(&mut *tx)
            .await
            .unwrap();
        assert!(
            order.lock().unwrap().is_empty(),
            "nobody writes before the transaction ends"
        );
        tx.commit().await.unwrap();
        drop(turn);
        for w in waiting {
            w.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![0, 1, 2]);
        db.close().await;
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
