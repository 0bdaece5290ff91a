//! The always-on observer runs whenever the agent runs, in its own owned table in the edge's
//! namespace, and leaves nothing behind however the agent ends.

use std::process::Command;
use std::time::Duration;

use crate::capture_common::{root_or_skip, wait_for};
use crate::harness::{Fleet, ServerOpts};

fn tables(ns: &str) -> Vec<String> {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "nft", "list", "tables"])
        .output()
        .expect("nft list tables");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("table inet "))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_observer_runs_with_the_agent_and_goes_with_it() {
    if !root_or_skip() {
        return;
    }
    let mut fleet = Fleet::new(2, ServerOpts::default());
    let observing = |ns: &str| tables(ns).iter().any(|t| t == "edgecap_observer");
    for i in 0..2 {
        let ns = fleet.lab.edge_ns(i).to_owned();
        assert!(
            wait_for(Duration::from_secs(10), || observing(&ns)),
            "no observer table in {ns}\n{}",
            fleet.logs()
        );
    }
    // A clean stop removes it; so does a kill (the table is owned by the agent's socket).
    let ns0 = fleet.lab.edge_ns(0).to_owned();
    let status = fleet.agents[0].terminate(Duration::from_secs(10));
    assert!(
        status.is_some_and(|s| s.success()),
        "{status:?}\n{}",
        fleet.logs()
    );
    assert!(!observing(&ns0), "the observer stayed after a clean stop");
    let ns1 = fleet.lab.edge_ns(1).to_owned();
    fleet.agents[1].kill();
    assert!(
        wait_for(Duration::from_secs(5), || !observing(&ns1)),
        "the observer stayed after the agent was killed"
    );
    assert!(
        fleet.logs().contains("observer installed"),
        "{}",
        fleet.logs()
    );
}
