//! Raw command-line flags, exactly as typed. Validation into engine types happens in the
//! command modules, so every error can name the option it came from.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

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
    Capture(Box<CaptureArgs>),
    /// List the captures of the account on a server.
    Ls {
        #[command(flatten)]
        server: crate::client::ServerArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one capture, node by node.
    Status {
        /// Capture id (32 hex digits).
        id: String,
        #[command(flatten)]
        server: crate::client::ServerArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Stop a running capture on every node.
    Stop {
        /// Capture id (32 hex digits).
        id: String,
        #[command(flatten)]
        server: crate::client::ServerArgs,
    },
    /// Build or remove the throw-away test network of namespaces.
    Lab {
        #[command(subcommand)]
        command: LabCommand,
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

#[derive(Debug, Args)]
pub struct CaptureArgs {
    /// Where in the packet pipeline to capture: ingress, pre-firewall, post-firewall,
    /// post-mitigation (when configured), egress, or a point from the configuration file.
    /// Several, comma-separated, give one pcapng interface each.
    #[arg(long, default_value = "pre-firewall")]
    pub point: String,
    /// Agent configuration file (node name, configured capture points).
    /// Default: /etc/edgecap/agent.toml when it exists.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Source address or prefix (IPv4 or IPv6); repeat or separate with commas for a list.
    #[arg(long, allow_hyphen_values = true)]
    pub src: Vec<String>,
    /// Destination address or prefix; repeat or separate with commas for a list.
    #[arg(long, allow_hyphen_values = true)]
    pub dst: Vec<String>,
    /// Source port or range (e.g. 53, 1024-65535); repeat or separate with commas.
    #[arg(long, allow_hyphen_values = true)]
    pub sport: Vec<String>,
    /// Destination port or range; repeat or separate with commas.
    #[arg(long, allow_hyphen_values = true)]
    pub dport: Vec<String>,
    /// Transport protocol: a name (tcp, udp, icmp, icmpv6, ...) or a number 0-255.
    #[arg(long, allow_hyphen_values = true)]
    pub proto: Vec<String>,
    /// Stop after this long (e.g. 30s, 5m, 1h30m, 500ms; a bare number is seconds).
    #[arg(long, allow_hyphen_values = true)]
    pub time: Option<String>,
    /// Stop after exactly this many packets.
    #[arg(long, allow_hyphen_values = true)]
    pub packets: Option<String>,
    /// Stop before the captured packet bytes would exceed this (e.g. 1000000, 10MB, 1GiB).
    #[arg(long, allow_hyphen_values = true)]
    pub bytes: Option<String>,
    /// Bytes kept of each packet, at most 65531 (NFLOG's copy limit).
    #[arg(long, allow_hyphen_values = true)]
    pub snaplen: Option<String>,
    /// Keep one matching packet in N, chosen at random in the kernel.
    #[arg(long, allow_hyphen_values = true)]
    pub sample: Option<String>,
    /// NFLOG group to use (default: the first free one in 60416-61439).
    #[arg(long, allow_hyphen_values = true)]
    pub group: Option<String>,
    /// Socket receive buffer between kernel and edgecap (default 32MiB; like tcpdump -B).
    #[arg(long, allow_hyphen_values = true)]
    pub buffer: Option<String>,
    /// Output format: pcapng (default) or pcap.
    #[arg(long, default_value = "pcapng")]
    pub format: String,
    /// This node's name in the file (default: the host name).
    #[arg(long)]
    pub node: Option<String>,
    /// Output file, or - for standard output (local captures).
    #[arg(short = 'w', long = "write", value_name = "FILE")]
    pub write: Option<PathBuf>,
    /// A tcpdump-style filter expression, ANDed with --src/--dst/--sport/--dport/--proto.
    #[arg(long, allow_hyphen_values = true)]
    pub filter: Option<String>,
    #[command(flatten)]
    pub server: crate::client::ServerArgs,
    #[command(flatten)]
    pub fleet: FleetArgs,
    /// Print the summary as JSON (on stderr, so it never mixes with a streamed capture).
    #[arg(long)]
    pub json: bool,
    /// No progress display.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Where a fleet capture runs and writes (with --server).
#[derive(Debug, Clone, Default, Args)]
pub struct FleetArgs {
    /// Nodes by name or `key=value` label; repeat or separate with commas (fleet captures).
    #[arg(long)]
    pub nodes: Vec<String>,
    /// A node name or site (Cloudflare's colo_name) (fleet captures).
    #[arg(long)]
    pub colo: Option<String>,
    /// Where the nodes write their files: a validated bucket (s3://bucket/dir?region=..,
    /// r2://, gs://, azure://) or file:///var/lib/edgecap/captures (fleet captures).
    #[arg(long)]
    pub destination: Option<String>,
    /// Also have the server merge the nodes' files into <id>/merged.pcapng in the
    /// destination when they are all done (fleet captures).
    #[arg(long)]
    pub merge: bool,
    /// Print the capture id and return at once instead of following it (fleet captures).
    #[arg(long)]
    pub detach: bool,
}

#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// Create a lab: a traffic source, edge nodes and an origin, in network namespaces.
    Up {
        /// Name of the lab (namespaces are <name>-src, <name>-edge0, ..., <name>-origin).
        #[arg(long, default_value = "edgecap")]
        name: String,
        /// Number of edge nodes.
        #[arg(long, default_value_t = 1)]
        edges: usize,
    },
    /// Remove a lab created with `lab up`.
    Down {
        #[arg(long, default_value = "edgecap")]
        name: String,
    },
}
