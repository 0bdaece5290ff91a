//! The analytics API against the kernel's truth: a real server and agent, known lab traffic,
//! and an nft counter of the test's own at the `pre-firewall` point's hook and priority
//! (prerouting, -310), counting every IPv4 and IPv6 packet. `/traffic` must report exactly
//! what that counter saw over the same whole seconds, and `/traffic/top` must name the
//! destination.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use edgecap_lab::packet::Packet;
use serde_json::Value;

use crate::capture_common::{Scratch, root_or_skip};
use crate::harness::{Fleet, PORT, ServerOpts, edgecap};

/// The test's counter table in the edge namespace; deleted on drop (and gone with the lab's
/// namespace in any case).
struct Truth {
    ns: String,
    table: String,
}

impl Truth {
    fn install(ns: &str) -> Truth {
        let table = format!("ec_truth_{}", std::process::id());
        let rules = format!(
            "table inet {table} {{\n counter seen {{}}\n chain c {{\n  type filter hook \
             prerouting priority -310; policy accept;\n  meta nfproto {{ ipv4, ipv6 }} \
             counter name seen\n }}\n}}\n"
        );
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns, "nft", "-f", "-"])
            .stdin(Stdio::piped())
            .spawn()
            .expect("nft");
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(rules.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success(), "installing {table}");
        Truth {
            ns: ns.to_owned(),
            table,
        }
    }

    fn packets(&self) -> u64 {
        let out = Command::new("ip")
            .args([
                "netns", "exec", &self.ns, "nft", "-j", "list", "counter", "inet",
            ])
            .args([&self.table, "seen"])
            .output()
            .expect("nft list counter");
        let v: Value = serde_json::from_slice(&out.stdout).expect("nft JSON");
        v["nftables"]
            .as_array()
            .unwrap()
            .iter()
            .find_map(|o| o["counter"]["packets"].as_u64())
            .expect("the counter")
    }
}

impl Drop for Truth {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "exec", &self.ns, "nft", "delete", "table", "inet"])
            .arg(&self.table)
            .status();
    }
}

fn unix() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Sleeps until 50 ms into the next whole second; that second.
fn next_second() -> u64 {
    let now = unix();
    let next = now.floor() + 1.0;
    std::thread::sleep(Duration::from_secs_f64(next + 0.05 - now));
    next as u64
}

#[test]
fn traffic_totals_equal_the_kernel_counter() {
    if !root_or_skip() {
        return;
    }
    totals_equal_the_counter(None);
}

#[test]
fn traffic_totals_equal_the_kernel_counter_on_postgresql() {
    if !root_or_skip() {
        return;
    }
    // None only outside CI without PostgreSQL installed (under CI=true that is a failure).
    let Some(pg) = edgecap_testkit::pg::server() else {
        return;
    };
    totals_equal_the_counter(Some(pg.create_database()));
}

fn totals_equal_the_counter(database: Option<String>) {
    let cfg = Scratch::new("traffic-agent");
    let config = cfg.path("agent.toml");
    std::fs::write(&config, "[observer]\nsample_one_in = 1\n").unwrap();
    let opts = ServerOpts {
        agent_args: vec!["--config".into(), config.display().to_string()],
        database,
        ..ServerOpts::default()
    };
    let fleet = Fleet::new(1, opts);
    let ns = fleet.lab.edge_ns(0).to_owned();
    let truth = Truth::install(&ns);
    // Whole seconds: from `start` (the counter read 50 ms into it) to `end` (read 50 ms into
    // it). The lab is quiet (no routes out, nothing else sending), so nothing but our
    // packets crosses the point in those 50 ms slices.
    let start = next_second();
    let before = truth.packets();
    let n = 500u32;
    let packets: Vec<Vec<u8>> = (0..n)
        .map(|m| {
            Packet::udp(
                fleet.lab.src_addr(0, false),
                fleet.lab.origin_addr(0, false),
                40000,
                PORT,
            )
            .marker(m)
            .total_len(300)
            .build()
            .unwrap()
        })
        .collect();
    fleet.lab.send(0, &packets).expect("send through the lab");
    let end = next_second();
    let after = truth.packets();
    let seen = after - before;
    assert!(seen >= u64::from(n), "the counter saw {seen}");
    // The agent sends each closed second at its next heartbeat: wait for the range to fill.
    let query = format!("traffic?since={start}&until={end}&step=1s&nodes=edge0");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut got = 0;
    while Instant::now() < deadline {
        let (status, v) = fleet.api(reqwest::Method::GET, &query, None);
        assert_eq!(status, 200, "{v}");
        got = v["result"]["series"][0]["packets"].as_u64().unwrap();
        if got >= seen {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // One more heartbeat: nothing more arrives for those seconds.
    std::thread::sleep(Duration::from_secs(3));
    let (_, v) = fleet.api(reqwest::Method::GET, &query, None);
    let got_later = v["result"]["series"][0]["packets"].as_u64().unwrap();
    assert_eq!(got, got_later);
    assert_eq!(
        got,
        seen,
        "/traffic says {got} packets in [{start}, {end}), the kernel counter {seen}\n{v}\n{}",
        fleet.logs()
    );
    let (_, top) = fleet.api(
        reqwest::Method::GET,
        &format!("traffic/top?since={start}&until={end}&by=dst"),
        None,
    );
    let first = &top["result"]["hitters"][0];
    assert_eq!(
        first["key"],
        fleet.lab.origin_addr(0, false).to_string(),
        "{top}"
    );
    // Every packet was sampled (1 in 1): the count bounds the truth.
    let (c, e) = (
        first["packets"].as_u64().unwrap(),
        first["error"].as_u64().unwrap(),
    );
    assert!(c - e <= u64::from(n) && u64::from(n) <= c, "{first}");

    // The CLI shows the same: the table has the node and a sparkline; --json the API's answer.
    let conn = ["--server", &fleet.url, "--token", &fleet.token];
    let json: Value = serde_json::from_str(&edgecap(
        &[
            &["traffic", "--since", "5m", "--step", "1s", "--json"][..],
            &conn[..],
        ]
        .concat(),
    ))
    .unwrap();
    let edge0 = json["series"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["key"] == "edge0")
        .expect("edge0 in edgecap traffic --json");
    assert!(edge0["packets"].as_u64().unwrap() >= seen, "{json}");
    let table = edgecap(&[&["traffic", "--since", "5m"][..], &conn[..]].concat());
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("edge0") && l.contains('█')),
        "{table}"
    );
    let top: Value = serde_json::from_str(&edgecap(
        &[&["top", "--window", "5m", "--json"][..], &conn[..]].concat(),
    ))
    .unwrap();
    assert_eq!(
        top["hitters"][0]["key"],
        fleet.lab.origin_addr(0, false).to_string(),
        "{top}"
    );
}
