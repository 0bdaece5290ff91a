//! The dispatch benchmark with real agents: a lab of edge namespaces, one `edgecap agent
//! --netns <edge>` process per edge, against the same server as the simulated fleet. Per
//! round: create a capture on the lab's nodes and time until the API shows every part running;
//! then stop it and time until every node has detached its rule, drained, finished its file
//! and reported (the capture is `success`). No traffic is sent: this times the control path.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use edgecap_lab::{Lab, LabSpec};
use serde_json::json;

use super::{ROUND_LIMIT, until};
use crate::api::Api;
use crate::exit::Failure;

/// What the lab rounds measured.
#[derive(Debug, Default)]
pub struct LabMeasured {
    pub edges: usize,
    /// Per round: create -> every part running.
    pub running: Vec<Duration>,
    /// Per round: stop -> the capture `success` (every node done).
    pub done: Vec<Duration>,
}

/// Agent processes, killed when dropped (before the lab goes).
struct Agents(Vec<Child>);

impl Drop for Agents {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub async fn rounds(
    api: &Api,
    url: &str,
    agent_token: &str,
    edges: usize,
    rounds: usize,
    dest: &str,
) -> Result<LabMeasured, Failure> {
    eprintln!("building a lab of {edges} edges with a real agent in each ...");
    let lab = Lab::new(&LabSpec::with_edges(edges))
        .map_err(|e| Failure::runtime(format!("--lab-edges: {e}")))?;
    let exe = crate::edgecap_exe()?;
    let mut agents = Agents(Vec::new());
    for i in 0..edges {
        let child = Command::new(&exe)
            .args(["agent", "--server", url, "--token", agent_token])
            // Each node its own credential (a fresh one per run: names are enrolled anew in
            // each run's database).
            .arg("--state-dir")
            .arg(
                std::env::temp_dir()
                    .join(format!("edgecap-bench-lab-{}/agent{i}", std::process::id())),
            )
            .args(["--name", &format!("lab{i}"), "--label", "site=benchlab"])
            .args(["--netns", lab.edge_ns(i)])
            .args(["--file-root", dest])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| Failure::runtime(format!("starting edgecap agent: {e}")))?;
        agents.0.push(child);
    }
    let start = Instant::now();
    loop {
        let nodes = api.call(reqwest::Method::GET, "nodes", None).await?;
        let up = nodes.as_array().map_or(0, |a| {
            a.iter()
                .filter(|n| n["labels"]["site"] == "benchlab" && n["connected"] == true)
                .count()
        });
        if up == edges {
            break;
        }
        if start.elapsed() > ROUND_LIMIT {
            return Err(Failure::runtime(format!(
                "only {up} of {edges} lab agents connected"
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut m = LabMeasured {
        edges,
        ..LabMeasured::default()
    };
    for round in 0..rounds {
        let body = json!({
            "type": "full", "system": "magic-transit", "time_limit": 300,
            "nodes": ["site=benchlab"], "destination_conf": format!("file://{dest}"),
            "filter_v1": {"protocol": 17, "destination_port": 9},
        });
        let t0 = Instant::now();
        let c = api.call(reqwest::Method::POST, "pcaps", Some(body)).await?;
        let id = c["id"].as_str().unwrap_or_default().to_owned();
        m.running.push(
            until(api, &id, t0, |c| {
                c["node_results"]
                    .as_array()
                    .is_some_and(|p| p.iter().all(|p| p["status"] == "running"))
            })
            .await?,
        );
        // Let every node get its rule in before stopping it.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let t1 = Instant::now();
        api.call(reqwest::Method::PUT, &format!("pcaps/{id}/stop"), None)
            .await?;
        m.done
            .push(until(api, &id, t1, |c| c["status"] == "success").await?);
        eprintln!(
            "  lab round {}/{rounds}: all running {:.1} ms, stop -> all done {:.1} ms",
            round + 1,
            super::ms(m.running[round]),
            super::ms(m.done[round])
        );
    }
    drop(agents);
    drop(lab);
    Ok(m)
}
