//! The analytics API over the agents' rollups: known seconds in, exact sums and heavy
//! hitters out, downsampling equal to the sum of the seconds, retention, bad parameters,
//! and the speed of a day of a thousand nodes.

use std::net::IpAddr;
use std::time::Instant;

use axum::http::StatusCode;
use edgecap_model::AgentMsg;
use edgecap_observe::{Hitter, Second};
use edgecap_server::rollups::jobs;
use serde_json::Value;

use crate::both_databases;
use crate::common::{Backend, Harness};

both_databases!(
    account_rows_stay_with_their_account,
    rollups_over_a_real_socket_are_stored,
    known_seconds_give_exact_sums_and_hitters,
    downsampling_equals_the_seconds_and_retention_deletes,
    fresh_minutes_are_the_sums_of_their_seconds,
    bad_parameters_are_refused_naming_the_field,
);

fn now() -> i64 {
    edgecap_server::clock::unix_now() as i64
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// One second of `point` at `t`: `packets` of 100 bytes, all TCP to `dst` from 198.18.0.1
/// to port 443 (every sampled packet in the lists, so the lists are whole).
pub(crate) fn second(t: i64, point: &str, packets: u64, dst: &str) -> Second {
    let h = |key| Hitter {
        key,
        count: packets,
        error: 0,
    };
    Second {
        t: t as u64,
        point: point.into(),
        account: None,
        packets,
        bytes: packets * 100,
        exact: true,
        samples: packets,
        one_in: 1,
        families: [packets, 0],
        tcp: packets,
        udp: 0,
        icmp: 0,
        other: 0,
        syn: 0,
        rst: 0,
        lengths: [0, packets, 0, 0, 0, 0, 0, 0],
        top_dst: vec![h(ip(dst))],
        top_src: vec![h(ip("198.18.0.1"))],
        top_dport: vec![Hitter {
            key: 443,
            count: packets,
            error: 0,
        }],
    }
}

/// The seconds of the tests: two nodes, from `t0` (on a minute) for 120 s; edge0 sends
/// `10 + i % 5` packets a second to 198.18.1.1, edge1 3 a second to 198.18.2.2.
fn send(h: &Harness, t0: i64) -> (u64, u64) {
    let n0 = h.node("edge0", &[], &["pre-firewall"]);
    let n1 = h.node("edge1", &[], &["pre-firewall"]);
    let (mut p0, mut p1) = (0, 0);
    for chunk in 0..4 {
        let mut s0 = Vec::new();
        let mut s1 = Vec::new();
        for i in chunk * 30..(chunk + 1) * 30 {
            let a = 10 + (i as u64) % 5;
            p0 += a;
            p1 += 3;
            s0.push(second(t0 + i, "pre-firewall", a, "198.18.1.1"));
            s1.push(second(t0 + i, "pre-firewall", 3, "198.18.2.2"));
        }
        n0.session.handle(AgentMsg::Rollups { seconds: s0 });
        n1.session.handle(AgentMsg::Rollups { seconds: s1 });
    }
    // The fake nodes stay registered for the test (their names are known to the queries).
    std::mem::forget(n0);
    std::mem::forget(n1);
    (p0, p1)
}

async fn get(h: &Harness, rest: &str) -> Value {
    let (s, v) = h.call("GET", &h.acc(rest), None).await;
    assert_eq!(s, StatusCode::OK, "{rest}: {v}");
    v["result"].clone()
}

fn series<'a>(v: &'a Value, key: &str) -> &'a Value {
    v["series"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["key"] == key)
        .unwrap_or_else(|| panic!("no series {key}: {v}"))
}

