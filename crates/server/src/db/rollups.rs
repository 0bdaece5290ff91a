//! `rollup_seconds` and `rollup_minutes`: the agents' per-second traffic rollups and their
//! per-minute downsampling (see `crate::rollups` for the rules; this file is the SQL).

use std::collections::{BTreeMap, HashMap};

use futures_util::TryStreamExt;
use sqlx::any::AnyRow;
use sqlx::{Acquire, Row};

use super::{Db, to_i64, to_u64};
use crate::error::{Error, Result};
use crate::rollups::hitters::{self, MERGE_CAPACITY, Merge, STORED_KEYS, Stored};

/// One stored row (a second or a minute of one node, point and account scope).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rollup {
    pub node: String,
    pub point: String,
    pub account_id: Option<String>,
    pub t: i64,
    /// Seconds merged into this row (1 for a second).
    pub seconds: i64,
    pub packets: u64,
    pub bytes: u64,
    /// Seconds whose totals came from counters.
    pub exact: u64,
    pub samples: u64,
    pub one_in: u64,
    pub families: [u64; 2],
    pub tcp: u64,
    pub udp: u64,
    pub icmp: u64,
    pub other: u64,
    pub syn: u64,
    pub rst: u64,
    pub lengths: [u64; 8],
    pub top_dst: Stored<String>,
    pub top_src: Stored<String>,
    pub top_dport: Stored<u16>,
    /// The heavy-hitter lists were dropped (a second already downsampled: its lists live on
    /// in its minute); the three lists above are then empty and say nothing.
    pub hitters_dropped: bool,
}

/// Which table a query reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Seconds,
    Minutes,
}

const COLUMNS: &str = "node, point, account_id, t, packets, bytes, exact, samples, one_in, \
                       ipv4, ipv6, tcp, udp, icmp, other, syn, rst, lengths, top_dst, top_src, \
                       top_dport";
const NCOL: usize = 21;
/// Rows per INSERT statement (NCOL + 1 parameters each, far below SQLite's limit).
const ROWS_PER_STATEMENT: usize = 40;

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

/// A list as stored: empty when dropped.
fn list<K: hitters::StoredKey>(r: &Rollup, l: &Stored<K>) -> String {
    match r.hitters_dropped {
        true => String::new(),
        false => hitters::encode(l),
    }
}

/// Inserts rows into `table` inside the caller's connection or transaction.
pub async fn insert(conn: &mut sqlx::AnyConnection, table: Table, rows: &[Rollup]) -> Result<()> {
    if table == Table::Seconds {
        // First, so that on PostgreSQL a writer waiting for the job's lock on this table
        // (mark_and_insert) holds no row lock the job needs.
        add_fresh_top(conn, rows).await?;
    }
    let (name, extra) = match table {
        Table::Seconds => ("rollup_seconds", ""),
        Table::Minutes => ("rollup_minutes", ", seconds"),
    };
    let width = NCOL + usize::from(table == Table::Minutes);
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| format!("({})", super::placeholders(1 + i * width, width)))
            .collect();
        let sql = format!(
            "INSERT INTO {name} ({COLUMNS}{extra}) VALUES {}",
            values.join(", ")
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for r in chunk {
            q = q
                .bind(r.node.clone())
                .bind(r.point.clone())
                .bind(r.account_id.clone())
                .bind(r.t)
                .bind(to_i64(r.packets))
                .bind(to_i64(r.bytes))
                .bind(to_i64(r.exact))
                .bind(to_i64(r.samples))
                .bind(to_i64(r.one_in))
                .bind(to_i64(r.families[0]))
                .bind(to_i64(r.families[1]))
                .bind(to_i64(r.tcp))
                .bind(to_i64(r.udp))
                .bind(to_i64(r.icmp))
                .bind(to_i64(r.other))
                .bind(to_i64(r.syn))
                .bind(to_i64(r.rst))
                .bind(json(&r.lengths))
                .bind(list(r, &r.top_dst))
                .bind(list(r, &r.top_src))
                .bind(list(r, &r.top_dport));
            if table == Table::Minutes {
                q = q.bind(r.seconds);
            }
        }
        q.execute(&mut *conn).await?;
    }
    match table {
        // New seconds are not downsampled: their minutes' fresh sums grow with them.
        Table::Seconds => add_fresh(conn, &fresh_sums(rows), Sign::Add).await?,
        // New minutes add to their hours' sums.
        Table::Minutes => add_hours(conn, rows).await?,
    }
    Ok(())
}

/// A row of `rollup_fresh` (migration 0018): account scope (`''`: whole nodes), minute, node
/// and point.
type FreshKey = (String, i64, String, String);

/// The sums `rollup_fresh` keeps of the seconds not yet downsampled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct FreshSums {
    seconds: i64,
    packets: u64,
    bytes: u64,
    protos: [u64; 4],
}

fn fresh_key(r: &Rollup) -> FreshKey {
    (
        r.account_id.clone().unwrap_or_default(),
        r.t - r.t.rem_euclid(60),
        r.node.clone(),
        r.point.clone(),
    )
}

impl FreshSums {
    /// Adds a second (or a minute of seconds) of the rollups, counting its seconds.
    fn add(&mut self, r: &Rollup) {
        self.add_counting(r, r.seconds);
    }

    /// Adds a row's sums, counting it as `count` (a minute row is one of an hour's minutes).
    fn add_counting(&mut self, r: &Rollup, count: i64) {
        self.seconds += count;
        self.packets = self.packets.saturating_add(r.packets);
        self.bytes = self.bytes.saturating_add(r.bytes);
        for (sum, v) in self.protos.iter_mut().zip([r.tcp, r.udp, r.icmp, r.other]) {
            *sum = sum.saturating_add(v);
        }
    }
}

/// Seconds summed per fresh row, in key order (the order every writer of `rollup_fresh`
/// takes its rows' locks in on PostgreSQL, so the rollup writer and the job never deadlock).
fn fresh_sums(rows: &[Rollup]) -> BTreeMap<FreshKey, FreshSums> {
    let mut sums: BTreeMap<FreshKey, FreshSums> = BTreeMap::new();
    for r in rows {
        sums.entry(fresh_key(r)).or_default().add(r);
    }
    sums
}

