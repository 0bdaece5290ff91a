//! `edgecap bench rollups`: what the agents' traffic rollups cost the control plane. A real
//! `edgecap server` process per run (SQLite in a temporary directory, or a PostgreSQL: the
//! one `--postgres` names, else a throw-away one started for the run) and N simulated agents
//! in this process (`sim::respond_with`), each sending a heartbeat every 2 s followed by its
//! rollup seconds since the last one, as a real agent does: one row per second for every
//! point and for every account's own series (`traffic.rs`: the observer's roller on a
//! synthetic mix). Per database, two runs of `--seconds` each, rollups off (agents connected,
//! heartbeats only) then on. Measured: the server's CPU (user + system from
//! `/proc/<pid>/stat`) over the run, the seconds sent and the server's count of those stored,
//! dropped and refused (`/metrics`), and what the rollup tables take (`db.rs`) after the
//! downsampling job has taken the seconds into minutes.
//!
//! Seconds are stamped `SHIFT` in the past: the downsampling job takes a minute only once it
//! ended two minutes ago (late seconds), so with current stamps a short run would never see
//! one. The rows, their number and their content are the same.

mod db;
mod report;
pub(crate) mod traffic;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use edgecap_server::sim::{Script, Sent};
use tokio::sync::mpsc;

use crate::api::Api;
use crate::dispatch::server::{Server, Workdir, run_edgecap};
use crate::exit::Failure;
use db::Database;
use traffic::Traffic;

#[derive(Debug, clap::Args)]
pub struct BenchRollupsArgs {
    /// Simulated agents.
    #[arg(long, default_value_t = 1000)]
    pub agents: usize,
    /// Seconds each run measures (rollups off, then on), once every agent is connected.
    #[arg(long, default_value_t = 90)]
    pub seconds: u64,
    /// Databases to run on: sqlite, postgres.
    #[arg(long, value_delimiter = ',', default_value = "sqlite,postgres")]
    pub databases: Vec<String>,
    /// The PostgreSQL to use (`postgres://...`; both runs add accounts and nodes to it);
    /// default: a throw-away server for this run (initdb from /usr/lib/postgresql).
    #[arg(long)]
    pub postgres: Option<String>,
    /// Capture points per simulated node (each a series per second).
    #[arg(long, default_value_t = 2)]
    pub points: usize,
    /// Accounts whose own series every node sends beside its own, per point.
    #[arg(long, default_value_t = 1)]
    pub accounts: usize,
    /// Longest wait after a run with rollups for the downsampling job (every minute) to take
    /// every second into minutes; 0: do not wait (minutes are then not measured).
    #[arg(long, default_value_t = 150)]
    pub downsample_wait: u64,
    /// Write the markdown report here as well as to stdout.
    #[arg(long)]
    pub markdown: Option<PathBuf>,
}

/// Most simulated agents one run may start.
const MAX_AGENTS: usize = 5000;
/// Most accounts' series per node.
const MAX_ACCOUNTS: usize = 16;
/// Longest run.
const MAX_SECONDS: u64 = 3600;
/// How far in the past the seconds are stamped (see the module documentation).
const SHIFT: u64 = 600;
/// How long the server may take to store what was sent before the run is failed.
const DRAIN_LIMIT: Duration = Duration::from_secs(60);
/// Point names, in the order `--points` takes them.
const POINTS: [&str; 5] = [
    "pre-firewall",
    "post-firewall",
    "egress",
    "ingress",
    "post-mitigation",
];

/// One run's measurements.
#[derive(Debug, Clone, Default)]
pub struct Run {
    pub rollups: bool,
    pub database: &'static str,
    pub agents: usize,
    pub window: Duration,
    /// The server's CPU over the window.
    pub cpu: Duration,
    pub peak_kib: u64,
    /// Sent by the agents over the window / over the whole run.
    pub window_seconds: u64,
    pub sent_seconds: u64,
    pub sent_bytes: u64,
    /// The server's counts (`/metrics`) at the end.
    pub stored: u64,
    pub dropped: u64,
    pub refused: u64,
    /// The database before the window, at its end, and after the downsampling wait.
    pub before: db::Sizes,
    pub after: db::Sizes,
    pub downsampled: Option<db::Sizes>,
    /// How long the downsampling took to catch up (None: not waited for, or not done).
    pub downsample_took: Option<Duration>,
    pub rows_per_second: usize,
}

