//! `edgecap capture`'s flags, exactly as typed; `validate` turns them into the engine's spec
//! and `crate::client` into a create request for a server.

use std::path::PathBuf;

use clap::Args;

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
    /// Output file, or - for standard output (local and look-back captures).
    #[arg(short = 'w', long = "write", value_name = "FILE")]
    pub write: Option<PathBuf>,
    /// A tcpdump-style filter expression, ANDed with --src/--dst/--sport/--dport/--proto.
    #[arg(long, allow_hyphen_values = true)]
    pub filter: Option<String>,
    #[command(flatten)]
    pub server: crate::client::ConnectArgs,
    #[command(flatten)]
    pub fleet: FleetArgs,
    // The result: the summary of a local capture, the capture object of a fleet one.
    #[arg(long, help = crate::out::JSON_BESIDE_DATA_HELP)]
    pub json: bool,
    #[arg(long, short, help = crate::out::QUIET_HELP)]
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
    /// Print how big this capture would be (rates, file size, which limit ends it, from the
    /// nodes' look-back rings) and start nothing (fleet captures).
    #[arg(long, conflicts_with = "detach")]
    pub estimate: bool,
    /// A look-back capture (Cloudflare's `type: simple`): this much traffic that already
    /// passed (e.g. 1m, 5m; at most the account's time limit), answered at once from every
    /// selected node's sampled ring (headers only, at most 160 bytes per packet) and written
    /// to -w FILE (or - for standard output). Every node unless --nodes or --colo.
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    pub look_back: Option<String>,
    /// End of the --look-back window: an RFC 3339 UTC time (2026-11-25T07:30:00Z) or a
    /// duration before now (10m) [default: now].
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub at: Option<String>,
}
