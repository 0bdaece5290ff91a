//! The analytics API's rules: parameters, the resolution a range is read at, the tenancy
//! scope, and the answers' shapes.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use super::hitters::{self, MERGE_CAPACITY, Merge, Stored};
use super::jobs;
use crate::config::Config;
use crate::db::Db;
use crate::db::accounts::Account;
use crate::db::rollups::{self, Bucket, GroupCol, List, ListRow, Table};
pub use crate::db::rollups::{Scope, Selection};
use crate::error::HttpError;
use crate::tenancy::Tenancy;

/// Points per series at most.
pub const MAX_POINTS: i64 = 1000;

/// Points in one answer at most (all series together).
pub const MAX_ANSWER_POINTS: usize = 200_000;

/// Rows a heavy-hitter query reads at most.
pub const MAX_TOP_ROWS: u64 = 2_000_000;

/// Heavy hitters per answer at most.
pub const MAX_TOP_LIMIT: u64 = 64;

/// Steps chosen when none is given (seconds): the smallest that keeps a series within
/// [`MAX_POINTS`].
const STEPS: &[i64] = &[
    1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400,
];

/// Whose rollups an account sees, the one place that decides it: an unrestricted account
/// (`crate::tenancy`) sees whole nodes ([`Scope::WholeNodes`], the rows without an account);
/// a restricted one only the rows agents made for its prefixes (`Scope::Account`, the rows
/// with its id), never a node's totals.
pub fn scope_for(account: &Account, tenancy: &Tenancy) -> Scope {
    match tenancy.unrestricted {
        true => Scope::WholeNodes,
        false => Scope::Account(account.id.clone()),
    }
}

/// A time parameter: RFC 3339, unix seconds, `now`, or `-<duration>` before now (`-1h`).
pub fn parse_time(field: &str, v: &str, now: i64) -> Result<i64, HttpError> {
    let v = v.trim();
    if v == "now" {
        return Ok(now);
    }
    if let Some(ago) = v.strip_prefix('-') {
        let d = edgecap_units::parse_duration(ago).map_err(|e| HttpError::field(field, e))?;
        return Ok(now.saturating_sub(i64::try_from(d.as_secs()).unwrap_or(i64::MAX)));
    }
    if let Ok(n) = v.parse::<i64>()
        && n >= 0
    {
        return Ok(n);
    }
    edgecap_model::ids::parse_rfc3339(v)
        .map(|t| t.floor() as i64)
        .ok_or_else(|| {
            HttpError::field(
                field,
                format!(
                    "{v:?} is not a time (RFC 3339 such as 2026-01-02T03:04:05Z, unix \
                     seconds, now, or -<duration> such as -1h)"
                ),
            )
        })
}

/// The query string as pairs, each known name at most once; unknown ones refused (the
/// check is [`crate::api::body::known_once`]'s, as for every route).
pub fn params(
    query: &[(String, String)],
    known: &[&str],
) -> Result<BTreeMap<String, String>, HttpError> {
    let mut out = BTreeMap::new();
    crate::api::body::known_once(query, known, |k, v| {
        out.insert(k.to_owned(), v.to_owned());
        Ok(())
    })?;
    Ok(out)
}

