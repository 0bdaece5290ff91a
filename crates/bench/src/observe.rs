//! The always-on observer's cost, measured in one run: the same `edgecap agent --netns <edge>`
//! with its observer on and switched off (`[observer] enabled = false`), alternating, while
//! the lab's generator blasts UDP through the edge as fast as it can. Per run: the edge's
//! forwarding rate (a counter after forwarding, at postrouting), the sender's CPU time per
//! forwarded packet (on veth the edge forwards in the sender's context, so the observer's
//! rule shows there; CPU time, unlike the rate, does not count the time other processes took
//! the CPU away), the agent's CPU (its `/proc/<pid>/stat` ticks over the blast) and its peak
//! memory (`VmHWM`).
//!
//! The agent dials a loopback port where no server listens: it keeps retrying, which costs
//! nothing measurable, and its observer runs from its start regardless.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use edgecap_lab::packet::Packet;
use edgecap_lab::{Blast, Lab, LabSpec};

use crate::exit::Failure;
use crate::kernel;

#[derive(Debug, clap::Args)]
pub struct BenchObserveArgs {
    /// Seconds of traffic per run.
    #[arg(long, default_value_t = 5.0)]
    pub seconds: f64,
    /// Runs per mode (observer on, off), alternating.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// The observer's sampling rate: one packet in N.
    #[arg(long, default_value_t = 64)]
    pub sample_one_in: u32,
    /// The observer's ring cap (small by default, so a run shows the memory at its cap).
    #[arg(long, default_value = "16MiB")]
    pub ring_cap: String,
    /// UDP payload bytes of the traffic.
    #[arg(long, default_value_t = 64)]
    pub payload: usize,
    /// Write the markdown report here as well as to stdout.
    #[arg(long)]
    pub markdown: Option<PathBuf>,
}

/// The most packets one run sends, whatever the rate.
const MAX_COUNT: u64 = 20_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Off,
    On,
}

#[derive(Debug, Clone, Copy)]
struct Run {
    mode: Mode,
    forwarded_pps: f64,
    /// The sending process's CPU time (user + system) over the blast per packet forwarded.
    sender_ns: f64,
    agent_cpu_pct: f64,
    peak_kib: u64,
}

