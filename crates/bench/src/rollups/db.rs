//! What the rollups take in the database, read with the databases' own clients (`sqlite3`
//! with its `dbstat` table, `psql` with `pg_total_relation_size`), so the benchmark links no
//! driver: bytes of each rollup table with its indexes, their rows, and the whole database.

use std::process::Command;

use crate::exit::Failure;

/// Where a run's server keeps its data.
#[derive(Debug, Clone)]
pub enum Database {
    /// The SQLite file in the server's data directory.
    Sqlite(String),
    /// A PostgreSQL URL.
    Postgres(String),
}

impl Database {
    pub fn name(&self) -> &'static str {
        match self {
            Database::Sqlite(_) => "SQLite",
            Database::Postgres(_) => "PostgreSQL",
        }
    }
}

/// One reading of the database.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sizes {
    /// `rollup_seconds` with its indexes: bytes and rows.
    pub seconds_bytes: u64,
    pub seconds_rows: u64,
    /// Rows of `rollup_seconds` not yet taken into a minute.
    pub unrolled_rows: u64,
    /// Rows taken into a minute that still carry their heavy-hitter lists (the job drops them
    /// just after the minute is in).
    pub listed_rolled_rows: u64,
    /// `rollup_minutes` with its index: bytes; rows of nodes and of the fleet (`*`).
    pub minutes_bytes: u64,
    pub minute_rows: u64,
    pub fleet_minute_rows: u64,
    /// The whole database (SQLite: pages in use and free; PostgreSQL: `pg_database_size`).
    pub total_bytes: u64,
}

const COUNTS: &str = "select (select count(*) from rollup_seconds), \
     (select count(*) from rollup_seconds where rolled = 0), \
     (select count(*) from rollup_seconds where rolled <> 0 and top_dst <> ''), \
     (select count(*) from rollup_minutes where node <> '*'), \
     (select count(*) from rollup_minutes where node = '*')";

/// Reads the database's sizes now.
pub fn sizes(db: &Database) -> Result<Sizes, Failure> {
    let (sizes_sql, counts) = match db {
        Database::Sqlite(_) => (
            "select coalesce((select sum(pgsize) from dbstat where name like 'rollup_seconds%'), 0), \
             coalesce((select sum(pgsize) from dbstat where name like 'rollup_minutes%'), 0), \
             (select page_count * page_size from pragma_page_count, pragma_page_size)",
            COUNTS,
        ),
        Database::Postgres(_) => (
            "select pg_total_relation_size('rollup_seconds'), \
             pg_total_relation_size('rollup_minutes'), pg_database_size(current_database())",
            COUNTS,
        ),
    };
    let a = query(db, sizes_sql)?;
    let b = query(db, counts)?;
    let (a, b) = match (a.as_slice(), b.as_slice()) {
        ([s, m, t], [rows, unrolled, listed, minutes, fleet]) => {
            ((*s, *m, *t), (*rows, *unrolled, *listed, *minutes, *fleet))
        }
        _ => {
            return Err(Failure::runtime(format!(
                "{}: unexpected answer reading the rollup tables' sizes",
                db.name()
            )));
        }
    };
    Ok(Sizes {
        seconds_bytes: a.0,
        minutes_bytes: a.1,
        total_bytes: a.2,
        seconds_rows: b.0,
        unrolled_rows: b.1,
        listed_rolled_rows: b.2,
        minute_rows: b.3,
        fleet_minute_rows: b.4,
    })
}

/// PostgreSQL: rewrites the rollup tables without their dead rows (`VACUUM FULL`), so their
/// size is that of the rows they hold. Downsampling rewrites each second without its lists
/// (a delete and an insert): until autovacuum lets new rows reuse the old ones' space, the
/// size would count both. Nothing on SQLite, whose freed pages leave the tables at once.
pub fn compact(db: &Database) -> Result<(), Failure> {
    let Database::Postgres(url) = db else {
        return Ok(());
    };
    let out = Command::new("psql")
        .args(["-X", "-q", "-d", url, "-c"])
        .arg("VACUUM FULL rollup_seconds, rollup_minutes")
        .output()
        .map_err(|e| Failure::runtime(format!("running psql: {e}")))?;
    match out.status.success() {
        true => Ok(()),
        false => Err(Failure::runtime(format!(
            "PostgreSQL VACUUM FULL failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))),
    }
}

/// The numbers of the one row `sql` answers.
fn query(db: &Database, sql: &str) -> Result<Vec<u64>, Failure> {
    let out = match db {
        Database::Sqlite(file) => Command::new("sqlite3")
            .args(["-readonly", "-separator", "|", file, sql])
            .output(),
        Database::Postgres(url) => Command::new("psql")
            .args(["-X", "-q", "-A", "-t", "-F", "|", "-d", url, "-c", sql])
            .output(),
    }
    .map_err(|e| {
        Failure::runtime(format!(
            "running the {} client (sqlite3 / psql must be installed): {e}",
            db.name()
        ))
    })?;
    if !out.status.success() {
        return Err(Failure::runtime(format!(
            "{} query failed: {}",
            db.name(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .split('|')
        .map(|v| {
            v.trim()
                .parse()
                .map_err(|_| Failure::runtime(format!("{}: {v:?} is not a number", db.name())))
        })
        .collect()
}