pub fn run(a: &BenchRollupsArgs) -> Result<(), Failure> {
    let databases = check(a)?;
    let points: Vec<String> = POINTS[..a.points].iter().map(|p| (*p).to_owned()).collect();
    let traffic = Arc::new(Traffic::new(&points)?);
    let mut runs = Vec::new();
    for which in &databases {
        for rollups in [false, true] {
            let pg_url = match which.as_str() {
                "postgres" => Some(postgres_url(a.postgres.as_deref())?),
                _ => None,
            };
            runs.push(one_run(a, &traffic, rollups, pg_url)?);
        }
    }
    let md = report::render(a, &runs);
    crate::publish(&md, a.markdown.as_deref())
}

fn check(a: &BenchRollupsArgs) -> Result<Vec<String>, Failure> {
    if !(1..=MAX_AGENTS).contains(&a.agents) {
        return Err(Failure::usage(format!(
            "--agents: {} is outside 1-{MAX_AGENTS}",
            a.agents
        )));
    }
    if !(1..=MAX_SECONDS).contains(&a.seconds) {
        return Err(Failure::usage(format!(
            "--seconds: {} is outside 1-{MAX_SECONDS}",
            a.seconds
        )));
    }
    if !(1..=POINTS.len()).contains(&a.points) {
        return Err(Failure::usage(format!(
            "--points: {} is outside 1-{}",
            a.points,
            POINTS.len()
        )));
    }
    if a.accounts > MAX_ACCOUNTS {
        return Err(Failure::usage(format!(
            "--accounts: {} is more than {MAX_ACCOUNTS}",
            a.accounts
        )));
    }
    if a.downsample_wait > MAX_SECONDS {
        return Err(Failure::usage(format!(
            "--downsample-wait: {} is more than {MAX_SECONDS}",
            a.downsample_wait
        )));
    }
    databases(
        &a.databases,
        a.postgres.as_deref(),
        a.agents as u64,
        "--agents",
    )
}

/// The databases a benchmark runs on (`--databases`: sqlite, postgres, each once), with
/// `--postgres` checked and the process's open-file limit checked for `fleet` agents (named
/// by `fleet_flag`): one owner for `bench rollups` and `bench dashboard`.
pub(crate) fn databases(
    databases: &[String],
    postgres: Option<&str>,
    fleet: u64,
    fleet_flag: &str,
) -> Result<Vec<String>, Failure> {
    let mut dbs = Vec::new();
    for d in databases {
        match d.as_str() {
            "sqlite" | "postgres" if !dbs.contains(d) => dbs.push(d.clone()),
            "sqlite" | "postgres" => {}
            other => {
                return Err(Failure::usage(format!(
                    "--databases: {other:?} is neither sqlite nor postgres"
                )));
            }
        }
    }
    if dbs.is_empty() {
        return Err(Failure::usage("--databases: give sqlite, postgres or both"));
    }
    if let Some(u) = postgres
        && !(u.starts_with("postgres://") || u.starts_with("postgresql://"))
    {
        return Err(Failure::usage("--postgres: give a postgres://... URL"));
    }
    let need = fleet + 64;
    match crate::dispatch::open_files_limit() {
        Some(limit) if limit < need => Err(Failure::usage(format!(
            "{fleet_flag}: {fleet} agents need {need} open files per process, the limit is \
             {limit} (raise it: ulimit -n {need})"
        ))),
        _ => Ok(dbs),
    }
}

/// `--postgres`, else a fresh database on a throw-away server (started once per process).
pub(crate) fn postgres_url(postgres: Option<&str>) -> Result<String, Failure> {
    if let Some(u) = postgres {
        return Ok(u.to_owned());
    }
    let pg = edgecap_testkit::pg::server().ok_or_else(|| {
        Failure::usage(
            "--databases postgres: PostgreSQL is not installed under /usr/lib/postgresql; \
             install it or give --postgres URL",
        )
    })?;
    Ok(pg.create_database())
}