/// The agent process; killed when dropped (before the lab goes).
struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn run(a: &BenchObserveArgs) -> Result<(), Failure> {
    if !(a.seconds > 0.0 && a.seconds <= 60.0) {
        return Err(Failure::usage(
            "--seconds: must be more than 0 and at most 60",
        ));
    }
    if a.rounds == 0 || a.rounds > 20 {
        return Err(Failure::usage("--rounds: must be 1 to 20"));
    }
    let on_text = observer_on(a)?;
    let exe = crate::edgecap_exe()?;
    let work = crate::capture::Workdir::new(None)?;
    let on = work.path.join("observer-on.toml");
    let off = work.path.join("observer-off.toml");
    let write = |p: &PathBuf, text: String| {
        std::fs::write(p, text).map_err(|e| Failure::runtime(format!("{}: {e}", p.display())))
    };
    write(&on, on_text)?;
    write(&off, "[observer]\nenabled = false\n".to_owned())?;
    let lab = Lab::new(&LabSpec::with_edges(1))
        .map_err(|e| Failure::runtime(format!("lab (needs root): {e}")))?;
    let ns = lab.edge_ns(0).to_owned();
    kernel::install_offered(&lab, &ns)?;
    kernel::install_forwarded(&lab, &ns)?;
    let lab_err = |e: edgecap_lab::LabError| Failure::runtime(format!("lab: {e}"));
    let template = Packet::udp(
        lab.src_addr(0, false),
        lab.origin_addr(0, false),
        40000,
        kernel::DPORT,
    )
    .payload(vec![0u8; a.payload])
    .build()
    .map_err(lab_err)?;

    let mut runs = Vec::new();
    for round in 0..a.rounds {
        let order = match round % 2 {
            0 => [Mode::Off, Mode::On],
            _ => [Mode::On, Mode::Off],
        };
        for mode in order {
            let config = if mode == Mode::On { &on } else { &off };
            let state = work.path.join(format!("state-{round}-{mode:?}"));
            let agent = Agent(
                Command::new(&exe)
                    .args(["agent", "--server", "http://127.0.0.1:9", "--token", "x"])
                    .args(["--name", "bench0", "--netns", &ns, "--config"])
                    .arg(config)
                    .arg("--state-dir")
                    .arg(&state)
                    .env("EDGECAP_LOG", "error")
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .map_err(|e| Failure::runtime(format!("starting edgecap agent: {e}")))?,
            );
            let pid = agent.0.id();
            settle(&lab, &ns, mode)?;
            kernel::take_offered(&lab, &ns)?;
            kernel::take_forwarded(&lab, &ns)?;
            let cpu0 = ticks(pid)?;
            let own0 = own_cpu_ns();
            let sent = lab
                .blast(
                    0,
                    &template,
                    Blast {
                        count: MAX_COUNT,
                        pps: None,
                        max_duration: Duration::from_secs_f64(a.seconds),
                        vary_source_port: true,
                    },
                )
                .map_err(lab_err)?;
            let cpu1 = ticks(pid)?;
            let own = own_cpu_ns().saturating_sub(own0);
            // Let the edge finish what it queued before reading.
            std::thread::sleep(Duration::from_millis(300));
            let forwarded = kernel::take_forwarded(&lab, &ns)?;
            let secs = sent.elapsed.as_secs_f64().max(1e-9);
            runs.push(Run {
                mode,
                forwarded_pps: forwarded as f64 / secs,
                sender_ns: own as f64 / forwarded.max(1) as f64,
                agent_cpu_pct: 100.0 * (cpu1 - cpu0) as f64 / CLK_TCK / secs,
                peak_kib: kib(pid, "VmHWM:")?,
            });
            drop(agent);
            eprintln!(
                "round {}/{} observer {:?}: {:.0} pps forwarded, {:.0} ns of sender CPU each",
                round + 1,
                a.rounds,
                mode,
                runs.last().map_or(0.0, |r| r.forwarded_pps),
                runs.last().map_or(0.0, |r| r.sender_ns)
            );
        }
    }
    let report = report(a, &runs);
    print!("{report}");
    if let Some(p) = &a.markdown {
        std::fs::write(p, &report)
            .map_err(|e| Failure::runtime(format!("--markdown {}: {e}", p.display())))?;
    }
    Ok(())
}

/// Waits until the agent is in place: its observer's table is installed (on), or it had
/// time to start (off).
fn settle(lab: &Lab, ns: &str, mode: Mode) -> Result<(), Failure> {
    if mode == Mode::Off {
        std::thread::sleep(Duration::from_millis(500));
        return Ok(());
    }
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        let tables = lab
            .run_in(ns, "nft", ["list", "tables"])
            .map_err(|e| Failure::runtime(format!("nft list tables: {e}")))?;
        if tables
            .lines()
            .any(|l| l.trim() == "table inet edgecap_observer")
        {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(Failure::runtime(
        "the agent's observer did not install its table within 10 s",
    ))
}

const CLK_TCK: f64 = 100.0;

/// This process's CPU time so far (every thread, ended ones included), in nanoseconds, at
/// the kernel's 10 ms resolution (`/proc/self/stat`): the blast runs in a thread of its own,
/// and the rest of the process idles meanwhile.
fn own_cpu_ns() -> u64 {
    ticks(std::process::id()).unwrap_or(0) * (1_000_000_000 / CLK_TCK as u64)
}

/// User + system ticks of a process so far.
fn ticks(pid: u32) -> Result<u64, Failure> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| Failure::runtime(format!("/proc/{pid}/stat: {e}")))?;
    // Fields after the command (which may hold spaces) start after the last ')'.
    let rest = s.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // utime and stime are fields 14 and 15; `rest` starts at field 3.
    Ok(n(11) + n(12))
}

