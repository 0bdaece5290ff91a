//! The agent with exactly the privileges its packaged systemd unit grants
//! (`packaging/systemd/edgecap-agent.service`): a user that is not root, whose only
//! capabilities (bounding, inheritable and ambient, as `AmbientCapabilities=` sets them) are
//! CAP_NET_ADMIN and, for `--netns`, CAP_SYS_ADMIN (the `netns.conf` drop-in). It enrols,
//! captures inside the edge's namespace and writes a complete file; without CAP_SYS_ADMIN a
//! `--netns` agent cannot enter the namespace, logs why and offers no capture point, so the
//! drop-in is needed.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::capture_common::{BIN, edgecap_tables, markers, root_or_skip, wait_for};
use crate::harness::{Fleet, Proc, ServerOpts};

/// The uid and gid of `nobody`: a user that owns nothing of the test's.
const NOBODY: u32 = 65534;

fn owned_by_nobody(dir: &Path, mode: u32) {
    std::fs::create_dir_all(dir).unwrap();
    std::os::unix::fs::chown(dir, Some(NOBODY), Some(NOBODY)).unwrap();
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
}

/// `edgecap agent --netns <edge 0>` as `nobody` with only `caps` (setpriv's list, e.g.
/// `net_admin,sys_admin`), named `name`, writing under the fleet's destination.
fn start_agent_as_nobody(fleet: &Fleet, name: &str, caps: &str) -> Proc {
    let state = fleet.tmp.path(&format!("{name}-state"));
    let cwd = fleet.tmp.path(&format!("{name}-cwd"));
    owned_by_nobody(&state, 0o700);
    owned_by_nobody(&cwd, 0o700);
    let log = fleet.tmp.path(&format!("{name}.log"));
    let caps = format!(
        "-all,{}",
        caps.split(',')
            .map(|c| format!("+{c}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    let child = Command::new("setpriv")
        .args([&format!("--reuid={NOBODY}"), &format!("--regid={NOBODY}")])
        .arg("--clear-groups")
        .args([
            &format!("--inh-caps={caps}"),
            &format!("--ambient-caps={caps}"),
        ])
        .arg(format!("--bounding-set={caps}"))
        .arg(BIN)
        .args([
            "agent",
            "--server",
            &fleet.url,
            "--token",
            &fleet.agent_token,
        ])
        .arg("--state-dir")
        .arg(&state)
        .args(["--name", name, "--label", "site=unprivileged"])
        .args(["--netns", fleet.lab.edge_ns(0)])
        .arg("--file-root")
        .arg(&fleet.dest)
        .current_dir(&cwd)
        .env("TMPDIR", &cwd)
        .env("EDGECAP_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("spawn setpriv edgecap agent");
    Proc {
        child: Some(child),
        log,
    }
}

fn wait_node(fleet: &Fleet, name: &str, proc: &Proc) {
    let ok = wait_for(Duration::from_secs(20), || {
        fleet
            .nodes()
            .iter()
            .any(|n| n["name"] == name && n["connected"] == true)
    });
    let log = std::fs::read_to_string(&proc.log).unwrap_or_default();
    assert!(ok, "{name} never connected: {:?}\n{log}", fleet.nodes());
}

#[test]
fn an_agent_with_only_the_unit_s_capabilities_captures_in_its_namespace() {
    if !root_or_skip() {
        return;
    }
    let fleet = Fleet::new(1, ServerOpts::default());
    // The agent writes <dest>/<capture>/<node>.pcapng as nobody.
    std::fs::set_permissions(
        &fleet.dest,
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let name = "edge0-unprivileged";
    let agent = start_agent_as_nobody(&fleet, name, "net_admin,sys_admin");
    wait_node(&fleet, name, &agent);

    let id = fleet.create(json!({"nodes": [name], "packet_limit": 4}));
    fleet.wait_rules(&id, &[0]);
    fleet.send(0, 700, 4);
    let c = fleet.wait(&id, Duration::from_secs(15), |c| c["status"] != "running");
    let log = std::fs::read_to_string(&agent.log).unwrap_or_default();
    assert_eq!(c["status"], "success", "{c:#}\n{log}");
    let r = &c["node_results"][0];
    assert_eq!(r["stop_reason"], "packet-limit", "{r}");
    let file = fleet.dest.join(&id).join(format!("{name}.pcapng"));
    assert_eq!(markers(&file), vec![700, 701, 702, 703]);
    let meta = std::fs::metadata(&file).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), NOBODY);
    assert!(edgecap_tables(fleet.lab.edge_ns(0)).is_empty());
}

#[test]
fn without_cap_sys_admin_a_netns_agent_offers_no_point_and_says_why() {
    if !root_or_skip() {
        return;
    }
    let fleet = Fleet::new(1, ServerOpts::default());
    let name = "edge0-no-sys-admin";
    let agent = start_agent_as_nobody(&fleet, name, "net_admin");
    wait_node(&fleet, name, &agent);
    // It cannot enter the namespace, so it offers no capture point there ...
    let node = fleet
        .nodes()
        .into_iter()
        .find(|n| n["name"] == name)
        .unwrap();
    assert_eq!(node["points"], json!([]), "{node}");
    let log = std::fs::read_to_string(&agent.log).unwrap_or_default();
    assert!(log.contains("cannot list the namespace's devices"), "{log}");
    // ... and a capture on it is refused before anything is stored, naming the point.
    let (status, v) = fleet.try_create(json!({"nodes": [name]}));
    assert_eq!(status, 400, "{v}");
    let message = v["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("has no capture point"), "{message}");
    assert!(edgecap_tables(fleet.lab.edge_ns(0)).is_empty());
}
