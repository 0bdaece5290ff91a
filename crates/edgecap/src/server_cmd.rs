//! `edgecap server`: the control plane on a TCP port until SIGINT/SIGTERM. Also where the
//! database flags (`--database`, `--data-dir`) are resolved for `admin` and `up`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use edgecap_server::{AppState, Config};

use crate::exit::Failure;
use crate::out::outln;
use crate::units::parse_duration;

/// Where the state lives; shared by `server`, `admin` and `up`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct DbArgs {
    /// Database: a SQLite file (path or sqlite:///path/edgecap.db) or
    /// postgres://user@host:port/db [default: SQLite in --data-dir] [env: EDGECAP_DATABASE].
    #[arg(long)]
    pub database: Option<String>,
    /// Directory for the default SQLite database
    /// [default: $XDG_DATA_HOME/edgecap or ~/.local/share/edgecap; /var/lib/edgecap as root].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

impl DbArgs {
    /// The data directory (created by whoever writes to it).
    pub fn data_dir(&self) -> Result<PathBuf, Failure> {
        if let Some(d) = &self.data_dir {
            if d.as_os_str().is_empty() {
                return Err(Failure::usage("--data-dir: is empty"));
            }
            return Ok(d.clone());
        }
        if is_root() {
            return Ok(PathBuf::from("/var/lib/edgecap"));
        }
        std::env::var_os("XDG_DATA_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
            .map(|base| base.join("edgecap"))
            .ok_or_else(|| Failure::usage("--data-dir: no HOME to put it under; give one"))
    }

    /// The database URL: the flag, the environment, or SQLite in the data directory.
    pub fn url(&self) -> Result<String, Failure> {
        if let Some(url) = self
            .database
            .clone()
            .or_else(|| std::env::var("EDGECAP_DATABASE").ok())
        {
            // A plain path is a SQLite file.
            if !url.contains("://") && !url.starts_with("sqlite:") {
                if url.trim().is_empty() {
                    return Err(Failure::usage("--database: is empty"));
                }
                let path = std::path::absolute(&url)
                    .map_err(|e| Failure::usage(format!("--database: {e}")))?;
                return Ok(format!("sqlite://{}", path.display()));
            }
            return Ok(url);
        }
        Ok(format!(
            "sqlite://{}/edgecap.db",
            absolute(&self.data_dir()?)?.display()
        ))
    }

    /// Opens (and migrates) the database; a bad URL is bad input.
    pub async fn open(&self, config: Config) -> Result<AppState, Failure> {
        let url = self.url()?;
        AppState::open(&url, config).await.map_err(|e| match e {
            edgecap_server::Error::DatabaseUrl { .. } => Failure::usage(format!("--database: {e}")),
            other => Failure::runtime(format!("opening the database: {other}")),
        })
    }
}

fn absolute(p: &std::path::Path) -> Result<PathBuf, Failure> {
    std::path::absolute(p).map_err(|e| Failure::usage(format!("--data-dir: {e}")))
}

pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// How the control plane runs: address and protocol timings.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on. Without --tls-cert the API speaks plain HTTP: keep it on
    /// loopback or behind a TLS proxy. Port 0 picks a free port (printed at start).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Serve HTTPS and wss:// with this certificate chain (PEM: the server's certificate,
    /// then intermediates); needs --tls-key.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM: PKCS#8, PKCS#1 or SEC1) of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Accept agents over plain HTTP from non-loopback addresses: their token and the bucket
    /// credentials sent to them cross the network readable (warned about at every connect).
    #[arg(long)]
    pub insecure_plaintext: bool,
    /// How long a disconnected node may stay away before its running parts fail.
    #[arg(long, default_value = "10s")]
    pub grace: String,
    /// How long after its time limit (or a stop) a node may still report its part (keep it
    /// above the agents' --upload-retry-timeout).
    #[arg(long, default_value = "180s")]
    pub result_margin: String,
    /// How often agents send a heartbeat.
    #[arg(long, default_value = "2s")]
    pub heartbeat: String,
    /// The key file that seals per-bucket credentials given through the API (created, mode
    /// 0600, when missing). Replicas on one database need the same file
    /// [default: <data-dir>/secrets.key].
    #[arg(long)]
    pub secrets_key: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub outbound: OutboundArgs,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub rollups: RollupArgs,
}

