//! Triggers end to end (issue 14): a real server and real agents on two lab edges. A trigger
//! made through the API with a validated moto bucket as its destination; a flood from many
//! sources to one destination, through both edges among benign traffic, fires it on each
//! node: one event with both nodes, its captures in `GET /pcaps` ending `success`, their files
//! in the bucket with the flood's sampled packets from before the firing and its live packets
//! after it, and the signature once the captures ended; a repeated flood beyond the trigger's
//! `captures_per_hour` starts no capture (the agents ask the server beyond their own shares
//! and are refused), the event says so, and the bucket never holds more captures than the
//! budget; traffic below the threshold makes no event; another account sees none. Every flow
//! is bounded in packets and time.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::bucket::Bucket;
use crate::capture_common::{Scratch, markers_at, root_or_skip, tshark_fields, wait_for};
use crate::flows::{BENIGN, FLOOD_PORT, benign, flood, paced};
use crate::harness::{Fleet, ServerOpts};

/// Observer sampling in these tests (the sampled interface says it).
const ONE_IN: u64 = 4;
/// The flooded destination: an address behind both edges' pre-firewall point (neither
/// routes it on, so the flood goes no further than the edges).
const TARGET: [u8; 4] = [198, 18, 250, 9];
/// First flood marker of edge `i` (so each node's packets are told apart).
const EDGE_MARKERS: u32 = 200_000;

/// A fleet of `edges` edges whose agents observe 1 in [`ONE_IN`]; the scratch directory
/// holding their configuration lives as long as the fleet.
fn fleet(edges: usize) -> (Fleet, Scratch) {
    let tmp = Scratch::new("events-config");
    let config = tmp.path("agent.toml");
    std::fs::write(&config, format!("[observer]\nsample_one_in = {ONE_IN}\n")).unwrap();
    let opts = ServerOpts {
        agent_args: vec!["--config".into(), config.display().to_string()],
        ..ServerOpts::default()
    };
    (Fleet::new(edges, opts), tmp)
}

/// Creates a trigger (per destination, above 1000 packets/s for 2 s) through the API with
/// `destination_conf` and the given budget and cooldown; its id, once every agent of the
/// fleet evaluates it.
fn add_trigger(fleet: &Fleet, destination_conf: &str, per_hour: u64, cooldown: u64) -> String {
    let (s, v) = fleet.api(
        reqwest::Method::POST,
        "pcaps/triggers",
        Some(json!({
            "name": "udp flood",
            "scope": {"colo_name": "lab", "points": ["pre-firewall"]},
            "condition": {"metric": "packets_per_second", "per": "destination", "above": 1000,
                          "sustained_seconds": 2},
            "capture": {"time_limit": 3, "byte_limit": 5_000_000, "points": ["pre-firewall"],
                        "destination_conf": destination_conf, "pre_trigger_seconds": 5},
            "cooldown_seconds": cooldown,
            "budget": {"captures_per_hour": per_hour},
        })),
    );
    assert_eq!(s, 200, "{v}");
    let id = v["result"]["id"].as_str().unwrap().to_owned();
    for (i, a) in fleet.agents.iter().enumerate() {
        let ok = wait_for(Duration::from_secs(10), || {
            plain(&std::fs::read_to_string(&a.log).unwrap_or_default())
                .lines()
                .any(|l| l.contains("triggers evaluated here") && l.contains("triggers=1"))
        });
        assert!(ok, "agent {i} never got the trigger\n{}", fleet.logs());
    }
    id
}

