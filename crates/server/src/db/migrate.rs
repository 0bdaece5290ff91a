//! Schema migrations: SQL files embedded in the binary, applied in order, each in its own
//! transaction, and recorded in `schema_migrations`. (sqlx's migrator needs its macros, which
//! this workspace does not build.)

use sqlx::{Acquire, Executor};

use super::{Backend, Db};
use crate::error::{Error, Result};

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("../../migrations/0001_init.sql")),
    (
        2,
        "buckets",
        include_str!("../../migrations/0002_buckets.sql"),
    ),
    (
        3,
        "identities",
        include_str!("../../migrations/0003_identities.sql"),
    ),
    (
        4,
        "tenancy",
        include_str!("../../migrations/0004_tenancy.sql"),
    ),
    (
        5,
        "quotas",
        include_str!("../../migrations/0005_quotas.sql"),
    ),
    (
        6,
        "replicas",
        include_str!("../../migrations/0006_replicas.sql"),
    ),
    (
        7,
        "node_health",
        include_str!("../../migrations/0007_node_health.sql"),
    ),
    (
        8,
        "rollups",
        include_str!("../../migrations/0008_rollups.sql"),
    ),
    (
        9,
        "sample_files",
        include_str!("../../migrations/0009_sample_files.sql"),
    ),
    (
        10,
        "simple_rate",
        include_str!("../../migrations/0010_simple_rate.sql"),
    ),
    (
        11,
        "triggers",
        include_str!("../../migrations/0011_triggers.sql"),
    ),
    (
        12,
        "lookback_relays",
        include_str!("../../migrations/0012_lookback_relays.sql"),
    ),
    (
        13,
        "dashboard_sessions",
        include_str!("../../migrations/0013_dashboard_sessions.sql"),
    ),
    (
        14,
        "events",
        include_str!("../../migrations/0014_events.sql"),
    ),
    (
        15,
        "lighter_rollups",
        include_str!("../../migrations/0015_lighter_rollups.sql"),
    ),
    (
        16,
        "trigger_grants",
        include_str!("../../migrations/0016_trigger_grants.sql"),
    ),
    (
        17,
        "trigger_epochs",
        include_str!("../../migrations/0017_trigger_epochs.sql"),
    ),
    (
        18,
        "fresh_minutes",
        include_str!("../../migrations/0018_fresh_minutes.sql"),
    ),
    (
        19,
        "trigger_bytes_pool",
        include_str!("../../migrations/0019_trigger_bytes_pool.sql"),
    ),
    (
        20,
        "rollup_hours",
        include_str!("../../migrations/0020_rollup_hours.sql"),
    ),
    (
        21,
        "fresh_fleet_hitters",
        include_str!("../../migrations/0021_fresh_fleet_hitters.sql"),
    ),
];

/// How many of [`MIGRATIONS`] the database has not recorded (for `/readyz`).
pub(super) async fn pending(db: &Db) -> Result<usize> {
    let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM schema_migrations")
        .fetch_all(&db.pool)
        .await?;
    Ok(MIGRATIONS
        .iter()
        .filter(|(v, _, _)| !applied.contains(v))
        .count())
}

pub(super) async fn run(db: &Db) -> Result<()> {
    let mut conn = db.pool.acquire().await?;
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied TEXT NOT NULL)",
    )
    .await?;
    for &(version, name, sql) in MIGRATIONS {
        let fail = |source| Error::Migrate {
            version,
            name,
            source,
        };
        let mut tx = conn.begin().await.map_err(fail)?;
        if db.backend == Backend::Postgres {
            // Replicas starting together: the first migrates, the others wait and then skip.
            tx.execute("SELECT pg_advisory_xact_lock(7158335131)")
                .await
                .map_err(fail)?;
        }
        let done: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM schema_migrations WHERE version = $1")
                .bind(version)
                .fetch_one(&mut *tx)
                .await
                .map_err(fail)?;
        if done > 0 {
            continue;
        }
        for statement in statements(sql) {
            tx.execute(sqlx::AssertSqlSafe(statement))
                .await
                .map_err(fail)?;
        }
        sqlx::query("INSERT INTO schema_migrations (version, name, applied) VALUES ($1, $2, $3)")
            .bind(version)
            .bind(name)
            .bind(crate::clock::now())
            .execute(&mut *tx)
            .await
            .map_err(fail)?;
        tx.commit().await.map_err(fail)?;
        tracing::info!(version, name, "applied database migration");
    }
    Ok(())
}

