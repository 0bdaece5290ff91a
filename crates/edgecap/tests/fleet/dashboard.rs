//! The dashboard against a real lab (issue 15, "Show it"): a real server, two real agents
//! observing their edges (every packet sampled), known traffic with payload markers, and a
//! real headless Chromium (Debian's, driven by Playwright: `dashboard.py`, found as the
//! server's browser tests find it, `edgecap_testkit::browser`) that logs in, reads the fleet,
//! reads the chart's numbers and compares them (here) with nft counters of the test's own,
//! brushes a range with the mouse and takes a look-back capture of it, starts a live capture
//! from the form and watches it end, and looks as a second account. Root only; under CI=true
//! neither root nor the browser may be missing.

use std::io::{BufRead, BufReader, Write};
use std::net::IpAddr;
use std::ops::Range;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use edgecap_lab::packet::Packet;
use serde_json::Value;

use crate::capture_common::{Scratch, markers, nft_tables, root_or_skip, wait_for};
use crate::harness::{Fleet, PORT, Proc, ServerOpts};
use crate::traffic::{Truth, next_second, unix};

/// The traffic's phases, in seconds from its first whole second T: markers sent before the
/// brushed range, inside it, and after it. Each second's packets go out in one burst 0.4 s
/// into the second, far from the second boundaries where the agent and the test read their
/// counters.
const BEFORE: Range<u64> = 0..2;
const INSIDE: Range<u64> = 4..12;
const AFTER: Range<u64> = 14..16;
/// The counters are read at the start of each second up to this one.
const LAST: u64 = 17;
/// The range the test brushes, in seconds from T: its ends lie in the quiet seconds between
/// the phases, whichever whole second the page rounds them to.
const BRUSH: (f64, f64) = (2.5, 13.5);
/// Packets a second through each edge (and the second account's, through edge 0 only).
const RATES: [u64; 2] = [8, 4];
const TENANT_RATE: u64 = 2;
/// The second account's prefix and the source its packets come from.
const TENANT_PREFIX: &str = "198.18.100.0/24";
const TENANT_SRC: &str = "198.18.100.7";

/// How far the chart's rate of a node in one second may be from the nft counter's: the
/// agent's observer reads its counters 5-55 ms after each second ends, the test's counter
/// is read about 50 ms after it, and the lab's links send a few IPv6 packets of their own
/// (neighbour discovery, MLD) at any time; one that crosses between the two reads is counted
/// in neighbouring seconds. The test's own packets cross 0.4 s into a second and are never
/// split. docs/dashboard.md says the same.
const TOLERANCE_PPS: f64 = 2.0;

/// Marker of packet `j` sent through edge `edge` in second `k` of the traffic; the second
/// account's packets have their own range.
fn marker(edge: usize, k: u64, j: u64) -> u32 {
    (100_000 * (edge as u64 + 1) + 100 * k + j) as u32
}
fn tenant_marker(k: u64, j: u64) -> u32 {
    (50_000 + 100 * k + j) as u32
}

/// The second `k` of the traffic's packets through edge `edge`.
fn second_of(fleet: &Fleet, edge: usize, k: u64) -> Vec<Vec<u8>> {
    let lab = &fleet.lab;
    let udp = |src: IpAddr, m: u32| {
        Packet::udp(src, lab.origin_addr(edge, false), 40000, PORT)
            .marker(m)
            .build()
            .unwrap()
    };
    let mut packets: Vec<Vec<u8>> = (0..RATES[edge])
        .map(|j| udp(lab.src_addr(edge, false), marker(edge, k, j)))
        .collect();
    if edge == 0 && INSIDE.contains(&k) {
        let src: IpAddr = TENANT_SRC.parse().unwrap();
        packets.extend((0..TENANT_RATE).map(|j| udp(src, tenant_marker(k, j))));
    }
    packets
}

/// A rate as the page writes it ("8.0 pps", "12 pps", "1.2 kpps"), in packets a second.
fn pps(text: &str) -> f64 {
    let (n, unit) = text.split_once(' ').unwrap_or((text, ""));
    let n: f64 = n.parse().unwrap_or_else(|_| panic!("a rate: {text:?}"));
    match unit {
        "pps" => n,
        "kpps" => n * 1e3,
        "Mpps" => n * 1e6,
        _ => panic!("a rate: {text:?}"),
    }
}

/// Every `EDGECAP-MARK-<n>` in the page's payload previews.
fn page_markers(payloads: &Value) -> Vec<u32> {
    let mut m: Vec<u32> = payloads
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| {
            let p = p.as_str()?.as_bytes();
            edgecap_lab::packet::find_marker(p)
        })
        .collect();
    m.sort_unstable();
    m
}