/// One server, one fleet, one mode.
fn one_run(
    a: &BenchRollupsArgs,
    traffic: &Arc<Traffic>,
    rollups: bool,
    pg_url: Option<String>,
) -> Result<Run, Failure> {
    let work = Workdir::new()?;
    let mode = if rollups { "on" } else { "off" };
    let db_flags: Vec<String> = match &pg_url {
        Some(u) => vec!["--database".into(), u.clone()],
        None => Vec::new(),
    };
    let database = match &pg_url {
        Some(u) => Database::Postgres(u.clone()),
        None => Database::Sqlite(work.0.join("edgecap.db").display().to_string()),
    };
    let admin = |args: &[&str]| -> Result<String, Failure> {
        let mut all = vec!["admin", "--data-dir", work.dir()];
        all.extend(db_flags.iter().map(String::as_str));
        all.extend_from_slice(args);
        run_edgecap(&all)
    };
    // Names of this run's own: a shared PostgreSQL keeps the other run's.
    let suffix = format!("{mode}-{:08x}", rand::random::<u32>());
    let account = admin(&[
        "account",
        "create",
        "--name",
        &format!("bench-rollups-{suffix}"),
        "--unrestricted",
    ])?;
    let token = admin(&["token", "create", "--account", &account])?;
    let mut accounts = Vec::new();
    for k in 0..a.accounts {
        accounts.push(admin(&[
            "account",
            "create",
            "--name",
            &format!("bench-rollups-{suffix}-{k}"),
        ])?);
    }
    let agent_token = admin(&["agent-token", "create"])?;
    let flags: Vec<&str> = db_flags.iter().map(String::as_str).collect();
    let mut server = Server::start_with(work.dir(), &flags)?;
    eprintln!(
        "{} rollups {mode}: server pid {} at {}",
        database.name(),
        server.pid(),
        server.url
    );
    let url = server.url.clone();
    let sent = Arc::new(Sent::default());
    let accounts = Arc::new(accounts);
    let result = crate::api::runtime(None)?.block_on(async {
        let api = Api::new(&url, &account, token.clone())?;
        let (seen_tx, mut seen) = mpsc::unbounded_channel();
        // What the agents saw is not measured here; drain it.
        tokio::spawn(async move { while seen.recv().await.is_some() {} });
        let script = |i: usize| -> Result<Script, Failure> {
            let rollups = rollups.then(|| {
                let (traffic, accounts) = (traffic.clone(), accounts.clone());
                let f = move |from: u64, until: u64| {
                    traffic.node_seconds(i, (from, until), SHIFT, &accounts)
                };
                Arc::new(f) as Arc<edgecap_server::sim::RollupFn>
            });
            Ok(Script {
                ring: None,
                rollups,
                sent: sent.clone(),
            })
        };
        let prefix = format!("roll-{mode}-");
        eprintln!("connecting {} agents ...", a.agents);
        let tasks = crate::dispatch::grow(
            std::slice::from_ref(&url),
            &agent_token,
            (0, a.agents),
            &prefix,
            &seen_tx,
            &script,
        )
        .await?;
        crate::dispatch::wait_connected(&api, a.agents).await?;
        // One heartbeat period, so every agent is in its stride.
        tokio::time::sleep(crate::dispatch::HEARTBEAT).await;
        let before = db::sizes(&database)?;
        let seconds_before = Sent::get(&sent.rollup_seconds);
        let cpu_before = server.cpu()?;
        server.reset_peak();
        let t0 = Instant::now();
        tokio::time::sleep(Duration::from_secs(a.seconds)).await;
        let cpu = server.cpu()? - cpu_before;
        let window = t0.elapsed();
        let peak_kib = server.peak_kib()?;
        let window_seconds = Sent::get(&sent.rollup_seconds) - seconds_before;
        for t in &tasks {
            t.abort();
        }
        for t in tasks {
            let _ = t.await;
        }
        let sent_seconds = Sent::get(&sent.rollup_seconds);
        // Everything sent is stored, dropped or refused before the database is read.
        let until = Instant::now() + DRAIN_LIMIT;
        let counts = loop {
            let c = outcomes(&api.metrics().await?);
            if c.0 + c.1 + c.2 >= sent_seconds {
                break c;
            }
            if Instant::now() > until {
                return Err(Failure::runtime(format!(
                    "the server accounted for {} of {sent_seconds} rollup seconds within \
                     {DRAIN_LIMIT:?}",
                    c.0 + c.1 + c.2
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let after = db::sizes(&database)?;
        let (mut downsampled, mut downsample_took) = (None, None);
        if rollups && a.downsample_wait > 0 {
            let start = Instant::now();
            loop {
                let s = db::sizes(&database)?;
                if s.unrolled_rows == 0 && s.listed_rolled_rows == 0 {
                    downsample_took = Some(start.elapsed());
                    db::compact(&database)?;
                    downsampled = Some(db::sizes(&database)?);
                    break;
                }
                if start.elapsed() > Duration::from_secs(a.downsample_wait) {
                    eprintln!(
                        "note: {} seconds were still not downsampled after {} s",
                        s.unrolled_rows, a.downsample_wait
                    );
                    downsampled = Some(s);
                    break;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        Ok::<_, Failure>(Run {
            rollups,
            database: database.name(),
            agents: a.agents,
            window,
            cpu,
            peak_kib,
            window_seconds,
            sent_seconds,
            sent_bytes: Sent::get(&sent.rollup_bytes),
            stored: counts.0,
            dropped: counts.1,
            refused: counts.2,
            before,
            after,
            downsampled,
            downsample_took,
            rows_per_second: if rollups {
                traffic.rows_per_second(a.accounts)
            } else {
                0
            },
        })
    });
    server.stop();
    let run = result?;
    eprintln!(
        "  {} rollups {mode}: CPU {:.2} s over {:.1} s, {} seconds sent, {} stored, {} dropped, \
         {} refused",
        run.database,
        run.cpu.as_secs_f64(),
        run.window.as_secs_f64(),
        run.sent_seconds,
        run.stored,
        run.dropped,
        run.refused
    );
    Ok(run)
}

/// The server's rollup seconds (stored, dropped, refused) from its `/metrics` text.
pub(crate) fn outcomes(metrics: &str) -> (u64, u64, u64) {
    let get = |outcome: &str| {
        metrics
            .lines()
            .filter(|l| !l.starts_with('#') && l.contains("rollup_seconds"))
            .filter(|l| l.contains(&format!("outcome=\"{outcome}\"")))
            .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
            .map(|v| v as u64)
            .sum::<u64>()
    };
    (get("stored"), get("dropped"), get("refused"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_are_read_from_the_metrics_text() {
        let text = "# HELP edgecap_rollup_seconds Agents' rollup seconds.\n\
                    # TYPE edgecap_rollup_seconds counter\n\
                    edgecap_rollup_seconds_total{outcome=\"stored\"} 120\n\
                    edgecap_rollup_seconds_total{outcome=\"dropped\"} 3\n\
                    edgecap_rollup_seconds_total{outcome=\"refused\"} 0\n\
                    edgecap_agents 4\n";
        assert_eq!(outcomes(text), (120, 3, 0));
    }

    #[test]
    fn flags_are_checked() {
        let a = || BenchRollupsArgs {
            agents: 10,
            seconds: 5,
            databases: vec!["sqlite".into()],
            postgres: None,
            points: 2,
            accounts: 1,
            downsample_wait: 0,
            markdown: None,
        };
        assert_eq!(check(&a()).unwrap(), ["sqlite"]);
        let bad = |f: fn(&mut BenchRollupsArgs), flag: &str| {
            let mut x = a();
            f(&mut x);
            assert!(check(&x).unwrap_err().message.contains(flag), "{flag}");
        };
        bad(|x| x.agents = 0, "--agents");
        bad(|x| x.seconds = 0, "--seconds");
        bad(|x| x.points = 6, "--points");
        bad(|x| x.accounts = 17, "--accounts");
        bad(|x| x.databases = vec!["mysql".into()], "--databases");
        bad(|x| x.postgres = Some("mysql://x".into()), "--postgres");
    }
}
