//! The server restarts mid-capture (SIGKILL, then a new process on the same port and
//! database): the agents reconnect, their captures run on throughout and finish, and the
//! results reach the new server.

use std::time::Duration;

use serde_json::json;

use crate::capture_common::{markers, root_or_skip};
use crate::harness::{Fleet, ServerOpts};

#[test]
fn captures_run_through_a_server_restart_and_report_to_the_new_one() {
    if !root_or_skip() {
        return;
    }
    let mut fleet = Fleet::new(3, ServerOpts::default());
    let id = fleet.create(json!({"time_limit": 8}));
    fleet.wait_rules(&id, &[0, 1, 2]);
    for i in 0..3 {
        fleet.send(i, 100 * (i as u32 + 1), 3);
    }
    fleet.server.kill();
    // While no server runs, the captures keep capturing.
    for i in 0..3 {
        fleet.send(i, 100 * (i as u32 + 1) + 3, 3);
    }
    fleet.restart_server(Duration::from_millis(500));
    fleet.wait_connected(3);
    let c = fleet.get(&id);
    assert_eq!(c["status"], "running", "{c:#}");
    for i in 0..3 {
        fleet.send(i, 100 * (i as u32 + 1) + 6, 3);
    }
    let c = fleet.wait(&id, Duration::from_secs(20), |c| c["status"] != "running");
    assert_eq!(c["status"], "success", "{c:#}");
    assert_eq!(c["packets_captured"], 27);
    for i in 0..3 {
        let r = &c["node_results"][i];
        assert_eq!(r["stop_reason"], "time-limit", "{r}");
        let first = 100 * (i as u32 + 1);
        assert_eq!(
            markers(&fleet.file(&id, i)),
            (first..first + 9).collect::<Vec<_>>()
        );
    }
}