impl ServeArgs {
    /// The listen address and the server settings; errors name the flag.
    pub fn resolve(&self) -> Result<(SocketAddr, Config), Failure> {
        let addr: SocketAddr = self.listen.trim().parse().map_err(|_| {
            Failure::usage(format!(
                "--listen: {:?} is not an address:port (e.g. 127.0.0.1:8080)",
                self.listen
            ))
        })?;
        let dur = |flag: &str, v: &str, min: Duration| {
            let d = parse_duration(v).map_err(|e| Failure::usage(format!("{flag}: {e}")))?;
            if d < min {
                return Err(Failure::usage(format!(
                    "{flag}: {v} is shorter than the minimum {min:?}"
                )));
            }
            Ok(d)
        };
        let heartbeat = dur("--heartbeat", &self.heartbeat, Duration::from_millis(100))?;
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(
                edgecap_tls::server_config(cert, key).map_err(|e| Failure::usage(e.to_string()))?,
            ),
            (None, None) => None,
            _ => {
                return Err(Failure::usage(
                    "--tls-cert and --tls-key: give both, or neither",
                ));
            }
        };
        let config = Config {
            tls,
            insecure_plaintext: self.insecure_plaintext,
            heartbeat,
            // Three missed heartbeats and a half: a slow agent is not a gone agent.
            heartbeat_timeout: heartbeat.mul_f64(3.5),
            grace: dur("--grace", &self.grace, Duration::from_millis(100))?,
            result_margin: dur(
                "--result-margin",
                &self.result_margin,
                Duration::from_secs(1),
            )?,
            endpoints: self.outbound.policy()?,
            ..Config::default()
        };
        Ok((addr, self.rollups.apply(self.limits.apply(config)?)?))
    }
}

/// How long traffic rollups are kept; unset flags keep [`Config`]'s defaults.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RollupArgs {
    /// How long the agents' per-second traffic rollups are kept; older ones live on as
    /// minutes (at least 10m) [default: 6h].
    #[arg(long)]
    pub rollup_fine_retention: Option<String>,
    /// How long per-minute traffic rollups are kept (at least the fine retention)
    /// [default: 30d].
    #[arg(long)]
    pub rollup_retention: Option<String>,
}

impl RollupArgs {
    /// `config` with the flags given; errors name the flag.
    pub fn apply(&self, mut config: Config) -> Result<Config, Failure> {
        let dur = |flag: &str, v: &str| {
            let d = parse_duration(v).map_err(|e| Failure::usage(format!("{flag}: {e}")))?;
            if d < Duration::from_secs(600) || d > Duration::from_secs(3650 * 86400) {
                return Err(Failure::usage(format!("{flag}: {v} is outside 10m-3650d")));
            }
            Ok(d)
        };
        if let Some(v) = &self.rollup_fine_retention {
            config.rollup_fine_retention = dur("--rollup-fine-retention", v)?;
        }
        if let Some(v) = &self.rollup_retention {
            config.rollup_retention = dur("--rollup-retention", v)?;
        }
        if config.rollup_retention < config.rollup_fine_retention {
            return Err(Failure::usage(format!(
                "--rollup-retention: {} is shorter than --rollup-fine-retention ({})",
                edgecap_server::clock::human(config.rollup_retention),
                edgecap_server::clock::human(config.rollup_fine_retention)
            )));
        }
        Ok(config)
    }
}

/// Request time and rate limits and the agent connections' bounds; unset flags keep
/// [`Config`]'s defaults (the one place they are written).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct LimitArgs {
    /// Longest an API request may take before it is answered 503 [default: 30s].
    #[arg(long)]
    pub request_timeout: Option<String>,
    /// Requests per second per API token; more get 429 with Retry-After [default: 50].
    #[arg(long)]
    pub token_rate: Option<u32>,
    /// Requests an API token may make at once above its rate [default: 1000].
    #[arg(long)]
    pub token_burst: Option<u32>,
    /// Failed authentications per minute per address (IPv6: per /64); past them and the
    /// burst, every request from the address gets 429 until the next one is allowed
    /// [default: 30].
    #[arg(long)]
    pub auth_failure_rate: Option<u32>,
    /// Failed authentications an address may make at once [default: 20].
    #[arg(long)]
    pub auth_failure_burst: Option<u32>,
    /// Messages per second per agent connection; a faster agent's session is closed and it
    /// reconnects after its backoff [default: 200].
    #[arg(long)]
    pub agent_msg_rate: Option<u32>,
    /// Messages an agent may send at once above its rate [default: 2000].
    #[arg(long)]
    pub agent_msg_burst: Option<u32>,
    /// Longest a message to an agent may take to send; a peer that does not read is
    /// disconnected [default: 10s].
    #[arg(long)]
    pub agent_write_timeout: Option<String>,
    /// Captures (nftables tables) one node may run at once, whatever the accounts; a create
    /// that would pass it on a selected node gets 429 naming the node [default: 16].
    #[arg(long)]
    pub max_captures_per_node: Option<usize>,
    /// Longest the server waits for a node's answer to a look-back query (size estimates);
    /// a slower node is named as not having answered [default: 3s].
    #[arg(long)]
    pub lookback_deadline: Option<String>,
    /// The recent window of each node's look-back ring a size estimate reads (`POST
    /// /pcaps/estimate`) [default: 60s].
    #[arg(long)]
    pub estimate_window: Option<String>,
    /// How long the file of a look-back (`type: simple`) capture is kept, sealed, for
    /// download (1m-30d) [default: 24h].
    #[arg(long)]
    pub sample_retention: Option<String>,
}

