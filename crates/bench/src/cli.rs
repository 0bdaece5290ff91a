//! The benchmarks' flags, exactly as typed; each benchmark validates its own, naming the flag.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "edgecap-bench",
    version,
    about = "Rerunnable benchmarks of edgecap against the standard tools (edgecap bench ...)"
)]
pub struct Cli {
    /// Log level for diagnostics on stderr (error, warn, info, debug, trace).
    #[arg(long, global = true, default_value = "warn", env = "EDGECAP_LOG")]
    pub log: String,
    #[command(subcommand)]
    pub command: BenchCommand,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Capture throughput and CPU: edgecap vs tcpdump on the same NFLOG group and traffic.
    Capture(BenchCaptureArgs),
    /// Dispatch latency, CPU and memory of one server with N simulated agents (full captures;
    /// with --simple also look-back captures).
    Dispatch(crate::dispatch::BenchDispatchArgs),
    /// Merge time and memory: edgecap merge vs mergecap -w on the same generated files.
    Merge(BenchMergeArgs),
    /// Peak memory of the upload path: a capture-sized pcapng streamed into moto_server.
    Upload(BenchUploadArgs),
    /// Peak memory of a real agent capturing lab traffic into a bucket on moto_server.
    AgentMemory(crate::agent_memory::BenchAgentMemoryArgs),
    /// The always-on observer's cost: forwarding rate, agent CPU and memory with it and
    /// without it, in one run.
    Observe(crate::observe::BenchObserveArgs),
    /// Traffic rollups from N simulated agents: server CPU, memory and database growth with
    /// rollups and without them, on SQLite and PostgreSQL.
    Rollups(crate::rollups::BenchRollupsArgs),
    /// Triggers at the edge: flood start -> condition -> fired -> rule -> first bytes, p50/p99
    /// over repeated floods against a real agent and server; false triggers over a long run
    /// of varied benign traffic.
    Trigger(crate::trigger::BenchTriggerArgs),
    /// The dashboard's first view with a big fleet: N simulated nodes and hours of rollups,
    /// login -> fleet page and the traffic page (p50/p99, bytes), on SQLite and PostgreSQL.
    Dashboard(crate::dashboard::BenchDashboardArgs),
}

#[derive(Debug, Args)]
pub struct BenchMergeArgs {
    /// Number of input files (one per node).
    #[arg(long, default_value_t = 16)]
    pub files: usize,
    /// Total size of the inputs (e.g. 1GB, 100MB).
    #[arg(long, default_value = "1GB")]
    pub total: String,
    /// Runs per tool (alternating order); medians are reported.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Write the markdown table here as well as to stdout.
    #[arg(long)]
    pub markdown: Option<PathBuf>,
    /// Directory for the files (default: a temporary directory, removed afterwards).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct BenchUploadArgs {
    /// Capture sizes to stream (e.g. 100MB,2GB).
    #[arg(long, value_delimiter = ',', default_value = "100MB,2GB")]
    pub sizes: Vec<String>,
    /// Write the markdown table here as well as to stdout.
    #[arg(long)]
    pub markdown: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct BenchCaptureArgs {
    /// Seconds of traffic per measurement.
    #[arg(long, default_value_t = 3.0)]
    pub seconds: f64,
    /// Offered rates in packets per second (200k = 200000); "max": as fast as the generator goes.
    #[arg(long, value_delimiter = ',', default_value = "50k,100k,200k,400k,max")]
    pub rates: Vec<String>,
    /// UDP payload sizes in bytes.
    #[arg(long, value_delimiter = ',', default_value = "64,1400")]
    pub sizes: Vec<usize>,
    /// Readers to compare: edgecap, tcpdump (all defaults), tcpdump-B (tcpdump -B 4096).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "edgecap,tcpdump,tcpdump-B"
    )]
    pub readers: Vec<String>,
    /// Readers write to /dev/null instead of a file: isolates capture cost from file cost.
    #[arg(long)]
    pub null_sink: bool,
    /// Write the markdown table here as well as to stdout.
    #[arg(long)]
    pub markdown: Option<PathBuf>,
    /// Directory for capture files (default: a temporary directory, removed afterwards).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}
