//! `edgecap bench trigger`: how fast a trigger fires and captures at the edge, and whether
//! benign traffic ever fires it. A real `edgecap server` (SQLite in a temporary directory) and
//! a real `edgecap agent --netns <edge>` in a one-edge lab; a trigger made through the API
//! (packets per second per destination above `--threshold` for `--sustained` seconds,
//! capturing into a `file://` directory).
//!
//! Floods: twice `--floods` bounded UDP floods from many sources, each to a destination of its
//! own (so each is an anomaly of its own), one after another, on the two paths a firing takes
//! (issue 14, "Budgets across nodes"): the trigger's `captures_per_hour` is `2 × --floods`,
//! so the one node's local share is `--floods` captures; the first `--floods` floods start
//! their capture within it (no round trip), the next `--floods` are beyond it, and each waits
//! for the server's grant from the trigger's pool (`ask`/`grant`, one round trip) before it
//! starts. Per flood, on the machine's one clock (server, agent and this program share it):
//!
//! - flood start -> the end of the first second over the threshold (the firing's `started`
//!   second, from the agent's own 1 s rollups, as the event records it);
//! - condition holds (the end of the `--sustained`-th second over the threshold) -> `fired`
//!   (the event's `created`: when the server recorded the agent's report; only when the
//!   event holds the recorded capture and no refusal);
//! - condition holds -> rule installed (the capture's nft table is in the edge, polled here);
//! - rule installed -> first bytes of the capture's file in the destination directory;
//! - flood start -> rule installed, the whole way.
//!
//! Then a long run (`--long-seconds`) of varied benign traffic to a few destinations, every
//! second below the threshold: slow diurnal-like swings, ramps up to `--benign-peak` of the
//! threshold, short bursts packed into a fifth of a second; any event or capture table in
//! that time is a false trigger.
//!
//! Every flow is bounded in packets and time; the lab, the processes and the directory are
//! removed when the run ends, errors included.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use edgecap_lab::packet::Packet;
use edgecap_lab::{Lab, LabSpec};
use serde_json::{Value, json};

use crate::api::Api;
use crate::dispatch::server::{Server, Workdir, run_edgecap};
use crate::exit::Failure;

#[derive(Debug, clap::Args)]
pub struct BenchTriggerArgs {
    /// Floods to time per path (each to a destination of its own), 1-30: as many within the
    /// node's local share of the trigger's budget, then as many granted from its pool.
    #[arg(long, default_value_t = 10)]
    pub floods: usize,
    /// Seconds each flood lasts (2-30; at least --sustained + 2).
    #[arg(long, default_value_t = 6)]
    pub flood_seconds: u32,
    /// The floods' rate in packets per second (above --threshold, at most 20000).
    #[arg(long, default_value_t = 4000)]
    pub flood_pps: u32,
    /// The trigger's threshold: packets per second to one destination.
    #[arg(long, default_value_t = 1000)]
    pub threshold: u32,
    /// Seconds the condition must hold (the trigger's `sustained_seconds`, 1-10).
    #[arg(long, default_value_t = 2)]
    pub sustained: u64,
    /// The agent's observer samples one packet in N.
    #[arg(long, default_value_t = 4)]
    pub sample_one_in: u32,
    /// Seconds of varied benign traffic counted for false triggers (0: none; at most 3600).
    #[arg(long, default_value_t = 180)]
    pub long_seconds: u64,
    /// The benign traffic's highest second, as a fraction of the threshold (0.1-0.9).
    #[arg(long, default_value_t = 0.8)]
    pub benign_peak: f64,
    /// Write the markdown report here as well as to stdout.
    #[arg(long)]
    pub markdown: Option<PathBuf>,
}

/// The trigger's capture: seconds it runs.
const CAPTURE_SECONDS: u64 = 3;
/// Most time one flood's measurement may take after the flood ended.
const FLOOD_LIMIT: Duration = Duration::from_secs(30);
/// The UDP port floods and benign traffic go to.
const PORT: u16 = 9999;
/// Benign destinations of the long run.
const BENIGN_DESTINATIONS: u8 = 3;

