//! What an operator watches: `/metrics` of a real server and agent count exactly what a capture
//! did; `/healthz` and `/readyz` answer, and readiness goes with the database; the node list
//! carries the agent's health; `--log-format json` writes only JSON lines, with no secret in
//! them.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::capture_common::{root_or_skip, tshark_fields, wait_for};
use crate::harness::{Fleet, ServerOpts};

const BIN: &str = env!("CARGO_BIN_EXE_edgecap");

fn http() -> reqwest::blocking::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// (status, body) of a GET.
fn get(url: &str) -> (u16, String) {
    let r = http().get(url).send().unwrap();
    (r.status().as_u16(), r.text().unwrap())
}

/// The value of the series `name{labels}` exactly as rendered, if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Every line of `log` is a JSON object with a level and a message or fields, and none holds
/// any of `secrets`.
fn assert_json_lines(log: &Path, secrets: &[&str]) {
    let text = std::fs::read_to_string(log).unwrap();
    assert!(!text.trim().is_empty(), "{} is empty", log.display());
    for line in text.lines() {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {line}", log.display()));
        assert!(v["level"].is_string() && v["fields"].is_object(), "{line}");
        for s in secrets {
            assert!(!line.contains(s), "a secret in {}: {line}", log.display());
        }
    }
}

#[test]
fn metrics_count_what_a_capture_did_and_health_shows() {
    if !root_or_skip() {
        return;
    }
    let port = edgecap_testkit::servers::free_port();
    let agent_metrics = format!("http://127.0.0.1:{port}");
    let opts = ServerOpts {
        agent_args: vec![
            "--metrics-listen".into(),
            format!("127.0.0.1:{port}"),
            "--log-format".into(),
            "json".into(),
        ],
        ..ServerOpts::default()
    };
    let fleet = Fleet::new(1, opts);
    // Before any capture: the agent is ready (connected, netfilter reachable in its edge).
    let ready = wait_for(Duration::from_secs(15), || {
        get(&format!("{agent_metrics}/readyz")).0 == 200
    });
    let (s, body) = get(&format!("{agent_metrics}/readyz"));
    assert!(ready, "agent /readyz: {s} {body}\n{}", fleet.logs());
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["result"]["ready"], true, "{v}");
    let names: Vec<&str> = v["result"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["server", "nftables"]);
    assert_eq!(get(&format!("{agent_metrics}/healthz")).0, 200);
    // The node list shows the health its heartbeats carry.
    let healthy = wait_for(Duration::from_secs(10), || {
        fleet
            .nodes()
            .first()
            .is_some_and(|n| n["health"]["ready"] == true)
    });
    assert!(healthy, "{:?}", fleet.nodes());
    // So does the operator's list, from the database.
    let listed = wait_for(Duration::from_secs(10), || {
        fleet
            .admin(&["node", "list"])
            .lines()
            .any(|l| l.starts_with("edge0 ") && l.ends_with("  ready"))
    });
    assert!(listed, "{}", fleet.admin(&["node", "list"]));

    const N: u32 = 37;
    let id = fleet.create(json!({"packet_limit": N}));
    fleet.wait_rules(&id, &[0]);
    fleet.send(0, 1, N);
    let c = fleet.wait(&id, Duration::from_secs(20), |c| {
        c["status"] != "running" && c["status"] != "pending"
    });
    assert_eq!(c["status"], "success", "{c:#}");
    let in_file = tshark_fields(&fleet.file(&id, 0), &["frame.number"]).len();
    assert_eq!(in_file, N as usize);

    // The agent counted what its file holds, lost nothing, and says so.
    let (s, text) = get(&format!("{agent_metrics}/metrics"));
    assert_eq!(s, 200);
    assert_eq!(
        sample(&text, "edgecap_agent_packets_total"),
        Some(in_file as f64),
        "{text}"
    );
    assert_eq!(
        sample(&text, "edgecap_agent_packets_lost_total"),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "edgecap_agent_overruns_total"),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "edgecap_agent_captures_total{outcome=\"success\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "edgecap_agent_captures_running"),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "edgecap_agent_connected"),
        Some(1.0),
        "{text}"
    );
    let bytes = sample(&text, "edgecap_agent_captured_bytes_total").unwrap();
    assert_eq!(
        bytes,
        c["bytes_captured"].as_f64().unwrap_or(-1.0),
        "{text}\n{c:#}"
    );

    // The server: one capture, a success; the create counted by its route template; the
    // dispatch timed once; the agent connected.
    let (s, text) = get(&format!("{}/metrics", fleet.url));
    assert_eq!(s, 200);
    assert_eq!(
        sample(&text, "edgecap_captures{status=\"success\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "edgecap_captures{status=\"failed\"}"),
        Some(0.0),
        "{text}"
    );
    let create = "edgecap_api_requests_total{method=\"POST\",\
                  route=\"/client/v4/accounts/{account_id}/pcaps\",code=\"200\"}";
    assert_eq!(sample(&text, create), Some(1.0), "{text}");
    assert!(
        !text.contains(&id) && !text.contains(&fleet.account),
        "{text}"
    );
    assert_eq!(
        sample(&text, "edgecap_dispatch_seconds_count"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "edgecap_agents_connected"),
        Some(1.0),
        "{text}"
    );
    // Server health: alive and ready.
    assert_eq!(get(&format!("{}/healthz", fleet.url)).0, 200);
    let (s, body) = get(&format!("{}/readyz", fleet.url));
    assert_eq!(s, 200, "{body}");

    // The agent's log is JSON lines only, with neither of its secrets.
    let credential = std::fs::read_dir(fleet.agent_state_dir(0))
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .find(|t| t.trim().starts_with("ecn_"))
        .map(|t| t.trim().to_owned());
    let mut secrets = vec![fleet.agent_token.as_str()];
    if let Some(c) = &credential {
        secrets.push(c);
    }
    assert_json_lines(&fleet.agents[0].log, &secrets);
}