fn list(v: Option<&String>) -> Vec<String> {
    let mut l: Vec<String> = v
        .map(|s| {
            s.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    l.sort();
    l.dedup();
    l
}

/// The selection of a request: time range, nodes and points (unknown ones refused).
async fn selection(
    db: &Db,
    account: &Account,
    p: &BTreeMap<String, String>,
    now: i64,
    default_since: &str,
) -> Result<Selection, HttpError> {
    let since = parse_time("since", p.get("since").map_or(default_since, |s| s), now)?;
    let until = match p.get("until") {
        Some(u) => parse_time("until", u, now)?,
        None => now + 1,
    };
    if since >= until {
        return Err(HttpError::field(
            "since",
            format!("must be before until ({since} is not before {until})"),
        ));
    }
    let nodes = list(p.get("nodes"));
    let points = list(p.get("points"));
    if !nodes.is_empty() || !points.is_empty() {
        let known = crate::db::nodes::list(db).await?;
        let names: BTreeSet<&str> = known.iter().map(|n| n.name.as_str()).collect();
        let point_names: BTreeSet<&str> = known
            .iter()
            .flat_map(|n| n.points.iter().map(String::as_str))
            .collect();
        if let Some(n) = nodes.iter().find(|n| !names.contains(n.as_str())) {
            return Err(HttpError::field("nodes", format!("no node named {n:?}")));
        }
        if let Some(x) = points.iter().find(|x| !point_names.contains(x.as_str())) {
            return Err(HttpError::field(
                "points",
                format!("no node has a point named {x:?}"),
            ));
        }
    }
    let tenancy = crate::db::accounts::tenancy(db, &account.id).await?;
    Ok(Selection {
        scope: scope_for(account, &tenancy),
        since,
        until,
        fleet: nodes.is_empty(),
        nodes,
        points,
    })
}

/// One point of a series.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Point {
    pub t: String,
    pub packets: u64,
    pub bytes: u64,
    pub packets_per_second: f64,
    pub bits_per_second: f64,
}

/// One series: a node, a point, a protocol, or everything.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Series {
    pub key: Option<String>,
    pub packets: u64,
    pub bytes: u64,
    pub points: Vec<Point>,
}

/// The answer of `/traffic`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Traffic {
    pub since: String,
    pub until: String,
    pub step: i64,
    /// `second` or `minute`: the rows read.
    pub resolution: &'static str,
    pub group_by: Option<String>,
    pub series: Vec<Series>,
}

/// The step of a range: the given one (refused when it makes more than [`MAX_POINTS`]
/// points, or asks for seconds older than the fine retention), or the smallest of
/// [`STEPS`] that fits. Returns the step and the range aligned to it.
fn step_for(
    given: Option<&String>,
    since: i64,
    until: i64,
    fine_from: i64,
) -> Result<(i64, i64, i64), HttpError> {
    let align = |step: i64| {
        let s = since - since.rem_euclid(step);
        let n = (until - s + step - 1) / step;
        (s, s + n * step, n)
    };
    let coarse_only = since < fine_from;
    if let Some(g) = given {
        let d = edgecap_units::parse_duration(g).map_err(|e| HttpError::field("step", e))?;
        if d.subsec_nanos() != 0 {
            return Err(HttpError::field("step", "must be whole seconds"));
        }
        let step = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
        if coarse_only && step % 60 != 0 {
            return Err(HttpError::field(
                "step",
                "seconds older than the fine retention are kept only as minutes: use a \
                 multiple of 60 (1m) for this range",
            ));
        }
        let (s, u, n) = align(step);
        if n > MAX_POINTS {
            return Err(HttpError::field(
                "step",
                format!(
                    "{step} s makes {n} points over this range; at most {MAX_POINTS} (use a \
                     step of at least {} s, or leave step out)",
                    (until - since + MAX_POINTS - 1) / MAX_POINTS
                ),
            ));
        }
        return Ok((step, s, u));
    }
    for &step in STEPS
        .iter()
        .chain(std::iter::successors(Some(&86400), |_| None))
    {
        if coarse_only && step % 60 != 0 {
            continue;
        }
        let (s, u, n) = align(step);
        if n <= MAX_POINTS {
            return Ok((step, s, u));
        }
    }
    let days = ((until - since) / 86400 + MAX_POINTS - 1) / MAX_POINTS;
    let step = 86400 * days.max(1) * 2;
    let (s, u, _) = align(step);
    Ok((step, s, u))
}

