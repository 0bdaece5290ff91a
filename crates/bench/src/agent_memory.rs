//! `edgecap bench agent-memory`: the peak memory of a real `edgecap agent` process while it
//! captures lab traffic and streams the file to a bucket. Everything is real and local: a
//! `moto_server` (S3, 5 MiB parts) and an `edgecap server` on 127.0.0.1, a one-edge lab, and
//! the agent with `--netns` in that edge. Per size: the agent's `VmHWM` is reset
//! (`/proc/<pid>/clear_refs`), a capture with that byte limit is created through the API,
//! paced UDP of 1428-byte packets is sent through the edge until the capture stops at its
//! limit, and the agent's `VmHWM` is read once the file is complete in the bucket (the
//! server's too: with `--merge` it covers the server merging the file from the bucket back
//! into it). Needs root.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use edgecap_lab::packet::Packet;
use edgecap_lab::{Blast, Lab, LabSpec};
use edgecap_testkit::http::try_moto_get;
use edgecap_units::parse_size;
use reqwest::Method;
use serde_json::{Value, json};

use crate::api::Api;
use crate::dispatch::server::{Server, Workdir, run_edgecap};
use crate::exit::Failure;

#[derive(Debug, clap::Args)]
pub struct BenchAgentMemoryArgs {
    /// Capture sizes (the captures' byte limits), e.g. 100MB,2GB.
    #[arg(long, value_delimiter = ',', default_value = "100MB,2GB")]
    pub sizes: Vec<String>,
    /// Packets per second sent through the edge (1428-byte IP packets); keep it below what
    /// moto_server absorbs (~35k/s here), or the agent's bounded buffer fills and the kernel
    /// drops (and the capture counts) packets.
    #[arg(long, default_value_t = 20_000)]
    pub pps: u64,
    /// Captures ask for `merge: true`: the server then streams the node's file from the
    /// bucket through the merge back into it, and its peak RSS covers that.
    #[arg(long)]
    pub merge: bool,
    /// Write the markdown table here as well as to stdout.
    #[arg(long)]
    pub markdown: Option<std::path::PathBuf>,
}

/// IP packet size of the traffic.
const PACKET: usize = 1428;

/// The agent process; killed when dropped (before the lab goes).
struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn kib(pid: u32, field: &str) -> Result<u64, Failure> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| Failure::runtime(format!("/proc/{pid}/status: {e}")))?;
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| Failure::runtime(format!("no {field} in /proc/{pid}/status")))
}

/// One object from moto (it checks no signature), for the challenge and the manifest.
fn moto_get(port: u16, key: &str) -> Result<Vec<u8>, Failure> {
    try_moto_get(port, "bench", key).map_err(Failure::runtime)
}

/// What one size measured.
struct Row {
    size: u64,
    packets: u64,
    lost: u64,
    object: u64,
    parts: u64,
    chunk: u64,
    baseline_kib: u64,
    peak_kib: u64,
    server_peak_kib: u64,
    seconds: f64,
}