async fn known_seconds_give_exact_sums_and_hitters(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let t0 = {
        let t = now() - 600;
        t - t % 60
    };
    let (p0, p1) = send(&h, t0);
    h.state.hub.rollups().barrier().await;
    assert_eq!(h.state.hub.rollups().stored(), 240);
    assert_eq!(h.state.hub.rollups().dropped(), 0);

    let range = format!("since={t0}&until={}", t0 + 120);
    let v = get(&h, &format!("traffic?{range}&step=1s")).await;
    assert_eq!(v["resolution"], "second");
    let all = &v["series"][0];
    assert_eq!(all["packets"], p0 + p1, "{v}");
    assert_eq!(all["bytes"], (p0 + p1) * 100);
    let points = all["points"].as_array().unwrap();
    assert_eq!(points.len(), 120);
    assert_eq!(points[1]["packets"], 11 + 3);
    assert_eq!(points[1]["packets_per_second"], 14.0);
    assert_eq!(points[1]["bits_per_second"], 14.0 * 800.0);

    let v = get(&h, &format!("traffic?{range}&step=10s&group_by=node")).await;
    assert_eq!(series(&v, "edge0")["packets"], p0);
    assert_eq!(series(&v, "edge1")["packets"], p1);
    assert_eq!(series(&v, "edge1")["points"][0]["packets_per_second"], 3.0);
    let v = get(&h, &format!("traffic?{range}&step=10s&nodes=edge1")).await;
    assert_eq!(v["series"][0]["packets"], p1);
    let v = get(&h, &format!("traffic?{range}&group_by=proto")).await;
    assert_eq!(series(&v, "tcp")["packets"], p0 + p1);

    let v = get(&h, &format!("traffic/top?{range}&by=dst")).await;
    assert_eq!(v["packets"], p0 + p1);
    let hitters = v["hitters"].as_array().unwrap();
    assert_eq!(hitters[0]["key"], "198.18.1.1", "{v}");
    assert_eq!(hitters[0]["packets"], p0);
    assert_eq!(hitters[0]["error"], 0);
    // Every packet was sampled (1 in 1): no sampling error, the bounds are the count.
    assert_eq!(hitters[0]["sampling_error"], 0);
    assert_eq!(hitters[0]["packets_per_second"], p0 as f64 / 120.0);
    assert_eq!(hitters[0]["packets_per_second_min"], p0 as f64 / 120.0);
    assert_eq!(hitters[0]["packets_per_second_max"], p0 as f64 / 120.0);
    assert_eq!(hitters[1]["key"], "198.18.2.2");
    assert_eq!(hitters[1]["packets"], p1);
    let v = get(&h, &format!("traffic/top?{range}&by=dport&limit=1")).await;
    assert_eq!(v["hitters"][0]["key"], 443);
    // Port lists carry no total, so their bound stays (but the truth is within it).
    let (c, e) = (
        v["hitters"][0]["packets"].as_u64().unwrap(),
        v["hitters"][0]["error"].as_u64().unwrap(),
    );
    assert!(c - e <= p0 + p1 && p0 + p1 <= c, "{v}");
}

