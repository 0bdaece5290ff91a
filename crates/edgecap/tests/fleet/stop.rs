//! `stop` (the CLI's, with `--json`) ends the capture on every node; every file is complete. The capture's filter is an
//! expression (`filter`), compiled by each agent. How fast a stop reaches the
//! agents is measured by `edgecap bench dispatch` (stop -> every agent stopped), not here.

use std::time::Duration;

use serde_json::json;

use crate::capture_common::{edgecap_tables, isb_counters, markers, root_or_skip};
use crate::harness::{Fleet, PORT, ServerOpts};

#[test]
fn stop_ends_the_capture_on_every_node_with_complete_files() {
    if !root_or_skip() {
        return;
    }
    let fleet = Fleet::new(3, ServerOpts::default());
    // The filter as a tcpdump-style expression: the packets to PORT + 1 sent beside each
    // marker must stay out of the files.
    let id = fleet.create(json!({
        "time_limit": 300, "filter_v1": {}, "filter": format!("udp and dst port {PORT}"),
    }));
    fleet.wait_rules(&id, &[0, 1, 2]);
    for i in 0..3 {
        fleet.send(i, 100 * (i as u32 + 1), 4);
    }
    // Progress arrives while the capture runs (at most every second per node).
    let c = fleet.wait(&id, Duration::from_secs(10), |c| {
        c["packets_captured"] == 12
    });
    assert_eq!(c["status"], "running");
    // Through the CLI: `stop --json` prints the capture as `status --json` does.
    let out = crate::harness::edgecap(&[
        "stop",
        &id,
        "--json",
        "--server",
        &fleet.url,
        "--token",
        &fleet.token,
    ]);
    let stopped: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(stopped["id"], id.as_str(), "{stopped:#}");
    assert!(stopped["stop_requested"].is_string(), "{stopped:#}");
    let c = fleet.wait(&id, Duration::from_secs(15), |c| c["status"] != "running");
    assert_eq!(c["status"], "success", "{c:#}");
    assert!(c["stop_requested"].is_string());
    for i in 0..3 {
        let r = &c["node_results"][i];
        assert_eq!(r["stop_reason"], "stopped", "{r}");
        assert_eq!(r["packets"], 4);
        let file = fleet.file(&id, i);
        let first = 100 * (i as u32 + 1);
        assert_eq!(markers(&file), (first..first + 4).collect::<Vec<_>>());
        // Complete: the statistics block written at the end is there, counting 4 delivered.
        let isb = isb_counters(&file);
        assert_eq!(isb.len(), 1, "{isb:?}");
        assert_eq!(isb[0].4, Some(4));
        assert!(edgecap_tables(fleet.lab.edge_ns(i)).is_empty());
    }
    // A finished capture cannot be stopped again.
    let (s, v) = fleet.api(reqwest::Method::PUT, &format!("pcaps/{id}/stop"), None);
    assert_eq!(s, 409, "{v}");
}
