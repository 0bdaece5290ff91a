//! `edgecap bench merge`: `edgecap merge -w` against `mergecap -w` on the same inputs in the
//! same run: N per-node pcapng files (default 16, 1 GB in total) with interleaved timestamps,
//! each tool run as a child process several times in alternating order, timed by the wall
//! clock and reaped with `wait4` for its CPU time and peak RSS. Both outputs are checked to
//! hold every generated packet.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use edgecap_pcap::read::Reader;
use edgecap_pcap::{Direction, Format, Interface, Section, Writer};

use super::sys::{self, Reaped};
use crate::capture::Workdir;
use crate::cli::BenchMergeArgs;
use crate::exit::Failure;
use edgecap_units::parse_size;

/// 2026-01-01T00:00:00Z.
const T0: u64 = 1_767_225_600_000_000_000;
/// IP packet sizes, cycled: small, medium and full-size packets.
const SIZES: [usize; 3] = [92, 576, 1428];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tool {
    Edgecap,
    Mergecap,
}

impl Tool {
    fn label(self) -> &'static str {
        match self {
            Tool::Edgecap => "edgecap merge",
            Tool::Mergecap => "mergecap -w",
        }
    }
}

#[derive(Debug)]
struct Run {
    tool: Tool,
    /// Output to a file on disk (else to /dev/null: the merge without the file system).
    to_file: bool,
    wall: Duration,
    reaped: Reaped,
}

pub fn run(a: &BenchMergeArgs) -> Result<(), Failure> {
    let total = parse_size(&a.total).map_err(|e| Failure::usage(format!("--total: {e}")))?;
    if !(1..=256).contains(&a.files) {
        return Err(Failure::usage(format!(
            "--files: {} is not in 1..=256",
            a.files
        )));
    }
    if !(1..=20).contains(&a.runs) {
        return Err(Failure::usage(format!(
            "--runs: {} is not in 1..=20",
            a.runs
        )));
    }
    let work = Workdir::new(a.dir.as_deref())?;
    eprintln!(
        "generating {} files, {} bytes in total, in {} ...",
        a.files,
        total,
        work.path.display()
    );
    let (inputs, packets) = generate(&work.path, a.files, total / a.files as u64)?;
    let in_bytes: u64 = inputs
        .iter()
        .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
        .sum();
    // Warm the page cache for both tools alike.
    for p in &inputs {
        let mut f = File::open(p).map_err(|e| Failure::runtime(format!("{}: {e}", p.display())))?;
        std::io::copy(&mut f, &mut std::io::sink())
            .map_err(|e| Failure::runtime(format!("{}: {e}", p.display())))?;
    }

    let mut runs = Vec::new();
    for r in 0..a.runs {
        let order = if r % 2 == 0 {
            [Tool::Edgecap, Tool::Mergecap]
        } else {
            [Tool::Mergecap, Tool::Edgecap]
        };
        for tool in order {
            for to_file in [true, false] {
                let out = if to_file {
                    work.path.join(format!("out-{r}.pcapng"))
                } else {
                    PathBuf::from("/dev/null")
                };
                // Dirty pages of earlier runs are flushed first, so no run pays for another's.
                let _ = Command::new("sync").status();
                let label = if to_file { "file" } else { "/dev/null" };
                eprintln!("[run {}/{}] {} -> {label} ...", r + 1, a.runs, tool.label());
                let mut run = measure(tool, &inputs, &out)?;
                run.to_file = to_file;
                if r == 0 && to_file {
                    let n = count(&out)?;
                    if n != packets {
                        return Err(Failure::runtime(format!(
                            "{} wrote {n} packets, expected {packets}",
                            tool.label()
                        )));
                    }
                }
                if to_file {
                    let _ = std::fs::remove_file(&out);
                }
                eprintln!(
                    "    {:.2} s wall, {:.2} s CPU, peak RSS {} MiB",
                    run.wall.as_secs_f64(),
                    run.reaped.cpu().as_secs_f64(),
                    run.reaped.max_rss_kib / 1024
                );
                runs.push(run);
            }
        }
    }
    let md = report(a, &runs, in_bytes, packets);
    crate::publish(&md, a.markdown.as_deref())
}

/// Writes `files` pcapng files of about `each` bytes; packet k of file i is stamped
/// `T0 + (k * files + i)` µs, so the merge alternates between every input at every packet.
fn generate(dir: &Path, files: usize, each: u64) -> Result<(Vec<PathBuf>, u64), Failure> {
    let mut paths = Vec::with_capacity(files);
    let mut packets = 0u64;
    let frames: Vec<Vec<u8>> = SIZES.iter().map(|&n| frame(n)).collect();
    for i in 0..files {
        let node = format!("edge{i:02}");
        let path = dir.join(format!("{node}.pcapng"));
        let f = File::create(&path)
            .map_err(|e| Failure::runtime(format!("{}: {e}", path.display())))?;
        let iface = Interface::raw(format!("{node}/pre-firewall"), 65_535);
        let fail = |e: edgecap_pcap::Error| Failure::runtime(format!("{}: {e}", path.display()));
        let mut w = Writer::new(f, Format::Pcapng, &Section::default(), &[iface]).map_err(fail)?;
        let mut k = 0u64;
        while w.bytes_written() < each {
            let p = &frames[(k as usize + i) % frames.len()];
            let ts = T0 + (k * files as u64 + i as u64) * 1000;
            w.write_packet(0, ts, p, p.len() as u32, Direction::Inbound, 0)
                .map_err(fail)?;
            k += 1;
        }
        w.finish().map_err(fail)?;
        packets += k;
        paths.push(path);
    }
    Ok((paths, packets))
}