/// One row of `rollup_fresh` as stored ([`fresh_rows`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreshRow {
    /// The account of the seconds (None: whole nodes).
    pub account_id: Option<String>,
    /// The minute's first second.
    pub t: i64,
    pub node: String,
    pub point: String,
    pub seconds: i64,
    pub packets: i64,
    pub bytes: i64,
    /// TCP, UDP, ICMP, other.
    pub protos: [i64; 4],
}

/// Every row of `rollup_fresh` in key order (tests and diagnostics: each is the sum of the
/// seconds of its minute not yet downsampled).
pub async fn fresh_rows(db: &Db) -> Result<Vec<FreshRow>> {
    sum_rows(db, Summed::Fresh, "scope, t, node, point").await
}

/// Every row of a table of sums in `order`, as [`FreshRow`]s (`seconds`: its count column).
async fn sum_rows(db: &Db, summed: Summed, order: &str) -> Result<Vec<FreshRow>> {
    let (table, _, count) = summed.table();
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT scope, t, node, point, {count} AS n, packets, bytes, tcp, udp, icmp, other \
         FROM {table} ORDER BY {order}"
    )))
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            let scope: String = r.try_get("scope")?;
            Ok(FreshRow {
                account_id: Some(scope).filter(|s| !s.is_empty()),
                t: r.try_get("t")?,
                node: r.try_get("node")?,
                point: r.try_get("point")?,
                seconds: r.try_get("n")?,
                packets: r.try_get("packets")?,
                bytes: r.try_get("bytes")?,
                protos: [
                    r.try_get("tcp")?,
                    r.try_get("udp")?,
                    r.try_get("icmp")?,
                    r.try_get("other")?,
                ],
            })
        })
        .collect()
}

/// Whether [`add_fresh`] adds seconds (the writer) or takes them away (the job).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sign {
    Add,
    Subtract,
}

/// Fresh rows per statement of [`add_fresh`] (11 parameters each).
const FRESH_PER_STATEMENT: usize = 80;

/// The tables of sums kept beside the rollups: `rollup_fresh` (a minute's seconds not yet
/// downsampled, migration 0018) and `rollup_hours` (an hour's minutes, migration 0020).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Summed {
    Fresh,
    Hours,
}

impl Summed {
    /// The table, its key (the conflict target) and the column counting what was added.
    fn table(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Summed::Fresh => ("rollup_fresh", "scope, t, node, point", "seconds"),
            Summed::Hours => ("rollup_hours", "scope, node, t, point", "minutes"),
        }
    }
}