pub fn run(a: &BenchAgentMemoryArgs) -> Result<(), Failure> {
    let sizes = a
        .sizes
        .iter()
        .map(|s| parse_size(s).map_err(|e| Failure::usage(format!("--sizes: {e}"))))
        .collect::<Result<Vec<u64>, _>>()?;
    if !(1_000..=200_000).contains(&a.pps) {
        return Err(Failure::usage(format!(
            "--pps: {} is not in 1000-200000",
            a.pps
        )));
    }
    if !edgecap_testkit::root::is_root() {
        return Err(Failure::usage(
            "bench agent-memory: needs root (a lab of network namespaces and a capture)",
        ));
    }
    eprintln!("starting moto_server, an edgecap server, a lab edge and its agent ...");
    let moto = crate::upload::start_moto("bench")?;
    let work = Workdir::new()?;
    let admin = |args: &[&str]| -> Result<String, Failure> {
        let mut all = vec!["admin", "--data-dir", work.dir()];
        all.extend_from_slice(args);
        run_edgecap(&all)
    };
    let max = sizes.iter().max().copied().unwrap_or(0).max(1_000_000_000);
    let account = admin(&[
        "account",
        "create",
        "--name",
        "bench",
        "--unrestricted",
        "--max-time-limit",
        "86400",
        "--max-byte-limit",
        &max.to_string(),
    ])?;
    // Large captures back to back: the account's quotas must not be what is measured.
    admin(&[
        "account",
        "quota",
        "set",
        &account,
        "--per-hour",
        "1000000",
        "--bytes-per-day",
        "1000000000000000",
    ])?;
    let token = admin(&["token", "create", "--account", &account])?;
    let agent_token = admin(&["agent-token", "create"])?;
    // moto speaks plain http on loopback: the operator allows it, on its port only.
    let allow = format!("127.0.0.1:{}", moto.port);
    let mut server = Server::start_with(work.dir(), &["--allow-endpoint", &allow])?;
    let lab =
        Lab::new(&LabSpec::with_edges(1)).map_err(|e| Failure::runtime(format!("lab: {e}")))?;
    let exe = crate::edgecap_exe()?;
    let log = std::fs::File::create(work.0.join("agent.log"))
        .map_err(|e| Failure::runtime(format!("agent log: {e}")))?;
    let agent = Agent(
        Command::new(exe)
            .args(["agent", "--server", &server.url, "--token", &agent_token])
            .arg("--state-dir")
            .arg(work.0.join("agent-state"))
            .args(["--name", "bench0", "--netns", lab.edge_ns(0)])
            .args(["--allow-endpoint", &allow])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| Failure::runtime(format!("starting edgecap agent: {e}")))?,
    );
    let api = Api::new_blocking(&server.url, &account, token)?;
    wait(Duration::from_secs(30), "the agent to connect", || {
        Ok(api.blocking(Method::GET, "nodes", None)?[0]["connected"] == true)
    })?;
    let dest = format!(
        "s3://bench/agent?endpoint=http://127.0.0.1:{}&region=us-east-1",
        moto.port
    );
    let creds = json!({"access_key_id": "bench", "secret_access_key": "bench"});
    let own = api.blocking(
        Method::POST,
        "pcaps/ownership",
        Some(json!({"destination_conf": dest, "credentials": creds})),
    )?;
    let challenge = format!("agent/{}", own["filename"].as_str().unwrap_or_default());
    let token = String::from_utf8_lossy(&moto_get(moto.port, &challenge)?).into_owned();
    api.blocking(
        Method::POST,
        "pcaps/ownership/validate",
        Some(json!({"destination_conf": dest, "ownership_challenge": token})),
    )?;
    let template = Packet::udp(lab.src_addr(0, false), lab.origin_addr(0, false), 40000, 9)
        .total_len(PACKET)
        .build()
        .map_err(|e| Failure::runtime(format!("packet: {e}")))?;
    let pid = agent.0.id();
    let mut rows = Vec::new();
    for (n, &size) in sizes.iter().enumerate() {
        // The peak counters cover this size only (Linux 4.0+).
        for p in [pid, server.pid()] {
            std::fs::write(format!("/proc/{p}/clear_refs"), "5")
                .map_err(|e| Failure::runtime(format!("resetting VmHWM of {p}: {e}")))?;
        }
        let baseline = kib(pid, "VmRSS:")?;
        eprintln!(
            "[{}/{}] capturing {size} bytes at {} pps ...",
            n + 1,
            sizes.len(),
            a.pps
        );
        let started = Instant::now();
        let c = api.blocking(
            Method::POST,
            "pcaps",
            Some(json!({
                "type": "full", "system": "magic-transit", "time_limit": 86400,
                "byte_limit": size, "nodes": ["bench0"], "destination_conf": dest,
                "merge": a.merge,
                "filter_v1": {"protocol": 17, "destination_port": 9},
            })),
        )?;
        let id = c["id"].as_str().unwrap_or_default().to_owned();
        wait(Duration::from_secs(30), "the capture to run", || {
            Ok(api.blocking(Method::GET, &format!("pcaps/{id}"), None)?["status"] == "running")
        })?;
        // A little more than the limit needs, so loss cannot leave it short; bounded.
        let count = size.div_ceil(PACKET as u64) * 21 / 20 + 1000;
        let blast = Blast {
            count,
            pps: Some(a.pps),
            max_duration: Duration::from_secs(count / a.pps + 60)
                .min(edgecap_lab::send::MAX_BLAST_DURATION),
            vary_source_port: false,
        };
        // The capture stops at its limit; the rest of the blast is not captured.
        lab.blast(0, &template, blast)
            .map_err(|e| Failure::runtime(format!("blast: {e}")))?;
        let mut done = Value::Null;
        wait(Duration::from_secs(600), "the capture to end", || {
            done = api.blocking(Method::GET, &format!("pcaps/{id}"), None)?;
            Ok(!matches!(
                done["status"].as_str(),
                Some("pending" | "running" | "conversion_running")
            ))
        })?;
        let seconds = started.elapsed().as_secs_f64();
        if a.merge && done["status"] == "success" && done["merged_file"].is_null() {
            return Err(Failure::runtime(format!("capture {id} has no merged_file")));
        }
        if done["status"] != "success" {
            return Err(Failure::runtime(format!(
                "capture {id} ended {}: {}",
                done["status"], done["error_message"]
            )));
        }
        let manifest: Value =
            serde_json::from_slice(&moto_get(moto.port, &format!("agent/{id}/bench0.json"))?)
                .map_err(|e| Failure::runtime(format!("manifest: {e}")))?;
        let r = &done["node_results"][0];
        rows.push(Row {
            size,
            packets: r["packets"].as_u64().unwrap_or(0),
            lost: r["lost"].as_u64().unwrap_or(0),
            object: manifest["upload"]["bytes"].as_u64().unwrap_or(0),
            parts: manifest["upload"]["parts"].as_u64().unwrap_or(0),
            chunk: manifest["upload"]["chunk_size"].as_u64().unwrap_or(0),
            baseline_kib: baseline,
            peak_kib: kib(pid, "VmHWM:")?,
            server_peak_kib: server.peak_kib()?,
            seconds,
        });
    }
    drop(agent);
    server.stop();
    drop(lab);
    drop(moto);
    crate::publish(&report(a, &rows), a.markdown.as_deref())
}