/// How a flood's capture was allowed: within the node's local share of `captures_per_hour`,
/// or beyond it, granted by the server from the trigger's pool.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Way {
    #[default]
    Local,
    Granted,
}

impl Way {
    fn name(self) -> &'static str {
        match self {
            Way::Local => "within the local share",
            Way::Granted => "granted from the pool",
        }
    }
}

/// One flood's timings, in seconds (None: that step was not seen).
#[derive(Debug, Default, Clone)]
struct Flood {
    way: Way,
    onset: Option<f64>,
    fired: Option<f64>,
    rule: Option<f64>,
    bytes: Option<f64>,
    start_to_rule: Option<f64>,
}

/// One step's value of a flood.
type Step = fn(&Flood) -> Option<f64>;

/// Agent process, killed when dropped (before the lab goes).
struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn validate(a: &BenchTriggerArgs) -> Result<(), Failure> {
    let bad = |m: &str| Err(Failure::usage(m.to_owned()));
    if !(1..=30).contains(&a.floods) {
        return bad(
            "--floods: must be 1 to 30 (the trigger's budget is 2 × --floods captures an hour, \
             at most 60)",
        );
    }
    if !(1..=10).contains(&a.sustained) {
        return bad("--sustained: must be 1 to 10");
    }
    if !(2..=30).contains(&a.flood_seconds) || u64::from(a.flood_seconds) < a.sustained + 2 {
        return bad("--flood-seconds: must be 2 to 30 and at least --sustained + 2");
    }
    if !(10..=10_000).contains(&a.threshold) {
        return bad("--threshold: must be 10 to 10000");
    }
    if a.flood_pps <= a.threshold || a.flood_pps > 20_000 {
        return bad("--flood-pps: must be above --threshold and at most 20000");
    }
    if a.long_seconds > 3600 {
        return bad("--long-seconds: must be at most 3600");
    }
    if !(0.1..=0.9).contains(&a.benign_peak) {
        return bad("--benign-peak: must be 0.1 to 0.9");
    }
    Ok(())
}

