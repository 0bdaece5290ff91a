//! Hostile input: `file://` destinations outside the operator's `--file-root`, against a real
//! server and agent. A directory outside the root is refused with 400 naming
//! `destination_conf` (nothing created); one inside it works; a symlink inside the root that
//! leads outside it passes the server's lexical check but the agent, resolving it, refuses it
//! and writes nothing there.

use std::time::Duration;

use serde_json::json;

use crate::capture_common::root_or_skip;
use crate::harness::{Fleet, ServerOpts};

#[test]
fn file_destinations_stay_under_the_file_root() {
    if !root_or_skip() {
        return;
    }
    let fleet = Fleet::new(1, ServerOpts::default());
    let outside = fleet.tmp.path("elsewhere");
    std::fs::create_dir_all(&outside).unwrap();

    // Outside the root (and /etc): 400 naming the field and the root, nothing created.
    for dir in [outside.display().to_string(), "/etc".to_owned()] {
        let (s, v) = fleet.try_create(json!({"destination_conf": format!("file://{dir}")}));
        assert_eq!(s, 400, "{v}");
        assert_eq!(v["success"], false, "{v}");
        assert_eq!(v["errors"][0]["code"], 1001, "{v}");
        let msg = v["errors"][0]["message"].as_str().unwrap_or("");
        assert!(
            msg.starts_with("destination_conf: ")
                && msg.contains("outside the directories the operator allows")
                && msg.contains(&format!("(--file-root): {}", fleet.dest.display())),
            "{v}"
        );
    }
    // A `..` escape is refused too.
    let (s, v) = fleet.try_create(
        json!({"destination_conf": format!("file://{}/../elsewhere", fleet.dest.display())}),
    );
    assert_eq!(s, 400, "{v}");
    let (s, v) = fleet.api(reqwest::Method::GET, "pcaps", None);
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["result"].as_array().map(Vec::len), Some(0), "{v}");

    // Inside the root: the capture works and its file is there.
    let team = fleet.dest.join("team");
    std::fs::create_dir_all(&team).unwrap();
    let id = fleet.create(json!({
        "destination_conf": format!("file://{}", team.display()), "packet_limit": 5,
    }));
    fleet.wait_rules(&id, &[0]);
    fleet.send(0, 1, 5);
    let c = fleet.wait(&id, Duration::from_secs(15), |c| c["status"] != "running");
    assert_eq!(c["status"], "success", "{c:#}\n{}", fleet.logs());
    assert!(team.join(&id).join("edge0.pcapng").is_file());

    // A link inside the root to a directory outside it: the agent refuses it.
    std::os::unix::fs::symlink(&outside, fleet.dest.join("link")).unwrap();
    let id = fleet.create(json!({
        "destination_conf": format!("file://{}/link", fleet.dest.display()),
    }));
    let c = fleet.wait(&id, Duration::from_secs(15), |c| {
        c["status"] != "running" && c["status"] != "pending"
    });
    assert_eq!(c["status"], "failed", "{c:#}");
    let text = c.to_string();
    assert!(
        text.contains("destination_conf") && text.contains("resolves to"),
        "{c:#}"
    );
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
}
