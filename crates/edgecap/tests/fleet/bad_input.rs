//! Bad input to the fleet commands: exit code 2, a message naming the flag (or the API field)
//! and the reason, and nothing created or started.

use std::process::Command;

use crate::capture_common::{BIN, root_or_skip};
use crate::harness::{Fleet, ServerOpts};

/// Runs edgecap; (exit code, stderr). An agent's state directory is a fresh scratch one, so
/// no credential from the machine (or another run) counts and none is left behind.
fn run(args: &[&str]) -> (i32, String) {
    let state = crate::capture_common::Scratch::new("fleet-flags-state");
    let out = Command::new(BIN)
        .args(args)
        .env("EDGECAP_STATE_DIR", state.path("agent"))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_usage(args: &[&str], names: &str) {
    let (code, err) = run(args);
    assert_eq!(code, 2, "edgecap {args:?}: {err}");
    assert!(
        err.contains(&format!("error: {names}")),
        "edgecap {args:?} should name {names}: {err}"
    );
}

#[test]
fn server_agent_and_admin_flags_are_checked() {
    let dir = crate::capture_common::Scratch::new("fleet-flags");
    let d = dir.0.to_str().unwrap();
    assert_usage(
        &["server", "--data-dir", d, "--listen", "localhost"],
        "--listen",
    );
    assert_usage(&["server", "--data-dir", d, "--grace", "soon"], "--grace");
    assert_usage(&["server", "--database", "mysql://x"], "--database");
    let agent = ["agent", "--token", "eca_x"];
    assert_usage(
        &[&agent[..], &["--server", "10.0.0.1:8080"]].concat(),
        "--server",
    );
    assert_usage(
        &["agent", "--server", "http://127.0.0.1:1", "--token", ""],
        "--token",
    );
    let ok = [
        "agent",
        "--server",
        "http://127.0.0.1:1",
        "--token",
        "eca_x",
    ];
    assert_usage(&[&ok[..], &["--name", "no spaces"]].concat(), "--name");
    assert_usage(&[&ok[..], &["--label", "site"]].concat(), "--label");
    assert_usage(
        &[&ok[..], &["--netns", "edgecap-no-such-ns"]].concat(),
        "--netns",
    );
    assert_usage(
        &[&ok[..], &["--config", "/nonexistent.toml"]].concat(),
        "--config",
    );
    let admin = ["admin", "--data-dir", d];
    assert_usage(
        &[&admin[..], &["token", "create", "--account", "x"]].concat(),
        "--account",
    );
    assert_usage(
        &[
            &admin[..],
            &["account", "create", "--name", "a", "--max-time-limit", "0"],
        ]
        .concat(),
        "--max-time-limit",
    );
    // Nothing was created by the refused commands.
    let listed = Command::new(BIN)
        .args([&admin[..], &["account", "list"]].concat())
        .output()
        .unwrap();
    assert!(listed.status.success());
    assert_eq!(String::from_utf8_lossy(&listed.stdout).trim(), "");
}

#[test]
fn a_capture_the_server_refuses_exits_2_with_the_field_and_creates_nothing() {
    if !root_or_skip() {
        return;
    }
    let fleet = Fleet::new(1, ServerOpts::default());
    let dest = format!("file://{}", fleet.dest.display());
    let base = [
        "capture",
        "--server",
        &fleet.url,
        "--token",
        &fleet.token,
        "--destination",
        &dest,
    ];
    assert_usage(
        &[&base[..], &["--colo", "nowhere"]].concat(),
        "server refused (400 Bad Request): colo_name: no connected node",
    );
    assert_usage(
        &[&base[..], &["--nodes", "site=mars"]].concat(),
        "server refused (400 Bad Request): nodes.0: no connected node",
    );
    assert_usage(
        &[
            &base[..],
            &["--nodes", "edge0", "--point", "post-mitigation"],
        ]
        .concat(),
        "server refused (400 Bad Request): points.0: node edge0 has no capture point",
    );
    assert_usage(
        &[&base[..], &["--nodes", "edge0", "--packets", "20000"]].concat(),
        "server refused (400 Bad Request): packet_limit: 20000 is outside 1-10000",
    );
    let (code, err) = run(&["ls", "--server", &fleet.url, "--token", "ecp_wrong"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("401") && err.contains("not a valid API token"),
        "{err}"
    );
    let (_, v) = fleet.api(reqwest::Method::GET, "pcaps", None);
    assert_eq!(v["result"], serde_json::json!([]), "nothing was created");
}
