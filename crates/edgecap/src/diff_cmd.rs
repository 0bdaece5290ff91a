//! `edgecap diff A B`: which packets of capture A never showed up in capture B, per flow, and
//! how long the others took.
//!
//! ```text
//! edgecap diff A B [--json] [--top N] [--window DURATION]
//! ```
//!
//! A and B are pcap or pcapng files from any tool (one of them may be `-`, standard input),
//! taken at two places on the path, e.g. an edge node and the origin. Packets are matched by
//! fields no router changes: addresses, protocol, ports, IPv4 id, and a hash of the first 64
//! bytes of the transport header and payload (TTL / hop limit, IPv4 header checksum, DSCP/ECN,
//! flow label and the transport checksum are left out). Equal packets are matched in time
//! order. NAT is out of scope: a translated packet has other addresses and counts as missing
//! from B and only in B. Delays are B minus A and assume the two clocks agree (NTP); a packet
//! not matched within `--window` (default 10s) counts as missing.
//!
//! ```text
//! $ edgecap diff edge.pcap origin.pcapng
//! A edge.pcap: 110 packets, 2 flows
//! B origin.pcapng: 108 packets, 2 flows
//! matched 107, missing from B 3, only in B 1 (window 10.000s)
//! delay B-A over 107 packets: min 1.0µs, p50 57.0µs, p90 100.0µs, p99 2.00ms, max 2.00ms
//!
//! FLOW                                  IN A  IN B  MISSING FROM B  ONLY IN B    MIN     P50 ...
//! udp 198.18.0.2:40000 > 198.18.1.2:53   100    98               3          1  1.0µs  52.0µs ...
//! udp [2001:db8::1]:7 > [2001:db8::2]:8   10    10               0          0  2.00ms 2.00ms ...
//! ```
//!
//! Flows are listed most affected first (missing + only in B), `--top` of them (default 20, 0
//! for all); `--json` prints `edgecap_analyze::DiffReport`. Both files are read together in time
//! order, so memory holds the flows and the packets waiting inside one window, never a whole
//! file; past about a million waiting packets the oldest stop waiting early and the report
//! warns that matches may be undercounted.
//!
//! Exit status: 0 on success; 2 when a file cannot be opened or is not pcap/pcapng (the
//! message names the file and the reason), or both are `-`; 1 when reading fails part-way (the
//! report of what was read is still printed, marked incomplete).

use std::path::PathBuf;

use clap::Args;

use crate::exit::Failure;
use crate::fate_cmd::{display, json, open, options, print};

/// Arguments of `edgecap diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The first capture (e.g. at the edge node), or - for standard input.
    pub a: PathBuf,
    /// The second capture (e.g. at the origin), or - for standard input.
    pub b: PathBuf,
    #[arg(long, help = crate::out::JSON_HELP)]
    pub json: bool,
    /// Show the N most affected flows (0: all).
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub top: usize,
    /// How far apart in time a packet of A and its copy in B may be and still match.
    #[arg(long, default_value = "10s", value_name = "DURATION")]
    pub window: String,
}

pub fn run(a: &DiffArgs) -> Result<(), Failure> {
    let opts = options(&a.window)?;
    if a.a.as_os_str() == "-" && a.b.as_os_str() == "-" {
        return Err(Failure::usage(
            "A and B are both standard input; at most one of them can be -",
        ));
    }
    let (name_a, name_b) = (display(&a.a), display(&a.b));
    let mut ra = open(&a.a)?;
    let mut rb = open(&a.b)?;
    let (mut report, error) = edgecap_analyze::run_diff(&mut ra, &mut rb, (&name_a, &name_b), opts);
    report.limit(a.top);
    let text = if a.json {
        json(&report)?
    } else {
        edgecap_analyze::diff_text(&report)
    };
    print(&text)?;
    match error {
        Some((side, e)) => {
            let name = if side == edgecap_analyze::Side::A {
                name_a
            } else {
                name_b
            };
            Err(Failure::runtime(format!("{name}: {e}")))
        }
        None => Ok(()),
    }
}