#[test]
fn the_dashboard_shows_the_labs_nodes_traffic_and_captures_in_a_real_browser() {
    if !root_or_skip() {
        return;
    }
    let Some(python) = edgecap_testkit::browser::python() else {
        return;
    };
    let started = Instant::now();
    let dir = Scratch::new("dashboard-lab");
    let config = dir.path("agent.toml");
    std::fs::write(&config, "[observer]\nsample_one_in = 1\n").unwrap();
    let opts = ServerOpts {
        agent_args: vec!["--config".into(), config.display().to_string()],
        ..ServerOpts::default()
    };
    let fleet = Fleet::new(2, opts);
    // The second account owns a prefix no other traffic uses.
    let other = fleet.admin(&[
        "account",
        "create",
        "--name",
        "other",
        "--prefix",
        TENANT_PREFIX,
    ]);
    let other_token = fleet.admin(&["token", "create", "--account", &other]);
    for i in 0..2 {
        let ns = fleet.lab.edge_ns(i).to_owned();
        assert!(
            wait_for(Duration::from_secs(10), || nft_tables(&ns)
                .iter()
                .any(|t| t == "edgecap_observer")),
            "no observer in {ns}\n{}",
            fleet.logs()
        );
    }
    let log = || std::fs::read_to_string(&fleet.agents[0].log).unwrap_or_default();
    assert!(
        wait_for(Duration::from_secs(15), || log().lines().any(|l| l
            .contains("observer keeps accounts apart")
            && l.contains(&other))),
        "edge0's agent never heard of the second account\n{}",
        fleet.logs()
    );
    let truth = [0, 1].map(|i| Truth::install(fleet.lab.edge_ns(i)));

    let (t0, readings, sent) = send_phases(&fleet, &truth);
    // The truth of node `edge` in unix second `t`.
    let truth_at = |edge: usize, t: u64| -> Option<u64> {
        let k = usize::try_from(t.checked_sub(t0)?).ok()?;
        Some(readings.get(k + 1)?[edge] - readings[k][edge])
    };
    // The agents send closed seconds at each heartbeat: wait until the server holds them all.
    let query = format!(
        "traffic?since={t0}&until={}&step=1s&group_by=node",
        t0 + LAST
    );
    let arrived = wait_for(Duration::from_secs(20), || {
        let (_, v) = fleet.api(reqwest::Method::GET, &query, None);
        (0..2).all(|i| {
            v["result"]["series"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|s| s["key"] == format!("edge{i}"))
                .and_then(|s| s["packets"].as_u64())
                .is_some_and(|p| p >= sent[i])
        })
    });
    assert!(arrived, "the rollups never arrived\n{}", fleet.logs());

    // The browser.
    let origin0 = fleet.lab.origin_addr(0, false).to_string();
    let env = vec![
        ("EDGECAP_BASE", fleet.url.clone()),
        ("EDGECAP_TOKEN", fleet.token.clone()),
        ("EDGECAP_OTHER_TOKEN", other_token.clone()),
        ("EDGECAP_DEST", format!("file://{}", fleet.dest.display())),
        ("EDGECAP_SINCE", (t0 - 20).to_string()),
        ("EDGECAP_UNTIL", (t0 + LAST + 10).to_string()),
        ("EDGECAP_BRUSH_FROM", (t0 as f64 + BRUSH.0).to_string()),
        ("EDGECAP_BRUSH_TO", (t0 as f64 + BRUSH.1).to_string()),
        ("EDGECAP_HITTER", origin0.clone()),
        ("EDGECAP_NODES", "edge0,edge1".to_owned()),
        ("EDGECAP_LIVE_FIRST", LIVE_FIRST.to_string()),
        ("EDGECAP_LIVE_FILTER", format!("udp and dst port {PORT}")),
        ("EDGECAP_SHOTS", env!("CARGO_TARGET_TMPDIR").to_owned()),
    ];
    let (v, live_id) = browse(&fleet, &python, &env);
    let s = |k: &str| v[k].as_str().unwrap_or_default().to_owned();

    // 1. The fleet: the lab's nodes, connected.
    assert_eq!(
        v["fleet"],
        serde_json::json!([["edge0", "connected"], ["edge1", "connected"]]),
        "{v}"
    );
    assert_eq!(v["series"], serde_json::json!(["edge0", "edge1"]), "{v}");

    // 2. The brushed range, whole seconds, and every second of it in the chart's table at
    // the rate the counters saw (within TOLERANCE_PPS).
    let (a, b) = (
        v["brushed"][0].as_u64().unwrap(),
        v["brushed"][1].as_u64().unwrap(),
    );
    let inside = (t0 + INSIDE.start, t0 + INSIDE.end);
    assert!(
        a >= t0 + BEFORE.end && a <= inside.0 && b >= inside.1 && b <= t0 + AFTER.start,
        "the brush [{a}, {b}) does not hold the middle phase [{}, {}) alone (T = {t0})",
        inside.0,
        inside.1
    );
    let rows = v["chart_rows"].as_array().unwrap();
    for (edge, node) in ["edge0", "edge1"].iter().enumerate() {
        let mine: Vec<&Value> = rows.iter().filter(|r| r[0] == *node).collect();
        let seconds: Vec<u64> = mine.iter().map(|r| r[1].as_u64().unwrap()).collect();
        assert_eq!(seconds, (a..b).collect::<Vec<_>>(), "{node}: {v}");
        for r in mine {
            let t = r[1].as_u64().unwrap();
            let truth = truth_at(edge, t).unwrap() as f64;
            let shown = pps(r[3].as_str().unwrap());
            assert!(
                (shown - truth).abs() <= TOLERANCE_PPS,
                "{node} at {t} (T+{}): the page shows {shown} pps, the nft counter saw \
                 {truth}\n{v}",
                t - t0
            );
            if (inside.0..inside.1).contains(&t) {
                let expected = RATES[edge] + if edge == 0 { TENANT_RATE } else { 0 };
                assert!(
                    truth >= expected as f64,
                    "{node} at {t}: the counter saw {truth}"
                );
            }
        }
    }
    assert_eq!(v["hitters"][0], origin0.as_str(), "{v}");

    // 3. The look-back capture of that range and edge 0's destination: exactly the markers
    // sent to it inside the range (edge 0's and the second account's), none from outside.
    assert_eq!(s("lookback_status"), "success", "{v}");
    let mut expected: Vec<u32> = INSIDE
        .flat_map(|k| {
            (0..RATES[0])
                .map(move |j| marker(0, k, j))
                .chain((0..TENANT_RATE).map(move |j| tenant_marker(k, j)))
        })
        .collect();
    expected.sort_unstable();
    assert_eq!(page_markers(&v["lookback_payloads"]), expected, "{v}");

    // The live form from the top destination: pre-filled with it and the chart's nodes, its
    // size estimated before anything starts.
    assert_eq!(
        v["live_prefilled"],
        serde_json::json!([format!("dst host {origin0}"), "edge0,edge1"]),
        "{v}"
    );
    assert!(s("live_estimate").starts_with("Estimate: "), "{v}");
    // A packet limit below the number of nodes the form selects: the server's refusal next
    // to the field, and no capture.
    assert!(
        s("limit_error").starts_with("packet_limit: ")
            && s("limit_error").contains("2 selected nodes"),
        "{v}"
    );
    let stayed = s("url_after_limit_error");
    assert!(
        stayed.starts_with(&format!("{}/captures?", fleet.url)),
        "the form stays: {v}"
    );

    // 4. The live capture: progress pushed into the page while it ran (one page load, its
    // event stream), then each node's file, listed and in the destination.
    let progress = v["live_progress"].as_array().unwrap();
    assert_eq!(progress.len(), 2, "{v}");
    for r in progress {
        assert!(r[2].as_u64().unwrap() >= u64::from(LIVE_FIRST), "{v}");
    }
    assert_eq!(s("live_progress_status"), "running", "{v}");
    assert_eq!(v["live_page_loads"], 1, "{v}");
    assert_eq!(v["live_streams"].as_array().map(Vec::len), Some(1), "{v}");
    for (edge, r) in v["live_done"].as_array().unwrap().iter().enumerate() {
        let node = format!("edge{edge}");
        assert_eq!(r[0], node.as_str(), "{v}");
        assert_eq!(r[1], "success", "{v}");
        assert_eq!(r[2], u64::from(LIVE_SHARE), "{v}");
        assert_eq!(r[3], format!("{live_id}/{node}.pcapng"), "{v}");
        let file = fleet.file(&live_id, edge);
        let first = live_marker(edge, 0);
        assert_eq!(
            markers(&file),
            (first..first + LIVE_SHARE).collect::<Vec<_>>(),
            "{}",
            file.display()
        );
    }

    // Its packet view reads those files where the server runs (the directory is shared
    // here): edge0's, the first, by their markers.
    assert_eq!(
        v["live_files"],
        serde_json::json!(["edge0", "edge1"]),
        "{v}"
    );
    let first = live_marker(0, 0);
    assert_eq!(
        page_markers(&v["live_payloads"]),
        (first..first + LIVE_SHARE).collect::<Vec<_>>(),
        "{v}"
    );

    // The account's captures: the look-back and the live one, nothing from the refused form.
    let (_, list) = fleet.api(reqwest::Method::GET, "pcaps", None);
    assert_eq!(list["result"].as_array().map(Vec::len), Some(2), "{list}");

    // 5. The second account: none of the first's captures; in the same range, only its own
    // packets (edge 0's second account traffic), and its own source as the only hitter.
    assert_eq!(v["other_captures"], serde_json::json!([]), "{v}");
    assert!(
        s("other_detail").contains("not found") || s("other_detail").contains("no capture"),
        "{v}"
    );
    assert!(s("other_packets").contains("no capture"), "{v}");
    let theirs: u64 = v["other_chart_rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let digits: String = r[2]
                .as_str()
                .unwrap()
                .chars()
                .filter(char::is_ascii_digit)
                .collect();
            digits.parse::<u64>().unwrap()
        })
        .sum();
    assert_eq!(theirs, TENANT_RATE * (INSIDE.end - INSIDE.start), "{v}");
    assert_eq!(v["other_hitters"], serde_json::json!([TENANT_SRC]), "{v}");
    assert_eq!(v["console_errors"], serde_json::json!([]), "{v}");
    eprintln!("the dashboard's lab test took {:?}", started.elapsed());
}