/// A server on its own PostgreSQL database, metrics on their own address, JSON logs: ready
/// until the database is dropped, then 503 naming the database, and alive all along.
#[test]
fn readyz_turns_503_when_the_database_is_gone() {
    if !root_or_skip() {
        return;
    }
    let Some(pg) = edgecap_testkit::pg::server() else {
        return;
    };
    let url = pg.create_database();
    let tmp = crate::capture_common::Scratch::new("readyz");
    let log = tmp.path("server.log");
    let port = edgecap_testkit::servers::free_port();
    let mut child = Command::new(BIN)
        .args(["server", "--database", &url, "--listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(tmp.path("data"))
        .args(["--metrics-listen", &format!("127.0.0.1:{port}")])
        .env("EDGECAP_LOG_FORMAT", "json")
        .env("EDGECAP_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let api = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("{line:?}"))
        .to_owned();
    let metrics = format!("http://127.0.0.1:{port}");
    let result = std::panic::catch_unwind(|| {
        // /metrics moved to --metrics-listen; the API listener says where it went.
        let (s, body) = get(&format!("{api}/metrics"));
        assert_eq!(s, 404, "{body}");
        assert!(body.contains("--metrics-listen"), "{body}");
        let (s, body) = get(&format!("{metrics}/metrics"));
        assert_eq!(s, 200, "{body}");
        assert!(body.contains("edgecap_agents_connected 0"), "{body}");
        for base in [&api, &metrics] {
            let (s, body) = get(&format!("{base}/readyz"));
            assert_eq!(s, 200, "{base}: {body}");
        }
        // The database gone, with every connection to it.
        let out = Command::new(pg.bin.join("dropdb"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &pg.port.to_string(),
                "-U",
                "postgres",
            ])
            .args(["--force", url.rsplit('/').next().unwrap()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for base in [&api, &metrics] {
            let (s, body) = get(&format!("{base}/readyz"));
            assert_eq!(s, 503, "{base}: {body}");
            let v: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(v["success"], false, "{v}");
            let first = v["errors"][0]["message"].as_str().unwrap_or_default();
            assert!(first.starts_with("database: "), "{v}");
            assert_eq!(get(&format!("{base}/healthz")).0, 200);
        }
    });
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let _ = child.wait();
    if let Err(e) = result {
        eprintln!(
            "server log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::panic::resume_unwind(e);
    }
    assert_json_lines(&log, &[]);
}