fn secs(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

const PROTOS: [&str; 4] = ["tcp", "udp", "icmp", "other"];

/// Splits an exact total in the proportions of the sampled estimates (the last part takes
/// the rounding, so the parts add up to the total). Without samples it is all `None`.
fn split(total: u64, est: &[u64; 4]) -> Option<[u64; 4]> {
    let sum: u128 = est.iter().map(|e| u128::from(*e)).sum();
    if sum == 0 {
        return None;
    }
    let mut out = [0u64; 4];
    let mut given = 0u64;
    let last = est.iter().rposition(|e| *e > 0).unwrap_or(3);
    for i in 0..4 {
        if i == last {
            out[i] = total - given;
        } else {
            out[i] = (u128::from(total) * u128::from(est[i]) / sum) as u64;
            given += out[i];
        }
    }
    Some(out)
}

/// `GET /traffic`.
pub async fn traffic(
    db: &Db,
    config: &Config,
    account: &Account,
    query: &[(String, String)],
    now: i64,
) -> Result<Traffic, HttpError> {
    let p = params(
        query,
        &["since", "until", "step", "nodes", "points", "group_by"],
    )?;
    let group = match p.get("group_by").map(String::as_str) {
        None | Some("") => None,
        Some(g @ ("node" | "point" | "proto")) => Some(g.to_owned()),
        Some(other) => {
            return Err(HttpError::field(
                "group_by",
                format!("{other:?} is not one of node, point, proto"),
            ));
        }
    };
    let mut sel = selection(db, account, &p, now, "-1h").await?;
    sel.fleet = sel.fleet && group.as_deref() != Some("node");
    let fine_from = now.saturating_sub(secs(config.rollup_fine_retention));
    let (step, since, until) = step_for(p.get("step"), sel.since, sel.until, fine_from)?;
    sel.since = since;
    sel.until = until;
    let table = match step % 60 {
        0 => Table::Minutes,
        _ => Table::Seconds,
    };
    let col = match group.as_deref() {
        Some("node") => GroupCol::Node,
        Some("point") => GroupCol::Point,
        _ => GroupCol::None,
    };
    let buckets = rollups::series(db, table, &sel, step, col).await?;
    let n = ((until - since) / step) as usize;
    let mut groups: BTreeMap<Option<String>, Vec<(u64, u64)>> = BTreeMap::new();
    let mut add = |key: Option<String>, i: usize, packets: u64, bytes: u64| {
        let v = groups.entry(key).or_insert_with(|| vec![(0, 0); n]);
        if let Some(slot) = v.get_mut(i) {
            slot.0 += packets;
            slot.1 += bytes;
        }
    };
    match col {
        GroupCol::None if group.is_none() => add(None, 0, 0, 0),
        GroupCol::Node => {
            for node in &sel.nodes {
                add(Some(node.clone()), 0, 0, 0);
            }
        }
        _ => {}
    }
    for b in &buckets {
        let Ok(i) = usize::try_from(b.index) else {
            continue;
        };
        match group.as_deref() {
            Some("proto") => proto_buckets(b, i, &mut add),
            Some(_) => add(Some(b.group.clone()), i, b.packets, b.bytes),
            None => add(None, i, b.packets, b.bytes),
        }
    }
    if groups.len() * n > MAX_ANSWER_POINTS {
        return Err(HttpError::field(
            "step",
            format!(
                "{} series of {n} points are more than the {MAX_ANSWER_POINTS} points an \
                 answer holds: use a larger step, a shorter range or fewer nodes",
                groups.len()
            ),
        ));
    }
    let series = groups
        .into_iter()
        .map(|(key, v)| Series {
            key,
            packets: v.iter().map(|x| x.0).sum(),
            bytes: v.iter().map(|x| x.1).sum(),
            points: v
                .iter()
                .enumerate()
                .map(|(i, (packets, bytes))| Point {
                    t: edgecap_model::ids::rfc3339((since + i as i64 * step) as f64),
                    packets: *packets,
                    bytes: *bytes,
                    packets_per_second: *packets as f64 / step as f64,
                    bits_per_second: *bytes as f64 * 8.0 / step as f64,
                })
                .collect(),
        })
        .collect();
    Ok(Traffic {
        since: edgecap_model::ids::rfc3339(since as f64),
        until: edgecap_model::ids::rfc3339(until as f64),
        step,
        resolution: match table {
            Table::Seconds => "second",
            Table::Minutes => "minute",
        },
        group_by: group,
        series,
    })
}

fn proto_buckets(b: &Bucket, i: usize, add: &mut impl FnMut(Option<String>, usize, u64, u64)) {
    match (split(b.packets, &b.protos), split(b.bytes, &b.protos)) {
        (Some(p), Some(by)) => {
            for k in 0..4 {
                add(Some(PROTOS[k].to_owned()), i, p[k], by[k]);
            }
        }
        _ => add(Some("unsampled".to_owned()), i, b.packets, b.bytes),
    }
}

/// One heavy hitter in an answer.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Hitter {
    pub key: Value,
    /// Its packets in the range, scaled from samples (an upper bound as far as the sketch
    /// goes), and how much of it may be overcount by the sketch.
    pub packets: u64,
    pub error: u64,
    /// The 95 % sampling error of `packets` (`edgecap_observe::margin`): the samples it is
    /// scaled from were a random share of the traffic.
    pub sampling_error: u64,
    pub packets_per_second: f64,
    /// `(packets - error - sampling_error) / seconds`: its rate is at least this (95 %).
    pub packets_per_second_min: f64,
    /// `(packets + sampling_error) / seconds`: its rate is at most this (95 %).
    pub packets_per_second_max: f64,
}

