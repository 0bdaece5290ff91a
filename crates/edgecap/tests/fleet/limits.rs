//! A packet limit applies to the capture as a whole: it is split across the nodes (the first
//! `limit % n` nodes get one more), so the files together hold exactly the limit.

use std::time::Duration;

use serde_json::json;

use crate::capture_common::{markers, root_or_skip, tshark_fields};
use crate::harness::{Fleet, ServerOpts};

#[test]
fn a_packet_limit_holds_for_the_capture_as_a_whole() {
    if !root_or_skip() {
        return;
    }
    let fleet = Fleet::new(3, ServerOpts::default());
    // At ingress: the agents resolve the point's devices inside their edge's namespace.
    let id = fleet.create(json!({"packet_limit": 31, "points": ["ingress"]}));
    let c = fleet.get(&id);
    let shares: Vec<u64> = (0..3)
        .map(|i| c["node_results"][i]["packet_limit"].as_u64().unwrap())
        .collect();
    assert_eq!(shares, [11, 10, 10]);
    fleet.wait_rules(&id, &[0, 1, 2]);
    for i in 0..3 {
        fleet.send(i, 100 * (i as u32 + 1), 20);
    }
    let c = fleet.wait(&id, Duration::from_secs(15), |c| c["status"] != "running");
    assert_eq!(c["status"], "success", "{c:#}");
    assert_eq!(c["packets_captured"], 31);
    let mut total = 0;
    for (i, share) in shares.iter().enumerate() {
        assert_eq!(c["node_results"][i]["stop_reason"], "packet-limit");
        let file = fleet.file(&id, i);
        let names = tshark_fields(&file, &["frame.interface_name"]);
        assert!(
            names.iter().all(|l| l[0] == format!("edge{i}/ingress")),
            "{names:?}"
        );
        let m = markers(&file);
        let first = 100 * (i as u32 + 1);
        // Exactly the node's share: the first packets sent through it.
        assert_eq!(m, (first..first + *share as u32).collect::<Vec<_>>());
        total += m.len();
    }
    assert_eq!(total, 31);
}