/// An IPv4/UDP packet of `len` bytes in 198.18.0.0/15.
pub(crate) fn frame(len: usize) -> Vec<u8> {
    let mut p = vec![0u8; len];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&[198, 18, 0, 1]);
    p[16..20].copy_from_slice(&[198, 18, 1, 1]);
    p[22..24].copy_from_slice(&9u16.to_be_bytes());
    p[24..26].copy_from_slice(&((len - 20) as u16).to_be_bytes());
    p
}

fn measure(tool: Tool, inputs: &[PathBuf], out: &Path) -> Result<Run, Failure> {
    let mut cmd = match tool {
        Tool::Edgecap => {
            let exe = crate::edgecap_exe()?;
            let mut c = Command::new(exe);
            c.args(["merge", "-q", "-w"]).arg(out);
            c
        }
        Tool::Mergecap => {
            let mut c = Command::new("mergecap");
            c.arg("-w").arg(out);
            c
        }
    };
    cmd.args(inputs)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    let started = Instant::now();
    let child = cmd
        .spawn()
        .map_err(|e| Failure::runtime(format!("starting {}: {e}", tool.label())))?;
    let deadline = started + Duration::from_secs(1800);
    let reaped = loop {
        match sys::try_reap(child.id()) {
            Ok(Some(r)) => break r,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(2)),
            Ok(None) => {
                let _ = sys::signal(child.id(), libc::SIGKILL);
                return Err(Failure::runtime(format!(
                    "{} ran over 30 minutes",
                    tool.label()
                )));
            }
            Err(e) => return Err(Failure::runtime(format!("reaping {}: {e}", tool.label()))),
        }
    };
    let wall = started.elapsed();
    if reaped.exit_code() != Some(0) {
        return Err(Failure::runtime(format!(
            "{} failed (wait status {})",
            tool.label(),
            reaped.status
        )));
    }
    Ok(Run {
        tool,
        to_file: true,
        wall,
        reaped,
    })
}

fn count(path: &Path) -> Result<u64, Failure> {
    let fail = |e: String| Failure::runtime(format!("reading {}: {e}", path.display()));
    let f = File::open(path).map_err(|e| fail(e.to_string()))?;
    let mut r = Reader::new(std::io::BufReader::with_capacity(1 << 20, f))
        .map_err(|e| fail(e.to_string()))?;
    let mut n = 0;
    while r.next_packet().map_err(|e| fail(e.to_string()))?.is_some() {
        n += 1;
    }
    Ok(n)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn report(a: &BenchMergeArgs, runs: &[Run], in_bytes: u64, packets: u64) -> String {
    let stats = |tool: Tool, to_file: bool| {
        let mine: Vec<&Run> = runs
            .iter()
            .filter(|r| r.tool == tool && r.to_file == to_file)
            .collect();
        let wall = median(mine.iter().map(|r| r.wall.as_secs_f64()).collect());
        let cpu = median(mine.iter().map(|r| r.reaped.cpu().as_secs_f64()).collect());
        let rss = mine.iter().map(|r| r.reaped.max_rss_kib).max().unwrap_or(0);
        (wall, cpu, rss)
    };
    let version = Command::new("mergecap")
        .arg("--version")
        .output()
        .map(|o| {
            // Wireshark's tools print their version on stdout or stderr, by version.
            let mut text = String::from_utf8_lossy(&o.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&o.stderr));
            text.lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .to_owned()
        })
        .unwrap_or_default();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mut md = format!(
        "Command: `{}`; {} files, {in_bytes} bytes, {packets} packets (IP sizes {SIZES:?} in \
         turn, timestamps interleaved across all files); {} runs per tool, alternating; \
         medians.\nMachine: {cpus} CPUs (shared), {version}.\n\n",
        std::env::args().collect::<Vec<_>>().join(" "),
        a.files,
        a.runs,
    );
    md.push_str(
        "| output | tool | wall s (median) | CPU s (median) | MB/s | peak RSS MiB (max) |\n\
         |---|---|---:|---:|---:|---:|\n",
    );
    let mut ratios = Vec::new();
    for (to_file, label) in [(true, "file"), (false, "/dev/null")] {
        let (ew, ec, er) = stats(Tool::Edgecap, to_file);
        let (mw, mc, mr) = stats(Tool::Mergecap, to_file);
        for (tool, w, c, r) in [(Tool::Edgecap, ew, ec, er), (Tool::Mergecap, mw, mc, mr)] {
            md.push_str(&format!(
                "| {label} | {} | {w:.2} | {c:.2} | {:.0} | {} |\n",
                tool.label(),
                in_bytes as f64 / 1e6 / w.max(1e-9),
                r / 1024
            ));
        }
        ratios.push(format!("{label}: **{:.2}**", mw / ew.max(1e-9)));
    }
    md.push_str(&format!(
        "\nmergecap / edgecap wall-time ratio (above 1: edgecap is faster): {}.\n",
        ratios.join(", ")
    ));
    md
}
