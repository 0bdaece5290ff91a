//! `edgecap agent`: this node's agent, until SIGINT/SIGTERM. Flags and environment say how it
//! runs (server, token, namespace); the agent configuration file says what the node is.

use std::path::PathBuf;

use edgecap_agent::output::UploadSettings;
use edgecap_agent::{AgentError, Settings, settings::parse_labels};
use edgecap_capture::Config;

use crate::exit::Failure;

#[derive(Debug, Clone, clap::Args)]
pub struct AgentArgs {
    /// Base URL of the edgecap server, e.g. https://edgecap.example:8443 (http:// only to a
    /// server on this host, unless --insecure-plaintext) [env: EDGECAP_SERVER]. Replicas:
    /// repeat the flag or separate URLs with commas; the agent moves to the next one when a
    /// dial fails or its connection is lost (or give one load balancer's address).
    #[arg(long)]
    pub server: Vec<String>,
    /// CA certificate file (PEM) that signed an https server's certificate; only its
    /// certificates are trusted [default: the system's trust store] [env: EDGECAP_CA].
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// Dial a non-loopback server over plain http:// anyway: the agent token and bucket
    /// credentials cross the network readable (warned about at every connect).
    #[arg(long)]
    pub insecure_plaintext: bool,
    /// Enrolment token from `edgecap admin agent-token create` [env: EDGECAP_AGENT_TOKEN]:
    /// needed at the node's first connect only, when the server binds the node's name to the
    /// credential the agent keeps in --state-dir.
    #[arg(long)]
    pub token: Option<String>,
    /// Where the agent keeps this node's own credential (mode 0600), made at its first start
    /// [env: EDGECAP_STATE_DIR] [default: /var/lib/edgecap/agent for root, else
    /// $XDG_STATE_HOME/edgecap/agent].
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// This node's unique name [default: `node` in the config file, else the host name].
    #[arg(long)]
    pub name: Option<String>,
    /// A label, key=value (site=fra1, region=eu, ...); repeat or separate with commas. Added
    /// to (and overriding) the config file's [labels].
    #[arg(long)]
    pub label: Vec<String>,
    /// Agent configuration file (node name, labels, capture points)
    /// [default: /etc/edgecap/agent.toml when it exists].
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Run captures inside this network namespace (/run/netns/NAME), keeping the connection
    /// to the server (and to buckets) in the agent's own namespace.
    #[arg(long)]
    pub netns: Option<String>,
    /// Longest outage of a bucket one upload part rides out (retrying with backoff) before
    /// the upload, and the node's part of the capture, fails.
    #[arg(long, default_value = "120s")]
    pub upload_retry_timeout: String,
    /// Longest a capture waits for room when its upload buffer is full (the store is slower
    /// than the traffic) before the upload fails; meanwhile the kernel drops, and counts,
    /// packets.
    #[arg(long, default_value = "60s")]
    pub upload_stall_timeout: String,
    /// Upload parts (5 MiB each unless a byte limit needs larger) buffered per capture while
    /// the store is slow: the memory an outage may fill.
    #[arg(long, default_value_t = 4)]
    pub upload_buffer: usize,
    #[command(flatten)]
    pub outbound: crate::server_cmd::OutboundArgs,
    /// Captures this node runs at once, whatever the accounts; an assignment beyond them
    /// fails naming this cap, with no rule installed (the server's --max-captures-per-node
    /// normally refuses first) [default: 16].
    #[arg(long, env = "EDGECAP_MAX_CAPTURES")]
    pub max_captures: Option<usize>,
    #[command(flatten)]
    pub metrics: crate::observe::MetricsArgs,
    #[command(flatten)]
    pub log: crate::observe::LogArgs,
}

/// The upload flags, checked.
fn upload_settings(a: &AgentArgs) -> Result<UploadSettings, Failure> {
    let dur = |flag: &str, v: &str| {
        let d =
            crate::units::parse_duration(v).map_err(|e| Failure::usage(format!("{flag}: {e}")))?;
        if d < std::time::Duration::from_secs(1) {
            return Err(Failure::usage(format!("{flag}: {v} is shorter than 1s")));
        }
        Ok(d)
    };
    if !(1..=64).contains(&a.upload_buffer) {
        return Err(Failure::usage(format!(
            "--upload-buffer: {} is not in 1-64 parts",
            a.upload_buffer
        )));
    }
    let mut u = UploadSettings::default();
    u.store.retry_timeout = dur("--upload-retry-timeout", &a.upload_retry_timeout)?;
    u.stall_timeout = dur("--upload-stall-timeout", &a.upload_stall_timeout)?;
    u.buffer_chunks = a.upload_buffer;
    u.store.endpoints = a.outbound.policy()?;
    Ok(u)
}

/// The validated settings; every error names its flag or key.
pub fn settings(a: &AgentArgs) -> Result<Settings, Failure> {
    let config = Config::load_or_default(a.config.as_deref())
        .map_err(|e| Failure::usage(format!("--config: {e}")))?;
    let server = Some(a.server.join(","))
        .filter(|s| !s.trim().is_empty())
        .or_else(|| std::env::var("EDGECAP_SERVER").ok())
        .ok_or_else(|| Failure::usage("--server: no server given (flag or EDGECAP_SERVER)"))?;
    let state_dir = a
        .state_dir
        .clone()
        .or_else(|| std::env::var_os("EDGECAP_STATE_DIR").map(PathBuf::from))
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(
            || edgecap_agent::identity::default_state_dir(crate::server_cmd::is_root()),
        );
    // Settings::check says what is missing when a node without a credential has no token.
    let token = a
        .token
        .clone()
        .or_else(|| std::env::var("EDGECAP_AGENT_TOKEN").ok())
        .unwrap_or_default();
    let mut labels = config.labels.clone();
    labels.extend(parse_labels(&a.label).map_err(|e| Failure::usage(e.to_string()))?);
    let name = a
        .name
        .clone()
        .or_else(|| config.node.clone())
        .unwrap_or_else(hostname);
    let s = Settings {
        server: server.trim().trim_end_matches('/').to_owned(),
        token: token.trim().to_owned(),
        state_dir,
        name,
        labels,
        config,
        netns: a.netns.clone(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        upload: upload_settings(a)?,
        ca: a
            .ca
            .clone()
            .or_else(|| std::env::var_os("EDGECAP_CA").map(PathBuf::from)),
        insecure_plaintext: a.insecure_plaintext,
        max_captures: match a.max_captures {
            Some(0) => return Err(Failure::usage("--max-captures: must be at least 1")),
            Some(n) => n,
            None => edgecap_model::protocol::DEFAULT_MAX_CAPTURES_PER_NODE,
        },
    };
    s.check().map_err(|e| Failure::usage(e.to_string()))?;
    Ok(s)
}

pub fn run(a: &AgentArgs) -> Result<(), Failure> {
    let settings = settings(a)?;
    a.metrics.addr()?;
    crate::server_cmd::runtime()?.block_on(async {
        let listener = a.metrics.bind().await?;
        let _metrics = crate::observe::serve(listener, edgecap_agent::metrics::Probe);
        edgecap_agent::run(settings, crate::server_cmd::shutdown_signal())
            .await
            .map_err(agent_failure)
    })
}

pub fn agent_failure(e: AgentError) -> Failure {
    match e {
        AgentError::Settings(s) => Failure::usage(s.to_string()),
        AgentError::Refused(why) => Failure::runtime(why),
    }
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}