async fn downsampling_equals_the_seconds_and_retention_deletes(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let t0 = {
        let t = now() - 900;
        t - t % 60
    };
    let (p0, p1) = send(&h, t0);
    h.state.hub.rollups().barrier().await;
    let range = format!("since={t0}&until={}", t0 + 120);
    let fine = get(&h, &format!("traffic?{range}&step=1s&group_by=node")).await;
    // Before the job, a minute-step query still sees everything (the seconds not yet taken).
    let early = get(&h, &format!("traffic?{range}&step=1m&group_by=node")).await;
    assert_eq!(series(&early, "edge0")["packets"], p0);

    let r = jobs::run_once(&h.state.db, &h.state.config, now())
        .await
        .unwrap();
    assert_eq!(r.downsampled, 240);
    // 2 nodes x 2 minutes, and the fleet's 2 minutes.
    assert_eq!(h.count("rollup_minutes").await, 6);
    // A second run finds nothing new.
    let again = jobs::run_once(&h.state.db, &h.state.config, now())
        .await
        .unwrap();
    assert_eq!(again.downsampled, 0);
    assert_eq!(h.count("rollup_minutes").await, 6);

    let coarse = get(&h, &format!("traffic?{range}&step=1m&group_by=node")).await;
    assert_eq!(coarse["resolution"], "minute");
    for node in ["edge0", "edge1"] {
        let f = series(&fine, node)["points"].as_array().unwrap();
        let c = series(&coarse, node)["points"].as_array().unwrap();
        assert_eq!(c.len(), 2);
        for (m, point) in c.iter().enumerate() {
            let sum: u64 = f[m * 60..(m + 1) * 60]
                .iter()
                .map(|p| p["packets"].as_u64().unwrap())
                .sum();
            assert_eq!(point["packets"], sum, "{node} minute {m}");
        }
    }
    assert_eq!(series(&coarse, "edge0")["packets"], p0);
    assert_eq!(series(&coarse, "edge1")["packets"], p1);
    // The fleet's rows (read when no node is singled out) say the same.
    let all = get(&h, &format!("traffic?{range}&step=1m")).await;
    assert_eq!(all["series"][0]["packets"], p0 + p1);
    assert_eq!(
        all["series"][0]["points"][0]["packets"],
        series(&coarse, "edge0")["points"][0]["packets"]
            .as_u64()
            .unwrap()
            + 180
    );
    // Heavy hitters from the minutes are the seconds' merged.
    let top = get(&h, &format!("traffic/top?{range}&by=src")).await;
    assert_eq!(top["hitters"][0]["packets"], p0 + p1);
    assert_eq!(top["resolution"], "minute");
    // The downsampled seconds kept their totals (above) but not their lists: those are in
    // the minutes.
    let sel = edgecap_server::db::rollups::Selection {
        scope: edgecap_server::db::rollups::Scope::WholeNodes,
        since: t0,
        until: t0 + 120,
        nodes: vec![],
        points: vec![],
        fleet: false,
    };
    let mut kept = (0, 0);
    edgecap_server::db::rollups::each_row(
        &h.state.db,
        edgecap_server::db::rollups::Table::Seconds,
        &sel,
        |r| {
            kept.0 += 1;
            kept.1 += usize::from(!r.hitters_dropped);
        },
    )
    .await
    .unwrap();
    assert_eq!(kept, (240, 0), "(seconds, seconds with lists)");

    // Past the fine retention the seconds go, the minutes stay; past the retention, all go.
    let fine_ret = h.state.config.rollup_fine_retention.as_secs() as i64;
    let r = jobs::run_once(&h.state.db, &h.state.config, t0 + fine_ret + 600)
        .await
        .unwrap();
    assert_eq!(r.expired_seconds, 240);
    assert_eq!(h.count("rollup_seconds").await, 0);
    assert_eq!(h.count("rollup_minutes").await, 6);
    let ret = h.state.config.rollup_retention.as_secs() as i64;
    let r = jobs::run_once(&h.state.db, &h.state.config, t0 + ret + 600)
        .await
        .unwrap();
    assert_eq!(r.expired_minutes, 6);
    assert_eq!(h.count("rollup_minutes").await, 0);
    // An hour's sums go with the last minute of the hour (migration 0020): the hour of the
    // last minute stays while it has minutes after the cutoff.
    let last_hour = (t0 + 60) - (t0 + 60).rem_euclid(3600);
    let kept = last_hour + 3600 > t0 + 600;
    assert_eq!(h.count("rollup_hours").await > 0, kept, "t0 {t0}");
    jobs::run_once(&h.state.db, &h.state.config, t0 + ret + 600 + 3600)
        .await
        .unwrap();
    assert_eq!(h.count("rollup_hours").await, 0);
    // Seconds not yet downsampled answer at second resolution.
    let recent = now() - 30;
    let n2 = h.node("edge2", &[], &["pre-firewall"]);
    n2.session.handle(AgentMsg::Rollups {
        seconds: vec![second(recent, "pre-firewall", 7, "198.18.7.7")],
    });
    h.state.hub.rollups().barrier().await;
    let top = get(
        &h,
        &format!(
            "traffic/top?since={}&until={}&by=dst",
            recent - 10,
            recent + 10
        ),
    )
    .await;
    assert_eq!(top["resolution"], "second", "{top}");
    assert_eq!(top["hitters"][0]["key"], "198.18.7.7", "{top}");
    assert_eq!(top["hitters"][0]["packets"], 7, "{top}");
}