impl LimitArgs {
    /// `config` with the flags given; errors name the flag.
    pub fn apply(&self, mut config: Config) -> Result<Config, Failure> {
        use edgecap_server::config::Rate;
        let dur = |flag: &str, v: &str| {
            let d = parse_duration(v).map_err(|e| Failure::usage(format!("{flag}: {e}")))?;
            if d < Duration::from_millis(100) || d > Duration::from_secs(3600) {
                return Err(Failure::usage(format!("{flag}: {v} is outside 100ms-1h")));
            }
            Ok(d)
        };
        let count = |flag: &str, v: Option<u32>, default: f64| match v {
            Some(0) => Err(Failure::usage(format!("{flag}: must be at least 1"))),
            Some(n) => Ok(f64::from(n)),
            None => Ok(default),
        };
        if let Some(v) = &self.request_timeout {
            config.request_timeout = dur("--request-timeout", v)?;
        }
        if let Some(v) = &self.agent_write_timeout {
            config.agent_write_timeout = dur("--agent-write-timeout", v)?;
        }
        if let Some(v) = &self.lookback_deadline {
            config.lookback_deadline = dur("--lookback-deadline", v)?;
        }
        if let Some(v) = &self.estimate_window {
            config.estimate_window = dur("--estimate-window", v)?;
        }
        if let Some(v) = &self.sample_retention {
            let d = parse_duration(v)
                .map_err(|e| Failure::usage(format!("--sample-retention: {e}")))?;
            if d < Duration::from_secs(60) || d > Duration::from_secs(30 * 86_400) {
                return Err(Failure::usage(format!(
                    "--sample-retention: {v} is outside 1m-30d"
                )));
            }
            config.sample_retention = d;
        }
        let d = config.token_rate;
        config.token_rate = Rate {
            per_sec: count("--token-rate", self.token_rate, d.per_sec)?,
            burst: count("--token-burst", self.token_burst, d.burst)?,
        };
        let d = config.auth_failure_rate;
        config.auth_failure_rate = Rate {
            per_sec: count(
                "--auth-failure-rate",
                self.auth_failure_rate,
                d.per_sec * 60.0,
            )? / 60.0,
            burst: count("--auth-failure-burst", self.auth_failure_burst, d.burst)?,
        };
        let d = config.agent_msg_rate;
        config.agent_msg_rate = Rate {
            per_sec: count("--agent-msg-rate", self.agent_msg_rate, d.per_sec)?,
            burst: count("--agent-msg-burst", self.agent_msg_burst, d.burst)?,
        };
        match self.max_captures_per_node {
            Some(0) => {
                return Err(Failure::usage(
                    "--max-captures-per-node: must be at least 1",
                ));
            }
            Some(n) => config.max_captures_per_node = n,
            None => {}
        }
        Ok(config)
    }
}

impl ServeArgs {
    /// `https` with --tls-cert, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls_cert.is_some() {
            "https"
        } else {
            "http"
        }
    }
}

/// Where a destination may point: `--allow-endpoint` and `--file-root`, the same flags on
/// `edgecap server`, `edgecap agent` and `edgecap up`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct OutboundArgs {
    /// A store the operator allows as a destination's `endpoint=` although it speaks plain
    /// http or has a non-public address (loopback, private, link-local, ...), as
    /// HOST[:PORT]; repeat or separate with commas. Cloud metadata addresses are never
    /// allowed. Give the server and the agents the same list.
    #[arg(
        long = "allow-endpoint",
        value_name = "HOST[:PORT]",
        env = "EDGECAP_ALLOW_ENDPOINT"
    )]
    pub allow_endpoint: Vec<String>,
    /// A directory under which `file://` destinations may write (on the server: ownership
    /// challenges and merges; on a node: its files); repeat or separate with commas. Without
    /// one, file destinations are refused.
    #[arg(long = "file-root", value_name = "DIR", env = "EDGECAP_FILE_ROOT")]
    pub file_root: Vec<String>,
}