/// The answer of `/traffic/top`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Top {
    pub since: String,
    pub until: String,
    pub seconds: i64,
    pub by: String,
    pub resolution: &'static str,
    /// Exact packets and bytes of the selection in the range.
    pub packets: u64,
    pub bytes: u64,
    pub packets_per_second: f64,
    pub bits_per_second: f64,
    pub hitters: Vec<Hitter>,
    /// Any key not listed sent at most this many packets in the range.
    pub others_at_most: u64,
}

/// `GET /traffic/top`.
pub async fn top(
    db: &Db,
    account: &Account,
    query: &[(String, String)],
    now: i64,
) -> Result<Top, HttpError> {
    let p = params(query, &["since", "until", "by", "limit", "nodes", "points"])?;
    let by = match p.get("by").map(String::as_str) {
        None | Some("") => "dst".to_owned(),
        Some(b @ ("dst" | "src" | "dport")) => b.to_owned(),
        Some(other) => {
            return Err(HttpError::field(
                "by",
                format!("{other:?} is not one of dst, src, dport"),
            ));
        }
    };
    let limit = match p.get("limit") {
        None => 10,
        Some(l) => match l.parse::<u64>() {
            Ok(n) if (1..=MAX_TOP_LIMIT).contains(&n) => n,
            _ => {
                return Err(HttpError::field(
                    "limit",
                    format!("{l:?} is not a whole number in 1-{MAX_TOP_LIMIT}"),
                ));
            }
        },
    } as usize;
    let mut sel = selection(db, account, &p, now, "-1m").await?;
    // Seconds keep their heavy hitters only until they are downsampled: a range within the
    // last minutes reads seconds, an older one the minutes (and the seconds not yet taken).
    let mut table = match sel.since >= jobs::downsampled_before(now) {
        true => Table::Seconds,
        false => Table::Minutes,
    };
    let (addrs, ports, packets, bytes, one_in) = loop {
        if table == Table::Minutes {
            // Minutes only: the range is widened to whole minutes.
            sel.since -= sel.since.rem_euclid(60);
            sel.until += (60 - sel.until.rem_euclid(60)) % 60;
        }
        let mut addrs: Merge<String> = Merge::new(MERGE_CAPACITY);
        let mut ports: Merge<u16> = Merge::new(MERGE_CAPACITY);
        let (mut packets, mut bytes, mut one_in) = (0u64, 0u64, 1u64);
        let mut dropped = false;
        let list = match by.as_str() {
            "dst" => List::Dst,
            "src" => List::Src,
            _ => List::Dport,
        };
        let corrupt = |e: String| crate::error::Error::Corrupt {
            what: format!("rollup heavy-hitter list ({by})"),
            reason: e,
        };
        // Only the totals and the one list merged are read and decoded, and at most
        // MAX_TOP_ROWS rows.
        let whole = rollups::each_list(db, table, &sel, list, MAX_TOP_ROWS, |r: ListRow| {
            one_in = one_in.max(r.one_in);
            packets = packets.saturating_add(r.packets);
            bytes = bytes.saturating_add(r.bytes);
            match list {
                List::Dport => match hitters::decode::<u16>(&r.list).map_err(corrupt)? {
                    Some(l) => ports.add(&l),
                    None => dropped = true,
                },
                _ => match hitters::decode::<String>(&r.list).map_err(corrupt)? {
                    Some(l) => addrs.add(&l),
                    None => dropped = true,
                },
            }
            Ok(())
        })
        .await?;
        if !whole {
            return Err(HttpError::field(
                "since",
                format!(
                    "the range holds more than the {MAX_TOP_ROWS} rollup rows a heavy-hitter \
                     query reads: shorten it or select nodes"
                ),
            ));
        }
        match (dropped, table) {
            // A second already downsampled (another replica's clock ran ahead): its lists
            // are in its minute.
            (true, Table::Seconds) => table = Table::Minutes,
            _ => break (addrs, ports, packets, bytes, one_in),
        }
    };
    let seconds = (sel.until - sel.since).max(1);
    let per = |n: u64| n as f64 / seconds as f64;
    let (keys, floor): (Vec<(Value, u64, u64)>, u64) = match by.as_str() {
        "dport" => {
            let Stored { floor, keys } = ports.top(limit);
            (
                keys.into_iter()
                    .map(|(k, c, e)| (Value::from(k), c, e))
                    .collect(),
                floor,
            )
        }
        _ => {
            let Stored { floor, keys } = addrs.top(limit);
            (
                keys.into_iter()
                    .map(|(k, c, e)| (Value::from(k), c, e))
                    .collect(),
                floor,
            )
        }
    };
    Ok(Top {
        since: edgecap_model::ids::rfc3339(sel.since as f64),
        until: edgecap_model::ids::rfc3339(sel.until as f64),
        seconds,
        by,
        resolution: match table {
            Table::Seconds => "second",
            Table::Minutes => "minute",
        },
        packets,
        bytes,
        packets_per_second: per(packets),
        bits_per_second: per(bytes) * 8.0,
        hitters: keys
            .into_iter()
            .map(|(key, count, error)| {
                // The sparsest sampling in the range bounds every row's (conservative).
                let sampling_error = edgecap_observe::margin::of_scaled(count, one_in);
                Hitter {
                    key,
                    packets: count,
                    error,
                    sampling_error,
                    packets_per_second: per(count),
                    packets_per_second_min: per(count.saturating_sub(error + sampling_error)),
                    packets_per_second_max: per(count + sampling_error),
                }
            })
            .collect(),
        others_at_most: floor,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_in_every_accepted_form() {
        let now = 1_800_000_000;
        assert_eq!(parse_time("since", "now", now).unwrap(), now);
        assert_eq!(parse_time("since", "-1h", now).unwrap(), now - 3600);
        assert_eq!(
            parse_time("since", "1700000000", now).unwrap(),
            1_700_000_000
        );
        assert_eq!(
            parse_time("since", "2026-01-01T00:00:00Z", now).unwrap(),
            1_767_225_600
        );
        let e = parse_time("since", "yesterday", now).unwrap_err();
        assert!(e.errors[0].message.contains("since"), "{:?}", e.errors);
    }

    #[test]
    fn steps_keep_series_within_the_cap() {
        let (step, s, u) = step_for(None, 0, 86400, 0).unwrap();
        assert_eq!((step, s, u), (120, 0, 86400));
        assert!((u - s) / step <= MAX_POINTS);
        // Old ranges are read as minutes.
        let (step, _, _) = step_for(None, 0, 600, 1000).unwrap();
        assert_eq!(step, 60);
        let e = step_for(Some(&"1s".into()), 0, 86400, 0).unwrap_err();
        assert!(e.errors[0].message.contains("step"), "{:?}", e.errors);
        let e = step_for(Some(&"30s".into()), 0, 600, 1000).unwrap_err();
        assert!(e.errors[0].message.contains("step"), "{:?}", e.errors);
    }

    #[test]
    fn protocol_shares_add_up_to_the_exact_total() {
        assert_eq!(split(1001, &[64, 64, 0, 0]), Some([500, 501, 0, 0]));
        assert_eq!(split(10, &[0, 0, 0, 0]), None);
    }
}
