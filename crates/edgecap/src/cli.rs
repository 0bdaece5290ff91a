//! Raw command-line flags, exactly as typed. Validation into engine types happens in the
//! command modules, so every error can name the option it came from.

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "edgecap",
    version,
    about = "On-demand packet captures across Linux edge nodes"
)]
pub struct Cli {
    /// Log level for diagnostics on stderr (error, warn, info, debug, trace).
    #[arg(long, global = true, default_value = "warn", env = "EDGECAP_LOG")]
    pub log: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Capture matching packets on this node into a pcapng (or pcap) file.
    Capture(Box<crate::capture_cmd::CaptureArgs>),
    /// List the captures of the account on a server.
    Ls {
        #[command(flatten)]
        server: crate::client::ConnectArgs,
        #[arg(long, help = crate::out::JSON_HELP)]
        json: bool,
    },
    /// Show one capture, node by node.
    Status {
        /// Capture id (32 hex digits).
        id: String,
        #[command(flatten)]
        server: crate::client::ConnectArgs,
        #[arg(long, help = crate::out::JSON_HELP)]
        json: bool,
    },
    /// Stop a running capture on every node.
    Stop {
        /// Capture id (32 hex digits).
        id: String,
        #[command(flatten)]
        server: crate::client::ConnectArgs,
        // The capture object, as `status --json` prints it.
        #[arg(long, help = crate::out::JSON_HELP)]
        json: bool,
    },
    /// Download a look-back (simple) capture's file; a full capture's files are in its
    /// destination.
    Download {
        /// Capture id (32 hex digits).
        id: String,
        /// Output file, or - for standard output.
        #[arg(short = 'w', long = "write", value_name = "FILE")]
        write: std::path::PathBuf,
        /// pcap (what Cloudflare's SDKs ask for) or pcapng [default: the capture's format].
        #[arg(long, value_parser = ["pcap", "pcapng"])]
        format: Option<String>,
        #[command(flatten)]
        server: crate::client::ConnectArgs,
        #[arg(long, short, help = crate::out::QUIET_HELP)]
        quiet: bool,
    },
    /// Traffic rates of the fleet from the agents' rollups: per node (or point, or
    /// protocol), with sparklines.
    Traffic(crate::client::TrafficArgs),
    /// Live heavy hitters and rates across the fleet, refreshed every second (Ctrl-C ends).
    Top(crate::client::TopArgs),
    /// Anomaly triggers: add, list, remove (captures taken when a condition holds).
    Triggers(crate::client::TriggersArgs),
    /// The anomalies the triggers saw: nodes, start, peak, end, captures and files.
    Events(crate::client::EventsArgs),
    /// Build or remove the throw-away test network of namespaces.
    Lab {
        #[command(subcommand)]
        command: crate::lab_cmd::LabCommand,
    },
    /// Rerunnable benchmarks against the standard tools: runs the edgecap-bench program
    /// (built beside this one), which `edgecap bench --help` describes.
    #[command(disable_help_flag = true)]
    Bench {
        /// The benchmark and its flags, handed to edgecap-bench as they are.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
    /// Per flow, how many packets each capture point saw and where they stopped appearing.
    Fate(crate::fate_cmd::FateArgs),
    /// Compare two captures of the same traffic: missing packets per flow, and delays.
    Diff(crate::diff_cmd::DiffArgs),
    /// The fields that single out an attack in a capture (coverage, baseline hit rate), and
    /// a proposed nftables rule and filter expression to drop it.
    Signature(crate::signature_cmd::SignatureArgs),
    /// Merge per-node files (paths or bucket URLs) into one time-ordered pcapng or pcap.
    Merge(crate::merge_cmd::MergeArgs),
    /// Run the control plane: the Cloudflare-compatible API and the agents' hub.
    Server(crate::server_cmd::ServerArgs),
    /// Run this node's agent: take captures from a server and report them.
    Agent(crate::agent_cmd::AgentArgs),
    /// Create accounts and tokens (API tokens, agent tokens) in the server's database.
    Admin(crate::admin_cmd::AdminArgs),
    /// Server, an agent for this machine and a local destination, in one process.
    Up(crate::up_cmd::UpArgs),
}
