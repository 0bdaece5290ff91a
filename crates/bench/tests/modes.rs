//! The control-plane benchmarks' newer modes, run end to end at a tiny scale: a real
//! `edgecap server` process and a few simulated agents. They check that each report counts
//! what the agents were made to send; nothing here is a timing threshold (the timings are
//! the benchmarks' output, see docs/benchmarks.md).
//!
//! The benchmarks run the `edgecap` binary beside `edgecap-bench` (`target/<profile>/`):
//! `cargo test --workspace` builds it; alone, build it first (`cargo build -p edgecap`).

use std::path::{Path, PathBuf};
use std::process::Command;

const BENCH: &str = env!("CARGO_BIN_EXE_edgecap-bench");

fn edgecap() -> PathBuf {
    let p = Path::new(BENCH).with_file_name("edgecap");
    assert!(
        p.is_file(),
        "{} is missing: build it first (cargo build -p edgecap)",
        p.display()
    );
    p
}

/// Runs `edgecap-bench <args> --markdown <file>`; the report.
fn bench(args: &[&str]) -> String {
    let md = std::env::temp_dir().join(format!(
        "edgecap-bench-test-{}-{:08x}.md",
        std::process::id(),
        rand_u32()
    ));
    let out = Command::new(BENCH)
        .args(args)
        .arg("--markdown")
        .arg(&md)
        .env("EDGECAP_BIN", edgecap())
        .output()
        .expect("run edgecap-bench");
    let report = std::fs::read_to_string(&md).unwrap_or_default();
    let _ = std::fs::remove_file(&md);
    assert!(
        out.status.success(),
        "edgecap-bench {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        report
    );
    report
}

fn rand_u32() -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    t ^ std::process::id().rotate_left(16)
}

/// The cells of the markdown table whose header row holds `first`, one map per body row.
fn table(md: &str, first: &str) -> Vec<Vec<(String, String)>> {
    let cells = |l: &str| -> Vec<String> {
        l.trim()
            .trim_matches('|')
            .split('|')
            .map(|c| c.trim().to_owned())
            .collect()
    };
    let mut lines = md
        .lines()
        .skip_while(|l| !(l.starts_with('|') && l.contains(first)));
    let head = cells(
        lines
            .next()
            .unwrap_or_else(|| panic!("no table with {first:?}:\n{md}")),
    );
    lines
        .skip(1)
        .take_while(|l| l.starts_with('|'))
        .map(|l| head.iter().cloned().zip(cells(l)).collect())
        .collect()
}

fn cell<'a>(row: &'a [(String, String)], name: &str) -> &'a str {
    row.iter()
        .find(|(h, _)| h == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no column {name:?} in {row:?}"))
}

fn number(s: &str) -> f64 {
    s.split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{s:?} is not a number"))
}

/// Look-back rounds on 3 agents, each ring answering 5 samples, under a packet limit of 12:
/// every node answered, 15 samples were sent per round, the file holds 12 packets.
#[test]
fn dispatch_simple_counts_what_the_rings_answered() {
    let md = bench(&[
        "dispatch",
        "--agents",
        "3",
        "--rounds",
        "2",
        "--simple",
        "--samples-per-node",
        "5",
        "--simple-packet-limit",
        "12",
    ]);
    let rows = table(&md, "create -> success p50");
    assert_eq!(rows.len(), 1, "{md}");
    let r = &rows[0];
    assert_eq!(cell(r, "agents"), "3");
    assert_eq!(cell(r, "rounds"), "2");
    assert_eq!(cell(r, "nodes answered (min)"), "3");
    assert_eq!(number(cell(r, "samples sent per round")), 15.0);
    assert_eq!(cell(r, "file packets (per round)"), "12");
    // Every answer carried bytes, and the file holds 12 packets of at most 160 bytes.
    assert!(number(cell(r, "answer bytes per round (agents -> server)")) > 15.0 * 2.0 * 28.0);
    let file = number(cell(r, "file bytes (pcapng, p50)"));
    assert!(
        file > 12.0 * 28.0 && file < 12.0 * (160.0 + 64.0) + 4096.0,
        "{file}"
    );
    // The full-capture rounds of the same run are there to compare with.
    assert_eq!(table(&md, "create -> assign p50").len(), 1);
    assert!(md.contains("Target (issue 13)"), "{md}");
}

fn postgres_installed() -> bool {
    let found = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(Result::ok)
                .any(|e| e.path().join("bin/initdb").exists())
        })
        .unwrap_or(false);
    assert!(
        found || std::env::var("CI").as_deref() != Ok("true"),
        "PostgreSQL's initdb is missing under /usr/lib/postgresql/*/bin (install postgresql)"
    );
    found
}

