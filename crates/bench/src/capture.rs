//! `edgecap bench capture`: edgecap against tcpdump on the same NFLOG group, the same lab
//! traffic and the same machine, in one run.
//!
//! For every payload size, rate and reader, one isolated measurement: install the reader's
//! rule (tcpdump) or let edgecap install its own, start the reader in the edge namespace,
//! blast UDP from the source namespace, let the tail flush, stop the reader with SIGINT and
//! reap it with `wait4` for its CPU time. Loss is always `offered - captured`, where
//! "offered" comes from one counter rule (priority -400) shared by all readers.

use std::path::{Path, PathBuf};
use std::thread;

use edgecap_lab::{Lab, LabSpec};

use crate::cli::BenchCaptureArgs;
use crate::exit::Failure;
use crate::measure::{self, GROUP, Setup};
use crate::reader::ReaderKind;
use crate::report::{self, IP_UDP_HEADERS, Rate};
use crate::{kernel, publish};

/// Largest UDP payload that fits the lab's 1500-byte MTU without fragmenting.
const MAX_PAYLOAD: usize = 1500 - IP_UDP_HEADERS;

fn parse_rate(s: &str) -> Result<Rate, Failure> {
    let t = s.trim().to_ascii_lowercase();
    if t == "max" {
        return Ok(Rate::Max);
    }
    let (digits, mult) = t.strip_suffix('k').map_or((t.as_str(), 1), |d| (d, 1000));
    match digits.parse::<u64>() {
        Ok(n) if n > 0 => Ok(Rate::Pps(n * mult)),
        _ => Err(Failure::usage(format!(
            "--rates: {s:?} is not a packet rate (e.g. 50000, 200k, max)"
        ))),
    }
}

/// Validated flags: rates and readers.
type Plan = (Vec<Rate>, Vec<ReaderKind>);

fn check_args(a: &BenchCaptureArgs) -> Result<Plan, Failure> {
    if !(a.seconds > 0.0 && a.seconds <= 600.0) {
        return Err(Failure::usage(format!(
            "--seconds: {} is not in (0, 600]",
            a.seconds
        )));
    }
    if let Some(&s) = a.sizes.iter().find(|&&s| s == 0 || s > MAX_PAYLOAD) {
        return Err(Failure::usage(format!(
            "--sizes: {s} is not in 1..={MAX_PAYLOAD}"
        )));
    }
    let rates = a
        .rates
        .iter()
        .map(|r| parse_rate(r))
        .collect::<Result<_, _>>()?;
    let readers = a
        .readers
        .iter()
        .map(|r| {
            ReaderKind::parse(r).ok_or_else(|| {
                Failure::usage(format!(
                    "--readers: unknown {r:?} (edgecap, tcpdump, tcpdump-B)"
                ))
            })
        })
        .collect::<Result<_, _>>()?;
    Ok((rates, readers))
}

/// The directory for capture files: `--dir`, or a fresh one under the temp dir that is
/// removed on drop, error paths included.
pub struct Workdir {
    pub path: PathBuf,
    remove: bool,
}

impl Workdir {
    pub fn new(dir: Option<&Path>) -> Result<Self, Failure> {
        let (path, remove) = match dir {
            Some(d) => (d.to_owned(), false),
            None => (
                std::env::temp_dir().join(format!("edgecap-bench-{:016x}", rand::random::<u64>())),
                true,
            ),
        };
        std::fs::create_dir_all(&path)
            .map_err(|e| Failure::usage(format!("--dir: cannot create {}: {e}", path.display())))?;
        Ok(Workdir { path, remove })
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        if self.remove {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

pub fn run(a: &BenchCaptureArgs) -> Result<(), Failure> {
    let (rates, readers) = check_args(a)?;
    let work = Workdir::new(a.dir.as_deref())?;
    eprintln!("building the lab (namespaces src -> edge0 -> origin) ...");
    let lab = Lab::new(&LabSpec::default()).map_err(|e| Failure::runtime(format!("lab: {e}")))?;
    let ns = lab.edge_ns(0).to_string();
    kernel::install_offered(&lab, &ns)?;
    let setup = Setup {
        lab: &lab,
        ns: &ns,
        dir: &work.path,
        seconds: a.seconds,
        null_sink: a.null_sink,
    };

    let total = a.sizes.len() * rates.len() * readers.len();
    let mut rows = Vec::with_capacity(total);
    for &payload in &a.sizes {
        for &rate in &rates {
            for &kind in &readers {
                eprintln!(
                    "[{}/{total}] {} {payload}B @ {rate} pps ...",
                    rows.len() + 1,
                    kind.label()
                );
                let row = measure::measure(&setup, payload, rate, kind)?;
                eprintln!(
                    "    offered {} ({:.0} pps), captured {}, lost {} ({:.3} %), cpu {:.3} s",
                    row.offered,
                    row.achieved_pps(),
                    row.captured,
                    row.lost(),
                    row.loss_pct(),
                    row.cpu.as_secs_f64()
                );
                rows.push(row);
            }
        }
    }
    drop(lab);

    let md = format!(
        "{}\n{}\n### Targets\n\n{}",
        header(a),
        report::table(&rows),
        report::targets(&rows, !a.null_sink)
    );
    publish(&md, a.markdown.as_deref())
}

/// How the table was made: command, machine and tools, so a rerun can be compared.
fn header(a: &BenchCaptureArgs) -> String {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cpus = thread::available_parallelism().map_or(0, |n| n.get());
    let tcpdump = std::process::Command::new("tcpdump")
        .arg("--version")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .to_owned()
        })
        .unwrap_or_default();
    let args: Vec<String> = std::env::args().collect();
    let sink = if a.null_sink {
        "/dev/null (no file: capture cost only)"
    } else {
        "a file per run, deleted after counting"
    };
    format!(
        "Command: `{}`; {} s of traffic per row; NFLOG group {GROUP}; output: {sink}.\n\
         Machine: {cpus} CPUs, kernel {}, {tcpdump}.\n",
        args.join(" "),
        a.seconds,
        kernel.trim()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse() {
        assert!(matches!(parse_rate("max"), Ok(Rate::Max)));
        assert!(matches!(parse_rate(" 200k"), Ok(Rate::Pps(200_000))));
        assert!(matches!(parse_rate("50000"), Ok(Rate::Pps(50_000))));
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("fast").is_err());
    }

    #[test]
    fn readers_parse() {
        assert_eq!(ReaderKind::parse("tcpdump-B"), Some(ReaderKind::TcpdumpBig));
        assert_eq!(ReaderKind::parse(" edgecap"), Some(ReaderKind::Edgecap));
        assert_eq!(ReaderKind::parse("wireshark"), None);
    }
}