fn wait(
    limit: Duration,
    what: &str,
    mut f: impl FnMut() -> Result<bool, Failure>,
) -> Result<(), Failure> {
    let start = Instant::now();
    while !f()? {
        if start.elapsed() > limit {
            return Err(Failure::runtime(format!("waited {limit:?} for {what}")));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

fn report(a: &BenchAgentMemoryArgs, rows: &[Row]) -> String {
    let mib = |k: u64| k as f64 / 1024.0;
    let mut md = format!(
        "Command: `{}`; one lab edge, `edgecap agent --netns` streaming to moto_server through \
         `edgecap server`; {PACKET}-byte packets at {} pps; agent's and server's VmHWM reset \
         before each size{}.\n\n| capture (byte limit) | packets | lost | object | parts x size | agent \
         peak RSS MiB (VmHWM) | agent RSS before MiB | server peak RSS MiB | seconds |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        std::env::args().collect::<Vec<_>>().join(" "),
        a.pps,
        if a.merge {
            "; merge: true (the server merges the file from the bucket back into it)"
        } else {
            ""
        }
    );
    for r in rows {
        md.push_str(&format!(
            "| {} MB | {} | {} | {:.1} MB | {} x {} MiB | {:.0} | {:.0} | {:.0} | {:.0} |\n",
            r.size / 1_000_000,
            r.packets,
            r.lost,
            r.object as f64 / 1e6,
            r.parts,
            r.chunk >> 20,
            mib(r.peak_kib),
            mib(r.baseline_kib),
            mib(r.server_peak_kib),
            r.seconds
        ));
    }
    md
}