impl OutboundArgs {
    /// The endpoint policy these flags say; errors name the flag.
    pub fn policy(&self) -> Result<edgecap_store::EndpointPolicy, Failure> {
        let roots = edgecap_store::FileRoots::from_flags(&self.file_root, "--file-root")
            .map_err(|e| Failure::usage(e.to_string()))?;
        Ok(
            edgecap_store::EndpointPolicy::from_flags(&self.allow_endpoint, "--allow-endpoint")
                .map_err(|e| Failure::usage(e.to_string()))?
                .with_file_roots(roots),
        )
    }
}

/// `edgecap server` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub serve: ServeArgs,
    #[command(flatten)]
    pub metrics: crate::observe::MetricsArgs,
    #[command(flatten)]
    pub log: crate::observe::LogArgs,
}

/// Where the secrets key lives: `--secrets-key`, else `<data-dir>/secrets.key`; its
/// directory is created, so the key can be.
pub fn secrets_key(serve: &ServeArgs, db: &DbArgs) -> Result<std::path::PathBuf, Failure> {
    secrets_key_at(serve.secrets_key.as_deref(), db)
}

/// [`secrets_key`] from the flag's value (also `edgecap admin secrets-key --secrets-key`).
pub fn secrets_key_at(
    flag: Option<&std::path::Path>,
    db: &DbArgs,
) -> Result<std::path::PathBuf, Failure> {
    let path = match flag {
        Some(p) => {
            std::path::absolute(p).map_err(|e| Failure::usage(format!("--secrets-key: {e}")))?
        }
        None => absolute(&db.data_dir()?)?.join("secrets.key"),
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| {
            Failure::usage(format!(
                "--secrets-key: cannot create {}: {e}",
                dir.display()
            ))
        })?;
    }
    Ok(path)
}

/// Opens the database and loads (or creates) the secrets key: a key file that cannot be
/// used stops the server now, not at the first bucket with credentials.
pub async fn open_state(
    serve: &ServeArgs,
    db: &DbArgs,
    mut config: Config,
) -> Result<AppState, Failure> {
    config.secrets_key = Some(secrets_key(serve, db)?);
    let state = db.open(config).await?;
    // Never a new key for a database that holds secrets sealed with another.
    edgecap_server::credentials::check_key(state.hub.vault(), &state.db)
        .await
        .map_err(|e| Failure::usage(format!("--secrets-key: {e}")))?;
    Ok(state)
}

pub fn run(a: &ServerArgs) -> Result<(), Failure> {
    let (addr, mut config) = a.serve.resolve()?;
    config.metrics_on_api = a.metrics.addr()?.is_none();
    runtime()?.block_on(async {
        // The port first: a taken one leaves no new database or secrets key behind.
        let listener = bind(addr).await?;
        let scheme = a.serve.scheme();
        if config.tls.is_none() && !addr.ip().is_loopback() {
            eprintln!(
                "edgecap server: warning: plain HTTP on {addr}: agents on other hosts are \
                 refused (403) unless --insecure-plaintext; serve TLS with --tls-cert/--tls-key"
            );
        }
        let metrics = a.metrics.bind().await?;
        let state = open_state(&a.serve, &a.db, config).await?;
        let _metrics =
            crate::observe::serve(metrics, edgecap_server::metrics::Probe(state.clone()));
        let url = format!("{scheme}://{}", local_addr(&listener)?);
        outln!("edgecap server listening on {url}");
        flush_stdout();
        edgecap_server::run(listener, state, shutdown_signal())
            .await
            .map_err(|e| Failure::runtime(e.to_string()))
    })
}

pub fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::runtime(format!("starting the async runtime: {e}")))
}

/// Listens on `--listen`; a taken port says how to pick another.
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, Failure> {
    tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::AddrInUse {
            format!(
                "; another process uses it: choose a port with --listen {}:PORT, or --listen \
                 {}:0 for any free one",
                addr.ip(),
                addr.ip()
            )
        } else {
            String::new()
        };
        Failure::runtime(format!("--listen: cannot listen on {addr}: {e}{hint}"))
    })
}

pub fn local_addr(l: &tokio::net::TcpListener) -> Result<SocketAddr, Failure> {
    l.local_addr()
        .map_err(|e| Failure::runtime(format!("--listen: {e}")))
}

pub fn flush_stdout() {
    use std::io::Write;
    let _ = std::io::stdout().flush();
}

