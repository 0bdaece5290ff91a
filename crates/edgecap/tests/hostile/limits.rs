//! Hostile input: floods. A real `edgecap server` with its default limits and a real agent
//! on a lab edge; an attacker floods the server with failed logins, or with agent messages
//! over a valid agent connection, or connects an agent that never reads. Each is cut off
//! (429 with Retry-After; a closed session) while the server's memory stays flat and the
//! other clients (the API's own token, the real agent) are served. Every flood is bounded in
//! count and time.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use edgecap_model::{AgentMsg, ServerMsg};
use edgecap_server::sim::{SimAgent, hello};
use serde_json::json;

use crate::capture_common::{root_or_skip, wait_for};
use crate::harness::{Fleet, ServerOpts};

/// The attacker's address: another loopback address, so the fleet's own clients (the API
/// client and the agent, on 127.0.0.1) are other peers.
const ATTACKER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// The server's resident memory stayed within 64 MiB of `before` (KiB), said in the output.
fn assert_memory_flat(fleet: &Fleet, before: u64) {
    let after = rss_kib(fleet);
    eprintln!("server RSS: {before} KiB before, {after} KiB after");
    assert!(
        after < before + 64 * 1024,
        "server RSS grew from {before} KiB to {after} KiB"
    );
}

/// The server process's resident memory in KiB (VmRSS).
fn rss_kib(fleet: &Fleet) -> u64 {
    let pid = fleet.server.child.as_ref().expect("server running").id();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS")
}

fn edge0_connected(fleet: &Fleet) -> bool {
    fleet
        .nodes()
        .iter()
        .any(|n| n["name"] == "edge0" && n["connected"] == true)
}

/// A capture on edge0 is acknowledged and running: the fleet still works.
fn fleet_serves(fleet: &Fleet) {
    let id = fleet.create(json!({"time_limit": 30}));
    fleet.wait(&id, Duration::from_secs(10), |c| c["status"] == "running");
    fleet.stop(&id);
    fleet.wait(&id, Duration::from_secs(20), |c| c["status"] == "success");
}

#[test]
fn failed_logins_flood_gets_429_while_others_are_served() {
    if !root_or_skip() {
        return;
    }
    let fleet = Fleet::new(1, ServerOpts::default());
    let attacker = reqwest::blocking::Client::builder()
        .local_address(ATTACKER)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let url = format!("{}/client/v4/accounts/{}/pcaps", fleet.url, fleet.account);
    let before = rss_kib(&fleet);
    // A bounded flood of guessed tokens (the default allows a burst of 20 failures).
    let (mut unauthorized, mut throttled) = (0, 0);
    let start = Instant::now();
    for i in 0..200 {
        let guess = format!("ecp_{i:064x}");
        let resp = attacker.get(&url).bearer_auth(guess).send().unwrap();
        match resp.status().as_u16() {
            401 => unauthorized += 1,
            429 => {
                throttled += 1;
                let retry: u64 = resp.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!(retry >= 1);
                let v: serde_json::Value = resp.json().unwrap();
                assert_eq!(v["success"], false, "{v}");
                assert_eq!(v["errors"][0]["code"], 971, "{v}");
            }
            other => panic!("unexpected {other}"),
        }
        assert!(start.elapsed() < Duration::from_secs(60), "flood too slow");
    }
    assert!(
        (20..40).contains(&unauthorized),
        "{unauthorized} guesses got through"
    );
    assert!(throttled > 150, "{throttled}");
    eprintln!("failed logins: {unauthorized} answered 401, {throttled} answered 429");
    // Even the right token waits, from the attacker's address...
    let resp = attacker.get(&url).bearer_auth(&fleet.token).send().unwrap();
    assert_eq!(resp.status().as_u16(), 429);
    // ... while the other client's requests, and the agent, are served.
    let (s, v) = fleet.api(reqwest::Method::GET, "pcaps", None);
    assert_eq!(s, 200, "{v}");
    assert!(edge0_connected(&fleet));
    fleet_serves(&fleet);
    assert_memory_flat(&fleet, before);
}

#[test]
fn an_agent_message_flood_is_cut_off_with_memory_flat() {
    if !root_or_skip() {
        return;
    }
    let fleet = Fleet::new(1, ServerOpts::default());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let before = rss_kib(&fleet);
    let (sent, refused) = runtime.block_on(async {
        let (mut agent, first) = SimAgent::connect(
            &fleet.url,
            &fleet.agent_token,
            &hello("flood", &[("site", "elsewhere")], &["pre-firewall"]),
        )
        .await
        .unwrap();
        assert!(matches!(first, ServerMsg::Welcome { .. }), "{first:?}");
        // Progress for made-up captures, as fast as the socket takes them: at most 50,000
        // messages or 20 s, whichever ends first (the server cuts it off long before).
        let start = Instant::now();
        let mut sent = 0u32;
        for i in 0..50_000u32 {
            let msg = AgentMsg::Progress {
                capture_id: format!("{i:032x}"),
                packets: u64::from(i),
                bytes: u64::from(i) * 100,
                lost: 0,
            };
            if agent.send(&msg).await.is_err() || start.elapsed() > Duration::from_secs(20) {
                break;
            }
            sent += 1;
        }
        // The server closed the session: nothing but the end of the socket comes back.
        let mut refused = false;
        for _ in 0..1000 {
            match agent.recv_within(Duration::from_secs(5)).await {
                Ok(Some(_)) => continue,
                Ok(None) | Err(_) => {
                    refused = true;
                    break;
                }
            }
        }
        (sent, refused)
    });
    assert!(sent > 2000, "only {sent} messages were sent");
    eprintln!("agent flood: {sent} messages sent before the server closed the session");
    assert!(refused, "the flooding session was never closed");
    let gone = wait_for(Duration::from_secs(10), || {
        !fleet
            .nodes()
            .iter()
            .any(|n| n["name"] == "flood" && n["connected"] == true)
    });
    assert!(gone, "the flooding agent is still connected");
    let log = std::fs::read_to_string(&fleet.server.log).unwrap();
    assert!(log.contains("too many messages"), "{log}");
    // The real agent kept its session; the API serves; memory stayed flat.
    assert!(edge0_connected(&fleet));
    fleet_serves(&fleet);
    assert_memory_flat(&fleet, before);
}