/// Live capture packets: the page asks for 20 (10 a node); the test sends LIVE_FIRST a node,
/// waits for the page to show them, then the rest of each node's share.
const LIVE_FIRST: u32 = 4;
const LIVE_SHARE: u32 = 10;

/// Marker of the `n`th live capture packet through edge `edge`.
fn live_marker(edge: usize, n: u32) -> u32 {
    900_000 + 1000 * edge as u32 + n
}

/// The traffic: a burst a second in each phase, each counter read at the start of every
/// second from T to T + LAST. T, the readings (one per second, both edges), and the packets
/// sent through each edge.
fn send_phases(fleet: &Fleet, truth: &[Truth; 2]) -> (u64, Vec<[u64; 2]>, [u64; 2]) {
    let t0 = next_second();
    let mut readings: Vec<[u64; 2]> = Vec::new();
    let mut sent = [0u64; 2];
    for k in 0..=LAST {
        if k > 0 {
            let wait = (t0 + k) as f64 + 0.05 - unix();
            std::thread::sleep(Duration::from_secs_f64(wait.max(0.0)));
        }
        readings.push([truth[0].packets(), truth[1].packets()]);
        if k == LAST {
            break;
        }
        if [BEFORE, INSIDE, AFTER].iter().any(|r| r.contains(&k)) {
            let wait = (t0 + k) as f64 + 0.4 - unix();
            std::thread::sleep(Duration::from_secs_f64(wait.max(0.0)));
            for (edge, n) in sent.iter_mut().enumerate() {
                let packets = second_of(fleet, edge, k);
                *n += packets.len() as u64;
                fleet
                    .lab
                    .send(edge, &packets)
                    .expect("send through the lab");
            }
            // The comparison needs each burst inside its second, clear of the next reads.
            let late = unix() - (t0 + k) as f64;
            assert!(
                late < 0.9,
                "the burst of T+{k} went out {late:.2} s into its second: the machine is too \
                 busy for a second-aligned comparison"
            );
        }
    }
    (t0, readings, sent)
}