/// The fresh minutes (`rollup_fresh`, migration 0018): each the sum of its minute's seconds
/// not yet downsampled, added by the writer as the seconds arrive and taken away by the job
/// as it downsamples them (a late second of a minute already taken makes the row again, and
/// the next run takes it); a series by node at minute steps, read from them, equals the
/// seconds' own at second steps, before the job and after.
async fn fresh_minutes_are_the_sums_of_their_seconds(b: Backend) {
    use edgecap_server::db::rollups::{self, FreshRow, Rollup, Table};
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let t0 = {
        let t = now() - 900;
        t - t % 60
    };
    let (p0, p1) = send(&h, t0);
    h.state.hub.rollups().barrier().await;
    // edge0 sends 10 + i % 5 packets in its second i: 600 + 12 * (0 + 1 + 2 + 3 + 4) a
    // minute; edge1 3 a second; all TCP, 100 bytes each.
    let row = |account: Option<&str>, t: i64, node: &str, seconds: i64, packets: i64| FreshRow {
        account_id: account.map(str::to_owned),
        t,
        node: node.into(),
        point: "pre-firewall".into(),
        seconds,
        packets,
        bytes: packets * 100,
        protos: [packets, 0, 0, 0],
    };
    assert_eq!(
        rollups::fresh_rows(&h.state.db).await.unwrap(),
        vec![
            row(None, t0, "edge0", 60, 720),
            row(None, t0, "edge1", 60, 180),
            row(None, t0 + 60, "edge0", 60, 720),
            row(None, t0 + 60, "edge1", 60, 180),
        ]
    );
    assert_eq!(p0, 1440);
    let range = format!("since={t0}&until={}", t0 + 120);
    let minutes_equal_seconds = |fine: &Value, coarse: &Value| {
        assert_eq!(coarse["resolution"], "minute");
        for node in ["edge0", "edge1"] {
            let f = series(fine, node)["points"].as_array().unwrap();
            let c = series(coarse, node)["points"].as_array().unwrap();
            assert_eq!(c.len(), 2);
            for (m, point) in c.iter().enumerate() {
                let sum: u64 = f[m * 60..(m + 1) * 60]
                    .iter()
                    .map(|p| p["packets"].as_u64().unwrap())
                    .sum();
                assert_eq!(point["packets"], sum, "{node} minute {m}");
            }
        }
    };
    let fine = get(&h, &format!("traffic?{range}&step=1s&group_by=node")).await;
    let coarse = get(&h, &format!("traffic?{range}&step=1m&group_by=node")).await;
    minutes_equal_seconds(&fine, &coarse);
    assert_eq!(series(&coarse, "edge1")["packets"], p1);

    // A series at whole hours reads the hours' sums (migration 0020) and the fresh minutes:
    // none of the first yet.
    let h0 = t0 - t0.rem_euclid(3600);
    let hourly = format!(
        "traffic?since={h0}&until={}&step=1h&group_by=node",
        h0 + 7200
    );
    let by_hour = get(&h, &hourly).await;
    assert_eq!(series(&by_hour, "edge0")["packets"], p0, "{by_hour}");
    assert_eq!(series(&by_hour, "edge1")["packets"], p1, "{by_hour}");
    assert_eq!(rollups::hour_rows(&h.state.db).await.unwrap(), vec![]);
    // Fleet-wide heavy hitters read every node's fresh seconds merged per writer batch
    // (rollup_fresh_top, migration 0021: at most a row per batch, second and point); naming
    // the nodes reads their seconds: the same answer.
    let merged = h.count("rollup_fresh_top").await;
    assert!((120..=240).contains(&merged), "{merged} merged rows");
    let same_top = |when: &'static str| {
        let range = range.clone();
        let h = &h;
        async move {
            let fleet = get(h, &format!("traffic/top?{range}&by=dst")).await;
            let nodes = get(h, &format!("traffic/top?{range}&by=dst&nodes=edge0,edge1")).await;
            assert_eq!(fleet["hitters"], nodes["hitters"], "{when}");
            assert_eq!(fleet["resolution"], "minute", "{when}");
            fleet
        }
    };
    let top = same_top("before the job").await;
    assert_eq!(top["hitters"][0]["key"], "198.18.1.1", "{top}");
    assert_eq!(top["hitters"][0]["packets"], p0, "{top}");
    assert_eq!(top["hitters"][1]["key"], "198.18.2.2", "{top}");
    assert_eq!(top["hitters"][1]["packets"], p1, "{top}");

    // The job takes the seconds into minutes and their fresh rows go with them.
    let r = jobs::run_once(&h.state.db, &h.state.config, now())
        .await
        .unwrap();
    assert_eq!(r.downsampled, 240);
    assert_eq!(rollups::fresh_rows(&h.state.db).await.unwrap(), vec![]);
    let coarse = get(&h, &format!("traffic?{range}&step=1m&group_by=node")).await;
    minutes_equal_seconds(&fine, &coarse);
    // Their hours hold the minutes' sums (the two minutes may fall in two hours): each node's,
    // and the fleet's (`*`).
    let hours = |rows: &[rollups::HourRow], account: Option<&str>, node: &str| {
        rows.iter()
            .filter(|r| r.account_id.as_deref() == account && r.node == node)
            .fold((0, 0, 0), |(m, p, b), r| {
                (m + r.minutes, p + r.packets, b + r.bytes)
            })
    };
    let rows = rollups::hour_rows(&h.state.db).await.unwrap();
    assert_eq!(hours(&rows, None, "edge0"), (2, 1440, 144_000), "{rows:?}");
    assert_eq!(hours(&rows, None, "edge1"), (2, 360, 36_000), "{rows:?}");
    assert_eq!(hours(&rows, None, "*"), (2, 1800, 180_000), "{rows:?}");
    let by_hour = get(&h, &hourly).await;
    assert_eq!(series(&by_hour, "edge0")["packets"], p0, "{by_hour}");
    assert_eq!(series(&by_hour, "edge1")["packets"], p1, "{by_hour}");
    let fleet = get(
        &h,
        &format!("traffic?since={h0}&until={}&step=1h", h0 + 7200),
    )
    .await;
    assert_eq!(fleet["series"][0]["packets"], p0 + p1, "{fleet}");
    // The merged fresh rows went with their seconds; the fleet's minutes hold them.
    assert_eq!(h.count("rollup_fresh_top").await, 0);
    assert_eq!(same_top("after the job").await["hitters"], top["hitters"]);

    // Late seconds of minutes already downsampled, one of them an account's.
    let acme = h.account.id.clone();
    let late = |account: Option<&str>, t: i64, packets: u64| Rollup {
        node: "edge0".into(),
        point: "pre-firewall".into(),
        account_id: account.map(str::to_owned),
        t,
        seconds: 1,
        packets,
        bytes: packets * 100,
        tcp: packets,
        ..Rollup::default()
    };
    rollups::insert_all(
        &h.state.db,
        Table::Seconds,
        &[
            late(None, t0 + 30, 5),
            late(None, t0 + 31, 2),
            late(Some(&acme), t0 + 61, 4),
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        rollups::fresh_rows(&h.state.db).await.unwrap(),
        vec![
            row(None, t0, "edge0", 2, 7),
            row(Some(&acme), t0 + 60, "edge0", 1, 4),
        ]
    );
    let v = get(&h, &format!("traffic?{range}&step=1m&group_by=node")).await;
    assert_eq!(series(&v, "edge0")["packets"], p0 + 7, "{v}");
    assert_eq!(series(&v, "edge0")["points"][0]["packets"], 720 + 7, "{v}");
    let r = jobs::run_once(&h.state.db, &h.state.config, now())
        .await
        .unwrap();
    assert_eq!(r.downsampled, 3);
    assert_eq!(rollups::fresh_rows(&h.state.db).await.unwrap(), vec![]);
    let v = get(&h, &format!("traffic?{range}&step=1m&group_by=node")).await;
    assert_eq!(series(&v, "edge0")["packets"], p0 + 7, "{v}");
    assert_eq!(series(&v, "edge1")["packets"], p1, "{v}");
    // The late seconds' minutes were added to their hours, the account's apart.
    let rows = rollups::hour_rows(&h.state.db).await.unwrap();
    assert_eq!(hours(&rows, None, "edge0"), (3, 1447, 144_700), "{rows:?}");
    assert_eq!(hours(&rows, Some(&acme), "edge0"), (1, 4, 400), "{rows:?}");
    let by_hour = get(&h, &hourly).await;
    assert_eq!(series(&by_hour, "edge0")["packets"], p0 + 7, "{by_hour}");
    assert_eq!(series(&by_hour, "edge1")["packets"], p1, "{by_hour}");
}