/// Adds (or subtracts) `rows` to a table of sums inside the caller's transaction, creating
/// rows as needed (an upsert: one statement form on both databases), in the order given (the
/// callers' key order: the order every writer of a table takes its rows' locks in on
/// PostgreSQL, so two writers never deadlock).
async fn upsert_sums(
    conn: &mut sqlx::AnyConnection,
    summed: Summed,
    rows: &[(&FreshKey, &FreshSums)],
    sign: Sign,
) -> Result<()> {
    let (table, key, count) = summed.table();
    let v = |n: u64| match sign {
        Sign::Add => to_i64(n),
        Sign::Subtract => -to_i64(n),
    };
    let cols = [count, "packets", "bytes", "tcp", "udp", "icmp", "other"];
    let set: Vec<String> = cols
        .iter()
        .map(|c| format!("{c} = {table}.{c} + excluded.{c}"))
        .collect();
    for chunk in rows.chunks(FRESH_PER_STATEMENT) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| format!("({})", super::placeholders(1 + i * 11, 11)))
            .collect();
        let sql = format!(
            "INSERT INTO {table} (scope, t, node, point, {}) VALUES {} \
             ON CONFLICT ({key}) DO UPDATE SET {}",
            cols.join(", "),
            values.join(", "),
            set.join(", ")
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for ((scope, t, node, point), s) in chunk {
            q = q
                .bind(scope.clone())
                .bind(*t)
                .bind(node.clone())
                .bind(point.clone())
                .bind(v(to_u64(s.seconds)))
                .bind(v(s.packets))
                .bind(v(s.bytes));
            for p in s.protos {
                q = q.bind(v(p));
            }
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Adds (or subtracts) sums to `rollup_fresh` inside the caller's transaction, creating rows
/// as needed. Subtracting deletes the rows left with no second.
async fn add_fresh(
    conn: &mut sqlx::AnyConnection,
    sums: &BTreeMap<FreshKey, FreshSums>,
    sign: Sign,
) -> Result<()> {
    let keys: Vec<(&FreshKey, &FreshSums)> = sums.iter().collect();
    upsert_sums(conn, Summed::Fresh, &keys, sign).await?;
    if sign == Sign::Subtract && !keys.is_empty() {
        let from = keys.iter().map(|(k, _)| k.1).min().unwrap_or(0);
        let until = keys.iter().map(|(k, _)| k.1).max().unwrap_or(0) + 60;
        sqlx::query("DELETE FROM rollup_fresh WHERE t >= $1 AND t < $2 AND seconds <= 0")
            .bind(from)
            .bind(until)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// The rows of `rollup_fresh_top` (migration 0021) for new seconds: per account scope,
/// second and point, the seconds of every node merged (totals and the three heavy-hitter
/// lists, merged keeping their bounds as the fleet's minutes are), in key order.
fn fresh_top(rows: &[Rollup]) -> Vec<Rollup> {
    let mut merged: BTreeMap<(String, i64, String), MinuteAcc> = BTreeMap::new();
    for r in rows.iter().filter(|r| !r.hitters_dropped) {
        let key = (
            r.account_id.clone().unwrap_or_default(),
            r.t,
            r.point.clone(),
        );
        let acc = merged
            .entry(key)
            .or_insert_with(|| MinuteAcc::empty(FLEET, &r.point, &r.account_id, r.t));
        add_into(acc, r);
    }
    merged.into_values().map(MinuteAcc::finish).collect()
}

/// Inserts the [`fresh_top`] rows of new seconds inside the caller's transaction.
async fn add_fresh_top(conn: &mut sqlx::AnyConnection, seconds: &[Rollup]) -> Result<()> {
    let rows = fresh_top(seconds);
    const WIDTH: usize = 9;
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| format!("({})", super::placeholders(1 + i * WIDTH, WIDTH)))
            .collect();
        let sql = format!(
            "INSERT INTO rollup_fresh_top (scope, t, point, packets, bytes, one_in, top_dst, \
             top_src, top_dport) VALUES {}",
            values.join(", ")
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for r in chunk {
            q = q
                .bind(r.account_id.clone().unwrap_or_default())
                .bind(r.t)
                .bind(r.point.clone())
                .bind(to_i64(r.packets))
                .bind(to_i64(r.bytes))
                .bind(to_i64(r.one_in))
                .bind(list(r, &r.top_dst))
                .bind(list(r, &r.top_src))
                .bind(list(r, &r.top_dport));
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Adds minute rows to their hours' sums in `rollup_hours` inside the caller's transaction
/// (keyed like `rollup_fresh`: scope, hour, node, point; `seconds` counts minute rows here).
async fn add_hours(conn: &mut sqlx::AnyConnection, minutes: &[Rollup]) -> Result<()> {
    let mut sums: BTreeMap<FreshKey, FreshSums> = BTreeMap::new();
    for r in minutes {
        let key = (
            r.account_id.clone().unwrap_or_default(),
            r.t - r.t.rem_euclid(3600),
            r.node.clone(),
            r.point.clone(),
        );
        sums.entry(key).or_default().add_counting(r, 1);
    }
    let rows: Vec<(&FreshKey, &FreshSums)> = sums.iter().collect();
    upsert_sums(conn, Summed::Hours, &rows, Sign::Add).await
}

/// One row of `rollup_hours` as stored ([`hour_rows`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HourRow {
    /// The account of the minutes (None: whole nodes).
    pub account_id: Option<String>,
    pub node: String,
    /// The hour's first second.
    pub t: i64,
    pub point: String,
    /// Minute rows added in (a late second's minute counts again).
    pub minutes: i64,
    pub packets: i64,
    pub bytes: i64,
    /// TCP, UDP, ICMP, other.
    pub protos: [i64; 4],
}

/// Every row of `rollup_hours` in key order (tests and diagnostics: each is the sum of its
/// hour's minute rows).
pub async fn hour_rows(db: &Db) -> Result<Vec<HourRow>> {
    let rows = sum_rows(db, Summed::Hours, "scope, node, t, point").await?;
    Ok(rows
        .into_iter()
        .map(|r| HourRow {
            account_id: r.account_id,
            node: r.node,
            t: r.t,
            point: r.point,
            minutes: r.seconds,
            packets: r.packets,
            bytes: r.bytes,
            protos: r.protos,
        })
        .collect())
}

/// Inserts rows in one transaction.
pub async fn insert_all(db: &Db, table: Table, rows: &[Rollup]) -> Result<()> {
    let _turn = db.write_turn().await;
    let mut conn = db.pool.acquire().await?;
    let mut tx = conn.begin().await?;
    insert(&mut tx, table, rows).await?;
    tx.commit().await?;
    Ok(())
}

fn parse_row(r: &AnyRow, table: Table) -> Result<Rollup> {
    let u = |c: &str| -> Result<u64> { Ok(to_u64(r.try_get::<i64, _>(c)?)) };
    let node: String = r.try_get("node")?;
    let corrupt = |what: &str, e: String| Error::Corrupt {
        what: format!("rollup {what} of node {node}"),
        reason: e,
    };
    let lengths: String = r.try_get("lengths")?;
    let dst: String = r.try_get("top_dst")?;
    let src: String = r.try_get("top_src")?;
    let dport: String = r.try_get("top_dport")?;
    let dst = hitters::decode::<String>(&dst).map_err(|e| corrupt("top_dst", e))?;
    let src = hitters::decode::<String>(&src).map_err(|e| corrupt("top_src", e))?;
    let dport = hitters::decode::<u16>(&dport).map_err(|e| corrupt("top_dport", e))?;
    let hitters_dropped = dst.is_none() || src.is_none() || dport.is_none();
    Ok(Rollup {
        point: r.try_get("point")?,
        account_id: r.try_get("account_id")?,
        t: r.try_get("t")?,
        seconds: match table {
            Table::Seconds => 1,
            Table::Minutes => r.try_get("seconds")?,
        },
        packets: u("packets")?,
        bytes: u("bytes")?,
        exact: u("exact")?,
        samples: u("samples")?,
        one_in: u("one_in")?,
        families: [u("ipv4")?, u("ipv6")?],
        tcp: u("tcp")?,
        udp: u("udp")?,
        icmp: u("icmp")?,
        other: u("other")?,
        syn: u("syn")?,
        rst: u("rst")?,
        lengths: serde_json::from_str(&lengths).map_err(|e| corrupt("lengths", e.to_string()))?,
        top_dst: dst.unwrap_or_default(),
        top_src: src.unwrap_or_default(),
        top_dport: dport.unwrap_or_default(),
        hitters_dropped,
        node,
    })
}

/// A minute in the making: sums and merges.
struct MinuteAcc {
    row: Rollup,
    dst: Merge<String>,
    src: Merge<String>,
    dport: Merge<u16>,
}

impl MinuteAcc {
    /// Nothing yet of `node`'s (or the fleet's) `point` of `account_id` at `t`.
    fn empty(node: &str, point: &str, account_id: &Option<String>, t: i64) -> MinuteAcc {
        MinuteAcc {
            row: Rollup {
                node: node.to_owned(),
                point: point.to_owned(),
                account_id: account_id.clone(),
                t,
                ..Rollup::default()
            },
            dst: Merge::new(MERGE_CAPACITY),
            src: Merge::new(MERGE_CAPACITY),
            dport: Merge::new(MERGE_CAPACITY),
        }
    }

    /// The row, with its merged lists cut to the kept keys.
    fn finish(mut self) -> Rollup {
        self.row.top_dst = self.dst.top(STORED_KEYS);
        self.row.top_src = self.src.top(STORED_KEYS);
        self.row.top_dport = self.dport.top(STORED_KEYS);
        self.row
    }
}

fn add_into(acc: &mut MinuteAcc, r: &Rollup) {
    let a = &mut acc.row;
    a.seconds += r.seconds;
    a.packets = a.packets.saturating_add(r.packets);
    a.bytes = a.bytes.saturating_add(r.bytes);
    a.exact += r.exact;
    a.samples = a.samples.saturating_add(r.samples);
    a.one_in = a.one_in.max(r.one_in);
    for i in 0..2 {
        a.families[i] = a.families[i].saturating_add(r.families[i]);
    }
    a.tcp = a.tcp.saturating_add(r.tcp);
    a.udp = a.udp.saturating_add(r.udp);
    a.icmp = a.icmp.saturating_add(r.icmp);
    a.other = a.other.saturating_add(r.other);
    a.syn = a.syn.saturating_add(r.syn);
    a.rst = a.rst.saturating_add(r.rst);
    for i in 0..8 {
        a.lengths[i] = a.lengths[i].saturating_add(r.lengths[i]);
    }
    acc.dst.add(&r.top_dst);
    acc.src.add(&r.top_src);
    acc.dport.add(&r.top_dport);
}

/// The oldest second not yet downsampled.
pub async fn oldest_unrolled(db: &Db) -> Result<Option<i64>> {
    Ok(
        sqlx::query_scalar("SELECT MIN(t) FROM rollup_seconds WHERE rolled = 0")
            .fetch_one(&db.pool)
            .await?,
    )
}

/// What [`downsample`] makes of a minute's seconds: the minute rows (each node's and the
/// fleet's) and what the seconds added to `rollup_fresh`.
#[derive(Default)]
struct Taken {
    seconds: u64,
    /// The seconds taken, as [`SecondKey`]s (sorted by [`downsample`] to compare).
    keys: Vec<SecondKey>,
    minutes: HashMap<(String, String, Option<String>, i64), MinuteAcc>,
    fresh: BTreeMap<FreshKey, FreshSums>,
}

impl Taken {
    fn add(&mut self, r: &Rollup) {
        self.seconds += 1;
        self.keys.push((
            r.node.clone(),
            r.point.clone(),
            r.account_id.clone(),
            r.t,
            to_i64(r.packets),
            to_i64(r.bytes),
        ));
        self.fresh.entry(fresh_key(r)).or_default().add(r);
        let minute = r.t - r.t.rem_euclid(60);
        let key = (
            r.node.clone(),
            r.point.clone(),
            r.account_id.clone(),
            minute,
        );
        let acc = self
            .minutes
            .entry(key)
            .or_insert_with(|| MinuteAcc::empty(&r.node, &r.point, &r.account_id, minute));
        add_into(acc, r);
    }

    /// The minute rows to insert: every node's, and the fleet's (every node's minute of a
    /// point and account added together).
    fn rows(self) -> Vec<Rollup> {
        let mut fleet: HashMap<(String, Option<String>, i64), MinuteAcc> = HashMap::new();
        for acc in self.minutes.values() {
            let r = &acc.row;
            let f = fleet
                .entry((r.point.clone(), r.account_id.clone(), r.t))
                .or_insert_with(|| MinuteAcc::empty(FLEET, &r.point, &r.account_id, r.t));
            let mut stored = r.clone();
            stored.top_dst = acc.dst.top(STORED_KEYS);
            stored.top_src = acc.src.top(STORED_KEYS);
            stored.top_dport = acc.dport.top(STORED_KEYS);
            add_into(f, &stored);
        }
        self.minutes
            .into_values()
            .chain(fleet.into_values())
            .map(MinuteAcc::finish)
            .collect()
    }
}

/// A second as the mark returns it: node, point, account, t, packets, bytes.
type SecondKey = (String, String, Option<String>, i64, i64, i64);

/// Reads the seconds of `[from, until)` with `rolled = $1` (0: not yet taken; else a batch)
/// into a [`Taken`].
async fn take<'c, E>(exec: E, rolled: i64, from: i64, until: i64) -> Result<Taken>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    let sql =
        format!("SELECT {COLUMNS} FROM rollup_seconds WHERE rolled = $1 AND t >= $2 AND t < $3");
    let mut rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(rolled)
        .bind(from)
        .bind(until)
        .fetch(exec);
    let mut taken = Taken::default();
    while let Some(r) = rows.try_next().await? {
        taken.add(&parse_row(&r, Table::Seconds)?);
    }
    Ok(taken)
}

/// Downsamples the seconds in `[from, until)` not yet taken (`until` on a minute) into
/// minute rows. The seconds are read and summed first, outside any transaction (reading
/// and merging a minute of 1,000 nodes' seconds takes seconds of CPU, during which SQLite's
/// one writer, the rollup writer and the logins' sessions, would wait); then one short
/// transaction marks them with `batch` (so a concurrent job skips them), inserts the
/// minutes and takes the seconds out of `rollup_fresh`. The mark returns what it took;
/// when that is not what was read (a late second came in between, or another replica's job
/// took the minute), the marked seconds are read again inside the transaction. Returns the
/// seconds taken; [`drop_lists`] then slims them.
pub async fn downsample(db: &Db, from: i64, until: i64, batch: i64) -> Result<u64> {
    let read = take(&db.pool, 0, from, until).await?;
    if read.seconds == 0 {
        return Ok(0);
    }
    mark_and_insert(db, read, from, until, batch).await
}

/// The transaction of [`downsample`], given what it read.
async fn mark_and_insert(
    db: &Db,
    mut read: Taken,
    from: i64,
    until: i64,
    batch: i64,
) -> Result<u64> {
    read.keys.sort_unstable();
    let _turn = db.write_turn().await;
    let mut conn = db.pool.acquire().await?;
    let mut tx = conn.begin().await?;
    if db.backend == super::Backend::Postgres {
        // A writer's seconds and their merged fleet rows (rollup_fresh_top) are both
        // before the mark or both after the delete below: writers wait here (they insert
        // into that table first), or the mark waits for them to commit. SQLite's writers
        // take turns (write_turn) and its one write lock orders them anyway.
        sqlx::query("LOCK TABLE rollup_fresh_top IN SHARE ROW EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await?;
    }
    let mut marked: Vec<SecondKey> = Vec::with_capacity(read.keys.len());
    {
        let mut rows = sqlx::query(
            "UPDATE rollup_seconds SET rolled = $1 WHERE rolled = 0 AND t >= $2 AND t < $3 \
             RETURNING node, point, account_id, t, packets, bytes",
        )
        .bind(batch)
        .bind(from)
        .bind(until)
        .fetch(&mut *tx);
        while let Some(r) = rows.try_next().await? {
            marked.push((
                r.try_get("node")?,
                r.try_get("point")?,
                r.try_get("account_id")?,
                r.try_get("t")?,
                r.try_get("packets")?,
                r.try_get("bytes")?,
            ));
        }
    }
    if marked.is_empty() {
        tx.commit().await?;
        return Ok(0);
    }
    marked.sort_unstable();
    let mut taken = match marked == read.keys {
        true => read,
        false => take(&mut *tx, batch, from, until).await?,
    };
    let fresh = std::mem::take(&mut taken.fresh);
    let rows = taken.rows();
    insert(&mut tx, Table::Minutes, &rows).await?;
    add_fresh(&mut tx, &fresh, Sign::Subtract).await?;
    // Every second of the range not yet taken was marked: the fleet's minute rows now hold
    // what their merged fresh rows did.
    sqlx::query("DELETE FROM rollup_fresh_top WHERE t >= $1 AND t < $2")
        .bind(from)
        .bind(until)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(marked.len() as u64)
}

/// Seconds per transaction of [`drop_lists`]: short transactions, so SQLite's one writer
/// (the rollup writer, the hub's) never waits long behind it.
const SLIM_SECONDS: i64 = 2;

/// Drops the heavy-hitter lists of the seconds downsampled by `batch` in `[from, until)`:
/// they live on, merged, in the minutes (a second's totals stay for the fine retention, its
/// lists only until it is downsampled). Each second is copied without its lists, then the
/// original deleted (a list is never empty text until dropped), rather than updated, so
/// whole pages come free for new rows (SQLite leaves the space a shrinking row frees inside
/// its page); in transactions of [`SLIM_SECONDS`]. Returns the seconds slimmed.
pub async fn drop_lists(db: &Db, batch: i64, from: i64, until: i64) -> Result<u64> {
    let slim = "node, point, account_id, t, packets, bytes, exact, samples, one_in, ipv4, ipv6, \
                tcp, udp, icmp, other, syn, rst, lengths";
    let mut done = 0;
    let mut a = from;
    while a < until {
        let b = (a + SLIM_SECONDS).min(until);
        let _turn = db.write_turn().await;
        let mut conn = db.pool.acquire().await?;
        let mut tx = conn.begin().await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO rollup_seconds ({slim}, top_dst, top_src, top_dport, rolled) \
             SELECT {slim}, '', '', '', rolled FROM rollup_seconds \
             WHERE rolled = $1 AND t >= $2 AND t < $3 AND top_dst <> ''"
        )))
        .bind(batch)
        .bind(a)
        .bind(b)
        .execute(&mut *tx)
        .await?;
        done += sqlx::query(
            "DELETE FROM rollup_seconds WHERE rolled = $1 AND t >= $2 AND t < $3 \
             AND top_dst <> ''",
        )
        .bind(batch)
        .bind(a)
        .bind(b)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        a = b;
    }
    Ok(done)
}

/// Deletes downsampled seconds before `seconds_before` and minutes before `minutes_before`;
/// the rows deleted from each.
pub async fn expire(db: &Db, seconds_before: i64, minutes_before: i64) -> Result<(u64, u64)> {
    let s = sqlx::query("DELETE FROM rollup_seconds WHERE t < $1 AND rolled <> 0")
        .bind(seconds_before)
        .execute(&db.pool)
        .await?
        .rows_affected();
    let m = sqlx::query("DELETE FROM rollup_minutes WHERE t < $1")
        .bind(minutes_before)
        .execute(&db.pool)
        .await?
        .rows_affected();
    // An hour goes with its last minute.
    sqlx::query("DELETE FROM rollup_hours WHERE t <= $1")
        .bind(minutes_before - 3600)
        .execute(&db.pool)
        .await?;
    Ok((s, m))
}

/// Whose rows a query reads: a whole node's (`account_id IS NULL`) or one account's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    WholeNodes,
    Account(String),
}

/// What a series or heavy-hitter query selects.
#[derive(Debug, Clone)]
pub struct Selection {
    pub scope: Scope,
    pub since: i64,
    pub until: i64,
    pub nodes: Vec<String>,
    pub points: Vec<String>,
    /// Read the fleet's minute rows (node `*`, the sum of every node) rather than each
    /// node's: for a query over all nodes that does not split them.
    pub fleet: bool,
}

/// The node name of fleet-wide minute rows (no node name can be `*`).
pub const FLEET: &str = "*";

/// Most nodes a by-node minute read names one by one ([`minute_nodes`]); with more, it reads
/// every minute row of the scope.
const MAX_WALKED_NODES: usize = 5000;

/// The nodes with minute rows in the selection's scope, for a read by node with no node named
/// over the minutes (else `None`: the selection names its nodes or reads the fleet's rows).
/// Found along the time index `(account_id, node, t, point)`, one index step per node (the
/// recursive `k`, in whatever order the database's collation gives), so that the minutes are
/// then read node by node for the range only, where a plain `node <> '*'` would read every
/// minute the scope holds (the whole retention). `None` too past [`MAX_WALKED_NODES`].
async fn minute_nodes(db: &Db, table: Table, sel: &Selection) -> Result<Option<Vec<String>>> {
    if table != Table::Minutes || sel.fleet || !sel.nodes.is_empty() {
        return Ok(None);
    }
    let scope = match &sel.scope {
        Scope::WholeNodes => "account_id IS NULL",
        Scope::Account(_) => "account_id = $1",
    };
    let next = |after: &str| {
        format!(
            "(SELECT node FROM rollup_minutes WHERE {scope}{after} ORDER BY account_id, node \
             LIMIT 1)"
        )
    };
    let sql = format!(
        "WITH RECURSIVE k(n) AS (SELECT {} UNION ALL SELECT {} FROM k WHERE k.n IS NOT NULL) \
         SELECT n FROM k WHERE n IS NOT NULL AND n <> '*' LIMIT {}",
        next(""),
        next(" AND node > k.n"),
        MAX_WALKED_NODES + 1
    );
    let mut q = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql));
    if let Scope::Account(id) = &sel.scope {
        q = q.bind(id.clone());
    }
    let nodes = q.fetch_all(&db.pool).await?;
    Ok(match nodes.len() {
        0 => None,
        n if n > MAX_WALKED_NODES => None,
        _ => Some(nodes),
    })
}

