//! `edgecap fate FILE`: where each flow's packets stopped appearing, point by point.
//!
//! ```text
//! edgecap fate FILE [--json] [--top N] [--window DURATION]
//! ```
//!
//! FILE is a pcap or pcapng file from any tool, or `-` for standard input. Interfaces named
//! `<node>/<point>` (as `edgecap capture --point a,b,c` and `edgecap merge` write them) are
//! grouped by node and ordered along the pipeline (ingress < pre-firewall < post-firewall <
//! post-mitigation < egress; operator points by the hook and priority in their description).
//! Other interfaces (a tcpdump file) are each a point, in file order, and the report says so.
//! Packets are matched across points one by one (IPv4 id, addresses, ports and a hash of the
//! transport header and payload), so partial drops are exact, not differences of totals.
//!
//! ```text
//! $ edgecap fate merged.pcapng
//! merged.pcapng: 369 packets, 3 flows on 1 node(s)
//!
//! node edge0: pre-firewall > post-firewall > egress
//!   FLOW                                    PRE-FIREWALL  POST-FIREWALL  EGRESS
//!   udp 198.18.0.2:40000 > 198.18.1.2:53              42              0       0
//!     42 packets seen at pre-firewall, 0 at post-firewall: dropped between them
//!   udp 198.18.0.2:40001 > 198.18.1.2:5353           100            100      97
//!     3 of 100 packets lost between post-firewall and egress
//!   udp 198.18.0.2:40002 > 198.18.1.2:80              10             10      10
//!     10 packets seen at every point
//!   all packets                                      152            110     107
//! ```
//!
//! Flows are listed most affected first, `--top` per node (default 20, 0 for all). `--json`
//! prints the same report as JSON (`edgecap_analyze::FateReport`). Memory is bounded by the
//! number of flows and the packets inside one `--window` (default 10s of capture time: a packet
//! not seen at the next point within it counts as lost there), not by the file size.
//!
//! Exit status: 0 on success; 2 when FILE cannot be opened or is not pcap/pcapng (the message
//! names the file and the reason); 1 when reading fails part-way (the report of what was read
//! is still printed, marked incomplete).

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use clap::Args;
use edgecap_analyze::Options;
use edgecap_pcap::read::Reader;

use crate::exit::Failure;
use crate::units::parse_duration;

/// Arguments of `edgecap fate`.
#[derive(Debug, Args)]
pub struct FateArgs {
    /// Capture file (pcap or pcapng, from any tool), or - for standard input.
    pub file: PathBuf,
    #[arg(long, help = crate::out::JSON_HELP)]
    pub json: bool,
    /// Show the N most affected flows per node (0: all).
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub top: usize,
    /// How long a packet may take to the next point and still count as the same packet.
    #[arg(long, default_value = "10s", value_name = "DURATION")]
    pub window: String,
}

pub fn run(a: &FateArgs) -> Result<(), Failure> {
    let opts = options(&a.window)?;
    let name = display(&a.file);
    let mut reader = open(&a.file)?;
    let (mut report, error) = edgecap_analyze::run_fate(&mut reader, opts);
    report.limit(a.top);
    let text = if a.json {
        json(&report)?
    } else {
        edgecap_analyze::fate_text(&report, &name)
    };
    print(&text)?;
    match error {
        Some(e) => Err(Failure::runtime(format!("{name}: {e}"))),
        None => Ok(()),
    }
}

/// Matching options from `--window`.
pub(crate) fn options(window: &str) -> Result<Options, Failure> {
    let d = parse_duration(window).map_err(|e| Failure::usage(format!("--window: {e}")))?;
    let window_ns = i64::try_from(d.as_nanos())
        .map_err(|_| Failure::usage(format!("--window: {window:?} is too large")))?;
    Ok(Options {
        window_ns,
        ..Options::default()
    })
}

/// The file as the user named it (`-` is standard input).
pub(crate) fn display(path: &Path) -> String {
    if path.as_os_str() == "-" {
        "standard input".to_owned()
    } else {
        path.display().to_string()
    }
}

/// Opens a capture and reads its header: failures here are bad input (exit 2).
pub(crate) fn open(path: &Path) -> Result<Reader<BufReader<Box<dyn Read>>>, Failure> {
    let name = display(path);
    let inner: Box<dyn Read> = if path.as_os_str() == "-" {
        Box::new(io::stdin().lock())
    } else {
        let f =
            File::open(path).map_err(|e| Failure::usage(format!("{name}: cannot open: {e}")))?;
        Box::new(f)
    };
    Reader::new(BufReader::with_capacity(256 * 1024, inner))
        .map_err(|e| Failure::usage(format!("{name}: {e}")))
}

pub(crate) fn json<T: serde::Serialize>(report: &T) -> Result<String, Failure> {
    serde_json::to_string_pretty(report)
        .map(|mut s| {
            s.push('\n');
            s
        })
        .map_err(|e| Failure::runtime(format!("encoding the report as JSON: {e}")))
}

/// Writes to standard output; a closed pipe (`| head`) is not an error (see `crate::out`).
pub(crate) fn print(text: &str) -> Result<(), Failure> {
    crate::out::write(format_args!("{text}"));
    crate::out::finish()
}