async fn bad_parameters_are_refused_naming_the_field(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let _node = h.node("edge0", &[], &["pre-firewall"]);
    for (query, field) in [
        ("traffic?group_by=colour", "group_by"),
        ("traffic?since=-1h&until=-2h", "since"),
        ("traffic?since=yesterday", "since"),
        ("traffic?until=2026-13-45T00:00:00Z", "until"),
        ("traffic?since=-24h&step=1s", "step"),
        ("traffic?since=-2m&step=0", "step"),
        ("traffic?since=-2m&step=1.5s", "step"),
        ("traffic?nodes=edge0,nowhere", "nodes"),
        ("traffic?points=post-nothing", "points"),
        ("traffic?colour=red", "colour"),
        ("traffic?step=1s&step=2s", "step"),
        ("traffic/top?by=colour", "by"),
        ("traffic/top?limit=0", "limit"),
        ("traffic/top?limit=1000", "limit"),
        ("traffic/top?since=now&until=-1h", "since"),
    ] {
        let (s, v) = h.call("GET", &h.acc(query), None).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{query}: {v}");
        let msg = v["errors"][0]["message"].as_str().unwrap();
        assert!(msg.starts_with(&format!("{field}: ")), "{query}: {msg}");
        assert_eq!(v["success"], false);
    }
    // Still serving, and an empty range answers zeros.
    let v = get(&h, "traffic?since=-10m&step=1m").await;
    assert_eq!(v["series"][0]["packets"], 0);
    // Ten minutes on whole minutes: 10 points, 11 when the range straddles one more.
    let n = v["series"][0]["points"].as_array().unwrap().len();
    assert!((10..=11).contains(&n), "{v}");
}