/// Rollups from 3 agents on SQLite (waiting for the downsampling job) and PostgreSQL: the
/// server stored every second the agents sent, dropped and refused none; the run without
/// rollups sent and stored none; the rollup tables hold rows.
#[test]
fn rollups_stores_every_second_sent() {
    let mut dbs = vec!["sqlite"];
    if postgres_installed() {
        dbs.push("postgres");
    }
    for db in dbs {
        // The downsampling job runs once a minute: SQLite waits for it, PostgreSQL does not.
        let wait = if db == "sqlite" { "150" } else { "0" };
        let md = bench(&[
            "rollups",
            "--agents",
            "3",
            "--seconds",
            "4",
            "--databases",
            db,
            "--downsample-wait",
            wait,
        ]);
        let rows = table(&md, "rows sent (whole run)");
        assert_eq!(rows.len(), 2, "{md}");
        let (off, on) = (&rows[0], &rows[1]);
        assert_eq!((cell(off, "rollups"), cell(on, "rollups")), ("off", "on"));
        assert_eq!(cell(off, "rows sent (whole run)"), "0");
        assert_eq!(cell(off, "stored"), "0");
        let sent = number(cell(on, "rows sent (whole run)"));
        // 3 agents x 2 points x (node + 1 account), for at least the 4 s window.
        assert!(sent >= 3.0 * 4.0 * 4.0, "{md}");
        assert_eq!(number(cell(on, "stored")), sent, "{md}");
        assert_eq!(cell(on, "dropped"), "0");
        assert_eq!(cell(on, "refused"), "0");
        let space = table(&md, "bytes per second row");
        assert_eq!(space.len(), 1, "{md}");
        // A row with its heavy-hitter lists is hundreds of bytes.
        assert!(
            number(cell(&space[0], "bytes per second row")) > 100.0,
            "{md}"
        );
        if db == "sqlite" {
            assert!(md.contains("every second was in a minute"), "{md}");
            assert!(
                number(cell(&space[0], "bytes per minute row")) > 100.0,
                "{md}"
            );
        }
    }
}

/// Triggers at the edge at a tiny scale, in a lab (root): one flood within the node's local
/// share of the trigger's budget and one beyond it, granted from the server's pool; each
/// fires the trigger once with every step seen (fired, the rule, the file's first bytes), on
/// its path; and a short benign run below the threshold makes no event and no capture. Under
/// CI=true a missing root fails.
#[test]
fn trigger_times_every_flood_on_both_paths_and_counts_no_false_trigger() {
    if !edgecap_testkit::root_or_skip() {
        return;
    }
    let md = bench(&[
        "trigger",
        "--floods",
        "1",
        "--flood-seconds",
        "5",
        "--long-seconds",
        "12",
    ]);
    assert!(
        md.contains("2 captures an hour (the one node's local share 1, the server's pool 1)"),
        "{md}"
    );
    let rows = table(&md, "floods seen");
    assert_eq!(rows.len(), 10, "{md}");
    for (i, r) in rows.iter().enumerate() {
        let way = if i % 2 == 0 {
            "within the local share"
        } else {
            "granted from the pool"
        };
        assert_eq!(cell(r, "path"), way, "{md}");
        assert_eq!(cell(r, "floods seen"), "1", "{md}");
        let p50 = number(cell(r, "p50 (s)"));
        assert!(p50.is_finite(), "{md}");
    }
    assert!(
        md.contains("Floods that fired within the local share: 1 of 1."),
        "{md}"
    );
    assert!(
        md.contains("Floods that fired granted from the pool: 1 of 1."),
        "{md}"
    );
    let long = table(&md, "false events");
    assert_eq!(long.len(), 1, "{md}");
    assert_eq!(cell(&long[0], "long benign run (s)"), "12");
    assert!(number(cell(&long[0], "packets sent")) > 0.0, "{md}");
    assert_eq!(cell(&long[0], "false events"), "0", "{md}");
    assert_eq!(cell(&long[0], "false capture tables"), "0", "{md}");
}

