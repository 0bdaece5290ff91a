//! Quotas with real processes: a burst of creates from several client threads at once
//! against a running-captures quota of K yields exactly K captures and 429s naming the limit
//! for the rest; the server's per-node cap refuses naming the node; an agent's own cap fails
//! an assignment beyond it with no rule installed.

use std::time::Duration;

use serde_json::{Value, json};

use crate::capture_common::{edgecap_tables, root_or_skip};
use crate::harness::{Fleet, ServerOpts};

const THREADS: usize = 4;
const PER_THREAD: usize = 3;
const QUOTA: usize = 3;

#[test]
fn a_burst_of_creates_yields_exactly_the_running_quota() {
    if !root_or_skip() {
        return;
    }
    let fleet = Fleet::new(1, ServerOpts::default());
    let shown = fleet.admin(&[
        "account",
        "quota",
        "set",
        &fleet.account,
        "--running",
        &QUOTA.to_string(),
    ]);
    assert!(
        shown.contains("running captures    0 of 3  (account)"),
        "{shown}"
    );
    // Every thread waits at the barrier, then sends its creates one after another.
    let barrier = std::sync::Barrier::new(THREADS);
    let answers: Vec<(u16, Value)> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..THREADS)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    (0..PER_THREAD)
                        .map(|_| fleet.try_create(json!({})))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect()
    });
    let created: Vec<&str> = answers
        .iter()
        .filter(|(s, _)| *s == 200)
        .map(|(_, v)| v["result"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(created.len(), QUOTA, "{answers:#?}");
    for (s, v) in answers.iter().filter(|(s, _)| *s != 200) {
        assert_eq!(*s, 429, "{v}");
        assert_eq!(v["success"], false, "{v}");
        assert_eq!(v["errors"][0]["code"], 1020, "{v}");
        let msg = v["errors"][0]["message"].as_str().unwrap();
        assert!(msg.starts_with("running captures: 3 of 3 in use"), "{msg}");
    }
    // The database holds exactly those.
    let (s, v) = fleet.api(reqwest::Method::GET, "pcaps", None);
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["result_info"]["total_count"], QUOTA, "{v}");
    let (s, v) = fleet.api(reqwest::Method::GET, "quotas", None);
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v["result"]["running_captures"],
        json!({"limit": 3, "used": 3, "source": "account"})
    );
    for id in created {
        fleet.stop(id);
    }
}

#[test]
fn the_server_caps_captures_per_node() {
    if !root_or_skip() {
        return;
    }
    let fleet = Fleet::new(
        1,
        ServerOpts {
            server_args: vec!["--max-captures-per-node".into(), "2".into()],
            ..ServerOpts::default()
        },
    );
    let a = fleet.create(json!({}));
    let b = fleet.create(json!({}));
    fleet.wait_rules(&a, &[0]);
    fleet.wait_rules(&b, &[0]);
    let (s, v) = fleet.try_create(json!({}));
    assert_eq!(s, 429, "{v}");
    assert_eq!(v["errors"][0]["code"], 1021, "{v}");
    let msg = v["errors"][0]["message"].as_str().unwrap();
    assert!(msg.contains("node edge0 runs 2 of 2 captures"), "{msg}");
    let (_, v) = fleet.api(reqwest::Method::GET, "pcaps", None);
    assert_eq!(v["result_info"]["total_count"], 2, "{v}");
    // One stopped and finished: room again.
    fleet.stop(&a);
    fleet.wait(&a, Duration::from_secs(15), |c| c["status"] != "running");
    let c = fleet.create(json!({}));
    fleet.wait_rules(&c, &[0]);
}

#[test]
fn an_agent_refuses_an_assignment_over_its_own_cap() {
    if !root_or_skip() {
        return;
    }
    // The server would allow 16; the agent allows 1.
    let fleet = Fleet::new(
        1,
        ServerOpts {
            agent_args: vec!["--max-captures".into(), "1".into()],
            ..ServerOpts::default()
        },
    );
    let a = fleet.create(json!({}));
    fleet.wait_rules(&a, &[0]);
    let b = fleet.create(json!({}));
    let c = fleet.wait(&b, Duration::from_secs(15), |c| c["status"] == "failed");
    let err = c["node_results"][0]["error_message"].as_str().unwrap_or("");
    assert!(
        err.contains("this node runs at most 1 captures at once (edgecap agent --max-captures)"),
        "{c:#}"
    );
    let tables = edgecap_tables(fleet.lab.edge_ns(0));
    assert!(!tables.contains(&format!("edgecap_{b}")), "{tables:?}");
    assert!(tables.contains(&format!("edgecap_{a}")), "{tables:?}");
    assert_eq!(fleet.get(&a)["status"], "running");
}