/// Runs `dashboard.py` with `env` and answers it: when the page has started the live
/// capture, its first packets (once its rules are in both edges); when the page showed them,
/// the rest. The script's findings and the live capture's id; a failed script fails the test
/// with every log (the script is killed if the test fails first).
fn browse(fleet: &Fleet, python: &str, env: &[(&str, String)]) -> (Value, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fleet/dashboard.py");
    let log = fleet.tmp.path("browser.log");
    let mut child = Command::new(python)
        .arg(script)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("the browser script");
    let stdout = child.stdout.take().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut browser = Proc {
        child: Some(child),
        log,
    };
    let mut live_id = String::new();
    let mut v = Value::Null;
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        match line.split_once(' ') {
            Some(("live", id)) => {
                live_id = id.to_owned();
                fleet.wait_rules(&live_id, &[0, 1]);
                for edge in 0..2 {
                    fleet.send(edge, live_marker(edge, 0), LIVE_FIRST);
                }
                writeln!(stdin, "sent").unwrap();
            }
            None if line == "more" => {
                // Each node reaches its share of the packet limit.
                for edge in 0..2 {
                    fleet.send(edge, live_marker(edge, LIVE_FIRST), LIVE_SHARE);
                }
                writeln!(stdin, "sent").unwrap();
            }
            Some(("result", json)) => v = serde_json::from_str(json).unwrap(),
            _ => eprintln!("browser: {line}"),
        }
    }
    let status = browser.child.take().unwrap().wait().unwrap();
    assert!(
        status.success(),
        "the browser script failed ({status}); a screenshot: {}/failure.png\n{}\n--- {} ---\n{}",
        env!("CARGO_TARGET_TMPDIR"),
        fleet.logs(),
        browser.log.display(),
        std::fs::read_to_string(&browser.log).unwrap_or_default(),
    );
    (v, live_id)
}
