//! `edgecap up`: server, agent for this machine and a local destination in one process; the
//! client config it writes makes `ls` and `status` work without flags, and a capture on the
//! local node lands under the data directory. The capture's filter matches addresses only
//! the lab uses and no traffic is sent: it shows the path end to end, not packets.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::capture_common::{BIN, Scratch, root_or_skip, tshark_packets};
use crate::harness::Proc;

#[test]
fn up_serves_an_agent_and_writes_the_client_config() {
    if !root_or_skip() {
        return;
    }
    let tmp = Scratch::new("up");
    let data = tmp.path("data");
    let client = tmp.path("client.toml");
    let mut child = Command::new(BIN)
        .args([
            "up",
            "--listen",
            "127.0.0.1:0",
            "--name",
            "upnode",
            "--data-dir",
        ])
        .arg(&data)
        .arg("--client-config")
        .arg(&client)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(tmp.path("up.log")).unwrap())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut up = Proc {
        child: Some(child),
        log: tmp.path("up.log"),
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut banner = Vec::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(20)) {
        let last = line.starts_with("  edgecap ls");
        if line.starts_with("  edgecap capture") {
            // The suggested command works as printed: the client config names the server.
            assert!(line.contains("--client-config"), "{line}");
        }
        banner.push(line);
        if last {
            break;
        }
    }
    let text = banner.join("\n");
    let url = text
        .lines()
        .find(|l| l.trim_start().starts_with("API "))
        .and_then(|l| l.split_whitespace().find(|w| w.starts_with("http://")))
        .unwrap_or_else(|| panic!("no API URL in the banner:\n{text}"))
        .to_owned();
    assert!(
        text.contains(&format!("dashboard    {url}/ ")),
        "the dashboard's URL is printed:\n{text}"
    );
    assert!(
        text.contains("API token    ecp_"),
        "the first token is printed:\n{text}"
    );
    // Single tenant: its account is unrestricted, and the banner says so.
    assert!(
        text.contains("tenancy      unrestricted (single tenant"),
        "the banner says the account is unrestricted:\n{text}"
    );
    let config = std::fs::read_to_string(&client).unwrap();
    assert!(config.contains(&format!("server = {url:?}")), "{config}");
    let cfg = client.to_str().unwrap();
    // The node registered; `ls` works with nothing but the client config.
    let ok = crate::capture_common::wait_for(Duration::from_secs(10), || {
        Command::new(BIN)
            .args(["ls", "--client-config", cfg])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    assert!(ok, "edgecap ls failed against {url}");
    let out = Command::new(BIN)
        // No --server and no -w: the client config makes it a fleet capture.
        .args(["capture", "--client-config", cfg, "--colo", "upnode"])
        .args(["--dst", "198.18.255.254", "--time", "1s", "--json", "-q"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(&up.log).unwrap_or_default()
    );
    let c: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(c["status"], "success", "{c:#}");
    let id = c["id"].as_str().unwrap();
    let file = data.join("captures").join(id).join("upnode.pcapng");
    assert!(tshark_packets(&file).is_empty(), "tshark opens the file");
    let status = Command::new(BIN)
        .args(["status", id, "--client-config", cfg, "--json"])
        .output()
        .unwrap();
    assert!(status.status.success());
    let s: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(s["node_results"][0]["node"], "upnode");
    // SIGTERM stops the agent, then the server, and exits cleanly.
    let st = up.terminate(Duration::from_secs(20));
    assert!(
        st.is_some_and(|s| s.success()),
        "edgecap up did not exit cleanly: {st:?}"
    );
}
