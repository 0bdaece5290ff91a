//! `edgecap bench dispatch`: how fast one request reaches many nodes. A real `edgecap server`
//! process (SQLite in a temporary directory, on 127.0.0.1) and N simulated agents in this
//! process (real WebSockets speaking the agent protocol, capturing nothing). Per round: create
//! a capture on every agent, time each agent's `assign` from just before the request, and the
//! moment the API shows every part running; then stop it and time each `stop` and the moment
//! the capture is `success`. The server's CPU time over the rounds comes from
//! `/proc/<pid>/stat`, its peak memory from `VmHWM` in `/proc/<pid>/status`.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use edgecap_server::sim::{self, Seen, SimAgent};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::exit::Failure;

#[derive(Debug, clap::Args)]
pub struct BenchDispatchArgs {
    /// Fleet sizes to measure, smallest first; agents are added between sizes.
    #[arg(long, value_delimiter = ',', default_value = "100,1000")]
    pub agents: Vec<usize>,
    /// Captures created and stopped per fleet size.
    #[arg(long, default_value_t = 10)]
    pub rounds: usize,
    /// Write the markdown table here as well as to stdout.
    #[arg(long)]
    pub markdown: Option<PathBuf>,
}

/// Most simulated agents one run may start.
const MAX_AGENTS: usize = 5000;
/// How long one round may wait for every agent (a bound on the run, not a target).
const ROUND_LIMIT: Duration = Duration::from_secs(60);
/// Agents dialled at once while the fleet grows.
const DIAL_BATCH: usize = 100;
/// File descriptors kept for everything else: the database, the HTTP client, stdio.
const SPARE_FDS: u64 = 64;