fn kib(pid: u32, field: &str) -> Result<u64, Failure> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| Failure::runtime(format!("/proc/{pid}/status: {e}")))?;
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| Failure::runtime(format!("no {field} in /proc/{pid}/status")))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn report(a: &BenchObserveArgs, runs: &[Run]) -> String {
    let of = |m: Mode| runs.iter().filter(move |r| r.mode == m);
    let fwd = |m: Mode| median(of(m).map(|r| r.forwarded_pps).collect());
    let cpu = |m: Mode| median(of(m).map(|r| r.agent_cpu_pct).collect());
    let peak = |m: Mode| of(m).map(|r| r.peak_kib).max().unwrap_or(0);
    let ns = |m: Mode| median(of(m).map(|r| r.sender_ns).collect());
    let (f_off, f_on) = (fwd(Mode::Off), fwd(Mode::On));
    let cost = if f_off > 0.0 {
        100.0 * (1.0 - f_on / f_off)
    } else {
        0.0
    };
    let (n_off, n_on) = (ns(Mode::Off), ns(Mode::On));
    let ns_cost = if n_off > 0.0 {
        100.0 * (n_on / n_off - 1.0)
    } else {
        0.0
    };
    let mut out = String::new();
    out.push_str(&format!(
        "Observer cost: {} rounds of {} s per mode, alternating; UDP with {}-byte payloads at \
         the generator's maximum rate, many flows; observer 1 in {}, ring cap {}.\n\n",
        a.rounds, a.seconds, a.payload, a.sample_one_in, a.ring_cap
    ));
    out.push_str("| observer | forwarded (median pps) | sender CPU per forwarded packet (median) | agent CPU (median, % of one core) | agent peak RSS |\n");
    out.push_str("| --- | ---: | ---: | ---: | ---: |\n");
    for (name, m) in [("off", Mode::Off), ("on", Mode::On)] {
        out.push_str(&format!(
            "| {name} | {:.0} | {:.0} ns | {:.1} % | {:.1} MiB |\n",
            fwd(m),
            ns(m),
            cpu(m),
            peak(m) as f64 / 1024.0
        ));
    }
    out.push_str(&format!(
        "\nForwarding with the observer: {:.3} of without ({:+.1} % cost; goal under 3 %). \
         CPU per forwarded packet with the observer: {:+.1} % (the same cost, unaffected by \
         other processes taking the CPU). Agent CPU with the observer: {:.1} % of one core \
         (goal under 5 %).\n",
        if f_off > 0.0 { f_on / f_off } else { 0.0 },
        cost,
        ns_cost,
        cpu(Mode::On)
    ));
    out.push_str("\nEvery run:\n\n| observer | forwarded pps | sender CPU per packet | agent CPU | peak RSS |\n| --- | ---: | ---: | ---: | ---: |\n");
    for r in runs {
        out.push_str(&format!(
            "| {:?} | {:.0} | {:.0} ns | {:.1} % | {:.1} MiB |\n",
            r.mode,
            r.forwarded_pps,
            r.sender_ns,
            r.agent_cpu_pct,
            r.peak_kib as f64 / 1024.0
        ));
    }
    out
}

/// The agent config of the runs with the observer on. The agent's own config rules decide
/// what `--sample-one-in` and `--ring-cap` may be: refused here naming the flags, rather than
/// as an agent that never installs its table.
fn observer_on(a: &BenchObserveArgs) -> Result<String, Failure> {
    let text = format!(
        "[observer]\nsample_one_in = {}\nring_cap = \"{}\"\n",
        a.sample_one_in, a.ring_cap
    );
    edgecap_capture::config::Config::parse(&text)
        .map_err(|e| Failure::usage(format!("--sample-one-in / --ring-cap: {e}")))?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(sample_one_in: u32, ring_cap: &str) -> BenchObserveArgs {
        BenchObserveArgs {
            seconds: 1.0,
            rounds: 1,
            sample_one_in,
            ring_cap: ring_cap.to_owned(),
            payload: 64,
            markdown: None,
        }
    }

    #[test]
    fn the_agents_limits_refuse_bad_flags_by_name() {
        assert!(observer_on(&args(64, "16MiB")).is_ok());
        for (n, cap, names) in [
            (1 << 17, "16MiB", "sample_one_in"),
            (0, "16MiB", "sample_one_in"),
            (64, "lots", "ring_cap"),
        ] {
            let e = observer_on(&args(n, cap)).unwrap_err();
            let text = e.message;
            assert!(text.contains("--sample-one-in / --ring-cap"), "{text}");
            assert!(text.contains(names), "{text}");
        }
    }
}