pub fn run(a: &BenchTriggerArgs) -> Result<(), Failure> {
    validate(a)?;
    let config_text = format!("[observer]\nsample_one_in = {}\n", a.sample_one_in);
    edgecap_capture::config::Config::parse(&config_text)
        .map_err(|e| Failure::usage(format!("--sample-one-in: {e}")))?;
    let work = Workdir::new()?;
    let dir = work.dir().to_owned();
    let dest = work.0.join("captures");
    let config = work.0.join("agent.toml");
    let io = |p: &Path, e: std::io::Error| Failure::runtime(format!("{}: {e}", p.display()));
    std::fs::create_dir_all(&dest).map_err(|e| io(&dest, e))?;
    std::fs::write(&config, config_text).map_err(|e| io(&config, e))?;
    let dest_s = dest.display().to_string();

    let account = run_edgecap(&[
        "admin",
        "--data-dir",
        &dir,
        "account",
        "create",
        "--name",
        "bench",
        "--unrestricted",
    ])?;
    let token = run_edgecap(&[
        "admin",
        "--data-dir",
        &dir,
        "token",
        "create",
        "--account",
        &account,
    ])?;
    let agent_token = run_edgecap(&["admin", "--data-dir", &dir, "agent-token", "create"])?;
    let server = Server::start_with(&dir, &["--file-root", &dest_s])?;
    let api = Api::new_blocking(&server.url, &account, token)?;

    eprintln!("building a one-edge lab with a real agent ...");
    let lab = Lab::new(&LabSpec::with_edges(1))
        .map_err(|e| Failure::runtime(format!("lab (needs root): {e}")))?;
    let ns = lab.edge_ns(0).to_owned();
    let exe = crate::edgecap_exe()?;
    let agent = Agent(
        Command::new(&exe)
            .args(["agent", "--server", &server.url, "--token", &agent_token])
            .args([
                "--name",
                "bench0",
                "--label",
                "site=benchtrigger",
                "--netns",
                &ns,
            ])
            .arg("--config")
            .arg(&config)
            .arg("--state-dir")
            .arg(work.0.join("agent-state"))
            .args(["--file-root", &dest_s])
            .env("EDGECAP_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| Failure::runtime(format!("starting edgecap agent: {e}")))?,
    );
    wait(Duration::from_secs(20), "the agent to connect", || {
        let nodes = api.blocking(reqwest::Method::GET, "nodes", None)?;
        Ok(nodes
            .as_array()
            .is_some_and(|n| n.iter().any(|n| n["connected"] == true)))
    })?;
    wait(Duration::from_secs(10), "the observer's table", || {
        Ok(tables(&lab, &ns)?.iter().any(|t| t == "edgecap_observer"))
    })?;
    let trigger = api.blocking(
        reqwest::Method::POST,
        "pcaps/triggers",
        Some(json!({
            "name": "bench flood",
            "scope": {"colo_name": "benchtrigger", "points": ["pre-firewall"]},
            "condition": {"metric": "packets_per_second", "per": "destination",
                          "above": a.threshold, "sustained_seconds": a.sustained},
            "capture": {"time_limit": CAPTURE_SECONDS, "points": ["pre-firewall"],
                        "destination_conf": format!("file://{dest_s}"),
                        "pre_trigger_seconds": 5},
            "cooldown_seconds": 0,
            "budget": {"captures_per_hour": captures_per_hour(a.floods)},
        })),
    )?;
    let trigger_id = trigger["id"].as_str().unwrap_or_default().to_owned();
    // The trigger reaches the agent at once; a second covers a loaded machine.
    std::thread::sleep(Duration::from_secs(1));

    let mut floods = Vec::new();
    let local_share = edgecap_model::trigger::local_captures(captures_per_hour(a.floods));
    for k in 0..2 * a.floods {
        // The node spends its share first: a flood beyond it asks and is granted.
        let way = if (k as u64) < local_share {
            Way::Local
        } else {
            Way::Granted
        };
        let f = flood(a, &lab, &ns, &api, &dest, k, way)?;
        eprintln!(
            "flood {}/{} ({}): first second over {} s, fired {} s, rule {} s, first bytes {} s \
             (after the condition held)",
            k + 1,
            2 * a.floods,
            way.name(),
            show(f.onset),
            show(f.fired),
            show(f.rule),
            show(f.bytes)
        );
        floods.push(f);
    }
    let long = long_run(a, &lab, &ns, &api)?;
    drop(agent);
    let md = report(a, &trigger_id, &floods, &long);
    crate::publish(&md, a.markdown.as_deref())
}

/// The trigger's `captures_per_hour`: twice the floods of one path, so that the one node's
/// local share ([`edgecap_model::trigger::local_captures`]) covers exactly the first path's
/// floods and the pool ([`edgecap_model::trigger::pooled_captures`]) the second's.
fn captures_per_hour(floods: usize) -> u64 {
    2 * floods as u64
}

/// What the long benign run saw.
#[derive(Debug, Default)]
struct Long {
    seconds: u64,
    packets: u64,
    highest_second: u64,
    false_events: usize,
    false_tables: usize,
}

fn show(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.3}"))
}

/// Seconds since the Unix epoch, now.
fn now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Polls `f` every 50 ms until it holds, at most `limit`.
fn wait(
    limit: Duration,
    what: &str,
    mut f: impl FnMut() -> Result<bool, Failure>,
) -> Result<(), Failure> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f()? {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(Failure::runtime(format!("timed out waiting for {what}")))
}