/// The dashboard's first view with 3 nodes and an hour of rollups: the fleet page listed the
/// 3 connected nodes with a series each, from the seconds the agents sent; the rollup minutes
/// written are the database's; every view moved at least the shipped script.
#[test]
fn dashboard_lists_the_fleet_it_was_given() {
    let mut dbs = vec!["sqlite"];
    if postgres_installed() {
        dbs.push("postgres");
    }
    for db in dbs {
        let md = bench(&[
            "dashboard",
            "--nodes",
            "3",
            "--hours",
            "1",
            "--views",
            "2",
            "--recent-seconds",
            "30",
            "--databases",
            db,
        ]);
        let rows = table(&md, "first view (login -> fleet) p50");
        assert_eq!(rows.len(), 1, "{md}");
        let r = &rows[0];
        assert_eq!(cell(r, "nodes"), "3");
        // 3 nodes x 60 minutes (the fleet's own row of each minute is written beside them).
        assert_eq!(number(cell(r, "rollup minute rows")), 180.0, "{md}");
        assert_eq!(cell(r, "nodes listed (connected)"), "3 (3)", "{md}");
        assert_eq!(
            cell(r, "series: fleet 15 min / 1 h / 24 h"),
            "3 / 3 / 3",
            "{md}"
        );
        let assets = table(&md, "shipped asset or answer");
        let asset = |name: &str| {
            number(cell(
                assets
                    .iter()
                    .find(|a| cell(a, "shipped asset or answer").starts_with(name))
                    .unwrap_or_else(|| panic!("no {name}: {md}")),
                "bytes",
            ))
        };
        let js = asset("app.js");
        assert!(js > 10_000.0, "{md}");
        assert!(number(cell(r, "first view bytes")) > js, "{md}");
        assert!(md.contains("failures: none"), "{md}");
        // Every recent second the agents sent was stored.
        let line = md
            .lines()
            .find(|l| l.contains("recent seconds:"))
            .unwrap_or_else(|| panic!("{md}"));
        assert!(line.contains(" 0 dropped"), "{line}");
        let sent: Vec<&str> = line
            .split("recent seconds: ")
            .nth(1)
            .unwrap()
            .split(' ')
            .collect();
        assert!(number(sent[0]) >= 90.0, "3 nodes x 30 s: {line}");
        assert_eq!(sent[0], sent[2], "sent = stored: {line}");
    }
}

/// The observer's cost at a tiny scale, in a lab (root) whose edge runs the benchmark's
/// firewall: 2 rounds of the four modes (observer off, on, and the two bound chains), each
/// mode once per round in a rotated order; every
/// run forwarded traffic; the paired table's costs are the ones the runs' own rates give,
/// round by round. Under CI=true a missing root fails.
#[test]
fn observe_pairs_each_run_with_its_rounds_off_run() {
    if !edgecap_testkit::root_or_skip() {
        return;
    }
    // With the edge's firewall, which must let the benchmark's traffic through (every run
    // forwards, below).
    let md = bench(&[
        "observe",
        "--seconds",
        "0.5",
        "--rounds",
        "2",
        "--bounds",
        "--firewall",
    ]);
    assert!(md.contains("the edge runs a stateless firewall"), "{md}");
    let runs = table(&md, "other processes' CPU");
    assert_eq!(runs.len(), 8, "{md}");
    let modes = ["off", "on", "empty chain", "counter chain"];
    for round in ["1", "2"] {
        let mut seen: Vec<&str> = runs
            .iter()
            .filter(|r| cell(r, "round") == round)
            .map(|r| cell(r, "mode"))
            .collect();
        seen.sort_unstable();
        let mut want = modes.to_vec();
        want.sort_unstable();
        assert_eq!(seen, want, "round {round}: {md}");
    }
    // The order rotates: round 2 does not start with round 1's first mode.
    assert_ne!(cell(&runs[0], "mode"), cell(&runs[4], "mode"), "{md}");
    let pps = |round: &str, mode: &str| {
        let r = runs
            .iter()
            .find(|r| cell(r, "round") == round && cell(r, "mode") == mode)
            .unwrap_or_else(|| panic!("no {mode} run in round {round}: {md}"));
        number(cell(r, "forwarded pps"))
    };
    for r in &runs {
        assert!(number(cell(r, "forwarded pps")) > 0.0, "{md}");
        assert!(number(cell(r, "sender CPU per packet")) > 0.0, "{md}");
    }
    let per_mode = table(&md, "forwarded pps (min / median / max)");
    assert_eq!(per_mode.len(), 4, "{md}");
    for r in &per_mode {
        assert_eq!(cell(r, "runs"), "2", "{md}");
    }
    // With two rounds the paired median is the mean of the two rounds' costs.
    let paired = table(&md, "rate cost (median)");
    let row = |mode: &str, base: &str| {
        paired
            .iter()
            .find(|r| cell(r, "mode") == mode && cell(r, "base") == base)
            .unwrap_or_else(|| panic!("no {mode} / {base} row: {md}"))
    };
    for (mode, base) in [
        ("on", "off"),
        ("empty chain", "off"),
        ("counter chain", "off"),
        ("on", "empty chain"),
    ] {
        let r = row(mode, base);
        assert_eq!(cell(r, "rounds"), "2", "{md}");
        let want = ["1", "2"]
            .iter()
            .map(|round| 100.0 * (1.0 - pps(round, mode) / pps(round, base)))
            .sum::<f64>()
            / 2.0;
        let got = number(cell(r, "rate cost (median)"));
        // The report rounds the rates to whole packets and the cost to 0.1 %.
        assert!(
            (got - want).abs() < 0.11,
            "{mode}/{base}: {got} vs {want}: {md}"
        );
        // Two rounds give no interval, and the verdict says so.
        assert!(
            cell(r, "rate cost (95 % interval)").starts_with('-'),
            "{md}"
        );
    }
    assert!(md.contains("goal under 3 %: not settled"), "{md}");
}
