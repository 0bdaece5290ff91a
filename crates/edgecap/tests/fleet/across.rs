//! One request, many nodes: a capture across every node, made with `edgecap capture --server`,
//! yields one file per node holding exactly the packets sent through that node.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::capture_common::{BIN, edgecap_tables, markers, root_or_skip, tshark_fields};
use crate::harness::{Fleet, PORT, ServerOpts};

#[test]
fn a_capture_across_three_nodes_holds_exactly_each_nodes_packets() {
    if !root_or_skip() {
        return;
    }
    let fleet = Fleet::new(3, ServerOpts::default());
    let dest = format!("file://{}", fleet.dest.display());
    let port = PORT.to_string();
    let child = Command::new(BIN)
        .args(["capture", "--server", &fleet.url, "--token", &fleet.token])
        .args(["--nodes", "site=lab", "--proto", "udp", "--dport", &port])
        .args(["--time", "4s", "--destination", &dest, "--json"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The capture's id, as soon as the server has it.
    let id = {
        let mut id = None;
        crate::capture_common::wait_for(Duration::from_secs(10), || {
            let (_, v) = fleet.api(reqwest::Method::GET, "pcaps", None);
            id = v["result"][0]["id"].as_str().map(str::to_owned);
            id.is_some()
        });
        id.expect("the client created a capture")
    };
    fleet.wait_rules(&id, &[0, 1, 2]);
    // Different counts per node, so a packet in the wrong file cannot go unnoticed.
    let counts = [5u32, 7, 9];
    for (i, &n) in counts.iter().enumerate() {
        fleet.send(i, 1000 * (i as u32 + 1), n);
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "edgecap capture: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        fleet.logs()
    );
    let c: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(c["id"], id.as_str());
    assert_eq!(c["status"], "success", "{c:#}");
    assert_eq!(c["packets_captured"], 21);
    for (i, &n) in counts.iter().enumerate() {
        let r = &c["node_results"][i];
        assert_eq!(r["node"], format!("edge{i}"));
        assert_eq!(r["status"], "success", "{r}");
        assert_eq!(r["packets"], n);
        assert_eq!(r["stop_reason"], "time-limit");
        assert_eq!(r["file"], format!("{id}/edge{i}.pcapng"));
        let file = fleet.file(&id, i);
        let first = 1000 * (i as u32 + 1);
        assert_eq!(markers(&file), (first..first + n).collect::<Vec<_>>());
        // Every packet is on the node's interface, named for the node and the point.
        let names = tshark_fields(&file, &["frame.interface_name"]);
        assert!(
            names
                .iter()
                .all(|l| l[0] == format!("edge{i}/pre-firewall")),
            "{names:?}"
        );
        assert!(edgecap_tables(fleet.lab.edge_ns(i)).is_empty());
    }
}