#[test]
fn an_agent_that_never_reads_does_not_stall_others() {
    if !root_or_skip() {
        return;
    }
    let fleet = Fleet::new(1, ServerOpts::default());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // A second node in the same site that never reads what it is sent (it only says hello).
    let _slow = runtime.block_on(async {
        let (agent, first) = SimAgent::connect(
            &fleet.url,
            &fleet.agent_token,
            &hello("slow", &[("site", "lab")], &["pre-firewall"]),
        )
        .await
        .unwrap();
        assert!(matches!(first, ServerMsg::Welcome { .. }), "{first:?}");
        agent
    });
    fleet.wait_connected(2);
    // Captures for both nodes: each is created at once and the real agent runs its part
    // within seconds, whatever the slow one does.
    for _ in 0..5 {
        let start = Instant::now();
        let id = fleet.create(json!({"time_limit": 30}));
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "create took {:?}",
            start.elapsed()
        );
        // The capture's status follows its parts through the writer's batch: wait for both.
        let c = fleet.wait(&id, Duration::from_secs(10), |c| {
            c["status"] == "running"
                && c["node_results"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|n| n["node"] == "edge0" && n["status"] == "running")
        });
        assert_eq!(c["status"], "running", "{c:#}");
        fleet.stop(&id);
    }
    assert!(edge0_connected(&fleet));
}

/// `edgecap server` never makes a new key over sealed secrets (it refuses to start, saying
/// why), and `edgecap admin secrets-key rotate` re-seals them under a new key it starts with.
/// Needs no root: one data directory, no lab.
#[test]
fn the_secrets_key_is_never_replaced_silently_and_rotates() {
    use edgecap_server::credentials::{Vault, ownership_context};
    use edgecap_server::db::ownership::{self, Ownership};
    use edgecap_store::{Credentials, Secret};

    let tmp = crate::capture_common::Scratch::new("secrets-key");
    let data = tmp.path("data");
    let dir = data.display().to_string();
    let account = crate::harness::edgecap(&[
        "admin",
        "--data-dir",
        &dir,
        "account",
        "create",
        "--name",
        "t",
    ]);
    let key = data.join("secrets.key");
    let creds = Credentials::AccessKey {
        access_key_id: "AKIDHOSTILE".into(),
        secret_access_key: Secret::new("never-lost"),
        session_token: None,
    };
    // One bucket's credentials, sealed with the server's key (made here).
    let id = "0123456789abcdef0123456789abcdef";
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let db = edgecap_server::Db::connect(&format!("sqlite://{dir}/edgecap.db"))
            .await
            .unwrap();
        let vault = Vault::new(Some(key.clone()));
        let sealed = vault.seal(&creds, &ownership_context(id)).unwrap();
        let o = Ownership {
            id: id.into(),
            destination_conf: "s3://hostile-bucket/x?region=us-east-1".into(),
            filename: "ownership-challenge-x.txt".into(),
            status: "pending".into(),
            submitted: "2026-01-01T00:00:00Z".into(),
            validated: String::new(),
        };
        ownership::upsert_pending(&db, &account, &o, "digest", Some(&sealed))
            .await
            .unwrap();
        db.close().await;
    });
    let server = |extra: &[&str]| {
        std::process::Command::new(crate::capture_common::BIN)
            .args(["server", "--data-dir", &dir, "--listen", "127.0.0.1:0"])
            .args(extra)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    // The key file moved away: the server refuses, and creates nothing.
    let moved = data.join("moved.key");
    std::fs::rename(&key, &moved).unwrap();
    let out = server(&[]).wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("holds 1 sealed credential"), "{err}");
    assert!(!key.exists());
    // Rotated: a new key, and the secret opens with it only.
    std::fs::rename(&moved, &key).unwrap();
    let old = std::fs::read(&key).unwrap();
    crate::harness::edgecap(&["admin", "--data-dir", &dir, "secrets-key", "rotate"]);
    assert_ne!(std::fs::read(&key).unwrap(), old);
    let sealed = runtime.block_on(async {
        let db = edgecap_server::Db::connect(&format!("sqlite://{dir}/edgecap.db"))
            .await
            .unwrap();
        let s = ownership::by_destination(&db, &account, "s3://hostile-bucket/x?region=us-east-1")
            .await
            .unwrap()
            .unwrap();
        db.close().await;
        s.credentials.unwrap()
    });
    let opened = Vault::new(Some(key.clone()))
        .open(&sealed, &ownership_context(id))
        .unwrap();
    assert_eq!(opened, creds);
    // The server starts with the rotated key.
    let mut child = server(&[]);
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(line.contains("listening on"), "{line}");
}
