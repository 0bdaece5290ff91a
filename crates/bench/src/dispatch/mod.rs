//! `edgecap bench dispatch`: how fast one request reaches many nodes. A real `edgecap server`
//! process (SQLite in a temporary directory, on 127.0.0.1; or `--replicas N` processes on a
//! PostgreSQL, `--database`, with the agents split among them) and N simulated agents in this
//! process (real WebSockets speaking the agent protocol, capturing nothing). Per round: create
//! a capture on every agent, time each agent's `assign` from just before the request, and the
//! moment the API shows every part running; then stop it and time each `stop` and the moment
//! the capture is `success`. The server's CPU time over the rounds comes from
//! `/proc/<pid>/stat`, its peak memory from `VmHWM` in `/proc/<pid>/status` (reset before
//! each size's full and look-back rounds, so each peak is its own).
//!
//! With `--simple`, each size also gets look-back (`type: simple`) rounds on the same fleet,
//! whose rings answer with synthetic samples (`simple.rs`).

mod lab;
pub(crate) mod report;
mod simple;
// Also drives `bench agent-memory`'s server.
pub(crate) mod server;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use edgecap_server::sim::{self, Script, Seen, Sent, SimAgent};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::api::Api;
use crate::exit::Failure;
use report::{Row, header, ms, table, targets};
use server::{Server, Workdir, run_edgecap};

#[derive(Debug, clap::Args)]
pub struct BenchDispatchArgs {
    /// Fleet sizes to measure, smallest first; agents are added between sizes.
    #[arg(long, value_delimiter = ',', default_value = "100,1000")]
    pub agents: Vec<usize>,
    /// Captures created and stopped per fleet size.
    #[arg(long, default_value_t = 10)]
    pub rounds: usize,
    /// Also run real agents (`edgecap agent --netns`) in a lab of this many edge namespaces
    /// and time create -> running and stop -> done through the capture engine (needs root).
    #[arg(long, default_value_t = 0)]
    pub lab_edges: usize,
    /// Write the markdown table here as well as to stdout.
    #[arg(long)]
    pub markdown: Option<PathBuf>,
    /// Server processes (replicas) on one database: agents are split among them, each round
    /// creates through one replica and stops through the next (more than one needs
    /// `--database`, a PostgreSQL).
    #[arg(long, default_value_t = 1)]
    pub replicas: usize,
    /// The servers' database (`postgres://...`); default: SQLite in a temporary directory.
    #[arg(long)]
    pub database: Option<String>,
    /// Also time look-back (`type: simple`) captures on the same fleet, `--rounds` per size,
    /// each node's ring answering with `--samples-per-node` synthetic samples (one replica).
    #[arg(long)]
    pub simple: bool,
    /// Samples each simulated node's ring answers a look-back query with.
    #[arg(long, default_value_t = 16)]
    pub samples_per_node: usize,
    /// The look-back captures' `packet_limit` (the file holds at most this many samples).
    #[arg(long, default_value_t = 10_000)]
    pub simple_packet_limit: u64,
}

/// Most samples one simulated node may answer with (`--samples-per-node`).
const MAX_SAMPLES_PER_NODE: usize = 1_000;

/// Most replicas one run may start.
const MAX_REPLICAS: usize = 8;

/// Most simulated agents one run may start.
const MAX_AGENTS: usize = 5000;
/// How long one round may wait for every agent (a bound on the run, not a target).
const ROUND_LIMIT: Duration = Duration::from_secs(60);
/// How often a simulated agent sends a heartbeat (and, scripted, its rollups).
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(2);
/// Agents dialled at once while the fleet grows.
const DIAL_BATCH: usize = 100;
/// File descriptors kept for everything else: the database, the HTTP client, stdio.
const SPARE_FDS: u64 = 64;

