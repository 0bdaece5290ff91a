//! One isolated measurement: install the reader's rule (tcpdump) or let edgecap install its
//! own, start the reader, zero the offered counter, blast, let the tail flush, read the
//! counter, stop the reader with SIGINT, remove the rule, count what it captured.

use std::path::{Path, PathBuf};
use std::thread;
use std::time::Duration;

use edgecap_lab::packet::Packet;
use edgecap_lab::{Blast, Lab};

use super::reader::{self, ReaderKind};
use super::report::{IP_UDP_HEADERS, Rate, Row, SelfReport};
use super::{counts, kernel, noise};
use crate::exit::Failure;

/// NFLOG group used by every reader. Groups are per network namespace, and the lab's edge
/// namespace is new, so no other process can hold it.
pub const GROUP: u16 = 4242;
/// Pause between the last packet sent and stopping the reader. tcpdump's NFLOG instance keeps
/// the kernel's 1 s flush timer (libpcap never sets one), so less would count its unflushed
/// tail as loss; every reader gets the same pause.
const TAIL: Duration = Duration::from_millis(1200);
/// Packet cap for unpaced runs, so even a very fast generator stays bounded.
const MAX_COUNT: u64 = 5_000_000;
/// Where `--null-sink` sends the output. Never deleted, unlike capture files.
const NULL_SINK: &str = "/dev/null";

/// What every measurement of a run shares.
#[derive(Debug)]
pub struct Setup<'a> {
    pub lab: &'a Lab,
    /// The edge namespace: readers and rules live here.
    pub ns: &'a str,
    /// Directory for capture files.
    pub dir: &'a Path,
    /// Seconds of traffic.
    pub seconds: f64,
    /// Write to /dev/null instead of files, to separate capture cost from file cost.
    pub null_sink: bool,
}

/// One isolated measurement; see the module docs for the sequence.
pub fn measure(
    s: &Setup<'_>,
    payload: usize,
    rate: Rate,
    kind: ReaderKind,
) -> Result<Row, Failure> {
    let (lab, ns, seconds) = (s.lab, s.ns, s.seconds);
    let lab_err = |e: edgecap_lab::LabError| Failure::runtime(format!("lab: {e}"));
    let template = Packet::udp(
        lab.src_addr(0, false),
        lab.origin_addr(0, false),
        40000,
        kernel::DPORT,
    )
    .total_len(payload + IP_UDP_HEADERS)
    .build()
    .map_err(lab_err)?;
    let blast = match rate {
        Rate::Pps(pps) => Blast {
            count: (pps as f64 * seconds).round() as u64,
            pps: Some(pps),
            // Slack so a slightly late schedule still sends its last packets.
            max_duration: Duration::from_secs_f64(seconds * 1.25),
            vary_source_port: false,
        },
        Rate::Max => Blast {
            count: MAX_COUNT,
            pps: None,
            max_duration: Duration::from_secs_f64(seconds),
            vary_source_port: false,
        },
    };
    let file = if s.null_sink {
        PathBuf::from(NULL_SINK)
    } else {
        s.dir.join(format!(
            "{payload}B-{rate}-{}.{}",
            kind.label().replace([' ', '-'], ""),
            kind.extension()
        ))
    };
    if kind.is_tcpdump() {
        kernel::install_tcpdump_rule(lab, ns, GROUP)?;
    }
    let running = reader::start(lab, ns, kind, GROUP, &file)?;
    kernel::take_offered(lab, ns)?;
    let noise_before = noise::Snapshot::take();
    let sent = lab.blast(0, &template, blast).map_err(lab_err)?;
    let blast_end = noise::Snapshot::take();
    thread::sleep(TAIL);
    let offered = kernel::take_offered(lab, ns)?;
    let finished = running.stop()?;
    let noise_after = noise::Snapshot::take();
    let foreign_cpu = noise_before.foreign_cpu_until(&noise_after);
    let idle_pct = noise_before.idle_pct_until(&blast_end);
    if kind.is_tcpdump() {
        kernel::remove_tcpdump_rule(lab, ns)?;
    }
    if finished.reaped.exit_code() != Some(0) {
        return Err(Failure::runtime(format!(
            "{} exited with status {}: {}",
            kind.label(),
            finished.reaped.status,
            finished.output.join(" | ")
        )));
    }
    let (captured, self_report) = if kind.is_tcpdump() {
        let stats = counts::parse_tcpdump(&finished.output);
        let n = if s.null_sink {
            // Nothing to count in /dev/null: tcpdump's own count of packets it wrote.
            stats.captured.ok_or_else(|| {
                Failure::runtime(format!(
                    "no \"packets captured\" line from tcpdump: {}",
                    finished.output.join(" | ")
                ))
            })?
        } else {
            counts::count_pcap_file(&file)
                .map_err(|e| Failure::runtime(format!("counting {}: {e}", file.display())))?
        };
        if stats.captured.is_some_and(|c| c != n) {
            eprintln!(
                "    note: tcpdump said {:?} captured, its file holds {n}",
                stats.captured
            );
        }
        (
            n,
            SelfReport::Tcpdump {
                enobufs: stats.dropped_by_kernel,
            },
        )
    } else {
        let setup_null_sink = s.null_sink;
        let s = counts::parse_edgecap(&finished.output).ok_or_else(|| {
            Failure::runtime(format!(
                "no JSON summary from edgecap: {}",
                finished.output.join(" | ")
            ))
        })?;
        let n = if setup_null_sink {
            s.packets
        } else {
            let n = counts::count_capture_file(&file)
                .map_err(|e| Failure::runtime(format!("counting {}: {e}", file.display())))?;
            if n != s.packets {
                eprintln!(
                    "    note: edgecap said {} captured, its file holds {n}",
                    s.packets
                );
            }
            n
        };
        (
            n,
            SelfReport::Edgecap {
                lost: s.lost,
                overruns: s.overruns,
            },
        )
    };
    if !s.null_sink {
        // Files of 1400-byte floods are gigabytes: keep at most one on disk at a time.
        let _ = std::fs::remove_file(&file);
    }
    if sent.sent != offered {
        eprintln!(
            "    note: the generator sent {}, the edge saw {offered}",
            sent.sent
        );
    }
    Ok(Row {
        payload,
        rate,
        reader: kind,
        elapsed: sent.elapsed,
        offered,
        captured,
        self_report,
        cpu: finished.reaped.cpu(),
        foreign_cpu,
        idle_pct,
    })
}