/// Parameters [`bind_selection`] binds.
fn selection_params(sel: &Selection) -> usize {
    usize::from(matches!(sel.scope, Scope::Account(_))) + 2 + sel.nodes.len() + sel.points.len()
}

/// Which minute rows a selection reads, as a `FROM ... WHERE` text over `rollup_minutes` (the
/// selection's own clause `w`, numbered from `from`, included): the fleet's rows (node `*`),
/// the listed nodes', or every node's: those of `walked` ([`minute_nodes`], bound after the
/// selection's parameters) when given. The database picks how to read a list of nodes: along
/// the index for a short range, a scan for one that covers most of what is kept.
fn minutes_from(sel: &Selection, w: &str, from: usize, walked: Option<&[String]>) -> String {
    rows_from("rollup_minutes", sel, w, from, walked)
}

/// [`minutes_from`] over `table` (`rollup_minutes`, or `rollup_hours` with `w` on its
/// `scope` column).
fn rows_from(
    table: &str,
    sel: &Selection,
    w: &str,
    from: usize,
    walked: Option<&[String]>,
) -> String {
    match (sel.fleet, walked) {
        (true, _) => format!("{table} WHERE {w} AND node = '*'"),
        (false, Some(names)) => format!(
            "{table} WHERE {w} AND node IN ({})",
            super::placeholders(from + selection_params(sel), names.len())
        ),
        (false, None) => format!("{table} WHERE {w} AND node <> '*'"),
    }
}