pub fn run(a: &BenchDispatchArgs) -> Result<(), Failure> {
    let sizes = check(a)?;
    let work = Workdir::new()?;
    let db: Vec<&str> = match &a.database {
        Some(url) => vec!["--database", url],
        None => Vec::new(),
    };
    let admin = |args: &[&str]| -> Result<String, Failure> {
        let mut all = vec!["admin", "--data-dir", work.dir()];
        all.extend_from_slice(&db);
        all.extend_from_slice(args);
        run_edgecap(&all)
    };
    let account = admin(&["account", "create", "--name", "bench", "--unrestricted"])?;
    // Rounds create captures back to back: the account's quotas must not be what is measured.
    admin(&[
        "account",
        "quota",
        "set",
        &account,
        "--running",
        "1000",
        "--per-hour",
        "1000000",
        "--bytes-per-day",
        "1000000000000000",
    ])?;
    let token = admin(&["token", "create", "--account", &account])?;
    // Look-back rounds: an account each (see simple.rs), made before the server starts.
    let mut simple_accounts = Vec::new();
    if a.simple {
        for k in 0..sizes.len() * a.rounds {
            let id = admin(&[
                "account",
                "create",
                "--name",
                &format!("bench-simple-{k}"),
                "--unrestricted",
            ])?;
            let token = admin(&["token", "create", "--account", &id])?;
            simple_accounts.push((id, token));
        }
    }
    let agent_token = admin(&["agent-token", "create"])?;
    // The rounds' file destinations (the simulated nodes' and the lab's) are the operator's
    // file roots.
    let lab_dest = work.0.join("captures").display().to_string();
    let mut flags = vec!["--file-root", SIM_DEST, "--file-root", &lab_dest];
    flags.extend_from_slice(&db);
    // Replicas share the data directory (its secrets key) and the database.
    let mut servers = Vec::new();
    for _ in 0..a.replicas {
        let server = Server::start_with(work.dir(), &flags)?;
        eprintln!("server pid {} at {}", server.pid(), server.url);
        servers.push(server);
    }
    let urls: Vec<String> = servers.iter().map(|s| s.url.clone()).collect();
    let cpu =
        |servers: &[Server]| -> Result<Duration, Failure> { servers.iter().map(Server::cpu).sum() };
    let rows = crate::api::runtime(None)?.block_on(async {
        let apis = urls
            .iter()
            .map(|u| Api::new(u, &account, token.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        let api = &apis[0];
        let simple_apis = simple_accounts
            .iter()
            .map(|(id, token)| Api::new(&urls[0], id, token.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        let (seen_tx, mut seen) = mpsc::unbounded_channel();
        let sent = Arc::new(Sent::default());
        let script = |i: usize| -> Result<Script, Failure> {
            match a.simple {
                true => simple::script(i, a.samples_per_node, sent.clone()),
                false => Ok(Script::default()),
            }
        };
        let mut fleet = 0usize;
        let mut rows = Vec::new();
        let mut simple_rows = Vec::new();
        for (size, &n) in sizes.iter().enumerate() {
            // The agents run until the runtime ends.
            grow(&urls, &agent_token, (fleet, n), "sim", &seen_tx, &script).await?;
            fleet = n;
            for api in &apis {
                wait_connected(api, n).await?;
            }
            for s in &servers {
                s.reset_peak();
            }
            let cpu_before = cpu(&servers)?;
            let mut m = Measured::default();
            for round in 0..a.rounds {
                let (create, stop) = (&apis[round % apis.len()], &apis[(round + 1) % apis.len()]);
                one_round(create, stop, n, &mut seen, &mut m).await?;
                eprintln!(
                    "  N={n} round {}/{}: all assigned {:.1} ms, all stopped {:.1} ms",
                    round + 1,
                    a.rounds,
                    ms(m.all_assigned[round]),
                    ms(m.all_stopped[round])
                );
            }
            let cpu = cpu(&servers)? - cpu_before;
            let mut hwm_kib = 0;
            for s in &servers {
                hwm_kib = hwm_kib.max(s.peak_kib()?);
            }
            rows.push(Row {
                agents: n,
                rounds: a.rounds,
                m,
                cpu,
                hwm_kib,
            });
            if a.simple {
                // One replica (checked): its peak and CPU are the look-back rounds' own.
                let server = &servers[0];
                server.reset_peak();
                let cpu_before = server.cpu()?;
                let mut m = simple::SimpleMeasured::default();
                for round in 0..a.rounds {
                    let api = &simple_apis[size * a.rounds + round];
                    simple::round(
                        api,
                        n,
                        a.samples_per_node,
                        a.simple_packet_limit,
                        &sent,
                        &mut m,
                    )
                    .await?;
                    eprintln!(
                        "  N={n} look-back round {}/{}: create -> success {:.1} ms, {} packets",
                        round + 1,
                        a.rounds,
                        ms(m.created[round]),
                        m.file_packets[round]
                    );
                }
                simple_rows.push(report::SimpleRow {
                    agents: n,
                    rounds: a.rounds,
                    cpu: server.cpu()? - cpu_before,
                    hwm_kib: server.peak_kib()?,
                    m,
                });
            }
        }
        let lab = match a.lab_edges {
            0 => None,
            n => {
                let dest = work.0.join("captures");
                std::fs::create_dir_all(&dest)
                    .map_err(|e| Failure::runtime(format!("creating {}: {e}", dest.display())))?;
                let dest = dest.display().to_string();
                Some(lab::rounds(api, &urls[0], &agent_token, n, a.rounds, &dest).await?)
            }
        };
        Ok::<_, Failure>((rows, simple_rows, lab))
    })?;
    let (rows, simple_rows, lab) = rows;
    for s in &mut servers {
        s.stop();
    }
    let mut md = format!("{}\n{}\n{}", header(a), table(&rows), targets(&rows));
    if !simple_rows.is_empty() {
        md.push_str(&format!(
            "\n{}",
            report::simple_table(a, &rows, &simple_rows)
        ));
    }
    if let Some(lab) = &lab {
        md.push_str(&format!("\n{}", report::lab_table(lab)));
    }
    crate::publish(&md, a.markdown.as_deref())
}

fn check(a: &BenchDispatchArgs) -> Result<Vec<usize>, Failure> {
    let mut sizes = a.agents.clone();
    if sizes.is_empty() || sizes.iter().any(|&n| n == 0 || n > MAX_AGENTS) {
        return Err(Failure::usage(format!(
            "--agents: give fleet sizes in 1..={MAX_AGENTS}, e.g. 100,1000"
        )));
    }
    if !(1..=100).contains(&a.rounds) {
        return Err(Failure::usage(format!(
            "--rounds: {} is outside 1-100",
            a.rounds
        )));
    }
    if !(1..=MAX_REPLICAS).contains(&a.replicas) {
        return Err(Failure::usage(format!(
            "--replicas: {} is outside 1-{MAX_REPLICAS}",
            a.replicas
        )));
    }
    let postgres = a
        .database
        .as_deref()
        .is_some_and(|u| u.starts_with("postgres://") || u.starts_with("postgresql://"));
    if a.replicas > 1 && !postgres {
        return Err(Failure::usage(
            "--replicas: several replicas share a PostgreSQL; give --database postgres://...",
        ));
    }
    if a.simple && a.replicas > 1 {
        return Err(Failure::usage(
            "--simple: look-back rounds across replicas (relayed through PostgreSQL) are not \
             measured by this benchmark yet; run it with --replicas 1",
        ));
    }
    if !(1..=MAX_SAMPLES_PER_NODE).contains(&a.samples_per_node) {
        return Err(Failure::usage(format!(
            "--samples-per-node: {} is outside 1-{MAX_SAMPLES_PER_NODE}",
            a.samples_per_node
        )));
    }
    if !(1..=edgecap_model::lookback::MAX_QUERY_SAMPLES).contains(&a.simple_packet_limit) {
        return Err(Failure::usage(format!(
            "--simple-packet-limit: {} is outside 1-{}",
            a.simple_packet_limit,
            edgecap_model::lookback::MAX_QUERY_SAMPLES
        )));
    }
    if a.lab_edges > edgecap_lab::plan::MAX_EDGES {
        return Err(Failure::usage(format!(
            "--lab-edges: {} is more than a lab has ({})",
            a.lab_edges,
            edgecap_lab::plan::MAX_EDGES
        )));
    }
    sizes.sort_unstable();
    sizes.dedup();
    let need = sizes[sizes.len() - 1] as u64 + SPARE_FDS;
    // Both this process (one socket per agent) and the server (one per agent, inherited
    // limit) need a descriptor per agent.
    match open_files_limit() {
        Some(limit) if limit < need => Err(Failure::usage(format!(
            "--agents: {} agents need {need} open files per process, the limit is {limit} \
             (raise it: ulimit -n {need})",
            sizes[sizes.len() - 1]
        ))),
        _ => Ok(sizes),
    }
}

/// The soft RLIMIT_NOFILE, from `/proc/self/limits`.
pub(crate) fn open_files_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Dials agents `from..to` (in batches, agent `i` to server `i % urls.len()`) and leaves
/// each running [`sim::respond_with`] its `script(i)`, named `<prefix><i>` (five digits); the
/// agents' tasks (aborting one drops its connection).
pub(crate) async fn grow(
    urls: &[String],
    token: &str,
    range: (usize, usize),
    prefix: &str,
    seen: &mpsc::UnboundedSender<Seen>,
    script: &dyn Fn(usize) -> Result<Script, Failure>,
) -> Result<Vec<tokio::task::JoinHandle<()>>, Failure> {
    let name = |i: usize| format!("{prefix}{i:05}");
    grow_named(urls, token, range, &name, seen, script).await
}

/// [`grow`], agent `i` named `name(i)`.
pub(crate) async fn grow_named(
    urls: &[String],
    token: &str,
    (from, to): (usize, usize),
    name: &(dyn Fn(usize) -> String + Sync),
    seen: &mpsc::UnboundedSender<Seen>,
    script: &dyn Fn(usize) -> Result<Script, Failure>,
) -> Result<Vec<tokio::task::JoinHandle<()>>, Failure> {
    eprintln!("connecting agents {from}..{to} ...");
    let mut next = from;
    let mut tasks = Vec::with_capacity(to - from);
    while next < to {
        let end = (next + DIAL_BATCH).min(to);
        let mut dials = Vec::new();
        for i in next..end {
            let (url, token, name) = (urls[i % urls.len()].clone(), token.to_owned(), name(i));
            dials.push(tokio::spawn(async move {
                let hello = sim::hello(&name, &[("site", "bench")], &["pre-firewall"]);
                SimAgent::connect(&url, &token, &hello).await
            }));
        }
        let mut agents = Vec::with_capacity(dials.len());
        for d in dials {
            let (agent, first) = d
                .await
                .map_err(|e| Failure::runtime(format!("dial task: {e}")))?
                .map_err(|e| Failure::runtime(format!("simulated agent: {e}")))?;
            if !matches!(first, edgecap_model::ServerMsg::Welcome { .. }) {
                return Err(Failure::runtime(format!("agent not welcomed: {first:?}")));
            }
            agents.push(agent);
        }
        for (i, agent) in (next..end).zip(agents) {
            let script = script(i)?;
            tasks.push(tokio::spawn(sim::respond_with(
                agent,
                HEARTBEAT,
                seen.clone(),
                script,
            )));
        }
        next = end;
    }
    Ok(tasks)
}

pub(crate) async fn wait_connected(api: &Api, n: usize) -> Result<(), Failure> {
    let until = Instant::now() + ROUND_LIMIT;
    loop {
        let nodes = api.call(reqwest::Method::GET, "nodes", None).await?;
        let connected = nodes
            .as_array()
            .map_or(0, |a| a.iter().filter(|n| n["connected"] == true).count());
        if connected >= n {
            return Ok(());
        }
        if Instant::now() > until {
            return Err(Failure::runtime(format!(
                "only {connected} of {n} agents connected"
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Latencies gathered over the rounds of one fleet size.
#[derive(Debug, Default)]
pub struct Measured {
    /// Create request sent -> each agent read its `assign` (one sample per agent and round).
    pub assign: Vec<Duration>,
    /// Per round: create -> the last agent's `assign`.
    pub all_assigned: Vec<Duration>,
    /// Per round: create -> the API shows every part running (all acks recorded).
    pub all_running: Vec<Duration>,
    /// Stop request sent -> each agent read its `stop`.
    pub stop: Vec<Duration>,
    /// Per round: stop -> the last agent's `stop`.
    pub all_stopped: Vec<Duration>,
    /// Per round: stop -> the API shows the capture `success` (every `done` recorded).
    pub all_done: Vec<Duration>,
}

/// The simulated nodes' destination directory (they write nothing).
const SIM_DEST: &str = "/var/lib/edgecap/captures";

/// One capture on every agent, created through `api` and stopped through `stop_api` (another
/// replica, when there are several).
async fn one_round(
    api: &Api,
    stop_api: &Api,
    n: usize,
    seen: &mut mpsc::UnboundedReceiver<Seen>,
    m: &mut Measured,
) -> Result<(), Failure> {
    let body = json!({
        "type": "full", "system": "magic-transit", "time_limit": 300,
        "nodes": ["site=bench"], "destination_conf": format!("file://{SIM_DEST}"),
        "filter_v1": {"protocol": 17, "destination_port": 53},
    });
    let t0 = Instant::now();
    let created = api.call(reqwest::Method::POST, "pcaps", Some(body)).await?;
    let id = created["id"].as_str().unwrap_or_default().to_owned();
    let assigned = collect(seen, &id, n, true).await?;
    m.all_assigned.push(latest(&assigned, t0));
    m.assign
        .extend(assigned.iter().map(|t| t.duration_since(t0)));
    m.all_running.push(
        until(api, &id, t0, |c| {
            c["node_results"]
                .as_array()
                .is_some_and(|p| p.iter().all(|p| p["status"] == "running"))
        })
        .await?,
    );
    let t1 = Instant::now();
    stop_api
        .call(reqwest::Method::PUT, &format!("pcaps/{id}/stop"), None)
        .await?;
    let stopped = collect(seen, &id, n, false).await?;
    m.all_stopped.push(latest(&stopped, t1));
    m.stop.extend(stopped.iter().map(|t| t.duration_since(t1)));
    m.all_done
        .push(until(api, &id, t1, |c| c["status"] == "success").await?);
    Ok(())
}

fn latest(times: &[Instant], from: Instant) -> Duration {
    times
        .iter()
        .map(|t| t.duration_since(from))
        .max()
        .unwrap_or_default()
}

/// The arrival times of `n` assigns (or stops) of capture `id`.
async fn collect(
    seen: &mut mpsc::UnboundedReceiver<Seen>,
    id: &str,
    n: usize,
    assigns: bool,
) -> Result<Vec<Instant>, Failure> {
    let mut times = Vec::with_capacity(n);
    let deadline = tokio::time::Instant::now() + ROUND_LIMIT;
    while times.len() < n {
        let msg = tokio::time::timeout_at(deadline, seen.recv())
            .await
            .map_err(|_| {
                Failure::runtime(format!(
                    "only {} of {n} agents got the {} within {ROUND_LIMIT:?}",
                    times.len(),
                    if assigns { "assign" } else { "stop" }
                ))
            })?;
        match msg {
            Some(Seen::Assigned { capture_id, at }) if assigns && capture_id == id => {
                times.push(at)
            }
            Some(Seen::Stopped { capture_id, at }) if !assigns && capture_id == id => {
                times.push(at)
            }
            Some(Seen::Closed) | None => {
                return Err(Failure::runtime("a simulated agent lost its connection"));
            }
            Some(_) => {}
        }
    }
    Ok(times)
}

/// Polls the capture until `done`; the time from `from`.
async fn until(
    api: &Api,
    id: &str,
    from: Instant,
    done: impl Fn(&Value) -> bool,
) -> Result<Duration, Failure> {
    loop {
        let c = api
            .call(reqwest::Method::GET, &format!("pcaps/{id}"), None)
            .await?;
        if done(&c) {
            return Ok(from.elapsed());
        }
        if c["status"] == "failed" {
            return Err(Failure::runtime(format!(
                "capture {id} failed: {}",
                c["error_message"]
            )));
        }
        if from.elapsed() > ROUND_LIMIT {
            return Err(Failure::runtime(format!(
                "capture {id} did not get there: {}",
                c["status"]
            )));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_checked() {
        let a = |agents: Vec<usize>, rounds| BenchDispatchArgs {
            agents,
            rounds,
            lab_edges: 0,
            markdown: None,
            replicas: 1,
            database: None,
            simple: false,
            samples_per_node: 16,
            simple_packet_limit: 10_000,
        };
        assert!(check(&a(vec![0], 3)).is_err());
        let two = BenchDispatchArgs {
            replicas: 2,
            ..a(vec![10], 3)
        };
        assert!(check(&two).unwrap_err().message.contains("--database"));
        let pg = BenchDispatchArgs {
            database: Some("postgres://u@127.0.0.1/db".into()),
            ..two
        };
        assert!(check(&pg).is_ok());
        assert!(check(&a(vec![10], 0)).is_err());
        let simple = |replicas, samples_per_node, simple_packet_limit| BenchDispatchArgs {
            simple: true,
            replicas,
            samples_per_node,
            simple_packet_limit,
            database: Some("postgres://u@127.0.0.1/db".into()),
            ..a(vec![10], 3)
        };
        assert!(check(&simple(1, 16, 10_000)).is_ok());
        assert!(
            check(&simple(2, 16, 10_000))
                .unwrap_err()
                .message
                .contains("--simple")
        );
        assert!(
            check(&simple(1, 0, 10_000))
                .unwrap_err()
                .message
                .contains("--samples-per-node")
        );
        assert!(
            check(&simple(1, 16, 0))
                .unwrap_err()
                .message
                .contains("--simple-packet-limit")
        );
        assert_eq!(check(&a(vec![20, 10, 10], 3)).unwrap(), [10, 20]);
        assert!(open_files_limit().is_some());
    }
}