/// The nft tables of the edge.
fn tables(lab: &Lab, ns: &str) -> Result<Vec<String>, Failure> {
    let out = lab
        .run_in(ns, "nft", ["list", "tables"])
        .map_err(|e| Failure::runtime(format!("nft list tables: {e}")))?;
    Ok(out
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2).map(str::to_owned))
        .collect())
}

/// Capture tables (not the observer's) in the edge.
fn capture_tables(lab: &Lab, ns: &str) -> Result<Vec<String>, Failure> {
    Ok(tables(lab, ns)?
        .into_iter()
        .filter(|t| t.starts_with("edgecap_") && t != "edgecap_observer")
        .collect())
}

/// Flood `k`'s destination (198.18.250.<10+k>: no edge routes it on).
fn target(k: usize) -> IpAddr {
    IpAddr::from([198, 18, 250, 10 + (k % 200) as u8])
}

/// `count` 200-byte datagrams to `dst` from many sources (198.19.0.0/20).
fn flood_packets(dst: IpAddr, count: u32) -> Vec<Vec<u8>> {
    (0..count)
        .filter_map(|m| {
            let i = m % 4096;
            let src = IpAddr::from([198, 19, (i >> 8) as u8, (i & 0xff) as u8]);
            Packet::udp(src, dst, 1024 + (m % 1000) as u16, PORT)
                .total_len(200)
                .build()
                .ok()
        })
        .collect()
}

/// Sends one second's `packets` through edge 0: in ten slices a tenth of a second apart, or
/// (`burst`) all in the first fifth of the second; returns at the second's end.
fn send_second(lab: &Lab, packets: &[Vec<u8>], burst: bool, start: Instant) -> Result<(), Failure> {
    let slices = if burst { 2 } else { 10 };
    let per = packets.len().div_ceil(slices).max(1);
    for (i, c) in packets.chunks(per).enumerate() {
        let due = start + Duration::from_millis(100 * i as u64);
        if let Some(w) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(w);
        }
        lab.send(0, c)
            .map_err(|e| Failure::runtime(format!("sending through the lab: {e}")))?;
    }
    let end = start + Duration::from_secs(1);
    if let Some(w) = end.checked_duration_since(Instant::now()) {
        std::thread::sleep(w);
    }
    Ok(())
}