/// A day of minute rows from a thousand nodes, queried in one request (SQLite, the
/// smaller engine). The time is printed, never asserted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_of_a_thousand_nodes() {
    let Some(h) = Harness::new(Backend::Sqlite).await else {
        return;
    };
    let since = {
        let t = now() - 86400 - 600;
        t - t % 120
    };
    let started = Instant::now();
    let rows = edgecap_server::db::rollups::fill_synthetic(&h.state.db, 1000, since, 1440)
        .await
        .unwrap();
    assert_eq!(rows, 1_440_000);
    eprintln!("inserted {rows} minute rows in {:?}", started.elapsed());
    let per_minute: u64 = (0..1000u64).map(|i| 1000 + i % 7).sum();
    let started = Instant::now();
    let v = get(
        &h,
        &format!("traffic?since={since}&until={}", since + 86400),
    )
    .await;
    let took = started.elapsed();
    let points = v["series"][0]["points"].as_array().unwrap();
    assert_eq!(v["step"], 120);
    assert_eq!(points.len(), 720);
    assert!(
        points.iter().all(|p| p["packets"] == 2 * per_minute),
        "{}",
        points[0]
    );
    assert_eq!(v["series"][0]["packets"], 1440 * per_minute);
    eprintln!(
        "24 h x 1000 nodes: one series of {} points in {took:?}",
        points.len()
    );
    let started = Instant::now();
    let v = get(
        &h,
        &format!(
            "traffic?since={since}&until={}&group_by=point",
            since + 86400
        ),
    )
    .await;
    assert_eq!(series(&v, "pre-firewall")["packets"], 1440 * per_minute);
    eprintln!("the same grouped by point in {:?}", started.elapsed());
    // Single nodes read their own rows.
    let _a = h.node("edge1", &[], &["pre-firewall"]);
    let _b = h.node("edge9", &[], &["pre-firewall"]);
    h.state.hub.barrier().await;
    let started = Instant::now();
    let v = get(
        &h,
        &format!(
            "traffic?since={since}&until={}&group_by=node&nodes=edge1,edge9",
            since + 86400
        ),
    )
    .await;
    assert_eq!(series(&v, "edge1")["packets"], 1440 * 1001);
    assert_eq!(series(&v, "edge9")["packets"], 1440 * 1002);
    eprintln!("two nodes grouped by node in {:?}", started.elapsed());
    // Every node, at 3-hour steps (the dashboard's day): read from the hours' sums, the same
    // as the minutes at 1-hour-and-a-half steps, which are not whole hours.
    let h0 = since - since.rem_euclid(10800) + 10800;
    let range = format!("since={h0}&until={}&group_by=node", h0 + 6 * 10800);
    let started = Instant::now();
    let hours = get(&h, &format!("traffic?{range}&step=3h")).await;
    eprintln!("18 h by node at 3 h steps in {:?}", started.elapsed());
    let started = Instant::now();
    let minutes = get(&h, &format!("traffic?{range}&step=90m")).await;
    eprintln!("the same at 90 min steps in {:?}", started.elapsed());
    let all = hours["series"].as_array().unwrap();
    assert_eq!(all.len(), 1000);
    for s in all {
        let node = s["key"].as_str().unwrap();
        let i: u64 = node.trim_start_matches("edge").parse().unwrap();
        assert_eq!(s["packets"], 18 * 60 * (1000 + i % 7), "{node}");
        let fine = series(&minutes, node)["points"].as_array().unwrap();
        for (k, p) in s["points"].as_array().unwrap().iter().enumerate() {
            let two = fine[2 * k]["packets"].as_u64().unwrap()
                + fine[2 * k + 1]["packets"].as_u64().unwrap();
            assert_eq!(p["packets"], two, "{node} step {k}");
        }
    }
}

/// A realistic second: 10 heavy hitters of each kind, with errors (a full sketch).
fn busy_second(t: i64, i: u64) -> Second {
    let mut s = second(t, "pre-firewall", 50_000 + i % 1000, "198.18.1.1");
    s.top_dst = (0..10u8)
        .map(|k| Hitter {
            key: IpAddr::from([198, 18, 3, k]),
            count: 4000 - u64::from(k) * 100,
            error: 120 + u64::from(k),
        })
        .collect();
    s.top_src = (0..10u16)
        .map(|k| Hitter {
            key: IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 0, k + 1]),
            count: 3000 - u64::from(k) * 90,
            error: 77,
        })
        .collect();
    s.top_dport = (0..10u16)
        .map(|k| Hitter {
            key: 1000 + k,
            count: 2500 - u64::from(k) * 50,
            error: 31,
        })
        .collect();
    s.families = [40_000, 10_000];
    s.lengths = [9000, 8000, 7000, 6000, 5000, 4000, 100, 0];
    s
}

