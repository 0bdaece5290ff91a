//! Hostile input: node identities. Against a real server and real agents: a second agent with
//! its own credential cannot take a node's name, whether that node is connected or not; a
//! revoked node is cut off within a second and its running part fails with the reason; an
//! expired or used-up enrolment token enrols nobody. The fleet's own agents show that agent
//! tokens made before (`admin agent-token create` without limits) still enrol nodes.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::capture_common::{BIN, edgecap_tables, root_or_skip, wait_for};
use crate::harness::{Fleet, Proc, ServerOpts, edgecap};

/// An agent outside the fleet: `name`, enrolment `token`, its own state directory `tag`.
fn stranger(fleet: &Fleet, tag: &str, name: &str, token: &str) -> Proc {
    let log = fleet.tmp.path(&format!("{tag}.log"));
    let child = Command::new(BIN)
        .args([
            "agent", "--server", &fleet.url, "--token", token, "--name", name,
        ])
        .arg("--state-dir")
        .arg(fleet.tmp.path(&format!("{tag}-state")))
        .env("EDGECAP_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    Proc {
        child: Some(child),
        log,
    }
}

/// Waits (at most 15 s) for the agent to give up; its log. Panics if it keeps running or
/// exits 0.
fn refused(mut p: Proc) -> String {
    let mut child = p.child.take().unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if start.elapsed() > Duration::from_secs(15) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the agent was not refused: {}", read(&p.log));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = read(&p.log);
    assert!(!status.success(), "{log}");
    log
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

fn connected(fleet: &Fleet, name: &str) -> bool {
    fleet
        .nodes()
        .iter()
        .any(|n| n["name"] == name && n["connected"] == true)
}

#[test]
fn another_credential_cannot_take_a_connected_or_a_disconnected_name() {
    if !root_or_skip() {
        return;
    }
    let mut fleet = Fleet::new(1, ServerOpts::default());
    // edge0 is connected; an impostor with the same (valid) enrolment token but its own
    // credential is refused and says why.
    let log = refused(stranger(&fleet, "impostor", "edge0", &fleet.agent_token));
    assert!(log.contains("bound to another node credential"), "{log}");
    assert!(connected(&fleet, "edge0"), "{:?}", fleet.nodes());
    // edge0 gone (killed): the name is still edge0's.
    fleet.agents[0].kill();
    assert!(wait_for(Duration::from_secs(5), || !connected(
        &fleet, "edge0"
    )));
    let log = refused(stranger(&fleet, "impostor2", "edge0", &fleet.agent_token));
    assert!(log.contains("bound to another node credential"), "{log}");
    assert!(!connected(&fleet, "edge0"));
    // The real edge0 comes back with the credential in its state directory.
    fleet.agents[0] = fleet.start_agent(0);
    fleet.wait_connected(1);
}

#[test]
fn a_revoked_node_is_cut_off_within_a_second_and_its_part_fails() {
    if !root_or_skip() {
        return;
    }
    let mut fleet = Fleet::new(2, ServerOpts::default());
    let id = fleet.create(json!({"time_limit": 60}));
    fleet.wait_rules(&id, &[0, 1]);
    fleet.wait(&id, Duration::from_secs(10), |c| {
        c["node_results"]
            .as_array()
            .is_some_and(|r| r.iter().all(|n| n["status"] == "running"))
    });
    // As the operator, straight in the database: the server sees it by itself.
    fleet.admin(&["node", "revoke", "edge0"]);
    let start = Instant::now();
    assert!(
        wait_for(Duration::from_secs(1), || !connected(&fleet, "edge0")),
        "edge0 still connected a second after its revocation:\n{}",
        fleet.logs()
    );
    eprintln!("cut off after {:?}", start.elapsed());
    let c = fleet.wait(&id, Duration::from_secs(5), |c| {
        c["node_results"][0]["status"] == "failed"
    });
    let why = c["node_results"][0]["error_message"].as_str().unwrap_or("");
    assert!(why.contains("node revoked"), "{c:#}");
    // The node's agent cannot come back: it stops its capture (its rule goes) and exits.
    let mut agent = fleet.agents.remove(0);
    let log = refused(Proc {
        child: agent.child.take(),
        log: agent.log.clone(),
    });
    assert!(log.contains("node revoked"), "{log}");
    let table = format!("edgecap_{id}");
    assert!(!edgecap_tables(fleet.lab.edge_ns(0)).contains(&table));
    // edge1 was not touched: still connected, still capturing.
    assert!(connected(&fleet, "edge1"));
    assert_eq!(fleet.get(&id)["node_results"][1]["status"], "running");
    fleet.stop(&id);
    let c = fleet.wait(&id, Duration::from_secs(10), |c| {
        c["node_results"][1]["status"] == "success"
    });
    assert_eq!(c["node_results"][1]["status"], "success", "{c:#}");
    // Listed as revoked; forgotten, the name is free again.
    let list = fleet.admin(&["node", "list"]);
    assert!(
        list.lines()
            .any(|l| l.starts_with("edge0 ") && l.contains("revoked")),
        "{list}"
    );
    fleet.admin(&["node", "forget", "edge0"]);
    let fresh = fleet.admin(&["agent-token", "create", "--uses", "1"]);
    let p = stranger(&fleet, "reinstalled", "edge0", &fresh);
    assert!(
        wait_for(Duration::from_secs(10), || connected(&fleet, "edge0")),
        "{}",
        read(&p.log)
    );
}

#[test]
fn expired_and_used_up_enrolment_tokens_enrol_nobody() {
    if !root_or_skip() {
        return;
    }
    let fleet = Fleet::new(1, ServerOpts::default());
    let once = fleet.admin(&["agent-token", "create", "--uses", "1", "--name", "once"]);
    let first = stranger(&fleet, "first", "extra1", &once);
    assert!(
        wait_for(Duration::from_secs(10), || connected(&fleet, "extra1")),
        "{}",
        read(&first.log)
    );
    let log = refused(stranger(&fleet, "second", "extra2", &once));
    assert!(log.contains("used up"), "{log}");
    let short = fleet.admin(&["agent-token", "create", "--expires", "1s"]);
    std::thread::sleep(Duration::from_millis(1500));
    let log = refused(stranger(&fleet, "late", "extra3", &short));
    assert!(log.contains("expired"), "{log}");
    let list = fleet.admin(&["agent-token", "list"]);
    assert!(
        list.lines()
            .any(|l| l.contains("once") && l.contains("uses 1/1")),
        "{list}"
    );
    let nodes: Vec<String> = fleet
        .nodes()
        .iter()
        .filter_map(|n| n["name"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(nodes, ["edge0", "extra1"]);
}

/// Bad flags to the identity and token commands: exit 2 naming the flag, nothing made.
#[test]
fn identity_and_token_flags_are_checked() {
    let dir = crate::capture_common::Scratch::new("identity-flags");
    let d = dir.0.to_str().unwrap();
    let run = |args: &[&str]| {
        let all: Vec<&str> = ["admin", "--data-dir", d]
            .iter()
            .chain(args)
            .copied()
            .collect();
        let out = Command::new(BIN).args(&all).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.code().unwrap_or(-1), err)
    };
    let account = edgecap(&["admin", "--data-dir", d, "account", "create", "--name", "f"]);
    for (args, names) in [
        (vec!["agent-token", "create", "--uses", "0"], "--uses"),
        (
            vec!["agent-token", "create", "--expires", "soon"],
            "--expires",
        ),
        (
            vec![
                "token",
                "create",
                "--account",
                &account,
                "--scopes",
                "admin",
            ],
            "--scopes",
        ),
        (
            vec!["token", "create", "--account", &account, "--expires=0s"],
            "--expires",
        ),
        (
            vec!["token", "revoke", "0123456789abcdef0123456789abcdef"],
            "ID",
        ),
        (vec!["node", "revoke", "no such"], "NAME"),
        (vec!["node", "revoke", "edge0"], "NAME"),
        (vec!["node", "forget", "edge0"], "NAME"),
    ] {
        let (code, err) = run(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(&format!("error: {names}")), "{args:?}: {err}");
    }
    // Nothing was made: one token-less account, no tokens, no nodes.
    assert_eq!(edgecap(&["admin", "--data-dir", d, "token", "list"]), "");
    assert_eq!(edgecap(&["admin", "--data-dir", d, "node", "list"]), "");
}