/// One flood: sends it while a watcher polls the edge's tables and the destination directory;
/// then reads the event for the flood's destination.
fn flood(
    a: &BenchTriggerArgs,
    lab: &Lab,
    ns: &str,
    api: &Api,
    dest: &Path,
    k: usize,
    way: Way,
) -> Result<Flood, Failure> {
    let dst = target(k);
    let per_second = flood_packets(dst, a.flood_pps);
    let done = AtomicBool::new(false);
    let before: Vec<String> = capture_tables(lab, ns)?;
    let started = now();
    let (sent, seen) = std::thread::scope(|s| {
        let watcher = s.spawn(|| watch(lab, ns, dest, &before, &done));
        let mut r = Ok(());
        for _ in 0..a.flood_seconds {
            r = send_second(lab, &per_second, false, Instant::now());
            if r.is_err() {
                break;
            }
        }
        // Watch a little longer than the flood: the rule or the bytes may come after it.
        let until = Instant::now() + Duration::from_secs(3);
        while Instant::now() < until {
            std::thread::sleep(Duration::from_millis(50));
        }
        done.store(true, Ordering::Relaxed);
        (r, watcher.join())
    });
    sent?;
    let (rule_at, bytes_at) =
        seen.map_err(|_| Failure::runtime("the watcher thread panicked"))??;
    // The event of this destination, once the capture ended.
    let key = dst.to_string();
    let mut event = Value::Null;
    let start = Instant::now();
    while start.elapsed() < FLOOD_LIMIT {
        let list = api.blocking(reqwest::Method::GET, "events", None)?;
        if let Some(e) = list
            .as_array()
            .and_then(|l| l.iter().find(|e| e["key"] == key.as_str()))
        {
            event = e.clone();
            let ended = e["captures"]
                .as_array()
                .is_some_and(|c| !c.is_empty() && c.iter().all(|c| c["status"] != "running"));
            if ended {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // Let the destination's rollups calm down before the next flood.
    std::thread::sleep(Duration::from_secs(1));
    let first_over = event["nodes"][0]["started"].as_str().and_then(rfc3339);
    let created = event["created"].as_str().and_then(rfc3339);
    let holds = first_over.map(|s| s + a.sustained as f64);
    // Fired only when the server recorded the capture: a capture beyond the node's share that
    // no grant covers is stopped and the event records a refusal instead.
    let recorded =
        event["refused"] == false && event["captures"].as_array().is_some_and(|c| !c.is_empty());
    Ok(Flood {
        way,
        onset: first_over.map(|s| s + 1.0 - started),
        fired: created.zip(holds).filter(|_| recorded).map(|(c, h)| c - h),
        rule: rule_at.zip(holds).map(|(r, h)| r - h),
        bytes: bytes_at.zip(rule_at).map(|(b, r)| b - r),
        start_to_rule: rule_at.map(|r| r - started),
    })
}

/// Polls every 10 ms until `done`: when a new capture table appeared in the edge, and when
/// the first capture file under `dest` had bytes.
fn watch(
    lab: &Lab,
    ns: &str,
    dest: &Path,
    before: &[String],
    done: &AtomicBool,
) -> Result<(Option<f64>, Option<f64>), Failure> {
    let mut rule = None;
    let mut bytes = None;
    let mut table = None;
    while !done.load(Ordering::Relaxed) && (rule.is_none() || bytes.is_none()) {
        if rule.is_none()
            && let Some(t) = capture_tables(lab, ns)?
                .into_iter()
                .find(|t| !before.contains(t))
        {
            rule = Some(now());
            table = Some(t);
        }
        if let (Some(t), None) = (&table, bytes) {
            let id = t.trim_start_matches("edgecap_");
            if dir_bytes(&dest.join(id)) > 0 {
                bytes = Some(now());
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok((rule, bytes))
}

/// Bytes of the files in `dir` (not recursing).
fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

/// Unix seconds of the API's RFC 3339 UTC times (`2026-12-07T00:10:02.123456Z`).
fn rfc3339(t: &str) -> Option<f64> {
    let n = |r: std::ops::Range<usize>| t.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    let (hh, mm, ss) = (n(11..13)?, n(14..16)?, n(17..19)?);
    let frac = t
        .get(19..)
        .and_then(|r| r.strip_prefix('.'))
        .map(|r| r.trim_end_matches('Z'))
        .and_then(|f| format!("0.{f}").parse::<f64>().ok())
        .unwrap_or(0.0);
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + hh * 3600 + mm * 60 + ss) as f64 + frac)
}

/// The benign rate of destination `d` in second `t` of the long run, as a fraction of the
/// threshold, and whether that second is a burst: a slow swing (a "day" of 120 s) between a
/// tenth and half of the peak, a ramp to the peak every 45 s (offset per destination), and
/// a one-second burst at the peak every 17 s.
fn shape(d: u8, t: u64, peak: f64) -> (f64, bool) {
    let phase = f64::from(d) * 40.0;
    let day = 0.3 + 0.2 * ((t as f64 + phase) * std::f64::consts::TAU / 120.0).sin();
    let into_ramp = (t + u64::from(d) * 15) % 45;
    let ramp = if into_ramp < 8 {
        (into_ramp as f64 + 1.0) / 8.0
    } else {
        0.0
    };
    let burst = (t + u64::from(d) * 5).is_multiple_of(17);
    let level = if burst { 1.0 } else { day.max(ramp) };
    ((level * peak).min(peak), burst)
}

/// The long run: `--long-seconds` of benign traffic to [`BENIGN_DESTINATIONS`] destinations,
/// shaped by [`shape`]; counts the events and capture tables that appeared.
fn long_run(a: &BenchTriggerArgs, lab: &Lab, ns: &str, api: &Api) -> Result<Long, Failure> {
    let mut long = Long {
        seconds: a.long_seconds,
        ..Long::default()
    };
    if a.long_seconds == 0 {
        return Ok(long);
    }
    eprintln!(
        "long run: {} s of benign traffic below {} packets/s per destination ...",
        a.long_seconds, a.threshold
    );
    let events_before = api
        .blocking(reqwest::Method::GET, "events", None)?
        .as_array()
        .map_or(0, Vec::len);
    let tables_before = capture_tables(lab, ns)?;
    let mut seen_tables: Vec<String> = Vec::new();
    for t in 0..a.long_seconds {
        let start = Instant::now();
        let mut packets = Vec::new();
        let mut burst_second = false;
        for d in 0..BENIGN_DESTINATIONS {
            let (level, burst) = shape(d, t, a.benign_peak);
            burst_second |= burst;
            let n = (level * f64::from(a.threshold)).round() as u32;
            let dst = IpAddr::from([198, 18, 251, 10 + d]);
            let p = flood_packets(dst, n);
            long.highest_second = long.highest_second.max(u64::from(n));
            packets.extend(p);
        }
        long.packets += packets.len() as u64;
        send_second(lab, &packets, burst_second, start)?;
        for tb in capture_tables(lab, ns)? {
            if !tables_before.contains(&tb) && !seen_tables.contains(&tb) {
                seen_tables.push(tb);
            }
        }
        if t % 30 == 29 {
            eprintln!("  {} s of {}", t + 1, a.long_seconds);
        }
    }
    // Seconds close about a second after they end; give the last ones time to be evaluated.
    std::thread::sleep(Duration::from_secs(a.sustained + 2));
    for tb in capture_tables(lab, ns)? {
        if !tables_before.contains(&tb) && !seen_tables.contains(&tb) {
            seen_tables.push(tb);
        }
    }
    let events_after = api
        .blocking(reqwest::Method::GET, "events", None)?
        .as_array()
        .map_or(0, Vec::len);
    long.false_events = events_after.saturating_sub(events_before);
    long.false_tables = seen_tables.len();
    Ok(long)
}

/// The `q` quantile (nearest rank) of the seen values.
fn quantile(v: &[f64], q: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    Some(v[rank - 1])
}

fn report(a: &BenchTriggerArgs, trigger: &str, floods: &[Flood], long: &Long) -> String {
    let mut out = format!(
        "Command: `{}`\n\nTrigger {trigger}: packets per second per destination above {} \
         for {} s, observer sampling 1 in {}; {} captures an hour (the one node's local share \
         {}, the server's pool {}); {} floods of {} s at {} packets/s from 4096 sources, each \
         to a destination of its own: the first {} within the node's local share, the next {} \
         beyond it, each granted from the pool (one round trip more); a {} s capture into a \
         file:// directory per firing.\n\n",
        std::env::args().collect::<Vec<_>>().join(" "),
        a.threshold,
        a.sustained,
        a.sample_one_in,
        captures_per_hour(a.floods),
        edgecap_model::trigger::local_captures(captures_per_hour(a.floods)),
        edgecap_model::trigger::pooled_captures(captures_per_hour(a.floods)),
        floods.len(),
        a.flood_seconds,
        a.flood_pps,
        a.floods,
        a.floods,
        CAPTURE_SECONDS,
    );
    out.push_str(
        "| step | path | floods seen | p50 (s) | p99 (s) | max (s) |\n\
         | --- | --- | ---: | ---: | ---: | ---: |\n",
    );
    let steps: [(&str, Step); 5] = [
        ("flood start -> first second over the threshold ends", |f| {
            f.onset
        }),
        ("condition holds -> fired (recorded by the server)", |f| {
            f.fired
        }),
        ("condition holds -> rule installed", |f| f.rule),
        ("rule installed -> first bytes in the destination", |f| {
            f.bytes
        }),
        ("flood start -> rule installed", |f| f.start_to_rule),
    ];
    for (name, get) in steps {
        for way in [Way::Local, Way::Granted] {
            let v: Vec<f64> = floods
                .iter()
                .filter(|f| f.way == way)
                .filter_map(get)
                .collect();
            out.push_str(&format!(
                "| {name} | {} | {} | {} | {} | {} |\n",
                way.name(),
                v.len(),
                show(quantile(&v, 0.5)),
                show(quantile(&v, 0.99)),
                show(v.iter().copied().reduce(f64::max)),
            ));
        }
    }
    out.push('\n');
    for way in [Way::Local, Way::Granted] {
        let of_way: Vec<&Flood> = floods.iter().filter(|f| f.way == way).collect();
        let fired = of_way.iter().filter(|f| f.fired.is_some()).count();
        let rule: Vec<f64> = of_way.iter().filter_map(|f| f.rule).collect();
        let p99 = quantile(&rule, 0.99);
        out.push_str(&format!(
            "Floods that fired {}: {fired} of {}. Goal: the rule installed within 2 s of the \
             condition holding at p99: {}.\n",
            way.name(),
            of_way.len(),
            match p99 {
                Some(p) if p < 2.0 && rule.len() == of_way.len() => format!("met ({p:.3} s)"),
                Some(p) => format!(
                    "NOT met ({p:.3} s, {} of {} floods)",
                    rule.len(),
                    of_way.len()
                ),
                None => "NOT met (no rule seen)".to_owned(),
            }
        ));
    }
    out.push_str(&format!(
        "\n| long benign run (s) | packets sent | highest second to one destination (packets) | false events | false capture tables |\n| ---: | ---: | ---: | ---: | ---: |\n| {} | {} | {} | {} | {} |\n",
        long.seconds, long.packets, long.highest_second, long.false_events, long.false_tables
    ));
    out.push_str(&format!(
        "\nFalse triggers: {} (goal: 0). The benign traffic went to {BENIGN_DESTINATIONS} \
         destinations: slow swings between a tenth and half of {:.0} % of the threshold, \
         ramps up to it every 45 s, one-second bursts at it packed into a fifth of a second \
         every 17 s.\n",
        long.false_events.max(long.false_tables),
        a.benign_peak * 100.0
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn benign_shapes_stay_at_or_below_the_peak_and_reach_it() {
        let mut top: f64 = 0.0;
        for d in 0..BENIGN_DESTINATIONS {
            for t in 0..600 {
                let (l, _) = shape(d, t, 0.8);
                assert!(l > 0.0 && l <= 0.8, "{d} {t} {l}");
                top = top.max(l);
            }
        }
        assert_eq!(top, 0.8);
    }

    #[test]
    fn api_times_read_as_unix_seconds() {
        assert_eq!(rfc3339("1970-01-01T00:00:00Z"), Some(0.0));
        assert_eq!(
            rfc3339("2026-12-07T00:10:02.250000Z"),
            Some(1_796_602_202.25)
        );
        assert_eq!(rfc3339("nonsense"), None);
    }

    #[test]
    fn the_budget_covers_each_path_s_floods_exactly() {
        // The first path's floods within the node's local share, the second's granted from
        // the pool: neither more (a granted flood would run locally) nor fewer.
        for n in 1..=30 {
            let per_hour = captures_per_hour(n);
            assert!(per_hour <= 60, "{n}");
            assert_eq!(edgecap_model::trigger::local_captures(per_hour), n as u64);
            assert_eq!(edgecap_model::trigger::pooled_captures(per_hour), n as u64);
        }
    }

    #[test]
    fn quantiles_by_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), Some(50.0));
        assert_eq!(quantile(&v, 0.99), Some(99.0));
        assert_eq!(quantile(&[3.0], 0.99), Some(3.0));
        assert_eq!(quantile(&[], 0.5), None);
    }
}