/// Database growth per node and point: an hour of seconds with full heavy-hitter lists,
/// then its minutes (SQLite; the bytes are the database's used pages). Printed for
/// docs/operations.md; the row counts are asserted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_growth_per_node_and_point() {
    let Some(h) = Harness::new(Backend::Sqlite).await else {
        return;
    };
    let db = &h.state.db;
    let used = || async {
        edgecap_server::db::rollups::sqlite_used_bytes(db)
            .await
            .unwrap()
            .unwrap()
    };
    let node = h.node("edge0", &[], &["pre-firewall"]);
    let t0 = {
        let t = now() - 3600 - 300;
        t - t % 60
    };
    let b0 = used().await;
    for m in 0..60 {
        let seconds = (0..60)
            .map(|s| busy_second(t0 + m * 60 + s, (m * 60 + s) as u64))
            .collect();
        node.session.handle(AgentMsg::Rollups { seconds });
    }
    h.state.hub.rollups().barrier().await;
    assert_eq!(h.count("rollup_seconds").await, 3600);
    let b1 = used().await;
    let per_second = (b1 - b0) as f64 / 3600.0;
    jobs::run_once(db, &h.state.config, now()).await.unwrap();
    // 60 minutes of the node, 60 of the fleet.
    assert_eq!(h.count("rollup_minutes").await, 120);
    // Downsampled seconds keep their totals, not their heavy-hitter lists.
    assert_eq!(h.count("rollup_seconds").await, 3600);
    let b_job = used().await;
    let fine = h.state.config.rollup_fine_retention.as_secs() as i64;
    let r = jobs::run_once(db, &h.state.config, t0 + 3600 + fine + 60)
        .await
        .unwrap();
    assert_eq!(r.expired_seconds, 3600);
    let b2 = used().await;
    let per_minute = (b2 - b0) as f64 / 120.0;
    let per_second_kept = b_job.saturating_sub(b2) as f64 / 3600.0;
    let fine_hours = fine as f64 / 3600.0;
    let days = h.state.config.rollup_retention.as_secs() as f64 / 86400.0;
    eprintln!(
        "rollup growth: {per_second:.0} bytes per second row as it arrives, \
         {per_second_kept:.0} once downsampled, {per_minute:.0} bytes per minute row; per node \
         and point: {:.1} MiB of seconds ({fine_hours} h kept), {:.2} MiB of minutes a day \
         ({:.1} MiB at {days} days)",
        per_second_kept * fine as f64 / 1048576.0,
        per_minute * 1440.0 / 1048576.0,
        per_minute * 1440.0 * days / 1048576.0,
    );
}

