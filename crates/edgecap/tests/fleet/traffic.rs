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
/// namespace in any case). Also the dashboard's lab test's truth (dashboard.rs).
pub(crate) struct Truth {
    ns: String,
    table: String,
}

impl Truth {
    pub(crate) fn install(ns: &str) -> Truth {
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

    /// Every IPv4 and IPv6 packet the counter saw so far.
    pub(crate) fn packets(&self) -> u64 {
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

pub(crate) fn unix() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Sleeps until 50 ms into the next whole second; that second.
pub(crate) fn next_second() -> u64 {
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
    // New links send a few IPv6 packets of their own (DAD, MLD, router solicitations, up to
    // 4 s apart) that both counters see, but maybe in different seconds, since each is read
    // at its own instant: wait until the point is quiet (no packet for 5 s, at most 30 s).
    let quiet_until = Instant::now() + Duration::from_secs(30);
    let (mut last, mut since) = (truth.packets(), Instant::now());
    while since.elapsed() < Duration::from_secs(5) && Instant::now() < quiet_until {
        std::thread::sleep(Duration::from_millis(250));
        let now = truth.packets();
        if now != last {
            (last, since) = (now, Instant::now());
        }
    }
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

/// A restricted account sees in `/traffic` and `/traffic/top` only its own prefixes' traffic
/// (the rows its agent made for it), while the operator's unrestricted account sees the
/// whole node.
#[test]
fn a_restricted_account_sees_only_its_own_traffic() {
    if !root_or_skip() {
        return;
    }
    let cfg = Scratch::new("traffic-tenant");
    let config = cfg.path("agent.toml");
    std::fs::write(&config, "[observer]\nsample_one_in = 1\n").unwrap();
    let opts = ServerOpts {
        agent_args: vec!["--config".into(), config.display().to_string()],
        ..ServerOpts::default()
    };
    let fleet = Fleet::new(1, opts);
    let account = fleet
        .admin(&[
            "account",
            "create",
            "--name",
            "tenant",
            "--prefix",
            "198.18.100.0/24",
        ])
        .trim()
        .to_owned();
    let token = fleet.admin(&["token", "create", "--account", &account]);
    // Wait until the agent keeps the account apart.
    let log = || std::fs::read_to_string(&fleet.agents[0].log).unwrap_or_default();
    assert!(
        crate::capture_common::wait_for(Duration::from_secs(15), || log()
            .lines()
            .any(|l| l.contains("observer keeps accounts apart") && l.contains(&account))),
        "the agent never heard of the account\n{}",
        fleet.logs()
    );
    let start = next_second();
    let origin = fleet.lab.origin_addr(0, false);
    let theirs: std::net::IpAddr = "198.18.100.7".parse().unwrap();
    let mut packets = Vec::new();
    for m in 0..300u32 {
        let src = match m % 3 {
            0 => theirs,
            _ => fleet.lab.src_addr(0, false),
        };
        packets.push(
            Packet::udp(src, origin, 40000, PORT)
                .marker(m)
                .build()
                .unwrap(),
        );
    }
    fleet.lab.send(0, &packets).expect("send through the lab");
    let end = next_second();
    let get = |token: &str, account: &str, rest: &str| -> Value {
        let url = format!("{}/client/v4/accounts/{account}/{rest}", fleet.url);
        let resp = reqwest::blocking::Client::new()
            .get(url)
            .bearer_auth(token)
            .timeout(Duration::from_secs(30))
            .send()
            .expect("API call");
        assert_eq!(resp.status().as_u16(), 200);
        resp.json().expect("JSON")
    };
    let range = format!("since={start}&until={end}");
    let tenant_total = || {
        get(&token, &account, &format!("traffic?{range}&step=1s"))["result"]["series"][0]["packets"]
            .as_u64()
            .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while tenant_total() < 100 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(3));
    // Sampling every packet, the account's estimate is exactly its 100 packets.
    assert_eq!(tenant_total(), 100, "{}", fleet.logs());
    let top = get(&token, &account, &format!("traffic/top?{range}&by=src"));
    let hitters = top["result"]["hitters"].as_array().unwrap();
    assert_eq!(hitters.len(), 1, "{top}");
    assert_eq!(hitters[0]["key"], theirs.to_string());
    // The operator sees the whole node: all 300 and the other source too. Its totals come
    // from the counters, read once a second: a read that runs late (a loaded machine) puts
    // some of the packets in the second before or after, so the range is widened by two.
    let wide = format!("since={}&until={}", start - 2, end + 2);
    let whole = || {
        fleet
            .api(
                reqwest::Method::GET,
                &format!("traffic?{wide}&step=1s"),
                None,
            )
            .1
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut all = whole();
    while all["result"]["series"][0]["packets"].as_u64().unwrap_or(0) < 300
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(200));
        all = whole();
    }
    assert!(
        all["result"]["series"][0]["packets"].as_u64().unwrap() >= 300,
        "{all}"
    );
    let (_, top) = fleet.api(
        reqwest::Method::GET,
        &format!("traffic/top?{range}&by=src"),
        None,
    );
    assert!(
        top["result"]["hitters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["key"] == fleet.lab.src_addr(0, false).to_string()),
        "{top}"
    );
}