pub fn run(a: &BenchDispatchArgs) -> Result<(), Failure> {
    let sizes = check(a)?;
    let work = Workdir::new()?;
    let admin = |args: &[&str]| -> Result<String, Failure> {
        let mut all = vec!["admin", "--data-dir", work.dir()];
        all.extend_from_slice(args);
        run_edgecap(&all)
    };
    let account = admin(&["account", "create", "--name", "bench"])?;
    let token = admin(&["token", "create", "--account", &account])?;
    let agent_token = admin(&["agent-token", "create"])?;
    let mut server = Server::start(work.dir())?;
    eprintln!("server pid {} at {}", server.pid(), server.url);
    let rows = crate::server_cmd::runtime()?.block_on(async {
        crate::client::install_tls_provider();
        let api = Api {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .map_err(|e| Failure::runtime(format!("HTTP client: {e}")))?,
            base: format!("{}/client/v4/accounts/{account}", server.url),
            token,
        };
        let (seen_tx, mut seen) = mpsc::unbounded_channel();
        let mut fleet = 0usize;
        let mut rows = Vec::new();
        for &n in &sizes {
            grow(&server.url, &agent_token, fleet, n, &seen_tx).await?;
            fleet = n;
            wait_connected(&api, n).await?;
            let cpu_before = server.cpu()?;
            let mut m = Measured::default();
            for round in 0..a.rounds {
                one_round(&api, n, &mut seen, &mut m).await?;
                eprintln!(
                    "  N={n} round {}/{}: all assigned {:.1} ms, all stopped {:.1} ms",
                    round + 1,
                    a.rounds,
                    ms(m.all_assigned[round]),
                    ms(m.all_stopped[round])
                );
            }
            let cpu = server.cpu()? - cpu_before;
            rows.push(Row {
                agents: n,
                rounds: a.rounds,
                m,
                cpu,
                hwm_kib: server.peak_kib()?,
            });
        }
        Ok::<_, Failure>(rows)
    })?;
    server.stop();
    let md = format!("{}\n{}\n{}", header(a), table(&rows), targets(&rows));
    print!("{md}");
    if let Some(p) = &a.markdown {
        std::fs::write(p, &md)
            .map_err(|e| Failure::runtime(format!("--markdown: writing {}: {e}", p.display())))?;
    }
    Ok(())
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
fn open_files_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Dials agents `from..to` (in batches) and leaves each running [`sim::respond`].
async fn grow(
    url: &str,
    token: &str,
    from: usize,
    to: usize,
    seen: &mpsc::UnboundedSender<Seen>,
) -> Result<(), Failure> {
    eprintln!("connecting agents {from}..{to} ...");
    let mut next = from;
    while next < to {
        let end = (next + DIAL_BATCH).min(to);
        let mut dials = Vec::new();
        for i in next..end {
            let (url, token) = (url.to_owned(), token.to_owned());
            dials.push(tokio::spawn(async move {
                let hello = sim::hello(
                    &format!("sim{i:05}"),
                    &[("site", "bench")],
                    &["pre-firewall"],
                );
                SimAgent::connect(&url, &token, &hello).await
            }));
        }
        for d in dials {
            let (agent, first) = d
                .await
                .map_err(|e| Failure::runtime(format!("dial task: {e}")))?
                .map_err(|e| Failure::runtime(format!("simulated agent: {e}")))?;
            if !matches!(first, edgecap_model::ServerMsg::Welcome { .. }) {
                return Err(Failure::runtime(format!("agent not welcomed: {first:?}")));
            }
            tokio::spawn(sim::respond(agent, Duration::from_secs(2), seen.clone()));
        }
        next = end;
    }
    Ok(())
}

struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    async fn call(
        &self,
        method: reqwest::Method,
        rest: &str,
        body: Option<Value>,
    ) -> Result<Value, Failure> {
        let mut req = self
            .http
            .request(method, format!("{}/{rest}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| Failure::runtime(format!("API: {e}")))?;
        let status = resp.status();
        let v: Value = resp
            .json()
            .await
            .map_err(|e| Failure::runtime(format!("API answer: {e}")))?;
        if !status.is_success() {
            return Err(Failure::runtime(format!("API {status}: {}", v["errors"])));
        }
        Ok(v["result"].clone())
    }
}

async fn wait_connected(api: &Api, n: usize) -> Result<(), Failure> {
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
struct Measured {
    /// Create request sent -> each agent read its `assign` (one sample per agent and round).
    assign: Vec<Duration>,
    /// Per round: create -> the last agent's `assign`.
    all_assigned: Vec<Duration>,
    /// Per round: create -> the API shows every part running (all acks recorded).
    all_running: Vec<Duration>,
    /// Stop request sent -> each agent read its `stop`.
    stop: Vec<Duration>,
    /// Per round: stop -> the last agent's `stop`.
    all_stopped: Vec<Duration>,
    /// Per round: stop -> the API shows the capture `success` (every `done` recorded).
    all_done: Vec<Duration>,
}

async fn one_round(
    api: &Api,
    n: usize,
    seen: &mut mpsc::UnboundedReceiver<Seen>,
    m: &mut Measured,
) -> Result<(), Failure> {
    let body = json!({
        "type": "full", "system": "magic-transit", "time_limit": 300,
        "nodes": ["site=bench"], "destination_conf": "file:///var/lib/edgecap/captures",
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
    api.call(reqwest::Method::PUT, &format!("pcaps/{id}/stop"), None)
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
        if from.elapsed() > ROUND_LIMIT {
            return Err(Failure::runtime(format!(
                "capture {id} did not get there: {}",
                c["status"]
            )));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

struct Row {
    agents: usize,
    rounds: usize,
    m: Measured,
    cpu: Duration,
    hwm_kib: u64,
}

fn pct(v: &[Duration], p: f64) -> Duration {
    let mut s = v.to_vec();
    s.sort_unstable();
    if s.is_empty() {
        return Duration::ZERO;
    }
    let i = ((s.len() as f64 * p).ceil() as usize).clamp(1, s.len()) - 1;
    s[i]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn table(rows: &[Row]) -> String {
    let mut t = String::from(
        "| agents | rounds | create -> assign p50 | p99 | all assigned (max) | all running in API (p50) | stop -> agent p50 | p99 | all stopped (max) | all done in API (p50) | server CPU per round | server peak RSS |\n\
         | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for r in rows {
        let max = |v: &[Duration]| v.iter().max().copied().unwrap_or_default();
        t.push_str(&format!(
            "| {} | {} | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | {:.0} ms | {:.1} MiB |\n",
            r.agents,
            r.rounds,
            ms(pct(&r.m.assign, 0.5)),
            ms(pct(&r.m.assign, 0.99)),
            ms(max(&r.m.all_assigned)),
            ms(pct(&r.m.all_running, 0.5)),
            ms(pct(&r.m.stop, 0.5)),
            ms(pct(&r.m.stop, 0.99)),
            ms(max(&r.m.all_stopped)),
            ms(pct(&r.m.all_done, 0.5)),
            ms(r.cpu) / r.rounds as f64,
            r.hwm_kib as f64 / 1024.0,
        ));
    }
    t
}

fn targets(rows: &[Row]) -> String {
    let mut t = String::from("Targets (issue 4):\n\n");
    for r in rows {
        let p99 = pct(&r.m.assign, 0.99);
        let mib = r.hwm_kib as f64 / 1024.0;
        t.push_str(&format!(
            "- N = {}: create -> assign p99 {:.1} ms ({}), stop -> every agent {:.1} ms at most, server peak {mib:.1} MiB ({})\n",
            r.agents,
            ms(p99),
            if p99 < Duration::from_secs(1) { "under 1 s: met" } else { "NOT under 1 s" },
            ms(r.m.all_stopped.iter().max().copied().unwrap_or_default()),
            if mib < 200.0 { "under 200 MiB: met" } else { "NOT under 200 MiB" },
        ));
    }
    t
}

fn header(a: &BenchDispatchArgs) -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let args: Vec<String> = std::env::args().collect();
    format!(
        "Command: `{}`; {} rounds per fleet size; server: `edgecap server` on 127.0.0.1 with \
         SQLite; agents: simulated, in the benchmark's process (they share the machine with the \
         server).\nMachine: {cpus} CPUs, kernel {}.\n",
        args.join(" "),
        a.rounds,
        kernel.trim()
    )
}

/// Runs `edgecap <args>` (this executable) and returns its stdout.
fn run_edgecap(args: &[&str]) -> Result<String, Failure> {
    let exe = std::env::current_exe().map_err(|e| Failure::runtime(format!("own path: {e}")))?;
    let out = Command::new(exe)
        .args(args)
        .output()
        .map_err(|e| Failure::runtime(format!("edgecap {args:?}: {e}")))?;
    if !out.status.success() {
        return Err(Failure::runtime(format!(
            "edgecap {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The server process; killed when dropped.
struct Server {
    child: Option<Child>,
    url: String,
}

impl Server {
    fn start(dir: &str) -> Result<Server, Failure> {
        let exe =
            std::env::current_exe().map_err(|e| Failure::runtime(format!("own path: {e}")))?;
        let mut child = Command::new(exe)
            .args(["server", "--data-dir", dir, "--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| Failure::runtime(format!("starting edgecap server: {e}")))?;
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            let _ = BufReader::new(out).read_line(&mut line);
        }
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .map(str::to_owned);
        let mut server = Server {
            child: Some(child),
            url: String::new(),
        };
        server.url = url.ok_or_else(|| Failure::runtime(format!("server said {line:?}")))?;
        Ok(server)
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// User + system CPU time so far (`/proc/<pid>/stat`, in USER_HZ = 100 ticks a second).
    fn cpu(&self) -> Result<Duration, Failure> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))
            .map_err(|e| Failure::runtime(format!("server stat: {e}")))?;
        // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let f: Vec<u64> = rest
            .split_whitespace()
            .skip(11)
            .take(2)
            .filter_map(|v| v.parse().ok())
            .collect();
        Ok(Duration::from_millis(f.iter().sum::<u64>() * 10))
    }

    /// Peak resident memory (`VmHWM`), KiB.
    fn peak_kib(&self) -> Result<u64, Failure> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .map_err(|e| Failure::runtime(format!("server status: {e}")))?;
        status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| Failure::runtime("no VmHWM in the server's status"))
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SIGTERM: the server closes the agents' sessions and exits cleanly.
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let _ = c.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The temporary data directory, removed at drop.
struct Workdir(PathBuf);

impl Workdir {
    fn new() -> Result<Workdir, Failure> {
        let p = std::env::temp_dir().join(format!(
            "edgecap-bench-dispatch-{:016x}",
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&p)
            .map_err(|e| Failure::runtime(format!("creating {}: {e}", p.display())))?;
        Ok(Workdir(p))
    }
    fn dir(&self) -> &str {
        self.0.to_str().unwrap_or_default()
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(pct(&v, 0.5), Duration::from_millis(50));
        assert_eq!(pct(&v, 0.99), Duration::from_millis(99));
        assert_eq!(pct(&v[..1], 0.99), Duration::from_millis(1));
        assert_eq!(pct(&[], 0.5), Duration::ZERO);
    }

    #[test]
    fn flags_are_checked() {
        let a = |agents: Vec<usize>, rounds| BenchDispatchArgs {
            agents,
            rounds,
            markdown: None,
        };
        assert!(check(&a(vec![0], 3)).is_err());
        assert!(check(&a(vec![10], 0)).is_err());
        assert_eq!(check(&a(vec![20, 10, 10], 3)).unwrap(), [10, 20]);
        assert!(open_files_limit().is_some());
    }
}
