//! A node that vanishes mid-capture (its agent killed with SIGKILL) fails its own part with a
//! reason; the kernel removes its capture rule with the agent's socket; the other nodes
//! complete, and nothing is left at the lost node's file key.

use std::time::Duration;

use serde_json::json;

use crate::capture_common::{edgecap_tables, markers, root_or_skip};
use crate::harness::{Fleet, ServerOpts};

#[test]
fn a_node_that_vanishes_fails_alone_and_leaves_no_rule() {
    if !root_or_skip() {
        return;
    }
    let mut fleet = Fleet::new(
        3,
        ServerOpts {
            grace: "1s",
            ..ServerOpts::default()
        },
    );
    let id = fleet.create(json!({"time_limit": 300}));
    fleet.wait_rules(&id, &[0, 1, 2]);
    for i in 0..3 {
        fleet.send(i, 100 * (i as u32 + 1), 3);
    }
    fleet.wait(&id, Duration::from_secs(10), |c| c["packets_captured"] == 9);
    fleet.agents[1].kill();
    let c = fleet.wait(&id, Duration::from_secs(10), |c| {
        c["node_results"][1]["status"] == "failed"
    });
    assert_eq!(
        c["node_results"][1]["error_message"],
        "node edge1 disconnected and did not return within 1s"
    );
    assert_eq!(c["status"], "running", "the others still run: {c:#}");
    assert!(
        edgecap_tables(fleet.lab.edge_ns(1)).is_empty(),
        "the killed agent's rule is still installed"
    );
    assert!(
        !fleet.file(&id, 1).exists(),
        "a partial file sits at the key"
    );
    fleet.stop(&id);
    let c = fleet.wait(&id, Duration::from_secs(15), |c| c["status"] != "running");
    assert_eq!(c["status"], "failed");
    assert_eq!(
        c["error_message"],
        "failed on 1 of 3 nodes: edge1: node edge1 disconnected and did not return within 1s"
    );
    for i in [0, 2] {
        assert_eq!(c["node_results"][i]["status"], "success", "{c:#}");
        let first = 100 * (i as u32 + 1);
        assert_eq!(
            markers(&fleet.file(&id, i)),
            (first..first + 3).collect::<Vec<_>>()
        );
    }
}