/// Resolves at the first SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        tracing::error!("cannot install signal handlers; stop with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_flags_fill_the_config_and_name_themselves_when_bad() {
        let d = Config::default();
        let same = LimitArgs::default().apply(Config::default()).unwrap();
        assert_eq!(same.token_rate, d.token_rate);
        assert_eq!(same.auth_failure_rate, d.auth_failure_rate);
        assert_eq!(same.request_timeout, d.request_timeout);
        let set = LimitArgs {
            request_timeout: Some("5s".into()),
            token_rate: Some(7),
            auth_failure_rate: Some(60),
            auth_failure_burst: Some(3),
            agent_msg_burst: Some(9),
            ..LimitArgs::default()
        }
        .apply(Config::default())
        .unwrap();
        assert_eq!(set.request_timeout, Duration::from_secs(5));
        assert_eq!(set.token_rate.per_sec, 7.0);
        assert_eq!(set.token_rate.burst, d.token_rate.burst);
        assert_eq!(set.auth_failure_rate.per_sec, 1.0);
        assert_eq!(set.auth_failure_rate.burst, 3.0);
        assert_eq!(set.agent_msg_rate.burst, 9.0);
        let err = |a: LimitArgs| a.apply(Config::default()).unwrap_err().message;
        let zero = err(LimitArgs {
            token_burst: Some(0),
            ..LimitArgs::default()
        });
        assert!(zero.contains("--token-burst"), "{zero}");
        let long = err(LimitArgs {
            agent_write_timeout: Some("2h".into()),
            ..LimitArgs::default()
        });
        assert!(long.contains("--agent-write-timeout"), "{long}");
    }

    #[test]
    fn the_per_node_capture_cap_is_a_flag() {
        let d = LimitArgs::default().apply(Config::default()).unwrap();
        assert_eq!(
            d.max_captures_per_node,
            edgecap_model::protocol::DEFAULT_MAX_CAPTURES_PER_NODE
        );
        let set = LimitArgs {
            max_captures_per_node: Some(3),
            ..LimitArgs::default()
        };
        assert_eq!(
            set.apply(Config::default()).unwrap().max_captures_per_node,
            3
        );
        let zero = LimitArgs {
            max_captures_per_node: Some(0),
            ..LimitArgs::default()
        };
        let err = zero.apply(Config::default()).unwrap_err().message;
        assert!(err.contains("--max-captures-per-node"), "{err}");
    }

    #[test]
    fn database_urls_and_paths() {
        let db = |d: &str| DbArgs {
            database: Some(d.into()),
            data_dir: None,
        };
        assert_eq!(db("postgres://u@h/db").url().unwrap(), "postgres://u@h/db");
        assert_eq!(db("sqlite:///x/e.db").url().unwrap(), "sqlite:///x/e.db");
        assert_eq!(db("/var/e.db").url().unwrap(), "sqlite:///var/e.db");
        assert!(db("e.db").url().unwrap().ends_with("/e.db"));
        assert!(db(" ").url().is_err());
        let dir = DbArgs {
            database: None,
            data_dir: Some("/srv/ec".into()),
        };
        if std::env::var_os("EDGECAP_DATABASE").is_none() {
            assert_eq!(dir.url().unwrap(), "sqlite:///srv/ec/edgecap.db");
        }
    }

    #[test]
    fn allow_endpoint_is_checked_naming_the_flag() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            serve: ServeArgs,
        }
        let serve = |args: &[&str]| {
            let all = ["edgecap"].iter().chain(args).copied();
            Cli::try_parse_from(all).unwrap().serve.resolve()
        };
        let (_, config) = serve(&[
            "--allow-endpoint",
            "127.0.0.1:9000,minio.internal",
            "--allow-endpoint",
            "[fd00::5]:443",
        ])
        .unwrap();
        let shown: Vec<String> = config
            .endpoints
            .allowed()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(shown, ["127.0.0.1:9000", "minio.internal", "[fd00::5]:443"]);
        let e = serve(&["--allow-endpoint", "169.254.169.254"]).unwrap_err();
        assert_eq!(e.code, 2);
        assert!(
            e.message
                .starts_with("--allow-endpoint: 169.254.169.254 is a cloud metadata address"),
            "{e:?}"
        );
        let (_, config) =
            serve(&["--file-root", "/srv/a/,/srv/b", "--file-root", "/srv/c"]).unwrap();
        let roots: Vec<String> = config
            .endpoints
            .file_roots()
            .roots()
            .iter()
            .map(|r| r.display().to_string())
            .collect();
        assert_eq!(roots, ["/srv/a", "/srv/b", "/srv/c"]);
        let e = serve(&["--file-root", "captures"]).unwrap_err();
        assert_eq!(e.code, 2);
        assert!(
            e.message.starts_with("--file-root: ") && e.message.contains("not an absolute path"),
            "{e:?}"
        );
    }
}
