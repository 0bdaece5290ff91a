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
use crate::paired::{self, Verdict};
use crate::{kernel, noise};

#[derive(Debug, clap::Args)]
pub struct BenchObserveArgs {
    /// Seconds of traffic per run.
    #[arg(long, default_value_t = 5.0)]
    pub seconds: f64,
    /// Rounds: each runs every mode once (off, on, and with --bounds the two bound chains),
    /// in an order rotated by one each round. At least 6 give a 95 % interval.
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
    /// Also run, each round, an empty base chain and a chain of one bare `counter` rule at
    /// the observer's hooks and priorities (observer off): the least any observer's chain
    /// costs, to compare its rule with.
    #[arg(long)]
    pub bounds: bool,
    /// Give the edge a stateless firewall in every mode (a forward chain of typical edge
    /// rules: bogon sources dropped, a few services allowed, the rest dropped), the pipeline
    /// the observer's default point, `pre-firewall`, stands before. Without it the edge runs
    /// no rule but the benchmark's two counters.
    #[arg(long)]
    pub firewall: bool,
    /// Write the markdown report here as well as to stdout.
    #[arg(long)]
    pub markdown: Option<PathBuf>,
}

/// The most packets one run sends, whatever the rate.
const MAX_COUNT: u64 = 20_000_000;
/// The most rounds one invocation runs.
const MAX_ROUNDS: usize = 50;
/// The goal: the observer costs under this share of forwarding throughput, in %.
const GOAL_PCT: f64 = 3.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The agent with `[observer] enabled = false`.
    Off,
    /// The agent with its observer.
    On,
    /// Observer off, and an empty base chain at each of the observer's hooks.
    EmptyChain,
    /// Observer off, and a chain of one `counter` rule at each of the observer's hooks.
    CounterChain,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Off => "off",
            Mode::On => "on",
            Mode::EmptyChain => "empty chain",
            Mode::CounterChain => "counter chain",
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Run {
    round: usize,
    mode: Mode,
    forwarded_pps: f64,
    /// The sending process's CPU time (user + system) over the blast per packet forwarded.
    sender_ns: f64,
    agent_cpu_pct: f64,
    peak_kib: u64,
    /// CPU other processes (not this one nor its children) used over the blast, in cores.
    others_cores: f64,
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
    if a.rounds == 0 || a.rounds > MAX_ROUNDS {
        return Err(Failure::usage(format!(
            "--rounds: must be 1 to {MAX_ROUNDS}"
        )));
    }
    let on_text = observer_on(a)?;
    let hooks = observer_hooks(&on_text)?;
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
    if a.firewall {
        kernel::install_firewall(&lab, &ns)?;
    }
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
    let hook_refs: Vec<(&str, i32, Option<&str>)> = hooks
        .iter()
        .map(|(h, p, d)| (h.as_str(), *p, d.as_deref()))
        .collect();

    let mut runs = Vec::new();
    for round in 0..a.rounds {
        for mode in round_order(&modes(a.bounds), round) {
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
            match mode {
                Mode::EmptyChain => kernel::install_bound(&lab, &ns, &hook_refs, false)?,
                Mode::CounterChain => kernel::install_bound(&lab, &ns, &hook_refs, true)?,
                Mode::Off | Mode::On => {}
            }
            kernel::take_offered(&lab, &ns)?;
            kernel::take_forwarded(&lab, &ns)?;
            let others0 = noise::Snapshot::take();
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
            let others = others0.foreign_cpu_until(&noise::Snapshot::take());
            // Let the edge finish what it queued before reading.
            std::thread::sleep(Duration::from_millis(300));
            let forwarded = kernel::take_forwarded(&lab, &ns)?;
            if matches!(mode, Mode::EmptyChain | Mode::CounterChain) {
                kernel::remove_bound(&lab, &ns)?;
            }
            let secs = sent.elapsed.as_secs_f64().max(1e-9);
            runs.push(Run {
                round,
                mode,
                forwarded_pps: forwarded as f64 / secs,
                sender_ns: own as f64 / forwarded.max(1) as f64,
                agent_cpu_pct: 100.0 * (cpu1 - cpu0) as f64 / CLK_TCK / secs,
                peak_kib: kib(pid, "VmHWM:")?,
                others_cores: others / secs,
            });
            drop(agent);
            eprintln!(
                "round {}/{} {}: {:.0} pps forwarded, {:.0} ns of sender CPU each",
                round + 1,
                a.rounds,
                mode.name(),
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

/// The modes every round runs.
fn modes(bounds: bool) -> Vec<Mode> {
    let mut m = vec![Mode::Off, Mode::On];
    if bounds {
        m.extend([Mode::EmptyChain, Mode::CounterChain]);
    }
    m
}

/// Round `round`'s order: the modes rotated by one more each round, so every mode runs in
/// every position equally often (off, on; on, off; ... for two), and a slow drift of the
/// machine's load favours none.
fn round_order(modes: &[Mode], round: usize) -> Vec<Mode> {
    let mut m = modes.to_vec();
    if !m.is_empty() {
        let n = m.len();
        m.rotate_left(round % n);
    }
    m
}

/// The observer's hooks as the agent resolves them from the same config text: `(hook,
/// priority, ingress device)`.
fn observer_hooks(config: &str) -> Result<Vec<(String, i32, Option<String>)>, Failure> {
    let cfg = edgecap_capture::config::Config::parse(config)
        .map_err(|e| Failure::usage(format!("observer config: {e}")))?;
    let points = edgecap_capture::points::resolve(&cfg.observer.points, &cfg, &[])
        .map_err(|e| Failure::runtime(format!("the observer's points: {e}")))?;
    Ok(points
        .iter()
        .flat_map(|p| p.hooks.iter())
        .map(|h| (h.hook.name().to_owned(), h.priority, h.device.clone()))
        .collect())
}

/// Waits until the agent is in place: its observer's table is installed (on), or it had
/// time to start (the other modes, where its observer is off).
fn settle(lab: &Lab, ns: &str, mode: Mode) -> Result<(), Failure> {
    if mode != Mode::On {
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

/// One mode compared with another in the same rounds: per round, the rate cost `1 - pps /
/// pps(base)` and the CPU cost `ns / ns(base) - 1`, in %.
struct Pair {
    mode: Mode,
    base: Mode,
    rate: Vec<f64>,
    cpu: Vec<f64>,
}

fn pair(runs: &[Run], mode: Mode, base: Mode) -> Pair {
    let mut p = Pair {
        mode,
        base,
        rate: Vec::new(),
        cpu: Vec::new(),
    };
    let find = |round: usize, m: Mode| runs.iter().find(|r| r.round == round && r.mode == m);
    for r in runs.iter().filter(|r| r.mode == mode) {
        let Some(b) = find(r.round, base) else {
            continue;
        };
        if b.forwarded_pps > 0.0 && b.sender_ns > 0.0 {
            p.rate
                .push(100.0 * (1.0 - r.forwarded_pps / b.forwarded_pps));
            p.cpu.push(100.0 * (r.sender_ns / b.sender_ns - 1.0));
        }
    }
    p
}

/// `+1.2 %`, or `-` when there is nothing.
fn pct(v: Option<f64>) -> String {
    v.map_or("-".to_owned(), |v| format!("{v:+.1} %"))
}

fn interval(v: Option<(f64, f64)>) -> String {
    v.map_or("- (under 6 rounds)".to_owned(), |(lo, hi)| {
        format!("{lo:+.1} .. {hi:+.1} %")
    })
}

fn report(a: &BenchObserveArgs, runs: &[Run]) -> String {
    let modes = modes(a.bounds);
    let of = |m: Mode| runs.iter().filter(move |r| r.mode == m);
    let spread_of = |m: Mode, f: fn(&Run) -> f64| paired::spread(&of(m).map(f).collect::<Vec<_>>());
    let three = |s: Option<paired::Spread>, unit: &str| {
        s.map_or("-".to_owned(), |s| {
            format!("{:.0} / {:.0} / {:.0}{unit}", s.min, s.median, s.max)
        })
    };
    let mut out = String::new();
    out.push_str(&format!(
        "Observer cost: {} rounds of {} s per mode, each round every mode once ({}), the order \
         rotated by one each round; UDP with {}-byte payloads at the generator's maximum rate, \
         many flows; observer 1 in {}, ring cap {}; {}.\n\n",
        a.rounds,
        a.seconds,
        modes
            .iter()
            .map(|m| m.name())
            .collect::<Vec<_>>()
            .join(", "),
        a.payload,
        a.sample_one_in,
        a.ring_cap,
        if a.firewall {
            "the edge runs a stateless firewall (`--firewall`)"
        } else {
            "the edge runs no firewall"
        }
    ));
    out.push_str(
        "| mode | runs | forwarded pps (min / median / max) | sender CPU per forwarded packet \
         (min / median / max) | agent CPU (median, % of one core) | agent peak RSS (max) |\n",
    );
    out.push_str("| --- | ---: | ---: | ---: | ---: | ---: |\n");
    for &m in &modes {
        let cpu = paired::median(&of(m).map(|r| r.agent_cpu_pct).collect::<Vec<_>>());
        out.push_str(&format!(
            "| {} | {} | {} | {} | {:.1} % | {:.1} MiB |\n",
            m.name(),
            of(m).count(),
            three(spread_of(m, |r| r.forwarded_pps), ""),
            three(spread_of(m, |r| r.sender_ns), " ns"),
            cpu.unwrap_or(0.0),
            of(m).map(|r| r.peak_kib).max().unwrap_or(0) as f64 / 1024.0
        ));
    }

    let mut pairs = vec![pair(runs, Mode::On, Mode::Off)];
    if a.bounds {
        pairs.push(pair(runs, Mode::EmptyChain, Mode::Off));
        pairs.push(pair(runs, Mode::CounterChain, Mode::Off));
        pairs.push(pair(runs, Mode::On, Mode::EmptyChain));
    }
    out.push_str(
        "\nPaired, each run against the run of the base mode in the same round (cost in %: \
         forwarding rate `1 - pps / base pps`, CPU `ns / base ns - 1`; the interval is a \
         distribution-free 95 % interval of the median):\n\n",
    );
    out.push_str(
        "| mode | base | rounds | rate cost (median) | rate cost (min .. max) | rate cost \
         (95 % interval) | CPU cost (median) | CPU cost (min .. max) | CPU cost (95 % interval) |\n",
    );
    out.push_str("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for p in &pairs {
        let range = |v: &[f64]| {
            paired::spread(v).map_or("-".to_owned(), |s| {
                format!("{:+.1} .. {:+.1} %", s.min, s.max)
            })
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            p.mode.name(),
            p.base.name(),
            p.rate.len(),
            pct(paired::median(&p.rate)),
            range(&p.rate),
            interval(paired::median_interval(&p.rate)),
            pct(paired::median(&p.cpu)),
            range(&p.cpu),
            interval(paired::median_interval(&p.cpu)),
        ));
    }
    let on = &pairs[0];
    let medians = |f: fn(&Run) -> f64| {
        let m = |mode| paired::median(&of(mode).map(f).collect::<Vec<_>>());
        m(Mode::Off).zip(m(Mode::On))
    };
    let ratio_of_medians = medians(|r| r.forwarded_pps)
        .filter(|(off, _)| *off > 0.0)
        .map(|(off, on)| 100.0 * (1.0 - on / off));
    out.push_str(&format!(
        "\nThe observer's forwarding cost, paired: {} (95 % interval {}); goal under {GOAL_PCT} \
         %: {}. Its CPU per forwarded packet, paired: {} (95 % interval {}): {}. (The ratio of \
         the two modes' median rates, unpaired: {}.) Agent CPU with the observer: {:.1} % of one \
         core (goal under 5 %).\n",
        pct(paired::median(&on.rate)),
        interval(paired::median_interval(&on.rate)),
        Verdict::of(paired::median_interval(&on.rate), GOAL_PCT).text(),
        pct(paired::median(&on.cpu)),
        interval(paired::median_interval(&on.cpu)),
        Verdict::of(paired::median_interval(&on.cpu), GOAL_PCT).text(),
        pct(ratio_of_medians),
        paired::median(&of(Mode::On).map(|r| r.agent_cpu_pct).collect::<Vec<_>>()).unwrap_or(0.0),
    ));

    out.push_str(
        "\nEvery run:\n\n| round | mode | forwarded pps | sender CPU per packet | agent CPU | \
         peak RSS | other processes' CPU |\n| ---: | --- | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for r in runs {
        out.push_str(&format!(
            "| {} | {} | {:.0} | {:.0} ns | {:.1} % | {:.1} MiB | {:.2} cores |\n",
            r.round + 1,
            r.mode.name(),
            r.forwarded_pps,
            r.sender_ns,
            r.agent_cpu_pct,
            r.peak_kib as f64 / 1024.0,
            r.others_cores
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
            bounds: false,
            firewall: false,
            markdown: None,
        }
    }

    #[test]
    fn every_mode_runs_in_every_position() {
        let m = modes(true);
        assert_eq!(
            round_order(&modes(false), 1),
            [Mode::On, Mode::Off],
            "two modes alternate"
        );
        for (i, &mode) in m.iter().enumerate() {
            let positions: Vec<usize> = (0..m.len())
                .map(|round| {
                    round_order(&m, round)
                        .iter()
                        .position(|&x| x == mode)
                        .unwrap()
                })
                .collect();
            let mut sorted = positions.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, [0, 1, 2, 3], "mode {i}: {positions:?}");
        }
    }

    fn run(round: usize, mode: Mode, pps: f64, ns: f64) -> Run {
        Run {
            round,
            mode,
            forwarded_pps: pps,
            sender_ns: ns,
            agent_cpu_pct: 0.0,
            peak_kib: 0,
            others_cores: 0.0,
        }
    }

    /// Each run is compared with its own round's base run, not with the base mode's median:
    /// a machine that slows down between rounds moves both runs of a round together.
    #[test]
    fn pairs_compare_runs_of_the_same_round() {
        let runs = [
            run(0, Mode::Off, 200.0, 100.0),
            run(0, Mode::On, 196.0, 102.0),
            run(1, Mode::On, 99.0, 204.0),
            run(1, Mode::Off, 100.0, 200.0),
            // A round without its base run is left out.
            run(2, Mode::On, 1.0, 1.0),
        ];
        let p = pair(&runs, Mode::On, Mode::Off);
        let close = |a: &[f64], b: &[f64]| {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-9)
        };
        assert!(close(&p.rate, &[2.0, 1.0]), "{:?}", p.rate);
        assert!(close(&p.cpu, &[2.0, 2.0]), "{:?}", p.cpu);
        let md = report(&args(64, "16MiB"), &runs);
        assert!(md.contains("| on | off | 2 | +1.5 % |"), "{md}");
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