/// A log without its colours (ANSI escape sequences).
fn plain(log: &str) -> String {
    let mut out = String::with_capacity(log.len());
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // CSI: up to and including the final letter.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The account's events (`GET /events`), newest first.
fn events(fleet: &Fleet) -> Vec<Value> {
    let (s, v) = fleet.api(reqwest::Method::GET, "events", None);
    assert_eq!(s, 200, "{v}");
    v["result"].as_array().cloned().unwrap()
}

/// Polls the events until `done` holds for them (at most `within`); the last list seen.
fn wait_events(fleet: &Fleet, within: Duration, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let list = events(fleet);
        if done(&list) {
            return list;
        }
        assert!(
            start.elapsed() < within,
            "events never reached the expected state within {within:?}: {list:#?}\n{}",
            fleet.logs()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Unix seconds of an RFC 3339 UTC time as the API writes it (`2026-12-07T00:10:02Z`).
fn unix(t: &Value) -> i64 {
    let t = t.as_str().unwrap_or_else(|| panic!("not a time: {t}"));
    let n = |r: std::ops::Range<usize>| t[r].parse::<i64>().unwrap();
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + n(11..13) * 3600 + n(14..16) * 60 + n(17..19)
}

/// A flood of `secs` seconds at 3000 datagrams a second to [`TARGET`] through every listed
/// edge (markers from `first` + [`EDGE_MARKERS`] * edge), among 100 benign segments a second
/// through each edge for two seconds longer.
fn flood_through(fleet: &Fleet, edges: &[usize], first: u32, secs: u32) {
    let target = IpAddr::from(TARGET);
    std::thread::scope(|s| {
        for &i in edges {
            let lab = &fleet.lab;
            let benign_packets = benign(lab, i, first + EDGE_MARKERS * i as u32, 100 * (secs + 2));
            let flood_packets = flood(target, first + EDGE_MARKERS * i as u32, 3000 * secs);
            s.spawn(move || paced(lab, i, &benign_packets, 100));
            s.spawn(move || paced(lab, i, &flood_packets, 3000));
        }
    });
}

/// A flood through two edges to one destination, among benign traffic, fires the trigger on
/// both: ONE event lists both nodes with start, peak and end, the two captures (each in
/// `GET /pcaps`, `success`) and their files, and the signature once they ended; each file,
/// from the moto bucket, opens in tshark with the flood's samples from before the firing on
/// `<node>/pre-firewall/sampled` and live flood packets after it, no benign packet. `edgecap
/// events --json` says the same; another account sees no event. The budget of 2 an hour is
/// edge0's own share of 1 and a pool of 1 the server grants: the first flood's capture on
/// edge1 was asked for and granted. A repeated flood within the hour, beyond the budget,
/// starts no capture at all: both nodes ask and are refused, the event says why, the server
/// stops nothing, and the bucket holds the 2 captures' files and nothing else.
#[test]
fn a_flood_on_two_edges_is_one_event_with_its_captures_in_the_bucket() {
    if !root_or_skip() {
        return;
    }
    let bucket = Bucket::s3();
    let (fleet, _config) = fleet(2);
    fleet.own(&bucket);
    let trigger = add_trigger(&fleet, &bucket.conf(), 2, 0);
    let flood_start = now_unix();
    flood_through(&fleet, &[0, 1], 1, 7);

    // One event, both nodes, both captures ended with their files, and the signature.
    let list = wait_events(&fleet, Duration::from_secs(60), |l| {
        l.first().is_some_and(|e| {
            e["captures"].as_array().is_some_and(|c| {
                c.len() == 2
                    && c.iter()
                        .all(|c| c["status"] == "success" && c["file"].is_string())
            }) && !e["ended"].is_null()
                && !e["signature"].is_null()
        })
    });
    assert_eq!(list.len(), 1, "{list:#?}");
    let e = &list[0];
    assert_eq!(e["trigger_id"], trigger.as_str());
    assert_eq!(e["trigger_name"], "udp flood");
    assert_eq!(e["key"], "198.18.250.9");
    assert_eq!(e["refused"], false, "{e:#}");
    let nodes = e["nodes"].as_array().unwrap();
    let names: Vec<&str> = nodes.iter().map(|n| n["node"].as_str().unwrap()).collect();
    assert_eq!(names, ["edge0", "edge1"], "{e:#}");
    let started = unix(&e["started"]);
    assert!(started >= flood_start - 1, "{e:#}");
    assert!(unix(&e["ended"]) > started, "{e:#}");
    // 3000 a second through each edge: each node's peak is about that, over the threshold.
    for n in nodes {
        let peak = n["peak"].as_f64().unwrap();
        assert!(peak > 1000.0 && peak < 6000.0, "{n}");
        assert!(unix(&n["started"]) >= started && unix(&n["ended"]) >= unix(&n["started"]));
    }
    let peak = e["peak"].as_f64().unwrap();
    assert!(nodes.iter().all(|n| n["peak"].as_f64().unwrap() <= peak));
    let sig = &e["signature"];
    assert!(sig["attack_packets"].as_u64().unwrap() > 0, "{sig:#}");
    assert!(
        sig["fields"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["expression"]
                .as_str()
                .unwrap()
                .contains(&FLOOD_PORT.to_string())),
        "{sig:#}"
    );

    // The captures are the account's like any other, and their files are in the bucket.
    let (s, v) = fleet.api(reqwest::Method::GET, "pcaps", None);
    assert_eq!(s, 200, "{v}");
    let pcaps = v["result"].as_array().unwrap();
    let got = Scratch::new("events-files");
    for (i, c) in e["captures"].as_array().unwrap().iter().enumerate() {
        let id = c["id"].as_str().unwrap();
        assert_eq!(c["node"], format!("edge{i}"), "{e:#}");
        let listed = pcaps.iter().find(|p| p["id"] == id);
        assert!(listed.is_some(), "{id} not in GET /pcaps: {v:#}");
        let p = fleet.get(id);
        assert_eq!(p["status"], "success", "{p:#}");
        assert_eq!(p["type"], "full", "{p:#}");
        let file = c["file"].as_str().unwrap();
        assert_eq!(file, format!("{id}/edge{i}.pcapng"));
        let file = bucket.fetch(file, &got.0);
        let node_started = unix(&nodes[i]["started"]);
        check_file(&file, i, node_started);
    }

    // The CLI lists the same one event.
    let out = std::process::Command::new(crate::capture_common::BIN)
        .args(["events", "--json"])
        .env("EDGECAP_SERVER", &fleet.url)
        .env("EDGECAP_TOKEN", &fleet.token)
        .env("EDGECAP_ACCOUNT", &fleet.account)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cli: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cli.as_array().unwrap().len(), 1, "{cli:#}");
    assert_eq!(cli[0]["id"], e["id"]);
    assert_eq!(cli[0]["nodes"], e["nodes"]);
    assert_eq!(cli[0]["captures"], e["captures"]);

    // Another account sees no event, and not this one.
    let other = fleet.admin(&["account", "create", "--name", "other", "--unrestricted"]);
    let token = fleet.admin(&["token", "create", "--account", &other]);
    let http = reqwest::blocking::Client::new();
    let base = format!("{}/client/v4/accounts/{other}/events", fleet.url);
    let r = http.get(&base).bearer_auth(&token).send().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = r.json().unwrap();
    assert_eq!(v["result"], json!([]), "{v:#}");
    let r = http
        .get(format!("{base}/{}", e["id"].as_str().unwrap()))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);

    // The same flood again, within the hour: both nodes fire, but the trigger started its 2
    // captures this hour; both ask and are refused, and the event says so.
    flood_through(&fleet, &[0, 1], 50_001, 5);
    let list = wait_events(&fleet, Duration::from_secs(40), |l| {
        let refusals: usize = l
            .iter()
            .map(|e| e["refusals"].as_array().map_or(0, Vec::len))
            .sum();
        refusals == 2
    });
    let refusals: Vec<&Value> = list
        .iter()
        .flat_map(|e| e["refusals"].as_array().unwrap())
        .collect();
    let mut refused_nodes: Vec<&str> = Vec::new();
    for r in &refusals {
        let reason = r["reason"].as_str().unwrap();
        assert!(reason.starts_with("budget.captures_per_hour"), "{r}");
        // Refused before anything started: no capture was stopped.
        assert!(!reason.contains("stopped"), "{r}");
        refused_nodes.push(r["node"].as_str().unwrap());
    }
    refused_nodes.sort_unstable();
    assert_eq!(refused_nodes, ["edge0", "edge1"], "{list:#?}");
    assert!(list.iter().any(|e| e["refused"] == true), "{list:#?}");
    let captures: usize = list
        .iter()
        .map(|e| e["captures"].as_array().unwrap().len())
        .sum();
    assert_eq!(captures, 2, "{list:#?}");
    let (_, v) = fleet.api(reqwest::Method::GET, "pcaps", None);
    assert_eq!(v["result"].as_array().unwrap().len(), 2, "{v:#}");
    // The bucket: each of the 2 captures' file and manifest, nothing else (no short file of
    // a capture started and then stopped), and no upload left open.
    let ids: Vec<&str> = e["captures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    let mut expected: Vec<String> = ids
        .iter()
        .enumerate()
        .flat_map(|(i, id)| {
            ["pcapng", "json"].map(|ext| format!("{}/{id}/edge{i}.{ext}", bucket.dir))
        })
        .collect();
    expected.sort();
    let keys: Vec<String> = bucket
        .keys()
        .into_iter()
        .filter(|k| !k.contains("ownership-challenge-"))
        .collect();
    assert_eq!(keys, expected, "{}", fleet.logs());
    assert_eq!(
        edgecap_testkit::http::moto_open_uploads(bucket.server.port, &bucket.name),
        Vec::<String>::new()
    );
    // The logs agree: edge1's first capture was granted, and the server stopped none.
    let logs = fleet.logs();
    assert!(
        logs.contains("capture granted from the trigger's pool"),
        "{logs}"
    );
    assert!(
        !logs.contains("firing beyond the trigger's hourly budget"),
        "{logs}"
    );
}

/// Node `edge`'s file: the flood's samples first, on `edge<i>/pre-firewall/sampled`, some
/// from before the condition had held its 2 s (`started` + 2: before the firing), then live
/// flood packets, all after it; no benign packet (the capture is narrowed to the target).
fn check_file(file: &std::path::Path, edge: usize, started: i64) {
    let sampled_if = format!("edge{edge}/pre-firewall/sampled");
    let live_if = format!("edge{edge}/pre-firewall");
    let sampled = markers_at(file, &sampled_if);
    let live = markers_at(file, &live_if);
    assert!(
        !sampled.is_empty() && !live.is_empty(),
        "{sampled:?} {live:?}"
    );
    let first = EDGE_MARKERS * edge as u32;
    assert!(
        sampled
            .iter()
            .chain(&live)
            .all(|m| *m > first && *m < first + EDGE_MARKERS && *m < BENIGN),
        "only this node's flood packets"
    );
    assert!(
        sampled.last() < live.first(),
        "samples precede live packets"
    );
    let rows = tshark_fields(
        file,
        &[
            "frame.interface_name",
            "frame.interface_description",
            "frame.time_epoch",
        ],
    );
    let times = |name: &str| -> Vec<f64> {
        rows.iter()
            .filter(|r| r[0] == name)
            .map(|r| r[2].parse::<f64>().unwrap())
            .collect()
    };
    assert!(
        rows.iter()
            .filter(|r| r[0] == sampled_if)
            .all(|r| r[1].starts_with(&format!("sampled 1 in {ONE_IN}"))),
        "{rows:?}"
    );
    let fired = (started + 2) as f64;
    let earliest = times(&sampled_if).into_iter().fold(f64::MAX, f64::min);
    assert!(
        earliest < fired,
        "earliest sample {earliest}, firing {fired}"
    );
    let first_live = times(&live_if).into_iter().fold(f64::MAX, f64::min);
    assert!(
        first_live >= fired,
        "first live {first_live}, firing {fired}"
    );
}

/// Benign traffic through two edges, rising to 800 packets a second to one destination but
/// never above the 1000 threshold, makes no event and no capture, though both agents
/// evaluate the trigger.
#[test]
fn traffic_below_the_threshold_makes_no_event() {
    if !root_or_skip() {
        return;
    }
    let (fleet, _config) = fleet(2);
    let dest = format!("file://{}", fleet.dest.display());
    add_trigger(&fleet, &dest, 2, 0);
    let target = IpAddr::from(TARGET);
    std::thread::scope(|s| {
        for i in 0..2usize {
            let lab = &fleet.lab;
            let mut next = 1 + EDGE_MARKERS * i as u32;
            let steps: Vec<(Vec<Vec<u8>>, usize)> = [300u32, 500, 800, 800, 400, 800, 200]
                .iter()
                .map(|n| {
                    let p = flood(target, next, *n);
                    next += n;
                    (p, *n as usize)
                })
                .collect();
            let benign_packets = benign(lab, i, EDGE_MARKERS * i as u32, 700);
            s.spawn(move || paced(lab, i, &benign_packets, 100));
            s.spawn(move || {
                for (step, pps) in &steps {
                    paced(lab, i, step, *pps);
                }
            });
        }
    });
    // Two seconds for the last seconds to close and be evaluated, and a report to arrive.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(events(&fleet), Vec::<Value>::new(), "{}", fleet.logs());
    // The agents did see it: the rollups put the target at the top, about the 2 x 3700
    // datagrams sent (estimated from 1 in 4 samples).
    let mut top = Value::Null;
    let seen = wait_for(Duration::from_secs(10), || {
        top = fleet
            .api(reqwest::Method::GET, "traffic/top?since=-1m&by=dst", None)
            .1;
        top["result"]["hitters"][0]["key"] == "198.18.250.9"
            && top["result"]["hitters"][0]["packets"]
                .as_f64()
                .is_some_and(|p| p > 5000.0 && p < 10_000.0)
    });
    assert!(seen, "{top:#}");
    let (_, v) = fleet.api(reqwest::Method::GET, "pcaps", None);
    assert_eq!(v["result"], json!([]), "{v:#}");
}