fn bind_names<'q>(
    mut q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    names: Option<&[String]>,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    for n in names.unwrap_or_default() {
        q = q.bind(n.clone());
    }
    q
}

/// The WHERE clause of a selection, parameters numbered from `from` in the order
/// [`bind_selection`] binds them: the account (if any), since, until, nodes, points.
fn where_clause(sel: &Selection, from: usize) -> String {
    where_on(sel, from, false)
}

/// [`where_clause`] over `rollup_fresh` (`fresh`: its `scope` column, `''` for whole nodes)
/// or over the seconds and minutes (`account_id`); the same parameters.
fn where_on(sel: &Selection, from: usize, fresh: bool) -> String {
    let mut text = Vec::new();
    let mut n = from;
    match (&sel.scope, fresh) {
        (Scope::WholeNodes, false) => text.push("account_id IS NULL".to_owned()),
        (Scope::WholeNodes, true) => text.push("scope = ''".to_owned()),
        (Scope::Account(_), false) => {
            text.push(format!("account_id = ${n}"));
            n += 1;
        }
        (Scope::Account(_), true) => {
            text.push(format!("scope = ${n}"));
            n += 1;
        }
    }
    text.push(format!("t >= ${n} AND t < ${}", n + 1));
    n += 2;
    for (col, list) in [("node", &sel.nodes), ("point", &sel.points)] {
        if !list.is_empty() {
            text.push(format!("{col} IN ({})", super::placeholders(n, list.len())));
            n += list.len();
        }
    }
    text.join(" AND ")
}