/// Splits a migration into statements (our files have no `;` inside strings), dropping
/// comment lines.
fn statements(sql: &str) -> Vec<String> {
    let text: String = sql
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    text.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_schema_splits_into_its_statements() {
        let s = super::statements(super::MIGRATIONS[0].2);
        assert!(s.iter().all(|s| s.starts_with("CREATE ")), "{s:?}");
        assert_eq!(
            s.iter().filter(|s| s.starts_with("CREATE TABLE")).count(),
            6
        );
        let s = super::statements(super::MIGRATIONS[1].2);
        assert_eq!(s.len(), 3, "{s:?}");
        assert!(s.iter().all(|s| s.starts_with("ALTER TABLE ")), "{s:?}");
        let s = super::statements(super::MIGRATIONS[2].2);
        assert_eq!(s.len(), 6, "{s:?}");
        let replicas = super::MIGRATIONS.iter().find(|m| m.0 == 6).unwrap();
        let s = super::statements(replicas.2);
        assert_eq!(s.len(), 4, "{s:?}");
    }

    /// A database made before identities and scopes: its API tokens keep what they could do
    /// (read, write, tokens), its agent tokens become enrolment tokens without limits.
    #[tokio::test]
    async fn tokens_from_before_version_3_keep_working() {
        use sqlx::Executor;

        use crate::auth::Scope;
        use crate::db::{Db, tokens};
        let dir = std::env::temp_dir().join(format!(
            "edgecap-migrate-{}-{}",
            std::process::id(),
            crate::secret::new_id()
        ));
        let url = format!("sqlite://{}/old.db", dir.display());
        // Version 2, by hand, with one token of each kind.
        let db = Db::connect(&url).await.unwrap();
        db.pool.execute("DROP TABLE node_identities").await.unwrap();
        db.pool
            .execute(
                "ALTER TABLE tokens DROP COLUMN scopes; ALTER TABLE tokens DROP COLUMN expires;
                 ALTER TABLE tokens DROP COLUMN max_uses; ALTER TABLE tokens DROP COLUMN uses;
                 DELETE FROM schema_migrations WHERE version = 3;
                 INSERT INTO accounts (id, name, created)
                     VALUES ('0123456789abcdef0123456789abcdef', 'old', 'x');",
            )
            .await
            .unwrap();
        for (kind, account, secret) in [
            ("api", Some("0123456789abcdef0123456789abcdef"), "ecp_old"),
            ("agent", None, "eca_old"),
        ] {
            sqlx::query(
                "INSERT INTO tokens (id, account_id, kind, hash, name, created)
                 VALUES ($1, $2, $3, $4, 'old', 'x')",
            )
            .bind(crate::secret::new_id())
            .bind(account)
            .bind(kind)
            .bind(crate::secret::digest(secret))
            .execute(&db.pool)
            .await
            .unwrap();
        }
        db.close().await;
        let db = Db::connect(&url).await.unwrap();
        match tokens::api_lookup(&db, "ecp_old").await.unwrap() {
            tokens::ApiLookup::Valid { scopes, .. } => assert_eq!(scopes, Scope::DEFAULT),
            other => panic!("{other:?}"),
        }
        assert!(tokens::is_agent(&db, "eca_old").await.unwrap());
        db.close().await;
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A database made before tenancy: its accounts stay unrestricted (an upgrade changes
    /// nothing), and a new tenancy can be stored for them.
    #[tokio::test]
    async fn accounts_from_before_version_4_stay_unrestricted() {
        use sqlx::Executor;

        use crate::db::{Db, accounts};
        let dir = std::env::temp_dir().join(format!(
            "edgecap-migrate4-{}-{}",
            std::process::id(),
            crate::secret::new_id()
        ));
        let url = format!("sqlite://{}/old.db", dir.display());
        let db = Db::connect(&url).await.unwrap();
        db.pool
            .execute(
                "DROP TABLE account_prefixes; DROP TABLE account_nodes;
                 ALTER TABLE accounts DROP COLUMN unrestricted;
                 DELETE FROM schema_migrations WHERE version = 4;
                 INSERT INTO accounts (id, name, created)
                     VALUES ('0123456789abcdef0123456789abcdef', 'old', 'x');",
            )
            .await
            .unwrap();
        db.close().await;
        let db = Db::connect(&url).await.unwrap();
        let id = "0123456789abcdef0123456789abcdef";
        let t = accounts::tenancy(&db, id).await.unwrap();
        assert!(
            t.unrestricted && t.prefixes.is_empty() && t.nodes.is_empty(),
            "{t:?}"
        );
        let restricted =
            crate::tenancy::Tenancy::new(false, &["198.18.7.0/24"], &["edge0"]).unwrap();
        assert!(accounts::set_tenancy(&db, id, &restricted).await.unwrap());
        assert_eq!(accounts::tenancy(&db, id).await.unwrap(), restricted);
        db.close().await;
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Rollups written before version 15 (JSON lists, the wider time indexes): the upgrade
    /// rebuilds the indexes only, the old rows still read, and downsampling them keeps their
    /// lists in the minute while the seconds lose theirs.
    #[tokio::test]
    async fn rollups_from_before_version_15_still_read_and_downsample() {
        use sqlx::Executor;

        use crate::db::Db;
        use crate::db::rollups::{self, Scope, Selection, Table};
        let dir = std::env::temp_dir().join(format!(
            "edgecap-migrate15-{}-{}",
            std::process::id(),
            crate::secret::new_id()
        ));
        let url = format!("sqlite://{}/old.db", dir.display());
        let db = Db::connect(&url).await.unwrap();
        let json = r#"'{"floor":0,"keys":[["198.18.9.9",5,0]]}'"#;
        let ports = r#"'{"floor":0,"keys":[[53,5,0]]}'"#;
        db.pool
            .execute(sqlx::AssertSqlSafe(format!(
                "DROP INDEX rollup_seconds_time; DROP INDEX rollup_minutes_time;
                 CREATE INDEX rollup_seconds_time
                     ON rollup_seconds (account_id, t, node, point, packets, bytes);
                 CREATE INDEX rollup_minutes_time
                     ON rollup_minutes (account_id, node, t, point, packets, bytes);
                 DELETE FROM schema_migrations WHERE version = 15;
                 INSERT INTO rollup_seconds (node, point, account_id, t, packets, bytes, exact,
                     samples, one_in, ipv4, ipv6, tcp, udp, icmp, other, syn, rst, lengths,
                     top_dst, top_src, top_dport)
                 VALUES ('edge0', 'pre-firewall', NULL, 120, 5, 500, 1, 5, 1, 5, 0, 0, 5, 0,
                     0, 0, 0, '[0,5,0,0,0,0,0,0]', {json}, {json}, {ports});"
            )))
            .await
            .unwrap();
        db.close().await;
        let db = Db::connect(&url).await.unwrap();
        let index: String =
            sqlx::query_scalar("SELECT sql FROM sqlite_master WHERE name = 'rollup_seconds_time'")
                .fetch_one(&db.pool)
                .await
                .unwrap();
        assert!(!index.contains("packets"), "{index}");
        let sel = Selection {
            scope: Scope::WholeNodes,
            since: 0,
            until: 600,
            nodes: vec![],
            points: vec![],
            fleet: false,
        };
        let rows = |table| {
            let (db, sel) = (db.clone(), sel.clone());
            async move {
                let mut v = Vec::new();
                rollups::each_row(&db, table, &sel, |r| v.push(r))
                    .await
                    .unwrap();
                v
            }
        };
        let before = rows(Table::Seconds).await;
        assert_eq!(before.len(), 1);
        assert_eq!(
            before[0].top_dst.keys,
            vec![("198.18.9.9".to_owned(), 5, 0)]
        );
        assert_eq!(before[0].top_dport.keys, vec![(53, 5, 0)]);
        assert!(!before[0].hitters_dropped);
        assert_eq!(rollups::downsample(&db, 120, 180, 77).await.unwrap(), 1);
        assert_eq!(rollups::drop_lists(&db, 77, 120, 180).await.unwrap(), 1);
        let seconds = rows(Table::Seconds).await;
        assert_eq!(seconds.len(), 1);
        assert!(seconds[0].hitters_dropped);
        assert_eq!((seconds[0].packets, seconds[0].bytes), (5, 500));
        let minutes = rows(Table::Minutes).await;
        assert_eq!(minutes.len(), 1, "the node's minute (the second is taken)");
        assert_eq!(
            minutes[0].top_dst.keys,
            vec![("198.18.9.9".to_owned(), 5, 0)]
        );
        assert_eq!(minutes[0].top_dport.keys, vec![(53, 5, 0)]);
        db.close().await;
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Seconds stored before version 18: the upgrade sums those not yet downsampled into
    /// their fresh minutes (whole nodes and accounts apart), not the ones already taken.
    #[tokio::test]
    async fn seconds_from_before_version_18_make_their_fresh_minutes() {
        use sqlx::Executor;

        use crate::db::Db;
        use crate::db::rollups::{self, FreshRow};
        let dir = std::env::temp_dir().join(format!(
            "edgecap-migrate18-{}-{}",
            std::process::id(),
            crate::secret::new_id()
        ));
        let url = format!("sqlite://{}/old.db", dir.display());
        let db = Db::connect(&url).await.unwrap();
        let acme = "0123456789abcdef0123456789abcdef";
        let second = |node: &str, account: Option<&str>, t: i64, packets: i64, rolled: i64| {
            let account = account.map_or("NULL".to_owned(), |a| format!("'{a}'"));
            format!(
                "INSERT INTO rollup_seconds (node, point, account_id, t, packets, bytes, exact,
                     samples, one_in, ipv4, ipv6, tcp, udp, icmp, other, syn, rst, lengths,
                     top_dst, top_src, top_dport, rolled)
                 VALUES ('{node}', 'pre-firewall', {account}, {t}, {packets}, {}, 1, 0, 1, 0,
                     0, {packets}, 0, 1, 0, 0, 0, '[0,0,0,0,0,0,0,0]', '', '', '', {rolled});",
                packets * 100
            )
        };
        let rows = [
            second("edge0", None, 120, 5, 0),
            second("edge0", None, 179, 6, 0),
            second("edge0", None, 180, 7, 0),
            second("edge1", None, 125, 8, 0),
            second("edge0", Some(acme), 130, 9, 0),
            second("edge0", None, 60, 1000, 42),
        ]
        .concat();
        db.pool
            .execute(sqlx::AssertSqlSafe(format!(
                "DROP TABLE rollup_fresh; DELETE FROM schema_migrations WHERE version = 18; {rows}"
            )))
            .await
            .unwrap();
        db.close().await;
        let db = Db::connect(&url).await.unwrap();
        let row = |account: Option<&str>, t, node: &str, seconds, packets: i64| FreshRow {
            account_id: account.map(str::to_owned),
            t,
            node: node.into(),
            point: "pre-firewall".into(),
            seconds,
            packets,
            bytes: packets * 100,
            protos: [packets, 0, seconds, 0],
        };
        assert_eq!(
            rollups::fresh_rows(&db).await.unwrap(),
            vec![
                row(None, 120, "edge0", 2, 11),
                row(None, 120, "edge1", 1, 8),
                row(None, 180, "edge0", 1, 7),
                row(Some(acme), 120, "edge0", 1, 9),
            ]
        );
        db.close().await;
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Minutes stored before version 20: the upgrade sums them into their hours (whole
    /// nodes, the fleet and accounts apart), and minutes inserted after it add to those.
    #[tokio::test]
    async fn minutes_from_before_version_20_make_their_hours() {
        use sqlx::Executor;

        use crate::db::Db;
        use crate::db::rollups::{self, HourRow, Rollup, Table};
        let dir = std::env::temp_dir().join(format!(
            "edgecap-migrate20-{}-{}",
            std::process::id(),
            crate::secret::new_id()
        ));
        let url = format!("sqlite://{}/old.db", dir.display());
        let db = Db::connect(&url).await.unwrap();
        let acme = "0123456789abcdef0123456789abcdef";
        let minute = |node: &str, account: Option<&str>, t: i64, packets: i64| {
            let account = account.map_or("NULL".to_owned(), |a| format!("'{a}'"));
            format!(
                "INSERT INTO rollup_minutes (node, point, account_id, t, seconds, packets, bytes,
                     exact, samples, one_in, ipv4, ipv6, tcp, udp, icmp, other, syn, rst,
                     lengths, top_dst, top_src, top_dport)
                 VALUES ('{node}', 'pre-firewall', {account}, {t}, 60, {packets}, {}, 60, 0, 1,
                     0, 0, 0, {packets}, 0, 0, 0, 0, '[0,0,0,0,0,0,0,0]', '', '', '');",
                packets * 100
            )
        };
        let rows = [
            minute("edge0", None, 3600, 5),
            minute("edge0", None, 7140, 6),
            minute("edge0", None, 7200, 7),
            minute("*", None, 3600, 5),
            minute("edge0", Some(acme), 3660, 9),
        ]
        .concat();
        db.pool
            .execute(sqlx::AssertSqlSafe(format!(
                "DROP TABLE rollup_hours; DELETE FROM schema_migrations WHERE version = 20; {rows}"
            )))
            .await
            .unwrap();
        db.close().await;
        let db = Db::connect(&url).await.unwrap();
        let row = |account: Option<&str>, node: &str, t, minutes, packets: i64| HourRow {
            account_id: account.map(str::to_owned),
            node: node.into(),
            t,
            point: "pre-firewall".into(),
            minutes,
            packets,
            bytes: packets * 100,
            protos: [0, packets, 0, 0],
        };
        assert_eq!(
            rollups::hour_rows(&db).await.unwrap(),
            vec![
                row(None, "*", 3600, 1, 5),
                row(None, "edge0", 3600, 2, 11),
                row(None, "edge0", 7200, 1, 7),
                row(Some(acme), "edge0", 3600, 1, 9),
            ]
        );
        // A minute inserted now adds to its hour.
        let late = Rollup {
            node: "edge0".into(),
            point: "pre-firewall".into(),
            t: 7260,
            seconds: 60,
            packets: 3,
            bytes: 300,
            udp: 3,
            ..Rollup::default()
        };
        rollups::insert_all(&db, Table::Minutes, &[late])
            .await
            .unwrap();
        assert_eq!(
            rollups::hour_rows(&db).await.unwrap()[2],
            row(None, "edge0", 7200, 2, 10)
        );
        db.close().await;
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