/// A simulated agent on a real server sends its seconds over the WebSocket; the server stores
/// them and answers them.
async fn rollups_over_a_real_socket_are_stored(b: Backend) {
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(edgecap_server::run(listener, h.state.clone(), async move {
        let _ = stopped.await;
    }));
    let msg = edgecap_server::sim::hello("edge7", &[], &["pre-firewall"]);
    let (mut agent, _welcome) = edgecap_server::sim::SimAgent::connect(&base, &h.agent_token, &msg)
        .await
        .unwrap();
    let t0 = now() - 200;
    let seconds: Vec<Second> = (0..100)
        .map(|i| second(t0 + i, "pre-firewall", 7, "198.18.7.7"))
        .collect();
    agent.send_rollups(&seconds).await.unwrap();
    let until = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while h.state.hub.rollups().stored() < 100 && tokio::time::Instant::now() < until {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    h.state.hub.rollups().barrier().await;
    let v = get(
        &h,
        &format!("traffic?since={t0}&until={}&step=1s&nodes=edge7", t0 + 100),
    )
    .await;
    assert_eq!(v["series"][0]["packets"], 700, "{v}");
    // /metrics counts them.
    let (s, text) = h.call_as(None, "GET", "/metrics", None).await;
    assert_eq!(s, StatusCode::OK);
    let text = text.as_str().unwrap();
    assert!(
        text.lines()
            .any(|l| l == "edgecap_rollup_seconds_total{outcome=\"stored\"} 100"),
        "{text}"
    );
    agent.close().await;
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

/// Rows made for an account (its prefixes' traffic, from the agent) are read only by a query
/// scoped to that account, and never by a whole-node query; whole-node rows never by an
/// account's. (Which scope an account gets is `rollups::query::scope_for`.)
async fn account_rows_stay_with_their_account(b: Backend) {
    use edgecap_server::db::rollups::{self, GroupCol, List, Rollup, Scope, Selection, Table};
    let Some(h) = Harness::new(b).await else {
        return;
    };
    let t = now() - 100;
    let row = |account: Option<&str>, packets| Rollup {
        node: "edge0".into(),
        point: "pre-firewall".into(),
        account_id: account.map(str::to_owned),
        t,
        seconds: 1,
        packets,
        bytes: packets * 100,
        ..Rollup::default()
    };
    let (acme, other) = (h.account.id.as_str(), h.other.id.as_str());
    rollups::insert_all(
        &h.state.db,
        Table::Seconds,
        &[row(None, 1000), row(Some(acme), 30), row(Some(other), 7)],
    )
    .await
    .unwrap();
    let total = |scope: Scope| {
        let sel = Selection {
            scope,
            since: t - 10,
            until: t + 10,
            nodes: vec![],
            points: vec![],
            fleet: true,
        };
        let db = h.state.db.clone();
        async move {
            rollups::series(&db, Table::Seconds, &sel, 20, GroupCol::None)
                .await
                .unwrap()
                .iter()
                .map(|b| b.packets)
                .sum::<u64>()
        }
    };
    assert_eq!(total(Scope::WholeNodes).await, 1000);
    assert_eq!(total(Scope::Account(acme.into())).await, 30);
    assert_eq!(total(Scope::Account(other.into())).await, 7);
    // Minutes by node with no node named (each node's rows found along the time index): a
    // scope reads its own rows of every node, in the range only, and never the fleet's.
    let minute = |node: &str, account: Option<&str>, t: i64, packets| Rollup {
        node: node.into(),
        t,
        seconds: 60,
        ..row(account, packets)
    };
    let m0 = t - t % 60 - 600;
    rollups::insert_all(
        &h.state.db,
        Table::Minutes,
        &[
            minute("edge0", None, m0, 100),
            minute("edge1", None, m0, 200),
            minute("edge1", None, m0 + 60, 300),
            minute("edge2", None, m0 - 3600, 999),
            minute("*", None, m0, 600),
            minute("edge1", Some(acme), m0, 40),
            minute("edge3", Some(acme), m0 + 60, 50),
            minute("edge1", Some(other), m0, 9),
        ],
    )
    .await
    .unwrap();
    // A node with seconds not yet downsampled and no minute yet is read too.
    let fresh = Rollup {
        node: "edge7".into(),
        t: m0 + 5,
        ..row(None, 70)
    };
    rollups::insert_all(&h.state.db, Table::Seconds, &[fresh])
        .await
        .unwrap();
    let by_node = |scope: Scope| {
        let sel = Selection {
            scope,
            since: m0,
            until: m0 + 120,
            nodes: vec![],
            points: vec![],
            fleet: false,
        };
        let db = h.state.db.clone();
        async move {
            let mut sums = std::collections::BTreeMap::new();
            for b in rollups::series(&db, Table::Minutes, &sel, 60, GroupCol::Node)
                .await
                .unwrap()
            {
                *sums.entry(b.group).or_insert(0) += b.packets;
            }
            sums.into_iter().collect::<Vec<(String, u64)>>()
        }
    };
    let pairs = |v: &[(&str, u64)]| -> Vec<(String, u64)> {
        v.iter().map(|(n, p)| (n.to_string(), *p)).collect()
    };
    assert_eq!(
        by_node(Scope::WholeNodes).await,
        pairs(&[("edge0", 100), ("edge1", 500), ("edge7", 70)])
    );
    assert_eq!(
        by_node(Scope::Account(acme.into())).await,
        pairs(&[("edge1", 40), ("edge3", 50)])
    );
    assert_eq!(
        by_node(Scope::Account(other.into())).await,
        pairs(&[("edge1", 9)])
    );
    // A heavy-hitter read stops past its bound and says so (the API's 400 for too wide a
    // range): the three minutes and the one fresh second of the whole nodes are read with a
    // bound of 4, not of 3.
    let sel = Selection {
        scope: Scope::WholeNodes,
        since: m0,
        until: m0 + 120,
        nodes: vec![],
        points: vec![],
        fleet: false,
    };
    for (bound, whole, read) in [(4, true, 4), (3, false, 3)] {
        let mut n = 0;
        let packets = std::cell::Cell::new(0);
        let got = rollups::each_list(&h.state.db, Table::Minutes, &sel, List::Dst, bound, |r| {
            n += 1;
            packets.set(packets.get() + r.packets);
            Ok(())
        })
        .await
        .unwrap();
        assert_eq!((got, n), (whole, read), "bound {bound}");
        if whole {
            assert_eq!(packets.get(), 670);
        }
    }
    // Through the API: an unrestricted account reads whole nodes; a restricted one only the
    // rows made for it.
    let _n = h.node("edge0", &[], &["pre-firewall"]);
    h.state.hub.barrier().await;
    let q = format!(
        "traffic?since={}&until={}&step=1m",
        t - t % 60,
        t - t % 60 + 60
    );
    let v = get(&h, &q).await;
    assert_eq!(v["series"][0]["packets"], 1000, "{v}");
    let (r, token) =
        crate::common::restricted_account(&h.state, "tenant", &["198.51.100.0/24"], &[]).await;
    rollups::insert_all(&h.state.db, Table::Seconds, &[row(Some(&r.id), 12)])
        .await
        .unwrap();
    let (s, v) = h
        .call_as(
            Some(&token),
            "GET",
            &format!("/client/v4/accounts/{}/{q}", r.id),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["result"]["series"][0]["packets"], 12, "{v}");
}