fn bind_selection<'q>(
    mut q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    sel: &Selection,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    if let Scope::Account(id) = &sel.scope {
        q = q.bind(id.clone());
    }
    q = q.bind(sel.since).bind(sel.until);
    for s in sel.nodes.iter().chain(sel.points.iter()) {
        q = q.bind(s.clone());
    }
    q
}

/// How a series query groups its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupCol {
    None,
    Node,
    Point,
}

/// One bucket of one group: sums of its rows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bucket {
    pub index: i64,
    pub group: String,
    pub packets: u64,
    pub bytes: u64,
    /// Estimated packets per protocol: TCP, UDP, ICMP, other.
    pub protos: [u64; 4],
}

/// Sums per bucket (`(t - since) / step`) and group. From the seconds table, every second
/// (downsampled or not); from the minutes table, the minutes plus the seconds not yet
/// downsampled, so recent traffic is never missing: those as their minutes' fresh sums
/// (`rollup_fresh`, a row per node and minute rather than 60) when the range is whole
/// minutes (the step is then a multiple of 60 and a minute never straddles two buckets),
/// else the seconds themselves. When the range and the step are whole hours, the minutes
/// are read as their hours' sums (`rollup_hours`, a row per node and hour rather than 60).
pub async fn series(
    db: &Db,
    table: Table,
    sel: &Selection,
    step: i64,
    group: GroupCol,
) -> Result<Vec<Bucket>> {
    let g = match group {
        GroupCol::None => "''",
        GroupCol::Node => "node",
        GroupCol::Point => "point",
    };
    let w = where_clause(sel, 3);
    let walked = minute_nodes(db, table, sel).await?;
    let cols = "t, node, point, packets, bytes, tcp, udp, icmp, other";
    let source = match table {
        Table::Seconds => format!("SELECT {cols} FROM rollup_seconds WHERE {w}"),
        Table::Minutes => {
            let fresh = match sel.since.rem_euclid(60) == 0 && sel.until.rem_euclid(60) == 0 {
                true => format!("rollup_fresh WHERE {}", where_on(sel, 3, true)),
                false => format!("rollup_seconds WHERE rolled = 0 AND {w}"),
            };
            // Whole hours in every bucket: the hours' sums rather than their minutes.
            let hours = sel.since.rem_euclid(3600) == 0
                && sel.until.rem_euclid(3600) == 0
                && step % 3600 == 0;
            let coarse = match hours {
                true => rows_from(
                    "rollup_hours",
                    sel,
                    &where_on(sel, 3, true),
                    3,
                    walked.as_deref(),
                ),
                false => minutes_from(sel, &w, 3, walked.as_deref()),
            };
            format!("SELECT {cols} FROM {coarse} UNION ALL SELECT {cols} FROM {fresh}")
        }
    };
    let group_by = match group {
        GroupCol::None => "1",
        _ => "1, 2",
    };
    // SUM of BIGINT is NUMERIC on PostgreSQL: cast back.
    let s = |c: &str| format!("CAST(SUM(u.{c}) AS BIGINT) AS {c}");
    let sql = format!(
        "SELECT (u.t - $1) / $2 AS b, {g} AS g, {}, {}, {}, {}, {}, {} FROM ({source}) AS u \
         GROUP BY {group_by} ORDER BY 2, 1",
        s("packets"),
        s("bytes"),
        s("tcp"),
        s("udp"),
        s("icmp"),
        s("other")
    );
    let q = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(sel.since)
        .bind(step);
    let q = bind_names(bind_selection(q, sel), walked.as_deref());
    let rows = q.fetch_all(&db.pool).await?;
    rows.iter()
        .map(|r| {
            let n = |c: &str| -> Result<u64> { Ok(to_u64(r.try_get::<i64, _>(c)?)) };
            Ok(Bucket {
                index: r.try_get("b")?,
                group: r.try_get("g")?,
                packets: n("packets")?,
                bytes: n("bytes")?,
                protos: [n("tcp")?, n("udp")?, n("icmp")?, n("other")?],
            })
        })
        .collect()
}

/// Calls `each` with every row of the selection (minutes plus seconds not yet downsampled,
/// or seconds), streamed.
pub async fn each_row(
    db: &Db,
    table: Table,
    sel: &Selection,
    mut each: impl FnMut(Rollup),
) -> Result<()> {
    let w = where_clause(sel, 1);
    let walked = minute_nodes(db, table, sel).await?;
    // Each statement and whether it reads the walked nodes.
    let sources: Vec<(String, Table, bool)> = match table {
        Table::Seconds => vec![(
            format!("SELECT {COLUMNS} FROM rollup_seconds WHERE {w}"),
            Table::Seconds,
            false,
        )],
        Table::Minutes => vec![
            (
                format!(
                    "SELECT {COLUMNS}, seconds FROM {}",
                    minutes_from(sel, &w, 1, walked.as_deref())
                ),
                Table::Minutes,
                true,
            ),
            (
                format!("SELECT {COLUMNS} FROM rollup_seconds WHERE rolled = 0 AND {w}"),
                Table::Seconds,
                false,
            ),
        ],
    };
    for (sql, t, names) in sources {
        let q = bind_selection(sqlx::query(sqlx::AssertSqlSafe(sql)), sel);
        let q = bind_names(q, walked.as_deref().filter(|_| names));
        let mut rows = q.fetch(&db.pool);
        while let Some(r) = rows.try_next().await? {
            each(parse_row(&r, t)?);
        }
    }
    Ok(())
}

/// One heavy-hitter list of a row ([`each_list`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum List {
    Dst,
    Src,
    Dport,
}

impl List {
    fn column(self) -> &'static str {
        match self {
            List::Dst => "top_dst",
            List::Src => "top_src",
            List::Dport => "top_dport",
        }
    }
}

/// A row's totals and one of its lists as stored ([`hitters::decode`] reads it; empty text:
/// dropped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListRow {
    pub packets: u64,
    pub bytes: u64,
    pub one_in: u64,
    pub list: String,
}

/// What a heavy-hitter query reads: the rows of [`each_row`], streamed, with only the totals
/// and the one list it merges (a row's three lists are most of its bytes; the other columns
/// are never decoded). Reads at most `max_rows` rows: returns false, having stopped, when the
/// selection holds more (bounded as it reads, rather than counted first: a count reads the
/// same rows once more). Stops at the first error `each` returns.
pub async fn each_list(
    db: &Db,
    table: Table,
    sel: &Selection,
    list: List,
    max_rows: u64,
    mut each: impl FnMut(ListRow) -> Result<()>,
) -> Result<bool> {
    let mut read = 0u64;
    let w = where_clause(sel, 1);
    let cols = format!("packets, bytes, one_in, {} AS list", list.column());
    let walked = minute_nodes(db, table, sel).await?;
    // Each statement and whether it reads the walked nodes.
    let mut sources = vec![match table {
        Table::Seconds => (
            format!("SELECT {cols} FROM rollup_seconds WHERE {w}"),
            false,
        ),
        Table::Minutes => (
            format!(
                "SELECT {cols} FROM {}",
                minutes_from(sel, &w, 1, walked.as_deref())
            ),
            true,
        ),
    }];
    if table == Table::Minutes {
        let fresh = match sel.fleet {
            // Every node's seconds merged per writer batch (migration 0021).
            true => format!("rollup_fresh_top WHERE {}", where_on(sel, 1, true)),
            false => format!("rollup_seconds WHERE rolled = 0 AND {w}"),
        };
        sources.push((format!("SELECT {cols} FROM {fresh}"), false));
    }
    for (sql, names) in sources {
        let q = bind_selection(sqlx::query(sqlx::AssertSqlSafe(sql)), sel);
        let q = bind_names(q, walked.as_deref().filter(|_| names));
        let mut rows = q.fetch(&db.pool);
        while let Some(r) = rows.try_next().await? {
            read += 1;
            if read > max_rows {
                return Ok(false);
            }
            let u = |c: &str| -> Result<u64> { Ok(to_u64(r.try_get::<i64, _>(c)?)) };
            each(ListRow {
                packets: u("packets")?,
                bytes: u("bytes")?,
                one_in: u("one_in")?,
                list: r.try_get("list")?,
            })?;
        }
    }
    Ok(true)
}

/// Fills `rollup_minutes` (and their `rollup_hours`) with synthetic whole-node rows for
/// `nodes` nodes (`edge0`, ...) at point `pre-firewall`, one per minute for `minutes`
/// minutes from `since` (on a minute), in one statement: node `i` sends `1000 + i % 7` packets of 100 bytes a minute. For the
/// query-speed test and benchmarks; the rows are generated inside the database.
pub async fn fill_synthetic(db: &Db, nodes: i64, since: i64, minutes: i64) -> Result<u64> {
    let empty = "'{\"floor\":0,\"keys\":[]}'";
    let sql = format!(
        "INSERT INTO rollup_minutes ({COLUMNS}, seconds) \
         WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < $1), \
         m(j) AS (SELECT 0 UNION ALL SELECT j + 1 FROM m WHERE j + 1 < $2) \
         SELECT 'edge' || CAST(n.i AS TEXT), 'pre-firewall', NULL, $3 + m.j * 60, \
         1000 + n.i % 7, (1000 + n.i % 7) * 100, 60, 0, 0, 1000 + n.i % 7, 0, \
         1000 + n.i % 7, 0, 0, 0, 0, 0, '[0,1000,0,0,0,0,0,0]', {empty}, {empty}, {empty}, 60 \
         FROM n CROSS JOIN m"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(nodes)
        .bind(minutes)
        .bind(since)
        .execute(&db.pool)
        .await?
        .rows_affected();
    // The fleet's rows, as the downsampling job makes them.
    let sum = |c: &str| format!("CAST(SUM({c}) AS BIGINT)");
    let sums: Vec<String> = [
        "packets", "bytes", "exact", "samples", "one_in", "ipv4", "ipv6", "tcp", "udp", "icmp",
        "other", "syn", "rst",
    ]
    .iter()
    .map(|c| sum(c))
    .collect();
    let sql = format!(
        "INSERT INTO rollup_minutes ({COLUMNS}, seconds) SELECT '*', point, account_id, t, {}, \
         MIN(lengths), {empty}, {empty}, {empty}, {} FROM rollup_minutes \
         WHERE node <> '*' AND t >= $1 AND t < $2 GROUP BY point, account_id, t",
        sums.join(", "),
        sum("seconds")
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(since)
        .bind(since + minutes * 60)
        .execute(&db.pool)
        .await?;
    // Their hours, as inserting minutes makes them (the database holds no hour of the range
    // yet).
    let hour_sums: Vec<String> = ["packets", "bytes", "tcp", "udp", "icmp", "other"]
        .iter()
        .map(|c| sum(c))
        .collect();
    let sql = format!(
        "INSERT INTO rollup_hours (scope, node, t, point, minutes, packets, bytes, tcp, udp, \
         icmp, other) SELECT COALESCE(account_id, ''), node, t - t % 3600, point, COUNT(*), {} \
         FROM rollup_minutes WHERE t >= $1 AND t < $2 \
         GROUP BY COALESCE(account_id, ''), node, t - t % 3600, point",
        hour_sums.join(", ")
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(since)
        .bind(since + minutes * 60)
        .execute(&db.pool)
        .await?;
    Ok(rows)
}

/// Bytes the SQLite database uses (its pages less the free ones), for the growth
/// measurement; None on PostgreSQL.
pub async fn sqlite_used_bytes(db: &Db) -> Result<Option<u64>> {
    if db.backend != super::Backend::Sqlite {
        return Ok(None);
    }
    let mut conn = db.pool.acquire().await?;
    let pragma = |name: &'static str| sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(name));
    let pages = pragma("PRAGMA page_count").fetch_one(&mut *conn).await?;
    let free = pragma("PRAGMA freelist_count")
        .fetch_one(&mut *conn)
        .await?;
    let size = pragma("PRAGMA page_size").fetch_one(&mut *conn).await?;
    Ok(Some(to_u64((pages - free) * size)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn second(node: &str, t: i64, packets: u64) -> Rollup {
        Rollup {
            node: node.into(),
            point: "pre-firewall".into(),
            t,
            seconds: 1,
            packets,
            bytes: packets * 100,
            tcp: packets,
            ..Rollup::default()
        }
    }

    /// The downsampling job reads a minute's seconds before its transaction: a second that
    /// comes in between is marked with the others, so the minute is made again from what the
    /// mark took (the late second included, nothing counted twice), and the fresh rows go
    /// to nothing.
    #[tokio::test]
    async fn a_second_arriving_while_the_job_reads_is_in_its_minute() {
        let dir = std::env::temp_dir().join(format!(
            "edgecap-downsample-{}-{}",
            std::process::id(),
            crate::secret::new_id()
        ));
        let db = Db::connect(&format!("sqlite://{}/r.db", dir.display()))
            .await
            .unwrap();
        let seconds: Vec<Rollup> = (0..60)
            .map(|i| second(if i % 2 == 0 { "edge0" } else { "edge1" }, 600 + i, 10))
            .collect();
        insert_all(&db, Table::Seconds, &seconds).await.unwrap();
        let read = take(&db.pool, 0, 600, 660).await.unwrap();
        assert_eq!(read.seconds, 60);
        insert_all(&db, Table::Seconds, &[second("edge0", 630, 5)])
            .await
            .unwrap();
        assert_eq!(mark_and_insert(&db, read, 600, 660, 9).await.unwrap(), 61);
        assert_eq!(fresh_rows(&db).await.unwrap(), vec![]);
        let sel = Selection {
            scope: Scope::WholeNodes,
            since: 600,
            until: 660,
            nodes: vec![],
            points: vec![],
            fleet: false,
        };
        let mut minutes = Vec::new();
        each_row(&db, Table::Minutes, &sel, |r| {
            minutes.push((r.node, r.seconds, r.packets))
        })
        .await
        .unwrap();
        minutes.sort();
        assert_eq!(
            minutes,
            vec![("edge0".into(), 31, 305), ("edge1".into(), 30, 300)]
        );
        // Nothing left to take; a read with nothing marked since is used as read.
        assert_eq!(downsample(&db, 600, 660, 10).await.unwrap(), 0);
        insert_all(&db, Table::Seconds, &[second("edge1", 601, 7)])
            .await
            .unwrap();
        assert_eq!(downsample(&db, 600, 660, 11).await.unwrap(), 1);
        let mut fleet = 0;
        let sel = Selection { fleet: true, ..sel };
        each_row(&db, Table::Minutes, &sel, |r| fleet += r.packets)
            .await
            .unwrap();
        assert_eq!(fleet, 612);
        db.close().await;
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
